"""Issue #14: no input ever overwritten, no batch silently cut short, no temporary file left behind.

One test (or a few) per case of the issue, through the library, the CLI in-process, a real
``smile`` process or the worker, as fits the case (case 8, the mouth's light, is in test_match.py).
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

import smilecore
from smile_cli.main import cli
from smile_cli.bridge.worker import WorkerSession, serve
from smilecore.atomic import (STALE_PLUGIN_SECONDS, STALE_TEMP_SECONDS, STALE_WORK_SECONDS, TEMP_SUFFIX, WORK_LOCK,
                              followed_links, remove_stale_temps, remove_stale_work_folders, work_folder, write_atomic)
from smilecore.decode import load_image
from smilecore.errors import WriteError

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def run(*args) -> "CliRunner.Result":
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def smile_process(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smile_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, **kw)


def one_error_line(stderr: str, *needles: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("smile: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: (p.read_bytes() if p.is_file() and not p.is_symlink() else b"<link>") for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------ 1. the worker overwrites its input


def _worker(model: Path, *requests: dict) -> list[dict]:
    session = WorkerSession(str(model))
    session.load_model()
    out = io.BytesIO()
    serve(session, io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in requests)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()][1:]


def test_worker_refuses_every_clash_and_writes_nothing(shift, photo: Path, tmp_path: Path):
    folder = tmp_path
    sel = folder / "sel.png"
    Image.fromarray(np.full((512, 512), 255, np.uint8)).save(sel)
    (folder / "sub").mkdir()
    (folder / "link.png").symlink_to(photo)
    os.link(photo, folder / "hard.png")
    before = listing(folder)
    src, out = str(photo), str(folder / "out.png")
    clashes = [
        {"input": src, "output": src},
        {"input": src, "output": str(folder / "sub" / ".." / photo.name)},
        {"input": src, "output": str(folder / "link.png")},
        {"input": src, "output": str(folder / "hard.png")},
        {"input": src, "output": out, "mask_output": src},
        {"input": src, "output": out, "mask_output": out},
        {"input": src, "output": out, "mask_output": str(folder / "sub" / ".." / "out.png")},
        {"input": src, "output": str(sel), "selection": str(sel)},
        {"input": src, "output": out, "selection": str(sel), "mask_output": str(sel)},
    ]
    replies = _worker(shift, *({"cmd": "smile", "id": i, **req} for i, req in enumerate(clashes)))
    assert len(replies) == len(clashes)
    for req, rep in zip(clashes, replies):
        assert rep["ok"] is False and rep["error"]["code"] == "bad_request", (req, rep)
        assert "same file" in rep["error"]["message"], rep
    assert listing(folder) == before  # nothing written, nothing replaced
    # the same worker still does honest work
    ok = _worker(shift, {"cmd": "smile", "input": src, "output": out, "mask_output": str(folder / "mask.png")})[0]
    assert ok["ok"] is True, ok
    with Image.open(out) as im, Image.open(folder / "mask.png") as mk:
        assert im.mode == "RGB" and mk.mode == "L"


def test_cli_refuses_to_write_over_the_selection(shift, photo: Path, tmp_path: Path):
    sel = tmp_path / "sel.png"
    Image.fromarray(np.full((512, 512), 255, np.uint8)).save(sel)
    before = sel.read_bytes()
    r = run(photo, "--selection", sel, "-o", sel, "--model", shift)
    assert r.exit_code == 2
    one_error_line(r.stderr, "sel.png", "same file")
    assert sel.read_bytes() == before
    (tmp_path / "sel-link.png").symlink_to(sel)
    r = run(photo, "--selection", tmp_path / "sel-link.png", "-o", sel, "--model", shift)
    assert r.exit_code == 2 and sel.read_bytes() == before


# ------------------------------------------------------------------ 2. a reader that closes stdout


def _photos(folder: Path, astronaut, n: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"a{i}.png"
        Image.fromarray(astronaut).save(p)
        paths.append(p)
    return paths


def test_closed_stdout_still_writes_every_photo(shift, tmp_path: Path, astronaut):
    _photos(tmp_path / "f", astronaut, 5)
    args = [sys.executable, "-m", "smile_cli", str(tmp_path / "f"), "--out-dir", str(tmp_path / "o"), "--model", str(shift)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # like `| head -1`: the reader goes away after the first photo's line
    proc.stdout.close()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"error" not in err, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"a{i}.smile.png" for i in range(5)]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["--json"], ["-o", "x.png"]])
def test_full_stdout_is_a_write_failure(command, shift, photo: Path, tmp_path: Path):
    args = [photo, "--model", shift, *command]
    if "-o" not in command:
        args += ["-o", tmp_path / "x.png"]
    else:
        args[args.index("x.png")] = tmp_path / "x.png"
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "smile_cli", *map(str, args)], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=TIMEOUT)
    assert p.returncode == 7, p.stderr
    one_error_line(p.stderr, "standard output: cannot write the report (no space left on device)",
                   "1 of 1 result written")  # (lower case, as the other write failures say it)
    assert (tmp_path / "x.png").is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_result_into_a_full_stdout_is_a_write_failure(shift, photo: Path):
    """Before: '... cannot write the result (No space left on device)', unlike the other write failures."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "smile_cli", str(photo), "--model", str(shift), "-o", "-"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    assert p.returncode == 7, p.stderr
    assert p.stderr.splitlines() == ["smile: error: standard output: cannot write the result (no space left on device)"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_detect_into_a_full_stdout_is_a_write_failure(photo: Path):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "smile_cli", "detect", str(photo), "--json"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    assert p.returncode == 7, p.stderr
    one_error_line(p.stderr, "standard output")


# ------------------------------------------------------------------ 4. SIGTERM / SIGHUP, stale temporary files

_SLOW_WRITER = """
import sys, time
from pathlib import Path
import smilecore.atomic as io
marker = Path(sys.argv[1])
original = io.write_atomic
def slow(target, write, **kw):
    def slowly(f):
        f.write(b"x" * (1 << 20))
        f.flush()
        marker.write_text("writing")
        time.sleep(120)
        write(f)
    original(target, slowly, **kw)
io.write_atomic = slow
from smile_cli.main import main
sys.argv = ["smile", *sys.argv[2:]]
main()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("sig, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_signal_while_writing_leaves_nothing(sig, status, name, shift, photo: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(marker), str(photo), "-o", str(out / "r.png"),
                             "--model", str(shift)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)  # (as from a terminal, whatever started the tests)
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()
    assert [p.name for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]  # the partial file is there...
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert f"smile: interrupted ({name})" in err and "Traceback" not in err, err
    assert list(out.iterdir()) == []  # ...and gone


def _default_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_nohup_keeps_sighup_ignored(shift, photo: Path, tmp_path: Path):
    """`nohup smile ...` must survive the terminal closing: a SIGHUP ignored at start stays ignored."""

    def ignore_hup() -> None:
        _default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    out = tmp_path / "r.png"
    proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(photo), "-o", str(out), "--model", str(shift)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore_hup)
    for _ in range(5):
        time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.is_file()


def _stale(folder: Path, name: str, age: float) -> Path:
    p = folder / name
    p.write_bytes(b"partial")
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_a_later_run_removes_stale_temporary_files_it_provably_owns(shift, photo: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    old = STALE_TEMP_SECONDS + 60
    dead = _stale(out, ".r.png.ab3_x9k2" + TEMP_SUFFIX, old)  # a killed run's file
    fresh = _stale(out, ".r.png.q7bbdd0z" + TEMP_SUFFIX, 5)  # maybe another run's, being written now
    locked = _stale(out, ".s.png.lockedzz" + TEMP_SUFFIX, old)  # old, but a live writer holds it
    foreign = [_stale(out, name, old) for name in (".r.png.smile-tmp", "r.png.ab3_x9k2.smile-tmp", ".r.png.ab3_x9k2.tmp")]
    fd = os.open(locked, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        p = smile_process(photo, "-o", out / "r.png", "--model", shift)
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    assert not dead.exists()
    assert fresh.exists() and locked.exists() and all(f.exists() for f in foreign)
    assert (out / "r.png").is_file()


def test_remove_stale_temps_keeps_a_locked_file(tmp_path: Path):
    p = _stale(tmp_path, ".a.jpg.12345678" + TEMP_SUFFIX, 3600)
    with open(p, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert remove_stale_temps(tmp_path) == [] and p.exists()
    assert remove_stale_temps(tmp_path) == [p] and not p.exists()


# ------------------------------------------------------------------ 5. Smile's pixel limit is the only one


def test_pillows_own_limit_never_refuses_what_smiles_accepts(tmp_path: Path, monkeypatch):
    p = tmp_path / "small.png"
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's limit far below the photo
    image, info = load_image(p, max_pixels=20_000)
    assert info.size == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back as it was


def test_a_182_megapixel_png_under_the_documented_limit_is_read(tmp_path: Path):
    p = tmp_path / "huge.png"
    Image.new("1", (14000, 13500), 1).save(p)  # 182 MP: above PIL's 179 MP, below Smile's 200 MP
    image, info = load_image(p)
    assert info.size == (14000, 13500)
    del image
    r = smile_process("detect", p, "--max-pixels", "300000000")
    assert r.returncode == 3, r.stderr  # read, and no face in it: not "corrupt" (4)
    one_error_line(r.stderr, "no face")


# ------------------------------------------------------------------ 6. lossless WebP stays lossless


def _webp_kind(path: Path) -> bytes:
    data = path.read_bytes()
    return b"VP8L" if b"VP8L" in data[12:64] else b"VP8 "


def test_lossless_webp_stays_lossless(shift, astronaut, tmp_path: Path):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0
    rgba[:40, :, :3] = np.random.default_rng(1).integers(0, 256, (40, rgba.shape[1], 3))  # colours under alpha 0
    src = tmp_path / "ll.webp"
    Image.fromarray(rgba).save(src, lossless=True)
    assert _webp_kind(src) == b"VP8L"
    for extra in ([], ["--quality", "100"]):
        out = tmp_path / f"out{len(extra)}.webp"
        r = run(src, "-o", out, "--model", shift, *extra)
        assert r.exit_code == 0, r.stderr
        assert _webp_kind(out) == b"VP8L"
        a, b = np.asarray(Image.open(src)), np.asarray(Image.open(out))
        changed = np.any(a != b, axis=2)
        assert 0 < changed.mean() < 0.5  # the face changed, nothing else
        assert not changed[:40].any()
    lossy = tmp_path / "lossy.webp"
    Image.fromarray(astronaut).save(lossy, quality=90)
    r = run(lossy, "-o", tmp_path / "lossy-out.webp", "--model", shift)
    assert r.exit_code == 0 and _webp_kind(tmp_path / "lossy-out.webp") == b"VP8 "


# ------------------------------------------------------------------ 7. the README's batch line, twice


def test_glob_batch_runs_twice(shift, astronaut, tmp_path: Path):
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.fromarray(astronaut).save(shots / "a.jpg", quality=90)
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(shots / "wall.jpg")
    pattern = str(shots / "*.jpg")
    reports = []
    for _ in range(2):
        r = run(pattern, "--keep-unchanged", "--json", "--model", shift)
        assert r.exit_code == 0, r.stderr
        reports.append(json.loads(r.stdout))
    for doc in reports:
        assert [Path(p["input"]).name for p in doc["photos"]] == ["a.jpg", "wall.jpg"]
        assert [p["status"] for p in doc["photos"]] == ["ok", "unchanged"]
    # a result named on its own is still a photo to smile
    r = run(shots / "a.smile.jpg", "--model", shift)
    assert r.exit_code == 0 and (shots / "a.smile.smile.jpg").is_file()
    # a pattern that matches nothing but results says so
    r = run(str(shots / "*.smile.jpg"), "--model", shift)
    assert r.exit_code == 4
    one_error_line(r.stderr, "only earlier results match")


# ------------------------------------------------------------------ 9. smaller ones


def _model_with_meta(src: Path, dst: Path, **meta: str) -> Path:
    m = onnx.load(str(src))
    for prop in m.metadata_props:
        if prop.key in meta:
            prop.value = meta[prop.key]
    onnx.save(m, str(dst))
    return dst


@pytest.mark.parametrize("value", ["nan", "inf", "-5"])
def test_model_with_impossible_strength_metadata_is_a_model_error(value, shift, photo: Path, tmp_path: Path):
    bad = _model_with_meta(shift, tmp_path / "bad.onnx", **{"smile.strength_max": value})
    r = run(photo, "--model", bad)
    assert r.exit_code == 6, r.stderr
    one_error_line(r.stderr, "bad.onnx", "strength")
    assert not photo.with_suffix(".smile.png").exists()


def test_worker_huge_integer_is_a_bad_request(shift):
    reply = _worker(shift, {"cmd": "hello"})[0]
    assert reply["ok"]
    session = WorkerSession(str(shift))
    session.load_model()
    raw = b'{"id": 3, "cmd": "smile", "input": "a.png", "output": "b.png", "strength": ' + b"9" * 5000 + b"}\n"
    out = io.BytesIO()
    serve(session, io.BytesIO(raw + b'{"cmd": "hello", "id": 4}\n'), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()][1:]
    assert replies[0]["ok"] is False and replies[0]["error"]["code"] == "bad_request", replies[0]
    assert replies[1]["ok"] is True and replies[1]["id"] == 4


def test_install_plugin_krita_checks_kritarc_before_installing(tmp_path: Path):
    pykrita = tmp_path / "pykrita"
    (tmp_path / "rcdir").mkdir()
    r = run("install-plugin", "krita", "--dir", pykrita, "--kritarc", tmp_path / "rcdir")
    assert r.exit_code == 2, r.stderr
    one_error_line(r.stderr, "--kritarc", "folder")
    assert not pykrita.exists()
    (tmp_path / "afile").write_text("x")
    r = run("install-plugin", "krita", "--dir", pykrita, "--kritarc", tmp_path / "afile" / "kritarc")
    assert r.exit_code == 2 and not pykrita.exists(), r.stderr


def test_16bit_grey_alpha_round_trip(shift, astronaut, tmp_path: Path):
    import struct
    import zlib

    from smilecore.encode import save_image
    from smilecore.encode16 import png_chunk as _png_chunk

    grey = (astronaut.astype(np.uint16) @ np.array([77, 150, 29], np.uint16)).astype(np.uint16)  # 16-bit grey
    la = np.dstack([grey, np.full_like(grey, 50000)]).astype(">u2")
    h, w = grey.shape
    rows = b"".join(b"\x00" + row.tobytes() for row in la)
    src = tmp_path / "la16.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
                    + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))
    image, info = load_image(src)
    assert info.mode == "LA;16" and image.shape == (h, w, 2) and image.dtype == np.uint16
    assert np.array_equal(image[..., 0], grey) and np.all(image[..., 1] == 50000)
    r = run(src, "-o", tmp_path / "out.png", "--model", shift)
    assert r.exit_code == 0, r.stderr
    assert "note" not in r.stderr
    out, out_info = load_image(tmp_path / "out.png")
    assert out_info.mode == "LA;16" and out.shape == (h, w, 2)
    assert np.all(out[..., 1] == 50000)  # alpha untouched
    changed = out[..., 0] != grey
    assert 0 < changed.mean() < 0.5
    assert Path(tmp_path / "out.png").read_bytes()[25] == 4  # PNG colour type 4: grey + alpha
    # TIFF cannot hold 16-bit grey + alpha here: RGBA with a note, never silently
    r = run(src, "-o", tmp_path / "out.tif", "--model", shift)
    assert r.exit_code == 0 and "grey + alpha written as 16-bit RGBA" in r.stderr
    # round trip through save_image keeps the samples exactly
    save_image(tmp_path / "copy.png", image, info)
    again, again_info = load_image(tmp_path / "copy.png")
    assert again_info.mode == "LA;16" and np.array_equal(again, image)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_output_onto_a_fifo_or_device_is_refused(shift, photo: Path, tmp_path: Path):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    dev = tmp_path / "dev.png"
    dev.symlink_to(os.devnull)
    for target in (fifo, dev):
        r = run(photo, "-o", target, "--model", shift)
        assert r.exit_code == 7, r.stderr
        one_error_line(r.stderr, target.name, "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and dev.is_symlink()
    reply = _worker(shift, {"cmd": "smile", "input": str(photo), "output": str(fifo)})[0]
    assert reply["ok"] is False and reply["error"]["code"] == "write_failed" and "not a regular file" in reply["error"]["message"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("given", ["4.0000001", "-2.5", "1e9"])
def test_strength_out_of_range_is_shown_as_given(given, shift, photo: Path):
    r = run(photo, "-s", given, "--model", shift)
    assert r.exit_code == 2
    line = one_error_line(r.stderr, "outside")
    assert re.search(rf"--strength {re.escape(given if given != '1e9' else '1e+09')} is outside", line), line
    with pytest.raises(smilecore.UsageError, match="strength 4.0000001 is outside"):
        smilecore.smile(np.asarray(Image.open(photo)), strength=4.0000001, model=shift)


# ------------------------------------------------------------------ 10. install guides that work


def test_install_guides_lead_with_a_command_that_works():
    """The package is on no index yet: every guide installs from the checkout or a wheel built from it."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    hints = [REPO / "plugins" / "gimp" / "smile" / "smile.py", REPO / "plugins" / "krita" / "smile" / "engine.py"]
    for path in docs + hints:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"pip\S*\"? install\b.*\bsmile-filter\b", line):
                assert "published" in line or "index" in line, f"{path.name}:{number}: {line.strip()}"
    readme = (REPO / "README.md").read_text()
    assert "pip wheel" in readme


