"""The plug-in's Krita-free parts under a chosen Qt binding (PyQt5 or PyQt6), outside Krita.

Run with the Python Krita embeds (Debian: /usr/bin/python3), never the engine's venv::

    python3 check_plugin_qt.py BINDING PYKRITA_DIR IMAGE OUT_DIR LOW,HIGH

BINDING is PyQt5 or PyQt6 (imported first, so the plug-in's shim must pick it), PYKRITA_DIR the
folder holding the installed ``smile`` package (its smile-engine.json names the engine),
IMAGE a portrait PNG, LOW,HIGH the strength range of the engine's model (its greeting must say
it, and the docker's slider must span it).  Exits 0 when every check passed, else prints the failed check and exits 1.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time


class FakeApp:
    """Stand-in for ``Krita.instance()``: default settings, no document."""

    def readSetting(self, group, key, default):  # noqa: N802 (Krita's name)
        return default

    def writeSetting(self, group, key, value):  # noqa: N802
        pass

    def activeDocument(self):  # noqa: N802
        return None


def main(argv: list) -> int:
    binding, pykrita, image_path, out = argv[1:5]
    low, high = (float(v) for v in argv[5].split(","))
    importlib.import_module(binding + ".QtCore")  # the binding "Krita" loaded
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, pykrita)

    from smile import qt
    from smile.controller import PREVIEW_HEIGHT, SmileController, preview_image
    from smile.engine import FIX_HINT, EngineClient, plugin_dir
    from smile import pixels
    from smile.smile_client import ENGINE_FILE, EngineProblem, find_engine, read_engine_record

    results = {"binding": qt.BINDING}
    assert qt.BINDING == binding, f"the shim picked {qt.BINDING}, not the loaded {binding}"
    app = qt.QtWidgets.QApplication([sys.argv[0]])

    # B,G,R,A bytes -> PNG -> bytes, and the colour of a known pixel
    w, h = 5, 3
    data = bytes([10, 20, 30, 255] * (w * h))
    png = os.path.join(out, f"{binding}-roundtrip.png")
    pixels.save_bgra_png(data, w, h, png)
    back = pixels.load_png_bgra(png, w, h)
    assert back == data, "B,G,R,A bytes did not survive the PNG round trip"
    colour = qt.QImage(png).pixelColor(0, 0)
    assert (colour.red(), colour.green(), colour.blue()) == (30, 20, 10), "B and R are swapped"

    # B,G,R,A 16-bit words (Krita's 16-bit integer RGBA) -> 16-bit PNG -> words, every bit kept
    import struct

    words = struct.pack("<4H", 1001, 2002, 40003, 65535) * (w * h)
    png16 = os.path.join(out, f"{binding}-roundtrip16.png")
    pixels.save_bgra64_png(words, w, h, png16)
    with open(png16, "rb") as fh:
        header = fh.read(26)
    assert header[24:26] == bytes([16, 6]), f"not a 16-bit RGBA PNG: depth {header[24]}, colour type {header[25]}"
    assert pixels.load_png_bgra64(png16, w, h) == words, "16-bit B,G,R,A words did not survive the PNG round trip"
    colour = qt.QImage(png16).pixelColor(0, 0)
    assert (colour.red(), colour.blue()) == (round(40003 / 257), round(1001 / 257)), "B and R are swapped (16-bit)"
    try:
        pixels.load_png_bgra64(png, w, h)  # an 8-bit answer to a 16-bit request is refused
        raise AssertionError("an 8-bit PNG was read as 16-bit words")
    except pixels.PixelError:
        pass

    # engine discovery: nothing set, no smile-engine.json, nothing on PATH
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = ""
    try:
        with tempfile.TemporaryDirectory() as empty:
            try:
                find_engine(empty, "krita")
                raise AssertionError("an engine was found where there is none")
            except EngineProblem as problem:
                assert "PATH" in str(problem) and FIX_HINT in str(problem), problem

            ctl = SmileController(FakeApp())
            ctl.engine_folder = empty
            assert ctl.apply() is None
            kind, message = ctl.status
            assert kind == "engine_missing" and FIX_HINT in message, ctl.status
            results["engine_missing"] = message
    finally:
        os.environ["PATH"] = saved_path

    # a 'smile' on PATH is found when nothing else is set
    with tempfile.TemporaryDirectory() as bindir, tempfile.TemporaryDirectory() as empty:
        fake = os.path.join(bindir, "smile")
        with open(fake, "w") as fh:
            fh.write("#!/bin/sh\n")
        os.chmod(fake, 0o755)
        os.environ["PATH"] = bindir
        try:
            assert find_engine(empty, "krita") == ([fake, "worker"], "PATH"), find_engine(empty, "krita")
            # the docker's setting wins over PATH: a program, or a whole command line
            assert find_engine(empty, "krita", fake) == ([fake, "worker"], "the engine setting")
            line = f"{fake} worker --verbose"
            assert find_engine(empty, "krita", line) == ([fake, "worker", "--verbose"], "the engine setting")
            # a setting naming nothing runnable falls back, and says so when nothing is found
            os.environ["PATH"] = ""
            try:
                find_engine(empty, "krita", "/nonexistent/smile")
                raise AssertionError("/nonexistent/smile was accepted")
            except EngineProblem as problem:
                assert "/nonexistent/smile" in str(problem), problem
        finally:
            os.environ["PATH"] = saved_path

    # a program that does not exist: the request fails with the fix in the message
    broken = EngineClient(["/nonexistent/smile", "worker"])
    replies = []
    rid = broken.request({"cmd": "hello"}, replies.append)
    reply = broken.wait(rid, 10000)
    assert not reply["ok"] and replies and not replies[0]["ok"], reply
    results["broken"] = reply["error"]["message"]

    # the real engine, found through smile-engine.json: blocking and event-loop styles
    command = read_engine_record(os.path.join(pykrita, "smile", ENGINE_FILE))
    assert command, "smile-engine.json is missing"
    found, where = find_engine(plugin_dir(), "krita")
    assert found == command and where == "smile-engine.json", (found, where)
    client = EngineClient(command)
    output = os.path.join(out, f"{binding}-out.png")
    rid = client.request({"cmd": "smile", "input": image_path, "output": output, "strength": 1.0})
    reply = client.wait(rid)
    assert reply.get("ok"), reply
    assert os.path.isfile(output)
    results["engine_greeting"] = client.greeting
    assert client.greeting.strength_range == (low, high), client.greeting

    got = []
    client.request({"cmd": "smile", "input": image_path, "output": output, "strength": -1.0},
                   lambda r: (got.append(r), app.quit()))
    qt.QTimer.singleShot(120000, app.quit)
    app.exec() if hasattr(app, "exec") else app.exec_()
    assert got and got[0].get("ok"), got
    client.stop()
    assert not client.running()

    boxes = [f["box"] for f in got[0]["faces"]]
    preview = preview_image(image_path, output, boxes)
    assert preview is not None and preview.height() == PREVIEW_HEIGHT and preview.width() > PREVIEW_HEIGHT, preview
    results["preview_size"] = [preview.width(), preview.height()]
    results["preview_height"] = PREVIEW_HEIGHT

    results["docker"] = check_docker_widgets(qt, preview, client.greeting)
    results["hide"] = check_hide()
    results["margins"] = check_margins()
    with open(os.path.join(out, f"{binding}-results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=str)
    return 0


def check_docker_widgets(qt, preview, greeting) -> dict:
    """Build the docker's widgets with a stand-in ``krita`` module (real Krita runs PyQt5 only);
    its strength slider spans the range of ``greeting`` (the real engine's, with a fixture model
    whose range is not the bundled model's)."""
    import types

    fake = types.ModuleType("krita")
    fake.DockWidget = qt.QtWidgets.QDockWidget
    fake.Extension = qt.QObject
    fake.Krita = types.SimpleNamespace(instance=lambda: FakeApp())
    sys.modules["krita"] = fake
    from smile import extension  # noqa: F401  (imports under this binding)
    from smile.docker import SmileDocker

    docker = SmileDocker()
    # the docker says at once whether the engine can be found, without starting it
    assert "smile-engine.json" in docker.status.text() and docker.ctl.client is None, docker.status.text()
    docker.ctl.engine_folder = tempfile.mkdtemp()
    # until the engine has said its model's range, the strength controls wait
    assert not docker.slider.isEnabled() and not docker.spin.isEnabled()
    docker.ctl.use_greeting(greeting)  # what the engine client's greeted signal does
    low, high = greeting.strength_range
    assert docker.slider.isEnabled() and docker.spin.isEnabled()
    assert (docker.slider.minimum(), docker.slider.maximum()) == (round(low * 10), round(high * 10)), \
        "the slider does not span the model's range"
    assert (docker.spin.minimum(), docker.spin.maximum()) == (low, high)
    assert docker.ctl.strength == 1.0 and docker.slider.value() == 10  # the default, inside the range
    docker.set_strength(high - 0.5)
    assert docker.slider.value() == round((high - 0.5) * 10) and abs(docker.spin.value() - (high - 0.5)) < 1e-9, \
        "slider and spin box disagree"
    docker.set_strength(9.0)
    assert docker.ctl.strength == high and docker.slider.value() == round(high * 10), f"strength not clamped to {high}"
    docker.slider.setValue(-20)
    assert docker.ctl.strength == low and abs(docker.spin.value() - low) < 1e-9
    assert docker.timer.isActive(), "moving the slider did not schedule a preview"
    docker.faces.setCurrentIndex(1)
    assert docker.ctl.faces == "largest"

    # debounce: a slider dragged through many values gives one preview, once it rests
    from smile.docker import DEBOUNCE_MS

    calls = []
    docker.ctl.preview = lambda: calls.append(docker.ctl.strength)
    for position in (1, 5, 10, 15, 20):
        docker.slider.setValue(position)
    assert calls == [] and docker.timer.isActive(), "the preview ran while the slider was still moving"
    deadline = time.monotonic() + 10.0
    while not calls and time.monotonic() < deadline:
        qt.QtWidgets.QApplication.processEvents()
        time.sleep(0.01)
    settle = time.monotonic() + 3 * DEBOUNCE_MS / 1000.0
    while time.monotonic() < settle:  # no second preview follows
        qt.QtWidgets.QApplication.processEvents()
        time.sleep(0.01)
    assert calls == [2.0], f"expected one preview at the last strength, got {calls}"
    del docker.ctl.preview

    # no engine anywhere: the status says so, with the command that fixes it
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = ""
    try:
        assert docker.ctl.probe_engine() is False
    finally:
        os.environ["PATH"] = saved_path
    assert "pip install /path/to/smile && smile install-plugin krita" in docker.status.text(), docker.status.text()
    docker.resize(300, 600)
    docker.show()
    qt.QtWidgets.QApplication.processEvents()
    docker._show_preview(preview)
    pixmap = docker.preview.pixmap()
    assert pixmap is not None and not pixmap.isNull(), "the preview is not shown"
    assert pixmap.width() <= max(1, docker.preview.width()), "the preview is wider than its label"
    docker.ctl._set_status("no_face", "no face found")
    assert docker.status.text() == "no face found"
    from smile.controller import edited_and_why  # (the preview and Apply say why no face was edited)

    smiling = {"ok": True, "faces": [{"edited": False, "reason": "already smiling (about strength 1.7)"}]}
    assert edited_and_why(smiling) == (0, ": already smiling (about strength 1.7)")
    assert edited_and_why({"ok": True, "faces": [{"edited": True, "reason": None}]}) == (1, "")
    return {"preview_label": [docker.preview.width(), docker.preview.height()], "pixmap": [pixmap.width(), pixmap.height()]}


class FakeNode:
    """A layer for stacking.hide: its id, visibility and whether the script's call hid it."""

    def __init__(self, uid: int) -> None:
        self.uid, self.shown, self.set_hidden = uid, True, False

    def uniqueId(self):  # noqa: N802 (Krita's names)
        return self.uid

    def visible(self) -> bool:
        return self.shown

    def setVisible(self, value: bool) -> None:  # noqa: N802
        self.shown, self.set_hidden = value, not value


def check_hide() -> dict:
    """stacking.hide uses Krita's own (undoable) visibility action only when the active view shows
    the document and exactly the layer is selected there; otherwise the script's setVisible."""
    import types

    from smile import stacking

    def hide(doc, node, selected, view_doc=None, window=True, toggles=True) -> tuple:
        view = types.SimpleNamespace(document=lambda: view_doc or doc, selectedNodes=lambda: selected)
        toggle = types.SimpleNamespace(trigger=lambda: [setattr(n, "shown", False) for n in selected if toggles])
        app = types.SimpleNamespace(activeWindow=lambda: types.SimpleNamespace(activeView=lambda: view) if window else None,
                                    action=lambda name: toggle if name == stacking.TOGGLE_VISIBILITY else None)
        sys.modules["krita"] = types.SimpleNamespace(Krita=types.SimpleNamespace(instance=lambda: app))
        undoable = stacking.hide(doc, node)
        assert not node.visible(), "the layer was not hidden"
        return undoable, node.set_hidden

    doc, other = types.SimpleNamespace(setActiveNode=lambda n: None, waitForDone=lambda: None), object()
    a, b, c, d = (FakeNode(1) for _ in range(4))  # (the action would hide the layers selected)
    cases = {"two_selected": hide(doc, a, [a, FakeNode(2)]),
             "other_selected": hide(doc, FakeNode(1), [FakeNode(2)]),
             "other_document": hide(doc, b, [b], view_doc=other),
             "no_window": hide(doc, c, [c], window=False),
             "action_did_not_hide": hide(doc, d, [d], toggles=False)}
    for name, (undoable, by_script) in cases.items():
        assert not undoable and by_script, (name, undoable, by_script)
    node = FakeNode(1)
    assert hide(doc, node, [node]) == (True, False), "the action was not used for the one layer selected"
    return {name: list(value) for name, value in cases.items()}


def check_margins() -> dict:
    """The band around the canvas that Apply sends: how wide, and how many pixels it adds, per
    canvas size (tests/test_krita_host.py judges them)."""
    from smile import jobs

    sizes = [(512, 512), (512, 48), (6000, 4000), (30000, 30000)]
    return {f"{w}x{h}": [jobs.margin(w, h), (w + 2 * jobs.margin(w, h)) * (h + 2 * jobs.margin(w, h)) - w * h]
            for w, h in sizes}


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except AssertionError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        sys.exit(1)
