"""Video files: containers, codecs, opening a clip, and setting up the output's streams (PyAV).

PyAV is imported only when a clip is processed (:func:`require_av`), so photos never need it.
"""
from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from .arguments import shown, whole_number
from .errors import InputError, UsageError
from .video_fields import coded_like_source, container_metadata, hevc_tag
from .video_audio import AUDIO_FOR, TEXT_FOR, CopiedStream, RecodedAudio, RecodedText, ff_text, stream_name, streams_that_fit
from .video_input import MAX_FRAME_RATE, first_side_data, frame_rate, open_input, unfinished_mp4
from .video_rotate import DisplayView

#: Containers by output extension (PyAV / FFmpeg muxer names).
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
                 ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".3gp": "3gp"}
VIDEO_EXTENSIONS = frozenset(VIDEO_FORMATS)
#: Videos Smile reads but does not write (DVD and MPEG camcorders' program streams, DV, Flash, Windows Media,
#: Ogg, MXF): their result is an MP4 (:func:`result_extension`), or what ``-o``/``--ext`` names.
READ_ONLY_VIDEO = frozenset({".mpg", ".mpeg", ".vob", ".mod", ".tod", ".dv", ".flv", ".wmv", ".asf", ".ogv", ".mxf"})
#: Every video extension Smile reads (:func:`is_video_path`).
READ_VIDEO_EXTENSIONS = VIDEO_EXTENSIONS | READ_ONLY_VIDEO
#: The container a read-only video's result gets by default.
READ_ONLY_RESULT = ".mp4"
#: Codec names accepted by ``codec=`` and the FFmpeg encoder each one uses.
CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "mpeg4": "mpeg4"}
#: Encoders whose subsampled (4:2:0, 4:2:2) pictures must have even sizes: a clip of odd width or height is
#: written 4:4:4 by them (VP8, VP9 and MPEG-4 write odd 4:2:0 sizes as they are).
EVEN_SIZES_ONLY = frozenset({"libx264", "libx265"})
#: Codecs each container can hold (the default is the first).
CONTAINER_CODECS = {"webm": ("vp9", "vp8"), "avi": ("h264", "mpeg4"), "mp4": ("h264", "hevc", "h265", "vp9", "mpeg4"),
                    "mov": ("h264", "hevc", "h265", "mpeg4"), "matroska": ("h264", "hevc", "h265", "vp9", "vp8", "mpeg4"),
                    "mpegts": ("h264", "hevc", "h265", "mpeg4"), "3gp": ("h264", "mpeg4")}
#: Default constant-rate factor (quality; lower is better, 0 is lossless for H.264).
DEFAULT_CRF = 18
#: The --crf each encoder takes: x264's rate factor (63 at most, for 10-bit video; 8-bit reads more than 51 as
#: 51), x265's (it refuses more than 51), VP9's and VP8's, and MPEG-4's quantiser.
CRF_RANGES = {"libx264": (0, 63), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (0, 63), "mpeg4": (1, 31)}
#: The encoder speed presets offered (x264/x265 names, fastest first; VP8/VP9 and MPEG-4 have none).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
#: Default encoder speed preset (x264/x265 names).
DEFAULT_PRESET = "veryfast"