def test_a_ctrl_c_while_smile_is_still_loading_is_one_line(monkeypatch, capsys):
    """The imports take a moment; a Ctrl-C there ends the run as one a moment later would."""
    import builtins

    import cli.entry as entry

    real = builtins.__import__

    def interrupted(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 1 and name == "main":
            raise KeyboardInterrupt
        return real(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as stop:
        entry.main()
    assert stop.value.code == 130 and capsys.readouterr().err == "smile: interrupted (Ctrl-C)\n"


def test_a_stop_that_a_library_wrapped_in_its_own_error_is_still_a_stop(monkeypatch, capsys, shift, photo: Path,
                                                                        tmp_path: Path):
    """pybind11 turns a SIGTERM that arrives while onnxruntime's module is being set up into ``ImportError:
    initialization failed``: the run still ends as stopped by SIGTERM (143), not as a bug in that photo."""
    import cli.entry as entry
    from cli.interrupt import Terminated

    def set_up_when_stopped(*args, **kwargs):
        try:
            raise Terminated(signal.SIGTERM)
        except Terminated as stop:
            raise ImportError("initialization failed") from stop

    monkeypatch.setattr(smilecore, "smile", set_up_when_stopped)
    monkeypatch.setattr(sys, "argv", ["smile", str(photo), "-o", str(tmp_path / "r.png"), "--model", str(shift)])
    with pytest.raises(SystemExit) as stop:
        entry.main()
    assert stop.value.code == 143 and capsys.readouterr().err == "smile: interrupted (SIGTERM)\n"
    assert [p.name for p in tmp_path.iterdir()] == [photo.name]  # (no result, no temporary file)


def test_an_error_raised_while_a_stop_was_handled_is_that_stop():
    """What :func:`cli.interrupt.stop_behind` finds: the stop itself, one an error was raised from or while
    handling it, and nothing behind an ordinary error."""
    from cli.interrupt import Terminated, stop_behind

    stop = Terminated(signal.SIGHUP)
    try:
        try:
            raise stop
        except Terminated:
            raise OSError("could not remove the temporary file")
    except OSError as exc:
        assert stop_behind(exc) is stop
    assert stop_behind(stop) is stop and stop_behind(ValueError("x")) is None and stop_behind(None) is None
    loop = ValueError("a")
    loop.__context__ = ValueError("b")
    loop.__context__.__context__ = loop
    assert stop_behind(loop) is None


# ------------------------------------------------------------------ 11. links another user planted


def _other_uid() -> int:
    """A user id no account has: "another user" (root can give it files)."""
    import pwd

    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="giving a link to another user needs root (CI runs as root)")


def _plant(link: Path, to: Path, uid: int | None = None) -> Path:
    """A symbolic link ``link -> to`` that belongs to ``uid`` (default: another user)."""
    link.symlink_to(to)
    uid = _other_uid() if uid is None else uid
    os.lchown(link, uid, uid)
    return link


def _shared(folder: Path) -> Path:
    """A folder anyone may write in, like /tmp (sticky) or a shared folder."""
    folder.mkdir()
    folder.chmod(0o1777)
    return folder


@needs_root
def test_a_link_another_user_planted_is_not_written_through(shift, photo: Path, tmp_path: Path, monkeypatch):
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"keep me")
    shared = _shared(tmp_path / "shared")
    src = shared / "holiday.png"
    src.write_bytes(photo.read_bytes())
    _plant(shared / "holiday.smile.png", victim)
    r = run(src, "--model", shift)
    assert r.exit_code == 7, r.stderr
    one_error_line(r.stderr, "holiday.smile.png", "is a symbolic link (to", "name the result with -o")
    with monkeypatch.context() as m:  # -o and the worker's outputs are refused before any work is done
        m.setattr(smilecore, "smile", lambda *a, **k: pytest.fail("smiled for an output that is refused"))
        r = run(src, "-o", shared / "holiday.smile.png", "--model", shift)
        assert r.exit_code == 7, r.stderr
        one_error_line(r.stderr, "holiday.smile.png", "symbolic link of user id", f"points to {victim} (owned by",
                       "not theirs", "give that path itself")
        early = _worker(shift, {"cmd": "smile", "input": str(src), "output": str(shared / "holiday.smile.png")})
        assert early[0]["error"]["code"] == "write_failed", early
    reply = _worker(shift, {"cmd": "smile", "input": str(src), "output": str(shared / "holiday.smile.png")},
                    {"cmd": "smile", "input": str(src), "output": str(shared / "ok.png"),
                     "mask_output": str(shared / "holiday.smile.png")})
    for answer in reply:
        assert answer["ok"] is False and answer["error"]["code"] == "write_failed", answer
        assert "symbolic link of user id" in answer["error"]["message"]
    assert victim.read_bytes() == b"keep me"
    assert sorted(p.name for p in shared.iterdir()) == ["holiday.png", "holiday.smile.png"]  # (no result, no temp file)


