"""The protocol client both plug-ins share (plugins/common/smile_client.py), outside the editors:
finding the engine, its greeting and the slider built from it, error explanations, a real worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixture_model import build_fixture_model

sys.path.insert(0, str(resources.files("smile_plugins") / "common"))
import smile_client as sc  # noqa: E402

HINT = "pip install /path/to/smile && smile install-plugin krita (/path/to/smile: the Smile project folder, or its wheel)"
STUB = Path(__file__).parent / "hosts" / "gimp" / "stub_smile.py"


def ready(**fields) -> dict:
    return {"event": "ready", "protocol": 1, "version": "9.9", "model": "m 1", "strength_range": [-2, 4],
            "crop_size": 256, **fields}


def never() -> None:
    pass


# ------------------------------------------------------------------------------ finding the engine


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def no_path(monkeypatch, tmp_path: Path) -> Path:
    """PATH holds only an empty folder (no `smile`)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.mark.skipif(os.name == "nt", reason="POSIX executables")
def test_find_engine_order_and_messages(tmp_path: Path, no_path: Path):
    folder = tmp_path / "plugin"
    folder.mkdir()
    with pytest.raises(sc.EngineProblem) as strict:
        sc.find_engine(str(folder), "gimp", strict=True)
    assert str(strict.value) == "the Smile engine is not installed. Install it with: " + HINT.replace("krita", "gimp")
    with pytest.raises(sc.EngineProblem) as lenient:
        sc.find_engine(str(folder), "krita")
    assert str(lenient.value) == f"Smile engine not found (no 'smile' on PATH). Install it with: {HINT}"

    on_path = executable(no_path / "smile")
    with pytest.raises(sc.EngineProblem) as typo:  # what the user typed is used, or said to be wrong: no fallback
        sc.find_engine(str(folder), "krita", "/nonexistent/smile")
    assert str(typo.value) == ("the engine set in the plug-in ('/nonexistent/smile') is not a program: correct it, "
                               "or clear the Engine field to find the engine automatically")
    assert sc.find_engine(str(folder), "krita") == ([str(on_path), "worker"], "PATH")
    record = folder / sc.ENGINE_FILE
    record.write_text(json.dumps({"command": ["/gone/bin/smile", "worker"]}))
    with pytest.raises(sc.EngineProblem, match=r"the Smile engine recorded in .* \(/gone/bin/smile\) is gone\. Reinstall"):
        sc.find_engine(str(folder), "gimp", strict=True)
    assert sc.find_engine(str(folder), "krita") == ([str(on_path), "worker"], "PATH")  # lenient: looks on
    engine = executable(tmp_path / "smile")
    record.write_text(json.dumps({"command": [str(engine), "worker"], "python": sys.executable}))
    assert sc.find_engine(str(folder), "gimp", strict=True) == ([str(engine), "worker"], sc.ENGINE_FILE)
    # the plug-in's own setting comes first: a program, or a whole command line
    assert sc.find_engine(str(folder), "krita", f"{on_path} worker --verbose") == \
        ([str(on_path), "worker", "--verbose"], "the engine setting")
    record.write_text("{not json")
    with pytest.raises(sc.EngineProblem, match=r"smile-engine.json is unreadable \(.*\)\. Reinstall with: pip"):
        sc.find_engine(str(folder), "gimp", strict=True)


def test_an_engine_setting_pasted_as_a_path_with_spaces_is_one_program(tmp_path):
    # macOS' "Application Support", a Windows user folder: before, the path was split at its spaces (and, shell-like,
    # lost its backslashes), so the setting named no program
    (tmp_path / "Application Support" / "smile-venv").mkdir(parents=True)
    engine = executable(tmp_path / "Application Support" / "smile-venv" / "smile")
    for pasted in (str(engine), f'"{engine}"', f"'{engine}'", f"  {engine} "):
        assert sc.command_from_setting(pasted) == [str(engine), "worker"], pasted
    assert sc.command_from_setting(f'"{engine}" worker --verbose') == [str(engine), "worker", "--verbose"]
    assert sc.command_from_setting("smile") == ["smile", "worker"] and sc.command_from_setting("  ") is None
    assert sc.command_from_setting('"unbalanced') == ['"unbalanced', "worker"]  # (said not to be a program later)