def output_options(dst: Path, codec: str | None, crf, preset: str | None, deep: bool = False) -> tuple[str, str, int | None]:
    """``(container format, codec name, crf)`` for writing ``dst`` with these options, each checked
    (:class:`UsageError` naming the option and what it may be). With no ``codec``, a ``deep`` source (10-bit and
    more) gets HEVC where the container holds it and the crf is one x265 takes: H.264's High 10 plays on no
    phone, browser or hardware decoder."""
    out_format = video_format(dst)
    if codec is not None and not isinstance(codec, str):
        raise UsageError(f"codec must be a codec's name like 'h264', not {shown(codec)}")
    deep_hevc = deep and "hevc" in CONTAINER_CODECS[out_format] and whole_number(crf) in (None, *range(52))
    codec_name = (codec or ("hevc" if deep_hevc and has_encoder(CODECS["hevc"]) else CONTAINER_CODECS[out_format][0])).lower()
    if codec_name not in CODECS:
        raise UsageError(f"codec {codec}: unknown (use {', '.join(sorted(CODECS))})")
    if not has_encoder(CODECS[codec_name]):  # (PyAV 14.3's wheels have no x265; armv7's neither x264)
        raise UsageError(f"codec {codec_name}: this PyAV's FFmpeg has no {CODECS[codec_name]} encoder (choose another "
                         f"--codec, or a PyAV with it: pip install -U \"av>=15\")")
    if codec_name not in CONTAINER_CODECS[out_format]:
        article = "an" if dst.suffix[1:2].lower() in ("a", "e", "i", "o", "u") else "a"
        raise UsageError(f"codec {codec_name} cannot go into {article} {dst.suffix} file "
                         f"(use {', '.join(CONTAINER_CODECS[out_format])})")
    if crf is not None:
        number = whole_number(crf)
        if number is None:
            raise UsageError(f"crf must be a whole number, not {shown(crf)}")
        lo, hi = CRF_RANGES[CODECS[codec_name]]
        if not lo <= number <= hi:
            raise UsageError(f"crf {number if abs(number) < 10**6 else shown(crf)} is outside {lo}..{hi} for {codec_name}")
        crf = number
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"preset {shown(preset)}: unknown (use {', '.join(PRESETS)})")
    return out_format, codec_name, crf


def has_encoder(encoder: str) -> bool:
    """Does this PyAV's FFmpeg have ``encoder`` (``"libx265"``)? True without PyAV (:func:`require_av` says so)."""
    try:
        import av
    except ImportError:
        return True
    return encoder in av.codecs_available


def is_video_path(path: str | os.PathLike) -> bool:
    """Does the file name end in a video extension Smile reads (:data:`READ_VIDEO_EXTENSIONS`)?"""
    return Path(path).suffix.lower() in READ_VIDEO_EXTENSIONS


def result_extension(path: str | os.PathLike) -> str:
    """The extension of a video's result when none is asked for: its own, or :data:`READ_ONLY_RESULT` for a
    container Smile does not write."""
    ext = Path(path).suffix
    return READ_ONLY_RESULT if ext.lower() in READ_ONLY_VIDEO else ext


def muxer_options(dst: str | os.PathLike) -> dict[str, str]:
    """FFmpeg muxer options an output's name asks for: .m2ts and .mts (Blu-ray, AVCHD cameras) are MPEG-TS in
    192-byte packets."""
    return {"mpegts_m2ts_mode": "1"} if Path(dst).suffix.lower() in (".m2ts", ".mts") else {}


def video_format(path: str | os.PathLike) -> str:
    """The container (FFmpeg muxer) for an output path; :class:`UsageError` if it is not a video one."""
    ext = Path(path).suffix.lower()
    fmt = VIDEO_FORMATS.get(ext)
    if fmt is None:
        what = f"extension '{ext}' is not a video format Smile can write" if ext else "a video needs an extension"
        raise UsageError(f"{path}: {what} (use {', '.join(sorted(VIDEO_FORMATS))})")
    return fmt


#: How to get PyAV: the ``[video]`` extra's own requirement, which works with or without a checkout.
AV_INSTALL = 'pip install "av>=14" (the [video] extra)'


