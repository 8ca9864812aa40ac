"""BlazeFace face detectors (MediaPipe, Apache-2.0) run by ONNX Runtime.

The ``.onnx`` files are converted from MediaPipe's ``.tflite`` files by
``tools/convert_mediapipe.py`` and ship in ``smilecore/models/`` (licence and NOTICE there).
Each model sees a square RGB picture in [-1, 1] and scores a fixed set of anchors; for each
anchor it regresses a box and six keypoints (the subject's right eye, left eye, nose tip,
mouth centre, right ear tragion, left ear tragion) relative to the anchor's centre.

The engine ships the short-range model: 128 × 128 input, 896 anchors (16 × 16 × 2 at stride 8,
8 × 8 × 6 at stride 16); on the astronaut it finds faces from about 1/8 of the picture to all of
it, turned up to 90°. (The full-range model — 192 × 192, 2304 anchors at stride 4 — finds faces
from about 1/12 to 1/2 of the picture at ~8 × the cost; the short-range model run on larger inputs does better.)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .digest import file_sha256
from .errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class Spec:
    file: str
    sha256: str
    size: int  #: input side it was trained at
    strides: tuple[int, ...]  #: one per feature map
    per_cell: tuple[int, ...]  #: anchors per cell, one per feature map


SHORT = Spec("blazeface-short-range.onnx", "f908ff56426016181075794388104168ddf2e478551c64d17b0f36c41441ede0",
             128, (8, 16), (2, 6))


@functools.lru_cache(maxsize=16)
def anchors(spec: Spec, height: int, width: int) -> np.ndarray:
    """(A, 2) anchor centres in input pixels, in the network's order (map, row, column, anchor)."""
    out = []
    for stride, n in zip(spec.strides, spec.per_cell):
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        c = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(c, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def verify_file(file: str | Path, sha256: str, what: str) -> Path:
    """Path of a shipped model file (a name in ``smilecore/models/`` or a path) after checking
    its sha256; ModelError, naming ``what`` it is, if it is missing or different."""
    path = MODELS_DIR / file if isinstance(file, str) else Path(file)
    if not path.is_file():
        raise ModelError(f"{what} {path} is missing: reinstall smile-filter")
    digest = file_sha256(path)
    if digest != sha256:
        raise ModelError(f"{what} {path} fails its checksum (sha256 {digest[:12]}…, expected {sha256[:12]}…)")
    return path


def verify(spec: Spec, path: Path | None = None) -> Path:
    """The detector file's path after checking its sha256 (ModelError if missing or different)."""
    return verify_file(spec.file if path is None else Path(path), spec.sha256, "face detector")


def helper_session(checked: Path, threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for one of the shipped helper networks (the detector, the face
    mesh), from its checked file: ``threads`` (else ``$SMILE_THREADS``, else ONNX Runtime's
    choice) threads inside an operator, one between operators, warnings silenced.  With one
    thread the network runs in the caller's thread: no pool is left spinning after a run."""
    import onnxruntime as ort

    from .model import env_threads

    opts = ort.SessionOptions()
    n = threads or env_threads()
    if n:
        opts.intra_op_num_threads = n
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(checked), opts, providers=["CPUExecutionProvider"])


class BlazeFace:
    """One BlazeFace network: ``run(batch)`` → raw detections per picture."""

    def __init__(self, spec: Spec, path: Path | None = None, threads: int | None = None):
        self.spec = spec
        self.session = helper_session(verify(spec, path), threads)
        self.multiple = max(spec.strides)

    def run(self, batch: np.ndarray, min_prob: float = 0.5) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``batch``: (N, H, W, 3) uint8 RGB, H and W multiples of :attr:`multiple` (the network is
        fully convolutional; it was trained at 128 × 128, where faces from ~13 px to the whole
        picture are found). Per picture: boxes (K,4) x0,y0,x1,y1, keypoints (K,6,2) in input
        pixels and probabilities (K,), unsorted, before NMS."""
        n, h, w = batch.shape[:3]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"input sides must be multiples of {self.multiple}, got {w}x{h}")
        x = batch.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
        reg, logit = self.session.run(None, {"input": x})
        anc = anchors(self.spec, h, w)
        lthr = np.log(min_prob / (1 - min_prob))
        out = []
        for r, lg in zip(reg, logit[..., 0]):
            keep = np.nonzero(lg > lthr)[0]
            r = r[keep]
            a = anc[keep]
            cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
            bw, bh = r[:, 2], r[:, 3]
            boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
            kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
            prob = 1 / (1 + np.exp(-np.clip(lg[keep], -100, 100)))
            out.append((boxes, kps, prob))
        return out


@functools.lru_cache(maxsize=1)
def network() -> BlazeFace:
    """The shipped short-range network (loaded once, sha256 checked)."""
    return BlazeFace(SHORT)


def _intersection(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas of ``box`` with each of ``boxes`` (x0, y0, x1, y1), and both areas."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter, area, areas


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of ``box`` with each of ``boxes``."""
    inter, area, areas = _intersection(box, boxes)
    return inter / np.maximum(area + areas - inter, 1e-9)


def overlap_of_smaller(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area."""
    inter, area, areas = _intersection(box, boxes)
    return inter / np.maximum(np.minimum(area, areas), 1e-9)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, prob: np.ndarray, thr: float = 0.3, inside: float = 0.6):
    """MediaPipe-style blending NMS: overlapping detections (IoU > thr) are averaged, weighted
    by their probability; the cluster keeps its best probability and its size (votes). A less
    probable box lying mostly (``inside``) within or around a kept one is dropped: one face gives
    no second, nested box (e.g. head and shoulders of a small figure)."""
    order = np.argsort(-prob)
    boxes, kps, prob = boxes[order], kps[order], prob[order]
    left = np.ones(len(prob), bool)
    out = []
    for i in range(len(prob)):
        if not left[i]:
            continue
        ov = iou(boxes[i], boxes) > thr
        ov &= left
        left &= ~ov
        left &= ~(overlap_of_smaller(boxes[i], boxes) > inside)
        w = prob[ov][:, None]
        out.append(((boxes[ov] * w).sum(0) / w.sum(), (kps[ov] * w[:, :, None]).sum(0) / w.sum(), float(prob[i]), int(ov.sum())))
    return out
