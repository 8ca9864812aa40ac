"""``smile worker``: the long-lived engine process the editor plug-ins talk to.

Protocol: docs/worker-protocol.md (JSON lines on stdin/stdout; pixels through files).
The model is loaded once, at start.  Nothing but protocol lines reaches stdout: the
original stdout is kept for replies and file descriptor 1 is pointed at stderr, so a
library that prints cannot corrupt the stream.  A malformed request gets an error reply,
never a crash; a client that goes away (EOF or EPIPE) ends the worker with status 0.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import IO

import click

from smilecore.errors import ImageTooLargeError, SmileError, UsageError
from smilecore.signals import deferred_signals

from ..inputs import check_no_clash, unreachable
from ..interrupt import ClientGone
from ..version import smile_version
from .fields import (BAD_REQUEST, BadRequest, check_destination, error_dict, faces_field, finite_float, min_face_field,
                     no_constant, path_field, strength_field)

PROTOCOL_VERSION = 1
#: Longest accepted request line, in bytes (without the newline).
MAX_LINE = 1 << 20

#: PNG compression level of the files the worker writes for plug-ins (temporary: speed over size).
FAST_PNG = 1


class WorkerSession:
    """State of one worker: the loaded model, and the request handlers."""

    def __init__(self, model_choice: str | None = None, log: IO[str] | None = None, verbose: bool = False):
        self.model_choice = model_choice
        self.model = None
        self.model_error: SmileError | None = None
        self.log = log or sys.stderr
        self.verbose = verbose
        self._cmd_seen: str | None = None  #: the known command of the request being answered
        self.done = False
        self.emit = None  #: function(dict) sending an event line (set by :func:`serve`; used for video progress)
        #: signals held since a result and its mask were put in place, until the reply saying so is sent
        self.held = contextlib.ExitStack()

    # ------------------------------------------------------------------ model
    def load_model(self) -> None:
        """Load the model (once); remember the error instead of failing."""
        import smilecore

        try:
            self.model = smilecore.load_model(self.model_choice)
            self.model_error = None
        except SmileError as exc:
            self.model, self.model_error = None, exc
            self._log(f"model not loaded: {exc}")

    def model_label(self) -> str | None:
        """``"name version"`` of the loaded model, or None."""
        return f"{self.model.name} {self.model.version}" if self.model is not None else None

    def about(self) -> dict:
        """What the greeting and ``hello`` say about the engine and its model: protocol, versions,
        the model's ``strength_range`` ([min, max], the plug-ins' slider) and ``crop_size``
        (both null without a model), and ``model_error`` when the model could not be loaded."""
        model = self.model
        out = {"protocol": PROTOCOL_VERSION, "version": smile_version(), "model": self.model_label(),
               "strength_range": None if model is None else [float(v) for v in model.strength_range],
               "crop_size": None if model is None else int(model.size)}
        if self.model_error is not None:
            out["model_error"] = error_dict(self.model_error)
        return out

    def greeting(self) -> dict:
        """The first line the worker prints."""
        return {"event": "ready", **self.about()}

    # ------------------------------------------------------------------ requests
    def handle_line(self, raw: bytes) -> dict:
        """Answer one request line (without its newline); with ``verbose``, log how long each took and how it ended."""
        t0 = time.perf_counter()
        reply = self._answer(raw)
        if self.verbose:
            cmd = self._cmd_seen or "request"
            how = "done" if reply.get("ok") else f"failed ({reply.get('error', {}).get('code')})"
            self._log(f"{cmd} {how} in {time.perf_counter() - t0:.2f} s")
        return reply

    def _answer(self, raw: bytes) -> dict:
        req_id = None
        self._cmd_seen = None
        try:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("request is not UTF-8 text") from None
            try:
                req = json.loads(text, parse_constant=no_constant, parse_float=finite_float)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise BadRequest(f"request is not valid JSON ({getattr(exc, 'msg', 'too deeply nested')})") from None
            except ValueError as exc:  # e.g. an integer of thousands of digits (Python's conversion limit)
                raise BadRequest(f"request has a value that cannot be read ({' '.join(str(exc).split())[:120]})") from None
            if not isinstance(req, dict):
                raise BadRequest("a request must be a JSON object like {\"cmd\": \"hello\"}")
            req_id = req.get("id")
            cmd = req.get("cmd")
            if not isinstance(cmd, str):
                raise BadRequest("request has no \"cmd\" string")
            handler = getattr(self, f"_cmd_{cmd}", None)
            if handler is None:
                raise BadRequest(f"unknown cmd {cmd!r} (known: hello, smile, detect, quit)")
            self._cmd_seen = cmd
            reply = handler(req)
            return {"id": req_id, "ok": True, **reply}
        except BadRequest as exc:
            return {"id": req_id, "ok": False, "error": {"code": BAD_REQUEST, "message": str(exc)}}
        except UsageError as exc:  # e.g. a face index that does not exist, a selection of the wrong size
            return {"id": req_id, "ok": False, "error": {"code": BAD_REQUEST, "message": str(exc)}}
        except SmileError as exc:
            error = error_dict(exc)
            if isinstance(exc, ImageTooLargeError):  # the worker's limit is its environment's, not an option
                error["message"] = error["message"].replace("raise it with --max-pixels",
                                                            "raise it with SMILE_MAX_PIXELS in the worker's environment")
            return {"id": req_id, "ok": False, "error": error}
        except MemoryError:
            return {"id": req_id, "ok": False, "error": {"code": "too_large", "message": "out of memory for this image"}}
        except PermissionError as exc:  # a file behind a folder that may not be opened (smilecore.decode leaves it to us)
            from smilecore.errors import InputError, one_line

            name = exc.filename if isinstance(exc.filename, str) else "a file of the request"
            return {"id": req_id, "ok": False, "error": error_dict(InputError(one_line(unreachable(name, exc))))}
        except Exception as exc:  # a bug: report it and keep serving
            self._log(f"internal error: {type(exc).__name__}: {exc}")
            msg = f"internal error {type(exc).__name__}: {' '.join(str(exc).split())[:200]} (please report it)"
            return {"id": req_id, "ok": False, "error": {"code": "internal", "message": msg}}

    def _cmd_hello(self, req: dict) -> dict:
        return self.about()

    def _cmd_quit(self, req: dict) -> dict:
        self.done = True
        return {"bye": True}

    def _cmd_detect(self, req: dict) -> dict:
        import smilecore
        from smilecore.decode import env_max_pixels, load_image

        path = path_field(req, "input", required=True)
        min_face = min_face_field(req)
        from smilecore.errors import InputError
        from smilecore.video_streams import is_video_path

        if is_video_path(path):
            raise InputError(f"{path}: a video; detect lists the faces of photos (the reply to smile lists a video's tracked faces)")
        image, info = load_image(path, max_pixels=env_max_pixels())
        faces = smilecore.detect_faces(image, min_face=min_face)
        return {"faces": [f.to_dict(("index", "box", "score", "edited")) for f in faces],
                "size": list(info.size)}

    def _cmd_smile(self, req: dict) -> dict:
        import numpy as np
        from PIL import Image

        import smilecore
        from smilecore.decode import env_max_pixels, load_image, load_mask
        from smilecore.encode import save_image

        src = path_field(req, "input", required=True)
        dst = path_field(req, "output", required=True)
        from ..video import is_video_path, video_format, worker_video

        if is_video_path(src):  # a clip: progress events, then the reply (docs/worker-protocol.md)
            check_no_clash({"input": src}, {"output": dst})
            check_destination(dst, video_format)
            return worker_video(self, req, src, dst, self.emit)
        strength = strength_field(req)
        faces = faces_field(req)
        min_face = min_face_field(req)
        sel_path = path_field(req, "selection")
        mask_path = path_field(req, "mask_output")
        # refuse impossible destinations, and any that would replace what is read, before any work is done
        check_no_clash({"input": src, "selection": sel_path}, {"output": dst, "mask_output": mask_path})
        for target in (dst, mask_path):
            if target:
                check_destination(target)
        if self.model is None:
            self.load_model()  # the file may have been fixed since the start
            if self.model is None:
                raise self.model_error
        limit = env_max_pixels()
        image, info = load_image(src, max_pixels=limit)
        selection = load_mask(sel_path, max_pixels=limit) if sel_path else None
        try:
            result = smilecore.smile(image, strength=strength, faces=faces, min_face=min_face, selection=selection,
                                     model=self.model, max_pixels=limit)
        except SmileError as exc:
            raise type(exc)(f"{src}: {exc}") from None
        t0 = time.perf_counter()
        mask_notes: list[str] = []
        new_mask: list[str] = []  # (the mask's path once written where no file was)
        write_mask = None
        both = contextlib.ExitStack()
        if mask_path:  # all or nothing: written once the result is complete, just before it replaces dst
            mask = (np.clip(result.mask, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            was_there = os.path.lexists(mask_path)

            def mask_then_result() -> None:
                both.enter_context(deferred_signals())  # (a signal waits until the result is in place too)
                mask_notes.extend(save_image(mask_path, Image.fromarray(mask, "L"), None, png_compression=FAST_PNG,
                                             like=src))
                if not was_there:
                    new_mask.append(mask_path)

            write_mask = mask_then_result
        written = False
        try:
            with both:
                notes = save_image(dst, result.image, info, png_compression=FAST_PNG, before_replace=write_mask)
                written = True
                self.held.enter_context(both.pop_all())  # (a signal now waits until the reply is sent: serve())
        except BaseException:
            for path in [] if written else new_mask:  # (the mask written, the result's last step failed)
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        notes += mask_notes
        timings = dict(result.timings)
        timings["save"] = time.perf_counter() - t0
        return {
            "output": dst,
            "mask_output": mask_path,
            "faces": [f.to_dict() for f in result.faces],
            "timings": {k: round(float(v), 4) for k, v in timings.items()},
            "notes": list(info.notes) + notes,  # (what reading the photo found, e.g. a burst, then what saving it did)
        }

    def _log(self, text: str) -> None:
        try:
            print(f"smile worker: {text}", file=self.log, flush=True)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------- the loop


def read_request(stream: IO[bytes]) -> tuple[bytes | None, bool]:
    """Read one line; returns ``(line without newline, too_long)``; ``(None, False)`` at EOF."""
    line = stream.readline(MAX_LINE + 2)  # (the limit is the request's: its "\r\n" or "\n" is not counted)
    if not line:
        return None, False
    if line.endswith(b"\n") and len(line.rstrip(b"\r\n")) <= MAX_LINE:
        return line[:-1].rstrip(b"\r"), False
    if not line.endswith(b"\n") and len(line) <= MAX_LINE:  # last line, no newline
        return line, False
    if line.endswith(b"\n"):
        return b"", True
    while True:  # too long: skip the rest of it
        more = stream.readline(MAX_LINE)
        if not more or more.endswith(b"\n"):
            return b"", True


def write_all(stream: IO[bytes], data: bytes) -> None:
    """Write every byte of ``data``: a raw stream (the worker's stdout is unbuffered) may take only part
    of a long reply in one call, and a reply cut short would be a broken protocol line."""
    view = memoryview(data)
    while view:
        try:
            n = stream.write(view)
        except BlockingIOError as exc:  # a non-blocking pipe that is full: wait for the client to read
            n = exc.characters_written
            if not n:
                time.sleep(0.01)
        if n is None:  # raw non-blocking stream, nothing written
            time.sleep(0.01)
            continue
        view = view[n:]


def serve(session: WorkerSession, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Greet, then answer requests until ``quit``, EOF or a closed stdout; returns the exit status."""

    def send(obj: dict) -> bool:
        try:
            line = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        except (TypeError, ValueError) as exc:  # a reply that is not JSON: a bug, answer it as one
            msg = f"internal error: reply cannot be encoded as JSON ({' '.join(str(exc).split())[:200]})"
            line = json.dumps({"id": None, "ok": False, "error": {"code": "internal", "message": msg}}).encode("utf-8") + b"\n"
        try:
            write_all(stdout, line)
            stdout.flush()
            return True
        except (BrokenPipeError, ConnectionResetError, ValueError):  # client gone (ValueError: closed file)
            return False
        except OSError as exc:
            if getattr(exc, "errno", None) in (32, 104):
                return False
            raise

    session.emit = send
    if not send(session.greeting()):
        return 0
    while not session.done:
        try:
            raw, too_long = read_request(stdin)
        except (OSError, ValueError):
            return 0
        if raw is None:
            return 0
        if too_long:
            reply = {"id": None, "ok": False, "error": {"code": BAD_REQUEST, "message": f"request line longer than {MAX_LINE} bytes refused"}}
            if session.verbose:
                session._log("request failed (bad_request) in 0.00 s")
        elif not raw.strip():
            continue
        else:
            try:
                reply = session.handle_line(raw)
            except ClientGone:  # (its stdout closed while a video ran)
                return 0
        try:
            if not send(reply):
                return 0
        finally:
            session.held.close()  # (a signal that came while a result and its mask were put in place: now)
    return 0


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """stdin/stdout as binary streams; in a real process, also move fd 1 to stderr (see module doc)."""
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    try:
        fd = sys.stdout.fileno()
        sys.stdout.flush()
        proto_fd = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)
        out = os.fdopen(proto_fd, "wb", buffering=0)
        sys.stdout = sys.stderr  # stray prints go to the log
        return stdin, out
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return stdin, getattr(sys.stdout, "buffer", sys.stdout)


