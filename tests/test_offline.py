"""Nothing leaves the machine: onnxruntime's telemetry is off wherever Smile imports it (smilecore/offline.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "astronaut.jpg"


def _bare_env(home: Path, **more: str) -> dict:
    """This environment without the telemetry variable (this test process set it, importing smilecore), with
    ``home`` as HOME and no XDG cache of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), **more)
    return env


def _files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_importing_smilecore_turns_the_telemetry_off_for_this_process_and_its_children(tmp_path):
    code = "import os, smilecore, onnxruntime; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_bare_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr
    assert _files(tmp_path) == []
    mine = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_bare_env(tmp_path, ORT_DISABLE_TELEMETRY="0"),
                          capture_output=True, text=True, timeout=120)
    assert mine.stdout.strip() == "0", mine.stderr  # (the user's own value stands)


def test_a_smile_run_and_the_worker_leave_an_empty_home_empty(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _bare_env(home)
    run = subprocess.run([sys.executable, "-m", "cli", str(SAMPLE), "-o", str(tmp_path / "out.jpg"), "--strength", "3"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and (tmp_path / "out.jpg").stat().st_size > 0, run.stderr
    request = json.dumps({"id": 1, "cmd": "smile", "input": str(SAMPLE), "output": str(tmp_path / "w.png"), "strength": 2})
    worker = subprocess.run([sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, capture_output=True, text=True,
                            input=request + '\n{"id": 2, "cmd": "quit"}\n', timeout=300)
    replies = [json.loads(line) for line in worker.stdout.splitlines()]
    assert worker.returncode == 0 and [r.get("ok") for r in replies if r.get("id")] == [True, True], worker.stdout
    assert (tmp_path / "w.png").stat().st_size > 0
    assert _files(home) == []


def test_onnxruntime_imported_before_smilecore_is_not_covered(tmp_path):
    """Why docs/cli.md asks a program that imports onnxruntime first to set the variable itself: this
    onnxruntime keeps its files as it is imported (where it does not, there is nothing to check)."""
    out = subprocess.run([sys.executable, "-c", "import onnxruntime, smilecore"], cwd=ROOT, env=_bare_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if not _files(tmp_path):
        pytest.skip("this onnxruntime keeps no telemetry files: nothing to check")
    assert any("onnxruntime" in name for name in _files(tmp_path))
