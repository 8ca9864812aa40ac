"""From a BlazeFace detection to dlib's five landmarks: the detection record, the box dlib's HOG
detector would have drawn (fitted by tools/fit_box.py), and the landmarks placed on the
full-resolution photo, turned upright first when the face is tilted (:func:`refine_landmarks`).
smilecore.detect finds the faces and re-exports these names."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .dlib_models import landmarks5

#: Faces tilted more than this (degrees, from the eye line) are turned upright for the landmarks.
UPRIGHT_DEG = 15.0
#: :func:`refine_landmarks` places dlib's landmarks at most this many times, stopping when the eye
#: line they give has moved by no more than ROLL_SETTLED degrees from the one they were placed at.
ROLL_PASSES = 4
ROLL_SETTLED = 5.0

@dataclass(frozen=True)
class Detection:
    """A BlazeFace detection in photo pixels (before the landmark refinement)."""

    box: tuple[float, float, float, float]  #: x0, y0, x1, y1 (BlazeFace's box, unclipped)
    keypoints: np.ndarray  #: (6, 2): subject's right eye, left eye, nose tip, mouth, right ear, left ear
    score: float  #: probability

    @property
    def side(self) -> float:
        """The box's longer side in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def facing(self) -> float:
        """How squarely the face looks at the camera: where the nose tip lies between the ears along
        the eye line, 1 midway, 0 on one ear's line, below 0 past it (a profile)."""
        k = self.keypoints
        u = k[1] - k[0]
        u = u / max(float(np.hypot(*u)), 1e-9)
        x = (k - k[0]) @ u
        span = float(x[5] - x[4])
        if abs(span) < 1e-9:
            return 0.0
        return float(1.0 - abs(2.0 * (x[2] - x[4]) / span - 1.0))

    @property
    def roll(self) -> float:
        """Angle of the eye line in degrees (image coordinates, y down; 0 = upright)."""
        d = self.keypoints[1] - self.keypoints[0]
        return float(np.degrees(np.arctan2(d[1], d[0])))


#: dlib-HOG-shaped box from BlazeFace's keypoints, in the face's upright frame: with e the eye
#: centre, d the eye distance, m the eye-to-mouth distance along the face's vertical axis,
#: centre = e + (a0·d + a1·m)·down, side = b0·d + b1·m. Fitted by tools/fit_box.py (least squares
#: on training-split faces that HOG found).
BOX_FIT = (0.5584, -0.1325, 1.7269, 0.4927)


def hog_like_box(det: Detection) -> tuple[np.ndarray, float, np.ndarray]:
    """(centre, side, unit "right" vector) of the box dlib's HOG detector would draw, upright frame."""
    k = det.keypoints
    e = (k[0] + k[1]) / 2
    u = k[1] - k[0]
    d = float(np.hypot(*u))
    u = u / max(d, 1e-9)
    down = np.array([-u[1], u[0]])
    m = float(np.dot(k[3] - e, down))
    a0, a1, b0, b1 = BOX_FIT
    centre = e + (a0 * d + a1 * m) * down
    return centre, b0 * d + b1 * m, u


#: The same box from dlib's own five landmarks (e: centre of the four eye corners, d: distance
#: of the eye centres, m: eye centre to nose bottom along the face's vertical); fitted by
#: tools/fit_box.py. The second pass of :func:`refine_landmarks` uses it.
BOX_FIT5 = (0.1178, 0.3995, 1.7693, 0.7207)


def frame5(lm: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(eye centre e, eye distance d, unit "down" vector, eye-to-nose distance m) of dlib's 5 points."""
    right, left = (lm[2] + lm[3]) / 2, (lm[0] + lm[1]) / 2  # image-left eye, image-right eye
    e = (right + left) / 2
    u = left - right
    d = float(np.hypot(*u))
    u = u / max(d, 1e-9)
    down = np.array([-u[1], u[0]])
    return e, d, down, float(np.dot(lm[4] - e, down))


def box_from5(lm: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side of the HOG-shaped face box fitted (:data:`BOX_FIT5`) to five landmarks."""
    e, d, down, m = frame5(lm)
    a0, a1, b0, b1 = BOX_FIT5
    return e + (a0 * d + a1 * m) * down, b0 * d + b1 * m


def refine_landmarks(rgb8: np.ndarray, det: Detection) -> np.ndarray:
    """dlib's five landmarks for a BlazeFace detection, (5,2) float64, photo pixels: once on the
    box and roll predicted from BlazeFace's keypoints, then again on the box and roll predicted
    from those landmarks (closer to the box dlib's HOG detector would have drawn), and once more
    while that roll still moves by over :data:`ROLL_SETTLED` degrees: BlazeFace's keypoints of a
    face turned a quarter turn can be 15–55° off, and dlib's own eye line is closer."""
    centre, side, _ = hog_like_box(det)
    roll = det.roll
    lm = _landmarks_upright(rgb8, centre, side, roll)
    for _pass in range(ROLL_PASSES - 1):
        e, d, down, _ = frame5(lm)
        if not d > 0:
            break
        new_roll = float(np.degrees(np.arctan2(-down[0], down[1])))
        centre, side = box_from5(lm)
        settled = abs((new_roll - roll + 180.0) % 360.0 - 180.0) <= ROLL_SETTLED
        roll = new_roll
        lm = _landmarks_upright(rgb8, centre, side, roll)
        if settled:
            break
    return lm


def _landmarks_upright(rgb8: np.ndarray, centre: np.ndarray, side: float, roll: float) -> np.ndarray:
    """dlib's five landmarks on the box (centre, side) of a face whose eye line is at ``roll``
    degrees: directly when it is within :data:`UPRIGHT_DEG` of upright, else turned upright in a
    crop around it (2 box sides) and mapped back."""
    half = side / 2
    if abs(roll) <= UPRIGHT_DEG:
        return landmarks5(rgb8, (centre[0] - half, centre[1] - half, centre[0] + half - 1, centre[1] + half - 1))
    n = int(np.ceil(2 * side))
    rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, 1.0)
    rot[:, 2] += n / 2 - centre
    crop = cv2.warpAffine(rgb8, rot, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    c = n / 2
    pts = landmarks5(np.ascontiguousarray(crop), (c - half, c - half, c + half - 1, c + half - 1))
    inv = cv2.invertAffineTransform(rot)
    return pts @ inv[:, :2].T + inv[:, 2]
