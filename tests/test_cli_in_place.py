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
    assert entry["faces_found"] == 1 and entry["faces"][0]["reason"] == "smaller than the smallest face asked for (5000 px)"
    assert not entry["faces"][0]["edited"] and not (tmp_path / "out.png").exists()


def test_in_place_refuses_a_file_with_more_frames_and_leaves_it(shift_model, astronaut, tmp_path: Path):
    from PIL import Image

    im = Image.fromarray(astronaut)
    more = [im.rotate(10), im.rotate(20)]
    paths = {"pages.tif": dict(save_all=True, append_images=more),
             "anim.webp": dict(save_all=True, append_images=more, lossless=True)}
    for name, kw in paths.items():
        im.save(tmp_path / name, **kw)
    before = {n: (tmp_path / n).read_bytes() for n in paths}
    r = run(*(tmp_path / n for n in paths), "--in-place")
    assert r.exit_code == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("smile: error:")]
    assert len(errors) == 2 and all("holds 3 frames" in e and "--in-place would lose the others" in e for e in errors)
    assert {n: (tmp_path / n).read_bytes() for n in paths} == before
    r = run(tmp_path / "pages.tif", "-o", tmp_path / "first.tif")  # a new file: the first page, with a note
    assert r.exit_code == 0 and Image.open(tmp_path / "first.tif").n_frames == 1


def test_in_place_keeps_a_misnamed_photos_own_format(shift_model, astronaut, tmp_path: Path):
    import numpy as np
    from PIL import Image

    p = tmp_path / "disguised.jpg"
    Image.fromarray(astronaut).save(p, format="PNG")  # PNG bytes under a .jpg name
    r = run(p, "--in-place", "--json")
    assert r.exit_code == 0, r.stderr
    out = Image.open(p)
    (entry,) = json.loads(r.stdout)["photos"]
    assert out.format == "PNG" and any("written as PNG" in n for n in entry["notes"]), entry["notes"]
    changed = np.any(np.asarray(out.convert("RGB")) != astronaut, axis=2)
    assert changed.any() and not changed[:60].any()  # the face smiled; the rest (lossless) is the input's


def test_a_result_refused_is_named_as_it_was_given(shift_model, photo: Path, tmp_path: Path, monkeypatch):
    """Before: '/tmp/.../ro.png: not replaced, it is read-only', the absolute path, though 'ro.png' was given,
    and '... .smile.png: could not write it (File name too long)' likewise."""
    monkeypatch.chdir(tmp_path)
    ro = tmp_path / "ro.png"
    ro.write_bytes(photo.read_bytes())
    ro.chmod(0o444)
    long = tmp_path / ("é" * 125 + ".png")  # (255 bytes: the result's name is longer than a file system allows)
    long.write_bytes(photo.read_bytes())
    for args, line in ((["ro.png", "--in-place"], "ro.png: not replaced, it is read-only: make it writable (chmod u+w) "
                                                  "or remove it"),
                       ([long.name], f"{long.stem}.smile.png: could not write it (file name too long)")):
        r = run(*args)
        assert r.exit_code == 7, r.stderr
        assert r.stderr.splitlines() == [f"smile: error: {line}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ro.png", long.name, photo.name])
