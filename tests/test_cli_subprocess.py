"""The real `smile` process (`python -m smile_cli`): exit statuses and one-line errors, no tracebacks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def smile(*args, model: Path | None = None, cwd: Path | None = None, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if model is not None:
        env["SMILE_MODEL"] = str(model)
    return subprocess.run([*prefix, sys.executable, "-m", "smile_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_photo_to_json_report(fixture_models, tmp_path: Path, astronaut):
    src = tmp_path / "astro.jpg"
    Image.fromarray(astronaut).save(src, quality=88)
    blank = tmp_path / "blank.jpg"
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(blank)
    p = smile(src, blank, "--out-dir", tmp_path / "out", "--keep-unchanged", "--json", model=fixture_models["shift"])
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [ph["status"] for ph in doc["photos"]] == ["ok", "unchanged"]
    out = tmp_path / "out" / "astro.smile.jpg"
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (512, 512)
    assert "Traceback" not in p.stderr


def test_errors_are_one_line_with_documented_codes(fixture_models, tmp_path: Path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("just text")
    cases = [
        ((fake,), 4, "holiday.jpg: not an image"),
        ((tmp_path / "absent.png",), 4, "absent.png: no such file"),
        ((fake, "--strength", "much"), 2, "--strength"),
        (("models", "frobnicate"), 2, "frobnicate"),
    ]
    for args, code, words in cases:
        p = smile(*args, model=fixture_models["identity"], cwd=tmp_path)
        assert p.returncode == code, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("smile: error:") and words in lines[0], p.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["holiday.jpg"]


#: Runs a command without the privileges that let root read and write any folder.
_UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


@pytest.fixture
def locked(tmp_path: Path):
    """``lock(folder)`` takes every permission from ``folder``; yields the command prefix under which
    that is enforced ([] for a user, setpriv without root's override for root), skipping the test
    where it cannot be (Windows, root without setpriv); the folders are unlocked afterwards."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    prefix = [] if os.geteuid() != 0 else _UNPRIVILEGED
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("root writes into read-only folders and setpriv is missing to drop that")
    probe = tmp_path / "probe"
    probe.mkdir(mode=0)
    try:
        seen = subprocess.run([*prefix, sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(probe)],
                              capture_output=True, timeout=60)
    finally:
        probe.rmdir()
    if seen.returncode == 0:
        pytest.skip("folder permissions are not enforced here")
    folders: list[Path] = []

    def lock(folder: Path) -> None:
        folder.chmod(0)
        folders.append(folder)

    yield prefix, lock
    for folder in folders:
        folder.chmod(0o755)


def test_a_folder_that_may_not_be_opened_fails_its_photos_alone(fixture_models, tmp_path: Path, astronaut, locked):
    prefix, lock = locked
    Image.fromarray(astronaut).save(tmp_path / "ast.jpg", quality=88)
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(tmp_path / "wall.jpg")  # no face: exit 3
    for sub in ("d", "tree/ok", "tree/locked", "tree/.hidden"):
        (tmp_path / sub).mkdir(parents=True)
        shutil.copy(tmp_path / "ast.jpg", tmp_path / sub / "ast.jpg")
    before = (tmp_path / "ast.jpg").read_bytes()
    for folder in ("d", "tree/locked", "tree/.hidden"):
        lock(tmp_path / folder)
    cases = [  # (arguments, exit status, the one error line, the results written)
        (("ast.jpg", "d/ast.jpg", "--out-dir", "o1"), 4, "d/ast.jpg: permission denied (cannot open the folder d)",
         ["o1/ast.smile.jpg"]),
        (("wall.jpg", "d/ast.jpg", "ast.jpg", "--out-dir", "o2", "-j", "2"), 3, None, ["o2/ast.smile.jpg"]),
        (("d", "-o", "x.jpg"), 4, "d: permission denied (cannot list the photos in this folder)", []),
        (("tree", "-r", "--out-dir", "o3"), 4, "tree/locked: permission denied (cannot list the photos in this folder)",
         ["o3/ok/ast.smile.jpg"]),
        (("detect", "d"), 4, "d: permission denied (cannot list the photos in this folder)", []),
        (("detect", "d/ast.jpg", "ast.jpg"), 4, "d/ast.jpg: permission denied (cannot open the folder d)", []),
        (("ast.jpg", "--selection", "d/m.png", "-o", "y.jpg"), 4,
         "d/m.png (the --selection mask): permission denied (cannot open the folder d)", []),
        (("ast.jpg", "-o", "d/x.jpg"), 7, "-o d/x.jpg: permission denied (cannot open the folder d)", []),
        (("ast.jpg", "--out-dir", "d/sub"), 7, "--out-dir d/sub: permission denied (cannot open the folder d)", []),
    ]
    for args, code, line, written in cases:
        r = smile(*args, model=fixture_models["shift"], cwd=tmp_path, prefix=prefix)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("smile:")]
        assert r.returncode == code, (args, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        if line is not None:
            assert errors == [f"smile: error: {line}"], (args, r.stderr)
        else:  # the first photo that failed sets the status; the locked one is still said
            assert errors[1] == "smile: error: d/ast.jpg: permission denied (cannot open the folder d)", r.stderr
        for name in written:
            with Image.open(tmp_path / name) as im:
                assert im.format == "JPEG", name
        if args[:2] == ("detect", "d/ast.jpg"):  # (the photo after it is still listed)
            assert r.stdout.startswith("ast.jpg: face 0: box"), r.stdout
        if args[0] == "tree":
            assert ".hidden" not in r.stderr  # (hidden folders stay skipped, locked or not)
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "y.jpg").exists()
    assert (tmp_path / "ast.jpg").read_bytes() == before
    r = smile("tree", "-r", "--out-dir", "o4", "--json", model=fixture_models["shift"], cwd=tmp_path, prefix=prefix)
    doc = json.loads(r.stdout)
    assert r.returncode == 4 and doc["summary"]["exit_code"] == 4
    assert [(p["input"], p["status"], p["error"] and p["error"]["code"]) for p in doc["photos"]] == [
        ("tree/locked", "failed", "bad_input"), ("tree/ok/ast.jpg", "ok", None)]


