"""Writing photos: the format the extension names, with what the source carried.

:func:`save_image` keeps, where the format can hold them, the ICC profile, the EXIF block
(orientation reset to 1), the resolution, 16 bits per sample (PNG, TIFF), alpha (PNG, TIFF,
WebP) and a JPEG source's quantisation tables and chroma subsampling (so the result looks as
compressed as the original).  What :func:`smilecore.decode.load_image` read is passed in as
its :class:`~smilecore.decode.ImageInfo`.  Every write is atomic (:mod:`smilecore.atomic`).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import atomic
from .decode import ImageInfo, PixelData
from .errors import UsageError, WriteError
from .pixels import to_8bit

#: Default JPEG/WebP quality when the source's own tables cannot be reused.
DEFAULT_QUALITY = 95

#: Optimise a JPEG's Huffman tables (a second pass over the data).  Off: at 12 MP it more than
#: doubled the encode time for files about 2 % smaller (``python -m benchmarks codecs``); the
#: pixels and quantisation tables are the same either way.
JPEG_OPTIMIZE = False

#: Output formats by file extension (lower case, with the dot).
OUTPUT_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}

#: Extensions read when a folder is given (the output formats, i.e. what can be round-tripped).
INPUT_EXTENSIONS = frozenset(OUTPUT_FORMATS)

#: Modes each output format can store as they are; others are converted (see ``_fit_mode``).
_FORMAT_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"},
    "WEBP": {"RGB", "RGBA"},
    "BMP": {"1", "L", "P", "RGB"},
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}


def output_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output path's extension; :class:`UsageError` if unsupported."""
    ext = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        known = ", ".join(sorted({".jpg", ".png", ".tif", ".webp", ".bmp"}))
        what = f"extension '{ext}'" if ext else "no extension"
        raise UsageError(f"{path}: {what} is not an output format Smile can write (use {known})")
    return fmt


def save_image(
    path: str | os.PathLike,
    image: PixelData,
    info: ImageInfo | None = None,
    quality: int | None = None,
    png_compression: int = 6,
) -> list[str]:
    """Write ``image`` to ``path`` atomically, in the format its extension names.

    Keeps, where the format can hold them: the ICC profile, the EXIF block, the
    resolution, 16 bits per sample (PNG, TIFF) and alpha (PNG, TIFF, WebP).
    JPEG quality: ``quality`` if given, else the source JPEG's own quantisation
    tables (so the result looks as compressed as the original), else 95.

    An image with transparency saved as JPEG or BMP is flattened onto white; the
    returned list of notes says so (and names any other lossy conversion).
    ``png_compression`` (0-9) trades PNG size for speed (the worker's temporary files use 1).
    Raises :class:`UsageError` for an unknown extension and :class:`WriteError`
    when the file cannot be written; the target is then left as it was.
    """
    target = Path(path)
    fmt = output_format(target)
    info = info or ImageInfo(path=target, format=None, mode="", size=(0, 0))
    notes: list[str] = []
    if quality is not None and not 1 <= int(quality) <= 100:
        raise UsageError(f"JPEG/WebP quality must be between 1 and 100, got {quality}")

    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16 and fmt in ("PNG", "TIFF"):
            data = _encode_16bit(image, fmt, info, notes, png_compression)
            atomic.write_atomic(target, lambda f: f.write(data))
            return notes
        image = _array_to_pil(image, notes, fmt)

    image, icc = _fit_mode(image, fmt, info.icc_profile, notes)
    params: dict = {}
    if icc and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        params["icc_profile"] = icc
    if info.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        params["exif"] = info.exif
    if info.dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        params["dpi"] = info.dpi
    if fmt == "JPEG":
        if quality is not None:
            params["quality"] = int(quality)
        elif info.jpeg_qtables and image.mode != "CMYK":
            params["qtables"] = info.jpeg_qtables
            if info.jpeg_subsampling is not None:
                params["subsampling"] = info.jpeg_subsampling
        else:
            params["quality"] = DEFAULT_QUALITY
        params["optimize"] = JPEG_OPTIMIZE
    elif fmt == "WEBP":
        if info.lossless:  # lossless stays lossless (quality is then the compression effort)
            params.update(lossless=True, exact=True)
        params["quality"] = int(quality) if quality is not None else DEFAULT_QUALITY
        params["method"] = 4
    elif fmt == "PNG":
        params["compress_level"] = int(png_compression)
    elif fmt == "TIFF":
        params["compression"] = "tiff_deflate" if image.mode != "1" else "group4"

    def write(f):
        try:
            image.save(f, format=fmt, **params)
        except (ValueError, OSError) as exc:
            if "qtables" in params or "exif" in params:  # odd metadata: retry plainly rather than fail
                for key in ("qtables", "subsampling", "exif"):
                    params.pop(key, None)
                if fmt == "JPEG":
                    params.setdefault("quality", DEFAULT_QUALITY)
                f.seek(0)
                f.truncate()
                image.save(f, format=fmt, **params)
            else:
                raise exc

    atomic.write_atomic(target, write)
    return notes