@needs_root
def test_a_chain_of_links_through_another_users_link_is_refused(tmp_path: Path):
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"keep me")
    shared = _shared(tmp_path / "shared")
    _plant(shared / "planted.png", victim)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "out.png").symlink_to(shared / "planted.png")  # my link -> their link -> my file
    with pytest.raises(WriteError, match="planted.png is a symbolic link of user id"):
        write_atomic(mine / "out.png", lambda f: f.write(b"new"))
    assert victim.read_bytes() == b"keep me" and (mine / "out.png").is_symlink()


@needs_root
def test_no_file_and_no_folder_is_made_through_another_users_folder_link(shift, photo: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shared = _shared(tmp_path / "shared")
    _plant(shared / "albums", elsewhere)
    with pytest.raises(WriteError, match="albums is a symbolic link of user id"):
        write_atomic(shared / "albums" / "out.png", lambda f: f.write(b"new"))
    r = run(photo, "-o", shared / "albums" / "out.png", "--model", shift)
    assert r.exit_code == 7, r.stderr
    one_error_line(r.stderr, "out.png", "albums is a symbolic link")
    for option in (["--out-dir"], ["-o", tmp_path / "r.png", "--debug"]):
        r = run(photo, *option, shared / "albums" / "new", "--model", shift)
        assert r.exit_code == 7, r.stderr
        one_error_line(r.stderr, option[-1], "albums is a symbolic link")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "r.png").exists()


