"""The crease network (training/crease.py): a per-face fine log gain of the lower face, appended to
a model's graph after the transported shade, learnt by ``python -m training tune`` with
``parts = ["crease"]``."""
import numpy as np
import pytest

from smilecore import contract
from smilecore.model import SmileModel
from smilecore.registry import resolve_model

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from training.crease import LIMIT, PREFIX, REGION, CreaseNet, crease_from_model, put_crease  # noqa: E402

S = 256


def _inputs(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    face = torch.rand(n, 3, S, S, generator=g) * 2 - 1
    rgb = torch.rand(n, 3, S, S, generator=g) * 2 - 1
    mask = torch.zeros(n, 1, S, S)
    mask[:, :, 170:190, 100:156] = 1.0  # a painted mouth
    flow = torch.randn(n, 2, S, S, generator=g) * 2
    shade = torch.randn(n, 1, S, S, generator=g) * 0.1
    return face, rgb, mask, flow, shade


def _busy(net: CreaseNet, seed: int = 1) -> CreaseNet:
    """``net`` with its last convolution no longer zero (as after some learning)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.out.weight.copy_(torch.randn(net.out.weight.shape, generator=g) * 0.5)
        net.out.bias.fill_(0.2)
    return net


def test_a_new_crease_network_adds_nothing():
    face, rgb, mask, flow, shade = _inputs()
    with torch.no_grad():
        out = CreaseNet()(face, torch.full((2, 1), 2.0), rgb, mask, flow, shade)
    assert torch.equal(out, shade)


def test_it_shades_only_the_lower_face_off_the_mouth_within_its_limit_and_nothing_at_or_below_zero():
    face, rgb, mask, flow, shade = _inputs()
    net = _busy(CreaseNet()).eval()
    with torch.no_grad():
        for lam in (0.0, -1.0, -2.0):
            assert torch.equal(net(face, torch.full((2, 1), lam), rgb, mask, flow, shade), shade)
        half = net(face, torch.full((2, 1), 0.5), rgb, mask, flow, shade) - shade
        full = net(face, torch.full((2, 1), 2.0), rgb, mask, flow, shade) - shade
    x0, y0, x1, y1 = REGION
    inside = torch.zeros(S, S, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert full[..., ~inside].abs().max() == 0  # nothing outside the lower face
    assert full[mask.bool()].abs().max() == 0  # nothing on the painted mouth
    assert full.abs().max() > 0.05 and full.abs().max() <= LIMIT + 1e-6
    assert full[:, :, y0, :].abs().max() < 0.05 * full.abs().max()  # faded in at the region's edge
    assert 0 < half.abs().max() < full.abs().max()  # fading in from λ = 0 to 1


def test_the_crease_part_in_a_model_computes_what_pytorch_does_and_replaces_itself(tmp_path):
    """put_crease appends the part after the transport: the model's shade becomes the crease
    network's, nothing else changes, λ = 0 stays the source's to the bit; putting it again replaces it,
    and crease_from_model reads it back."""
    from training.nets import network_input

    src = resolve_model(None)
    model = onnx.load(str(src))
    net = _busy(CreaseNet()).eval()
    put_crease(model, net)
    out = tmp_path / "crease.onnx"
    onnx.save(model, str(out))
    crops = np.random.default_rng(0).integers(0, 256, (2, S, S, 3), dtype=np.uint8)
    a, b = SmileModel(src), SmileModel(out)
    for lam in (0.0, 1.0, 2.0):
        ra, rb = a.run(crops, lam), b.run(crops, lam)
        for name in ("rgb", "mask", "flow"):
            np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name))
        with torch.no_grad():
            want = net(network_input(crops), torch.full((2, 1), lam), torch.from_numpy(ra.rgb),
                       torch.from_numpy(ra.mask), torch.from_numpy(ra.flow), torch.from_numpy(ra.shade)).numpy()
        want = np.clip(want, -contract.SHADE_LIMIT, contract.SHADE_LIMIT)
        assert np.abs(rb.shade - want).max() < 1e-4
        if lam == 0.0:
            np.testing.assert_array_equal(ra.shade, rb.shade)
        else:
            assert np.abs(rb.shade - ra.shade).max() > 0.01
    n_nodes = len(model.graph.node)
    back = crease_from_model(model)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in net.state_dict().items())
    put_crease(model, _busy(CreaseNet(), seed=2))
    assert len(model.graph.node) == n_nodes and sum(i.name.startswith(PREFIX) for i in model.graph.initializer) == len(
        [i for i in onnx.load(str(out)).graph.initializer if i.name.startswith(PREFIX)])
    assert crease_from_model(onnx.load(str(src))) is None


def test_a_tuning_run_learns_a_crease_network_and_exports_it(tmp_path):
    """``[tune] parts = ["crease"]``: only the crease network learns (the file's smile network, mouth
    network and transport stay as they were), it is kept in snapshots and averages, and the export
    carries it as the graph's last part."""
    from test_training_tune import _net_outputs, _tiny_cache

    from training import __main__ as training_main

    src = resolve_model(None)
    cfg, crops = _tiny_cache(tmp_path, 'parts = ["crease"]\nw_adv = 1.0\nw_crease = 0.1\ncrease_lr_scale = 10.0\nneg_share = 0.0\n')
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(src), "--name", "c", "--steps", "4"]) == 0
    run = tmp_path / "cache" / "tune" / "c"
    snap = torch.load(run / "step-000004.pt", weights_only=False)
    assert "crease" in snap and snap["crease"]["out.weight"].abs().max() > 0
    out = tmp_path / "c.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "c", "--export", str(out), "--version", "9.1.0",
                               "--average", "2"]) == 0
    assert "crease network tuned for 4 steps" in SmileModel(out).meta["smile.tune"]
    g = onnx.load(str(out))
    assert g.graph.node[-1].name.startswith(PREFIX) and crease_from_model(g) is not None
    face = crops[1:2]
    o0, o1 = _net_outputs(src, face, 2.0), _net_outputs(out, face, 2.0)
    for name in (contract.OUTPUT_FLOW, contract.OUTPUT_MASK, contract.OUTPUT_RGB):
        np.testing.assert_array_equal(o0[name], o1[name])
    assert np.abs(o0[contract.OUTPUT_SHADE] - o1[contract.OUTPUT_SHADE]).max() > 0
