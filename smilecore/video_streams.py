"""Video files: containers, codecs, opening a clip, and setting up the output's streams (PyAV).

PyAV is imported only when a clip is processed (:func:`require_av`), so photos never need it.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from .errors import InputError, UsageError

#: Containers by output extension (PyAV / FFmpeg muxer names).
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
VIDEO_EXTENSIONS = frozenset(VIDEO_FORMATS)
#: Codec names accepted by ``codec=`` and the FFmpeg encoder each one uses.
CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "mpeg4": "mpeg4"}
#: Codecs each container can hold (the default is the first).
CONTAINER_CODECS = {"webm": ("vp9", "vp8"), "avi": ("h264", "mpeg4"), "mp4": ("h264", "hevc", "h265", "vp9", "mpeg4"),
                    "mov": ("h264", "hevc", "h265", "mpeg4"), "matroska": ("h264", "hevc", "h265", "vp9", "vp8", "mpeg4")}
#: Default constant-rate factor (quality; lower is better, 0 is lossless for H.264).
DEFAULT_CRF = 18
#: Default encoder speed preset (x264/x265 names).
DEFAULT_PRESET = "veryfast"


def is_video_path(path: str | os.PathLike) -> bool:
    """Does the file name end in a video extension Smile reads (.mp4 .m4v .mov .mkv .webm .avi)?"""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_format(path: str | os.PathLike) -> str:
    """The container (FFmpeg muxer) for an output path; :class:`UsageError` if it is not a video one."""
    ext = Path(path).suffix.lower()
    fmt = VIDEO_FORMATS.get(ext)
    if fmt is None:
        what = f"extension '{ext}'" if ext else "no extension"
        raise UsageError(f"{path}: {what} is not a video format Smile can write (use {', '.join(sorted(VIDEO_FORMATS))})")
    return fmt


def require_av():
    """Import PyAV, or say how to install it (:class:`InputError`, exit 4)."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise InputError("videos need PyAV: run 'pip install \"smile-filter[video]\"' (or 'pip install av')") from None
    return av


def probe(path: str | os.PathLike):
    """Open a video for reading; returns ``(container, video_stream)`` or raises :class:`InputError`."""
    av = require_av()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        container = av.open(str(p), "r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({ff_text(exc)})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None
    video = [s for s in container.streams.video if s.codec_context is not None]
    # attached pictures (cover art) are not the video
    video = [s for s in video if not (s.disposition & getattr(av.stream.Disposition, "attached_pic", 1 << 10))]
    if not video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        container.close()
        raise InputError(f"{path}: has no video stream (it holds {', '.join(kinds)})")
    return container, video[0]


def ff_text(exc: BaseException) -> str:
    """An FFmpeg error as one short line."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160]


def first_rotation(av, src, index: int) -> float:
    """The display rotation (degrees, counter-clockwise) of the stream's first frame, 0 if none.
    (Read before the output's header is written, which is where the rotation must go.)"""
    try:
        with av.open(str(src), "r", metadata_errors="replace") as c:
            for fr in c.decode(c.streams[index]):
                return float(getattr(fr, "rotation", 0) or 0)
    except (av.FFmpegError, OSError, ValueError, IndexError):
        pass
    return 0.0


def is_deep(pix_fmt: str) -> bool:
    """More than 8 bits per sample (10, 12, 16-bit formats)?"""
    return any(tag in pix_fmt for tag in ("p10", "p12", "p14", "p16", "48", "64", "gray10", "gray12", "gray16"))


def add_output_streams(av, container, vstream, out, out_format: str, codec_name: str, crf: int | None,
                       preset: str | None, src, notes: list[str], copied_names: list[str]):
    """Set up ``out`` like ``container``: the re-encoded video stream (size, time base, pixel format
    the encoder can hold, colour tags, quality options, aspect ratio, metadata, language) and a
    packet-for-packet copy of every other stream it can hold, plus container metadata and
    chapters.  Returns ``(video output stream, {input stream index: output stream})``;
    what could not be kept is said in ``notes``, the copied streams are named in ``copied_names``."""
    cc_in = vstream.codec_context
    cc_in.thread_type = "AUTO"
    w, h = cc_in.width, cc_in.height
    encoder = CODECS[codec_name]
    rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
    ostream = out.add_stream(encoder, rate=rate)
    oc = ostream.codec_context
    oc.width, oc.height = w, h
    oc.time_base = vstream.time_base
    ostream.time_base = vstream.time_base
    in_fmt = (cc_in.format.name if cc_in.format is not None else None) or "yuv420p"
    deep = is_deep(in_fmt)
    try:
        supported = {f.name for f in (av.codec.Codec(encoder, "w").video_formats or ())}
    except (av.FFmpegError, ValueError):
        supported = set()
    odd = bool(w % 2 or h % 2)
    pix = in_fmt if in_fmt in supported else ("yuv420p10le" if deep else "yuv420p")
    if odd and ("420" in pix or "422" in pix):
        pix = pix.replace("420", "444").replace("422", "444")  # 4:2:0 needs even sizes; 4:4:4 keeps the exact size
        notes.append(f"odd frame size {w}x{h}: encoded as {pix}")
    if pix not in supported and supported:
        if odd:
            raise InputError(f"{src}: odd frame size {w}x{h} cannot be written with --codec {codec_name} (use h264)")
        pix = "yuv420p"
    if is_deep(in_fmt) and not is_deep(pix):
        notes.append(f"{in_fmt} video written as 8-bit {pix} (--codec {codec_name} has no deeper format)")
    oc.pix_fmt = pix
    for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
        try:
            val = getattr(cc_in, attr)
            if val:
                setattr(oc, attr, val)
        except (AttributeError, TypeError, ValueError):
            pass
    opts = {}
    if encoder in ("libx264", "libx265"):
        opts["crf"] = str(DEFAULT_CRF if crf is None else crf)
        opts["preset"] = preset or DEFAULT_PRESET
        if encoder == "libx265":
            opts["x265-params"] = "log-level=error"
    elif encoder in ("libvpx-vp9", "libvpx"):
        opts.update({"crf": str(31 if crf is None else crf), "b": "0", "deadline": "realtime",
                     "cpu-used": "8", "row-mt": "1"})
        if encoder == "libvpx":
            opts["b"] = "10M"
    elif encoder == "mpeg4":
        oc.qscale = 1 if crf is None else max(1, min(31, crf))
        oc.flags |= av.codec.context.Flags.qscale
    oc.options = opts
    oc.thread_type = "AUTO"
    if vstream.sample_aspect_ratio:
        try:
            oc.sample_aspect_ratio = vstream.sample_aspect_ratio
        except (AttributeError, ValueError):
            pass
    ostream.metadata.update({k: v for k, v in vstream.metadata.items() if k.lower() not in ("encoder", "handler_name", "vendor_id", "duration")})
    if vstream.language:
        try:
            ostream.language = vstream.language
        except (AttributeError, ValueError):
            pass

    copied = {}
    for s in container.streams:
        if s.index == vstream.index:
            continue
        if s.type not in ("audio", "subtitle", "data", "attachment") and s.type != "video":
            continue
        try:
            o = out.add_stream_from_template(s)
            o.metadata.update(s.metadata)
            copied[s.index] = o
            copied_names.append(f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})")
        except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
            notes.append(f"stream #{s.index} ({s.type}) cannot go into a {out_format} file and was left out ({ff_text(exc)})")
    out.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in ("encoder",)})
    try:
        chapters = container.chapters()
        if chapters:
            out.set_chapters(chapters)
    except (AttributeError, av.FFmpegError, ValueError, TypeError):
        pass
    return ostream, copied
