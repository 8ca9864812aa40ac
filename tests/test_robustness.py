"""Issue #9: hostile and unusual inputs never crash Smile or lose a pixel.

Every file of the generated corpus (tests/corpus.py) goes through the library
(``load_image`` + ``smile`` + ``save_image``), the CLI in-process (click's CliRunner)
and the CLI as a real process.  Each must end in either a faithful result (size, mode,
bit depth, alpha, orientation, ICC and EXIF as promised; pixels outside the edited
face regions untouched) or a one-line error that names the file, with the documented
exit status; never a traceback.  Inputs keep their bytes and mtime, and a failure
leaves no output or temporary file behind.

Also here: the pixel limit, bounded memory, weights safety on the CLI side, and the
hostile side of the ``smile worker`` protocol.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import smilecore
from corpus import EXIF_MAKE, EXIT_FOR, MAKE_VALUE, Case, build_corpus, png_bomb, portrait
from smilecore.errors import EXIT_CODES, ImageTooLargeError, SmileError
from smilecore.decode import load_image
from smilecore.encode import save_image

_CORPUS_TMP = tempfile.TemporaryDirectory(prefix="smile-corpus-")
CORPUS = Path(_CORPUS_TMP.name)
CASES: list[Case] = build_corpus(CORPUS)
BY_NAME = {c.name: c for c in CASES}
LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}
#: Longest a CLI process may take before the test calls it hung (generous: CI machines are slow).
PROCESS_TIMEOUT = 300


def _snapshot(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


SNAPSHOTS = {c.name: _snapshot(CORPUS / c.name) for c in CASES}


@pytest.fixture(scope="module")
def model_path(fixture_models) -> Path:
    """A pure translation flow (4 px): every edited face visibly changes."""
    return fixture_models["shift"]


@pytest.fixture(scope="module")
def model(model_path):
    return smilecore.load_model(model_path)


def _assert_one_line(text: str) -> None:
    assert text.strip() and "\n" not in text.strip(), f"not one line: {text!r}"
    assert "Traceback" not in text


def _assert_input_unchanged(case: Case) -> None:
    assert _snapshot(CORPUS / case.name) == SNAPSHOTS[case.name], f"{case.name} was modified"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".smile-tmp"))


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


def _library_run(case: Case, model):
    """load_image + smile for one case: (image, info, result) or the SmileError raised."""
    try:
        image, info = load_image(CORPUS / case.name)
        return image, info, smilecore.smile(image, model=model)
    except SmileError as exc:
        return exc


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
        _assert_one_line(str(exc))
        _assert_input_unchanged(case)
        return
    assert case.expect not in ("bad_input", "too_large"), f"{case.name} was read, but must be refused ({case.expect})"
    assert info.size == case.size if case.size else True
    try:
        result = smilecore.smile(image, model=model)
    except SmileError as exc:
        assert exc.code in case.may_fail_with, f"{case.name}: {exc.code} ({exc}), expected {case.expect}"
        _assert_one_line(str(exc))
        _assert_input_unchanged(case)
        return
    seen.update(image=image, result=result)
    assert case.may_succeed, f"{case.name}: smiled, but expected {case.expect}"
    check_result(case, image, result)
    folder.mkdir()
    out = folder / ("result" + Path(case.name).suffix)
    save_image(out, result.image, info)
    check_output_file(case, out, image, result.mask)
    assert _leftovers(folder) == []
    _assert_input_unchanged(case)


def _invoke(args: list[str], **kw):
    from smile_cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def _stderr_lines_ok(stderr: str) -> None:
    """Only one-line errors and notes on stderr: no traceback, no stray warnings."""
    assert "Traceback" not in stderr, stderr
    for line in stderr.splitlines():
        if line.strip():
            assert line.startswith(("smile: error: ", "  note: ")), f"unexpected stderr line: {line!r}"


def _check_cli(case: Case, model_path: Path, folder: Path, seen: dict) -> None:
    """``smile PHOTO --out-dir D --json`` in-process: exit status, report, output file, no leftovers."""
    res = _invoke([str(CORPUS / case.name), "--out-dir", str(folder), "--model", str(model_path), "--json"])
    _stderr_lines_ok(res.stderr)
    doc = json.loads(res.stdout)
    (photo,) = doc["photos"]
    _assert_input_unchanged(case)
    assert _leftovers(folder) == [] and _leftovers(CORPUS) == []
    if photo["status"] == "failed":
        code = photo["error"]["code"]
        assert code in case.may_fail_with, f"{case.name}: {code} ({photo['error']['message']}), expected {case.expect}"
        assert res.exit_code == EXIT_CODES[code] == photo["error"]["exit_code"]
        assert case.name in photo["error"]["message"]
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("smile: error: ")]
        assert len(errors) == 1 and case.name in errors[0]
        assert photo["output"] is None and list(folder.iterdir()) == []
        return
    assert case.may_succeed, f"{case.name}: smiled, but expected {case.expect}"
    assert res.exit_code == 0 and photo["status"] == "ok"
    out = Path(photo["output"])
    assert out.parent == folder and out.name == Path(case.name).stem + ".smile" + Path(case.name).suffix
    assert "result" in seen, "the library failed where the CLI succeeds"
    check_output_file(case, out, seen["image"], seen["result"].mask)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_file(case: Case, model, model_path, tmp_path):
    """Each corpus file through the library and through the CLI (in-process); both are checked, failures reported together."""
    seen: dict = {}
    problems = []
    for where, check in (("library", lambda: _check_library(case, model, tmp_path / "lib", seen)),
                         ("cli", lambda: _check_cli(case, model_path, tmp_path / "cli", seen))):
        try:
            check()
        except AssertionError as exc:
            problems.append(f"[{where}] {exc}")
    assert not problems, "\n".join(problems)


def test_cli_process_on_whole_corpus(model_path, tmp_path):
    """One real ``smile`` process over the corpus folder: per-photo outcomes, exit status of the first failure."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "smile_cli", str(CORPUS), "--out-dir", str(out), "--model", str(model_path), "--json"],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT, env={**os.environ, "PYTHONWARNINGS": "default"})
    _stderr_lines_ok(proc.stderr)
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
    assert _leftovers(CORPUS) == [] and _leftovers(out) == []
    for case in CASES:
        _assert_input_unchanged(case)


