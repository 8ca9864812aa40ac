"""Reading and writing photos without losing what makes them the owner's photo.

``load_image`` returns the pixels upright (EXIF orientation applied) plus an
:class:`ImageInfo` holding what ``save_image`` needs to write the result back
faithfully: the ICC profile, the EXIF block (orientation reset to 1), the JPEG
quantisation tables and chroma subsampling, the resolution.

Pixels come back as

* a ``PIL.Image`` for 8-bit content (any of PIL's 8-bit modes), or
* a ``numpy.uint16`` array, ``(H, W)`` or ``(H, W, C)`` in RGB(A) order, for
  16-bit PNG and TIFF files (PIL cannot hold 16-bit colour), read with OpenCV.

Every failure is a :class:`~smilecore.errors.SmileError` whose one-line message
names the file.  Writes are atomic: a temporary file in the destination folder
is renamed over the target only once it is complete, so an interrupted run never
leaves a half-written photo behind.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import ImageTooLargeError, InputError, UsageError, WriteError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Default pixel limit (width x height) above which a photo is refused.
DEFAULT_MAX_PIXELS = 200_000_000

#: Default JPEG/WebP quality when the source's own tables cannot be reused.
DEFAULT_QUALITY = 95

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

#: PIL modes the engine can work on (everything else is refused with a clear message).
SUPPORTED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I;16", "I;16B", "I;16L"})

#: Modes each output format can store as they are; others are converted (see ``_fit_mode``).
_FORMAT_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"},
    "WEBP": {"RGB", "RGBA"},
    "BMP": {"1", "L", "P", "RGB"},
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}

_EXIF_ORIENTATION = 0x0112
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
    notes: list[str] = field(default_factory=list)  #: things worth telling the user


# --------------------------------------------------------------------------- reading


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
        return _load_image(path, max_pixels)


def _load_image(path: str | os.PathLike, max_pixels: int | None) -> tuple[PixelData, ImageInfo]:
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise InputError(f"{name}: no such file")
    if p.is_dir():
        raise InputError(f"{name}: is a folder, not a photo")
    if not p.is_file():  # a named pipe, socket or device: opening it could wait forever
        raise InputError(f"{name}: not a regular file (a named pipe, socket or device), not a photo")
    if not os.access(p, os.R_OK):
        raise InputError(f"{name}: permission denied (cannot read it)")
    limit = max_pixels if max_pixels and max_pixels > 0 else None

    try:
        # PIL's bomb check runs inside Image.open: it uses Smile's limit (the only one) and fails
        with _pil_limit(limit), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(p)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLargeError(f"{name}: image is larger than the limit of {_mpx(limit)} (a decompression bomb?); raise it with --max-pixels if you trust the file") from None
    except Image.UnidentifiedImageError:
        if _has_image_signature(p):
            raise InputError(f"{name}: the image data is corrupt or truncated (its header cannot be read)") from None
        raise InputError(f"{name}: not an image, or a format Smile cannot read (use JPEG, PNG, TIFF, WebP or BMP)") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied (cannot read it)") from None
    except Exception as exc:  # corrupt headers make PIL raise many kinds of error
        raise InputError(f"{name}: cannot read the image ({_reason(exc)})") from None

    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise InputError(f"{name}: the image is empty ({w}x{h} pixels)")
        if limit is not None and w * h > limit:
            raise ImageTooLargeError(f"{name}: {w}x{h} pixels is larger than the limit of {_mpx(limit)}; raise it with --max-pixels if you trust the file")
        info = ImageInfo(path=p, format=im.format, mode=im.mode, size=(w, h))
        if getattr(im, "n_frames", 1) > 1:
            info.notes.append(f"{name}: has {im.n_frames} frames or pages; only the first is used")
        info.icc_profile = im.info.get("icc_profile") or None
        info.dpi = _dpi(im.info.get("dpi"))
        info.orientation, info.exif = _exif_block(im)
        if im.format == "JPEG":
            info.jpeg_qtables = _copy_qtables(getattr(im, "quantization", None))
            info.jpeg_subsampling = _jpeg_subsampling(im)
            info.quality = estimate_jpeg_quality(info.jpeg_qtables)

        if im.format == "PNG":
            _verify_png(p, name)
        if im.format == "WEBP":
            info.lossless = _webp_is_lossless(p)

        if _is_16bit(p, im):
            image = _load_16bit(p, name, info)
            return image, info

        if im.mode not in SUPPORTED_MODES:
            raise InputError(f"{name}: colour mode {im.mode} ({_mode_words(im.mode)}) is not supported; convert it to 8- or 16-bit RGB or grayscale")
        try:
            im.load()
        except Exception as exc:
            raise InputError(f"{name}: the image data is corrupt or truncated ({_reason(exc)})") from None
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block must not make the photo unreadable
            upright = im.copy()
        if upright is im:
            upright = im.copy()
        # exif_transpose carries the (orientation-stripped) EXIF in .info; we keep ours in ImageInfo
        info.size = upright.size
        return upright, info


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
    16-bit ones reduced to 8 bits; EXIF orientation applied).  Errors as :func:`load_image`."""
    img, _info = load_image(path, max_pixels=max_pixels)
    if isinstance(img, np.ndarray):
        arr = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_RGB2GRAY) if arr.shape[2] >= 3 else arr[:, :, 0]
        return np.ascontiguousarray(arr)
    return np.asarray(img.convert("L"))