def _encode_16bit(arr: np.ndarray, fmt: str, info: ImageInfo, notes: list[str], png_compression: int = 6) -> bytes:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha: OpenCV cannot write it
        if fmt == "PNG":
            return _png_add_metadata(_encode_png16_grey_alpha(arr, png_compression), info.icc_profile, info.exif)
        notes.append("16-bit grey + alpha written as 16-bit RGBA (TIFF); use .png to keep grey + alpha")
        arr = np.dstack([arr[:, :, 0], arr[:, :, 0], arr[:, :, 0], arr[:, :, 1]])
    if arr.ndim == 3 and arr.shape[2] == 3:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    elif arr.ndim == 2:
        bgr = arr
    else:
        raise WriteError(f"cannot write a 16-bit image of shape {arr.shape}")
    ext = ".png" if fmt == "PNG" else ".tif"
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)] if fmt == "PNG" else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise WriteError(f"OpenCV could not encode the 16-bit {fmt}")
    data = buf.tobytes()
    if fmt == "PNG":
        data = _png_add_metadata(data, info.icc_profile, info.exif)
    elif info.icc_profile or info.exif:
        notes.append("16-bit TIFF written without its ICC profile/EXIF (not supported for 16-bit TIFF yet)")
    return data


def _encode_png16_grey_alpha(arr: np.ndarray, level: int = 6) -> bytes:
    """A 16-bit grey + alpha PNG (colour type 4) of an ``(H, W, 2)`` uint16 array, every row
    with PNG's "Up" filter."""
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(h, w * 4)
    up = data.copy()
    up[1:] -= data[:-1]  # (uint8 arithmetic wraps modulo 256, as the filter wants)
    rows = np.hstack([np.full((h, 1), 2, np.uint8), up])
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_add_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR of an encoded PNG."""
    if not icc and not exif:
        return png
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        raw = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", raw)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _array_to_pil(arr: np.ndarray, notes: list[str], fmt: str) -> Image.Image:
    if arr.dtype == np.uint16:
        notes.append(f"16-bit image reduced to 8 bits for {fmt}")
        arr = to_8bit(arr)
    if arr.dtype != np.uint8:
        raise WriteError(f"cannot write pixels of type {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, "L")
    if arr.shape[2] == 3:
        return Image.fromarray(arr, "RGB")
    if arr.shape[2] == 4:
        return Image.fromarray(arr, "RGBA")
    raise WriteError(f"cannot write an image with {arr.shape[2]} channels")


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)


def _fit_mode(im: Image.Image, fmt: str, icc: bytes | None, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Convert ``im`` to a mode ``fmt`` can store; returns the image and the ICC profile still valid for it."""
    allowed = _FORMAT_MODES[fmt]
    if im.mode in allowed and not (im.mode == "P" and _has_alpha(im) and fmt not in _ALPHA_FORMATS):
        return im, icc
    if _has_alpha(im):
        if fmt in _ALPHA_FORMATS:
            rgba = im.convert("RGBA")
            return (rgba if "RGBA" in allowed else rgba.convert("RGB")), icc
        notes.append(f"transparency flattened onto white ({fmt} has no alpha channel; use .png to keep it)")
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(white, rgba).convert("RGB")
        return out, _icc_for(icc, "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L"):
        notes.append(f"16-bit grayscale reduced to 8 bits for {fmt}")
        return Image.fromarray(to_8bit(np.asarray(im, dtype=np.uint16)), "L"), icc
    if im.mode == "1":
        return im.convert("L"), icc
    if im.mode == "L":
        return im.convert("RGB"), icc
    if im.mode == "CMYK":
        notes.append(f"CMYK converted to RGB for {fmt}")
        return im.convert("RGB"), _icc_for(icc, "RGB")
    return im.convert("RGB"), _icc_for(icc, "RGB")


def _icc_for(icc: bytes | None, mode: str) -> bytes | None:
    """Drop a profile whose colour space no longer matches the pixels (e.g. a CMYK profile on RGB)."""
    if not icc or len(icc) < 20:
        return icc
    space = icc[16:20]
    if mode == "RGB" and space != b"RGB ":
        return None
    return icc
