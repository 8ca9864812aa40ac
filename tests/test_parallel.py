"""Issue #19, part 1: ``smile PHOTO... -j N`` (cli/parallel.py).

The same bytes and the same report as ``-j 1``, in input order; a failing photo's status and the
run's exit status; a worker that crashes fails only its photo; Ctrl-C / SIGTERM / SIGHUP stop
every worker and leave no temporary file; options are checked before any worker writes.

Hooks into the workers (a slow writer, a crashing reader) go through a ``sitecustomize`` module
on PYTHONPATH: workers are fresh processes, so a monkeypatch in this one would not reach them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from batch_reports import comparable, file_bytes
from fixture_model import build_fixture_model
from smile_cli import parallel
from smile_cli.main import cli
from smilecore.atomic import TEMP_SUFFIX

TIMEOUT = 300


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def batch(tmp_path: Path, astronaut) -> list[Path]:
    """Small photos of several kinds, a text file and a faceless picture, in a folder."""
    d = tmp_path / "in"
    d.mkdir()
    a = astronaut[::2, ::2]  # 256 x 256: fast
    paths = []
    Image.fromarray(a).save(d / "a.jpg", quality=90)
    (d / "b.jpg").write_text("not a photo")
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(d / "c.png")
    Image.fromarray(np.roll(a, 9, axis=1)).save(d / "d.png")
    Image.fromarray(np.roll(a, 5, axis=0)).save(d / "e.webp", lossless=True)
    Image.fromarray(np.concatenate([a, np.full(a.shape[:2] + (1,), 200, np.uint8)], 2)).save(d / "f.png")
    Image.fromarray(a[:, ::-1]).save(d / "g.jpg", quality=80)
    import cv2

    cv2.imwrite(str(d / "h16.png"), np.roll(a, 3, axis=1)[..., ::-1].astype(np.uint16) * 257)  # 16-bit RGB
    for name in ("a.jpg", "b.jpg", "c.png", "d.png", "e.webp", "f.png", "g.jpg", "h16.png"):
        paths.append(d / name)
    return paths


@pytest.mark.parametrize("keep", [False, True])
def test_j2_writes_the_same_bytes_and_report_as_j1(keep, shift, batch, tmp_path: Path):
    docs, outs = {}, {}
    for j in (1, 2):
        out = tmp_path / f"out{j}"
        extra = ["--keep-unchanged"] if keep else []
        r = run(batch[0].parent, "--out-dir", out, "--model", shift, "--json", "-j", j, *extra)
        assert r.exit_code == 4, r.stderr  # b.jpg (not an image) is the first failure, before c.png's no face
        docs[j] = comparable(json.loads(r.stdout))
        outs[j] = file_bytes(out)
    assert outs[1] == outs[2] and len(outs[1]) == (7 if keep else 6)
    assert docs[1] == docs[2]
    photos = docs[2]["photos"]
    assert [Path(p["input"]).name for p in photos] == [p.name for p in batch]
    assert [p["status"] for p in photos] == ["ok", "failed", "unchanged" if keep else "failed", "ok", "ok", "ok", "ok", "ok"]
    assert photos[1]["error"]["exit_code"] == 4 and docs[2]["summary"]["exit_code"] == 4
    if not keep:
        assert photos[2]["error"]["code"] == "no_face"


def test_lines_come_in_input_order_and_the_status_is_the_first_failure(shift, batch, tmp_path: Path):
    order = [batch[2], batch[0], batch[3], batch[1]]  # no face (3) first, then a text file (4)
    r = run(*order, "--out-dir", tmp_path / "o", "--model", shift, "-j", 2)
    assert r.exit_code == 3, r.stderr
    assert [ln.split(" ->")[0] for ln in r.stdout.splitlines()] == [str(batch[0]), str(batch[3])]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("smile: error:")]
    assert [e.split(": ")[2] for e in errors] == [str(batch[2]), str(batch[1])]
    assert "4 photos: 2 smiled, 0 unchanged, 2 failed" in r.stderr
    assert "Traceback" not in r.stderr


def test_j1_and_a_single_photo_stay_in_this_process(shift, batch, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(parallel, "PhotoPool", lambda *a, **k: pytest.fail("a worker pool was started"))
    assert run(batch[0], batch[3], "--out-dir", tmp_path / "o", "--model", shift, "-j", 1).exit_code == 0
    assert run(batch[0], "--out-dir", tmp_path / "p", "--model", shift, "-j", 4).exit_code == 0


def test_more_jobs_than_photos_and_in_place(shift, batch, tmp_path: Path):
    photos = [batch[0], batch[3], batch[6]]
    copies = []
    for j in (1, 3):
        d = tmp_path / f"c{j}"
        d.mkdir()
        for p in photos:
            (d / p.name).write_bytes(p.read_bytes())
        r = run(*(d / p.name for p in photos), "--in-place", "--model", shift, "-j", 8 if j == 3 else 1, "-q")
        assert r.exit_code == 0 and r.stdout == "", r.stderr
        copies.append(file_bytes(d))
    assert copies[0] == copies[1] and all(copies[0][p.name] != p.read_bytes() for p in photos)


def test_bad_model_and_bad_strength_stop_before_any_photo(shift, batch, tmp_path: Path):
    wrong = build_fixture_model(tmp_path / "wrong.onnx", contract_version="999")
    out = tmp_path / "o"
    r = run(batch[0], batch[3], "--out-dir", out, "--model", wrong, "-j", 2)
    assert r.exit_code == 6 and "contract" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run(batch[0], batch[3], "--out-dir", out, "--model", shift, "-j", 2, "--strength", 9)
    assert r.exit_code == 2 and "outside this model's range" in r.stderr, r.stderr
    r = run(batch[0], batch[3], "--out-dir", out, "--model", tmp_path / "absent.onnx", "-j", 2)
    assert r.exit_code == 6, r.stderr
    assert not out.exists()  # (no result, and no --out-dir left behind: the run was refused)
    assert run(batch[0], "-j", 0).exit_code == 2


def test_debug_pictures_are_numbered_as_with_j1(shift, batch, tmp_path: Path):
    trees = []
    for j in (1, 2):
        dbg = tmp_path / f"dbg{j}"
        r = run(batch[0], batch[3], "--out-dir", tmp_path / f"o{j}", "--model", shift, "-j", j, "--debug", dbg)
        assert r.exit_code == 0, r.stderr
        trees.append(sorted(str(p.relative_to(dbg)) for p in dbg.rglob("*")))
    assert trees[0] == trees[1] and any(t.startswith("002-") for t in trees[0])


def test_remove_orphan_temps_only_takes_unlocked_files_of_its_target(tmp_path: Path):
    import fcntl

    dead = tmp_path / (".r.png.ab3_x9k2" + TEMP_SUFFIX)
    live = tmp_path / (".r.png.zz3_x9k2" + TEMP_SUFFIX)
    other = tmp_path / (".s.png.ab3_x9k2" + TEMP_SUFFIX)
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    with open(live, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert parallel.remove_orphan_temps(tmp_path / "r.png") == [dead]
    assert live.exists() and other.exists()


# ---------------------------------------------------------------------- real processes, hooks

_HOOKS = """
import os, signal, sys, time
from pathlib import Path
mode = os.environ.get("SMILE_TEST_HOOK", "")
marker = Path(os.environ.get("SMILE_TEST_MARKER", "/nonexistent"))
if mode in ("slow", "stubborn", "slow_named"):
    import smilecore.atomic as io
    original = io.write_atomic
    def slow(target, write, **kw):
        if mode == "slow_named" and "slow" not in Path(target).name:
            return original(target, write, **kw)
        def slowly(f):
            f.write(b"x" * 4096)
            f.flush()
            if mode == "stubborn":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(marker, "a") as m:
                m.write(f"{os.getpid()}\\n")
            time.sleep(120)
            write(f)
        original(target, slowly, **kw)
    io.write_atomic = slow
