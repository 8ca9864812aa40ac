"""YUV 4:2:0 frames: the matrix a frame uses, and its regions to RGB and back.

:func:`yuv_matrices` gives the RGB <-> Y'CbCr affine matrices for any bit depth and range
(also used by :mod:`smilecore.video_planar` for 4:2:2, 4:4:4 and 9..16-bit frames)."""
from __future__ import annotations

import cv2
import numpy as np


def yuv_coeffs(colorspace: int | None, height: int) -> tuple[float, float]:
    """(Kr, Kb) of the frame's matrix: BT.709 (1) for HD, BT.601 otherwise or when stated."""
    if colorspace == 1:
        return 0.2126, 0.0722
    if colorspace in (5, 6):
        return 0.299, 0.114
    if colorspace in (9, 10):
        return 0.2627, 0.0593
    return (0.2126, 0.0722) if height >= 720 else (0.299, 0.114)


def yuv_matrices(kr: float, kb: float, full: bool, bits: int = 8,
                 rgb_max: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb2yuv, yuv2rgb)``: 3x4 float32 affine matrices (for ``cv2.transform``) between RGB
    samples in ``0..rgb_max`` and the Y'CbCr samples of a ``bits``-deep stream: limited range
    (Y' 16..235, C 16..240, times ``2**(bits-8)``) or full range (``0..2**bits-1``, chroma
    centred on ``2**(bits-1)``), as ITU-T H.273 defines them."""
    kg = 1 - kr - kb
    s = float(1 << (bits - 8))
    if full:
        top = float((1 << bits) - 1)
        y_off, y_scale, c_scale = 0.0, top, top
    else:
        y_off, y_scale, c_scale = 16.0 * s, 219.0 * s, 224.0 * s
    # RGB (0..rgb_max) -> Y'CbCr of the stream
    fwd = np.array([[kr, kg, kb],
                    [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                    [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]], np.float64)
    fwd = fwd * np.array([[y_scale], [c_scale], [c_scale]]) / rgb_max
    off = np.array([y_off, 128.0 * s, 128.0 * s])
    rgb2yuv = np.hstack([fwd, off[:, None]]).astype(np.float32)
    inv = np.linalg.inv(fwd)
    yuv2rgb = np.hstack([inv, (-inv @ off)[:, None]]).astype(np.float32)
    return rgb2yuv, yuv2rgb


class Yuv:
    """YUV 4:2:0 <-> RGB for a region, with the frame's matrix and range (one OpenCV call each way)."""

    def __init__(self, kr: float, kb: float, full: bool):
        self.rgb2yuv, self.yuv2rgb = yuv_matrices(kr, kb, full)

    def to_rgb(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        h, w = y.shape
        uu = cv2.resize(u, (w, h), interpolation=cv2.INTER_LINEAR)
        vv = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.transform(cv2.merge([np.ascontiguousarray(y), uu, vv]), self.yuv2rgb)  # rounds and saturates

    def from_rgb(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        yuv = cv2.transform(np.ascontiguousarray(rgb), self.rgb2yuv)
        h, w = yuv.shape[:2]
        y, u, v = cv2.split(yuv)
        return (y, cv2.resize(u, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                cv2.resize(v, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
