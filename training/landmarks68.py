"""dlib face detection with 5- and 68-point landmarks, for training only.

The 5-point predictor gives the alignment exactly as inference does; the
68-point predictor (non-commercial licence: training only, never on the
runtime path) gives the dense landmarks the smile direction is measured in.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# 68-point index groups (iBUG 300-W numbering, 0-based)
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
MOUTH = np.arange(48, 68)


def yaw_ratio(lm68: np.ndarray) -> np.ndarray:
    """Where the nose tip sits between the jaw ends, 0..1 (0.5 = frontal); works on [...,68,2]."""
    lm68 = np.asarray(lm68)
    span = lm68[..., 16, 0] - lm68[..., 0, 0]
    return (lm68[..., 30, 0] - lm68[..., 0, 0]) / np.where(np.abs(span) < 1e-6, 1e-6, span)


def is_frontal(lm68: np.ndarray, tolerance: float = 0.15) -> np.ndarray:
    """True for faces turned little enough that the frontal smile direction applies."""
    return np.abs(yaw_ratio(lm68) - 0.5) < tolerance


def model_dir() -> Path:
    """Folder holding the face_recognition_models ``.dat`` files (without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed: pip install face_recognition_models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@dataclass(frozen=True)
class Detection:
    """One detected face: detector box (x0, y0, x1, y1), 5- and 68-point landmarks in photo pixels, HOG score."""

    box: tuple[int, int, int, int]
    lm5: np.ndarray
    lm68: np.ndarray
    score: float = 0.0


def _points(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class LandmarkDetector:
    """dlib HOG detector + 5-point and 68-point shape predictors."""

    def __init__(self) -> None:
        import dlib

        d = model_dir()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.sp5 = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.sp68 = dlib.shape_predictor(str(d / "shape_predictor_68_face_landmarks.dat"))

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Detection]:
        """All faces in an ``(H, W, 3)`` uint8 image, most confident first."""
        rgb = np.ascontiguousarray(rgb)
        rects, scores, _ = self.detector.run(rgb, upsample, 0.0)
        order = np.argsort(-np.asarray(scores, dtype=np.float64)) if len(rects) else []
        out = []
        for i in order:
            r = rects[int(i)]
            out.append(
                Detection(
                    box=(r.left(), r.top(), r.right(), r.bottom()),
                    lm5=_points(self.sp5(rgb, r)),
                    lm68=_points(self.sp68(rgb, r)),
                    score=float(scores[int(i)]),
                )
            )
        return out
