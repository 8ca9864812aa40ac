"""Opening a clip for reading, with every decoder held to pictures of 8K UHD at most.

FFmpeg decodes a picture of every stream while it opens a file (probing: it learns what each stream
holds), before Smile can look at any of them: a 2 MB MOV holding eight 16000 × 16000 PNG streams took
2.15 GB and 26.5 s just to open. So every input is opened by :func:`open_input`, which hands FFmpeg
:data:`READ_OPTIONS` for each stream: a decoder refuses a picture over :data:`MAX_FRAME_PIXELS`, the most
a video may have, instead of allocating it. Such a stream then has no size FFmpeg could read (0 × 0);
:func:`declared_size` gives the size its container declares, read with no decoder at all, so that the
video's own stream is refused by its size (exit 5) rather than taken for a damaged file. Cover art over
8K is not read either: Matroska keeps it as an attachment (its bytes, undecoded), MP4 leaves it out with
a note.

Not covered: a stream that first appears while the file is probed. The options go to the streams the
container's header names; MPEG-TS (.ts, .mts, .m2ts) has no header but its program table, which FFmpeg reads
at the start (so a clip as encoders write it is covered), and a stream its tables name only further in is
probed without the limit (the video's own stream is still refused above 8K, and held to it when decoded).
"""
from __future__ import annotations

import os
from fractions import Fraction

#: Largest frame accepted (width × height): 8K UHD. Every decoder of an input is held to it.
MAX_FRAME_PIXELS = 7680 * 4320
#: FFmpeg's options for every input's streams (``av.open(..., options=READ_OPTIONS)``): no decoder makes a
#: picture larger than :data:`MAX_FRAME_PIXELS`, while the file is probed or later.
READ_OPTIONS = {"max_pixels": str(MAX_FRAME_PIXELS)}
#: Frames per second no camera films faster than: an average rate above it is a demuxer's misreading (raw DV
#: gives 60000, the inverse of its time base), passed over by :func:`frame_rate`.
MAX_FRAME_RATE = 1000
#: A decoder list that names no decoder (FFmpeg's ``codec_whitelist``): a file opened with it is probed from
#: its headers alone.
_NO_DECODER = {"codec_whitelist": "none"}


def open_input(av, path: str | os.PathLike):
    """Open the clip at ``path`` for reading (PyAV's ``av`` module), its decoders held to :data:`READ_OPTIONS`
    while it is probed and when its streams are decoded. FFmpeg's errors are the caller's to word."""
    container = av.open(str(path), "r", metadata_errors="replace", options=READ_OPTIONS)
    for stream in container.streams:
        if stream.codec_context is not None:
            stream.codec_context.options = dict(READ_OPTIONS)
    return container


def declared_size(av, path: str | os.PathLike, index: int) -> tuple[int, int]:
    """``(width, height)`` that the container at ``path`` declares for its video stream ``index``, read with no
    decoder run (a stream whose pictures are over :data:`MAX_FRAME_PIXELS` has no size once :func:`open_input`
    probed it); ``(0, 0)`` where the container says none (a damaged file, or a size only its pictures give)."""
    try:
        with av.open(str(path), "r", metadata_errors="replace", options={**READ_OPTIONS, **_NO_DECODER}) as c:
            cc = c.streams[index].codec_context
            return (int(cc.width), int(cc.height)) if cc is not None and cc.type == "video" else (0, 0)
    except (av.FFmpegError, OSError, IndexError, ValueError, AttributeError):
        return (0, 0)


def frame_rate(stream) -> Fraction | None:
    """A video ``stream``'s frame rate (PyAV): its average rate, else FFmpeg's guessed one, else its base rate,
    passing over any above :data:`MAX_FRAME_RATE`; ``None`` where none is given."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= MAX_FRAME_RATE:
            return Fraction(rate)
    return None


def side_data_entries(frame) -> list:
    """The side data entries of a decoded frame (PyAV 18.1.1 iterates ``frame.side_data`` by type, as a
    mapping does; 18.1.0 gave the entries themselves)."""
    found = getattr(frame, "side_data", None) or ()
    return [item if hasattr(item, "type") else found[item] for item in found]


def first_side_data(av, src, index: int) -> tuple[dict[str, bytes], float]:
    """The side data of the first frame of stream ``index`` of ``src`` by type (``"DISPLAYMATRIX"``,
    ``"MASTERING_DISPLAY_METADATA"``, ``"CONTENT_LIGHT_LEVEL"``…) and the frame's rotation; none where it has
    none or cannot be read. (Read before the output's header is written, which is where they must go.)"""
    try:
        with open_input(av, src) as c:
            for frame in c.decode(c.streams[index]):
                return ({str(getattr(sd, "type", "")).rsplit(".", 1)[-1]: bytes(sd) for sd in side_data_entries(frame)},
                        float(getattr(frame, "rotation", 0) or 0))
    except (av.FFmpegError, OSError, ValueError, IndexError):
        pass
    return {}, 0.0


def unfinished_mp4(path: str | os.PathLike) -> bool:
    """Is ``path`` an MP4 or MOV whose recording was cut off before it was finished: its pictures and sound
    (an ``mdat`` box) are there, its index (``moov``), which the camera writes last, is not? No player reads such
    a file as it is. Walks the file's top-level boxes only."""
    seen = set()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            at = 0
            while at + 8 <= size and len(seen) < 64:
                f.seek(at)
                head = f.read(16)
                length, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if length == 1 and len(head) == 16:
                    length = int.from_bytes(head[8:16], "big")
                elif length == 0:
                    length = size - at
                if length < 8 or not kind.isalnum() and kind not in (b"free", b"skip"):
                    break
                seen.add(kind)
                at += length
    except OSError:
        return False
    return b"ftyp" in seen and b"mdat" in seen and b"moov" not in seen and b"moof" not in seen
