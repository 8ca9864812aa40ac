"""One decoded video frame as the tracker, the detector and the editor read and write it.

:func:`frame_access` gives the frame's 8-bit luma (for the tracker), its RGB (for the
detector), a reader and a writer of RGB regions (for the editor), and the pixels to encode
afterwards, in the frame's own format: 8-bit 4:2:0 through :class:`smilecore.video_yuv.Yuv`,
other planar YUV through :class:`smilecore.video_planar.PlanarFrame` (only the face's region is
converted, and only changed samples are written back), anything else through RGB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .pixels import to_8bit
from .video_planar import planar_io
from .video_streams import is_deep
from .video_yuv import Yuv, yuv_coeffs


@dataclass
class FrameAccess:
    """What the tracker, the detector and the editor need of one frame."""

    grey: np.ndarray  #: (H,W) uint8 luma as decoded
    rgb: Callable[[], np.ndarray]  #: the whole frame as 8-bit RGB (for the detector)
    get_region: Callable  #: box -> RGB pixels of that box
    put_region: Callable  #: (box, old, new) -> writes the changed pixels back
    pixels: object  #: what is encoded: an I420 array, a PlanarFrame or an RGB array
    pix_fmt: str  #: its pixel format
    nbytes: int  #: memory the frame holds while it waits


def frame_access(fr, yuv_cache: dict) -> FrameAccess:
    """Open a decoded ``av.VideoFrame`` for editing.  ``yuv_cache`` keeps the colour converters
    between frames.  The luma of an 8-bit 4:2:0 frame is a view of the plane the edit writes into
    (its ``base`` is set): a caller that reads it after the frame is edited copies it first."""
    w, h = fr.width, fr.height
    fmt = fr.format.name
    if fmt in ("yuv420p", "yuvj420p") and w % 2 == 0 and h % 2 == 0:
        arr = fr.to_ndarray()  # (H*3/2, W) I420
        Y = arr[:h]
        flat, q = arr.reshape(-1), (h // 2) * (w // 2)  # (a chroma plane is not whole rows of w where h % 4 == 2)
        U = flat[h * w:h * w + q].reshape(h // 2, w // 2)
        V = flat[h * w + q:].reshape(h // 2, w // 2)
        key = (fr.colorspace, fmt, getattr(fr, "color_range", 0))
        if key not in yuv_cache:
            kr, kb = yuv_coeffs(fr.colorspace, h)
            yuv_cache[key] = Yuv(kr, kb, full=fmt == "yuvj420p" or getattr(fr, "color_range", 0) == 2)
        conv = yuv_cache[key]

        def get_region(box):
            x0, y0, x1, y1 = box
            x1 -= (x1 - x0) % 2
            y1 -= (y1 - y0) % 2
            return conv.to_rgb(Y[y0:y1, x0:x1], U[y0 // 2:y1 // 2, x0 // 2:x1 // 2], V[y0 // 2:y1 // 2, x0 // 2:x1 // 2])

        def put_region(box, old, new):
            x0, y0, x1, y1 = box
            changed = np.any(old != new, axis=2)
            if not changed.any():
                return
            y_new, u_new, v_new = conv.from_rgb(new)
            np.copyto(Y[y0:y1, x0:x1], y_new, where=changed)
            c2 = changed.reshape(changed.shape[0] // 2, 2, changed.shape[1] // 2, 2).any(axis=(1, 3))
            np.copyto(U[y0 // 2:y1 // 2, x0 // 2:x1 // 2], u_new, where=c2)
            np.copyto(V[y0 // 2:y1 // 2, x0 // 2:x1 // 2], v_new, where=c2)

        return FrameAccess(Y, lambda: cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_I420), get_region, put_region,
                           arr, fmt if fmt == "yuv420p" else "yuvj420p", arr.nbytes)
    # other planar YUV (4:2:2, 4:4:4, 9..16-bit, odd sizes): edited in their own planes too
    planar = planar_io(fr)
    if planar is not None:  # (its grey is a copy: edits do not reach it)
        nbytes = sum(p.nbytes for p in (planar.y, planar.u, planar.v)) + planar.grey.nbytes
        return FrameAccess(planar.grey, planar.rgb8, planar.get_region, planar.put_region, planar, planar.format, nbytes)
    rgb_full = fr.to_ndarray(format="rgb48le" if is_deep(fmt) else "rgb24")
    rgb8_full = to_8bit(rgb_full)
    grey = cv2.cvtColor(rgb8_full, cv2.COLOR_RGB2GRAY)

    def get_region_rgb(box):
        x0, y0, x1, y1 = box
        return rgb_full[y0:y1, x0:x1].copy()

    def put_region_rgb(box, old, new):
        x0, y0, x1, y1 = box
        rgb_full[y0:y1, x0:x1] = new

    nbytes = rgb_full.nbytes + (rgb8_full.nbytes if rgb8_full is not rgb_full else 0) + grey.nbytes
    return FrameAccess(grey, lambda: rgb8_full, get_region_rgb, put_region_rgb, rgb_full,
                       "rgb48le" if rgb_full.dtype == np.uint16 else "rgb24", nbytes)
