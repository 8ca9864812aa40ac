"""Issue #9: hostile and unusual inputs never crash Smile or lose a pixel.

Every file of the generated corpus (tests/corpus.py, written by tests/corpus_run.py) goes
through the library (``load_image`` + ``smile`` + ``save_image``), the CLI in-process (click's
CliRunner) and the CLI as a real process.  Each must end in either a faithful result (size,
mode, bit depth, alpha, orientation, ICC and EXIF as promised; pixels outside the edited face
regions untouched) or a one-line error that names the file, with the documented exit status;
never a traceback.  Inputs keep their bytes and mtime, and a failure leaves no output or
temporary file behind.

Also here: failures while writing.  The pixel limit and bounded memory are in test_limits.py,
weights safety in test_model_safety.py, hostile command lines and worker requests in
test_hostile_requests.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import smilecore
from corpus import EXIF_MAKE, EXIT_FOR, MAKE_VALUE, Case
from corpus_run import (BY_NAME, CASES, CORPUS, PROCESS_TIMEOUT, assert_input_unchanged, assert_one_line, copy_case,
                        invoke, leftovers, snapshot, stderr_lines_ok)
from smilecore.errors import EXIT_CODES, SmileError
from smilecore.decode import load_image
from smilecore.encode import save_image

LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}
#: Formats whose alpha plane is coded lossily too (AVIF and HEIF: by the AV1 / HEVC encoder).
LOSSY_ALPHA = {".avif", ".heic", ".heif", ".hif"}


# --------------------------------------------------------------------------- checks of a result


def _array(img, mode: str | None = None) -> np.ndarray:
    """Pixels as an (H,W,C) array; a PIL image is first converted to ``mode`` if given."""
    if isinstance(img, np.ndarray):
        a = img
    else:
        a = np.asarray(img if mode is None or img.mode == mode else img.convert(mode))
    return a[:, :, None] if a.ndim == 2 else a


def _alpha(img) -> np.ndarray | None:
    if isinstance(img, np.ndarray):
        return img[:, :, -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "RGB", "L") and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))[:, :, 3]
    return None


def _mode_of(img) -> str:
    if isinstance(img, np.ndarray):
        ch = 1 if img.ndim == 2 else img.shape[2]
        base = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[ch]
        return base + (";16" if img.dtype == np.uint16 else "")
    return img.mode


def check_result(case: Case, image, result) -> None:
    """``result`` of smile(image): same kind, size, mode, depth; untouched outside the mask; alpha kept."""
    out = result.image
    assert type(out) is type(image) or (isinstance(out, Image.Image) and isinstance(image, Image.Image))
    if isinstance(image, np.ndarray):
        assert out.dtype == image.dtype and out.shape == image.shape
    else:
        assert out.size == image.size
        assert out.mode in case.modes, f"{case.name}: result mode {out.mode}, expected one of {case.modes}"
    h, w = _array(out).shape[:2]
    assert (w, h) == case.size
    mask = result.mask
    assert mask.shape == (h, w) and mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
    edited = [f for f in result.faces if f.edited]
    assert len(edited) >= case.min_edited, f"{case.name}: {len(edited)} face(s) edited, expected >= {case.min_edited}"
    mode = None if isinstance(out, np.ndarray) else out.mode
    a_in, a_out = _array(image, mode), _array(out)
    outside = mask == 0
    assert outside.any() and np.array_equal(a_in[outside], a_out[outside]), f"{case.name}: pixels outside the faces changed"
    assert not np.array_equal(a_in, a_out), f"{case.name}: the shift model changed nothing"
    if case.alpha:
        al_in, al_out = _alpha(image), _alpha(out)
        assert al_out is not None, f"{case.name}: alpha channel lost"
        assert np.array_equal(al_in, al_out), f"{case.name}: alpha changed"


def check_output_file(case: Case, out: Path, image, mask: np.ndarray) -> None:
    """A written result: size, mode, depth, alpha, ICC, EXIF as promised; pixels outside ``mask`` kept."""
    got, info = load_image(out)
    assert info.size == case.size, f"{out.name}: size {info.size}, expected {case.size}"
    assert info.mode in case.modes, f"{out.name}: mode {info.mode}, expected one of {case.modes}"
    assert info.bit_depth == case.depth, f"{out.name}: {info.bit_depth}-bit, expected {case.depth}-bit"
    with Image.open(out) as raw:
        exif = raw.getexif()
        assert exif.get(0x0112, 1) == 1, f"{out.name}: EXIF orientation {exif.get(0x0112)} left in an upright result"
        if case.exif_make:
            assert exif.get(EXIF_MAKE) == MAKE_VALUE, f"{out.name}: EXIF lost"
    if case.icc is not None:
        assert info.icc_profile == case.icc, f"{out.name}: ICC profile lost or changed"
    if case.alpha:
        assert _alpha(got) is not None, f"{out.name}: alpha channel lost"
        if out.suffix.lower() in LOSSY_ALPHA:  # re-encoded: close, not equal
            drift = np.abs(_alpha(got).astype(int) - _alpha(image)).max()
            assert drift <= 4, f"{out.name}: alpha drifted by {drift}"
        else:
            assert np.array_equal(_alpha(got), _alpha(image)), f"{out.name}: alpha changed"
    mode = None if isinstance(got, np.ndarray) else got.mode
    a_in, a_out = _array(image, mode).astype(np.int32), _array(got).astype(np.int32)
    assert a_in.shape == a_out.shape
    outside = mask == 0
    if out.suffix.lower() in LOSSLESS:
        assert np.array_equal(a_in[outside], a_out[outside]), f"{out.name}: pixels outside the faces changed"
    else:  # re-encoded with the source's own tables: close, not equal
        diff = np.abs(a_in[outside] - a_out[outside]).mean()
        assert diff < 3.0 * (257 if case.depth == 16 else 1), f"{out.name}: pixels outside the faces drifted ({diff:.2f})"


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_big_and_varied():
    assert len(CASES) >= 25
    kinds = {c.expect for c in CASES}
    assert kinds >= {"ok", "ok_or_no_face", "no_face", "bad_input", "too_large"}
    assert all(os.path.getsize(CORPUS / c.name) < 2_000_000 for c in CASES)  # the bombs are small files


def _check_library(case: Case, model, folder: Path, seen: dict) -> None:
    """load_image + smile + save_image: a faithful result or a one-line SmileError naming the file."""
    path = CORPUS / case.name
    try:
        image, info = load_image(path)
    except SmileError as exc:
        assert exc.code in case.may_fail_with, f"{case.name}: refused with {exc.code} ({exc}), expected {case.expect}"
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        assert_one_line(str(exc))
        assert_input_unchanged(case)
        return
    assert case.expect not in ("bad_input", "too_large"), f"{case.name} was read, but must be refused ({case.expect})"
    assert info.size == case.size if case.size else True
    try:
        result = smilecore.smile(image, model=model)
    except SmileError as exc:
        assert exc.code in case.may_fail_with, f"{case.name}: {exc.code} ({exc}), expected {case.expect}"
        assert_one_line(str(exc))
        assert_input_unchanged(case)
        return
    seen.update(image=image, result=result)
    assert case.may_succeed, f"{case.name}: smiled, but expected {case.expect}"
    check_result(case, image, result)
    folder.mkdir()
    out = folder / ("result" + Path(case.name).suffix)
    save_image(out, result.image, info)
    check_output_file(case, out, image, result.mask)
    assert leftovers(folder) == []
    assert_input_unchanged(case)


def _check_cli(case: Case, shift: Path, folder: Path, seen: dict) -> None:
    """``smile PHOTO --out-dir D --json`` in-process: exit status, report, output file, no leftovers."""
    res = invoke([str(CORPUS / case.name), "--out-dir", str(folder), "--model", str(shift), "--json"])
    stderr_lines_ok(res.stderr)
    doc = json.loads(res.stdout)
    (photo,) = doc["photos"]
    assert_input_unchanged(case)
    assert leftovers(folder) == [] and leftovers(CORPUS) == []
    if photo["status"] == "failed":
        code = photo["error"]["code"]
        assert code in case.may_fail_with, f"{case.name}: {code} ({photo['error']['message']}), expected {case.expect}"
        assert res.exit_code == EXIT_CODES[code] == photo["error"]["exit_code"]
        assert case.name in photo["error"]["message"]
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("smile: error: ")]
        assert len(errors) == 1 and case.name in errors[0]
        assert photo["output"] is None and not folder.exists()  # (the --out-dir it made, left empty, goes)
        return
    assert case.may_succeed, f"{case.name}: smiled, but expected {case.expect}"
    assert res.exit_code == 0 and photo["status"] == "ok"
    out = Path(photo["output"])
    assert out.parent == folder and out.name == Path(case.name).stem + ".smile" + Path(case.name).suffix
    assert "result" in seen, "the library failed where the CLI succeeds"
    check_output_file(case, out, seen["image"], seen["result"].mask)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_file(case: Case, loaded_shift, shift, tmp_path):
    """Each corpus file through the library and through the CLI (in-process); both are checked, failures reported together."""
    seen: dict = {}
    problems = []
    for where, check in (("library", lambda: _check_library(case, loaded_shift, tmp_path / "lib", seen)),
                         ("cli", lambda: _check_cli(case, shift, tmp_path / "cli", seen))):
        try:
            check()
        except AssertionError as exc:
            problems.append(f"[{where}] {exc}")
    assert not problems, "\n".join(problems)


def test_cli_process_on_whole_corpus(shift, tmp_path):
    """One real ``smile`` process over the corpus folder: per-photo outcomes, exit status of the first failure."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "smile_cli", str(CORPUS), "--out-dir", str(out), "--model", str(shift), "--json"],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT, env={**os.environ, "PYTHONWARNINGS": "default"})
    stderr_lines_ok(proc.stderr)
    doc = json.loads(proc.stdout)
    seen = {Path(p["input"]).name: p for p in doc["photos"]}
    assert set(seen) == set(BY_NAME)
    first_failure = None
    for p in doc["photos"]:  # in processing order
        case = BY_NAME[Path(p["input"]).name]
        if p["status"] == "failed":
            assert p["error"]["code"] in case.may_fail_with, f"{case.name}: {p['error']}"
            assert p["output"] is None
            first_failure = first_failure or p["error"]["exit_code"]
        else:
            assert case.may_succeed and p["status"] == "ok", f"{case.name}: {p['status']}, expected {case.expect}"
            assert Path(p["output"]).is_file()
    assert proc.returncode == first_failure == doc["summary"]["exit_code"]
    written = sorted(f.name for f in out.iterdir())
    assert written == sorted(Path(p["output"]).name for p in doc["photos"] if p["output"])
    assert leftovers(CORPUS) == [] and leftovers(out) == []
    for case in CASES:
        assert_input_unchanged(case)


