"""Phone formats: HEIF (HEIC, through the optional pillow-heif) and AVIF (Pillow's own).

A HEIC or AVIF photo is read upright with its EXIF, ICC profile and XMP, smiled, and written in
its own format with them; a folder's ``.heic``/``.avif`` files are found; ``--in-place`` keeps the
format.  Without pillow-heif a HEIC photo, or a ``.heic`` output, is one line saying what to
install (exit 4 / 2), nothing written.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, features

from smile_cli.main import cli
from smilecore import heif
from smilecore.decode import load_image

pillow_heif = pytest.importorskip("pillow_heif", reason='HEIF needs pip install ".[heif]" (the test extra has it)')
needs_avif = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>NASA</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')
FORMATS = {".heic": "HEIF", ".avif": "AVIF"}


def _formats():
    return [pytest.param(".heic", id="heic"), pytest.param(".avif", id="avif", marks=needs_avif)]


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _write_sideways(path: Path, astronaut: np.ndarray, icc: bytes) -> None:
    """The neutral astronaut stored turned a quarter (EXIF orientation 6 rights her), with EXIF, ICC and XMP."""
    heif.require(str(path))
    exif = Image.Exif()
    exif[0x010F] = "PhoneCam"
    exif[0x0112] = 6
    sideways = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    sideways.save(path, exif=exif.tobytes(), icc_profile=icc, xmp=XMP, quality=95)


@pytest.mark.parametrize("ext", _formats())
def test_phone_photo_smiles_upright_in_its_own_format_with_its_metadata(tmp_path, astronaut, icc, ext):
    src = tmp_path / f"IMG_0001{ext}"
    _write_sideways(src, astronaut, icc)
    before = src.read_bytes()
    r = CliRunner().invoke(cli, [str(src), "--strength", "2"])
    assert r.exit_code == 0, r.output
    assert "1 of 1 face smiled" in r.output
    assert src.read_bytes() == before  # the input is only read
    out = tmp_path / f"IMG_0001.smile{ext}"
    with Image.open(out) as im:
        assert im.format == FORMATS[ext]
        assert im.size == (512, 512)  # upright, as the orientation asked
        exif = im.getexif()
        assert exif.get(0x010F) == "PhoneCam" and exif.get(0x0112, 1) == 1
        assert im.info.get("icc_profile") == icc
        assert b"<dc:creator>NASA</dc:creator>" in (im.info.get("xmp") or b"")
        result = np.asarray(im.convert("RGB")).astype(int)
    source = astronaut.astype(int)
    mouth = (slice(125, 160), slice(195, 250))
    assert np.abs(result[mouth] - source[mouth]).mean() > 4  # the mouth changed
    assert np.abs(result[:60] - source[:60]).mean() < 3  # the top of the picture only re-encoded


@pytest.mark.parametrize("ext", _formats())
def test_folder_finds_phone_photos_and_in_place_keeps_the_format(tmp_path, astronaut, icc, ext):
    folder = tmp_path / "camera"
    folder.mkdir()
    _write_sideways(folder / f"a{ext}", astronaut, icc)
    r = CliRunner().invoke(cli, [str(folder), "--out-dir", str(tmp_path / "out"), "--strength", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / f"a.smile{ext}").is_file()

    named_png = folder / "b.png"  # HEIF/AVIF bytes under a PNG name stay what they are
    named_png.write_bytes((folder / f"a{ext}").read_bytes())
    r = CliRunner().invoke(cli, [str(named_png), "--in-place", "--strength", "2"])
    assert r.exit_code == 0, r.output
    with Image.open(named_png) as im:
        assert im.format == FORMATS[ext]


def test_jpeg_to_heic_and_avif_and_quality(tmp_path, astronaut):
    src = tmp_path / "p.jpg"
    Image.fromarray(astronaut).save(src, quality=92)
    sizes = {}
    for q in ("30", "95"):
        out = tmp_path / f"p{q}.heic"
        r = CliRunner().invoke(cli, [str(src), "-o", str(out), "--quality", q])
        assert r.exit_code == 0, r.output
        sizes[q] = out.stat().st_size
        with Image.open(out) as im:
            assert im.format == "HEIF" and im.size == (512, 512)
    assert sizes["30"] < sizes["95"] / 2  # --quality reaches the HEIF encoder


def test_truncated_heic_is_one_line_exit_4(tmp_path, astronaut, icc):
    whole = tmp_path / "whole.heic"
    _write_sideways(whole, astronaut, icc)
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole.read_bytes()[:3000])
    r = CliRunner().invoke(cli, [str(cut), "-o", str(tmp_path / "o.jpg")])
    assert r.exit_code == 4
    assert "corrupt or truncated" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.jpg").exists()


def test_ten_bit_heif_is_read_with_a_note(tmp_path, astronaut):
    p = tmp_path / "ten.heic"
    heif.require(str(p))
    wide = astronaut.astype("<u2") * 257  # 16-bit samples, stored as 10 bits
    pillow_heif.from_bytes(mode="RGB;16", size=(512, 512), data=wide.tobytes()).save(p, quality=95)
    with Image.open(p) as check:
        assert check.info.get("bit_depth", 8) > 8
    image, info = load_image(p)
    assert np.asarray(image).dtype == np.uint8
    assert any("10-bit HEIF" in n for n in info.notes)


def test_family_of_a_file_is_read_from_its_brands(tmp_path):
    def box(major: bytes, *compatible: bytes) -> bytes:
        body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return (len(body) + 4).to_bytes(4, "big") + body + b"\x00" * 32

    assert heif.kind_of_bytes(box(b"heic", b"mif1", b"heic")) == "heif"
    assert heif.kind_of_bytes(box(b"mif1", b"mif1", b"heic")) == "heif"
    assert heif.kind_of_bytes(box(b"avif", b"mif1", b"avif")) == "avif"
    assert heif.kind_of_bytes(box(b"mif1", b"mif1", b"avif", b"miaf")) == "avif"
    assert heif.kind_of_bytes(box(b"isom", b"isom", b"mp41")) is None  # an MP4 video
    assert heif.kind_of_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40) is None


def _run_without_pillow_heif(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    code = ("import sys; sys.modules['pillow_heif'] = None\n"  # (import pillow_heif now fails)
            "from smile_cli.main import main; sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_without_pillow_heif_a_heic_photo_says_what_to_install(tmp_path, astronaut, icc):
    src = tmp_path / "IMG_0002.heic"
    _write_sideways(src, astronaut, icc)
    r = _run_without_pillow_heif(tmp_path, str(src), "-o", "out.jpg")
    assert r.returncode == 4, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "reading it needs pillow-heif: pip install pillow-heif" in lines[0]
    assert not (tmp_path / "out.jpg").exists()

    jpg = tmp_path / "p.jpg"
    Image.fromarray(astronaut).save(jpg)
    r = _run_without_pillow_heif(tmp_path, str(jpg), "-o", "p.heic")
    assert r.returncode == 2, r.stderr
    assert "writing HEIF (.heic) photos needs pillow-heif" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.heic").exists()
