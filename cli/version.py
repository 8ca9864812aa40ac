"""The version ``smile --version``, the ``--json`` report and the worker's greeting show."""
from __future__ import annotations


def smile_version() -> str:
    """The installed ``smile-filter`` distribution's version, else the engine package's own."""
    try:
        from importlib.metadata import version

        return version("smile-filter")
    except Exception:
        import smilecore

        return smilecore.__version__
