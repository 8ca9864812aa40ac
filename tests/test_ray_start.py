"""`--ray local` interrupted while its cluster starts (no Ray needed: a stand-in for the ``ray`` module).

Ray installs its own SIGTERM handler inside ``ray.init`` (``sys.exit(15)``), and ``ray.shutdown``
does not stop every process of a cluster interrupted while it starts; smile must still exit as
interrupted (130 / 143) and leave no process of that cluster behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cli import ray_connect
from cli.interrupt import Terminated


class StandInRay:
    """``ray.init`` starts a process (as the cluster's agents are started: it inherits the
    environment) and is then interrupted by ``exc``."""

    def __init__(self, exc: BaseException):
        self.exc, self.shutdowns, self.child = exc, 0, None

    def is_initialized(self) -> bool:
        return False

    def init(self, address=None, **kw):
        self.child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                      stdout=subprocess.PIPE, text=True)
        assert self.child.stdout.readline() == "up\n"  # (started: its environment is its own, not its parent's copy)
        raise self.exc

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.mark.parametrize("exc, expected", [(SystemExit(signal.SIGTERM), Terminated), (KeyboardInterrupt(), KeyboardInterrupt)])
def test_an_interrupted_start_stops_and_leaves_no_process(monkeypatch, exc, expected):
    ray = StandInRay(exc)
    monkeypatch.setattr(ray_connect, "import_ray", lambda: ray)
    monkeypatch.delenv(ray_connect.OWNER_VAR, raising=False)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(expected) as caught:
            ray_connect.connect("local")
        if expected is Terminated:
            assert caught.value.signum == signal.SIGTERM  # exit 143, not Ray's 15
        assert ray.shutdowns == 1 and signal.getsignal(signal.SIGTERM) == before
        if os.path.isdir("/proc"):  # (Linux) the process the start left is gone
            for _ in range(50):
                if ray.child.poll() is not None:
                    break
                time.sleep(0.1)
            assert ray.child.poll() == -signal.SIGKILL
    finally:
        if ray.child is not None and ray.child.poll() is None:
            ray.child.kill()
        os.environ.pop(ray_connect.OWNER_VAR, None)
