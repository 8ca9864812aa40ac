"""libtiff's own messages, kept for the one-line error instead of printed on stderr.

Pillow decodes compressed TIFFs (LZW, Deflate, JPEG...) with libtiff, whose default handlers write every warning
and error to the process's stderr: a damaged LZW strip printed ``tempfile.tif: Using code not yet in table.``
above Smile's own line, and Pillow's exception said no more than ``decoder error -2``. :func:`captured` collects
what libtiff says in its ``with`` block (in the calling thread), so that the error can give libtiff's words as
its reason; what libtiff says elsewhere (another thread, outside such a block) goes to the handlers that were set
before, untouched: libtiff's own (stderr), or those of another library sharing this libtiff.

The handlers are libtiff's ``TIFFSetErrorHandler`` and ``TIFFSetWarningHandler``, found through Pillow's own
``_imaging`` module (so in the libtiff Pillow uses, bundled in its wheels or the system's), set once per process,
the first time a block is entered. Where they cannot be reached (Pillow built with libtiff inside, as on Windows;
no libtiff; no ctypes) nothing changes. A message reaches the handler as libtiff's format and its ``va_list``,
passed on as an opaque pointer (to ``vsnprintf``, or to the handler set before), which is how every ABI Python
runs on passes a ``va_list`` argument.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Most bytes of one message kept.
_MAX_MESSAGE = 400

_local = threading.local()
_lock = threading.Lock()
_state: dict = {}  # "installed"; "format": vsnprintf; "keep": our callbacks (alive while libtiff may call them)


def _handler(kind, before: list):
    """libtiff's handler of one kind: the message, formatted by the C library, to the capturing block of this
    thread, else to the handler set before it (``before[0]``, a foreign function; None where there was none)."""
    import ctypes

    def on_message(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        try:
            said = getattr(_local, "said", None)
            if said is None:
                if before[0] is not None:
                    before[0](module, fmt, args)  # (the va_list is untouched: passed on as libtiff gave it)
                return
            buf = ctypes.create_string_buffer(_MAX_MESSAGE)
            if fmt is not None:
                _state["format"](buf, _MAX_MESSAGE, fmt, args)
            said.append(" ".join(buf.value.decode("utf-8", "replace").split()).rstrip("."))  # (one line)
        except Exception:  # (a handler called from C must not raise)
            pass

    return kind(on_message)


def _install() -> bool:
    """Set the handlers in Pillow's libtiff once; False where they cannot be reached."""
    with _lock:
        if "installed" not in _state:
            _state["installed"] = False
            try:
                import ctypes

                from PIL import _imaging

                kind = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
                pillow = ctypes.CDLL(_imaging.__file__)  # (its symbols, and those of the libraries it links)
                vsnprintf = ctypes.CDLL(None).vsnprintf
                vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
                setters = pillow.TIFFSetErrorHandler, pillow.TIFFSetWarningHandler
                for setter in setters:
                    setter.restype, setter.argtypes = ctypes.c_void_p, [kind]
                _state["format"], _state["keep"] = vsnprintf, []
                for setter in setters:
                    before: list = [None]
                    _state["keep"].append(handler := _handler(kind, before))
                    address = setter(handler)  # (the handler set before: libtiff's own, or another library's)
                    before[0] = kind(address) if address else None
            except Exception:  # (ImportError, OSError, AttributeError: no libtiff that can be reached)
                return False
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
