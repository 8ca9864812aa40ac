"""The 68 landmarks training measures smiles in: their index groups, and dlib's predictors.

Faces and their five landmarks (the alignment) come from the engine, exactly as inference
finds them (``smilecore.detect.detect_faces``); dlib's 68-point predictor (non-commercial
licence: training only, never on the runtime path) adds the dense landmarks the smile
direction is measured in.
"""
from __future__ import annotations

import functools

import numpy as np

from smilecore.dlib_models import dlib_model_file

# 68-point index groups (iBUG 300-W numbering, 0-based)
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
MOUTH = np.arange(48, 68)
#: Upper/lower inner-lip landmark pairs (upper, lower).
INNER_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])

#: Landmarks held still: brows, nose bridge (27-30) and the outer jaw near the ears.
PINNED = np.concatenate([BROWS, np.arange(27, 31), JAW[:4], JAW[-4:]])


def moving_weights() -> np.ndarray:
    """[68]: 1 for the landmarks the teacher moves, 0 for :data:`PINNED` ones."""
    weight = np.ones(68)
    weight[PINNED] = 0.0
    return weight


def inner_gap(lm68: np.ndarray) -> float:
    """Mean vertical opening between the upper and lower inner lips (crop px)."""
    return float(np.mean(lm68[INNER_PAIRS[:, 1], 1] - lm68[INNER_PAIRS[:, 0], 1]))


def yaw_ratio(lm68: np.ndarray) -> np.ndarray:
    """Where the nose tip sits between the jaw ends, 0..1 (0.5 = frontal); works on [...,68,2]."""
    lm68 = np.asarray(lm68)
    span = lm68[..., 16, 0] - lm68[..., 0, 0]
    return (lm68[..., 30, 0] - lm68[..., 0, 0]) / np.where(np.abs(span) < 1e-6, 1e-6, span)


def is_frontal(lm68: np.ndarray, tolerance: float = 0.15) -> np.ndarray:
    """True for faces turned little enough that the frontal smile direction applies."""
    return np.abs(yaw_ratio(lm68) - 0.5) < tolerance


#: dlib's model files (in ``face_recognition_models``) that training uses
PREDICTOR_FILES = {5: "shape_predictor_5_face_landmarks.dat", 68: "shape_predictor_68_face_landmarks.dat"}
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"


#: The face box dlib's predictors are given on an aligned crop (fractions of its side: left, top,
#: right, bottom): where smilecore's template puts the face.
CROP_BOX = (0.12, 0.15, 0.88, 0.92)


def crop_rectangle(size: int):
    """:data:`CROP_BOX` on a crop of side ``size`` as a ``dlib.rectangle``."""
    import dlib

    return dlib.rectangle(*(int(f * size) for f in CROP_BOX))


def crop_landmarks68(crops: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks ``[N,68,2]`` (crop pixels) of aligned uint8 RGB crops ``[N,S,S,3]``, each
    placed by :func:`crop_rectangle` (no detector: the crop is the face)."""
    predictor = shape_predictor(68)
    out = np.zeros((len(crops), 68, 2), np.float64)
    for i, crop in enumerate(crops):
        shape = predictor(np.ascontiguousarray(crop), crop_rectangle(crop.shape[0]))
        out[i] = [(p.x, p.y) for p in shape.parts()]
    return out


@functools.lru_cache(maxsize=2)
def shape_predictor(points: int):
    """dlib's ``points``-point shape predictor (5 or 68), loaded once per process; the file is
    found the engine's way (``smilecore.dlib_models.dlib_model_file``)."""
    import dlib

    return dlib.shape_predictor(str(dlib_model_file(PREDICTOR_FILES[points])))


@functools.lru_cache(maxsize=1)
def face_recognizer():
    """dlib's face recognition network (``face_recognition_model_v1``), loaded once per process."""
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_file(RECOGNIZER_FILE)))


def landmarks68(rgb8: np.ndarray, centre: np.ndarray, side: float) -> np.ndarray:
    """dlib's 68 landmarks, (68, 2) float64 photo pixels, for the face in the square box of
    ``side`` pixels around ``centre`` (the box dlib's HOG detector would draw, see
    ``smilecore.detect.BOX_FIT5``), in an 8-bit RGB image."""
    import dlib

    h = side / 2
    rect = dlib.rectangle(int(round(centre[0] - h)), int(round(centre[1] - h)), int(round(centre[0] + h - 1)), int(round(centre[1] + h - 1)))
    shape = shape_predictor(68)(np.ascontiguousarray(rgb8), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