@needs_root
def test_links_of_my_own_of_root_or_of_another_user_to_their_own_are_followed(tmp_path: Path, monkeypatch):
    other = _other_uid()
    shared = _shared(tmp_path / "shared")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, other, other)
    for folder, uid in ((shared, os.geteuid()), (shared, other), (theirs, other)):  # mine; theirs to their own
        target = theirs / f"target-{uid}-{folder.name}.png"
        target.write_bytes(b"old")
        os.chown(target, uid, uid)
        link = _plant(folder / f"link-{uid}.png", target, uid)
        write_atomic(link, lambda f: f.write(b"new"))
        assert link.is_symlink() and target.read_bytes() == b"new"
    # a colleague's link to a folder of theirs, in a team folder (root's): a new result is made there
    team = tmp_path / "team"
    team.mkdir(mode=0o2775)
    _plant(team / "photos", theirs, other)
    write_atomic(team / "photos" / "a.smile.png", lambda f: f.write(b"new"))
    assert (theirs / "a.smile.png").read_bytes() == b"new"
    # root's link, for a user who is not root; another user's to what is not theirs is still refused
    root_link, their_link = _plant(shared / "root.png", theirs, 0), _plant(shared / "their.png", tmp_path, other)
    monkeypatch.setattr(os, "geteuid", lambda: other + 1)
    assert followed_links(root_link / "x.png") == theirs / "x.png"
    with pytest.raises(WriteError, match="their.png is a symbolic link"):
        followed_links(their_link / "x.png")


