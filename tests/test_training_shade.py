"""``python -m training shade``: a contract-1 model gains the contract-2 shade output, as specified."""
import numpy as np
import pytest

from fixture_model import build_fixture_model
from smilecore import contract
from smilecore.model import SmileModel

pytest.importorskip("onnx")
from training.shade import add_shade  # noqa: E402

S = 256


@pytest.mark.parametrize("lam, amount", [(-1.0, 0.0), (0.0, 0.0), (1.0, 0.7), (1.5, 1.05), (3.0, 1.05)])
def test_shade_is_field_times_clipped_strength_outside_the_mask(tmp_path, lam, amount):
    src = build_fixture_model(tmp_path / "m.onnx", mask=0.25)
    field = np.random.default_rng(0).uniform(-0.2, 0.2, (S, S)).astype(np.float32)
    out = tmp_path / "m2.onnx"
    add_shade(src, out, field, gain=0.7, saturate=1.5, version="9.9.9", description="test field")
    m = SmileModel(out)
    assert m.meta[contract.META_CONTRACT] == contract.CONTRACT_SHADE
    assert m.version == "9.9.9" and m.meta["smile.shade"] == "test field"
    crops = np.zeros((2, S, S, 3), np.uint8)
    o = m.run(crops, lam)
    assert o.shade.shape == (2, 1, S, S)
    np.testing.assert_allclose(o.shade[1, 0], field * amount * 0.75, atol=1e-6)
    # the network's own outputs are unchanged
    ref = SmileModel(src).run(crops, lam)
    assert np.array_equal(o.flow, ref.flow) and np.array_equal(o.mask, ref.mask) and np.array_equal(o.rgb, ref.rgb)


def test_a_contract_two_model_is_not_shaded_twice(tmp_path):
    src = build_fixture_model(tmp_path / "m.onnx", shade=0.1)
    with pytest.raises(SystemExit, match="follows contract 2, expected 1"):
        add_shade(src, tmp_path / "x.onnx", np.zeros((S, S), np.float32), 0.7, 1.5, "1", "x")


@pytest.mark.parametrize("lam", [-2.0, 0.0, 1.0, 2.0, 2.5, 3.0, 4.0])
def test_the_networks_strength_saturates_above_the_knee(tmp_path, lam):
    # the fixture's flow is strength × (dx, 0): it shows the strength the network saw
    src = build_fixture_model(tmp_path / "m.onnx", dx=1.0)
    out = tmp_path / "m2.onnx"
    add_shade(src, out, np.zeros((S, S), np.float32), 0.7, 1.5, "9", "x", knee=2.0, soft=1.0)
    seen = SmileModel(out).run(np.zeros((1, S, S, 3), np.uint8), lam).flow[0, 0, 0, 0]
    want = lam if lam <= 2.0 else 2.0 + np.tanh(lam - 2.0)
    assert seen == pytest.approx(want, abs=1e-5)
