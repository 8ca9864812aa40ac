"""Judges of other kinds for the realism test: other features of the same grey lower face.

Issue 15's realism will also be checked "with other features and judges", and these sessions found
that a change that makes our edits harder to tell for one kind of judge can make them easier for
another (docs/realism.md, thirty-second session: choosing per face, or blurring the painted mouth,
pleases one judge and not the next). So `evaluate` reads every edit with a panel: the realism test's
own HOG + LBP (:func:`training.realism.features`) and these three, each through the same
person-disjoint logistic regression:

* :func:`gabor_features`: the energy of a Gabor filter bank (wavelengths 4, 8 and 16 pixels, four
  orientations) over the window at twice the test's resolution, per cell of a 3 × 5 grid (log);
  oriented texture at three scales, a cousin of HOG at other scales;
* :func:`pixel_features`: the window's grey pixels themselves at 24 × 40, each window standardised
  (mean 0, spread 1): shape and shading, no texture;
* :func:`spectrum_features`: the window's power spectrum (Hann-windowed, each window standardised)
  in 8 radial × 6 orientation bins (log): how the image's contrast is spread over scales, the
  signature of blur, sharpening and drawn edges, with no notion of where they are.

Each takes grey windows (N, H, W) in 0…255, as :func:`training.realism.lower_face` times the luma
weights gives them, and returns float64 features (N, d).
"""
from __future__ import annotations

import cv2
import numpy as np

from .realism_cnn import standardise as _standardise  # each window: mean 0, spread 1

#: Gabor filter bank: (wavelength, σ) pairs in pixels of the doubled window, and the orientations.
GABOR_SCALES = ((4.0, 2.0), (8.0, 3.5), (16.0, 6.0))
GABOR_ORIENTATIONS = 4
GABOR_KERNEL = 21
#: Cells (rows, columns) the Gabor energies are averaged over.
GABOR_GRID = (3, 5)
#: (height, width) of the pixel judge's window.
PIXEL_PATCH = (24, 40)
#: Radial and orientation bins of the spectrum judge.
SPECTRUM_BINS = (8, 6)


def _gabor_bank() -> list[np.ndarray]:
    bank = []
    for wavelength, sigma in GABOR_SCALES:
        for k in range(GABOR_ORIENTATIONS):
            g = cv2.getGaborKernel((GABOR_KERNEL, GABOR_KERNEL), sigma, k * np.pi / GABOR_ORIENTATIONS, wavelength, 0.5, 0,
                                   ktype=cv2.CV_32F)
            bank.append(g - g.mean())  # no response to flat grey
    return bank


def gabor_features(grey: np.ndarray) -> np.ndarray:
    """Log mean |Gabor response| per filter and :data:`GABOR_GRID` cell of standardised grey windows
    (N, H, W; H and W divisible by the grid): (N, 12 · 15)."""
    g = _standardise(grey)
    n, h, w = g.shape
    rows, cols = GABOR_GRID
    if h % rows or w % cols:
        raise ValueError(f"a {h} × {w} window does not split into {rows} × {cols} cells")
    bank = _gabor_bank()
    out = np.empty((n, len(bank) * rows * cols))
    for i, im in enumerate(g):
        cells = [np.abs(cv2.filter2D(im, -1, k)).reshape(rows, h // rows, cols, w // cols).mean((1, 3)).ravel()
                 for k in bank]
        out[i] = np.log(np.concatenate(cells) + 1e-3)
    return out


def pixel_features(grey: np.ndarray) -> np.ndarray:
    """The grey windows resampled to :data:`PIXEL_PATCH` (area averaging), each standardised: (N, 960)."""
    h, w = PIXEL_PATCH
    small = np.stack([cv2.resize(np.asarray(g, np.float32), (w, h), interpolation=cv2.INTER_AREA) for g in grey]) \
        if len(grey) else np.zeros((0, h, w), np.float32)
    return _standardise(small).reshape(len(small), h * w).astype(np.float64)


def spectrum_features(grey: np.ndarray) -> np.ndarray:
    """Log mean power of standardised, Hann-windowed grey windows in :data:`SPECTRUM_BINS` (radius from
    0 to the Nyquist frequency of each axis, orientation over 0–180°; the zero frequency left out):
    (N, 48), radius-major."""
    g = _standardise(grey)
    n, h, w = g.shape
    nr, nt = SPECTRUM_BINS
    power = np.abs(np.fft.fftshift(np.fft.fft2(g * np.outer(np.hanning(h), np.hanning(w))), axes=(1, 2))) ** 2
    yy, xx = np.mgrid[-(h // 2): h - h // 2, -(w // 2): w - w // 2]
    radius = np.hypot(yy / (h / 2), xx / (w / 2))
    angle = np.mod(np.arctan2(yy, xx), np.pi)
    keep = radius > 0
    cell = (np.minimum((radius * nr).astype(int), nr - 1) * nt + np.minimum((angle / np.pi * nt).astype(int), nt - 1))[keep]
    count = np.maximum(np.bincount(cell, minlength=nr * nt), 1)
    return np.stack([np.log(np.bincount(cell, p[keep], nr * nt) / count + 1e-6) for p in power]) if n else np.zeros((0, nr * nt))
