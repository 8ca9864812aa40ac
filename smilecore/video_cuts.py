"""Where a video cuts from one shot to another: a cheap test on each frame's grey thumbnail.

:func:`thumbnail` reduces a frame's luma to :data:`CUT_THUMB` pixels, and :func:`is_cut` tells two
consecutive thumbnails of different shots from the same shot's, whatever moves in it (see
:data:`CUT_DIFF`).  The tracker (:mod:`smilecore.video_track`) starts a new shot there.
"""
from __future__ import annotations

import cv2
import numpy as np

#: A cut (a new shot) is a frame whose CUT_THUMB-sized grey thumbnail differs from the previous
#: frame's by more than CUT_DIFF levels on average and correlates with it below CUT_CORR. (On
#: 640 × 360 frames of the sample: cuts to other pictures or to her at another framing 54–106
#: levels, correlation under 0.25; a pan of 8 / 20 px a frame 14 / 33 and 0.94 / 0.72; a 5 % zoom
#: 17 and 0.91; a flash 72 and 0.98.) The detector runs on it at once; a tracked face it does not
#: find there is gone at once, not faded out over the new shot, and a face it finds smiles at
#: once, as in the first frame.
CUT_THUMB = (32, 18)
CUT_DIFF = 30.0
CUT_CORR = 0.5
#: ... unless the thumbnails correlate at CUT_SHIFT_CORR or more once one is shifted by up to
#: CUT_SHIFT (x, y) thumbnail pixels: a face or a camera moving fast (a person crossing a 320 × 240
#: frame in 8 frames: 0.97 shifted, 0.2–0.3 not; the other framings and pictures above 0.44 at most).
CUT_SHIFT = (4, 2)
CUT_SHIFT_CORR = 0.8


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """A frame's (H,W) uint8 luma as a :data:`CUT_THUMB` float32 thumbnail (from every few pixels: a 4K
    frame's in 0.1 ms, not 7)."""
    step = max(1, min(grey.shape) // (4 * CUT_THUMB[1]))
    return cv2.resize(grey[::step, ::step], CUT_THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays (0 where either is flat)."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 1e-6 else 0.0


def _shifted_correlation(before: np.ndarray, after: np.ndarray) -> float:
    """The best correlation of two thumbnails over their overlaps when one is shifted by up to
    :data:`CUT_SHIFT` thumbnail pixels (the picture moved between the frames)."""
    h, w = before.shape
    sx, sy = CUT_SHIFT
    best = -1.0
    for dy in range(-sy, sy + 1):
        for dx in range(-sx, sx + 1):
            a = before[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            b = after[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            best = max(best, _correlation(a, b))
    return best


def is_cut(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether two frames' thumbnails are of different shots (see :data:`CUT_DIFF`)."""
    if float(np.abs(after - before).mean()) <= CUT_DIFF or _correlation(before, after) >= CUT_CORR:
        return False
    return _shifted_correlation(before, after) < CUT_SHIFT_CORR
