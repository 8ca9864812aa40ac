"""The streams beside the video: copied packet for packet where the output container takes them, else
the sound re-encoded into a codec it takes (AAC for MP4, Opus for WebM...), text subtitles converted to the
container's own text format (mov_text for MP4, WebVTT for WebM, SubRip for Matroska), and other streams left out.

Whether a container takes a stream as it is cannot be read from FFmpeg's tables (MP4 lists PCM and then
refuses a stereo PCM track with no channel order; MPEG-TS lists nothing): each stream is tried, with its
first packet, in a small output of the same kind in memory (:func:`streams_that_fit`).
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

from .video_input import open_input

#: The encoder for sound that a container cannot take as it is (FFmpeg encoder names).
AUDIO_FOR = {"webm": "libopus", "mp4": "aac", "mov": "aac", "3gp": "aac", "mpegts": "aac", "avi": "libmp3lame",
             "matroska": "aac"}
#: The text subtitle format of a container that cannot take the source's (SubRip, ASS...) as it is.
TEXT_FOR = {"mp4": "mov_text", "mov": "mov_text", "3gp": "mov_text", "webm": "webvtt", "matroska": "subrip"}
#: How long a converted subtitle cue with no duration of its own is shown when no cue follows it.
LAST_CUE_SECONDS = 3
#: Packets read, at most, looking for each stream's first packet to try.
PROBE_PACKETS = 2000
#: What MPEG-TS takes, by codec name: its muxer writes anything, as a data stream no player reads.
TS_CODECS = frozenset({"aac", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "s302m", "dvb_subtitle",
                       "dvb_teletext", "hdmv_pgs_subtitle", "h264", "hevc", "mpeg2video", "mpeg4"})


def ff_text(exc: BaseException) -> str:
    """An FFmpeg error as one short line."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160]


def stream_name(stream) -> str:
    """A stream as reports name it: "audio #1 (aac)"."""
    return f"{stream.type} #{stream.index} ({stream.codec_context.name if stream.codec_context else '?'})"


def streams_that_fit(av, src: str | Path, indices: list[int], out_format: str) -> dict[int, str | None]:
    """For each stream index of ``src`` in ``indices``: None when an ``out_format`` container takes it as it
    is, else FFmpeg's reason (one line)."""
    first: dict[int, object] = {}
    result: dict[int, str | None] = {}
    with open_input(av, src) as c:
        wanted = set(indices)
        try:
            for k, packet in enumerate(c.demux([c.streams[i] for i in indices] if indices else [])):
                if k >= PROBE_PACKETS or not wanted:
                    break
                i = packet.stream.index
                if i in wanted and packet.dts is not None and packet.size:
                    first[i] = packet
                    wanted.discard(i)
        except av.FFmpegError:  # (a damaged file: what was found is tried; the rest says so when it is read)
            pass
        for i in indices:
            s = c.streams[i]
            name = s.codec_context.name if s.codec_context else None
            if s.type == "attachment" and out_format != "matroska":  # (a font of the subtitles: only Matroska has a place)
                result[i] = f"{out_format} holds no attachments"
                continue
            if out_format == "mpegts" and name not in TS_CODECS and s.type != "data":  # (KLV, ID3: tried below)
                result[i] = f"MPEG-TS does not take {name or 'this stream'}"
                continue
            try:
                with av.open(io.BytesIO(), "w", format=out_format) as out:
                    o = out.add_stream_from_template(s)
                    out.start_encoding()  # (the header: where a stream with no packet yet is refused)
                    if i in first:
                        packet = first[i]
                        packet.stream = o
                        out.mux(packet)
                result[i] = None
            except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
                result[i] = ff_text(exc)
    return result


