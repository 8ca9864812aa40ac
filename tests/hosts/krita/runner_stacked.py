"""The ``stacked`` family of runner_precision.py: Apply on layers that a copy stacked on them
would change, and what the merged image looks like before and after.

Every document is the 8-bit portrait as a layer "Face" over a colour gradient ("Background"),
the Face layer (or a group around it) made not plain in one way per case.  Each case dumps the
merged image (``doc.pixelData``, B,G,R,A) just before the engine's answer is taken and after it,
and the Smile layer's own pixels; it records the properties of the source (before and after
Apply) and of the Smile layer.  Then the same document is built again and the very pixels the
engine changed are written straight into the source layer (*edit in place*; for the group, into
the layer inside it, inverted as its filter mask inverts): its merged image is dumped too, as
what Apply must give.
"""
from __future__ import annotations

import os
import zipfile
from typing import Callable, Optional

W = H = 512
RED_SQUARE = (16, 16, 32, 32)  # painted on the layer while Apply runs: far from the face
HOLE = (440, 440, 64, 64)  # made fully transparent on a plain layer


def _gradient(width: int, height: int, opaque_width: Optional[int] = None) -> bytes:
    """B,G,R,A rows: blue 128, green down the rows, red across; transparent from ``opaque_width`` on."""
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            alpha = 255 if opaque_width is None or x < opaque_width else 0
            row += bytes((128, y * 255 // (height - 1), x * 255 // (width - 1), alpha))
        rows.append(bytes(row))
    return b"".join(rows)


def document(r, opaque_width: Optional[int] = None):
    """The portrait as layer "Face" over a gradient layer "Background"; (doc, face)."""
    doc = r.portrait()
    background = doc.topLevelNodes()[0]
    portrait = bytes(background.pixelData(0, 0, W, H))
    background.setPixelData(_gradient(W, H, opaque_width), 0, 0, W, H)
    face = doc.createNode("Face", "paintlayer")
    face.setPixelData(portrait, 0, 0, W, H)
    doc.rootNode().addChildNode(face, background)
    doc.waitForDone()
    return doc, [n for n in doc.topLevelNodes() if n.name() == "Face"][0]


def masked_document(r, opaque_width: Optional[int] = None):
    """:func:`document` with a transparency mask on "Face" that hides the square HOLE.

    Krita 5.1's Python cannot give a transparency mask its pixels, but a selection mask stores
    them the same way in a .kra file: one is saved, renamed there, and the file opened."""
    from krita import Selection

    doc, face = document(r, opaque_width)
    selection = Selection()
    selection.select(0, 0, W, H, 255)
    selection.select(*HOLE, 0)
    mask = doc.createSelectionMask("Hide")
    mask.setSelection(selection)
    face.addChildNode(mask, None)
    doc.waitForDone()
    saved = os.path.join(r.out, "selection-mask.kra")
    doc.setBatchmode(True)
    if not doc.saveAs(saved):
        raise RuntimeError("Krita could not save the .kra file")
    doc.close()
    path = os.path.join(r.out, "transparency-mask.kra")
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "maindoc.xml":
                data = data.replace(b'nodetype="selectionmask"', b'nodetype="transparencymask"')
            dst.writestr(item, data)
    doc = r.app.openDocument(path)
    if doc is None:
        raise RuntimeError("Krita could not open the .kra file")
    return doc, [n for n in doc.topLevelNodes() if n.name() == "Face"][0]


def whole_layer_mask(r, doc, name: str, filter_name: str):
    """A filter mask over the whole layer: Krita's filter ``filter_name`` with its default settings."""
    from krita import Selection

    selection = Selection()
    selection.select(0, 0, W, H, 255)
    mask = doc.createFilterMask(name, r.app.filter(filter_name), selection)
    if mask is None:
        raise RuntimeError("Krita made no filter mask")
    return mask


def invert_mask(r, doc):
    """A filter mask that inverts the whole layer."""
    return whole_layer_mask(r, doc, "Invert", "invert")


def blur_mask(r, doc):
    """A filter mask that blurs the whole layer (Krita's "blur" filter, its default settings)."""
    return whole_layer_mask(r, doc, "Blur", "blur")


def selection_mask(doc):
    """A local selection mask around the face's half of the image (it only holds a selection)."""
    from krita import Selection

    selection = Selection()
    selection.select(0, 0, W, H // 2, 255)
    mask = doc.createSelectionMask("Local selection")
    mask.setSelection(selection)
    return mask


def record_engine_changes(recorded: list) -> None:
    """Keep what jobs.engine_changes answers (the pixels the engine changed) in ``recorded``."""
    from smile import jobs

    original = jobs.engine_changes

    def recording(job):
        changes = original(job)
        recorded.append((job.x, job.y, changes))
        return changes

    jobs.engine_changes = recording


def edit_in_place(layer, recorded, invert: bool = False) -> None:
    """Write the engine's changed pixels (8-bit B,G,R,A) straight into the paint layer ``layer``
    (``invert``: their colours inverted, for a layer under an inverting filter mask)."""
    from smile.smile_merge import merge_runs

    x0, y0, ((bx, by, bw, bh), engine, runs) = recorded
    if invert:
        data = bytearray(engine)
        for channel in range(3):
            data[channel::4] = bytes(255 - v for v in data[channel::4])
        engine = bytes(data)
    x, y = x0 + bx, y0 + by
    own = bytes(layer.pixelData(x, y, bw, bh))
    layer.setPixelData(merge_runs(own, engine, bw, bh, 4, runs, origin=(bx, by)), x, y, bw, bh)


def properties(node) -> dict:
    return {"name": node.name(), "type": node.type(), "blending": node.blendingMode(), "opacity": node.opacity(),
            "visible": node.visible(), "inherit_alpha": node.inheritAlpha(),
            "masks": [c.type() for c in node.childNodes() if c.type().endswith("mask")]}


def merged(r, doc, name: str) -> dict:
    doc.refreshProjection()
    doc.waitForDone()
    data = bytes(doc.pixelData(0, 0, W, H))
    with open(os.path.join(r.out, name + ".bin"), "wb") as fh:
        fh.write(data)
    return {"file": name + ".bin", "rect": [0, 0, W, H], "bytes": len(data)}


def stacked_case(r, name: str, doc, node, during: Optional[Callable] = None) -> dict:
    """Apply on ``node``; ``during(doc, node)`` runs after the request went out and before its
    answer is taken (the person paints, deletes…)."""
    result = {"source_props": properties(node), "source_name": node.name(), "space": ["RGBA", "U8"],
              "layers_before": [n.name() for n in doc.topLevelNodes()]}
    result["source"] = r.dump(name + "-source", node, (0, 0, W, H))
    del r.statuses[:]
    del r.added[:]
    r.ctl.set_strength(1.0)
    rid = r.ctl.apply(doc, node)
    if during is not None:
        during(doc, node)
    result["merged_before"] = merged(r, doc, name + "-merged-before")
    result["layers_at_merged_before"] = [n.name() for n in doc.topLevelNodes()]
    result["request_id"] = rid
    result["reply"] = r.ctl.client.wait(rid, 600000) if rid is not None else None
    doc.waitForDone()
    result["merged_after"] = merged(r, doc, name + "-merged-after")
    result["statuses"] = list(r.statuses)
    try:
        result["source_props_after"] = properties(node)
    except Exception:  # (deleted)
        pass
    result["layers_after"] = [n.name() for n in doc.topLevelNodes()]
    result["documents_open"] = len(r.app.documents())
    if r.added:
        layer = r.added[0]
        result["result"] = r.dump(name + "-result", layer, (0, 0, W, H))
        result["result_props"] = properties(layer)
        parent = layer.parentNode()
        result["result_parent"] = parent.name() if parent is not None and parent.parentNode() is not None else ""
    return result


def stacked(r, results: dict) -> None:
    """The family: one case per way a layer is not plain, three plain ones (one with a local
    selection mask), one deleted, and refused ones (hidden, pass-through, filter and fill layers)."""

    recorded: list = []
    record_engine_changes(recorded)

    def run(name: str, change: Callable, during: Optional[Callable] = None, opaque_width: Optional[int] = None,
            build: Callable = document, inside: Optional[Callable] = None, in_place: bool = True) -> None:
        """One case; ``inside(node)``: the paint layer an edit in place goes to and whether its
        colours are inverted (default: the node itself, as they are); ``in_place``: make the
        edit-in-place reference (not where the image changed or lost the layer meanwhile)."""
        doc = None
        del recorded[:]
        try:
            doc, face = build(r, opaque_width)
            node = change(doc, face)
            doc.waitForDone()
            results[name] = stacked_case(r, name, doc, node or face, during)
        except Exception:  # one broken case must not hide the others
            import traceback

            results[name] = {"crash": traceback.format_exc()}
        if doc is not None:  # (by the wrapper that opened it: closing it through another crashes Krita)
            doc.close()
        if not in_place or not recorded or recorded[-1][2] is None or "crash" in results[name]:
            return
        doc = None
        try:  # the same document, the engine's changes written straight into the source
            doc, face = build(r, opaque_width)
            node = change(doc, face) or face
            doc.waitForDone()
            if during is not None:
                during(doc, node)
            layer, invert = inside(node) if inside is not None else (node, False)
            edit_in_place(layer, recorded[-1], invert)
            results[name]["merged_in_place"] = merged(r, doc, name + "-merged-in-place")
        except Exception:
            import traceback

            results[name]["in_place_crash"] = traceback.format_exc()
        if doc is not None:
            doc.close()

    def filter_mask(doc, face):
        face.addChildNode(invert_mask(r, doc), None)

    def translucent(doc, face):
        data = bytearray(face.pixelData(0, 0, W, H))
        data[3::4] = b"\x80" * (W * H)
        face.setPixelData(bytes(data), 0, 0, W, H)

    def group(doc, face):
        grouped = doc.createGroupLayer("Group")
        doc.rootNode().addChildNode(grouped, face)
        inner = face.duplicate()
        grouped.addChildNode(inner, None)
        face.remove()
        grouped.addChildNode(invert_mask(r, doc), None)
        doc.waitForDone()
        return [n for n in doc.topLevelNodes() if n.name() == "Group"][0]

    def pass_through(doc, face):
        grouped = group(doc, face)
        grouped.setPassThroughMode(True)
        doc.waitForDone()
        return grouped

    def hole(doc, face):
        face.setPixelData(bytes(HOLE[2] * HOLE[3] * 4), *HOLE)

    def paint_red(doc, face):
        x, y, w, h = RED_SQUARE
        face.setPixelData(bytes((0, 0, 255, 255)) * (w * h), x, y, w, h)
        doc.waitForDone()

    def delete(doc, face):
        face.remove()
        doc.waitForDone()

    def to_16_bit(doc, face):
        doc.setColorSpace("RGBA", "U16", doc.colorProfile())
        doc.waitForDone()

    def resize(doc, face):
        doc.resizeImage(0, 0, W + 64, H)
        doc.waitForDone()

    def blurred(doc, face):
        face.addChildNode(blur_mask(r, doc), None)

    def local_selection(doc, face):
        face.addChildNode(selection_mask(doc), None)

    def filter_layer(doc, face):
        from krita import Selection

        selection = Selection()
        selection.select(0, 0, W, H, 255)
        layer = doc.createFilterLayer("Invert", r.app.filter("invert"), selection)
        doc.rootNode().addChildNode(layer, face)
        doc.waitForDone()
        return [n for n in doc.topLevelNodes() if n.name() == "Invert"][0]

    def fill_layer(doc, face):
        from krita import InfoObject, Selection

        from PyQt5.QtGui import QColor

        info = InfoObject()
        info.setProperty("color", QColor(200, 100, 50))
        selection = Selection()
        selection.select(0, 0, W, H // 4, 255)
        layer = doc.createFillLayer("Fill", "color", info, selection)
        doc.rootNode().addChildNode(layer, face)
        doc.waitForDone()
        return [n for n in doc.topLevelNodes() if n.name() == "Fill"][0]

    def group_inside(group):
        return [n for n in group.childNodes() if n.type() == "paintlayer"][0], True

    run("stacked_filter_mask", filter_mask)
    run("stacked_transparency_mask", lambda doc, face: None, build=masked_document)
    run("stacked_opacity", lambda doc, face: face.setOpacity(128))
    run("stacked_multiply", lambda doc, face: face.setBlendingMode("multiply"))
    run("stacked_hidden", lambda doc, face: face.setVisible(False), in_place=False)
    run("stacked_translucent", translucent)
    run("stacked_clipped", lambda doc, face: face.setInheritAlpha(True), opaque_width=384)
    run("stacked_group", group, inside=group_inside)
    run("stacked_blur_mask", blurred)
    run("stacked_plain_hole", hole)
    run("stacked_plain_selection_mask", local_selection)
    run("stacked_painted", lambda doc, face: None, during=paint_red)
    run("stacked_painted_opacity", lambda doc, face: face.setOpacity(128), during=paint_red)
    run("stacked_deleted", lambda doc, face: None, during=delete, in_place=False)
    run("stacked_depth_changed", lambda doc, face: face.setOpacity(128), during=to_16_bit, in_place=False)
    run("stacked_plain_depth_changed", lambda doc, face: None, during=to_16_bit, in_place=False)
    run("stacked_pass_through", pass_through, in_place=False)
    run("stacked_filter_layer", filter_layer, in_place=False)
    run("stacked_fill_layer", fill_layer, in_place=False)
    run("stacked_resized", lambda doc, face: face.setOpacity(128), during=resize, in_place=False)