if mode == "crash":
    import smilecore.decode as io
    import smile_cli.photo as photo
    original_load = io.load_image
    def load(path, *a, **k):
        if "crash" in Path(path).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return original_load(path, *a, **k)
    photo.load_image = load
"""


def _smile(args, tmp_path: Path, hook: str, **kw) -> subprocess.Popen:
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(_HOOKS)
    env = dict(os.environ, SMILE_TEST_HOOK=hook, SMILE_TEST_MARKER=str(tmp_path / "marker"),
               PYTHONPATH=os.pathsep.join([str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # as from a terminal: a test runner started in the background inherits SIGINT ignored, and a
    # process started with a signal ignored keeps ignoring it (Python and smile both respect that)
    return subprocess.Popen([sys.executable, "-m", "smile_cli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals, **kw)


def _default_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def _wait_for_writers(proc, marker: Path, n: int) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if marker.exists() and len(marker.read_text().split()) >= n:
            return [int(x) for x in marker.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(proc.communicate())


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("sig, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C"),
                                               (signal.SIGHUP, 129, "SIGHUP")])
def test_a_signal_mid_batch_stops_every_worker_and_leaves_nothing(sig, status, name, shift, batch, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    photos = [batch[0], batch[3], batch[5], batch[6]]
    proc = _smile([*photos, "--out-dir", out, "--model", shift, "-j", 2], tmp_path, "slow")
    pids = _wait_for_writers(proc, tmp_path / "marker", 2)  # both workers are half-way through a file
    assert len([p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]) == 2
    proc.send_signal(sig)  # to the main process only (a terminal's Ctrl-C reaches the workers too: blocked there)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert f"smile: interrupted ({name})" in err and "Traceback" not in err, err
    assert not out.exists() or list(out.iterdir()) == []  # (an --out-dir the run made, left empty, goes too)
    assert _gone(pids)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("as_json", [False, True])
def test_a_stop_reports_every_photo_written_even_out_of_order(as_json, shift, batch, tmp_path: Path):
    """Ctrl-C to the whole process group, twice (as GNU timeout sends it), while one worker hangs on a photo and the
    other has finished the two after it: one line, no traceback, and every result written is reported."""
    out = tmp_path / "out"
    out.mkdir()
    slow = batch[0].with_name("b_slow.png")
    Image.open(batch[3]).save(slow)
    photos = [batch[0], slow, batch[3], batch[6]]
    proc = _smile([*photos, "--out-dir", out, "--model", shift, "-j", 2, *(["--json"] if as_json else [])], tmp_path,
                  "slow_named", start_new_session=True)
    _wait_for_writers(proc, tmp_path / "marker", 1)
    done = {"a.smile.jpg", "d.smile.png", "g.smile.jpg"}
    deadline = time.monotonic() + TIMEOUT
    while not done <= {p.name for p in out.iterdir()} and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert {p.name for p in out.iterdir()} == done  # (the slow photo's temporary file is removed)
    if as_json:
        doc = json.loads(stdout)
        assert doc["interrupted"] == "SIGINT" and doc["summary"]["total"] == 3 and doc["summary"]["exit_code"] == 130
        assert doc["summary"]["not_done"] == 1
        assert sorted(Path(e["output"]).name for e in doc["photos"]) == sorted(done)
    else:
        assert [line.split(" -> ")[1].split(":")[0] for line in stdout.splitlines()] == [
            str(out / n) for n in ("a.smile.jpg", "d.smile.png", "g.smile.jpg")]
        assert "smile: stopped after 3 of 4 inputs: 3 results written" in err
    assert err.strip().endswith("smile: interrupted (Ctrl-C)")


def test_a_worker_that_ignores_sigterm_is_killed_and_its_file_removed(shift, batch, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _smile([batch[0], batch[3], "--out-dir", out, "--model", shift, "-j", 2], tmp_path, "stubborn")
    pids = _wait_for_writers(proc, tmp_path / "marker", 2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert time.monotonic() - t0 < parallel.GRACE_SECONDS + 20
    assert not out.exists() or list(out.iterdir()) == []
    assert _gone(pids)


def test_a_crashed_worker_fails_only_its_photo(shift, batch, tmp_path: Path):
    crash = batch[0].with_name("crash.png")
    crash.write_bytes(batch[3].read_bytes())
    photos = [batch[0], crash, batch[3], batch[5], batch[6]]
    proc = _smile([*photos, "--out-dir", tmp_path / "out", "--model", shift, "-j", 2, "--json"], tmp_path, "crash")
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, err
    doc = json.loads(out)
    assert [Path(p["input"]).name for p in doc["photos"]] == [p.name for p in photos]
    assert [p["status"] for p in doc["photos"]] == ["ok", "failed", "ok", "ok", "ok"]
    assert "worker process" in doc["photos"][1]["error"]["message"] and "SIGKILL" in doc["photos"][1]["error"]["message"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.smile.jpg", "d.smile.png", "f.smile.png", "g.smile.jpg"]
    assert "Traceback" not in err


def test_a_closed_stdout_never_stops_the_workers(shift, batch, tmp_path: Path):
    photos = [batch[0], batch[3], batch[5], batch[6]]
    args = [sys.executable, "-m", "smile_cli", *map(str, photos), "--out-dir", str(tmp_path / "o"), "--model", str(shift), "-j", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and b"error" not in err, err
    assert len(list((tmp_path / "o").iterdir())) == 4


def test_photos_and_a_video_in_one_batch(shift, batch, tmp_path: Path):
    pytest.importorskip("av")
    from smilecore.video_synth import make_clip

    picture = np.asarray(Image.open(Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg").convert("RGB"))
    clip = make_clip(tmp_path / "in" / "v.mp4", picture, size=(320, 240), frames=8, face_height=0.95).path
    docs = []
    for j in (1, 2):
        r = run(batch[0], clip, batch[3], "--out-dir", tmp_path / f"o{j}", "--model", shift, "-j", j, "--json")
        assert r.exit_code == 0, r.stderr
        docs.append(comparable(json.loads(r.stdout)))
    for d in docs:
        for p in d["photos"]:
            (p.get("video") or {}).pop("processing_fps", None)
    assert docs[0] == docs[1]
    assert [Path(p["input"]).name for p in docs[1]["photos"]] == ["a.jpg", "v.mp4", "d.png"]
    o1, o2 = file_bytes(tmp_path / "o1"), file_bytes(tmp_path / "o2")
    assert sorted(o1) == ["a.smile.jpg", "d.smile.png", "v.smile.mp4"] == sorted(o2)
    assert [k for k in o1 if o1[k] != o2[k] and not k.endswith(".mp4")] == []
    # (an MP4's header bytes can differ from run to run, -j or not: its frames may not)
    from smilecore.video_synth import read_frames

    frames = [read_frames(tmp_path / f"o{j}" / "v.smile.mp4") for j in (1, 2)]
    assert len(frames[0]) == len(frames[1]) == 8 and all(np.array_equal(a, b) for a, b in zip(*frames))
