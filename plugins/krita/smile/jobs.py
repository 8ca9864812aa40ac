"""One Smile request against a Krita document: the files it needs and what to do with the reply.

:func:`prepare` reads the active layer (and selection) into PNG files and builds the worker
request; :func:`add_result_layer` puts the engine's output on a new paint layer above the
layer it came from (a full copy; or, for a layer that is not plain, one that replaces it, the
source hidden under it: stacking.py).  Both run on
Krita's UI thread; the engine work happens in between, in the worker process.  8-bit RGBA
layers travel as they are; every other depth, profile and grayscale travels as 16-bit RGBA
converted by Krita (colour.py); at every depth only the pixels the engine changed come back
(smile_merge.py, next to the plug-in).
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from . import colour, pixels, stacking
from .pixels import PixelError
from .smile_merge import bounding_rect, changed_runs, merge_runs  # (shared with GIMP; install-plugin puts it here)

Faces = Union[str, List[int]]
RESULT_LAYER_NAME = "Smile"  # (the layer's name when its source has none)
RESULT_SUFFIX = " smile"  # the new layer is named after its source: "Face smile"
#: the most pixels the band around the canvas adds to what Apply and the preview send (a 4000×4000
#: image's worth: enough for a face cut by the edge of a large photo, its cost bounded)
BAND_PIXELS = 16_000_000


@dataclass
class Job:
    """The files and geometry of one request."""

    doc: Any
    node: Any
    width: int
    height: int
    folder: str
    input_path: str
    output_path: str
    mask_path: str
    x: int = 0  # where the job's rectangle sits in the image (previews may use only a part)
    y: int = 0
    selection_path: Optional[str] = None
    strength: float = 1.0
    faces: Faces = "all"
    #: the layer's colour space, and the 16-bit one the engine gets it in (None: the layer's
    #: own 8-bit RGBA bytes are sent as they are)
    space: Optional[pixels.Space] = None
    work: Optional[pixels.Space] = None
    #: what the engine was sent, in ``work`` or 8-bit B,G,R,A (kept by Apply to find the pixels it changed)
    sent: Optional[bytes] = None
    #: the layer's unique id and name (Apply finds it again by the id when the engine answers)
    node_id: Any = None
    node_name: str = ""
    #: the job covers only a part of what Apply would send (a preview around the faces found before)
    partial: bool = False
    #: the image's width and height when the job was made (Apply adds nothing if they changed)
    image_size: Tuple[int, int] = (0, 0)
    #: the layer's offset when the job was made (Apply adds nothing if it was moved: the face moved)
    position: Optional[Tuple[int, int]] = None
    #: set by Apply: the layer was not plain, so the new layer replaces it and it was hidden
    stacked: bool = False
    #: set by Apply: hiding the source is an undo step of its own (Krita's action did it; stacking.hide)
    undoable_hide: bool = False
    #: set by Apply: the names of clone layers that may copy the source (they show it without the smile)
    clones: Tuple[str, ...] = ()
    #: set by Apply: the new layer's name
    result_name: str = ""

    def request(self) -> Dict[str, Any]:
        """The worker's ``smile`` request for this job."""
        body: Dict[str, Any] = {
            "cmd": "smile",
            "input": self.input_path,
            "output": self.output_path,
            "mask_output": self.mask_path,
            "strength": float(self.strength),
            "faces": self.faces,
        }
        if self.selection_path:
            body["selection"] = self.selection_path
        return body

    def cleanup(self) -> None:
        """Remove the job's temporary folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


Rect = Tuple[int, int, int, int]


def prepare(doc: Any, strength: float, faces: Faces, node: Any = None, region: Optional[Rect] = None,
            apply: bool = False) -> Job:
    """Write the active layer (or ``node``) and the selection to a fresh temporary folder.

    ``region`` (x, y, width, height), clipped to what Apply sends, limits the job to that rectangle
    (previews use the area around the faces found before; a preview sees what Apply would send,
    :func:`apply_rect`, so the two find the same faces).  ``apply``: the job is an Apply: a
    hidden layer, or one in a hidden group, is refused (PixelError: its Smile layer would change
    nothing that shows); the job covers the canvas and the layer's pixels in a band around it
    (:func:`apply_rect`: a face cut by the canvas border is edited whole, so no seam shows where
    the border was when the layer is moved or the canvas enlarged); and the pixels sent are kept
    in memory (Apply compares the engine's answer with them).
    """
    node = node if node is not None else (doc.activeNode() if doc is not None else None)
    space = pixels.check_document(doc, node)
    if apply:
        stacking.check_visible(node)
    whole = apply_rect(node, doc.width(), doc.height())
    x, y, width, height = whole if apply else clip_rect(region, whole)
    folder = tempfile.mkdtemp(prefix="smile-krita-")
    job = Job(doc=doc, node=node, x=x, y=y, width=width, height=height, folder=folder,
              input_path=os.path.join(folder, "input.png"),
              output_path=os.path.join(folder, "output.png"),
              mask_path=os.path.join(folder, "mask.png"),
              strength=strength, faces=faces, space=space, image_size=(doc.width(), doc.height()),
              partial=(x, y, width, height) != whole)
    try:
        job.node_id, job.node_name = node_identity(node)
        job.position = node_position(node)
        data = pixels.layer_bytes(node, x, y, width, height)
        if colour.sent_as_is(space):
            pixels.save_bgra_png(data, width, height, job.input_path)
            job.sent = data if apply else None
        else:
            job.work = colour.working_space(space)
            data = colour.convert(data, width, height, space, job.work)
            pixels.save_bgra64_png(data, width, height, job.input_path)
            job.sent = data if apply else None
        del data
        selection_path = os.path.join(folder, "selection.png")
        if pixels.save_selection_png(doc, x, y, width, height, selection_path):
            job.selection_path = selection_path
    except Exception:
        job.cleanup()
        raise
    return job


def node_identity(node: Any) -> Tuple[Any, str]:
    """``node``'s unique id (None where Krita gives none) and name."""
    try:
        return node.uniqueId(), str(node.name())
    except Exception:
        return None, ""


def node_position(node: Any) -> Optional[Tuple[int, int]]:
    """``node``'s offset in the image (Krita's Move tool changes it); None where Krita gives none."""
    try:
        point = node.position()
        return int(point.x()), int(point.y())
    except Exception:
        return None


def clip_rect(region: Optional[Rect], bounds: Rect) -> Rect:
    """``region`` clipped to ``bounds`` (x, y, width, height); all of ``bounds`` when None or empty."""
    if region is None:
        return bounds
    bx, by, bw, bh = bounds
    x0, y0 = max(bx, int(region[0])), max(by, int(region[1]))
    x1, y1 = min(bx + bw, int(region[0] + region[2])), min(by + bh, int(region[1] + region[3]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return bounds
    return x0, y0, x1 - x0, y1 - y0


def face_region(boxes: List[List[float]], origin: Tuple[int, int], pad: float = 0.6) -> Optional[Rect]:
    """The rectangle (image coordinates) around ``boxes`` (job coordinates), padded by
    ``pad`` × the larger side of their union; None when there are no boxes."""
    if not boxes:
        return None
    x0 = min(b[0] for b in boxes) + origin[0]
    y0 = min(b[1] for b in boxes) + origin[1]
    x1 = max(b[2] for b in boxes) + origin[0]
    y1 = max(b[3] for b in boxes) + origin[1]
    margin = pad * max(x1 - x0, y1 - y0)
    left, top = int(x0 - margin), int(y0 - margin)
    return left, top, int(x1 + margin) - left, int(y1 + margin) - top


def result_name(doc: Any, source: str) -> str:
    """The new layer's name: its source's and " smile" ("Face smile"; "Smile" for a source
    without a name), numbered when ``doc`` already has a layer of that name ("Face smile 2")."""
    base = f"{source}{RESULT_SUFFIX}" if source.strip() else RESULT_LAYER_NAME
    taken = {str(n.name()) for n in stacking.descendants(doc.rootNode())}
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base} {number}"
    return name


def add_result_layer(job: Job, name: Optional[str] = None) -> Any:
    """Put the engine's output on a new layer right above the job's layer; return it.  It is
    called ``name``, by default after the layer (:func:`result_name`), as it is now.

    The job's layer is looked up again (it may have been deleted meanwhile: PixelError), and the
    image must still have the colour space and size the job was made in (PixelError: Krita
    would silently drop pixels of the wrong size).  Only the pixels the engine changed are taken
    from its answer (converted back by Krita where the engine got 16-bit pixels); every other
    pixel is the layer's as it is now, so paint added while the engine worked stays.

    A plain layer (stacking.py) gets a full copy of itself with those pixels replaced, and is
    left as it is.  Any other gets a layer that replaces it: a paint layer's duplicate (masks,
    blending, opacity, inherit alpha, layer style) or, for other layers, a paint layer holding
    what the layer shows, with their blending, opacity and inherit alpha; those pixels are
    replaced in it, it goes right above the source, and the source is hidden, so the merged
    image is what editing the source in place would give.  Everything is read, converted and
    checked before the layer is made, and the layer is filled before it joins the image, so a
    failure leaves the document as it was; adding the layer is one undo step.  Hiding the source
    comes first: with Krita's own action where it can (stacking.hide), an undo step before it,
    so a second Ctrl+Z shows the source again; else with the script's call, which Krita does
    not record (undone, the source stays hidden, and Apply refuses it until it is shown).
    """
    doc = job.doc
    node = stacking.find_layer(doc, job.node_id, job.node_name) if job.node_id is not None else job.node
    space = check_unchanged(job, node)
    job.node_name = str(node.name())  # (renamed meanwhile: the status and the new name say it as it is)
    name = job.result_name = name if name is not None else result_name(doc, job.node_name)
    bpp = space.bytes_per_pixel
    changes = engine_changes(job)
    # the layer's pixels and the job's rectangle (the layer may reach less far now: erased meanwhile)
    base = union(layer_rect(node, doc.width(), doc.height()), (job.x, job.y, job.width, job.height))
    whole = pixels.layer_bytes(node, *base) if stacking.composites_plainly(node) else None
    job.stacked = whole is None or not stacking.is_plain(node, whole, space)
    if not job.stacked:
        layer = doc.createNode(name, "paintlayer")
        layer.setPixelData(whole, *base)
    elif str(node.type()) == "paintlayer":
        whole = None  # (the duplicate holds the layer's pixels, read where they change)
        layer = stacking.replacement_layer(doc, node, name)
    else:  # what it shows, its masks applied
        if whole is None:
            whole = pixels.layer_bytes(node, *base)
        layer = stacking.replacement_layer(doc, node, name)
        layer.setPixelData(whole, *base)
    if changes is not None:
        (bx, by, bw, bh), engine, runs = changes
        x, y = job.x + bx, job.y + by
        if whole is None:
            own = bytes(layer.pixelData(x, y, bw, bh))
        else:
            own = crop(whole, base[2], bpp, (x - base[0], y - base[1], bw, bh))
        layer.setPixelData(merge_runs(own, engine, bw, bh, bpp, runs, origin=(bx, by)), x, y, bw, bh)
    del whole
    job.clones = tuple(str(c.name()) for c in stacking.clones_of(doc, node))
    if job.stacked:  # (first: undone after the layer, a second Ctrl+Z shows the source again)
        job.undoable_hide = stacking.hide(doc, node)
    parent = node.parentNode() or doc.rootNode()
    parent.addChildNode(layer, node)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    return layer


def check_unchanged(job: Job, node: Any) -> pixels.Space:
    """The colour space of ``node`` (found again); PixelError when the image's colour space or
    size is no longer what the job was made in, or ``node`` was moved."""
    doc = job.doc
    space = pixels.check_document(doc, node)
    if job.space is None:
        return space
    changed = None
    if space != job.space:
        changed = f"colour space changed from {job.space.words()} to {space.words()}"
    elif job.image_size != (0, 0) and (doc.width(), doc.height()) != job.image_size:
        changed = (f"size changed from {job.image_size[0]}×{job.image_size[1]} to "
                   f"{doc.width()}×{doc.height()}")
    if changed:
        raise PixelError(f"the image's {changed} while Smile worked on it; nothing was added: Apply again")
    if job.position is not None and node_position(node) not in (None, job.position):
        raise PixelError(f"the layer '{node.name()}' was moved while Smile worked on it, so the face is no longer "
                         "where Smile edited it; nothing was added: Apply again")
    return space


Changes = Tuple[Rect, bytes, List[Tuple[int, int, int]]]


def engine_changes(job: Job) -> Optional[Changes]:
    """The pixels the engine changed: the rectangle around them (job coordinates), the engine's
    pixels there in the layer's colour space (converted back by Krita where the engine got
    16-bit pixels) and the runs of changed pixels; None when the engine changed nothing."""
    width, height = job.width, job.height
    if job.work is None:  # 8-bit RGBA, sent as it is
        after = pixels.load_png_bgra(job.output_path, width, height)
        before = job.sent if job.sent is not None else pixels.load_png_bgra(job.input_path, width, height)
        bpp = 4
    else:
        after = pixels.load_png_bgra64(job.output_path, width, height)
        before = job.sent if job.sent is not None else pixels.load_png_bgra64(job.input_path, width, height)
        bpp = 8
    runs = changed_runs(before, after, width, height, bpp)
    box = bounding_rect(runs)
    if box is None:
        return None
    engine = crop(after, width, bpp, box)
    if job.work is not None:
        engine = colour.convert(engine, box[2], box[3], job.work, job.space)
    return box, engine, runs


def crop(data: bytes, width: int, bytes_per_pixel: int, rect: Rect) -> bytes:
    """The ``rect`` (x, y, width, height) part of an image ``width`` pixels wide."""
    x, y, w, h = rect
    stride = width * bytes_per_pixel
    left, right = x * bytes_per_pixel, (x + w) * bytes_per_pixel
    return b"".join(data[row * stride + left:row * stride + right] for row in range(y, y + h))


def layer_rect(node: Any, width: int, height: int) -> Rect:
    """The canvas (0, 0, ``width``, ``height``) and, for a layer moved partly beyond it, the
    rest of the layer's pixels: the part of the layer the result layer copies."""
    rect = (0, 0, width, height)
    try:
        bounds = node.bounds()
        if bounds.width() > 0 and bounds.height() > 0:
            rect = union(rect, (bounds.x(), bounds.y(), bounds.width(), bounds.height()))
    except Exception:
        pass
    return rect


def union(first: Rect, second: Rect) -> Rect:
    """The smallest rectangle holding both rectangles (x, y, width, height)."""
    x0, y0 = min(first[0], second[0]), min(first[1], second[1])
    x1 = max(first[0] + first[2], second[0] + second[2])
    y1 = max(first[1] + first[3], second[1] + second[3])
    return x0, y0, x1 - x0, y1 - y0


def apply_rect(node: Any, width: int, height: int) -> Rect:
    """The part of the image an Apply sends to the engine: the canvas (0, 0, ``width``,
    ``height``) and the layer's pixels beyond it up to :func:`margin` away (a face cut by the
    canvas edge is edited whole; a layer reaching far beyond, e.g. after Image → Resize Canvas,
    makes Apply no slower than four canvases, or the canvas and 16 million pixels)."""
    extra = margin(width, height)
    x0, y0, w, h = layer_rect(node, width, height)
    x1, y1 = max(x0, -extra), max(y0, -extra)
    x2, y2 = min(x0 + w, width + extra), min(y0 + h, height + extra)
    return x1, y1, x2 - x1, y2 - y1


def margin(width: int, height: int) -> int:
    """The widest band around a ``width``×``height`` canvas that adds at most three canvases'
    area and :data:`BAND_PIXELS` pixels: half the side of a small square canvas, less for a
    long one (a 512×48 canvas: 55 px; half its longer side would send up to 1024×560 pixels)
    or a large one (6000×4000: 701 px, where half its longer side would add 96 million pixels,
    and the preview and Apply convert them on Krita's UI thread)."""
    extra = min(3 * width * height, BAND_PIXELS)
    side = width + height  # ((width + 2m)(height + 2m) ≤ width·height + extra: its largest whole m)
    return (math.isqrt(side * side + 4 * extra) - side) // 4


def reaches_beyond(job: Job) -> bool:
    """Does ``job`` hold pixels beyond the canvas (the layer's, in the band :func:`apply_rect` adds)?"""
    width, height = job.image_size
    return job.x < 0 or job.y < 0 or job.x + job.width > width or job.y + job.height > height


def largest_on_canvas(faces: List[Dict[str, Any]], job: Job) -> Optional[List[int]]:
    """The index (as ``[i]``) of the largest face of an engine's ``detect`` reply on ``job``'s
    input whose box has its middle on the canvas (faces come largest first); None when none has."""
    width, height = job.image_size
    for face in faces:
        if not isinstance(face, dict) or "box" not in face or not isinstance(face.get("index"), int):
            continue
        x0, y0, x1, y1 = face["box"]
        if 0 <= job.x + (x0 + x1) / 2 < width and 0 <= job.y + (y0 + y1) / 2 < height:
            return [face["index"]]
    return None


def edited_boxes(reply: Dict[str, Any]) -> List[List[float]]:
    """The boxes of the faces the engine edited (all faces if none says ``edited``)."""
    faces = [f for f in reply.get("faces") or [] if isinstance(f, dict) and "box" in f]
    edited = [f["box"] for f in faces if f.get("edited")]
    return edited or [f["box"] for f in faces]
