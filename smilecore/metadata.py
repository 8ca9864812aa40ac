"""Reading the metadata a photo carries besides its pixels: EXIF, XMP, comments and PNG text.

:func:`smilecore.decode.load_image` calls these while the file is open and stores what they
return in its :class:`~smilecore.decode.ImageInfo`, so that :func:`smilecore.encode.save_image`
can write it back:

* :func:`exif_block`: the EXIF block with orientation reset to 1, as the camera wrote it otherwise
  (:func:`upright_exif`).  For a TIFF, whose
  ``getexif()`` is the image's own first directory, only real EXIF content is kept (the Exif
  and GPS sub-directories and descriptive tags such as Make, Model, DateTime, Artist,
  Copyright), never the structural tags (size, strips, compression, ICC profile, XMP).
* :func:`read_xmp`: the XMP packet (JPEG APP1, WebP ``XMP`` chunk, TIFF tag 700, PNG iTXt
  ``XML:com.adobe.xmp``), which :func:`upright_xmp` tells that the photo is now upright;
  :func:`read_xmp_extension` a JPEG's extended XMP (further APP1 segments the main packet points to),
  which only a JPEG result can hold as it is.
* :func:`read_comment`: a JPEG ``COM`` (or GIF) comment.
* :func:`read_iptc`: the IPTC-IIM record (captions, keywords, credit, copyright) of a JPEG's
  Photoshop ``APP13`` segment or a TIFF's tag 33723; :func:`jpeg_iptc_segment` writes it back as
  an ``APP13`` holding that record alone (never the segment's other resources, such as
  Photoshop's thumbnail of the photo before the edit).
* :func:`png_text`: a PNG's ``tEXt``/``zTXt``/``iTXt`` chunks (Title, Author, Description...),
  read from the file's chunks without decoding the image, compressed ones within a size limit.

Unreadable metadata is dropped rather than refusing the photo: every function here returns
"nothing" instead of raising.
"""
from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, PngImagePlugin

from .pixels import EXIF_ORIENTATION

#: The PNG text keyword under which XMP is stored (an uncompressed ``iTXt`` chunk).
PNG_XMP_KEY = "XML:com.adobe.xmp"

#: Largest decompressed text of one ``zTXt``/``iTXt`` chunk that is kept (larger ones are skipped).
MAX_TEXT_CHUNK = 1 << 20

#: Most text kept from one PNG in all (later chunks are skipped).
MAX_TEXT_TOTAL = 16 << 20

EXIF_IFD = 0x8769  #: pointer to the Exif sub-directory
GPS_IFD = 0x8825  #: pointer to the GPS sub-directory
INTEROP_IFD = 0xA005  #: pointer, in the Exif sub-directory, to the Interoperability one (R98)

