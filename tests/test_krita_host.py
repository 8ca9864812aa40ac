"""The Krita plug-in inside the real Krita 5 (Debian's), headless.

Two runs, both against the plug-in folder that ``smile install-plugin krita`` fills and the
engine of this very environment (``smile worker`` from ``sys.prefix``) with a fixture model
whose flow is a pure 3-px translation and whose strength range (MODEL_RANGE) is not the bundled
model's, so the docker's slider must take it from the engine's greeting:

* ``kritarunner`` (no window): the apply flow on real documents: a new layer whose face region
  differs while the rest is identical, the selection respected, CMYK and Lab refused, no face
  reported (16-bit, float and grayscale documents: tests/test_krita_precision.py);
* the real GUI under Xvfb with a test-only plug-in (tests/hosts/krita/pykrita/smiletest) that
  drives the Smile docker: preview, screenshot, Apply, one undo step, the Tools → Scripts action,
  and Apply plus one undo step on a 32-bit float (linear) image;
* Krita's own Python (/usr/bin/python3) with PyQt5 and with PyQt6: the Qt shim, pixel files,
  the engine client and the docker's widgets (with a stand-in ``krita`` module).

Krita is installed with apt when missing and this runs as root; the tests skip (with the reason)
only when Krita cannot be installed or run here.  Screenshots go to ``$SMILE_ARTEFACTS`` when set,
else stay in pytest's tmp dir.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixture_model import build_fixture_model

pytestmark = pytest.mark.host

HERE = Path(__file__).parent
HOST_DIR = HERE / "hosts" / "krita"
APT_PACKAGES = ["krita", "python3-pyqt5", "python3-pyqt6", "python3-sip", "python3-numpy", "xvfb", "xauth"]
APT_LOCK_WAIT = "DPkg::Lock::Timeout=600"  # another apt (e.g. .ci/run's) may hold the lock for a while
KRITA_PYTHON = "/usr/bin/python3"  # the Python Debian's Krita embeds
NEEDED_PROGRAMS = ["krita", "kritarunner", "Xvfb"]
RUN_TIMEOUT_S = 600
GUI_TIMEOUT_S = 300  # a normal run takes 15-60 s; Krita 5.1 can deadlock, never wait forever
TRANSLATION_PX = 3.0
MODEL_RANGE = (-1.0, 3.0)  # the fixture model's strength range (the bundled model's is [-2, 4])


def _missing_programs() -> list[str]:
    return [p for p in NEEDED_PROGRAMS if shutil.which(p) is None]


def _ensure_krita() -> None:
    """Install Krita with apt if it is missing and we may; skip when that is impossible."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the Krita host tests need Linux (Debian's krita package)")
    missing = _missing_programs()
    if not missing:
        return
    hint = "apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"Krita is not installed ({', '.join(missing)} missing) and cannot be installed "
                    f"here (needs root and apt-get): run `{hint}`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "-o", APT_LOCK_WAIT, "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "-o", APT_LOCK_WAIT, "update"], env=env, capture_output=True, timeout=900)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    missing = _missing_programs()
    if missing:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"Krita could not be installed with apt ({tail[0]}): run `{hint}`")


def _has_binding(binding: str) -> bool:
    if not Path(KRITA_PYTHON).is_file():
        return False
    return subprocess.run([KRITA_PYTHON, "-c", f"import {binding}.QtCore"], capture_output=True).returncode == 0


def _ensure_binding(binding: str) -> None:
    """Make ``binding`` importable in Krita's Python (apt), or skip saying how."""
    if _has_binding(binding):
        return
    package = "python3-" + binding.lower()
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "-o", APT_LOCK_WAIT, "install", "-y", "--no-install-recommends", package],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), capture_output=True, timeout=1800)
    if not _has_binding(binding):
        pytest.skip(f"{binding} is not importable by {KRITA_PYTHON} and cannot be installed here: "
                    f"run `apt-get install -y {package}`")


def _smile_command() -> list[str]:
    """The ``smile`` CLI of this environment (the engine the plug-in must use)."""
    exe = Path(sys.prefix) / "bin" / "smile"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-m", "smile_cli"]


