"""kritarunner script: drive the Smile plug-in's apply flow on real Krita documents.

Run as ``kritarunner -s runner_apply`` with ``QT_QPA_PLATFORM=offscreen`` and PYTHONPATH
holding the pykrita folder the plug-in was installed into plus this folder.  Settings come from
the environment:

* ``SMILE_KRITA_IMAGE``: the portrait (PNG) to open;
* ``SMILE_KRITA_OUT``: a folder for results: ``results.json`` and the layers as PNG files;
* ``SMILE_KRITA_ENGINE``: optional engine command (else the plug-in finds its own).

It never asserts on pixels itself (tests/test_krita_host.py does, with numpy); it records what
happened and exits 0, or 1 when the script itself broke (kritarunner's own exit code is always 0).
"""
from __future__ import annotations

import json
import os
import sys
import traceback


def _write_layer(node, doc, path):
    from smile import pixels

    w, h = doc.width(), doc.height()
    pixels.save_bgra_png(bytes(node.pixelData(0, 0, w, h)), w, h, path)


def _run(out: str, results: dict) -> None:
    from krita import Krita, Selection

    from smile.controller import SmileController

    app = Krita.instance()
    ctl = SmileController(app)
    ctl.engine_setting = os.environ.get("SMILE_KRITA_ENGINE", "")
    statuses: list = []
    ctl.statusChanged.connect(lambda kind, msg: statuses.append([kind, msg]))

    added: list = []
    ctl.applied.connect(added.append)

    def run_apply(doc, strength=1.0):
        node = [n for n in doc.topLevelNodes() if n.type() == "paintlayer"][0]
        before = [n.name() for n in doc.topLevelNodes()]
        del statuses[:]
        del added[:]
        ctl.set_strength(strength)
        rid = ctl.apply(doc, node)
        reply = ctl.client.wait(rid) if rid is not None else None
        doc.waitForDone()
        return {"request_id": rid, "reply": reply, "statuses": list(statuses), "layers_before": before,
                "layers_after": [n.name() for n in doc.topLevelNodes()],
                "types_after": [n.type() for n in doc.topLevelNodes()]}

    # 1. the portrait, no selection
    doc = app.openDocument(os.environ["SMILE_KRITA_IMAGE"])
    if doc is None:
        raise RuntimeError("Krita could not open the portrait")
    results["model"] = [doc.colorModel(), doc.colorDepth(), doc.width(), doc.height()]
    source = doc.topLevelNodes()[-1]
    _write_layer(source, doc, os.path.join(out, "source.png"))
    results["plain"] = run_apply(doc)
    results["slider"] = None if ctl.slider is None else [ctl.slider.low, ctl.slider.high]
    if added:
        _write_layer(added[0], doc, os.path.join(out, "plain_result.png"))
        added[0].remove()

    # 2. the same with a selection: the left half of the image only
    selection = Selection()
    selection.select(0, 0, doc.width() // 2, doc.height(), 255)
    doc.setSelection(selection)
    results["selection_box"] = [0, 0, doc.width() // 2, doc.height()]
    results["selected"] = run_apply(doc)
    if added:
        _write_layer(added[0], doc, os.path.join(out, "selected_result.png"))
    doc.close()

    # 3. a CMYK document is refused with a message (16-bit, float and grayscale ones are
    # smiled: tests/test_krita_precision.py)
    cmyk = app.createDocument(64, 64, "cmyk", "CMYKA", "U8", "", 72.0)
    results["cmyk"] = run_apply(cmyk)
    cmyk.close()

    # 3b. so is a Lab one
    lab = app.createDocument(64, 64, "lab", "LABA", "U16", "", 72.0)
    results["lab"] = run_apply(lab)
    lab.close()

    # 4. an image without a face
    blank = app.createDocument(128, 128, "blank", "RGBA", "U8", "", 72.0)
    results["blank"] = run_apply(blank)
    blank.close()

    ctl.shutdown()


def __main__(args):
    out = os.environ["SMILE_KRITA_OUT"]
    code = 0
    results: dict = {}
    try:
        _run(out, results)
    except Exception:
        results["crash"] = traceback.format_exc()
        code = 1
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=str)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
