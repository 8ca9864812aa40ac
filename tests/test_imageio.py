"""smilecore.decode, .encode and .atomic: orientation, metadata, 16 bits, alpha, atomic writes, bad files."""
from __future__ import annotations

import functools
import gc
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from smilecore.errors import ImageTooLargeError, InputError, UsageError, WriteError
from smilecore.atomic import copy_file_atomic, write_atomic
from smilecore.decode import ImageInfo, estimate_jpeg_quality, load_image
from smilecore.encode import output_format, save_image


@functools.lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    """One sRGB profile per run: the profile's header holds its creation time, so two calls can differ."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "SmileTestCam"  # Make
    return ex.tobytes()


def _gradient(h: int = 24, w: int = 40) -> np.ndarray:
    """An asymmetric RGB test pattern (every orientation gives different pixels)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], axis=-1).astype(np.uint8)


def _files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------------------------ reading


def test_jpeg_orientation_applied_and_metadata_kept(tmp_path: Path):
    src = tmp_path / "rot.jpg"
    Image.fromarray(_gradient(24, 40)).save(src, quality=80, exif=_exif(6), icc_profile=_srgb_icc())
    img, info = load_image(src)
    assert isinstance(img, Image.Image)
    assert img.size == (24, 40)  # rotated: width and height swapped
    assert info.size == (24, 40) and info.orientation == 6
    assert info.icc_profile == _srgb_icc()
    assert info.quality is not None and abs(info.quality - 80) <= 2
    out = tmp_path / "out.jpg"
    assert save_image(out, img, info) == []
    with Image.open(out) as back:
        assert back.size == (24, 40)
        assert back.getexif().get(0x0112) == 1  # nobody rotates it twice
        assert back.getexif().get(0x010F) == "SmileTestCam"
        assert back.info.get("icc_profile") == _srgb_icc()
        assert estimate_jpeg_quality({0: list(back.quantization[0])}) == pytest.approx(80, abs=2)


def test_upright_jpeg_is_returned_without_a_copy_and_its_file_closed(tmp_path: Path):
    """An upright photo is handed over as decoded (no copy), its file closed; the result keeps the
    source's quantisation tables, chroma subsampling, EXIF and ICC."""
    src = tmp_path / "up.jpg"
    Image.fromarray(_gradient(64, 48)).save(src, quality=85, subsampling=1, exif=_exif(1), icc_profile=_srgb_icc())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed file would be a ResourceWarning
        img, info = load_image(src)
        gc.collect()
    with Image.open(src) as ref:
        assert np.array_equal(np.asarray(img), np.asarray(ref))
        tables = {k: list(v) for k, v in ref.quantization.items()}
    assert img.format == "JPEG" and getattr(img, "fp", None) is None and info.orientation == 1  # (a copy has no format)
    out = tmp_path / "out.jpg"
    save_image(out, img, info)
    with Image.open(out) as back:
        assert {k: list(v) for k, v in back.quantization.items()} == tables
        assert JpegImagePlugin.get_sampling(back) == 1
        assert back.getexif().get(0x010F) == "SmileTestCam" and back.info.get("icc_profile") == _srgb_icc()