class CopiedStream:
    """A stream copied packet for packet, ``shift`` seconds earlier (AVI: its picture starts at 0)."""

    def __init__(self, ostream) -> None:
        self.ostream = ostream
        self.shift = Fraction(0)

    def mux(self, packet, out) -> None:
        if self.shift and packet.time_base:
            ticks = int(round(self.shift / packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts - ticks
            packet.dts = None if packet.dts is None else packet.dts - ticks
        packet.stream = self.ostream
        out.mux(packet)

    def flush(self, out) -> None:
        pass


class RecodedAudio:
    """A sound stream decoded and encoded again (``encoder``), for a container that cannot take its codec."""

    def __init__(self, av, stream, out, encoder: str) -> None:
        cc = stream.codec_context
        rates = av.codec.Codec(encoder, "w").audio_rates or ()
        rate = cc.sample_rate or 48000
        if rates and rate not in rates:  # the nearest the encoder takes (192 kHz PCM into AAC: 96 kHz)
            rate = min(rates, key=lambda r: (abs(r - rate), -r))
        layout = "mono" if cc.layout is not None and cc.layout.nb_channels == 1 else "stereo"  # (more: mixed down)
        encoding = av.codec.CodecContext.create(encoder, "w")  # opened here: an encoder that refuses is a note
        encoding.sample_rate, encoding.layout = rate, layout
        encoding.format = encoding.codec.audio_formats[0].name
        encoding.time_base = Fraction(1, rate)
        encoding.open()
        self.ostream = out.add_stream(encoder, rate=rate)
        self.ostream.layout = layout
        self.ostream.metadata.update(stream.metadata)
        self.decoder = cc
        self.rate = rate
        self.resampler = av.AudioResampler(format=self.ostream.codec_context.format.name, layout=layout, rate=rate)
        self.next_pts: int | None = None  # (in samples of the output: the sound keeps its place in time)
        self.shift = Fraction(0)  # (seconds taken off: AVI's picture starts at 0)

    def mux(self, packet, out) -> None:
        for frame in self.decoder.decode(packet):
            if self.next_pts is None and frame.pts is not None and frame.time_base is not None:
                self.next_pts = int(round((frame.pts * frame.time_base - self.shift) * self.rate))
            self._encode(self.resampler.resample(frame), out)

    def flush(self, out) -> None:
        for frame in self.decoder.decode(None):
            self._encode(self.resampler.resample(frame), out)
        self._encode(self.resampler.resample(None), out)
        for packet in self.ostream.encode(None):
            out.mux(packet)

    def _encode(self, frames, out) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self.next_pts or 0, Fraction(1, self.rate)
            self.next_pts = (self.next_pts or 0) + frame.samples
            for packet in self.ostream.encode(frame):
                out.mux(packet)


class RecodedText:
    """A text subtitle stream (SubRip, ASS, WebVTT, mov_text) converted to ``encoder``'s format, cue by cue,
    each cue at its own time; styles the target cannot hold are dropped by FFmpeg's encoder.

    A cue is written when it comes, but for two that wait for the next cue: one with no duration, shown until
    the next one starts (the last one for :data:`LAST_CUE_SECONDS`), and, into mov_text, whose samples may not
    overlap (MP4's muxer would move the next cue later), each cue, which ends where the next begins, and cues
    that start together are joined into one (MP4 has an index: where a sample lies in the file does not
    matter; Matroska has none, so there cues go at once). A cue
    the converter refuses (text in another encoding than UTF-8, a cue too long) is left out and counted in
    ``dropped``."""

    def __init__(self, av, stream, out, encoder: str) -> None:
        cc = stream.codec_context
        if cc is None or not cc.codec.text_sub:
            raise ValueError(f"{cc.name if cc else 'it'} is a picture, not text")  # (DVD and Blu-ray subtitles)
        if not cc.is_open:
            cc.open()  # (its header, the styles the encoder starts from)
        self.ostream = out.add_stream(encoder)
        oc = self.ostream.codec_context
        oc.time_base = stream.time_base
        self.ostream.time_base = stream.time_base
        oc.subtitle_header = cc.subtitle_header
        oc.open()
        self.ostream.metadata.update(stream.metadata)  # (its language among them)
        self.decoder = cc
        self.errors = (av.FFmpegError, ValueError, TypeError)
        self.no_overlap = encoder == "mov_text"
        self.pending = None  # (the converted packet waiting for the next cue)
        self.pending_lines: list[bytes] = []  # (its ASS event lines, to join a cue at the same time to it)
        self.dropped = 0

    def mux(self, packet, out) -> None:
        if not packet.size:
            return
        try:
            cue = self.decoder.decode2(packet)
            if cue is None or not len(cue):
                return
            converted = self.ostream.codec_context.encode_subtitle(cue)
        except self.errors:
            self.dropped += 1
            return
        converted.pts = converted.dts = packet.pts if packet.pts is not None else packet.dts
        shown_ms = max(0, cue.end_display_time - cue.start_display_time)  # (AVSubtitle's times are in ms)
        converted.duration = packet.duration or int(round(Fraction(shown_ms, 1000) / packet.time_base))
        converted.time_base = packet.time_base
        if converted.pts is None:  # (a cue with no time: nowhere to put it)
            self.dropped += 1
            return
        lines = [bytes(r.ass) for r in cue if getattr(r, "ass", None)]
        if self.no_overlap and self.pending is not None and self.pending.pts == converted.pts:
            merged = self._merged(self.pending_lines + lines, max(self.pending.duration, converted.duration))
            if merged is not None:  # (two cues at one time: one sample holding both, as MP4 can show them)
                self.pending, self.pending_lines = merged, self.pending_lines + lines
                return
        self._send(converted.pts, converted.time_base, out)
        self.pending, self.pending_lines = converted, lines
        if converted.duration and not self.no_overlap:
            self._send(None, None, out)

    def flush(self, out) -> None:
        self._send(None, None, out)

    def _merged(self, lines: list[bytes], duration: int):
        """One converted cue holding the texts of the ASS event ``lines`` (``Layer,Style,...,Text``), one under
        the other, at the waiting cue's time; None where they cannot be joined."""
        from av.subtitles.subtitle import SubtitleSet

        texts = [line.split(b",", 8)[-1] for line in lines if line.count(b",") >= 8]
        if len(texts) != len(lines) or not texts:
            return None
        head = b",".join(lines[0].split(b",", 8)[:8])  # (ReadOrder, Layer, Style, Name, margins, Effect)
        try:
            joined = self.ostream.codec_context.encode_subtitle(SubtitleSet.create(head + b"," + b"\\N".join(texts),
                                                                                   0, 0, 0, 1))
        except (*self.errors, AttributeError):
            return None
        joined.pts = joined.dts = self.pending.pts
        joined.duration, joined.time_base = duration, self.pending.time_base
        return joined

    def _send(self, next_pts, time_base, out) -> None:
        """Mux the waiting cue, its end fitted to the next cue's start ``next_pts`` (None: there is none)."""
        cue, self.pending = self.pending, None
        if cue is None:
            return
        if next_pts is not None and time_base == cue.time_base and next_pts > cue.pts:
            gap = next_pts - cue.pts
            if not cue.duration or (self.no_overlap and cue.duration > gap):
                cue.duration = gap
        elif not cue.duration:
            cue.duration = int(round(LAST_CUE_SECONDS / cue.time_base))
        cue.stream = self.ostream
        out.mux(cue)  # (a muxer's error is the clip's, as for any stream: smilecore.video says so)