@pytest.mark.parametrize("name", ["empty.jpg", "bomb.png"])
def test_cli_process_single_failures(name, shift, tmp_path):
    """Real processes: the documented exit status and one line on stderr that names the file."""
    status = EXIT_FOR[BY_NAME[name].expect]
    assert status in (4, 5)
    proc = subprocess.run([sys.executable, "-m", "smile_cli", str(CORPUS / name), "--out-dir", str(tmp_path), "--model", str(shift)],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert proc.returncode == status, proc.stderr
    assert_one_line(proc.stderr)
    assert proc.stderr.startswith("smile: error: ") and name in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
    assert_input_unchanged(BY_NAME[name])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_not_waited_on(shift, tmp_path):
    """A FIFO called photo.jpg must not block Smile forever (nobody ever writes into it)."""
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    try:
        proc = subprocess.run([sys.executable, "-m", "smile_cli", str(fifo), "--out-dir", str(tmp_path / "out"), "--model", str(shift)],
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("smile hangs on a named pipe")
    assert proc.returncode == 4, proc.stderr
    assert_one_line(proc.stderr)
    assert "photo.jpg" in proc.stderr


def test_default_output_goes_next_to_the_photo(shift, tmp_path):
    src = tmp_path / "odd name ü 😀.jpg"
    src.write_bytes((CORPUS / "odd name ü 😀.jpg").read_bytes())
    before = snapshot(src)
    res = invoke([str(src), "--model", str(shift), "-q"])
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "odd name ü 😀.smile.jpg"])
    assert snapshot(src) == before


