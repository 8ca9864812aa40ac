"""Signals that wait: Ctrl-C, SIGTERM and SIGHUP held back while a few steps must happen together."""
from __future__ import annotations

import signal
import threading

#: The signals that stop a run (those a platform lacks are skipped).
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class deferred_signals:
    """Within it, Ctrl-C, SIGTERM and SIGHUP wait: each that arrives is sent again, to the handler that was there,
    once it ends.  For steps that must happen together: two files that change together both renamed; a temporary
    file made and its name kept, so that the stop that follows removes it (a stop raised in between, inside
    ``mkstemp``, left the file behind, its name unknown).  Nested, an inner one hands what it held to the outer
    one.  Outside the main thread it changes nothing (Python runs signal handlers in the main thread only)."""

    def __enter__(self) -> "deferred_signals":
        self._saved: dict[int, object] = {}
        self._pending: list[int] = []
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    num = getattr(signal, name)
                    self._saved[num] = signal.signal(num, lambda signum, frame: self._pending.append(signum))
        return self

    def __exit__(self, *exc) -> None:
        for num, handler in self._saved.items():
            signal.signal(num, handler if handler is not None else signal.SIG_DFL)
        for num in dict.fromkeys(self._pending):
            signal.raise_signal(num)
