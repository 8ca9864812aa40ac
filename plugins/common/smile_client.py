"""Talking to the Smile engine from an editor plug-in, with nothing but the standard library.

``smile install-plugin gimp|krita`` copies this file next to each plug-in, so GIMP's filter and
Krita's docker share one client: finding the engine (:func:`find_engine`), the environment it
runs in (:func:`engine_environment`), its greeting (:func:`read_greeting`, which carries the
model's strength range the sliders are built from: :func:`strength_slider`), the JSON lines of
docs/worker-protocol.md (:func:`request_line`, :class:`LineReader`), one-line explanations of
its errors (:func:`explain`), and a blocking client for plug-ins without an event loop
(:class:`EngineProcess`).  Only the edges stay in the plug-ins: GIMP's pixels and dialog, Krita's
``QProcess`` and widgets.  Python 3.7 or newer (the editors embed their own Python).
"""
from __future__ import annotations

import array
import collections
import json
import math
import os
import queue
import re
import shlex
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

PROTOCOL = 1
ENGINE_FILE = "smile-engine.json"
#: The strength a slider starts at (a natural smile), when the model's range allows it.
DEFAULT_STRENGTH = 1.0
GREETING_TIMEOUT_S = 300.0
#: Error code of the failures the client finds itself (the engine did not start, or stopped).
ENGINE_ERROR = "engine"
#: Variables of the editor's Python that must not reach the engine's.
PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE")
STDERR_LINES = 20

Message = Dict[str, Any]
Tick = Callable[[], None]


class EngineProblem(Exception):
    """A problem with the engine, as a one-line message for the person using the editor."""


#: How the editors ("gimp", "krita") are written in messages.
EDITOR_NAMES = {"gimp": "GIMP", "krita": "Krita"}


def install_hint(editor: str) -> str:
    """The command that installs (or repairs) the engine for ``editor`` ("gimp" or "krita")."""
    return (f"pip install /path/to/smile && smile install-plugin {editor} "
            "(/path/to/smile: the Smile project folder, or its wheel)")


# --------------------------------------------------------------------------- finding the engine
def runnable(program: str) -> Optional[str]:
    """``program`` (a path, or a name looked up on PATH) if it can be run, else None."""
    if os.path.isabs(program) or os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def command_from_setting(text: str) -> Optional[List[str]]:
    """An engine setting as a command line: the path of ``smile`` (``worker`` is appended) or
    a whole command line; None when the setting is empty.  A path pasted as it is (with spaces, or
    a Windows path's backslashes), with or without quotes round it, is one program."""
    text = text.strip()
    bare = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" else text
    if bare and os.path.isfile(bare):
        return [bare, "worker"]
    try:
        parts = shlex.split(text, posix=os.name != "nt") if text else []
    except ValueError:  # (an unbalanced quote: taken as it is)
        parts = [text]
    parts = [p[1:-1] if len(p) > 1 and p[0] == p[-1] and p[0] in "\"'" else p for p in parts]  # (Windows' split keeps quotes)
    if len(parts) == 1:
        parts.append("worker")
    return parts or None


