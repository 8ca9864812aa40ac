"""The mouth network (training/mouth_net.py) and ``python -m training mouth-attach``: the mouth frame,
the fill, and the merged model that keeps the contract."""
from pathlib import Path

import numpy as np
import pytest

from fixture_model import build_fixture_model
from smilecore import contract
from smilecore.model import SmileModel

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from training.mouth import hole_mask, make_batch  # noqa: E402
from training.mouth_attach import attach, export_fill  # noqa: E402
from training.mouth_net import (  # noqa: E402
    GROW, PATCH_H, PATCH_W, REACH, SIGMA_PX, MouthFill, MouthNet, from_patch, grow_region, mouth_frame, to_patch,
)

S = 256


def _opening(x0=100, x1=160, y0=170, y1=182, value=1.0, n=1):
    m = torch.zeros(n, 1, S, S)
    m[:, :, y0:y1, x0:x1] = value
    return m


def test_the_frame_centres_on_the_opening_and_scales_with_its_width():
    for x0, x1, value in ((100, 160, 1.0), (80, 200, 1.0), (100, 160, 0.4)):
        theta = mouth_frame(_opening(x0, x1, value=value))
        # the patch's centre lands on the opening's centre (crop normalised coordinates)
        cx = (x0 + x1 - 1) / 2
        assert theta[0, 0, 2].item() == pytest.approx((2 * cx + 1) / S - 1, abs=1e-4)
        assert theta[0, 1, 2].item() == pytest.approx((2 * 175.5 + 1) / S - 1, abs=1e-4)
        # a uniform opening of width w spreads w / sqrt(12): that is SIGMA_PX patch pixels
        spread = np.sqrt((x1 - x0) ** 2 / 12 - 1 / 12 + 2.0 ** 2)
        assert theta[0, 0, 0].item() == pytest.approx(PATCH_W * spread / SIGMA_PX / S, rel=1e-3)
        assert theta[0, 1, 1].item() / theta[0, 0, 0].item() == pytest.approx(PATCH_H / PATCH_W)


def test_a_faint_haze_over_the_crop_does_not_move_the_frame():
    sharp = mouth_frame(_opening())
    hazy = mouth_frame(_opening() + 0.02)
    assert torch.allclose(sharp, hazy, atol=1e-5)


def test_patch_and_back_is_the_identity_where_the_patch_reaches():
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    # smooth (bilinear resampling is near exact), and different in each channel and direction
    img = torch.from_numpy(np.stack([np.sin(x / 20), np.cos(y / 15), np.sin((x + y) / 25)])[None])
    theta = mouth_frame(_opening())
    back = from_patch(torch.cat([to_patch(img, theta), torch.ones(1, 1, PATCH_H, PATCH_W)], 1), theta, S)
    inside = back[:, 3:] > 0.999
    assert inside[0, 0, 176, 130] and not inside[0, 0, 20, 20]
    err = (back[:, :3] - img).abs() * inside
    assert err.max().item() < 0.02


