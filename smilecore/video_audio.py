"""The streams beside the video: copied packet for packet where the output container takes them, else
the sound re-encoded into a codec it takes (AAC for MP4, Opus for WebM...) and other streams left out.

Whether a container takes a stream as it is cannot be read from FFmpeg's tables (MP4 lists PCM and then
refuses a stereo PCM track with no channel order; MPEG-TS lists nothing): each stream is tried, with its
first packet, in a small output of the same kind in memory (:func:`streams_that_fit`).
"""
from __future__ import annotations

import io
from pathlib import Path

#: The encoder for sound that a container cannot take as it is (FFmpeg encoder names).
AUDIO_FOR = {"webm": "libopus", "mp4": "aac", "mov": "aac", "3gp": "aac", "mpegts": "aac", "avi": "libmp3lame",
             "matroska": "aac"}
#: Sample rates each encoder takes (the first, 48 kHz, when the source's is not one of them).
RATES = {"libopus": (48000, 24000, 16000, 12000, 8000)}
#: Packets read, at most, looking for each stream's first packet to try.
PROBE_PACKETS = 2000


def streams_that_fit(av, src: str | Path, indices: list[int], out_format: str) -> dict[int, str | None]:
    """For each stream index of ``src`` in ``indices``: None when an ``out_format`` container takes it as it
    is, else FFmpeg's reason (one line)."""
    from .video_streams import ff_text

    first: dict[int, object] = {}
    result: dict[int, str | None] = {}
    with av.open(str(src), "r", metadata_errors="replace") as c:
        wanted = set(indices)
        for k, packet in enumerate(c.demux([c.streams[i] for i in indices] if indices else [])):
            if k >= PROBE_PACKETS or not wanted:
                break
            i = packet.stream.index
            if i in wanted and packet.dts is not None and packet.size:
                first[i] = packet
                wanted.discard(i)
        for i in indices:
            try:
                with av.open(io.BytesIO(), "w", format=out_format) as out:
                    o = out.add_stream_from_template(c.streams[i])
                    if i in first:
                        packet = first[i]
                        packet.stream = o
                        out.mux(packet)
                result[i] = None
            except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
                result[i] = ff_text(exc)
    return result


class CopiedStream:
    """A stream copied packet for packet."""

    def __init__(self, ostream) -> None:
        self.ostream = ostream

    def mux(self, packet, out) -> None:
        packet.stream = self.ostream
        out.mux(packet)

    def flush(self, out) -> None:
        pass


class RecodedAudio:
    """A sound stream decoded and encoded again (``encoder``), for a container that cannot take its codec."""

    def __init__(self, av, stream, out, encoder: str) -> None:
        cc = stream.codec_context
        rates = RATES.get(encoder)
        rate = cc.sample_rate if not rates or cc.sample_rate in rates else rates[0]
        self.ostream = out.add_stream(encoder, rate=rate)
        layout = "mono" if cc.layout is not None and cc.layout.nb_channels == 1 else "stereo"  # (more: mixed down)
        self.ostream.layout = layout
        self.decoder = cc
        self.resampler = av.AudioResampler(format=self.ostream.codec_context.format.name, layout=layout, rate=rate)
        self.ostream.metadata.update(stream.metadata)

    def mux(self, packet, out) -> None:
        for frame in self.decoder.decode(packet):
            self._encode(self.resampler.resample(frame), out)

    def flush(self, out) -> None:
        self._encode(self.resampler.resample(None), out)
        for packet in self.ostream.encode(None):
            out.mux(packet)

    def _encode(self, frames, out) -> None:
        for frame in frames:
            frame.pts = None  # (the encoder counts the samples: the sound starts with the video, as it did)
            for packet in self.ostream.encode(frame):
                out.mux(packet)
