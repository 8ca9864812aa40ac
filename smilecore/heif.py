"""HEIF (HEIC) photos, the format phones save in, read and written through ``pillow-heif``.

``pillow-heif`` is optional (the ``[heif]`` extra; :data:`INSTALL` says how to get it): its wheels carry
libheif with an HEVC decoder and encoder, whose licences (LGPL, and GPL for the x265 encoder)
are the user's choice to install, not a dependency of the engine.  AVIF, the other format of
the HEIF family, needs nothing extra: Pillow reads and writes it itself.

* :func:`kind_of_file`: ``"heif"``, ``"avif"`` or ``None`` from a file's ``ftyp`` box.
* :func:`require`: makes PIL open and save HEIF (once per process), or raises
  :class:`~smilecore.errors.InputError` / :class:`~smilecore.errors.UsageError` saying how to
  install it.
* :func:`primary_size`: the size the primary image's header claims, read from the boxes without a
  decoder (so a decompression bomb is refused before libheif or libavif allocate anything).
* :func:`jpeg_extents`: where its JPEG-coded images lie, for their scans to be counted.
* :func:`what_is_it`: what an ISO media file that no decoder could open is (a video, an image
  sequence without a still picture), for the one-line error.
* :data:`EXTENSIONS`: the file names of HEIF photos.
"""
from __future__ import annotations

import struct
import threading
from pathlib import Path

from .errors import InputError, UsageError

#: File extensions of HEIF photos (HEVC-coded; AVIF has its own ``.avif``).
EXTENSIONS = frozenset({".heic", ".heif", ".hif"})

#: What to run so that HEIF photos can be read and written.
INSTALL = 'pip install "pillow-heif>=1.0" (the [heif] extra)'

#: ``ftyp`` brands of HEVC-coded HEIF files (a still image, a sequence, their variants).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
#: ``ftyp`` brands of AVIF files.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: The HEIF family's generic brands, which say nothing of the coding (the compatible brands do).
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"miaf", b"MiHE", b"MiHB", b"MiHA"})

_lock = threading.Lock()
_registered = False


def kind_of_file(path: str | Path) -> str | None:
    """``"heif"`` for an HEVC-coded HEIF file (``.heic``), ``"avif"`` for an AVIF one, ``None`` for
    anything else, from the brands of the file's ``ftyp`` box (the extension is not consulted)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    return kind_of_bytes(head)


def kind_of_bytes(head: bytes) -> str | None:
    """:func:`kind_of_file` for the first bytes of a file (at least its ``ftyp`` box)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size) if size >= 16 else 16
    major = head[8:12]
    compatible = [head[i:i + 4] for i in range(16, end - 3, 4)]
    for brand in [major, *compatible]:
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heif"
    if major in _GENERIC_BRANDS:  # a HEIF container with no coding brand: libheif may still read it
        return "heif"
    return None


#: Most bytes of a ``meta`` box :func:`primary_size` reads (a phone's is a few kB; a grid of 1000
#: tiles some tens of kB); a larger one is not parsed (the decoders' own checks still apply).
_MAX_META = 4 << 20
#: Most top-level boxes looked at (a photo has 3 or 4: ftyp, meta, mdat, maybe free).
_MAX_TOP_BOXES = 64


def _boxes(data: bytes, start: int, end: int):
    """``(type, payload_start, box_end)`` of each ISO BMFF box in ``data[start:end]``; stops at the
    first box whose header does not fit (never loops: every box advances at least 8 bytes)."""
    pos = start
    end = min(end, len(data))
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            head = 16
        elif size == 0:  # to the end of the enclosing box (or file)
            size = end - pos
        if size < head:
            return
        yield kind, pos + head, min(pos + size, end)
        pos += size


