"""Frames held back until the tracker has seen what follows them.

A detector that runs every few frames, and a second detection that confirms a new face, find a
face that walks into the picture some frames after it appeared (up to about 20).  Frames wait
in a :class:`Lookahead` for that long before they are edited; when a face is confirmed, the
frames still waiting get it too: from the frame it was first found back to where optical
flow, run backwards, sees it come into the picture.  So the face smiles from the frame it is
(mostly) in the picture, fading in over the tracker's fade; never in or before a frame where the
detector ran and did not find it (a face that turns towards the camera is not edited while it
was still turned away).  A face seen by one detection only (a false detection) is still never
edited.

What a waiting frame knows of each face is a :class:`FaceAt`: its landmarks, fade weight,
facing share and size in that frame, as the tracker had them then.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .video_track import Track, follow, smoothstep

#: Frames held back at most (about one second at 25 fps): a face confirmed within this many
#: frames of appearing smiles from its first frame.
LOOKAHEAD_FRAMES = 24
#: Memory the held frames may take at most (bytes): a 4K clip holds fewer frames than a small one, an
#: 8K one a few (one at least).
LOOKAHEAD_BYTES = 256 * 2 ** 20
#: A face followed backwards must keep this share of its box inside the picture to be edited there.
INSIDE = 0.7


@dataclass
class FaceAt:
    """One face in one waiting frame."""

    track: Track
    landmarks: np.ndarray  #: (5,2) smoothed landmarks in this frame
    weight: float  #: fade weight 0..1 (before easing)
    share: float  #: share of the strength for its facing
    size: float  #: face size in this frame's pixels
    lost: bool = False  #: optical flow lost it on the way to this frame (it may have gone, or something passed in front)

    @property
    def fade(self) -> float:
        """The eased fade weight."""
        return smoothstep(self.weight)


@dataclass
class Waiting:
    """A decoded frame waiting for its edit."""

    index: int  #: frame number from 0
    t: float  #: seconds from the stream's start
    grey: np.ndarray  #: 8-bit luma as decoded (not edited while it waits)
    shot: int  #: cuts seen before it: faces are not followed across a cut
    faces: list[FaceAt]
    frame: object = None  #: whatever the caller needs to edit and encode it

    def face(self, tr: Track) -> FaceAt | None:
        """This frame's record of a track, if it has one."""
        return next((f for f in self.faces if f.track is tr), None)


def faces_now(tracks: list[Track]) -> list[FaceAt]:
    """The tracker's live tracks as this frame sees them."""
    return [FaceAt(tr, tr.smoothed.copy(), tr.weight, tr.share, tr.frame_size, lost=tr.points is None)
            for tr in tracks if tr.smoothed is not None]


def frames_held(frame_bytes: int, wanted: int = LOOKAHEAD_FRAMES, budget: int = LOOKAHEAD_BYTES) -> int:
    """How many frames of ``frame_bytes`` each to hold back: ``wanted``, fewer where they (and the
    frame just decoded) would take more than ``budget``, never fewer than one."""
    return max(1, min(wanted, budget // max(1, frame_bytes) - 1))


def _inside(tr: Track, shape: tuple[int, int]) -> float:
    """The share of a track's box inside a picture of ``shape`` (H, W)."""
    x0, y0, x1, y1 = tr.current_box()
    h, w = shape
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    return max(0.0, min(x1, w) - max(x0, 0)) * max(0.0, min(y1, h) - max(y0, 0)) / area


class Lookahead:
    """The frames waiting for their edit, oldest first."""

    def __init__(self, frames: int, fade_frames: int):
        self.frames = max(0, int(frames))
        self.fade_frames = max(1, int(fade_frames))
        self.held: deque[Waiting] = deque()
        self.backfilled = 0  #: frames given to faces before their first detection

    def __len__(self) -> int:
        return len(self.held)

    def push(self, w: Waiting) -> None:
        """A frame the tracker has just seen."""
        self.held.append(w)

    def ready(self) -> list[Waiting]:
        """The frames that have waited long enough (call after :meth:`push` and :meth:`backfill`)."""
        out = []
        while len(self.held) > self.frames:
            out.append(self.held.popleft())
        return out

    def drain(self) -> list[Waiting]:
        """Every frame still waiting (the clip has ended)."""
        out = list(self.held)
        self.held.clear()
        return out

    def backfill(self, tr: Track) -> int:
        """A face just confirmed: give it the waiting frames since it came into the picture, fading
        in from the first of them.  Sets the track's own fade weight to go on from there; returns
        how many frames before its first record it was followed back."""
        held = self.held
        pos = next((i for i, w in enumerate(held) if w.face(tr) is not None), None)
        if pos is None:
            return 0
        at = held[pos].face(tr)
        probe = Track(index=-1, ref=at.landmarks.copy(), size=at.size, score=0.0, first_frame=0, last_frame=0)
        j = pos
        # (not into a frame the detector ran on without finding it, nor past it: the face was turned away,
        # hidden or too far out of the picture there)
        while j > 0 and held[j - 1].shot == held[pos].shot and held[j - 1].index > tr.unseen_at:
            if not follow(probe, held[j].grey, held[j - 1].grey) or _inside(probe, held[j - 1].grey.shape) < INSIDE:
                break
            held[j - 1].faces.append(FaceAt(tr, probe.landmarks.copy(), 0.0, at.share, probe.frame_size))
            j -= 1
        k = 0
        for w in list(held)[j:]:
            f = w.face(tr)
            if f is None or w.shot != held[pos].shot:  # (confirmed by a detection from before a cut: up to it)
                break
            k += 1
            f.weight = max(f.weight, min(1.0, k / self.fade_frames))
        if not tr.ending:
            tr.weight = max(tr.weight, min(1.0, k / self.fade_frames))
        tr.first_frame = held[j].index  # (its first record: the frames from here on are the ones it is edited in)
        self.backfilled += pos - j
        return pos - j

