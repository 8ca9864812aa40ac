"""Following faces through a video: detect every few frames, track in between, smooth in time.

A :class:`FaceTracker` keeps one :class:`Track` per person.  Between detections each track's
five landmarks move with the face's own pixels: corner points inside the face are followed
with pyramidal Lucas-Kanade optical flow (checked forwards and backwards), and the similarity
transform that best explains their motion (RANSAC) moves the landmarks.  Every few frames
:func:`smilecore.detect_faces` runs again; a detection matched to a track pulls its landmarks
towards the detector's (drift never accumulates), an unmatched one starts a new track.  The
landmarks the engine aligns with are then smoothed by a One-Euro filter (still faces: very
steady; moving faces: little lag).  A face missed by a few detections keeps its track (its
smile does not blink); a track that loses its face fades out over :data:`FADE_FRAMES` frames, a
new one fades in.

Only the public detector (:func:`smilecore.detect_faces` and its :class:`~smilecore.Face`
records) is used, so the tracker works with any detector behind it.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from .strength import facing_share
from .video_cuts import is_cut, thumbnail
from .video_reid import looks_alike, remember, same_person

#: Run the detector on every N-th frame (and whenever no face is tracked, or one is lost).
DETECT_EVERY = 15
#: Frames over which a smile fades in (a face appears) or out (a face leaves).
FADE_FRAMES = 6
#: Consecutive detections that may miss a tracked face before its track ends (and fades out).
MAX_MISSES = 3
#: With a background detector, its result for frame k is used at frame k + DETECT_LAG (waiting
#: for it if needed: the output never depends on how fast the detector was).
DETECT_LAG = 3
#: A new face is confirmed by a second detection this many frames after it was first seen.
CONFIRM_AFTER = 2
#: How far a matched detection pulls a tracked face's landmarks towards its own (0..1).
DETECTION_PULL = 0.4


class OneEuro:
    """One-Euro filter (Casiez et al. 2012) over a numpy array of values, in units of ``scale``.

    ``min_cutoff`` (Hz) sets the smoothing of slow movements, ``beta`` how fast the cutoff
    rises with speed (in ``scale`` units per second), so jitter is removed and fast motion is
    followed with little lag.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        speed = np.abs(self.dx) / max(scale, 1e-6)
        cutoff = self.min_cutoff + self.beta * speed
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.copy()


def _face_size(lm: np.ndarray) -> float:
    """A face's scale from its landmarks: eye-centre distance × 2.5 (close to a detector box side)."""
    right = lm[0:2].mean(0)
    left = lm[2:4].mean(0)
    return float(max(4.0, 2.5 * np.linalg.norm(right - left)))


def _box_of(lm: np.ndarray, size: float) -> tuple[float, float, float, float]:
    cx, cy = lm.mean(0)
    cy += 0.1 * size
    h = size / 2
    return (cx - h, cy - h, cx + h, cy + h)


