"""The realism test's judges of other kinds (training.realism_judges): what each one sees."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from training.realism_judges import (GABOR_GRID, SPECTRUM_BINS, gabor_features, pixel_features,  # noqa: E402
                                     spectrum_features)


def _texture(n: int, seed: int = 0, h: int = 48, w: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w)).astype(np.float32)


def test_the_spectrum_judge_sees_blur_in_the_high_frequencies_only():
    sharp = _texture(4)
    blurred = np.stack([cv2.GaussianBlur(g, (0, 0), 1.5) for g in sharp])
    fs, fb = spectrum_features(sharp), spectrum_features(blurred)
    nr, nt = SPECTRUM_BINS
    assert fs.shape == (4, nr * nt)
    loss = (fs - fb).reshape(4, nr, nt).mean((0, 2))  # log power lost per radial bin, low to high
    assert loss[-1] > 3.0 and loss[-1] > loss[1] + 2.0  # the finest scales lose most
    # each window standardised: brightness and contrast change nothing
    assert np.allclose(spectrum_features(sharp * 0.5 + 40), fs, atol=1e-3)


def test_the_spectrum_judge_reads_orientation():
    y, x = np.mgrid[0:48, 0:80]
    vertical_stripes = (128 + 100 * np.sin(2 * np.pi * x / 6))[None].astype(np.float32)  # varies along x
    horizontal_stripes = (128 + 100 * np.sin(2 * np.pi * y / 6))[None].astype(np.float32)
    a = spectrum_features(vertical_stripes).reshape(SPECTRUM_BINS)
    b = spectrum_features(horizontal_stripes).reshape(SPECTRUM_BINS)
    # orientation bin 0 holds angle 0 (frequencies along x), the middle bin 90° (along y)
    mid = SPECTRUM_BINS[1] // 2
    assert a[:, 0].max() > a[:, mid].max() + 5 and b[:, mid].max() > b[:, 0].max() + 5


def test_the_gabor_judge_answers_where_and_in_which_direction_the_texture_lies():
    rows, cols = GABOR_GRID
    y, x = np.mgrid[0:96, 0:160]
    img = np.full((96, 160), 128.0, np.float32)
    img[:, :64] += (60 * np.sin(2 * np.pi * x[:, :64] / 8)).astype(np.float32)  # stripes in the left two fifths
    f = gabor_features(img[None]).reshape(12, rows, cols)
    scale8_across = f[4]  # wavelength 8, orientation 0: stripes that vary along x
    scale8_along = f[6]  # wavelength 8, orientation 90°
    assert scale8_across[:, :2].min() > scale8_across[:, 3:].max() + 2  # where the stripes are
    assert scale8_across[:, 0].mean() > scale8_along[:, 0].mean() + 2  # and which way they run
    with pytest.raises(ValueError, match="cells"):
        gabor_features(np.zeros((1, 50, 80), np.float32))


def test_the_pixel_judge_is_the_standardised_small_window():
    g = _texture(3, seed=1)
    f = pixel_features(g)
    assert f.shape == (3, 24 * 40)
    assert np.allclose(f.mean(1), 0, atol=1e-5) and np.allclose(f.std(1), 1, atol=1e-3)
    assert np.allclose(pixel_features(g * 2 + 10), f, atol=1e-4)
    assert pixel_features(np.zeros((0, 48, 80))).shape == (0, 960)
