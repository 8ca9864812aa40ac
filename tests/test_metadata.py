"""Descriptive metadata across formats: XMP, comments, PNG text, progressive JPEG, a TIFF's EXIF.

Each kept item makes a round trip source -> ``load_image`` -> ``save_image`` (or the whole
``smile`` command) and is looked for in the output; what an output format cannot hold must be
named in the returned notes, never dropped silently.  A TIFF's EXIF is its real EXIF content
only (never its strip layout), ``ImageInfo.frames`` counts pages and frames, and
``save_image(fmt=...)`` writes a format other than the extension's.
"""
from __future__ import annotations

import functools
import io
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

from smilecore.decode import load_image
from smilecore.encode import save_image
from smilecore.errors import UsageError

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>')
COMMENT = b"Grandma's 80th, garden"

#: Tags of a TIFF's own layout that must never turn up as EXIF in a result.
STRUCTURAL = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 34675}


@functools.lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _picture(h: int = 48, w: int = 64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 4 % 256, y * 5 % 256, (x * y) % 256], axis=-1).astype(np.uint8))


def _png_text_info() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Garden party")
    info.add_text("Author", "Ann Example", zip=True)  # zTXt
    info.add_itxt("Description", "Großmutter im Garten", lang="de", tkey="Beschreibung")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    return info


def _with_chunk_before_iend(png: bytes, kind: bytes, payload: bytes) -> bytes:
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return png[:-12] + chunk + png[-12:]


def _info_of(path: Path) -> dict:
    with Image.open(path) as im:
        im.load()
        return dict(im.info)


def _png_text(path: Path) -> dict:
    with Image.open(path) as im:
        return dict(im.text)


# ------------------------------------------------------------------------------ JPEG sources


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    """A progressive JPEG with XMP and a comment."""
    p = tmp_path / "src.jpg"
    _picture().save(p, quality=90, xmp=XMP, comment=COMMENT, progressive=True)
    return p


def test_jpeg_keeps_xmp_comment_and_progressive(jpeg: Path, tmp_path: Path):
    img, info = load_image(jpeg)
    assert (info.xmp, info.comment, info.progressive) == (XMP, COMMENT, True)
    out = tmp_path / "out.jpg"
    assert save_image(out, img, info) == []
    got = _info_of(out)
    assert got.get("xmp") == XMP and got.get("comment") == COMMENT and got.get("progressive")


def test_baseline_jpeg_stays_baseline(tmp_path: Path):
    src = tmp_path / "base.jpg"
    _picture().save(src, quality=90)
    img, info = load_image(src)
    out = tmp_path / "out.jpg"
    save_image(out, img, info)
    assert not info.progressive and "progressive" not in _info_of(out)


def test_jpeg_to_png_keeps_xmp_as_itxt_and_the_comment_as_text(jpeg: Path, tmp_path: Path):
    img, info = load_image(jpeg)
    out = tmp_path / "out.png"
    assert save_image(out, img, info) == []
    text = _png_text(out)
    assert text["XML:com.adobe.xmp"] == XMP.decode() and text["Comment"] == COMMENT.decode()
    assert _info_of(out).get("xmp") == XMP


@pytest.mark.parametrize("ext, kept, lost", [
    (".webp", "xmp", ["comment"]),
    (".tif", "xmp", ["comment"]),
    (".bmp", None, ["XMP", "comment"]),
])
def test_jpeg_metadata_the_output_cannot_hold_gets_a_note(jpeg: Path, tmp_path: Path, ext, kept, lost):
    img, info = load_image(jpeg)
    out = tmp_path / ("out" + ext)
    notes = save_image(out, img, info)
    for what in lost:
        assert any(n.startswith(f"{what} not kept") for n in notes), notes
    if kept:
        assert _info_of(out).get(kept) == XMP
    assert len(notes) == len(lost), notes


