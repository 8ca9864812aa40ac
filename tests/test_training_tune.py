"""``python -m training tune`` and what it stands on: the shipped model's smile network rebuilt in
PyTorch from its file (training/onnx_weights.py), the whole merged model as one module, tuned
weights written back, and grey fills in grey photos."""
import numpy as np
import pytest

from smilecore import contract
from smilecore.model import SmileModel
from smilecore.registry import resolve_model

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from training.losses import composite  # noqa: E402
from training.mouth_attach import NET_MASK  # noqa: E402
from training.mouth_net import MouthFill, MouthNet  # noqa: E402
from training.nets import keep_colour  # noqa: E402
from training.onnx_weights import net_from_onnx, write_net  # noqa: E402
from training.tune import MergedModel, lower_face  # noqa: E402

S = 256


@pytest.fixture(scope="module")
def default_path():
    return resolve_model(None)


@pytest.fixture(scope="module")
def merged(default_path):
    return MergedModel(default_path).eval()


def _faces(n=2, seed=0):
    """Random faces in colour (uint8 [N,S,S,3]) and the network input."""
    from training.nets import network_input

    crops = np.random.default_rng(seed).integers(0, 256, (n, S, S, 3), dtype=np.uint8)
    return crops, network_input(crops)


def _net_outputs(path, crops, lam):
    """The file's outputs and the smile network's own mask (renamed inside a merged graph)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m = onnx.load(str(path))
    m.graph.output.append(helper.make_tensor_value_info(NET_MASK, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    from smilecore.network_io import to_network_input

    names = [o.name for o in sess.get_outputs()]
    feed = {contract.INPUT_FACE: to_network_input(crops), contract.INPUT_STRENGTH: np.full((len(crops), 1), lam, np.float32)}
    return dict(zip(names, sess.run(names, feed)))


def test_the_smile_network_comes_back_from_the_file_exactly(default_path, merged):
    crops, x = _faces()
    for lam in (-1.0, 1.0, 2.0, 3.5):  # 3.5: past the knee, where the strength saturates
        want = _net_outputs(default_path, crops, lam)
        with torch.no_grad():
            mask, flow = merged.mask_flow(x, torch.full((2, 1), lam))
        assert np.abs(mask.numpy() - want[NET_MASK]).max() < 1e-4
        assert np.abs(flow.numpy() - want[contract.OUTPUT_FLOW]).max() < 1e-3
        assert np.abs(want[contract.OUTPUT_FLOW]).max() > 1.0  # the comparison is not between zeros


def test_the_merged_module_edits_as_the_engine_composites_the_file(default_path, merged):
    crops, x = _faces(seed=1)
    model = SmileModel(default_path)
    for lam in (1.0, 2.0):
        o = model.run(crops, lam)
        want = composite(x, torch.from_numpy(o.rgb), torch.from_numpy(o.mask), torch.from_numpy(o.flow), torch.from_numpy(o.shade))
        with torch.no_grad():
            got, _, _ = merged(x, torch.full((2, 1), lam))
        assert (got - want).abs().max().item() * 127.5 < 0.05  # a twentieth of a grey level
        assert (got - x).abs().max().item() > 0.2  # and the edit is not nothing


def test_tuned_weights_go_back_into_the_file_and_only_there(default_path, tmp_path):
    net, wmap = net_from_onnx(default_path)
    same = tmp_path / "same.onnx"
    write_net(net, wmap, default_path, same)
    crops, _ = _faces(seed=2)
    a, b = _net_outputs(default_path, crops, 2.0), _net_outputs(same, crops, 2.0)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # untouched weights: the same file's outputs, bit for bit
    with torch.no_grad():
        net.heads.flow.bias += torch.tensor([1.0, 0.0])  # a tuned network: its flow moves right everywhere
        bn = net.stem[1]
        bn.weight *= 1.1  # a learned batch-norm scale is folded into the convolution
    tuned = tmp_path / "tuned.onnx"
    write_net(net, wmap, default_path, tuned)
    c = _net_outputs(tuned, crops, 2.0)
    assert not np.array_equal(a[contract.OUTPUT_FLOW], c[contract.OUTPUT_FLOW])
    back, _ = net_from_onnx(tuned)
    from training.nets import network_input

    x = network_input(crops)
    with torch.no_grad():
        f1 = net.features(torch.nn.functional.avg_pool2d(x, 2), torch.full((2, 1), 2.0))
        f2 = back.features(torch.nn.functional.avg_pool2d(x, 2), torch.full((2, 1), 2.0))
    assert (f1 - f2).abs().max().item() < 2e-2 * f1.abs().max().item()  # float16 storage
    # and the graph, the mouth network and the metadata are the file's own
    g0, g1 = onnx.load(str(default_path)), onnx.load(str(tuned))
    assert [n.op_type for n in g0.graph.node] == [n.op_type for n in g1.graph.node]
    assert {p.key: p.value for p in g0.metadata_props} == {p.key: p.value for p in g1.metadata_props}
    mouth0 = {t.name: t.raw_data for t in g0.graph.initializer if t.name.startswith("mouth/")}
    mouth1 = {t.name: t.raw_data for t in g1.graph.initializer if t.name.startswith("mouth/")}
    assert mouth0 == mouth1 and mouth0


def test_weights_are_not_written_into_another_network(default_path, tmp_path):
    from fixture_model import build_fixture_model

    net, wmap = net_from_onnx(default_path)
    other = tmp_path / "other.onnx"
    build_fixture_model(other)
    with pytest.raises(ValueError, match="not the network"):
        write_net(net, wmap, other, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_the_export_carries_the_tuned_shade_field(merged, tmp_path):
    from onnx import numpy_helper

    with torch.no_grad():
        merged.shade_delta.fill_(0.05)
    try:
        out = tmp_path / "t.onnx"
        merged.export(out, "9.9.9", "test")
        field = next(numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer if t.name == "shade_field")
        assert np.allclose(field, merged.field.numpy() + 0.05, atol=1e-5)
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert meta[contract.META_MODEL_VERSION] == "9.9.9" and meta["smile.tune"] == "test"
    finally:
        with torch.no_grad():
            merged.shade_delta.zero_()


def test_a_grey_photo_gets_a_grey_mouth():
    torch.manual_seed(0)
    fill = MouthFill(MouthNet(8)).eval()
    mask = torch.zeros(1, 1, S, S)
    mask[:, :, 170:182, 100:160] = 1.0
    grey = torch.rand(1, 1, S, S).expand(1, 3, S, S) * 2 - 1
    colour = torch.rand(1, 3, S, S) * 2 - 1
    with torch.no_grad():
        g, region = fill(grey, mask, torch.zeros(1, 2, S, S))
        c, _ = fill(colour, mask, torch.zeros(1, 2, S, S))
    inside = region[0, 0] > 0.5
    assert inside.sum() > 500
    assert (g[0, 0] - g[0, 2])[inside].abs().max().item() < 1e-6  # no tint at all
    assert (c[0, 0] - c[0, 2])[inside].abs().max().item() > 1e-3  # a colour photo keeps the network's colours
    # the rule: a drawn picture keeps the face's share of colour
    drawn = torch.rand(1, 3, 8, 8)
    assert torch.allclose(keep_colour(drawn, colour), drawn, atol=1e-6)


def test_the_discriminator_sees_the_realism_tests_window():
    from training.realism import WINDOW

    x = torch.full((1, 3, S, S), -1.0)
    x0, y0, x1, y1 = (int(round(f * S)) for f in WINDOW)
    x[:, :, y0:y1, x0:x1] = 1.0
    assert lower_face(x).min().item() == pytest.approx(1.0, abs=1e-5)  # all of it inside the window
    x[:, :, y0:y1, x0:x1] = -1.0
    x[:, :, :y0] = 1.0
    assert lower_face(x).max().item() == pytest.approx(-1.0, abs=1e-5)  # nothing above it


def _tiny_cache(tmp_path, tune: str = "") -> tuple:
    """A prepared cache of 8 flat faces (half with teeth showing) and a config reading it, with
    ``tune`` added to its ``[tune]`` table: (config path, crops)."""
    cv2 = pytest.importorskip("cv2")
    from test_training_data import _mean_shape

    n = 8
    lm = _mean_shape().astype(np.float32)
    crops = np.empty((n, S, S, 3), np.uint8)
    for i in range(n):
        crops[i] = (170, 120 + 5 * i, 100)
        cv2.fillPoly(crops[i], [np.round(lm[48:60]).astype(np.int32)], (150, 60, 70))
        if i % 2:
            cv2.fillPoly(crops[i], [np.round(lm[60:68]).astype(np.int32)], (235, 235, 230))
    pdir = tmp_path / "cache" / "prepared"
    pdir.mkdir(parents=True)
    np.save(pdir / "crops_256.npy", crops)
    np.savez(pdir / "index.npz", source=np.full(n, "expressions"), person=np.array([f"p{i}" for i in range(n)]),
             label=np.array([0, 1] * 4, np.int8), lm68=np.repeat(lm[None], n, axis=0), gray=np.zeros(n, bool),
             face_px=np.full(n, 200, np.int16), split=np.full(n, "train"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                   "[tune]\nbatch = 2\nd_warmup = 1\nsnapshot_every = 2\nthreads = 1\nlr = 1e-3\n" + tune)
    return cfg, crops


def test_a_tuning_run_steps_resumes_keeps_snapshots_and_exports(tmp_path, default_path, capsys):
    """``python -m training tune`` on a tiny prepared cache: it trains, checkpoints, resumes where it
    stopped, keeps snapshots, and exports a model whose network moved and whose graph is the source's."""
    import json

    from training import __main__ as training_main

    cfg, crops = _tiny_cache(tmp_path)
    args = ["tune", "--config", str(cfg), "--model", str(default_path), "--name", "t"]
    assert training_main.main(args + ["--steps", "2"]) == 0
    run = tmp_path / "cache" / "tune" / "t"
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 2 and (run / "step-000002.pt").exists()
    assert training_main.main(args + ["--steps", "3", "--resume"]) == 0
    assert "from step 2" in capsys.readouterr().out
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3
    out = tmp_path / "tuned.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "t", "--export", str(out), "--version", "9.0.0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 3
    meta = SmileModel(out).meta
    assert meta[contract.META_MODEL_VERSION] == "9.0.0" and "3 steps" in meta["smile.tune"]
    assert "Model 9.0.0" in out.with_suffix(".md").read_text()
    face = crops[:1]
    assert not np.array_equal(_net_outputs(out, face, 2.0)[contract.OUTPUT_FLOW], _net_outputs(default_path, face, 2.0)[contract.OUTPUT_FLOW])
    snap = tmp_path / "snap.onnx"  # a snapshot exports too, but does not resume
    assert training_main.main(["tune", "--config", str(cfg), "--name", "t", "--step", "2", "--export", str(snap), "--version", "9.0.1"]) == 0
    assert "2 steps" in SmileModel(snap).meta["smile.tune"]


