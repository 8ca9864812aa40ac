"""``python -m training transport``: the per-face shade transported to real smiles (training/transport.py)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from fixture_model import build_fixture_model  # noqa: E402
from smilecore import contract  # noqa: E402
from smilecore.model import SmileModel  # noqa: E402
from smilecore.network_io import to_network_input  # noqa: E402
from training import transport as tr  # noqa: E402

S = tr.SIZE
D = tr.PATCH * tr.PATCH
N_P = tr.PATCHES[0] * tr.PATCHES[1]


def random_module(seed: int = 0, k: int = 6) -> tr.Transport:
    """A Transport with random orthonormal bases and small random maps."""
    rng = np.random.default_rng(seed)
    n_p = N_P
    basis = np.stack([np.linalg.qr(rng.normal(size=(D, k)))[0].T for _ in range(n_p)])
    maps = rng.normal(0, 0.2, (2, n_p, k, k))
    offsets = rng.normal(0, 0.05, (2, n_p, k))
    return tr.Transport(basis, maps, offsets).eval()


def faces(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(20, 235, (n, S, S, 3), dtype=np.uint8)


def test_patches_cover_the_grid_and_blend_back_to_it():
    g = torch.from_numpy(np.random.default_rng(0).normal(size=(2, *tr.GRID)).astype(np.float32))
    p = tr.to_patches(g)
    assert p.shape == (2, N_P, D)
    # the first patch is the grid's top-left PATCH x PATCH square, the last its bottom-right one
    assert sorted(p[0, 0].tolist()) == sorted(g[0, : tr.PATCH, : tr.PATCH].reshape(-1).tolist())
    assert sorted(p[0, -1].tolist()) == sorted(g[0, -tr.PATCH :, -tr.PATCH :].reshape(-1).tolist())
    module = random_module()
    w = module.window.reshape(1, 1, -1)
    np.testing.assert_allclose((tr.from_patches(p * w) * module.norm).numpy(), g.numpy(), atol=1e-5)


def test_gaussian_map_carries_one_covariance_onto_the_other():
    rng = np.random.default_rng(0)
    a = np.cov(rng.normal(size=(4, 200)))
    b = np.cov(rng.normal(size=(4, 200)) * np.array([[1.0], [2.0], [0.5], [3.0]]))
    m = tr.gaussian_map(a, b)
    np.testing.assert_allclose(m, m.T, atol=1e-10)
    assert np.linalg.eigvalsh(m).min() > 0
    np.testing.assert_allclose(m @ a @ m, b, atol=1e-8)


def test_fitted_maps_move_edited_features_to_the_real_mean_and_spread():
    """Cells drawn independently: each patch's map is then the same per-cell scaling, so the blended
    shade carries every cell of the edited faces to the real faces' mean and spread."""
    rng = np.random.default_rng(3)
    n = 600
    cells = tr.GRID[0] * tr.GRID[1]
    real = rng.normal(0.0, 1.0, (n, cells))
    edited = {lam: rng.normal(0.5 * lam, 0.5, (n, cells)) for lam in tr.LAMS}
    basis, maps, offsets = tr.fit({lam: f.reshape(n, *tr.GRID) for lam, f in edited.items()}, real.reshape(n, *tr.GRID), k=D)
    assert basis.shape == (N_P, D, D) and maps.shape == (2, N_P, D, D)
    module = tr.Transport(basis, maps, offsets, gains=(1.0, 1.0)).eval()
    for lam, f in edited.items():
        x = torch.from_numpy(f.reshape(n, *tr.GRID).astype(np.float32))
        with torch.no_grad():
            moved = (x + module.displacement(x, torch.full((n, 1), lam))[:, 0]).numpy().reshape(n, -1)
        assert abs(moved.mean() - real.mean()) < 0.02, lam
        assert abs(moved.std(0).mean() - real.std(0).mean()) < 0.05, lam
        assert abs(f.mean() - real.mean()) > 0.4  # it had somewhere to go