def _is_16bit(path: Path, im: Image.Image) -> bool:
    if im.format == "PNG":
        try:
            with open(path, "rb") as f:
                head = f.read(26)
            return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16
        except OSError:
            return False
    if im.format == "TIFF":
        bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None
        if isinstance(bits, int):
            bits = (bits,)
        return bool(bits) and all(b == 16 for b in bits)
    return False


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"BM")


def _verify_png(path: Path, name: str) -> None:
    """Check every chunk's CRC (PIL's decoder skips the image data's; libpng would complain on stderr).

    Scrambled image data can otherwise decompress into garbage pixels that look like a photo."""
    try:
        with _pil_limit(None), Image.open(path) as check:  # (the size was checked against Smile's limit)
            check.verify()
    except Exception as exc:
        raise InputError(f"{name}: the image data is corrupt or truncated ({_reason(exc)})") from None


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


def _has_image_signature(path: Path) -> bool:
    """Does the file start like a JPEG, PNG, TIFF, WebP or BMP (so a failure means damage, not a wrong kind)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _load_16bit(path: Path, name: str, info: ImageInfo) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with any path on any OS, unlike cv2.imread
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except Exception as exc:
        raise InputError(f"{name}: cannot read the 16-bit image ({_reason(exc)})") from None
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
    arr = _orient_array(arr, info.orientation)
    info.bit_depth = 16
    info.mode = {2: "L;16"}.get(arr.ndim) or {2: "LA;16", 4: "RGBA;16"}.get(arr.shape[2], "RGB;16")
    info.size = (arr.shape[1], arr.shape[0])
    return np.ascontiguousarray(arr)


def _png_colour_type(path: Path) -> int | None:
    """The colour type byte of a PNG's header (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[12:16] == b"IHDR" else None


def _orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
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


def _exif_block(im: Image.Image) -> tuple[int, bytes | None]:
    """The source orientation and its EXIF block re-serialised with orientation = 1."""
    try:
        exif = im.getexif()
        if not exif:
            return 1, None
        orientation = exif.get(_EXIF_ORIENTATION, 1)
        if not isinstance(orientation, int) or not 1 <= orientation <= 8:
            orientation = 1
        if _EXIF_ORIENTATION not in exif:
            return orientation, exif.tobytes()
        stored = exif[_EXIF_ORIENTATION]
        exif[_EXIF_ORIENTATION] = 1  # PIL caches this object: restore it for exif_transpose
        try:
            return orientation, exif.tobytes()
        finally:
            exif[_EXIF_ORIENTATION] = stored
    except Exception:  # unreadable EXIF: drop it rather than refuse the photo
        return 1, None


def _dpi(value) -> tuple[float, float] | None:
    try:
        x, y = value
        x, y = float(x), float(y)
        return (x, y) if x > 0 and y > 0 else None
    except Exception:
        return None


def _copy_qtables(q) -> dict | None:
    if not q:
        return None
    try:
        return {int(k): list(v) for k, v in dict(q).items()}
    except Exception:
        return None


def _jpeg_subsampling(im: Image.Image) -> int | None:
    try:
        from PIL import JpegImagePlugin

        s = JpegImagePlugin.get_sampling(im)
        return s if s in (0, 1, 2) else None
    except Exception:
        return None


