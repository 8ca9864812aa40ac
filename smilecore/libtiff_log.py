"""libtiff's own messages, kept for the one-line error instead of printed on stderr.

Pillow decodes compressed TIFFs (LZW, Deflate, JPEG...) with libtiff, whose default handlers write every warning
and error to the process's stderr: a damaged LZW strip printed ``tempfile.tif: Using code not yet in table.``
above Smile's own line, and Pillow's exception said no more than ``decoder error -2``. :func:`captured` collects
what libtiff says in its ``with`` block (in the calling thread), so that the error can give libtiff's words as
its reason; what libtiff says elsewhere (another thread, outside such a block) is written to stderr as before.

The handlers are libtiff's ``TIFFSetErrorHandler`` and ``TIFFSetWarningHandler``, found through Pillow's own
``_imaging`` module (so in the libtiff Pillow uses, bundled in its wheels or the system's), set once per process.
Where they cannot be reached (Pillow built with libtiff inside, as on Windows) nothing changes.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator

#: libtiff's handler type: ``void handler(const char *module, const char *fmt, va_list ap)``.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
#: Most bytes of one message kept.
_MAX_MESSAGE = 400

_local = threading.local()
_lock = threading.Lock()
_state: dict = {}  # "handler": the callback (kept alive while libtiff may call it), "format": vsnprintf


def _on_message(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    """libtiff's warning and error handler: the message, formatted by the C library, to the capturing block of this
    thread, else to stderr as libtiff's own handler writes it."""
    try:
        text = fmt or b""
        if _state.get("format") is not None and fmt is not None:
            buf = ctypes.create_string_buffer(_MAX_MESSAGE)
            _state["format"](buf, _MAX_MESSAGE, fmt, args)
            text = buf.value
        line = text.decode("utf-8", "replace").strip().rstrip(".")
        said = getattr(_local, "said", None)
        if said is not None:
            said.append(line)
        elif sys.stderr is not None:
            where = (module or b"").decode("utf-8", "replace")
            sys.stderr.write(f"{where}: {line}.\n" if where else f"{line}.\n")
    except Exception:  # (a handler called from C must not raise)
        pass


def _install() -> bool:
    """Set the handlers in Pillow's libtiff once; False where they cannot be reached."""
    with _lock:
        if "installed" not in _state:
            _state["installed"] = False
            try:
                from PIL import _imaging

                pillow = ctypes.CDLL(_imaging.__file__)  # (its symbols, and those of the libraries it links)
                libc = ctypes.CDLL(None)
                vsnprintf = libc.vsnprintf
                vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
                set_error, set_warning = pillow.TIFFSetErrorHandler, pillow.TIFFSetWarningHandler
            except (OSError, AttributeError, ImportError, TypeError):
                return False
            for setter in (set_error, set_warning):
                setter.restype, setter.argtypes = ctypes.c_void_p, [_HANDLER]
            _state["format"], _state["handler"] = vsnprintf, _HANDLER(_on_message)
            set_error(_state["handler"])
            set_warning(_state["handler"])
            _state["installed"] = True
    return _state["installed"]


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """A block whose libtiff messages (in this thread) are collected in the list it gives, one string each,
    instead of printed; nested blocks share the outer list."""
    outer = getattr(_local, "said", None)
    if outer is not None or not _install():
        yield outer if outer is not None else []
        return
    _local.said = []
    try:
        yield _local.said
    finally:
        _local.said = None