def read_engine_record(path: str) -> Optional[List[str]]:
    """The ``command`` of a ``smile-engine.json`` file; None if there is no such file.

    Raises ValueError (saying why) when the file exists but is unusable.
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    command = record.get("command") if isinstance(record, dict) else None
    if not (isinstance(command, list) and command and all(isinstance(part, str) for part in command)):
        raise ValueError("'command' is not a list of strings")
    return list(command)


def find_engine(folder: str, editor: str, setting: str = "", strict: bool = False) -> Tuple[List[str], str]:
    """The command line that starts ``smile worker``, and where it was found.

    Looked for in this order: ``setting`` (the plug-in's own, see :func:`command_from_setting`; one that
    names no program is an error, not a reason to look on), ``smile-engine.json`` in ``folder`` (written by
    ``smile install-plugin``), ``smile`` on PATH.
    ``strict``: a broken ``smile-engine.json`` is an error rather than a reason to look on.
    Raises EngineProblem, naming the command that fixes it, when nothing runnable is found.
    """
    hint = install_hint(editor)
    tried = []
    command = command_from_setting(setting)
    if command:  # what the user typed is what is used: a typo must not fall back on another engine unsaid
        if runnable(command[0]):
            return command, "the engine setting"
        raise EngineProblem(f"the engine set in the plug-in ('{command[0]}') is not a program: correct it, "
                            "or clear the Engine field to find the engine automatically")
    record = os.path.join(folder, ENGINE_FILE)
    try:
        command = read_engine_record(record)
    except ValueError as exc:
        if strict:
            raise EngineProblem(f"{record} is unreadable ({exc}). Reinstall with: {hint}") from None
        tried.append(f"{ENGINE_FILE} is unreadable ({exc})")
        command = None
    if command:
        if runnable(command[0]):
            return command, ENGINE_FILE
        if strict:
            raise EngineProblem(f"the Smile engine recorded in {record} ({command[0]}) is gone. "
                                f"Reinstall with: {hint}")
        tried.append(f"{ENGINE_FILE} names '{command[0]}', which is missing")
    on_path = shutil.which("smile")
    if on_path:
        return [on_path, "worker"], "PATH"
    if strict:
        raise EngineProblem(f"the Smile engine is not installed. Install it with: {hint}")
    tried.append("no 'smile' on PATH")
    raise EngineProblem(f"Smile engine not found ({'; '.join(tried)}). Install it with: {hint}")


def engine_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """The editor's environment minus the variables that would point the engine at the editor's Python."""
    return {name: value for name, value in environ.items() if name not in PYTHON_VARIABLES}


# --------------------------------------------------------------------------- the greeting
@dataclass(frozen=True)
class Greeting:
    """What the engine says when it starts (docs/worker-protocol.md)."""

    version: str
    model: Optional[str]
    strength_range: Optional[Tuple[float, float]]  #: the model's [min, max]; None without a model
    crop_size: Optional[int]
    model_error: Optional[Message]  #: the error object when the model could not be loaded


def _number_pair(value: Any) -> Optional[Tuple[float, float]]:
    if not (isinstance(value, list) and len(value) == 2):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    low, high = float(value[0]), float(value[1])
    return (low, high) if low <= high else None


def read_greeting(message: Message, editor: str) -> Greeting:
    """Check the engine's first line; raises EngineProblem when this plug-in cannot talk to it."""
    if message.get("event") != "ready":
        raise EngineProblem(f"the Smile engine sent an unexpected greeting: {json.dumps(message)[:200]}")
    update = f"Update both with: pip install -U /path/to/smile && smile install-plugin {editor}"
    if message.get("protocol") != PROTOCOL:
        raise EngineProblem(f"the Smile engine speaks protocol {message.get('protocol')}, this plug-in "
                            f"speaks {PROTOCOL}. {update}")
    error = message.get("model_error")
    model = message.get("model")
    strength_range = _number_pair(message.get("strength_range"))
    if model is not None and strength_range is None:
        raise EngineProblem(f"the Smile engine {message.get('version', '?')} does not say its model's "
                            f"strength range. {update}")
    size = message.get("crop_size")
    return Greeting(version=str(message.get("version", "?")), model=None if model is None else str(model),
                    strength_range=strength_range,
                    crop_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                    model_error=error if isinstance(error, dict) else None)


@dataclass(frozen=True)
class StrengthSlider:
    """A strength control built from the model's range."""

    low: float
    high: float
    default: float

    def clamp(self, value: float) -> float:
        """``value`` moved into [low, high]."""
        return min(self.high, max(self.low, float(value)))


def strength_slider(greeting: Greeting, preferred: float = DEFAULT_STRENGTH) -> Optional[StrengthSlider]:
    """The slider for the engine's model: its range, starting at ``preferred`` moved into that
    range; None when the engine has no model (its greeting then has a ``model_error``)."""
    if greeting.strength_range is None:
        return None
    low, high = greeting.strength_range
    return StrengthSlider(low, high, min(high, max(low, float(preferred))))


