"""What a camera's JPEG carries, kept as the camera wrote it: its EXIF block byte for byte (but for the
orientation, the pixel size of a turned photo and the thumbnail of the photo before the edit), its XMP told
that the photo is upright, its quantisation tables and chroma subsampling (also for MPF files, CMYK, a
--quality asked for, and samplings Pillow cannot write)."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from smilecore.decode import load_image
from smilecore.encode import save_image
from smilecore.metadata import upright_exif, upright_xmp

THUMB = b"\xff\xd8" + b"old face" * 50 + b"\xff\xd9"  # (stands for the thumbnail's JPEG bytes)
MAKERNOTE = b"MAKER\x00" + bytes(range(30))


def camera_exif(orientation: int, width: int = 40, height: int = 64, thumb_length: bool = True) -> bytes:
    """A little-endian EXIF block as a camera writes one: IFD0 (Make, Orientation, the Exif pointer), the Exif
    directory (an exposure as a fraction 28/10, a maker note, the pixel size), IFD1 with a JPEG thumbnail."""
    def entry(tag, kind, count, value):
        return struct.pack("<HHI", tag, kind, count) + value

    ifd0_at, exif_at = 8, 8 + 2 + 3 * 12 + 4
    data_at = exif_at + 2 + 4 * 12 + 4
    make_at, fnum_at, note_at = data_at, data_at + 8, data_at + 16
    ifd1_at = note_at + len(MAKERNOTE)
    thumb_at = ifd1_at + 2 + 2 * 12 + 4
    out = b"II*\x00" + struct.pack("<I", ifd0_at)
    out += struct.pack("<H", 3) + entry(0x010F, 2, 6, struct.pack("<I", make_at)) \
        + entry(0x0112, 3, 1, struct.pack("<HH", orientation, 0)) + entry(0x8769, 4, 1, struct.pack("<I", exif_at)) \
        + struct.pack("<I", ifd1_at)
    out += struct.pack("<H", 4) + entry(0x829D, 5, 1, struct.pack("<I", fnum_at)) \
        + entry(0x927C, 7, len(MAKERNOTE), struct.pack("<I", note_at)) \
        + entry(0xA002, 3, 1, struct.pack("<HH", width, 0)) + entry(0xA003, 3, 1, struct.pack("<HH", height, 0)) \
        + struct.pack("<I", 0)
    out += b"Camco\x00\x00\x00" + struct.pack("<II", 28, 10) + MAKERNOTE
    out += struct.pack("<H", 2) + entry(0x0201, 4, 1, struct.pack("<I", thumb_at)) \
        + (entry(0x0202, 4, 1, struct.pack("<I", len(THUMB))) if thumb_length else entry(0x0100, 3, 1, bytes(4))) \
        + struct.pack("<I", 0)
    return b"Exif\x00\x00" + out + THUMB


def _picture(h: int = 64, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6 % 256, y * 4 % 256, (x * y) % 256], axis=-1).astype(np.uint8)


def test_the_exif_block_is_kept_byte_for_byte_but_for_orientation_size_and_thumbnail(tmp_path: Path):
    raw = camera_exif(6)
    src = tmp_path / "cam.jpg"
    Image.fromarray(_picture()).save(src, quality=90, exif=raw)
    img, info = load_image(src)
    assert info.orientation == 6 and np.asarray(img).shape[:2] == (40, 64)  # (turned upright)
    save_image(tmp_path / "out.jpg", img, info)
    with Image.open(tmp_path / "out.jpg") as out:
        got = out.info["exif"]
        exif = out.getexif()
        sub = exif.get_ifd(0x8769)
        assert exif[0x0112] == 1 and exif[0x010F] == "Camco"
        assert (sub[0xA002], sub[0xA003]) == (64, 40)  # (the upright photo's size)
        assert sub[0x927C] == MAKERNOTE and sub[0x829D].numerator == 28  # (a fraction as written, not 14/5)
        assert not exif.get_ifd(1)  # (no thumbnail: it shows the photo before the edit)
    assert THUMB not in got and b"old face" not in got and len(got) == len(raw) - len(THUMB)
    same = raw[:len(got)]
    assert sum(a != b for a, b in zip(same, got)) <= 6  # the orientation, two sizes and the link to IFD1


def test_an_upright_block_with_no_thumbnail_is_kept_unchanged():
    raw = camera_exif(1)
    cut = raw[:-len(THUMB)]
    link = 6 + 8 + 2 + 3 * 12  # (IFD0's link to IFD1)
    plain = cut[:link] + bytes(4) + cut[link + 4:]
    assert upright_exif(plain, 1) == plain
    assert upright_exif(b"Exif\x00\x00XX*\x00", 1) is None  # (no byte order: Pillow's path)


def test_xmp_is_told_the_photo_is_upright():
    xmp = (b'<rdf:Description tiff:Orientation="8" exif:PixelXDimension="400" exif:PixelYDimension="512"/>'
           b"<tiff:Orientation>8</tiff:Orientation>")
    assert upright_xmp(xmp, 8) == (b'<rdf:Description tiff:Orientation="1" exif:PixelXDimension="512" '
                                   b'exif:PixelYDimension="400"/><tiff:Orientation>1</tiff:Orientation>')
    assert upright_xmp(xmp, 1) == xmp
    typed = b'<tiff:Orientation rdf:datatype="xsd:int">6</tiff:Orientation>'  # (an element with attributes)
    assert upright_xmp(typed, 6) == b'<tiff:Orientation rdf:datatype="xsd:int">1</tiff:Orientation>'


def _tables_and_sampling(path: Path) -> tuple[int, list]:
    with Image.open(path) as im:
        return sum(im.quantization[0]), [layer[1:3] for layer in im.layer]


def test_a_camera_jpeg_with_an_mpf_preview_keeps_its_tables_and_sampling(tmp_path: Path):
    src = tmp_path / "cam.jpg"
    big = Image.fromarray(_picture())
    big.save(src, format="MPO", save_all=True, append_images=[big.resize((20, 32))], quality=70, subsampling=0)
    img, info = load_image(src)
    assert info.format == "MPO" and any("MPF" in n for n in info.notes)
    save_image(tmp_path / "out.jpg", img, info)
    assert _tables_and_sampling(tmp_path / "out.jpg") == _tables_and_sampling(src)


def test_a_quality_asked_for_keeps_the_sources_subsampling(tmp_path: Path):
    src = tmp_path / "444.jpg"
    Image.fromarray(_picture()).save(src, quality=97, subsampling=0)
    img, info = load_image(src)
    save_image(tmp_path / "out.jpg", img, info, quality=60)
    assert _tables_and_sampling(tmp_path / "out.jpg")[1] == [(1, 1)] * 3


@pytest.mark.parametrize("factor, kept", [(cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440, [(1, 1)] * 3),
                                          (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411, [(2, 1), (1, 1), (1, 1)])])
def test_a_sampling_pillow_cannot_write_keeps_all_its_colour(tmp_path: Path, factor, kept):
    """4:4:0 is written 4:4:4 and 4:1:1 4:2:2 (before: both 4:2:0, losing half of 4:4:0's colour)."""
    src = tmp_path / "s.jpg"
    cv2.imwrite(str(src), _picture()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor])
    img, info = load_image(src)
    save_image(tmp_path / "out.jpg", img, info)
    assert _tables_and_sampling(tmp_path / "out.jpg") == (_tables_and_sampling(src)[0], kept)