@needs_root
def test_a_link_another_user_planted_in_their_own_folder_is_not_written_through(shift, photo: Path, tmp_path: Path):
    """Their folder, their link, my file: the owner of a folder of photos shared with me plants the names of
    the results (``party.smile.png -> ~/.profile``); a new file of mine to be made through a link is
    refused the same way."""
    other = _other_uid()
    victim = tmp_path / "profile"
    victim.write_bytes(b"keep me")
    share = tmp_path / "share"
    share.mkdir(mode=0o777)
    os.chown(share, other, other)
    src = share / "party.png"
    src.write_bytes(photo.read_bytes())
    _plant(share / "party.smile.png", victim, other)
    r = run(src, "-o", share / "party.smile.png", "--model", shift)
    assert r.exit_code == 7, r.stderr
    one_error_line(r.stderr, "party.smile.png", "symbolic link of user id", "not theirs")
    mine = tmp_path / "mine"
    mine.mkdir()
    _plant(share / "new.png", mine / "autostart.png", other)
    with pytest.raises(WriteError, match="new.png is a symbolic link"):
        write_atomic(share / "new.png", lambda f: f.write(b"new"))
    assert victim.read_bytes() == b"keep me" and list(mine.iterdir()) == []


def test_a_result_smile_names_is_never_written_through_a_link_found_there(shift, photo: Path, tmp_path: Path):
    """An unpacked archive can hold ``beach.smile.png -> ../../.bashrc``, a link of one's own: a result whose
    name Smile made (beside the photo, or in --out-dir) is refused there (exit 7, the others still run); one
    the user named with -o is written through the link, as before."""
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"keep me")
    trip = tmp_path / "trip"
    trip.mkdir()
    for name in ("beach.png", "hill.png"):
        (trip / name).write_bytes(photo.read_bytes())
    (trip / "beach.smile.png").symlink_to(Path("..") / "bashrc")
    r = run(trip, "--model", shift)
    assert r.exit_code == 7, r.stderr
    one_error_line(r.stderr, "beach.smile.png", "is a symbolic link (to ../bashrc)", "name the result with -o")
    assert victim.read_bytes() == b"keep me" and (trip / "hill.smile.png").is_file()
    out = tmp_path / "out"
    out.mkdir()
    (out / "beach.smile.png").symlink_to(victim)
    r = run(trip / "beach.png", "--out-dir", out, "--model", shift)
    assert r.exit_code == 7 and victim.read_bytes() == b"keep me", r.stderr
    r = run(trip / "beach.png", "-o", trip / "beach.smile.png", "--model", shift)  # (named by the user)
    assert r.exit_code == 0 and victim.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr
    assert (trip / "beach.smile.png").is_symlink()


