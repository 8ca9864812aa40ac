"""Videos: ``smile clip.mp4`` and :func:`smilecore.video.smile_video`.

Every clip is made here from the bundled astronaut (moved across a canvas on a known path,
with a sine tone; :mod:`smilecore.video_synth`).  Clips are small (≤ 480x360, ≤ 64 frames).
Needs PyAV, which ``pip install ".[test]"`` installs (or ``pip install ".[video]"``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

av = pytest.importorskip("av", reason="video tests need PyAV: pip install '.[video]' (or '.[test]')")

import smilecore  # noqa: E402
from cli.main import cli  # noqa: E402
from smilecore.errors import InputError, NoFaceError, UsageError  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_schedule import StrengthSchedule  # noqa: E402
from smilecore.video_synth import make_clip, mouth_box, mouth_flicker, packets, read_frames  # noqa: E402
from smilecore.video_track import FADE_FRAMES, FaceTracker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZE = (480, 360)
FRAMES = 64


@pytest.fixture(scope="module")
def clips(tmp_path_factory, picture):
    """The clips most tests share (made once)."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "moving": make_clip(d / "moving.mp4", picture, size=SIZE, frames=FRAMES, crf=18),
        # lossless source: any change in a still face is the filter's own
        "still": make_clip(d / "still.mkv", picture, size=SIZE, frames=40, crf=0, amplitude=(0, 0), audio=False),
    }


@pytest.fixture(scope="module")
def smiled(clips, model, tmp_path_factory):
    """The moving clip through the CLI (default options but strength 2), once."""
    d = tmp_path_factory.mktemp("smiled")
    src = d / "clip.mp4"
    src.write_bytes(clips["moving"].path.read_bytes())
    r = run(src, "-s", "2", "--json")
    return src, d / "clip.smile.mp4", r