def require_av():
    """Import PyAV, or say how to install it (:class:`InputError`, exit 4)."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise InputError(f"videos need PyAV: {AV_INSTALL}") from None
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
        container = open_input(av, p)
    except av.FFmpegError as exc:
        if unfinished_mp4(p):  # (a phone or camera stopped mid-recording: its index is written last)
            raise InputError(f"{path}: an unfinished recording: its pictures are there but not the index (moov) the "
                             "camera writes when it stops, so no player can read it; a repair tool that rebuilds the "
                             "index from a finished clip of the same camera (e.g. untrunc) can recover it") from None
        raise InputError(f"{path}: not a readable video ({ff_text(exc)})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):  # FFmpeg reads photos too
        container.close()
        raise InputError(photo_not_video(p))
    cover = getattr(av.stream.Disposition, "attached_pic", 1 << 10)  # (cover art is no video: a song's picture)
    video = [s for s in container.streams.video if s.codec_context is not None and not s.disposition & cover]
    if not video:
        kinds = sorted({"a cover picture" if s.disposition & cover else s.type for s in container.streams},
                       key=lambda k: (k.startswith("a "), k)) or ["nothing"]
        container.close()
        raise InputError(f"{path}: has no video stream (it holds {', '.join(kinds)})")
    return container, video[0]


def photo_not_video(path: Path) -> str:
    """The message for a photo given where a video is wanted (a photo under a video's name: rename it)."""
    from .decode import extension_of_bytes

    with open(path, "rb") as f:
        ext = extension_of_bytes(f.read(64))
    if is_video_path(path) and ext:
        return f"{path}: a photo ({ext[1:].upper()}), not a video: rename it to {path.stem}{ext} to smile it as a photo"
    return f"{path}: a photo, not a video"


def avi_sound_times(vstream, container, copied: dict, rate: Fraction, notes: list[str]) -> None:
    """AVI stores no start times: its picture starts at 0, so the sound is taken back by the picture's start
    (a camera's clock at 3600 s, which AVI's muxer refuses, or a clip cut from a longer one); a sound that did
    not start with the picture now does, which a note says."""
    def start(s) -> Fraction | None:
        return Fraction(s.start_time) * s.time_base if s.start_time is not None and s.time_base else None

    video = start(vstream) or Fraction(0)
    for index, o in copied.items():
        s = container.streams[index]
        if s.type != "audio" or not hasattr(o, "shift"):
            continue
        o.shift = video
        own = start(s)
        if own is not None and abs(own - video) > max(1 / rate, Fraction(1, 10)):  # (not AAC priming)
            notes.append(f"audio #{index} starts {float(abs(own - video)):.2f} s {'after' if own > video else 'before'} "
                         "the picture, but AVI stores no start times: it plays from the picture's start (write .mkv "
                         "or .mp4 to keep them in time)")


def chapters_of(av, container) -> list:
    """The container's chapters (none where PyAV or the file cannot say)."""
    try:
        return list(container.chapters() or ())
    except (AttributeError, av.FFmpegError, ValueError, TypeError):
        return []


def cover_attachment(av, src, stream, out) -> bool:
    """Add the cover art ``stream`` (a picture with no time: an MP4's or a Matroska's) to the Matroska ``out`` as
    an attachment, as Matroska stores one; False when its picture cannot be read."""
    try:
        with open_input(av, src) as c:
            data = next((bytes(p) for p in c.demux(c.streams[stream.index]) if p.size), None)
    except (av.FFmpegError, OSError, IndexError):
        return False
    if not data:
        return False
    meta = {k.lower(): v for k, v in stream.metadata.items()}
    png = data.startswith(b"\x89PNG")
    name = meta.get("filename") or ("cover.png" if png else "cover.jpg")
    try:
        out.add_attachment(name, meta.get("mimetype") or ("image/png" if png else "image/jpeg"), data)
    except (av.FFmpegError, ValueError, TypeError, AttributeError):
        return False
    return True


def keep_marks(ostream, stream) -> None:
    """What marks a stream among its kind, kept: its dispositions (default, forced, commentary, dub, hearing
    impaired, cover art...), and its title (an MP4's track name, which FFmpeg reads as ``name`` and writes
    from ``title``)."""
    try:
        ostream.disposition = stream.disposition
    except (AttributeError, ValueError, TypeError):
        pass
    name = stream.metadata.get("name")
    if name and "title" not in {k.lower() for k in stream.metadata}:
        ostream.metadata["title"] = name


def video_seconds(container, vstream) -> float:
    """How long the file says its video stream lasts, in seconds (0: it does not say): the stream's duration,
    else Matroska's ``DURATION`` tag (the end time: its start is taken off), else the container's, only when
    the video is all it holds (sound or subtitles may run on past the picture)."""
    if vstream.duration and vstream.time_base:
        return float(vstream.duration * vstream.time_base)
    start = float(vstream.start_time * vstream.time_base) if vstream.start_time and vstream.time_base else 0.0
    tag = next((v for k, v in vstream.metadata.items() if k.upper() == "DURATION"), None)
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(tag).strip()) if tag else None
    if match:
        end = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
        return end - start if end > start else end
    if container.duration and all(s.type == "video" for s in container.streams):
        return max(0.0, container.duration / 1e6 - (container.start_time or 0) / 1e6)
    return 0.0


