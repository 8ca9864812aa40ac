"""Apply the network's outputs to the photo at its full resolution, on the face's region only.

For a photo pixel P with crop coordinates p = A·P (A: the face's alignment):

* flow: the crop's backward flow f(p) is carried into photo pixels through the inverse
  alignment's linear part, D(P) = A⁻¹_lin · f(A·P), and the photo is resampled (once, bicubic)
  at P + D(P);
* ``rgb`` and ``mask`` are resampled from the crop at p;
* edited = (1 − mask)·shaded + mask·rgb, where shaded = (warped + o)·exp(shade) − o (model
  contract 2; o = 8/255 of full scale; without a shade output, shaded = warped) and rgb first
  follows the photo's white point and grain (:mod:`smilecore.match`);
* the result is blended into the photo with a feathered face mask F(p): an ellipse inside the
  crop square times the face's own region (the outline of its landmarks, see
  :func:`smilecore.facemesh.edit_region`), exactly 0 outside either, so every pixel with F = 0
  (neck, collar, hair, background) stays bit-identical.
"""
from __future__ import annotations

import cv2
import numpy as np

from .align import Alignment
from .contract import SHADE_OFFSET
from .match import add_grain, white_point_gain
from .network_io import blend, shaded

#: The feathered edit region in crop fractions: an ellipse (centre, radii) and its soft border
#: width as a fraction of the radius.
FEATHER_CENTER = (0.50, 0.56)
FEATHER_RADII = (0.40, 0.42)
FEATHER_WIDTH = 0.18


