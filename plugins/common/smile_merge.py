"""Putting the engine's answer into a layer only where it changed the pixels (standard library only;
shared by the GIMP and Krita plug-ins: ``smile install-plugin`` puts it next to each).

The engine's output is bit-identical to its input wherever it did not edit: :func:`changed_runs`
finds the pixels that differ, row by row, and :func:`merge_runs` copies only those from the
converted answer into the layer's own bytes, so every other pixel keeps its exact value (in a
float image also values below 0 or above 1, which a conversion to 16 bits would clip).
:func:`partly_transparent` tells whether a layer holds a pixel that is neither transparent nor
opaque (a copy of such a layer stacked on it would change how it looks).
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

#: (row, first column, column after the last) of pixels that changed.
Run = Tuple[int, int, int]
Rect = Tuple[int, int, int, int]

_NONZERO = re.compile(rb"[^\x00]+")
#: byte value -> 1 when it is not 0 (``bytes.translate`` table)
_FLAG = bytes([0] + [1] * 255)
#: _XOR[v]: every byte value XOR v (``bytes.translate`` table)
_XOR = [bytes(i ^ v for i in range(256)) for v in range(256)]


def changed_runs(before: bytes, after: bytes, width: int, height: int, bytes_per_pixel: int) -> List[Run]:
    """The runs of pixels that differ between two images of the same size and layout.  Whole rows
    are compared as integers, so no Python loop runs over pixels."""
    stride = width * bytes_per_pixel
    if len(before) != stride * height or len(after) != stride * height:
        raise ValueError(f"expected {stride * height} bytes, got {len(before)} and {len(after)}")
    runs: List[Run] = []
    for y in range(height):
        start = y * stride
        a, b = before[start:start + stride], after[start:start + stride]
        if a == b:
            continue
        diff = (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(stride, "little")
        flags = 0
        for k in range(bytes_per_pixel):  # one byte a pixel: nonzero where any of its bytes differ
            flags |= int.from_bytes(diff[k::bytes_per_pixel], "little")
        runs.extend((y, found.start(), found.end()) for found in _NONZERO.finditer(flags.to_bytes(width, "little")))
    return runs


def bounding_rect(runs: List[Run]) -> Optional[Rect]:
    """(x, y, width, height) around ``runs``; None when there are none."""
    if not runs:
        return None
    x0 = min(r[1] for r in runs)
    x1 = max(r[2] for r in runs)
    y0, y1 = runs[0][0], runs[-1][0] + 1
    return x0, y0, x1 - x0, y1 - y0


def merge_runs(base: bytes, changed: bytes, width: int, height: int, bytes_per_pixel: int,
               runs: List[Run], origin: Tuple[int, int] = (0, 0)) -> bytes:
    """``base`` with the pixels of ``runs`` taken from ``changed`` (both ``width``×``height``
    pixels; ``origin`` is where they sit in the runs' coordinates)."""
    stride = width * bytes_per_pixel
    if len(base) != stride * height or len(changed) != stride * height:
        raise ValueError(f"expected {stride * height} bytes, got {len(base)} and {len(changed)}")
    out = bytearray(base)
    ox, oy = origin
    for y, x0, x1 in runs:
        start = (y - oy) * stride
        a, b = start + (x0 - ox) * bytes_per_pixel, start + (x1 - ox) * bytes_per_pixel
        out[a:b] = changed[a:b]
    return bytes(out)


def partly_transparent(data: bytes, bytes_per_pixel: int, alpha_offset: int, opaque: bytes) -> bool:
    """Does any pixel of ``data`` have an alpha that is neither 0 (all its bytes zero) nor
    ``opaque`` (the bytes of full opacity, e.g. ``b"\\xff"`` or 1.0 as a little-endian float)?

    The alpha of each pixel is ``len(opaque)`` bytes at ``alpha_offset``.  Each byte plane of
    the alpha is compared at once, as one integer, so no Python loop runs over pixels.
    """
    if bytes_per_pixel <= 0 or len(data) % bytes_per_pixel:
        raise ValueError(f"{len(data)} bytes are no whole number of {bytes_per_pixel}-byte pixels")
    if alpha_offset < 0 or alpha_offset + len(opaque) > bytes_per_pixel or not opaque:
        raise ValueError(f"no {len(opaque)}-byte alpha at byte {alpha_offset} of a {bytes_per_pixel}-byte pixel")
    count = len(data) // bytes_per_pixel
    if count == 0:
        return False
    not_clear = not_opaque = 0
    for k, full in enumerate(opaque):
        plane = data[alpha_offset + k::bytes_per_pixel]
        not_clear |= int.from_bytes(plane, "little")
        not_opaque |= int.from_bytes(plane.translate(_XOR[full]), "little")
    clear_flags = not_clear.to_bytes(count, "little").translate(_FLAG)
    opaque_flags = not_opaque.to_bytes(count, "little").translate(_FLAG)
    return (int.from_bytes(clear_flags, "little") & int.from_bytes(opaque_flags, "little")) != 0
