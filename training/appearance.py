"""What a real smile changes beyond its geometry: a shading field learned from same-person pairs.

For every person of a split with frontal neutral and happy photos, both are warped (thin-plate
spline on the 68 landmarks) onto one frame, the mean happy shape; the change that remains is
appearance: lit cheeks, deeper nasolabial folds, narrowed eyes, teeth.  The field is the mean
over people of log(happy + 8) − log(neutral + 8) of the luminance, smoothed, limited to the
face (hull of jaw and brows) and with the inside of the lips left out (the mouth is the mouth
model's).  :meth:`Appearance.apply` warps it onto a target's landmarks and multiplies the
target's pixels by exp(gain · min(λ, 2) · field) outside the teacher's mouth mask.

It is a probe for the teacher (``python -m training teacher-realism --appearance``): a student
under model contract 1 cannot produce it, because its output is the warp wherever the mask is 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks68 import INNER_LIPS, is_frontal
from .warp import landmark_flow, warp_image

#: Offset added before the logarithm (keeps dark pixels from dominating the ratio).
LOG_OFFSET = 8.0


def luminance(img: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB image, float32."""
    x = np.asarray(img, np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


@dataclass
class Appearance:
    """The mean log-luminance change of real smiles in the frame of the mean happy landmarks."""

    field: np.ndarray  #: float32 [S,S]: smoothed, face-only, lips' inside left out
    frame: np.ndarray  #: float64 [68,2]: landmarks of the frame (crop px)
    people: int  #: how many people it was learned from

    def shade(self, landmarks: np.ndarray) -> np.ndarray:
        """The field warped so that its frame lands on ``landmarks`` [68,2]; float32 [S,S]."""
        size = self.field.shape[0]
        return warp_image(self.field, landmark_flow(self.frame, landmarks, size))

    def apply(self, target: np.ndarray, landmarks: np.ndarray, lam: float, mask: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """``target`` (uint8 [S,S,3]) with the smile's shading at strength ``lam`` (0 below λ = 0, full
        from λ = 2) outside ``mask`` (the pasted mouth, [S,S] in [0,1])."""
        amount = gain * float(np.clip(lam, 0.0, 2.0))
        if amount == 0.0:
            return target
        shade = self.shade(landmarks) * amount * (1.0 - np.asarray(mask, np.float32))
        out = (target.astype(np.float32) + LOG_OFFSET) * np.exp(shade)[..., None] - LOG_OFFSET
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def fit_appearance(crops: np.ndarray, lm68: np.ndarray, person: np.ndarray, label: np.ndarray, rows: np.ndarray,
                   per_person: int = 3, frontal_tolerance: float = 0.12, smooth: float = 1.2) -> Appearance:
    """Learn the field from ``rows`` (crops [N,S,S,3] with ``lm68`` [N,68,2] in crop px; ``label`` 1 happy,
    0 neutral) of people with both labels; at most ``per_person`` photos of each kind per person."""
    rows = np.asarray(rows)
    rows = rows[(label[rows] >= 0) & is_frontal(lm68[rows], frontal_tolerance)]
    size = crops.shape[1]
    frame = lm68[rows[label[rows] == 1]].astype(np.float64).mean(0)

    def mean_lum(rs: np.ndarray) -> np.ndarray:
        return np.mean([luminance(warp_image(np.asarray(crops[r]), landmark_flow(lm68[r], frame, size))) for r in rs], 0)

    total, people = np.zeros((size, size), np.float64), 0
    for p in np.unique(person[rows]):
        mine = rows[person[rows] == p]
        happy, neutral = mine[label[mine] == 1][:per_person], mine[label[mine] == 0][:per_person]
        if len(happy) == 0 or len(neutral) == 0:
            continue
        total += np.log(mean_lum(happy) + LOG_OFFSET) - np.log(mean_lum(neutral) + LOG_OFFSET)
        people += 1
    if people == 0:
        raise ValueError("no person has frontal neutral and happy photos")
    field = cv2.GaussianBlur((total / people).astype(np.float32), (0, 0), smooth)
    hull = np.zeros((size, size), np.float32)
    outline = np.concatenate([frame[0:17], frame[26:16:-1]])
    cv2.fillConvexPoly(hull, np.round(outline).astype(np.int32), 1.0)
    hull = cv2.GaussianBlur(hull, (0, 0), 6.0 * size / 256)
    lips = np.zeros((size, size), np.float32)
    cv2.fillPoly(lips, [np.round(frame[INNER_LIPS]).astype(np.int32)], 1.0)
    lips = cv2.GaussianBlur(cv2.dilate(lips, np.ones((5, 5), np.uint8)), (0, 0), 2.0)
    return Appearance(field=(field * hull * (1.0 - lips)).astype(np.float32), frame=frame, people=people)