def _top_level(path: str | Path) -> list[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of a file's top-level boxes (at most :data:`_MAX_TOP_BOXES`), read
    from their headers only; ``[]`` when the file cannot be read."""
    found: list[tuple[bytes, int, int]] = []
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            total = f.tell()
            pos = 0
            while pos + 8 <= total and len(found) < _MAX_TOP_BOXES:
                f.seek(pos)
                head = f.read(16)
                size, kind = struct.unpack_from(">I4s", head)
                if size == 1 and len(head) == 16:
                    size = struct.unpack_from(">Q", head, 8)[0]
                elif size == 0:
                    size = total - pos
                if size < 8:
                    break
                found.append((kind, pos, size))
                pos += size
    except (OSError, struct.error):
        pass
    return found


def _primary_property(path: str | Path, name: bytes):
    """A property of a HEIF or AVIF file's primary image (found through ``pitm`` and ``ipma`` in the
    ``meta`` box; only a few kB are read), or ``None`` when the file has no such header, it cannot be
    parsed, or the property is absent."""
    meta = next(((off, size) for kind, off, size in _top_level(path) if kind == b"meta"), None)
    if meta is None or meta[1] > _MAX_META:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(meta[0])
            return _primary_properties(f.read(meta[1])).get(name)
    except (OSError, struct.error, IndexError):
        return None


def primary_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` that a HEIF or AVIF file's primary image claims (its ``ispe`` property),
    before any rotation; ``None`` when the file does not say.  This is how a file claiming
    60000 x 60000 pixels is refused before a decoder is asked."""
    return _primary_property(path, b"ispe")


def primary_bit_depth(path: str | Path) -> int | None:
    """Bits per sample of a HEIF or AVIF file's primary image (its ``pixi`` property: the most of
    its channels), ``None`` when the file does not say."""
    return _primary_property(path, b"pixi")


def _primary_properties(data: bytes) -> dict:
    """``{b"ispe": (width, height), b"pixi": bits}`` of the primary image, from a ``meta`` box's bytes."""
    box = next(_boxes(data, 0, len(data)), None)
    if box is None or box[0] != b"meta":
        return {}
    primary = None
    properties: list[tuple[bytes, int, int]] = []
    links: dict[int, list[int]] = {}
    for kind, start, end in _boxes(data, box[1] + 4, box[2]):  # (meta is a full box: version + flags)
        if kind == b"pitm":
            primary = struct.unpack_from(">H" if data[start] == 0 else ">I", data, start + 4)[0]
        elif kind == b"iprp":
            for sub, s_start, s_end in _boxes(data, start, end):
                if sub == b"ipco":
                    properties = list(_boxes(data, s_start, s_end))
                elif sub == b"ipma":
                    _read_ipma(data, s_start, s_end, links)
    found: dict = {}
    for index in links.get(primary, []) if primary is not None else []:
        if not 1 <= index <= len(properties):
            continue
        kind, start, end = properties[index - 1]
        if kind == b"ispe" and kind not in found:
            found[kind] = struct.unpack_from(">II", data, start + 4)
        elif kind == b"pixi" and kind not in found and start + 5 < end:
            channels = data[start + 4]
            found[kind] = max(data[start + 5:min(end, start + 5 + channels)] or b"\x08")
    return found


def jpeg_extents(path: str | Path) -> list[list[tuple[int, int]]]:
    """Where a HEIF file's JPEG-coded images (items of type ``jpeg``: a primary image, a grid's tiles) lie:
    ``(offset, length)`` of the pieces (extents) of each, in order, so that their scans can be counted
    (:func:`smilecore.jpeg_scans.check_streams`) before libheif decodes them; ``[]`` when the file holds none, or
    its boxes cannot be parsed."""
    meta = next(((off, size) for kind, off, size in _top_level(path) if kind == b"meta"), None)
    if meta is None or meta[1] > _MAX_META:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(meta[0])
            return _jpeg_extents(f.read(meta[1]))
    except (OSError, struct.error, IndexError, ValueError):
        return []