def _file_size_limit(limit: int):
    """A ``preexec_fn`` capping the files the child writes at ``limit`` bytes, as a full disk would: the
    write crossing it is cut short (and the next one fails, EFBIG, instead of killing the child)."""
    import resource
    import signal

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return cap


@pytest.mark.skipif(os.name != "posix", reason="POSIX file size limit")
@pytest.mark.parametrize("exif_bytes, out", [(0, "out.jpg"), (60000, "out.jpg"), (0, "out.tif")])
def test_a_result_the_disk_cannot_hold_is_an_error_and_leaves_nothing(fixture_models, tmp_path: Path, astronaut,
                                                                      exif_bytes, out):
    """A result whose last bytes do not fit (a short write, which Pillow's JPEG encoder did not check) is exit 7
    and no file; one that would fit only without its EXIF is not written without it (the disk is to blame)."""
    exif = Image.Exif()
    if exif_bytes:
        exif[0x010E] = "x" * exif_bytes  # ImageDescription
    Image.fromarray(astronaut).save(tmp_path / "ast.jpg", quality=88, exif=exif.tobytes())
    before = (tmp_path / "ast.jpg").read_bytes()
    args = [sys.executable, "-m", "smile_cli", "ast.jpg", "-o", out]  # (TIFF: libtiff's encoder said 'encoder error -2')
    env = {**os.environ, "SMILE_MODEL": str(fixture_models["shift"])}
    whole = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert whole.returncode == 0, whole.stderr
    size = (tmp_path / out).stat().st_size
    (tmp_path / out).unlink()
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                       preexec_fn=_file_size_limit(size - 1))
    assert r.returncode == 7, r.stderr
    assert r.stderr.splitlines() == [f"smile: error: {out}: could not write it (file too large)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ast.jpg"]  # (no result, no temporary file)
    assert (tmp_path / "ast.jpg").read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX file size limit")
def test_a_temporary_folder_without_room_for_standard_input_says_what_to_do(fixture_models, tmp_path: Path, astronaut):
    """Before: '... in /tmp/smile-stdio-c8qwgghg (File too large)', a folder of smile's own, removed by then."""
    Image.fromarray(astronaut).save(tmp_path / "ast.jpg", quality=88)
    temp = tmp_path / "temp"
    temp.mkdir()
    with open(tmp_path / "ast.jpg", "rb") as stdin:
        r = subprocess.run([sys.executable, "-m", "smile_cli", "-", "-o", "out.jpg"], stdin=stdin, capture_output=True,
                           text=True, cwd=tmp_path, timeout=300, preexec_fn=_file_size_limit(10000),
                           env={**os.environ, "SMILE_MODEL": str(fixture_models["shift"]), "TMPDIR": str(temp)})
    assert r.returncode == 7, r.stderr
    assert r.stderr.splitlines() == [f"smile: error: cannot keep the photo from standard input in {temp} (file too "
                                     "large): set TMPDIR to a folder with room for it, or give the photo as a file"]
    assert list(temp.iterdir()) == [] and not (tmp_path / "out.jpg").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file size limit")
def test_a_video_result_the_disk_cannot_hold_is_exit_7_in_one_line(fixture_models, tmp_path: Path, astronaut):
    """Before: exit 1, 'clip.mp4: internal error PyAVCallbackError: [Errno 1447131472] Error in PyAV callback: ...
    (please report it)': a write failing while a frame is muxed leaves PyAV's error for the output's close,
    raised with the OSError behind it."""
    pytest.importorskip("av")
    from smilecore.video_synth import make_clip

    make_clip(tmp_path / "clip.mp4", astronaut, size=(320, 240), frames=48, audio=False)
    r = subprocess.run([sys.executable, "-m", "smile_cli", "clip.mp4", "-o", "out.mp4"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300, preexec_fn=_file_size_limit(2000),
                       env={**os.environ, "SMILE_MODEL": str(fixture_models["shift"])})
    assert r.returncode == 7, r.stderr
    assert r.stderr.splitlines() == ["smile: error: out.mp4: could not write it (file too large)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # (no result, no temporary file)