def _run(cmd: list[str], env: dict, cwd: Path | None = None, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; on time-out end that whole group (Krita, Xvfb).

    Returns (exit status, the last 3000 characters of its output); 124 means it timed out.
    """
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd) if cwd else None, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out[-3000:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, f"(timed out after {timeout:.0f} s)\n" + out[-3000:]


def _run_on_xvfb(cmd: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run ``cmd`` (as :func:`_run` does) on a fresh Xvfb of its own.

    Xvfb picks a free display itself (``-displayfd``), so no other X server can take it between
    choosing and connecting, as ``xvfb-run -a`` allows; and it does not reset when its last
    client leaves (``-noreset``): Krita connects and leaves three times before its window opens,
    and on a busy machine its real connection came while the server was resetting ("could not
    connect to display").  The server ends with the run.
    """
    read_fd, write_fd = os.pipe()
    errors = open(Path(env.get("HOME", "/tmp")) / "xvfb.log", "w+", encoding="utf-8")
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp",
                             "-noreset"],
                            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=errors, start_new_session=True)
    os.close(write_fd)
    try:
        number = b""
        while not number.endswith(b"\n") and select.select([read_fd], [], [], 30)[0]:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            number += chunk
        display = ":" + number.decode().strip()
        if not display[1:].isdigit():
            errors.seek(0)
            return 125, f"Xvfb did not start (exit {xvfb.poll()}):\n" + errors.read()[-3000:]
        code, log = _run(cmd, dict(env, DISPLAY=display), timeout=timeout)
        if code != 0:  # say how the X server fared too
            errors.seek(0)
            state = "still running" if xvfb.poll() is None else f"exited {xvfb.returncode}"
            log += f"\n(Xvfb on {display}: {state}; its log: {errors.read()[-1000:].strip() or 'empty'})"
        return code, log
    finally:
        os.close(read_fd)
        errors.close()
        xvfb.terminate()
        try:
            xvfb.wait(timeout=10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()


def _face_box(reply: dict) -> list[float]:
    faces = [f for f in reply["faces"] if f.get("edited")]
    assert faces, f"the engine edited no face: {reply}"
    return faces[0]["box"]


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.astype(np.int16) != b.astype(np.int16)).any(axis=-1)


def _load(path: Path) -> np.ndarray:
    assert path.is_file(), f"{path} was not written"
    return np.asarray(Image.open(path).convert("RGBA"))


def _assert_face_only_changed(source: np.ndarray, result: np.ndarray, box: list[float]) -> None:
    """Pixels changed near the face box, and not one pixel changed away from it."""
    changed = _changed(source, result)
    assert changed.sum() > 500, f"only {changed.sum()} pixels changed: the face was not edited"
    x0, y0, x1, y1 = box
    pad = 0.6 * max(x1 - x0, y1 - y0)  # the change mask is feathered beyond the box
    h, w = changed.shape
    near = np.zeros_like(changed)
    near[max(0, int(y0 - pad)):min(h, int(y1 + pad) + 1), max(0, int(x0 - pad)):min(w, int(x1 + pad) + 1)] = True
    assert not (changed & ~near).any(), "pixels away from the face changed"
    assert (changed & near).sum() == changed.sum()
    # the alpha channel (the opaque photo) is untouched
    assert (result[..., 3] == source[..., 3]).all()


