"""Writing photos: the format the extension names, with what the source carried.

:func:`save_image` keeps, where the format can hold them, the ICC profile, the EXIF block
(orientation reset to 1), the XMP packet, a comment and PNG text chunks, the resolution, 16
bits per sample (PNG, TIFF), alpha (PNG, TIFF, WebP) and a JPEG source's quantisation tables,
chroma subsampling and progressive coding (so the result looks as compressed as the
original).  What the format cannot hold is named in the returned notes, never dropped
silently.  What :func:`smilecore.decode.load_image` read is passed in as its
:class:`~smilecore.decode.ImageInfo`.  Every write is atomic (:mod:`smilecore.atomic`).
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, features

from . import atomic, heif
from .decode import ImageInfo, PixelData
from .encode16 import encode_16bit, names_joined
from .errors import UsageError, WriteError, reason
from .metadata import (EXIF_IFD, GPS_IFD, INTEROP_IFD, JPEG_MAX_IPTC, PNG_XMP_KEY, TIFF_IPTC, jpeg_app1_segment,
                       jpeg_iptc_segment)
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
    ".avif": "AVIF",
    ".heic": "HEIF",  # (needs pillow-heif: smilecore.heif)
    ".heif": "HEIF",
    ".hif": "HEIF",
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
    "AVIF": {"L", "RGB", "RGBA"},  # (grey is written monochrome: 4:0:0 AVIF, a one-channel HEIF)
    "HEIF": {"L", "RGB", "RGBA"},
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP", "AVIF", "HEIF"}

#: A TIFF source's compression that its result keeps, by the result's mode (else Deflate): the lossless ones,
#: and JPEG, which a camera or scanner chose to keep files small.
_TIFF_KEPT = {m: ("tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg") for m in ("RGB", "L", "CMYK")}
_TIFF_KEPT.update({m: ("tiff_lzw", "tiff_adobe_deflate", "packbits") for m in ("RGBA", "LA")})

#: Formats that hold an ICC profile, EXIF and XMP (BMP holds none of them; PNG its XMP as text).
_METADATA_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "AVIF", "HEIF")

#: Default quality of AVIF and HEIF results (there are no source tables to reuse).  On the 12 MP
#: photo of ``python -m benchmarks formats`` (README): HEIF at 85 is closer to the pixels written than
#: a JPEG at 95 (44.1 against 41.7 dB); AVIF, whose scale differs, gained little above 90 in a probe.
DEFAULT_AVIF_QUALITY = 90
DEFAULT_HEIF_QUALITY = 85

#: AVIF encoder speed (0 slowest .. 10 fastest): 9 is as good as 8 at this quality, twice as fast.
AVIF_SPEED = 9

#: Other names ``save_image(fmt=...)`` accepts (an MPO is written as its first picture, a JPEG).
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG", "HEIC": "HEIF"}

#: Largest XMP packet and comment one JPEG segment holds (bytes).
JPEG_MAX_XMP = 65504
JPEG_MAX_COMMENT = 65533

#: The note for a JPEG's extended XMP written to another format.
EXTENDED_XMP_LOST = "extended XMP not kept (the part of a large XMP packet that only a JPEG holds as it is; use .jpg)"

#: TIFF tag holding an XMP packet.
TIFF_XMP = 700

#: Where each kind of descriptive metadata can go (for the note when the output cannot hold it).
_KEEPERS = {"XMP": ".jpg, .png, .tif, .webp, .avif or .heic", "comment": ".jpg or .png", "PNG text": ".png",
            "IPTC": ".jpg or .tif"}


def output_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output path's extension; :class:`UsageError` if unsupported."""
    ext = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        known = ", ".join(sorted({".jpg", ".png", ".tif", ".webp", ".bmp", ".avif", ".heic"}))
        from .video_streams import READ_VIDEO_EXTENSIONS

        if ext in READ_VIDEO_EXTENSIONS:  # (the input is a photo, e.g. an animated GIF: its result is a photo)
            raise UsageError(f"{path}: a video's name, but the input is read as a photo, whose result is a photo "
                             f"(use {known}; videos Smile reads: {', '.join(sorted(READ_VIDEO_EXTENSIONS))})")
        if not ext:  # (the words the command line uses for it)
            raise UsageError(f"{path}: has no file extension; name the output with one Smile can write (use {known})")
        raise UsageError(f"{path}: extension '{ext}' is not an output format Smile can write (use {known})")
    _writable(fmt, path)
    return fmt


