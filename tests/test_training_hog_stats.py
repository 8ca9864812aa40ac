"""training/hog_stats.py: the realism test's HOG and LBP in PyTorch, and the tune term that pulls the
edits' HOG (and LBP) statistics towards real smiles' (``[tune] w_stat``, ``stat_lbp``)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")
from training.hog_stats import N_HOG, N_LBP, StatMatch, feature_weights, soft_hog, soft_lbp, stat_features, window_grey  # noqa: E402
from training.realism import LBP_BINS, LUMA, PATCH, _hog_lbp, lower_face  # noqa: E402


def _windows(n=6, seed=0):
    """Grey windows with edges and shading at the realism test's patch size, float32 0…255 [N,H,W]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = cv2.GaussianBlur(rng.normal(128, 40, PATCH).astype(np.float32), (0, 0), 2.0)
        cv2.ellipse(g, (int(rng.integers(25, 55)), int(rng.integers(15, 35))), (int(rng.integers(8, 25)), int(rng.integers(3, 9))),
                    float(rng.integers(0, 30)), 0, 360, float(rng.integers(20, 240)), -1)
        out.append(np.clip(g, 0, 255))
    return np.stack(out)


def test_the_soft_hog_is_the_realism_tests_hog_with_shared_bins():
    g = _windows()
    want = np.stack([_hog_lbp(w)[:N_HOG] for w in g])  # the HOG part of the test's features
    got = soft_hog(torch.from_numpy(g)[:, None]).numpy()
    assert got.shape == want.shape
    for a, b in zip(got, want):
        assert np.corrcoef(a, b)[0, 1] > 0.9
    flat = soft_hog(torch.full((1, 1, *PATCH), 90.0)).numpy()  # no gradient, no histogram
    assert np.abs(flat).max() < 1e-3


def test_the_soft_lbp_is_the_realism_tests_lbp_histograms():
    rng = np.random.default_rng(5)
    g = np.clip(_windows(8, seed=4) + rng.normal(0, 6, (8, *PATCH)), 0, 255).astype(np.float32)
    want = np.stack([_hog_lbp(w)[N_HOG:] for w in g])  # the LBP part of the test's features (of the rounded window)
    assert want.shape[1] == N_LBP
    sharp = soft_lbp(torch.from_numpy(np.round(g))[:, None], tau=0.02).numpy()
    assert np.abs(sharp - want).max() < 0.02  # nearly the test's own histograms once the window is rounded
    x = torch.from_numpy(g)[:, None].requires_grad_(True)
    soft = soft_lbp(x)  # the float window, at the temperature the term uses
    for a, b in zip(soft.detach().numpy(), want):
        assert np.corrcoef(a, b)[0, 1] > 0.98
    assert np.allclose(soft.detach().numpy().reshape(8, -1, LBP_BINS).sum(-1), 1.0, atol=1e-4)  # a histogram per cell
    soft[:, 8::LBP_BINS].sum().backward()  # more "all neighbours as bright" (flat or a peak) ...
    assert float(x.grad.abs().sum()) > 0.0


def test_the_feature_weights_share_the_distance_between_hog_and_lbp():
    plain = feature_weights(True, 0.0)
    assert plain.shape == (2 * N_HOG,) and torch.allclose(plain, torch.full_like(plain, (2 * N_HOG) ** -0.5))
    w = feature_weights(True, 0.3)
    assert w.shape == (2 * (N_HOG + N_LBP),)
    lbp = torch.cat([w[N_HOG : N_HOG + N_LBP], w[-N_LBP:]])
    assert abs(float(lbp.square().sum()) - 0.3) < 1e-5 and abs(float(w.square().sum()) - 1.0) < 1e-5
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    assert stat_features(x, True, True).shape[1] == len(w) and stat_features(x, False, True).shape[1] == N_HOG + N_LBP
    with pytest.raises(ValueError, match="stat_lbp"):
        feature_weights(True, 1.0)


def test_the_window_is_the_realism_tests_lower_face():
    rng = np.random.default_rng(1)
    crops = cv2.GaussianBlur(rng.integers(0, 256, (256, 256, 3)).astype(np.uint8), (0, 0), 3.0)[None]
    from training.nets import network_input

    got = window_grey(network_input(crops).float())[0, 0].numpy()
    want = lower_face(crops)[0] @ LUMA
    assert got.shape == PATCH and np.abs(got - want).mean() < 2.0


def test_the_mean_term_is_zero_at_the_reals_mean_and_grows_with_a_shift():
    rng = np.random.default_rng(2)
    reals = torch.from_numpy(rng.normal(0.0, 1.0, (200, 30)).astype(np.float32))
    sm = StatMatch(reals, decay=0.0)
    lam = torch.full((4,), 2.0)
    at_mean = float(sm.loss(reals.mean(0).repeat(4, 1), lam))
    shifted = float(sm.loss(reals.mean(0).repeat(4, 1) + 0.5, lam))
    assert at_mean < 1e-6 and shifted > 0.2