def test_a_run_that_tunes_the_mouth_network_changes_only_its_weights(tmp_path, default_path):
    """``[tune] parts = ["mouth"]``: the mouth network learns in the inference domain (the openings
    the warp makes); the exported file carries its new weights under their own names and types,
    and the smile network, the shade and the flow stay exactly the source's."""
    import onnx
    from onnx import numpy_helper

    from training import __main__ as training_main
    from training.mouth_attach import PREFIX

    cfg, crops = _tiny_cache(tmp_path, 'parts = ["mouth"]\nw_adv = 1.0\ndisc_window = [0.3, 0.62, 0.7, 0.84]\n'
                                       "disc_size = [28, 51]\nneg_share = 0.0\n")
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "m", "--steps", "2"]) == 0
    out = tmp_path / "mouth.onnx"
    (tmp_path / "val.json").write_text('{"split": "val", "faces": 3, "markdown": "| realism | 0.123 |"}')
    (tmp_path / "fail.md").write_text("- teeth too dark on one face")
    assert training_main.main(["tune", "--config", str(cfg), "--name", "m", "--export", str(out), "--version", "9.0.2",
                               "--metrics", str(tmp_path / "val.json"), "--failures", str(tmp_path / "fail.md")]) == 0
    assert "mouth network tuned for 2 steps" in SmileModel(out).meta["smile.tune"]
    card = out.with_suffix(".md").read_text()
    assert card.startswith("# mouth 9.0.2") and "| realism | 0.123 |" in card and "teeth too dark on one face" in card
    from smilecore.digest import file_sha256
    assert file_sha256(out) in card
    g0, g1 = onnx.load(str(default_path)), onnx.load(str(out))
    a = {t.name: numpy_helper.to_array(t) for t in g0.graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in g1.graph.initializer}
    assert a.keys() == b.keys() and [n.op_type for n in g0.graph.node] == [n.op_type for n in g1.graph.node]
    moved = [k for k in a if not np.array_equal(a[k], b[k])]
    assert moved and all(k.startswith(PREFIX + "net.") for k in moved)
    assert all(a[k].dtype == b[k].dtype for k in moved)
    face = crops[1:2]
    o0, o1 = _net_outputs(default_path, face, 2.0), _net_outputs(out, face, 2.0)
    np.testing.assert_array_equal(o0[contract.OUTPUT_FLOW], o1[contract.OUTPUT_FLOW])
    np.testing.assert_array_equal(o0[contract.OUTPUT_MASK], o1[contract.OUTPUT_MASK])
    assert np.abs(o0[contract.OUTPUT_RGB] - o1[contract.OUTPUT_RGB]).max() > 1e-4  # the mouth it draws moved