def _writable(fmt: str, name: str | os.PathLike) -> None:
    """Raise :class:`UsageError` (naming ``name``) when this installation cannot write ``fmt``."""
    if fmt == "HEIF":
        heif.require(str(name), writing=True)
    elif fmt == "AVIF" and not features.check("avif"):
        raise UsageError(f"{name}: this Pillow cannot write AVIF (recent Pillow wheels can): "
                         "pip install -U pillow")


def _format_name(fmt: str) -> str:
    """``fmt`` as one of the PIL format names Smile writes; :class:`UsageError` if it is none of them."""
    name = str(fmt).upper()
    name = _FORMAT_ALIASES.get(name, name)
    if name not in _FORMAT_MODES:
        raise UsageError(f"format {fmt!r} is not one Smile can write (use {', '.join(sorted(_FORMAT_MODES))})")
    _writable(name, name)
    return name


def save_image(
    path: str | os.PathLike,
    image: PixelData,
    info: ImageInfo | None = None,
    quality: int | None = None,
    png_compression: int = 6,
    fmt: str | None = None,
    like: str | os.PathLike | None = None,
    before_replace: Callable[[], object] | None = None,
) -> list[str]:
    """Write ``image`` to ``path`` atomically, in the format its extension names (or ``fmt``).

    Keeps, where the format can hold them: the ICC profile, the EXIF block, the XMP packet
    (JPEG, PNG, TIFF, WebP), a comment (JPEG ``COM``; PNG ``Comment`` text), PNG text chunks
    (PNG), the resolution, 16 bits per sample (PNG, TIFF) and alpha (PNG, TIFF, WebP).
    JPEG quality: ``quality`` if given, else the source JPEG's own quantisation
    tables (so the result looks as compressed as the original), else 95; a progressive
    JPEG source gives a progressive JPEG.

    An image with transparency saved as JPEG or BMP is flattened onto white; the
    returned list of notes says so (and names any other lossy conversion, and any
    metadata of the source the format cannot hold).
    ``png_compression`` (0-9) trades PNG size for speed (the worker's temporary files use 1).
    ``fmt``, a PIL format name ("JPEG", "PNG", "TIFF", "WEBP", "BMP"; also "JPG", "TIF" and
    "MPO", written as JPEG), writes that format whatever the extension (``--in-place`` keeps a
    misnamed photo's own format with it); ``None`` takes it from the extension.
    ``like``: the file whose group/other permissions a new file may not exceed (default ``info``'s photo: a
    private photo's result stays private). ``before_replace``: run once the new file is complete, just before it
    replaces ``path``; when it raises, ``path`` is left as it was (:func:`smilecore.atomic.write_atomic`).
    Raises :class:`UsageError` for an unknown extension or ``fmt`` and :class:`WriteError`
    when the file cannot be written; the target is then left as it was.
    """
    target = Path(path)
    fmt = output_format(target) if fmt is None else _format_name(fmt)
    source = like if like is not None else (info.path if info is not None else None)
    info = info or ImageInfo(path=target, format=None, mode="", size=(0, 0))
    notes: list[str] = []
    if quality is not None and not 1 <= int(quality) <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {quality}")

    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16 and fmt in ("PNG", "TIFF"):
            data = encode_16bit(image, fmt, info, notes, png_compression, _descriptive_params(fmt, info, notes))
            atomic.write_atomic(target, lambda f: f.write(data), like=source, before_replace=before_replace)
            return notes
        image = _array_to_pil(image, notes, fmt)

    image, icc = _fit_mode(image, fmt, info.icc_profile, notes)
    params: dict = _descriptive_params(fmt, info, notes)
    if icc and fmt in _METADATA_FORMATS:
        params["icc_profile"] = icc
    if info.exif and fmt in _METADATA_FORMATS:
        params["exif"] = info.exif
    if fmt == "BMP" and (icc or info.exif):
        notes.append(f"{names_joined('ICC profile' if icc else '', 'EXIF' if info.exif else '')} not kept (BMP cannot hold it; "
                     "use .jpg, .png, .tif or .webp)")
    sub_ifds = False
    carried = {"exif": "EXIF", "xmp": "XMP", "comment": "comment",  # (named in a note if a retry drops them)
               "qtables": "the source's JPEG quality tables",
               "extra": names_joined("IPTC" if info.iptc else "", "extended XMP" if info.xmp_extension else "")}
    if fmt == "TIFF" and ("exif" in params or "xmp" in params or "iptc" in params):  # (XMP as tag 700, IPTC 33723)
        carried["exif"] = names_joined("EXIF" if "exif" in params else "", "XMP" if "xmp" in params else "",
                                "IPTC" if "iptc" in params else "")
        params["exif"], sub_ifds = _tiff_exif(params.get("exif"), params.pop("xmp", None), notes, params.pop("iptc", None))
        if params["exif"] is None:
            del params["exif"]
    if info.dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        params["dpi"] = info.dpi
    if fmt == "JPEG":
        if quality is not None:
            params["quality"] = int(quality)
        elif info.jpeg_qtables:
            params["qtables"] = info.jpeg_qtables
        else:
            params["quality"] = DEFAULT_QUALITY
        if info.jpeg_subsampling is not None and image.mode == "RGB":  # (with its own tables, or a quality asked for)
            params["subsampling"] = info.jpeg_subsampling
        params["optimize"] = JPEG_OPTIMIZE
        if info.progressive:
            params["progressive"] = True
    elif fmt == "WEBP":
        if info.lossless:  # lossless stays lossless (quality is then the compression effort)
            params.update(lossless=True, exact=True)
        params["quality"] = int(quality) if quality is not None else DEFAULT_QUALITY
        params["method"] = 4
    elif fmt == "AVIF":
        params.update(quality=int(quality) if quality is not None else DEFAULT_AVIF_QUALITY, speed=AVIF_SPEED)
    elif fmt == "HEIF":
        params.update(heif.save_params(int(quality) if quality is not None else DEFAULT_HEIF_QUALITY, info.nclx))
    elif fmt == "PNG":
        params["compress_level"] = int(png_compression)
    elif fmt == "TIFF":
        # libtiff (every compression) cannot write EXIF/GPS sub-directories: PIL's own writer can, uncompressed
        params["compression"] = "raw" if sub_ifds else "tiff_deflate" if image.mode != "1" else "group4"
        if not sub_ifds and info.tiff_compression in _TIFF_KEPT.get(image.mode, ()):  # (as the source was stored)
            params["compression"] = info.tiff_compression
            if info.tiff_compression == "jpeg":
                params["quality"] = int(quality) if quality is not None else DEFAULT_QUALITY
    if fmt != "HEIF" and heif.nclx_beyond_srgb(info.nclx):
        notes.append(f"the HEIF's colour space (nclx: primaries {info.nclx.get('color_primaries')}, transfer "
                     f"{info.nclx.get('transfer_characteristics')}) cannot go into {fmt}: colours read as sRGB there; "
                     "use .heic to keep it")

    def write(f):
        try:
            image.save(f, format=fmt, **params)
            return
        except (ValueError, OSError, RuntimeError, SyntaxError) as exc:  # (SyntaxError: EXIF Pillow cannot parse)
            error = exc
        # odd metadata: retry without it rather than fail (EXIF first, then the JPEG's own tables, then XMP and
        # comment)
        lost: list[str] = []
        for keys in (("exif",), ("qtables", "subsampling"), ("xmp", "comment", "extra")):
            dropped = [key for key in keys if params.pop(key, None) is not None]
            if not dropped:
                continue
            lost += [carried[key] for key in dropped if key in carried]
            if fmt == "JPEG" and "qtables" not in params:  # (with them, a quality would rescale them)
                params.setdefault("quality", DEFAULT_QUALITY)
            f.seek(0)
            f.truncate()
            try:
                image.save(f, format=fmt, **params)
            except (ValueError, OSError, RuntimeError, SyntaxError) as exc:
                error = exc
                continue
            if lost:
                notes.append(f"{names_joined(*lost)} not kept: {fmt} could not write it ({reason(error)})")
            return
        raise error

    atomic.write_atomic(target, write, like=source, before_replace=before_replace)
    return notes


