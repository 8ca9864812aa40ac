"""The ``smile`` program's entry point: loading the tool takes a moment, and a Ctrl-C in it ends the
run as one a moment later would (one line, exit 130), not with a traceback of the imports."""
from __future__ import annotations

import sys


def main() -> None:
    """Load :mod:`smile_cli.main` and run it."""
    try:
        from .main import main as run
    except KeyboardInterrupt:
        try:
            sys.stderr.write("smile: interrupted (Ctrl-C)\n")
        except (OSError, ValueError, AttributeError):
            pass
        raise SystemExit(130) from None
    run()