def test_tune_refuses_parts_it_does_not_know(tmp_path, default_path, capsys):
    from training import __main__ as training_main

    cfg, _ = _tiny_cache(tmp_path, 'parts = ["teeth"]\n')
    with pytest.raises(SystemExit, match="parts must name some of net, above, band, shade, mouth"):
        training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "x", "--steps", "1"])


def test_film_units_above_one_change_the_strong_edits_and_leave_lambda_one_bit_identical(tmp_path, default_path):
    """``[tune] parts = ["above"]`` (training/film_above.py): only new FiLM units that are zero up to
    λ = 1 learn. The export's FiLM weights are wider, every other initializer is the source's, and
    its outputs are the source's exactly at λ ≤ 1 and different at λ = 2."""
    import onnx
    from onnx import numpy_helper

    from training import __main__ as training_main
    from training.film_above import THRESHOLDS

    cfg, crops = _tiny_cache(tmp_path, 'parts = ["above"]\nlam = [1.8, 2.5]\nneg_share = 0.0\n')
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "a", "--steps", "3"]) == 0
    out = tmp_path / "above.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "a", "--export", str(out), "--version", "9.0.3"]) == 0
    assert "FiLM units above" in SmileModel(out).meta["smile.tune"]
    a = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(default_path)).graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    assert a.keys() == b.keys()
    wider = [k for k in a if a[k].shape != b[k].shape]
    assert wider and all(len(THRESHOLDS) in {x - y for x, y in zip(b[k].shape, a[k].shape)} for k in wider)
    assert all(np.array_equal(a[k], b[k]) for k in a if k not in wider)
    net, _ = net_from_onnx(out)
    assert net.cfg.film_hidden == net_from_onnx(default_path)[0].cfg.film_hidden + len(THRESHOLDS)
    face = crops[1:3]
    for lam in (-1.0, 0.5, 1.0):
        o0, o1 = _net_outputs(default_path, face, lam), _net_outputs(out, face, lam)
        for k in o0:
            np.testing.assert_array_equal(o0[k], o1[k])
    o0, o1 = _net_outputs(default_path, face, 2.0), _net_outputs(out, face, 2.0)
    assert np.abs(o0[contract.OUTPUT_FLOW] - o1[contract.OUTPUT_FLOW]).max() > 1e-3
    # held from the network's strength 1.25 on (--hold-above): the same edits up to it, others above it
    held = tmp_path / "held.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "a", "--export", str(held), "--version", "9.0.5",
                               "--hold-above", "1.25"]) == 0
    assert "held from strength 1.25 on" in SmileModel(held).meta["smile.tune"]
    for lam in (1.0, 1.25):
        o1, o2 = _net_outputs(out, face, lam), _net_outputs(held, face, lam)
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
    o1, o2 = _net_outputs(out, face, 2.0), _net_outputs(held, face, 2.0)
    assert np.abs(o1[contract.OUTPUT_FLOW] - o2[contract.OUTPUT_FLOW]).max() > 1e-4
    for bad in (["--hold-above", "1.7"], ["--hold-above", "2", "--model", str(default_path), "--steps", "1"]):
        with pytest.raises(SystemExit, match="hold-above"):
            training_main.main(["tune", "--config", str(cfg), "--name", "a"] + (["--export", str(tmp_path / "x.onnx"), "--version", "9"]
                                                                              if "--steps" not in bad else []) + bad)


