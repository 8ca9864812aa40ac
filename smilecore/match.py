"""Make the painted inside of a mouth belong to its photo: exposure, white balance and grain.

The network paints the inside of an opened mouth (teeth, the dark behind them) from what it
learned on well-exposed, clean photos.  In a dark, tinted or noisy photo such a mouth glows
or looks pasted in.  Two rules, applied at the photo's own resolution by
:func:`smilecore.composite.composite_face`:

* **white point** (:func:`white_point_gain`): per colour channel, the painted mouth is never
  brighter than the brightest part of the face around it (the 99.5th percentile of the
  face's pixels, outside the painted area).  In a photo whose brightest pixel is 40 the teeth
  stay near 40; a warm cast (weak blue) gives warm teeth.  Well-exposed photos, whose faces
  reach near white, are left as they are.  The gain only ever darkens.
* **grain** (:func:`add_grain`): the painted pixels get Gaussian noise as strong as the fine
  grain of the skin around the mouth (less what the painting already has), from a generator
  seeded by the face's position, so the same photo always gives the same result.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Percentile of the face's own pixels taken as its white point.
WHITE_PERCENTILE = 99.5
#: Percentile of the painted mouth's pixels that must not exceed the white point.
PAINT_PERCENTILE = 95.0
#: Painted pixels: mask above this.  Face pixels for the statistics: mask below ``CLEAR``.
PAINTED, CLEAR = 0.5, 0.02
#: Standard deviation of (x − its 3×3 mean) for white noise of standard deviation 1.
_RESIDUAL_PER_SIGMA = float(np.sqrt(72.0) / 9.0)


def white_point_gain(painted: np.ndarray, mask: np.ndarray, face: np.ndarray, weight: np.ndarray,
                     face_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-channel gains in (0, 1] for the painted colours.

    ``painted`` (h, w, C) are the network's colours in the photo's scale and ``mask`` (h, w[, 1])
    its mask over the same pixels; ``face`` (H, W, C) the photo's own pixels over the face's
    region, ``weight`` (H, W) the face's feather weight and ``face_mask`` (H, W[, 1]) the mask
    there (default: ``mask``, when ``painted`` covers the whole region).
    """
    m = mask.reshape(mask.shape[0], mask.shape[1])
    fm = m if face_mask is None else face_mask.reshape(face_mask.shape[0], face_mask.shape[1])
    ones = np.ones(painted.shape[-1], np.float32)
    inside = m > PAINTED
    if inside.sum() < 4:
        return ones
    step = max(1, int(np.sqrt(fm.size / 20_000)))  # a sample is enough for a percentile
    fm, wt, fc = fm[::step, ::step], weight[::step, ::step], face[::step, ::step]
    around = (fm < CLEAR) & (wt > 0.5)
    if around.sum() < 64:
        return ones
    white = np.percentile(fc[around], WHITE_PERCENTILE, axis=0)
    bright = np.percentile(painted[inside], PAINT_PERCENTILE, axis=0)
    return np.clip(white / np.maximum(bright, 1e-6), 0.0, 1.0).astype(np.float32)


def add_grain(painted: np.ndarray, mask: np.ndarray, face: np.ndarray, seed: tuple[int, ...]) -> None:
    """Add noise to ``painted`` (in place) so that its fine grain matches the face's.

    Measured on the photo's pixels around the painted area (a box twice its size, mask below
    :data:`CLEAR`), per channel, robustly (median absolute deviation of the difference from a
    3×3 mean); the painting's own grain is subtracted in quadrature.  Only pixels whose mask
    is above :data:`CLEAR` change (below it the painting hardly shows).
    """
    m = mask.reshape(mask.shape[0], mask.shape[1])
    shown = m > CLEAR
    rows, cols = np.flatnonzero(shown.any(axis=1)), np.flatnonzero(shown.any(axis=0))
    if rows.size == 0:
        return
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    gh, gw = r1 - r0, c1 - c0
    R0, R1 = max(0, r0 - gh // 2), min(m.shape[0], r1 + gh // 2)
    C0, C1 = max(0, c0 - gw // 2), min(m.shape[1], c1 + gw // 2)
    skin = m[R0:R1, C0:C1] < CLEAR
    inside = m[r0:r1, c0:c1] > PAINTED
    if skin.sum() < 64 or inside.sum() < 16:
        return
    sigma_face = _grain_sigma(face[R0:R1, C0:C1], skin)
    box = painted[r0:r1, c0:c1]
    sigma_paint = _grain_sigma(box, inside)
    sigma = np.sqrt(np.maximum(sigma_face**2 - sigma_paint**2, 0.0)).astype(np.float32)
    if not np.any(sigma > 0):
        return
    rng = np.random.default_rng([abs(int(v)) for v in seed])
    where = shown[r0:r1, c0:c1]
    box[where] += rng.standard_normal((int(where.sum()), painted.shape[-1]), dtype=np.float32) * sigma


#: At most about this many pixels are looked at to measure grain (a sample is enough for a median).
_GRAIN_SAMPLES = 10_000


def _grain_sigma(pixels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per-channel standard deviation of white noise that would explain the fine grain of ``pixels`` at ``where``."""
    x = np.ascontiguousarray(pixels, dtype=np.float32)
    residual = x - cv2.blur(x, (3, 3), borderType=cv2.BORDER_REFLECT).reshape(x.shape)
    step = max(1, int(np.sqrt(where.sum() / _GRAIN_SAMPLES)))
    r = residual[::step, ::step][where[::step, ::step]]
    mad = np.median(np.abs(r - np.median(r, axis=0)), axis=0)
    return (1.4826 * mad / _RESIDUAL_PER_SIGMA).astype(np.float32)