def test_a_cmyk_jpeg_keeps_its_tables(tmp_path: Path):
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(_picture()).convert("CMYK").save(src, quality=60)
    img, info = load_image(src)
    save_image(tmp_path / "out.jpg", img, info)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "CMYK"
    assert _tables_and_sampling(tmp_path / "out.jpg")[0] == _tables_and_sampling(src)[0]


def test_an_exif_block_the_writer_refuses_costs_the_exif_not_the_tables(tmp_path: Path):
    src = tmp_path / "q.jpg"
    Image.fromarray(_picture()).save(src, quality=60, subsampling=0)
    img, info = load_image(src)
    info.exif = b"Exif\x00\x00II*\x00" + bytes(70000)
    assert save_image(tmp_path / "out.jpg", img, info) == ["EXIF not kept: JPEG could not write it (EXIF data is too long)"]
    assert _tables_and_sampling(tmp_path / "out.jpg") == _tables_and_sampling(src)


def test_a_full_size_exif_block_still_fits(tmp_path: Path):
    """An EXIF block at JPEG's segment limit: before, Pillow wrote it back a few bytes longer and it was lost."""
    raw = camera_exif(1)
    raw = raw[:-len(THUMB)] + bytes(65533 - len(raw) + len(THUMB))
    buf = io.BytesIO()
    Image.fromarray(_picture()).save(buf, "JPEG", quality=90, exif=raw)
    src = tmp_path / "full.jpg"
    src.write_bytes(buf.getvalue())
    img, info = load_image(src)
    assert save_image(tmp_path / "out.jpg", img, info) == []
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.getexif()[0x010F] == "Camco"


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("damage", ["no thumbnail length", "magic 43", "thumbnail over the header"])
def test_an_odd_exif_block_never_leaks_the_thumbnail_nor_fails_the_write(tmp_path: Path, ext, damage):
    """A block upright_exif cannot patch safely goes Pillow's way (rewritten, thumbnail dropped) or is dropped."""
    raw = camera_exif(6, thumb_length=damage != "no thumbnail length")
    if damage == "magic 43":
        raw = raw[:8] + b"\x2b" + raw[9:]
    elif damage == "thumbnail over the header":
        at = raw.index(struct.pack("<HHI", 0x0201, 4, 1)) + 8
        raw = raw[:at] + struct.pack("<I", 0) + raw[at + 4:]
    assert upright_exif(raw, 6) is None
    src = tmp_path / "odd.jpg"
    Image.fromarray(_picture()).save(src, quality=90, exif=raw)
    img, info = load_image(src)
    save_image(tmp_path / f"out{ext}", img, info)
    data = (tmp_path / f"out{ext}").read_bytes()
    assert b"old face" not in data
    with Image.open(tmp_path / f"out{ext}") as out:  # (a block no one can read turns nothing)
        assert out.size == ((40, 64) if damage == "magic 43" else (64, 40))


