"""The real `smile` process (`python -m smile_cli`): exit statuses and one-line errors, no tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def smile(*args, model: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if model is not None:
        env["SMILE_MODEL"] = str(model)
    return subprocess.run([sys.executable, "-m", "smile_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_photo_to_json_report(fixture_models, tmp_path: Path, astronaut):
    src = tmp_path / "astro.jpg"
    Image.fromarray(astronaut).save(src, quality=88)
    blank = tmp_path / "blank.jpg"
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(blank)
    p = smile(src, blank, "--out-dir", tmp_path / "out", "--keep-unchanged", "--json", model=fixture_models["shift"])
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [ph["status"] for ph in doc["photos"]] == ["ok", "unchanged"]
    out = tmp_path / "out" / "astro.smile.jpg"
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (512, 512)
    assert "Traceback" not in p.stderr


def test_errors_are_one_line_with_documented_codes(fixture_models, tmp_path: Path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("just text")
    cases = [
        ((fake,), 4, "holiday.jpg: not an image"),
        ((tmp_path / "absent.png",), 4, "absent.png: no such file"),
        ((fake, "--strength", "much"), 2, "--strength"),
        (("models", "frobnicate"), 2, "frobnicate"),
    ]
    for args, code, words in cases:
        p = smile(*args, model=fixture_models["identity"], cwd=tmp_path)
        assert p.returncode == code, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("smile: error:") and words in lines[0], p.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["holiday.jpg"]