def run(*args) -> "CliRunner.Result":
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(r, *words):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def stream_info(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = [f.pts for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {"size": (v.codec_context.width, v.codec_context.height), "rate": v.average_rate, "time_base": v.time_base,
                "frames": len(pts), "pts": pts, "kinds": sorted(s.type for s in c.streams)}


def mouth_region(picture, clip, i: int) -> tuple[slice, slice]:
    """The mouth box of frame ``i`` in frame pixels."""
    x0, y0, x1, y1 = mouth_box(picture)
    m = clip.matrices[i]
    ax0, ay0 = m[:, :2] @ [x0, y0] + m[:, 2]
    ax1, ay1 = m[:, :2] @ [x1, y1] + m[:, 2]
    return slice(int(ay0), int(ay1) + 1), slice(int(ax0), int(ax1) + 1)


# ---------------------------------------------------------------- the command


def test_clip_keeps_frames_rate_timebase_and_audio_bits(smiled, clips):
    src, out, r = smiled
    assert r.exit_code == 0, r.stderr
    assert out.is_file() and not any(p.name.endswith(".smile-tmp") for p in out.parent.iterdir())
    a, b = stream_info(src), stream_info(out)
    assert b["frames"] == a["frames"] == FRAMES
    assert (b["size"], b["rate"], b["time_base"], b["pts"], b["kinds"]) == (a["size"], a["rate"], a["time_base"], a["pts"], a["kinds"])
    audio_in, audio_out = packets(src), packets(out)
    assert len(audio_in) == clips["moving"].audio_packets > 50
    assert audio_out == audio_in  # remuxed: same timestamps, same bytes


def test_json_reports_one_tracked_face(smiled):
    _, out, r = smiled
    doc = json.loads(r.stdout)
    (entry,) = doc["photos"]
    assert entry["status"] == "ok" and entry["output"] == str(out)
    assert entry["video"]["frames"] == FRAMES and entry["video"]["fps"] == 25
    (face,) = entry["faces"]  # one person, one index, followed through the whole clip
    assert face["index"] == 0 and face["edited"] and face["first_frame"] == 0 and face["last_frame"] == FRAMES - 1
    assert face["frames_edited"] == FRAMES
    assert 2 <= face["detections"] < FRAMES / 4  # detected every few frames, tracked in between


def test_mouth_changes_and_flicker_stays_within_target(smiled, clips, picture):
    src, out, _ = smiled
    fi, fo = read_frames(src), read_frames(out)
    clip = clips["moving"]
    changed = [np.abs(fo[i][mouth_region(picture, clip, i)].astype(int) - fi[i][mouth_region(picture, clip, i)]).mean()
               for i in range(0, FRAMES, 8)]
    assert min(changed) > 3.0, changed  # every sampled frame smiles
    box = mouth_box(picture)
    ratio = mouth_flicker(fo, clip.matrices, box) / mouth_flicker(fi, clip.matrices, box)
    assert ratio <= 1.15, ratio


def test_still_face_gives_a_still_smile_and_the_rest_is_untouched(clips, model, picture, tmp_path):
    """Lossless in and out: outside the face every pixel is the input's; a still face's smile
    does not move; the schedule holds strength 0 for the first 0.4 s."""
    clip = clips["still"]
    out = tmp_path / "still.smile.mkv"
    res = smile_video(clip.path, out, strength="0:0,0.4:0,0.6:2", model=model, crf=0)
    assert res.frames == 40 and res.tracks[0]["edited"]
    with av.open(str(clip.path)) as c:
        fi = [f.to_ndarray() for f in c.decode(video=0)]  # I420 planes, as coded
    with av.open(str(out)) as c:
        fo = [f.to_ndarray() for f in c.decode(video=0)]
    h = SIZE[1]
    ys, xs = mouth_region(picture, clip, 0)
    for i in range(10):  # t < 0.4 s: strength 0, bit-identical frames
        assert np.array_equal(fi[i], fo[i]), i
    x0, y0, x1, y1 = (int(v) for v in _face_extent(picture, clip))
    for i in (20, 30, 39):
        diff = fi[i][:h].astype(int) != fo[i][:h]
        assert diff[ys, xs].mean() > 0.3, i  # the mouth changed...
        diff[y0:y1, x0:x1] = False
        assert not diff.any(), i  # ...and nothing outside the face's region did
    # still face: a few frames after reaching full strength (t = 0.6 s), the smile stands still
    steps = [np.abs(fo[i][:h][ys, xs].astype(int) - fo[i - 1][:h][ys, xs]).mean() for i in range(26, 40)]
    assert max(steps) < 0.1, steps


def test_a_face_already_smiling_gets_only_what_it_lacks(model, tmp_path):
    """The rule of photos (smilecore.strength) holds in videos: the smiling astronaut at strength 1
    keeps her own smile untouched; at strength 3 she gets a broader one."""
    from portrait import smiling_astronaut

    picture = np.array(smiling_astronaut())
    clip = make_clip(tmp_path / "smiling.mkv", picture, size=SIZE, frames=12, crf=0, amplitude=(0, 0), audio=False)
    with av.open(str(clip.path)) as c:
        fi = [f.to_ndarray()[:SIZE[1]].astype(int) for f in c.decode(video=0)]
    ys, xs = mouth_region(picture, clip, 0)
    moved = {}
    for lam in (1, 3):
        out = tmp_path / f"smiling-{lam}.mkv"
        smile_video(clip.path, out, strength=lam, model=model, crf=0)
        with av.open(str(out)) as c:
            fo = [f.to_ndarray()[:SIZE[1]].astype(int) for f in c.decode(video=0)]
        moved[lam] = max(np.abs(fo[i][ys, xs] - fi[i][ys, xs]).mean() for i in range(len(fi)))
    assert moved[1] == 0 and moved[3] > 5, moved  # strength 1: her mouth bit-identical


def test_a_face_turned_away_throughout_a_clip_is_left_as_it_is(clips, model, tmp_path, monkeypatch):
    """Photos' rule for faces turned from the camera (smilecore.strength.facing_share) in a video."""
    import smilecore.detect

    real = smilecore.detect.detect_faces

    def in_profile(*a, **k):
        faces = real(*a, **k)
        for f in faces:
            f.facing = -1.0
        return faces

    monkeypatch.setattr(smilecore.detect, "detect_faces", in_profile)  # (what the tracker calls on each frame)
    with pytest.raises(NoFaceError, match="turned away from the camera"):
        smile_video(clips["still"].path, tmp_path / "away.mkv", strength=2, model=model, crf=0)
    assert not (tmp_path / "away.mkv").exists()


def _face_extent(picture, clip):
    """Frame box that any edit of the face stays inside (the aligned crop square, generously)."""
    x0, y0, x1, y1 = smilecore.detect_faces(picture)[0].box
    s = x1 - x0
    m = clip.matrices[0]
    a = m[:, :2] @ [x0 - 1.2 * s, y0 - 1.2 * s] + m[:, 2]
    b = m[:, :2] @ [x1 + 1.2 * s, y1 + 1.4 * s] + m[:, 2]
    return max(0, a[0]), max(0, a[1]), b[0], b[1]


@pytest.mark.parametrize("ext, codec", [(".mov", None), (".mkv", None), (".webm", None), (".avi", None), (".mp4", "hevc")])
def test_containers_round_trip(ext, codec, picture, model, tmp_path):
    src = tmp_path / f"c{ext}"
    clip = make_clip(src, picture, size=(320, 240), frames=12, face_height=0.95,
                     codec="libvpx-vp9" if ext == ".webm" else "libx264")
    out = tmp_path / f"c.smile{ext}"
    res = smile_video(src, out, strength=2, model=model, codec=codec)
    a, b = stream_info(src), stream_info(out)
    assert b["frames"] == a["frames"] == 12 and b["size"] == a["size"] and b["kinds"] == a["kinds"]
    a_in, a_out = packets(src), packets(out)
    if ext == ".avi":  # AVI keeps no audio timestamps of its own: compare the bytes
        a_in, a_out = [p for _, p in a_in], [p for _, p in a_out]
    assert a_out == a_in and len(a_in) >= clip.audio_packets - 1 > 0
    assert res.faces_edited == 1


def test_strength_schedule():
    s = StrengthSchedule.parse("0:0,1.5:2,4:2,5:0")
    assert [s(t) for t in (0, 0.75, 1.5, 3, 4.5, 9)] == [0, 1, 2, 2, 1, 0]
    assert StrengthSchedule.parse("2.5")(7) == 2.5 and StrengthSchedule.parse(1)(0) == 1.0
    assert StrengthSchedule.parse("1:2")(0) == 2  # held before the first point
    for bad in ("0:1,0:2", "1:2,0:1", "a:1", "1:2:3", "-1:2", "0:nan", ":", "x"):
        with pytest.raises(UsageError):
            StrengthSchedule.parse(bad)


# ---------------------------------------------------------------- tracking


def _texture(seed=0, size=200):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 255, (size // 8, size // 8), np.uint8)
    import cv2

    return cv2.resize(t, (size, size), interpolation=cv2.INTER_CUBIC)


def _scene(tex, x, y, w=320, h=240):
    frame = np.full((h, w), 100, np.uint8)
    if x is not None:
        th, tw = tex.shape
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + tw), min(h, y + th)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = tex[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


LM = np.array([[130, 80], [115, 81], [70, 80], [85, 81], [100, 110]], np.float64)


def test_tracker_keeps_index_through_missed_detections_and_fades():
    tex = _texture()
    path = [(20 + 2 * i, 10 + i) for i in range(40)] + [(None, None)] * 30
    calls = []

    def detect(i):
        calls.append(i)
        x, y = path[i]
        if x is None or len(calls) in (3, 4, 5):  # after confirming it, the detector misses the face three times in a row
            return []
        return [(LM + [x, y], (x + 50, y + 50, x + 150, y + 150), 0.9)]

    tr = FaceTracker(detect, detect_every=12)
    weights, positions = [], []
    for i, (x, y) in enumerate(path):
        live = tr.update(_scene(tex, x, y), i, i / 25)
        weights.append(live[0].fade if live else 0.0)
        if x is not None and live:
            positions.append(live[0].smoothed.mean(0) - (LM.mean(0) + [x, y]))
    tracks = tr.all_tracks()
    assert [t.index for t in tracks] == [0]  # one person, one index, misses or not
    assert weights[:40] == [1.0] * 40  # no blink while the detector misses it
    assert np.abs(np.array(positions)).max() < 1.5  # optical flow follows the face between detections
    fade = weights[40:40 + FADE_FRAMES + 3]
    assert all(a >= b for a, b in zip(fade, fade[1:])) and fade[-1] == 0.0 == weights[-1]  # leaves: fades out...
    assert sum(0 < w < 1 for w in fade) >= FADE_FRAMES - 2  # ...over several frames
    assert len(calls) < 25 and len([c for c in calls if c < 40]) >= 5


def test_tracker_fades_a_new_face_in():
    tex = _texture(1)

    def detect(i):
        return [] if i < 10 else [(LM + [40, 20], (90, 70, 190, 170), 0.9)]

    tr = FaceTracker(detect, detect_every=4)
    weights = []
    for i in range(40):
        live = tr.update(_scene(tex, 40 if i >= 10 else None, 20), i, i / 25)
        weights.append(live[0].fade if live and live[0].index >= 0 else 0.0)
    first = next(i for i, w in enumerate(weights) if w > 0)
    ramp = weights[first:first + FADE_FRAMES]
    assert first >= 10 and ramp[0] < 0.3 and ramp[-1] == 1.0 and ramp == sorted(ramp)


def test_tracker_eases_the_strength_of_a_face_turning_away_and_back():
    from smilecore import strength

    tex = _texture(2)
    facing = [1.0] * 12 + [strength.FACING_NONE - 0.2] * 24 + [1.0] * 24  # a profile for a second, then back

    def detect(i):
        return [(LM + [40, 20], (90, 70, 190, 170), 0.9, facing[i])]

    tr = FaceTracker(detect, detect_every=4)
    shares = [tr.update(_scene(tex, 40, 20), i, i / 25)[0].share for i in range(len(facing))]
    assert shares[:12] == [1.0] * 12
    away = shares[12:36]
    assert all(a >= b for a, b in zip(away, away[1:])) and away[-1] == 0.0  # turning away: eased down...
    assert sum(0 < s < 1 for s in away) >= FADE_FRAMES - 2  # ...over several frames, no pop
    assert shares[-1] == 1.0 and tr.all_tracks()[0].max_share == 1.0
    # detections without a facing (a 3-tuple) face the camera
    tr = FaceTracker(lambda i: [(LM + [40, 20], (90, 70, 190, 170), 0.9)], detect_every=4)
    assert tr.update(_scene(tex, 40, 20), 0, 0.0)[0].share == 1.0


# ---------------------------------------------------------------- bad input


def test_errors_are_one_line_with_the_right_exit_code(clips, picture, tmp_path):
    src = tmp_path / "a.mp4"
    src.write_bytes(clips["moving"].path.read_bytes())
    r = run(src, "-s", "1:2,0:1")
    assert r.exit_code == 2 and "times must increase" in r.stderr
    r = run(src, "-s", "0:0,1:9")
    assert r.exit_code == 2 and "outside this model's range" in one_error_line(r)
    r = run(src, "--codec", "vp8")
    assert r.exit_code == 2 and "cannot go into a .mp4" in one_error_line(r)
    r = run(src, "--max-pixels", "100000")  # (videos: this or 8K UHD, whichever is smaller)
    assert r.exit_code == 5 and one_error_line(r).endswith("each frame is 480x360 = 0.173 MP, above the limit of 0.1 MP")
    r = run(src, "--debug", tmp_path / "dbg")
    assert r.exit_code == 2 and "--debug is for photos" in one_error_line(r)
    r = run(src, "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "not a video format" in one_error_line(r)
    r = run(ROOT / "samples" / "astronaut.jpg", "-s", "0:0,1:2", "-o", tmp_path / "p.jpg")
    assert r.exit_code == 2 and "schedule applies to videos" in one_error_line(r)
    r = run("detect", src)  # a video's tracks, with the indices --faces takes
    assert r.exit_code == 0 and r.stdout.startswith(f"{src}: face 0: frames 0-"), (r.stdout, r.stderr)
    assert not list(tmp_path.glob("*.smile.*")) and "when first seen" in r.stdout
    r = run("detect", src, "--min-face", "5000")
    assert r.exit_code == 3 and one_error_line(r).endswith("no face found in the video")
    photo = tmp_path / "before.jpg"
    Image.open(ROOT / "samples" / "astronaut.jpg").save(photo)
    r = run(photo, src, "--codec", "hevc", "--crf", "55", "--out-dir", tmp_path / "mixed", "--json")
    assert r.exit_code == 2 and r.stdout == "" and not (tmp_path / "mixed").exists()  # (before any photo)
    assert one_error_line(r).endswith("crf 55 is outside 0..51 for hevc")
    from smile_cli.bridge.worker import WorkerSession

    reply = WorkerSession().handle_line(json.dumps({"id": 1, "cmd": "detect", "input": str(src)}).encode())
    assert reply["error"]["code"] == "bad_input" and "detect lists the faces of photos" in reply["error"]["message"]
    # not a video at all, audio only, truncated
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello")
    r = run(fake)
    assert r.exit_code == 4 and "fake.mp4" in one_error_line(r)
    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=48000)
        s.layout = "mono"
        for k in range(20):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, k * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    r = run(audio)
    assert r.exit_code == 4 and "no video stream" in one_error_line(r)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    r = run(truncated, "-o", tmp_path / "cut.out.mp4")
    assert r.exit_code in (0, 4), r.stderr
    if r.exit_code == 4:
        one_error_line(r, "cut.mp4")
        assert not (tmp_path / "cut.out.mp4").exists()
    else:
        assert 0 < stream_info(tmp_path / "cut.out.mp4")["frames"] <= FRAMES
    assert not any(p.name.endswith(".smile-tmp") for p in tmp_path.iterdir())


def test_no_face_is_exit_3_or_copied_with_keep_unchanged(picture, tmp_path):
    empty = tmp_path / "empty.mp4"
    make_clip(empty, picture, size=(160, 120), frames=8, hide=(0, 8))
    r = run(empty)
    assert r.exit_code == 3 and "no face" in one_error_line(r)
    assert not (tmp_path / "empty.smile.mp4").exists()
    r = run(empty, "--keep-unchanged")
    assert r.exit_code == 0 and (tmp_path / "empty.smile.mp4").read_bytes() == empty.read_bytes()


@pytest.mark.parametrize("out_name, codec", [("odd.out.webm", None), ("odd.out.mkv", "vp8"), ("odd.out.avi", "mpeg4")])
def test_an_odd_size_stays_4_2_0_where_the_codec_writes_it(picture, model, tmp_path, out_name, codec):
    # VP9, VP8 and MPEG-4 write odd 4:2:0 sizes: the result stays 4:2:0, which every player plays (before: 4:4:4 for VP9,
    # and VP8 / MPEG-4 refused, exit 4); only H.264 and HEVC need 4:4:4 there
    src = make_clip(tmp_path / "odd.webm", picture, size=(321, 241), frames=6, codec="libvpx-vp9", face_height=0.95, audio=False)
    out = tmp_path / out_name
    res = smile_video(src.path, out, strength=2, model=model, codec=codec)
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert (frames[0].width, frames[0].height, frames[0].format.name) == (321, 241, "yuv420p") and len(frames) == 6
    assert res.faces_edited == 1 and not any("odd frame size" in n for n in res.notes)


def test_a_4_4_0_clip_into_mp4_is_readable(picture, model, tmp_path):
    # MP4's VP9 box has no 4:4:0: the file FFmpeg wrote could not be opened (InvalidDataError); now 4:4:4, with a note
    src = make_clip(tmp_path / "s.webm", picture, size=(320, 240), frames=4, codec="libvpx-vp9", pix_fmt="yuv440p",
                    face_height=0.95, audio=False)
    res = smile_video(src.path, tmp_path / "o.mp4", strength=2, model=model, codec="vp9")
    with av.open(str(tmp_path / "o.mp4")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 4 and frames[0].format.name == "yuv444p" and res.faces_edited == 1
    assert any("cannot hold 4:4:0" in n for n in res.notes), res.notes


def test_a_height_of_4n_plus_2_is_edited(picture, model, tmp_path):
    # (8-bit 4:2:0 with a height like 242 or 534: "internal error ValueError: cannot reshape array": the chroma
    # planes were cut from the frame in whole rows of the frame's width)
    src = make_clip(tmp_path / "wide.mp4", picture, size=(320, 242), frames=4, audio=False, face_height=0.95)
    res = smile_video(src.path, tmp_path / "out.mp4", strength=2, model=model)
    assert (res.frames, res.faces_edited, res.size) == (4, 1, (320, 242))
    before, after = read_frames(src.path), read_frames(tmp_path / "out.mp4")
    assert max(float(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(before, after)) > 40


def test_odd_size_ten_bit_vfr_and_rotation(picture, model, tmp_path):
    # odd width and height (4:4:4 source): same size out
    odd = make_clip(tmp_path / "odd.mp4", picture, size=(321, 241), frames=8, pix_fmt="yuv444p", face_height=0.95)
    res = smile_video(odd.path, tmp_path / "odd.out.mp4", strength=2, model=model)
    assert stream_info(tmp_path / "odd.out.mp4")["size"] == (321, 241) and res.frames == 8
    # 10-bit stays 10-bit
    deep = make_clip(tmp_path / "deep.mkv", picture, size=(320, 240), frames=8, pix_fmt="yuv420p10le", face_height=0.95)
    res = smile_video(deep.path, tmp_path / "deep.out.mkv", strength=2, model=model)
    with av.open(str(tmp_path / "deep.out.mkv")) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p10le"
    assert res.faces_edited == 1
    # variable frame rate: every timestamp kept
    vfr = tmp_path / "vfr.mkv"
    with av.open(str(vfr), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.time_base = s.time_base = __import__("fractions").Fraction(1, 1000)
        canvas = np.full((240, 320, 3), 120, np.uint8)
        import cv2

        canvas[:, 40:280] = cv2.resize(picture, (240, 240))
        t = 0
        for i in range(10):
            f = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            f.pts, f.time_base = t, s.time_base
            t += 40 if i % 3 else 120
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    smile_video(vfr, tmp_path / "vfr.out.mkv", strength=2, model=model)
    assert stream_info(tmp_path / "vfr.out.mkv")["pts"] == stream_info(vfr)["pts"]
    # a phone clip stored sideways with a display rotation: kept, and its face is found
    rot = make_clip(tmp_path / "rot.mp4", picture, size=(320, 240), frames=8, rotation=90, face_height=0.95)
    res = smile_video(rot.path, tmp_path / "rot.out.mp4", strength=2, model=model)
    with av.open(str(rot.path)) as a, av.open(str(tmp_path / "rot.out.mp4")) as b:
        ra, rb = next(a.decode(video=0)).rotation, next(b.decode(video=0)).rotation
    assert ra == rb != 0 and res.faces_edited == 1


def test_sigterm_leaves_no_partial_file(picture, tmp_path):
    # long enough that the run cannot end between the last look and the signal, on a loaded machine too
    src = make_clip(tmp_path / "long.mp4", picture, size=(320, 240), frames=300, audio=False).path
    env = dict(os.environ, SMILE_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cli", str(src), "-o", str(tmp_path / "out.mp4"), "--crf", "0",
                             "--preset", "slow"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.name.endswith(".smile-tmp") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()  # writing its temporary file: stop it now
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_worker_takes_a_video_and_reports_progress(clips, tmp_path):
    from cli.bridge.worker import WorkerSession

    src = tmp_path / "w.mp4"
    src.write_bytes(clips["moving"].path.read_bytes())
    events = []
    session = WorkerSession()
    session.load_model()
    session.emit = events.append
    req = {"id": 5, "cmd": "smile", "input": str(src), "output": str(tmp_path / "w.out.mp4"), "strength": "0:1,1:2",
           "faces": [0]}
    reply = session.handle_line(json.dumps(req).encode())
    assert reply["ok"] is True, reply
    assert reply["video"]["frames"] == FRAMES and reply["faces"][0]["edited"]
    assert events and all(e["event"] == "progress" and e["id"] == 5 for e in events)
    assert events[-1]["frame"] == FRAMES and events[-1]["frames"] == FRAMES
    bad = session.handle_line(json.dumps(dict(req, output=str(tmp_path / "w.png"))).encode())
    assert bad["ok"] is False and bad["error"]["code"] == "bad_request"
    bad = session.handle_line(json.dumps(dict(req, strength="9:x")).encode())
    assert bad["ok"] is False and bad["error"]["code"] == "bad_request"


def test_worker_video_errors_name_fields_not_command_line_options(clips, tmp_path):
    """Plug-in users never typed --crf: the worker's answers name the request's fields and values, and a
    JSON whole number written as 20.0 is a whole number."""
    from cli.bridge.worker import WorkerSession

    session = WorkerSession()
    session.load_model()
    base = {"id": 1, "cmd": "smile", "input": str(clips["still"].path), "output": str(tmp_path / "o.mkv")}
    cases = [({"crf": 99}, "crf 99 is outside 0..63 for h264"), ({"crf": 52, "codec": "hevc"}, "crf 52 is outside 0..51 for hevc"),
             ({"crf": 64, "codec": "vp9"}, "outside 0..63 for vp9"), ({"crf": 0, "codec": "mpeg4"}, "crf 0 is outside 1..31 for mpeg4"),
             ({"crf": 32, "codec": "mpeg4"}, "crf 32 is outside 1..31"), ({"codec": "x"}, "codec x: unknown"),
             ({"strength": 9}, "strength 9 is outside"), ({"strength": "0:0,1:9"}, "strength 9 is outside"),
             ({"codec": "h264", "output": str(tmp_path / "o.webm")}, "codec h264 cannot go into a .webm"),
             ({"codec": "vp9", "output": str(tmp_path / "o.avi")}, "codec vp9 cannot go into an .avi file"),
             ({"crf": 20.5}, "field 'crf' must be a whole number"), ({"crf": True}, "field 'crf' must be a whole number"),
             ({"strength": 10 ** 400}, "strength must be a finite number")]
    for extra, needle in cases:
        reply = session.handle_line(json.dumps(dict(base, **extra)).encode())
        message = reply["error"]["message"]
        assert reply["error"]["code"] == "bad_request" and needle in message and "--" not in message, (extra, message)
    reply = session.handle_line(json.dumps(dict(base, crf=0.0, min_face=20.0, strength=2)).encode())
    assert reply["ok"] is True, reply
    assert np.array_equal(read_frames(tmp_path / "o.mkv")[0].shape, read_frames(clips["still"].path)[0].shape)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mkv"]


def test_smile_video_checks_its_arguments_before_any_work(clips, model, tmp_path, monkeypatch):
    """A library caller's mistakes are the engine's own one-line errors, and nothing is written."""
    import smilecore.video as V

    monkeypatch.setattr(V, "probe", lambda *a: pytest.fail("the clip was opened"))
    src = clips["still"].path
    cases = [({"preset": "fastest"}, "preset 'fastest': unknown (use ultrafast"),
             ({"faces": 0}, "faces must be 'all', 'largest' or a list of 0-based indices (e.g. [0]), not 0"),
             ({"faces": []}, "faces is an empty list"), ({"crf": "20"}, "crf must be a whole number, not '20'"),
             ({"min_face": "10"}, "min_face must be a whole number"), ({"strength": "1_0"}, "is not a number"),
             ({"codec": 5}, "codec must be a codec's name"), ({"max_pixels": "1000"}, "max_pixels must be a whole number"),
             ({"preset": "veryslow", "crf": 20.5}, "crf must be a whole number, not 20.5"),
             ({"strength": 10**400}, "strength must be a finite number"),
             ({"detect_every": "abc"}, "detect_every must be a whole number of frames, 1 or more, not 'abc'"),
             ({"detect_every": 0}, "not 0"), ({"smooth": "no"}, "smooth must be True or False, not 'no'"),
             ({"keep_unchanged": None}, "keep_unchanged must be True or False, not None")]
    for kwargs, needle in cases:
        with pytest.raises(UsageError) as exc:
            smile_video(src, tmp_path / "o.mkv", model=model, **kwargs)
        assert needle in str(exc.value), (kwargs, str(exc.value))
    with pytest.raises(UsageError, match="the output would replace the input"):
        smile_video(src, src, model=model)
    with pytest.raises(UsageError, match=r"ro: a video needs an extension \(use \.3gp, \.avi"):
        smile_video(src, tmp_path / "ro", model=model)
    assert list(tmp_path.iterdir()) == []


def test_a_clip_over_the_frame_limit_names_it_exactly(clips, model, tmp_path, monkeypatch):
    # where the sizes round to the same megapixels, the counts are exact; the built-in limit says what it is
    import smilecore.video as V
    from smilecore.errors import ImageTooLargeError

    monkeypatch.setattr(V, "MAX_FRAME_PIXELS", 480 * 360 - 1)
    with pytest.raises(ImageTooLargeError) as exc:
        smile_video(clips["still"].path, tmp_path / "o.mkv", model=model)
    assert str(exc.value).endswith("each frame is 480x360 = 172,800 pixels, above the limit of 172,799 "
                                   "(8K UHD, the most a video may have)"), str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_quality_with_only_videos_is_named(clips, tmp_path):
    r = CliRunner().invoke(cli, [str(clips["still"].path), "-o", str(tmp_path / "o.mkv"), "--quality", "80", "--crf", "0"])
    assert r.exit_code == 0, r.stderr
    assert "smile: note: --quality applies to photos; every input is a video (their quality is --crf), so ignored" in r.stderr


def test_smile_video_refuses_a_photo(astronaut, model, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "face.mp4", "JPEG")  # a photo under a video's name
    with pytest.raises(InputError, match=r"face.mp4: a photo \(JPG\), not a video: rename it to face.jpg"):
        smile_video(tmp_path / "face.mp4", tmp_path / "o.mp4", model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mp4"]


def test_output_does_not_depend_on_threads(picture, model, tmp_path, monkeypatch):
    """The background detector's result is used a fixed number of frames later, and the
    optional compositing thread keeps frame order: the same clip gives the same frames."""
    import smilecore.video as V

    make_clip(tmp_path / "a.mp4", picture, size=(320, 240), frames=24, face_height=0.9)
    outs = []
    for flag in (False, True):
        monkeypatch.setattr(V, "PIPELINE", flag)
        smile_video(tmp_path / "a.mp4", tmp_path / f"o{flag}.mkv", strength=2, model=model, crf=0)
        outs.append(read_frames(tmp_path / f"o{flag}.mkv"))
    assert len(outs[0]) == len(outs[1]) == 24
    assert all(np.array_equal(a, b) for a, b in zip(*outs))


def test_subtitles_chapters_and_metadata_are_kept(picture, model, tmp_path):
    from fractions import Fraction

    clip = make_clip(tmp_path / "v.mkv", picture, size=(320, 240), frames=25, face_height=0.95)
    src = tmp_path / "sub.mkv"
    with av.open(str(clip.path)) as i, av.open(str(src), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        sub = o.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        sub.metadata["language"] = "eng"
        o.metadata["title"] = "Test clip"
        o.set_chapters([{"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}}])
        for p in i.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                o.mux(p)
        for t, text in ((0, "Hello"), (500, "Smile")):
            p = av.Packet(text.encode())
            p.pts = p.dts = t
            p.duration, p.time_base, p.stream = 400, sub.time_base, sub
            o.mux(p)
    out = tmp_path / "sub.smile.mkv"
    res = smile_video(src, out, strength=2, model=model)
    assert res.faces_edited == 1 and any("subtitle" in s for s in res.streams_copied)
    assert packets(out, "subtitle") == packets(src, "subtitle") == [(0, b"Hello"), (500, b"Smile")]
    assert packets(out) == packets(src)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.metadata["title"] == "Test clip" and b.streams.subtitles[0].metadata["language"] == "eng"
        assert b.chapters() == a.chapters() and b.chapters()[0]["metadata"]["title"] == "Intro"


def test_the_photo_pixel_limit_variable_does_not_reach_a_videos_frames(clips, model, tmp_path, monkeypatch):
    """Videos' frames have their own limit (8K, or max_pixels): SMILE_MAX_PIXELS is the photos' (and --max-pixels')."""
    monkeypatch.setenv("SMILE_MAX_PIXELS", "1000")
    res = smile_video(clips["still"].path, tmp_path / "o.mkv", strength=2, model=model, crf=0)
    assert res.output == tmp_path / "o.mkv" and any(t["edited"] for t in res.tracks)


def test_a_face_seen_smiling_as_much_is_already_smiling_though_a_reading_found_a_cover(clips, model, tmp_path,
                                                                                         monkeypatch):
    """A cover read now and then (a face leaving the picture, say) does not outweigh readings that saw the mouth
    smile as much as asked: the reason is 'already smiling', as the photo of any of its frames says."""
    import smilecore.facemesh as fm
    import smilecore.video_edit as ve

    calls = []

    def wavering(self, k, inverse, shape):
        calls.append(k)
        return len(calls) % 3 == 0  # every third reading: "covered"

    monkeypatch.setattr(fm.Reading, "mouth_covered", wavering)
    monkeypatch.setattr(ve.strength_rule, "face_strengths", lambda lam, level: np.zeros(np.shape(level), np.float32))
    monkeypatch.setattr(ve.strength_rule, "own_strength", lambda level: np.float64(1.7))
    res = smile_video(clips["still"].path, tmp_path / "o.mkv", strength=1, model=model, crf=0)  # (not an error)
    assert calls and [t["reason"].split(";")[0] for t in res.tracks] == ["already smiling (about strength 1.7)"]


def test_a_clip_in_which_no_face_changes_is_copied_byte_for_byte_as_a_photo_is(clips, model, tmp_path, picture):
    src = clips["still"].path
    r = run(src, "-s", "0", "-o", tmp_path / "same.mkv")
    assert r.exit_code == 0 and (tmp_path / "same.mkv").read_bytes() == src.read_bytes(), r.stderr
    r = run(src, "-s", "0", "-o", tmp_path / "asked.mkv", "--crf", "30")  # an encoder option asked for: re-encoded
    assert r.exit_code == 0 and (tmp_path / "asked.mkv").read_bytes() != src.read_bytes()
    blank = make_clip(tmp_path / "blank.mp4", np.full_like(picture, 90), size=(160, 120), frames=5, audio=False)
    r = run(blank.path, "--keep-unchanged", "--ext", "mkv", "--out-dir", tmp_path / "o")
    assert r.exit_code == 0 and "re-encoded unchanged (no face found in any frame of the video)" in r.stdout, r.stdout


def test_a_pixel_format_the_codec_cannot_write_and_a_preset_it_does_not_use_are_said(picture, model, tmp_path):
    clip = make_clip(tmp_path / "c444.mkv", picture, size=(320, 240), frames=4, pix_fmt="yuv444p", audio=False, face_height=0.9)
    res = smile_video(clip.path, tmp_path / "o.mkv", strength=2, model=model, codec="mpeg4", preset="slow")
    assert "yuv444p video written as yuv420p (mpeg4 cannot write yuv444p)" in res.notes, res.notes
    assert "--preset slow applies to H.264 and HEVC; mpeg4 does not use it" in res.notes
    same = smile_video(clip.path, tmp_path / "h.mkv", strength=2, model=model)  # H.264 writes 4:4:4 as it is
    assert not same.notes, same.notes
