"""Clips as cameras and editors write them: display matrices that turn and mirror, timecode tracks,
MPEG-TS and 3GP files, JPEG-range pixels; and what a clip left as it is reports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av")

from cli.main import cli  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_rotate import DisplayView  # noqa: E402
from smilecore.video_input import side_data_entries  # noqa: E402
from smilecore.video_synth import make_clip  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def display_matrix(path: Path) -> list[int] | None:
    """The first frame's display matrix (the first five of its nine integers), None without one."""
    with av.open(str(path)) as c:
        fr = next(c.decode(video=0))
        for sd in side_data_entries(fr):
            if "DISPLAYMATRIX" in str(sd.type):
                return np.frombuffer(bytes(sd), np.int32)[:5].tolist()
    return None


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("mirror", [False, True])
def test_a_display_view_maps_points_both_ways(k, mirror):
    image = np.arange(5 * 7).reshape(5, 7)
    view = DisplayView(k, mirror)
    shown = view.show(image)
    pts = np.array([[1.0, 2.0], [6.0, 4.0], [0.0, 0.0], [3.0, 1.0]])
    on_view = view.to_shown(pts, image.shape)
    for (x, y), (sx, sy) in zip(pts, on_view):
        assert shown[int(sy), int(sx)] == image[int(y), int(x)]
    assert np.allclose(view.to_stored(on_view, image.shape), pts)


@pytest.mark.parametrize("matrix, k, mirror", [
    ([0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30], 3, False),   # a quarter turn clockwise (a phone held upright)
    ([-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30], 0, True),    # mirrored only (a front camera): not a half turn
    ([65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30], 2, True),    # flipped top to bottom
    ([0, 65536, 0, 65536, 0, 0, 0, 0, 1 << 30], 3, True),     # turned and mirrored
    ([65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30], 0, False),    # as stored
])
def test_a_display_matrix_is_read_whole_not_as_an_angle(matrix, k, mirror):
    view = DisplayView.from_matrix(matrix)
    assert (view.k, view.mirror, view.matrix) == (k, mirror, tuple(matrix))


@pytest.mark.parametrize("rotation, mirror", [(0, True), (-90, True), (180, False)])
def test_a_mirrored_or_turned_clip_is_edited_upright_and_keeps_its_matrix(picture, model, tmp_path, rotation, mirror):
    clip = make_clip(tmp_path / "m.mp4", picture, size=(320, 240), frames=6, rotation=rotation, mirror=mirror,
                     face_height=0.95, audio=False)
    res = smile_video(clip.path, tmp_path / "m.out.mkv", strength=2, model=model)
    assert res.faces_edited == 1, res.tracks
    assert display_matrix(tmp_path / "m.out.mkv") == display_matrix(clip.path) is not None
    box = res.tracks[0]["box"]  # (reported as shown: the face of the upright picture, in its middle)
    assert abs((box[0] + box[2]) / 2 - 160) < 40 and box[3] - box[1] > 40, box


@pytest.mark.parametrize("rotation, nearest", [(10, 0), (100, 90)])
def test_a_display_matrix_that_is_no_quarter_turn_is_said_to_be_rounded(picture, model, tmp_path, rotation, nearest):
    """Before: 30° read as no turn at all (each number of the matrix rounded on its own), without a word."""
    clip = make_clip(tmp_path / "r.mp4", picture, size=(320, 240), frames=6, rotation=rotation, face_height=0.95,
                     audio=False)  # (stored turned by whole quarters: the 10° or 100° matrix's nearest)
    assert DisplayView.from_matrix(display_matrix(clip.path) + [0, 0, 0, 1 << 30]).rounded_from == rotation
    res = smile_video(clip.path, tmp_path / "r.out.mp4", strength=2, model=model)
    assert (f"the display matrix turns the picture by {rotation}°, not a quarter turn: faces were looked for in it "
            f"turned by {nearest}°; the matrix is kept as it is") in res.notes, res.notes
    assert display_matrix(tmp_path / "r.out.mp4") == display_matrix(clip.path)