def _jpeg_extents(data: bytes) -> list[list[tuple[int, int]]]:
    """``[(offset, length), ...]`` in the file of each ``jpeg`` item of a ``meta`` box's bytes (items stored
    elsewhere than in the file's own bytes, construction methods 1 and 2, are left out)."""
    box = next(_boxes(data, 0, len(data)), None)
    if box is None or box[0] != b"meta":
        return []
    jpeg: set[int] = set()
    places: dict[int, list[tuple[int, int]]] = {}
    iloc = None
    for kind, start, end in _boxes(data, box[1] + 4, box[2]):
        if kind == b"iinf":
            first = start + (6 if data[start] == 0 else 8)  # (version + flags, then a 16- or 32-bit count)
            for sub, s_start, _s_end in _boxes(data, first, end):
                version = data[s_start] if sub == b"infe" else 0
                if version in (2, 3):
                    item, at = (struct.unpack_from(">H", data, s_start + 4)[0], s_start + 8) if version == 2 else \
                        (struct.unpack_from(">I", data, s_start + 4)[0], s_start + 10)
                    if data[at:at + 4] == b"jpeg":
                        jpeg.add(item)
        elif kind == b"iloc":
            iloc = (start, end)
    if jpeg and iloc:  # (HEVC and AV1 photos stop here)
        _read_iloc(data, iloc[0], iloc[1], places)
    return [places[item] for item in sorted(jpeg) if item in places]


#: The length of an extent that runs to the end of the file (an ``iloc`` length of 0).
_TO_THE_END = 1 << 62


def _read_iloc(data: bytes, start: int, end: int, places: dict[int, list[tuple[int, int]]]) -> None:
    """Item id -> ``(offset, length)`` of its extents in the file, from an ``iloc`` box (versions 0 to 2)."""
    version = data[start]
    sizes = data[start + 4] >> 4, data[start + 4] & 15, data[start + 5] >> 4, data[start + 5] & 15
    offset_size, length_size, base_size = sizes[:3]
    index_size = sizes[3] if version in (1, 2) else 0

    def number(at: int, size: int) -> int:
        if at + size > end:
            raise ValueError("iloc ends early")
        return int.from_bytes(data[at:at + size], "big")

    wide = 4 if version == 2 else 2
    count, pos = number(start + 6, wide), start + 6 + wide
    for _ in range(count):
        item, pos = number(pos, wide), pos + wide
        method = 0
        if version in (1, 2):
            method, pos = number(pos, 2) & 15, pos + 2
        pos += 2  # (data_reference_index)
        base, pos = number(pos, base_size), pos + base_size
        extents, pos = number(pos, 2), pos + 2
        if not offset_size + length_size + index_size:  # (extents of no bytes: nothing to walk through)
            extents = 0
        found = []
        for _ in range(extents):
            pos += index_size
            offset, pos = number(pos, offset_size), pos + offset_size
            length, pos = number(pos, length_size), pos + length_size
            found.append((base + offset, length or _TO_THE_END))  # (a length of 0: to the end of the file)
        if method == 0:
            places[item] = found


def _read_ipma(data: bytes, start: int, end: int, links: dict[int, list[int]]) -> None:
    """Item id -> property indices (1-based) of an ``ipma`` box."""
    version, flags = data[start], int.from_bytes(data[start + 1:start + 4], "big")
    pos = start + 4
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    for _ in range(count):
        if pos >= end:
            return
        if version < 1:
            item = struct.unpack_from(">H", data, pos)[0]
            pos += 2
        else:
            item = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        n = data[pos]
        pos += 1
        indices = links.setdefault(item, [])
        for _ in range(n):
            if flags & 1:
                indices.append(struct.unpack_from(">H", data, pos)[0] & 0x7FFF)
                pos += 2
            else:
                indices.append(data[pos] & 0x7F)
                pos += 1


