"""Videos: a face that leaves and comes back keeps its index (:mod:`smilecore.video_reid`), so that
``--faces 0`` and ``largest`` go on smiling the same person.

The tracker tests use textured squares for faces, a detector told where they are, and a stand-in
for dlib's descriptor that tells the two textures apart; the clip test hides the bundled astronaut
for a while (:mod:`smilecore.video_synth`) and uses the real descriptor.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av", reason="video tests need PyAV: pip install '.[video]' (or '.[test]')")

import smilecore.video_reid as reid  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_synth import make_clip, mouth_box  # noqa: E402
from smilecore.video_track import FaceTracker  # noqa: E402

W, H = 480, 240
LM = np.array([[130, 80], [115, 81], [70, 80], [85, 81], [100, 110]], np.float64)  # in a 200 px square at (0, 0)


def _texture(seed: int, lift: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 160, (25, 25)).astype(np.uint8) + np.uint8(lift)
    return cv2.resize(small, (200, 200), interpolation=cv2.INTER_CUBIC)


FACES = {"a": _texture(3, 0), "b": _texture(5, 90)}  # two people: the stand-in descriptor reads their brightness


@pytest.fixture
def by_brightness(monkeypatch):
    monkeypatch.setattr(reid, "chip_descriptor", lambda chip: np.array([float(np.mean(chip)) / 40.0]))


def _track(scenes: list[dict[str, int]], backgrounds: list[int] | None = None):
    """Frame i shows the people of ``scenes[i]`` ({name: x}) over a background of level ``backgrounds[i]`` (100);
    the detector finds each of them. Returns the tracker."""
    def frame(i, scene):
        f = np.full((H, W), 100 if backgrounds is None else backgrounds[i], np.uint8)
        for name, x in scene.items():
            f[20:220, x:x + 200] = FACES[name]
        return f

    def detect(i):
        return [(LM + [x, 20], (x + 50, 70, x + 150, 170), 0.9) for x in scenes[i].values()]

    tracker = FaceTracker(detect)
    for i, scene in enumerate(scenes):
        tracker.update(frame(i, scene), i, i / 25)
    tracker.close()
    return tracker


def test_a_face_that_leaves_and_comes_back_keeps_its_index(by_brightness):
    tracker = _track([{"a": 20}] * 20 + [{}] * 20 + [{"a": 260}] * 30)
    (face,) = tracker.all_tracks()
    parts = reid.chain(face)
    assert face.index == 0 and len(parts) == 2 and parts[1] is face and parts[0].later is face
    assert parts[0].last_frame <= 20 and 40 <= face.first_frame and tracker.next_index == 1


def test_a_face_that_jumps_where_optical_flow_loses_it_keeps_its_index(by_brightness):
    # found again elsewhere while its old track was still only lost (not yet ended): before, a new index
    tracker = _track([{"a": 20}] * 15 + [{"a": 260}] * 30)
    (face,) = tracker.all_tracks()
    assert face.index == 0 and len(reid.chain(face)) == 2 and tracker.next_index == 1


def test_another_face_after_it_gets_a_new_index(by_brightness):
    tracker = _track([{"a": 20}] * 20 + [{}] * 20 + [{"b": 260}] * 30)
    first, second = tracker.all_tracks()
    assert (first.index, second.index) == (0, 1) and second.earlier is None and first.later is None


def test_the_same_face_after_a_cut_keeps_its_index_too(by_brightness):
    # a cut to a shot of her from elsewhere (a new background, another place), then back
    scenes = [{"a": 20}] * 20 + [{"b": 240}] * 10 + [{"a": 200}] * 20
    tracker = _track(scenes, backgrounds=[0] * 20 + [60] * 10 + [160] * 20)
    assert tracker.cuts >= 2
    first, second = tracker.all_tracks()
    assert (first.index, second.index) == (0, 1) and len(reid.chain(first)) == 2


def test_a_cut_to_another_person_at_the_same_place_is_another_face(by_brightness):
    # shot / reverse shot of two close-ups: before, b went on as face 0 (found where a had been)
    tracker = _track([{"a": 140}] * 20 + [{"b": 140}] * 20, backgrounds=[0] * 20 + [200] * 20)
    assert tracker.cuts == 1
    first, second = tracker.all_tracks()
    assert (first.index, second.index) == (0, 1) and first.last_frame == 19 and second.first_frame == 20


def test_two_faces_in_the_same_frames_are_never_one(by_brightness, monkeypatch):
    # even where the descriptor cannot tell them apart: b comes in while a is still there
    monkeypatch.setattr(reid, "chip_descriptor", lambda chip: np.zeros(1))
    tracker = _track([{"a": 20}] * 20 + [{"a": 20, "b": 260}] * 30)
    first, second = tracker.all_tracks()
    assert (first.index, second.index) == (0, 1) and second.earlier is None


def test_the_nearest_ended_face_within_the_distance_is_taken():
    class T:
        def __init__(self, d, earlier=None):
            self.chip, self.descriptor, self.earlier = np.zeros((2, 2), np.uint8), np.array([d]), earlier

    new, near, far = T(0.0), T(0.3), T(0.45)
    assert reid.same_person(new, [far, near]) is near
    assert reid.same_person(new, [T(reid.REID_DISTANCE + 0.01)]) is None
    assert reid.same_person(T(0.0), []) is None
    # a face seen twice already is as near as the nearest of its appearances (not only its last)
    back = T(0.9, earlier=T(0.2))
    assert reid.same_person(new, [near, back]) is back and reid.chain(back)[1] is back


def test_a_face_back_while_its_old_track_still_fades_is_edited_once_a_frame(picture, model, tmp_path):
    # hidden for 7 frames only: the old track was still fading out when she came back, and both were edited
    # (frames_edited counted 36 for 33 changed frames)
    clip = make_clip(tmp_path / "blink.mkv", picture, frames=40, hide=(15, 22), crf=0, face_height=0.65,
                     still_after=0, audio=False)
    out = tmp_path / "blink.out.mkv"
    res = smile_video(clip.path, out, strength=2, model=model, crf=0, faces="largest")
    (face,) = res.tracks
    with av.open(str(clip.path)) as a, av.open(str(out)) as b:
        changed = [not np.array_equal(u.to_ndarray(), v.to_ndarray()) for u, v in zip(a.decode(video=0), b.decode(video=0))]
    assert face["index"] == 0 and face["frames_edited"] == sum(changed) and all(changed[25:]), (face, changed)


def test_a_clip_where_she_leaves_and_comes_back_smiles_her_with_faces_largest(picture, model, tmp_path):
    # she is gone on frames 15..34: before, she came back as face 1, and --faces largest (0) left her as she was
    clip = make_clip(tmp_path / "back.mkv", picture, frames=50, hide=(15, 35), crf=0, face_height=0.95, audio=False)
    out = tmp_path / "back.out.mkv"
    res = smile_video(clip.path, out, strength=2, model=model, crf=0, faces="largest")
    (face,) = res.tracks
    assert face["index"] == 0 and face["first_frame"] == 0 and face["last_frame"] == 49, face
    with av.open(str(clip.path)) as a, av.open(str(out)) as b:
        before = [f.to_ndarray().astype(int) for f in a.decode(video=0)]
        after = [f.to_ndarray().astype(int) for f in b.decode(video=0)]
    x0, y0, x1, y1 = mouth_box(picture)
    changed = []
    for m, u, v in zip(clip.matrices, before, after):
        (ax0, ay0), (ax1, ay1) = m[:, :2] @ [x0, y0] + m[:, 2], m[:, :2] @ [x1, y1] + m[:, 2]
        changed.append(float(np.abs(u[int(ay0):int(ay1) + 1, int(ax0):int(ax1) + 1] - v[int(ay0):int(ay1) + 1, int(ax0):int(ax1) + 1]).mean()))
    assert min(changed[:15]) > 3.0 and min(changed[42:]) > 3.0, changed  # smiling before she left, and once back
    assert face["frames_edited"] == sum(1 for u, v in zip(before, after) if not np.array_equal(u, v))