def test_avi_says_it_cannot_keep_the_display_matrix(picture, model, tmp_path):
    clip = make_clip(tmp_path / "r.mp4", picture, size=(320, 240), frames=4, rotation=90, face_height=0.95, audio=False)
    res = smile_video(clip.path, tmp_path / "r.avi", strength=2, model=model)
    assert any(n.startswith("AVI holds no display matrix: the result plays as stored, without its 90° turn")
               for n in res.notes), res.notes


@pytest.mark.parametrize("ext", [".mov", ".mp4"])
def test_a_clip_with_a_timecode_track_is_edited_and_keeps_its_timecode(picture, model, tmp_path, ext):
    clip = make_clip(tmp_path / f"tc{ext}", picture, size=(320, 240), frames=6, face_height=0.95,
                     timecode="01:00:00:00")
    with av.open(str(clip.path)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "data"]  # (what a camera writes)
    out = tmp_path / f"tc.out{ext}"
    r = run(clip.path, "-s", "2", "-o", out)
    assert r.exit_code == 0, r.output
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "data"]
        assert c.streams.video[0].metadata.get("timecode") == "01:00:00:00"
    r = run(clip.path, "-s", "2", "-o", tmp_path / "tc.out.mkv")  # (Matroska keeps it as a tag)
    assert r.exit_code == 0, r.output
    r = run("detect", clip.path)
    assert r.exit_code == 0 and "face 0: frames 0-5" in r.output, r.output


@pytest.mark.parametrize("ext", [".ts", ".m2ts", ".3gp"])
def test_camcorder_and_phone_containers_are_read_and_written(picture, tmp_path, ext):
    src = make_clip(tmp_path / "src.mp4", picture, size=(320, 240), frames=6, face_height=0.95)
    clip = tmp_path / f"cam{ext}"
    assert run(src.path, "-s", "0", "-o", clip, "--crf", "20").exit_code == 0  # (an encoding asked for: not a copy)
    r = run(clip, "-s", "2", "--json")
    assert r.exit_code == 0, r.output
    out = tmp_path / f"cam.smile{ext}"
    with av.open(str(out)) as c:
        assert c.format.name == ("mpegts" if ext != ".3gp" else "mov,mp4,m4a,3gp,3g2,mj2")
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert json.loads(r.output)["photos"][0]["faces"][0]["edited"] is True


def test_a_video_name_for_a_photos_result_is_explained(tmp_path, astronaut):
    from PIL import Image

    Image.fromarray(astronaut).save(tmp_path / "anim.gif")
    r = run(tmp_path / "anim.gif", "-o", tmp_path / "a.mp4")
    assert r.exit_code == 2
    assert "a.mp4: a video's name, but the input is read as a photo, whose result is a photo" in r.output, r.output


def test_a_jpeg_range_clip_gets_no_note_about_its_pixel_format(picture, model, tmp_path):
    clip = make_clip(tmp_path / "j.mp4", picture, size=(320, 240), frames=4, pix_fmt="yuvj420p", face_height=0.95,
                     audio=False)
    res = smile_video(clip.path, tmp_path / "j.out.mp4", strength=2, model=model)
    assert res.faces_edited == 1 and not [n for n in res.notes if "yuvj420p" in n], res.notes


def test_a_copied_clip_reports_its_own_codec_and_streams(picture, tmp_path):
    src = make_clip(tmp_path / "h.mkv", picture, size=(320, 240), frames=4, face_height=0.95, codec="libx265")
    r = run(src.path, "-s", "0", "-o", tmp_path / "copy.mkv", "--json")
    assert r.exit_code == 0 and (tmp_path / "copy.mkv").read_bytes() == src.path.read_bytes(), r.output
    video = json.loads(r.output)["photos"][0]["video"]
    assert video["copied"] is True and video["codec"] == "hevc"
    assert video["streams_copied"] == ["video #0 (hevc)", "audio #1 (aac)"]
    r = run(src.path, "-s", "2", "-o", tmp_path / "edit.mkv", "--json")
    video = json.loads(r.output)["photos"][0]["video"]
    assert video["copied"] is False and video["codec"] == "h264" and video["streams_copied"] == ["audio #1 (aac)"]