def test_smile_command_keeps_xmp_comment_and_progressive(jpeg: Path, tmp_path: Path, fixture_models, monkeypatch):
    """The whole ``smile`` run, on the neutral astronaut: JPEG -> JPEG and JPEG -> PNG."""
    from portrait import neutral_astronaut
    from smile_cli.main import cli

    monkeypatch.setenv("SMILE_MODEL", str(fixture_models["shift"]))
    Image.fromarray(np.asarray(neutral_astronaut())).save(jpeg, quality=92, xmp=XMP, comment=COMMENT, progressive=True)
    for name in ("smiled.jpg", "smiled.png"):
        out = tmp_path / name
        res = CliRunner().invoke(cli, [str(jpeg), "-o", str(out), "--json"], catch_exceptions=False)
        assert res.exit_code == 0, res.stderr
        (photo,) = json.loads(res.stdout)["photos"]
        assert photo["notes"] == [], photo["notes"]
        got = _info_of(out)
        assert got.get("xmp") == XMP
        if name.endswith(".jpg"):
            assert got.get("comment") == COMMENT and got.get("progressive")
        else:
            assert got.get("Comment") == COMMENT.decode()


def test_exif_the_writer_refuses_is_noted_and_the_rest_kept(jpeg: Path, tmp_path: Path):
    """An EXIF block too large for JPEG is dropped on the retry with a note; XMP and comment stay."""
    img, info = load_image(jpeg)
    info.exif = b"Exif\x00\x00II*\x00" + bytes(70000)
    out = tmp_path / "out.jpg"
    assert save_image(out, img, info) == ["EXIF not kept: JPEG could not write it (EXIF data is too long)"]
    got = _info_of(out)
    assert got.get("xmp") == XMP and got.get("comment") == COMMENT and "exif" not in got


# ------------------------------------------------------------------------------ PNG sources


@pytest.fixture
def png(tmp_path: Path) -> Path:
    """A PNG with tEXt, zTXt and iTXt chunks, XMP, and one text chunk after the image data."""
    buf = io.BytesIO()
    _picture().save(buf, "PNG", pnginfo=_png_text_info())
    p = tmp_path / "src.png"
    p.write_bytes(_with_chunk_before_iend(buf.getvalue(), b"tEXt", b"Comment\x00shot on film"))
    return p


def test_png_keeps_every_text_chunk_and_xmp(png: Path, tmp_path: Path):
    img, info = load_image(png)
    assert info.xmp == XMP and "XML:com.adobe.xmp" not in info.text
    assert info.text["Comment"] == "shot on film"  # (the chunk after the image data)
    out = tmp_path / "out.png"
    assert save_image(out, img, info) == []
    text = _png_text(out)
    assert {k: str(v) for k, v in text.items() if k != "XML:com.adobe.xmp"} == {
        "Title": "Garden party", "Author": "Ann Example", "Description": "Großmutter im Garten", "Comment": "shot on film"}
    assert (text["Description"].lang, text["Description"].tkey) == ("de", "Beschreibung")
    assert _info_of(out).get("xmp") == XMP


def test_png_to_jpeg_keeps_xmp_and_comment_and_notes_the_other_text(png: Path, tmp_path: Path):
    img, info = load_image(png)
    out = tmp_path / "out.jpg"
    notes = save_image(out, img, info)
    got = _info_of(out)
    assert got.get("xmp") == XMP and got.get("comment") == b"shot on film"
    assert notes == ["PNG text (Author, Description, Title) not kept (JPEG cannot hold it; use .png)"]


@pytest.mark.parametrize("ext", [".webp", ".tif"])
def test_png_to_webp_and_tiff_keep_xmp_and_note_the_text(png: Path, tmp_path: Path, ext):
    img, info = load_image(png)
    out = tmp_path / ("out" + ext)
    notes = save_image(out, img, info)
    assert _info_of(out).get("xmp") == XMP
    assert any(n.startswith("comment not kept") for n in notes), notes
    assert any(n.startswith("PNG text (Author, Description, Title) not kept") for n in notes), notes