def test_engine_environment_drops_the_editors_python():
    env = sc.engine_environment({"PATH": "/bin", "PYTHONPATH": "/gimp/py", "PYTHONHOME": "/x", "HOME": "/h"})
    assert env == {"PATH": "/bin", "HOME": "/h"}


# ------------------------------------------------------------------------------ greeting and slider


def test_greeting_check():
    g = sc.read_greeting(ready(strength_range=[-0.5, 1.5], crop_size=128), "gimp")
    assert g == sc.Greeting("9.9", "m 1", (-0.5, 1.5), 128, None)
    with pytest.raises(sc.EngineProblem, match="unexpected greeting"):
        sc.read_greeting({"id": 1, "ok": True}, "gimp")
    with pytest.raises(sc.EngineProblem) as other:
        sc.read_greeting(ready(protocol=2), "krita")
    assert str(other.value) == ("the Smile engine speaks protocol 2, this plug-in speaks 1. "
                                "Update both with: pip install -U /path/to/smile && smile install-plugin krita")
    for broken in (None, [4, -2], [0, float("inf")], ["a", "b"], [1]):
        with pytest.raises(sc.EngineProblem, match="does not say its model's strength range"):
            sc.read_greeting(ready(strength_range=broken), "gimp")
    no_model = sc.read_greeting(ready(model=None, strength_range=None, crop_size=None,
                                      model_error={"code": "model", "message": "gone"}), "gimp")
    assert no_model.model_error == {"code": "model", "message": "gone"}
    assert sc.strength_slider(no_model) is None


@pytest.mark.parametrize("low, high, preferred, default", [(-2, 4, 1.0, 1.0), (1.5, 3, 1.0, 1.5),
                                                           (-1, 0.5, 1.0, 0.5), (-2, 4, 9.0, 4.0)])
def test_strength_slider_spans_the_models_range(low, high, preferred, default):
    slider = sc.strength_slider(sc.read_greeting(ready(strength_range=[low, high]), "krita"), preferred)
    assert (slider.low, slider.high, slider.default) == (low, high, default)
    assert slider.clamp(high + 1) == high and slider.clamp(low - 1) == low


def test_explain_errors():
    hide = {"/tmp/smile-x/input.png": "the layer"}
    assert sc.explain({"code": "no_face", "message": "no face found in /tmp/smile-x/input.png"}, "in this layer",
                      "gimp", hide).startswith("no face found in this layer. Smile needs a face")
    # faces found but each left alone: the engine's reason, not "no face found" (before: "select the whole face" for all);
    # faces outside the selection only: none found in it, and how a selection chooses a face
    outside = {"code": "no_face", "message": "/tmp/smile-x/input.png: 1 face(s) found but none chosen (outside the selection)"}
    assert sc.explain(outside, "in the selection", "krita", hide).startswith(
        "no face found in the selection. Smile needs a face seen roughly from the front (in a selection, the middle")
    small = {"code": "no_face", "message": "2 face(s) found but none chosen (too small to edit (23 px < 24 px))"}
    assert sc.explain(small, "in this layer", "gimp") == \
        "2 face(s) found in this layer, but none chosen: too small to edit (23 px < 24 px)."
    assert sc.explain({"code": "bad_input", "message": "/tmp/smile-x/input.png: cannot\n read it"}, "", "gimp",
                      hide) == "the Smile engine refused the image: cannot read it"
    assert sc.explain({"code": "model", "message": "model file x does not exist"}, "", "krita") == \
        f"the Smile engine's model is not usable: model file x does not exist. Reinstall with: {HINT}"
    assert sc.explain({"code": "bad_request", "message": "strength 9 is outside this model's range [-2, 4]"},
                      "", "gimp") == "the Smile engine refused the request: strength 9 is outside this model's range [-2, 4]"
    assert sc.explain(sc.failure_reply("the Smile engine stopped: boom")["error"], "", "krita") == \
        "the Smile engine stopped: boom"
    assert sc.explain({"code": "internal", "message": "bug"}, "", "gimp") == "the Smile engine failed (internal): bug"


