"""Face detection (dlib HOG) and five-point landmarks (dlib's freely redistributable model)."""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import ModelError

#: Detection runs on a copy whose long side is at most this many pixels.
DETECT_MAX_SIDE = 640
#: dlib HOG scores below this are treated as non-faces (dlib's own threshold is 0).
MIN_SCORE = 0.3


@dataclass(frozen=True)
class Face:
    """A detected face in photo pixel coordinates."""

    box: tuple[int, int, int, int]  #: x0, y0, x1, y1 (exclusive end)
    landmarks: np.ndarray  #: (5, 2) float64, dlib 5-point order (see smilecore.align)
    score: float  #: dlib detector confidence

    @property
    def size(self) -> int:
        """Side of the detection box in photo pixels."""
        return int(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def dlib_model_file(name: str) -> Path:
    """Path of a model file shipped in the ``face_recognition_models`` package.

    The package's own ``__init__`` needs ``pkg_resources``; locating it through
    ``find_spec`` avoids importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the face landmark models are missing: run 'pip install face-recognition-models'")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise ModelError(f"dlib model file {path} is missing: reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=1)
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def _predictor5():
    import dlib

    return dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    """8-bit, 3-channel, C-contiguous copy of an (H,W[,C]) uint8/uint16 array for dlib."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif c == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def landmarks5(rgb8: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's five landmarks for a face box, as a (5,2) float64 array."""
    import dlib

    x0, y0, x1, y1 = box
    shape = _predictor5()(rgb8, dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def detect_boxes(
    rgb8: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_score: float = MIN_SCORE
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Face boxes ``((x0, y0, x1, y1), score)`` in photo pixels (exclusive end, unclipped).

    Detection runs on a grey copy reduced to ``max_side`` with dlib's 2x upsampling, which
    finds faces down to about 40 px there (~6 % of the long side).
    """
    h, w = rgb8.shape[:2]
    f = min(1.0, max_side / max(h, w))
    small = rgb8 if f == 1.0 else cv2.resize(rgb8, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)  # HOG on grey: same faces, ~30 % faster
    fx, fy = w / small.shape[1], h / small.shape[0]
    rects, scores, _ = _detector().run(small, 1, min_score)
    pad = 0
    if not len(rects):
        # tightly cropped portraits: HOG needs some margin around the face; retry on a padded copy
        pad = max(8, max(small.shape) // 5)
        small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rects, scores, _ = _detector().run(small, 1, min_score)
    return [
        (((r.left() - pad) * fx, (r.top() - pad) * fy, (r.right() + 1 - pad) * fx, (r.bottom() + 1 - pad) * fy), float(sc))
        for r, sc in zip(rects, scores)
        if sc >= min_score
    ]


def detect_faces(
    image: np.ndarray,
    min_face: int | None = None,
    max_side: int = DETECT_MAX_SIDE,
    min_score: float = MIN_SCORE,
) -> list[Face]:
    """Find faces in an (H,W[,C]) image array; largest first.

    Boxes come from :func:`detect_boxes`; landmarks are computed on the full-resolution image.
    """
    rgb8 = _to_rgb8(image)
    h, w = rgb8.shape[:2]
    faces = []
    for box, score in detect_boxes(rgb8, max_side, min_score):
        ib = (max(0, int(box[0])), max(0, int(box[1])), min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3]))))
        if ib[2] <= ib[0] or ib[3] <= ib[1]:
            continue
        face = Face(box=ib, landmarks=landmarks5(rgb8, (box[0], box[1], box[2] - 1, box[3] - 1)), score=score)
        if min_face is not None and face.size < min_face:
            continue
        faces.append(face)
    faces.sort(key=lambda fc: -fc.size)
    return faces