def test_film_units_of_a_band_change_lambda_one_and_leave_the_weak_and_strong_edits(tmp_path, default_path):
    """``[tune] parts = ["band"]`` (training/film_above.py): three FiLM units whose tied output weights
    make a hat over λ = 0.5–1.5 learn. The export's outputs are the source's exactly at λ ≤ 0.5, to
    float rounding at λ ≥ 1.5, and different at λ = 1; its weights stay tied."""
    from training import __main__ as training_main
    from training.film_above import BAND, films

    cfg, crops = _tiny_cache(tmp_path, 'parts = ["band"]\nlam = [0.8, 1.4]\nneg_share = 0.0\nw_stat = 1.0\nstat_kind = "linear"\n'
                                       'stat_reals = 4\nstat_from = 0.75\nstat_to = 1.5\nw_adv = 0.0\n')
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "b", "--steps", "3"]) == 0
    out = tmp_path / "band.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "b", "--export", str(out), "--version", "9.0.4"]) == 0
    told = SmileModel(out).meta["smile.tune"]
    assert "band λ = 0.5–1.5" in told and "logistic critic" in told and "below λ = 1.5" in told
    net, _ = net_from_onnx(out)
    first = net_from_onnx(default_path)[0].cfg.film_hidden
    assert net.cfg.film_hidden == first + len(BAND)
    for film in films(net):
        cols = film.mlp[2].weight[:, first:].detach()
        torch.testing.assert_close(cols[:, 1], -2.0 * cols[:, 0])
        torch.testing.assert_close(cols[:, 2], cols[:, 0])
    face = crops[1:3]
    for lam in (-1.0, 0.25, 0.5):
        o0, o1 = _net_outputs(default_path, face, lam), _net_outputs(out, face, lam)
        for k in o0:
            np.testing.assert_array_equal(o0[k], o1[k])
    for lam in (1.5, 2.0, 3.0):
        o0, o1 = _net_outputs(default_path, face, lam), _net_outputs(out, face, lam)
        for k in o0:
            np.testing.assert_allclose(o0[k], o1[k], atol=2e-4)
    o0, o1 = _net_outputs(default_path, face, 1.0), _net_outputs(out, face, 1.0)
    assert np.abs(o0[contract.OUTPUT_FLOW] - o1[contract.OUTPUT_FLOW]).max() > 1e-3


