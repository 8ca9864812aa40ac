"""Issue #9, limits: the pixel limit (default, option, environment; bombs refused before a pixel
is decoded) and memory that stays proportional to the photo, not to the number of faces."""
from __future__ import annotations

import json
import tracemalloc
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

import smilecore
from corpus import png_bomb, portrait
from corpus_run import CORPUS, assert_one_line, invoke, serve
from smilecore.decode import load_image
from smilecore.errors import ImageTooLargeError, SmileError


def traced_peak(work: Callable[[], Any]) -> tuple[Any, int]:
    """What ``work()`` returns and the peak of the Python/numpy memory it allocated (tracemalloc)."""
    tracemalloc.start()
    try:
        out = work()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pixel_limit_just_above_the_default_is_refused(tmp_path):
    """Between 1x and 2x the limit PIL only warns; Smile must still refuse, without decoding."""
    p = tmp_path / "big.png"
    p.write_bytes(png_bomb(15_000, 14_000))  # 210 MP
    with pytest.raises(ImageTooLargeError) as err:
        load_image(p)
    assert "big.png" in str(err.value) and "200" in str(err.value)


def test_pixel_limit_is_configurable_everywhere(loaded_shift, shift, monkeypatch):
    path = CORPUS / "portrait.bmp"  # 256 x 256 = 65 536 pixels
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=60_000)
    image, _ = load_image(path, max_pixels=70_000)
    with pytest.raises(ImageTooLargeError):
        smilecore.smile(image, model=loaded_shift, max_pixels=60_000)
    monkeypatch.setenv("SMILE_MAX_PIXELS", "60000")
    with pytest.raises(ImageTooLargeError):
        smilecore.smile(np.asarray(image), model=loaded_shift)
    monkeypatch.delenv("SMILE_MAX_PIXELS")
    res = invoke([str(path), "--max-pixels", "60000", "--model", str(shift)])
    assert res.exit_code == 5
    assert_one_line(res.stderr)
    assert "portrait.bmp" in res.stderr and "--max-pixels" in res.stderr
    for bad in ("0", "-5", "lots"):
        res = invoke([str(path), "--max-pixels", bad, "--model", str(shift)])
        assert res.exit_code == 2, (bad, res.stderr)
        assert_one_line(res.stderr)


def test_pixel_limit_from_the_environment(loaded_shift, shift, monkeypatch, tmp_path):
    """SMILE_MAX_PIXELS applies to smile(), ``smile``, ``smile detect`` and the worker; a bad value is a usage error."""
    path = CORPUS / "portrait.bmp"  # 65 536 pixels
    monkeypatch.setenv("SMILE_MAX_PIXELS", "60000")
    for args in ([str(path), "--out-dir", str(tmp_path / "out")], ["detect", str(path)]):
        res = invoke(args + (["--model", str(shift)] if args[0] != "detect" else []))
        assert res.exit_code == 5, (args, res.stderr)
        assert_one_line(res.stderr)
        assert "portrait.bmp" in res.stderr
    res = invoke([str(path), "--out-dir", str(tmp_path / "out"), "--model", str(shift), "--max-pixels", "70000", "-q"])
    assert res.exit_code == 0, res.stderr  # the option wins over the environment
    req = {"id": 1, "cmd": "smile", "input": str(path), "output": str(tmp_path / "w.png")}
    (reply,) = serve([json.dumps(req).encode() + b"\n"], shift)[1:]
    assert reply["ok"] is False and reply["error"]["code"] == "too_large" and "portrait.bmp" in reply["error"]["message"]
    assert not (tmp_path / "w.png").exists()
    for bad in ("lots", "0", "-1"):
        monkeypatch.setenv("SMILE_MAX_PIXELS", bad)
        with pytest.raises(SmileError) as err:
            smilecore.smile(portrait(), model=loaded_shift)
        assert err.value.code == "usage" and "SMILE_MAX_PIXELS" in str(err.value)
        res = invoke([str(path), "--out-dir", str(tmp_path / "out2"), "--model", str(shift)])
        assert res.exit_code == 2, (bad, res.stderr)
        assert_one_line(res.stderr)
        assert "SMILE_MAX_PIXELS" in res.stderr


def test_bombs_are_refused_without_decoding():
    """Refusing the bombs allocates nothing like their declared size (tracemalloc sees Python/numpy memory)."""

    def refuse_both() -> None:
        for name in ("bomb.png", "bomb.jpg"):
            with pytest.raises(ImageTooLargeError):
                load_image(CORPUS / name)

    _, peak = traced_peak(refuse_both)
    assert peak < 50_000_000


@pytest.mark.parametrize("kind", ["array", "pil"])
def test_memory_stays_proportional_to_the_photo(kind, loaded_shift):
    """A 2400 x 1600 photo: the engine's numpy peak stays under 3 copies of it (one float32 copy would be 4)."""
    photo = np.full((1600, 2400, 3), 90, np.uint8)
    photo[200:1224, 600:1624] = np.asarray(Image.fromarray(portrait(512)).resize((1024, 1024)))
    nbytes = photo.nbytes  # 11.5 MB; a float32 copy would be 46 MB
    image = photo if kind == "array" else Image.fromarray(photo)
    smilecore.detect_faces(photo[:64, :64])  # load the detector first
    result, peak = traced_peak(lambda: smilecore.smile(image, model=loaded_shift))
    assert any(f.edited for f in result.faces)
    assert peak < 3 * nbytes + 16_000_000, f"peak {peak / 1e6:.0f} MB for a {nbytes / 1e6:.0f} MB photo"


def test_memory_does_not_grow_with_the_number_of_faces(loaded_shift, monkeypatch):
    """64 faces (a crowd): the network must run in small batches, composited as it goes, not all at once."""
    from smilecore import pipeline

    photo = portrait(256)
    face = smilecore.detect_faces(photo)[0]
    monkeypatch.setattr(pipeline, "detect_faces", lambda *a, **k: [face] * 64)
    result, peak = traced_peak(lambda: smilecore.smile(photo, model=loaded_shift))
    assert sum(f.edited for f in result.faces) == 64
    # one face costs ~2.4 MB of float32 network input/output; 64 at once would be ~160 MB
    assert peak < 40_000_000, f"peak {peak / 1e6:.0f} MB for 64 faces on a 256 x 256 photo"
