"""How many scans a JPEG holds, counted from its markers before libjpeg decodes it.

A progressive JPEG is decoded scan by scan, and every scan is a pass over the whole picture: a small
file holding thousands of scans keeps libjpeg busy for minutes (a reviewer's 156 KB file of 16 MP took
58.6 s). Encoders write about ten (libjpeg's progressive script: 10 for colour, 6 for grey), so a JPEG
of more than :data:`MAX_SCANS` is refused before its pixels are decoded (:func:`check_scans`), and so is one of
more than :data:`MAX_MARKERS` markers, before Pillow reads them.

The walk follows libjpeg's own reading of the stream: a segment with a length is skipped by its length,
stray bytes between markers are skipped (libjpeg warns and reads on, so a scan hidden behind one stray
byte is still a scan), fill bytes ``FF`` before a marker and stuffed ``FF 00`` in the entropy-coded data
are no markers, and the walk ends at the first ``EOI`` (an MPO's further pictures are not decoded).
"""
from __future__ import annotations

import mmap
import os
import re

from .errors import InputError

#: The most scans a JPEG may have: ten times what encoders write.
MAX_SCANS = 100

#: The most markers (segments, scans) a JPEG may have before its end: a photo has a few dozen (a 16 MB XMP packet
#: in 64 kB pieces, some hundreds). Pillow reads every segment before the first scan in Python and keeps a list of
#: them: a 20 MB file of five million empty APP1 segments took 32 s and 856 MB.
MAX_MARKERS = 10_000

#: A marker as libjpeg finds one: ``FF``, then a byte that is neither a stuffed zero, a fill byte ``FF`` (the
#: last ``FF`` of a run is the marker's) nor a restart marker (``D0``–``D7``, which only punctuate a scan's
#: entropy-coded data). (Not ``\xff+``: a pattern that starts with a repeat is searched about 25 times slower.)
_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
#: Markers with no length after them: SOI, EOI (the end), TEM.
_SOI, _EOI, _TEM, _SOS = 0xD8, 0xD9, 0x01, 0xDA


def count_scans(data, stop: int | None = None) -> int:
    """The number of scans (SOS markers) in the JPEG stream ``data`` (bytes or any buffer ``re`` can search),
    up to its first EOI; with ``stop``, the walk ends as soon as more than ``stop`` were counted."""
    return _walk(data, stop)[0]


def _walk(data, stop: int | None = None, stop_markers: int | None = None) -> tuple[int, int]:
    """``(scans, markers)`` of the JPEG stream ``data`` up to its first EOI, the walk ending as soon as more than
    ``stop`` scans or more than ``stop_markers`` markers were counted."""
    pos, scans, markers, end = 2 if bytes(data[:2]) == b"\xff\xd8" else 0, 0, 0, len(data)
    while pos < end:
        found = _MARKER.search(data, pos)  # (skips stray bytes and a scan's entropy-coded data alike)
        if found is None:
            break
        marker, pos = data[found.end() - 1], found.end()
        if marker == _EOI:
            break
        markers += 1
        if stop_markers is not None and markers > stop_markers:
            break
        if marker in (_SOI, _TEM):
            continue
        if pos + 2 > end:
            break
        if marker == _SOS:
            scans += 1
            if stop is not None and scans > stop:
                break
        pos += (data[pos] << 8) | data[pos + 1]  # (the length counts its own two bytes)
    return scans, markers


def check_scans(path: str | os.PathLike, name: str) -> None:
    """:class:`InputError` (exit 4) when the file at ``path`` is a JPEG (or an MPO: it starts ``FF D8 FF``) holding
    more than :data:`MAX_SCANS` scans or :data:`MAX_MARKERS` markers; ``name`` is the file as the message names it.
    Another file, or one that cannot be mapped (empty), is left to the decoder."""
    try:
        with open(path, "rb") as f:
            if f.read(3) != b"\xff\xd8\xff":
                return
    except OSError:
        return
    check_streams(path, name, None, "a JPEG of")


#: TIFF tags whose values are the places of JPEG streams, with the tag of their lengths: strips, tiles, and an
#: old-style JPEG TIFF's whole stream (JPEGInterchangeFormat).
_TIFF_PARTS = ((273, 279), (324, 325), (513, 514))
#: TIFF compressions whose strips or tiles are JPEG streams: old-style (6) and new-style (7).
TIFF_JPEG = frozenset({6, 7})


def check_tiff_scans(path: str | os.PathLike, name: str, tags) -> None:
    """:class:`InputError` (exit 4) when a JPEG-compressed TIFF (``tags``: its first page's directory, Pillow's
    ``tag_v2``) has a strip or tile of more than :data:`MAX_SCANS` scans. libtiff decodes each one as a JPEG of
    its own; it stops at 100 scans too, but only after the scans before (a pass over the strip each), with a line
    of its own on stderr and a reason Pillow gives as "decoder error -2"."""
    if tags.get(259) not in TIFF_JPEG:
        return
    streams = []
    for offsets, lengths in _TIFF_PARTS:
        where, size = tags.get(offsets), tags.get(lengths)
        where = (where,) if isinstance(where, int) else where if isinstance(where, tuple) else ()
        size = (size,) if isinstance(size, int) else size if isinstance(size, tuple) else ()
        streams += [[(w, n)] for w, n in zip(where, size) if isinstance(w, int) and isinstance(n, int)]
    if streams:
        check_streams(path, name, streams, "a TIFF whose JPEG-compressed strip or tile holds")


def check_streams(path: str | os.PathLike, name: str, streams: list[list[tuple[int, int]]] | None, what: str) -> None:
    """:class:`InputError` (exit 4) when one of the JPEG streams in the file at ``path`` holds more than
    :data:`MAX_SCANS` scans or :data:`MAX_MARKERS` markers (:func:`check_stream`). ``streams``: the pieces of each
    stream, ``(offset, length)`` in the file, in order (a HEIF image may be stored in several); None: the whole file.

    The streams walked add up to the file's size at most: a file whose streams name the same bytes again and again
    (20,000 HEIF items of one 2 MB stream took 29 s, while the decoder reads one) has the rest left to the decoder.
    A file that cannot be mapped (empty) is left to the decoder too."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data, memoryview(data) as view:
            budget = len(data)
            for pieces in streams if streams is not None else [[(0, len(data))]]:
                pieces = [(at, min(n, len(data) - at)) for at, n in pieces if 0 <= at < len(data) and n > 0]
                size = sum(n for _at, n in pieces)
                if size > budget:
                    return
                budget -= size
                if len(pieces) == 1:
                    with view[pieces[0][0]:pieces[0][0] + pieces[0][1]] as part:  # (no copy; released before the map)
                        check_stream(part, name, what)
                elif pieces:
                    check_stream(b"".join(data[at:at + n] for at, n in pieces), name, what)
    except (OSError, ValueError):
        return


def check_stream(data, name: str, what: str) -> None:
    """:class:`InputError` (exit 4) when the JPEG stream ``data`` (bytes or a buffer) holds more than
    :data:`MAX_SCANS` scans; the message names ``name`` and says ``what`` it is ("a HEIF whose JPEG image
    holds")."""
    scans, markers = _walk(data, MAX_SCANS, MAX_MARKERS)
    if scans > MAX_SCANS:
        raise InputError(f"{name}: {what} more than {MAX_SCANS} scans (progressive passes; encoders write about "
                         "ten): refused, as decoding it could take minutes")
    if markers > MAX_MARKERS:
        raise InputError(f"{name}: {what} more than {MAX_MARKERS} markers (segments; a photo has a few dozen): "
                         "refused, as reading them could take minutes")