#: IJG standard luminance quantisation table (quality 50); order does not matter for the estimate.
_STD_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def estimate_jpeg_quality(qtables: dict | None) -> int | None:
    """Estimate the IJG quality (1..100) a JPEG was saved with from its luminance table."""
    if not qtables or 0 not in qtables or len(qtables[0]) != 64:
        return None
    scale = 100.0 * sum(qtables[0]) / sum(_STD_LUMA)  # IJG: table = std * scale / 100
    quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2.0
    return int(min(100, max(1, round(quality))))


# --------------------------------------------------------------------------- writing


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
            write_atomic(target, lambda f: f.write(data))
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
        params["optimize"] = True
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

    write_atomic(target, write)
    return notes


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` byte for byte, atomically (used for photos left unchanged)."""
    source = Path(src)

    def write(f):
        with open(source, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    write_atomic(Path(dst), write)


def check_target(path: str | os.PathLike) -> None:
    """:class:`WriteError` unless ``path`` can receive a photo: it must not exist, or be a regular
    file (or a link to one).  A named pipe or device called ``x.png`` is never replaced."""
    p = Path(path)
    if p.is_dir():
        raise WriteError(f"{path}: could not write it, it is a folder")
    if p.exists() and not p.is_file():
        raise WriteError(f"{path}: could not write it, it is not a regular file (a named pipe, socket or device)")


#: Name of the temporary files :func:`write_atomic` makes: ``.NAME.XXXXXXXX.smile-tmp``.
TEMP_SUFFIX = ".smile-tmp"
#: A temporary file untouched for this long and not locked by a writer was left by a run that died.
STALE_TEMP_SECONDS = 10 * 60
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")
_swept: set[str] = set()


def remove_stale_temps(folder: str | os.PathLike, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete Smile's own temporary files that a killed run left in ``folder``; returns them.

    Only files with :func:`write_atomic`'s naming, unmodified for ``max_age`` seconds and not
    locked by a live writer (every writer holds an exclusive lock on its temporary file; on
    Windows an open file cannot be deleted at all) are removed."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(TEMP_SUFFIX) or not _TEMP_NAME.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            if _locked_by_writer(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _locked_by_writer(path: str) -> bool:
    if fcntl is None:
        return False  # Windows: unlinking an open file fails, which protects a live writer
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False  # (the lock goes with the descriptor)
    except OSError:
        return True
    finally:
        os.close(fd)


def write_atomic(target: str | os.PathLike, write) -> None:
    """Create or replace ``target`` atomically: ``write(f)`` fills a temporary file in the same
    folder, which is then renamed over ``target``.  On any failure (or Ctrl-C, SIGTERM) the
    temporary file is removed, ``target`` is left as it was, and :class:`WriteError` names the
    file.  The first write into a folder also removes temporary files that runs killed outright
    (SIGKILL, power loss) left there (:func:`remove_stale_temps`)."""
    target = Path(target)
    if target.is_symlink():  # write through the link (it stays a link), like an editor saving a file
        target = Path(os.path.realpath(target))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise WriteError(f"{target}: cannot write it, folder {folder} does not exist")
    check_target(target)
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temps(folder)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{_short_name(target.name)}.", suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise WriteError(f"{target}: cannot write in {folder} ({_reason(exc)})") from None
    tmp = Path(tmp_name)
    try:
        if fcntl is not None:  # tells remove_stale_temps in other processes that this file is alive
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _set_mode(tmp, target)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit, WriteError)):
            raise
        raise WriteError(f"{target}: could not write it ({_reason(exc)})") from None


def _short_name(name: str, limit: int = 120) -> str:
    """``name`` cut to at most ``limit`` UTF-8 bytes, so a temporary name built from it stays under
    the usual 255-byte limit however long the target's name is."""
    raw = name.encode("utf-8", "surrogateescape")
    return name if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def _set_mode(tmp: Path, target: Path) -> None:
    """Give the new file the target's permissions if it exists, else the umask default (mkstemp uses 0600)."""
    try:
        if target.exists():
            mode = target.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
    except OSError:
        pass


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
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
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
        arr = np.asarray(im, dtype=np.uint32)
        return Image.fromarray(((arr + 128) // 257).astype(np.uint8), "L"), icc
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


# --------------------------------------------------------------------------- helpers


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _mpx(limit: int | None) -> str:
    return "no limit" if not limit else f"{limit / 1e6:g} megapixels"


def _mode_words(mode: str) -> str:
    return {
        "F": "32-bit floating point",
        "I": "32-bit integer",
        "LAB": "CIE L*a*b*",
        "HSV": "HSV",
    }.get(mode, "unusual")

