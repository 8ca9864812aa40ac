"""Which way up a face is: dlib's HOG detector, which sees only upright faces, judges BlazeFace's
detections on views of the photo turned upright (:func:`hog`); a face BlazeFace read in a wrong
orientation, or far from upright, is read again on turned views (:func:`reread`).
smilecore.detect decides when (docs/architecture.md, Which way up)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .align import Alignment, apply_affine, extract_crop, invert_affine
from .dlib_models import HOG_CONFIRM_CONTEXT, HOG_CONFIRM_MIN, HOG_CONFIRM_VIEW, hog_score
from .landmarks import Detection, hog_like_box
from .video_rotate import unrotate_points

#: Faces whose keypoints BlazeFace places more than this far from upright (degrees) are read again
#: (:func:`reread`), on views of REREAD_VIEW pixels holding REREAD_CONTEXT box sides; BlazeFace's own
#: probability threshold for what a view shows is REREAD_MIN.
REREAD_DEG = 30.0
REREAD_VIEW = 128
REREAD_CONTEXT = 1.6
REREAD_MIN = 0.5


@dataclass(frozen=True)
class Pixels:
    """The photo and the detection copy (the photo scaled by ``f``): a view of a face is cut from
    the copy when the face is large enough there, else from the photo itself (a small face of a
    large photo is a few pixels in the copy)."""

    photo: np.ndarray
    copy: np.ndarray

    @property
    def f(self) -> float:
        return self.copy.shape[1] / self.photo.shape[1]

    def source(self, side: float, need: float) -> tuple[np.ndarray, float]:
        """(image, its scale from photo pixels) for a view in which a face of ``side`` photo pixels
        should be ``need`` pixels: the copy unless it would enlarge the face more than twice (cutting
        from the photo costs an area-averaged shrink of the face's part of it)."""
        return (self.copy, self.f) if side * self.f >= need / 2 else (self.photo, 1.0)


def hog(px: Pixels, det: Detection, turn: float = 0.0) -> float:
    """dlib's HOG score of ``det`` (photo pixels) on a view turned upright as BlazeFace turned it,
    and ``turn`` degrees more (:func:`smilecore.dlib_models.hog_score`: NaN when too small)."""
    centre, side, _ = hog_like_box(det)
    side = max(side, det.side)  # a face read in a wrong orientation can give a small box
    image, g = px.source(side, HOG_CONFIRM_VIEW / HOG_CONFIRM_CONTEXT)
    return hog_score(image, centre * g, side * g, det.roll + turn)


def reread(net, px: Pixels, det: Detection) -> Detection:
    """``det`` (photo pixels) read again on views turned by its roll and by a quarter, half and three
    quarters of a turn more, in one batch. BlazeFace places keypoints best near upright (a face
    turned a quarter turn reads 15–55° off, turned upright by that within a few degrees), and reads
    some faces turned 100–300° in a wrong orientation. The view turned by its roll gives the
    keypoints, unless another reads as a surer face and dlib's HOG detector agrees
    (:func:`upright_view`); unchanged when no view has a face, or only others HOG does not see."""
    s = REREAD_VIEW
    image, g = px.source(det.side, s / REREAD_CONTEXT)
    c = (np.array(det.box[:2]) + np.array(det.box[2:])) / 2 * g
    views, alignments = [], []
    for turn in (0.0, 90.0, 180.0, 270.0):
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), det.roll + turn, s / (det.side * g * REREAD_CONTEXT))
        m[:, 2] += s / 2 - c
        alignments.append(Alignment(matrix=m, inverse=invert_affine(m), size=s))
        views.append(extract_crop(image, alignments[-1], border=cv2.BORDER_CONSTANT))
    read = []
    for al, (boxes, kps, prob) in zip(alignments, net.run(np.stack(views), REREAD_MIN)):
        centred = np.abs((boxes[:, :2] + boxes[:, 2:]) / 2 / s - 0.5).max(1) < 0.2 if len(prob) else np.zeros(0, bool)
        i = int(np.argmax(np.where(centred, prob, -1.0))) if centred.any() else -1
        read.append(Detection(box=det.box, keypoints=apply_affine(al.inverse, kps[i]) / g, score=float(prob[i])) if i >= 0 else None)
    own = read[0]
    others = sorted((r for r in read[1:] if r is not None and (own is None or r.score > own.score)), key=lambda r: -r.score)
    if others and upright_view(px, others[0], own):
        own = others[0]
    elif own is None:
        return det
    elif abs(det.roll) <= REREAD_DEG and abs((own.roll - det.roll + 180.0) % 360.0 - 180.0) <= REREAD_DEG / 2:
        return det  # near upright, and read so again: BlazeFace's own keypoints stand
    return Detection(box=det.box, keypoints=own.keypoints, score=det.score)


def upright_view(px: Pixels, other: Detection, own: Detection | None) -> bool:
    """Whether dlib's HOG detector sees a face (at least :data:`HOG_CONFIRM_MIN`) as ``other``
    turns it, and better than as ``own`` does."""
    theirs = hog(px, other)
    if not theirs >= HOG_CONFIRM_MIN:
        return False
    return own is None or not hog(px, own) >= theirs


def upside_down(px: Pixels, det: Detection) -> bool:
    """Whether dlib's HOG detector sees the face of ``det`` better turned half a turn than as
    BlazeFace placed it."""
    turned = hog(px, det, 180.0)  # most faces: −inf, and done
    return turned >= HOG_CONFIRM_MIN and not hog(px, det) >= turned


def photo_turn(found: list[Detection], tolerance: float) -> int:
    """The counter-clockwise quarter turns (as ``np.rot90``) that stand a photo's faces upright, when
    at least two and more than half of them read turned by the same quarter turn (within
    ``tolerance`` degrees); else 0. One turned face alone is read again on turned views
    (:func:`reread`): searching the whole photo again would find nothing more."""
    votes = [round(d.roll / 90.0) % 4 for d in found if abs(d.roll - 90.0 * round(d.roll / 90.0)) <= tolerance]
    votes = [q for q in votes if q]
    if not votes:
        return 0
    q = max(set(votes), key=votes.count)
    return q if votes.count(q) >= 2 and 2 * votes.count(q) > len(found) else 0


def turned_back(det: Detection, quarters: int, w: int, h: int) -> Detection:
    """A detection of the photo (``w`` × ``h``) turned ``quarters`` quarter turns (``np.rot90``), in the
    photo's own pixels (box corners are pixel edges, keypoints pixel centres)."""
    corners = unrotate_points(np.array([det.box[:2], det.box[2:]], np.float64) - 0.5, quarters, (h, w)) + 0.5
    return Detection(box=tuple(float(v) for v in np.concatenate([corners.min(0), corners.max(0)])),
                     keypoints=unrotate_points(det.keypoints, quarters, (h, w)), score=det.score)
