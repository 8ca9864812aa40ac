"""One Smile request against a Krita document: the files it needs and what to do with the reply.

:func:`prepare` reads the active layer (and selection) into PNG files and builds the worker
request; :func:`add_result_layer` puts the engine's output on a new paint layer above the
layer it came from.  Both run on Krita's UI thread; the engine work happens in between, in
the worker process.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from . import pixels

Faces = Union[str, List[int]]
RESULT_LAYER_NAME = "Smile"


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


def prepare(doc: Any, strength: float, faces: Faces, node: Any = None, region: Optional[Rect] = None) -> Job:
    """Write the active layer (or ``node``) and the selection to a fresh temporary folder.

    ``region`` (x, y, width, height), clipped to the image, limits the job to that rectangle
    (previews use the area around the faces found before).
    """
    node = node if node is not None else (doc.activeNode() if doc is not None else None)
    pixels.check_document(doc, node)
    x, y, width, height = clip_rect(region, doc.width(), doc.height())
    folder = tempfile.mkdtemp(prefix="smile-krita-")
    job = Job(doc=doc, node=node, x=x, y=y, width=width, height=height, folder=folder,
              input_path=os.path.join(folder, "input.png"),
              output_path=os.path.join(folder, "output.png"),
              mask_path=os.path.join(folder, "mask.png"),
              strength=strength, faces=faces)
    try:
        pixels.save_bgra_png(pixels.layer_bytes(node, x, y, width, height), width, height, job.input_path)
        selection_path = os.path.join(folder, "selection.png")
        if pixels.save_selection_png(doc, x, y, width, height, selection_path):
            job.selection_path = selection_path
    except Exception:
        job.cleanup()
        raise
    return job


def clip_rect(region: Optional[Rect], width: int, height: int) -> Rect:
    """``region`` clipped to a ``width``×``height`` image; the whole image when None or empty."""
    if region is None:
        return 0, 0, width, height
    x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
    x1, y1 = min(width, int(region[0] + region[2])), min(height, int(region[1] + region[3]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0, 0, width, height
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


def add_result_layer(job: Job, name: str = RESULT_LAYER_NAME) -> Any:
    """Put the engine's output on a new paint layer right above the job's layer; return it.

    The layer is filled before it joins the image, so adding it is the only change to the
    document: one undo step removes it.
    """
    data = pixels.load_png_bgra(job.output_path, job.width, job.height)
    doc = job.doc
    layer = doc.createNode(name, "paintlayer")
    if (job.width, job.height) != (doc.width(), doc.height()):  # a partial job: copy the rest
        layer.setPixelData(pixels.layer_bytes(job.node, 0, 0, doc.width(), doc.height()),
                           0, 0, doc.width(), doc.height())
    layer.setPixelData(data, job.x, job.y, job.width, job.height)
    parent = job.node.parentNode() or doc.rootNode()
    parent.addChildNode(layer, job.node)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    return layer


def edited_boxes(reply: Dict[str, Any]) -> List[List[float]]:
    """The boxes of the faces the engine edited (all faces if none says ``edited``)."""
    faces = [f for f in reply.get("faces") or [] if isinstance(f, dict) and "box" in f]
    edited = [f["box"] for f in faces if f.get("edited")]
    return edited or [f["box"] for f in faces]
