"""Errors a person can act on.  Each carries a stable ``code`` and the CLI exit status.

Exit statuses (documented in the README):

====  =============  ==========================================================
exit  code           meaning
====  =============  ==========================================================
0     -              success
1     internal       unexpected internal error (a bug: please report it)
2     usage          bad command-line usage or option value
3     no_face        no (selected) face found in the photo
4     bad_input      input missing, unreadable, corrupt or of an unsupported kind
5     too_large      image above the pixel limit
6     model          model missing, corrupt, wrong checksum or wrong contract
7     write_failed   output could not be written
====  =============  ==========================================================
"""
from __future__ import annotations

import unicodedata


#: Characters :func:`one_line` writes as escapes besides the control characters: line and paragraph
#: separators, and the marks that reorder text on screen (a name must read in the order it is stored).
_ESCAPED = frozenset("\u2028\u2029\u200e\u200f\u061c" + "".join(map(chr, range(0x202A, 0x202F)))
                     + "".join(map(chr, range(0x2066, 0x206A))))


def one_line(text: str) -> str:
    """``text`` on one line as it is, but for its control characters, written as escapes (``\\n``, ``\\t``,
    ``\\x1b``; also line separators and the marks that reorder text): a file name holding a newline is shown
    as the name it is, not as another one. Other characters stay as they are, e.g. the narrow no-break space
    in a screenshot's name."""
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if _escaped(c) else c for c in text)


def _escaped(c: str) -> bool:
    return c in _ESCAPED or (not c.isprintable() and unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs"))


class SmileError(Exception):
    """Base class: a one-line, actionable message."""

    code = "internal"
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always: control characters (a newline in a file's name) escaped
        return one_line(self.message)


class UsageError(SmileError):
    code = "usage"
    exit_code = 2


class NoFaceError(SmileError):
    """No face found, or none of those found chosen or edited: ``faces`` holds the faces found (each
    with its ``reason``: :class:`smilecore.face.Face` records, or a video's tracks as its report lists
    them), so that a report can list them."""

    code = "no_face"
    exit_code = 3

    def __init__(self, message: str, faces: list | None = None):
        super().__init__(message)
        self.faces = list(faces or [])


class InputError(SmileError):
    code = "bad_input"
    exit_code = 4


class ImageTooLargeError(InputError):
    code = "too_large"
    exit_code = 5


class ModelError(SmileError):
    code = "model"
    exit_code = 6


class WriteError(SmileError):
    code = "write_failed"
    exit_code = 7


EXIT_CODES = {cls.code: cls.exit_code for cls in (SmileError, UsageError, NoFaceError, InputError, ImageTooLargeError, ModelError, WriteError)}


def reason(exc: BaseException) -> str:
    """An exception's text on one line, at most 200 characters (its class name if it has none),
    for the ``(...)`` part of a message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def system_reason(exc: BaseException) -> str:
    """Why a file could not be read or written, for the ``(...)`` part of a message: the system's words for an
    :class:`OSError`, in lower case (``no space left on device``), without its number or a temporary file's
    name; :func:`reason` for anything else."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return reason(exc)


def found_behind(exc: BaseException | None, kind: type[BaseException] | tuple[type[BaseException], ...]):
    """The first exception of ``kind`` behind ``exc``: itself, or one it was raised from or while handling (a
    library can wrap an error in its own), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def too_large(w: int, h: int, limit: int, what: str = "image") -> ImageTooLargeError:
    """The error for a ``w`` × ``h`` ``what`` over ``limit`` pixels (exact counts where megapixels round alike,
    or would need an exponent: a limit of a few pixels)."""
    size, top = f"{h * w / 1e6:.3g}", f"{limit / 1e6:.3g}"
    if size == top or "e" in size + top:
        size, top = f"{h * w:,} pixels", f"{limit:,}"
    else:
        size, top = size + " MP", top + " MP"
    return ImageTooLargeError(f"{what} is {w}x{h} = {size}, above the limit of {top}")
