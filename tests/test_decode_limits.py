"""What a photo may ask of its decoder: a JPEG's scans are counted before libjpeg decodes them (thousands of
progressive scans keep it busy for minutes), a TIFF's JPEG strips too, and a TIFF's Photoshop layers are said not kept."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from smile_cli.main import cli
from smilecore.decode import load_image
from smilecore.errors import InputError
from smilecore.jpeg_scans import MAX_SCANS, count_scans

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"


def _progressive(side: int = 512) -> bytes:
    """The astronaut as a progressive JPEG (Pillow's libjpeg: ten scans, a Huffman table before most)."""
    buf = io.BytesIO()
    Image.open(SAMPLE).convert("RGB").resize((side, side)).save(buf, "JPEG", progressive=True, quality=90)
    return buf.getvalue()


def _split(jpeg: bytes) -> tuple[bytes, bytes, bytes]:
    """``(head, rest, end)``: up to the end of the first scan; its nine other scans, each with the Huffman table
    before it; the EOI. (Found by their markers: ``FF C4`` and ``FF DA`` cannot occur in entropy-coded data.)"""
    first = jpeg.index(b"\xff\xda")
    second = min(i for i in (jpeg.find(b"\xff\xc4", first + 2), jpeg.find(b"\xff\xda", first + 2)) if i > 0)
    end = jpeg.rindex(b"\xff\xd9")
    assert jpeg[second:second + 2] == b"\xff\xc4"  # (the stray byte below goes after this table)
    return jpeg[:second], jpeg[second:end], jpeg[end:]


def _after_first_table(block: bytes, stray: bytes) -> bytes:
    """``block`` (starting with a Huffman table) with ``stray`` bytes after that table, before the next marker."""
    length = int.from_bytes(block[2:4], "big")
    return block[:2 + length] + stray + block[2 + length:]


def _many_scans(side: int = 512, repeats: int = 11, stray: bytes = b"") -> bytes:
    """A progressive JPEG whose nine later scans come ``repeats`` times more (libjpeg warns of a bogus
    progression and decodes every one of them): 10 + 9 × 11 = 109 scans; ``stray`` after the first table."""
    head, rest, end = _split(_progressive(side))
    return head + _after_first_table(rest, stray) + rest * repeats + end


def test_a_jpeg_of_more_than_100_scans_is_refused_before_decoding(tmp_path):
    path = tmp_path / "scans.jpg"
    path.write_bytes(_many_scans(side=1536))
    assert count_scans(path.read_bytes()) == 109 > MAX_SCANS
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_image(path)
    took = time.perf_counter() - start
    assert err.value.exit_code == 4 and "scans.jpg" in str(err.value) and f"more than {MAX_SCANS} scans" in str(err.value)
    assert took < 1.0, f"{took:.2f} s: decoded before it was refused?"
    res = CliRunner().invoke(cli, [str(path), "--out-dir", str(tmp_path / "out")], catch_exceptions=False)
    assert res.exit_code == 4, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smile: error: ") and "scans" in lines[0], res.stderr


def test_a_progressive_jpeg_as_encoders_write_it_is_read(tmp_path):
    path = tmp_path / "progressive.jpg"
    path.write_bytes(_progressive())
    assert count_scans(path.read_bytes()) == 10
    image, info = load_image(path)
    assert info.progressive and image.size == (512, 512)
    head, rest, end = _split(_progressive())
    path.write_bytes(head + rest * 10 + end)  # 10 + 9 × 9 = 91 scans: under the limit, read
    load_image(path)[0].close()


def test_scans_behind_a_stray_byte_are_counted(tmp_path):
    """libjpeg skips stray bytes between markers (with a warning) and decodes the scans after them: so does the
    count (a reviewer hid the scans behind one stray byte)."""
    head, rest, end = _split(_progressive())
    plain = Image.open(io.BytesIO(head + rest + end)).convert("RGB")
    hidden = head + _after_first_table(rest, b"\x42") + end
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(hidden)).convert("RGB")), np.asarray(plain))  # (read on)
    assert count_scans(hidden) == 10
    path = tmp_path / "stray.jpg"
    path.write_bytes(_many_scans(stray=b"\x42"))
    with pytest.raises(InputError, match="scans"):
        load_image(path)


