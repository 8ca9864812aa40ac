"""Interlaced clips stay interlaced, in their field order; HEVC in MP4 and MOV is tagged as Apple's players
read it (smilecore.video_fields)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av")

from cli.main import cli  # noqa: E402
from smilecore.video import smile_video  # noqa: E402
from smilecore.video_synth import make_clip, read_frames  # noqa: E402

SIZE = (320, 240)


def fields_of(path) -> tuple[int, list[bool]]:
    """The video stream's field order (FFmpeg's AVFieldOrder: 2 top first, 3 bottom first, 1 progressive) and
    whether each decoded frame is interlaced."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.field_order, [f.interlaced_frame for f in c.decode(s)]


@pytest.mark.parametrize("order, expected", [("tff", 2), ("bff", 3)])
@pytest.mark.parametrize("out_name, codec", [("out.mkv", None), ("out.mp4", None), ("out.mts", None),
                                             ("out.avi", "mpeg4")])
def test_an_interlaced_clip_is_written_interlaced_in_its_field_order(picture, model, tmp_path, order, expected,
                                                                     out_name, codec):
    src = make_clip(tmp_path / "camcorder.mkv", picture, size=SIZE, frames=8, audio=False, fields=order)
    assert fields_of(src.path) == (expected, [True] * 8)
    dst = tmp_path / out_name
    r = smile_video(src.path, dst, strength=2, model=model, codec=codec)
    assert r.frames == 8 and r.faces_edited == 1 and not any("interlaced" in n for n in r.notes), r.notes
    order_out, interlaced = fields_of(dst)
    assert interlaced == [True] * 8  # (before: progressive frames, which players no longer deinterlace)
    if not out_name.endswith(".avi"):  # (AVI has no place for the order: the MPEG-4 stream says it)
        assert order_out == expected
    before, after = read_frames(src.path), read_frames(dst)
    assert max(float(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(before, after)) > 40  # (edited)


def test_vp9_has_no_interlaced_coding_and_says_so(picture, model, tmp_path):
    src = make_clip(tmp_path / "camcorder.mkv", picture, size=SIZE, frames=6, audio=False, fields="tff")
    r = smile_video(src.path, tmp_path / "out.webm", strength=2, model=model)
    assert any(n.startswith("interlaced video (top field first) written as progressive frames: vp9") for n in r.notes), r.notes
    assert fields_of(tmp_path / "out.webm")[1] == [False] * 6


def test_hevc_is_written_progressive_with_a_note(picture, model, tmp_path):
    # (x265 marks each picture a field (field_seq_flag) but FFmpeg hands it whole frames: players showed two frames
    # woven into one, at half the rate; FFmpeg's own decoder hid it, saying each frame was interlaced)
    src = make_clip(tmp_path / "camcorder.mkv", picture, size=SIZE, frames=6, audio=False, fields="bff")
    r = smile_video(src.path, tmp_path / "out.mkv", strength=2, model=model, codec="hevc")
    assert ("interlaced video (bottom field first) written as progressive frames: hevc is written as frames, which "
            "FFmpeg's x265 cannot mark as interlaced (use --codec h264 to keep it interlaced)") in r.notes, r.notes
    order, interlaced = fields_of(tmp_path / "out.mkv")
    assert order not in (2, 3) and interlaced == [False] * 6


def test_an_interlaced_ten_bit_clip_keeps_its_fields_in_h264_not_hevc(picture, model, tmp_path):
    src = make_clip(tmp_path / "camcorder.mts", picture, size=SIZE, frames=6, audio=False, fields="tff",
                    pix_fmt="yuv420p10le")
    r = smile_video(src.path, tmp_path / "out.mov", strength=2, model=model)
    assert r.codec == "h264" and not r.notes, r.notes  # (a progressive 10-bit clip gets HEVC: test_video_read_only)
    assert fields_of(tmp_path / "out.mov") == (2, [True] * 6)
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p10le"


def mpeg2_fields(path, picture, size) -> None:
    """Six interlaced MPEG-2 frames of ``picture`` (a DVD's program stream), bottom field first."""
    w, h = size
    face = cv2.resize(picture, (int(picture.shape[1] * 0.9 * h / picture.shape[0]), int(0.9 * h)))
    canvas = np.full((h, w, 3), 120, np.uint8)
    canvas[(h - face.shape[0]) // 2:(h - face.shape[0]) // 2 + face.shape[0], (w - face.shape[1]) // 2:(w - face.shape[1]) // 2 + face.shape[1]] = face
    with av.open(str(path), "w", format="mpeg") as out:
        vs = out.add_stream("mpeg2video", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        vs.codec_context.options = {"b": "4M"}
        for i in range(6):
            fr = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            fr.pts = i
            for p in vs.encode(fr):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)


def test_an_interlaced_height_whose_fields_split_a_chroma_row_is_written_progressive(picture, model, tmp_path):
    mpeg2_fields(tmp_path / "dvd.mpg", picture, (320, 242))
    assert fields_of(tmp_path / "dvd.mpg") == (3, [True] * 6)
    r = smile_video(tmp_path / "dvd.mpg", tmp_path / "out.mp4", strength=2, model=model)
    # (before: exit 1, "internal error ... avcodec_open2(libx264 ... bff=1)": x264 refuses such fields)
    assert r.frames == 6 and r.faces_edited == 1
    assert r.notes == ["interlaced video (bottom field first) written as progressive frames: h264 codes fields only "
                       "where the height is a multiple of 4, not 242"]
    assert fields_of(tmp_path / "out.mp4")[1] == [False] * 6


def test_a_progressive_clip_stays_progressive(picture, model, tmp_path):
    src = make_clip(tmp_path / "phone.mp4", picture, size=SIZE, frames=6, audio=False)
    r = smile_video(src.path, tmp_path / "out.mp4", strength=2, model=model)
    assert fields_of(tmp_path / "out.mp4") == (1, [False] * 6) and not r.notes


@pytest.mark.parametrize("out_name", ["out.mov", "out.mp4"])
def test_hevc_in_mp4_and_mov_is_tagged_hvc1_as_phones_write_it(picture, model, tmp_path, out_name):
    src = make_clip(tmp_path / "phone.mov", picture, size=SIZE, frames=6, audio=False, codec="libx265")
    smile_video(src.path, tmp_path / out_name, strength=2, model=model, codec="hevc")
    with av.open(str(tmp_path / out_name)) as c:  # (FFmpeg's default, hev1, is refused by QuickTime and iOS)
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_tag) == ("hevc", "hvc1")
        assert len(list(c.decode(s))) == 6


PHONE_KEYS = {"com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/",
              "com.apple.quicktime.creationdate": "2024-05-01T12:20:30+0200", "com.apple.quicktime.make": "Apple",
              "com.apple.quicktime.model": "iPhone 15", "com.android.capture.fps": "240.000000"}


def as_a_phone_writes_it(src, dst):
    """``src``'s streams remuxed into a MOV whose metadata is in the keys atom, with a phone's keys and a title."""
    with av.open(str(src)) as c, av.open(str(dst), "w", format="mov", options={"movflags": "use_metadata_tags"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in c.streams}
        out.metadata.update({**PHONE_KEYS, "title": "Paris"})
        for p in c.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                out.mux(p)


@pytest.mark.parametrize("out_name", ["out.mov", "out.mp4", "out.mkv"])
def test_a_phones_place_date_and_make_are_kept(picture, model, tmp_path, out_name):
    clip = make_clip(tmp_path / "plain.mp4", picture, size=SIZE, frames=6)
    as_a_phone_writes_it(clip.path, tmp_path / "phone.mov")
    r = smile_video(tmp_path / "phone.mov", tmp_path / out_name, strength=2, model=model)
    assert r.faces_edited == 1 and r.streams_copied == ["audio #1 (aac)"]
    with av.open(str(tmp_path / out_name)) as c:  # (before: MOV and MP4 lost every key but the title)
        tags = {k.lower(): v for k, v in c.metadata.items()}
        assert {k.lower(): v for k, v in PHONE_KEYS.items()}.items() <= tags.items() and tags["title"] == "Paris"
        assert len(list(c.decode(video=0))) == 6


@pytest.mark.parametrize("out_name, options, codec", [
    ("out.mov", {}, "hevc"), ("out.mkv", {}, "hevc"), ("out.mp4", {"crf": 0}, "hevc"),
    ("out.mp4", {"codec": "h264"}, "h264"),  # (asked for)
    ("out.mkv", {"crf": 55}, "h264"),        # (a crf x265 does not take: H.264, which does)
    ("out.avi", {}, "h264"),                 # (AVI holds no HEVC here)
])
def test_a_ten_bit_clip_gets_hevc_not_h264_high_10_which_phones_do_not_play(picture, model, tmp_path, out_name,
                                                                            options, codec):
    src = make_clip(tmp_path / "hdr.mov", picture, size=SIZE, frames=5, audio=False, codec="libx265",
                    pix_fmt="yuv420p10le")
    r = smile_video(src.path, tmp_path / out_name, strength=2, model=model, **options)
    with av.open(str(tmp_path / out_name)) as c:
        cc = c.streams.video[0].codec_context
        assert (r.codec, cc.name, cc.format.name) == (codec, codec, "yuv420p10le") and not r.notes, r.notes


def test_without_x265_a_ten_bit_clip_gets_h264_and_asking_for_hevc_says_why(picture, model, tmp_path, monkeypatch):
    # (PyAV 14.3's wheels have no libx265: a 10-bit clip stopped with exit 1, "internal error UnknownCodecError")
    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx265"})
    src = make_clip(tmp_path / "hdr.mov", picture, size=SIZE, frames=5, audio=False, pix_fmt="yuv420p10le")
    r = smile_video(src.path, tmp_path / "out.mov", strength=2, model=model)
    assert r.codec == "h264" and len(read_frames(tmp_path / "out.mov")) == 5
    r = CliRunner().invoke(cli, [str(src.path), "-s", "2", "-o", str(tmp_path / "hevc.mov"), "--codec", "hevc"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert ("codec hevc: this PyAV's FFmpeg has no libx265 encoder (choose another --codec, or a PyAV with it: "
            'pip install -U "av>=15")') in r.output and not (tmp_path / "hevc.mov").exists()


def test_an_eight_bit_clip_still_gets_h264(picture, model, tmp_path):
    src = make_clip(tmp_path / "phone.mov", picture, size=SIZE, frames=5, audio=False, codec="libx265")
    assert smile_video(src.path, tmp_path / "out.mov", strength=2, model=model).codec == "h264"


HDR10 = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def light_levels_of(path) -> dict[str, list[int]]:
    """The first frame's HDR10 side data: mastering display and content light level, as int32 lists."""
    from smilecore.video_input import side_data_entries

    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return {str(sd.type).split(".")[-1]: np.frombuffer(bytes(sd), np.int32).tolist() for sd in side_data_entries(frame)
                if "MASTERING" in str(sd.type) or "LIGHT_LEVEL" in str(sd.type)}


@pytest.mark.parametrize("codec", [None, "h264"])
def test_hdr10_light_levels_are_kept(picture, model, tmp_path, codec):
    src = tmp_path / "hdr10.mp4"
    plain = make_clip(tmp_path / "plain.mkv", picture, size=SIZE, frames=5, audio=False, crf=0)
    with av.open(str(src), "w") as out:  # (PQ, BT.2020, the levels as x265 writes them for a phone)
        vs = out.add_stream("libx265", rate=25)
        vs.width, vs.height, vs.pix_fmt = *SIZE, "yuv420p10le"
        vs.codec_context.color_primaries, vs.codec_context.color_trc, vs.codec_context.colorspace = 9, 16, 9
        vs.codec_context.options = {"preset": "ultrafast", "x265-params": f"log-level=error:master-display={HDR10}:max-cll=1000,400"}
        for i, rgb in enumerate(read_frames(plain.path)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p10le")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    levels = light_levels_of(src)
    assert levels["CONTENT_LIGHT_LEVEL"] == [1000, 400] and levels["MASTERING_DISPLAY_METADATA"][:2] == [34000, 50000]
    r = smile_video(src, tmp_path / "out.mp4", strength=2, model=model, codec=codec)
    assert r.faces_edited == 1 and r.codec == (codec or "hevc")
    assert light_levels_of(tmp_path / "out.mp4") == levels  # (before: none; players tone-mapped with guessed levels)
