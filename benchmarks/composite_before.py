"""The composite as the engine ran it up to commit f1ec605 (2026-12-06), kept only as the baseline row of
``python -m benchmarks face``: the same arithmetic as :func:`smilecore.composite.composite_face`, written
with a fresh array for each step, crop coordinates for every pixel of the crop square's box, and numpy
broadcasting over the colour axis. Not used by the engine.
"""
from __future__ import annotations

import cv2
import numpy as np

from smilecore.align import Alignment
from smilecore.composite import FEATHER_CENTER, FEATHER_RADII, FEATHER_WIDTH, _max_value, _put
from smilecore.contract import SHADE_OFFSET
from smilecore.match import add_grain, white_point_gain
from smilecore.network_io import blend, shaded


def _feather_before(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    cx, cy = (FEATHER_CENTER[0] * size - 0.5, FEATHER_CENTER[1] * size - 0.5)
    rx, ry = FEATHER_RADII[0] * size, FEATHER_RADII[1] * size
    d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    t = np.clip((1.0 - d) / FEATHER_WIDTH, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def composite_before(
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
    """:func:`smilecore.composite.composite_face` as it was up to f1ec605 (same arguments and result)."""
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
    weight = _feather_before(u, v, s)
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
