"""Planar YUV video frames edited in their own planes: only changed samples are rewritten.

:func:`planar_io` takes a decoded PyAV frame of a planar YUV format (4:2:0, 4:2:2, 4:4:0,
4:4:4; 8 bits or 9..16-bit little-endian; limited or full range) and gives a
:class:`PlanarFrame`: the 8-bit luma the tracker follows (:attr:`PlanarFrame.grey`), RGB
regions for the face editor (:meth:`PlanarFrame.get_region`: uint8 for 8-bit video, uint16 on
the full 0..65535 scale, like ``rgb48le``, for deeper video), the write-back of an edited region
(:meth:`PlanarFrame.put_region`: only luma samples whose pixel changed and chroma samples with
a changed pixel in their footprint are written) and the frame for the encoder
(:meth:`PlanarFrame.to_frame`, same pixel format).  Every other sample reaches the encoder
exactly as it was decoded: no RGB round trip for the frame as a whole.

The planes are copied once, from the decoder's buffers (which may be its reference pictures,
so are never written) into a new frame whose buffers the edits then write in place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .video_yuv import yuv_coeffs, yuv_matrices

#: Planar YUV formats handled: ``yuv[j]<420|422|440|444>p`` and their 9..16-bit ``le`` forms.
_FORMAT = re.compile(r"^yuv(j?)(420|422|440|444)p(?:(9|10|12|14|16)le)?$")
#: log2 of the chroma subsampling (horizontal, vertical) of each layout.
_SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "440": (0, 1), "444": (0, 0)}
#: RGB scale of the regions: 8-bit video gives uint8 0..255, deeper video uint16 0..65535.
RGB8_MAX, RGB16_MAX = 255.0, 65535.0


@dataclass(frozen=True)
class PlanarLayout:
    """What a pixel format name says: chroma subsampling (log2) and bits per sample."""

    name: str
    sx: int  #: log2 of the horizontal chroma subsampling (0 or 1)
    sy: int  #: log2 of the vertical chroma subsampling (0 or 1)
    bits: int  #: bits per sample (8..16)
    jpeg: bool  #: a ``yuvj*`` format (full range whatever the frame's tag says)

    @property
    def dtype(self) -> type:
        """numpy type of the samples."""
        return np.uint8 if self.bits == 8 else np.uint16


def planar_layout(name: str) -> PlanarLayout | None:
    """The :class:`PlanarLayout` of a pixel format name, or None if it is not one handled here."""
    m = _FORMAT.match(name)
    if m is None:
        return None
    sx, sy = _SUBSAMPLING[m.group(2)]
    return PlanarLayout(name, sx, sy, int(m.group(3) or 8), bool(m.group(1)))


class PlanarConverter:
    """Y'CbCr planes <-> RGB for one matrix, range, depth and subsampling (OpenCV calls only)."""

    def __init__(self, kr: float, kb: float, full: bool, bits: int, sx: int, sy: int):
        self.bits, self.sx, self.sy, self.full = bits, sx, sy, full
        self.top = (1 << bits) - 1
        self.rgb_max = RGB8_MAX if bits == 8 else RGB16_MAX
        self.rgb2yuv, self.yuv2rgb = yuv_matrices(kr, kb, full, bits, self.rgb_max)

    def to_rgb(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, off: tuple[int, int]) -> np.ndarray:
        """RGB of the luma block ``y`` (h, w); ``u``, ``v`` are chroma blocks covering it, whose
        sample (0, 0) sits ``off = (dx, dy)`` luma pixels before ``y``'s first one, on the grid
        of the subsampling (chroma is upsampled linearly, centred siting)."""
        h, w = y.shape
        dx, dy = off
        if self.sx or self.sy:
            ch, cw = u.shape
            size = (cw << self.sx, ch << self.sy)
            u = cv2.resize(u, size, interpolation=cv2.INTER_LINEAR)
            v = cv2.resize(v, size, interpolation=cv2.INTER_LINEAR)
        u = u[dy:dy + h, dx:dx + w]
        v = v[dy:dy + h, dx:dx + w]
        yuv = cv2.merge([np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v)])
        return cv2.transform(yuv, self.yuv2rgb)  # rounds and saturates to the RGB type's range

    def from_rgb(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Y, U, V planes of an RGB block whose size is a multiple of the subsampling
        (chroma: the rounded mean of each block of pixels)."""
        yuv = cv2.transform(np.ascontiguousarray(rgb), self.rgb2yuv)
        if self.bits > 8:
            np.minimum(yuv, self.top, out=yuv)  # full-range chroma can round to 2**bits
        y, u, v = cv2.split(yuv)
        if self.sx or self.sy:
            h, w = y.shape
            size = (w >> self.sx, h >> self.sy)
            u = cv2.resize(u, size, interpolation=cv2.INTER_AREA)
            v = cv2.resize(v, size, interpolation=cv2.INTER_AREA)
        return y, u, v


@lru_cache(maxsize=32)
def converter(kr: float, kb: float, full: bool, bits: int, sx: int, sy: int) -> PlanarConverter:
    """A shared :class:`PlanarConverter` (the matrices are made once per stream kind)."""
    return PlanarConverter(kr, kb, full, bits, sx, sy)


def _plane_view(plane, dtype: type) -> np.ndarray:
    """(height, width) numpy view of a PyAV plane's buffer (rows ``line_size`` bytes apart)."""
    item = np.dtype(dtype).itemsize
    flat = np.frombuffer(plane, dtype)
    return flat.reshape(plane.height, plane.line_size // item)[:, :plane.width]


def _changed(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """(h, w) uint8 mask, 255 where any channel of ``new`` differs from ``old``."""
    d = cv2.absdiff(np.ascontiguousarray(old), np.ascontiguousarray(new))
    return cv2.compare(d[:, :, 0] | d[:, :, 1] | d[:, :, 2], 0, cv2.CMP_GT)


def _write(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> None:
    """``dst[mask] = src[mask]`` in place (``dst`` may be a strided view of a frame's plane)."""
    try:
        out = cv2.copyTo(src, mask, dst)
        if np.shares_memory(out, dst):
            return
    except cv2.error:  # a layout OpenCV cannot wrap
        pass
    np.copyto(dst, src, where=mask > 0)  # numpy's slower way


def _grid(lo: int, hi: int, step: int, limit: int) -> tuple[int, int]:
    """``[lo, hi)`` widened to multiples of ``step`` (the end clamped to ``limit``)."""
    return lo - lo % step, min(limit, -(-hi // step) * step)


class PlanarFrame:
    """A planar YUV frame being edited: RGB regions out, changed samples back in."""

    def __init__(self, frame, layout: PlanarLayout, conv: PlanarConverter):
        import av

        self.layout = layout
        self.conv = conv
        self.width, self.height = frame.width, frame.height
        out = av.VideoFrame(frame.width, frame.height, layout.name)
        self._out = out
        self._tags = {a: getattr(frame, a, None) for a in ("colorspace", "color_range")}
        planes = []
        for src, dst in zip(frame.planes[:3], out.planes[:3]):
            view = _plane_view(dst, layout.dtype)
            np.copyto(view, _plane_view(src, layout.dtype))
            planes.append(view)
        self.y, self.u, self.v = planes
        bits = layout.bits
        #: 8-bit luma as decoded, for the tracker (a copy: edits do not reach it)
        self.grey: np.ndarray = (np.array(self.y) if bits == 8
                                 else cv2.convertScaleAbs(self.y, alpha=1.0 / (1 << (bits - 8))))

    @property
    def format(self) -> str:
        """The pixel format name (the input's, and :meth:`to_frame`'s)."""
        return self.layout.name

    @property
    def dtype(self) -> type:
        """numpy type of the RGB regions: uint8 for 8-bit video, uint16 (0..65535) for deeper."""
        return np.uint8 if self.layout.bits == 8 else np.uint16

    def _rgb(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """RGB of a frame box (any start and end; the chroma read reaches one sample beyond
        the box, so a pixel's value does not depend on the box it is read in)."""
        sx, sy = self.layout.sx, self.layout.sy
        cx0, cx1 = max(0, (x0 >> sx) - 1), min(self.u.shape[1], ((x1 - 1) >> sx) + 2)
        cy0, cy1 = max(0, (y0 >> sy) - 1), min(self.u.shape[0], ((y1 - 1) >> sy) + 2)
        off = (x0 - (cx0 << sx), y0 - (cy0 << sy))
        return self.conv.to_rgb(self.y[y0:y1, x0:x1], self.u[cy0:cy1, cx0:cx1], self.v[cy0:cy1, cx0:cx1], off)

    def _clip(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (int(c) for c in box)
        x0, y0 = max(0, x0), max(0, y0)
        return x0, y0, max(x0, min(self.width, x1)), max(y0, min(self.height, y1))

    def get_region(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """RGB (h, w, 3) of the frame box ``(x0, y0, x1, y1)`` (clipped to the frame; the
        region starts at ``(x0, y0)``), uint8 or uint16 as :attr:`dtype`."""
        x0, y0, x1, y1 = self._clip(box)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((y1 - y0, x1 - x0, 3), self.dtype)
        return self._rgb(x0, y0, x1, y1)

    def rgb8(self) -> np.ndarray:
        """The whole frame as 8-bit RGB (for face detection)."""
        rgb = self._rgb(0, 0, self.width, self.height)
        return rgb if rgb.dtype == np.uint8 else cv2.convertScaleAbs(rgb, alpha=1 / 257).reshape(rgb.shape)

    def put_region(self, box: tuple[int, int, int, int], old: np.ndarray, new: np.ndarray) -> None:
        """Write back an edited region: ``old`` as :meth:`get_region` gave it for ``box`` (only
        its start is used, clipped to the frame as there; the size is ``new``'s), ``new`` the
        edited pixels.  Luma samples are
        written where the pixel's RGB changed, chroma samples where any pixel they cover changed
        (computed from the block's new RGB; a block reaching outside the region takes the
        frame's current pixels there)."""
        changed = _changed(old, new)  # uint8, 255 where the pixel's RGB changed
        rows = np.flatnonzero(changed.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(changed.any(axis=0))
        bx, by = self._clip(box)[:2]
        sx, sy = self.layout.sx, self.layout.sy
        fx, fy = 1 << sx, 1 << sy
        # the changed pixels' bounding box, widened to whole chroma blocks (frame coordinates)
        ax0, ax1 = _grid(bx + int(cols[0]), bx + int(cols[-1]) + 1, fx, self.width)
        ay0, ay1 = _grid(by + int(rows[0]), by + int(rows[-1]) + 1, fy, self.height)
        h, w = new.shape[:2]
        if ax0 >= bx and ay0 >= by and ax1 <= bx + w and ay1 <= by + h:
            rgb = new[ay0 - by:ay1 - by, ax0 - bx:ax1 - bx]
            mask = changed[ay0 - by:ay1 - by, ax0 - bx:ax1 - bx]
        else:  # blocks reach outside the region: the frame's own pixels fill them
            rgb = self._rgb(ax0, ay0, ax1, ay1)
            mask = np.zeros(rgb.shape[:2], np.uint8)
            ix0, iy0, ix1, iy1 = max(ax0, bx), max(ay0, by), min(ax1, bx + w), min(ay1, by + h)
            rgb[iy0 - ay0:iy1 - ay0, ix0 - ax0:ix1 - ax0] = new[iy0 - by:iy1 - by, ix0 - bx:ix1 - bx]
            mask[iy0 - ay0:iy1 - ay0, ix0 - ax0:ix1 - ax0] = changed[iy0 - by:iy1 - by, ix0 - bx:ix1 - bx]
        hh, ww = mask.shape
        ph, pw = -hh % fy, -ww % fx  # an odd frame edge: pad to whole blocks
        if ph or pw:
            rgb = cv2.copyMakeBorder(np.ascontiguousarray(rgb), 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        y_new, u_new, v_new = self.conv.from_rgb(rgb)
        mask = np.ascontiguousarray(mask)
        _write(self.y[ay0:ay1, ax0:ax1], y_new[:hh, :ww], mask)
        if ph or pw:
            mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        if sx or sy:  # a chroma sample is written if any pixel it covers changed
            cmask = cv2.resize(mask, (mask.shape[1] >> sx, mask.shape[0] >> sy), interpolation=cv2.INTER_AREA)
            cmask = cv2.compare(cmask, 0, cv2.CMP_GT)
        else:
            cmask = mask
        cx0, cy0 = ax0 >> sx, ay0 >> sy
        ch, cw = cmask.shape
        _write(self.u[cy0:cy0 + ch, cx0:cx0 + cw], u_new, cmask)
        _write(self.v[cy0:cy0 + ch, cx0:cx0 + cw], v_new, cmask)

    def to_frame(self):
        """The frame for the encoder (an ``av.VideoFrame`` of the input's pixel format and size,
        with its colour tags), holding the edits; unchanged samples are the decoded ones."""
        for attr, val in self._tags.items():
            try:
                if val is not None:
                    setattr(self._out, attr, val)
            except (AttributeError, TypeError, ValueError):
                pass
        return self._out


def planar_io(frame) -> PlanarFrame | None:
    """A :class:`PlanarFrame` for a decoded ``av.VideoFrame`` of a planar YUV format (see
    :func:`planar_layout`), or None for any other (RGB, packed, semi-planar, gray, big-endian,
    hardware frames, bottom-up planes), which the caller edits through RGB."""
    fmt = frame.format
    layout = planar_layout(fmt.name if fmt is not None else "")
    if layout is None or frame.width <= 0 or frame.height <= 0:
        return None
    try:
        planes = frame.planes
        if len(planes) < 3 or any(p.line_size <= 0 for p in planes[:3]):
            return None
    except (TypeError, ValueError, RuntimeError):
        return None
    full = layout.jpeg or int(getattr(frame, "color_range", 0) or 0) == 2
    kr, kb = yuv_coeffs(frame.colorspace, frame.height)
    return PlanarFrame(frame, layout, converter(kr, kb, full, layout.bits, layout.sx, layout.sy))
