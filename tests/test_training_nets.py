"""Fast tests of the smile networks, their losses and the ONNX export (skipped without torch)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from benchmarks import baselines  # noqa: E402
from training import nets  # noqa: E402
from training.dataset import MIRROR_68, flip_face  # noqa: E402
from training.losses import (  # noqa: E402
    PatchDiscriminator,
    composite,
    mask_loss,
    mouth_region,
    mouth_rgb_loss,
    moved_points,
    smile_floor,
    smile_level,
    smile_ranking,
    smile_reach,
    ssim,
    warp,
)


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic non-trivial values (the heads start near zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return net.eval()


def test_mobile_unet_budget():
    net = nets.build_net("mobile_unet")
    params = nets.count_params(net)
    macs = nets.count_macs(net, 256)
    assert 0.5e6 < params <= 1.5e6
    assert 0.1e9 < macs < 0.7e9  # ~0.16 GMACs = 0.32 GFLOPs at 256²
    assert len(net.alphas) == len(net.cfg.widths) - 1
    assert all(abs(a - 0.5) < 1e-6 for a in net.alphas)  # α = sigmoid(0) at init


def test_count_macs_leaves_out_a_skipped_part():
    """The atlas heads are two 3×3 convs (2 and 1 outputs) on the decoder features: skipping them
    removes exactly their multiply-accumulates."""
    net = nets.build_net("mobile_unet", teeth_atlas=True)
    net.heads.use_atlas = True
    atlas = net.heads.atlas
    full, without = nets.count_macs(net, 128), nets.count_macs(net, 128, skip=atlas)
    cin = atlas.uv.in_channels
    assert 0 < full - without <= cin * 9 * 3 * 128 * 128  # at most the crop's resolution
    assert nets.count_macs(net, 128, skip=net) == 0


def test_baseline_param_counts():
    assert 50e6 < nets.count_params(baselines.build("pix2pix_unet")) < 60e6
    assert 28e6 < nets.count_params(baselines.build("standard_unet")) < 33e6
    assert 1.5e6 < nets.count_params(baselines.build("mobilenetv2_unet")) < 2.5e6
    with pytest.raises(ValueError, match="unknown architecture"):
        nets.build_net("standard_unet")  # training builds only the shipped architecture


@pytest.mark.parametrize("name,size", [("mobile_unet", 64), ("mobile_unet", 96), ("mobilenetv2_unet", 64), ("standard_unet", 32)])
def test_output_shapes_and_ranges(name, size):
    net = _randomise(baselines.build(name))
    x = torch.rand(2, 3, size, size) * 2 - 1
    rgb, mask, flow = net(x, torch.tensor([[1.0], [-2.0]]))
    assert rgb.shape == (2, 3, size, size)
    assert mask.shape == (2, 1, size, size)
    assert flow.shape == (2, 2, size, size)
    assert rgb.abs().max() <= 1.0
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert flow.abs().max() > 0  # randomised weights move pixels at λ ≠ 0


def test_pix2pix_shapes():
    net = baselines.Pix2PixUNet(ngf=8, levels=6).eval()
    rgb, mask, flow = net(torch.zeros(1, 3, 64, 64), torch.ones(1, 1))
    assert (rgb.shape, mask.shape, flow.shape) == ((1, 3, 64, 64), (1, 1, 64, 64), (1, 2, 64, 64))


@pytest.mark.parametrize("name", ["mobile_unet", "mobilenetv2_unet"])
def test_strength_zero_is_identity(name):
    net = _randomise(baselines.build(name), seed=3)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    rgb, mask, flow = net(x, torch.zeros(3, 1))
    assert torch.count_nonzero(mask) == 0
    assert torch.count_nonzero(flow) == 0
    assert torch.allclose(composite(x, rgb, mask, flow), x, atol=1e-5)  # grid_sample rounding only


def test_warp_matches_teacher_convention():
    """grid_sample warp == cv2.remap(src, x + dx, y + dy) with reflect-101 borders (the teacher's)."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((40, 48, 3)).astype(np.float32), (0, 0), 2)
    yy, xx = np.mgrid[0:40, 0:48].astype(np.float32)
    dx = 2.5 * np.sin(yy / 7.0)
    dy = -1.5 * np.cos(xx / 9.0)
    ref = cv2.remap(img, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    f = torch.from_numpy(np.stack([dx, dy]))[None]
    got = warp(t, f)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).max() < 1e-3


def test_mirror_map_is_an_involution():
    assert sorted(MIRROR_68.tolist()) == list(range(68))
    assert np.array_equal(MIRROR_68[MIRROR_68], np.arange(68))
    crop = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    lm = np.random.default_rng(2).random((68, 2)).astype(np.float32) * 31
    c2, l2 = flip_face(*flip_face(crop, lm))
    assert np.array_equal(c2, crop)
    assert np.allclose(l2, lm)
    # the image-left mouth corner (48) of the flipped face is the mirrored image-right corner (54)
    _, lf = flip_face(crop, lm)
    assert np.isclose(lf[48, 0], 31 - lm[54, 0])


def test_losses_behave():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    assert float(ssim(x, -x).mean()) < 0.5
    up = smile_ranking(torch.tensor([3.0, -3.0]), torch.tensor([0.0, 0.0]), torch.tensor([[1.0], [-1.0]]))
    wrong = smile_ranking(torch.tensor([-3.0, 3.0]), torch.tensor([0.0, 0.0]), torch.tensor([[1.0], [-1.0]]))
    assert float(up) == 0.0 and float(wrong) > 3.0
    d = PatchDiscriminator()
    logits, feats = d(mouth_region(torch.zeros(2, 3, 128, 128)))
    assert logits.shape[0] == 2 and logits.ndim == 4 and len(feats) == 3


def _mesh_face(width: float = 80.0, lift: float = 0.0) -> np.ndarray:
    """468 mesh points at the crop's centre with the eye corners 80 px apart, the mouth ``width`` wide
    and its corners ``lift`` px above the middle of the lips."""
    from smilecore import facemesh as fm

    p = np.tile(np.array([[128.0, 150.0]]), (468, 1))
    (a, b), (c, d) = fm.EYE_CORNERS
    p[a], p[b], p[c], p[d] = (78.0, 100.0), (108.0, 100.0), (148.0, 100.0), (178.0, 100.0)
    p[fm.MOUTH_CORNERS[0]] = (128.0 - width / 2, 180.0 - lift)
    p[fm.MOUTH_CORNERS[1]] = (128.0 + width / 2, 180.0 - lift)
    p[fm.LIP_MIDDLE[0]], p[fm.LIP_MIDDLE[1]] = (128.0, 178.0), (128.0, 182.0)
    return p


def test_smile_level_and_moved_points_are_the_engines_own():
    from smilecore import facemesh as fm

    rng = np.random.default_rng(0)
    faces = np.stack([_mesh_face(w, l) for w, l in ((64, 0), (80, 5), (90, 9))]) + rng.normal(0, 0.5, (3, 468, 2))
    ours = smile_level(torch.from_numpy(faces)).numpy()
    assert np.allclose(ours, fm.smile_level(faces), atol=1e-9)
    assert ours[0] < ours[1] < ours[2]
    # a smooth flow: the points move where the engine's own fixed-point steps put them
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    flow = np.stack([3.0 * np.sin(xx / 40.0), 2.0 * np.cos(yy / 30.0)]).astype(np.float32)
    pts = faces[1].astype(np.float32)[:40]
    got = moved_points(torch.from_numpy(pts)[None], torch.from_numpy(flow)[None])[0].numpy()
    assert np.abs(got - fm._moved(pts, flow)).max() < 1e-3
    assert np.abs(got - pts).max() > 1.0  # they did move


def test_smile_reach_asks_the_weak_edits_for_more_and_leaves_the_rest():
    from smilecore import facemesh as fm

    face = torch.from_numpy(_mesh_face(64, 0))[None].float()  # a neutral mouth: level about 0
    still = torch.zeros(1, 2, 256, 256, requires_grad=True)
    lam = torch.tensor([[1.0]])
    loss = smile_reach(face, still, lam, 0.5, 0.75, 1.5)
    # level 0 against the level that reads as half a smile: 0.4 + 0.6 · 0.5 = 0.7
    level0 = float(fm.smile_level(face.numpy())[0])
    assert float(loss.detach()) == pytest.approx(0.7 - level0, abs=1e-5)
    loss.backward()
    g = still.grad[0]
    (cl, cr) = fm.MOUTH_CORNERS
    x0, y0 = [int(round(v)) for v in face[0, cl].tolist()]
    x1, y1 = [int(round(v)) for v in face[0, cr].tolist()]
    # widening and lifting the corners lowers it: the output at the left corner must show the input further
    # right (flow x > 0 there: gradient < 0), at the right corner further left, both further down (flow y > 0)
    assert float(g[0, y0 - 1 : y0 + 2, x0 - 1 : x0 + 2].sum()) < 0 < float(g[0, y1 - 1 : y1 + 2, x1 - 1 : x1 + 2].sum())
    assert float(g[1, y0 - 1 : y0 + 2, x0 - 1 : x0 + 2].sum()) < 0
    # an edit that already reads as a typical smile, or one outside the band of λ, asks for nothing
    broad = torch.from_numpy(_mesh_face(96, 10))[None].float()
    assert float(smile_reach(broad, torch.zeros(1, 2, 256, 256), lam, 0.5, 0.75, 1.5)) == 0.0
    assert float(smile_reach(face, torch.zeros(1, 2, 256, 256), torch.tensor([[2.0]]), 0.5, 0.75, 1.5)) == 0.0


def test_smile_floor_holds_only_the_strong_edits_below_it():
    """A strong edit that rose far above its input but ends below "smiling" is still held (the rank
    term lets it go); weak edits and edits above the floor are not."""
    logit = torch.tensor([[-0.5], [3.0], [-4.0], [0.5]])
    lam = torch.tensor([[2.0], [2.0], [1.0], [1.5]])
    # faces 0 and 3 are strong and below the floor of 1: (1.5 + 0.5) / 3 strong faces
    assert float(smile_floor(logit, lam, 1.0, 1.5)) == pytest.approx((1.5 + 0.5) / 3)
    assert float(smile_ranking(logit[:1, 0], torch.tensor([-4.0]), lam[:1])) == 0.0  # what the rank term sees of face 0
    assert float(smile_floor(logit, lam, 1.0, 2.5)) == 0.0  # no edit that strong
    g = logit.clone().requires_grad_(True)
    smile_floor(g, lam, 1.0, 1.5).backward()
    assert g.grad[:, 0].tolist() == pytest.approx([-1 / 3, 0.0, 0.0, -1 / 3])


def test_mask_loss_does_not_reward_a_dead_mask():
    """A mask that is off everywhere must lose to one that covers the teacher's small mouth opening.

    With a plain mean L1 the all-zero mask scores 0.014 against 0.0 (it nearly wins, and the
    saturated sigmoid then stops learning); the balanced cross-entropy makes it clearly worse.
    """
    t = torch.zeros(4, 1, 64, 64)
    t[:, :, 40:44, 24:40] = 1.0  # ~1.6 % of the crop, like the teacher's mouth interior
    dead = torch.full_like(t, 1e-3)
    right = t.clamp(1e-3, 1 - 1e-3)
    blurry = torch.full_like(t, 0.5)
    assert float(mask_loss(right, t)) < 0.01
    assert float(mask_loss(dead, t)) > 1.0  # a plain mean L1 would give 0.016
    assert float(mask_loss(dead, t)) > 10 * float(mask_loss(right, t))
    assert float(mask_loss(blurry, t)) > float(mask_loss(right, t))
    # the gradient reaches a saturated logit (it vanishes for L1 through a saturated sigmoid)
    logit = torch.full_like(t, -9.0, requires_grad=True)
    mask_loss(torch.sigmoid(logit), t).backward()
    assert float(logit.grad[t > 0].abs().mean()) > 10 * float(logit.grad[t == 0].abs().mean())
    assert float(logit.grad[t > 0].abs().mean()) > 1e-4


def test_mouth_rgb_loss_only_looks_inside_the_teacher_mask():
    target = torch.zeros(2, 3, 32, 32)
    t_mask = torch.zeros(2, 1, 32, 32)
    t_mask[:, :, 10:14, 8:24] = 1.0
    rgb = torch.zeros_like(target)
    rgb[:, :, :5] = 1.0  # wrong only outside the mask
    assert float(mouth_rgb_loss(rgb, target, t_mask)) == 0.0
    rgb[:, :, 10:14, 8:24] = 0.5  # wrong by 0.5 inside
    assert float(mouth_rgb_loss(rgb, target, t_mask)) == pytest.approx(0.5)
    assert float(mouth_rgb_loss(rgb, target, torch.zeros_like(t_mask))) == 0.0  # no opening in the batch


def test_rgb_hidden_head_keeps_the_contract():
    net = _randomise(nets.build_net("mobile_unet", rgb_hidden=16), seed=4)
    assert nets.count_params(net) <= 1.5e6
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    rgb, mask, flow = net(x, torch.tensor([[2.0], [0.0]]))
    assert rgb.shape == (2, 3, 64, 64) and rgb.abs().max() <= 1.0
    assert torch.count_nonzero(mask[1]) == 0 and torch.count_nonzero(flow[1]) == 0
    assert torch.allclose(composite(x, rgb, mask, flow)[1], x[1], atol=1e-5)


def test_onnx_export_passes_contract(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from smilecore.model import SmileModel
    from training import export

    net = nets.build_net("mobile_unet")
    _randomise(net, seed=5)
    ckpt = tmp_path / "net.pt"
    # trained at 128²: the export wraps it in the ResolutionAdapter to serve 256² crops
    torch.save({"arch": "mobile_unet", "net_kwargs": {}, "state": net.state_dict(), "step": 7, "train_size": 128}, ckpt)
    out = tmp_path / "model.onnx"
    rc = export.main(["--checkpoint", str(ckpt), "--out", str(out), "--metrics", str(tmp_path / "none.json")])
    assert rc == 0
    model = SmileModel(out)  # the engine's contract check
    assert model.size == 256 and model.strength_range == (-2.0, 4.0)
    assert model.license == "research-non-commercial"
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    o = model.run(crops, np.array([0.0, 2.0], np.float32))
    assert not np.any(o.mask[0]) and not np.any(o.flow[0])  # λ = 0: exactly the identity
    assert np.abs(o.flow[1]).max() > 0
    card = out.with_suffix(".md").read_text()
    assert "research-non-commercial" in card and "sha256" in card


class _ConstantFlow(torch.nn.Module):
    def forward(self, face, strength):
        n, _, h, w = face.shape
        flow = torch.ones(n, 2, h, w) * strength[:, :, None, None]
        return torch.zeros(n, 3, h, w), torch.zeros(n, 1, h, w), flow


def test_resolution_adapter_scales_flow():
    ad = nets.ResolutionAdapter(_ConstantFlow(), 64, 128)
    rgb, mask, flow = ad(torch.zeros(2, 3, 128, 128), torch.tensor([[1.5], [0.0]]))
    assert rgb.shape == (2, 3, 128, 128) and mask.shape == (2, 1, 128, 128)
    assert torch.allclose(flow[0], torch.full((2, 128, 128), 3.0))  # 1.5 px at 64² = 3 px at 128²
    assert torch.count_nonzero(flow[1]) == 0
    with pytest.raises(ValueError):
        nets.ResolutionAdapter(_ConstantFlow(), 96, 128)


def test_export_rejects_missing_checkpoint(tmp_path, capsys):
    from training import export

    rc = export.main(["--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_committed_curriculum_parses_and_switches_where_documented():
    from training.config import ConfigError, Stage, load_config
    from training.schedule import stage_at
    from training.teacher import teacher_from_config

    cfg = load_config()
    t = cfg.train_recipe(gpu=False)
    stages = t.stages
    total = t.total_steps
    names = [s.name for s in stages]
    assert names == ["mild", "adversarial", "full", "teeth", "keep", "atlas"]
    switch = [next(k for k in range(total) if stage_at(stages, k, total) == i) for i in range(len(stages))]
    assert switch == [0, 2000, 3500, 5000, 6000, 6800] and total == 8600
    assert all(s.weights.rgb > 0 and s.weights.mask > 0 for s in stages)
    assert stages[0].weights.adv == 0 and stages[1].weights.adv > 0
    # teeth and keep override the teacher's donors; atlas draws its teeth
    assert [(s.keep_donors, s.donor_pool) for s in stages] == [(None, None)] * 3 + [(4, 1)] * 2 + [(None, None)]
    assert [s.smiler_p for s in stages] == [0.0] * 4 + [0.3, 0.3]
    assert [s.atlas for s in stages] == [False] * 5 + [True] and stages[-1].weights.uv > 0
    # the first stages take [teacher] as it is; teeth and keep override its donors
    assert all(s.teacher_config(cfg.teacher) == cfg.teacher for s in stages[:3])
    assert [(s.teacher_config(cfg.teacher).keep_donors, s.teacher_config(cfg.teacher).donor_pool) for s in stages[3:5]] == [(4, 1)] * 2
    drawn = teacher_from_config(stages[-1].teacher_config(cfg.teacher), cfg.donor_path, drawn=stages[-1].atlas)
    assert drawn.donors is not None and len(drawn.donors) == 1
    assert t.net["teeth_atlas"] is True
    # the GPU recipe: the whole curriculum at the shipped size, ending in the atlas stage too
    g = cfg.train_recipe(gpu=True)
    gpu_stages = g.stages
    assert [s.name for s in gpu_stages] == ["mild", "adversarial", "full", "atlas"]
    assert all(s.size == 256 for s in gpu_stages) and gpu_stages[-1].atlas and gpu_stages[-1].weights.uv > 0
    assert g.batch_size == 64 and g.net == t.net and g.ema_decay == t.ema_decay  # [train.gpu] merged over [train]
    with pytest.raises(ConfigError, match="bogus"):
        Stage.from_dict({"name": "x", "until": 1.0, "bogus": 1})