def test_smile_never_changes_the_callers_image(astronaut, fixture_models):
    import smilecore

    img = Image.fromarray(astronaut)
    before = np.asarray(img).copy()
    smilecore.smile(img, strength=2, model=fixture_models["shift"])
    assert np.array_equal(np.asarray(img), before)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_orientation_matches_pillow(tmp_path: Path, orientation: int):
    base = _gradient(24, 40)
    p8 = tmp_path / "o8.png"
    Image.fromarray(base).save(p8, exif=_exif(orientation))
    want = np.asarray(ImageOps.exif_transpose(Image.open(p8)))

    from smilecore.encode16 import png_add_metadata

    ok, buf = cv2.imencode(".png", (base.astype(np.uint16) * 257)[:, :, ::-1].copy())
    assert ok
    p16 = tmp_path / "o16.png"
    p16.write_bytes(png_add_metadata(buf.tobytes(), None, _exif(orientation)))
    got, info = load_image(p16)
    assert got.dtype == np.uint16 and info.bit_depth == 16
    np.testing.assert_array_equal((got >> 8).astype(np.uint8), want)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_tiff_orientation_is_applied_once(tmp_path: Path, orientation: int):
    """OpenCV's TIFF decoder turns a 16-bit TIFF by its orientation tag itself: before, it was turned twice."""
    base = _gradient(24, 40)
    p8 = tmp_path / "o8.png"
    Image.fromarray(base).save(p8, exif=_exif(orientation))
    want = np.asarray(ImageOps.exif_transpose(Image.open(p8)).convert("L"))
    grey = np.asarray(Image.fromarray(base).convert("L")).astype(np.uint16) * 257
    p16 = tmp_path / "o16.tif"
    Image.fromarray(grey).save(p16, exif=_exif(orientation))
    got, info = load_image(p16)
    assert got.dtype == np.uint16 and info.bit_depth == 16 and info.orientation == orientation
    np.testing.assert_array_equal((got >> 8).astype(np.uint8), want)


def test_16bit_png_and_tiff_round_trip_exactly(tmp_path: Path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, size=(16, 20, 3), dtype=np.uint16)
    src = tmp_path / "in16.png"
    cv2.imwrite(str(src), rgb[:, :, ::-1])
    img, info = load_image(src)
    assert img.dtype == np.uint16 and img.shape == (16, 20, 3)
    np.testing.assert_array_equal(img, rgb)  # RGB order, all 16 bits
    info.icc_profile = _srgb_icc()
    save_image(tmp_path / "out16.png", img, info)
    back, binfo = load_image(tmp_path / "out16.png")
    np.testing.assert_array_equal(back, rgb)
    assert binfo.icc_profile == _srgb_icc()
    save_image(tmp_path / "out16.tif", img, info)
    back, _ = load_image(tmp_path / "out16.tif")
    np.testing.assert_array_equal(back, rgb)


