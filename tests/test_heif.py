"""Phone formats: HEIF (HEIC, through the optional pillow-heif) and AVIF (Pillow's own).

A HEIC or AVIF photo is read upright with its EXIF, ICC profile and XMP, smiled, and written in
its own format with them; a folder's ``.heic``/``.avif`` files are found; ``--in-place`` keeps the
format.  Without pillow-heif a HEIC photo, or a ``.heic`` output, is one line saying what to
install (exit 4 / 2), nothing written.
"""
from __future__ import annotations

import os
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
    assert lines[0].endswith('reading it needs pillow-heif: pip install "pillow-heif>=1.0" (the [heif] extra)')
    assert not (tmp_path / "out.jpg").exists()

    jpg = tmp_path / "p.jpg"
    Image.fromarray(astronaut).save(jpg)
    r = _run_without_pillow_heif(tmp_path, str(jpg), "-o", "p.heic")
    assert r.returncode == 2, r.stderr
    assert "writing HEIF (.heic) photos needs pillow-heif" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.heic").exists()


# --------------------------------------------------------------------------- hostile and unusual phone files
# (the corpus, tests/corpus.py, has the rest: truncated files, ftyp + garbage, bombs, grids, alpha,
# grey, 10/12-bit, irot/imir, misnamed files; these need a real process, PyAV or several files)


def _run(args: list[str], cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, int]:
    """``smile ARGS`` as a real process: the result, its wall time (s) and its peak memory (MiB)."""
    import time

    # smile is started by a small launcher: a child forked from this (large) test process would count
    # this process's pages in its peak until it execs
    launch = ("import os, subprocess, sys\n"
              "p = subprocess.Popen(sys.argv[2:])\n"
              "_pid, status, usage = os.wait4(p.pid, 0)\n"
              "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
              "sys.exit(os.waitstatus_to_exitcode(status))\n")
    peak = cwd / "peak.txt"
    t0 = time.perf_counter()
    with open(cwd / "stdout.txt", "w+") as out, open(cwd / "stderr.txt", "w+") as err:
        code = subprocess.run([sys.executable, "-c", launch, str(peak), sys.executable, "-m", "smile_cli", *args],
                              stdout=out, stderr=err, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300).returncode
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(args, code, out.read(), err.read())
    return done, time.perf_counter() - t0, int(peak.read_text()) // 1024


def _bomb(path: Path, astronaut: np.ndarray, side: int) -> Path:
    from corpus import with_claimed_size

    heif.require(str(path))
    Image.fromarray(astronaut[::4, ::4].copy()).save(path, quality=60)
    path.write_bytes(with_claimed_size(path.read_bytes(), side, side))
    return path


@pytest.mark.parametrize("ext", _formats())
def test_bomb_header_is_exit_5_at_once_with_little_memory(tmp_path, astronaut, ext):
    """A 20 kB file whose ispe claims 60000 x 60000 pixels: exit 5 with the --max-pixels advice, in a
    second and without decoding (libavif alone called it corrupt: exit 4)."""
    bomb = _bomb(tmp_path / f"bomb{ext}", astronaut, 60_000)
    proc, seconds, mib = _run([str(bomb), "-o", "out.jpg"], tmp_path)
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "image is 60000x60000 = 3,600,000,000 pixels, above the limit of 200,000,000" in lines[0] and "--max-pixels" in lines[0]
    assert not (tmp_path / "out.jpg").exists()
    assert mib < 500 and seconds < 60, (mib, seconds)  # (the decoded picture alone would be 10 GB)


@pytest.mark.parametrize("ext", _formats())
def test_a_raised_limit_meets_the_decoders_own_ceiling_as_too_large(tmp_path, astronaut, ext):
    """--max-pixels above what libheif / libavif decode at all: still exit 5, saying whose limit it is."""
    bomb = _bomb(tmp_path / f"bomb{ext}", astronaut, 60_000)
    proc, _seconds, mib = _run([str(bomb), "-o", "out.jpg", "--max-pixels", "4000000000"], tmp_path)
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than the " + FORMATS[ext] + " decoder reads" in lines[0], lines
    assert mib < 500


