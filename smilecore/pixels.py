"""Pixels between the forms the engine meets: PIL images, (H, W, C) arrays, 8 and 16 bits.

The engine edits ``(H, W, C)`` uint8/uint16 arrays (C in 1..4).  :func:`from_pil` makes such an
array from any common PIL mode (EXIF orientation applied) and remembers what :func:`to_pil`
needs to give the result back in the input's own mode; :func:`from_array` checks a caller's
array.  :func:`to_8bit` is the one 16 → 8-bit conversion (rounded to the nearest 8-bit value),
used for detection, for the network's crops, and for 8-bit files and masks made from 16-bit
pixels; :func:`to_rgb8` is the 8-bit RGB view detection and alignment work on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import InputError, reason


@dataclass
class Pixels:
    """An image as the engine edits it, with what is needed to give it back in its own form."""

    kind: str  #: "pil" or "array": what the caller passed
    mode: str | None  #: the PIL mode the result is given back in (None for arrays)
    info: dict  #: PIL metadata carried to the result (icc_profile, exif, dpi)
    array: np.ndarray  #: (H, W, C) uint8/uint16
    original: Image.Image | None = None  #: upright input, kept when its mode had to be converted


#: The EXIF tag that holds the orientation.
EXIF_ORIENTATION = 0x0112

_PIL_DIRECT = {"RGB", "RGBA", "L", "LA"}
#: modes converted to RGB(A)/L(A) for editing and converted back only where pixels changed
_CONVERTED = {"1", "CMYK", "YCbCr", "LAB", "HSV"}
_PIL_16 = {"I;16", "I;16B", "I;16L", "I;16N"}


def to_upright(img: Image.Image) -> Image.Image:
    """``img`` turned or flipped as its EXIF orientation (2..8) says, as a new image; ``img``
    itself when it needs no turn (no copy).  An unreadable EXIF block raises PIL's error."""
    if img.getexif().get(EXIF_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def to_8bit(arr: np.ndarray) -> np.ndarray:
    """uint16 samples reduced to the nearest uint8 value (``round(v / 257)``), same shape; uint8
    arrays are returned as they are."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype != np.uint16:
        raise InputError(f"pixels of type {arr.dtype} cannot be reduced to 8 bits: use uint8 or uint16")
    if arr.size == 0:
        return np.zeros(arr.shape, np.uint8)
    # OpenCV rounds v/257 to the nearest integer; no v/257 lies half-way, so this is exact
    return cv2.convertScaleAbs(arr, alpha=1 / 257).reshape(arr.shape)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """8-bit, 3-channel, C-contiguous view of an (H,W[,C]) uint8/uint16 array: grey is repeated
    into three channels, alpha is dropped (what detection and the network's crops use)."""
    image = to_8bit(image)
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif c == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def from_pil(img: Image.Image) -> Pixels:
    """The pixels of a PIL image, upright (EXIF orientation applied), as an (H, W, C) array.

    Palette, CMYK, YCbCr, 1-bit and premultiplied modes are converted to RGB(A)/L(A); a tRNS
    colour key becomes a real alpha channel.  Raises :class:`InputError` for other modes and
    for unreadable pixels or EXIF orientation."""
    try:
        img.load()  # decoded here, so that damaged pixel data is not blamed on the EXIF block below
    except MemoryError:
        raise
    except Exception as exc:
        if isinstance(exc, ValueError) and "closed" in str(exc):  # PIL's "Operation on closed image"
            raise InputError(f"cannot read the photo's pixels ({reason(exc)}): pass an open image") from None
        raise InputError(f"the image data is corrupt or truncated ({reason(exc)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's "Corrupt EXIF data": a broken block only loses the orientation
            img = to_upright(img)
    except Exception:
        raise InputError("the photo's EXIF orientation data is corrupt") from None
    info = {k: img.info[k] for k in ("icc_profile", "exif", "dpi") if k in img.info}
    mode = img.mode
    try:
        if mode in ("L", "RGB") and img.info.get("transparency") is not None:
            # a tRNS colour key: make it a real alpha channel, so an edited pixel can never
            # turn transparent by taking the key's colour (the result is LA / RGBA)
            mode = mode[0] + "A" if mode == "L" else "RGBA"
            arr = np.asarray(img.convert(mode))
        elif mode in _PIL_DIRECT:
            arr = np.asarray(img)
        elif mode in _PIL_16:
            arr = np.asarray(img).astype(np.uint16)
        elif mode == "I":
            arr = np.asarray(img)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):  # clipping would change pixels far from any face
                raise InputError(f"32-bit integer pixels from {arr.min()} to {arr.max()} cannot be edited (Smile keeps "
                                 "0..65535): convert the image to 16 bits first")
            arr = arr.astype(np.uint16)
        elif mode == "P":
            conv = "RGBA" if ("transparency" in img.info or img.palette and img.palette.mode == "RGBA") else "RGB"
            arr, mode = np.asarray(img.convert(conv)), conv
        elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "PA", "La", "RGBa", "RGBX"):
            target = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}.get(mode, "RGB")
            arr = np.asarray(img.convert(target))
        else:
            raise InputError(f"unsupported colour mode {mode!r}: convert the photo to RGB first")
    except OSError as exc:
        raise InputError(f"cannot read the photo's pixels: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return Pixels("pil", mode, info, arr, original=img if mode in _CONVERTED else None)


def to_pil(arr: np.ndarray, src: Pixels) -> Image.Image:
    """The edited ``arr`` as a PIL image in ``src``'s mode, with its metadata; for converted
    modes only the changed pixels are converted back (the rest keep their exact values)."""
    mode = src.mode
    a = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if mode in _PIL_16 or mode == "I":
        img = Image.fromarray(np.ascontiguousarray(a, dtype="<u2"))  # mode I;16
        if mode == "I":
            img = img.convert("I")
    elif mode in _PIL_DIRECT or mode == "P":
        img = Image.fromarray(a)
    elif mode in _CONVERTED and src.original is not None:
        changed = np.any(arr != src.array, axis=2)
        img = src.original.copy()
        if changed.any():
            img.paste(Image.fromarray(a).convert(mode), (0, 0), Image.fromarray(changed.astype(np.uint8) * 255))
    else:
        img = Image.fromarray(a)
    img.info.update(src.info)
    return img


def from_array(arr: np.ndarray) -> Pixels:
    """A caller's uint8/uint16 (H,W) or (H,W,C) array (C in 1..4) as :class:`Pixels`;
    :class:`InputError` for anything else."""
    if not isinstance(arr, np.ndarray):
        raise InputError(f"expected a PIL image or a numpy array, got {type(arr).__name__}")
    arr = np.asarray(arr)  # a subclass (np.matrix, a masked array) as the plain array of its values
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2 and not arr.dtype.isnative:
        arr = arr.astype(np.uint16)  # big-endian 16-bit samples: the same values in this machine's order
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"array of dtype {arr.dtype} is not supported: use uint8 or uint16")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"array of shape {arr.shape} is not an image: expected (H,W) or (H,W,C) with C in 1..4")
    return Pixels("array", None, {}, arr)


def dim_hint(arr: np.ndarray) -> str:
    """A hint for a message about an image in which no face was found: "" unless it is 16-bit with no
    value above 255 (8-bit values in a 16-bit container, e.g. Pillow's ``convert("I")``), which reads as
    nearly black."""
    if arr.dtype != np.uint16 or not arr.size or int(arr.max()) > 255:
        return ""
    return (" (the image is 16-bit but no value is above 255, so it is nearly black: 8-bit values stored as "
            "16-bit without being scaled? They need multiplying by 257)")


def from_any(image: Image.Image | np.ndarray) -> Pixels:
    """:func:`from_pil` for a PIL image, else :func:`from_array`."""
    return from_pil(image) if isinstance(image, Image.Image) else from_array(image)