#: ``ftyp`` brands of video files (MP4, QuickTime, 3GP, M4V), for the error on one named as a photo.
_VIDEO_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ",
                 b"M4VH", b"M4VP", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"MSNV", b"XAVC")


def what_is_it(path: str | Path) -> str | None:
    """For a file no image decoder could open: ``"video"`` for an MP4/QuickTime file (an ``ftyp`` of
    none of the HEIF family's brands, or a movie without a ``meta`` box), ``"sequence"`` for a HEIF
    or AVIF file holding only an image sequence or burst (a ``moov`` track, no still ``meta``
    item), else ``None`` (damage, or something else)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    kinds = {kind for kind, _off, _size in _top_level(path)}
    if kind_of_bytes(head) is None:
        return "video" if head[8:12] in _VIDEO_BRANDS or b"moov" in kinds else None
    return "sequence" if b"moov" in kinds and b"meta" not in kinds else None


def available() -> bool:
    """Is ``pillow-heif`` installed (so HEIF can be registered with PIL)?"""
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def _register() -> bool:
    global _registered
    with _lock:
        if not _registered:
            try:
                import pillow_heif
            except ImportError:
                return False
            # thumbnails and depth maps are the source's; the result keeps neither (they would show
            # the face before the smile), and not loading them saves memory
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _registered = True
    return True


#: x265's speed preset for HEIF results: on the 12 MP photo of ``python -m benchmarks formats``
#: "ultrafast" took 1.5 s where x265's default took 9.7 s, for a file 4 % larger at the same PSNR.
X265_PRESET = "ultrafast"


#: The H.273 colour description of a HEIF (its ``nclx`` box), as pillow-heif names its parts.
NCLX_KEYS = ("color_primaries", "transfer_characteristics", "matrix_coefficients", "full_range_flag")
#: Primaries and transfer that mean sRGB (BT.709; 2: unspecified), which other formats assume anyway.
_SRGB_LIKE = {"color_primaries": (1, 2), "transfer_characteristics": (1, 2, 13)}


def nclx_beyond_srgb(nclx: dict | None) -> bool:
    """Whether a HEIF's colour description says more than sRGB (Display P3, BT.2020, HDR transfer)."""
    return bool(nclx) and any(nclx.get(k, 2) not in v for k, v in _SRGB_LIKE.items())


def save_params(quality: int, nclx: dict | None = None) -> dict:
    """PIL save parameters for a HEIF result of ``quality`` (1..100), with x265's fast preset when
    x265 is the encoder (another encoder would refuse the parameter), and the source's colour description
    ``nclx`` (:data:`NCLX_KEYS`; None: libheif's sRGB)."""
    import pillow_heif

    params: dict = {"quality": int(quality)}
    if nclx:
        params.update({k: int(v) for k, v in nclx.items() if k in NCLX_KEYS})
    if "x265" in (pillow_heif.libheif_info().get("encoders") or {}):
        params["enc_params"] = {"preset": X265_PRESET}
    return params


def read_problem(path: str | Path) -> str | None:
    """The one-line reason why ``path``, a HEIF photo (by its content), cannot be read here: ``None``
    when it can (pillow-heif is installed) or it is no HEIF photo.  For a planner that must report
    such a photo on its own line (exit 4) instead of refusing the whole run for its ``.heic`` result."""
    if kind_of_file(path) != "heif" or _register():
        return None
    return _read_message(str(path))


def _read_message(name: str) -> str:
    return f"{name}: a HEIF (HEIC) photo; reading it needs pillow-heif: {INSTALL}"


def require(name: str, writing: bool = False) -> None:
    """Make PIL read and write HEIF; if ``pillow-heif`` is missing raise a one-line error naming
    ``name`` (an :class:`InputError` for a photo to read, a :class:`UsageError` for an output)."""
    if _register():
        return
    if writing:
        raise UsageError(f"{name}: writing HEIF (.heic) photos needs pillow-heif: {INSTALL}")
    raise InputError(_read_message(name))