@pytest.mark.parametrize("name", ["empty.jpg", "bomb.png"])
def test_cli_process_single_failures(name, model_path, tmp_path):
    """Real processes: the documented exit status and one line on stderr that names the file."""
    status = EXIT_FOR[BY_NAME[name].expect]
    assert status in (4, 5)
    proc = subprocess.run([sys.executable, "-m", "smile_cli", str(CORPUS / name), "--out-dir", str(tmp_path), "--model", str(model_path)],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert proc.returncode == status, proc.stderr
    _assert_one_line(proc.stderr)
    assert proc.stderr.startswith("smile: error: ") and name in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
    _assert_input_unchanged(BY_NAME[name])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_not_waited_on(model_path, tmp_path):
    """A FIFO called photo.jpg must not block Smile forever (nobody ever writes into it)."""
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    try:
        proc = subprocess.run([sys.executable, "-m", "smile_cli", str(fifo), "--out-dir", str(tmp_path / "out"), "--model", str(model_path)],
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("smile hangs on a named pipe")
    assert proc.returncode == 4, proc.stderr
    _assert_one_line(proc.stderr)
    assert "photo.jpg" in proc.stderr


def test_default_output_goes_next_to_the_photo(model_path, tmp_path):
    src = tmp_path / "odd name ü 😀.jpg"
    src.write_bytes((CORPUS / "odd name ü 😀.jpg").read_bytes())
    before = _snapshot(src)
    res = _invoke([str(src), "--model", str(model_path), "-q"])
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "odd name ü 😀.smile.jpg"])
    assert _snapshot(src) == before


