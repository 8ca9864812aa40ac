"""Synthetic 68-point landmark faces for the training tests (no dataset face is needed)."""
from __future__ import annotations

import numpy as np


def face_without_mouth(eye_x: tuple[float, float]) -> np.ndarray:
    """A plausible 68-point face in a 256 crop built from simple curves: jaw, brows, nose and eyes
    (their centres at x = ``eye_x``, y = 95); the mouth (points 48..67) is left at 0 for the caller."""
    lm = np.zeros((68, 2))
    t = np.linspace(-1, 1, 17)
    lm[0:17] = np.stack([128 + 95 * t, 100 + 125 * np.sqrt(1 - 0.8 * t**2)], 1)  # jaw
    lm[17:27] = np.stack([np.r_[np.linspace(50, 110, 5), np.linspace(146, 206, 5)], np.full(10, 75.0)], 1)
    lm[27:31] = np.stack([np.full(4, 128.0), np.linspace(100, 145, 4)], 1)
    lm[31:36] = np.stack([np.linspace(108, 148, 5), np.full(5, 152.0)], 1)
    eye = np.array([[-18, 0], [-8, -6], [8, -6], [18, 0], [8, 5], [-8, 5]], float)
    lm[36:42] = eye + [eye_x[0], 95]
    lm[42:48] = eye + [eye_x[1], 95]
    return lm
