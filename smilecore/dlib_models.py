"""dlib's models as the engine uses them: the files of ``face-recognition-models``, the five-point
landmarks (the freely redistributable shape predictor) and the HOG face detector that came before
BlazeFace: the judge of which way up a face is (:func:`hog_score`, on a view of one face), and for
the benchmarks and fitting :data:`smilecore.landmarks.BOX_FIT`, the searcher of whole photos; and
the face recognition network (public domain, as all of Davis King's dlib models), which tells a face
that comes back into a video from another (:mod:`smilecore.video_reid`)."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .align import Alignment, extract_crop, invert_affine
from .errors import ModelError

#: dlib HOG scores below this are treated as non-faces (dlib's own threshold is 0); benchmarks only.
HOG_MIN_SCORE = 0.3
#: The long side of the copy :func:`hog_boxes` searches (as the engine's detection copy).
HOG_MAX_SIDE = 640
#: :func:`hog_score`'s views: the score a face must reach (dlib's own threshold is 0), on an upright
#: view of a candidate of HOG_CONFIRM_VIEW pixels holding HOG_CONFIRM_CONTEXT face sides. Of 66 real
#: faces turned half a turn that BlazeFace was unsure of (UTKFace, 300 photos), HOG scored the
#: upright view −0.21 to 2.0; of 2,280 random views of the face-free pictures of
#: benchmarks/detector.py, 2 reached −0.3 and none 0.
HOG_CONFIRM_MIN = -0.3
HOG_CONFIRM_VIEW = 200
HOG_CONFIRM_CONTEXT = 2.0
#: Faces whose HOG-shaped box is smaller than this many photo pixels are not judged by HOG.
HOG_JUDGE_MIN_SIDE = 20.0


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


#: Side of the face chip :func:`face_chip` cuts for dlib's face recognition network, and its padding
#: (dlib's own defaults for that network).
CHIP_SIZE = 150
CHIP_PADDING = 0.25


@functools.lru_cache(maxsize=1)
def _recognizer():
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")))


def face_chip(grey: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """The (CHIP_SIZE, CHIP_SIZE) uint8 grey chip of a face, aligned by its five landmarks (dlib's
    order, pixels of ``grey``, an (H,W) uint8 luma) as dlib's face recognition network wants it."""
    import dlib

    pts = np.asarray(landmarks5, np.float64)
    if not np.isfinite(pts).all():
        raise ValueError("landmarks are not finite")
    # a window around the face only (the chip reaches about a face's width past the landmarks), so that
    # the cost does not grow with the frame
    span = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0))
    h, w = grey.shape[:2]
    wx0, wy0 = (int(max(0, np.floor(v - 2.5 * span))) for v in pts.min(0))
    wx1, wy1 = int(min(w, np.ceil(pts[:, 0].max() + 2.5 * span))), int(min(h, np.ceil(pts[:, 1].max() + 2.5 * span)))
    if wx1 <= wx0 or wy1 <= wy0:
        raise ValueError("the face is outside the frame")
    pts = pts - (wx0, wy0)
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1) + 1, int(y1) + 1),
                                       [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    window = np.asarray(grey, np.uint8)[wy0:wy1, wx0:wx1]
    rgb = np.ascontiguousarray(np.repeat(window[..., None], 3, axis=2))
    return np.ascontiguousarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)[..., 0])


def chip_descriptor(chip: np.ndarray) -> np.ndarray:
    """dlib's 128-D face descriptor (``face_recognition_model_v1``; the same person within about 0.6,
    dlib's own threshold) of a :func:`face_chip`."""
    rgb = np.ascontiguousarray(np.repeat(np.asarray(chip, np.uint8)[..., None], 3, axis=2))
    return np.asarray(_recognizer().compute_face_descriptor(rgb), np.float64)


@functools.lru_cache(maxsize=1)
def _predictor5():
    import dlib

    return dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))


def load_dlib_models() -> None:
    """Load the shape predictor and the HOG detector now (each is loaded once, on first use)."""
    _predictor5()
    _detector()


def landmarks5(rgb8: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's five landmarks for a face box, as a (5,2) float64 array."""
    import dlib

    x0, y0, x1, y1 = box
    shape = _predictor5()(rgb8, dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def hog_score(rgb8: np.ndarray, centre: np.ndarray, side: float, roll: float) -> float:
    """dlib's HOG score for a face at the middle of an upright view of a candidate (centre and
    HOG-shaped box side in ``rgb8``'s pixels, ``roll`` its eye line in degrees; −inf when HOG sees
    none there, NaN when the face is too small for HOG to judge, :data:`HOG_JUDGE_MIN_SIDE`): a
    second opinion, independent of BlazeFace, and one that only upright faces get. Only the part
    of the photo the view shows is read."""
    if side < HOG_JUDGE_MIN_SIDE:
        return float("nan")
    size = HOG_CONFIRM_VIEW
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, size / (HOG_CONFIRM_CONTEXT * side))
    m[:, 2] += np.array([size / 2 - centre[0], size / 2 - centre[1]])
    view = extract_crop(rgb8, Alignment(matrix=m, inverse=invert_affine(m), size=size), border=cv2.BORDER_REPLICATE)
    rects, scores, _ = _detector().run(cv2.cvtColor(view, cv2.COLOR_RGB2GRAY), 0, HOG_CONFIRM_MIN)
    best = -np.inf
    for r, sc in zip(rects, scores):
        cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
        if max(abs(cx - size / 2), abs(cy - size / 2)) <= size / HOG_CONFIRM_CONTEXT / 2:
            best = max(best, float(sc))
    return best


def hog_boxes(
    rgb8: np.ndarray, max_side: int = HOG_MAX_SIDE, min_score: float = HOG_MIN_SCORE
) -> list[tuple[tuple[float, float, float, float], float]]:
    """dlib HOG face boxes ``((x0, y0, x1, y1), score)`` in photo pixels (exclusive end, unclipped).

    The engine's detector before BlazeFace; kept for ``python -m benchmarks`` (side-by-side
    comparison) and for fitting :data:`smilecore.detect.BOX_FIT`. Detection runs on a grey copy reduced to
    ``max_side`` with dlib's 2x upsampling, which finds faces down to about 40 px there.
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
