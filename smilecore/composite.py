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
#: A face whose skin around the mouth has less colour than this (the mean of |R − G| and |G − B| over
#: it, in 8-bit levels) gets a grey painted mouth; from the first number to the second the painting
#: keeps more and more of its colour, and all of it above. A grey face in a colour picture (a black-and-
#: white portrait in a colour collage) otherwise got cyan or pink teeth: the mouth network keeps the
#: colour of its whole patch, which reaches past such a face. Around the mouth, 99.5 % of the validation
#: split's 1,453 colour photos read 7 or more (a few nearly grey ones less), grey photos 0.
GREY_FACE = (1.0, 4.0)


def feather_weight(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Feather weight in [0,1] at crop pixel coordinates (u, v) of a ``size``² crop."""
    cx, cy = (FEATHER_CENTER[0] * size - 0.5, FEATHER_CENTER[1] * size - 0.5)
    rx, ry = FEATHER_RADII[0] * size, FEATHER_RADII[1] * size
    # the smoothstep of the ellipse's radial distance, in place on two arrays the size of u
    d = u - cx
    d /= rx
    d *= d
    e = v - cy
    e /= ry
    e *= e
    d += e
    np.sqrt(d, out=d)
    np.subtract(1.0, d, out=d)
    d /= FEATHER_WIDTH
    np.clip(d, 0.0, 1.0, out=d)  # t
    np.multiply(d, -2.0, out=e)
    e += 3.0  # 3 − 2t
    d *= d
    d *= e
    return d.astype(np.float32, copy=False)


def _crop_coords(matrix: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 crop coordinates (u, v) of the photo pixels x0 ≤ x < x1, y0 ≤ y < y1 (each (h, w)),
    summed in float64 (one scratch array for both)."""
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    scratch = np.empty((y1 - y0, x1 - x0), np.float64)
    out = []
    for r in (0, 1):
        np.add(matrix[r, 0] * xs, matrix[r, 1] * ys, out=scratch)
        scratch += matrix[r, 2]
        out.append(scratch.astype(np.float32))
    return out[0], out[1]


def _reach(alignment: Alignment, shape: tuple[int, int], face_area: np.ndarray | None) -> tuple[int, int, int, int]:
    """The photo box ``(x0, y0, x1, y1)`` (exclusive end, clipped to ``shape``) outside which the face's
    feather weight is 0: the crop box of the feather's ellipse, and of ``face_area``'s non-zero pixels
    grown by one (its bilinear reach), mapped into the photo."""
    s = alignment.size
    cx, cy = (FEATHER_CENTER[0] * s - 0.5, FEATHER_CENTER[1] * s - 0.5)
    rx, ry = FEATHER_RADII[0] * s, FEATHER_RADII[1] * s
    lo, hi = np.array([cx - rx, cy - ry]), np.array([cx + rx, cy + ry])
    if face_area is not None:
        a = np.asarray(face_area).reshape(s, s) > 0
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        if rows.size == 0:
            return 0, 0, 0, 0
        lo = np.maximum(lo, [cols[0] - 1, rows[0] - 1])
        hi = np.minimum(hi, [cols[-1] + 1, rows[-1] + 1])
        if np.any(hi <= lo):
            return 0, 0, 0, 0
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]])
    p = corners @ alignment.inverse[:, :2].T + alignment.inverse[:, 2]
    h, w = shape
    x0, x1 = (int(np.clip(f, 0, w)) for f in (np.floor(p[:, 0].min()) - 1, np.ceil(p[:, 0].max()) + 2))
    y0, y1 = (int(np.clip(f, 0, h)) for f in (np.floor(p[:, 1].min()) - 1, np.ceil(p[:, 1].max()) + 2))
    return x0, y0, x1, y1


def _channels(field: np.ndarray, n: int) -> np.ndarray:
    """An (h, w) field as (h, w, n), each channel a copy: contiguous, so that arithmetic with an (h, w, n)
    array runs at full speed (numpy broadcasts a trailing axis of 1 one pixel at a time)."""
    return field[..., None] if n == 1 else cv2.merge([field] * n)


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


