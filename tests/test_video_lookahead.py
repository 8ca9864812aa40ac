"""Videos: a face that comes into the picture smiles from the frame it is in, not from the
frame a later detection confirmed it (:mod:`smilecore.video_lookahead`).

The tracker tests use a textured square for a face and a detector told where it is; the clip
test moves the bundled astronaut in from beyond the right edge (:mod:`smilecore.video_synth`).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av", reason="video tests need PyAV: pip install '.[video]' (or '.[test]')")

from smilecore.video import smile_video  # noqa: E402
from smilecore.video_lookahead import INSIDE, LOOKAHEAD_FRAMES, Lookahead, Waiting, faces_now, frames_held  # noqa: E402
from smilecore.video_synth import make_clip, mouth_box  # noqa: E402
from smilecore.video_track import FADE_FRAMES, FaceTracker  # noqa: E402

W, H = 320, 240
LM = np.array([[130, 80], [115, 81], [70, 80], [85, 81], [100, 110]], np.float64)  # in a 200 px square at (0, 0)


def _texture(seed: int, size: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (size // 8, size // 8), np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)


def _frame(tex: np.ndarray, x: int, y: int = 20) -> np.ndarray:
    frame = np.full((H, W), 100, np.uint8)
    th, tw = tex.shape
    x0, x1 = max(0, x), min(W, x + tw)
    if x1 > x0:
        frame[y:y + th, x0:x1] = tex[:, x0 - x:x1 - x]
    return frame


def _run(xs: list[int], seen_from: int, seen_until: int | None = None, need: float = 1.0):
    """The square at xs[i] in frame i; the detector finds it from frame ``seen_from`` (to
    ``seen_until``) where ``need`` of its box is inside the picture.  Returns each frame as it leaves
    the lookahead, the lookahead, the tracker and the frames where the detector found it."""
    tex = _texture(3)
    frames = [_frame(tex, x) for x in xs]
    found: list[int] = []

    def detect(i):
        x = xs[i]
        if i < seen_from or (seen_until is not None and i >= seen_until) or (W - x - 50) / 100 < need:
            return []
        found.append(i)
        return [(LM + [x, 20], (x + 50, 70, x + 150, 170), 0.9)]

    tracker = FaceTracker(detect, async_detect=True)
    la = Lookahead(LOOKAHEAD_FRAMES, FADE_FRAMES)
    out = []
    for i, g in enumerate(frames):
        live = tracker.update(g, i, i / 25)
        la.push(Waiting(i, i / 25, g, tracker.cuts, faces_now(live)))
        for tr in tracker.confirmed_now:
            la.backfill(tr)
        out += la.ready()
    out += la.drain()
    tracker.close()
    return out, la, tracker, found


def test_a_face_walking_in_smiles_from_the_frame_it_is_in():
    # the square walks in from the right at 6 px a frame from frame 5 and stops at x = 60; the detector sees it
    # once 80 % of its box is in the picture (from frame 27; it runs on frames 21 and 28)
    xs = [max(60, W - 6 * (i - 5)) if i >= 5 else W for i in range(70)]
    out, la, tracker, found = _run(xs, seen_from=0, need=0.8)
    (track,) = tracker.all_tracks()
    weights = [(w.face(track).weight if w.face(track) else 0.0) for w in out]
    first = next(i for i, wt in enumerate(weights) if wt > 0)
    # from the first frame where 70 % of its box is inside (box: the detector's 100 px around the landmarks)...
    box_x0 = [x + 50 for x in xs]
    inside = next(i for i, x0 in enumerate(box_x0) if (W - x0) / 100 >= INSIDE)
    assert found[0] == 28 and track.unseen_at == 21 and inside == 25
    assert inside <= first <= inside + 1, (first, inside, found)
    assert track.first_frame == first and la.backfilled >= found[0] - first
    ramp = weights[first:first + FADE_FRAMES]
    assert ramp == sorted(ramp) and ramp[0] < 0.3 and ramp[-1] == 1.0
    assert weights[first + FADE_FRAMES:] == [1.0] * (70 - first - FADE_FRAMES)  # no dip once the tracker takes over
    # the landmarks followed backwards lie on the square
    for i in range(first, 40):
        lm = out[i].face(track).landmarks
        assert np.abs(lm - (LM + [xs[i], 20])).max() < 2.0, (i, lm.mean(0), (LM + [xs[i], 20]).mean(0))


def test_a_face_seen_by_one_detection_is_never_edited():
    # a detector's one-off (frame 28 only): the confirmation does not see it, so no frame gives it a weight
    xs = [60] * 60
    out, la, tracker, found = _run(xs, seen_from=28, seen_until=29)
    assert found == [28]
    assert la.backfilled == 0
    assert all(f.weight == 0.0 for w in out for f in w.faces)


def test_frames_are_held_in_order_and_all_come_out():
    out, la, _, _ = _run([60] * 40, seen_from=0)
    assert [w.index for w in out] == list(range(40)) and len(la) == 0


def test_a_large_frame_holds_fewer_frames_within_the_budget():
    assert frames_held(320 * 240 * 3 // 2) == LOOKAHEAD_FRAMES
    for frame in (3840 * 2160 * 3 // 2, 7680 * 4320 * 3 // 2, 7680 * 4320 * 3):  # 4K; 8K 8-bit, 10-bit 4:2:0
        held = frames_held(frame)  # (and the frame just decoded)
        assert 1 <= held < LOOKAHEAD_FRAMES and (held + 1) * frame <= 256 * 2 ** 20, (frame, held)
    assert frames_held(3840 * 2160 * 3 // 2) == 20 and frames_held(7680 * 4320 * 6) == 1  # 8K 16-bit RGB: one


def test_a_clip_where_she_walks_in_smiles_as_soon_as_she_is_in(picture, model, tmp_path):
    # she walks in from beyond the right edge over frames 10..30; before this change the smile began at frame 35
    clip = make_clip(tmp_path / "walk.mkv", picture, size=(W, H), frames=50, crf=0, face_height=0.95, audio=False,
                     enter=(10, 30))
    res = smile_video(clip.path, tmp_path / "walk.out.mkv", strength=2, model=model, crf=0)
    with av.open(str(clip.path)) as c:
        before = [f.to_ndarray().astype(int) for f in c.decode(video=0)]
    with av.open(str(tmp_path / "walk.out.mkv")) as c:
        after = [f.to_ndarray().astype(int) for f in c.decode(video=0)]
    changed = [int(np.abs(a - b).sum()) for a, b in zip(before, after)]
    first = next(i for i, c in enumerate(changed) if c)
    x0, y0, x1, y1 = mouth_box(picture)
    mouth_in = next(i for i, m in enumerate(clip.matrices) if m[0, 0] * x1 + m[0, 2] < W)  # her whole mouth in view
    assert first <= mouth_in + 3 < 30, (first, mouth_in, changed)
    assert all(c == 0 for c in changed[:first]) and all(c > 0 for c in changed[first:])
    (face,) = res.tracks
    assert face["first_frame"] == first and face["frames_edited"] == 50 - first


def test_a_face_that_walks_in_fast_stays_one_face(picture, model, tmp_path):
    # she crosses a third of the frame in the last frames of her walk (frames 10..18): that is not a cut, so she
    # keeps one index and one record (before: a cut was seen, and she was two faces, the first edited in one frame)
    clip = make_clip(tmp_path / "fast.mkv", picture, size=(W, H), frames=32, crf=0, face_height=0.95, audio=False,
                     enter=(10, 18))
    res = smile_video(clip.path, tmp_path / "fast.out.mkv", strength=2, model=model, crf=0)
    assert len(res.tracks) == 1, res.tracks
    (face,) = res.tracks
    assert face["index"] == 0 and face["edited"] and face["first_frame"] <= 20 and face["last_frame"] == 31, face


def test_no_frame_where_the_detector_ran_and_missed_it_gets_the_face():
    # the square is in the picture throughout, but the detector finds it only from frame 30 on (a face that turns
    # towards the camera): frames up to the last detection that missed it are left as they are
    xs = [60] * 60
    out, la, tracker, found = _run(xs, seen_from=30)
    (track,) = tracker.all_tracks()
    weights = [(w.face(track).weight if w.face(track) else 0.0) for w in out]
    first = next(i for i, wt in enumerate(weights) if wt > 0)
    assert track.unseen_at < found[0] and first == track.unseen_at + 1 == track.first_frame, (first, track.unseen_at, found)
    assert first < found[0] and weights[-1] == 1.0


def test_a_short_lookahead_reports_the_frames_it_edited(picture, model, tmp_path, monkeypatch):
    # an 8K clip holds a few frames only: the face is followed back less far, and its first_frame is still
    # the first frame it was edited in (not the frame the detector found it in)
    import smilecore.video as V

    clip = make_clip(tmp_path / "walk.mkv", picture, size=(W, H), frames=40, crf=0, face_height=0.95, audio=False,
                     enter=(10, 30))
    monkeypatch.setattr(V, "frames_held", lambda *a, **k: 5)
    res = smile_video(clip.path, tmp_path / "walk.out.mkv", strength=2, model=model, crf=0)
    with av.open(str(clip.path)) as c:
        before = [f.to_ndarray().astype(int) for f in c.decode(video=0)]
    with av.open(str(tmp_path / "walk.out.mkv")) as c:
        after = [f.to_ndarray().astype(int) for f in c.decode(video=0)]
    first = next(i for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b))
    (face,) = res.tracks
    assert face["first_frame"] == first and face["frames_edited"] == 40 - first, (face, first)


@pytest.mark.parametrize("held", [1, 4])
def test_with_no_face_coming_in_the_output_does_not_depend_on_the_frames_held(picture, model, tmp_path,
                                                                             monkeypatch, held):
    # a face from frame 0 has nothing to be followed back into: the edits, their smoothing over frames and the
    # tracking are the same however many frames wait (here also where each frame's luma is a copy: 1 and 4 held)
    import smilecore.video as V

    clip = make_clip(tmp_path / "m.mkv", picture, size=(W, H), frames=24, crf=0, face_height=0.9, audio=False,
                     amplitude=(20.0, 8.0), period=1.0)
    smile_video(clip.path, tmp_path / "default.mkv", strength=2, model=model, crf=0)
    monkeypatch.setattr(V, "frames_held", lambda *a, **k: held)
    smile_video(clip.path, tmp_path / "short.mkv", strength=2, model=model, crf=0)
    with av.open(str(tmp_path / "default.mkv")) as a, av.open(str(tmp_path / "short.mkv")) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0)))
    assert len(pairs) == 24 and all(np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in pairs)


def _changed(src, out) -> list[bool]:
    with av.open(str(src)) as a, av.open(str(out)) as b:
        return [not np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in zip(a.decode(video=0), b.decode(video=0))]


def test_a_face_that_vanishes_leaves_no_smile_where_it_was(picture, model, tmp_path):
    # she walks in, then is gone at frame 27 (too little of the picture changes for a cut): optical flow loses her
    # there, so that frame gets no earlier network output (before, it got the last frame's mouth), and the
    # frames after it nothing either (the network sees no face)
    clip = make_clip(tmp_path / "v.mkv", picture, size=(W, H), frames=40, crf=0, face_height=0.95, audio=False,
                     enter=(10, 30), hide=(27, 40))
    res = smile_video(clip.path, tmp_path / "v.out.mkv", strength=2, model=model, crf=0, keep_unchanged=True)
    changed = _changed(clip.path, tmp_path / "v.out.mkv")
    first = changed.index(True)
    assert first < 22 and all(changed[first:27]) and not any(changed[27:]), changed
    (face,) = res.tracks
    assert face["frames_edited"] == 27 - first


def test_a_face_that_came_in_just_before_a_cut_still_smiles_until_it(picture, model, tmp_path):
    # the detection that confirms her was still running when the clip cut to another picture (frame 28): it is
    # applied to the shot it was made on, so she smiles from when she came in to the cut (before: not at all)
    from skimage import data

    clip = make_clip(tmp_path / "c.mkv", picture, size=(W, H), frames=36, crf=0, face_height=0.95, audio=False,
                     enter=(10, 30), cut_to=(28, data.coffee()))
    res = smile_video(clip.path, tmp_path / "c.out.mkv", strength=2, model=model, crf=0)
    changed = _changed(clip.path, tmp_path / "c.out.mkv")
    first = changed.index(True)
    assert first < 22 and all(changed[first:28]) and not any(changed[28:]), changed
    (face,) = res.tracks
    assert face["first_frame"] == first and face["last_frame"] == 27