def test_line_reader_and_request_line():
    reader = sc.LineReader()
    assert reader.feed(b'{"id": 1, "ok": tr') == []
    assert reader.feed(b'ue}\nnoise\n\n[1]\n{"event": "ready"}\n{"id"') == [{"id": 1, "ok": True}, {"event": "ready"}]
    assert json.loads(sc.request_line({"cmd": "hello"}, 7)) == {"cmd": "hello", "id": 7}
    with pytest.raises(sc.EngineProblem, match="could not be written"):  # (NaN: the engine could not read its id)
        sc.request_line({"cmd": "smile", "strength": float("nan")}, 8)
    assert sc.answers({"id": None, "ok": False, "error": {}}, 9) and sc.answers({"id": 9, "ok": True}, 9)
    assert not sc.answers({"id": None, "ok": True}, 9) and not sc.answers({"id": 8, "ok": False}, 9)


def test_write_png_round_trip(tmp_path: Path):
    rgba = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(3, 5, 4)
    sc.write_png(str(tmp_path / "a.png"), 5, 3, 4, rgba.tobytes())
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgba)


# ------------------------------------------------------------------------------ real processes


def test_blocking_client_with_the_real_worker_uses_the_models_range(tmp_path: Path, astronaut, monkeypatch):
    """A model with another range: the greeting says it, the slider spans it, the engine enforces it."""
    model = build_fixture_model(tmp_path / "narrow.onnx", dx=2.0, strength_range=("-1", "2.5"))
    monkeypatch.setenv("SMILE_MODEL", str(model))
    monkeypatch.setenv("PYTHONPATH", "/editor/python")  # must not reach the engine
    photo = tmp_path / "in.png"
    Image.fromarray(astronaut).save(photo)
    engine = sc.EngineProcess([sys.executable, "-m", "smile_cli", "worker"], "gimp")
    try:
        greeting = engine.greet(never, timeout=120)
        assert greeting.strength_range == (-1.0, 2.5) and greeting.crop_size == 256
        slider = sc.strength_slider(greeting, 4.0)
        assert (slider.low, slider.high, slider.default) == (-1.0, 2.5, 2.5)
        ok = engine.request(never, {"cmd": "smile", "input": str(photo), "output": str(tmp_path / "o.png"),
                                    "strength": slider.default})
        assert ok["ok"] and ok["faces"][0]["edited"], ok
        refused = engine.request(never, {"cmd": "smile", "input": str(photo), "output": str(tmp_path / "o.png"),
                                         "strength": 3.0})
        assert sc.explain(refused["error"], "", "gimp", {str(photo): "the layer"}) == \
            "the Smile engine refused the request: strength 3 is outside this model's range [-1, 2.5]"
        too_long = engine.request(never, {"cmd": "smile", "input": str(photo), "output": str(tmp_path / "o.png"),
                                           "faces": [0] * 400_000})  # (over 1 MiB: answered with "id": null)
        assert too_long["ok"] is False and too_long["error"]["code"] == "bad_request", too_long
        assert engine.request(never, {"cmd": "hello"})["ok"]  # and the next reply is the next request's
    finally:
        engine.close()
    assert engine.process.wait(timeout=30) == 0
    engine.close()  # (twice is as once)


def test_a_greeting_that_never_comes_is_an_engine_problem_not_a_closed_file():
    engine = sc.EngineProcess([sys.executable, "-c", "import time; time.sleep(60)"], "gimp")
    with pytest.raises(sc.EngineProblem, match="did not answer within 1 s"):
        engine.greet(never, timeout=1)
    assert engine.process.poll() is not None


