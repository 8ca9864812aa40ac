"""How a run is interrupted: :class:`Terminated` for SIGTERM and SIGHUP (Ctrl-C is KeyboardInterrupt)."""
from __future__ import annotations

from smilecore.signals import STOP_SIGNALS


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C (temporary files removed, nothing half-written)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_behind(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The Ctrl-C, SIGTERM or SIGHUP behind ``exc`` (itself, or an exception it was raised from or while
    handling), else None.  A library can wrap the stop in its own error: one that arrives while onnxruntime's
    compiled module is being set up comes out of pybind11 as ``ImportError: initialization failed``."""
    from smilecore.errors import found_behind

    return found_behind(exc, KeyboardInterrupt)


class held_signals:
    """Within it, Ctrl-C, SIGTERM and SIGHUP are ignored: a run that is already stopping finishes saying what it
    did (a second signal, e.g. GNU ``timeout``'s to the process group just after the one to the process, would
    break into that).  Outside the main thread it changes nothing."""

    def __enter__(self):
        import signal
        import threading

        self._saved = {}
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    num = getattr(signal, name)
                    self._saved[num] = signal.signal(num, signal.SIG_IGN)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for num, handler in self._saved.items():
            signal.signal(num, handler if handler is not None else signal.SIG_DFL)


class ClientGone(BaseException):
    """The worker's client closed its end of the pipe while a request ran (a progress event could not be
    sent): the request stops, its temporary files removed on the way, and the worker ends quietly. A
    ``BaseException``, so no handler of errors answers it."""