@dataclass
class Track:
    """One person followed through the clip.

    The face's motion and its shape are kept apart: ``motion`` (3x3) is the product of the
    frame-to-frame similarity transforms optical flow measured, and ``ref`` holds the five
    landmarks in the coordinates of the frame where tracking started.  Landmarks in the current
    frame are ``motion · ref``.  Detections correct ``ref`` (by :data:`DETECTION_PULL`, after
    undoing the motion), and ``ref`` is One-Euro filtered: the face follows the picture
    exactly while its landmarks' detector noise is smoothed away.
    """

    index: int  #: stable face index (faces of the first frame or of a cut's first frame at once, largest first; later ones in order of confirmation; a face that comes back keeps its own); -1 until then
    ref: np.ndarray  #: (5,2) landmarks in tracking coordinates
    size: float  #: face size (detector box side) in tracking coordinates
    score: float
    first_frame: int
    last_frame: int
    weight: float = 1.0  #: fade weight 0..1 (smile strength multiplier, before easing)
    ending: bool = False  #: lost: fading out, removed at weight 0
    confirmed: bool = True  #: seen by two detections: only then edited (faces of a first frame are edited before)
    misses: int = 0  #: consecutive detections that did not see the face
    motion: np.ndarray = field(default_factory=lambda: np.eye(3))
    points: np.ndarray | None = None  #: (K,1,2) float32 feature points (frame pixels) for Lucas-Kanade
    smooth: OneEuro = field(default_factory=OneEuro)
    smoothed: np.ndarray | None = None  #: (5,2) landmarks for this frame (smoothed), frame pixels
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  #: detection box when first seen
    frames_edited: int = 0  #: frames whose pixels the edit changed
    own: float | None = None  #: the smile the face already shows (strength units), as last measured
    frames_tracked: int = 0
    detections: int = 0
    max_size: float = 0.0
    net_state: dict | None = None  #: previous network output (temporal smoothing in crop space)
    share: float = 1.0  #: share of the strength for how squarely it faces the camera (smilecore.strength.facing_share), eased
    share_target: float = 1.0  #: that share as the last detection read it
    max_share: float = 1.0  #: the largest share a detection gave it (0: turned away throughout)
    mouth: float = 1.0  #: share of the strength for a mouth something covered (smilecore.mouth_hidden): 0 while covered, eased back
    mouth_target: float | None = None  #: 1 where the last face-mesh reading saw the mouth, 0 where it read it hidden
    mouth_covered: bool = False  #: whether any reading found the mouth covered
    as_is: float | None = None  #: own strength of the last reading that saw the mouth smile as much as asked already
    unseen_at: int = -1  #: the last frame before its first detection where the detector ran and did not find it
    seen_at: int = -1  #: the last frame where optical flow followed it or a detection found it
    chip: np.ndarray | None = None  #: its face from its first detection, for telling it again (smilecore.video_reid)
    descriptor: np.ndarray | None = None  #: dlib's descriptor of ``chip``, once needed
    earlier: Track | None = None  #: the ended track of the same face that this one continues (same index)
    later: Track | None = None  #: the track that continues this one
    _ref_smooth: np.ndarray | None = None

    @property
    def fade(self) -> float:
        """The eased fade weight (smoothstep)."""
        return smoothstep(self.weight)

    def ease_mouth(self, step: float) -> None:
        """One frame of the mouth's share moving towards what the last face-mesh reading saw
        (the cover taken away: the smile comes back eased).  Called where the frame is edited,
        since that is where the reading is made."""
        if self.mouth_target is not None:
            self.mouth += float(np.clip(self.mouth_target - self.mouth, -step, step))

    @property
    def scale(self) -> float:
        return float(np.sqrt(abs(np.linalg.det(self.motion[:2, :2]))))

    @property
    def landmarks(self) -> np.ndarray:
        """Raw landmarks in the current frame."""
        return self.ref @ self.motion[:2, :2].T + self.motion[:2, 2]

    @property
    def frame_size(self) -> float:
        """Face size in current frame pixels."""
        return self.size * self.scale

    def current_box(self) -> tuple[float, float, float, float]:
        return _box_of(self.landmarks, self.frame_size)