def feather_weight(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Feather weight in [0,1] at crop pixel coordinates (u, v) of a ``size``² crop."""
    cx, cy = (FEATHER_CENTER[0] * size - 0.5, FEATHER_CENTER[1] * size - 0.5)
    rx, ry = FEATHER_RADII[0] * size, FEATHER_RADII[1] * size
    d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    t = np.clip((1.0 - d) / FEATHER_WIDTH, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _put(target: np.ndarray, values: np.ndarray, where: np.ndarray) -> None:
    """``target[where] = values[where]`` in place, for (h, w, C) arrays and an (h, w) bool mask."""
    item = target.itemsize
    if target.strides[2] == item and target.strides[1] == item * target.shape[2]:
        # pixels stored contiguously (a view of a photo without alpha): OpenCV writes into the view
        # itself, about 50 × faster than numpy's broadcast ``where``
        cv2.copyTo(values, where.astype(np.uint8), target)
    else:
        np.copyto(target, values, where=where[..., None])


def _max_value(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def composite_face(
    photo: np.ndarray,
    alignment: Alignment,
    rgb: np.ndarray,
    mask: np.ndarray,
    flow: np.ndarray,
    out: np.ndarray | None = None,
    match_photo: bool = True,
    face_area: np.ndarray | None = None,
    shade: np.ndarray | None = None,
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Blend one face's network outputs into ``out`` (default: ``photo`` itself), in place.

    ``photo`` is (H,W,C) uint8/uint16 with C in 1..4 (C = 2 or 4: the last channel is alpha and
    is never changed; C ≤ 2: grey, the network's colour is reduced to luma).  ``rgb`` [3,S,S] in
    [-1,1], ``mask`` [1,S,S] or [S,S] in [0,1], ``flow`` [2,S,S] in crop pixels.  Pixels are read
    from ``photo`` and written to ``out``, so several faces can be composited from one source.
    ``match_photo``: the painted colours follow the photo's white point and grain (see
    :mod:`smilecore.match`); off, they are used exactly as the network gave them.  ``face_area``
    [S,S] in [0,1]: the face's own edit region in the crop (:func:`smilecore.facemesh.edit_region`);
    the edit is weighted by it and nothing changes where it is 0 (None: the ellipse alone).
    ``shade`` [1,S,S] or [S,S]: the log-luminance gain of the warped pixels (model contract 2).
    Returns the changed box ``(x0, y0, x1, y1)`` (exclusive end) and its float32 feather weights
    F, or None if the face lies outside the photo.
    """
    if out is None:
        out = photo
    h, w = photo.shape[:2]
    s = alignment.size
    x0, y0, x1, y1 = alignment.photo_region((h, w))
    if x1 <= x0 or y1 <= y0:
        return None
    a = alignment.matrix.astype(np.float64)
    inv_lin = alignment.inverse[:, :2].astype(np.float64)

    # crop coordinates of every pixel in the region
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    u = (a[0, 0] * xs + a[0, 1] * ys + a[0, 2]).astype(np.float32)
    v = (a[1, 0] * xs + a[1, 1] * ys + a[1, 2]).astype(np.float32)
    weight = feather_weight(u, v, s)
    if face_area is not None:  # bilinear, 0 beyond the crop: exactly 0 wherever its pixels around are 0
        weight *= cv2.remap(np.ascontiguousarray(face_area, dtype=np.float32), u, v, interpolation=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    rows = np.flatnonzero(weight.any(axis=1))
    cols = np.flatnonzero(weight.any(axis=0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    weight, u, v = (arr[r0:r1, c0:c1] for arr in (weight, u, v))
    xs, ys = xs[:, c0:c1], ys[r0:r1]
    x0, x1, y0, y1 = x0 + c0, x0 + c1, y0 + r0, y0 + r1
    u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)

    def sample_crop(field: np.ndarray) -> np.ndarray:
        """Bilinear sample of a [C,S,S] crop field at (u, v); returns (h, w, C)."""
        f = np.ascontiguousarray(np.moveaxis(field.astype(np.float32), 0, -1))
        r = cv2.remap(f, u, v, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return r.reshape(r.shape[0], r.shape[1], -1)

    # the flow, mask and shade at once (one resampling pass over the region)
    fields = [flow.reshape(2, s, s), mask.reshape(1, s, s)] + ([] if shade is None else [shade.reshape(1, s, s)])
    sampled = sample_crop(np.concatenate(fields))
    fl, m = sampled[..., :2], sampled[..., 2:3]
    dx = inv_lin[0, 0] * fl[..., 0] + inv_lin[0, 1] * fl[..., 1]
    dy = inv_lin[1, 0] * fl[..., 0] + inv_lin[1, 1] * fl[..., 1]

    # source window: the region grown by the largest displacement
    pad = int(np.ceil(max(np.abs(dx).max(initial=0), np.abs(dy).max(initial=0)))) + 2
    sx0, sy0 = max(0, x0 - pad), max(0, y0 - pad)
    sx1, sy1 = min(w, x1 + pad), min(h, y1 + pad)
    channels = photo.shape[2]
    colour = 3 if channels >= 3 else 1
    src = photo[sy0:sy1, sx0:sx1, :colour].astype(np.float32)
    map_x = (xs + dx - sx0).astype(np.float32)
    map_y = (ys + dy - sy0).astype(np.float32)
    # bicubic, not bilinear: a fractional shift with bilinear weights blurs skin texture (about a fifth of
    # the fine detail was lost on the sample), and at whole-pixel shifts both give the pixel itself
    warped = cv2.remap(src, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    warped = warped.reshape(warped.shape[0], warped.shape[1], colour)

    top = _max_value(photo.dtype)
    if shade is not None:  # contract 2: the kept pixels' shading, resampled like the mask
        warped = shaded(warped, np.exp(sampled[..., 3:4]), np.float32(SHADE_OFFSET * top))
    orig = photo[y0:y1, x0:x1, :colour].astype(np.float32)
    painted = m[..., 0] > 0
    edited = warped
    if painted.any():
        # the painted colours are needed only around the mouth: a box around the mask, grown by half
        # its size on each side (room for the grain statistics of the skin around it)
        pr, pc = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
        gh, gw = (pr[-1] + 1 - pr[0]) // 2, (pc[-1] + 1 - pc[0]) // 2
        sub = (slice(max(0, pr[0] - gh), min(m.shape[0], pr[-1] + 1 + gh)),
               slice(max(0, pc[0] - gw), min(m.shape[1], pc[-1] + 1 + gw)))
        fr = np.ascontiguousarray(np.moveaxis(rgb.astype(np.float32), 0, -1))
        col = cv2.remap(fr, u[sub], v[sub], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        col = (col.reshape(col.shape[0], col.shape[1], 3) + 1.0) * (0.5 * top)
        if colour == 1:
            col = (0.299 * col[..., 0] + 0.587 * col[..., 1] + 0.114 * col[..., 2])[..., None]
        ms = m[sub]
        if match_photo:  # the photo's exposure, white balance and grain (smilecore.match)
            col *= white_point_gain(col, ms, orig, weight, m)
            add_grain(col, ms, orig[sub], seed=(x0, y0, x1, y1))
        warped[sub] = blend(warped[sub], col, ms)  # (warped is this call's own array)
    wgt = weight[..., None]
    blended = orig + wgt * (edited - orig)
    result = np.clip(np.rint(blended), 0, top).astype(photo.dtype)
    # only where this face reaches: elsewhere in its box ``out`` keeps what it holds (the photo, or
    # another face's edit already composited there)
    _put(out[y0:y1, x0:x1, :colour], result, weight > 0)
    return (int(x0), int(y0), int(x1), int(y1)), weight
