"""Videos: the first frames, cuts between shots, and what the report says of a face left as it is.

Clips are made here from the bundled astronaut (:mod:`smilecore.video_synth`); lossless where a
test compares pixels.  Needs PyAV (``pip install ".[test]"``).
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

av = pytest.importorskip("av", reason="video tests need PyAV: pip install '.[video]' (or '.[test]')")

from cli.main import cli  # noqa: E402
from smilecore.errors import UsageError  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_synth import make_clip, mouth_box  # noqa: E402
from smilecore.video_cuts import CUT_THUMB, is_cut  # noqa: E402
from smilecore.video_track import FaceTracker  # noqa: E402

SIZE = (320, 240)


def planes(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray().astype(int) for f in c.decode(video=0)]


def mouth_change(picture, clip, before, after) -> list[float]:
    """Mean absolute change of the luma in each frame's mouth box."""
    x0, y0, x1, y1 = mouth_box(picture)
    out = []
    for i, (a, b) in enumerate(zip(before, after)):
        m = clip.matrices[i]
        (ax0, ay0), (ax1, ay1) = m[:, :2] @ [x0, y0] + m[:, 2], m[:, :2] @ [x1, y1] + m[:, 2]
        ys, xs = slice(int(ay0), int(ay1) + 1), slice(int(ax0), int(ax1) + 1)
        out.append(float(np.abs(a[ys, xs] - b[ys, xs]).mean()))
    return out


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_a_clip_of_a_few_frames_smiles_in_every_frame(frames, picture, model, tmp_path):
    # the face of the first frame is confirmed by a detection a few frames later; a clip that ends
    # before that is still edited (it was reported as "no face" before)
    clip = make_clip(tmp_path / "short.mkv", picture, size=SIZE, frames=frames, crf=0, face_height=0.95, audio=False)
    res = smile_video(clip.path, tmp_path / "short.out.mkv", strength=2, model=model, crf=0)
    assert res.frames == frames and res.faces_edited == 1 and res.tracks[0]["frames_edited"] == frames
    changed = mouth_change(picture, clip, planes(clip.path), planes(tmp_path / "short.out.mkv"))
    assert min(changed) > 3.0, changed


def test_a_chosen_face_smiles_from_the_first_frame(picture, model, tmp_path):
    # --faces 0 is the largest face of the first frame, from that frame on (not from the confirmation on)
    clip = make_clip(tmp_path / "c.mkv", picture, size=SIZE, frames=12, crf=0, face_height=0.95, audio=False)
    before = planes(clip.path)
    for faces in ("all", [0], "largest"):
        out = tmp_path / f"c-{faces}.mkv"
        res = smile_video(clip.path, out, strength=2, model=model, crf=0, faces=faces)
        changed = mouth_change(picture, clip, before, planes(out))
        assert min(changed) > 3.0 and res.tracks[0]["frames_edited"] == 12, (faces, changed)
    with pytest.raises(UsageError, match="face index 1 does not exist"):
        smile_video(clip.path, tmp_path / "c-1.mkv", strength=2, model=model, crf=0, faces=[1])
    assert not (tmp_path / "c-1.mkv").exists()


def test_a_cut_ends_the_smile_at_once(picture, model, tmp_path):
    # a hard cut at frame 20 to a shot without her: no smile is left behind on the new shot
    clip = make_clip(tmp_path / "cut.mkv", picture, size=SIZE, frames=32, crf=0, face_height=0.95, hide=(20, 32),
                     audio=False)
    out = tmp_path / "cut.out.mkv"
    res = smile_video(clip.path, out, strength=3, model=model, crf=0)
    before, after = planes(clip.path), planes(out)
    assert min(mouth_change(picture, clip, before[:20], after[:20])) > 3.0
    for i in range(20, 32):
        assert np.array_equal(before[i], after[i]), i
    (face,) = res.tracks
    assert face["last_frame"] == 19 and face["frames_edited"] == 20


def _textured(seed: int, shape=(240, 320)) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (shape[0] // 8, shape[1] // 8), np.uint8), shape[::-1],
                      interpolation=cv2.INTER_CUBIC)


LM = np.array([[130, 80], [115, 81], [70, 80], [85, 81], [100, 110]], np.float64)


def test_after_a_cut_the_new_shots_face_smiles_at_once_and_the_old_one_is_gone(monkeypatch):
    import smilecore.video_track as track

    monkeypatch.setattr(track, "same_person", lambda new, gone: None)  # another person (dlib reads the textures alike)
    shot_a, shot_b = _textured(0), _textured(1)
    where = {"a": (0, 0), "b": (120, 60)}

    def detect(i):
        x, y = where["a" if i < 20 else "b"]
        return [(LM + [x, y], (x + 50, y + 50, x + 150, y + 150), 0.9)]

    tr = FaceTracker(detect, detect_every=12, async_detect=True)
    seen = []
    for i in range(40):
        live = tr.update(shot_a if i < 20 else shot_b, i, i / 25)
        seen.append([(t.index, round(t.fade, 3), tuple(np.round(t.smoothed.mean(0)))) for t in live if t.fade > 0])
    tr.close()
    assert tr.cuts == 1
    assert all(s == [(0, 1.0, tuple(np.round(LM.mean(0))))] for s in seen[:20])
    # from the cut on: only the new shot's face, at full strength, at its own place
    b = tuple(np.round(LM.mean(0) + where["b"]))
    assert all(s == [(1, 1.0, b)] for s in seen[20:]), seen[20:24]