def _jpeg_tiff(jpeg: bytes, side: int, compression: int = 7) -> bytes:
    """A one-strip YCbCr TIFF whose strip is the JPEG stream ``jpeg`` (4:2:0, ``side`` square): compression 7
    (new-style JPEG) or 6 (old-style, the stream also named by JPEGInterchangeFormat)."""
    tags = [(256, 4, 1, side), (257, 4, 1, side), (259, 3, 1, compression), (262, 3, 1, 6), (273, 4, 1, 8),
            (277, 3, 1, 3), (278, 4, 1, side), (279, 4, 1, len(jpeg)), (284, 3, 1, 1), (530, 3, 2, 2 | 2 << 16)]
    if compression == 6:
        tags += [(513, 4, 1, 8), (514, 4, 1, len(jpeg))]
    jpeg += b"\x00" * (len(jpeg) & 1)
    bits_at = 8 + len(jpeg) + 2 + 12 * (len(tags) + 1) + 4  # (BitsPerSample 8, 8, 8: after the directory)
    tags = sorted(tags + [(258, 3, 3, bits_at)])
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) if t[1] == 4 or t[0] in (258, 530)
                                                   else struct.pack("<HHIHH", *t, 0) for t in tags)
    return b"II*\x00" + struct.pack("<I", 8 + len(jpeg)) + jpeg + ifd + b"\x00" * 4 + struct.pack("<3H", 8, 8, 8)


