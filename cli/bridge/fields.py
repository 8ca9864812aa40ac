"""The fields of a ``smile worker`` request (docs/worker-protocol.md): each read and type-checked.

Values are only parsed here; what they mean (a strength inside the model's range, a face index
that exists) is the engine's to check.  A field that is missing or of the wrong type raises
:class:`BadRequest`, which the worker answers with ``bad_request``.
"""
from __future__ import annotations

import math
import os
from typing import Callable

from smilecore.arguments import check_count, check_face_choice, whole_number
from smilecore.errors import SmileError, UsageError

BAD_REQUEST = "bad_request"


class BadRequest(Exception):
    """A request that is not valid JSON, names no known command, or has wrong fields."""


def no_constant(name: str) -> None:
    """NaN, Infinity and -Infinity are not JSON (Python's json reads them): refuse them."""
    raise BadRequest(f"request is not valid JSON ({name} is not a JSON value)")


def finite_float(text: str) -> float:
    """A JSON number with a fraction or an exponent, refused when it is past float's range (``1e999`` reads as
    infinity, which no reply could carry back)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRequest(f"request has a number too large to read ({text[:40]})")
    return value


def error_dict(exc: SmileError) -> dict:
    """An engine error as the protocol's ``error`` object (a usage error is ``bad_request``: the protocol
    has no ``usage`` code, docs/worker-protocol.md)."""
    return {"code": BAD_REQUEST if isinstance(exc, UsageError) else exc.code, "message": str(exc)}


def path_field(req: dict, name: str, required: bool = False) -> str | None:
    """Field ``name``: a non-empty path string, or None when absent and not ``required``."""
    value = req.get(name)
    if value is None:
        if required:
            raise BadRequest(f"field {name!r} (a file path) is required")
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise BadRequest(f"field {name!r} must be a non-empty path string")
    try:
        os.fsencode(value)
    except UnicodeError:  # e.g. a lone surrogate ("\\ud800"): no file can have that name here
        raise BadRequest(f"field {name!r} is not a file name this system can use (it holds characters "
                         f"that cannot be encoded: {value[:200]!r})") from None
    return value


def check_destination(path: str, format_of: Callable[[str], object] | None = None) -> None:
    """An output path must have a known extension (``format_of``, default the photo formats:
    bad_request) and an existing folder (write_failed), and be no pipe or device, no read-only file and
    not reached through a link another user planted (write_failed)."""
    from pathlib import Path

    from smilecore.errors import WriteError
    from smilecore.atomic import check_target, check_writable, folder_problem, followed_links
    from smilecore.encode import output_format

    try:
        (format_of or output_format)(path)
    except UsageError as exc:
        raise BadRequest(str(exc)) from None
    if path.endswith(("/", os.sep)):  # (Path would drop the slash, and the reply name a file no one can open)
        raise WriteError(f"{path}: cannot write it, the name ends with a slash (a folder's name); name the file")
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    problem = folder_problem(folder)
    if problem:
        raise WriteError(f"{path}: cannot write it, {problem}")
    followed_links(p)  # (refused before any work is done, as write_atomic would refuse it)
    check_target(p)
    check_writable(p)


def strength_field(req: dict) -> float:
    """Field ``strength`` (default 1): a finite number; its range is the model's to check."""
    value = req.get("strength", 1.0)
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # (a whole number too large for a float)
        number = math.nan
    if not math.isfinite(number):
        raise BadRequest("field 'strength' must be a finite number")
    return number


def faces_field(req: dict) -> str | list[int]:
    """Field ``faces`` (default ``"all"``): ``"all"``, ``"largest"`` or a list of 0-based indices."""
    value = req.get("faces", "all")
    if isinstance(value, (str, list)):
        try:
            return check_face_choice(value)  # (the engine's rule; JSON gives only strings and lists)
        except UsageError:
            pass
    raise BadRequest("field 'faces' must be \"all\", \"largest\" or a non-empty list of 0-based indices")


def min_face_field(req: dict) -> int | None:
    """Field ``min_face``: a positive whole number of pixels, or None."""
    value = req.get("min_face")
    if value is None:
        return None
    try:
        return check_count(value, "min_face", 1)
    except UsageError:
        raise BadRequest("field 'min_face' must be a positive whole number of pixels") from None


def crf_field(req: dict) -> int | None:
    """Field ``crf`` (videos): a whole number, or None; its range is the engine's to check."""
    value = req.get("crf")
    if value is None:
        return None
    number = whole_number(value)
    if number is None:
        raise BadRequest("field 'crf' must be a whole number")
    return number
