"""``smile_video()``: a video in, the same video out with its faces smiling.

The clip is read with PyAV (FFmpeg inside the ``av`` wheel).  Its video stream is decoded,
edited frame by frame and re-encoded (H.264 by default); every other stream (audio,
subtitles, data) is copied packet for packet, so the sound is bit-identical.  Size, frame rate,
time base, timestamps (hence frame count and variable frame rates), rotation, container and
stream metadata and chapters are kept.

Per frame: faces are followed by :class:`smilecore.video_track.FaceTracker` (detection every
few frames, optical-flow tracking in between, One-Euro smoothed landmarks), each face's
crop goes through :meth:`SmileModel.run` at the schedule's strength for that instant (times its
fade weight), the network's outputs are smoothed in crop space, and
:func:`smilecore.composite.composite_face` paints them back.  For 8-bit 4:2:0 video only the
face's region is converted to RGB and back, and only pixels the edit changed are written, so
the rest of every frame goes to the encoder exactly as it was decoded.

The output is written to a temporary file in the target folder and renamed at the end
(:func:`smilecore.atomic.write_atomic`): Ctrl-C, SIGTERM or an error leave no partial file.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .align import Alignment, align_face, extract_crop
from .composite import composite_face
from .errors import ImageTooLargeError, InputError, NoFaceError, SmileError, UsageError, WriteError
from .face import Face
from .pixels import to_8bit
from .video_track import DETECT_EVERY, FaceTracker, Track

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
#: Largest frame accepted (width × height): 8K UHD.
MAX_FRAME_PIXELS = 7680 * 4320
#: Faces whose size is smaller than this (pixels) are tracked but not edited (as for photos).
MIN_EDIT_FACE = 24
#: Weight of the newest network output in the running average kept in crop space (1 = none).
NET_SMOOTH = 0.55
#: Run the network for a face on every N-th frame at most; in between its last (smoothed)
#: output is composited at the face's new place (the edit follows the face; the network's
#: view of it changes little in 1/12 s).  A strength change re-runs it at once.
NET_EVERY = 2
#: Composite and encode each frame on a second thread while the next one is decoded, tracked
#: and run through the network (the output is the same either way).  Off: on the 2-core test
#: machine, shared with other jobs, it was slower (720p, 96 frames: 5.4-6.0 s against 4.3-4.9 s).
PIPELINE = False
#: Faces per network call.
BATCH = 4


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


# ---------------------------------------------------------------------------- strength schedule


@dataclass(frozen=True)
class StrengthSchedule:
    """Strength over time: ``(seconds, strength)`` points, linearly interpolated, held before the
    first and after the last.  A single point is a constant strength."""

    points: tuple[tuple[float, float], ...]
    text: str = ""

    @classmethod
    def constant(cls, value: float) -> "StrengthSchedule":
        return cls(((0.0, float(value)),), text=_num(value))

    @classmethod
    def parse(cls, text: str | float | int) -> "StrengthSchedule":
        """``"2"`` or ``"0:0,1.5:2,4:2,5:0"`` (seconds:strength pairs; times increasing)."""
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            if not math.isfinite(text):
                raise UsageError("strength must be a finite number")
            return cls.constant(float(text))
        s = str(text).strip()
        if ":" not in s:
            try:
                v = float(s)
            except ValueError:
                raise UsageError(f"strength {text!r} is not a number or a schedule like 0:0,1.5:2,4:2") from None
            if not math.isfinite(v):
                raise UsageError("strength must be a finite number")
            return cls.constant(v)
        points = []
        for part in s.split(","):
            if not part.strip():
                continue
            bits = part.split(":")
            try:
                if len(bits) != 2:
                    raise ValueError
                t, v = float(bits[0]), float(bits[1])
            except ValueError:
                raise UsageError(f"strength schedule {text!r}: {part.strip()!r} is not SECONDS:STRENGTH "
                                 "(e.g. 0:0,1.5:2,4:2,5:0)") from None
            if not (math.isfinite(t) and math.isfinite(v)):
                raise UsageError(f"strength schedule {text!r}: times and strengths must be finite numbers")
            if t < 0:
                raise UsageError(f"strength schedule {text!r}: time {bits[0].strip()} is negative")
            if points and t <= points[-1][0]:
                raise UsageError(f"strength schedule {text!r}: times must increase ({bits[0].strip()} s comes after "
                                 f"{_num(points[-1][0])} s)")
            points.append((t, v))
        if not points:
            raise UsageError(f"strength schedule {text!r} has no SECONDS:STRENGTH pair")
        return cls(tuple(points), text=s)

    @property
    def is_constant(self) -> bool:
        return len({v for _, v in self.points}) == 1

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]

    def __call__(self, t: float) -> float:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    def to_json(self):
        return self.points[0][1] if len(self.points) == 1 else [[t, v] for t, v in self.points]


def _num(x: float) -> str:
    return f"{x:g}"


# ---------------------------------------------------------------------------- result


@dataclass
class VideoResult:
    """What :func:`smile_video` did."""

    output: Path | None
    frames: int = 0
    size: tuple[int, int] = (0, 0)  #: (width, height) as stored
    fps: float = 0.0  #: average frame rate of the input stream
    duration: float = 0.0  #: seconds
    codec: str = ""
    streams_copied: list[str] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    detections: int = 0

    @property
    def faces_edited(self) -> int:
        return sum(1 for t in self.tracks if t["edited"])


@dataclass
class Progress:
    """Passed to the ``progress`` callback after each frame."""

    frame: int  #: frames done
    total: int | None  #: expected frames (from the container; may be None or approximate)
    elapsed: float  #: seconds since the start

    @property
    def fps(self) -> float:
        return self.frame / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.total or self.frame == 0 or self.total <= self.frame:
            return None
        return (self.total - self.frame) / max(self.fps, 1e-9)


# ---------------------------------------------------------------------------- colour


def _yuv_coeffs(colorspace: int | None, height: int) -> tuple[float, float]:
    """(Kr, Kb) of the frame's matrix: BT.709 (1) for HD, BT.601 otherwise or when stated."""
    if colorspace == 1:
        return 0.2126, 0.0722
    if colorspace in (5, 6):
        return 0.299, 0.114
    if colorspace in (9, 10):
        return 0.2627, 0.0593
    return (0.2126, 0.0722) if height >= 720 else (0.299, 0.114)


