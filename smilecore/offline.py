"""Nothing leaves the machine: what Smile turns off in the libraries it runs.

onnxruntime (1.32 here, the version pip picks for ``onnxruntime>=1.17``) keeps a device id and queued usage
events (Python's path, the OS, CPU and memory) under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` as
soon as it is imported, and tries to send them (a lookup of ``mobile.events.data.microsoft.com``).  Its
``ORT_DISABLE_TELEMETRY`` variable, read as it is imported, turns that off: :func:`no_telemetry` sets it, and
``import smilecore`` calls it before anything of Smile's imports onnxruntime.  A program that imports
onnxruntime *before* smilecore must set the variable itself (docs/cli.md, Environment).
"""
from __future__ import annotations

import os

#: The variable onnxruntime reads as it is imported, and the value that turns its telemetry off.
ORT_TELEMETRY_OFF = ("ORT_DISABLE_TELEMETRY", "1")


def no_telemetry() -> None:
    """Turn onnxruntime's telemetry off for this process and the ones it starts (unless the variable
    already has a value: the user's own choice stands)."""
    name, value = ORT_TELEMETRY_OFF
    os.environ.setdefault(name, value)