def test_16bit_png_keeps_text_and_xmp(tmp_path: Path):
    src = tmp_path / "deep.png"
    arr = (np.arange(32 * 40 * 3, dtype=np.uint32).reshape(32, 40, 3) * 37 % 65536).astype(np.uint16)
    assert cv2.imwrite(str(src), arr)  # (PIL cannot write 16-bit RGB: the chunks are spliced in)
    data = _with_chunk_before_iend(src.read_bytes(), b"tEXt", b"Title\x00Deep")
    data = _with_chunk_before_iend(data, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP)
    src.write_bytes(data)
    img, info = load_image(src)
    assert info.bit_depth == 16 and info.text == {"Title": "Deep"} and info.xmp == XMP
    out = tmp_path / "out.png"
    assert save_image(out, img, info) == []
    assert _png_text(out)["Title"] == "Deep" and _info_of(out).get("xmp") == XMP
    back, back_info = load_image(out)
    assert back_info.bit_depth == 16 and np.array_equal(back, img)


def test_png_text_bomb_and_damaged_chunks_are_skipped(tmp_path: Path):
    """A zTXt that inflates past the limit and a chunk without a keyword end are skipped, the photo read."""
    buf = io.BytesIO()
    _picture().save(buf, "PNG")
    data = _with_chunk_before_iend(buf.getvalue(), b"zTXt", b"Bomb\x00\x00" + zlib.compress(b"a" * (4 << 20), 9))
    data = _with_chunk_before_iend(data, b"tEXt", b"no keyword end")
    data = _with_chunk_before_iend(data, b"tEXt", b"Title\x00kept")
    src = tmp_path / "bomb.png"
    src.write_bytes(data)
    _img, info = load_image(src)
    assert info.text == {"Title": "kept"}


def test_xmp_too_large_for_jpeg_gets_a_note(tmp_path: Path):
    big = XMP.replace(b"/>", b" xmp:Label='" + b"x" * 70000 + b"'/>")
    src = tmp_path / "big.webp"
    _picture().save(src, lossless=True, xmp=big)
    img, info = load_image(src)
    assert info.xmp == big
    notes = save_image(tmp_path / "out.jpg", img, info)
    assert len(notes) == 1 and notes[0].startswith("XMP not kept") and "JPEG segment" in notes[0]
    assert save_image(tmp_path / "out.webp", img, info) == [] and _info_of(tmp_path / "out.webp")["xmp"] == big


# ------------------------------------------------------------------------------ TIFF sources


def _camera_exif() -> bytes:
    ex = Image.Exif()
    ex[0x010F] = "SmileCam"  # Make
    ex[0x013B] = "Ann Example"  # Artist
    ex[0x8298] = "(c) Ann"  # Copyright
    ex[0x8769] = {0x829A: IFDRational(1, 250), 0x9003: "2024:05:06 07:08:09"}  # ExposureTime, DateTimeOriginal
    ex[0x8825] = {1: "N", 2: (IFDRational(48, 1), IFDRational(51, 1), IFDRational(30, 1))}
    return ex.tobytes()


def _exif_of(path: Path) -> tuple[dict, dict, dict]:
    with Image.open(path) as im:
        ex = im.getexif()
        return dict(ex), dict(ex.get_ifd(0x8769)), dict(ex.get_ifd(0x8825))