class _Yuv:
    """YUV 4:2:0 <-> RGB for a region, with the frame's matrix and range (one OpenCV call each way)."""

    def __init__(self, kr: float, kb: float, full: bool):
        kg = 1 - kr - kb
        y_off, y_scale, c_scale = (0.0, 255.0, 255.0) if full else (16.0, 219.0, 224.0)
        # RGB (0..255) -> Y'CbCr of the stream
        fwd = np.array([[kr, kg, kb],
                        [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                        [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]], np.float64)
        fwd = fwd * np.array([[y_scale], [c_scale], [c_scale]]) / 255.0
        off = np.array([y_off, 128.0, 128.0])
        self.rgb2yuv = np.hstack([fwd, off[:, None]]).astype(np.float32)
        inv = np.linalg.inv(fwd)
        self.yuv2rgb = np.hstack([inv, (-inv @ off)[:, None]]).astype(np.float32)

    def to_rgb(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        h, w = y.shape
        uu = cv2.resize(u, (w, h), interpolation=cv2.INTER_LINEAR)
        vv = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.transform(cv2.merge([np.ascontiguousarray(y), uu, vv]), self.yuv2rgb)  # rounds and saturates

    def from_rgb(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        yuv = cv2.transform(np.ascontiguousarray(rgb), self.rgb2yuv)
        h, w = yuv.shape[:2]
        y, u, v = cv2.split(yuv)
        return (y, cv2.resize(u, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                cv2.resize(v, (w // 2, h // 2), interpolation=cv2.INTER_AREA))


# ---------------------------------------------------------------------------- the editor


class _FaceEditor:
    """Edits the tracked faces of one frame (RGB region work, batch network calls)."""

    def __init__(self, model, net_smooth: float = NET_SMOOTH, net_every: int = NET_EVERY):
        self.model = model
        self.size = model.size
        self.net_smooth = net_smooth
        self.net_every = max(1, int(net_every))
        self.t = {"align": 0.0, "infer": 0.0, "composite": 0.0}

    def edit(self, jobs: list[tuple[Track, float]], get_region, put_region, shape: tuple[int, int]) -> int:
        """``jobs``: (track, strength) for faces to edit now.  ``get_region(box)`` returns the RGB
        pixels of a frame box, ``put_region(box, old, new)`` writes changed ones back.  Returns
        the number of faces composited."""
        return self.apply(self.prepare(jobs, get_region, shape), put_region)

    def prepare(self, jobs: list[tuple[Track, float]], get_region, shape: tuple[int, int]) -> list:
        """Align, crop and run the network (in order: the outputs are smoothed over frames)."""
        ready = []
        for start in range(0, len(jobs), BATCH):
            batch = jobs[start:start + BATCH]
            t0 = time.perf_counter()
            items = []
            for tr, lam in batch:
                al = align_face(tr.smoothed, self.size)
                m = max(8, int(0.12 * self.size / max(al.scale, 1e-6)))
                x0, y0, x1, y1 = al.photo_region(shape, margin=0)
                x0, y0 = max(0, x0 - m) & ~1, max(0, y0 - m) & ~1
                x1, y1 = min(shape[1], x1 + m), min(shape[0], y1 + m)
                if x1 - x0 < 4 or y1 - y0 < 4:
                    continue
                box = (x0, y0, x1, y1)
                region = get_region(box)
                box = (x0, y0, x0 + region.shape[1], y0 + region.shape[0])
                shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
                mat = al.matrix @ shift
                from .align import invert_affine

                al_r = Alignment(matrix=mat, inverse=invert_affine(mat), size=self.size)
                st = tr.net_state
                reuse = (st is not None and st["age"] + 1 < self.net_every
                         and abs(lam - st["lam"]) <= 0.02 * max(1.0, abs(lam)))
                crop = None
                if not reuse:
                    crop = extract_crop(region, al_r)
                    crop = to_8bit(crop)
                items.append((tr, lam, box, region, al_r, crop))
            self.t["align"] += time.perf_counter() - t0
            if not items:
                continue
            t0 = time.perf_counter()
            fresh = [k for k, it in enumerate(items) if it[5] is not None]
            net = None
            if fresh:
                net = self.model.run(np.stack([items[k][5] for k in fresh]), np.array([items[k][1] for k in fresh], np.float32))
            self.t["infer"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for k, (tr, lam, box, region, al_r, crop) in enumerate(items):
                st = tr.net_state
                if crop is None:  # the last output, at the face's new place
                    rgb, mask, flow = st["rgb"], st["mask"], st["flow"]
                    st["age"] += 1
                else:
                    j = fresh.index(k)
                    rgb, mask, flow = net.rgb[j], net.mask[j], net.flow[j]
                    if self.net_smooth < 1.0 and st is not None:
                        a = self.net_smooth
                        rgb = a * rgb + (1 - a) * st["rgb"]
                        mask = a * mask + (1 - a) * st["mask"]
                        flow = a * flow + (1 - a) * st["flow"]
                    tr.net_state = {"rgb": rgb, "mask": mask, "flow": flow, "age": 0, "lam": lam}
                ready.append((tr, box, region, al_r, rgb, mask, flow))
            self.t["infer"] += time.perf_counter() - t0
        return ready

    def apply(self, ready: list, put_region) -> int:
        """Composite prepared faces into the frame (may run on another thread than :meth:`prepare`)."""
        t0 = time.perf_counter()
        done = 0
        for tr, box, region, al_r, rgb, mask, flow in ready:
            out = region.copy()
            e = composite_face(region, al_r, rgb, mask, flow, out=out)
            if e is None:
                continue
            put_region(box, region, out)
            tr.frames_edited += 1
            done += 1
        self.t["composite"] += time.perf_counter() - t0
        return done


# ---------------------------------------------------------------------------- main entry


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
        raise InputError(f"{path}: not a readable video ({_ff(exc)})") from None
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


def _ff(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160]


def smile_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    strength: StrengthSchedule | float | str = 1.0,
    faces: str | Sequence[int] = "all",
    min_face: int | None = None,
    model=None,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    max_pixels: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    detect_every: int = DETECT_EVERY,
    smooth: bool = True,
    keep_unchanged: bool = False,
) -> VideoResult:
    """Make the faces in the video ``src`` smile and write ``dst`` (its extension picks the
    container).  See the module documentation; ``strength`` is a number or a
    :class:`StrengthSchedule` (or its text).  ``detect_every=1, smooth=False`` edits each frame
    on its own (for comparisons).  Raises :class:`InputError` (unreadable, no video stream),
    :class:`ImageTooLargeError`, :class:`NoFaceError` (no face in the whole clip, unless
    ``keep_unchanged``: then the clip is re-encoded unchanged), :class:`UsageError`,
    :class:`WriteError`; nothing is left at ``dst`` on failure or interruption.
    """
    from .atomic import write_atomic
    from .pipeline import load_model
    from .model import SmileModel

    av = require_av()
    schedule = strength if isinstance(strength, StrengthSchedule) else StrengthSchedule.parse(strength)
    dst = Path(dst)
    out_format = video_format(dst)
    codec_name = (codec or CONTAINER_CODECS[out_format][0]).lower()
    if codec_name not in CODECS:
        raise UsageError(f"--codec {codec}: unknown (use {', '.join(sorted(CODECS))})")
    if codec_name not in CONTAINER_CODECS[out_format]:
        raise UsageError(f"--codec {codec_name} cannot go into a {dst.suffix} file "
                         f"(use {', '.join(CONTAINER_CODECS[out_format])})")
    if crf is not None and not 0 <= crf <= 63:
        raise UsageError(f"--crf {crf} is outside 0..63")
    if not isinstance(model, SmileModel):
        model = load_model(model)
    if not os.environ.get("SMILE_THREADS"):
        # one inference thread: the encoder's threads run alongside it (more threads only contend)
        model = _single_thread_model(model)
    for v in schedule.values:
        model.check_strength(v, "--strength")
    if isinstance(faces, str) and faces not in ("all", "largest"):
        raise UsageError(f"faces must be 'all', 'largest' or a list of indices, not {faces!r}")

    container, vstream = probe(src)
    result = VideoResult(output=None)
    failure: list[BaseException] = []
    try:
        cc = vstream.codec_context
        w, h = cc.width, cc.height
        if not w or not h:
            raise InputError(f"{src}: the video stream has no frame size (a damaged file?)")
        limit = MAX_FRAME_PIXELS if max_pixels is None else min(max_pixels, MAX_FRAME_PIXELS)
        if w * h > limit:
            raise ImageTooLargeError(f"{src}: frames are {w}x{h}, above the video limit of {limit / 1e6:.0f} MP")
        result.size = (w, h)
        rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
        result.fps = float(rate) if rate else 0.0
        total = vstream.frames or None
        if not total and vstream.duration and vstream.time_base and result.fps:
            total = int(round(float(vstream.duration * vstream.time_base) * result.fps)) or None
        elif not total and container.duration and result.fps:
            total = int(round(container.duration / 1e6 * result.fps)) or None
        result.codec = codec_name

        def write(f):
            try:
                _transcode(av, container, vstream, f, out_format, codec_name, crf, preset, schedule, faces, min_face,
                           model, progress, total, detect_every, smooth, result, src, keep_unchanged)
            except BaseException as exc:  # write_atomic turns errors into WriteError: keep the real one
                failure.append(exc)
                raise

        try:
            write_atomic(dst, write)
        except WriteError:
            if failure and not isinstance(failure[0], (WriteError, OSError)):
                raise failure[0] from None
            raise
        result.output = dst
    finally:
        container.close()
    return result


_ONE_THREAD: dict = {}


def _single_thread_model(model):
    from .model import SmileModel

    key = (str(model.path), model.path.stat().st_mtime if model.path.exists() else 0)
    if key not in _ONE_THREAD:
        try:
            _ONE_THREAD.clear()
            _ONE_THREAD[key] = SmileModel(model.path, threads=1)
        except SmileError:
            return model
    return _ONE_THREAD[key]


def _transcode(av, container, vstream, f, out_format, codec_name, crf, preset, schedule, faces, min_face, model,
               progress, total, detect_every, smooth, result: VideoResult, src, keep_unchanged: bool) -> None:
    t_start = time.perf_counter()
    tm = {"decode": 0.0, "detect": 0.0, "detect_wait": 0.0, "track": 0.0, "encode": 0.0}
    tracker = None
    import collections
    import threading
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smile-encode")
    in_flight: collections.deque = collections.deque()
    mux_lock = threading.Lock()
    out = av.open(f, "w", format=out_format)
    try:
        # ------------------------------------------------------------ streams
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
        deep = _is_deep(in_fmt)
        try:
            supported = {f.name for f in (av.codec.Codec(encoder, "w").video_formats or ())}
        except (av.FFmpegError, ValueError):
            supported = set()
        odd = bool(w % 2 or h % 2)
        pix = in_fmt if in_fmt in supported else ("yuv420p10le" if deep else "yuv420p")
        if odd and ("420" in pix or "422" in pix):
            pix = pix.replace("420", "444").replace("422", "444")  # 4:2:0 needs even sizes; 4:4:4 keeps the exact size
            result.notes.append(f"odd frame size {w}x{h}: encoded as {pix}")
        if pix not in supported and supported:
            if odd:
                raise InputError(f"{src}: odd frame size {w}x{h} cannot be written with --codec {codec_name} (use h264)")
            pix = "yuv420p"
        if _is_deep(in_fmt) and not _is_deep(pix):
            result.notes.append(f"{in_fmt} video written as 8-bit {pix} (--codec {codec_name} has no deeper format)")
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
                result.streams_copied.append(f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})")
            except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
                result.notes.append(f"stream #{s.index} ({s.type}) cannot go into a {out_format} file and was left out ({_ff(exc)})")
        out.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in ("encoder",)})
        try:
            chapters = container.chapters()
            if chapters:
                out.set_chapters(chapters)
        except (AttributeError, av.FFmpegError, ValueError, TypeError):
            pass

        # ------------------------------------------------------------ per-frame machinery
        given_rotation = _first_rotation(av, src, vstream.index)
        rotation = int(round(given_rotation / 90.0)) * 90 % 360
        if given_rotation:
            try:
                ostream.set_display_rotation(given_rotation)
            except (AttributeError, ValueError, TypeError, av.FFmpegError):
                result.notes.append(f"the {given_rotation:g}° display rotation could not be stored in the output")
        editor = _FaceEditor(model, net_smooth=NET_SMOOTH if smooth else 1.0, net_every=NET_EVERY if smooth else 1)
        frame_rgb: dict = {}

        def detect(frame_index: int):
            """Called on the main thread: takes this frame's pixels, returns the job to run."""
            rgb = frame_rgb["get"]()
            return lambda: detect_job(rgb)

        def detect_job(rgb):
            from . import detect_faces

            t0 = time.perf_counter()
            k = (rotation // 90) % 4
            view = np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
            found = detect_faces(view)
            res = []
            for fc in found:
                lm = np.asarray(fc.landmarks, np.float64)
                box = fc.box
                if k:
                    lm = _unrotate_points(lm, k, rgb.shape[:2])
                    corners = _unrotate_points(np.array([[box[0], box[1]], [box[2], box[3]]], np.float64), k, rgb.shape[:2])
                    box = (int(corners[:, 0].min()), int(corners[:, 1].min()), int(corners[:, 0].max()), int(corners[:, 1].max()))
                res.append((lm, box, fc.score))
            tm["detect"] += time.perf_counter() - t0
            return res

        tracker = FaceTracker(detect, detect_every=detect_every, smooth=smooth, async_detect=smooth)
        if not smooth:
            tracker.fade_frames = 1
        start = vstream.start_time if vstream.start_time is not None else 0
        tb = vstream.time_base or Fraction(1, 1000)
        yuv_cache: dict = {}
        n = 0
        last_pts = None
        fps_step = (1 / rate) if rate else Fraction(1, 25)

        def chosen(tr: Track) -> str | None:
            if tr.index < 0 and faces != "all":
                return "not confirmed yet"
            if isinstance(faces, str):
                if faces == "largest" and tr.index != 0:
                    return "not chosen"
            elif tr.index not in faces:
                return "not chosen"
            if min_face is not None and tr.max_size < min_face:
                return f"smaller than --min-face {min_face} px"
            if tr.frame_size < MIN_EDIT_FACE:
                return f"too small to edit ({int(tr.frame_size)} px < {MIN_EDIT_FACE} px)"
            return None

        def finish(ready, put_region, pixels, pix_fmt, pts, tags, number):
            editor.apply(ready, put_region)
            t0 = time.perf_counter()
            nf = av.VideoFrame.from_ndarray(pixels, format=pix_fmt)
            nf.pts = pts
            nf.time_base = tb
            for attr, val in tags.items():
                try:
                    if val is not None:
                        setattr(nf, attr, val)
                except (AttributeError, TypeError, ValueError):
                    pass
            for packet in ostream.encode(nf):
                with mux_lock:
                    out.mux(packet)
            tm["encode"] += time.perf_counter() - t0
            if progress is not None:
                progress(Progress(frame=number, total=total, elapsed=time.perf_counter() - t_start))

        def frames():
            t0 = time.perf_counter()
            for packet in container.demux():
                if packet.stream.index != vstream.index:
                    o = copied.get(packet.stream.index)
                    if o is not None and packet.dts is not None:
                        packet.stream = o
                        with mux_lock:
                            out.mux(packet)
                    continue
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    result.notes.append("a damaged video packet was skipped")
                    decoded = []
                for fr in decoded:
                    tm["decode"] += time.perf_counter() - t0
                    yield fr
                    t0 = time.perf_counter()
            try:
                for fr in vstream.codec_context.decode(None):
                    yield fr
            except av.FFmpegError:
                pass

        for fr in frames():
            if fr.width != w or fr.height != h:
                raise InputError(f"{src}: frame size changes mid-stream ({w}x{h} -> {fr.width}x{fr.height}), which is not supported")
            pts = fr.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                pts = (last_pts + max(1, int(round(fps_step / tb)))) if last_pts is not None else 0
            last_pts = pts
            t = float((pts - start) * tb)
            fmt = fr.format.name
            fast = fmt in ("yuv420p", "yuvj420p") and w % 2 == 0 and h % 2 == 0
            t0 = time.perf_counter()
            if fast:
                arr = fr.to_ndarray()  # (H*3/2, W) I420
                Y = arr[:h]
                U = arr[h:h + h // 4].reshape(h // 2, w // 2)
                V = arr[h + h // 4:].reshape(h // 2, w // 2)
                grey = Y.copy()  # (the edit writes into Y; the tracker must see the frame as decoded)
                key = (fr.colorspace, fmt, getattr(fr, "color_range", 0))
                if key not in yuv_cache:
                    kr, kb = _yuv_coeffs(fr.colorspace, h)
                    yuv_cache[key] = _Yuv(kr, kb, full=fmt == "yuvj420p" or getattr(fr, "color_range", 0) == 2)
                conv = yuv_cache[key]
                frame_rgb["get"] = lambda: cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_I420)

                def get_region(box, Y=Y, U=U, V=V, conv=conv):
                    x0, y0, x1, y1 = box
                    x1 -= (x1 - x0) % 2
                    y1 -= (y1 - y0) % 2
                    return conv.to_rgb(Y[y0:y1, x0:x1], U[y0 // 2:y1 // 2, x0 // 2:x1 // 2], V[y0 // 2:y1 // 2, x0 // 2:x1 // 2])

                def put_region(box, old, new, Y=Y, U=U, V=V, conv=conv):
                    x0, y0, x1, y1 = box
                    changed = np.any(old != new, axis=2)
                    if not changed.any():
                        return
                    y_new, u_new, v_new = conv.from_rgb(new)
                    ys = Y[y0:y1, x0:x1]
                    np.copyto(ys, y_new, where=changed)
                    c2 = changed.reshape(changed.shape[0] // 2, 2, changed.shape[1] // 2, 2).any(axis=(1, 3))
                    np.copyto(U[y0 // 2:y1 // 2, x0 // 2:x1 // 2], u_new, where=c2)
                    np.copyto(V[y0 // 2:y1 // 2, x0 // 2:x1 // 2], v_new, where=c2)
            else:
                deep_frame = _is_deep(fmt)
                rgb_full = fr.to_ndarray(format="rgb48le" if deep_frame else "rgb24")
                rgb8_full = to_8bit(rgb_full)
                grey = cv2.cvtColor(rgb8_full, cv2.COLOR_RGB2GRAY)
                frame_rgb["get"] = lambda: rgb8_full

                def get_region(box, rgb_full=rgb_full):
                    x0, y0, x1, y1 = box
                    return rgb_full[y0:y1, x0:x1].copy()

                def put_region(box, old, new, rgb_full=rgb_full):
                    x0, y0, x1, y1 = box
                    rgb_full[y0:y1, x0:x1] = new
            tm["decode"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            w0 = tracker.wait
            live = tracker.update(grey, n, t)
            tm["detect_wait"] += tracker.wait - w0
            tm["track"] += time.perf_counter() - t0 - (tracker.wait - w0)
            lam_now = schedule(t)
            jobs = []
            for tr in live:
                if chosen(tr) is None:
                    lam = lam_now * tr.fade
                    if lam != 0.0:
                        jobs.append((tr, lam))
                    elif tr.net_state is not None and tr.fade == 0.0:
                        tr.net_state = None
            ready = editor.prepare(jobs, get_region, (h, w)) if jobs else []
            pixels = arr if fast else rgb_full
            pix_fmt = (fmt if fmt == "yuv420p" else "yuvj420p") if fast else (
                "rgb48le" if rgb_full.dtype == np.uint16 else "rgb24")
            tags = {a: getattr(fr, a, None) for a in ("colorspace", "color_range")}
            n += 1
            if PIPELINE:  # compositing and encoding on a second thread, one frame behind (in order)
                in_flight.append(pool.submit(finish, ready, put_region, pixels, pix_fmt, pts, tags, n))
                while len(in_flight) > 2:
                    in_flight.popleft().result()
            else:
                finish(ready, put_region, pixels, pix_fmt, pts, tags, n)
        while in_flight:
            in_flight.popleft().result()
        if n == 0:
            raise InputError(f"{src}: no video frame could be decoded (truncated or damaged file)")
        t0 = time.perf_counter()
        for packet in ostream.encode(None):
            with mux_lock:
                out.mux(packet)
        tm["encode"] += time.perf_counter() - t0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # (an interrupted run: the frame in hand finishes first)
        if tracker is not None:
            tracker.close()
        out.close()
    result.frames = n
    result.duration = float(n / result.fps) if result.fps else 0.0
    result.detections = tracker.detections_run
    tracks = tracker.all_tracks()
    result.tracks = []
    for tr in tracks:
        reason = chosen(tr)
        edited = tr.frames_edited > 0
        if reason is None and not edited:
            reason = "strength 0" if all(v == 0 for v in schedule.values) else "outside the picture"
        face = Face(box=tr.box, landmarks=tr.ref, score=tr.score, index=tr.index, edited=edited,
                    reason=None if edited else reason)
        result.tracks.append({
            **face.to_dict(),
            "first_frame": tr.first_frame, "last_frame": tr.last_frame,
            "frames_edited": tr.frames_edited, "detections": tr.detections,
        })
    result.timings = dict(tm, **editor.t)
    result.timings["total"] = time.perf_counter() - t_start
    if not tracks:
        if not keep_unchanged:
            raise NoFaceError(f"{src}: no face found in any frame of the video")
        result.notes.append("no face found in any frame: the video was re-encoded unchanged")
    elif not any(t["edited"] for t in result.tracks) and not all(v == 0 for v in schedule.values):
        reasons = sorted({t["reason"] for t in result.tracks if t["reason"]})
        if not keep_unchanged:
            raise NoFaceError(f"{src}: {len(tracks)} face(s) found but none edited ({'; '.join(reasons)})")


def _first_rotation(av, src, index: int) -> float:
    """The display rotation (degrees, counter-clockwise) of the stream's first frame, 0 if none.
    (Read before the output's header is written, which is where the rotation must go.)"""
    try:
        with av.open(str(src), "r", metadata_errors="replace") as c:
            for fr in c.decode(c.streams[index]):
                return float(getattr(fr, "rotation", 0) or 0)
    except (av.FFmpegError, OSError, ValueError, IndexError):
        pass
    return 0.0


def _is_deep(pix_fmt: str) -> bool:
    """More than 8 bits per sample (10, 12, 16-bit formats)?"""
    return any(tag in pix_fmt for tag in ("p10", "p12", "p14", "p16", "48", "64", "gray10", "gray12", "gray16"))


def _unrotate_points(pts: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points from ``np.rot90(image, k)`` back to ``image`` (of ``shape`` (H, W))."""
    h, w = shape
    p = np.asarray(pts, np.float64).copy()
    # image_j = rot90(image, j) has width w for even j, h for odd j; one rot90 step maps
    # (x, y) of image_j to (y, width_j - 1 - x) of image_{j+1}; undo the steps last first
    for j in range(k % 4 - 1, -1, -1):
        width = w if j % 2 == 0 else h
        x, y = p[:, 0].copy(), p[:, 1].copy()
        p[:, 0], p[:, 1] = (width - 1) - y, x
    return p
