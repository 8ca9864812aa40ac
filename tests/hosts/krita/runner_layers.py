"""kritarunner script (``kritarunner -s runner_layers``, set up as runner_precision.py): Apply where the layer stack or the canvas
matters: a layer inside a hidden group, the new layers' names over several Applies, a clone
layer of the source, a layer reaching beyond the canvas (the face cut by the border), the image
closed while the engine works.

Documents are runner_stacked.py's (the portrait as "Face" over a gradient "Background").  Like
the other runners it records and never judges (tests/test_krita_layers.py does).
"""
from __future__ import annotations

import runner_precision
import runner_stacked
from runner_stacked import W, H


def _tree(node, depth: int = 0) -> list:
    """Every layer under ``node`` as [depth, name, type, visible], depth first."""
    rows = []
    for child in node.childNodes():
        rows.append([depth, child.name(), child.type(), child.visible()])
        rows += _tree(child, depth + 1)
    return rows


def _wait(r, rid, pending) -> dict:
    """The reply to the request ``rid`` started, or to the last one it led to while ``pending()``
    is not None (with Largest face the engine first lists the faces, then smiles one)."""
    reply = r.ctl.client.wait(rid, 600000) if rid is not None else None
    while rid is not None and pending() is not None:
        reply = r.ctl.client.wait(r.ctl.client._next_id - 1, 600000)
    return reply


def _apply(r, doc, node) -> dict:
    """Apply on ``node``; what the stack and the status are afterwards."""
    del r.statuses[:]
    del r.added[:]
    r.ctl.set_strength(1.0)
    rid = r.ctl.apply(doc, node)
    reply = _wait(r, rid, lambda: r.ctl._apply_job)
    doc.waitForDone()
    return {"request_id": rid, "reply": reply, "statuses": list(r.statuses), "tree": _tree(doc.rootNode()),
            "added": [layer.name() for layer in r.added]}


def _preview(r, doc, node) -> dict:
    """A preview of ``node`` (the active layer of the active document, as the docker makes it)."""
    real_app = r.ctl.app
    r.ctl.app = runner_precision._ActiveDocument(doc, node)
    r.ctl._preview_region = None
    try:
        rid = r.ctl.preview()
        reply = _wait(r, rid, lambda: r.ctl._preview_job)
    finally:
        r.ctl.app = real_app
    return {"ok": bool(reply and reply.get("ok")), "rect": r.ctl.last_preview_rect, "status": list(r.ctl.status)}


def hidden_group(r, results: dict) -> None:
    """"Face" (visible) inside the hidden group "Group", nested in a visible "Outer"; then the
    group shown at opacity 0; then the group at full opacity and "Face" at opacity 0; then "Outer"
    at opacity 0 and "Group" hidden; then "Group" hidden and at opacity 0."""
    doc, face = runner_stacked.document(r)
    outer, group = doc.createGroupLayer("Outer"), doc.createGroupLayer("Group")
    doc.rootNode().addChildNode(outer, face)
    outer.addChildNode(group, None)
    group.addChildNode(face.duplicate(), None)
    face.remove()
    group.setVisible(False)
    doc.waitForDone()
    inner = [n for n in doc.rootNode().childNodes() if n.name() == "Outer"][0].childNodes()[0].childNodes()[0]
    tree = _tree(doc.rootNode())
    results["layers_hidden_group"] = dict(_apply(r, doc, inner), tree_before=tree)
    group = inner.parentNode()
    group.setVisible(True)
    group.setOpacity(0)  # shown, but at opacity 0: nothing of it shows either
    doc.waitForDone()
    results["layers_transparent_group"] = _apply(r, doc, inner)
    group.setOpacity(255)
    inner.setOpacity(0)
    doc.waitForDone()
    results["layers_transparent"] = _apply(r, doc, inner)
    inner.setOpacity(255)
    outer = group.parentNode()
    outer.setOpacity(0)  # several groups that show nothing: all named at once
    group.setVisible(False)
    doc.waitForDone()
    results["layers_unseen_groups"] = _apply(r, doc, inner)
    outer.setOpacity(255)
    group.setOpacity(0)  # one group, hidden and at opacity 0
    doc.waitForDone()
    results["layers_unseen_group"] = _apply(r, doc, inner)
    doc.close()


