"""`--in-place` never loses what the photo held, and a report lists the faces it left alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smile_cli.main import cli


@pytest.fixture
def shift_model(fixture_models, monkeypatch) -> Path:
    """The fixture model that moves pixels by 4 crop px (so edited faces visibly change)."""
    monkeypatch.setenv("SMILE_MODEL", str(fixture_models["shift"]))
    return fixture_models["shift"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_face_left_alone_is_in_the_json_report(shift_model, photo: Path, tmp_path: Path):
    r = run(photo, "--min-face", "5000", "--json", "-o", tmp_path / "out.png")
    assert r.exit_code == 3
    (entry,) = json.loads(r.stdout)["photos"]
    assert entry["status"] == "failed" and "none chosen" in entry["error"]["message"]
    assert entry["faces_found"] == 1 and entry["faces"][0]["reason"] == "smaller than --min-face 5000 px"
    assert not entry["faces"][0]["edited"] and not (tmp_path / "out.png").exists()
