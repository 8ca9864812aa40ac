"""A face that leaves a video and comes back keeps its index.

The tracker numbers each face once it is confirmed (:mod:`smilecore.video_track`).  A face that
leaves the picture (or is hidden, or turns away) ends its track; when it comes back, a new track
starts.  So that ``--faces 0`` (and ``largest``) stays the same person throughout, a newly
numbered track is compared with the tracks that have ended (or that optical flow lost, since before it
appeared) and not been taken up again: if dlib's
face recognition network (:func:`smilecore.dlib_models.chip_descriptor`) puts the two faces within
:data:`REID_DISTANCE`, the new track takes the old one's index and continues its record
(:func:`chain`).  Two faces seen in the same frame are never the same person.  At a cut, a face found
where a tracked face was is taken for it unless the two are clearly different people
(:func:`looks_alike`, :data:`DIFFERENT_FROM`).

Each track keeps the grey chip of its face from its first detection (:func:`remember`, 22 KB, about
0.5 ms); the descriptors are computed only when there is an ended track to compare with, or a face to
check at a cut (about 73 ms each on the 2-core machine here).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .dlib_models import chip_descriptor, face_chip


class Track(Protocol):
    """What this module reads and writes of a :class:`smilecore.video_track.Track`."""

    chip: np.ndarray | None
    descriptor: np.ndarray | None
    earlier: Track | None

#: Two chips whose descriptors are at most this far apart are of the same person.  dlib's own
#: threshold is 0.6.  Measured on grey chips of faces whose eyes are 10–60 px apart (forty-first
#: session; 40 people, three photos each, taken on different days): 64–80 % of the same person's
#: pairs within 0.5 (64 % at 10 px, 70 % at 12–14, 78–80 % from 20) and none of the 780 pairs of
#: different people (the closest 0.509–0.532); within 0.55, 0.1–1.0 % of the different people's
#: pairs.  Within one clip, a face is usually closer to itself.
REID_DISTANCE = 0.5
#: At a cut, a face found where a tracked one was goes on as that face unless their descriptors are
#: further apart than this (dlib's own threshold): a cut from one person's close-up to another's.  (In
#: the measurement above, 2 % of the same person's pairs are further apart from 14 px between the eyes,
#: 6 % at 12 px and 9 % at 10 px; 1.4–3.7 % of different people's pairs are nearer.)
DIFFERENT_FROM = 0.6
#: Faces whose eyes are closer than this (pixels) are not told apart: the descriptors of the same
#: person drift towards the thresholds (0.12 apart at 30 px, 0.29 at 12, 0.47–0.56 at 5–7 on the sample).
MIN_EYES = 10.0


def _eyes(landmarks5: np.ndarray) -> float:
    pts = np.asarray(landmarks5, np.float64)
    return float(np.linalg.norm(pts[0:2].mean(0) - pts[2:4].mean(0)))


def remember(tr: Track, grey: np.ndarray, landmarks5: np.ndarray) -> None:
    """Keep ``tr``'s face chip from a frame's luma and the face's five landmarks in it (once; not for a
    face whose eyes are under :data:`MIN_EYES` apart)."""
    if tr.chip is None and _eyes(landmarks5) >= MIN_EYES:
        try:
            tr.chip = face_chip(grey, landmarks5)
        except (RuntimeError, ValueError, OverflowError):  # (a degenerate shape: the face is not remembered)
            tr.chip = None


def _descriptor(tr: Track) -> np.ndarray | None:
    if tr.descriptor is None and tr.chip is not None:
        tr.descriptor = chip_descriptor(tr.chip)
    return tr.descriptor


def same_person(new: Track, candidates: list[Track], distance: float = REID_DISTANCE) -> Track | None:
    """The candidate (an ended track) whose face is nearest to ``new``'s, if within ``distance``; None
    when there is none, or ``new`` has no chip.  A candidate that continues earlier tracks is as near
    as the nearest of them (the face as it looked at each of its appearances)."""
    if new.chip is None or not candidates:
        return None
    mine = _descriptor(new)
    best, best_d = None, distance
    for old in candidates:
        for part in chain(old):
            theirs = _descriptor(part)
            if theirs is None:
                continue
            d = float(np.linalg.norm(mine - theirs))
            if d <= best_d:
                best, best_d = old, d
    return best


def looks_alike(tr: Track, grey: np.ndarray, landmarks5: np.ndarray, distance: float = DIFFERENT_FROM) -> bool:
    """Whether the face at ``landmarks5`` in ``grey`` may be ``tr``'s: False only where both faces can be
    read and are further apart than ``distance`` (a cut from one person to another at the same place)."""
    if tr.chip is None or _eyes(landmarks5) < MIN_EYES:
        return True
    try:
        chip = face_chip(grey, landmarks5)
    except (RuntimeError, ValueError, OverflowError):
        return True
    return float(np.linalg.norm(_descriptor(tr) - chip_descriptor(chip))) <= distance


def chain(tr: Track) -> list[Track]:
    """The tracks that make up one face's record, first to last (``tr`` and those it continues)."""
    out = [tr]
    while out[0].earlier is not None:
        out.insert(0, out[0].earlier)
    return out