def names(r, results: dict) -> None:
    """Apply on the plain "Face", again on "Face" (the name is taken), then on the second Smile layer;
    and on a layer at 50 % opacity (replaced and hidden)."""
    doc, face = runner_stacked.document(r)
    steps = [_apply(r, doc, face), _apply(r, doc, face)]
    steps.append(_apply(r, doc, r.added[0]))
    face.setOpacity(128)
    face.setName("Portrait at half")
    doc.waitForDone()
    steps.append(_apply(r, doc, face))
    results["layers_names"] = {"steps": steps}
    doc.close()


def clone(r, results: dict) -> None:
    """A clone layer of "Face" (at 50 % opacity: replaced and hidden) above it."""
    doc, face = runner_stacked.document(r)
    face.setOpacity(128)
    copy = doc.createCloneLayer("Face clone", face)
    doc.rootNode().addChildNode(copy, face)
    doc.waitForDone()
    results["layers_clone"] = _apply(r, doc, face)
    doc.close()


def off_canvas(r, results: dict) -> None:
    """"Face" moved so that the face crosses the right edge of the canvas (its middle still on
    it), one moved up and left so that it crosses the left edge, one moved far below the canvas
    (the face with it): the layer's dumps cover all of it, off-canvas part included."""
    for name, offset in (("layers_off_right", (270, 0)), ("layers_off_left", (-220, -40)), ("layers_off_far", (-60, 900))):
        doc, face = runner_stacked.document(r)
        face.move(*offset)
        doc.waitForDone()
        bounds = face.bounds()
        rect = (bounds.x(), bounds.y(), bounds.width(), bounds.height())
        result = {"source": r.dump(name + "-source", face, rect), "source_name": face.name(), "offset": list(offset),
                  "canvas": [W, H], "space": ["RGBA", "U8"]}
        result["preview"] = _preview(r, doc, face)
        result.update(_apply(r, doc, face))
        result["sent"] = list(r.ctl.last_apply_rect)
        if r.added:
            result["result"] = r.dump(name + "-result", r.added[0], rect)
        results[name] = result
        doc.close()


def changed_during(r, results: dict) -> None:
    """"Face" moved so that the face crosses the right edge (as layers_off_right); while the
    engine works the layer is moved back onto the canvas, or its part beyond the canvas erased
    (and a stripe painted on its left, far from the face)."""
    def move_back(doc, face):
        face.move(0, 0)

    def erase_beyond(doc, face):  # (and paint a red stripe at the canvas's left edge: the layer now spans 0…512)
        face.setPixelData(bytes(270 * H * 4), W, 0, 270, H)
        face.setPixelData(bytes((0, 0, 255, 255)) * (40 * H), 0, 0, 40, H)

    for name, during in (("layers_moved_during", move_back), ("layers_erased_during", erase_beyond)):
        doc, face = runner_stacked.document(r)
        face.move(270, 0)
        doc.waitForDone()
        rect = (270, 0, W, H)
        del r.statuses[:]
        del r.added[:]
        r.ctl.set_strength(1.0)
        rid = r.ctl.apply(doc, face)
        during(doc, face)
        doc.waitForDone()
        reply = r.ctl.client.wait(rid, 600000) if rid is not None else None
        doc.waitForDone()
        bounds = face.bounds()
        result = {"request_id": rid, "reply": reply, "statuses": list(r.statuses), "tree": _tree(doc.rootNode()),
                  "added": [layer.name() for layer in r.added], "space": ["RGBA", "U8"],
                  "bounds": [bounds.x(), bounds.y(), bounds.width(), bounds.height()]}
        if r.added:
            result["result"] = r.dump(name + "-result", r.added[0], rect)
        results[name] = result
        doc.close()


