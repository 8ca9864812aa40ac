"""AVI output: one frame rate, the source's frame count, frames in order (docs/video.md, "AVI").

AVI stores no timestamps, only each frame's slot at the stream's rate: the video stream must
declare the source's rate (time base 1/rate, not the source's fine time base, which declared
600 or 1000 fps with empty slots) and hold no B-frames (which came back out of order).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av", reason="video tests need PyAV: pip install '.[video]' (or '.[test]')")

from cli.main import cli  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_synth import make_clip, packets, read_frames  # noqa: E402

SIZE = (160, 120)
FRAMES = 20
FPS = Fraction(25)


def clip(path: Path, picture, **kw):
    return make_clip(path, picture, size=SIZE, frames=FRAMES, face_height=1.6, **kw)  # (a face over 24 px)


def video_info(path: Path) -> dict:
    """What a player reads: the stream's declared rate, time base and frame slots, and the
    decoded frames' timestamps (seconds)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"rate": v.average_rate, "time_base": v.time_base, "slots": v.frames}
        times = [float(f.pts * f.time_base) for f in c.decode(v)]
    info["times"] = times
    info["frames"] = len(times)
    info["span"] = times[-1] - times[0] if times else 0.0  # first to last frame
    return info


def assert_plays_like(out: Path, src: Path, frames: int = FRAMES):
    a, b = video_info(src), video_info(out)
    assert b["frames"] == frames == a["frames"]
    assert b["rate"] == FPS and b["time_base"] == 1 / FPS, (b["rate"], b["time_base"])
    assert b["slots"] == frames  # one slot per frame: no empty slots, no 600 fps
    assert all(y > x for x, y in zip(b["times"], b["times"][1:])), b["times"]  # in order
    steps = np.diff(b["times"])
    assert np.allclose(steps, 1 / float(FPS), atol=1e-6), b["times"]  # every frame one frame after the last
    assert abs(b["span"] - a["span"]) <= 1 / float(FPS) + 1e-6


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".avi"])
def test_avi_output_keeps_rate_frames_and_order(ext, picture, model, tmp_path):
    src = tmp_path / f"c{ext}"
    clip(src, picture)
    out = tmp_path / "c.smile.avi"
    res = smile_video(src, out, strength=2, model=model)
    assert res.faces_edited == 1 and res.frames == FRAMES
    assert not [n for n in res.notes if "AVI" in n], res.notes  # a constant rate fits AVI as it is
    assert_plays_like(out, src)
    # the sound is copied byte for byte (AVI keeps no audio timestamps of its own)
    assert [p for _, p in packets(out)] == [p for _, p in packets(src)]


def test_avi_to_avi_keeps_every_timestamp(picture, model, tmp_path):
    src = tmp_path / "c.mp4"
    clip(src, picture)
    first, second = tmp_path / "c.smile.avi", tmp_path / "c.smile.smile.avi"
    smile_video(src, first, strength=2, model=model)
    smile_video(first, second, strength=1, model=model)
    assert_plays_like(second, src)
    assert video_info(second)["times"] == video_info(first)["times"]  # the start does not move either


