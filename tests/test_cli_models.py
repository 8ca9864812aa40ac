"""`smile models list|pull|verify|path` against a small registry in a temporary cache."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smile_cli.main import cli
from smilecore import registry as model_registry
from smilecore.registry import ModelInfo

PAYLOAD = b"not really onnx, but the checksum is what matters here"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch) -> dict[str, ModelInfo]:
    """Two downloadable models, 'tiny' present in the cache with the right bytes, 'other' absent."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SMILE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SMILE_MODEL", raising=False)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    tiny = ModelInfo(name="tiny", version="1.2.0", file="tiny.onnx", sha256=digest, size=len(PAYLOAD),
                     license="CC-BY-4.0", url="https://example.invalid/tiny.onnx")
    other = ModelInfo(name="other", version="0.1.0", file="other.onnx", sha256="0" * 64, size=10,
                      license="research-non-commercial", url="https://example.invalid/other.onnx")
    (cache / "tiny.onnx").write_bytes(PAYLOAD)
    monkeypatch.setattr(model_registry, "_registry", lambda: ("tiny", (tiny, other)))
    return {"tiny": tiny, "other": other, "cache": cache}


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_list_shows_licence_checksum_and_state(registry):
    r = run("models", "list")
    assert r.exit_code == 0, r.stderr
    assert "tiny (default)" in r.stdout and "CC-BY-4.0" in r.stdout and registry["tiny"].sha256 in r.stdout
    assert "other" in r.stdout and "not installed" in r.stdout
    rows = json.loads(run("models", "list", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    assert by_name["tiny"]["installed"] is True and by_name["tiny"]["default"] is True
    assert by_name["other"]["installed"] is False
    assert by_name["other"]["license"] == "research-non-commercial"


def test_verify_and_path(registry):
    r = run("models", "verify")
    assert r.exit_code == 0 and "tiny: ok" in r.stdout
    r = run("models", "path")
    assert r.exit_code == 0 and r.stdout.strip() == str(registry["cache"] / "tiny.onnx")
    r = run("models", "path", "other")
    assert r.exit_code == 6
    assert "smile models pull other" in r.stderr and "Traceback" not in r.stderr


def test_verify_detects_a_corrupted_file(registry):
    (registry["cache"] / "tiny.onnx").write_bytes(PAYLOAD + b"!")
    r = run("models", "verify", "tiny")
    assert r.exit_code == 6
    assert "checksum" in r.stderr and r.stderr.count("\n") == 1


def test_pull_of_a_present_model_needs_no_network(registry):
    r = run("models", "pull", "tiny")
    assert r.exit_code == 0, r.stderr
    assert str(registry["cache"] / "tiny.onnx") in r.stdout


def test_unknown_model_name(registry):
    r = run("models", "pull", "nosuch")
    assert r.exit_code == 6
    assert "unknown model 'nosuch'" in r.stderr


def test_list_says_when_the_file_smile_model_names_is_missing(registry, tmp_path, monkeypatch, shift):
    # before: "'smile' uses this file", and smile then refused to run (exit 6)
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "nope.onnx"))
    r = run("models", "list")
    assert r.exit_code == 0
    assert r.stdout.strip().splitlines()[-1] == (f"SMILE_MODEL={tmp_path / 'nope.onnx'}: 'smile' will refuse to run "
                                                 f"(exit 6): model file {tmp_path / 'nope.onnx'} does not exist")
    (tmp_path / "mine.onnx").write_bytes(b"x")  # (a file, but no model: smile refuses it, and so does the listing)
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "mine.onnx"))
    assert "'smile' will refuse to run (exit 6): " in run("models", "list").stdout.strip().splitlines()[-1]
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path))
    assert "is a folder, not a model file" in run("models", "list").stdout.strip().splitlines()[-1]
    monkeypatch.setenv("SMILE_MODEL", str(shift))  # (a model smile loads)
    assert run("models", "list").stdout.strip().splitlines()[-1].endswith("'smile' uses this file, not a registry model")