# --------------------------------------------------------------------------- lines and errors
def request_line(payload: Mapping[str, Any], rid: int) -> bytes:
    """One request (``payload`` plus ``"id": rid``) as a protocol line; :class:`EngineProblem` for a
    payload JSON cannot hold (a NaN or an infinity: the engine would refuse the line without its id)."""
    try:
        return (json.dumps(dict(payload, id=rid), allow_nan=False) + "\n").encode("utf-8")
    except (ValueError, TypeError) as exc:
        raise EngineProblem(f"the request to the Smile engine could not be written ({exc}): please report it") from None


def answers(reply: Message, rid: int) -> bool:
    """Is ``reply`` the answer to request ``rid``, the oldest one waiting?  Its id, or none at all: the
    engine answers every line in turn, and one whose id it could not read (a line too long, say) with
    ``"id": null``."""
    return "ok" in reply and (reply.get("id") == rid or (reply.get("id") is None and reply.get("ok") is False))


def parse_line(raw: bytes) -> Optional[Message]:
    """A protocol line as a dict; None for anything else (the worker promises none)."""
    try:
        message = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class LineReader:
    """Splits the engine's stdout, as it arrives in pieces, into protocol messages."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> List[Message]:
        """The complete messages ``data`` finishes (a partial last line waits for the rest)."""
        self.buffer += data
        messages = []
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            message = parse_line(raw) if raw.strip() else None
            if message is not None:
                messages.append(message)
        return messages


class StderrTail:
    """The engine's last lines on stderr: its last words when it stops."""

    def __init__(self) -> None:
        self.lines: collections.deque = collections.deque(maxlen=STDERR_LINES)

    def add(self, text: str) -> None:
        """Keep the non-blank lines of ``text``."""
        self.lines.extend(line.strip() for line in text.splitlines() if line.strip())

    def last(self) -> str:
        """The last line, or "no message"."""
        return self.lines[-1] if self.lines else "no message"


def failure_reply(message: str, rid: Optional[int] = None) -> Message:
    """A failed reply made by the client itself (code :data:`ENGINE_ERROR`)."""
    return {"id": rid, "ok": False, "error": {"code": ENGINE_ERROR, "message": message}}


def explain(error: Mapping[str, Any], place: str, editor: str, hide: Optional[Mapping[str, str]] = None) -> str:
    """A failed reply's ``error`` as a message for the person using the editor.

    ``place`` says where faces were looked for ("in this layer"); ``hide`` maps the plug-in's
    temporary file names, which mean nothing to people, to words ("the layer").
    """
    code = error.get("code", "internal")
    text = " ".join(str(error.get("message", "")).split())
    for path, words in (hide or {}).items():
        if path:
            text = text.replace(path + ": ", "").replace(path, words)
    if code == "no_face":
        found = re.search(r"(\d+) face\(s\) found but none (chosen|edited) \((.*)\)$", text)
        if found and any(why != "outside the selection" for why in found.group(3).split("; ")):
            count, verb, why = found.groups()  # faces there, each left alone for a reason the engine gives (too small...)
            return f"{count} face(s) found {place}, but none {verb}: {why}."
        return (f"no face found {place}. Smile needs a face seen roughly from the front (in a selection, the middle "
                "of its box selected); try a larger image or select the whole face.")
    if code == "model":
        if "SMILE_MODEL" in text:  # the engine names the variable when the model it chose is the one that failed
            return (f"the Smile engine's model is not usable: {text}. Set SMILE_MODEL to a model file or to a name "
                    f"`smile models list` shows (or unset it), then restart {EDITOR_NAMES.get(editor, editor)}.")
        return f"the Smile engine's model is not usable: {text}. Reinstall with: {install_hint(editor)}"
    if code in ("bad_input", "too_large"):
        return f"the Smile engine refused the image: {text}"
    if code == "bad_request":
        return f"the Smile engine refused the request: {text}"
    if code == ENGINE_ERROR:
        return text
    return f"the Smile engine failed ({code}): {text}"


