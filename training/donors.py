"""Donor mouths: real open smiling mouths in one canonical patch frame, and how good each is.

The teacher (``training.teacher``) pastes a donor's mouth interior where the moved lips open
wider than the subject's; ``training.teeth`` draws one mouth in the same frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .landmarks68 import MOUTH, inner_gap

#: Canonical donor mouth patch: width, height, and where the mouth corners (48, 54) go.
PATCH_W, PATCH_H = 128, 96
PATCH_CORNERS = np.array([[24.0, 48.0], [104.0, 48.0]])


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity mapping two points ``src`` [2,2] onto ``dst`` [2,2]."""
    s = complex(*(src[1] - src[0]))
    d = complex(*(dst[1] - dst[0]))
    z = d / s
    t = complex(*dst[0]) - z * complex(*src[0])
    return np.array([[z.real, -z.imag, t.real], [z.imag, z.real, t.imag]])


@dataclass
class DonorBank:
    """Open smiling mouths in a canonical patch frame (mouth corners at ``PATCH_CORNERS``)."""

    patches: np.ndarray  #: uint8 [D,PATCH_H,PATCH_W,3]
    lips: np.ndarray  #: float32 [D,20,2] landmarks 48-67 in patch px
    gray: np.ndarray  #: bool [D]
    #: the patches show mouth below their lower lip too: map targets with ``teeth.hanging_lips``
    hanging: bool = False
    #: brightness of the lips the patches were drawn for (else measured on each patch's lip ring)
    ring_lum: float | None = None

    def __len__(self) -> int:
        return len(self.patches)

    def save(self, path: str | Path) -> None:
        """Write to an ``.npz``."""
        np.savez_compressed(path, patches=self.patches, lips=self.lips, gray=self.gray)

    @classmethod
    def load(cls, path: str | Path) -> "DonorBank":
        """Read an ``.npz`` written by :meth:`save`."""
        with np.load(path) as z:
            return cls(z["patches"], z["lips"].astype(np.float32), z["gray"].astype(bool))

    def quality(self) -> np.ndarray:
        """Per donor: share of the opening that shows teeth × log(1 + mouth sharpness); higher is better."""
        return np.array([teeth_fraction(p, l) * np.log1p(mouth_sharpness(p, l)) for p, l in zip(self.patches, self.lips)])

    def best(self, k: int) -> "DonorBank":
        """The ``k`` best donors by :meth:`quality`, colour donors only when there are any.

        A small bank of clearly visible, sharp teeth makes the teacher's mouth interior nearly a
        function of the mouth's shape; with hundreds of donors the student's L1-trained RGB head
        learns their average, a dim grey band.  Grey subjects get these donors in grey.
        """
        q = self.quality()
        cand = np.flatnonzero(~self.gray) if (~self.gray).any() else np.arange(len(self))
        keep = np.sort(cand[np.argsort(-q[cand], kind="stable")[: max(1, int(k))]])
        return DonorBank(self.patches[keep], self.lips[keep], self.gray[keep])


def teeth_fraction(patch: np.ndarray, lips: np.ndarray) -> float:
    """Share of the inner-lip area clearly brighter than the lips (visible teeth), for lips 48-67 in patch px."""
    inner = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lips[12:20] * 16).astype(np.int32)], 1, shift=4)
    ring = np.zeros_like(inner)
    cv2.fillPoly(ring, [np.round(lips[0:12] * 16).astype(np.int32)], 1, shift=4)
    ring[inner > 0] = 0
    if inner.sum() < 20 or ring.sum() < 20:
        return 0.0
    lum = patch.astype(np.float32).mean(2)
    bright = (inner > 0) & (lum > 1.25 * lum[ring > 0].mean())
    if bright.sum() < 10:
        return 0.0
    # teeth are near-neutral: strongly tinted "teeth" are lighting casts or wrong crops
    sat = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)[..., 1]
    if float(sat[bright].mean()) > 0.3 * 255:
        return 0.0
    return float(bright.sum() / (inner > 0).sum())


def tooth_edges(img: np.ndarray, lips: np.ndarray) -> float:
    """Mean vertical-edge strength among the bright pixels of the inner-lip area, in grey levels:
    |L(x+1) − L(x)| where teeth meet gaps.  A row of separate teeth scores high, a smooth white
    band (model 1.1.0) low; 0 when no part of the opening is bright.  ``lips``: 48-67 in ``img`` px."""
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lips[12:20] * 16).astype(np.int32)], 1, shift=4)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8))
    lum = img.astype(np.float32).mean(2)
    if inner.sum() < 20:
        return 0.0
    bright = (inner > 0) & (lum >= np.percentile(lum[inner > 0], 50))
    dx = np.zeros_like(lum)
    dx[:, :-1] = np.abs(np.diff(lum, axis=1))
    return float(dx[bright].mean()) if bright.sum() >= 10 else 0.0


def mouth_sharpness(patch: np.ndarray, lips: np.ndarray) -> float:
    """Variance of the Laplacian over the inner-lip box: low for blurry (upsampled, compressed) mouths."""
    x0, y0 = np.floor(lips[12:20].min(0)).astype(int)
    x1, y1 = np.ceil(lips[12:20].max(0)).astype(int) + 1
    g = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F)[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    return float(lap.var()) if lap.size else 0.0


def build_donor_bank(crops: np.ndarray, lm68: np.ndarray, gray: np.ndarray, rows: np.ndarray, min_open: float = 0.16,
                     min_teeth: float = 0.4, drop_blurriest: float = 0.5) -> DonorBank:
    """Donor patches from the faces ``rows`` whose inner lips are open by at least ``min_open`` × mouth width
    and show teeth over at least ``min_teeth`` of the opening (no dark cavities, tongues or beards);
    the ``drop_blurriest`` share of them with the least sharp mouths is left out."""
    patches, lips, grays, sharp = [], [], [], []
    for i in rows:
        lm = lm68[i].astype(np.float64)
        width = np.linalg.norm(lm[54] - lm[48])
        if width < 1 or inner_gap(lm) < min_open * width:
            continue
        m = _similarity(lm[[48, 54]], PATCH_CORNERS)
        patch = cv2.warpAffine(np.ascontiguousarray(crops[i]), m, (PATCH_W, PATCH_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        lip = lm[MOUTH] @ m[:, :2].T + m[:, 2]
        if teeth_fraction(patch, lip) < min_teeth:
            continue
        patches.append(patch)
        lips.append(lip)
        grays.append(bool(gray[i]))
        sharp.append(mouth_sharpness(patch, lip))
    keep = np.asarray(sharp) >= np.quantile(sharp, drop_blurriest) if sharp else np.zeros(0, bool)
    return DonorBank(
        np.array(patches, np.uint8).reshape(-1, PATCH_H, PATCH_W, 3)[keep],
        np.array(lips, np.float32).reshape(-1, 20, 2)[keep],
        np.array(grays, bool)[keep],
    )