def test_a_band_is_a_hat_with_its_middle_half_way():
    from training.film_above import films, tie_band, widen_band
    from training.nets import MobileUNet

    with pytest.raises(ValueError, match="middle half-way"):
        widen_band(MobileUNet(), (0.5, 1.2, 1.5))
    net = MobileUNet()
    first = widen_band(net)
    film = films(net)[0]
    with torch.no_grad():
        film.mlp[2].weight[:, first:] = torch.randn(film.mlp[2].weight.shape[0], 3)
    tie_band(net, first)
    s = torch.tensor([[0.0], [0.5], [0.75], [1.0], [1.5], [2.0], [4.0]])
    hidden = film.mlp[1](film.mlp[0](s))[:, first:]
    got = hidden @ film.mlp[2].weight[:, first:].T
    assert got[[0, 1, 4, 5, 6]].abs().max().item() < 1e-5  # zero outside the band
    assert got[3].abs().max().item() > 0 and torch.allclose(got[2], got[3] / 2, atol=1e-5)  # a hat, its peak at 1


def test_a_round_of_units_held_above_a_strength_adds_there_what_it_adds_at_it():
    """``film_above.hold_above``: up to the strength it is held at the round's units are what they
    were, bit for bit; above it they add what they add at it, while the units before the round go on."""
    from training.film_above import films, hold_above, widen
    from training.nets import MobileUNet

    net = MobileUNet()
    first = widen(net)
    torch.manual_seed(0)
    with torch.no_grad():
        for film in films(net):
            film.mlp[2].weight[:, first:] = torch.randn(film.mlp[2].weight.shape[0], film.mlp[2].weight.shape[1] - first)
    s = torch.tensor([[0.0], [1.0], [1.3], [1.9], [2.0], [2.2], [2.5], [3.0], [4.0]])
    before = [film.mlp(s) for film in films(net)]
    own = [film.mlp[2](torch.cat([film.mlp[1](film.mlp[0](s))[:, :first], torch.zeros(len(s), film.mlp[2].weight.shape[1] - first)], 1))
           for film in films(net)]
    hold_above(net, first, 2.0)
    for film, b, o in zip(films(net), before, own):
        after = film.mlp(s)
        assert torch.equal(after[:5], b[:5])  # s ≤ 2: bit for bit
        round_at_2 = (b - o)[4]
        torch.testing.assert_close((after - o)[5:], round_at_2.expand(4, -1), atol=1e-5, rtol=1e-5)
        assert (b - after)[7].abs().max().item() > 0.1  # it did change above 2
    with pytest.raises(ValueError, match="one of its thresholds"):
        hold_above(net, first, 1.7)


def test_film_units_must_start_at_one():
    from training.film_above import widen
    from training.nets import MobileUNet

    with pytest.raises(ValueError, match="thresholds of 1 or more"):
        widen(MobileUNet(), (0.5, 1.5))


def test_the_discriminator_can_see_another_window_at_its_own_size():
    x = torch.full((1, 3, S, S), -1.0)
    w = (0.30, 0.62, 0.70, 0.84)
    x0, y0, x1, y1 = (int(round(f * S)) for f in w)
    x[:, :, y0:y1, x0:x1] = 1.0
    v = lower_face(x, w, (y1 - y0, x1 - x0))
    assert v.shape == (1, 1, y1 - y0, x1 - x0) and v.min().item() == pytest.approx(1.0, abs=1e-5)
    assert lower_face(x, w, (10, 20)).shape == (1, 1, 10, 20)


