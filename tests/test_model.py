"""The ONNX session wrapper refuses models that break the contract."""
import numpy as np
import pytest

from fixture_model import build_fixture_model
from smilecore import ModelError, SmileModel, contract


def test_fixture_model_runs(fixture_models):
    m = SmileModel(fixture_models["shift"])
    assert m.size == 256 and m.strength_range == (-2.0, 4.0) and m.license == "CC0-1.0"
    out = m.run(np.zeros((2, 256, 256, 3), np.uint8), 0.5)
    assert out.flow.shape == (2, 2, 256, 256)
    np.testing.assert_allclose(out.flow[:, 0], 2.0)  # dx 4 * strength 0.5
    np.testing.assert_allclose(out.flow[:, 1], 0.0)
    assert out.mask.shape == (2, 1, 256, 256) and out.rgb.shape == (2, 3, 256, 256)


@pytest.mark.parametrize("meta, message", [
    ({"template": "ffhq-v0"}, "alignment template 'ffhq-v0'"),
    ({"contract_version": "99"}, "follows model contract 99, this engine reads contracts 1 and 2"),
    ({"contract_version": contract.CONTRACT_SHADE}, "no output named 'shade'"),  # contract 2 without its output
], ids=["template", "unknown-contract", "contract-2-without-shade"])
def test_model_breaking_the_contract_is_refused(meta, message, tmp_path):
    p = build_fixture_model(tmp_path / "m.onnx", **meta)
    with pytest.raises(ModelError, match=message):
        SmileModel(p)


def test_garbage_file_is_refused(tmp_path):
    p = tmp_path / "broken.onnx"
    p.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="cannot load model"):
        SmileModel(p)


def test_non_onnx_file_is_refused(tmp_path):
    p = tmp_path / "weights.pt"
    p.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError, match="only ONNX"):
        SmileModel(p)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        SmileModel(tmp_path / "nope.onnx")
