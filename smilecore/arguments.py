"""The engine's argument rules, in one place: what ``smile()``, ``detect_faces()``, ``smile_video()``, the
worker and the command line accept for a strength, a face choice, a size in pixels, a pixel limit.

Each check returns the value in the form the engine uses, or raises :class:`UsageError` with one line
that names the argument and what it may be.  JSON has one number type, so a whole number may come as
``20.0``; ``True`` is never a number here; text is a number only when written plainly (``"1.5"``, not
``"1_0"`` or other scripts' digits, which Python's ``float`` also reads).
"""
from __future__ import annotations

import math
import re
from typing import Literal, Sequence, Union

import numpy as np

from .errors import UsageError, too_large  # noqa: F401 (too_large: imported from here too)

#: A face choice: every face, the largest, or 0-based indices in detection order.
FaceChoice = Union[Literal["all", "largest"], Sequence[int]]

_NUMBER = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE | re.ASCII)


def shown(value) -> str:
    """``value`` as a message shows it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def plain_number(text: str) -> float:
    """``text`` as a float when it is written as a plain decimal number (``2``, ``-1.5``, ``.5``, ``1e0``,
    spaces around allowed; ``inf`` and ``nan`` too, for the caller to refuse as not finite), else
    :class:`ValueError`."""
    s = text.strip()
    if not _NUMBER.fullmatch(s):
        raise ValueError(f"not a plain number: {text!r}")
    return float(s)


def whole_number(value) -> int | None:
    """``value`` as an int when it is a whole number (an int, a numpy integer, or a float with no fraction:
    ``20.0``), else None (``True``, ``20.5``, NaN, text)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_count(value, name: str, low: int, what: str = "pixels") -> int:
    """``value`` as a whole number of ``what`` at least ``low``, else :class:`UsageError` naming ``name``."""
    number = whole_number(value)
    if number is None or number < low:
        raise UsageError(f"{name} must be a whole number of {what}, {low} or more, not {shown(value)}")
    return number


def check_min_face(min_face) -> int | None:
    """``min_face`` (the smallest face box kept, in pixels): None or a whole number ≥ 0."""
    return None if min_face is None else check_count(min_face, "min_face", 0)


def pixel_limit(max_pixels) -> int:
    """``max_pixels``: None (``SMILE_MAX_PIXELS``, else the default) or a whole number ≥ 1."""
    if max_pixels is None:
        from .decode import env_max_pixels

        return env_max_pixels()
    return check_count(max_pixels, "max_pixels", 1)


def check_strength(strength) -> float:
    """``strength`` as a finite float: a number, or a number written plainly as text (its range is the
    model's to check)."""
    if isinstance(strength, (bool, np.bool_, bytes, bytearray)):  # (float() reads bytes as text, "1_0" included)
        raise UsageError(f"strength must be a number, not {shown(strength)}")
    try:
        value = plain_number(strength) if isinstance(strength, str) else float(strength)
    except OverflowError:  # a whole number past float's range (10**400): not finite either
        raise UsageError("strength must be a finite number") from None
    except (TypeError, ValueError):
        raise UsageError(f"strength must be a number, not {shown(strength)}") from None
    if not math.isfinite(value):
        raise UsageError("strength must be a finite number")
    return value


def check_flag(value, name: str) -> bool:
    """``value`` as a bool when it is one (Python's or numpy's), else :class:`UsageError` naming ``name``:
    ``"no"`` or ``None`` would otherwise read as a choice."""
    if not isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{name} must be True or False, not {shown(value)}")
    return bool(value)


def check_selection(selection, w: int, h: int) -> np.ndarray:
    """A ``selection`` for a ``w`` × ``h`` image as float32 weights in [0, 1] (uint8 read as 0–255, uint16
    as 0–65535, other numbers clipped; a masked array's masked pixels are 0); :class:`UsageError` for another
    size, non-numbers, NaN or
    infinities, and for a uint8 / uint16 selection whose largest value is 1: a 0/1 mask, which read so
    would select at most 1/255 of the edit."""
    if isinstance(selection, np.ma.MaskedArray):  # (its masked pixels are not selected)
        selection = np.ma.filled(selection, 0)
    sel = np.asarray(selection)
    if sel.ndim == 3 and sel.shape[2] == 1:
        sel = sel[:, :, 0]
    if sel.dtype.kind not in "biuf":  # (numpy counts time spans as numbers; complex numbers are no weights)
        raise UsageError(f"selection must be a numeric (H,W) array, not an array of {sel.dtype}")
    if sel.shape != (h, w):
        got = f"{sel.shape[1]}x{sel.shape[0]}" if sel.ndim == 2 else f"an array of shape {sel.shape}"
        raise UsageError(f"selection must be a numeric (H,W) array the size of the image ({w}x{h}), got {got}"
                         " (a photo turned by its EXIF orientation is that size upright)")
    if np.issubdtype(sel.dtype, np.floating) and not np.isfinite(sel).all():
        raise UsageError("selection has NaN or infinite values: give weights from 0 (unchanged) to 1 (edited)")
    scale = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(sel.dtype, 1)
    if scale > 1 and sel.size and int(sel.max()) == 1:
        raise UsageError(f"the selection's largest value is 1 of {scale} (a 0/1 mask?): {scale} (white) selects a pixel and "
                         f"0 leaves it; multiply an array by {scale}, or pass it as bool")
    return np.clip(sel.astype(np.float32) / np.float32(scale), 0, 1)


def check_face_choice(faces) -> FaceChoice:
    """``faces``: "all", "largest", or a non-empty collection of 0-based indices (given back as a list of
    ints; whether each index exists is known only once the faces are found)."""
    if isinstance(faces, str):
        if faces not in ("all", "largest"):
            raise UsageError(f"faces must be 'all', 'largest' or a list of indices, not {shown(faces)}")
        return faces
    bad = UsageError(f"faces must be 'all', 'largest' or a list of 0-based indices (e.g. [0]), not {shown(faces)}")
    if isinstance(faces, (bytes, bytearray, dict)) or faces is None:
        raise bad
    try:
        chosen = list(faces)
    except TypeError:
        raise bad from None
    if not chosen:
        raise UsageError("faces is an empty list: give 'all', 'largest' or the indices of the faces to edit")
    indices = []
    for i in chosen:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or i < 0:
            raise bad
        indices.append(int(i))
    return indices