def test_burst_uses_its_primary_image_says_so_and_is_not_replaced_in_place(tmp_path, astronaut):
    src = tmp_path / "burst.heic"
    heif.require(str(src))
    blue = Image.new("RGB", (512, 512), (20, 40, 200))
    blue.save(src, save_all=True, append_images=[Image.fromarray(astronaut), blue], primary_index=1, quality=90)
    image, info = load_image(src)
    assert info.frames == 3
    assert np.abs(np.asarray(image).astype(int) - astronaut).mean() < 4  # the primary (second) image, not the first
    assert info.notes == [f"{src}: holds 3 images (a burst or collection); only the primary one is used"]

    before = src.read_bytes()
    r = CliRunner().invoke(cli, [str(src), "--in-place"])
    assert r.exit_code == 2 and "--in-place would lose the others" in r.output
    assert src.read_bytes() == before


def _video(path: Path, astronaut: np.ndarray, codec: str, **options) -> None:
    av = pytest.importorskip("av", reason='needs PyAV (pip install ".[video]")')
    with av.open(str(path), "w", format="mp4", options=options) as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(astronaut[::2, ::2]), format="rgb24")
        for _ in range(3):
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def test_mp4_video_named_avif_is_one_line_saying_it_is_a_video(tmp_path, astronaut):
    fake = tmp_path / "clip.avif"
    _video(fake, astronaut, "mpeg4")
    assert fake.read_bytes()[4:12] == b"ftypisom"
    before = fake.read_bytes()
    r = CliRunner().invoke(cli, [str(fake), "-o", str(tmp_path / "o.avif")])
    assert r.exit_code == 4
    assert r.output.strip() == (f"smile: error: {fake}: a video (MP4/QuickTime), not a photo; Smile takes videos by their "
                                "name (.mp4 .m4v .mov .mkv .webm .avi): rename it")
    assert fake.read_bytes() == before and not (tmp_path / "o.avif").exists()


def test_heif_image_sequence_without_a_still_photo_is_one_line(tmp_path, astronaut):
    seq = tmp_path / "burst.heic"
    try:
        _video(seq, astronaut, "libx265", brand="msf1")  # HEVC frames in a track, no still item: a HEIF sequence
    except Exception as exc:  # (a PyAV without x265)
        pytest.skip(f"PyAV cannot write HEVC here: {exc}")
    r = CliRunner().invoke(cli, [str(seq), "-o", str(tmp_path / "o.jpg")])
    assert r.exit_code == 4
    assert "an image sequence" in r.output and "no still photo" in r.output and "corrupt" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_read_problem_names_only_heif_photos_without_pillow_heif(tmp_path, monkeypatch, astronaut, icc):
    photo = tmp_path / "a.heic"
    _write_sideways(photo, astronaut, icc)
    jpeg = tmp_path / "b.heic"
    Image.fromarray(astronaut).save(jpeg, format="JPEG")
    assert heif.read_problem(photo) is None  # installed
    monkeypatch.setattr(heif, "_register", lambda: False)  # as without pillow-heif
    assert heif.read_problem(photo) == f"{photo}: a HEIF (HEIC) photo; reading it needs pillow-heif: {heif.INSTALL}"
    assert heif.read_problem(jpeg) is None  # JPEG bytes: readable, whatever the name


def test_without_pillow_heif_a_mixed_folder_still_smiles_its_jpegs(tmp_path, astronaut, icc):
    folder = tmp_path / "camera"
    folder.mkdir()
    for name in ("a.jpg", "c.jpg"):
        Image.fromarray(astronaut).save(folder / name, quality=92)
    _write_sideways(folder / "b.heic", astronaut, icc)
    r = _run_without_pillow_heif(tmp_path, "camera", "--out-dir", "out", "--strength", "2", "-j", "1")
    assert r.returncode == 4, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("smile: error: ")]
    assert errors == [f"smile: error: camera/b.heic: a HEIF (HEIC) photo; reading it needs pillow-heif: {heif.INSTALL}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.smile.jpg", "c.smile.jpg"]