def _exif_with_sizes(orientation: int, width: int, height: int, interop: bool = False) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Camco"
    exif[0x0112] = orientation
    sub = {0xA002: width, 0xA003: height}
    if interop:
        sub[0xA005] = {0x0001: "R98"}
    exif[0x8769] = sub
    return exif


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_tiffs_exif_gives_the_upright_size_and_no_pointer_to_nowhere(tmp_path: Path, ext):
    """A TIFF's EXIF is written anew (by Pillow): before, its pixel size stayed that of the photo on its side,
    and its Interoperability pointer kept an offset that meant nothing in the new block."""
    src = tmp_path / "cam.tif"
    Image.fromarray(_picture()).save(src, exif=_exif_with_sizes(6, 40, 64, interop=True).tobytes())
    img, info = load_image(src)
    assert info.orientation == 6 and info.size == (64, 40)
    save_image(tmp_path / f"out{ext}", img, info)
    with Image.open(tmp_path / f"out{ext}") as out:
        sub = out.getexif().get_ifd(0x8769)
        assert out.size == (64, 40) and (sub[0xA002], sub[0xA003]) == (64, 40) and 0xA005 not in sub


def test_a_tiff_result_drops_the_interop_pointer_pillow_would_copy_as_a_number(tmp_path: Path):
    src = tmp_path / "cam.jpg"
    Image.fromarray(_picture()).save(src, quality=90, exif=_exif_with_sizes(1, 40, 64, interop=True))
    img, info = load_image(src)
    save_image(tmp_path / "out.tif", img, info)
    with Image.open(tmp_path / "out.tif") as out:
        sub = out.getexif().get_ifd(0x8769)
        assert (sub[0xA002], sub[0xA003]) == (40, 64) and 0xA005 not in sub


def test_xmp_image_width_and_length_follow_the_upright_size():
    xmp = b'<x tiff:ImageWidth="64" tiff:ImageLength="40" exif:PixelXDimension="64" exif:PixelYDimension="40"/>'
    assert upright_xmp(xmp, 1, (40, 64)) == (b'<x tiff:ImageWidth="40" tiff:ImageLength="64" '
                                            b'exif:PixelXDimension="40" exif:PixelYDimension="64"/>')
    assert upright_xmp(xmp, 1, (64, 40)) == xmp  # (already right: left alone)