def test_tiff_with_one_row_per_strip_gives_no_junk_exif(tmp_path: Path):
    """512 x 9000 TIFF, one row per strip -> PNG: no eXIf chunk of strip offsets (it was 72 KB)."""
    src = tmp_path / "tall.tif"
    Image.new("RGB", (512, 9000), (120, 100, 90)).save(src, tiffinfo={278: 1})
    img, info = load_image(src)
    assert info.exif is None
    out = tmp_path / "out.png"
    assert save_image(out, img, info) == []
    assert "exif" not in _info_of(out)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_tiff_keeps_real_exif_only(tmp_path: Path, ext):
    src = tmp_path / "cam.tif"
    _picture().save(src, exif=_camera_exif(), icc_profile=_srgb_icc(), compression="raw")
    img, info = load_image(src)
    assert info.icc_profile == _srgb_icc()
    out = tmp_path / ("out" + ext)
    assert save_image(out, img, info) == []
    ifd0, exif_ifd, gps = _exif_of(out)
    assert (ifd0.get(0x010F), ifd0.get(0x013B), ifd0.get(0x8298)) == ("SmileCam", "Ann Example", "(c) Ann")
    assert exif_ifd.get(0x9003) == "2024:05:06 07:08:09" and gps.get(1) == "N"
    if ext != ".tif":  # (a TIFF result has its own, new, layout tags)
        assert not STRUCTURAL & set(ifd0), sorted(STRUCTURAL & set(ifd0))
    with Image.open(out) as back:
        assert back.info.get("icc_profile") == _srgb_icc()


def test_camera_jpeg_to_tiff_keeps_its_exif(tmp_path: Path):
    """A JPEG whose EXIF has Exif and GPS sub-directories can be written as TIFF (libtiff cannot)."""
    src = tmp_path / "cam.jpg"
    _picture().save(src, exif=_camera_exif(), xmp=XMP)
    img, info = load_image(src)
    out = tmp_path / "out.tif"
    assert save_image(out, img, info) == []
    ifd0, exif_ifd, gps = _exif_of(out)
    assert ifd0.get(0x010F) == "SmileCam" and exif_ifd.get(0x829A) == pytest.approx(1 / 250) and gps.get(1) == "N"
    assert _info_of(out).get("xmp") == XMP


def test_tiff_xmp_is_kept(tmp_path: Path):
    src = tmp_path / "x.tif"
    ex = Image.Exif()
    ex[700] = XMP
    _picture().save(src, exif=ex.tobytes(), compression="tiff_deflate")
    img, info = load_image(src)
    assert info.xmp == XMP and info.exif is None  # (XMP is not EXIF)
    for ext in (".tif", ".jpg", ".png", ".webp"):
        assert save_image(tmp_path / ("out" + ext), img, info) == []
        assert _info_of(tmp_path / ("out" + ext)).get("xmp") == XMP, ext


def test_16bit_tiff_note_only_when_something_is_lost(tmp_path: Path):
    arr = (np.arange(24 * 32 * 3, dtype=np.uint32).reshape(24, 32, 3) * 91 % 65536).astype(np.uint16)
    plain = tmp_path / "plain.tif"
    assert cv2.imwrite(str(plain), arr)
    img, info = load_image(plain)
    assert info.bit_depth == 16 and info.exif is None
    assert save_image(tmp_path / "out.tif", img, info) == []  # (it said "written without its ICC profile/EXIF")

    grey = tmp_path / "grey.tif"
    Image.fromarray(arr[:, :, 0]).save(grey, icc_profile=_srgb_icc())
    img, info = load_image(grey)
    assert info.bit_depth == 16 and info.exif is None and info.icc_profile == _srgb_icc()
    assert save_image(tmp_path / "grey-out.tif", img, info) == []  # (before: "written without its ICC profile")
    assert load_image(tmp_path / "grey-out.tif")[1].icc_profile == _srgb_icc()
    info.exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    notes = save_image(tmp_path / "grey-exif.tif", img, info)
    assert notes == ["16-bit TIFF written without its EXIF (not supported for 16-bit TIFF yet; use .png)"]


