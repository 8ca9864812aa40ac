"""``-`` as a photo: ``smile - -o - < a.jpg > b.jpg`` through real pipes.

The result reaches standard output only whole (nothing on a failure), the report's lines go to
standard error while standard output carries the photo, and each misuse is one line with its
exit status.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smile_cli import stdio
from smilecore.decode import extension_of_bytes


def smile(*args, stdin: bytes | None = None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smile_cli", *map(str, args)], input=stdin if stdin is not None else b"",
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def portrait_jpeg(astronaut) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_standard_input_to_standard_output(tmp_path, portrait_jpeg, astronaut, shift):
    r = smile("-", "-o", "-", "--model", shift, stdin=portrait_jpeg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().strip().startswith("<stdin> -> <stdout>: 1 of 1 face smiled")
    with Image.open(io.BytesIO(r.stdout)) as im:
        assert im.format == "JPEG" and im.size == (512, 512)
        got = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(got[120:160, 190:250] - astronaut[120:160, 190:250]).mean() > 3  # her mouth moved
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    (tmp_path / "in.jpg").write_bytes(portrait_jpeg)
    assert smile("in.jpg", "-o", "file.jpg", "--model", shift, cwd=tmp_path).returncode == 0
    assert (tmp_path / "file.jpg").read_bytes() == r.stdout  # the same bytes as a file would get
    for name in ("in.jpg", "file.jpg"):
        (tmp_path / name).unlink()

    # '-' alone writes to standard output; --ext picks its format; a file can be the target too
    r = smile("-", "--ext", "png", "--model", shift, stdin=portrait_jpeg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    r = smile("-", "-o", "out.webp", "--model", shift, "--json", stdin=portrait_jpeg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert b'"input": "<stdin>"' in r.stdout and (tmp_path / "out.webp").is_file()


def test_a_failed_run_writes_nothing_to_standard_output(tmp_path, shift):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (90, 120, 150)).save(wall)
    r = smile(wall, "-o", "-", "--model", shift, cwd=tmp_path)
    assert r.returncode == 3 and r.stdout == b""
    assert r.stderr.decode().strip().splitlines() == [f"smile: error: {wall}: no face found in the photo "
                                                      "(--keep-unchanged copies such photos as they are)"]
    r = smile(wall, "-o", "-", "--keep-unchanged", "--model", shift, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == wall.read_bytes()  # copied as it is


@pytest.mark.parametrize("args, stdin, code, message", [
    (("-",), b"", 4, "<stdin>: nothing arrived on standard input"),
    (("-", "-o", "x.jpg"), b"hello, not a photo", 4, "<stdin>: not a photo Smile can read"),
    (("-", "-o", "-", "--json"), b"\xff\xd8\xff", 2, "--json would go too"),
    (("-", "a.jpg", "-o", "x.jpg"), b"", 2, "PHOTO '-' (standard input) must be the only photo"),
    (("-", "--in-place"), b"\xff\xd8\xff", 2, "standard input has no file to replace"),
    (("a.jpg", "b.jpg", "-o", "-"), b"", 2, "-o"),
    (("-", "--suffix", ".x"), b"\xff\xd8\xff", 2, "--suffix names results after their photos, but this one goes to standard output"),
])
def test_misuse_is_one_line(tmp_path, portrait_jpeg, args, stdin, code, message):
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(portrait_jpeg)
    r = smile(*args, stdin=stdin, cwd=tmp_path)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == code and len(lines) == 1 and message in lines[0], r.stderr
    assert b"Traceback" not in r.stderr and r.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]


def test_a_reader_that_goes_away_is_exit_7(tmp_path, astronaut, shift):
    big = tmp_path / "big.png"
    Image.fromarray(astronaut).resize((2400, 2400)).save(big)
    smile_proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(big), "-o", "-", "--model", str(shift)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    smile_proc.stdout.read(100)
    smile_proc.stdout.close()  # the reader stops after 100 bytes
    err = smile_proc.stderr.read().decode()
    assert smile_proc.wait(timeout=300) == 7
    assert "smile: error: standard output was closed before the whole result was written" in err


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_a_reader_that_stops_early_is_exit_7_and_never_a_success_line(tmp_path, astronaut, shift, unbuffered):
    # a photo of less than 1 MiB but more than a pipe holds: under -u one short write(2) took 64 KiB
    # of it and the rest was dropped with exit 0; and the success line came before the write
    photo = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(photo)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"} if unbuffered else {k: v for k, v in os.environ.items()
                                                                      if k != "PYTHONUNBUFFERED"}
    for keep in (100, 0):  # | head -c 100, and | true (a reader that reads nothing)
        proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(photo), "-o", "-", "--model", str(shift)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
        got = proc.stdout.read(keep) if keep else b""
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 7, err
        assert len(got) == keep
        assert err.strip().splitlines() == ["smile: error: standard output was closed before the whole result was written"]
    r = subprocess.run([sys.executable, "-m", "smile_cli", str(photo), "-o", "-", "--model", str(shift)],
                       capture_output=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr.decode().startswith(f"{photo} -> <stdout>: 1 of 1 face smiled")
    assert smile(photo, "-o", "file.png", "--model", shift, cwd=tmp_path).returncode == 0
    assert len(r.stdout) > 1 << 16 and r.stdout == (tmp_path / "file.png").read_bytes()  # every byte


class _Trickle(io.RawIOBase):
    """A raw stream that takes at most ``most`` bytes a write, None (would block) every third write,
    and raises BrokenPipeError once it holds ``room`` bytes."""

    def __init__(self, most: int, room: int | None = None):
        self.got, self.most, self.room, self.calls = bytearray(), most, room, 0

    def writable(self):
        return True

    def write(self, data):
        self.calls += 1
        if self.room is not None and len(self.got) >= self.room:
            raise BrokenPipeError(32, "Broken pipe")
        if self.calls % 3 == 0:
            return None
        n = min(len(data), self.most)
        self.got += bytes(data[:n])
        return n


def test_write_stdout_writes_every_byte_of_short_writes_or_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(stdio, "silence_stdout", lambda *stream: None)  # (pytest's own stdout stays)
    monkeypatch.setattr(stdio, "_wait_writable", lambda out: None)
    result = tmp_path / "standard-output.png"
    data = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()  # 3 chunks of 1 MiB
    result.write_bytes(data)
    out = _Trickle(most=65536)
    stdio.write_stdout(result, out)
    assert bytes(out.got) == data and out.calls > len(data) // 65536
    with pytest.raises(stdio.WriteError, match="^standard output was closed before the whole result was written$"):
        stdio.write_stdout(result, _Trickle(most=65536, room=65536))
    stuck = _Trickle(most=0)
    with pytest.raises(stdio.WriteError, match=r"^standard output: cannot write the result \(it took no bytes\)$"):
        stdio.write_stdout(result, stuck)


def test_standard_streams_that_are_terminals_are_refused(monkeypatch, tmp_path):
    class Tty(io.BytesIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    with pytest.raises(stdio.UsageError, match="standard input, which is a terminal"):
        stdio.read_stdin(tmp_path)
    monkeypatch.setattr(sys, "stdout", Tty())
    with pytest.raises(stdio.UsageError, match="standard output, which is a terminal"):
        stdio.check_stdout_free()


@pytest.mark.parametrize("fmt, ext", [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"), ("WEBP", ".webp"), ("BMP", ".bmp")])
def test_the_format_on_standard_input_is_read_from_its_bytes(fmt, ext):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, fmt)
    assert extension_of_bytes(buf.getvalue()[:64]) == ext
    assert extension_of_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 52) is None  # an MP4 video


def test_errors_name_standard_input_not_a_temporary_file(tmp_path, portrait_jpeg):
    cut = portrait_jpeg[:5000]
    for args in (("-", "-o", "x.jpg"), ("detect", "-")):
        r = smile(*args, stdin=cut, cwd=tmp_path)
        assert r.returncode == 4, r.stderr
        (line,) = r.stderr.decode().strip().splitlines()
        assert line.startswith("smile: error: <stdin>: the image data is corrupt or truncated") and "smile-stdio" not in line


def test_detect_reads_standard_input(tmp_path, portrait_jpeg):
    r = smile("detect", "-", "--json", stdin=portrait_jpeg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    (entry,) = json.loads(r.stdout)
    assert entry["input"] == "<stdin>" and len(entry["faces"]) == 1


def test_a_folder_or_a_photo_without_extension_goes_to_standard_output_in_its_format(tmp_path, portrait_jpeg, shift):
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "a.jpg").write_bytes(portrait_jpeg)
    (tmp_path / "scan").write_bytes(portrait_jpeg)  # a JPEG named without an extension
    for photo in ("shots", "shots/*", "scan"):
        r = smile(photo, "-o", "-", "--model", shift, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(b"\xff\xd8\xff")
    # a refused plan names the option and <stdout>, never the temporary file standing for it
    r = smile("scan", "-o", "-", "--ext", "gif", "--model", shift, cwd=tmp_path)
    (line,) = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and line.startswith("smile: error: --ext gif is not a format") and r.stdout == b""
    (tmp_path / "notes.txt").write_text("not a photo")
    r = smile("notes.txt", "-o", "-", "--model", shift, cwd=tmp_path)
    (line,) = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and "<stdout>" in line and "smile-stdio" not in line, line


def test_closed_standard_streams_are_one_line(tmp_path, portrait_jpeg, shift):
    import os

    (tmp_path / "in.jpg").write_bytes(portrait_jpeg)
    for args, closed, code, message in ((("in.jpg", "-o", "-"), 1, 7, "standard output, which is closed"),
                                        (("-", "-o", "x.jpg"), 0, 2, "standard input, which is closed")):
        r = subprocess.run([sys.executable, "-m", "smile_cli", *args, "--model", str(shift)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, timeout=300,
                           preexec_fn=lambda fd=closed: os.close(fd))
        (line,) = r.stderr.decode().strip().splitlines()
        assert r.returncode == code and message in line, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg"]


def test_standard_output_that_is_the_photo_itself_is_refused(tmp_path, portrait_jpeg, shift):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(portrait_jpeg)
    with open(photo, "ab") as out:  # smile p.jpg -o - >> p.jpg
        r = subprocess.run([sys.executable, "-m", "smile_cli", str(photo), "-o", "-", "--model", str(shift)],
                           stdout=out, stderr=subprocess.PIPE, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and photo.read_bytes() == portrait_jpeg
    assert r.stderr.decode().strip() == (f"smile: error: -o - writes the result to standard output, which is {photo} "
                                         "itself: redirect it to another file")


def test_standard_input_has_a_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(stdio, "MAX_STDIN_BYTES", 3 << 20)
    with pytest.raises(stdio.InputError, match="more than 0 GiB arrived on standard input"):
        stdio.read_stdin(tmp_path, io.BytesIO(b"\xff\xd8\xff" + b"\x00" * (4 << 20)))
    assert stdio.read_stdin(tmp_path, io.BytesIO(b"\xff\xd8\xff" + b"\x00" * (2 << 20))).name == "standard-input.jpg"


def _private_copy_modes(tmp_path: Path, data: bytes) -> dict[str, int]:
    """The permissions of the copy read_stdin keeps, for standard input a file (0600, 0640), a pipe, a socket."""
    import socket
    import stat
    import threading

    modes = {}
    for mode in (0o600, 0o640):
        src = tmp_path / f"photo-{mode:o}.jpg"
        src.write_bytes(data)
        src.chmod(mode)
        with open(src, "rb") as f:
            modes[f"file {mode:o}"] = stat.S_IMODE(stdio.read_stdin(_fresh(tmp_path, f"f{mode:o}"), f).stat().st_mode)
    r, w = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    feeder.start()
    with open(r, "rb") as f:
        modes["pipe"] = stat.S_IMODE(stdio.read_stdin(_fresh(tmp_path, "pipe"), f).stat().st_mode)
    feeder.join()
    a, b = socket.socketpair()
    feeder = threading.Thread(target=lambda: (a.sendall(data), a.shutdown(socket.SHUT_WR)))
    feeder.start()
    with a, b, open(os.dup(b.fileno()), "rb") as f:  # (a socket's mode reads 0777)
        modes["socket"] = stat.S_IMODE(stdio.read_stdin(_fresh(tmp_path, "socket"), f).stat().st_mode)
        feeder.join()
    return modes


def _fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def test_the_copy_of_standard_input_is_as_private_as_its_file_or_private(tmp_path, portrait_jpeg):
    old = os.umask(0o022)
    try:
        modes = _private_copy_modes(tmp_path, portrait_jpeg)
    finally:
        os.umask(old)
    assert modes == {"file 600": 0o600, "file 640": 0o640, "pipe": 0o600, "socket": 0o600}


def test_a_result_from_a_private_standard_input_is_private_and_so_are_its_debug_pictures(tmp_path, portrait_jpeg,
                                                                                       shift):
    import socket
    import stat
    import threading

    private = tmp_path / "private.jpg"
    private.write_bytes(portrait_jpeg)
    private.chmod(0o600)
    a, b = socket.socketpair()  # (Node's child_process gives a socket)
    feeder = threading.Thread(target=lambda: (a.sendall(portrait_jpeg), a.shutdown(socket.SHUT_WR)))
    feeder.start()
    with a, b, open(private, "rb") as f:
        for stdin, name in ((f, "file"), (b, "socket")):
            r = subprocess.run([sys.executable, "-m", "smile_cli", "-", "-o", f"{name}.jpg", "--debug", f"debug-{name}",
                                "--model", str(shift)], stdin=stdin, capture_output=True, cwd=tmp_path, timeout=300,
                               preexec_fn=lambda: os.umask(0o022))
            assert r.returncode == 0, r.stderr
            written = [tmp_path / f"{name}.jpg", *(tmp_path / f"debug-{name}").rglob("*")]
            assert len(written) > 5
            for p in written:
                assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))
    feeder.join()


def test_standard_input_that_cannot_be_read_is_not_blamed_on_the_temporary_folder(tmp_path):
    """Before: '... (input/output error): set TMPDIR to a folder with room for it, ...', said of any error."""
    class Failing(io.BytesIO):
        def read(self, *args):
            raise OSError(5, "Input/output error")

    folder = tmp_path / "smile-stdio-x"
    folder.mkdir()
    with pytest.raises(stdio.WriteError) as caught:
        stdio.read_stdin(folder, Failing())
    assert str(caught.value) == (f"cannot keep the photo from standard input in {tmp_path} (input/output error): "
                                 "give the photo as a file")
