"""kritarunner script: the Smile plug-in on documents that are not 8-bit RGBA.

Run as ``kritarunner -s runner_precision`` with ``QT_QPA_PLATFORM=offscreen`` and PYTHONPATH
holding the pykrita folder the plug-in was installed into plus this folder.  Environment:

* ``SMILE_KRITA_IMAGE``: the portrait (8-bit PNG) every document is made from;
* ``SMILE_KRITA_OUT``: a folder for ``results.json`` and raw layer dumps (``NAME.bin``: the
  layer's bytes as Krita's ``pixelData`` gives them, over the rectangle results.json names);
* ``SMILE_KRITA_BIG``: optional ``WIDTHxHEIGHT`` of a large float document to time the
  preview and Apply on (the portrait pasted into it);
* ``SMILE_KRITA_CASES``: optional comma-separated names of the cases to run (default: all).

It records and never judges (tests/test_krita_precision.py does, with numpy); exit 0, or 1
when the script itself broke (kritarunner's own exit code is always 0).
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
import traceback

OUT = ""


def dump(name: str, node, rect) -> dict:
    x, y, w, h = rect
    read = node.pixelData if node.type() == "paintlayer" else node.projectionPixelData  # (a group: what it shows)
    data = bytes(read(x, y, w, h))
    with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
        fh.write(data)
    return {"file": name + ".bin", "rect": list(rect), "bytes": len(data)}


def space(doc) -> list:
    return [doc.colorModel(), doc.colorDepth(), doc.colorProfile()]


class Runner:
    def __init__(self) -> None:
        from krita import Krita

        from smile.controller import SmileController

        self.app = Krita.instance()
        self.out = OUT
        self.ctl = SmileController(self.app)
        self.statuses: list = []
        self.added: list = []
        self.ctl.statusChanged.connect(lambda kind, msg: self.statuses.append([kind, msg]))
        self.ctl.applied.connect(self.added.append)

    def dump(self, name: str, node, rect) -> dict:
        return dump(name, node, rect)

    def portrait(self, depth: str = "U8", model: str = "RGBA", profile: str = ""):
        """The portrait as a document converted (by Krita) to ``model``/``depth``/``profile``."""
        doc = self.app.openDocument(os.environ["SMILE_KRITA_IMAGE"])
        if doc is None:
            raise RuntimeError("Krita could not open the portrait")
        if (model, depth) != ("RGBA", "U8") or profile:
            if not doc.setColorSpace(model, depth, profile or default_profile(self.app, model, depth)):
                raise RuntimeError(f"could not convert the portrait to {model}/{depth}/{profile}")
            doc.waitForDone()
        return doc

    def apply(self, doc, node=None, strength: float = 1.0) -> dict:
        node = node or [n for n in doc.topLevelNodes() if n.type() == "paintlayer"][0]
        before = [n.name() for n in doc.topLevelNodes()]
        del self.statuses[:]
        del self.added[:]
        self.ctl.set_strength(strength)
        started = time.monotonic()
        rid = self.ctl.apply(doc, node)
        reply = self.ctl.client.wait(rid, 600000) if rid is not None else None
        doc.waitForDone()
        return {"request_id": rid, "reply": reply, "statuses": list(self.statuses), "layers_before": before,
                "documents_open": len(self.app.documents()),  # (temporary documents must be gone)
                "layers_after": [n.name() for n in doc.topLevelNodes()], "seconds": round(time.monotonic() - started, 2),
                "space": space(doc)}

    def smile_case(self, name: str, doc, node=None, rect=None, strength: float = 1.0) -> dict:
        """Apply on ``doc`` (``node``); dump the source and the result over ``rect``."""
        node = node or [n for n in doc.topLevelNodes() if n.type() == "paintlayer"][0]
        rect = rect or (0, 0, doc.width(), doc.height())
        result = {"source": dump(name + "-source", node, rect), "source_name": node.name()}
        result.update(self.apply(doc, node, strength))
        if self.added:
            result["result"] = dump(name + "-result", self.added[0], rect)
            result["result_space"] = [self.added[0].colorModel(), self.added[0].colorDepth(), self.added[0].colorProfile()]
        return result


def default_profile(app, model: str, depth: str) -> str:
    """The profile Krita gives a new document of ``model``/``depth`` (linear for 16-bit and float)."""
    doc = app.createDocument(1, 1, "probe", model, depth, "", 72.0)
    try:
        return doc.colorProfile()
    finally:
        doc.close()


def _run(results: dict, cases: list) -> None:
    r = Runner()
    wanted = [n for n in os.environ.get("SMILE_KRITA_CASES", "").split(",") if n]
    for name, case in cases:
        if wanted and name not in wanted:
            continue
        try:
            case(r, results)
        except Exception:  # one broken case must not hide the others
            results.setdefault(name, {})["crash"] = traceback.format_exc()
        for doc in list(r.app.documents()):  # (a case that broke may leave its document open)
            doc.close()
    big = os.environ.get("SMILE_KRITA_BIG")
    if big:  # timing: a large float document (preview of all of it, preview of the face's area, Apply)
        results["big"] = time_big(r, *(int(v) for v in big.lower().split("x")))
    r.ctl.shutdown()
    results["documents_left"] = len(r.app.documents())


def reference(r: Runner, results: dict) -> None:
    """The 8-bit sRGB portrait: the reference the other depths are compared with."""
    doc = r.portrait()
    results["u8"] = r.smile_case("u8", doc)
    doc.close()


def u16(r: Runner, results: dict) -> None:
    """16-bit integer, Krita's default (linear) profile, the low bits made non-trivial."""
    doc = r.portrait("U16")
    node = doc.topLevelNodes()[0]
    words = bytearray(node.pixelData(0, 0, doc.width(), doc.height()))
    view = memoryview(words).cast("H")
    for i in range(0, len(view), 7):
        if i % 4 != 3:  # colour words only (alpha stays opaque)
            view[i] = view[i] ^ 1
    del view
    node.setPixelData(bytes(words), 0, 0, doc.width(), doc.height())
    doc.waitForDone()
    results["u16"] = r.smile_case("u16", doc)
    results["u16"]["profile"] = doc.colorProfile()
    doc.close()


