"""Model contract 2: the shade output changes the luminance of the kept pixels, nothing else.

(A contract-2 model without the output is refused: tests/test_model.py.)
"""
import numpy as np

import smilecore
from fixture_model import build_fixture_model
from smilecore import contract
from smilecore.model import SmileModel


def _changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 0


def test_shade_scales_the_kept_pixels_by_its_gain(tmp_path, astronaut):
    plain = build_fixture_model(tmp_path / "plain.onnx")
    shaded = build_fixture_model(tmp_path / "shade.onnx", shade=0.25)
    assert SmileModel(shaded).meta[contract.META_CONTRACT] == contract.CONTRACT_SHADE
    r0 = smilecore.smile(astronaut, strength=1.0, model=str(plain))
    r1 = smilecore.smile(astronaut, strength=1.0, model=str(shaded))
    a0, a1 = np.asarray(r0.image), np.asarray(r1.image)
    assert np.array_equal(a0, astronaut)  # zero flow, zero mask: unchanged
    # where the face's weight is 1 the pixel is (x + 8) * e^0.25 - 8, rounded and clipped
    edit = r1.faces[0]
    x0, y0, x1, y1 = edit.region
    full = edit.weight >= 1.0
    assert full.sum() > 500
    src = astronaut[y0:y1, x0:x1][full].astype(np.float64)
    want = np.clip(np.rint((src + 8.0) * np.exp(0.25) - 8.0), 0, 255)
    assert np.abs(a1[y0:y1, x0:x1][full] - want).max() <= 1
    # outside the face's region nothing changes, and the shading only brightens here
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = edit.weight <= 0
    assert not _changed(a1, astronaut)[outside].any()
    assert (a1.astype(int) >= astronaut.astype(int)).all()


def test_shade_follows_strength_and_negative_darkens(tmp_path, astronaut):
    shaded = build_fixture_model(tmp_path / "shade.onnx", shade=0.25)
    lo = np.asarray(smilecore.smile(astronaut, strength=-1.0, model=str(shaded)).image).astype(int)
    assert (lo <= astronaut).all() and (lo < astronaut).any()