def test_snapshots_average_into_one_and_two_are_needed(tmp_path):
    from training.tune import average_snapshots

    run = tmp_path / "run"
    run.mkdir()
    for step, v in ((100, 1.0), (200, 2.0), (300, 6.0)):
        torch.save({"model": "m.onnx", "net": {"w": torch.full((2,), v), "n": torch.tensor(step)},
                    "mouth": {"c": torch.full((3,), -v)}, "shade_delta": torch.full((1, 1, 2, 2), v), "step": step},
                   run / f"step-{step:06d}.pt")
    mean, phrase = average_snapshots(run, 200)
    assert mean["step"] == 300 and "2 snapshots, steps 200–300" in phrase
    assert torch.equal(mean["net"]["w"], torch.full((2,), 4.0)) and torch.equal(mean["mouth"]["c"], torch.full((3,), -4.0))
    assert mean["net"]["n"].item() == 300  # counters are the last snapshot's, not averaged
    assert torch.equal(mean["shade_delta"], torch.full((1, 1, 2, 2), 4.0))
    mean, _ = average_snapshots(run, 100, 200)
    assert mean["step"] == 200 and torch.equal(mean["net"]["w"], torch.full((2,), 1.5))
    with pytest.raises(SystemExit, match="two snapshots or more"):
        average_snapshots(run, 300)


def test_snapshots_of_runs_with_other_seeds_join_the_mean(tmp_path):
    """``--with-runs``: the same steps of other runs from the same model are averaged in; a run
    missing a step, or tuned from another model, is refused in one line."""
    from training.tune import average_snapshots

    def snaps(name: str, values: dict, sha: str = "abc"):
        run = tmp_path / name
        run.mkdir()
        for step, v in values.items():
            torch.save({"model": "m.onnx", "model_sha256": sha, "net": {"w": torch.full((2,), v)}, "mouth": {"c": torch.zeros(1)},
                        "shade_delta": torch.full((1, 1, 2, 2), v), "step": step}, run / f"step-{step:06d}.pt")
        return run

    a = snaps("a", {100: 1.0, 200: 3.0})
    b = snaps("b", {100: 5.0, 200: 7.0, 300: 100.0})
    mean, phrase = average_snapshots(a, 100, None, (b,))
    assert torch.equal(mean["net"]["w"], torch.full((2,), 4.0)) and torch.equal(mean["shade_delta"], torch.full((1, 1, 2, 2), 4.0))
    assert "4 snapshots, steps 100–200 of runs a, b" in phrase
    c = snaps("c", {100: 0.0})
    with pytest.raises(SystemExit, match="run c has no snapshot of step 200"):
        average_snapshots(a, 100, None, (c,))
    d = snaps("d", {100: 0.0, 200: 0.0}, sha="other")
    with pytest.raises(SystemExit, match="another model"):
        average_snapshots(a, 100, None, (d,))


def test_a_run_resumes_from_a_moved_source_model_only_if_it_is_the_same_file(tmp_path, default_path):
    """A run records its source model's path and checksum: when the file has moved (a model no
    longer bundled), ``--model`` points at a copy; a different file, or none, is refused in one line."""
    import shutil

    from training import __main__ as training_main

    cfg, _ = _tiny_cache(tmp_path)
    src = tmp_path / "source.onnx"
    shutil.copy(default_path, src)
    args = ["tune", "--config", str(cfg), "--name", "t"]
    assert training_main.main(args + ["--model", str(src), "--steps", "1"]) == 0
    moved = tmp_path / "moved.onnx"
    src.rename(moved)
    with pytest.raises(SystemExit, match="which is gone.*pass --model"):
        training_main.main(args + ["--steps", "2", "--resume"])
    other = tmp_path / "other.onnx"
    other.write_bytes(moved.read_bytes()[:-1] + bytes([moved.read_bytes()[-1] ^ 1]))
    with pytest.raises(SystemExit, match="not the model the run was tuned from"):
        training_main.main(args + ["--steps", "2", "--resume", "--model", str(other)])
    assert training_main.main(args + ["--steps", "2", "--resume", "--model", str(moved)]) == 0
    assert torch.load(tmp_path / "cache" / "tune" / "t" / "last.pt", weights_only=False)["step"] == 2
    with pytest.raises(SystemExit, match="no model at"):
        training_main.main(["tune", "--config", str(cfg), "--name", "u", "--model", str(tmp_path / "nothing.onnx"), "--steps", "1"])


