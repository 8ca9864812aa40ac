"""``-`` as a photo: read from standard input, written to standard output (``smile - < a.jpg > b.jpg``).

The photo read from standard input is first copied to a private temporary folder (so it is read
as any photo is, with its metadata, and the pixel limit applies before it is decoded), named for
the format its first bytes show; a result for standard output is written there too, then copied
to standard output only once it is whole, so a failed run writes nothing there.  While standard
output carries the photo, the report's lines go to standard error.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from smilecore.decode import extension_of_bytes
from smilecore.errors import InputError, UsageError, WriteError, system_reason

from .stdout import silence_stdout

#: The name that stands for standard input (as PHOTO) and standard output (as ``-o``).
STDIO = "-"

#: Most bytes taken from standard input (a 200 MP photo of 16-bit RGBA, uncompressed, is 1.6 GB).
MAX_STDIN_BYTES = 4 << 30

#: What the report calls standard input and output.
STDIN_NAME, STDOUT_NAME = "<stdin>", "<stdout>"

def read_stdin(folder: Path, stream: BinaryIO | None = None) -> Path:
    """Copy the photo on standard input (``stream``: a binary stream, default ``sys.stdin``'s) into
    ``folder``, named ``standard-input.EXT`` for its format; :class:`UsageError` when standard input
    is a terminal or closed, :class:`InputError` when what arrives is empty or not a photo Smile reads."""
    if stream is None:
        if sys.stdin is None:  # (started with standard input closed: smile - <&-)
            raise UsageError("PHOTO '-' reads standard input, which is closed: pipe a photo into it "
                             "(smile - -o out.jpg < photo.jpg)")
        if sys.stdin.isatty():
            raise UsageError("PHOTO '-' reads standard input, which is a terminal: pipe a photo into it "
                             "(smile - -o out.jpg < photo.jpg)")
        stream = sys.stdin.buffer
    part = folder / "standard-input.part"
    try:
        if os.path.lexists(part):  # (an earlier try's, refused: the new copy gets its own permissions)
            os.unlink(part)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), stdin_mode(stream))
        with open(fd, "wb") as f:
            kept = 0
            while chunk := stream.read(1 << 20):
                kept += len(chunk)
                if kept > MAX_STDIN_BYTES:
                    raise InputError(f"{STDIN_NAME}: more than {MAX_STDIN_BYTES >> 30} GiB arrived on standard input, "
                                     "more than any photo within the pixel limit holds; give a file instead")
                f.write(chunk)
    except OSError as exc:  # (the folder that holds it named, not smile's own in it)
        full = exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
        raise WriteError(f"cannot keep the photo from standard input in {folder.parent} ({system_reason(exc)}): "
                         f"{'set TMPDIR to a folder with room for it, or ' if full else ''}give the photo as a file") from None
    with open(part, "rb") as f:
        head = f.read(64)
    if not head:
        raise InputError(f"{STDIN_NAME}: nothing arrived on standard input")
    ext = extension_of_bytes(head)
    if ext is None:
        raise InputError(f"{STDIN_NAME}: not a photo Smile can read (JPEG, PNG, TIFF, WebP, BMP, AVIF or HEIC; "
                         "a video must be given as a file)")
    photo = folder / f"standard-input{ext}"
    os.replace(part, photo)
    return photo


def stdin_mode(stream: BinaryIO) -> int:
    """The permissions the copy of standard input ``stream`` takes, which its result and ``--debug``
    pictures follow: the group's and others' of the file it reads (``smile - < private.jpg``: 0600 stays
    0600), read and write for the owner; else 0600
    (a pipe, a socket as Node's child_process gives, a stream with no file: the source is unknown)."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # (io.UnsupportedOperation is an OSError)
        return 0o600
    return (st.st_mode & 0o077) | 0o600 if stat.S_ISREG(st.st_mode) else 0o600  # (always the owner's to read)


def result_extension(photo: str, recursive: bool = False, skip_suffix: str | None = None) -> str:
    """The extension of the result ``-o -`` writes, in the format of PHOTO (a file, or a folder or
    glob pattern that holds one photo): the photo's own extension when it names a format Smile writes
    (or a video), else the format its first bytes show (a photo named without an extension), else
    its extension as it is (the run then says what is wrong)."""
    from smilecore.encode import OUTPUT_FORMATS
    from smilecore.video_streams import is_video_path

    from .inputs import expand_inputs

    found = expand_inputs([photo], recursive=recursive, skip_suffix=skip_suffix)
    path = found[0][0] if len(found) == 1 else Path(photo)
    try:
        if path.suffix.lower() in OUTPUT_FORMATS or is_video_path(path) or not path.is_file():
            return path.suffix  # (a named pipe is never opened here: the run refuses it)
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return path.suffix
    return extension_of_bytes(head) or path.suffix


def check_stdout_free() -> None:
    """:class:`UsageError` when standard output is a terminal (a photo must not be printed there),
    :class:`WriteError` when it is closed (nothing could receive the photo)."""
    if sys.stdout is None:  # (started with standard output closed: smile photo.jpg -o - >&-)
        raise WriteError("-o - writes the result to standard output, which is closed: redirect it "
                         "(smile photo.jpg -o - > out.jpg) or name a file with -o")
    if sys.stdout.isatty():
        raise UsageError("-o - writes the result to standard output, which is a terminal: redirect it "
                         "(smile photo.jpg -o - > out.jpg) or name a file with -o")


def check_stdout_is_not(photos) -> None:
    """:class:`UsageError` when standard output is one of the files ``photos`` (``smile a.jpg -o - >>
    a.jpg`` would append the result to the photo it reads)."""
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return
    for photo in photos:
        try:
            st = os.stat(photo)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise UsageError(f"-o - writes the result to standard output, which is {photo} itself: "
                             "redirect it to another file")


def write_stdout(result: Path, out: BinaryIO | None = None) -> None:
    """Copy the finished ``result`` to standard output (``out``: a binary stream, default
    ``sys.stdout``'s); :class:`WriteError` (exit 7) if it cannot be written whole (the reader went
    away, the disk behind it is full).  Every byte is written or the error follows: with ``python -u``
    or ``PYTHONUNBUFFERED`` standard output is a raw stream, whose writes may take fewer bytes than
    they are given (a pipe whose reader stops reading), so each chunk is written until it is all out."""
    try:
        if out is None:
            sys.stdout.flush()  # (nothing may be left behind in the text layer)
            out = sys.stdout.buffer
        with open(result, "rb") as f:
            while chunk := f.read(1 << 20):
                _write_all(out, memoryview(chunk))
        out.flush()
    except OSError as exc:
        silence_stdout(out)  # (the stream written to: sys.stdout may point elsewhere by now)
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)) or exc.errno in (errno.EPIPE, errno.ECONNRESET):
            raise WriteError("standard output was closed before the whole result was written") from None
        raise WriteError(f"standard output: cannot write the result ({system_reason(exc)})") from None


