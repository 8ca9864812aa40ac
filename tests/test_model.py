"""The ONNX session wrapper refuses models that break the contract."""
import numpy as np
import pytest

from fixture_model import build_fixture_model
from smilecore import ModelError, SmileModel


def test_fixture_model_runs(fixture_models):
    m = SmileModel(fixture_models["shift"])
    assert m.size == 256 and m.strength_range == (-2.0, 4.0) and m.license == "CC0-1.0"
    out = m.run(np.zeros((2, 256, 256, 3), np.uint8), 0.5)
    assert out.flow.shape == (2, 2, 256, 256)
    np.testing.assert_allclose(out.flow[:, 0], 2.0)  # dx 4 * strength 0.5
    np.testing.assert_allclose(out.flow[:, 1], 0.0)
    assert out.mask.shape == (2, 1, 256, 256) and out.rgb.shape == (2, 3, 256, 256)


def test_wrong_template_is_refused(tmp_path):
    p = build_fixture_model(tmp_path / "m.onnx", template="ffhq-v0")
    with pytest.raises(ModelError, match="alignment template 'ffhq-v0'"):
        SmileModel(p)


def test_wrong_contract_is_refused(tmp_path):
    p = build_fixture_model(tmp_path / "m.onnx", contract_version="99")
    with pytest.raises(ModelError, match="contract 99"):
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