def test_the_mmd_term_prefers_real_looking_features_and_reaches_the_pixels():
    rng = np.random.default_rng(3)
    reals = torch.from_numpy(rng.normal(0.0, 1.0, (300, 40)).astype(np.float32))
    sm = StatMatch(reals, kind="mmd")
    lam = torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    like = torch.from_numpy(rng.normal(0.0, 1.0, (6, 40)).astype(np.float32))
    assert float(sm.loss(like, lam)) < float(sm.loss(like + 1.0, lam)) < float(sm.loss(like + 3.0, lam))
    same = like[:1].repeat(6, 1)  # six copies of one face: the term pushes them apart
    assert float(sm.loss(same, lam)) > float(sm.loss(like, lam))
    x = torch.zeros(2, 3, 256, 256)
    x[:, :, 170:200, 90:170] = 0.8
    x.requires_grad_(True)
    feats = stat_features(x)
    bank = StatMatch(torch.from_numpy(rng.normal(0.0, 0.05, (50, feats.shape[1])).astype(np.float32)) + feats.detach().mean(0),
                     kind="mmd")
    bank.loss(feats, torch.tensor([2.0, 2.0])).backward()
    assert float(x.grad.abs().sum()) > 0.0
    with pytest.raises(ValueError, match="stat_kind"):
        StatMatch(reals, kind="median")


def test_the_linear_critic_learns_the_edits_direction_and_its_term_pulls_them_back():
    """``stat_kind = "linear"``: the critic learns which way the edits differ from real smiles, its
    log-odds on the edits rise, and descending the term moves the edits back to the reals."""
    torch.manual_seed(0)
    reals = torch.randn(400, 20)
    sm = StatMatch(reals, kind="linear", linear_lr=0.05)
    shift = torch.zeros(20)
    shift[3] = 2.0
    x = (torch.randn(12, 20) + shift).requires_grad_(True)
    lam = torch.ones(12)
    first = float(sm.loss(x.detach(), lam))
    for _ in range(30):
        sm.loss(x.detach(), lam)
    learnt = float(sm.loss(x.detach(), lam))
    assert learnt > first > 0.6  # softplus(0) = log 2 before it learns, more once it tells them apart
    w = sm.critic[0].detach()
    assert int(w[:-1].abs().argmax()) == 3 and float(w[3]) > 0
    assert float(sm.critic[1].detach().abs().sum()) == 0.0  # the other band saw no edits
    assert len(sm.buffer[0]) == 240 and 1 not in sm.buffer  # the latest edits only (31 batches of 12 seen)
    for _ in range(200):
        g, = torch.autograd.grad(sm.loss(x, lam), x)
        with torch.no_grad():
            x -= 0.5 * g
    assert abs(float(x.detach()[:, 3].mean())) < 0.5
    state = sm.state()
    again = StatMatch(reals, kind="linear")
    again.load(state)
    assert torch.equal(again.critic[0].detach(), sm.critic[0].detach())


def test_a_hidden_box_does_not_count_in_the_features():
    """``[tune] stat_hide``: whatever is drawn inside the box, the features are the same; outside it
    they still see the face."""
    x = torch.zeros(2, 3, 256, 256)
    x[1, :, 170:200, 90:170] = 0.8  # a bright mouth inside the box on the second face only
    box = (0.30, 0.62, 0.70, 0.84)
    hidden = stat_features(x, lbp=True, hide=box)
    torch.testing.assert_close(hidden[0], hidden[1])
    assert float((stat_features(x, lbp=True)[0] - stat_features(x, lbp=True)[1]).abs().max()) > 0.01
    x[1, :, 230:240, 60:80] = 0.8  # below the box, inside the window
    assert float((stat_features(x, lbp=True, hide=box)[0] - stat_features(x, lbp=True, hide=box)[1]).abs().max()) > 0.01
    assert torch.equal(x[1, :, 170:200, 90:170], torch.full((3, 30, 80), 0.8))  # the input itself is left as it was


def test_a_tuning_run_logs_the_term_only_from_stat_from_and_needs_no_discriminator(tmp_path):
    from smilecore.registry import resolve_model
    from test_training_tune import _tiny_cache
    from training import __main__ as training_main

    model = str(resolve_model(None))
    cfg, _ = _tiny_cache(tmp_path, 'w_stat = 1.0\nstat_kind = "mmd"\nw_adv = 0.0\nstat_reals = 4\nlam = [1.0, 2.0]\n'
                                   'neg_share = 0.0\nparts = ["net"]\nstat_from = 1.0\nstat_lbp = 0.3\n')
    assert training_main.main(["tune", "--config", str(cfg), "--model", model, "--name", "s", "--steps", "20"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "cache" / "tune" / "s" / "log.jsonl").read_text().splitlines()]
    assert "stat" in logged[-1] and "d" not in logged[-1] and "adv" not in logged[-1]
    text = cfg.read_text().replace("stat_from = 1.0", "stat_from = 3.0")
    cfg.write_text(text)
    assert training_main.main(["tune", "--config", str(cfg), "--model", model, "--name", "s2", "--steps", "20"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "cache" / "tune" / "s2" / "log.jsonl").read_text().splitlines()]
    assert "stat" not in logged[-1] and "anchor" in logged[-1]


def test_anchor_below_holds_the_faces_the_stats_term_leaves_out_harder(tmp_path):
    from smilecore.registry import resolve_model
    from test_training_tune import _tiny_cache
    from training import __main__ as training_main

    model = str(resolve_model(None))
    anchors = []
    for k, below in enumerate((1.0, 100.0)):
        cfg, _ = _tiny_cache(tmp_path / str(k), 'w_stat = 1.0\nstat_kind = "mmd"\nw_adv = 0.0\nstat_reals = 4\n'
                                                'lam = [0.5, 2.0]\nneg_share = 0.0\nparts = ["net"]\nstat_from = 1.25\n'
                                                f"anchor_below = {below}\n")
        assert training_main.main(["tune", "--config", str(cfg), "--model", model, "--name", "a", "--steps", "20"]) == 0
        log = (tmp_path / str(k) / "cache" / "tune" / "a" / "log.jsonl").read_text().splitlines()
        anchors.append(json.loads(log[-1])["anchor"])
    assert anchors[1] > 2 * anchors[0] > 0.0