@needs_root
def test_a_link_of_roots_or_mine_in_another_users_folder_counts_as_theirs(tmp_path: Path, monkeypatch):
    """They may rename entries in their folder, and root's tar keeps an archive's owners: there, a link of
    root's (or mine) is followed only to what is theirs."""
    other = _other_uid()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, other, other)
    _plant(theirs / "party.smile.png", victim, 0)
    with pytest.raises(WriteError, match="a symbolic link in .*theirs, a folder of user id .*, who can replace it"):
        write_atomic(theirs / "party.smile.png", lambda f: f.write(b"new"))
    mine = _plant(theirs / "mine.png", victim, os.geteuid())
    monkeypatch.setattr(os, "geteuid", lambda: other + 1)  # (as a user who is not root)
    os.lchown(mine, other + 1, other + 1)
    with pytest.raises(WriteError, match="mine.png is a symbolic link in .*, a folder of user id"):
        followed_links(mine)
    own = theirs / "own.png"
    own.write_bytes(b"old")
    os.chown(own, other, other)
    assert followed_links(_plant(theirs / "to-own.png", own, 0)) == own  # (to what is theirs: followed)
    assert victim.read_bytes() == b"keep me"


@needs_root
def test_dot_dot_after_a_link_goes_up_from_where_the_link_points(tmp_path: Path):
    real, mine = tmp_path / "real", tmp_path / "mine"
    (real / "sub").mkdir(parents=True)
    mine.mkdir()
    (mine / "album").symlink_to(real / "sub")
    write_atomic(mine / "album" / ".." / "out.png", lambda f: f.write(b"new"))  # as the kernel goes: real/out.png
    assert (real / "out.png").read_bytes() == b"new" and not (mine / "out.png").exists()
    # and a link found there is checked: not mine/planted.png, which a reading of the text would check
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"keep me")
    real.chmod(0o1777)
    _plant(real / "planted.png", victim)
    (mine / "planted.png").write_bytes(b"harmless")
    with pytest.raises(WriteError, match="planted.png is a symbolic link of user id"):
        write_atomic(mine / "album" / ".." / "planted.png", lambda f: f.write(b"new"))
    assert victim.read_bytes() == b"keep me" and (mine / "planted.png").read_bytes() == b"harmless"


