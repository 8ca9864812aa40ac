"""YUV 4:2:0 frames: the matrix a frame uses, and its regions to RGB and back."""
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


class Yuv:
    """YUV 4:2:0 <-> RGB for a region, with the frame's matrix and range (one OpenCV call each way)."""

    def __init__(self, kr: float, kb: float, full: bool):
        kg = 1 - kr - kb
        y_off, y_scale, c_scale = (0.0, 255.0, 255.0) if full else (16.0, 219.0, 224.0)
        # RGB (0..255) -> Y'CbCr of the stream
        fwd = np.array([[kr, kg, kb],
                        [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                        [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]], np.float64)
        fwd = fwd * np.array([[y_scale], [c_scale], [c_scale]]) / 255.0
        off = np.array([y_off, 128.0, 128.0])
        self.rgb2yuv = np.hstack([fwd, off[:, None]]).astype(np.float32)
        inv = np.linalg.inv(fwd)
        self.yuv2rgb = np.hstack([inv, (-inv @ off)[:, None]]).astype(np.float32)

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