def _write_all(out: BinaryIO, data: memoryview) -> None:
    """Write all of ``data`` to ``out``, a buffered or raw stream, blocking or not."""
    while data:
        try:
            n = out.write(data)
        except BlockingIOError as exc:  # (a non-blocking buffered stream: part of it may have gone)
            data = data[exc.characters_written:]
            _wait_writable(out)
            continue
        if n is None:  # (a non-blocking raw stream that took nothing)
            _wait_writable(out)
            continue
        if n <= 0:
            raise OSError(errno.EIO, "it took no bytes")
        data = data[n:]


def _wait_writable(out: BinaryIO) -> None:
    """Wait until ``out``'s file can take bytes again (a non-blocking pipe that is full)."""
    import select

    try:
        select.select([], [out.fileno()], [], 1.0)
    except (OSError, ValueError, AttributeError):
        import time

        time.sleep(0.01)


def rename_in_error(exc: BaseException | None, names: dict[str, str] | None) -> None:
    """Say ``<stdin>`` / ``<stdout>`` in ``exc``'s message where it names the temporary files that
    stand for them (``names``: file → name)."""
    if exc is None or not names:
        return
    if isinstance(getattr(exc, "message", None), str):  # (a SmileError's text)
        exc.message = rename_text(exc.message, names)
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (rename_text(exc.args[0], names), *exc.args[1:])


def rename_text(text: str, names: dict[str, str] | None) -> str:
    """``text`` with each temporary file of ``names`` replaced by the name that stands for it."""
    for path, name in (names or {}).items():
        text = text.replace(path, name)
    return text
