"""Standard output for reports: a reader that goes away never stops the work.

``smile folder/ | head -1`` must still write every photo: when the reader closes the pipe
(EPIPE) the report is silenced and the run goes on.  A stdout that cannot be written at all
(``> /dev/full``, a full disk) is remembered and reported once, after the photos, as a write
failure (exit 7), not as an internal error.
"""
from __future__ import annotations

import errno
import os
import sys

import click

from smilecore.errors import WriteError, system_reason


def silence_stdout(stream=None) -> None:
    """Point standard output's file descriptor (that of ``stream``, default ``sys.stdout``) at the null
    device, so later writes and Python's exit-time flush neither fail nor complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stream or sys.stdout).fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class Report:
    """Writes report lines to stdout (``stream``, default ``sys.stdout`` as it is when a line is written) and
    remembers whether that worked.

    ``gone``: the reader closed the pipe (not an error: the exit status still says whether the
    photos were written).  ``error``: stdout could not be written (a :class:`WriteError`).
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream  # (None: sys.stdout when a line is written)
        self.gone = False
        self.error: WriteError | None = None

    def echo(self, text: str, bar=None) -> None:
        """Print one line (through the tqdm progress ``bar`` if one is shown); never raises."""
        if self.gone or self.error is not None:
            return
        try:
            stream = self.stream or sys.stdout
            if bar is not None and not bar.disable:
                bar.write(text, file=stream)
                stream.flush()
            else:
                click.echo(text, file=stream)  # flushes
        except OSError as exc:
            silence_stdout(self.stream)
            if isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPIPE, errno.ECONNRESET):
                self.gone = True
            else:
                self.error = WriteError(f"standard output: cannot write the report ({system_reason(exc)})")
        except ValueError:  # stdout closed inside this process
            self.gone = True

    def exit_code(self, code: int, done: str = "") -> int:
        """The run's exit status: ``code``, or 7 when the work succeeded but the report could not be
        written (said on stderr in one line, followed by ``done``, e.g. "; the photos were written")."""
        if self.error is None:
            return code
        try:
            click.echo(f"smile: error: {self.error}{done}", err=True)
        except (OSError, ValueError):
            pass
        return code or self.error.exit_code
