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