def test_the_anchor_holds_the_opening_harder_when_asked():
    """``[tune] hold_opening``: the anchor weighs a pixel 1 + hold inside the model's own opening (its
    mask above 0.05) grown by ``hold_margin`` pixels, 1 elsewhere; with hold 0, 1 everywhere."""
    from training.tune import anchor_weight

    mask = torch.zeros(2, 1, 32, 32)
    mask[0, 0, 10:14, 8:20] = 0.5  # an opening
    mask[1, 0, 10:14, 8:20] = 0.04  # below the threshold: no opening
    w = anchor_weight(mask, 9.0, 2)
    assert w.shape == mask.shape
    assert w[0, 0, 12, 12] == 10.0 and w[0, 0, 8, 6] == 10.0  # inside, and 2 px beyond its corner
    assert w[0, 0, 7, 12] == 1.0 and w[0, 0, 12, 22] == 1.0  # 3 px beyond its edges
    assert torch.all(w[1] == 1.0)
    assert anchor_weight(mask, 0.0, 2) == 1.0


def test_an_identity_term_is_logged_and_pulls_the_edit_back_towards_the_face(tmp_path, default_path):
    """``[tune] w_identity``: dlib's descriptor distance between each judged edit and its input enters
    the loss and the log; a run that weighs only it (no adversary, no anchor) moves the edits nearer
    their inputs in that distance."""
    import json

    pytest.importorskip("dlib")
    from training import __main__ as training_main
    from training.identity import FaceDescriptor, identity_distance
    from training.nets import network_input
    from training.tune import MergedModel

    cfg, crops = _tiny_cache(tmp_path, "w_identity = 30.0\nw_adv = 0.0\nw_anchor = 0.0\nw_rank = 0.0\nw_shade = 0.0\n"
                                       "lam = [2.0, 2.0]\nneg_share = 0.0\nparts = [\"net\"]\n")
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "i", "--steps", "20"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "cache" / "tune" / "i" / "log.jsonl").read_text().splitlines()]
    assert 0.0 < logged[-1]["identity"] < 1.0
    out = tmp_path / "id.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "i", "--export", str(out), "--version", "9.0.3"]) == 0
    assert "identity distance in the loss (weight 30)" in SmileModel(out).meta["smile.tune"]
    fd = FaceDescriptor()
    x = network_input(crops[::2])  # the faces without teeth showing: a mouth to open
    lam = torch.full((len(x), 1), 2.0)
    with torch.no_grad():
        own = fd(x)
        before = identity_distance(fd(MergedModel(default_path).eval()(x, lam)[0]), own)
        after = identity_distance(fd(MergedModel(out).eval()(x, lam)[0]), own)
    assert float(after.mean()) < float(before.mean())


def test_the_identity_term_leaves_out_edits_below_identity_from(tmp_path, default_path):
    import json

    pytest.importorskip("dlib")
    from training import __main__ as training_main

    cfg, _ = _tiny_cache(tmp_path, "w_identity = 1.0\nidentity_from = 2.5\nlam = [0.75, 2.0]\nneg_share = 0.0\nparts = [\"net\"]\n")
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "f", "--steps", "20"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "cache" / "tune" / "f" / "log.jsonl").read_text().splitlines()]
    assert logged and "anchor" in logged[-1] and "identity" not in logged[-1]


def test_a_derived_card_embeds_the_source_models_own_card_or_refuses(tmp_path, default_path):
    """The card of a model made from another embeds the source's card: the one beside it, or the
    bundled card only when that names the source file's checksum; otherwise one line, before anything
    is written."""
    import shutil
    from pathlib import Path

    from training import __main__ as training_main
    from training.export import source_card

    assert source_card(default_path).name == "MODEL_CARD.md"  # the bundled card is the default model's
    baseline = Path(__file__).resolve().parent.parent / "benchmarks" / "baseline" / "smile-mobileunet-1.3.0.onnx"
    assert source_card(baseline) == baseline.with_suffix(".md")
    stray = tmp_path / "other.onnx"
    shutil.copyfile(baseline, stray)  # another model, with no card beside it
    with pytest.raises(SystemExit, match="no card for other.onnx"):
        source_card(stray)
    cfg, _ = _tiny_cache(tmp_path)
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(default_path), "--name", "c", "--steps", "1"]) == 0
    out = tmp_path / "c.onnx"
    with pytest.raises(SystemExit, match="no card"):
        training_main.main(["tune", "--config", str(cfg), "--name", "c", "--export", str(out), "--version", "9.0.4",
                            "--base", str(stray)])
    assert not out.exists()