def first_view(av, src, index: int) -> DisplayView:
    """How the stream's first frame is shown (its display matrix: a turn, perhaps a mirror), as a
    :class:`DisplayView`; none when it has no matrix."""
    data, rotation = first_side_data(av, src, index)
    raw = data.get("DISPLAYMATRIX", b"")
    return DisplayView.from_matrix(tuple(int(v) for v in np.frombuffer(raw, np.int32)) if len(raw) == 36 else None, rotation)


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
    rate = frame_rate(vstream) or Fraction(25)
    avi = out_format == "avi"
    if avi:
        rate = avi_rate(vstream)
        # AVI video starts at its first slot: no shift of every stream for the copied audio's
        # negative start (AAC priming), which would leave an empty slot after the first frame
        out.container_options.setdefault("avoid_negative_ts", "disabled")
    ostream = out.add_stream(encoder, rate=rate)
    hevc_tag(encoder, out_format, ostream)
    oc = ostream.codec_context
    oc.width, oc.height = w, h
    # AVI counts frames: its time base is one frame (1/rate), each packet fills the slot of its dts
    tb_out = Fraction(rate.denominator, rate.numerator) if avi else vstream.time_base
    ostream.time_base = tb_out
    steps = -(-tb_out.denominator // 65535) if encoder == "mpeg4" else 1  # (MPEG-4 counts time in 16 bits: MPEG's
    oc.time_base = Fraction(tb_out.numerator * steps, tb_out.denominator)  # 90 kHz becomes 45 kHz, frames rebased)
    in_fmt = (cc_in.format.name if cc_in.format is not None else None) or "yuv420p"
    deep = is_deep(in_fmt)
    try:
        supported = {f.name for f in (av.codec.Codec(encoder, "w").video_formats or ())}
    except (av.FFmpegError, ValueError):
        supported = set()
    odd = bool(w % 2 or h % 2) and encoder in EVEN_SIZES_ONLY
    shallow = re.sub(r"p(9|10|12|14|16)(le|be)$", "p", in_fmt)  # (the same sampling in 8 bits: VP9 here)
    pix = next((f for f in (in_fmt, "yuv420p10le" if deep else "", shallow) if f in supported), "yuv420p")
    if odd and ("420" in pix or "422" in pix):
        pix = pix.replace("420", "444").replace("422", "444")  # 4:2:0 needs even sizes; 4:4:4 keeps the exact size
        notes.append(f"odd frame size {w}x{h}: encoded as {pix}")
    if "440" in pix and out_format in ("mp4", "mov"):  # (MP4's VP9 box has no 4:4:0: FFmpeg wrote a file no one reads)
        pix = pix.replace("440", "444")
        notes.append(f"{in_fmt} video written as {pix} ({out_format.upper()} cannot hold 4:4:0)")
    if pix not in supported and supported:
        if odd:
            raise InputError(f"{src}: odd frame size {w}x{h} cannot be written as {codec_name} "
                             "(choose codec h264, hevc or vp9: they write 4:4:4)")
        pix = "yuv420p"
    if is_deep(in_fmt) and not is_deep(pix):
        notes.append(f"{in_fmt} video written as 8-bit {pix} ({codec_name} has no deeper format)")
    elif pix.replace("yuvj", "yuv") != in_fmt.replace("yuvj", "yuv") and not odd and "440" not in in_fmt and in_fmt.startswith("yuv"):
        # (a JPEG-range format is the same one with its range flagged; odd sizes and 4:4:0 are said above)
        notes.append(f"{in_fmt} video written as {pix} ({codec_name} cannot write {in_fmt})")
    if preset is not None and encoder not in ("libx264", "libx265"):
        notes.append(f"--preset {preset} applies to H.264 and HEVC; {codec_name} does not use it")
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
        if crf == 0:  # lossless: x264's --crf 0 is lossless for 8-bit video only, x265's never
            del opts["crf"]
            if encoder == "libx264":
                opts["qp"] = "0"
            else:
                opts["x265-params"] += ":lossless=1"
        if avi:
            opts["bf"] = "0"  # AVI stores no presentation time: frames must be stored in display order
    elif encoder in ("libvpx-vp9", "libvpx"):
        opts.update({"crf": str(31 if crf is None else crf), "b": "0", "deadline": "realtime",
                     "cpu-used": "8", "row-mt": "1"})
        if encoder == "libvpx":
            opts["b"] = "10M"
    elif encoder == "mpeg4":
        oc.qscale = 1 if crf is None else crf  # (1..31: output_options)
        oc.flags |= av.codec.context.Flags.qscale
    if avi:
        oc.max_b_frames = 0
    coded_like_source(av, src, vstream, encoder, oc, opts, notes)  # (interlaced stays interlaced; HDR10's levels)
    oc.options = opts
    oc.thread_type = "AUTO"
    if vstream.sample_aspect_ratio:
        try:
            oc.sample_aspect_ratio = vstream.sample_aspect_ratio
        except (AttributeError, ValueError):
            pass
    ostream.metadata.update({k: v for k, v in vstream.metadata.items() if k.lower() not in ("encoder", "handler_name", "vendor_id", "duration")})
    keep_marks(ostream, vstream)
    if vstream.language:
        try:
            ostream.language = vstream.language
        except (AttributeError, ValueError):
            pass

    copied = {}
    others = []
    for s in container.streams:
        if s.index == vstream.index or s.type not in ("audio", "subtitle", "data", "attachment", "video"):
            continue
        if s.disposition & av.stream.Disposition.attached_pic:  # cover art
            if out_format == "matroska" and cover_attachment(av, src, s, out):  # (kept as an attachment)
                copied_names.append(stream_name(s))
                continue
            if out_format not in ("mp4", "matroska"):  # (elsewhere: a video track of one frame, or nothing at all)
                notes.append(f"the cover art (stream #{s.index}) was left out ({out_format} holds none; write .mp4 "
                             "or .mkv to keep it)")
                continue
            if not getattr(s.codec_context, "width", 0):  # (not decoded while probed: over 8K, video_input)
                notes.append(f"the cover art (stream #{s.index}) was left out: its picture is larger than 8K UHD (or "
                             "damaged) and was not read (write .mkv to keep it as an attachment)")
                continue
        if s.type == "data" and s.metadata.get("timecode"):
            # a timecode track (a camera's or an editor's): its packets cannot be muxed as they are; the start
            # time it holds goes on the video stream, from which MOV and MP4 write a timecode track anew
            ostream.metadata.setdefault("timecode", s.metadata["timecode"])
            continue
        others.append(s)
    misfits = streams_that_fit(av, src, [s.index for s in others], out_format) if others else {}
    for s in others:
        name = s.codec_context.name if s.codec_context else "?"
        why = misfits.get(s.index)
        try:
            if why is None:
                o = out.add_stream_from_template(s)
                o.metadata.update(s.metadata)
                copied[s.index] = CopiedStream(o)
                copied_names.append(stream_name(s))
            elif s.type == "audio" and out_format in AUDIO_FOR:  # the sound kept, in a codec the container takes
                copied[s.index] = RecodedAudio(av, s, out, AUDIO_FOR[out_format])
                notes.append(f"audio #{s.index} ({name}) cannot go into the {out_format} file as it is: "
                             f"re-encoded as {copied[s.index].ostream.codec_context.name}")
            elif s.type == "subtitle" and out_format in TEXT_FOR:  # text subtitles in the container's own format
                copied[s.index] = RecodedText(av, s, out, TEXT_FOR[out_format])
                notes.append(f"subtitle #{s.index} ({name}) cannot go into the {out_format} file as it is: "
                             f"converted to {TEXT_FOR[out_format]}")
            else:
                raise ValueError(why)
            keep_marks(copied[s.index].ostream, s)
        except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
            if s.type == "data" and not (s.codec_context and s.codec_context.name) and chapters_of(av, container):
                continue  # (most likely an MP4's chapter track, which cannot be copied: its chapters are, below)
            notes.append(f"stream #{s.index} ({s.type}) cannot go into the {out_format} file and was left out ({ff_text(exc)})")
    if avi:
        avi_sound_times(vstream, container, copied, rate, notes)
    container_metadata(container.metadata, out_format, out)  # (a phone's keys: in the keys atom, as it wrote them)
    chapters = chapters_of(av, container)
    if chapters and out_format in ("avi", "mpegts"):
        notes.append(f"{len(chapters)} chapter{'s' * (len(chapters) > 1)} left out ({out_format.upper()} holds none; "
                     "write .mkv or .mp4 to keep them)")
    elif chapters:
        try:
            out.set_chapters(chapters)
        except (AttributeError, av.FFmpegError, ValueError, TypeError):
            pass
    return (AviVideoStream(ostream, rate, notes) if avi else ostream), copied


def avi_rate(vstream) -> Fraction:
    """The frame rate of an AVI output: AVI has one time base per stream, the duration of one frame.
    FFmpeg's guessed rate (the finest rate on which the frames lie: the average rate for constant
    frame rate video) when it is at most twice the average rate, so a variable frame rate clip
    whose frames lie on a common grid keeps every timestamp (the gaps are empty slots); else the
    average rate."""
    avg, guessed = frame_rate(vstream), vstream.guessed_rate  # (an average no camera films: passed over)
    ok = guessed and 0 < guessed <= MAX_FRAME_RATE and (not avg or guessed <= 2 * avg)
    rate = Fraction(guessed) if ok else avg or Fraction(25)
    return rate.limit_denominator(1_001_000)  # (AVI stores the rate as two 32-bit numbers)


class AviVideoStream:
    """The video output stream of an AVI file.  AVI has one frame rate and no timestamps: a frame
    is shown in the slot of its position (empty slots show the previous frame again).  Each
    frame's timestamp, counted from the first frame (AVI stores no start time), goes to its slot
    on the one-frame grid, in order; a frame that cannot keep its timestamp there (variable frame
    rate off the grid, two frames in one slot) goes to the nearest free slot after the previous
    frame.  What the grid changed is said in ``notes`` when the stream is flushed.  Everything
    else goes to the stream itself."""

    def __init__(self, stream, rate: Fraction, notes: list[str]):
        object.__setattr__(self, "_stream", stream)
        object.__setattr__(self, "_rate", Fraction(rate))
        object.__setattr__(self, "_tb", Fraction(rate.denominator, rate.numerator))
        object.__setattr__(self, "_notes", notes)
        object.__setattr__(self, "_state", {"first": None, "last": None, "frames": 0, "moved": 0, "worst": 0.0,
                                            "empty": 0})

    def encode(self, frame=None):
        st = self._state
        if frame is not None and frame.pts is not None:
            tick = Fraction(frame.time_base) if frame.time_base else self._tb
            t = Fraction(frame.pts) * tick
            if st["first"] is None:
                st["first"] = t
            t -= st["first"]
            slot = round(t * self._rate)
            if st["last"] is not None:
                slot = max(slot, st["last"] + 1)
                st["empty"] += slot - st["last"] - 1
            err = abs(float(slot * self._tb - t))
            st["frames"] += 1
            if err > 0.001 + float(tick) / 2:
                st["moved"] += 1
                st["worst"] = max(st["worst"], err)
            st["last"] = slot
            frame.pts = slot
            frame.time_base = self._tb
        elif frame is None and (st["moved"] or st["empty"]):
            said = []
            if st["empty"]:
                said.append(f"the variable frame rate is kept with {st['empty']} empty slots (the frame before is "
                            "shown again)")
            if st["moved"]:
                said.append(f"{st['moved']} of {st['frames']} frame timestamps moved by up to "
                            f"{st['worst'] * 1000:.0f} ms onto its grid")
            self._notes.append(f"AVI holds one frame rate ({float(self._rate):g} fps): {'; '.join(said)} "
                               "(use .mkv or .mp4 to keep every timestamp)")
            st["moved"] = st["empty"] = 0
        return self._stream.encode(frame)

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __setattr__(self, name, value):
        setattr(self._stream, name, value)