def test_a_16bit_rgba_tiff_marks_its_alpha_and_keeps_profile_and_xmp(tmp_path: Path):
    """Before: four samples and no ExtraSamples tag (libtiff warns; readers guess), and no ICC profile or XMP."""
    tifffile = pytest.importorskip("tifffile")
    rgba = (np.arange(24 * 32 * 4, dtype=np.uint32).reshape(24, 32, 4) * 97 % 65536).astype(np.uint16)
    src = tmp_path / "rgba.png"
    assert cv2.imwrite(str(src), rgba[:, :, [2, 1, 0, 3]])
    img, info = load_image(src)
    info.icc_profile, info.xmp = _srgb_icc(), XMP
    assert save_image(tmp_path / "out.tif", img, info) == []
    with tifffile.TiffFile(tmp_path / "out.tif") as t:
        page = t.pages[0]
        assert [int(x) for x in page.extrasamples] == [2]  # unassociated alpha
        assert page.tags["InterColorProfile"].value == _srgb_icc() and page.tags["XMP"].value == XMP
    got, again = load_image(tmp_path / "out.tif")
    assert np.array_equal(got, rgba) and again.icc_profile == _srgb_icc() and again.xmp == XMP


# ------------------------------------------------------------------------------ frames and fmt


def test_frames_counts_pages_and_frames(tmp_path: Path):
    single = tmp_path / "one.png"
    _picture().save(single)
    pages = tmp_path / "pages.tif"
    _picture().save(pages, save_all=True, append_images=[_picture(), _picture()])
    anim = tmp_path / "anim.webp"
    _picture().save(anim, save_all=True, append_images=[_picture().rotate(90), _picture().rotate(180)], lossless=True)
    gif = tmp_path / "anim.gif"
    _picture().save(gif, save_all=True, append_images=[_picture().rotate(90)])
    assert load_image(single)[1].frames == 1
    assert load_image(pages)[1].frames == 3
    assert load_image(anim)[1].frames == 3
    assert load_image(gif)[1].frames == 2