def test_a_derived_card_leaves_out_its_sources_evaluations_and_keeps_the_rest():
    """``training.shade.without_evaluations``: every evaluation section, at any level, up to the next
    heading of its level or above; what the models get wrong and the network's own card stay."""
    from training.shade import EVALUATION_TITLE, evaluation_sections, without_evaluations

    table = evaluation_sections([{"split": "val", "faces": 3, "markdown": "| λ | realism |\n|---|---|\n| 1 | 0.7 |"}])
    card = "\n".join(["# m 2", "intro", "## What it gets wrong", "gaps", *table, "## The source model (its card)",
                      "### What it gets wrong", "older gaps", f"### {EVALUATION_TITLE}: test split (3 faces)", "| 2 | 0.8 |",
                      "#### a table of its own", "0.9", "### The network", "recipe", "## Metrics (validation split)", "kept"])
    got = without_evaluations(card)
    assert "0.7" not in got and "0.8" not in got and "0.9" not in got and EVALUATION_TITLE not in got
    for kept in ("intro", "gaps", "older gaps", "### The network", "recipe", "## Metrics (validation split)", "kept"):
        assert kept in got
    assert without_evaluations(got) == got


def test_the_discriminator_can_see_the_fine_band_alone():
    """``[tune] disc_fine``: the window less its blur, so that flat light and smooth ramps vanish and
    an edge stays; 0 leaves the window as it is."""
    from training.tune import fine_band

    flat = torch.full((1, 1, 32, 48), 0.3)
    ramp = torch.linspace(-1, 1, 48).view(1, 1, 1, 48).expand(1, 1, 32, 48).contiguous()
    edge = torch.zeros(1, 1, 32, 48)
    edge[..., 16:, :] = 1.0
    assert torch.equal(fine_band(edge, 0.0), edge)
    assert fine_band(flat, 1.5).abs().max() < 1e-5
    assert fine_band(ramp, 1.5)[..., 6:-6].abs().max() < 1e-4  # a ramp is coarse (its ends see the replicated edge)
    f = fine_band(edge, 1.5)
    assert f[..., 14:18, :].abs().min() > 0.1 and f[..., :8, :].abs().max() < 1e-5 and f.shape == edge.shape


def test_a_tuning_run_holds_the_strong_edits_smile_logit_at_its_floor(tmp_path):
    """``[tune] w_floor``: with a classifier in the cache the run logs the floor term for edits at
    ``floor_from`` and above (and, with a floor no logit reaches, a positive one); with no edit that
    strong it logs none."""
    import json

    from smilecore.registry import resolve_model
    from training import __main__ as training_main
    from training.classifier import SmileClassifier

    model = str(resolve_model(None))
    floors = []
    for k, start in enumerate((1.0, 3.0)):
        cfg, _ = _tiny_cache(tmp_path / str(k), 'w_stat = 0.0\nw_adv = 0.0\nlam = [1.0, 2.0]\nneg_share = 0.0\nparts = ["net"]\n'
                                                f"w_rank = 0.0\nw_floor = 1.0\nsmile_floor = 50.0\nfloor_from = {start}\n")
        clf = SmileClassifier(widths=(4, 4, 4, 4))
        torch.save({"state": clf.state_dict(), "widths": [4, 4, 4, 4], "input_size": clf.input_size, "stats": {}},
                   tmp_path / str(k) / "cache" / "classifier.pt")
        assert training_main.main(["tune", "--config", str(cfg), "--model", model, "--name", "f", "--steps", "20"]) == 0
        log = (tmp_path / str(k) / "cache" / "tune" / "f" / "log.jsonl").read_text().splitlines()
        floors.append(json.loads(log[-1]).get("floor"))
    assert floors[0] is not None and floors[0] > 40.0
    assert floors[1] is None


def test_a_tuning_run_asks_the_weak_edits_to_read_as_a_smile(tmp_path):
    """``[tune] w_reach``: the run logs the reach term for edits from ``reach_low`` to ``reach_high``
    (with a share no edit reaches, a positive one) and none when no edit's λ lies in that band."""
    import json

    from smilecore.registry import resolve_model
    from training import __main__ as training_main

    model = str(resolve_model(None))
    reach = []
    for k, low in enumerate((0.75, 3.0)):
        cfg, _ = _tiny_cache(tmp_path / str(k), 'w_stat = 0.0\nw_adv = 0.0\nlam = [1.0, 2.0]\nneg_share = 0.0\nparts = ["net"]\n'
                                                f"w_rank = 0.0\nw_reach = 1.0\nreach_share = 50.0\nreach_low = {low}\nreach_high = 3.5\n")
        assert training_main.main(["tune", "--config", str(cfg), "--model", model, "--name", "r", "--steps", "20"]) == 0
        log = (tmp_path / str(k) / "cache" / "tune" / "r" / "log.jsonl").read_text().splitlines()
        reach.append(json.loads(log[-1]).get("reach"))
    assert reach[0] is not None and reach[0] > 10.0  # 0.4 + 0.6 · 50 · λ is far above any edit's level
    assert reach[1] is None