def test_long_file_name_that_fits_is_written(shift, tmp_path):
    """A result name of 245 bytes is legal (limit 255): the temporary file must not push it over."""
    src = tmp_path / ("x" * 231 + ".bmp")
    src.write_bytes((CORPUS / "portrait.bmp").read_bytes())
    res = invoke([str(src), "--model", str(shift), "-q"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / ("x" * 231 + ".smile.bmp")).is_file() and leftovers(tmp_path) == []


def test_keep_unchanged_copies_a_faceless_photo_byte_for_byte(shift, tmp_path):
    res = invoke([str(CORPUS / "no-face.png"), "--out-dir", str(tmp_path), "--model", str(shift), "--keep-unchanged", "-q"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "no-face.smile.png").read_bytes() == (CORPUS / "no-face.png").read_bytes()


def test_detect_on_whole_corpus():
    """``smile detect --json`` on every corpus file at once: per-file outcome, no traceback."""
    res = invoke(["detect", "--json", *(str(CORPUS / c.name) for c in CASES)])
    stderr_lines_ok(res.stderr)
    entries = json.loads(res.stdout)
    assert [Path(e["input"]).name for e in entries] == [c.name for c in CASES]
    first_failure = 0
    for case, e in zip(CASES, entries):
        if e["error"]:
            assert e["error"]["code"] in case.may_fail_with, f"{case.name}: {e['error']}"
            assert case.name in e["error"]["message"]
            first_failure = first_failure or e["error"]["exit_code"]
        else:
            assert case.may_succeed and len(e["faces"]) >= case.min_edited, f"{case.name}: {e}"
    assert res.exit_code == first_failure
    for case in CASES:
        assert_input_unchanged(case)


@pytest.mark.parametrize("name, ext, modes, note", [
    ("orientation-6.jpg", "png", ("RGB",), None),
    ("icc.jpg", "webp", ("RGB",), None),
    ("icc.png", "tif", ("RGB",), None),
    ("rgba.png", "jpg", ("RGB",), "transparency"),
    ("rgba.png", "webp", ("RGBA",), None),
    ("rgb16.png", "jpg", ("RGB",), "8 bits"),
    ("rgb16.png", "tif", ("RGB;16",), None),
    ("cmyk-black.jpg", "png", ("RGB",), "CMYK"),
    ("gray16.png", "bmp", ("L", "RGB"), "8 bits"),
])
def test_format_conversion_keeps_what_the_target_can_hold(name, ext, modes, note, shift, tmp_path):
    """``--ext``: upright, same size, ICC and EXIF where the format holds them; a note for every loss."""
    case = BY_NAME[name]
    res = invoke([str(CORPUS / name), "--ext", ext, "--out-dir", str(tmp_path), "--model", str(shift), "--json"])
    assert res.exit_code == 0, res.stderr
    (photo,) = json.loads(res.stdout)["photos"]
    out = Path(photo["output"])
    assert out.suffix == "." + ext and out.is_file()
    got, info = load_image(out)
    assert info.size == case.size and info.mode in modes, (info.size, info.mode)
    with Image.open(out) as raw:
        exif = raw.getexif()
        assert exif.get(0x0112, 1) == 1
        if case.exif_make:
            assert exif.get(EXIF_MAKE) == MAKE_VALUE, "EXIF lost"
    if case.icc is not None:
        assert info.icc_profile == case.icc, "ICC profile lost"
    if note is None:
        assert photo["notes"] == []
    else:
        assert any(note in n for n in photo["notes"]), photo["notes"]


# --------------------------------------------------------------------------- failures while writing


@pytest.mark.parametrize("exc, status", [(OSError(28, "No space left on device"), 7), (KeyboardInterrupt(), 130)])
def test_failed_write_leaves_nothing_behind(exc, status, shift, tmp_path, monkeypatch):
    src = copy_case("rgba.png", tmp_path)
    before = snapshot(src)
    out_dir = tmp_path / "out"

    def broken_save(self, fp, *a, **k):
        if hasattr(fp, "write"):
            fp.write(b"\x89PNG partial")
        raise exc

    monkeypatch.setattr(Image.Image, "save", broken_save)
    res = invoke([str(src), "--out-dir", str(out_dir), "--model", str(shift)])
    assert res.exit_code == status
    assert "Traceback" not in res.stderr
    if status == 7:
        assert_one_line(res.stderr)
        assert "rgba.smile.png" in res.stderr and "could not write it (no space left on device)" in res.stderr
    assert not out_dir.exists()  # (nothing in it, and the --out-dir the run made is gone too)
    assert snapshot(src) == before and leftovers(tmp_path) == []


def test_in_place_keeps_the_photo_when_the_write_fails(shift, tmp_path, monkeypatch):
    src = copy_case("portrait.bmp", tmp_path)
    before = snapshot(src)
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    res = invoke([str(src), "--in-place", "--model", str(shift)])
    assert res.exit_code == 7
    assert_one_line(res.stderr)
    assert snapshot(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["portrait.bmp"]


def test_in_place_without_a_face_keeps_the_photo(shift, tmp_path):
    src = copy_case("no-face.png", tmp_path)
    before = snapshot(src)
    res = invoke([str(src), "--in-place", "--model", str(shift)])
    assert res.exit_code == 3
    assert_one_line(res.stderr)
    assert snapshot(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["no-face.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_in_place_through_a_symlink_edits_the_photo_and_keeps_the_link(shift, tmp_path):
    real = copy_case("portrait.bmp", tmp_path)
    link = tmp_path / "link.bmp"
    link.symlink_to(real.name)
    before = snapshot(real)
    res = invoke([str(link), "--in-place", "--model", str(shift), "-q"])
    assert res.exit_code == 0, res.stderr
    assert link.is_symlink() and os.readlink(link) == real.name, "the symbolic link was replaced by a file"
    assert snapshot(real) != before, "the photo the link points to was not edited"
    assert leftovers(tmp_path) == []


def test_existing_output_survives_a_failed_run(shift, tmp_path, monkeypatch):
    src = copy_case("portrait.bmp", tmp_path)
    target = tmp_path / "result.png"
    target.write_bytes(b"an older result")
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    res = invoke([str(src), "-o", str(target), "--model", str(shift)])
    assert res.exit_code == 7
    assert target.read_bytes() == b"an older result" and leftovers(tmp_path) == []