#: First-directory tags of a TIFF that are descriptive metadata (kept as EXIF); every other tag
#: there describes the TIFF's own layout (size, strips, compression...) or is kept another way
#: (resolution, ICC profile, XMP).
TIFF_EXIF_TAGS = (
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    EXIF_ORIENTATION,
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x013C,  # HostComputer
    0x4746,  # Rating (Windows)
    0x4749,  # RatingPercent (Windows)
    0x8298,  # Copyright
    0x9C9B,  # XPTitle
    0x9C9C,  # XPComment
    0x9C9D,  # XPAuthor
    0x9C9E,  # XPKeywords
    0x9C9F,  # XPSubject
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def exif_block(im: Image.Image) -> tuple[int, bytes | None]:
    """The source's EXIF orientation (1..8) and its EXIF block with orientation 1 (``None`` when it has
    none, or nothing but a TIFF's structural tags).

    A JPEG's, PNG's or WebP's block is kept byte for byte (:func:`upright_exif`: types, fractions and a
    maker note's offsets as the camera wrote them) but for the orientation, the pixel size of a photo
    turned a quarter, and the thumbnail, which shows the photo before the edit; where it cannot be patched
    so, and for a TIFF, it is re-serialised by Pillow."""
    raw = im.info.get("exif") if im.format != "TIFF" else None
    if isinstance(raw, (bytes, bytearray)) and raw:
        try:
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
        except Exception:  # (unreadable: Pillow's path below drops it)
            orientation = None
        if isinstance(orientation, int):
            orientation = orientation if 1 <= orientation <= 8 else 1
            patched = upright_exif(bytes(raw), orientation)
            if patched is not None:
                return orientation, patched
    try:
        exif = im.getexif()
        if im.format == "TIFF":
            exif = _tiff_exif(exif)
        if not exif:
            return 1, None
        orientation = exif.get(EXIF_ORIENTATION, 1)
        if not isinstance(orientation, int) or not 1 <= orientation <= 8:
            orientation = 1
        if EXIF_ORIENTATION not in exif:
            return orientation, exif.tobytes()
        stored = exif[EXIF_ORIENTATION]
        exif[EXIF_ORIENTATION] = 1  # PIL caches this object: restore it for exif_transpose
        try:
            return orientation, exif.tobytes()
        finally:
            exif[EXIF_ORIENTATION] = stored
    except Exception:  # unreadable EXIF: drop it rather than refuse the photo
        return 1, None


_EXIF_HEADER = b"Exif\x00\x00"
_THUMBNAIL = 0x0201  # JPEGInterchangeFormat (IFD1: the thumbnail's offset; 0x0202 its length)


def upright_exif(raw: bytes, orientation: int, size: tuple[int, int] | None = None) -> bytes | None:
    """The EXIF block ``raw`` (with or without its ``Exif\\0\\0`` header; returned with it) patched in place:
    orientation 1, PixelXDimension and PixelYDimension swapped when ``orientation`` turns the photo a
    quarter (5..8), or, given the upright ``size`` (width, height), wherever they say its height and width, and the thumbnail's bytes blanked (cut off where they end the block) and unlinked. None
    when it cannot be patched so (damaged, a thumbnail in strips or without a length, a block Pillow cannot
    read back)."""
    body = bytearray(raw[6:] if raw.startswith(_EXIF_HEADER) else raw)
    order = {b"II": "<", b"MM": ">"}.get(bytes(body[:2]))
    if order is None or len(body) < 8 or struct.unpack_from(order + "H", body, 2)[0] != 42:
        return None

    def u16(at: int) -> int:
        return struct.unpack_from(order + "H", body, at)[0]

    def u32(at: int) -> int:
        return struct.unpack_from(order + "I", body, at)[0]

    def entries(at: int, linked: bool = False) -> dict[int, int]:  # tag -> where its 12-byte entry starts
        if not 8 <= at <= len(body) - 2 or at + 2 + 12 * u16(at) + 4 * linked > len(body):
            raise ValueError("a directory outside the block")
        return {u16(at + 2 + 12 * k): at + 2 + 12 * k for k in range(u16(at))}

    try:
        ifd0 = u32(4)
        tags = entries(ifd0, linked=True)
        if EXIF_ORIENTATION in tags:
            e = tags[EXIF_ORIENTATION]
            if u16(e + 2) != 3 or u32(e + 4) != 1:  # (SHORT, one value)
                return None
            struct.pack_into(order + "H", body, e + 8, 1)
        if (orientation >= 5 or size) and EXIF_IFD in tags:
            sub = entries(u32(tags[EXIF_IFD] + 8))
            if 0xA002 in sub and 0xA003 in sub:  # PixelXDimension, PixelYDimension: their value fields swapped
                x, y = sub[0xA002], sub[0xA003]
                if u16(x + 2) != u16(y + 2) or u16(x + 2) not in (3, 4):
                    return None
                value = u16 if u16(x + 2) == 3 else u32
                said = (value(x + 8), value(y + 8))
                if (said == (size[1], size[0]) and size[0] != size[1]) if size else orientation >= 5:
                    vx, vy = bytes(body[x + 8:x + 12]), bytes(body[y + 8:y + 12])
                    body[x + 8:x + 12], body[y + 8:y + 12] = vy, vx
        link = ifd0 + 2 + 12 * len(tags)
        ifd1 = u32(link)
        if ifd1:
            thumb = entries(ifd1)
            if 0x0111 in thumb:  # (an uncompressed thumbnail in strips: left to Pillow, which drops it)
                return None
            if _THUMBNAIL in thumb:  # (its bytes after its directory, where cameras put them; else Pillow's path)
                if 0x0202 not in thumb:
                    return None
                start, size = u32(thumb[_THUMBNAIL] + 8), u32(thumb[0x0202] + 8)
                if start < ifd1 + 2 + 12 * len(thumb) + 4 or start + size > len(body):
                    return None
                body[start:start + size] = bytes(size)
                if not any(body[start + size:]):  # (where it ends the block, as cameras write it: cut off)
                    del body[start:]
            struct.pack_into(order + "I", body, link, 0)
    except (struct.error, ValueError):
        return None
    patched = _EXIF_HEADER + bytes(body)
    try:  # (what Pillow cannot read back is left to its own path, which drops it)
        Image.Exif().load(patched)
    except Exception:
        return None
    return patched


def _tiff_exif(ifd0: Image.Exif) -> Image.Exif:
    """A new EXIF holding only the real EXIF content of a TIFF's first directory ``ifd0``."""
    kept = Image.Exif()
    for tag in TIFF_EXIF_TAGS:
        if tag in ifd0:
            kept[tag] = ifd0[tag]
    for tag in (EXIF_IFD, GPS_IFD):
        if tag in ifd0:
            sub = ifd0.get_ifd(tag)
            if sub:
                kept[tag] = {k: v for k, v in sub.items() if k != INTEROP_IFD}  # (its offset means nothing here)
    return kept


def read_xmp(im: Image.Image) -> bytes | None:
    """The XMP packet PIL found while opening ``im`` (JPEG, WebP, TIFF; PNG: see :func:`png_text`)."""
    return _as_bytes(im.info.get("xmp"))


#: Signature of a JPEG APP1 segment holding a piece of an extended XMP packet (the part of a large
#: packet, such as an editor's develop settings, that does not fit in the main one).
XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"


def upright_xmp(xmp: bytes | None, orientation: int, size: tuple[int, int] | None = None) -> bytes | None:
    """The XMP packet of a photo turned upright by its EXIF ``orientation``: its ``tiff:Orientation`` 1, and
    ``exif:PixelXDimension``/``PixelYDimension`` and ``tiff:ImageWidth``/``ImageLength`` swapped for a quarter
    turn (5..8) or, given the upright ``size`` (width, height), wherever they say its height and width; as
    attributes or elements. (Left as they were, a viewer that reads XMP would turn the photo again.)"""
    if not xmp or (orientation == 1 and not size):
        return xmp

    def field(name: bytes) -> re.Pattern:  # (an element's attributes end at the next "<": XML allows none in them,
        # and a search never runs past it, so a packet of thousands of unclosed "<tiff:ImageWidth " is read once:
        # with [^>]* each of them was a walk to the packet's end, and 272 kB of them took 30 s)
        return re.compile(rb"(" + name + rb"\s*=\s*[\"']|<" + name + rb"(?:\s[^<>]*)?>)\s*(\d+)\s*([\"']|</" + name + rb">)")

    out = xmp if orientation == 1 else field(rb"tiff:Orientation").sub(lambda m: m.group(1) + b"1" + m.group(3), xmp)
    for w_name, h_name in ((rb"exif:PixelXDimension", rb"exif:PixelYDimension"),
                           (rb"tiff:ImageWidth", rb"tiff:ImageLength")):
        wide, high = field(w_name), field(h_name)
        x, y = wide.search(out), high.search(out)
        if not (x and y):
            continue
        said = (int(x.group(2)), int(y.group(2)))
        if (said == (size[1], size[0]) and size[0] != size[1]) if size else orientation >= 5:
            out = wide.sub(lambda m: m.group(1) + y.group(2) + m.group(3), out, count=1)
            out = high.sub(lambda m: m.group(1) + x.group(2) + m.group(3), out, count=1)
    return out


def read_xmp_extension(im: Image.Image) -> tuple[bytes, ...]:
    """The payloads of a JPEG's extended-XMP APP1 segments, in file order (empty if it has none)."""
    try:
        return tuple(bytes(data) for marker, data in getattr(im, "applist", ())
                     if marker == "APP1" and bytes(data[:len(XMP_EXTENSION)]) == XMP_EXTENSION)
    except Exception:
        return ()


def jpeg_app1_segment(payload: bytes) -> bytes:
    """A JPEG APP1 segment (marker included) holding ``payload`` (at most 65,533 bytes)."""
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


#: TIFF tag holding an IPTC-IIM record.
TIFF_IPTC = 33723
#: Photoshop image resource holding the IPTC-IIM record.
PHOTOSHOP_IPTC = 0x0404
_APP13_HEAD = b"Photoshop 3.0\x00"
#: Largest IPTC record one JPEG APP13 segment holds (65,533 bytes less the segment's headers, and
#: even: a record of odd length is padded with a byte, so 65,507 would not fit).
JPEG_MAX_IPTC = (65533 - len(_APP13_HEAD) - 12) // 2 * 2


def read_iptc(im: Image.Image) -> bytes | None:
    """The IPTC-IIM record of a JPEG (Photoshop resource 0x0404 of its APP13 segments) or a TIFF
    (tag 33723 stored as bytes); ``None`` when there is none or it cannot be read."""
    try:
        if im.format in ("JPEG", "MPO"):
            data = (im.info.get("photoshop") or {}).get(PHOTOSHOP_IPTC)
        elif im.format == "TIFF":
            data = im.tag_v2._tagdata.get(TIFF_IPTC) if hasattr(im, "tag_v2") else None
            if data is None and hasattr(im, "tag_v2"):
                data = im.tag_v2.get(TIFF_IPTC)
        else:
            return None
        return bytes(data) if isinstance(data, (bytes, bytearray)) and data else None
    except Exception:
        return None


def jpeg_iptc_segment(iptc: bytes) -> bytes:
    """A JPEG APP13 segment (marker included) holding ``iptc`` as Photoshop resource 0x0404."""
    body = iptc + (b"\x00" if len(iptc) % 2 else b"")
    resource = b"8BIM" + PHOTOSHOP_IPTC.to_bytes(2, "big") + b"\x00\x00" + len(iptc).to_bytes(4, "big") + body
    payload = _APP13_HEAD + resource
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def read_comment(im: Image.Image) -> bytes | None:
    """A JPEG's ``COM`` comment (the last, as PIL reads it) or a GIF's comment; ``None`` if none."""
    return _as_bytes(im.info.get("comment"))


def is_progressive(im: Image.Image) -> bool:
    """Was a JPEG written progressive (rather than baseline)?"""
    return im.format in ("JPEG", "MPO") and bool(im.info.get("progressive") or im.info.get("progression"))


#: PNG chunks that say how to read the pixels' colours where no ICC profile does (gamma, primaries, sRGB intent).
PNG_COLOUR_CHUNKS = (b"gAMA", b"cHRM", b"sRGB")


def png_colour_chunks(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """A PNG's gAMA, cHRM and sRGB chunks before its image data, as ``(kind, payload)`` (none: ``[]``)."""
    found: list[tuple[bytes, bytes]] = []
    try:
        with open(Path(path), "rb") as f:
            for kind, length in _png_chunks(f):
                if kind == b"IDAT" or length > 1 << 20:
                    break
                if kind in PNG_COLOUR_CHUNKS and length <= 64:
                    found.append((kind, f.read(length)))
    except OSError:
        return []
    return found


def _png_chunks(f) -> Iterator[tuple[bytes, int]]:
    """``(kind, length)`` of each chunk of the PNG open as ``f`` (from its start), up to ``IEND``, the end of the
    file, or a chunk that runs past it; none for another file. ``f`` stands at each chunk's data, which the caller
    may read: the walk goes on from the chunk's end whatever was read (the one walk over a PNG's chunks)."""
    if f.read(8) != _PNG_SIGNATURE:
        return
    size = os.fstat(f.fileno()).st_size
    while True:
        at = f.tell()
        head = f.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND" or length > size - at - 8:
            return
        yield kind, length
        f.seek(at + 12 + length)  # (the chunk's head, data and CRC)


#: A PNG's image data: IDAT, and each frame of an animation (its fcTL, then fdAT), of which Smile reads the first
#: alone (a 100,001-frame APNG is read in 0.5 s).
PNG_IMAGE_CHUNKS = (b"IDAT", b"fcTL", b"fdAT")


def png_other_chunks(path: str | os.PathLike, stop: int) -> int:
    """How many chunks the PNG file at ``path`` holds besides its image data (:data:`PNG_IMAGE_CHUNKS`), read from
    their heads alone; the count ends once past ``stop``. 0 for another file, or one that cannot be read."""
    count = 0
    try:
        with open(Path(path), "rb") as f:
            for kind, _length in _png_chunks(f):
                count += kind not in PNG_IMAGE_CHUNKS
                if count > stop:
                    break
    except OSError:
        pass
    return count


def png_text(path: str | os.PathLike) -> tuple[dict[str, str], bytes | None]:
    """A PNG's text chunks and its XMP packet, read from the file without decoding the image.

    Returns ``(text, xmp)``: ``text`` maps each keyword to its text (the last chunk wins, as in
    PIL; ``iTXt`` values are :class:`PIL.PngImagePlugin.iTXt` strings that keep their language
    and translated keyword), without the XMP chunk, which is ``xmp`` (UTF-8 bytes) instead.
    Chunks that do not decode, or whose text is over :data:`MAX_TEXT_CHUNK`, are skipped.
    """
    text: dict[str, str] = {}
    xmp: bytes | None = None
    total = 0
    try:
        with open(Path(path), "rb") as f:
            for kind, length in _png_chunks(f):
                if kind not in (b"tEXt", b"zTXt", b"iTXt") or total + length > MAX_TEXT_TOTAL:
                    continue
                entry = _text_chunk(kind, f.read(length))
                if entry is None:
                    continue
                key, value = entry
                total += len(value)
                if key == PNG_XMP_KEY:
                    xmp = value.encode("utf-8")
                else:
                    text[key] = value
    except OSError:
        pass
    return text, xmp


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    """Decode one ``tEXt``, ``zTXt`` or ``iTXt`` chunk into ``(keyword, text)``; ``None`` if it is damaged."""
    try:
        raw_key, sep, rest = data.partition(b"\x00")
        key = raw_key.decode("latin-1")
        if not sep or not 1 <= len(key) <= 79:
            return None
        if kind == b"tEXt":
            return key, rest.decode("latin-1")
        if kind == b"zTXt":
            if rest[:1] != b"\x00":  # compression method 0 (deflate) is the only one
                return None
            value = _inflate(rest[1:])
            return None if value is None else (key, value.decode("latin-1"))
        compressed, method = rest[0], rest[1]
        lang, _, rest = rest[2:].partition(b"\x00")
        tkey, _, body = rest.partition(b"\x00")
        if compressed:
            if method != 0:
                return None
            inflated = _inflate(body)
            if inflated is None:
                return None
            body = inflated
        value = body.decode("utf-8")
        return key, PngImagePlugin.iTXt(value, lang.decode("utf-8"), tkey.decode("utf-8"))
    except (IndexError, UnicodeDecodeError):
        return None


def _inflate(data: bytes) -> bytes | None:
    """``data`` decompressed, or ``None`` when it is corrupt or would exceed :data:`MAX_TEXT_CHUNK`."""
    try:
        d = zlib.decompressobj()
        out = d.decompress(data, MAX_TEXT_CHUNK)
        return None if d.unconsumed_tail else out
    except zlib.error:
        return None


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    return None