WORKER_HELP = """Serve editor plug-ins: JSON requests on stdin, one reply per line on stdout.

Started by the GIMP and Krita plug-ins (see docs/worker-protocol.md); the model is loaded
once and reused.  Try it by hand:

\b
  echo '{"cmd": "hello", "id": 1}' | smile worker
  echo '{"cmd": "smile", "input": "a.png", "output": "b.png"}' | smile worker
"""


@click.command(help=WORKER_HELP, short_help="Serve editor plug-ins over JSON lines (stdin/stdout).", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", metavar="NAME|PATH", help="Model to use (default: $SMILE_MODEL, else the bundled one).")
@click.option("--verbose", is_flag=True, help="Log each request's duration on stderr.")
def worker_command(model: str | None, verbose: bool) -> int:
    """Entry of ``smile worker``."""
    from smilecore.atomic import remove_stale_work_folders

    stdin, stdout = _protocol_streams()
    remove_stale_work_folders()  # (what killed runs and editors left in the temporary folder: photos' copies)
    session = WorkerSession(model, verbose=verbose)
    session.load_model()
    if session.model is not None:
        _warm_up()
    return serve(session, stdin, stdout)


def _warm_up() -> None:
    """Load the face detector now, so the first request is not slower than the others."""
    try:
        import numpy as np

        import smilecore
        from smilecore.detect import warm_up

        warm_up()
        smilecore.detect_faces(np.zeros((64, 64, 3), np.uint8))
    except Exception:
        pass
