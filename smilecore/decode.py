"""Reading photos without losing what makes them the owner's photo.

``load_image`` returns the pixels upright (EXIF orientation applied) plus an
:class:`ImageInfo` holding what :func:`smilecore.encode.save_image` needs to write the
result back faithfully: the ICC profile, the EXIF block (orientation reset to 1), the XMP
packet, a JPEG comment, PNG text chunks, the JPEG quantisation tables, chroma subsampling and
progressive coding, the resolution, the number of frames (the metadata is read by
:mod:`smilecore.metadata`).

Pixels come back as

* a ``PIL.Image`` for 8-bit content (any of PIL's 8-bit modes), or
* a ``numpy.uint16`` array, ``(H, W)`` or ``(H, W, C)`` in RGB(A) order, for
  16-bit PNG and TIFF files (PIL cannot hold 16-bit colour), read with OpenCV.

Every failure is a :class:`~smilecore.errors.SmileError` whose one-line message
names the file; a photo larger than the pixel limit is refused before it is decoded.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image, PngImagePlugin, features

from . import heif, libtiff_log
from .decode16 import is_16bit, load_16bit, sample_bits
from .errors import ImageTooLargeError, InputError, UsageError, reason, too_large
from .jpeg_scans import check_scans, check_streams, check_tiff_scans
from .jpeg_tables import copy_qtables, estimate_jpeg_quality, jpeg_subsampling
from .metadata import (exif_block, is_progressive, png_colour_chunks, png_other_chunks, png_text, read_comment,
                       read_iptc, read_xmp, read_xmp_extension, upright_exif, upright_xmp)
from .pixels import to_8bit, to_upright

#: Default pixel limit (width x height) above which a photo is refused.
DEFAULT_MAX_PIXELS = 200_000_000

#: Formats whose frames are an animation (APNG, animated WebP, GIF, AVIF): a result holds the first frame alone.
ANIMATED_FORMATS = frozenset({"PNG", "WEBP", "GIF", "AVIF"})

#: The TIFF tag of Photoshop's layers (ImageSourceData), which no reader but Photoshop's uses: a result keeps
#: only the flattened image every reader shows.
TIFF_LAYERS = 37724

#: PIL modes the engine can work on (everything else is refused with a clear message).
SUPPORTED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I;16", "I;16B", "I;16L"})


_PIL_LIMIT_LOCK = threading.Lock()

PixelData = Union[Image.Image, np.ndarray]


@dataclass
class ImageInfo:
    """What a photo carries besides its pixels, kept so the result can be saved like the source."""

    path: Path  #: the file it was read from
    format: str | None  #: PIL format name of the source ("JPEG", "PNG", ...)
    mode: str  #: PIL mode of the source (for 16-bit files: "RGB;16", "RGBA;16", "L;16")
    size: tuple[int, int]  #: (width, height) after the EXIF orientation was applied
    bit_depth: int = 8  #: bits per sample: 8 or 16
    icc_profile: bytes | None = None
    exif: bytes | None = None  #: EXIF block with orientation reset to 1 (or None)
    orientation: int = 1  #: the EXIF orientation the file had (already applied to the pixels)
    dpi: tuple[float, float] | None = None
    jpeg_qtables: dict | None = None  #: quantisation tables of a JPEG source (reused on save)
    jpeg_subsampling: int | None = None  #: chroma subsampling of a JPEG source (PIL's code)
    quality: int | None = None  #: estimated JPEG quality of the source (IJG scale)
    lossless: bool = False  #: a lossless WebP source (its result is written lossless too)
    xmp: bytes | None = None  #: the XMP packet (JPEG APP1, PNG iTXt, WebP chunk, TIFF tag 700)
    comment: bytes | None = None  #: a JPEG ``COM`` (or GIF) comment
    iptc: bytes | None = None  #: the IPTC-IIM record (JPEG APP13, TIFF tag 33723)
    xmp_extension: tuple[bytes, ...] = ()  #: a JPEG's extended-XMP APP1 payloads
    text: dict[str, str] = field(default_factory=dict)  #: PNG text chunks (Title, Author...), XMP excepted
    progressive: bool = False  #: a progressive JPEG source (its result is written progressive too)
    frames: int = 1  #: frames or pages the source file holds (multi-page TIFF, animation, MPO; TIFF pages: up to 1001)
    #: a HEIF's colour description without an ICC profile (H.273 codes: ``color_primaries``,
    #: ``transfer_characteristics``, ``matrix_coefficients``, ``full_range_flag``), or None
    nclx: dict | None = None
    tiff_compression: str | None = None  #: a TIFF source's compression, as Pillow names it ("jpeg", "tiff_lzw"...)
    #: a PNG's gAMA, cHRM and sRGB chunks (how to read its colours without an ICC profile), ``(kind, payload)``
    png_colour: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: things worth telling the user


def env_max_pixels() -> int:
    """The pixel limit from the environment variable ``SMILE_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get("SMILE_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"SMILE_MAX_PIXELS must be a positive whole number of pixels, not {text!r}")
    return value


def load_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[PixelData, ImageInfo]:
    """Read a photo, upright, with its metadata.

    Returns ``(image, info)``: ``image`` is a ``PIL.Image`` for 8-bit content or a
    ``uint16`` numpy array (RGB order) for 16-bit PNG/TIFF.

    Raises :class:`InputError` (missing, unreadable, corrupt, truncated, not an
    image, unsupported mode) or :class:`ImageTooLargeError` (more than
    ``max_pixels`` pixels; ``None`` disables the limit), each naming the file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's "corrupt EXIF" and similar: the error, if any, says it
        image, info = _load_image(path, max_pixels)
        # the sizes EXIF and XMP give, told the upright photo's where they still say it lies on its side (a TIFF's
        # block, which Pillow rewrites; a HEIF, which pillow-heif turned by its own box, not by EXIF)
        if info.exif:
            info.exif = upright_exif(info.exif, 1, info.size) or info.exif
        info.xmp = upright_xmp(info.xmp, 1, info.size)
        return image, info


def _load_image(path: str | os.PathLike, max_pixels: int | None) -> tuple[PixelData, ImageInfo]:
    p = Path(path)
    name = str(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:  # (a name too long for the file system, a loop of links, a folder that may not be opened)
        if exc.errno == errno.ELOOP:
            raise InputError(f"{name}: no such file (a loop of symbolic links)") from None
        if isinstance(exc, PermissionError):
            raise  # (a folder on its way that may not be opened: the caller names it, smile_cli.inputs.unreachable)
        raise InputError(f"{name}: cannot read it ({exc.strerror or reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a folder, not a photo")
    if not stat.S_ISREG(st.st_mode):  # a named pipe, socket or device: opening it could wait forever
        raise InputError(f"{name}: not a regular file (a named pipe, socket or device), not a photo")
    if not os.access(p, os.R_OK):
        raise InputError(f"{name}: permission denied (cannot read it)")
    limit = max_pixels if max_pixels and max_pixels > 0 else None
    family = heif.kind_of_file(p)
    claimed = heif.primary_size(p) if family else None  # (read from the boxes: no decoder involved)
    if limit is not None and claimed and claimed[0] * claimed[1] > limit:
        raise _too_large(name, claimed[0], claimed[1], limit)
    if family:  # (libheif decodes a JPEG-coded image with libjpeg, counting nothing)
        check_streams(p, name, heif.jpeg_extents(p), "a HEIF whose JPEG-coded image holds")
    if family == "heif":
        heif.require(name)  # (pillow-heif: an optional extra; else a line saying how to install it)
    elif family == "avif" and not features.check("avif"):
        raise InputError(f"{name}: an AVIF photo; this Pillow cannot read AVIF (recent Pillow wheels can): "
                         "pip install -U pillow")

    check_scans(p, name)  # (a JPEG or MPO: its scans and markers counted before Pillow reads them)
    if png_other_chunks(p, MAX_PNG_CHUNKS) > MAX_PNG_CHUNKS:  # (counted before Pillow reads them one by one)
        raise InputError(f"{name}: a PNG of more than {MAX_PNG_CHUNKS} chunks besides its image data (a photo has a "
                         "few dozen): refused, as reading them could take minutes")
    try:
        # PIL's own bomb check (inside Image.open) is off: Smile's limit, the only one, is checked on the size
        # the header gives, just below, which the message can then name
        with _pil_limit(None), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(p)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLargeError(f"{name}: image is larger than the limit of {_mpx(limit)} (a decompression bomb?); raise it with --max-pixels if you trust the file") from None
    except Image.UnidentifiedImageError:
        _iso_media_error(p, name, family, claimed)
        if _has_image_signature(p):
            raise InputError(f"{name}: the image data is corrupt or truncated (its header cannot be read)") from None
        raise InputError(f"{name}: not an image, or a format Smile cannot read (use JPEG, PNG, TIFF, WebP, BMP, AVIF or HEIC)") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied (cannot read it)") from None
    except Exception as exc:  # corrupt headers make PIL raise many kinds of error
        if "MAX_TEXT_CHUNK" in str(exc) or "MAX_TEXT_MEMORY" in str(exc):  # (PngImagePlugin's names, not the user's)
            raise InputError(f"{name}: a PNG text or ICC-profile chunk unpacks to more than Pillow reads "
                             f"({PngImagePlugin.MAX_TEXT_CHUNK >> 20} MB each, {PngImagePlugin.MAX_TEXT_MEMORY >> 20} MB "
                             "in all): refused as a decompression bomb") from None
        raise InputError(f"{name}: cannot read the image ({reason(exc)})") from None

    keep = False  # True once ``im`` itself is returned (loaded, its file closed): it must not be closed
    try:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise InputError(f"{name}: the image is empty ({w}x{h} pixels)")
        if limit is not None and w * h > limit:
            raise _too_large(name, w, h, limit)
        if im.format == "TIFF":  # (its strips or tiles may be JPEG streams: libtiff decodes each as one)
            check_tiff_scans(p, name, getattr(im, "tag_v2", {}))
        info = ImageInfo(path=p, format=im.format, mode=im.mode, size=(w, h))
        info.frames = _frame_count(im)
        if info.frames > 1 and im.format == "HEIF":  # (pillow-heif opens the primary image, wherever it is)
            info.notes.append(f"{name}: holds {info.frames} images (a burst or collection); only the primary one is used")
        elif info.frames > 1 and im.format == "MPO":
            info.notes.append(f"{name}: a JPEG holding {info.frames} images (MPF: a camera's preview, or a second view); "
                              "only the first is used and written")
        elif info.frames > 1 and im.format in ANIMATED_FORMATS:
            info.notes.append(f"{name}: an animation of {info.frames} frames; only its first frame is read, and the "
                              "result is that frame alone, a still picture")
        elif info.frames > MAX_PAGES_COUNTED:
            info.notes.append(f"{name}: has more than {MAX_PAGES_COUNTED} pages; only the first is used")
        elif info.frames > 1:
            info.notes.append(f"{name}: has {info.frames} frames or pages; only the first is used")
        info.icc_profile = im.info.get("icc_profile") or None
        if im.format == "TIFF" and isinstance(im.info.get("compression"), str):
            info.tiff_compression = im.info["compression"]
        if im.format == "TIFF" and TIFF_LAYERS in getattr(im, "tag_v2", {}):
            info.notes.append(f"{name}: a TIFF holding Photoshop layers; only its flattened image is read and kept "
                              "(the layers are not)")
        nclx = im.info.get("nclx_profile")
        if isinstance(nclx, dict) and not info.icc_profile:
            info.nclx = {k: nclx[k] for k in heif.NCLX_KEYS if isinstance(nclx.get(k), int)} or None
        # (a TIFF with no resolution tags reads as 1 dpi in Pillow: it has none, and none is written)
        no_dpi = im.format == "TIFF" and 282 not in getattr(im, "tag_v2", {})
        info.dpi = None if no_dpi else _dpi(im.info.get("dpi"))
        info.orientation, info.exif = exif_block(im)
        info.xmp, info.comment, info.progressive = upright_xmp(read_xmp(im), info.orientation), read_comment(im), \
            is_progressive(im)
        info.iptc, info.xmp_extension = read_iptc(im), read_xmp_extension(im)
        if im.format in ("JPEG", "MPO"):  # (MPO: a camera's JPEG with an MPF preview after it)
            info.jpeg_qtables = copy_qtables(getattr(im, "quantization", None))
            info.jpeg_subsampling = jpeg_subsampling(im)
            info.quality = estimate_jpeg_quality(info.jpeg_qtables)

        if im.format == "PNG":
            _verify_png(p, name)
            info.text, xmp = png_text(p)  # (also the chunks after the image data)
            info.png_colour = [] if info.icc_profile else png_colour_chunks(p)  # (iCCP overrides them)
            info.xmp = upright_xmp(xmp, info.orientation) or info.xmp
            if info.exif is not None:  # ImageMagick's text copy of the EXIF: written once, upright, as eXIf
                info.text = {k: v for k, v in info.text.items() if k.lower() not in ("raw profile type exif",
                                                                                  "raw profile type app1")}
        if im.format == "WEBP":
            info.lossless = _webp_is_lossless(p)
        depth = im.info.get("bit_depth")  # (a HEIF's; PIL gives 8 bits per sample of it)
        if im.format == "AVIF":  # (Pillow's AVIF plugin does not say; the file's pixi box does)
            depth = heif.primary_bit_depth(p)
        if isinstance(depth, int) and depth > 8:
            info.notes.append(f"{name}: a {depth}-bit {'AVIF' if im.format == 'AVIF' else 'HEIF'} photo, read as 8 bits per sample")

        if is_16bit(p, im):
            image = load_16bit(p, name, info.orientation, im.format)
            info.bit_depth = 16
            info.mode = {2: "L;16"}.get(image.ndim) or {2: "LA;16", 4: "RGBA;16"}.get(image.shape[2], "RGB;16")
            info.size = (image.shape[1], image.shape[0])
            return image, info
        if im.format == "TIFF" and 16 in sample_bits(im):
            info.notes.append(f"{name}: a 16-bit {im.mode} TIFF, read as 8 bits per sample")

        if im.mode not in SUPPORTED_MODES:
            raise InputError(f"{name}: colour mode {im.mode} ({_mode_words(im.mode)}) is not supported; convert it to 8- or 16-bit RGB or grayscale")
        try:
            # (Pillow checks its own limit again as it loads a compressed TIFF: lifted there too, for a photo above it)
            pil_limit = Image.MAX_IMAGE_PIXELS
            with _pil_limit(None) if pil_limit and w * h > pil_limit else contextlib.nullcontext(), \
                    libtiff_log.captured() if im.format == "TIFF" else contextlib.nullcontext([]) as libtiff_said:
                # (libtiff's words: the reason, not lines on stderr; libtiff decodes TIFFs alone)
                im.load()
        except Exception as exc:
            if family and "security limit exceeded" in str(exc).lower():  # libheif's own ceiling (--max-pixels raised past it)
                raise ImageTooLargeError(f"{name}: {w}x{h} pixels is more than the HEIF decoder reads ({reason(exc)})") from None
            if family and "not been built in" in str(exc):  # (libheif without the decoder of the image's coding)
                raise InputError(f"{name}: its image is coded in a way the installed HEIF decoder (libheif, through "
                                 f"pillow-heif) cannot decode ({reason(exc)})") from None
            why = f"libtiff: {libtiff_said[-1]}" if libtiff_said and "decoder error" in str(exc) else reason(exc)
            raise InputError(f"{name}: the image data is corrupt or truncated ({why})") from None
        if libtiff_said:  # (read all the same: libtiff went on past a damaged strip, and its line went to stderr)
            info.notes.append(f"{name}: libtiff reported an error as it decoded it ({libtiff_said[0]}): parts of "
                              "the picture may be damaged")
        try:
            upright = to_upright(im)  # (its .info keeps the EXIF; ImageInfo holds ours, orientation reset)
        except Exception:  # a broken EXIF block must not make the photo unreadable
            upright = im
        if upright is im:
            if info.frames == 1 and getattr(im, "fp", None) is None:  # loaded, file closed: no copy
                keep = True
            else:
                upright = im.copy()
        info.size = upright.size
        return upright, info
    finally:
        if not keep:
            im.close()


@contextlib.contextmanager
def _pil_limit(limit: int | None):
    """Run a block with PIL's own decompression-bomb limit set to ``limit`` (None: off), so that
    PIL never refuses a photo Smile's limit accepts."""
    with _PIL_LIMIT_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def load_mask(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a selection mask as a ``uint8`` ``(H, W)`` array (colour images are converted to gray,
    16-bit ones reduced to 8 bits; EXIF orientation applied).  Errors as :func:`load_image`, and
    :class:`UsageError` for a mask whose largest value is 1 (a 0/1 mask, which would select nothing)."""
    img, _info = load_image(path, max_pixels=max_pixels)
    if isinstance(img, np.ndarray):
        arr = to_8bit(img)
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_RGB2GRAY) if arr.shape[2] >= 3 else arr[:, :, 0]
        arr = np.ascontiguousarray(arr)
    else:
        arr = np.asarray(img.convert("L"))
    if arr.size and int(arr.max()) == 1:  # (read as 1/255: it would select nothing that shows)
        raise UsageError(f"{path}: its largest value is 1 of 255 (a 0/1 mask?): white (255) selects a pixel and "
                         "black (0) leaves it; save it with 255 for the selected pixels")
    return arr


#: The first bytes of each format Smile reads (HEIF and AVIF: :func:`smilecore.heif.kind_of_bytes`),
#: with the extension a file of it gets.
_SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


def extension_of_bytes(head: bytes) -> str | None:
    """The extension of the photo format ``head`` (a file's first 64 bytes) starts like (JPEG, PNG,
    TIFF, WebP, BMP, AVIF, HEIF), or None."""
    for signature, ext in _SIGNATURES:
        if head.startswith(signature):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return {"heif": ".heic", "avif": ".avif"}.get(heif.kind_of_bytes(head) or "")


def _verify_png(path: Path, name: str) -> None:
    """Check every chunk's CRC (PIL's decoder skips the image data's; libpng would complain on stderr).

    Scrambled image data can otherwise decompress into garbage pixels that look like a photo."""
    try:
        with _pil_limit(None), Image.open(path) as check:  # (the size was checked against Smile's limit)
            check.verify()
    except Exception as exc:
        raise InputError(f"{name}: the image data is corrupt or truncated ({reason(exc)})") from None


#: The most chunks a PNG may have besides its image data (:data:`smilecore.metadata.PNG_IMAGE_CHUNKS`): a photo has
#: a few dozen. Pillow reads each one in Python, twice with Smile's checks: 500,000 empty tEXt chunks in 7.8 MB took
#: 19 s.
MAX_PNG_CHUNKS = 10_000


def _webp_is_lossless(path: Path) -> bool:
    """Is a WebP file's image stored lossless (a ``VP8L`` chunk rather than lossy ``VP8 ``)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return False
            for _ in range(64):  # VP8X files put ICCP/ANIM/ALPH chunks first
                chunk = f.read(8)
                if len(chunk) < 8:
                    return False
                kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if kind in (b"VP8L", b"VP8 "):
                    return kind == b"VP8L"
                f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        pass
    return False


#: The largest AVIF libavif decodes (its default limits: 16384 x 16384 pixels, 32768 on a side).
_AVIF_MAX_PIXELS = 16384 * 16384
_AVIF_MAX_SIDE = 32768


def _iso_media_error(path: Path, name: str, family: str | None, claimed: tuple[int, int] | None) -> None:
    """Raise the one-line error for an ISO media file (an ``ftyp`` box) that no decoder could open
    and whose reason is known: a video under a photo's name, an image sequence without a still
    picture, an AVIF larger than libavif decodes; return if none of them."""
    what = heif.what_is_it(path)
    if what == "video":
        raise InputError(f"{name}: a video (MP4/QuickTime), not a photo; Smile takes videos by their name "
                         "(.mp4 .m4v .mov .mkv .webm .avi): rename it")
    if what == "sequence":
        raise InputError(f"{name}: an image sequence (a burst or animation stored as a track) with no still photo in it; "
                         "Smile reads still photos (a copy named .mp4 may be read as a video)")
    if family == "avif" and claimed and (claimed[0] * claimed[1] > _AVIF_MAX_PIXELS or max(claimed) > _AVIF_MAX_SIDE):
        raise ImageTooLargeError(f"{name}: {claimed[0]}x{claimed[1]} pixels is more than the AVIF decoder reads "
                                 "(libavif: at most 16384 x 16384 pixels)")


def _too_large(name: str, w: int, h: int, limit: int) -> ImageTooLargeError:
    """A photo file over the pixel limit: its size, the limit (as arrays are told, :func:`too_large`), what to do."""
    return ImageTooLargeError(f"{name}: {too_large(w, h, limit)}; raise it with --max-pixels if you trust the file")


def _has_image_signature(path: Path) -> bool:
    """Does the file start like a JPEG, PNG, TIFF, WebP, BMP, AVIF or HEIF (so a failure means damage,
    not a wrong kind)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return extension_of_bytes(head) is not None


#: Most pages of a TIFF counted: Pillow counts them by reading every directory (0.5 ms each: a file of 20,000
#: tiny pages took 10 s before its first page was read), and only the first is used.
MAX_PAGES_COUNTED = 1000


def _frame_count(im: Image.Image) -> int:
    """How many frames or pages the open file holds (1 when PIL cannot tell); a TIFF's pages are counted up to
    :data:`MAX_PAGES_COUNTED` + 1 (more: that many)."""
    try:
        if im.format == "TIFF" and getattr(im, "_n_frames", 0) is None:  # (not known before they are walked)
            count = 1
            try:
                while count <= MAX_PAGES_COUNTED:
                    im.seek(count)  # (reads the page's directory, no pixel)
                    count += 1
            except EOFError:
                pass
            except Exception:  # (a page Pillow cannot read, a float RGB one: there all the same, and an edit keeps only
                count += 1     # the first; counted as 1 before, so --in-place dropped it and those after it)
            finally:
                im.seek(0)
            return count
        n = getattr(im, "n_frames", 1)
        return n if isinstance(n, int) and n > 1 else 1
    except Exception:  # a damaged multi-frame file: PIL counts frames by reading them
        return 1


#: The highest resolution kept (dots per inch): film scanners reach about 10,000; PNG and TIFF writers overflow
#: far above it.
MAX_DPI = 1_000_000


def _dpi(value) -> tuple[float, float] | None:
    try:
        x, y = value
        x, y = float(x), float(y)
        return (x, y) if 0 < x <= MAX_DPI and 0 < y <= MAX_DPI else None  # (past it: a damaged tag, not a scan)
    except Exception:
        return None


# --------------------------------------------------------------------------- helpers


def _mpx(limit: int | None) -> str:
    return "no limit" if not limit else f"{limit / 1e6:g} megapixels"


def _mode_words(mode: str) -> str:
    return {
        "F": "32-bit floating point",
        "I": "32-bit integer",
        "LAB": "CIE L*a*b*",
        "HSV": "HSV",
    }.get(mode, "unusual")