def test_fmt_writes_another_format_than_the_extension(tmp_path: Path):
    src = tmp_path / "photo.png"
    _picture().save(src, pnginfo=_png_text_info())
    img, info = load_image(src)
    misnamed = tmp_path / "photo.jpg"  # PNG bytes in a file named .jpg, kept PNG
    assert save_image(misnamed, img, info, fmt="PNG") == []
    with Image.open(misnamed) as back:
        assert back.format == "PNG" and back.text["Title"] == "Garden party"
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(img))
    assert save_image(tmp_path / "x.png", img, info, fmt="jpeg") != []  # (the PNG text is noted)
    assert (tmp_path / "x.png").read_bytes()[:3] == b"\xff\xd8\xff"
    save_image(tmp_path / "y.jpg", img, info)  # fmt=None: the extension decides, as before
    assert (tmp_path / "y.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    save_image(tmp_path / "z.dat", img, info, fmt="TIFF")  # any name
    with Image.open(tmp_path / "z.dat") as back:
        assert back.format == "TIFF"
    with pytest.raises(UsageError, match="GIF"):
        save_image(tmp_path / "w.jpg", img, info, fmt="GIF")
    with pytest.raises(UsageError):
        save_image(tmp_path / "w.xyz", img, info)


def _iptc_record() -> bytes:
    def dataset(record: int, tag: int, value: bytes) -> bytes:
        return b"\x1c" + bytes([record, tag]) + struct.pack(">H", len(value)) + value

    return (dataset(1, 90, b"\x1b%G") + dataset(2, 120, "Grandma's 80th — garden".encode())
            + dataset(2, 116, b"(c) Ann Example") + dataset(2, 25, b"family"))


def _photoshop_app13(*resources: tuple[int, bytes]) -> bytes:
    body = b"Photoshop 3.0\x00"
    for rid, data in resources:
        body += b"8BIM" + struct.pack(">H", rid) + b"\x00\x00" + struct.pack(">I", len(data)) + data + b"\x00" * (len(data) % 2)
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def test_iptc_is_kept_in_jpeg_and_tiff_without_photoshops_old_thumbnail(tmp_path, shift, astronaut):
    from PIL import IptcImagePlugin

    from smile_cli.main import cli

    iptc = _iptc_record()
    stale = io.BytesIO()
    Image.new("RGB", (32, 24), (255, 0, 0)).save(stale, "JPEG")
    thumbnail = b"\x00" * 28 + stale.getvalue()  # (resource 0x040C: a header, then the JPEG of the photo before the edit)
    src = tmp_path / "press.jpg"
    _picture(96, 128).save(src, quality=90, extra=_photoshop_app13((0x0404, iptc), (0x040C, thumbnail)))
    with Image.open(src) as im:
        assert IptcImagePlugin.getiptcinfo(im)[(2, 116)] == b"(c) Ann Example"
    wanted = {(1, 90): b"\x1b%G", (2, 120): "Grandma's 80th — garden".encode(), (2, 116): b"(c) Ann Example",
              (2, 25): b"family"}

    _, info = load_image(src)
    for ext in (".jpg", ".tif"):
        out = tmp_path / f"out{ext}"
        assert not [n for n in save_image(out, _picture(96, 128), info) if "IPTC" in n]
        with Image.open(out) as im:
            assert IptcImagePlugin.getiptcinfo(im) == wanted
            if ext == ".jpg":
                assert 0x040C not in (im.info.get("photoshop") or {})  # the old thumbnail is not carried
                assert stale.getvalue() not in out.read_bytes()
    _, back = load_image(tmp_path / "out.tif")  # and from a TIFF into a JPEG
    save_image(tmp_path / "back.jpg", _picture(96, 128), back)
    with Image.open(tmp_path / "back.jpg") as im:
        assert IptcImagePlugin.getiptcinfo(im) == wanted

    for ext, fmt in ((".png", "PNG"), (".webp", "WEBP")):
        notes = save_image(tmp_path / f"out{ext}", _picture(96, 128), info)
        assert f"IPTC not kept ({fmt} cannot hold it; use .jpg or .tif)" in notes

    from portrait import neutral_astronaut
    assert np.array_equal(astronaut, np.asarray(neutral_astronaut())), "the session fixture was changed by another test"
    face = tmp_path / "face.jpg"
    Image.fromarray(astronaut).save(face, quality=90, extra=_photoshop_app13((0x0404, iptc)))
    r = CliRunner().invoke(cli, [str(face), "-o", str(tmp_path / "cli.jpg"), "--model", str(shift)])
    assert r.exit_code == 0 and "1 of 1 face smiled" in r.output, r.output
    with Image.open(tmp_path / "cli.jpg") as im:
        assert IptcImagePlugin.getiptcinfo(im) == wanted
    r = CliRunner().invoke(cli, [str(face), "-o", str(tmp_path / "cli.png"), "--model", str(shift)])
    assert r.exit_code == 0 and "note: IPTC not kept" in r.output, r.output


def test_extended_xmp_is_kept_in_jpeg_and_named_elsewhere(tmp_path):
    from smilecore.metadata import XMP_EXTENSION, jpeg_app1_segment

    guid = b"0123456789ABCDEF0123456789ABCDEF"
    extended = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<!-- develop settings -->" * 2000 + b"</x:xmpmeta>"
    pieces = [extended[:40000], extended[40000:]]
    segments = b"".join(jpeg_app1_segment(XMP_EXTENSION + guid + struct.pack(">II", len(extended), offset) + piece)
                        for offset, piece in ((0, pieces[0]), (40000, pieces[1])))
    src = tmp_path / "develop.jpg"
    _picture().save(src, quality=90, xmp=XMP, extra=segments)
    _, info = load_image(src)
    assert len(info.xmp_extension) == 2

    out = tmp_path / "out.jpg"
    assert save_image(out, _picture(), info) == []
    with Image.open(out) as im:
        got = [bytes(d) for m, d in im.applist if m == "APP1" and bytes(d).startswith(XMP_EXTENSION)]
        assert b"".join(d[len(XMP_EXTENSION) + 40:] for d in got) == extended
        assert im.info.get("xmp") == XMP
    for ext in (".webp", ".png", ".tif"):
        notes = save_image(tmp_path / f"out{ext}", _picture(), info)
        assert any(n.startswith("extended XMP not kept") for n in notes), (ext, notes)


@pytest.mark.parametrize("size", [65505, 65506, 65507, 65508])
def test_iptc_at_the_jpeg_segment_limit_is_kept_or_noted_never_a_crash(tmp_path, size):
    from smilecore.metadata import JPEG_MAX_IPTC, read_iptc

    record = b"\x1c\x02\x78" + (size - 5).to_bytes(2, "big") + b"x" * (size - 5)  # a caption of size - 5 bytes
    _picture().save(tmp_path / "src.jpg", quality=90)
    _, info = load_image(tmp_path / "src.jpg")
    info.iptc = record  # (as a TIFF's tag 33723 would give it: a TIFF has no size limit)
    notes = save_image(tmp_path / "out.jpg", _picture(), info)
    with Image.open(tmp_path / "out.jpg") as im:
        kept = read_iptc(im)
    if size <= JPEG_MAX_IPTC:
        assert kept == record and not notes
    else:
        assert kept is None and notes == [f"IPTC not kept: its {size} bytes do not fit in one JPEG segment; use .tif"]


GREY_ICC = bytes(16) + b"GRAY" + b"XYZ " + bytes(104)  # (the header's colour space is what is read)


@pytest.mark.parametrize("mode, ext, kept", [("L", ".webp", False), ("LA", ".webp", False), ("LA", ".jpg", True),
                                             ("L", ".jpg", True), ("LA", ".png", True)])
def test_a_grey_profile_never_rides_on_colour_pixels(tmp_path: Path, mode, ext, kept):
    """Before: WebP (colour only) carried the grey profile, a file colour-managed programs refuse; a grey photo
    with transparency flattened for JPEG became colour and lost its profile without a word."""
    src = tmp_path / "grey.png"
    Image.fromarray(np.asarray(_picture().convert(mode))).save(src, icc_profile=GREY_ICC)
    img, info = load_image(src)
    notes = save_image(tmp_path / f"out{ext}", img, info)
    with Image.open(tmp_path / f"out{ext}") as out:
        assert (out.info.get("icc_profile") == GREY_ICC) is kept
        assert kept or out.mode in ("RGB", "RGBA")
        assert not kept or out.mode in ("L", "LA")
    assert any("grey ICC profile not kept" in n for n in notes) is not kept, notes


@pytest.mark.parametrize("gamma, said", [(100000, True), (45455, False)])
def test_a_pngs_gamma_is_kept_in_png_and_said_lost_elsewhere(tmp_path: Path, gamma, said):
    """Before: gAMA, cHRM and sRGB were dropped without a word (a linear-light PNG then looked far too dark)."""
    from smilecore.metadata import png_colour_chunks

    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", gamma))
    src = tmp_path / "g.png"
    _picture().save(src, pnginfo=info)
    for bits in (8, 16):
        if bits == 16:
            arr = np.asarray(_picture()).astype(np.uint16) * 257
            ok, buf = cv2.imencode(".png", arr[:, :, ::-1].copy())
            from smilecore.encode16 import png_add_metadata

            src.write_bytes(png_add_metadata(buf.tobytes(), None, None, info))
        img, got = load_image(src)
        assert got.png_colour == [(b"gAMA", struct.pack(">I", gamma))]
        assert save_image(tmp_path / "o.png", img, got) == []
        assert png_colour_chunks(tmp_path / "o.png") == [(b"gAMA", struct.pack(">I", gamma))]
        notes = save_image(tmp_path / "o.jpg", img, got)
        assert any("gamma and primaries (gAMA, cHRM) not kept" in n for n in notes) is said, notes