def test_16bit_rgba_and_gray(tmp_path: Path):
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 65536, size=(8, 9, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    img, info = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(img, rgba)
    gray = rng.integers(0, 65536, size=(8, 9), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    img, info = load_image(tmp_path / "g.png")
    assert img.shape == (8, 9)
    np.testing.assert_array_equal(img, gray)


def test_16bit_to_jpeg_is_reduced_with_a_note(tmp_path: Path):
    arr = np.full((8, 8, 3), 65535, np.uint16)
    notes = save_image(tmp_path / "x.jpg", arr, None)
    assert any("8 bits" in n for n in notes)
    assert np.asarray(Image.open(tmp_path / "x.jpg")).min() >= 250


def test_alpha_kept_in_png_and_flattened_on_white_in_jpeg(tmp_path: Path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert save_image(tmp_path / "a.png", rgba, None) == []
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    notes = save_image(tmp_path / "a.jpg", rgba, None)
    assert any("flattened onto white" in n for n in notes)
    assert np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB")).min() >= 250


def test_cmyk_jpeg_reads_and_png_output_is_rgb(tmp_path: Path):
    Image.new("CMYK", (10, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    img, info = load_image(tmp_path / "c.jpg")
    assert img.mode == "CMYK"
    save_image(tmp_path / "c.png", img, info)
    assert Image.open(tmp_path / "c.png").mode == "RGB"


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_estimate_jpeg_quality(quality: int):
    buf = io.BytesIO()
    Image.fromarray(_gradient()).save(buf, "JPEG", quality=quality)
    q = Image.open(io.BytesIO(buf.getvalue())).quantization
    assert estimate_jpeg_quality({0: list(q[0])}) == pytest.approx(quality, abs=1)


# ------------------------------------------------------------------------------------ bad files


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(InputError, match="nope.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


def test_text_renamed_jpg(tmp_path: Path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    with pytest.raises(InputError, match=r"notes\.jpg: not an image") as e:
        load_image(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_file(tmp_path: Path, ext: str):
    full = tmp_path / f"full{ext}"
    Image.fromarray(_gradient(64, 64)).save(full)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match=f"cut\\{ext}: "):
        load_image(cut)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one tiny IDAT (a 'decompression bomb')."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_header_is_refused_quickly(tmp_path: Path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(30000, 30000))  # 900 MP claimed, 60 bytes on disk
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png: .*limit"):
        load_image(p)


def test_pixel_limit_is_configurable(tmp_path: Path):
    p = tmp_path / "small.png"
    Image.fromarray(_gradient(40, 40)).save(p)
    with pytest.raises(ImageTooLargeError, match="small.png"):
        load_image(p, max_pixels=1000)
    img, _ = load_image(p, max_pixels=1600)
    assert img.size == (40, 40)


@pytest.mark.parametrize("compression", ["tiff_lzw", "jpeg"])
def test_pillows_limit_is_lifted_as_a_compressed_tiff_loads(tmp_path: Path, monkeypatch, compression: str):
    """Pillow checks its own limit again as it loads a compressed TIFF (through libtiff): a valid 190 MP LZW TIFF,
    under Smile's 200 MP, was "corrupt or truncated (Image size ... could be decompression bomb DOS attack)"."""
    p = tmp_path / "scan.tif"
    Image.fromarray(_gradient(100, 100)).save(p, compression=compression)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # (Pillow's limit far below the photo, as 179 MP below 190)
    img, info = load_image(p, max_pixels=20_000)
    assert info.size == (100, 100) and np.asarray(img).shape[:2] == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back as it was


def _tiff_of_pages(pages: int) -> bytes:
    """A TIFF of ``pages`` grey 1 x 1 pages (one byte of pixels that all of them share), written by hand: Pillow
    takes seconds to write a thousand pages."""
    def ifd(at: int, last: bool) -> bytes:  # (nine tags of 12 bytes: 114 bytes with the count and the link)
        tags = ((256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 8),
                (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, 1, 1))
        return struct.pack("<H", 9) + b"".join(struct.pack("<HHII", *t) for t in tags) + \
            struct.pack("<I", 0 if last else at + 114)

    return b"II*\x00" + struct.pack("<I", 10) + b"\x80\x00" + b"".join(ifd(10 + 114 * k, k == pages - 1)
                                                                   for k in range(pages))


def test_a_tiff_of_thousands_of_pages_is_not_walked_to_its_end(tmp_path: Path):
    """Pillow counts a TIFF's pages by reading every directory (a file of 20,000 tiny pages took 10 s before its
    first page was read): they are counted up to a thousand, and the note says "more than"."""
    from smilecore.decode import MAX_PAGES_COUNTED

    p = tmp_path / "pages.tif"
    p.write_bytes(_tiff_of_pages(1500))
    assert Image.open(p).n_frames == 1500
    img, info = load_image(p)
    assert info.frames == MAX_PAGES_COUNTED + 1 and np.asarray(img).tolist() == [[128]]
    assert [n for n in info.notes if f"more than {MAX_PAGES_COUNTED} pages" in n and "only the first" in n], info.notes
    from click.testing import CliRunner

    from smile_cli.main import cli

    res = CliRunner().invoke(cli, [str(p), "--in-place"], catch_exceptions=False)
    assert res.exit_code == 2 and f"holds more than {MAX_PAGES_COUNTED} frames" in res.stderr, res.stderr
    p.write_bytes(_tiff_of_pages(7))
    img, info = load_image(p)
    assert info.frames == 7 and [n for n in info.notes if "has 7 frames or pages" in n], info.notes
    frames = [Image.new("L", (2, 2), k % 256) for k in range(MAX_PAGES_COUNTED + 200)]  # (an APNG's frames: all known)
    p = tmp_path / "long.png"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    res = CliRunner().invoke(cli, [str(p), "--in-place"], catch_exceptions=False)
    assert res.exit_code == 2 and f"holds {MAX_PAGES_COUNTED + 200} frames" in res.stderr, res.stderr


def test_a_tiff_page_pillow_cannot_read_is_still_counted(tmp_path: Path):
    """A TIFF whose second page Pillow cannot read (float RGB) was counted as one page: no note, and --in-place
    wrote the first page alone over it, losing the others."""
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(p) as tif:
        tif.write(np.full((20, 30, 3), 120, np.uint8), photometric="rgb")
        tif.write(np.zeros((20, 30, 3), np.float32), photometric="rgb")
        tif.write(np.zeros((20, 30), np.uint8))
    before = p.read_bytes()
    img, info = load_image(p)
    assert np.asarray(img).shape == (20, 30, 3) and info.frames >= 2
    assert [n for n in info.notes if "only the first is used" in n], info.notes
    from click.testing import CliRunner

    from smile_cli.main import cli

    res = CliRunner().invoke(cli, [str(p), "--in-place"], catch_exceptions=False)
    assert res.exit_code == 2 and "--in-place would lose the others" in res.stderr and p.read_bytes() == before


def test_float_tiff_is_refused_with_its_mode(tmp_path: Path):
    p = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(p)
    with pytest.raises(InputError, match=r"float\.tif: colour mode F"):
        load_image(p)


# ------------------------------------------------------------------------------------ writing


def test_unknown_extension_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match=r"\.xyz"):
        output_format(tmp_path / "a.xyz")
    with pytest.raises(UsageError):
        save_image(tmp_path / "a.xyz", Image.new("RGB", (2, 2)), None)
    assert not list(tmp_path.iterdir())


def test_write_into_missing_folder_fails_cleanly(tmp_path: Path):
    with pytest.raises(WriteError, match="does not exist"):
        save_image(tmp_path / "no" / "a.png", Image.new("RGB", (2, 2)), None)


def test_failed_write_leaves_target_and_folder_untouched(tmp_path: Path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"original")
    before = _files_in(tmp_path)

    def boom(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(WriteError, match=r"keep\.png: could not write it \(disk full\)"):
        write_atomic(target, boom)
    assert target.read_bytes() == b"original"
    assert _files_in(tmp_path) == before  # no temporary file left behind


def test_new_files_get_normal_permissions(tmp_path: Path):
    if os.name == "nt":
        pytest.skip("POSIX permissions")
    umask = os.umask(0o022)
    try:
        save_image(tmp_path / "p.png", Image.new("RGB", (2, 2)), None)
    finally:
        os.umask(umask)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644


def test_copy_file_atomic_is_byte_identical(tmp_path: Path):
    src = tmp_path / "a.jpg"
    Image.fromarray(_gradient()).save(src, exif=_exif(3))
    copy_file_atomic(src, tmp_path / "b.jpg")
    assert (tmp_path / "b.jpg").read_bytes() == src.read_bytes()


def test_info_default_save_uses_quality_95(tmp_path: Path):
    img = Image.fromarray(_gradient())
    save_image(tmp_path / "q.jpg", img, ImageInfo(path=tmp_path / "x", format=None, mode="RGB", size=img.size))
    q = Image.open(tmp_path / "q.jpg").quantization
    assert estimate_jpeg_quality({0: list(q[0])}) == pytest.approx(95, abs=1)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_truncated_16bit_file_is_refused_quietly(tmp_path: Path, capfd, ext: str):
    full = tmp_path / f"full16{ext}"
    cv2.imwrite(str(full), np.random.default_rng(2).integers(0, 65536, (120, 160, 3), dtype=np.uint16))
    cut = tmp_path / f"cut16{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    capfd.readouterr()
    with pytest.raises(InputError, match=f"cut16\\{ext}: the image data is corrupt or truncated"):
        load_image(cut)
    assert capfd.readouterr().err == ""  # no libpng/PIL chatter besides our one line


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_results_keep_the_resolution(tmp_path: Path, ext: str):
    grey = (np.asarray(Image.fromarray(_gradient(24, 40)).convert("L")).astype(np.uint16) * 257)
    src = tmp_path / f"in16{ext}"
    Image.fromarray(grey).save(src, dpi=(300, 300))
    img, info = load_image(src)
    assert img.dtype == np.uint16 and info.dpi is not None and round(info.dpi[0]) == 300
    out = tmp_path / f"out16{ext}"
    save_image(out, img, info)
    with Image.open(out) as im:
        assert [round(v) for v in im.info["dpi"]] == [300, 300] and np.asarray(im).dtype == np.uint16


def test_a_tiff_without_a_resolution_gets_none_invented(tmp_path: Path):
    """Pillow reads a TIFF with no resolution tags as 1 dpi; before, a result said 1 dpi (a print 40 inches wide)."""
    src = tmp_path / "plain.tif"
    Image.fromarray(_gradient(24, 40)).save(src)
    img, info = load_image(src)
    assert info.dpi is None
    save_image(tmp_path / "out.png", img, info)
    with Image.open(tmp_path / "out.png") as im:
        assert "dpi" not in im.info


def test_a_16bit_cmyk_tiff_is_read_in_8_bits_saying_so(tmp_path: Path):
    """OpenCV cannot read 16-bit CMYK: before, 'the 16-bit image data is corrupt' and OpenCV's own log lines."""
    tifffile = pytest.importorskip("tifffile")
    cmyk = np.asarray(Image.fromarray(_gradient(24, 40)).convert("CMYK")).astype(np.uint16) * 257
    src = tmp_path / "cmyk16.tif"
    tifffile.imwrite(src, cmyk, photometric="separated")
    img, info = load_image(src)
    assert img.mode == "CMYK" and np.array_equal(np.asarray(img), (cmyk >> 8).astype(np.uint8))
    assert info.notes == [f"{src}: a 16-bit CMYK TIFF, read as 8 bits per sample"]


@pytest.mark.parametrize("compression", ["tiff_lzw", "jpeg", "packbits"])
def test_a_tiff_result_keeps_the_sources_compression(tmp_path: Path, compression: str):
    """Before: every TIFF result was Deflate: a JPEG-compressed scan came out five times the size."""
    src = tmp_path / "in.tif"
    Image.fromarray(_gradient(48, 64)).save(src, compression=compression)
    img, info = load_image(src)
    assert info.tiff_compression == compression
    save_image(tmp_path / "out.tif", img, info)
    with Image.open(tmp_path / "out.tif") as out:
        assert out.info["compression"] == compression


def test_a_resolution_past_any_scanner_is_dropped_not_a_crash(tmp_path: Path):
    """Before: 4e9 dpi (a damaged tag) overflowed the 16-bit PNG and TIFF writers: an internal error."""
    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "dpi.tif"
    tifffile.imwrite(src, (np.asarray(Image.fromarray(_gradient(24, 40)).convert("L")).astype(np.uint16) * 257),
                     resolution=(4e9, 4e9), resolutionunit="INCH")
    img, info = load_image(src)
    assert info.dpi is None
    for ext in (".png", ".tif"):
        save_image(tmp_path / f"out{ext}", img, info)
        assert load_image(tmp_path / f"out{ext}")[0].dtype == np.uint16


@pytest.mark.parametrize("ext", ["png", "webp", "gif"])
def test_an_animation_says_the_result_is_its_first_frame_alone(tmp_path: Path, ext: str):
    """An animated PNG, WebP or GIF was said to have "N frames or pages"; a user needs to know that the result is
    a still picture of the first frame."""
    frames = [Image.fromarray(np.roll(_gradient(32, 48), 8 * k, axis=1)) for k in range(3)]
    p = tmp_path / f"anim.{ext}"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, **({"lossless": True} if ext == "webp" else {}))
    img, info = load_image(p)
    assert info.frames == 3
    assert [n for n in info.notes if "an animation of 3 frames" in n and "a still picture" in n], info.notes
    if ext != "gif":  # (GIF: a palette of the first frame's colours)
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(frames[0]))