def _descriptive_params(fmt: str, info: ImageInfo, notes: list[str]) -> dict:
    """Save parameters carrying the source's XMP, comment, PNG text and IPTC into ``fmt`` (``xmp``,
    ``comment``, ``pnginfo``, ``extra``: a JPEG's APP13; a TIFF's ``xmp`` becomes tag 700), and a note
    for each that ``fmt`` cannot hold.  A comment and a PNG ``Comment`` text are the same thing in either format."""
    params: dict = {}
    text = dict(info.text)
    comment = info.comment
    if fmt == "PNG":
        png = _png_info(text, comment, info.xmp, notes)
        if info.png_colour:  # gAMA, cHRM, sRGB: how to read the colours (Pillow writes them before the palette)
            png = png or PngImagePlugin.PngInfo()
            for kind, payload in info.png_colour:
                png.add(kind, payload)
        if png is not None:
            params["pnginfo"] = png
        if info.iptc:
            notes.append(f"IPTC not kept (PNG cannot hold it; use {_KEEPERS['IPTC']})")
        if info.xmp_extension:
            notes.append(EXTENDED_XMP_LOST)
        return params
    if comment is None and "Comment" in text:
        comment = str(text.pop("Comment")).encode("utf-8")
    if not _png_colour_is_srgb(info.png_colour):
        notes.append(f"the PNG's gamma and primaries (gAMA, cHRM) not kept ({fmt} has no place for them: its colours "
                     "read as sRGB); use .png to keep them")
    lost = []
    if info.xmp and fmt == "JPEG" and len(info.xmp) > JPEG_MAX_XMP:
        notes.append(f"XMP not kept: its {len(info.xmp)} bytes do not fit in one JPEG segment (at most {JPEG_MAX_XMP}); "
                     "use .png, .tif or .webp")
    elif info.xmp and fmt in ("JPEG", "TIFF", "WEBP", "AVIF", "HEIF"):
        params["xmp"] = info.xmp
    elif info.xmp:
        lost.append("XMP")
    if comment and fmt == "JPEG" and len(comment) > JPEG_MAX_COMMENT:
        notes.append(f"comment not kept: its {len(comment)} bytes do not fit in one JPEG segment; use .png")
    elif comment and fmt == "JPEG":
        params["comment"] = comment
    elif comment:
        lost.append("comment")
    if info.iptc and fmt == "JPEG" and len(info.iptc) > JPEG_MAX_IPTC:
        notes.append(f"IPTC not kept: its {len(info.iptc)} bytes do not fit in one JPEG segment; use .tif")
    elif info.iptc and fmt == "JPEG":
        params["extra"] = jpeg_iptc_segment(info.iptc)
    elif info.iptc and fmt == "TIFF":
        params["iptc"] = info.iptc  # (tag 33723, added by _tiff_exif)
    elif info.iptc:
        lost.append("IPTC")
    if info.xmp_extension and fmt == "JPEG" and "xmp" in params:
        params["extra"] = params.get("extra", b"") + b"".join(jpeg_app1_segment(p) for p in info.xmp_extension)
    elif info.xmp_extension and info.xmp:
        notes.append(EXTENDED_XMP_LOST)
    for what in lost:
        notes.append(f"{what} not kept ({fmt} cannot hold it; use {_KEEPERS[what]})")
    if text:
        notes.append(f"PNG text ({', '.join(sorted(text))}) not kept ({fmt} cannot hold it; use {_KEEPERS['PNG text']})")
    return params