@pytest.fixture(scope="module")
def krita_setup(tmp_path_factory) -> dict:
    """Krita present; a fresh HOME with the plug-in installed by ``smile install-plugin krita``."""
    _ensure_krita()
    root = tmp_path_factory.mktemp("krita")
    home = root / "home"
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    kritarc = home / ".config" / "kritarc"
    proc = subprocess.run([*_smile_command(), "install-plugin", "krita", "--dir", str(pykrita), "--kritarc", str(kritarc)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"smile install-plugin krita failed: {proc.stderr or proc.stdout}"
    engine_file = pykrita / "smile" / "smile-engine.json"
    assert (pykrita / "smile.desktop").is_file() and (pykrita / "smile" / "__init__.py").is_file()
    record = json.loads(engine_file.read_text(encoding="utf-8"))
    assert Path(record["command"][0]).is_file(), f"smile-engine.json names a missing program: {record}"
    assert record["command"][0].startswith(sys.prefix), \
        f"the plug-in must start the engine of this environment ({sys.prefix}), not {record['command'][0]}"
    assert "enable_smile=true" in kritarc.read_text(encoding="utf-8")

    image = root / "astronaut.png"
    from portrait import neutral_astronaut

    Image.fromarray(np.array(neutral_astronaut())).save(image)
    # SMILE_KRITA_MODEL: run with a real model instead, to renew docs/krita-docker.png: a path,
    # or "default" for the engine's own default model
    model = os.environ.get("SMILE_KRITA_MODEL") or build_fixture_model(
        root / "shift.onnx", dx=TRANSLATION_PX, dy=0.0, strength_range=tuple(f"{v:g}" for v in MODEL_RANGE))
    strength_range = None if os.environ.get("SMILE_KRITA_MODEL") else MODEL_RANGE  # (a real model: its own)
    runtime = root / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "PYTHON", "QT_", "SMILE_"))
           and k not in ("DISPLAY", "KRITA_PLUGIN_PATH", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT")}
    # an activated venv (as in .ci/run) must not leak into Krita: its embedded Python would find the
    # venv's site-packages instead of the system's PyQt5 (the plug-in finds the engine by its record)
    venv_bins = {str(Path(p).resolve()) for p in (os.environ.get("VIRTUAL_ENV", ""), sys.prefix) if p}
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep)
                                  if d and str(Path(d).resolve().parent) not in venv_bins)
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), SMILE_KRITA_IMAGE=str(image),
               LANG="C.UTF-8", LC_ALL="C.UTF-8")
    if str(model) != "default":
        env["SMILE_MODEL"] = str(model)
    artefacts = Path(os.environ.get("SMILE_ARTEFACTS") or root / "artefacts")
    artefacts.mkdir(parents=True, exist_ok=True)
    return {"root": root, "home": home, "pykrita": pykrita, "kritarc": kritarc, "env": env, "image": image,
            "engine": record, "artefacts": artefacts, "strength_range": strength_range}


def run_kritarunner(krita_setup: dict, script: str, out_name: str, **env_extra: str) -> tuple[Path, dict]:
    """Run ``tests/hosts/krita/<script>.py`` in kritarunner (offscreen), which writes its results into a new
    folder ``out_name``: that folder and its ``results.json``, checked for a crash of the whole run."""
    out = krita_setup["root"] / out_name
    out.mkdir()
    env = dict(krita_setup["env"], QT_QPA_PLATFORM="offscreen", SMILE_KRITA_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(krita_setup["pykrita"]), str(HOST_DIR)]), **env_extra)
    code, log = _run(["kritarunner", "-s", script], env, cwd=HOST_DIR)
    results_file = out / "results.json"
    assert results_file.is_file(), f"kritarunner wrote no results (exit {code}):\n{log}"
    results = json.loads(results_file.read_text(encoding="utf-8"))
    assert "crash" not in results, results["crash"]
    return out, results


def recorded_case(results: dict, name: str) -> dict:
    """The case ``name`` that a runner recorded in ``results``, checked for a crash of its own."""
    case = results.get(name)
    assert case is not None, f"the runner recorded no case {name!r}"
    assert "crash" not in case, case["crash"]
    return case


def test_kritarunner_apply_flow(krita_setup):
    out, results = run_kritarunner(krita_setup, "runner_apply", "runner-out")
    assert results["model"] == ["RGBA", "U8", 512, 512]
    if krita_setup["strength_range"]:  # the controller's slider is the engine's model's range
        assert tuple(results["slider"]) == krita_setup["strength_range"], results["slider"]

    plain = results["plain"]
    assert plain["statuses"][-1][0] == "done", plain["statuses"]
    assert plain["layers_after"] == plain["layers_before"] + [plain["layers_before"][0] + " smile"]
    source = _load(out / "source.png")
    assert (source[..., :3] == np.asarray(Image.open(krita_setup["image"]).convert("RGB"))).all(), \
        "the layer read from Krita differs from the portrait: B,G,R,A handling is wrong"
    box = _face_box(plain["reply"])
    _assert_face_only_changed(source, _load(out / "plain_result.png"), box)

    selected = results["selected"]
    assert selected["statuses"][-1][0] == "done", selected["statuses"]
    sel_x1 = results["selection_box"][2]
    changed = _changed(source, _load(out / "selected_result.png"))
    assert changed.any(), "nothing changed inside the selection"
    assert not changed[:, sel_x1:].any(), "pixels outside the selection changed"

    for name, kind_of_image in (("cmyk", "CMYKA/U8"), ("lab", "LABA/U16")):
        refused = results[name]
        assert refused["request_id"] is None and refused["layers_after"] == refused["layers_before"]
        kind, message = refused["statuses"][-1]
        assert kind == "error" and "RGB and grayscale" in message and kind_of_image in message, refused["statuses"]

    blank = results["blank"]
    assert blank["statuses"][-1][0] == "no_face", blank["statuses"]
    assert "smile-krita-" not in blank["statuses"][-1][1], "the message shows a temporary path"
    assert blank["layers_after"] == blank["layers_before"]


