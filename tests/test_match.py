"""Issue #14, case 8: the painted mouth follows the photo's light (smilecore.match): dark
photos get dark teeth, warm photos warm ones, well-exposed photos keep them bright; the white
point gain never brightens and the grain matches the photo's own."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import smilecore


@pytest.fixture(scope="module")
def default_model():
    return smilecore.load_model()


def _painted(out: np.ndarray, src: np.ndarray, threshold: int) -> np.ndarray:
    return np.abs(out.astype(int) - src.astype(int)).max(axis=2) > threshold


def test_dark_photo_gets_dark_teeth(default_model, astronaut):
    dark = np.rint(astronaut.astype(np.float32) * 40 / 255).astype(np.uint8)
    assert dark.max() == 40
    out = np.asarray(smilecore.smile(Image.fromarray(dark), strength=2, model=default_model).image)
    changed = _painted(out, dark, 3)
    assert changed.sum() > 500  # the mouth did open
    assert np.percentile(out[changed], 99) <= 44 and out.max() <= 52


def test_warm_photo_gets_warm_teeth(default_model, astronaut):
    warm = np.rint(astronaut.astype(np.float32) * np.array([1.0, 0.85, 0.55])).astype(np.uint8)
    out = np.asarray(smilecore.smile(Image.fromarray(warm), strength=2, model=default_model).image)
    mouth = _painted(out, warm, 40)
    assert mouth.sum() > 200
    assert np.percentile(out[mouth][:, 2], 99) <= warm[..., 2].max() + 6  # no blue-white teeth in a warm photo
    r, b = out[mouth][:, 0].astype(float), out[mouth][:, 2].astype(float)
    assert np.median(b / np.maximum(r, 1)) < 0.75


def test_well_exposed_photo_keeps_its_teeth_bright(default_model, astronaut):
    out = np.asarray(smilecore.smile(Image.fromarray(astronaut), strength=2, model=default_model).image)
    mouth = _painted(out, astronaut, 40)
    assert np.percentile(out[mouth].mean(axis=1), 99) > 200


def test_white_point_gain_and_grain():
    from smilecore.match import add_grain, white_point_gain

    def grain(painted, mask, face, seed):
        out = painted.copy()
        add_grain(out, mask, face, seed)
        return out - painted

    rng = np.random.default_rng(0)
    h = w = 120
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (((yy - 60) / 15.0) ** 2 + ((xx - 60) / 25.0) ** 2 < 1).astype(np.float32)[..., None]
    weight = np.ones((h, w), np.float32)
    painted = np.full((h, w, 3), 220.0, np.float32)
    face = np.clip(30 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.float32)
    gain = white_point_gain(painted, mask, face, weight)
    assert np.allclose(gain, np.percentile(face[mask[..., 0] < 0.02], 99.5, axis=0) / 220, atol=0.01)
    assert np.all(white_point_gain(painted, mask, face + 200, weight) == 1.0)  # never brightens
    n = grain(painted, mask, face, seed=(1, 2, 3, 4))
    inside = mask[..., 0] > 0.5
    assert np.allclose(n[inside].std(axis=0), 6.0, rtol=0.2)
    assert np.all(n[mask[..., 0] <= 0.02] == 0)
    assert np.array_equal(n, grain(painted, mask, face, seed=(1, 2, 3, 4)))  # reproducible
    assert np.all(grain(painted, mask, np.full_like(face, 30), seed=(1, 2, 3, 4)) == 0)  # clean photo: no grain
