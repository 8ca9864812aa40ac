"""How a run is interrupted: :class:`Terminated` for SIGTERM and SIGHUP (Ctrl-C is KeyboardInterrupt)."""
from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C (temporary files removed, nothing half-written)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