def test_features_of_an_unmoved_crop_are_the_crop_features():
    module = random_module()
    c = faces(2)
    zero = torch.zeros(2, 1, S, S)
    with torch.no_grad():
        got = module.features(torch.from_numpy(to_network_input(c)), torch.zeros(2, 3, S, S), zero, torch.zeros(2, 2, S, S), zero)
    np.testing.assert_allclose(got.numpy(), tr.crop_features(c), atol=2e-4)


def test_shade_is_added_only_in_the_region_outside_the_mouth_and_only_for_a_positive_strength():
    module = random_module()
    c = torch.from_numpy(to_network_input(faces(4)))
    mask = torch.zeros(4, 1, S, S)
    mask[:, :, 180:200, 100:160] = 1.0  # a painted mouth
    shade = torch.full((4, 1, S, S), 0.05)
    lam = torch.tensor([[-1.0], [0.0], [1.0], [2.5]])
    with torch.no_grad():
        out = module(c, lam, torch.zeros(4, 3, S, S), mask, torch.zeros(4, 2, S, S), shade)
    added = (out - shade).numpy()[:, 0]
    assert np.array_equal(added[0], np.zeros((S, S))) and np.array_equal(added[1], np.zeros((S, S)))
    x0, y0, x1, y1 = tr.REGION
    for i in (2, 3):
        assert np.abs(added[i]).max() > 1e-3
        assert np.abs(added[i]).max() <= tr.LIMIT + 1e-6
        outside = np.ones((S, S), bool)
        outside[y0:y1, x0:x1] = False
        assert np.abs(added[i][outside]).max() == 0.0
        assert np.abs(added[i][180:200, 100:160]).max() == 0.0


def test_merged_model_runs_the_transport_as_pytorch_does(tmp_path):
    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    module = random_module(seed=2)
    part, out = tmp_path / "part.onnx", tmp_path / "merged.onnx"
    tr.export_transport(module, part)
    tr.attach(src, part, out, "9.9.9", "test transport")
    merged = SmileModel(out)
    assert merged.version == "9.9.9" and merged.meta["smile.transport"] == "test transport"
    assert merged.meta[contract.META_CONTRACT] == contract.CONTRACT_SHADE
    crops = faces(4, seed=5)
    worst = tr.check_merged(src, out, module, crops)
    assert worst < 1e-4
    base = SmileModel(src).run(crops, 2.0)
    got = merged.run(crops, 2.0)
    assert np.array_equal(got.flow, base.flow) and np.array_equal(got.mask, base.mask) and np.array_equal(got.rgb, base.rgb)
    assert np.abs(got.shade - base.shade).max() > 1e-3


def test_the_transport_is_read_back_from_a_merged_file(tmp_path):
    """training.tune rebuilds a merged model in PyTorch: the transport it reads from the file is the one written."""
    import onnx

    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    module = tr.Transport(*(lambda m: (m.basis.numpy(), np.stack([m.maps1.numpy(), m.maps2.numpy()]),
                                       np.stack([m.offsets1.numpy()[..., 0], m.offsets2.numpy()[..., 0]])))(random_module(seed=4)),
                          gains=(0.7, 1.0)).eval()
    part, out = tmp_path / "part.onnx", tmp_path / "merged.onnx"
    tr.export_transport(module, part)
    from training.export import weights_to_fp16

    weights_to_fp16(part)
    tr.attach(src, part, out, "9.9.9", "test transport")
    back = tr.transport_from_model(onnx.load(str(out)))
    assert back is not None and float(back.gain1) == pytest.approx(0.7) and float(back.gain2) == 1.0
    np.testing.assert_allclose(back.basis.numpy(), module.basis.numpy(), atol=1e-3)  # stored as float16
    np.testing.assert_allclose(back.maps2.numpy(), module.maps2.numpy(), atol=1e-3)
    assert tr.transport_from_model(onnx.load(str(src))) is None


