"""A drawn open smiling mouth: the teeth the teacher pastes and the student samples.

Real donor mouths (``donors.DonorBank``) differ in where each tooth sits, so a student trained
with an L1 loss against many of them learns their average: a smooth white band without a
single tooth edge (model 1.1.0).  This module draws *one* mouth interior, procedurally (no
dataset pixels), in the donor patch frame of ``training.donors`` (128 × 96, mouth corners at
(24, 48) and (104, 48)):

* upper teeth from the central incisors out to the second premolars, their widths in the
  proportions of a front view of the upper arch (8.5 / 6.3 / 5.0 / 4.0 / 3.1 mm), separated by
  thin dark gaps, each slightly convex (brighter in its middle), darker towards the mouth
  corners, a little translucent at the biting edge;
* below them the dark mouth cavity, darker at the corners, with a hint of tongue low in the middle;
* lip colour above the (hidden) tops of the teeth and beyond the mouth corners.

The teacher maps a target mouth onto the picture with a spline through the 20 lip points, the
lower lip placed by :func:`hanging_lips`.  Because the picture is fixed, where each tooth lands
is a smooth function of the target lip shape, which a small network can predict as picture
coordinates (``training.nets.TeethAtlas``) and then sample sharply.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .donors import PATCH_CORNERS, PATCH_H, PATCH_W, DonorBank

#: Lip landmarks 48-67 of the drawn mouth in patch px (the mean of the 16 best real donors, rounded).
MOUTH_LIPS = np.array([
    [24.0, 48.0], [38.3, 45.4], [53.1, 44.9], [64.0, 47.0], [74.9, 44.9], [89.7, 45.4],
    [104.0, 48.0], [90.7, 66.5], [76.0, 75.3], [64.0, 76.9], [52.0, 75.3], [37.3, 66.5],
    [28.5, 49.3], [52.8, 50.6], [64.0, 51.8], [75.2, 50.6], [99.5, 49.3], [75.8, 65.4],
    [64.0, 67.1], [52.2, 65.4],
], np.float32)

_CENTRE_X = float(PATCH_CORNERS[:, 0].mean())
_HALF_WIDTH = float(PATCH_CORNERS[1, 0] - PATCH_CORNERS[0, 0]) / 2.0
#: projected widths (mm) of the upper teeth from the midline outwards, front view
_TOOTH_MM = np.array([8.5, 6.3, 5.0, 4.0, 3.1])
_TEETH = np.array([236.0, 219.0, 202.0])  # the brightest enamel, RGB
_GAP = np.array([110.0, 88.0, 84.0])
_CAVITY = np.array([62.0, 30.0, 32.0])
_TONGUE = np.array([120.0, 60.0, 62.0])
_LIP = np.array([172.0, 84.0, 92.0])  # the real donors' mean lip ring is about (170, 80, 90)


def _curve(x: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Piecewise-linear y(x) through ``pts`` (sorted by x)."""
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


def _tooth_edges() -> np.ndarray:
    """x positions (patch px) of the gaps between upper teeth, midline included, both sides."""
    mm = np.cumsum(_TOOTH_MM)
    half = mm / mm[-1] * (_HALF_WIDTH - 2.5)
    return np.concatenate([_CENTRE_X - half[::-1], [_CENTRE_X], _CENTRE_X + half])


