"""Videos in containers Smile reads but does not write (DVD and camcorder MPEG, raw DV, Flash, Windows Media):
their result is an MP4 (smilecore.video_streams.READ_ONLY_VIDEO); a stream whose demuxer misreads its
frame rate (smilecore.video_input.frame_rate); an MP4 whose recording was cut off (unfinished_mp4)."""
from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av")

from cli.main import cli  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_input import frame_rate  # noqa: E402
from smilecore.video_synth import make_clip, read_frames  # noqa: E402


def write(path, picture, fmt: str, codec: str, size=(320, 240), frames: int = 6, audio: str | None = None,
          **options) -> None:
    """``frames`` frames of ``picture`` (filling most of the height) in the container ``fmt``, with a tone in
    ``audio`` when given."""
    w, h = size
    face = cv2.resize(picture, (int(picture.shape[1] * 0.9 * h / picture.shape[0]), int(0.9 * h)))
    canvas = np.full((h, w, 3), 120, np.uint8)
    x0, y0 = (w - face.shape[1]) // 2, (h - face.shape[0]) // 2
    canvas[y0:y0 + face.shape[0], x0:x0 + face.shape[1]] = face
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(codec, rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = options
        aus = out.add_stream(audio, rate=48000) if audio else None
        if aus is not None:
            aus.layout = "mono"
        for i in range(frames):
            fr = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            fr.pts = i
            for p in vs.encode(fr):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            n = aus.codec_context.frame_size or 1152
            for k in range(int(frames / 25 * 48000) // n + 1):
                x = (0.3 * np.sin(np.arange(k * n, (k + 1) * n) / 48000 * 2 * np.pi * 440))[None]  # (mono)
                af = av.AudioFrame.from_ndarray(x.astype(np.float32) if aus.codec_context.format.name == "fltp"
                                                else (x * 32767).astype(np.int16), format=aus.codec_context.format.name,
                                                layout="mono")
                af.sample_rate, af.pts = 48000, k * n
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode(None):
                out.mux(p)


@pytest.mark.parametrize("name, fmt, codec, audio", [("dvd.mpg", "mpeg", "mpeg2video", "mp2"),
                                                     ("tape.wmv", "asf", "wmv2", None),
                                                     ("old.flv", "flv", "flv", None)])
def test_a_video_in_a_container_smile_does_not_write_becomes_an_mp4(picture, tmp_path, name, fmt, codec, audio):
    src = tmp_path / name
    write(src, picture, fmt, codec, audio=audio, b="4M")
    r = CliRunner().invoke(cli, [str(src), "-s", "2", "--json"])
    # (before: the clip was taken for a photo: "extension '.mpg' is not an output format ... --ext png", exit 2)
    assert r.exit_code == 0, r.output
    entry = json.loads(r.output)["photos"][0]
    out = src.with_name(src.stem + ".smile.mp4")
    assert entry["output"] == str(out) and entry["faces"][0]["edited"] is True
    assert entry["video"]["streams_copied"] == ([f"audio #1 ({audio})"] if audio else [])
    assert len(read_frames(out)) == 6


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv"])
def test_mpeg4_takes_a_90_khz_clip(picture, model, tmp_path, out_name):
    src = tmp_path / "dvd.mpg"  # (MPEG program and transport streams count time at 90 kHz, as Android's MP4s do)
    write(src, picture, "mpeg", "mpeg2video", b="4M")
    r = smile_video(src, tmp_path / out_name, strength=2, model=model, codec="mpeg4")
    # (before: exit 1, "internal error ... avcodec_open2(mpeg4)": MPEG-4 counts time in 16 bits)
    assert (r.frames, r.faces_edited, r.codec) == (6, 1, "mpeg4")

    def times(path):
        with av.open(str(path)) as c:
            return [round(float(f.pts * f.time_base), 4) for f in c.decode(video=0)]

    assert times(tmp_path / out_name) == times(src)


def test_a_glob_takes_them_too(picture, tmp_path):
    write(tmp_path / "a.mpg", picture, "mpeg", "mpeg2video", b="4M")
    r = CliRunner().invoke(cli, [str(tmp_path / "*.mpg"), "-s", "2", "--out-dir", str(tmp_path / "out")])
    assert r.exit_code == 0 and (tmp_path / "out" / "a.smile.mp4").is_file(), r.output


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mov"])
def test_raw_dv_whose_demuxer_says_60000_fps_is_written_at_its_own_rate(picture, model, tmp_path, out_name):
    src = tmp_path / "tape.dv"
    write(src, picture, "dv", "dvvideo", size=(720, 576))
    with av.open(str(src)) as c:  # (FFmpeg's DV demuxer: the inverse of its time base; its guessed rate is right)
        s = c.streams.video[0]
        assert (s.average_rate, frame_rate(s), dict(c.metadata).get("timecode")) == (60000, 25, "00:00:00:00")
    # (before: the MP4 and MOV muxers refused the timecode track at 60000 fps: exit 1, "internal error")
    r = smile_video(src, tmp_path / out_name, strength=2, model=model)
    assert (r.frames, r.fps, r.faces_edited) == (6, 25.0, 1)
    with av.open(str(tmp_path / out_name)) as c:
        s = c.streams.video[0]
        assert s.average_rate == 25 and dict(s.metadata)["timecode"] == "00:00:00:00"
        # DV is interlaced, bottom field first (FFmpeg gives its stream no order): so is the result
        assert s.codec_context.field_order == 3 and all(f.interlaced_frame for f in c.decode(s))


class _Stream:
    def __init__(self, average, guessed, base):
        self.average_rate, self.guessed_rate, self.base_rate = average, guessed, base


def test_frame_rate_passes_over_a_rate_no_camera_films():
    assert frame_rate(_Stream(Fraction(30000, 1001), 30, 30)) == Fraction(30000, 1001)
    assert frame_rate(_Stream(240, 240, 240)) == 240  # (a phone's slow motion)
    assert frame_rate(_Stream(60000, 25, 25)) == 25
    assert frame_rate(_Stream(None, None, 90000)) is None


@pytest.mark.parametrize("name", ["cut.mp4", "cut.mov"])
def test_a_recording_cut_off_before_its_index_is_named_as_such(picture, tmp_path, name):
    whole = make_clip(tmp_path / f"whole{name[-4:]}", picture, size=(320, 240), frames=20)
    data = whole.path.read_bytes()
    assert data.rfind(b"moov") > data.find(b"mdat") > 0  # (the index last, as cameras write it)
    (tmp_path / name).write_bytes(data[: len(data) * 2 // 3])
    r = CliRunner().invoke(cli, [str(tmp_path / name), "-s", "2"])
    # (before: "not a readable video (Invalid data found when processing input)")
    assert r.exit_code == 4 and r.output.count("\n") == 1, r.output
    assert f"{name}: an unfinished recording: its pictures are there but not the index (moov)" in r.output
    assert not list(tmp_path.glob("cut.smile*")) and not list(tmp_path.glob(".*"))


def test_other_unreadable_files_keep_ffmpegs_reason(tmp_path):
    (tmp_path / "notes.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 50)
    r = CliRunner().invoke(cli, [str(tmp_path / "notes.mp4"), "-s", "2"])
    assert r.exit_code == 4 and "not a readable video (" in r.output and "unfinished" not in r.output, r.output


def test_a_song_with_a_cover_picture_is_not_said_to_hold_video(picture, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", picture, size=(320, 240), frames=10)
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(picture, (128, 128)))
    with av.open(str(clip.path)) as c, av.open(str(tmp_path / "song.mp4"), "w") as out:
        sound = out.add_stream_from_template(c.streams.audio[0])
        cover = out.add_stream("mjpeg")
        cover.width = cover.height = 128
        cover.pix_fmt, cover.disposition = "yuvj420p", av.stream.Disposition.attached_pic
        for p in c.demux(c.streams.audio[0]):
            if p.dts is not None:
                p.stream = sound
                out.mux(p)
        p = av.Packet(jpeg.tobytes())
        p.stream, p.pts, p.dts = cover, 0, 0
        out.mux(p)
    r = CliRunner().invoke(cli, [str(tmp_path / "song.mp4"), "-s", "2"])
    # (before: "has no video stream (it holds audio, video)")
    assert r.exit_code == 4 and "song.mp4: has no video stream (it holds audio, a cover picture)" in r.output, r.output