#: sRGB's gamma (1 / 2.2, × 100,000) and white point and primaries (× 100,000) as PNG's gAMA and cHRM write them.
_SRGB_GAMMA, _SRGB_CHRM = 45455, (31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)


def _png_colour_is_srgb(chunks: list) -> bool:
    """Whether a PNG's gAMA and cHRM (if any) say what sRGB says, so that a format without them loses nothing."""
    for kind, payload in chunks:
        if kind == b"gAMA" and len(payload) == 4 and abs(struct.unpack(">I", payload)[0] - _SRGB_GAMMA) > 500:
            return False
        if kind == b"cHRM" and len(payload) == 32 and any(
                abs(v - w) > 100 for v, w in zip(struct.unpack(">8I", payload), _SRGB_CHRM)):
            return False
    return True


def _png_info(text: dict[str, str], comment: bytes | None, xmp: bytes | None, notes: list[str]) -> PngImagePlugin.PngInfo | None:
    """PNG text chunks for ``text``, a ``comment`` (as ``Comment`` text, unless ``text`` has one) and
    ``xmp`` (an uncompressed iTXt ``XML:com.adobe.xmp``); ``None`` when there is nothing to write."""
    png = PngImagePlugin.PngInfo()
    if comment and "Comment" not in text:
        text = {**text, "Comment": _text_of(comment)}
    for key, value in text.items():
        try:
            png.add_text(key, value, zip=len(value) > 1024)  # (an iTXt value keeps its language)
        except (UnicodeError, ValueError):
            notes.append(f"PNG text {key!r} not kept (its keyword is not Latin-1 text)")
    if xmp:
        try:
            png.add_itxt(PNG_XMP_KEY, xmp.decode("utf-8"), zip=False)
        except UnicodeDecodeError:
            notes.append("XMP not kept (it is not UTF-8 text, which PNG needs; use .jpg, .tif or .webp)")
    return png if png.chunks else None