@lru_cache(maxsize=4)
def render_mouth(supersample: int = 4) -> np.ndarray:
    """The drawn mouth interior, uint8 [96, 128, 3] RGB (deterministic).

    Everything below the upper inner lip and between the mouth corners is mouth: the upper
    teeth hang from the lip (and go on for a few pixels above it, so a soft edge never shows
    lips inside the mouth), then the dark cavity, however far a target opens (see
    :func:`hanging_lips`).  Above that and beyond the corners: lip colour.
    """
    s = int(supersample)
    h, w = PATCH_H * s, PATCH_W * s
    ys, xs = (np.mgrid[0:h, 0:w] + 0.5) / s
    lips = MOUTH_LIPS.astype(np.float64)
    upper = _curve(xs, lips[[12, 13, 14, 15, 16]])  # inner upper lip
    lower = _curve(xs, lips[[12, 19, 18, 17, 16]])  # inner lower lip of the mean donor
    open_h = np.maximum(lower - upper, 0.0)
    side = np.clip(np.abs(xs - _CENTRE_X) / _HALF_WIDTH, 0.0, 1.0)
    fall = 1.0 - 0.50 * side**1.6  # the corners of a mouth are in shadow

    # upper teeth: from under the upper lip down to an incisal edge on the smile arc
    incisal = upper + 0.78 * open_h + 0.6
    # behind and below them the dark mouth, a little lighter low in the middle (the tongue).
    # Lower teeth were drawn there in a trial; blurred by the student's uncertain coordinates
    # they turned into a grey grille.
    tongue = np.exp(-(((xs - _CENTRE_X) / 14.0) ** 2)) * np.clip((ys - incisal - 3.0) / 8.0, 0.0, 1.0)
    img = _CAVITY * (1.0 - 0.45 * side[..., None] ** 2) + tongue[..., None] * (_TONGUE - _CAVITY)
    edges = _tooth_edges()
    idx = np.clip(np.searchsorted(edges, xs) - 1, 0, len(edges) - 2)
    left, right = edges[idx], edges[idx + 1]
    u = (xs - left) / np.maximum(right - left, 1e-6)  # 0..1 across each tooth
    corner = 1.2 * (2.0 * u - 1.0) ** 4  # rounded incisal corners
    inside = (xs > edges[0]) & (xs < edges[-1]) & (ys < incisal - corner) & (ys > upper - 8.0)
    convex = 0.82 + 0.18 * np.clip(np.sin(np.pi * u), 0.0, 1.0) ** 0.6
    depth = np.clip((incisal - ys) / np.maximum(incisal - upper, 1e-3), 0.0, 1.0)
    bite = 0.88 + 0.12 * np.clip(depth / 0.22, 0.0, 1.0)  # translucent biting edge
    gum = 1.0 - 0.25 * np.clip((upper + 1.0 - ys) / 9.0, 0.0, 1.0)  # in the lip's shadow above the lip line
    tone = (convex * fall * bite * gum)[..., None] * _TEETH
    img[inside] = tone[inside]
    # soft gaps between the teeth, widening towards the corners
    gap_w = 0.35 + 0.5 * side
    dist = np.min(np.abs(xs[..., None] - edges[None, None, :]), axis=-1)
    gap = 0.55 * np.clip(1.0 - dist / gap_w, 0.0, 1.0) * inside
    img = img * (1.0 - gap[..., None]) + _GAP * fall[..., None] * gap[..., None]
    # lips: above the hidden tops of the upper teeth and beyond the mouth corners
    outside = (ys < upper - 8.0) | (np.abs(xs - _CENTRE_X) > _HALF_WIDTH)
    img[outside] = _LIP
    img = cv2.resize(np.clip(img, 0, 255).astype(np.float32), (PATCH_W, PATCH_H), interpolation=cv2.INTER_AREA)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


#: (lower, upper) lip index pairs among landmarks 48-67 (0-19), outer lips then inner lips
_LOWER_UPPER = np.array([[7, 5], [8, 4], [9, 3], [10, 2], [11, 1], [17, 15], [18, 14], [19, 13]])


def hanging_lips(picture_lips: np.ndarray, target_lips: np.ndarray) -> np.ndarray:
    """Where a target mouth's 20 lip points should land in the drawn picture.

    The upper lip and the corners land on the picture's own; each lower-lip point lands as far
    below its upper-lip partner as it is in the target, in the picture's scale.  So the teeth
    keep their size and hang from the upper lip, and a mouth that opens further shows more of
    the dark mouth below, instead of stretched teeth.
    """
    out = np.asarray(picture_lips, np.float64).copy()
    t = np.asarray(target_lips, np.float64)
    scale = np.linalg.norm(out[6] - out[0]) / max(1e-6, float(np.linalg.norm(t[6] - t[0])))
    out[_LOWER_UPPER[:, 0]] = out[_LOWER_UPPER[:, 1]] + (t[_LOWER_UPPER[:, 0]] - t[_LOWER_UPPER[:, 1]]) * scale
    return out


def drawn_bank() -> DonorBank:
    """A one-donor :class:`training.donors.DonorBank` holding the drawn mouth (a colour donor)."""
    return DonorBank(render_mouth()[None], MOUTH_LIPS[None].copy(), np.zeros(1, bool), hanging=True,
                     ring_lum=float(_LIP.mean()))