def colour_share(skin: np.ndarray, weight: np.ndarray, top: float) -> float:
    """How much of the painted mouth's colour a face keeps (0…1, :data:`GREY_FACE`): ``skin`` (h, w, 3)
    the photo's pixels around the mouth, ``weight`` (h, w) the edit's weight there (the face is where
    it is over a half), ``top`` the photo's largest value."""
    face = weight > 0.5
    if not face.any():
        return 1.0
    px = skin[face].astype(np.float32)
    chroma = float((np.abs(px[:, 0] - px[:, 1]) + np.abs(px[:, 1] - px[:, 2])).mean()) * (127.5 / top)
    return float(np.clip((chroma - GREY_FACE[0]) / (GREY_FACE[1] - GREY_FACE[0]), 0.0, 1.0))


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
    x0, y0, x1, y1 = _reach(alignment, (h, w), face_area)
    if x1 <= x0 or y1 <= y0:
        return None
    # The arrays the size of the region below are as few as the arithmetic needs, float32 (one float64
    # scratch array for the coordinates) and mostly updated in place: a fresh array costs its page faults
    # on first touch, which on the engine's first face (and in a benchmark's cold rounds) took as long as
    # the arithmetic itself.
    u, v = _crop_coords(alignment.matrix.astype(np.float64), x0, x1, y0, y1)
    weight = feather_weight(u, v, s)
    if face_area is not None:  # bilinear, 0 beyond the crop: exactly 0 wherever its pixels around are 0
        weight *= cv2.remap(np.ascontiguousarray(face_area, dtype=np.float32), u, v, interpolation=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    rows = np.flatnonzero(weight.any(axis=1))
    cols = np.flatnonzero(weight.any(axis=0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    weight = weight[r0:r1, c0:c1]
    u, v = np.ascontiguousarray(u[r0:r1, c0:c1]), np.ascontiguousarray(v[r0:r1, c0:c1])
    x0, x1, y0, y1 = x0 + c0, x0 + c1, y0 + r0, y0 + r1

    # the crop flow in photo pixels, D = A⁻¹_lin · f, taken in the crop (linear, so it commutes with the
    # bilinear sampling), the mask and the shade, in one resampling pass: (h, w, 3 or 4). (Three or four
    # channels: OpenCV resamples two-channel images by another rule, a little apart from this one.)
    flow_hw = cv2.merge([np.asarray(c, np.float32) for c in flow.reshape(2, s, s)])
    moved = cv2.transform(flow_hw, alignment.inverse[:, :2].astype(np.float64))
    fields = cv2.merge([moved[..., 0], moved[..., 1], np.asarray(mask, np.float32).reshape(s, s)]
                       + ([] if shade is None else [np.asarray(shade, np.float32).reshape(s, s)]))
    sampled = cv2.remap(fields, u, v, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    where = np.ascontiguousarray(sampled[..., :2])  # becomes the photo positions the warp reads
    m = sampled[..., 2]
    # source window: the region grown by the largest displacement
    pad = int(np.ceil(max(-where.min(initial=0), where.max(initial=0)))) + 2
    sx0, sy0 = max(0, x0 - pad), max(0, y0 - pad)
    sx1, sy1 = min(w, x1 + pad), min(h, y1 + pad)
    where[..., 0] += np.arange(x0 - sx0, x1 - sx0, dtype=np.float32)
    where[..., 1] += np.arange(y0 - sy0, y1 - sy0, dtype=np.float32)[:, None]
    channels = photo.shape[2]
    colour = 3 if channels >= 3 else 1
    src = photo[sy0:sy1, sx0:sx1, :colour].astype(np.float32)
    # bicubic, not bilinear: a fractional shift with bilinear weights blurs skin texture (about a fifth of
    # the fine detail was lost on the sample), and at whole-pixel shifts both give the pixel itself
    edited = cv2.remap(src, where, None, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    del src, where
    edited = edited.reshape(edited.shape[0], edited.shape[1], colour)

    top = _max_value(photo.dtype)
    if shade is not None:  # contract 2: the kept pixels' shading, resampled like the mask
        gain = np.exp(sampled[..., 3])
        shaded(edited, _channels(gain, colour), np.float32(SHADE_OFFSET * top), in_place=True)
    orig = photo[y0:y1, x0:x1, :colour]
    painted = m > 0
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
        else:
            keep = colour_share(orig[sub], weight[sub], top)
            if keep < 1.0:  # a grey face: a grey mouth
                luma = (0.299 * col[..., 0] + 0.587 * col[..., 1] + 0.114 * col[..., 2])[..., None]
                col = luma + np.float32(keep) * (col - luma)
        ms = m[sub][..., None]
        if match_photo:  # the photo's exposure, white balance and grain (smilecore.match)
            col *= white_point_gain(col, ms, orig, weight, m)
            add_grain(col, ms, orig[sub], seed=(x0, y0, x1, y1))
        edited[sub] = blend(edited[sub], col, ms)
    # orig + F·(edited − orig), rounded and clipped to the photo's range, in place
    edited -= orig
    edited *= _channels(weight, colour)
    edited += orig
    if photo.dtype == np.uint8:
        np.maximum(edited, 0.0, out=edited)
        result = cv2.convertScaleAbs(edited)  # rounds half to even and saturates at 255, as rint and clip
    else:
        np.rint(edited, out=edited)
        np.clip(edited, 0, top, out=edited)
        result = edited.astype(photo.dtype)
    result = result.reshape(edited.shape)
    # only where this face reaches: elsewhere in its box ``out`` keeps what it holds (the photo, or
    # another face's edit already composited there)
    _put(out[y0:y1, x0:x1, :colour], result, weight > 0)
    return (int(x0), int(y0), int(x1), int(y1)), weight
