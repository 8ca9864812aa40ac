"""The Smile engine as a ``smile worker`` child process driven by Qt (docs/worker-protocol.md).

Krita's own Python needs nothing but PyQt: the engine (numpy, ONNX Runtime, dlib) lives in its
own environment and runs as a child process.  Finding it, its greeting, the JSON lines and the
explanation of errors are the shared client's (``smile_client.py``, which ``smile install-plugin
krita`` copies into this package, as it does next to the GIMP plug-in); this module adds what is
Krita's: a ``QProcess`` that never blocks Krita's UI thread.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional

from .qt import QObject, QProcess, QProcessEnvironment, enum, pyqtSignal
from .smile_client import (EngineProblem, Greeting, LineReader, StderrTail, answers, engine_environment, explain,
                           failure_reply, install_hint, read_greeting, request_line)

EDITOR = "krita"
FIX_HINT = install_hint(EDITOR)

Reply = Dict[str, Any]
Callback = Callable[[Reply], None]


def plugin_dir() -> str:
    """The folder of this plug-in package (where ``smile install-plugin`` puts smile-engine.json)."""
    return os.path.dirname(os.path.abspath(__file__))


def worker_environment() -> Any:
    """The environment for the worker: Krita's, minus what would pull Krita's Python into it."""
    system = QProcessEnvironment.systemEnvironment()
    env = QProcessEnvironment()
    for key, value in engine_environment({k: system.value(k) for k in system.keys()}).items():
        env.insert(key, value)
    return env


class EngineClient(QObject):
    """One long-lived ``smile worker`` process and its request/reply bookkeeping.

    ``request`` never blocks: the callback runs from Qt's event loop when the reply arrives.
    Without an event loop (kritarunner scripts) call :meth:`wait` to pump the process.
    """

    #: (kind, message): kind is "starting", "ready", "error" or "stopped".
    stateChanged = pyqtSignal(str, str)
    #: the engine's :class:`~.smile_client.Greeting` (its model's strength range), once it is checked.
    greeted = pyqtSignal(object)

    def __init__(self, command: List[str], parent: Optional[QObject] = None):
        super().__init__(parent)
        self.command = list(command)
        self.greeting: Optional[Greeting] = None
        self._process: Optional[Any] = None
        self._reader = LineReader()
        self._stderr = StderrTail()
        self._next_id = 1
        self._callbacks: Dict[int, Callback] = {}
        self._waiting: List[int] = []  # requests sent (or waiting for the greeting) and not answered, oldest first
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
        self._reader = LineReader()
        self._stderr = StderrTail()
        # a new engine has answered nothing yet and holds none of the old one's requests: those still waiting are
        # the lines kept for its greeting (each queued line added its id last)
        self._waiting = self._waiting[len(self._waiting) - len(self._unsent):] if self._unsent else []
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
        if callback is not None:
            self._callbacks[rid] = callback
        try:
            line = request_line(payload, rid)
        except EngineProblem as problem:  # (never sent: its failure is its reply)
            self._deliver(rid, failure_reply(str(problem), rid))
            return rid
        self._waiting.append(rid)
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
                return failure_reply("the Smile engine stopped")
            if waited >= timeout_ms:
                return failure_reply("the Smile engine did not answer in time")
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
        for message in self._reader.feed(bytes(proc.readAllStandardOutput())):
            self._handle_message(message)

    def _handle_message(self, message: Reply) -> None:
        if message.get("event") == "ready":
            self._greet(message)
            return
        rid = message.get("id")
        if isinstance(rid, int) and "ok" in message:
            self._deliver(rid, message)
        elif self._waiting and answers(message, self._waiting[0]):  # (a line whose id the engine could not read)
            self._deliver(self._waiting[0], dict(message, id=self._waiting[0]))

    def _greet(self, message: Reply) -> None:
        """Check the greeting; then send what waited for it (the engine refuses it if unusable)."""
        try:
            greeting = read_greeting(message, EDITOR)
        except EngineProblem as problem:
            self.greeting = Greeting(str(message.get("version", "?")), None, None, None, None)
            self.stateChanged.emit("error", str(problem))
        else:
            self.greeting = greeting
            self.greeted.emit(greeting)
            if greeting.model_error is not None:
                self.stateChanged.emit("error", explain(greeting.model_error, "", EDITOR))
            else:
                self.stateChanged.emit("ready", f"engine {greeting.version}, model {greeting.model}")
        for line in self._unsent:
            self._process.write(line)
        self._unsent = []

    def _deliver(self, rid: int, reply: Reply) -> None:
        if rid in self._waiting:  # (the engine answers in turn: those before it are answered too)
            del self._waiting[: self._waiting.index(rid) + 1]
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
        self._stderr.add(bytes(proc.readAllStandardError()).decode("utf-8", "replace"))

    def _on_error(self, error: Any) -> None:
        if error == enum(QProcess, "ProcessError.FailedToStart"):
            self._fail_all(f"could not start the Smile engine ({' '.join(self.command)}): "
                           f"fix it with `{FIX_HINT}`")

    def _on_finished(self, *args: Any) -> None:
        if self._process is not None and (self._callbacks or self._unsent):
            self._fail_all(f"the Smile engine stopped: {self._stderr.last()}")
        elif self._process is not None:
            self.stateChanged.emit("stopped", "the Smile engine stopped")

    def _fail_all(self, message: str) -> None:
        self.stateChanged.emit("error", message)
        self._unsent = []
        self._waiting = []
        for rid in list(self._callbacks):
            self._deliver(rid, failure_reply(message, rid))