@pytest.mark.parametrize("compression", [7, 6])
def test_a_tiff_whose_jpeg_strip_has_more_than_100_scans_is_refused_in_one_line(tmp_path, compression):
    """A TIFF's JPEG strips are JPEGs too: libtiff stopped one at its 100th scan, but with a line of its own on
    stderr and a reason Pillow gives as "decoder error -2" (and old-style JPEG refuses progressive with three)."""
    path = tmp_path / "scans.tif"
    path.write_bytes(_jpeg_tiff(_many_scans(), 512, compression))
    with pytest.raises(InputError) as err:
        load_image(path)
    assert err.value.exit_code == 4 and "scans.tif" in str(err.value) and f"more than {MAX_SCANS} scans" in str(err.value)
    res = subprocess.run([sys.executable, "-m", "smile_cli", str(path), "--out-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 4 and res.stderr.count("\n") == 1 and "scans" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_tiff_of_jpeg_strips_as_encoders_write_it_is_read(tmp_path):
    path = tmp_path / "jpeg.tif"
    path.write_bytes(_jpeg_tiff(_progressive(), 512))
    image, info = load_image(path)
    want = np.asarray(Image.open(io.BytesIO(_progressive())).convert("RGB"), dtype=np.int16)
    assert info.tiff_compression == "jpeg" and np.abs(np.asarray(image.convert("RGB"), dtype=np.int16) - want).max() <= 2
    Image.open(SAMPLE).convert("RGB").resize((256, 256)).save(path, compression="jpeg")  # (Pillow's: tables apart)
    assert load_image(path)[0].size == (256, 256)


def test_a_tiff_with_photoshop_layers_says_only_the_flattened_image_is_kept(tmp_path):
    from PIL import TiffImagePlugin

    from smilecore.decode import TIFF_LAYERS

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[TIFF_LAYERS] = b"Adobe Photoshop Document Data Block\x00" + bytes(64)  # (ImageSourceData, tag 37724)
    tags.tagtype[TIFF_LAYERS] = 7  # (UNDEFINED: bytes)
    picture = Image.open(SAMPLE).convert("RGB").resize((64, 64))
    picture.save(tmp_path / "layers.tif", tiffinfo=tags)
    picture.save(tmp_path / "flat.tif")
    notes = load_image(tmp_path / "layers.tif")[1].notes
    assert [n for n in notes if "Photoshop layers" in n and "flattened" in n and "layers.tif" in n], notes
    assert not [n for n in load_image(tmp_path / "flat.tif")[1].notes if "layers" in n]


def _box(kind: bytes, body: bytes, version: int | None = None) -> bytes:
    """An ISO BMFF box (a full box when ``version`` is given, flags 0)."""
    body = body if version is None else bytes([version, 0, 0, 0]) + body
    return struct.pack(">I", 8 + len(body)) + kind + body


def _jpeg_heif(jpeg: bytes, side: int, extents: int = 1, items: int = 1, to_the_end: bool = False) -> bytes:
    """A HEIF whose primary image (item 1) is the JPEG stream ``jpeg`` (item type ``jpeg``, as libheif reads it with
    libjpeg), stored in ``extents`` pieces; ``items`` > 1: as many JPEG-coded items, all stored in the same bytes;
    ``to_the_end``: the last piece's length is 0, which says "to the end of the file"."""
    cut = [len(jpeg) * i // extents for i in range(extents + 1)]
    if to_the_end:
        cut[-1] = cut[-2]
    ftyp = _box(b"ftyp", b"mif1" + bytes(4) + b"mif1miaf")
    infe = b"".join(_box(b"infe", struct.pack(">HH", i, 0) + b"jpeg\x00", 2) for i in range(1, items + 1))
    rest = (_box(b"hdlr", bytes(4) + b"pict" + bytes(13), 0) + _box(b"pitm", struct.pack(">H", 1), 0)
            + _box(b"iinf", struct.pack(">H", items) + infe, 0)
            + _box(b"iprp", _box(b"ipco", _box(b"ispe", struct.pack(">II", side, side), 0))
                   + _box(b"ipma", struct.pack(">IHBB", 1, 1, 1, 0x81), 0)))

    def meta(at: int) -> bytes:
        places = b"".join(struct.pack(">II", at + cut[i], cut[i + 1] - cut[i]) for i in range(extents))
        iloc = b"".join(struct.pack(">HHH", item, 0, extents) + places for item in range(1, items + 1))
        return _box(b"meta", rest + _box(b"iloc", b"\x44\x00" + struct.pack(">H", items) + iloc, 0), 0)

    at = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(at) + _box(b"mdat", jpeg)


def _heif_scans(path: Path) -> list[int]:
    """The scans of each JPEG-coded image of a HEIF file, as :func:`smilecore.heif.jpeg_extents` finds them."""
    from smilecore import heif

    data = path.read_bytes()
    return [count_scans(b"".join(data[at:at + n] for at, n in pieces)) for pieces in heif.jpeg_extents(path)]


@pytest.mark.parametrize("extents, to_the_end", [(1, False), (5, False), (1, True), (3, True)])
def test_a_heif_whose_jpeg_image_has_more_than_100_scans_is_refused_before_decoding(tmp_path, extents, to_the_end):
    """HEIF may hold a JPEG-coded image, which libheif decodes with libjpeg (where built with it) without counting
    its scans: they are counted first, across the pieces (extents) the image is stored in, also a piece whose length
    is 0 ("to the end of the file"), which was not walked."""
    path = tmp_path / "scans.heic"
    path.write_bytes(_jpeg_heif(_many_scans(), 512, extents, to_the_end=to_the_end))
    assert _heif_scans(path) == [109]
    with pytest.raises(InputError) as err:
        load_image(path)
    assert err.value.exit_code == 4 and "scans.heic" in str(err.value) and f"more than {MAX_SCANS} scans" in str(err.value)
    path.write_bytes(_jpeg_heif(_progressive(), 512, extents, to_the_end=to_the_end))
    assert _heif_scans(path) == [10]


@pytest.mark.parametrize("kind", ["heif", "tiff"])
def test_streams_naming_the_same_bytes_again_are_walked_no_further_than_the_file(tmp_path, monkeypatch, kind):
    """A HEIF's items (or a TIFF's strips) may all name the same bytes: 20,000 items of one 2 MB stream in a 2.7 MB
    file took 29 s to walk, while the decoder reads one image. What is walked adds up to the file's size at most."""
    from smilecore import jpeg_scans

    stream = _progressive()
    path = tmp_path / f"same.{kind}"
    if kind == "heif":
        path.write_bytes(_jpeg_heif(stream, 512, items=50))
        assert _heif_scans(path) == [10] * 50
    else:
        path.write_bytes(_jpeg_tiff(stream, 512))
    walked = []
    walk = jpeg_scans._walk
    monkeypatch.setattr(jpeg_scans, "_walk", lambda data, *a: walked.append(len(data)) or walk(data, *a))
    if kind == "heif":
        with pytest.raises(InputError):  # (what libheif says of a JPEG-coded image, once its scans are counted)
            load_image(path)
    else:
        jpeg_scans.check_tiff_scans(path, "same", {259: 7, 273: (8,) * 50, 279: (len(stream),) * 50})
    assert walked and len(stream) in walked and sum(walked) <= path.stat().st_size, (len(walked), sum(walked))


def test_a_heif_coded_in_a_way_libheif_cannot_decode_is_not_called_corrupt(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    if "jpeg" in str(pillow_heif.libheif_info().get("decoders", {})).lower():
        pytest.skip("this libheif decodes JPEG-coded HEIF")
    path = tmp_path / "jpeg.heic"
    path.write_bytes(_jpeg_heif(_progressive(), 512))
    with pytest.raises(InputError) as err:
        load_image(path)
    assert "cannot decode" in str(err.value) and "corrupt" not in str(err.value), err.value


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize("kind, head", [(b"iCCP", b"icc\x00\x00"), (b"zTXt", b"Comment\x00\x00"),
                                        (b"iTXt", b"Description\x00\x01\x00\x00\x00")])
def test_a_png_chunk_that_unpacks_to_megabytes_is_refused_in_words(tmp_path, monkeypatch, kind, head):
    """A 20 kB chunk unpacking to 20 MB (before the image data) is refused by Pillow, which said so in its own
    terms ("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK")."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(buf, "PNG")
    png = buf.getvalue()
    at = png.index(b"IDAT") - 4
    path = tmp_path / "bomb.png"
    path.write_bytes(png[:at] + _png_chunk(kind, head + zlib.compress(bytes(20 << 20), 9)) + png[at:])
    with pytest.raises(InputError) as err:
        load_image(path)
    message = str(err.value)
    assert err.value.exit_code == 4 and "bomb.png" in message and "decompression bomb" in message, message
    assert "MAX_TEXT" not in message and "PngImagePlugin" not in message, message
    from PIL import PngImagePlugin

    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_CHUNK", 2 << 20)  # (Pillow's limits, as the message says them)
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 8 << 20)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert "(2 MB each, 8 MB in all)" in str(err.value), err.value


def test_an_xmp_packet_of_unclosed_elements_is_read_once(tmp_path):
    """XMP says the photo's size (``tiff:ImageWidth``), patched where it lies: the search walked to the packet's
    end from every unclosed ``<tiff:ImageWidth`` (272 kB took 30 s; a PNG's 3.4 MB would take hours). Run in a
    process of its own so that a slow search fails the test (at 120 s) instead of hanging it; it takes a moment."""
    code = ("from smilecore.metadata import upright_xmp\n"
            "xmp = b'<x:xmpmeta>' + b'<tiff:ImageWidth ' * 200_000 + b'<rdf:li>x</rdf:li>'\n"
            "xmp += b'<tiff:ImageWidth>50</tiff:ImageWidth>'\n"
            "xmp += b'<tiff:ImageLength>100</tiff:ImageLength>'\n"
            "out = upright_xmp(xmp, 1, (100, 50))\n"
            "assert out.endswith(b'<tiff:ImageWidth>100</tiff:ImageWidth><tiff:ImageLength>50</tiff:ImageLength>')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_a_jpeg_of_more_than_10000_markers_is_refused_before_pillow_reads_them(tmp_path, monkeypatch):
    """Pillow reads every segment before a JPEG's first scan in Python, keeping a list of them: a 20 MB file of
    five million empty APP1 segments took 32 s and 856 MB. They are counted with the scans, before Pillow opens
    the file."""
    from smilecore.jpeg_scans import MAX_MARKERS

    jpeg = _progressive(64)
    path = tmp_path / "segments.jpg"
    path.write_bytes(jpeg[:2] + b"\xff\xe1\x00\x02" * (MAX_MARKERS // 2) + jpeg[2:])  # (empty APP1 segments)
    assert load_image(path)[0].size == (64, 64)
    path.write_bytes(jpeg[:2] + b"\xff\xe1\x00\x02" * (MAX_MARKERS + 1) + jpeg[2:])
    assert Image.open(path).size == (64, 64)  # (Pillow reads it)

    def never(*args, **kwargs):
        raise AssertionError("opened by Pillow before the markers were counted")

    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(InputError) as err:
        load_image(path)
    message = str(err.value)
    assert err.value.exit_code == 4 and "segments.jpg" in message and f"more than {MAX_MARKERS} markers" in message


def test_a_png_of_more_than_10000_chunks_besides_its_image_data_is_refused(tmp_path):
    """Pillow reads each chunk in Python (and Smile's checks twice more): 500,000 empty tEXt chunks in 7.8 MB took
    19 s. Chunks besides the image data are counted before Pillow opens the file; IDAT chunks are not counted."""
    from smilecore.decode import MAX_PNG_CHUNKS

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(buf, "PNG")
    png = buf.getvalue()
    at = png.index(b"IDAT") - 4
    idat = png[at:png.index(b"IEND") - 4]
    path = tmp_path / "chunks.png"
    path.write_bytes(png[:at] + _png_chunk(b"tEXt", b"Title\x00x") * (MAX_PNG_CHUNKS - 5) + png[at:])
    image, info = load_image(path)
    assert image.size == (8, 8) and info.text.get("Title") == "x"
    empty_idat = _png_chunk(b"IDAT", b"")  # (image data in many pieces, as some writers do: not counted)
    path.write_bytes(png[:at] + empty_idat * (MAX_PNG_CHUNKS + 1) + idat + png[png.index(b"IEND") - 4:])
    assert load_image(path)[0].getpixel((0, 0)) == (200, 150, 120)
    path.write_bytes(png[:at] + idat + _png_chunk(b"tEXt", b"Title\x00x") * (MAX_PNG_CHUNKS + 1) + png[at + len(idat):])
    with pytest.raises(InputError) as err:
        load_image(path)
    message = str(err.value)
    assert err.value.exit_code == 4 and "chunks.png" in message and f"more than {MAX_PNG_CHUNKS} chunks" in message


def test_an_animated_png_of_more_frames_than_the_chunk_limit_is_read(tmp_path):
    """An APNG's frames are image data too (a control chunk, fcTL, and data, fdAT, each): one of 10,001 frames (five
    and a half minutes at 30 frames a second) was refused as a PNG of more than 10,000 chunks."""
    from smilecore.decode import MAX_PNG_CHUNKS

    side, frames = 4, MAX_PNG_CHUNKS + 1
    rows = zlib.compress(b"".join(b"\x00" + b"\xc8\x96\x78" * side for _ in range(side)))

    def control(seq: int) -> bytes:
        return _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, side, side, 0, 0, 1, 30, 0, 0))

    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
           + _png_chunk(b"acTL", struct.pack(">II", frames, 0)) + control(0) + _png_chunk(b"IDAT", rows)
           + b"".join(control(2 * k - 1) + _png_chunk(b"fdAT", struct.pack(">I", 2 * k) + rows) for k in range(1, frames))
           + _png_chunk(b"IEND", b""))
    path = tmp_path / "long.png"
    path.write_bytes(png)
    image, info = load_image(path)
    assert image.getpixel((0, 0)) == (200, 150, 120) and info.frames == frames
