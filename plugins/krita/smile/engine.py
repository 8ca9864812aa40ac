"""Finding and talking to the Smile engine: a ``smile worker`` process (docs/worker-protocol.md).

Krita's own Python needs nothing but PyQt: the engine (numpy, ONNX Runtime, dlib) lives in its
own environment and runs as a child process.  Requests and replies are JSON lines over the
process's stdin/stdout; pixels travel as PNG files in a temporary folder.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple

from .qt import QObject, QProcess, QProcessEnvironment, enum, pyqtSignal

ENGINE_FILE = "smile-engine.json"
FIX_HINT = "pip install /path/to/smile && smile install-plugin krita (/path/to/smile: the Smile project folder, or its wheel)"
PROTOCOL = 1

Reply = Dict[str, Any]
Callback = Callable[[Reply], None]


def plugin_dir() -> str:
    """The folder of this plug-in package (where ``smile install-plugin`` puts smile-engine.json)."""
    return os.path.dirname(os.path.abspath(__file__))


def _runnable(program: str) -> Optional[str]:
    """``program`` as an absolute path if it can be run, else None."""
    if os.path.isabs(program) or os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def command_from_setting(text: str) -> Optional[List[str]]:
    """Turn the docker's "engine" setting into a command line.

    The setting is either the path of the ``smile`` program or a full command line; a lone
    program gets ``worker`` appended.  Returns None when the setting is empty.
    """
    text = text.strip()
    if not text:
        return None
    parts = shlex.split(text)
    if len(parts) == 1:
        parts.append("worker")
    return parts


def command_from_engine_file(folder: str) -> Optional[List[str]]:
    """The ``command`` list from ``<folder>/smile-engine.json``, or None if absent or unusable."""
    path = os.path.join(folder, ENGINE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return None
    return list(command)


def find_engine(setting: str = "", folder: Optional[str] = None) -> Tuple[Optional[List[str]], str]:
    """Locate the engine: the docker setting, then smile-engine.json, then ``smile`` on PATH.

    Returns ``(command, where)``; ``command`` is None when nothing runnable was found and
    ``where`` then says what was tried, as one line for the docker's status.
    """
    tried = []
    from_setting = command_from_setting(setting)
    if from_setting:
        if _runnable(from_setting[0]):
            return from_setting, "the engine setting"
        tried.append(f"setting '{from_setting[0]}' is not a program")
    folder = folder or plugin_dir()
    from_file = command_from_engine_file(folder)
    if from_file:
        if _runnable(from_file[0]):
            return from_file, ENGINE_FILE
        tried.append(f"{ENGINE_FILE} names '{from_file[0]}', which is missing")
    on_path = shutil.which("smile")
    if on_path:
        return [on_path, "worker"], "PATH"
    tried.append("no 'smile' on PATH")
    return None, "; ".join(tried)


def worker_environment() -> Any:
    """The environment for the worker: Krita's, minus what would pull Krita's Python into it."""
    env = QProcessEnvironment.systemEnvironment()
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.remove(key)
    return env


class EngineClient(QObject):
    """One long-lived ``smile worker`` process and its request/reply bookkeeping.

    ``request`` never blocks: the callback runs from Qt's event loop when the reply arrives.
    Without an event loop (kritarunner scripts) call :meth:`wait` to pump the process.
    """

    #: (kind, message): kind is "starting", "ready", "error" or "stopped".
    stateChanged = pyqtSignal(str, str)

    def __init__(self, command: List[str], parent: Optional[QObject] = None):
        super().__init__(parent)
        self.command = list(command)
        self.greeting: Optional[Reply] = None
        self._process: Optional[Any] = None
        self._buffer = b""
        self._stderr_tail: List[str] = []
        self._next_id = 1
        self._callbacks: Dict[int, Callback] = {}
        self._unsent: List[bytes] = []
        self._replies: Dict[int, Reply] = {}
        self._answered: List[int] = []

    # -- process life ------------------------------------------------------------------
    def running(self) -> bool:
        return self._process is not None and self._process.state() != enum(QProcess, "ProcessState.NotRunning")

    def start(self) -> None:
        """Start the worker if it is not running (its greeting arrives asynchronously)."""
        if self.running():
            return
        self.greeting = None
        self._buffer = b""
        self._stderr_tail = []
        proc = QProcess(self)
        proc.setProcessEnvironment(worker_environment())
        proc.readyReadStandardOutput.connect(self._on_stdout)
        proc.readyReadStandardError.connect(self._on_stderr)
        proc.errorOccurred.connect(self._on_error)
        proc.finished.connect(self._on_finished)
        self._process = proc
        self.stateChanged.emit("starting", "starting the Smile engine…")
        proc.start(self.command[0], self.command[1:])

    def stop(self) -> None:
        """Ask the worker to quit, then make sure it is gone."""
        proc = self._process
        if proc is None:
            return
        if self.running():
            proc.write(b'{"cmd": "quit"}\n')
            proc.closeWriteChannel()
            if not proc.waitForFinished(3000):
                proc.kill()
                proc.waitForFinished(1000)
        self._process = None

    # -- requests ----------------------------------------------------------------------
    def request(self, payload: Dict[str, Any], callback: Optional[Callback] = None) -> int:
        """Send one request; ``callback(reply)`` runs when its reply (or a failure) arrives."""
        self.start()
        rid = self._next_id
        self._next_id += 1
        body = dict(payload)
        body["id"] = rid
        if callback is not None:
            self._callbacks[rid] = callback
        line = (json.dumps(body) + "\n").encode("utf-8")
        if self.greeting is None:
            self._unsent.append(line)
        else:
            self._process.write(line)
        return rid

    def wait(self, rid: int, timeout_ms: int = 120000) -> Reply:
        """Block until the reply to ``rid`` arrives and return it (for scripts without an event
        loop); a request sent with a callback has had its callback run by then."""
        waited = 0
        while rid not in self._replies:
            proc = self._process
            if proc is None or not self.running():
                return self._failure("the Smile engine stopped")
            if waited >= timeout_ms:
                return self._failure("the Smile engine did not answer in time")
            if proc.state() == enum(QProcess, "ProcessState.Starting"):
                proc.waitForStarted(1000)
            proc.waitForReadyRead(200)
            waited += 200
        return self._replies.pop(rid)

    # -- process signals ---------------------------------------------------------------
    def _on_stdout(self) -> None:
        proc = self._process
        if proc is None:
            return
        self._buffer += bytes(proc.readAllStandardOutput())
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            if raw.strip():
                self._handle_line(raw)

    def _handle_line(self, raw: bytes) -> None:
        try:
            message = json.loads(raw.decode("utf-8"))
        except ValueError:
            return  # not a protocol line; the worker promises none, so ignore it
        if not isinstance(message, dict):
            return
        if message.get("event") == "ready":
            self.greeting = message
            if message.get("protocol") != PROTOCOL:
                self.stateChanged.emit("error", f"the Smile engine speaks protocol {message.get('protocol')}, "
                                                f"this plug-in needs {PROTOCOL}: reinstall with `{FIX_HINT}`")
            elif isinstance(message.get("model_error"), dict):
                self.stateChanged.emit("error", "the Smile engine has no usable model: "
                                                f"{message['model_error'].get('message', '?')}")
            else:
                self.stateChanged.emit("ready", f"engine {message.get('version', '?')}, model {message.get('model', '?')}")
            for line in self._unsent:
                self._process.write(line)
            self._unsent = []
            return
        rid = message.get("id")
        if isinstance(rid, int):
            self._deliver(rid, message)

    def _deliver(self, rid: int, reply: Reply) -> None:
        self._replies[rid] = reply
        self._answered.append(rid)
        while len(self._answered) > 20:  # replies nobody waits for must not pile up
            self._replies.pop(self._answered.pop(0), None)
        callback = self._callbacks.pop(rid, None)
        if callback is not None:
            callback(reply)

    def _on_stderr(self) -> None:
        proc = self._process
        if proc is None:
            return
        text = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        self._stderr_tail = (self._stderr_tail + lines)[-20:]

    def _on_error(self, error: Any) -> None:
        if error == enum(QProcess, "ProcessError.FailedToStart"):
            self._fail_all(f"could not start the Smile engine ({' '.join(self.command)}): "
                           f"fix it with `{FIX_HINT}`")

    def _on_finished(self, *args: Any) -> None:
        if self._process is not None and (self._callbacks or self._unsent):
            last = self._stderr_tail[-1] if self._stderr_tail else "no message"
            self._fail_all(f"the Smile engine stopped: {last}")
        elif self._process is not None:
            self.stateChanged.emit("stopped", "the Smile engine stopped")

    def _failure(self, message: str) -> Reply:
        return {"ok": False, "error": {"code": "engine", "message": message}}

    def _fail_all(self, message: str) -> None:
        self.stateChanged.emit("error", message)
        self._unsent = []
        for rid in list(self._callbacks):
            self._deliver(rid, dict(self._failure(message), id=rid))

    def last_log_line(self) -> str:
        """The worker's last line on stderr (for error reports)."""
        return self._stderr_tail[-1] if self._stderr_tail else ""