@pytest.mark.skipif(os.name == "nt", reason="runs a script through its #! line")
def test_blocking_client_reports_a_crash_with_the_engines_last_words(tmp_path: Path):
    engine = sc.EngineProcess([sys.executable, str(STUB), "worker"], "gimp")
    try:
        assert engine.greet(never, timeout=60).strength_range is not None
        with pytest.raises(sc.EngineProblem) as crash:
            engine.request(never, {"cmd": "smile", "input": "x.png", "output": "y.png", "strength": 3.25})
    finally:
        engine.close()
    assert str(crash.value) == "the Smile engine stopped unexpectedly (exit status 3): stub engine: simulated crash"


def test_a_program_that_cannot_start_says_how_to_reinstall(tmp_path: Path):
    with pytest.raises(sc.EngineProblem, match=r"could not start the Smile engine /nonexistent/smile \(.*\)\. "
                                               r"Reinstall with: pip install"):
        sc.EngineProcess(["/nonexistent/smile", "worker"], "gimp")


def test_client_is_stdlib_only():
    """The editors' Pythons have nothing else: the client imports only the standard library."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import smile_client; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('numpy', 'PIL', 'smilecore', 'smile_cli', 'click')]; "
            "print(bad)")
    done = subprocess.run([sys.executable, "-S", "-c", code, str(resources.files("smile_plugins") / "common")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_sixteen_bit_pngs_keep_every_bit(tmp_path):
    from PIL import Image
    import numpy as np

    values = np.arange(4 * 3 * 4, dtype=np.uint16).reshape(3, 4, 4) * 1361  # (every sample different)
    path = tmp_path / "deep.png"
    sc.write_png(str(path), 4, 3, 4, values.astype("=u2").tobytes(), depth=16)
    import cv2

    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and np.array_equal(got[:, :, [2, 1, 0, 3]], values)
    sc.write_png(str(path), 4, 3, 1, bytes(range(12)))
    with Image.open(path) as im:
        assert im.mode == "L" and np.asarray(im).ravel().tolist() == list(range(12))


@pytest.mark.skipif(os.name == "nt", reason="SIGTERM is a kill on Windows")
def test_closing_an_engine_busy_with_a_request_stops_it_with_sigterm_not_a_kill(tmp_path: Path):
    """Before: a worker busy with a video was killed (SIGKILL) after 10 s, leaving its temporary file behind;
    SIGTERM lets it end its request cleanly."""
    mark = tmp_path / "stopped"
    busy = ("import signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(mark)!r}, 'w').write('clean'), sys.exit(143)))\n"
            "time.sleep(60)\n")
    engine = sc.EngineProcess([sys.executable, "-c", busy], "gimp")
    time.sleep(0.5)  # (its handler in place)
    engine.close()
    assert engine.process.returncode == 143 and mark.read_text() == "clean"


def test_a_missing_smile_model_file_says_to_correct_smile_model_not_to_reinstall(tmp_path: Path, monkeypatch):
    """The real worker with SMILE_MODEL naming no file: the fix is the variable, not a reinstall."""
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "gone.onnx"))
    engine = sc.EngineProcess([sys.executable, "-m", "smile_cli", "worker"], "krita")
    try:
        greeting = engine.greet(never, timeout=120)
    finally:
        engine.close()
    assert sc.explain(greeting.model_error, "", "krita") == (
        f"the Smile engine's model is not usable: model file {tmp_path / 'gone.onnx'} does not exist (the model "
        "SMILE_MODEL names). Set SMILE_MODEL to a model file or to a name `smile models list` shows (or unset it), "
        "then restart Krita.")
    # a model the engine chose itself (no SMILE_MODEL): reinstalling is the fix
    assert sc.explain({"code": "model", "message": "model file x does not exist"}, "", "gimp").endswith(
        ". Reinstall with: pip install /path/to/smile && smile install-plugin gimp (/path/to/smile: the Smile "
        "project folder, or its wheel)")