def _tiff_exif(exif: bytes | None, xmp: bytes | None, notes: list[str],
               iptc: bytes | None = None) -> tuple[bytes | None, bool]:
    """The EXIF block to give PIL's TIFF writer, with ``xmp`` added as tag 700 and ``iptc`` as tag
    33723, and whether it holds Exif or GPS sub-directories (which only PIL's own, uncompressed,
    writer can store)."""
    try:
        tags = Image.Exif()
        if exif:
            tags.load(exif)
        sub_ifds = EXIF_IFD in tags or GPS_IFD in tags
        interop = EXIF_IFD in tags and INTEROP_IFD in tags.get_ifd(EXIF_IFD)
        if interop:  # (PIL's TIFF writer would copy its offset as a number pointing nowhere: the R98 tag goes)
            del tags.get_ifd(EXIF_IFD)[INTEROP_IFD]
        if not xmp and not iptc and not interop:
            return exif, sub_ifds
        if xmp:
            tags[TIFF_XMP] = xmp
        if iptc:
            tags[TIFF_IPTC] = iptc
        return tags.tobytes(), sub_ifds
    except Exception:  # an EXIF block PIL cannot read back: as before, without the XMP and IPTC
        lost = names_joined("XMP" if xmp else "", "IPTC" if iptc else "")
        if lost:
            notes.append(f"{lost} not kept (the EXIF block it would join cannot be read; use .jpg)")
        return exif, False


def _text_of(comment: bytes) -> str:
    """A comment's bytes as text: UTF-8 when they are, else Latin-1 (JPEG does not say)."""
    try:
        return comment.decode("utf-8")
    except UnicodeDecodeError:
        return comment.decode("latin-1")


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
    out, kept = _fit_mode_pixels(im, fmt, icc, notes)
    kept = _icc_for(kept, out.mode)  # (a grey profile on colour pixels: colour-managed programs refuse the file)
    if icc and not kept and icc[16:20] == b"GRAY":
        notes.append(f"its grey ICC profile not kept ({fmt} holds these pixels as colour, which a grey profile "
                     "cannot describe; use .png, .tif or .jpg to keep it)")
    return out, kept


def _fit_mode_pixels(im: Image.Image, fmt: str, icc: bytes | None, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """:func:`_fit_mode`'s conversion itself."""
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
        if im.mode in ("LA", "La") and "L" in allowed:  # (grey stays grey, with its profile)
            return out.convert("L"), icc
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
    if mode in ("RGB", "RGBA") and space != b"RGB ":
        return None
    return icc
