"""16-bit PNG and TIFF photos, which Pillow reads only in part: read with all their bits by OpenCV.

:func:`is_16bit` tells such a file from the others (a 16-bit CMYK or Lab TIFF is left to Pillow, which
reads it in 8 bits); :func:`load_16bit` reads it upright. OpenCV's TIFF decoder applies the orientation
tag itself and its PNG decoder does not: :func:`load_16bit` asks once per process which it does
(:func:`_opencv_turns`) rather than trusting a version.
"""
from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import InputError, reason


def sample_bits(im: Image.Image) -> tuple:
    """A TIFF's bits per sample, one per sample (``()`` when it does not say, or is no TIFF)."""
    bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None
    return () if bits is None else bits if isinstance(bits, tuple) else (bits,)


def is_16bit(path: Path, im: Image.Image) -> bool:
    """Whether ``im`` (opened by PIL from ``path``) is a 16-bit PNG or a 16-bit grey or RGB TIFF, which OpenCV
    reads (:func:`load_16bit`) with all its bits."""
    if im.format == "PNG":
        try:
            with open(path, "rb") as f:
                head = f.read(26)
            return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16
        except OSError:
            return False
    if im.format == "TIFF":
        bits = sample_bits(im)
        photometric = im.tag_v2.get(262) if hasattr(im, "tag_v2") else None
        if photometric not in (None, 0, 1, 2):  # (16-bit CMYK, Lab...: OpenCV cannot; Pillow reads it, in 8 bits)
            return False
        return bool(bits) and all(b == 16 for b in bits)
    return False


def load_16bit(path: Path, name: str, orientation: int, kind: str) -> np.ndarray:
    """The 16-bit photo at ``path`` (called ``name`` in errors; ``kind``: "PNG" or "TIFF", as Pillow named its
    format) upright by its EXIF ``orientation``: uint16
    ``(H, W)`` grey, ``(H, W, 2)`` grey + alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with any path on any OS, unlike cv2.imread
        with _opencv_quiet():  # (a file it cannot read: our one line, not OpenCV's log lines too)
            arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except Exception as exc:
        raise InputError(f"{name}: cannot read the 16-bit image ({reason(exc)})") from None
    if arr is None:
        raise InputError(f"{name}: the 16-bit image data is corrupt or truncated")
    if arr.dtype != np.uint16:
        raise InputError(f"{name}: unsupported sample type {arr.dtype}; use 8- or 16-bit RGB or grayscale")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4 and _png_colour_type(path) == 4:
        arr = arr[:, :, [0, 3]]  # grey + alpha, which OpenCV widens to BGRA: keep it grey + alpha
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    elif arr.ndim != 2:
        raise InputError(f"{name}: unsupported 16-bit layout with {arr.shape[2]} channels")
    if not _opencv_turns(kind):  # (its TIFF decoder already did, even with IMREAD_UNCHANGED)
        arr = orient_array(arr, orientation)
    return np.ascontiguousarray(arr)


@contextlib.contextmanager
def _opencv_quiet():
    """OpenCV's log lines (``[ERROR] ... imdecode_``) off for a block."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(old)


@functools.lru_cache(maxsize=None)
def _opencv_turns(kind: str) -> bool:
    """Whether OpenCV's decoder of ``kind`` ("TIFF", "PNG") applies a 16-bit image's orientation tag itself
    (OpenCV 5's TIFF decoder does): asked of a 3 x 2 image tagged "turned 90°", once per process."""
    if not kind:
        return False
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.arange(6, dtype=np.uint16).reshape(2, 3)).save(buf, kind, exif=exif)
    arr = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    return arr is not None and arr.shape[:2] == (3, 2)


def _png_colour_type(path: Path) -> int | None:
    """The colour type byte of a PNG's header (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[12:16] == b"IHDR" else None


def orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``(H, W[, C])`` array, like ``ImageOps.exif_transpose``."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:  # transpose
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:  # rotate 90° clockwise
        return np.swapaxes(arr, 0, 1)[:, ::-1]
    if orientation == 7:  # transverse
        return np.swapaxes(arr, 0, 1)[::-1, ::-1]
    if orientation == 8:  # rotate 90° counter-clockwise
        return np.swapaxes(arr, 0, 1)[::-1]
    return arr