def test_training_holes_are_the_inner_lips_and_patches_frame_them():
    lm = np.zeros((68, 2))
    lm[48], lm[54] = (96, 176), (160, 176)
    lm[60:68] = [(100, 176), (115, 170), (128, 169), (141, 170), (156, 176), (141, 184), (128, 186), (115, 184)]
    hole = hole_mask(lm, S)
    assert hole[177, 128] > 0.99 and hole[150, 128] == 0 and hole[177, 60] == 0
    crops = np.full((1, S, S, 3), 200, np.uint8)
    crops[0, 165:190, 95:165] = 30  # a dark mouth where the lips are
    patch, region, ph = make_batch(crops, lm[None], np.random.default_rng(0), augment=False)
    assert patch.shape == (1, 3, PATCH_H, PATCH_W) and ph.shape == region.shape == (1, 1, PATCH_H, PATCH_W)
    # the region is the opening grown by GROW pixels (and REACH more sideways)
    assert torch.allclose(region, grow_region(ph, GROW, REACH))
    assert (region >= ph - 1e-6).all() and region.sum() > 1.5 * ph.sum()
    # the opening sits in the middle of the patch, about half its width
    cols = np.flatnonzero(ph[0, 0].numpy().max(0) > 0.5)
    assert abs((cols[0] + cols[-1]) / 2 - (PATCH_W - 1) / 2) < 2
    assert 0.35 * PATCH_W < cols[-1] - cols[0] < 0.65 * PATCH_W
    assert patch[0, :, PATCH_H // 2, PATCH_W // 2].max() < -0.6  # dark inside, from the crop
    # a finer frame: the same opening spans more of the patch, in proportion
    _, _, fine = make_batch(crops, lm[None], np.random.default_rng(0), augment=False, sigma_px=1.4 * SIGMA_PX)
    wide = np.flatnonzero(fine[0, 0].numpy().max(0) > 0.5)
    assert (wide[-1] - wide[0]) / (cols[-1] - cols[0]) == pytest.approx(1.4, abs=0.08)


def test_the_region_reaches_past_the_corners_sideways_only():
    opening = torch.zeros(1, 1, PATCH_H, PATCH_W)
    opening[:, :, 22:26, 20:52] = 1.0
    plain, wide = grow_region(opening, 4), grow_region(opening, 4, 6)
    rows = lambda r: np.flatnonzero(r[0, 0].numpy().max(1) > 0.5)  # noqa: E731
    cols = lambda r: np.flatnonzero(r[0, 0].numpy().max(0) > 0.5)  # noqa: E731
    assert (rows(plain) == rows(wide)).all() and (rows(plain)[[0, -1]] == [18, 29]).all()
    assert (cols(plain)[[0, -1]] == [16, 55]).all() and (cols(wide)[[0, -1]] == [10, 61]).all()
    assert (wide >= plain - 1e-6).all()


def test_the_separable_resampling_is_grid_sample():
    """to_patch / from_patch (two matrix products) sample exactly as grid_sample with border / zeros padding."""
    import torch.nn.functional as F

    from training.mouth_net import _grid, inverse_frame

    torch.manual_seed(0)
    img = torch.rand(2, 3, S, S)
    mask = torch.cat([_opening(), _opening(10, 90, 230, 250, value=0.6)])  # the second frame reaches past the crop
    theta = mouth_frame(mask)
    want = F.grid_sample(img, _grid(theta, PATCH_H, PATCH_W), mode="bilinear", padding_mode="border", align_corners=False)
    assert torch.allclose(to_patch(img, theta), want, atol=1e-5)
    patch = torch.rand(2, 3, PATCH_H, PATCH_W)
    want = F.grid_sample(patch, _grid(inverse_frame(theta), S, S), mode="bilinear", padding_mode="zeros", align_corners=False)
    got = from_patch(patch, theta, S)
    assert torch.allclose(got, want, atol=1e-5) and got[0, :, 10, 10].abs().max() == 0


def test_the_fill_paints_only_near_the_opening_at_its_strength_times_the_opacity():
    torch.manual_seed(0)
    face = torch.zeros(1, 3, S, S)
    flow = torch.zeros(1, 2, S, S)
    for strength, opacity, want in ((1.0, 1.0, 1.0), (0.6, 1.0, 0.6), (0.6, 1.5, 0.9), (0.8, 1.5, 1.0)):
        fill = MouthFill(MouthNet(8), opacity=opacity).eval()
        mask = _opening(value=strength)
        with torch.no_grad():
            out, region = fill(face, mask, flow)
        assert out[0, :, 10, 10].abs().max() == 0 and region[0, 0, 10, 10] == 0  # far from the mouth: nothing painted
        assert out[0, :, 176, 130].abs().max() > 0  # in the opening: the fill
        # the mask covers the opening and the lips around it, at the opening's strength times the opacity
        assert torch.all(region[..., 170:182, 100:160] >= min(1.0, strength * opacity) - 1e-5)
        assert region.max().item() == pytest.approx(want, abs=1e-5)
        assert region[0, 0, 165, 130].item() > 0.5 * want and region[0, 0, 175, 30].item() == 0.0


def test_the_spread_widens_a_faint_opening_and_tapers_off_for_a_full_one():
    """The network is told a larger opening (the mask's soft edge counted in) at a small strength,
    the mask itself at strength 1."""
    from training.mouth_net import SPREAD_FULL

    told = {}

    class Spy(MouthNet):
        def forward(self, x):
            told["opening"] = x[:, 4:5].clone()
            return super().forward(x)

    def opening_area(strength, spread):
        # a core at the mask's strength inside a soft edge at half of it
        mask = torch.maximum(_opening(value=strength), _opening(96, 164, 166, 186, value=0.5 * strength))
        with torch.no_grad():
            MouthFill(Spy(8), spread=spread).eval()(torch.zeros(1, 3, S, S), mask, torch.zeros(1, 2, S, S))
        return told["opening"].sum().item()

    faint = SPREAD_FULL - 0.1
    # core 60×12 px at 1, edge 640 px at 0.5 → 0.8: the area grows by (720 + 512) / (720 + 320) ≈ 1.18
    assert opening_area(faint, 1.6) == pytest.approx(1.185 * opening_area(faint, 1.0), rel=0.03)
    assert opening_area(1.0, 1.6) == pytest.approx(opening_area(1.0, 1.0), rel=1e-5)


def test_attached_model_keeps_the_contract_runs_the_fill_and_drops_the_drawn_mouth(tmp_path):
    import onnx

    from training.mouth_attach import NET_RGB

    src = build_fixture_model(tmp_path / "m.onnx", mask=0.0, rgb=0.25, dx=1.0, shade=0.1)
    torch.manual_seed(0)
    fill = MouthFill(MouthNet(8)).eval()
    part, out = tmp_path / "fill.onnx", tmp_path / "with_mouth.onnx"
    export_fill(fill, S, part)
    attach(src, part, out, "9.9.9", "test mouth")
    m, ref = SmileModel(out), SmileModel(src)
    assert m.version == "9.9.9" and m.meta["smile.mouth"] == "test mouth"
    assert m.meta[contract.META_CONTRACT] == contract.CONTRACT_SHADE
    crops = np.random.default_rng(1).integers(0, 255, (2, S, S, 3), dtype=np.uint8)
    a, b = m.run(crops, 2.0), ref.run(crops, 2.0)
    assert np.array_equal(a.flow, b.flow) and np.array_equal(a.shade, b.shade)
    # the fixture's mask is 0 everywhere: its rgb is what the torch module says, its mask stays 0
    with torch.no_grad():
        want, region = fill(torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1), torch.zeros(2, 1, S, S),
                            torch.full((2, 2, S, S), 2.0) * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
    np.testing.assert_allclose(a.rgb, np.clip(want.numpy(), -1, 1), atol=2e-4)
    assert not np.array_equal(a.rgb, b.rgb) and np.abs(a.mask).max() == 0.0
    # nothing computes the smile network's own paint any more
    graph = onnx.load(str(out)).graph
    assert not any(NET_RGB in n.output or NET_RGB in n.input for n in graph.node)
    assert len(graph.node) < len(onnx.load(str(src)).graph.node) + len(onnx.load(str(part)).graph.node)


def test_drop_unused_keeps_what_the_outputs_need():
    from onnx import TensorProto, helper, numpy_helper

    from training.mouth_attach import drop_unused

    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    unused = numpy_helper.from_array(np.ones(3, np.float32), "unused")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"]), helper.make_node("Mul", ["x", "unused"], ["dead"]),
         helper.make_node("Relu", ["dead"], ["dead2"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [one, unused])
    model = helper.make_model(graph)
    drop_unused(model)
    assert [n.op_type for n in model.graph.node] == ["Add"] and [t.name for t in model.graph.initializer] == ["one"]


def test_a_model_gets_one_mouth_only(tmp_path):
    from training.mouth_attach import main

    src = build_fixture_model(tmp_path / "m.onnx", shade=0.1)
    weights = tmp_path / "mouth.pt"
    torch.save({"net": MouthNet(8).state_dict(), "width": 8, "step": 1}, weights)
    once = tmp_path / "once.onnx"
    failures = tmp_path / "failures.md"
    failures.write_text("- teeth that blur on dark photos")
    with pytest.raises(SystemExit, match="no card for m.onnx"):  # the new card embeds the source's
        main(["--model", str(src), "--mouth", str(weights), "--out", str(once), "--version", "1"])
    assert not once.exists()
    src.with_suffix(".md").write_text("# m 0\n\nA fixture model.\n")
    assert main(["--model", str(src), "--mouth", str(weights), "--out", str(once), "--version", "1", "--failures", str(failures)]) == 0
    card = once.with_suffix(".md").read_text()
    source = card.split("## The source model (its card)\n\n", 1)[1]
    assert source.startswith("(Its evaluations") and source.endswith("\n\nA fixture model.\n")
    assert card.startswith("# once 1") and "mouth network" in card and "research / non-commercial" in card
    assert f"repaints {GROW} patch pixels around the opening ({GROW + REACH} sideways" in card
    wide = tmp_path / "wide.onnx"
    assert main(["--model", str(src), "--mouth", str(weights), "--out", str(wide), "--version", "1", "--reach", "3"]) == 0
    assert f"({GROW + 3} sideways, past the corners)" in wide.with_suffix(".md").read_text()
    assert "## What it gets wrong\n\n- teeth that blur on dark photos" in card
    from training.mouth_attach import mouth_network

    assert mouth_network(once).e1[0].out_channels == 8 and mouth_network(src) is None
    with pytest.raises(SystemExit, match="already has a mouth network"):
        main(["--model", str(once), "--mouth", str(weights), "--out", str(tmp_path / "twice.onnx"), "--version", "2"])


def test_training_runs_resumes_and_writes_the_weights(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    from test_training_data import _mean_shape
    from training import __main__ as training_main

    n = 8
    lm = _mean_shape().astype(np.float32)
    lm[65:68, 1] += 10  # parted lips: the lower inner lip drops
    crops = np.empty((n, S, S, 3), np.uint8)
    for i in range(n):
        crops[i] = (170, 120 + 5 * i, 100)
        cv2.fillPoly(crops[i], [np.round(lm[48:60]).astype(np.int32)], (150, 60, 70))
        cv2.fillPoly(crops[i], [np.round(lm[60:68]).astype(np.int32)], (235, 235, 230))  # teeth
    pdir = tmp_path / "cache" / "prepared"
    pdir.mkdir(parents=True)
    np.save(pdir / "crops_256.npy", crops)
    np.savez(pdir / "index.npz", source=np.full(n, "utkface"), person=np.array([f"p{i}" for i in range(n)]),
             label=np.full(n, -1, np.int8), age=np.full(n, 30, np.int16), lm68=np.repeat(lm[None], n, axis=0),
             gray=np.zeros(n, bool), face_px=np.full(n, 200, np.int16), split=np.array(["train"] * 6 + ["val"] * 2))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                   "[mouth]\nsteps = 4\nbatch = 2\nwidth = 4\nwarmup = 2\nsave_every = 2\n")
    assert training_main.main(["mouth", "--config", str(cfg), "--threads", "1"]) == 0
    out = tmp_path / "cache" / "mouth"
    first = torch.load(out / "mouth.pt", weights_only=False)
    assert first["step"] == 4 and first["width"] == 4 and first["sigma_px"] == 9.0 and (out / "val_000004.png").exists()
    assert training_main.main(["mouth", "--config", str(cfg), "--steps", "6", "--threads", "1"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 6
    assert "resumed at step 4" in capsys.readouterr().out
    moved = [not torch.equal(a, b) for a, b in zip(first["net"].values(), torch.load(out / "mouth.pt", weights_only=False)["net"].values())]
    assert any(moved)
    # a fresh run can start from given weights (here the first run's), and hide regions past the corners
    capsys.readouterr()
    start = torch.load(out / "mouth.pt", weights_only=False)["net"]
    cfg.write_text(cfg.read_text() + "reach_max = 3\n")
    again = tmp_path / "again"
    assert training_main.main(["mouth", "--config", str(cfg), "--steps", "1", "--init", str(out / "mouth.pt"), "--out", str(again),
                               "--threads", "1"]) == 0
    assert "starting from the mouth network of" in capsys.readouterr().out
    fresh = torch.load(again / "mouth.pt", weights_only=False)
    assert fresh["step"] == 1
    # one Adam step moves a weight by about the learning rate; a fresh start would differ by far more
    assert max((a - b).abs().max().item() for a, b in zip(start.values(), fresh["net"].values())) < 0.01


def test_the_model_mask_is_the_repainted_region_and_the_shade_keeps_the_networks_mask(tmp_path):
    src = build_fixture_model(tmp_path / "m.onnx", mask=0.4, rgb=0.25, shade=0.1)
    part, out = tmp_path / "fill.onnx", tmp_path / "with.onnx"
    export_fill(MouthFill(MouthNet(8)).eval(), S, part)
    attach(src, part, out, "9.9.9", "test mouth")
    crops = np.zeros((1, S, S, 3), np.uint8)
    a, b = SmileModel(out).run(crops, 1.0), SmileModel(src).run(crops, 1.0)
    # a uniform 0.4 mask: the opening is everywhere, the region never exceeds the mask's own strength
    np.testing.assert_allclose(a.mask[0, 0, 100:150, 100:150], 0.4, atol=1e-5)
    assert a.mask.max() <= 0.4 + 1e-6 and np.array_equal(a.shade, b.shade)


def test_only_parted_lips_with_teeth_on_large_enough_faces_teach_it():
    cv2 = pytest.importorskip("cv2")
    from test_training_data import _mean_shape
    from training.mouth import open_mouths

    closed = _mean_shape().astype(np.float64)
    opened = closed.copy()
    opened[65:68, 1] += 10
    lm = np.stack([opened, opened, opened, closed, opened])
    crops = np.empty((5, S, S, 3), np.uint8)
    for i in range(5):
        crops[i] = (170, 120, 100)
        cv2.fillPoly(crops[i], [np.round(lm[i, 48:60]).astype(np.int32)], (150, 60, 70))
        inside = (235, 235, 230) if i != 1 else (40, 20, 25)  # face 1: a dark opening, no teeth
        cv2.fillPoly(crops[i], [np.round(lm[i, 60:68]).astype(np.int32)], inside)
    index = {"lm68": lm, "split": np.array(["train"] * 4 + ["val"]), "face_px": np.array([200, 200, 60, 200, 200])}
    # 0: kept; 1: no teeth; 2: face too small; 3: lips closed; 4: another split
    assert list(open_mouths(crops, index, "train", 0.05, 100, 0.2)) == [0]
    assert list(open_mouths(crops, index, "train", 0.05, 100, 0.0)) == [0, 1]


def test_a_merged_model_that_fails_its_check_is_not_written(tmp_path, monkeypatch):
    from training import mouth_attach

    def differs(*_args, **_kw):
        raise SystemExit("error: the merged model differs from PyTorch's by 1e+00")

    monkeypatch.setattr(mouth_attach, "check_against_torch", differs)
    src = build_fixture_model(tmp_path / "m.onnx", shade=0.1)
    src.with_suffix(".md").write_text("# m 0\n\nA fixture model.\n")
    weights = tmp_path / "mouth.pt"
    torch.save({"net": MouthNet(8).state_dict(), "width": 8, "step": 1}, weights)
    out = tmp_path / "out.onnx"
    with pytest.raises(SystemExit, match="differs"):
        mouth_attach.main(["--model", str(src), "--mouth", str(weights), "--out", str(out), "--version", "1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.md", "m.onnx", "mouth.pt"]


def test_a_finer_mouth_frame_trains_attaches_and_is_read_back(tmp_path):
    """``[mouth] sigma_px``: the patch puts the opening's spread at that many pixels (a finer frame
    draws the mouth at more patch pixels per crop pixel); the weights carry it, ``mouth-attach``
    bakes it into the graph and records it, and ``tune`` rebuilds the network in it (and refuses
    weights of another frame for a graph that has one)."""
    import onnx

    from smilecore.registry import resolve_model
    from training import __main__ as training_main
    from training.mouth_attach import META_SIGMA, load_mouth, mouth_from_model
    from training.tune import MergedModel

    opening = _opening()
    coarse, fine = mouth_frame(opening), mouth_frame(opening, 2 * SIGMA_PX)
    assert fine[0, 0, 0].item() == pytest.approx(coarse[0, 0, 0].item() / 2, rel=1e-6)  # half the crop in the patch
    assert torch.equal(fine[:, :, 2], coarse[:, :, 2])  # centred on the same point
    weights = tmp_path / "mouth.pt"
    torch.save({"net": MouthNet(4).state_dict(), "width": 4, "sigma_px": 13.0, "step": 1}, weights)
    fill, _ = load_mouth(weights)
    assert fill.sigma_px == 13.0
    base = Path(__file__).resolve().parents[1] / "benchmarks" / "baseline" / "smile-mobileunet-1.3.0.onnx"
    out = tmp_path / "m.onnx"
    assert training_main.main(["mouth-attach", "--model", str(base), "--mouth", str(weights), "--out", str(out), "--version", "9.9.0"]) == 0
    model = onnx.load(str(out))
    assert {p.key: p.value for p in model.metadata_props}[META_SIGMA] == "13"
    assert mouth_from_model(model).sigma_px == 13.0 and MergedModel(out).fill.sigma_px == 13.0
    assert mouth_from_model(resolve_model(None)).sigma_px == SIGMA_PX  # a file from before: the default frame
    with pytest.raises(SystemExit, match="mouth frame of 13 px"):
        MergedModel(resolve_model(None), mouth=weights)


def test_regraph_rewrites_the_mouth_part_with_the_same_weights_and_outputs(tmp_path, capsys):
    """``mouth-attach --regraph``: the bundled model's mouth part exported anew by this code (fewer
    operations), every output within 1e-4 of the file's own (λ = 0 to the bit), the weights the
    same; a model without a mouth network is refused."""
    import json

    import onnx
    from onnx import numpy_helper

    from smilecore.registry import resolve_model
    from training import __main__ as training_main
    from training.mouth_attach import PREFIX, compare_models

    src = resolve_model(None)
    out = tmp_path / "regraphed.onnx"
    assert training_main.main(["mouth-attach", "--regraph", "--model", str(src), "--out", str(out), "--version", "9.2.0"]) == 0
    text = capsys.readouterr().out
    assert json.loads(text[text.rindex("{\n"):])["largest_difference"] < 1e-4
    assert compare_models(src, out, 256) < 1e-4
    g0, g1 = onnx.load(str(src)), onnx.load(str(out))
    w0 = {t.name: numpy_helper.to_array(t) for t in g0.graph.initializer if t.name.startswith(PREFIX + "net.")}
    w1 = {t.name: numpy_helper.to_array(t) for t in g1.graph.initializer if t.name.startswith(PREFIX + "net.")}
    assert w0.keys() == w1.keys() and all(np.array_equal(w0[k], w1[k]) for k in w0)
    glue = [sum(n.name.startswith(PREFIX) and "/net/" not in n.name for n in g.graph.node) for g in (g0, g1)]
    assert glue[1] <= glue[0]  # the bundled model (1.10.1 on) is already in this code's graph
    assert "Model 9.2.0" in out.with_suffix(".md").read_text()
    bare = tmp_path / "bare.onnx"
    m = onnx.load(str(src))
    kept = [(p.key, p.value) for p in m.metadata_props if p.key != "smile.mouth"]
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, dict(kept))
    onnx.save(m, str(bare))
    with pytest.raises(SystemExit, match="no mouth network to regraph"):
        training_main.main(["mouth-attach", "--regraph", "--model", str(bare), "--out", str(tmp_path / "x.onnx"), "--version", "9.2.1"])