def test_gui_docker_preview_apply_undo_action(krita_setup):
    out = krita_setup["root"] / "gui-out"
    out.mkdir()
    pykrita = krita_setup["pykrita"]
    shutil.copytree(HOST_DIR / "pykrita" / "smiletest", pykrita / "smiletest", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(HOST_DIR / "pykrita" / "smiletest.desktop", pykrita / "smiletest.desktop")
    rc_text = krita_setup["kritarc"].read_text(encoding="utf-8")
    krita_setup["kritarc"].write_text(rc_text.replace("[python]\n", "[python]\nenable_smiletest=true\n", 1),
                                      encoding="utf-8")
    env = dict(krita_setup["env"], SMILE_KRITA_OUT=str(out), SMILE_KRITA_STRENGTH="1.5")
    code, log = _run_on_xvfb(["krita", "--nosplash"], env, timeout=GUI_TIMEOUT_S)
    results_file = out / "results.json"
    assert results_file.is_file(), f"the GUI test driver wrote no results (exit {code}):\n{log}"
    results = json.loads(results_file.read_text(encoding="utf-8"))
    assert "crash" not in results, results["crash"]
    assert "timeout" not in results, f"{results['timeout']}: {results.get('diagnostics')}"
    assert code == 0, f"Krita exited {code} after steps {[s['step'] for s in results['steps']]}:\n{log}"
    steps = {s["step"]: s for s in results["steps"] if s["step"] != "screenshot"}

    opened = steps["opened"]
    assert opened["dockers"], "the Smile docker does not exist"
    assert opened["action"], "the 'Smile: apply' action does not exist"

    first = steps["first_preview"]
    assert first["reply"]["ok"], first["reply"]
    assert first["rect"] == [0, 0, 512, 512], "the first preview should look at the whole image"
    preview = steps["preview"]
    assert preview["reply"]["ok"], preview["reply"]
    x, y, w, h = preview["rect"]
    assert w * h < 512 * 512 / 2, f"the second preview sent {w}x{h} pixels, not the area around the face"
    fx0, fy0, fx1, fy1 = _face_box(first["reply"])
    assert x <= fx0 and y <= fy0 and x + w >= fx1 and y + h >= fy1, "the preview area misses the face"
    assert preview["has_preview"], f"no preview shown; status: {preview['status']}"
    assert preview["slider"] == 15 and preview["spin"] == pytest.approx(1.5)
    assert not opened["slider_enabled"], "the slider was enabled before the engine said its model's range"
    if krita_setup["strength_range"]:  # the docker's slider spans the range the engine's greeting said
        low, high = krita_setup["strength_range"]
        assert preview["slider_range"] == [round(low * 10), round(high * 10)], preview["slider_range"]
        assert preview["spin_range"] == [low, high] and preview["slider_enabled"]

    shot = Path(results["screenshot"])
    with Image.open(shot) as img:
        assert img.size == (1600, 1000)
        assert np.asarray(img.convert("L")).std() > 10, "the screenshot is blank"
    shutil.copy(shot, krita_setup["artefacts"] / "krita-docker.png")
    if (out / "krita-applied.png").is_file():
        shutil.copy(out / "krita-applied.png", krita_setup["artefacts"] / "krita-applied.png")

    base = opened["layers"]
    applied = steps["applied"]
    assert applied["layers"] == base + [base[0] + " smile"], applied  # (named after its source)
    assert applied["status"][0] == "done"
    source = _load(out / "gui_source.png")
    result = _load(out / "gui_result.png")
    _assert_face_only_changed(source, result, _face_box(applied["reply"]))

    assert steps["undone"]["layers"] == base, "one undo step did not remove the Smile layer"

    action = steps["action"]
    assert action["layers"] == base + [base[0] + " smile"], action
    assert (_load(out / "gui_action_result.png") == result).all(), "the action and the docker's Apply differ"

    # a 32-bit float (linear) image at 50 % opacity: Apply adds one layer, changed only around the face;
    # one undo removes it
    applied = steps["float_applied"]
    assert applied["space"][:2] == ["RGBA", "F32"] and applied["reply"]["ok"], applied  # (the status may
    # already show the preview that switching to the new image started)
    assert applied["layers"] == applied["before"] + [applied["before"][0] + " smile"], applied
    assert applied["documents"] == 2, "temporary documents were left open"
    w, h = applied["size"]
    source = np.fromfile(out / "gui_float_source.bin", "<f4").reshape(h, w, 4)
    result = np.fromfile(out / "gui_float_result.bin", "<f4").reshape(h, w, 4)
    changed = (source.view(np.uint32) != result.view(np.uint32)).any(axis=-1)
    x0, y0, x1, y1 = _face_box(applied["reply"])
    pad = 0.6 * max(x1 - x0, y1 - y0)
    near = np.zeros_like(changed)
    near[max(0, int(y0 - pad)):int(y1 + pad) + 1, max(0, int(x0 - pad)):int(x1 + pad) + 1] = True
    assert changed.sum() > 500 and not (changed & ~near).any(), f"{changed.sum()} changed, {(changed & ~near).sum()} away from the face"
    assert steps["float_undone"]["layers"] == applied["before"], "one undo step did not remove the Smile layer"
    # the float layer is at 50 % opacity (not plain): the Smile layer replaces it and it is hidden, by Krita's
    # own "toggle layer visibility" action (the layer is the one selected in the active view): an undo step
    # before the layer's, so the first Ctrl+Z removes the layer and the second shows the source again
    (source_name,) = applied["before"]
    assert applied["visible"] == {source_name: False, source_name + " smile": True}, applied["visible"]
    assert f"the source '{source_name}' is hidden under it" in applied["apply_status"][1], applied["apply_status"]
    assert f"Ctrl+Z removes it, Ctrl+Z again shows '{source_name}'" in applied["apply_status"][1], applied["apply_status"]
    assert steps["float_undone"]["visible"] == {source_name: False}, steps["float_undone"]
    # Apply again on the source still hidden: refused before any request, nothing added
    retry = steps["float_retry"]
    assert retry["request"] is None and retry["layers"] == applied["before"], retry
    assert retry["status"] == ["error", f"'{source_name}' is hidden: show it (its eye in the Layers docker), then Apply"], retry
    twice = steps["float_undone_twice"]  # only the hiding undone: not the opacity or depth the driver set
    assert twice["layers"] == applied["before"] and twice["visible"] == {source_name: True}, twice
    assert twice["opacity"] == [128] and twice["space"] == "F32", twice
    # redo: first the source hidden again, then the Smile layer back, with the smiled face
    assert steps["float_redone_once"]["visible"] == {source_name: False}, steps["float_redone_once"]
    assert steps["float_redone"]["visible"] == {source_name: False, source_name + " smile": True}, steps["float_redone"]
    redone = np.fromfile(out / "gui_float_redone.bin", "<f4").reshape(h, w, 4)
    assert (redone.view(np.uint32) == result.view(np.uint32)).all(), "the Smile layer redone differs from the one Apply made"


@pytest.mark.parametrize("binding", ["PyQt5", "PyQt6"])
def test_plugin_parts_under_both_qt_bindings(krita_setup, binding):
    """Shim, pixels, engine client, missing-engine status and docker widgets, outside Krita.

    Krita 5 runs PyQt5 and Krita 6 PyQt6; the docker is built with a stand-in ``krita`` module.
    """
    _ensure_binding(binding)
    out = krita_setup["root"] / f"qt-{binding}"
    out.mkdir()
    env = dict(krita_setup["env"], QT_QPA_PLATFORM="offscreen")
    low, high = krita_setup["strength_range"] or (-2.0, 4.0)  # (SMILE_KRITA_MODEL=default: the bundled model's)
    code, log = _run([KRITA_PYTHON, str(HOST_DIR / "check_plugin_qt.py"), binding, str(krita_setup["pykrita"]),
                      str(krita_setup["image"]), str(out), f"{low},{high}"], env)
    assert code == 0, log
    results = json.loads((out / f"{binding}-results.json").read_text(encoding="utf-8"))
    assert results["binding"] == binding
    # the band Apply sends around the canvas: at most three canvases and 16 million pixels more (before:
    # half the longer side, 96 million pixels more around a 6000×4000 canvas)
    margins = results["margins"]
    assert margins["512x512"] == [256, 3 * 512 * 512] and margins["512x48"][0] == 55, margins
    assert margins["6000x4000"][0] == 701 and all(added <= 16_000_000 for _, added in margins.values()), margins
    assert "pip install /path/to/smile && smile install-plugin krita" in results["engine_missing"]
    width, height = results["preview_size"]
    assert height == results["preview_height"] and width > height  # before | after, side by side