def test_a_clip_with_no_face_is_copied_only_when_no_encoding_is_asked_for(picture, tmp_path):
    blank = make_clip(tmp_path / "blank.mp4", np.full_like(picture, 90), size=(160, 120), frames=4, audio=False)
    r = run(blank.path, "--keep-unchanged", "-o", tmp_path / "same.mp4")
    assert r.exit_code == 0 and (tmp_path / "same.mp4").read_bytes() == blank.path.read_bytes()
    r = run(blank.path, "--keep-unchanged", "-o", tmp_path / "hevc.mp4", "--codec", "hevc")
    assert r.exit_code == 0 and "re-encoded unchanged" in r.output, r.output
    with av.open(str(tmp_path / "hevc.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
    for name, copied, codec in (("j.mp4", True, "h264"), ("j.mkv", False, "h264"), ("j2.mp4", False, "hevc")):
        more = ["--codec", "hevc"] if codec == "hevc" else []
        r = run(blank.path, "--keep-unchanged", "-o", tmp_path / name, "--json", *more)
        entry = json.loads(r.output)["photos"][0]  # (before: "video" and "size" were null)
        assert entry["size"] == [160, 120] and entry["video"]["frames"] == 4, entry
        assert entry["video"]["copied"] is copied and entry["video"]["codec"] == codec, entry


def _pcm_clip(path: Path, picture, start: float = 0.0) -> Path:
    """A clip with stereo PCM sound (as cameras and editors write into MKV and MOV), 1 s from ``start`` s."""
    src = make_clip(path.with_name("v.mp4"), picture, size=(320, 240), frames=10, face_height=0.95, audio=False)
    with av.open(str(src.path)) as c, av.open(str(path), "w") as out:
        vs = out.add_stream_from_template(c.streams.video[0])
        aus = out.add_stream("pcm_s16le", rate=44100)
        aus.layout = "stereo"
        for p in c.demux(c.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                out.mux(p)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100) * 32767).astype(np.int16)
        for k in range(0, 44100, 1024):
            x = np.repeat(tone[k:k + 1024], 2)[None, :]  # (interleaved stereo)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="s16", layout="stereo")
            f.sample_rate, f.pts = 44100, k + int(start * 44100)
            for p in aus.encode(f):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return path


@pytest.mark.parametrize("src_kind, out_name, codec", [("aac", "o.webm", "opus"), ("pcm", "o.mp4", "aac")])
def test_sound_a_container_cannot_take_is_re_encoded_not_dropped(picture, model, tmp_path, src_kind, out_name, codec):
    if src_kind == "aac":
        src = make_clip(tmp_path / "a.mp4", picture, size=(320, 240), frames=10, face_height=0.95).path
    else:
        src = _pcm_clip(tmp_path / "a.mkv", picture)
    res = smile_video(src, tmp_path / out_name, strength=2, model=model)
    assert any(n.startswith("audio #1") and "as it is: re-encoded as" in n for n in res.notes), res.notes
    with av.open(str(src)) as c:
        before = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
    with av.open(str(tmp_path / out_name)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert c.streams.audio[0].codec_context.name == codec
        seconds = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
    assert before > 0.3 and abs(seconds - before) < 0.05, (seconds, before)  # (the whole sound, give or take priming)


def test_listing_a_clips_faces_reads_no_smile_model(picture, tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", picture, size=(320, 240), frames=4, face_height=0.95, audio=False)
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "missing.onnx"))
    r = run("detect", clip.path)
    assert r.exit_code == 0 and "c.mp4: face 0: frames 0-3" in r.output, r.output


def test_a_deep_4_2_2_clip_into_webm_keeps_its_sampling_in_8_bits(picture, model, tmp_path):
    clip = make_clip(tmp_path / "p.mkv", picture, size=(320, 240), frames=4, pix_fmt="yuv422p10le", face_height=0.95,
                     audio=False)
    res = smile_video(clip.path, tmp_path / "p.webm", strength=2, model=model)
    with av.open(str(tmp_path / "p.webm")) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv422p"
    assert "yuv422p10le video written as 8-bit yuv422p (vp9 has no deeper format)" in res.notes, res.notes


def test_no_face_in_a_clip_of_two_video_streams_says_which_was_read(picture, tmp_path):
    blank = make_clip(tmp_path / "b.mp4", np.full_like(picture, 90), size=(160, 120), frames=4, audio=False)
    face = make_clip(tmp_path / "f.mp4", picture, size=(160, 120), frames=4, audio=False, face_height=0.95)
    two = tmp_path / "two.mkv"
    with av.open(str(blank.path)) as a, av.open(str(face.path)) as b, av.open(str(two), "w") as out:
        streams = [out.add_stream_from_template(src.streams.video[0]) for src in (a, b)]  # (the face: 2nd angle only)
        for src, o in zip((a, b), streams):
            for p in src.demux(src.streams.video[0]):
                if p.dts is not None:
                    p.stream = o
                    out.mux(p)
    r = run(two, "-o", tmp_path / "o.mkv")
    assert r.exit_code == 3 and "no face found in any frame of the video (in its video stream #0, the first of 2)" in r.output


@pytest.mark.parametrize("out_name, codec", [("late.webm", "opus"), ("late.ts", "aac")])
def test_re_encoded_sound_keeps_its_place_in_time(picture, model, tmp_path, out_name, codec):
    """Sound that starts after the picture (or a camera's clip whose clock starts at 10 s) starts there still;
    PCM, which MPEG-TS's muxer would write as a stream no player reads, is re-encoded."""
    src = _pcm_clip(tmp_path / "late.mkv", picture, start=0.5)
    res = smile_video(src, tmp_path / out_name, strength=2, model=model)
    assert f"audio #1 (pcm_s16le) cannot go into the {'webm' if codec == 'opus' else 'mpegts'} file as it is" in res.notes[0]

    def first(path):
        with av.open(str(path)) as c:
            v = next(c.decode(video=0))
            a = next(c.decode(audio=0))
            return float(a.pts * a.time_base) - float(v.pts * v.time_base), c.streams.audio[0].codec_context.name

    (gap_before, _), (gap_after, name) = first(src), first(tmp_path / out_name)
    assert name == codec and abs(gap_before - 0.5) < 0.01 and abs(gap_after - gap_before) < 0.03, (gap_before, gap_after)


def _subtitled_clip(path: Path, picture) -> Path:
    """A Matroska clip with SubRip subtitles (one cue in italics) in English, after a test clip's picture."""
    from fractions import Fraction

    clip = make_clip(path.with_name("plain.mkv"), picture, size=(320, 240), frames=25, face_height=0.95, audio=False)
    with av.open(str(clip.path)) as i, av.open(str(path), "w") as o:
        vs = o.add_stream_from_template(i.streams.video[0])
        sub = o.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        sub.metadata["language"] = "eng"
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
        for t, text in ((100, "Hello <i>there</i>"), (600, "Smile")):
            p = av.Packet(text.encode())
            p.pts = p.dts = t
            p.duration, p.time_base, p.stream = 300, sub.time_base, sub
            o.mux(p)
    return path


@pytest.mark.parametrize("out_name, codec", [("s.mp4", "mov_text"), ("s.webm", "webvtt"), ("s.mov", "mov_text")])
def test_text_subtitles_a_container_cannot_take_are_converted_not_dropped(picture, model, tmp_path, out_name, codec):
    src = _subtitled_clip(tmp_path / "sub.mkv", picture)
    res = smile_video(src, tmp_path / out_name, strength=2, model=model)
    assert res.faces_edited == 1
    assert any(n.startswith("subtitle #1 (srt) cannot go into the") and n.endswith(f"converted to {codec}")
               for n in res.notes), res.notes
    with av.open(str(tmp_path / out_name)) as c:
        s = c.streams.subtitles[0]
        assert s.codec_context.name == codec and s.language == "eng"
        cues = []
        for p in c.demux(s):
            if p.size > 2:  # (mov_text writes an empty sample in each gap: two bytes)
                text = bytes(p)[2:2 + int.from_bytes(bytes(p)[:2], "big")] if codec == "mov_text" else bytes(p)
                cues.append((int(p.pts * p.time_base * 1000), int(p.duration * p.time_base * 1000), text))
    plain = b"Hello there" if codec == "mov_text" else b"Hello <i>there</i>"  # (mov_text: italics in a style box)
    assert cues == [(100, 300, plain), (600, 300, b"Smile")], cues
    if out_name == "s.mp4":  # and back: Matroska has no place for mov_text
        again = smile_video(tmp_path / out_name, tmp_path / "again.mkv", strength=2, model=model)
        assert "subtitle #1 (mov_text) cannot go into the matroska file as it is: converted to subrip" in again.notes
        with av.open(str(tmp_path / "again.mkv")) as c:
            assert [(int(p.pts), bytes(p)) for p in c.demux(c.streams.subtitles[0]) if p.size] == [
                (100, b"Hello <i>there</i>"), (600, b"Smile")]


def test_subtitles_mpeg_ts_cannot_hold_are_left_out_saying_why(picture, model, tmp_path):
    src = _subtitled_clip(tmp_path / "sub.mkv", picture)
    res = smile_video(src, tmp_path / "s.ts", strength=2, model=model)
    assert "stream #1 (subtitle) cannot go into the mpegts file and was left out (MPEG-TS does not take srt)" in res.notes
    with av.open(str(tmp_path / "s.ts")) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_the_last_progress_event_has_no_time_left_rather_than_none():
    """Before: eta was None at the last frame, which the worker protocol keeps for clips of unknown length."""
    from smilecore.video import Progress

    assert Progress(frame=75, total=75, elapsed=3.0).eta == 0
    assert Progress(frame=80, total=75, elapsed=3.0).eta == 0  # (a length the container guessed short)
    assert Progress(frame=25, total=75, elapsed=1.0).eta == pytest.approx(2.0)
    assert Progress(frame=25, total=None, elapsed=1.0).eta is None


def _ffmpeg_matrix(angle: float, hflip: bool, scale: float = 1.0) -> list[int]:
    """A display matrix as FFmpeg's av_display_rotation_set, then av_display_matrix_flip, write it."""
    import math

    r = -math.radians(angle)
    c, s = math.cos(r) * scale, math.sin(r) * scale
    m = [round(c * 65536), round(-s * 65536), 0, round(s * 65536), round(c * 65536), 0, 0, 0, 1 << 30]
    if hflip:
        m[0], m[3], m[6] = -m[0], -m[3], -m[6]
    return m


@pytest.mark.parametrize("angle", [10, 80, 100, 190, 350])
@pytest.mark.parametrize("hflip", [False, True])
def test_a_turn_off_the_quarters_is_read_as_its_nearest_quarter_mirrored_or_not(angle, hflip):
    """Before: a mirrored matrix turned by 10° was read as a half turn, unmirrored: faces searched upside down."""
    near = DisplayView.from_matrix(_ffmpeg_matrix(90 * round(angle / 90), hflip))
    view = DisplayView.from_matrix(_ffmpeg_matrix(angle, hflip))
    assert (view.k, view.mirror) == (near.k, near.mirror) and view.rounded_from is not None


def test_a_matrix_that_only_scales_is_no_turn():
    view = DisplayView.from_matrix(_ffmpeg_matrix(0, False, scale=2.0))
    assert (view.k, view.mirror, view.rounded_from) == (0, False, None)
