"""`smile PHOTO...` through click's CliRunner: outputs, inputs untouched, exit codes, --json."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from smile_cli.main import cli


@pytest.fixture
def shift_model(fixture_models, monkeypatch) -> Path:
    """Use the fixture model that moves pixels by 4 crop px (so edited faces visibly change)."""
    monkeypatch.setenv("SMILE_MODEL", str(fixture_models["shift"]))
    return fixture_models["shift"]


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    p = tmp_path / "wall.png"
    y, x = np.mgrid[0:120, 0:160]
    Image.fromarray(np.stack([x, y, x + y], -1).astype(np.uint8)).save(p)
    return p


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def one_line_error(result, *needles: str) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("smile: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------------------- success paths


def test_default_output_next_to_photo(shift_model, photo: Path, astronaut):
    before = snapshot(photo)
    r = run(photo)
    assert r.exit_code == 0, r.stderr
    out = photo.with_name("astro.smile.png")
    assert out.is_file()
    assert snapshot(photo) == before  # input untouched: bytes and mtime
    got = np.asarray(Image.open(out))
    assert got.shape == astronaut.shape
    diff = np.abs(got.astype(int) - astronaut.astype(int)).sum(-1)
    assert diff[76:167, 175:266].sum() > 0  # the face (box from dlib) changed ...
    assert diff[:40].sum() == 0 and diff[:, :100].sum() == 0  # ... far away nothing did
    assert "astro.smile.png" in r.stdout and "1 of 1 face smiled" in r.stdout


def test_explicit_output_picks_format_from_extension(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "-o", tmp_path / "result.jpg", "--quality", "90")
    assert r.exit_code == 0, r.stderr
    with Image.open(tmp_path / "result.jpg") as im:
        assert im.format == "JPEG" and im.size == (512, 512)


def test_out_dir_suffix_and_ext(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "--out-dir", tmp_path / "made" / "here", "--suffix", "-happy", "--ext", "webp")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "made" / "here" / "astro-happy.webp"
    assert Image.open(out).format == "WEBP"


def test_in_place_overwrites_only_when_asked(shift_model, photo: Path, tmp_path: Path):
    original = photo.read_bytes()
    r = run(photo, "-o", photo)
    assert r.exit_code == 2
    one_line_error(r, "never overwrites inputs", "--in-place")
    assert photo.read_bytes() == original
    r = run(photo, "--in-place")
    assert r.exit_code == 0, r.stderr
    assert photo.read_bytes() != original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astro.png"]  # nothing else written


def test_strength_zero_leaves_pixels(shift_model, photo: Path, astronaut):
    r = run(photo, "--strength", "0")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(photo.with_name("astro.smile.png"))), astronaut)


def test_strength_is_a_plain_number_and_a_negative_one_says_less(shift_model, photo: Path, tmp_path: Path):
    """Python's float reads "1_0" as ten and "\u0662" as two: a strength must be written plainly. A negative
    strength takes smile away, and the line says so."""
    for text in ("1_0", "\u0662", "0:0,1_0:2"):
        r = run(photo, "--strength", text, "-o", tmp_path / "x.png")
        assert r.exit_code == 2
        one_line_error(r, "--strength", repr(text) if ":" not in text else "is not SECONDS:STRENGTH")
    assert not (tmp_path / "x.png").exists()
    r = run(photo, "--strength", "-1", "-o", tmp_path / "less.png")
    assert r.exit_code == 0, r.stderr
    assert "1 of 1 face smiled less" in r.stdout and (tmp_path / "less.png").is_file()
    twin = tmp_path / "twin.png"
    twin.write_bytes(photo.read_bytes())
    r = run(photo, twin, "--strength", "-1", "--out-dir", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert "2 photos: 2 smiled less, 0 unchanged, 0 failed" in r.stderr + r.stdout


def test_options_a_photo_cannot_use_are_named_not_silently_dropped(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "-o", tmp_path / "a.png", "--quality", "80")
    assert r.exit_code == 0 and r.stderr.count("smile: note: --quality 80 not used: PNG is lossless") == 1
    r = run(photo, "-o", tmp_path / "b.jpg", "--quality", "80")
    assert r.exit_code == 0 and "not used" not in r.stdout + r.stderr
    r = run(photo, "-o", tmp_path / "c.jpg", "--crf", "20", "--preset", "slow", "--codec", "h264")
    assert r.exit_code == 0
    assert "smile: note: --crf, --codec and --preset apply to videos; no input is one, so ignored" in r.stderr
    r = run(photo, "-o", tmp_path / "d.jpg", "--codec", "vp9", "--quiet")
    assert r.exit_code == 0 and r.stderr == "" and (tmp_path / "d.jpg").is_file()
    r = run(tmp_path / "missing.mp4", "--crf", "20")  # a video that is not there is still a video
    assert r.exit_code == 4 and "applies to videos" not in r.stderr
    r = run(photo, "-o", tmp_path / "e.jpg", "--ray-actors", "2", "-j", "1")
    assert r.exit_code == 0 and "smile: note: --ray-actors applies with --ray (a Ray cluster); without it, so ignored" in r.stderr


def test_json_report_schema(shift_model, photo: Path, blank: Path):
    r = run(photo, blank, "--json", "--strength", "1.5")
    assert r.exit_code == 3  # the first failure: no face in the wall
    doc = json.loads(r.stdout)  # stdout holds the JSON document only
    assert doc["schema"] == 1 and doc["strength"] == 1.5
    assert doc["model"]["name"] == "fixture"
    ok, bad = doc["photos"]
    assert ok["status"] == "ok" and ok["input"] == str(photo)
    assert ok["output"] == str(photo.with_name("astro.smile.png"))
    assert ok["faces_found"] == 1 and ok["faces_edited"] == 1
    face = ok["faces"][0]
    assert set(face) >= {"index", "box", "score", "edited", "reason"}
    x0, y0, x1, y1 = face["box"]
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    assert ok["size"] == [512, 512] and ok["seconds"] > 0 and "detect" in ok["timings"]
    assert ok["error"] is None and ok["strength"] == 1.5
    assert bad["status"] == "failed" and bad["output"] is None
    assert bad["error"]["code"] == "no_face" and bad["error"]["exit_code"] == 3
    assert "wall.png" in bad["error"]["message"]
    assert doc["summary"] == {"total": 2, "ok": 1, "already_smiling": 0, "unchanged": 0, "failed": 1, "exit_code": 3}
    assert not blank.with_name("wall.smile.png").exists()


def test_folder_batch_skips_earlier_results(shift_model, photo: Path, blank: Path, tmp_path: Path):
    (tmp_path / "old.smile.png").write_bytes(photo.read_bytes())
    (tmp_path / "readme.txt").write_text("not a photo")
    r = run(tmp_path, "--keep-unchanged", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [Path(p["input"]).name for p in doc["photos"]] == ["astro.png", "wall.png"]
    assert [p["status"] for p in doc["photos"]] == ["ok", "unchanged"]
    # unchanged photos are copied byte for byte
    assert blank.with_name("wall.smile.png").read_bytes() == blank.read_bytes()
    assert "%|" not in r.stderr  # no progress bar when stderr is not a terminal


def test_glob_pattern_is_expanded(shift_model, photo: Path, blank: Path, tmp_path: Path):
    r = run(str(tmp_path / "wa*.png"), "--keep-unchanged", "-q")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "wall.smile.png").is_file()
    assert not (tmp_path / "astro.smile.png").exists()


def test_debug_folder_has_crops_masks_and_flow(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "--debug", tmp_path / "dbg")
    assert r.exit_code == 0, r.stderr
    folder = tmp_path / "dbg" / "001-astro"
    names = {p.name for p in folder.iterdir()}
    assert {"faces.png", "change-mask.png", "face0-crop.png", "face0-output.png", "face0-mask.png",
            "face0-flow.png", "faces.json"} <= names
    assert Image.open(folder / "face0-crop.png").size == (256, 256)
    meta = json.loads((folder / "faces.json").read_text())
    assert meta["faces"][0]["max_flow_px"] == pytest.approx(4.0, abs=1e-3)
    mask = np.asarray(Image.open(folder / "change-mask.png"))
    assert mask.shape == (512, 512) and mask.max() == 255 and mask[0, 0] == 0


def test_the_debug_output_crop_has_the_shade_the_engine_applies():
    """Model contract 2: the kept pixels are shaded. Before, face<i>-output.png left the shade out."""
    from types import SimpleNamespace

    from smile_cli.debug_dump import _edited_crop

    crop = np.full((8, 8, 3), 100, np.uint8)
    net = SimpleNamespace(rgb=np.zeros((1, 3, 8, 8), np.float32), mask=np.zeros((1, 1, 8, 8), np.float32),
                          flow=np.zeros((1, 2, 8, 8), np.float32), shade=np.full((1, 1, 8, 8), 0.2, np.float32))
    edited, _, _ = _edited_crop(crop, net)
    assert edited.min() == edited.max() == round((100 + 8) * np.exp(0.2) - 8)  # (contract 2's offset: 8 levels)
    net.shade = None  # (contract 1: the warp alone)
    assert _edited_crop(crop, net)[0].max() == 100


def test_detect_lists_faces(photo: Path):
    r = run("detect", photo, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc[0]["faces"][0]["index"] == 0 and len(doc[0]["faces"][0]["box"]) == 4


# ---------------------------------------------------------------------------- failures


def test_no_face_is_exit_3_with_a_clear_message(shift_model, blank: Path, tmp_path: Path):
    before = snapshot(blank)
    r = run(blank)
    assert r.exit_code == 3
    one_line_error(r, "wall.png", "no face found", "--keep-unchanged")
    assert snapshot(blank) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]


def test_keep_unchanged_copies_and_succeeds(shift_model, blank: Path):
    r = run(blank, "--keep-unchanged")
    assert r.exit_code == 0, r.stderr
    assert blank.with_name("wall.smile.png").read_bytes() == blank.read_bytes()


@pytest.mark.parametrize(
    "content, name, code, words",
    [
        (b"hello, I am text\n", "text.jpg", 4, "not an image"),
        (None, "missing.jpg", 4, "no such file"),
        ("truncated", "cut.jpg", 4, "corrupt or truncated"),
        ("bomb", "bomb.png", 5, "limit"),
    ],
)
def test_bad_files(shift_model, tmp_path: Path, astronaut, content, name, code, words):
    p = tmp_path / name
    if content == "truncated":
        full = tmp_path / "full.jpg"
        Image.fromarray(astronaut).save(full)
        p.write_bytes(full.read_bytes()[:5000])
        full.unlink()
    elif content == "bomb":
        from test_imageio import _png_header_only

        p.write_bytes(_png_header_only(20000, 20000))
    elif content is not None:
        p.write_bytes(content)
    before = {q.name: snapshot(q) for q in tmp_path.iterdir()}
    r = run(p)
    assert r.exit_code == code
    one_line_error(r, name, words)
    assert {q.name: snapshot(q) for q in tmp_path.iterdir()} == before  # untouched, nothing left behind


def test_odd_colour_mode(shift_model, tmp_path: Path):
    p = tmp_path / "float.tif"
    Image.fromarray(np.zeros((8, 8), np.float32), "F").save(p)
    r = run(p)
    assert r.exit_code == 4
    one_line_error(r, "float.tif", "colour mode F")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--strength", "lots"], "--strength"),
        (["--strength", "nan"], "finite"),
        (["--strength", "99"], "outside this model's range"),
        (["--faces", "second"], "--faces"),
        (["--min-face", "0"], "--min-face"),
        (["-o", "out.xyz"], ".xyz"),
        (["--ext", "gif"], "--ext gif"),
        (["--suffix", ""], "--suffix"),
        (["--in-place", "--suffix", ".x"], "--suffix names new files next to the photos, but --in-place replaces"),
        (["--suffix", ".x", "-o", "out.png"], "--suffix names results after their photos, but -o names the result itself"),
        (["-o", "noext"], "noext: has no file extension; name the output with one Smile can write (.avif, .bmp, "),
        (["-o", "new/"], "-o new/ ends in a slash, as a folder's name does; name the file without it, or use --out-dir new/ to "
         "write into that folder"),  # (was:
        # "new: has no file extension")
        (["--bogus"], "--bogus"),
        (["--ray", ""], "Invalid value for '--ray': an address is needed: auto, local or ray://HOST:10001"),  # (was:
        # run here, without Ray, as if no --ray were given)
    ],
)
def test_bad_options_exit_2_in_one_line(shift_model, photo: Path, tmp_path: Path, args, words):
    r = run(photo, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    one_line_error(r, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astro.png"]


def test_output_with_several_photos_is_refused(shift_model, photo: Path, blank: Path, tmp_path: Path):
    r = run(photo, blank, "-o", tmp_path / "x.png")
    assert r.exit_code == 2
    one_line_error(r, "--out-dir")


def test_face_index_that_does_not_exist(shift_model, photo: Path):
    r = run(photo, "--faces", "0,5")
    assert r.exit_code == 2
    one_line_error(r, "astro.png", "face index 5")


def test_missing_model_is_exit_6(photo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "gone.onnx"))
    r = run(photo)
    assert r.exit_code == 6
    one_line_error(r, "gone.onnx")
    assert not photo.with_name("astro.smile.png").exists()


def test_unwritable_output_is_exit_7(shift_model, photo: Path, tmp_path: Path):
    out = tmp_path / "out"
    (out / "astro.smile.png").mkdir(parents=True)  # a folder where the result should go
    r = run(photo, "--out-dir", out)
    assert r.exit_code == 7
    one_line_error(r, "astro.smile.png", "could not write")
    assert [p.name for p in out.iterdir()] == ["astro.smile.png"]  # no temporary file left


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a folder no file can be created in)")
def test_a_folder_that_takes_no_file_names_the_reason_not_the_temporary_file(shift_model, photo: Path):
    r = run(photo, "-o", "/proc/x.png")
    assert r.exit_code == 7
    one_line_error(r, "/proc/x.png: cannot write in /proc (")
    assert "smile-tmp" not in r.stderr and "Errno" not in r.stderr, r.stderr


def test_version_and_help():
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("smile ")
    r = run("--help")
    assert r.exit_code == 0
    assert "Examples:" in r.stdout and "Exit status:" in r.stdout
    for cmd in ("run", "detect", "models", "install-plugin", "worker"):
        assert cmd in r.stdout
    r = run("run", "--help")
    assert r.exit_code == 0 and "--keep-unchanged" in r.stdout and "--json" in r.stdout


def test_exif_rotated_photo_is_processed_upright(shift_model, tmp_path: Path, astronaut):
    ex = Image.Exif()
    ex[0x0112] = 6  # "rotate 90° clockwise to display"
    src = tmp_path / "sideways.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1))).save(src, exif=ex.tobytes())
    r = run(src, "--strength", "0", "--json")
    assert r.exit_code == 0, r.stderr  # the face is only found when the photo is upright
    out = Image.open(tmp_path / "sideways.smile.png")
    assert out.getexif().get(0x0112) in (None, 1)
    np.testing.assert_array_equal(np.asarray(out), astronaut)


def test_selection_limits_the_change(shift_model, photo: Path, tmp_path: Path, astronaut):
    sel = np.zeros((512, 512), np.uint8)
    sel[:130] = 255  # only the top of the face (its centre is near y = 121) may change
    Image.fromarray(sel, "L").save(tmp_path / "sel.png")
    r = run(photo, "--selection", tmp_path / "sel.png", "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.stderr
    changed = np.abs(np.asarray(Image.open(tmp_path / "out.png")).astype(int) - astronaut.astype(int)).sum(-1) > 0
    assert changed[:130].any() and not changed[130:].any()


def test_summary_counts_photos_already_smiling_apart(tmp_path: Path, smiling, astronaut, shift_model):
    Image.fromarray(smiling).save(tmp_path / "a_smiling.png")
    Image.fromarray(astronaut).save(tmp_path / "b_neutral.png")
    r = run(tmp_path / "a_smiling.png", tmp_path / "b_neutral.png", "--out-dir", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert "0 of 1 face smiled, 1 already smiling as much" in r.stdout and "1 of 1 face smiled" in r.stdout
    assert "2 photos: 1 smiled, 1 already smiling as much, 0 unchanged, 0 failed" in r.stderr + r.stdout
    r = run(tmp_path / "a_smiling.png", tmp_path / "b_neutral.png", "--out-dir", tmp_path / "out2", "--json")
    assert json.loads(r.stdout)["summary"] == {"total": 2, "ok": 2, "already_smiling": 1, "unchanged": 0, "failed": 0,
                                               "exit_code": 0}


def test_errors_say_which_file_is_the_selection_mask_and_what_lacks_an_extension(shift_model, photo: Path,
                                                                                   tmp_path: Path):
    missing = tmp_path / "missing.png"
    r = run(photo, "--selection", missing, "-o", tmp_path / "out.png")
    assert r.exit_code == 4
    assert one_line_error(r) == f"smile: error: {missing} (the --selection mask): no such file"
    (tmp_path / "notes.png").write_text("not a mask")
    r = run(photo, "--selection", tmp_path / "notes.png", "-o", tmp_path / "out.png")
    assert r.exit_code == 4
    one_line_error(r, f"{tmp_path / 'notes.png'} (the --selection mask): not an image")
    Image.new("L", (100, 100), 255).save(tmp_path / "small.png")  # a mask of another size
    r = run(photo, "--selection", tmp_path / "small.png", "-o", tmp_path / "out.png")
    assert r.exit_code == 2
    one_line_error(r, "the --selection mask is 100x100, the photo 512x512")
    assert "(H,W) array" not in r.stderr and not (tmp_path / "out.png").exists()
    (tmp_path / "small.png").unlink()
    scan = tmp_path / "scan"  # a photo named without an extension: NAME.smile would have none either
    scan.write_bytes(photo.read_bytes())
    r = run(scan, "--out-dir", tmp_path / "out")
    assert r.exit_code == 2
    assert one_line_error(r) == (f"smile: error: {scan}: has no file extension, so its result would have none "
                                 "either; choose one with --ext, e.g. --ext png")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["astro.png", "notes.png", "scan"]
    r = run(scan, "--suffix", ".smile.png")  # a suffix that ends in an extension names the format
    assert r.exit_code == 0, r.stderr
    assert Image.open(tmp_path / "scan.smile.png").format == "PNG"


def test_the_summary_line_counts_videos_as_videos():
    from smile_cli import report as rep

    def done(name, status=rep.STATUS_OK):
        return rep.PhotoReport(input=Path(name), status=status, faces=[{"edited": True}])

    assert rep.summary_line([done("a.jpg"), done("b.png")]).startswith("2 photos: 2 smiled, ")
    assert rep.summary_line([done("a.jpg"), done("c.MP4"), done("d.mkv", rep.STATUS_FAILED)]) == \
        "1 photo and 2 videos: 2 smiled, 0 unchanged, 1 failed"
    assert rep.summary_line([done("c.webm")]).startswith("1 video: 1 smiled")
    assert rep.summary_line([]).startswith("0 photos: ")


def test_an_output_under_a_file_says_the_file_is_not_a_folder(shift_model, photo: Path, tmp_path: Path):
    # before: "folder astro.png does not exist", though it does, as a file
    r = run(photo, "-o", tmp_path / "astro.png" / "x.png")
    assert r.exit_code == 2
    one_line_error(r, f"{tmp_path / 'astro.png'} is a file, not a folder")


def test_a_face_index_that_does_not_exist_lists_the_faces_there_are(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "--faces", "3", "-o", tmp_path / "x.png", "--json")
    entry = json.loads(r.stdout)["photos"][0]
    assert r.exit_code == 2 and entry["faces_found"] == 1 and entry["faces"][0]["index"] == 0
    assert entry["error"]["message"].endswith("face index 3 does not exist: 1 face(s) found (indices start at 0)")


@pytest.mark.parametrize("bad", [["-s", "9"], ["--faces", "3"], ["--selection", "missing.png"]])
def test_a_refused_run_leaves_no_out_dir_or_debug_folder_behind(shift_model, photo: Path, tmp_path: Path, bad):
    """Before: the folders were made before the strength, the faces or the selection were checked, and left empty."""
    r = run(photo, "--out-dir", tmp_path / "new" / "out", "--debug", tmp_path / "dbg", *bad)
    assert r.exit_code in (2, 4), r.output
    assert not (tmp_path / "new").exists() and not (tmp_path / "dbg").exists()
    r = run(photo, "--out-dir", tmp_path / "new" / "out")  # (and a run that works keeps them)
    assert r.exit_code == 0 and (tmp_path / "new" / "out" / "astro.smile.png").is_file(), r.output


def test_a_bad_value_typed_on_the_command_line_does_not_blame_the_environment(photo: Path, monkeypatch):
    monkeypatch.delenv("SMILE_MAX_PIXELS", raising=False)
    r = run(photo, "--max-pixels", "0")
    assert r.exit_code == 2 and "Invalid value for '--max-pixels': '0' is not a number of pixels" in r.stderr, r.stderr
    monkeypatch.setenv("SMILE_MAX_PIXELS", "0")  # (where the variable gave it, it is named)
    r = run(photo)
    assert r.exit_code == 2 and "'--max-pixels' (env var: 'SMILE_MAX_PIXELS')" in r.stderr, r.stderr


def test_a_mistyped_command_is_refused_not_run_as_a_batch(tmp_path: Path, monkeypatch):
    """Before: 'smile model list' ran as a batch of two missing photos (exit 4, '2 photos: 2 failed')."""
    monkeypatch.chdir(tmp_path)
    r = run("model", "list")
    assert r.exit_code == 2 and "no command and no file called 'model': did you mean 'smile models'?" in r.stderr
    assert "2 failed" not in r.stderr


def test_a_photo_named_with_a_leading_dash_is_told_how_to_give_it(shift_model, photo: Path, tmp_path: Path,
                                                                     monkeypatch):
    """Before: only "No such option '-d'" (click reads -dash.jpg as the options -d -a -s -h...)."""
    monkeypatch.chdir(tmp_path)
    photo.rename(tmp_path / "-dash.jpg")
    for args in (["-dash.jpg"], ["detect", "-dash.jpg"], ["-dash.jpg", "-o", "x.png"]):
        r = run(*args)
        assert r.exit_code == 2, r.stderr
        one_line_error(r, "No such option '-d'. To read the file -dash.jpg, write ./-dash.jpg or give it after --.")
    (tmp_path / "-sun.jpg").write_bytes((tmp_path / "-dash.jpg").read_bytes())  # (read as -s un.jpg, a strength)
    for args, line in ((["-sun.jpg"], "Invalid value for '-s' / '--strength': 'un.jpg' is not a number"),
                       (["-sun.jpg", "-s", "0"], "Missing argument 'PHOTO...'.")):
        r = run(*args)
        assert r.exit_code == 2, r.stderr
        one_line_error(r, line, ". To read the file -sun.jpg, write ./-sun.jpg or give it after --.")
    for args in (["./-dash.jpg", "-x"], ["./-dash.jpg", "-o", "-sun.jpg", "-x"]):  # (no file read as options: no
        r = run(*args)  # hint, even where an option's value is a file's name)
        assert r.exit_code == 2 and "To read the file" not in r.stderr, r.stderr
    assert run("--", "-dash.jpg").exit_code == 0 and (tmp_path / "-dash.smile.jpg").is_file()
    assert run("./-dash.jpg", "-o", "x.png").exit_code == 0 and (tmp_path / "x.png").is_file()


def test_a_short_option_given_with_equals_is_refused(shift_model, photo: Path, tmp_path: Path, monkeypatch):
    """Before: '-o=out.png' wrote a file named '=out.png', and '-s=2' said ''=2' is not a number'."""
    monkeypatch.chdir(tmp_path)
    for args, line in (([photo.name, "-o=out.png"], "-o=out.png: a short option takes its value after a space: "
                                                    "-o out.png (or --output=out.png)"),
                       ([photo.name, "-s=2"], "-s=2: a short option takes its value after a space: -s 2 (or --strength=2)"),
                       (["detect", photo.name, "-j=2"], None)):  # (no such option for detect: click's own line)
        r = run(*args)
        assert r.exit_code == 2, r.stderr
        if line is not None:
            one_line_error(r, line, " run --help')")  # (the command's own help, as for its other mistakes)
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo.name]
    assert run(photo.name, "--output=out.png").exit_code == 0 and (tmp_path / "out.png").is_file()
    assert run(photo.name, "--suffix", "-s=x").exit_code == 0  # (an option's value is not an option)
    assert (tmp_path / f"{photo.stem}-s=x{photo.suffix}").is_file()