@needs_root
def test_debug_pictures_never_go_through_a_planted_link(shift, photo: Path, tmp_path: Path):
    victim, elsewhere = tmp_path / "bashrc", tmp_path / "elsewhere"
    victim.write_bytes(b"keep me")
    elsewhere.mkdir()
    debug = _shared(tmp_path / "debug")
    _plant(debug / "001-astro", elsewhere)  # the photo's folder: nothing is made through it
    r = run(photo, "-o", tmp_path / "a.png", "--debug", debug, "--model", shift)
    assert r.exit_code == 0 and "--debug: could not write pictures" in r.stderr, r.stderr
    assert list(elsewhere.iterdir()) == [] and (tmp_path / "a.png").is_file()
    (debug / "001-astro").unlink()
    _shared(debug / "001-astro")
    _plant(debug / "001-astro" / "faces.png", victim)  # a picture in it: not written through
    r = run(photo, "-o", tmp_path / "b.png", "--debug", debug, "--model", shift)
    assert r.exit_code == 0 and "faces.png is a symbolic link" in r.stderr, r.stderr
    assert victim.read_bytes() == b"keep me"


def test_debug_pictures_are_no_more_open_than_their_photo(shift, photo: Path, tmp_path: Path):
    photo.chmod(0o600)
    old = os.umask(0o022)
    try:
        r = run(photo, "-o", tmp_path / "out.png", "--debug", tmp_path / "debug", "--model", shift)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.stderr
    pictures = sorted((tmp_path / "debug").rglob("*"))
    assert len(pictures) > 4 and any(p.name == "faces.json" for p in pictures)
    for p in [tmp_path / "out.png", *pictures]:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))


# ------------------------------------------------------------------ 12. private working folders in the temporary folder


def _aged(path: Path, seconds: float) -> Path:
    """``path`` and what it holds made ``seconds`` old (the entries first: changing them touches the folder)."""
    t = time.time() - seconds
    for p in sorted(path.rglob("*"), reverse=True) if path.is_dir() and not path.is_symlink() else []:
        os.utime(p, (t, t), follow_symlinks=False)
    os.utime(path, (t, t), follow_symlinks=False)
    return path


def _left_folder(temp: Path, name: str, age: float, lock: bool = True, files: tuple = ("standard-input.jpg",)) -> Path:
    """A working folder as a killed run leaves it: a copy of a photo, its lock file (no longer held); a
    plug-in's request folder holds ``files=("input.png", "output.png")`` and no lock."""
    folder = temp / name
    folder.mkdir(mode=0o700)
    for file in files:
        (folder / file).write_bytes(b"\xff\xd8\xff a private photo")
    if lock:
        (folder / WORK_LOCK).write_bytes(b"")
    return _aged(folder, age)


def test_a_work_folder_is_private_locked_while_in_use_and_removed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with work_folder("smile-stdio-") as folder:
        assert folder.parent == tmp_path and folder.name.startswith("smile-stdio-")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        (folder / "standard-input.jpg").write_bytes(b"photo")
        with open(folder / WORK_LOCK, "rb") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _aged(folder, 2 * STALE_PLUGIN_SECONDS)
        assert remove_stale_work_folders(tmp_path) == [] and folder.is_dir()  # old, but in use
    assert not folder.exists()


