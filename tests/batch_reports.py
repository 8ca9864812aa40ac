"""Comparing two batch runs (``-j 1`` against ``-j N`` or ``--ray``): their files and their
``--json`` reports, less what may differ between runs (times, the output folder)."""
from __future__ import annotations

from pathlib import Path


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Each file's name in ``folder`` and its bytes, sorted by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def comparable(doc: dict) -> dict:
    """A ``--json`` report without its times, each output named without its folder (changed in place)."""
    for p in doc["photos"]:
        p.pop("seconds")
        p.pop("timings")
        p["output"] = p["output"] and Path(p["output"]).name
    return doc
