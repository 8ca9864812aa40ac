"""Points between a video's stored frames and the frames as shown (turned by its display rotation).

The engine detects faces on the upright view (``np.rot90(frame, k)``) and tracks and edits them
in the stored frame; reports give them upright, as photos are given after their EXIF turn.
"""
from __future__ import annotations

import numpy as np


def rotate_points(pts: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points of ``image`` (of ``shape`` (H, W)) to ``np.rot90(image, k)`` (the inverse of
    :func:`unrotate_points`)."""
    h, w = shape
    p = np.asarray(pts, np.float64).copy()
    for j in range(k % 4):
        width = w if j % 2 == 0 else h
        x, y = p[:, 0].copy(), p[:, 1].copy()
        p[:, 0], p[:, 1] = y, (width - 1) - x
    return p


def unrotate_points(pts: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points from ``np.rot90(image, k)`` back to ``image`` (of ``shape`` (H, W))."""
    h, w = shape
    p = np.asarray(pts, np.float64).copy()
    # image_j = rot90(image, j) has width w for even j, h for odd j; one rot90 step maps
    # (x, y) of image_j to (y, width_j - 1 - x) of image_{j+1}; undo the steps last first
    for j in range(k % 4 - 1, -1, -1):
        width = w if j % 2 == 0 else h
        x, y = p[:, 0].copy(), p[:, 1].copy()
        p[:, 0], p[:, 1] = (width - 1) - y, x
    return p