def test_cuts_are_told_from_pans_zooms_and_flashes():
    import cv2
    from skimage import data

    from portrait import neutral_astronaut

    def frame(picture, x, y, scale):  # a 640 x 360 view of a picture
        grey = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2GRAY)
        m = np.array([[scale, 0, x], [0, scale, y]], np.float64)
        return cv2.warpAffine(grey, m, (640, 360), borderValue=120)

    def thumb(f):
        return cv2.resize(f, CUT_THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)

    her = neutral_astronaut()
    a = thumb(frame(her, 0, -100, 1.2))
    assert not is_cut(a, thumb(frame(her, 8, -100, 1.2)))  # a pan
    assert not is_cut(a, thumb(frame(her, 60, -100, 1.2)))  # a fast one (a tenth of the frame): told by the shift
    assert not is_cut(a, thumb(frame(her, -50, -130, 1.2)))
    assert not is_cut(a, thumb(frame(her, -15, -110, 1.26)))  # a zoom
    assert not is_cut(a, thumb(np.clip(frame(her, 0, -100, 1.2).astype(int) + 80, 0, 255).astype(np.uint8)))  # a flash
    assert is_cut(a, thumb(frame(her, 200, -300, 2.0)))  # her again, framed otherwise
    assert is_cut(a, thumb(frame(her, 0, -200, 1.6)))
    assert is_cut(a, thumb(frame(her, -100, -50, 0.8)))
    assert is_cut(a, thumb(frame(data.coffee(), 0, 0, 1.25)))  # another picture
    assert is_cut(a, thumb(np.full((360, 640), 20, np.uint8)))  # black


def test_a_face_that_already_smiles_as_much_is_reported_as_such(tmp_path):
    # as for photos: left as it is, "already smiling", exit 0 — not "1 of 1 face smiled"
    from portrait import smiling_astronaut

    clip = make_clip(tmp_path / "smiling.mp4", np.array(smiling_astronaut()), size=SIZE, frames=10, crf=0,
                     face_height=0.95, audio=False)
    r = CliRunner().invoke(cli, [str(clip.path), "--crf", "0", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    (entry,) = json.loads(r.stdout)["photos"]
    (face,) = entry["faces"]
    assert entry["faces_edited"] == 0 and not face["edited"] and face["frames_edited"] == 0
    assert face["reason"].startswith("already smiling (about strength")
    before, after = planes(clip.path), planes(tmp_path / "smiling.smile.mp4")
    assert len(before) == len(after) == 10 and all(np.array_equal(a, b) for a, b in zip(before, after))
    r = CliRunner().invoke(cli, [str(clip.path), "--crf", "0", "-o", str(tmp_path / "s.mp4")], catch_exceptions=False)
    assert r.exit_code == 0 and "0 of 1 face smiled, 1 already smiling as much" in r.stdout


def test_a_rotated_clip_reports_its_face_as_shown(picture, model, tmp_path):
    # boxes and landmarks in the upright picture, as photos give them after their EXIF turn
    boxes = {}
    for rot in (0, 90, 270):
        clip = make_clip(tmp_path / f"r{rot}.mp4", picture, size=SIZE, frames=6, face_height=0.95, rotation=rot, audio=False)
        res = smile_video(clip.path, tmp_path / f"r{rot}.out.mp4", strength=2, model=model)
        boxes[rot] = np.array(res.tracks[0]["box"])
    assert np.abs(boxes[90] - boxes[0]).max() <= 2 and np.abs(boxes[270] - boxes[0]).max() <= 2, boxes


def test_a_face_index_the_clip_lacks_is_a_usage_error(picture, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", picture, size=SIZE, frames=6, face_height=0.95, audio=False)
    r = CliRunner().invoke(cli, [str(clip.path), "--faces", "3", "-o", str(tmp_path / "o.mp4")], catch_exceptions=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "face index 3 does not exist: 1 face(s)" in lines[0], r.stderr
    assert not (tmp_path / "o.mp4").exists()
    r = CliRunner().invoke(cli, [str(clip.path), "--faces", "3", "-o", str(tmp_path / "o.mp4"), "--json"],
                           catch_exceptions=False)
    entry = json.loads(r.stdout)["photos"][0]  # (the report lists the faces there are)
    assert entry["faces_found"] == 1 and entry["faces"][0]["index"] == 0 and entry["faces"][0]["first_frame"] == 0


def test_a_truncated_clip_says_how_much_of_it_was_read(picture, model, tmp_path):
    clip = make_clip(tmp_path / "c.mkv", picture, size=SIZE, frames=30, face_height=0.95, audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.path.read_bytes()[: clip.path.stat().st_size * 2 // 3])
    res = smile_video(cut, tmp_path / "cut.out.mkv", strength=2, model=model)
    said = f"only {res.duration:.2f} s of the 1.20 s the file announces could be decoded (a truncated or damaged file?)"
    assert 0 < res.frames < 28 and said in res.notes, res.notes  # (an MKV gives no frame count: its duration)
    whole = smile_video(clip.path, tmp_path / "whole.out.mkv", strength=2, model=model)
    assert whole.frames == 30 and not whole.notes and whole.fps == 25 and whole.duration == 1.2


def test_a_variable_frame_rate_mkv_is_not_called_damaged_and_reports_its_own_rate(picture, model, tmp_path):
    """An MKV has no frame count: 60 frames spaced 40, 40 and 120 ms (3.92 s) are not 'only 60 of about 98'."""
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        img = np.asarray(Image.fromarray(picture).resize((320, 240)))
        t = 0
        for i in range(60):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += (40, 40, 120)[i % 3]
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    res = smile_video(src, tmp_path / "o.mkv", strength=2, model=model)
    assert res.frames == 60 and not any("damaged" in n for n in res.notes), res.notes
    assert abs(res.fps - 59 / 3.88) < 0.01 and 3.88 < res.duration < 4.0