def u16_srgb(r: Runner, results: dict) -> None:
    """16-bit integer with the sRGB tone curve (sent without any conversion)."""
    doc = r.portrait("U16", profile="sRGB-elle-V2-srgbtrc.icc")
    results["u16srgb"] = r.smile_case("u16srgb", doc)
    doc.close()


def f32(r: Runner, results: dict) -> None:
    """32-bit float (linear), with values above 1 and below 0 away from the face (a band across
    the top rows, the bottom-right corner); then the same with a selection (the left half)."""
    from krita import Selection

    doc = r.portrait("F32")
    node = doc.topLevelNodes()[0]
    w = doc.width()
    node.setPixelData(struct.pack("<4f", 7.5, 1.25, -0.25, 1.0) * (w * 8), 0, 0, w, 8)
    node.setPixelData(struct.pack("<4f", 1000.0, -3.0, 2.0, 1.0) * (16 * 16), w - 16, doc.height() - 16, 16, 16)
    doc.waitForDone()
    results["f32"] = r.smile_case("f32", doc)
    results["f32"]["profile"] = doc.colorProfile()
    for layer in r.added:
        layer.remove()
    selection = Selection()
    selection.select(0, 0, w // 2, doc.height(), 255)
    doc.setSelection(selection)
    results["f32_selected"] = r.smile_case("f32sel", doc)
    results["f32_selected"]["selection"] = [0, 0, w // 2, doc.height()]
    doc.close()


def f16(r: Runner, results: dict) -> None:
    """16-bit float (linear), values above 1 and below 0 in the top rows."""
    doc = r.portrait("F16")
    node = doc.topLevelNodes()[0]
    w = doc.width()
    node.setPixelData(struct.pack("<4e", 3.0, 1.5, -0.5, 1.0) * (w * 8), 0, 0, w, 8)
    doc.waitForDone()
    results["f16"] = r.smile_case("f16", doc)
    doc.close()


def gray(r: Runner, results: dict) -> None:
    """Grayscale: 8-bit (perceptual) and 16-bit (Krita's default: linear)."""
    for name, depth in (("graya8", "U8"), ("graya16", "U16")):
        doc = r.portrait(depth, model="GRAYA")
        results[name] = r.smile_case(name, doc)
        results[name]["profile"] = doc.colorProfile()
        doc.close()


def moved(r: Runner, results: dict) -> None:
    """A layer moved partly beyond the canvas (32-bit float and 8-bit): the result layer copies
    all of it, off-canvas pixels too."""
    for name, depth in (("moved_f32", "F32"), ("moved_u8", "U8")):
        doc = r.portrait(depth)
        node = doc.topLevelNodes()[0]
        node.move(40, 24)
        doc.waitForDone()
        bounds = node.bounds()
        rect = (bounds.x(), bounds.y(), bounds.width(), bounds.height())
        results[name] = r.smile_case(name, doc, node, rect)
        results[name]["offset"] = [node.position().x(), node.position().y()]
        doc.close()


def failure(r: Runner, results: dict) -> None:
    """A failure after the engine answered (the conversion back to float breaks): nothing changes."""
    from smile import colour

    doc = r.portrait("F32")
    real = colour.convert

    def broken(data, width, height, source, target):
        if source.depth == "U16" and target.depth == "F32":
            raise RuntimeError("simulated conversion failure")
        return real(data, width, height, source, target)

    colour.convert = broken
    try:
        results["failure"] = r.smile_case("failure", doc)
    finally:
        colour.convert = real
    doc.close()


def refused(r: Runner, results: dict) -> None:
    """Other colour models, a mask, a layer in another colour space than its image."""
    for name, model, depth in (("cmyk", "CMYKA", "U8"), ("lab", "LABA", "U16"), ("xyz", "XYZA", "F32"),
                               ("ycbcr", "YCbCrA", "U8")):
        doc = r.app.createDocument(64, 64, name, model, depth, "", 72.0)
        results[name] = r.apply(doc)
        doc.close()
    doc = r.portrait()
    base = doc.topLevelNodes()[0]
    mask = doc.createNode("mask", "transparencymask")
    base.addChildNode(mask, None)
    doc.waitForDone()
    results["mask"] = r.apply(doc, mask)
    # a layer of the 8-bit sRGB image converted to a linear profile, and one to 16 bits
    for name, depth, profile in (("other_space", "U8", "sRGB-elle-V2-g10.icc"),
                                 ("other_depth", "U16", "sRGB-elle-V2-srgbtrc.icc")):
        other = base.duplicate()
        other.setName(name)
        doc.rootNode().addChildNode(other, None)
        other.setColorSpace("RGBA", depth, profile)
        doc.waitForDone()
        results[name] = r.apply(doc, other)
    doc.close()


def stacked(r: Runner, results: dict) -> None:
    """Layers a copy stacked on them would change (a filter mask, half opacity, Multiply, hidden,
    translucent pixels, clipped, a group with a filter mask), two plain ones (a transparent hole;
    paint added while Apply runs) and one deleted while Apply runs: runner_stacked.py."""
    import runner_stacked

    runner_stacked.stacked(r, results)


CASES = [("u8", reference), ("u16", u16), ("u16srgb", u16_srgb), ("f32", f32), ("f16", f16), ("graya8", gray),
         ("moved_f32", moved), ("failure", failure), ("cmyk", refused), ("stacked", stacked)]


class _ActiveDocument:
    """Stand-in for Krita's application object with ``doc`` active and ``node`` its active layer
    (kritarunner has no view, so Krita's own ``activeNode`` is None)."""

    def __init__(self, doc, node) -> None:
        self.doc = _DocWithNode(doc, node)

    def activeDocument(self):  # noqa: N802 (Krita's name)
        return self.doc

    def readSetting(self, group, key, default):  # noqa: N802
        return default

    def writeSetting(self, group, key, value):  # noqa: N802
        pass


class _DocWithNode:
    def __init__(self, doc, node) -> None:
        self._doc, self._node = doc, node

    def activeNode(self):  # noqa: N802
        return self._node

    def __getattr__(self, name):
        return getattr(self._doc, name)


def time_big(r: Runner, width: int, height: int) -> dict:
    """Preview (all of the image, then the face's area) and Apply on a large image, 8-bit and
    32-bit float, with the portrait pasted in its middle."""
    src = r.portrait()
    face = bytes(src.topLevelNodes()[0].pixelData(0, 0, src.width(), src.height()))
    fw, fh = src.width(), src.height()
    src.close()
    timings = {"size": [width, height]}
    real_app = r.ctl.app
    for depth in ("U8", "F32"):
        doc = r.app.createDocument(width, height, "big", "RGBA", "U8", "", 72.0)
        node = doc.topLevelNodes()[0]
        node.setPixelData(face, (width - fw) // 2, (height - fh) // 2, fw, fh)
        if depth != "U8":
            doc.setColorSpace("RGBA", depth, "sRGB-elle-V2-g10.icc")
        doc.waitForDone()
        node = doc.topLevelNodes()[0]
        r.ctl.app = _ActiveDocument(doc, node)
        r.ctl._preview_region = None
        result = {"space": space(doc)}
        for step in ("preview_whole", "preview_face"):
            started = time.monotonic()
            rid = r.ctl.preview()
            prepared = time.monotonic()
            reply = r.ctl.client.wait(rid, 600000) if rid is not None else None
            result[step] = {"prepare_s": round(prepared - started, 2), "total_s": round(time.monotonic() - started, 2),
                            "ok": bool(reply and reply.get("ok")), "rect": r.ctl.last_preview_rect,
                            "status": list(r.ctl.status)}
        applied = r.apply(doc, node)
        result["apply"] = {"total_s": applied["seconds"], "status": applied["statuses"][-1:], "layers": applied["layers_after"]}
        r.ctl.app = real_app
        doc.close()
        timings[depth] = result
    return timings


def __main__(args):
    main(CASES)


def main(cases: list) -> None:
    """Run ``cases`` ((name, function) pairs), write results.json and leave Krita."""
    global OUT
    OUT = os.environ["SMILE_KRITA_OUT"]
    code = 0
    results: dict = {}
    try:
        _run(results, cases)
    except Exception:
        results["crash"] = traceback.format_exc()
        code = 1
    with open(os.path.join(OUT, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=str)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