def test_shaped_shade_keeps_only_what_changes_within_a_cheek_and_fades_in_at_the_top():
    """The broad part of the transport's shade (a whole lower face darkened or lit) is taken away: a
    displacement that is one constant over the grid adds nothing, one that changes from cell to
    cell is kept; the shade rises smoothly over TOP_FADE rows from the region's top."""
    shaped, plain = random_module(), tr.Transport(*_maps(random_module()), shaped=False).eval()
    flat = torch.full((1, 1, *tr.GRID), -0.2)
    # a ripple four cells (12 crop pixels) long: a fold's scale, far shorter than SMOOTHNESS
    ripple = torch.from_numpy(0.2 * np.sin(np.indices(tr.GRID).sum(0) * np.pi / 2 + 0.3)).float()[None, None]
    for module, keeps_flat in ((shaped, False), (plain, True)):
        module.displacement = lambda feats, strength, m=module: m._d  # the displacement set below, for any face
        c = torch.from_numpy(to_network_input(faces(1)))
        zero = torch.zeros(1, 1, S, S)
        for d, kept in ((flat, keeps_flat), (ripple, True)):
            module._d = d
            with torch.no_grad():
                added = module(c, torch.ones(1, 1), torch.zeros(1, 3, S, S), zero, torch.zeros(1, 2, S, S), zero)[0, 0].numpy()
            x0, y0, x1, y1 = tr.REGION
            inner = added[y0 + tr.TOP_FADE : y1 - tr.RAMP, x0 + tr.RAMP : x1 - tr.RAMP]
            assert (np.abs(inner).mean() > 0.05) == kept, (module.shaped, d.flatten()[:2])
    t, old = tr.taper(), tr.taper(0)
    column = t[:, t.shape[1] // 2]
    assert column[0] < 0.01 and np.all(np.diff(column[: tr.TOP_FADE]) > 0) and column[tr.TOP_FADE] == 1.0
    assert old[tr.RAMP, old.shape[1] // 2] == 1.0  # models 1.5.0–1.7.0: a linear rise over RAMP rows
    np.testing.assert_allclose(tr.smoothing(7, 2.0).sum(1), 1.0, rtol=1e-6)


def _maps(module: tr.Transport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (module.basis.numpy(), np.stack([module.maps1.numpy(), module.maps2.numpy()]),
            np.stack([module.offsets1.numpy()[..., 0], module.offsets2.numpy()[..., 0]]))


def test_a_transport_fitted_before_the_shaping_is_rebuilt_with_its_maps(tmp_path):
    """``transport --rebuild``: a model whose transport has no shaping (1.5.0–1.7.0) is read back as it
    runs, and rewritten with the same maps in the shaped graph; everything else in it is unchanged."""
    import onnx

    from training.graph_parts import remove_part

    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    old_module = tr.Transport(*_maps(random_module(seed=6)), gains=(0.7, 1.0), shaped=False).eval()
    part, old = tmp_path / "part.onnx", tmp_path / "old.onnx"
    tr.export_transport(old_module, part)
    from training.export import weights_to_fp16

    weights_to_fp16(part)
    tr.attach(src, part, old, "1.7.0", "an old transport")
    back = tr.transport_from_model(onnx.load(str(old)))
    assert not back.shaped and not hasattr(back, "smooth_y")
    crops = faces(4, seed=7)
    assert tr.check_merged(src, old, back, crops) < 1e-4  # read back as the file runs it

    new = tmp_path / "new.onnx"
    module, description, worst = tr.rebuild(old, new, "1.8.0", crops)
    assert worst < 1e-4 and module.shaped
    assert description.startswith("an old transport; rebuilt from model 1.7.0's maps")
    np.testing.assert_allclose(module.maps2.numpy(), back.maps2.numpy())
    m = SmileModel(new)
    assert m.version == "1.8.0" and m.meta["smile.transport"] == description
    assert tr.transport_from_model(onnx.load(str(new))).shaped
    a, b, base = SmileModel(old).run(crops, 2.0), m.run(crops, 2.0), SmileModel(src).run(crops, 2.0)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask) and np.array_equal(a.flow, b.flow)
    assert np.abs(a.shade - b.shade).max() > 1e-3 and np.abs(b.shade - base.shade).max() > 1e-3
    assert np.array_equal(m.run(crops, 0.0).shade, SmileModel(old).run(crops, 0.0).shade)
    # and one rebuilt is refused a second transport, a model without one a rebuild
    with pytest.raises(SystemExit, match="no transported shade to rebuild"):
        tr.rebuild(src, tmp_path / "x.onnx", "1.8.1", crops)
    assert not (tmp_path / "x.onnx").exists()
    g = onnx.load(str(src))
    with pytest.raises(ValueError, match="no part"):
        remove_part(g, tr.PREFIX, {})


@pytest.mark.parametrize("model, out, message", [
    ("{tmp}/notes.onnx", "{tmp}/x.onnx", "is not an ONNX model"),
    ("{tmp}/none.onnx", "{tmp}/x.onnx", "cannot read --model"),
    ("{fixture}", "{tmp}/no/x.onnx", "the folder of --out"),
])
def test_transport_refuses_what_it_cannot_read_or_write_in_one_line(tmp_path, model, out, message):
    fixture = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    (tmp_path / "notes.onnx").write_text("not a model\n")
    args = [a.format(tmp=tmp_path, fixture=fixture) for a in (model, out)]
    with pytest.raises(SystemExit, match=message) as e:
        tr.main(["--model", args[0], "--out", args[1], "--version", "9.9.9", "--rebuild"])
    assert "\n" not in str(e.value) and not list(tmp_path.glob("x.onnx"))


def test_a_transport_taken_out_leaves_the_model_it_was_added_to(tmp_path):
    """``transport --refit`` first takes the old transport out (``without_transport``): what is left
    runs exactly as the model did before the transport was attached, and has no transport metadata."""
    import onnx

    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    part, merged = tmp_path / "part.onnx", tmp_path / "merged.onnx"
    tr.export_transport(random_module(seed=8), part)
    tr.attach(src, part, merged, "1.9.0", "an old transport")
    back = tr.without_transport(merged, tmp_path / "base.onnx")
    crops = faces(3, seed=9)
    a, b = SmileModel(src).run(crops, 2.0), SmileModel(back).run(crops, 2.0)
    for name in ("rgb", "mask", "flow", "shade"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.abs(SmileModel(merged).run(crops, 2.0).shade - a.shade).max() > 1e-3  # the transport did change it
    assert "smile.transport" not in SmileModel(back).meta and tr.transport_from_model(onnx.load(str(back))) is None


@pytest.mark.parametrize("flags, message", [
    (["--refit", "--rebuild"], "give one"),
    (["--refit"], "no transported shade to refit"),
    ([], "already has a transported shade"),
])
def test_refit_and_rebuild_are_asked_for_what_they_can_do(tmp_path, flags, message):
    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    target = src
    if message == "already has a transported shade":
        part, target = tmp_path / "part.onnx", tmp_path / "merged.onnx"
        tr.export_transport(random_module(seed=8), part)
        tr.attach(src, part, target, "1.9.0", "an old transport")
    (target.with_suffix(".md")).write_text("# card\n")
    with pytest.raises(SystemExit, match=message) as e:
        tr.main(["--model", str(target), "--out", str(tmp_path / "x.onnx"), "--version", "9.9.9", *flags])
    assert "\n" not in str(e.value) and not (tmp_path / "x.onnx").exists()


def test_equal_gains_are_read_back_though_the_file_keeps_one_copy(tmp_path):
    """Gains 1.0 and 1.0 (model 1.10.0): the exporter stores one and makes the other an Identity of it."""
    import onnx

    src = build_fixture_model(tmp_path / "m.onnx", dx=1.5, mask=0.25, shade=0.1)
    module = tr.Transport(*_maps(random_module(seed=10)), gains=(1.0, 1.0)).eval()
    part, out = tmp_path / "part.onnx", tmp_path / "merged.onnx"
    tr.export_transport(module, part)
    tr.attach(src, part, out, "1.10.0", "equal gains")
    model = onnx.load(str(out))
    assert sum(i.name.startswith(tr.PREFIX + "gain") for i in model.graph.initializer) == 1
    back = tr.transport_from_model(model)
    assert float(back.gain1) == 1.0 and float(back.gain2) == 1.0
    assert tr.check_merged(src, out, back, faces(2, seed=11)) < 1e-4
