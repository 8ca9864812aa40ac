"""The alignment template and the per-face similarity transforms.

This module holds the *one* definition of how a face is cropped for the smile
network.  The engine (``smilecore.pipeline``) and the training code
(``training.prepare``) both import it, so a model is always fed crops made the
same way it was trained on.

Coordinates are ``(x, y)`` in pixels, origin at the top-left pixel's centre
(OpenCV's convention).  A transform is a 2x3 float64 matrix ``A`` mapping photo
pixels to crop pixels: ``crop_xy = A[:, :2] @ photo_xy + A[:, 2]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Version of the template; stored in every model's metadata and checked on load.
TEMPLATE_VERSION = "smile-5pt-v1"

#: Default crop size S the shipped model works at.
CROP_SIZE = 256

#: Reference positions of dlib's five landmarks, as fractions of the crop size.
#: Order is dlib's 5-point model order: image-right eye outer corner, its inner
#: corner, image-left eye outer corner, its inner corner, bottom of the nose.
#: Derived from the Procrustes mean of dlib's 5-point landmarks on 385 UTKFace
#: faces, scaled so the eye centres are 0.30 S apart, then moved up so that the
#: chin (68-point landmark 8, mean 0.89 S) leaves room for an opening jaw.
TEMPLATE_5PT = np.array(
    [
        [0.710, 0.370],
        [0.590, 0.378],
        [0.290, 0.370],
        [0.410, 0.378],
        [0.500, 0.589],
    ],
    dtype=np.float64,
)


def template_points(size: int = CROP_SIZE) -> np.ndarray:
    """Return the five reference points in pixel coordinates of an ``size``² crop."""
    # fractions are of the crop extent; pixel centres run 0 .. size-1
    return TEMPLATE_5PT * size - 0.5


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama, no reflection) mapping ``src`` onto ``dst``.

    Both are ``(K, 2)`` arrays with K >= 2. Returns a 2x3 float64 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (K,2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / var_s)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map ``(K, 2)`` points through a 2x3 affine matrix."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class Alignment:
    """A face's place in the template: photo→crop affine, its inverse, and the crop size."""

    matrix: np.ndarray  #: 2x3, photo pixels -> crop pixels
    inverse: np.ndarray  #: 2x3, crop pixels -> photo pixels
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def photo_region(self, shape: tuple[int, int], margin: float = 0.0) -> tuple[int, int, int, int]:
        """Bounding box ``(x0, y0, x1, y1)`` (exclusive end) in the photo of the crop square,
        grown by ``margin`` crop pixels, clipped to a photo of ``shape = (h, w)``."""
        s = self.size
        corners = np.array([[-margin, -margin], [s + margin, -margin], [-margin, s + margin], [s + margin, s + margin]])
        p = apply_affine(self.inverse, corners - 0.5)
        h, w = shape
        x0 = int(np.clip(np.floor(p[:, 0].min()), 0, w))
        y0 = int(np.clip(np.floor(p[:, 1].min()), 0, h))
        x1 = int(np.clip(np.ceil(p[:, 0].max()) + 1, 0, w))
        y1 = int(np.clip(np.ceil(p[:, 1].max()) + 1, 0, h))
        return x0, y0, x1, y1


def align_face(landmarks5: np.ndarray, size: int = CROP_SIZE) -> Alignment:
    """Alignment of a face from its five dlib landmarks (photo pixels)."""
    m = estimate_similarity(landmarks5, template_points(size))
    return Alignment(matrix=m, inverse=invert_affine(m), size=size)


def extract_crop(image: np.ndarray, alignment: Alignment, border: int = cv2.BORDER_REFLECT101) -> np.ndarray:
    """Warp the face into its ``size``² crop.

    ``image`` is ``(H, W, C)`` (any dtype OpenCV can warp).  When the face is much
    larger than the crop, the photo is first reduced with area averaging so the
    crop does not alias.
    """
    m = alignment.matrix
    s = alignment.size
    was_3d = image.ndim == 3
    scale = alignment.scale
    if scale < 0.5:
        # shrink the face's region of the photo first (area filter), then warp the small copy
        x0, y0, x1, y1 = alignment.photo_region(image.shape[:2], margin=4)
        region = image[y0:y1, x0:x1]
        f = min(1.0, 2.0 * scale)
        small = cv2.resize(region, (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f))), interpolation=cv2.INTER_AREA)
        fx = small.shape[1] / region.shape[1]
        fy = small.shape[0] / region.shape[0]
        # small pixel (u,v) centre = region pixel ((u+0.5)/fx - 0.5, ...)
        to_photo = np.array([[1 / fx, 0, (0.5 / fx - 0.5) + x0], [0, 1 / fy, (0.5 / fy - 0.5) + y0]])
        m = m @ np.vstack([to_photo, [0, 0, 1]])
        image = small
    out = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=border)
    if out.ndim == 2 and was_3d:
        out = out[:, :, None]
    return out
