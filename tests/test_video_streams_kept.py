"""What a clip carries beside its picture, through `smile`: each track's dispositions (default, commentary,
forced) and title, cover art, subtitle cues at their own times (overlapping, without an end, after the picture
ends), data streams in MPEG-TS, chapters; and what a container cannot hold, said in a note."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

av = pytest.importorskip("av")

from smilecore.video import smile_video  # noqa: E402
from smilecore.video_synth import make_clip  # noqa: E402

DEFAULT, COMMENT, FORCED, COVER = 1, 8, 64, 1024
CUES = ((0, 1000, "First"), (500, 1000, "Overlapping"), (1600, 0, "No end"), (3000, 500, "After the picture"))


@pytest.fixture
def rich(picture, tmp_path) -> Path:
    """A Matroska clip (1 s of picture) with two sound tracks (main, commentary), SubRip cues (one overlapping the
    one before, one without an end, one after the picture ends), a JPEG cover and two chapters."""
    clip = make_clip(tmp_path / "plain.mkv", picture, size=(320, 240), frames=25, face_height=0.95)
    cover = io.BytesIO()
    Image.fromarray(picture).resize((64, 64)).save(cover, "JPEG")
    path = tmp_path / "rich.mkv"
    with av.open(str(clip.path)) as i, av.open(str(path), "w") as o:
        vs = o.add_stream_from_template(i.streams.video[0])
        sounds = [o.add_stream_from_template(i.streams.audio[0]) for _ in range(2)]
        for s, (title, lang, flag) in zip(sounds, (("Main mix", "eng", DEFAULT), ("Director", "fra", COMMENT))):
            s.metadata.update(title=title, language=lang)
            s.disposition = flag
        sub = o.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        sub.metadata.update(title="Signs", language="eng")
        sub.disposition = FORCED
        o.add_attachment("cover.jpg", "image/jpeg", cover.getvalue())
        o.set_chapters([{"id": k + 1, "start": k * 500, "end": k * 500 + 500, "time_base": Fraction(1, 1000),
                         "metadata": {"title": f"Part {k + 1}"}} for k in range(2)])
        for p in i.demux():
            if p.dts is None:
                continue
            if p.stream.type == "video":
                p.stream = vs
                o.mux(p)
            else:
                for s in sounds:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.duration, q.time_base, q.stream = p.pts, p.dts, p.duration, p.time_base, s
                    o.mux(q)
        for start, length, text in CUES:
            p = av.Packet(text.encode())
            p.pts = p.dts = start
            p.duration, p.time_base, p.stream = length, sub.time_base, sub
            o.mux(p)
    return path


def _with_cues(picture, path: Path, cues) -> Path:
    """A Matroska clip (10 frames of picture) with SubRip ``cues``: (start ms, duration ms, text bytes)."""
    clip = make_clip(path.with_name("plain.mkv"), picture, size=(320, 240), frames=10, face_height=0.95, audio=False)
    with av.open(str(clip.path)) as i, av.open(str(path), "w") as o:
        vs = o.add_stream_from_template(i.streams.video[0])
        sub = o.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
        for start, length, text in cues:
            p = av.Packet(text)
            p.pts = p.dts = start
            p.duration, p.time_base, p.stream = length, sub.time_base, sub
            o.mux(p)
    return path


def _tracks(path: Path) -> list[tuple]:
    """(type, dispositions, title) of the sound and subtitle tracks; a subtitle track's "default" left aside
    (MP4's muxer gives it to the first track of each kind)."""
    with av.open(str(path)) as c:
        return [(s.type, int(s.disposition) & ~(DEFAULT if s.type == "subtitle" else 0),
                 s.metadata.get("title") or s.metadata.get("name")) for s in c.streams if s.type in ("audio", "subtitle")]


def _cues(path: Path) -> list[tuple[int, int, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.subtitles[0]
        out = []
        for p in c.demux(s):
            if p.size > 2:
                data = bytes(p)
                text = data[2:2 + int.from_bytes(data[:2], "big")] if s.codec_context.name == "mov_text" else data
                out.append((round(p.pts * p.time_base * 1000), round(p.duration * p.time_base * 1000), text))
        return out


def test_into_mp4_every_track_keeps_its_flags_title_and_cues_their_start(model, rich, tmp_path):
    res = smile_video(rich, tmp_path / "o.mp4", strength=2, model=model)
    assert res.faces_edited == 1
    assert not any("truncated" in n for n in res.notes), res.notes  # (the cues run past the picture: no damage)
    assert _tracks(tmp_path / "o.mp4") == [("audio", DEFAULT, "Main mix"), ("audio", COMMENT, "Director"),
                                           ("subtitle", FORCED, "Signs")]
    # mov_text samples may not overlap: a cue ends where the next begins, and one without an end is shown until
    # the next one (before: the overlapping cue and all after it were moved later)
    assert _cues(tmp_path / "o.mp4") == [(0, 500, b"First"), (500, 1000, b"Overlapping"), (1600, 1400, b"No end"),
                                         (3000, 500, b"After the picture")]
    with av.open(str(tmp_path / "o.mp4")) as c:
        covers = [s for s in c.streams if s.disposition & COVER]
        assert len(covers) == 1 and sum(1 for p in c.demux(covers[0]) if p.size) == 1
        assert [ch["metadata"].get("title") for ch in c.chapters()] == ["Part 1", "Part 2"]


def test_into_matroska_the_cover_stays_an_attachment_and_titles_come_from_mp4_names(model, rich, tmp_path):
    smile_video(rich, tmp_path / "o.mp4", strength=2, model=model)
    smile_video(tmp_path / "o.mp4", tmp_path / "back.mkv", strength=2, model=model)
    assert _tracks(tmp_path / "back.mkv") == [("audio", DEFAULT, "Main mix"), ("audio", COMMENT, "Director"),
                                              ("subtitle", FORCED, "Signs")]
    with av.open(str(tmp_path / "back.mkv")) as c:
        assert [s.metadata.get("filename") for s in c.streams if s.disposition & COVER] == ["cover.jpg"]


def test_what_avi_cannot_hold_is_named(model, rich, tmp_path):
    res = smile_video(rich, tmp_path / "o.avi", strength=2, model=model)
    assert "the cover art (stream #4) was left out (avi holds none; write .mp4 or .mkv to keep it)" in res.notes
    assert "2 chapters left out (AVI holds none; write .mkv or .mp4 to keep them)" in res.notes
    with av.open(str(tmp_path / "o.avi")) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "audio"]


def test_a_data_stream_stays_in_mpeg_ts(model, picture, tmp_path):
    clip = make_clip(tmp_path / "plain.ts", picture, size=(320, 240), frames=10, face_height=0.95, audio=False)
    src = tmp_path / "klv.ts"
    with av.open(str(clip.path)) as i, av.open(str(src), "w") as o:
        vs = o.add_stream_from_template(i.streams.video[0])
        data = o.add_data_stream("klv")
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
                q = av.Packet(b"\x06\x0e\x2b\x34" + bytes(12))
                q.pts, q.dts, q.time_base, q.stream = p.pts, p.dts, p.time_base, data
                o.mux(q)
    res = smile_video(src, tmp_path / "o.ts", strength=2, model=model)
    assert not any("left out" in n for n in res.notes), res.notes
    with av.open(str(tmp_path / "o.ts")) as c:
        assert [s.type for s in c.streams] == ["video", "data"]
        assert sum(1 for p in c.demux(c.streams[1]) if p.size) == 10


def test_a_cue_the_conversion_refuses_costs_that_cue_not_the_clip(model, picture, tmp_path):
    """Before: a SubRip cue in Latin-1 made the whole clip fail ('its subtitle stream cannot be copied')."""
    src = _with_cues(picture, tmp_path / "latin1.mkv", ((0, 100, b"Caf\xe9 au lait"), (200, 100, b"Smile")))
    res = smile_video(src, tmp_path / "o.mp4", strength=2, model=model)
    assert "subtitle #1: 1 cue the conversion refused (not UTF-8 text, or too long) left out" in res.notes, res.notes
    assert _cues(tmp_path / "o.mp4") == [(200, 100, b"Smile")]


@pytest.mark.parametrize("fmt, encoder, held", [("webm", "webvtt", False), ("mp4", "mov_text", True)])
def test_a_cue_with_a_duration_goes_in_when_it_comes_but_into_mov_text(tmp_path, fmt, encoder, held):
    """Held until the next cue, a cue landed in Matroska far from its place in the file (no index there) when
    cues were sparse; only mov_text, whose cues may not overlap, waits for the next one."""
    from smilecore.video_audio import RecodedText

    src = tmp_path / "s.mkv"
    with av.open(str(src), "w") as o:
        sub = o.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        for start, text in ((1000, b"Early"), (60000, b"Late")):
            p = av.Packet(text)
            p.pts = p.dts = start
            p.duration, p.time_base, p.stream = 500, sub.time_base, sub
            o.mux(p)

    class Recording:
        def __init__(self, real):
            self.real, self.muxed = real, []

        def add_stream(self, *a, **k):
            return self.real.add_stream(*a, **k)

        def mux(self, packet):
            self.muxed.append(int(packet.pts))
            self.real.mux(packet)

    with av.open(str(src)) as c, av.open(str(tmp_path / f"o.{fmt}"), "w") as real:
        out = Recording(real)
        conv = RecodedText(av, c.streams.subtitles[0], out, encoder)
        real.start_encoding()
        first, second = [p for p in c.demux() if p.size]
        conv.mux(first, out)
        assert out.muxed == ([] if held else [1000])
        conv.mux(second, out)
        conv.flush(out)
        assert out.muxed == [1000, 60000]


def test_two_cues_at_one_time_share_one_mov_text_sample(model, picture, tmp_path):
    """Before: the first of two cues starting together was shown for 0 ms (mov_text samples may not overlap)."""
    src = _with_cues(picture, tmp_path / "two.mkv", ((0, 0, b"Ann: hello"), (0, 800, b"Bob: hi"), (1500, 500, b"Later")))
    smile_video(src, tmp_path / "o.mp4", strength=2, model=model)
    assert _cues(tmp_path / "o.mp4") == [(0, 800, b"Ann: hello\nBob: hi"), (1500, 500, b"Later")]
