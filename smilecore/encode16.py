"""16-bit PNG and TIFF results, which Pillow cannot write: encoded by OpenCV (grey + alpha PNG by hand),
with the ICC profile, EXIF, resolution and text chunks put into the PNG (:func:`png_add_metadata`)."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
from PIL import PngImagePlugin

from .decode import ImageInfo
from .errors import WriteError


def names_joined(*names: str) -> str:
    """``"ICC profile and EXIF"``: the non-empty ``names`` joined for a note."""
    named = [n for n in names if n]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else "".join(named)


def encode_16bit(arr: np.ndarray, fmt: str, info: ImageInfo, notes: list[str], png_compression: int = 6,
                  extra: dict | None = None) -> bytes:
    """A 16-bit PNG or TIFF of ``arr``, with the ICC profile, EXIF and ``extra``'s PNG text (PNG only:
    a note names what a 16-bit TIFF loses)."""
    text = extra.get("pnginfo") if extra else None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha: OpenCV cannot write it
        if fmt == "PNG":
            return png_add_metadata(_encode_png16_grey_alpha(arr, png_compression), info.icc_profile, info.exif, text,
                                     info.dpi)
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
    if fmt == "TIFF" and info.dpi:  # (OpenCV writes whole dots per inch)
        params += [cv2.IMWRITE_TIFF_RESUNIT, 2, cv2.IMWRITE_TIFF_XDPI, max(1, round(info.dpi[0])),
                   cv2.IMWRITE_TIFF_YDPI, max(1, round(info.dpi[1]))]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise WriteError(f"OpenCV could not encode the 16-bit {fmt}")
    data = buf.tobytes()
    if fmt == "PNG":
        return png_add_metadata(data, info.icc_profile, info.exif, text, info.dpi)
    tags: dict[int, tuple[int, int, bytes]] = {}
    if bgr.ndim == 3 and bgr.shape[2] == 4:
        tags[338] = (3, 1, struct.pack("<H", 2))  # ExtraSamples: the fourth is unassociated alpha
    if info.icc_profile:
        tags[34675] = (7, len(info.icc_profile), bytes(info.icc_profile))
    xmp, iptc = (extra.get("xmp"), extra.get("iptc")) if extra else (None, None)
    if xmp:
        tags[700] = (1, len(xmp), bytes(xmp))
    if iptc:
        tags[33723] = (7, len(iptc), bytes(iptc))
    data = tiff_with_tags(data, tags)
    if info.exif:
        notes.append("16-bit TIFF written without its EXIF (not supported for 16-bit TIFF yet; use .png)")
    return data


def tiff_with_tags(data: bytes, tags: dict[int, tuple[int, int, bytes]]) -> bytes:
    """The one-page little-endian TIFF ``data`` with ``tags`` (tag -> (TIFF type, count, value bytes)) added to
    its first directory, replacing any of the same number: a new directory is written at the end, with the
    values that do not fit in its entries before it; the pixels and the other values stay where they are."""
    if not tags:
        return data
    if data[:2] != b"II":  # (OpenCV writes little-endian TIFFs)
        raise WriteError("OpenCV wrote a TIFF that is not little-endian")
    order = "<"
    at = struct.unpack_from(order + "I", data, 4)[0]
    count = struct.unpack_from(order + "H", data, at)[0]
    entries = {struct.unpack_from(order + "H", data, at + 2 + 12 * k)[0]: data[at + 2 + 12 * k:at + 14 + 12 * k]
               for k in range(count)}
    out = bytearray(data)
    for tag, (kind, n, value) in tags.items():
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            out += b"\0" * (len(out) % 2)  # (values start on a word boundary)
            field = struct.pack(order + "I", len(out))
            out += value
        entries[tag] = struct.pack(order + "HHI", tag, kind, n) + field
    out += b"\0" * (len(out) % 2)
    start = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + bytes(4)
    struct.pack_into(order + "I", out, 4, start)
    return bytes(out)


def _encode_png16_grey_alpha(arr: np.ndarray, level: int = 6) -> bytes:
    """A 16-bit grey + alpha PNG (colour type 4) of an ``(H, W, 2)`` uint16 array, every row
    with PNG's "Up" filter."""
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(h, w * 4)
    up = data.copy()
    up[1:] -= data[:-1]  # (uint8 arithmetic wraps modulo 256, as the filter wants)
    rows = np.hstack([np.full((h, 1), 2, np.uint8), up])
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + png_chunk(b"IEND", b""))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, ``kind``, ``payload``, CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_add_metadata(png: bytes, icc: bytes | None, exif: bytes | None,
                      text: PngImagePlugin.PngInfo | None = None, dpi: tuple[float, float] | None = None) -> bytes:
    """Insert iCCP, eXIf, pHYs (``dpi``) and ``text``'s chunks (tEXt, zTXt, iTXt) right after IHDR of an encoded
    PNG."""
    if not icc and not exif and not (text and text.chunks) and not dpi:
        return png
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b""
    if dpi:  # pixels per metre, as Pillow writes them
        extra += png_chunk(b"pHYs", struct.pack(">IIB", int(dpi[0] / 0.0254 + 0.5), int(dpi[1] / 0.0254 + 0.5), 1))
    if icc:
        extra += png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        raw = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += png_chunk(b"eXIf", raw)
    for kind, payload, _after_idat in text.chunks if text else ():
        extra += png_chunk(kind, payload)
    return png[:ihdr_end] + extra + png[ihdr_end:]