def test_avi_from_the_command_line(picture, tmp_path):
    src = tmp_path / "c.mkv"
    clip(src, picture, audio=False)
    out = tmp_path / "x.avi"
    r = CliRunner().invoke(cli, [str(src), "--strength", "2", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    assert_plays_like(out, src)


def _vfr_clip(path: Path, picture, steps_ms) -> list[int]:
    """A clip whose frame durations (ms) are ``steps_ms`` (1/1000 time base, 25 fps declared)."""
    still = clip(path.with_suffix(".still.mp4"), picture, audio=False)
    canvas = read_frames(still.path)[0]
    pts, t = [], 0
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        for step in steps_ms:
            f = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            f.pts, f.time_base = t, s.time_base
            pts.append(t)
            t += step
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return pts


def test_avi_variable_frame_rate_is_kept_on_its_grid_and_said(picture, model, tmp_path):
    # durations of 1 and 3 frames: every timestamp lies on the 25 fps grid
    src = tmp_path / "vfr.mkv"
    pts = _vfr_clip(src, picture, [40 if i % 3 else 120 for i in range(12)])
    out = tmp_path / "vfr.avi"
    res = smile_video(src, out, strength=2, model=model)
    b = video_info(out)
    assert b["frames"] == 12 and b["rate"] == FPS
    assert b["slots"] == pts[-1] // 40 + 1  # the gaps are empty slots
    assert all(y > x for x, y in zip(b["times"], b["times"][1:]))
    with av.open(str(out)) as c:  # each frame in the slot of its own timestamp
        slots = [p.dts for p in c.demux(video=0) if p.size]
    assert slots == [t // 40 for t in pts]
    assert any("AVI holds one frame rate" in n and "empty slots" in n for n in res.notes), res.notes


def test_avi_off_grid_timestamps_are_said(picture, model, tmp_path):
    # frames closer than one 25 fps frame cannot keep their timestamps: every frame is kept, in order
    src = tmp_path / "jitter.mkv"
    _vfr_clip(src, picture, [33, 34, 50, 17, 33] * 3)
    out = tmp_path / "jitter.avi"
    res = smile_video(src, out, strength=2, model=model)
    b = video_info(out)
    assert b["frames"] == 15 and b["rate"] == FPS
    assert all(y > x for x, y in zip(b["times"], b["times"][1:]))
    assert any("AVI holds one frame rate" in n and "moved" in n for n in res.notes), res.notes


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_other_containers_keep_the_source_time_base(ext, picture, model, tmp_path):
    src = tmp_path / f"c{ext}"
    clip(src, picture)
    out = tmp_path / f"c.smile{ext}"
    smile_video(src, out, strength=2, model=model)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert (vb.time_base, vb.average_rate) == (va.time_base, va.average_rate)
        assert [f.pts for f in b.decode(vb)] == [f.pts for f in a.decode(va)]


def test_an_avi_whose_copied_audio_cannot_be_copied_again_is_one_line(picture, tmp_path):
    # FFmpeg's AVI writer stores copied AAC audio so that it reads back with repeating timestamps,
    # which no muxer takes again: a second pass says so in one line (exit 4), not as an internal error
    src = clip(tmp_path / "a.avi", picture, audio=True).path
    runner = CliRunner()
    r = runner.invoke(cli, [str(src), "-o", str(tmp_path / "b.avi"), "-s", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, [str(tmp_path / "b.avi"), "-o", str(tmp_path / "c.avi"), "-s", "2"], catch_exceptions=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 4 and len(lines) == 1 and "audio stream cannot be copied" in lines[0], r.stderr
    assert not (tmp_path / "c.avi").exists() and not any(p.name.endswith(".smile-tmp") for p in tmp_path.iterdir())


@pytest.mark.parametrize("video_at, audio_at", [(3600.0, 3600.0), (0.0, 0.5)])
def test_avi_takes_a_late_clock_and_says_when_the_sound_did_not_start_with_the_picture(picture, model, tmp_path,
                                                                                         video_at, audio_at):
    """Before: a camera's clock at 3600 s was an internal error in AVI's muxer; sound 0.5 s late played early
    without a word."""
    plain = make_clip(tmp_path / "p.mp4", picture, size=(320, 240), frames=25, face_height=0.95)
    src = tmp_path / "late.mkv"
    with av.open(str(plain.path)) as i, av.open(str(src), "w") as o:
        out = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is None:
                continue
            shift = int(round((video_at if p.stream.type == "video" else audio_at) / p.time_base))
            p.pts, p.dts = p.pts + shift, p.dts + shift
            p.stream = out[p.stream.index]
            o.mux(p)
    res = smile_video(src, tmp_path / "o.avi", strength=2, model=model)
    late = [n for n in res.notes if n.startswith("audio #1 starts")]
    if audio_at == video_at:
        assert late == []
    else:  # (0.48: AAC's priming starts the sound a little before its first sample)
        assert len(late) == 1 and late[0].startswith("audio #1 starts 0.4") and late[0].endswith(
            "s after the picture, but AVI stores no start times: it plays from the picture's start (write .mkv "
            "or .mp4 to keep them in time)"), late
    with av.open(str(tmp_path / "o.avi")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 25
    with av.open(str(tmp_path / "o.avi")) as c:
        assert sum(f.samples for f in c.decode(audio=0)) > 40000