def largest(r, results: dict) -> None:
    """"Face" holds the portrait at half size on a 420-px-wide canvas and the portrait at full
    size beside it, its face beyond the canvas's right edge (in the band Apply sends): Apply and
    the preview with Largest face."""
    from smile.qt import QImage, byte_data, enum

    doc, face = runner_stacked.document(r)
    portrait = bytes(face.pixelData(0, 0, W, H))
    argb = enum(QImage, "Format.Format_ARGB32")
    small = byte_data(QImage(portrait, W, H, W * 4, argb).scaled(W // 2, H // 2).convertToFormat(argb))
    face.setPixelData(bytes(W * H * 4), 0, 0, W, H)
    face.setPixelData(small, 0, H // 4, W // 2, H // 2)
    face.setPixelData(portrait, 340, 0, W, H)
    doc.resizeImage(0, 0, 420, H)
    doc.waitForDone()
    face = [n for n in doc.topLevelNodes() if n.name() == "Face"][0]
    rect = (0, 0, 420, H)
    source = r.dump("layers_largest-source", face, rect)
    r.ctl.set_faces("largest")
    try:
        result = {"preview": _preview(r, doc, face)}
        result["preview_reply"] = r.ctl.last_preview_reply
        result.update(_apply(r, doc, face), source=source, space=["RGBA", "U8"], sent=list(r.ctl.last_apply_rect))
    finally:
        r.ctl.set_faces("all")
    if r.added:
        result["result"] = r.dump("layers_largest-result", r.added[0], rect)
    results["layers_largest"] = result
    doc.close()


def long_canvas(r, results: dict) -> None:
    """The 512-px portrait under a canvas cut down to 512×48 (Image → Resize Canvas keeps the
    layer's pixels beyond it): what Apply sends."""
    doc, face = runner_stacked.document(r)
    doc.resizeImage(0, 150, W, 48)
    doc.waitForDone()
    face = [n for n in doc.topLevelNodes() if n.name() == "Face"][0]
    bounds = face.bounds()
    result = _apply(r, doc, face)
    result.update(sent=list(r.ctl.last_apply_rect), canvas=[doc.width(), doc.height()],
                  layer=[bounds.x(), bounds.y(), bounds.width(), bounds.height()])
    results["layers_long_canvas"] = result
    doc.close()


def gray_half_off_canvas(r, results: dict) -> None:
    """A 16-bit grayscale (linear) portrait at 50 % opacity (replaced by a duplicate, hidden),
    moved so that the face crosses the right edge of the canvas."""
    doc = r.portrait("U16", model="GRAYA")
    face = doc.topLevelNodes()[0]
    face.setOpacity(128)
    face.move(270, 0)
    doc.waitForDone()
    bounds = face.bounds()
    rect = (bounds.x(), bounds.y(), bounds.width(), bounds.height())
    result = {"source": r.dump("layers_gray-source", face, rect), "source_name": face.name(),
              "space": [doc.colorModel(), doc.colorDepth(), doc.colorProfile()]}
    result.update(_apply(r, doc, face))
    result["sent"] = list(r.ctl.last_apply_rect)
    if r.added:
        result["result"] = r.dump("layers_gray-result", r.added[0], rect)
        result["result_opacity"] = r.added[0].opacity()
    results["layers_gray"] = result
    doc.close()


def closed(r, results: dict) -> None:
    """The image closed while the engine works on it: one line, no crash, nothing left open."""
    doc, face = runner_stacked.document(r)
    del r.statuses[:]
    del r.added[:]
    rid = r.ctl.apply(doc, face)
    doc.close()
    reply = r.ctl.client.wait(rid, 600000) if rid is not None else None
    results["layers_closed"] = {"request_id": rid, "reply": reply, "statuses": list(r.statuses),
                                "added": len(r.added), "documents_open": len(r.app.documents())}


CASES = [("layers_hidden_group", hidden_group), ("layers_names", names), ("layers_clone", clone),
         ("layers_off_right", off_canvas), ("layers_gray", gray_half_off_canvas),
         ("layers_long_canvas", long_canvas), ("layers_largest", largest), ("layers_moved_during", changed_during), ("layers_closed", closed)]


def __main__(args):
    runner_precision.main(CASES)