def test_detect_and_worker_read_and_write_heic(tmp_path, astronaut, icc, fixture_models):
    import io
    import json

    from smile_cli.bridge.worker import WorkerSession, serve

    src = tmp_path / "IMG_0003.heic"
    _write_sideways(src, astronaut, icc)
    r = CliRunner().invoke(cli, ["detect", "--json", str(src)])
    assert r.exit_code == 0, r.output
    (entry,) = json.loads(r.stdout)
    assert entry["error"] is None and len(entry["faces"]) == 1

    session = WorkerSession(str(fixture_models["shift"]))
    session.load_model()
    out, mask = tmp_path / "out.heic", tmp_path / "mask.png"
    requests = [{"id": 1, "cmd": "detect", "input": str(src)},
                {"id": 2, "cmd": "smile", "input": str(src), "output": str(out), "mask_output": str(mask)},
                {"id": 3, "cmd": "smile", "input": str(tmp_path / "missing.heic"), "output": str(tmp_path / "x.heic")}]
    replies = io.BytesIO()
    assert serve(session, io.BytesIO(b"".join(json.dumps(q).encode() + b"\n" for q in requests)), replies) == 0
    _greeting, detected, smiled, missing = (json.loads(line) for line in replies.getvalue().splitlines())
    assert detected["ok"] and detected["size"] == [512, 512] and len(detected["faces"]) == 1
    assert smiled["ok"] and smiled["faces"][0]["edited"], smiled
    with Image.open(out) as im:
        assert im.format == "HEIF" and im.size == (512, 512) and im.getexif().get(0x010F) == "PhoneCam"
    assert Image.open(mask).size == (512, 512)
    assert not missing["ok"] and missing["error"]["code"] == "bad_input"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_heic_result_into_a_read_only_folder_is_exit_7(tmp_path, astronaut, icc):
    src = tmp_path / "p.heic"
    _write_sideways(src, astronaut, icc)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = CliRunner().invoke(cli, [str(src), "-o", str(locked / "out.heic")])
        assert r.exit_code == 7 and "Permission denied" in r.output
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@needs_avif
def test_ten_bit_avif_is_read_with_a_note(tmp_path, astronaut):
    """Pillow cannot write one: FFmpeg's AVIF muxer (PyAV) with SVT-AV1 can."""
    av = pytest.importorskip("av", reason='needs PyAV (pip install ".[video]")')
    path = tmp_path / "ten.avif"
    try:
        with av.open(str(path), "w", format="avif") as out:
            stream = out.add_stream("libsvtav1", rate=1)
            stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p10le"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(astronaut[::2, ::2]), format="rgb24")
            out.mux(stream.encode(frame.reformat(format="yuv420p10le")))
            out.mux(stream.encode())
    except Exception as exc:
        pytest.skip(f"PyAV cannot write a 10-bit AVIF here: {exc}")
    image, info = load_image(path)
    assert info.format == "AVIF" and np.asarray(image).dtype == np.uint8 and info.size == (256, 256)
    assert info.notes == [f"{path}: a 10-bit AVIF photo, read as 8 bits per sample"]


def test_a_heif_colour_description_without_a_profile_is_kept_or_said_lost(tmp_path, astronaut):
    """A phone's Display P3 photo described by an nclx box (no ICC profile): before, the result was BT.709, silently."""
    heif.require("src.heic")
    src = tmp_path / "p3.heic"
    Image.fromarray(astronaut).save(src, quality=90, color_primaries=12, transfer_characteristics=13,
                                    matrix_coefficients=6, full_range_flag=1)
    r = CliRunner().invoke(cli, [str(src), "-s", "2", "-o", str(tmp_path / "out.heic")])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out.heic") as out:
        nclx = out.info.get("nclx_profile") or {}
        assert (nclx.get("color_primaries"), nclx.get("transfer_characteristics")) == (12, 13)
    r = CliRunner().invoke(cli, [str(src), "-s", "2", "-o", str(tmp_path / "out.jpg")])
    assert r.exit_code == 0 and "the HEIF's colour space (nclx: primaries 12, transfer 13) cannot go into JPEG" in r.output
    r = CliRunner().invoke(cli, [str(src), "-s", "2", "-o", str(tmp_path / "out.tif")])  # (its settings kept)
    assert r.exit_code == 0 and "cannot go into TIFF" in r.output
    with Image.open(tmp_path / "out.tif") as out:
        assert out.info["compression"] != "raw"


def test_a_phone_heif_turned_by_its_box_gives_the_upright_size_in_exif(tmp_path, astronaut):
    """pillow-heif turns a phone's HEIF by its own rotation box and says orientation 1: the EXIF's pixel size,
    the stored one, was kept as it was, naming the width the height."""
    heif.require("src.heic")
    stored = np.ascontiguousarray(np.rot90(astronaut[:, 56:456], 1))  # (400 wide upright: stored on its side)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8769] = {0xA002: stored.shape[1], 0xA003: stored.shape[0]}
    src = tmp_path / "phone.heic"
    Image.fromarray(stored).save(src, quality=90, exif=exif.tobytes())
    r = CliRunner().invoke(cli, [str(src), "-s", "2", "-o", str(tmp_path / "out.jpg")])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out.jpg") as out:
        sub = out.getexif().get_ifd(0x8769)
        assert (sub[0xA002], sub[0xA003]) == out.size and out.size[0] < out.size[1]