def test_long_file_name_that_fits_is_written(model_path, tmp_path):
    """A result name of 245 bytes is legal (limit 255): the temporary file must not push it over."""
    src = tmp_path / ("x" * 231 + ".bmp")
    src.write_bytes((CORPUS / "portrait.bmp").read_bytes())
    res = _invoke([str(src), "--model", str(model_path), "-q"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / ("x" * 231 + ".smile.bmp")).is_file() and _leftovers(tmp_path) == []


def test_keep_unchanged_copies_a_faceless_photo_byte_for_byte(model_path, tmp_path):
    res = _invoke([str(CORPUS / "no-face.png"), "--out-dir", str(tmp_path), "--model", str(model_path), "--keep-unchanged", "-q"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "no-face.smile.png").read_bytes() == (CORPUS / "no-face.png").read_bytes()


def test_detect_on_whole_corpus():
    """``smile detect --json`` on every corpus file at once: per-file outcome, no traceback."""
    res = _invoke(["detect", "--json", *(str(CORPUS / c.name) for c in CASES)])
    _stderr_lines_ok(res.stderr)
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
        _assert_input_unchanged(case)


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
def test_format_conversion_keeps_what_the_target_can_hold(name, ext, modes, note, model_path, tmp_path):
    """``--ext``: upright, same size, ICC and EXIF where the format holds them; a note for every loss."""
    case = BY_NAME[name]
    res = _invoke([str(CORPUS / name), "--ext", ext, "--out-dir", str(tmp_path), "--model", str(model_path), "--json"])
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


def _copy(name: str, folder: Path) -> Path:
    dst = folder / name
    dst.write_bytes((CORPUS / name).read_bytes())
    return dst


@pytest.mark.parametrize("exc, status", [(OSError(28, "No space left on device"), 7), (KeyboardInterrupt(), 130)])
def test_failed_write_leaves_nothing_behind(exc, status, model_path, tmp_path, monkeypatch):
    src = _copy("rgba.png", tmp_path)
    before = _snapshot(src)
    out_dir = tmp_path / "out"

    def broken_save(self, fp, *a, **k):
        if hasattr(fp, "write"):
            fp.write(b"\x89PNG partial")
        raise exc

    monkeypatch.setattr(Image.Image, "save", broken_save)
    res = _invoke([str(src), "--out-dir", str(out_dir), "--model", str(model_path)])
    assert res.exit_code == status
    assert "Traceback" not in res.stderr
    if status == 7:
        _assert_one_line(res.stderr)
        assert "rgba.smile.png" in res.stderr and "No space left" in res.stderr
    assert list(out_dir.iterdir()) == []
    assert _snapshot(src) == before and _leftovers(tmp_path) == []


def test_in_place_keeps_the_photo_when_the_write_fails(model_path, tmp_path, monkeypatch):
    src = _copy("portrait.bmp", tmp_path)
    before = _snapshot(src)
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    res = _invoke([str(src), "--in-place", "--model", str(model_path)])
    assert res.exit_code == 7
    _assert_one_line(res.stderr)
    assert _snapshot(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["portrait.bmp"]


def test_in_place_without_a_face_keeps_the_photo(model_path, tmp_path):
    src = _copy("no-face.png", tmp_path)
    before = _snapshot(src)
    res = _invoke([str(src), "--in-place", "--model", str(model_path)])
    assert res.exit_code == 3
    _assert_one_line(res.stderr)
    assert _snapshot(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["no-face.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_in_place_through_a_symlink_edits_the_photo_and_keeps_the_link(model_path, tmp_path):
    real = _copy("portrait.bmp", tmp_path)
    link = tmp_path / "link.bmp"
    link.symlink_to(real.name)
    before = _snapshot(real)
    res = _invoke([str(link), "--in-place", "--model", str(model_path), "-q"])
    assert res.exit_code == 0, res.stderr
    assert link.is_symlink() and os.readlink(link) == real.name, "the symbolic link was replaced by a file"
    assert _snapshot(real) != before, "the photo the link points to was not edited"
    assert _leftovers(tmp_path) == []


def test_existing_output_survives_a_failed_run(model_path, tmp_path, monkeypatch):
    src = _copy("portrait.bmp", tmp_path)
    target = tmp_path / "result.png"
    target.write_bytes(b"an older result")
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    res = _invoke([str(src), "-o", str(target), "--model", str(model_path)])
    assert res.exit_code == 7
    assert target.read_bytes() == b"an older result" and _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- limits


def test_pixel_limit_just_above_the_default_is_refused(tmp_path):
    """Between 1x and 2x the limit PIL only warns; Smile must still refuse, without decoding."""
    p = tmp_path / "big.png"
    p.write_bytes(png_bomb(15_000, 14_000))  # 210 MP
    with pytest.raises(ImageTooLargeError) as err:
        load_image(p)
    assert "big.png" in str(err.value) and "200" in str(err.value)


def test_pixel_limit_is_configurable_everywhere(model, model_path, monkeypatch):
    path = CORPUS / "portrait.bmp"  # 256 x 256 = 65 536 pixels
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=60_000)
    image, _ = load_image(path, max_pixels=70_000)
    with pytest.raises(ImageTooLargeError):
        smilecore.smile(image, model=model, max_pixels=60_000)
    monkeypatch.setenv("SMILE_MAX_PIXELS", "60000")
    with pytest.raises(ImageTooLargeError):
        smilecore.smile(np.asarray(image), model=model)
    monkeypatch.delenv("SMILE_MAX_PIXELS")
    res = _invoke([str(path), "--max-pixels", "60000", "--model", str(model_path)])
    assert res.exit_code == 5
    _assert_one_line(res.stderr)
    assert "portrait.bmp" in res.stderr and "--max-pixels" in res.stderr
    for bad in ("0", "-5", "lots"):
        res = _invoke([str(path), "--max-pixels", bad, "--model", str(model_path)])
        assert res.exit_code == 2, (bad, res.stderr)
        _assert_one_line(res.stderr)


def test_pixel_limit_from_the_environment(model, model_path, monkeypatch, tmp_path):
    """SMILE_MAX_PIXELS applies to smile(), ``smile``, ``smile detect`` and the worker; a bad value is a usage error."""
    path = CORPUS / "portrait.bmp"  # 65 536 pixels
    monkeypatch.setenv("SMILE_MAX_PIXELS", "60000")
    for args in ([str(path), "--out-dir", str(tmp_path / "out")], ["detect", str(path)]):
        res = _invoke(args + (["--model", str(model_path)] if args[0] != "detect" else []))
        assert res.exit_code == 5, (args, res.stderr)
        _assert_one_line(res.stderr)
        assert "portrait.bmp" in res.stderr
    res = _invoke([str(path), "--out-dir", str(tmp_path / "out"), "--model", str(model_path), "--max-pixels", "70000", "-q"])
    assert res.exit_code == 0, res.stderr  # the option wins over the environment
    req = {"id": 1, "cmd": "smile", "input": str(path), "output": str(tmp_path / "w.png")}
    (reply,) = _serve([json.dumps(req).encode() + b"\n"], model_path)[1:]
    assert reply["ok"] is False and reply["error"]["code"] == "too_large" and "portrait.bmp" in reply["error"]["message"]
    assert not (tmp_path / "w.png").exists()
    for bad in ("lots", "0", "-1"):
        monkeypatch.setenv("SMILE_MAX_PIXELS", bad)
        with pytest.raises(SmileError) as err:
            smilecore.smile(portrait(), model=model)
        assert err.value.code == "usage" and "SMILE_MAX_PIXELS" in str(err.value)
        res = _invoke([str(path), "--out-dir", str(tmp_path / "out2"), "--model", str(model_path)])
        assert res.exit_code == 2, (bad, res.stderr)
        _assert_one_line(res.stderr)
        assert "SMILE_MAX_PIXELS" in res.stderr


def test_bombs_are_refused_without_decoding():
    """Refusing the bombs allocates nothing like their declared size (tracemalloc sees Python/numpy memory)."""
    import tracemalloc

    tracemalloc.start()
    try:
        for name in ("bomb.png", "bomb.jpg"):
            with pytest.raises(ImageTooLargeError):
                load_image(CORPUS / name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000


@pytest.mark.parametrize("kind", ["array", "pil"])
def test_memory_stays_proportional_to_the_photo(kind, model):
    """A 2400 x 1600 photo: the engine's numpy peak stays under 3 copies of it (one float32 copy would be 4)."""
    import tracemalloc

    photo = np.full((1600, 2400, 3), 90, np.uint8)
    photo[200:1224, 600:1624] = np.asarray(Image.fromarray(portrait(512)).resize((1024, 1024)))
    nbytes = photo.nbytes  # 11.5 MB; a float32 copy would be 46 MB
    image = photo if kind == "array" else Image.fromarray(photo)
    smilecore.detect_faces(photo[:64, :64])  # load the detector first
    tracemalloc.start()
    try:
        result = smilecore.smile(image, model=model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any(f.edited for f in result.faces)
    assert peak < 3 * nbytes + 16_000_000, f"peak {peak / 1e6:.0f} MB for a {nbytes / 1e6:.0f} MB photo"


def test_memory_does_not_grow_with_the_number_of_faces(model, monkeypatch):
    """64 faces (a crowd): the network must run in small batches, composited as it goes, not all at once."""
    import tracemalloc

    from smilecore import pipeline

    photo = portrait(256)
    face = smilecore.detect_faces(photo)[0]
    monkeypatch.setattr(pipeline, "detect_faces", lambda *a, **k: [face] * 64)
    tracemalloc.start()
    try:
        result = smilecore.smile(photo, model=model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(f.edited for f in result.faces) == 64
    # one face costs ~2.4 MB of float32 network input/output; 64 at once would be ~160 MB
    assert peak < 40_000_000, f"peak {peak / 1e6:.0f} MB for 64 faces on a 256 x 256 photo"


# --------------------------------------------------------------------------- weights safety (CLI side)


class _Evil:
    """Unpickling this would create a marker file: proof that a pickle was executed."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.onnx"])
def test_pickled_weights_are_never_loaded(name, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps(_Evil(str(marker))))
    res = _invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", str(evil)])
    assert res.exit_code == 6, res.stderr
    _assert_one_line(res.stderr)
    assert name in res.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_runtime_code_never_unpickles():
    """Static guard: the engine and CLI do not use pickle-based loaders."""
    root = Path(__file__).resolve().parent.parent
    for folder in ("smilecore", "cli"):
        for src in (root / folder).rglob("*.py"):
            text = src.read_text(encoding="utf-8")
            for bad in ("import pickle", "torch.load", "allow_pickle=True", "joblib", "dill"):
                assert bad not in text, f"{src}: uses {bad}"


@pytest.mark.parametrize("what", ["missing", "garbage", "empty", "wrong-template", "wrong-contract", "size-mismatch", "no-metadata"])
def test_bad_model_files_exit_6(what, tmp_path):
    import onnx

    from fixture_model import build_fixture_model
    from smilecore import contract

    path = tmp_path / "m.onnx"
    if what == "garbage":
        path.write_bytes(b"\x08\x07not an onnx protobuf" * 50)
    elif what == "empty":
        path.write_bytes(b"")
    elif what == "wrong-template":
        build_fixture_model(path, template="some-other-template")
    elif what == "wrong-contract":
        build_fixture_model(path, contract_version="999")
    elif what in ("size-mismatch", "no-metadata"):
        build_fixture_model(path, size=64)
        m = onnx.load(str(path))
        if what == "no-metadata":
            del m.metadata_props[:]
        else:
            for prop in m.metadata_props:
                if prop.key == contract.META_SIZE:
                    prop.value = "256"  # metadata says 256, the graph takes 64
        onnx.save(m, str(path))
    res = _invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", str(path)])
    assert res.exit_code == 6, (what, res.stderr)
    _assert_one_line(res.stderr)
    assert "m.onnx" in res.stderr


@pytest.mark.parametrize("outputs, statuses", [
    ({"dx": float("nan")}, {6}),
    ({"dx": float("inf")}, {6}),
    ({"rgb": float("nan"), "mask": 1.0}, {6}),
    ({"mask": float("nan")}, {6}),
    ({"dx": 1e30, "dy": -1e30}, {0, 6}),
    ({"mask": 5.0, "rgb": 7.0}, {0, 6}),
], ids=["nan-flow", "inf-flow", "nan-rgb", "nan-mask", "huge-flow", "out-of-range"])
def test_model_with_broken_outputs_never_crashes(outputs, statuses, tmp_path):
    """A model emitting NaN/Inf is refused (exit 6); huge or out-of-range values are clipped or refused."""
    from fixture_model import build_fixture_model

    path = build_fixture_model(tmp_path / "broken.onnx", **outputs)
    out = tmp_path / "out"
    res = _invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(out), "--model", str(path), "--json"])
    assert res.exit_code in statuses, res.stderr
    _stderr_lines_ok(res.stderr)
    (photo,) = json.loads(res.stdout)["photos"]
    if res.exit_code == 0:
        got = np.asarray(Image.open(photo["output"]))
        src = np.asarray(Image.open(CORPUS / "portrait.bmp"))
        assert got.shape == src.shape
    else:
        assert photo["error"]["code"] == "model" and "broken.onnx" in photo["error"]["message"]
        assert not out.exists() or list(out.iterdir()) == []


@pytest.fixture
def fake_registry(tmp_path, monkeypatch, model_path):
    """A registry with one downloaded model whose cached file has been tampered with."""
    from smilecore import registry

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SMILE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SMILE_MODEL", raising=False)
    good = Path(model_path).read_bytes()
    info = registry.ModelInfo(name="tampered", version="1", file="tampered.onnx", sha256=hashlib.sha256(good).hexdigest(),
                             size=len(good), license="CC0-1.0", url="http://127.0.0.1:9/tampered.onnx")
    monkeypatch.setattr(registry, "_registry", lambda: ("tampered", (info,)))
    (cache / "tampered.onnx").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped
    return cache / "tampered.onnx"


def test_models_verify_refuses_a_tampered_file(fake_registry):
    res = _invoke(["models", "verify", "tampered"])
    assert res.exit_code == 6
    _assert_one_line(res.stderr)
    assert "tampered.onnx" in res.stderr and "checksum" in res.stderr


def test_run_refuses_a_tampered_registry_model(fake_registry, tmp_path):
    res = _invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", "tampered"])
    assert res.exit_code == 6
    _assert_one_line(res.stderr)
    assert "tampered" in res.stderr and "checksum" in res.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------- hostile command lines


@pytest.mark.parametrize("args, status", [
    (["--strength", "nan"], 2), (["--strength", "inf"], 2), (["--strength", "1e400"], 2), (["--strength", "lots"], 2),
    (["--strength", "99"], 2), (["--faces", "-1"], 2), (["--faces", "one"], 2), (["--faces", ""], 2), (["--faces", ","], 2), (["--min-face", "0"], 2),
    (["--quality", "0"], 2), (["--quality", "101"], 2), (["--suffix", "a/b"], 2), (["--suffix", ""], 2), (["--ext", "gif"], 2),
    (["-o", "out.xyz"], 2), (["-o", "no/such/dir/out.png"], 2), (["--in-place", "-o", "x.png"], 2), (["--no-such-option"], 2),
    (["--selection", "missing-mask.png"], 4), (["--model", "no-such-model-name"], 6),
])
def test_bad_command_lines_give_one_line_and_a_status(args, status, model_path, tmp_path):
    photo = _copy("portrait.bmp", tmp_path)
    before = _snapshot(photo)
    full = [str(photo)] + (["--model", str(model_path)] if "--model" not in args else []) + args
    res = _invoke(full)
    assert res.exit_code == status, (args, res.stderr)
    _assert_one_line(res.stderr)
    assert res.stderr.startswith("smile: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portrait.bmp"] and _snapshot(photo) == before


@pytest.mark.parametrize("args, status, needle", [
    (["missing.jpg"], 4, "missing.jpg"), (["empty-folder"], 4, "empty-folder"), (["*.nothing-matches"], 4, "nothing-matches"),
])
def test_missing_inputs(args, status, needle, model_path, tmp_path, monkeypatch):
    (tmp_path / "empty-folder").mkdir()
    monkeypatch.chdir(tmp_path)
    res = _invoke(args + ["--model", str(model_path)])
    assert res.exit_code == status
    _assert_one_line(res.stderr)
    assert needle in res.stderr


# --------------------------------------------------------------------------- the worker, hostile side


def _serve(lines: list[bytes], model_path) -> list[dict]:
    """Run the worker loop in-process on ``lines``; return its replies (greeting first)."""
    import io

    from smile_cli.bridge.worker import WorkerSession, serve

    session = WorkerSession(str(model_path))
    session.load_model()
    out = io.BytesIO()
    assert serve(session, io.BytesIO(b"".join(lines)), out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_worker_answers_every_malformed_request_and_keeps_serving(model_path, tmp_path):
    from smile_cli.bridge.worker import MAX_LINE

    bad = [
        b"{not json\n",
        b"\xff\xfe\x00garbage\n",
        b"[1, 2, 3]\n",
        b'"hello"\n',
        b"null\n",
        b"[" * 50_000 + b"]" * 50_000 + b"\n",
        b'{"id": {"nested": [1]}, "cmd": 5}\n',
        b'{"id": 7, "cmd": "format-disk"}\n',
        b'{"id": 8}\n',
        b'{"id": 9, "cmd": "smile"}\n',
        b'{"id": 10, "cmd": "smile", "input": 5, "output": "x.png"}\n',
        b'{"id": 11, "cmd": "smile", "input": "a\\u0000b.png", "output": "x.png"}\n',
        b'{"id": 12, "cmd": "smile", "input": "in.png", "output": "x.png", "strength": NaN}\n',
        b'{"id": 13, "cmd": "smile", "input": "in.png", "output": "x.png", "strength": "lots"}\n',
        b'{"id": 14, "cmd": "smile", "input": "in.png", "output": "x.png", "faces": [-1]}\n',
        b'{"id": 15, "cmd": "smile", "input": "in.png", "output": "x.png", "faces": [true]}\n',
        b'{"id": 16, "cmd": "detect", "input": "in.png", "min_face": 0}\n',
        b'{"id": 17, "cmd": "smile", "input": "%s", "output": "x.png", "strength": 1e308}\n' % str(CORPUS / "rgba.png").encode(),
        b"x" * (MAX_LINE + 10) + b"\n",
    ]
    replies = _serve(bad + [b'{"id": "last", "cmd": "hello"}\n'], model_path)
    assert replies[0]["event"] == "ready"
    answers = replies[1:]
    assert len(answers) == len(bad) + 1
    for req, rep in zip(bad, answers):
        assert rep["ok"] is False and rep["error"]["code"] == "bad_request", (req[:80], rep)
        _assert_one_line(rep["error"]["message"])
    assert [r["id"] for r in answers[6:9]] == [{"nested": [1]}, 7, 8]
    assert answers[-1] == {**answers[-1], "id": "last", "ok": True}


def test_worker_survives_nan_and_infinity(model_path):
    """Python's json accepts NaN/Infinity; a reply echoing them must not be mistaken for a vanished client."""
    lines = [b'{"id": NaN, "cmd": "hello"}\n', b'{"id": 2, "cmd": "hello"}\n', b'{"id": [Infinity], "cmd": "nope"}\n',
             b'{"id": 4, "cmd": "hello"}\n']
    replies = _serve(lines, model_path)[1:]
    assert len(replies) == 4, replies
    assert replies[0]["ok"] is False and replies[0]["error"]["code"] == "bad_request"
    assert replies[1]["id"] == 2 and replies[1]["ok"] is True
    assert replies[2]["ok"] is False
    assert replies[3]["id"] == 4 and replies[3]["ok"] is True


def test_worker_file_problems_are_errors_naming_the_file(model_path, tmp_path):
    sel = tmp_path / "sel.png"
    Image.new("L", (10, 10), 255).save(sel)
    reqs = {
        "missing": ({"input": str(tmp_path / "nope.png"), "output": str(tmp_path / "o1.png")}, "bad_input", "nope.png"),
        "corrupt": ({"input": str(CORPUS / "truncated.png"), "output": str(tmp_path / "o2.png")}, "bad_input", "truncated.png"),
        "bomb": ({"input": str(CORPUS / "bomb.png"), "output": str(tmp_path / "o3.png")}, "too_large", "bomb.png"),
        "noface": ({"input": str(CORPUS / "no-face.png"), "output": str(tmp_path / "o4.png")}, "no_face", "no-face.png"),
        "nodir": ({"input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "no" / "dir.png")}, "write_failed", "dir.png"),
        "badext": ({"input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "o5.xyz")}, "bad_request", "o5.xyz"),
        "selsize": ({"input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "o6.png"), "selection": str(sel)}, "bad_request", "selection"),
        "folder": ({"input": str(tmp_path), "output": str(tmp_path / "o7.png")}, "bad_input", str(tmp_path)),
        "maskdir": ({"input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "o8.png"), "mask_output": str(tmp_path / "no" / "m.png")},
                    "write_failed", "m.png"),
    }
    lines = [json.dumps({"id": k, "cmd": "smile", **req}).encode() + b"\n" for k, (req, _, _) in reqs.items()]
    lines.append(json.dumps({"id": "det", "cmd": "detect", "input": str(CORPUS / "empty.jpg")}).encode() + b"\n")
    replies = _serve(lines, model_path)[1:]
    assert len(replies) == len(reqs) + 1
    for rep in replies[:-1]:
        _req, code, needle = reqs[rep["id"]]
        assert rep["ok"] is False and rep["error"]["code"] == code, rep
        assert needle in rep["error"]["message"], rep
        _assert_one_line(rep["error"]["message"])
    assert replies[-1]["error"]["code"] == "bad_input" and "empty.jpg" in replies[-1]["error"]["message"]
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["sel.png"]


def test_worker_with_a_broken_model_answers_model_errors(tmp_path):
    import io

    from smile_cli.bridge.worker import WorkerSession, serve

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    session = WorkerSession(str(bad))
    session.load_model()
    req = {"id": 1, "cmd": "smile", "input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "o.png")}
    stdin = io.BytesIO(b'{"id": 0, "cmd": "hello"}\n' + json.dumps(req).encode() + b"\n")
    out = io.BytesIO()
    assert serve(session, stdin, out) == 0
    greeting, hello, smiled = [json.loads(line) for line in out.getvalue().splitlines()]
    assert greeting["event"] == "ready" and greeting["model_error"]["code"] == "model"
    assert hello["ok"] is True
    assert smiled["ok"] is False and smiled["error"]["code"] == "model" and "broken.onnx" in smiled["error"]["message"]
    assert not (tmp_path / "o.png").exists()


def _worker(model_path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smile_cli", "worker", "--model", str(model_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_worker_process_survives_garbage_and_exits_on_eof(model_path, tmp_path):
    """A real process: a burst of junk, a half line, then EOF: it answers and exits 0."""
    proc = _worker(model_path)
    junk = b"".join([b"{oops\n", b"\x00\x01\x02\n", b"\n", b"\r\n", b'{"id": 1, "cmd": "hello"}\r\n'] * 20)
    good = json.dumps({"id": "s", "cmd": "smile", "input": str(CORPUS / "rgba.png"), "output": str(tmp_path / "o.png")}).encode()
    try:
        out, err = proc.communicate(junk + good + b"\n" + b'{"id": 2, "cmd": "hel', timeout=PROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    replies = [json.loads(line) for line in out.splitlines()]  # stdout: protocol lines only
    assert replies[0]["event"] == "ready" and replies[0]["model"]
    body = replies[1:]
    assert len(body) == 20 * 3 + 2  # blank lines get no reply; the cut last line gets bad_request
    assert [r["ok"] for r in body[:3]] == [False, False, True]
    assert body[-2]["id"] == "s" and body[-2]["ok"] is True, body[-2]
    assert body[-1]["ok"] is False and body[-1]["error"]["code"] == "bad_request"
    assert (tmp_path / "o.png").is_file() and _leftovers(tmp_path) == []


def test_worker_exits_when_the_client_disappears(model_path, tmp_path):
    """The client closes its end of stdout (reads nothing) and then stdin: no hang, no traceback."""
    proc = _worker(model_path)
    try:
        proc.stdout.close()  # the client is gone: every reply now hits EPIPE
        try:
            proc.stdin.write(b'{"id": 1, "cmd": "hello"}\n' * 100)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read()
        proc.wait(timeout=PROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            pytest.fail("the worker hung after its client disappeared")
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def test_worker_quit_stops_reading(model_path):
    proc = _worker(model_path)
    try:
        out, err = proc.communicate(b'{"cmd": "quit", "id": 1}\n{"cmd": "hello", "id": 2}\n', timeout=PROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"Traceback" not in err
    replies = [json.loads(line) for line in out.splitlines()]
    assert replies[1:] == [{"id": 1, "ok": True, "bye": True}]
