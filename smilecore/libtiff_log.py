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
passed on untouched as one pointer-sized value (to ``vsnprintf``, or to the handler set before): the ABIs Pillow's
Linux and macOS wheels are built for (x86-64, AArch64, and also ARMv7, i386, ppc64le, s390x) pass a ``va_list``
argument so.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Most bytes of one message kept.
_MAX_MESSAGE = 400
#: The attribute of Pillow's ``_imaging`` module that holds the handlers' state: libtiff holds the handlers as long
#: as the process lives, so they must outlive this module (a test or a tool that drops smilecore from
#: ``sys.modules`` and imports it again left libtiff calling freed callbacks: a crash), and a module imported again
#: finds them set.
_SHARED = "_smile_libtiff_log"

_lock = threading.Lock()
_state: dict = {}  # "shared": the state on Pillow's _imaging ("local", "format", "keep", "set"), or None


def _handler(kind, before: list, shared: dict, kept: bool):
    """libtiff's handler of one kind: the message, formatted by the C library, to the capturing block of this
    thread (``kept``: errors; a warning is dropped there), else to the handler set before it (``before[0]``, a
    foreign function; None where there was none)."""
    import ctypes

    def on_message(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        try:
            said = getattr(shared["local"], "said", None)
            if said is None:
                if before[0] is not None:
                    before[0](module, fmt, args)  # (the va_list is untouched: passed on as libtiff gave it)
                return
            if not kept:
                return
            buf = ctypes.create_string_buffer(_MAX_MESSAGE)
            if fmt is not None:
                shared["format"](buf, _MAX_MESSAGE, fmt, args)
            said.append(" ".join(buf.value.decode("utf-8", "replace").split()).rstrip("."))  # (one line)
        except Exception:  # (a handler called from C must not raise)
            pass

    return kind(on_message)


def _install() -> dict | None:
    """Set the handlers in Pillow's libtiff once per process; their state, or None where they cannot be reached."""
    with _lock:
        if "shared" not in _state:
            _state["shared"] = None
            try:
                import ctypes

                from PIL import _imaging

                shared = getattr(_imaging, _SHARED, None)
                if shared is None:
                    kind = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
                    pillow = ctypes.CDLL(_imaging.__file__)  # (its symbols, and those of the libraries it links)
                    vsnprintf = ctypes.CDLL(None).vsnprintf
                    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
                    setters = pillow.TIFFSetErrorHandler, pillow.TIFFSetWarningHandler
                    for setter in setters:
                        setter.restype, setter.argtypes = ctypes.c_void_p, [kind]
                    shared = {"local": threading.local(), "format": vsnprintf, "keep": [], "set": False}
                    setattr(_imaging, _SHARED, shared)  # (before a handler is set: it lives as long as Pillow)
                    for setter, kept in zip(setters, (True, False)):  # (errors kept, warnings dropped)
                        before: list = [None]
                        shared["keep"].append(handler := _handler(kind, before, shared, kept))
                        address = setter(handler)  # (the handler set before: libtiff's own, or another library's)
                        before[0] = kind(address) if address else None
                    shared["set"] = True
                _state["shared"] = shared if shared["set"] else None
            except Exception:  # (ImportError, OSError, AttributeError: no libtiff that can be reached)
                return None
    return _state["shared"]


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """A block whose libtiff errors (in this thread) are collected in the list it gives, one string each, instead
    of printed, and whose libtiff warnings are dropped; nested blocks share the outer list."""
    shared = _install()
    local = shared["local"] if shared is not None else None
    outer = getattr(local, "said", None)
    if local is None or outer is not None:
        yield outer if outer is not None else []
        return
    local.said = []
    try:
        yield local.said
    finally:
        local.said = None