class FaceTracker:
    """Detect-and-track over a sequence of frames; see the module documentation."""

    def __init__(self, detect, detect_every: int = DETECT_EVERY, fade_frames: int = FADE_FRAMES,
                 smooth: bool = True, min_cutoff: float = 0.4, beta: float = 4.0, async_detect: bool = False):
        self.detect = detect  #: function(frame_index) -> list of (landmarks (5,2), box, score[, facing]), largest first
        self.detect_every = max(1, int(detect_every))
        self.fade_frames = max(1, int(fade_frames))
        self.smooth = smooth
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self.next_index = 0
        self.prev_grey: np.ndarray | None = None
        self.detections_run = 0
        self._lost_since_detection = False
        self._last_detection = -10 ** 9
        self.lag = DETECT_LAG if async_detect else 0
        self.pending = None  #: (frame index, future, motion snapshots) of a detection running in the background
        self.wait = 0.0  #: seconds the tracker waited for the detector
        self._pool = None
        self._start = 0  #: the first frame of the current shot (0, or the last cut)
        self._thumb: np.ndarray | None = None
        self.cuts = 0  #: cuts seen
        #: the last frames' luma, so that a face found by a detection of an earlier frame is
        #: followed from that frame to the current one (not placed where it was then)
        self._recent: deque = deque(maxlen=self.lag + 1)
        #: faces confirmed by the last :meth:`update` that were not edited before (faces that
        #: appeared after a shot's first frame): the caller may give them the frames since they appeared
        self.confirmed_now: list[Track] = []
        self._runs: deque = deque(maxlen=8)  #: the frames the detector last ran on

    # ------------------------------------------------------------------ per frame
    def update(self, grey: np.ndarray, frame_index: int, t: float) -> list[Track]:
        """Advance to a new frame (``grey``: (H,W) uint8 luma) at time ``t`` seconds; returns
        the live tracks (fading ones included), each with ``smoothed`` landmarks for this frame."""
        self.confirmed_now = []
        thumb = thumbnail(grey)
        cut = self._thumb is not None and is_cut(self._thumb, thumb)
        self._thumb = thumb
        if cut:
            self._cut(frame_index)
        elif self.prev_grey is not None:
            for tr in self.tracks:
                if not tr.ending:
                    if follow(tr, self.prev_grey, grey):
                        tr.seen_at = frame_index
                    else:
                        self._lose(tr)
        self._recent.append((frame_index, grey))
        live = any(not tr.ending for tr in self.tracks)
        every = self.detect_every if live else max(1, self.detect_every // 2)
        confirm = any(not tr.confirmed and not tr.ending and frame_index - tr.first_frame >= CONFIRM_AFTER
                      for tr in self.tracks)
        if self.pending is not None and frame_index - self.pending[0] >= self.lag:
            k, job, snaps = self.pending
            self.pending = None
            t0 = time.perf_counter()
            found = job.result()
            self.wait += time.perf_counter() - t0
            self._apply(found, k, snaps, grey, frame_index)
        due = frame_index == self._start or frame_index - self._last_detection >= every or self._lost_since_detection or confirm
        if due and self.pending is None:
            self._request(grey, frame_index)
        for tr in self.tracks:
            step = 1.0 / self.fade_frames
            if tr.ending:
                tr.weight = max(0.0, tr.weight - step)
            elif tr.confirmed or tr.weight > 0:
                tr.weight = min(1.0, tr.weight + step)
            tr.share += float(np.clip(tr.share_target - tr.share, -step, step))  # turning away or back: eased
            if not tr.ending:
                tr.last_frame = frame_index
                tr.frames_tracked += 1
            if self.smooth:
                ref = tr.smooth(tr.ref, t, scale=tr.size).reshape(5, 2)
            else:
                ref = tr.ref
            tr.smoothed = ref @ tr.motion[:2, :2].T + tr.motion[:2, 2]
        done = [tr for tr in self.tracks if tr.ending and tr.weight <= 0.0]
        self.finished.extend(done)
        self.tracks = [tr for tr in self.tracks if not (tr.ending and tr.weight <= 0.0)]
        self.prev_grey = grey
        return list(self.tracks)

    def all_tracks(self) -> list[Track]:
        """Every face seen so far, by index: the last track of each (:func:`smilecore.video_reid.chain` gives them all)."""
        return sorted((tr for tr in self.finished + self.tracks if tr.index >= 0 and tr.later is None), key=lambda tr: tr.index)

    # ------------------------------------------------------------------ internals
    def _cut(self, frame_index: int) -> None:
        """A new shot starts at this frame: optical flow does not carry over, a detection of an
        earlier frame no longer applies (it is waited for, then dropped), and the detector runs
        on this frame at once (see :data:`smilecore.video_cuts.CUT_DIFF`).  A detection still running on a frame of the
        shot that ends here is waited for and applied there: it may confirm a face that came in
        just before the cut (the caller's lookahead then gives it its frames)."""
        if self.pending is not None:
            k, job, snaps = self.pending
            self.pending = None
            found = job.result()
            if self.prev_grey is not None:  # (it only confirms: a face it sees for the first time is not followed into the new shot)
                self._apply(found, k, snaps, self.prev_grey, frame_index - 1, new_faces=False)
        for tr in self.tracks:
            tr.points = None
            tr.smooth.reset()  # (a face found again lands on its new place at once, not through a glide)
            tr.net_state = None  # (and its smile is the new shot's at once, not blended with the last shot's)
            if tr.ending:
                tr.weight = 0.0  # a face fading out does not fade over the new shot
        self._start = frame_index
        self.cuts += 1
        self._recent.clear()

    def _lose(self, tr: Track) -> None:
        """Optical flow failed: keep the last landmarks and ask the detector at once."""
        tr.points = None
        if not self._lost_since_detection:
            self._lost_since_detection = True

    def close(self) -> None:
        """Stop the background detector (if any)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _request(self, grey: np.ndarray, frame_index: int) -> None:
        """Run the detector on this frame: at once, or in the background when ``detect`` hands
        back a job and the tracker is asynchronous (its result is used ``lag`` frames later)."""
        self.detections_run += 1
        self._lost_since_detection = False
        self._last_detection = frame_index
        self._runs.append(frame_index)
        job = self.detect(frame_index)
        snaps = {id(tr): tr.motion.copy() for tr in self.tracks if not tr.ending}
        if not callable(job):
            self._apply(job, frame_index, snaps, grey, frame_index)
            return
        if self.lag <= 0 or frame_index == self._start:
            t0 = time.perf_counter()
            found = job()
            self.wait += time.perf_counter() - t0
            self._apply(found, frame_index, snaps, grey, frame_index)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smile-detect")
        self.pending = (frame_index, self._pool.submit(job), snaps)

    def _apply(self, found, k: int, snaps: dict, grey: np.ndarray, frame_index: int, new_faces: bool = True) -> None:
        """Match detections made on frame ``k`` (tracks' motion then: ``snaps``) to the tracks; the
        detections no track matches start new ones (unless ``new_faces`` is false)."""
        live = [tr for tr in self.tracks if not tr.ending and id(tr) in snaps]
        pairs = []
        for ti, tr in enumerate(live):
            m = snaps[id(tr)]
            c = (tr.ref @ m[:2, :2].T + m[:2, 2]).mean(0)
            for di, (lm, box, *_) in enumerate(found):
                d = float(np.linalg.norm(np.asarray(lm).mean(0) - c))
                size = max(tr.frame_size, float(max(box[2] - box[0], box[3] - box[1])))
                if d < 0.5 * size:
                    pairs.append((d / size, ti, di))
        pairs.sort()
        used_t, used_d = set(), set()
        newly: list[Track] = []
        first = k == self._start
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            if first and k > 0 and not looks_alike(live[ti], grey, np.asarray(found[di][0], np.float64)):
                continue  # a cut to another person where this face was: not this face going on
            used_t.add(ti)
            used_d.add(di)
            tr = live[ti]
            lm, box, score, facing = _detection(found[di])
            inv = np.linalg.inv(snaps[id(tr)])
            lm_ref = np.asarray(lm, np.float64) @ inv[:2, :2].T + inv[:2, 2]
            pull = 1.0 if tr.points is None else DETECTION_PULL
            tr.ref = tr.ref + pull * (lm_ref - tr.ref)
            snap_scale = float(np.sqrt(abs(np.linalg.det(snaps[id(tr)][:2, :2]))))
            size_ref = float(max(box[2] - box[0], box[3] - box[1])) / max(snap_scale, 1e-6)
            tr.size = tr.size + pull * (size_ref - tr.size)
            tr.score = float(score)
            tr.share_target = facing
            tr.max_share = max(tr.max_share, facing)
            tr.misses = 0
            tr.detections += 1
            if not tr.confirmed:
                tr.confirmed = True
                if tr.index < 0:
                    newly.append(tr)
                    self.confirmed_now.append(tr)
            tr.max_size = max(tr.max_size, tr.frame_size)
            tr.seen_at = max(tr.seen_at, k)
            seed_points(tr, grey)
        for ti, tr in enumerate(live):
            if ti not in used_t:
                if first and k > 0:  # a cut, and the face is not in the new shot: gone at once
                    tr.ending, tr.weight = True, 0.0
                    continue
                tr.misses += 1
                if tr.misses > MAX_MISSES or not tr.confirmed or (tr.points is None and tr.misses > 1):
                    tr.ending = True  # gone (or a detector's one-off): fade out
        for di, d in enumerate(found):
            if di in used_d or not new_faces:
                continue
            lm, box, score, facing = _detection(d)
            lm = np.asarray(lm, np.float64)
            size = float(max(box[2] - box[0], box[3] - box[1]))
            # a face in the first frame (of the clip, or after a cut) smiles at once, numbered at
            # once (so that --faces 0 is the largest one from frame 0 on), and fades out if the
            # next detection does not confirm it; a later one waits for that confirmation, then fades in
            then = [g for i, g in self._recent if i >= k]
            carry = k < frame_index and len(then) == frame_index - k + 1
            tr = Track(index=-1, ref=lm.copy(), size=size, score=float(score), first_frame=frame_index,
                       last_frame=frame_index, weight=1.0 if first else 0.0, confirmed=False,
                       smooth=OneEuro(self.min_cutoff, self.beta), box=tuple(int(v) for v in box), detections=1, max_size=size,
                       share=facing, share_target=facing, max_share=facing)
            tr.unseen_at = max((i for i in self._runs if self._start <= i < k), default=self._start - 1)
            tr.seen_at = frame_index
            if carry:  # found on frame k: followed from there to this frame, not left where it was then
                seed_points(tr, then[0])
                for before, after in zip(then, then[1:]):
                    if not follow(tr, before, after):
                        break
            seen = next((g for i, g in self._recent if i == k), grey if k == frame_index else None)
            if seen is not None:
                remember(tr, seen, lm)
            seed_points(tr, grey)
            self.tracks.append(tr)
            if first:
                newly.append(tr)
        self._number(newly)  # (confirmations, and a first frame's new faces: after the faces gone here have ended)

    def _number(self, tracks: list[Track]) -> None:
        """Give the tracks without an index an index, larger faces first: the index of an ended face
        that is the same person (:mod:`smilecore.video_reid`), else the next one."""
        for tr in sorted(tracks, key=lambda tr: -tr.size * tr.scale):
            if tr.index >= 0:
                continue
            old = same_person(tr, self._gone(tr))
            if old is not None:  # the same face: it goes on under its index, and its old track stops at once
                tr.index, tr.earlier, old.later = old.index, old, tr
                old.ending, old.weight = True, 0.0
            else:
                tr.index = self.next_index
                self.next_index += 1
        tracks.clear()

    def _gone(self, tr: Track) -> list[Track]:
        """The numbered faces last seen before ``tr`` was first seen (ended, or lost by optical flow) that no
        track has taken up since."""
        held = {t.index for t in self.tracks if t.index >= 0 and not t.ending and t.points is not None}
        gone = self.finished + [t for t in self.tracks if t.ending or t.points is None]
        return [t for t in gone if t.index >= 0 and t.later is None and t is not tr and t.index not in held
                and t.seen_at < tr.first_frame]


def _window(tr: Track, shape: tuple[int, int], grow: float) -> tuple[int, int, int, int]:
    h, w = shape
    x0, y0, x1, y1 = tr.current_box()
    gx, gy = grow * (x1 - x0), grow * (y1 - y0)
    return (max(0, int(x0 - gx)), max(0, int(y0 - gy)), min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy))))


def seed_points(tr: Track, grey: np.ndarray) -> None:
    """Pick the corner points inside the face's box that optical flow will follow."""
    x0, y0, x1, y1 = _window(tr, grey.shape, 0.0)
    tr.points = None
    if x1 - x0 < 8 or y1 - y0 < 8:
        return
    pts = cv2.goodFeaturesToTrack(np.ascontiguousarray(grey[y0:y1, x0:x1]), maxCorners=60, qualityLevel=0.01,
                                  minDistance=max(2.0, tr.frame_size / 20), blockSize=5)
    if pts is not None and len(pts) >= 6:
        tr.points = (pts.reshape(-1, 1, 2) + np.array([x0, y0], np.float32)).astype(np.float32)


def follow(tr: Track, prev: np.ndarray, cur: np.ndarray) -> bool:
    """Move a track from frame ``prev`` to frame ``cur`` (either way in time) by the motion of its
    points; False where optical flow lost the face (too few points agree) or the face left the picture."""
    if tr.points is None or len(tr.points) < 6:
        seed_points(tr, prev)
    if tr.points is None:
        return False
    # optical flow on a window around the face only (pyramids of the whole frame cost too much)
    x0, y0, x1, y1 = _window(tr, prev.shape, 0.6)
    off = np.array([x0, y0], np.float32)
    a = np.ascontiguousarray(prev[y0:y1, x0:x1])
    b = np.ascontiguousarray(cur[y0:y1, x0:x1])
    p0 = tr.points - off
    win = int(np.clip(tr.frame_size / 8, 9, 31)) | 1
    params = dict(winSize=(win, win), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, **params)
    if nxt is None:
        return False
    back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, None, **params)
    err = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
    good = (st.ravel() == 1) & (st2.ravel() == 1) & (err < max(0.5, tr.frame_size / 100))
    if good.sum() < 6:
        return False
    q0, q1 = p0[good].reshape(-1, 2) + off, nxt[good].reshape(-1, 2) + off
    m, inl = cv2.estimateAffinePartial2D(q0, q1, method=cv2.RANSAC, ransacReprojThreshold=max(1.0, tr.frame_size / 60))
    if m is None or inl is None or inl.sum() < 6:
        return False
    tr.motion = np.vstack([m, [0, 0, 1]]) @ tr.motion
    tr.points = q1[inl.ravel() == 1].reshape(-1, 1, 2).astype(np.float32)
    h, w = cur.shape
    cx, cy = tr.landmarks.mean(0)
    fs = tr.frame_size
    return -0.25 * fs < cx < w + 0.25 * fs and -0.25 * fs < cy < h + 0.25 * fs  # (outside: it has left the picture)


def smoothstep(w: float) -> float:
    """A fade weight 0..1 eased at both ends."""
    w = min(1.0, max(0.0, w))
    return w * w * (3 - 2 * w)


def _detection(found) -> tuple:
    """(landmarks, box, score, the share of the strength its facing allows) of one detection:
    (landmarks, box, score[, facing]) (a detection without ``facing`` faces the camera)."""
    lm, box, score = found[:3]
    return lm, box, score, float(facing_share(found[3] if len(found) > 3 else 1.0))