def test_stale_work_folders_go_and_no_other(tmp_path: Path):
    old, young, plugin_old = STALE_WORK_SECONDS + 60, STALE_WORK_SECONDS - 60, STALE_PLUGIN_SECONDS + 60
    request = ("input.png", "output.png", ".mask.png.abcd1234.smile-tmp")
    gone = [_left_folder(tmp_path, "smile-stdio-dead1abc", old, files=("standard-input.part", "standard-output.jpg")),
            _left_folder(tmp_path, "smile-faces-dead2abc", old, lock=False, files=()),  # (killed before its lock)
            _left_folder(tmp_path, "smile-krita-dead3abc", plugin_old, lock=False, files=request)]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.jpg").write_bytes(b"keep")
    linked = _left_folder(tmp_path, "smile-stdio-linked12", old, files=())
    (linked / "standard-input.jpg").symlink_to(outside / "keep.jpg")  # (Smile never leaves a link there)
    named = _left_folder(tmp_path, "smile-faces-archives", old, files=())
    (named / "faces.mkv" / "2019").mkdir(parents=True)  # (a folder, though named as Smile's file)
    loose = _left_folder(tmp_path, "smile-stdio-umask022", old)
    loose.chmod(0o755)  # (made by mkdir, not mkdtemp)
    for folder in (linked, named, loose):
        _aged(folder, old)
    busy = _left_folder(tmp_path, "smile-gimp-busy1234", plugin_old, lock=False, files=request)
    locked = _left_folder(tmp_path, "smile-stdio-locked12", old)
    a_file = tmp_path / "smile-stdio-file1234"
    a_file.write_bytes(b"a file, not a folder")
    kept = [_left_folder(tmp_path, "smile-stdio-young123", young),
            _left_folder(tmp_path, "smile-gimp-young123", plugin_old - 120, lock=False, files=request),
            busy, locked, _left_folder(tmp_path, "not-smile-stdio-x1234567", old), _aged(a_file, old),
            # a user's own folders whose names start like Smile's, or that hold what Smile's never do
            _left_folder(tmp_path, "smile-krita-plugin", plugin_old, lock=False, files=request),
            _left_folder(tmp_path, "smile-stdio-notes", old),
            _left_folder(tmp_path, "smile-gimp-abcd1234", plugin_old, lock=False, files=("input.png", "controller.py")),
            _left_folder(tmp_path, "smile-stdio-abcd1234", old, lock=False, files=("todo.txt",)),
            _left_folder(tmp_path, "smile-faces-abcd1234", old, files=("faces.mkv", "holiday.mkv")),
            linked, named, loose]
    sub = tmp_path / "smile-krita-abcd1234"
    (sub / "smile").mkdir(parents=True)
    kept.append(_aged(sub, plugin_old))
    (busy / "output.png").write_bytes(b"just written")  # (its newest file counts, not the folder's time)
    os.utime(busy, (time.time() - plugin_old,) * 2)
    link = tmp_path / "smile-stdio-link1234"
    link.symlink_to(outside)
    os.utime(link, (time.time() - old,) * 2, follow_symlinks=False)
    with open(locked / WORK_LOCK, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = remove_stale_work_folders(tmp_path)
    assert sorted(removed) == sorted(gone) and not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept) and link.is_symlink() and (outside / "keep.jpg").read_bytes() == b"keep"
    assert (linked / "standard-input.jpg").is_symlink() and (named / "faces.mkv" / "2019").is_dir()
    # a library's first work folder sweeps Smile's own kinds only, not the editors' request folders
    again = _left_folder(tmp_path, "smile-gimp-again123", plugin_old, lock=False, files=request)
    assert again not in remove_stale_work_folders(tmp_path, plugins=False) and again.exists()
    assert remove_stale_work_folders(tmp_path) == [again]


def test_the_sweep_and_a_work_folder_do_without_a_temporary_folder_or_file_locks(tmp_path: Path, monkeypatch):
    """A read-only container has no usable temporary folder: the sweep has nothing to do; a file system
    without locks (Lustre without ``flock``) still gives a work folder, which the sweep then cannot lock
    either, so it is kept while in use."""
    def no_temp():
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", no_temp)
    assert remove_stale_work_folders() == []
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def no_locks(fd, how):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with work_folder("smile-stdio-") as folder:
        _aged(folder, 2 * STALE_PLUGIN_SECONDS)
        assert remove_stale_work_folders(tmp_path) == [] and folder.is_dir()
    assert not folder.exists()
    # where folders have no modes (Windows: every one reads 0o777), a killed run's folder is still taken
    monkeypatch.undo()
    monkeypatch.delattr(os, "geteuid")
    left = _left_folder(tmp_path, "smile-stdio-windows1", STALE_WORK_SECONDS + 60)
    left.chmod(0o777)
    assert remove_stale_work_folders(tmp_path) == [left] and not left.exists()


@needs_root
def test_another_users_work_folder_is_never_removed(tmp_path: Path):
    theirs = _left_folder(tmp_path, "smile-stdio-theirs12", 10 * STALE_PLUGIN_SECONDS)
    os.chown(theirs, _other_uid(), _other_uid())
    _aged(theirs, 10 * STALE_PLUGIN_SECONDS)
    assert remove_stale_work_folders(tmp_path) == [] and (theirs / "standard-input.jpg").exists()


def test_a_killed_runs_folder_goes_with_the_next_run_and_the_worker(shift, photo: Path, tmp_path: Path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    p = subprocess.Popen([sys.executable, "-m", "smile_cli", "-", "-o", tmp_path / "out.jpg", "--model", shift],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        p.stdin.write(b"\xff\xd8\xff a private photo, half sent")
        p.stdin.flush()
        deadline = time.monotonic() + TIMEOUT
        while not list(temp.glob("smile-stdio-*/standard-input.part")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
    [left] = list(temp.glob("smile-stdio-*"))
    worker = [sys.executable, "-m", "smile_cli", "worker", "--model", str(shift)]
    w = subprocess.run(worker, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=TIMEOUT)
    assert w.returncode == 0, w.stderr
    assert (left / "standard-input.part").exists()  # young: maybe a run still reading
    _aged(left, STALE_WORK_SECONDS + 60)
    w = subprocess.run(worker, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=TIMEOUT)
    assert w.returncode == 0, w.stderr
    assert not left.exists()
    # the next smile run too
    left = _left_folder(temp, "smile-faces-killed12", STALE_WORK_SECONDS + 60)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    r = run(photo, "-o", tmp_path / "out.png", "--model", shift)
    assert r.exit_code == 0, r.stderr
    assert not left.exists() and not list(temp.glob("smile-*"))