# --------------------------------------------------------------------------- a blocking client
class EngineProcess:
    """A running ``smile worker``, spoken to one request at a time (for plug-ins without an
    event loop).  ``tick()`` is called about ten times a second while waiting."""

    def __init__(self, command: List[str], editor: str):
        self.editor = editor
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=engine_environment(os.environ), creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            raise EngineProblem(f"could not start the Smile engine {command[0]} ({exc.strerror or exc}). "
                                f"Reinstall with: {install_hint(editor)}") from None
        self.lines: queue.Queue = queue.Queue()
        self.stderr = StderrTail()
        self.greeting: Optional[Greeting] = None
        self.next_id = 0
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        for raw in self.process.stdout:
            self.lines.put(raw)
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        for raw in self.process.stderr:
            self.stderr.add(raw.decode("utf-8", "replace"))

    def crashed(self) -> EngineProblem:
        """The problem to report when the engine stopped answering."""
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        time.sleep(0.1)  # let the stderr reader catch the last words
        return EngineProblem(f"the Smile engine stopped unexpectedly (exit status {status}): {self.stderr.last()}")

    def receive(self, tick: Tick, timeout: Optional[float] = None) -> Message:
        """Wait for the next protocol message."""
        start = time.monotonic()
        while True:
            try:
                raw = self.lines.get(timeout=0.1)
            except queue.Empty:
                tick()
                if timeout is not None and time.monotonic() - start > timeout:
                    self.close()
                    raise EngineProblem(f"the Smile engine did not answer within {timeout:.0f} s") from None
                continue
            if raw is None:
                raise self.crashed()
            message = parse_line(raw)
            if message is not None:
                return message

    def greet(self, tick: Tick, timeout: float = GREETING_TIMEOUT_S) -> Greeting:
        """Wait for the greeting and check it (the engine is closed when it does not fit)."""
        try:
            self.greeting = read_greeting(self.receive(tick, timeout), self.editor)
        except EngineProblem:
            self.close()
            raise
        return self.greeting

    def request(self, tick: Tick, payload: Mapping[str, Any]) -> Message:
        """Send one request and return its reply."""
        self.next_id += 1
        line = request_line(payload, self.next_id)
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (OSError, ValueError):  # (ValueError: closed after a failed greeting)
            raise self.crashed() from None
        while True:
            reply = self.receive(tick)
            if answers(reply, self.next_id):
                return reply

    def close(self) -> None:
        """Ask the worker to quit; one still busy with a request (a video) after a few seconds is stopped with
        SIGTERM, which ends its request cleanly (no half-written file left), and killed only if that fails too
        (twice is as once)."""
        try:
            if self.process.poll() is None and not self.process.stdin.closed:
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                self.process.stdin.flush()
                self.process.stdin.close()
            self.process.wait(timeout=3)
            return
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        for stop in (self.process.terminate, self.process.kill):
            try:
                stop()
                self.process.wait(timeout=10)
                return
            except (OSError, subprocess.TimeoutExpired):
                continue


def start_engine(folder: str, editor: str, tick: Tick, setting: str = "") -> EngineProcess:
    """Find the engine (strictly, see :func:`find_engine`), start it and check its greeting."""
    command, _ = find_engine(folder, editor, setting, strict=True)
    engine = EngineProcess(command, editor)
    engine.greet(tick)
    return engine


# --------------------------------------------------------------------------- pixels
def write_png(path: str, width: int, height: int, channels: int, pixels: bytes, depth: int = 8) -> None:
    """Write gray (1), gray+alpha (2), RGB (3) or RGBA (4) pixels as a PNG file: 8 bits a sample, or
    ``depth=16`` with 16-bit samples in the machine's byte order (as editors hand them out)."""
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    if depth == 16:
        samples = array.array("H")
        samples.frombytes(pixels)
        if sys.byteorder == "little":
            samples.byteswap()  # PNG stores 16-bit samples big-endian
        pixels = samples.tobytes()
    elif depth != 8:
        raise ValueError(f"a PNG of {depth}-bit samples is not written here (8 or 16)")
    stride = width * channels * depth // 8
    view = memoryview(pixels)
    raw = b"".join(b"\x00" + view[row * stride:(row + 1) * stride] for row in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)))
        handle.write(chunk(b"IDAT", zlib.compress(raw, 3)))
        handle.write(chunk(b"IEND", b""))
