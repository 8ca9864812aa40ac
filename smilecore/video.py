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
:func:`smilecore.composite.composite_face` paints them back.  For planar YUV video (8-bit
4:2:0 here, 4:2:2, 4:4:4 and 9–16-bit in :mod:`smilecore.video_planar`) only the face's region
is converted to RGB and back, and only samples the edit changed are written, so the rest of
every frame goes to the encoder exactly as it was decoded.

The output is written to a temporary file in the target folder and renamed at the end
(:func:`smilecore.atomic.write_atomic`): Ctrl-C, SIGTERM or an error leave no partial file.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ImageTooLargeError, InputError, NoFaceError, UsageError, WriteError, found_behind
from .arguments import check_count, check_face_choice, check_flag, check_min_face, too_large
from .face import Face, smaller_than_asked
from .strength import ALREADY_SMILING, MOUTH_HIDDEN, TURNED_AWAY, already_smiling
from .video_fields import field_order
from .video_edit import NET_EVERY, NET_SMOOTH, FaceEditor, video_network
from .video_access import frame_access
from .video_input import MAX_FRAME_PIXELS, declared_size, frame_rate
from .video_lookahead import Lookahead, Waiting, faces_now, frames_held
from .video_planar import PlanarFrame
from .video_reid import chain
from .video_schedule import StrengthSchedule
from .video_streams import (add_output_streams, first_view, is_deep, muxer_options, output_options, probe, require_av,
                            video_seconds)
from .video_track import DETECT_EVERY, DETECT_LAG, FaceTracker, Track

#: Faces whose size is smaller than this (pixels) are tracked but not edited (as for photos).
MIN_EDIT_FACE = 24
#: Composite and encode each frame on a second thread while the next one is decoded, tracked
#: and run through the network (the output is the same either way).  Off: on the 2-core test
#: machine, shared with other jobs, it was slower (720p, 96 frames: 5.4-6.0 s against 4.3-4.9 s).
PIPELINE = False


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
    #: of ``notes``, those about reading the source (damaged packets, frames that did not decode): still true of
    #: a result that is not the encoder's (a byte copy) or of no result at all (:func:`video_faces`)
    read_notes: list[str] = field(default_factory=list)
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
        if not self.total or self.frame == 0:
            return None
        return max(0, self.total - self.frame) / max(self.fps, 1e-9)  # (0 at the last frame, or past a short guess)


# ---------------------------------------------------------------------------- main entry


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
    av = require_av()
    schedule = strength if isinstance(strength, StrengthSchedule) else StrengthSchedule.parse(strength)
    dst = Path(dst)
    out_format, codec_name, crf = output_options(dst, codec, crf, preset)
    faces = check_face_choice(faces)
    min_face = check_min_face(min_face)
    max_pixels = None if max_pixels is None else check_count(max_pixels, "max_pixels", 1)
    detect_every = check_count(detect_every, "detect_every", 1, "frames")
    smooth = check_flag(smooth, "smooth")
    keep_unchanged = check_flag(keep_unchanged, "keep_unchanged")
    if Path(src).resolve() == dst.resolve():
        raise UsageError(f"{dst}: the output would replace the input; write it elsewhere")
    model = video_network(model, schedule.values)  # (strength 0 throughout, no model given: none is loaded)

    container, vstream = probe(src)
    if codec is None:  # a progressive source of 10 bits or more gets HEVC (output_options); interlaced, H.264's fields
        fmt = vstream.codec_context.format
        deep = fmt is not None and is_deep(fmt.name) and field_order(vstream) is None
        out_format, codec_name, crf = output_options(dst, codec, crf, preset, deep=deep)
    result = VideoResult(output=None)
    failure: list[BaseException] = []
    try:
        cc = vstream.codec_context
        # (0 x 0: pictures over 8K, which no decoder of an input makes (video_input), or a damaged file)
        w, h = (cc.width, cc.height) if cc.width and cc.height else declared_size(av, src, vstream.index)
        if not w or not h:
            raise InputError(f"{src}: the video stream has no frame size (a damaged file?)")
        limit = MAX_FRAME_PIXELS if max_pixels is None else min(max_pixels, MAX_FRAME_PIXELS)
        if w * h > limit:
            err = too_large(w, h, limit, "each frame")  # (the same wording as photos: exact counts where MP round alike)
            raise ImageTooLargeError(f"{src}: {err}{' (8K UHD, the most a video may have)' if limit == MAX_FRAME_PIXELS else ''}")
        result.size = (w, h)
        rate = frame_rate(vstream)
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
                           model, progress, total, detect_every, smooth, result, src, keep_unchanged, muxer_options(dst))
            except BaseException as exc:  # write_atomic turns errors into WriteError: keep the real one
                written = found_behind(exc, (OSError, KeyboardInterrupt)) if isinstance(exc, av.FFmpegError) else None
                written = written if isinstance(written, OSError) else None  # (a stop behind it stays a stop)
                failure.append(written or exc)
                if written is not None:  # (a write that failed as a frame was muxed: PyAV's error came as the
                    raise written from None  # output was closed, with the system's behind it)
                raise

        try:
            write_atomic(dst, write, like=src)
        except WriteError:
            if failure and not isinstance(failure[0], (WriteError, OSError)):
                raise failure[0] from None
            raise
        result.output = dst
    finally:
        container.close()
    return result


def _transcode(av, container, vstream, f, out_format, codec_name, crf, preset, schedule, faces, min_face, model,
               progress, total, detect_every, smooth, result: VideoResult, src, keep_unchanged: bool,
               options: dict[str, str]) -> None:
    t_start = time.perf_counter()
    tm = {"decode": 0.0, "detect": 0.0, "detect_wait": 0.0, "track": 0.0, "encode": 0.0}
    tracker = None
    import collections
    import threading
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smile-encode")
    in_flight: collections.deque = collections.deque()
    mux_lock = threading.Lock()
    out = av.open(f, "w", format=out_format, container_options=options)
    try:
        w, h = vstream.codec_context.width, vstream.codec_context.height
        rate = frame_rate(vstream) or Fraction(25)
        ostream, copied = add_output_streams(av, container, vstream, out, out_format, codec_name, crf, preset, src,
                                             result.notes, result.streams_copied)

        # ------------------------------------------------------------ per-frame machinery
        view = first_view(av, src, vstream.index)  # (the display matrix: written back as it is)
        try:
            if view.matrix is not None:
                ostream.set_display_matrix(list(view.matrix))
        except (AttributeError, ValueError, TypeError, av.FFmpegError):
            result.notes.append(f"the display matrix ({view.degrees}° turn{', mirrored' * view.mirror}) "
                                "could not be stored in the output")
        if view.rounded_from is not None:
            result.notes.append(f"the display matrix turns the picture by {view.rounded_from:g}°, not a quarter turn: "
                                f"faces were looked for in it turned by {view.degrees}°; the matrix is kept as it is")
        if view and out_format in ("avi", "mpegts"):  # (FFmpeg's muxers drop it without a word)
            result.notes.append(f"{'AVI' if out_format == 'avi' else 'MPEG-TS'} holds no display matrix: the result plays "
                                f"as stored, without its {view.degrees}° turn{' and mirror' * view.mirror}; write .mp4, .mkv "
                                "or .mov to keep it")
        editor = FaceEditor(model, net_smooth=NET_SMOOTH if smooth else 1.0, net_every=NET_EVERY if smooth else 1)
        frame_rgb: dict = {}

        def detect(frame_index: int):
            """Called on the main thread: takes this frame's pixels, returns the job to run."""
            rgb = frame_rgb["get"]()
            return lambda: detect_job(rgb)

        def detect_job(rgb):
            from .detect import detect_faces  # (an array: frames have their own limit, 8K)

            t0 = time.perf_counter()
            found = detect_faces(view.show(rgb) if view else rgb, small_faces=False, upside_down=False)  # (no 2nd search)
            res = []
            for fc in found:
                lm = np.asarray(fc.landmarks, np.float64)
                box = fc.box
                if view:
                    lm = view.to_stored(lm, rgb.shape[:2])
                    corners = view.to_stored(np.array([[box[0], box[1]], [box[2], box[3]]], np.float64), rgb.shape[:2])
                    box = (int(corners[:, 0].min()), int(corners[:, 1].min()), int(corners[:, 0].max()), int(corners[:, 1].max()))
                res.append((lm, box, fc.score, fc.facing))
            tm["detect"] += time.perf_counter() - t0
            return res

        tracker = FaceTracker(detect, detect_every=detect_every, smooth=smooth, async_detect=smooth)
        if not smooth:
            tracker.fade_frames = 1
        start = vstream.start_time if vstream.start_time is not None else 0
        tb = vstream.time_base or Fraction(1, 1000)
        yuv_cache: dict = {}
        lookahead: Lookahead | None = None  # (sized at the first frame, by its memory)
        n = 0
        last_pts = None
        span = [0.0, 0.0]  # the first and the last frame's time (s)
        shown = 0.0  # how long the frames decoded last, by their own times
        fps_step = (1 / rate) if rate else Fraction(1, 25)

        def chosen(tr: Track, size: float | None = None) -> str | None:
            if tr.index < 0 and faces != "all":
                return "not confirmed yet"
            if isinstance(faces, str):
                if faces == "largest" and tr.index != 0:
                    return "not chosen"
            elif tr.index not in faces:
                return "not chosen"
            if min_face is not None and tr.max_size < min_face:
                return smaller_than_asked(min_face)
            size = tr.frame_size if size is None else size
            if size < MIN_EDIT_FACE:
                return f"too small to edit ({int(size)} px < {MIN_EDIT_FACE} px)"
            return None

        def finish(ready, put_region, pixels, pix_fmt, pts, tags, number):
            editor.apply(ready, put_region)
            t0 = time.perf_counter()
            if isinstance(pixels, PlanarFrame):  # the decoded planes, edited in place: same format
                nf = pixels.to_frame()
            else:
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

        damaged = [0]  # video packets that did not decode

        def frames():
            t0 = time.perf_counter()
            for packet in container.demux():
                if packet.stream.index != vstream.index:
                    o = copied.get(packet.stream.index)
                    cover = packet.stream.disposition & av.stream.Disposition.attached_pic  # (its one picture: no time)
                    if o is not None and (packet.dts is not None or cover):
                        kind = packet.stream.type
                        try:
                            with mux_lock:
                                o.mux(packet, out)  # (copied, or sound re-encoded: smilecore.video_audio)
                        except av.FFmpegError as e:  # e.g. an AVI's AAC audio whose timestamps repeat
                            raise InputError(f"{src}: its {kind} stream cannot be copied into the output as it is "
                                             f"({e.strerror or e}); try another container, e.g. .mkv") from None
                    continue
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    damaged[0] += 1
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

        def edit(wf: Waiting) -> None:
            """Edit and encode a frame that has waited its turn."""
            lam_now = schedule(wf.t)
            jobs = []
            for at in wf.faces:
                tr = at.track
                if tr.later is not None and any(f.track.index == tr.index and f.track is not tr for f in wf.faces):
                    continue  # (a face that came back, given this frame by the lookahead: its new track edits it)
                tr.ease_mouth(1.0 / tracker.fade_frames)
                if at.lost:  # what optical flow lost may be gone: no earlier output is shown, or mixed in, on this frame
                    tr.net_state = None
                if chosen(tr, at.size) is None:
                    lam = lam_now * at.fade * at.share  # turned from the camera: less (smilecore.strength)
                    if lam != 0.0:
                        jobs.append((tr, lam, at.landmarks))
                    elif tr.net_state is not None and at.fade == 0.0:
                        tr.net_state = None
            acc, pts, tags = wf.frame
            ready = editor.prepare(jobs, acc.get_region, (h, w)) if jobs else []
            if PIPELINE:  # compositing and encoding on a second thread, one frame behind (in order)
                in_flight.append(pool.submit(finish, ready, acc.put_region, acc.pixels, acc.pix_fmt, pts, tags, wf.index + 1))
                while len(in_flight) > 2:
                    in_flight.popleft().result()
            else:
                finish(ready, acc.put_region, acc.pixels, acc.pix_fmt, pts, tags, wf.index + 1)

        for fr in frames():
            if fr.width != w or fr.height != h:
                raise InputError(f"{src}: frame size changes mid-stream ({w}x{h} -> {fr.width}x{fr.height}), which is not supported")
            pts = fr.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                pts = (last_pts + max(1, int(round(fps_step / tb)))) if last_pts is not None else 0
            last_pts = pts
            t = float((pts - start) * tb)
            span[0] = t if n == 0 else span[0]
            span[1] = t
            t0 = time.perf_counter()
            acc = frame_access(fr, yuv_cache)
            if lookahead is None:
                held = frames_held(acc.nbytes)
                if held <= DETECT_LAG + 1 and acc.grey.base is not None:  # (each luma a copy, below: in the budget too)
                    held = frames_held(acc.nbytes + acc.grey.nbytes)
                lookahead = Lookahead(held, tracker.fade_frames)
            # the luma may stay a view of the plane the edit writes where a frame is edited only once it has
            # left a lookahead that holds more frames than the tracker looks back (8K holds fewer: a copy)
            if lookahead.frames <= DETECT_LAG + 1 and acc.grey.base is not None:
                acc.grey = acc.grey.copy()
            frame_rgb["get"] = acc.rgb
            tm["decode"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            w0 = tracker.wait
            live = tracker.update(acc.grey, n, t)
            tm["detect_wait"] += tracker.wait - w0
            tags = {a: getattr(fr, a, None) for a in ("colorspace", "color_range")}
            lookahead.push(Waiting(n, t, acc.grey, tracker.cuts, faces_now(live), (acc, pts, tags)))
            for tr in tracker.confirmed_now:  # a face that came into the picture: smiles from where it did
                lookahead.backfill(tr)
            tm["track"] += time.perf_counter() - t0 - (tracker.wait - w0)
            n += 1
            for wf in lookahead.ready():
                edit(wf)
        for wf in lookahead.drain() if lookahead is not None else []:
            edit(wf)
        while in_flight:
            in_flight.popleft().result()
        if n == 0:
            raise InputError(f"{src}: no video frame could be decoded (truncated or damaged file)")
        if damaged[0]:
            skipped = f"{damaged[0]} damaged video packet{'s were' if damaged[0] > 1 else ' was'} skipped"
            result.read_notes.append(skipped)
        # the frames' own times: a variable frame rate (a phone's, or an MKV without a frame count) is reported as it is
        shown = span[1] - span[0] + (span[1] - span[0]) / (n - 1) if n > 1 and span[1] > span[0] else 0.0
        if shown:
            result.fps = (n - 1) / (span[1] - span[0])
        # the video's own length, compared with the frames' own times (not with a guessed rate)
        announced = video_seconds(container, vstream)
        short_in_time = bool(announced and shown) and shown < announced - max(2 / max(result.fps, 1e-6), 0.05 * announced)
        if vstream.frames:  # a count the file gives (an edit list's cut frames among them: its duration says so)
            short = n < vstream.frames - max(2, 0.05 * vstream.frames) and (not announced or not shown or short_in_time)
            said = f"only {n} of the {vstream.frames} frames the file announces could be decoded"
        else:
            short = short_in_time
            said = f"only {shown:.2f} s of the {announced:.2f} s the file announces could be decoded"
        if short:
            result.read_notes.append(f"{said} (a truncated or damaged file?)")
        result.notes.extend(result.read_notes)
        t0 = time.perf_counter()
        with mux_lock:
            for packet in ostream.encode(None):
                out.mux(packet)
            for index, o in copied.items():  # (sound re-encoded: its last samples; subtitles: their last cue)
                o.flush(out)
                if getattr(o, "dropped", 0):
                    result.notes.append(f"subtitle #{index}: {o.dropped} cue{'s' * (o.dropped > 1)} the conversion "
                                        "refused (not UTF-8 text, or too long) left out")
        tm["encode"] += time.perf_counter() - t0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # (an interrupted run: the frame in hand finishes first)
        if tracker is not None:
            tracker.close()
        out.close()
    result.frames = n
    result.duration = shown or (float(n / result.fps) if result.fps else 0.0)
    result.detections = tracker.detections_run
    tracks = tracker.all_tracks()
    result.tracks = []
    for tr in tracks:
        parts = chain(tr)  # (a face that left and came back: one record from its first track to its last)
        tr.max_size = max(t.max_size for t in parts)  # (--min-face: the largest it was in any of them)
        reason = chosen(tr)
        frames_edited = sum(t.frames_edited for t in parts)
        edited = frames_edited > 0
        if reason is None and not edited:
            own = next((t.own for t in reversed(parts) if t.own is not None), None)
            if all(v == 0 for v in schedule.values):
                reason = "strength 0"
            elif max(t.max_share for t in parts) == 0.0:
                reason = TURNED_AWAY
            elif any(t.as_is is not None for t in parts):  # seen smiling as much as asked (a cover read while
                reason = already_smiling(max(t.as_is for t in parts if t.as_is is not None))  # it left, aside)
            elif any(t.mouth_covered for t in parts):  # never edited: covered while it was asked to smile
                reason = MOUTH_HIDDEN
            elif own is not None:  # it went through the network: it lacked none of the smile asked for
                reason = already_smiling(own)
            else:
                reason = "outside the picture"
        box, lm = parts[0].box, parts[0].ref
        if view:  # reported as the clip is shown (upright), as photos are after their EXIF turn
            lm = view.to_shown(lm, (h, w))
            c = view.to_shown(np.array([box[:2], box[2:]], np.float64), (h, w))
            box = (int(c[:, 0].min()), int(c[:, 1].min()), int(c[:, 0].max()), int(c[:, 1].max()))
        face = Face(box=box, landmarks=lm, score=parts[0].score, index=tr.index, edited=edited,
                    reason=None if edited else reason)
        result.tracks.append({
            **face.to_dict(),
            "first_frame": parts[0].first_frame, "last_frame": tr.last_frame,
            "frames_edited": frames_edited, "detections": sum(t.detections for t in parts),
        })
    result.timings = dict(tm, **editor.t)
    result.timings["total"] = time.perf_counter() - t_start
    if tracks and not isinstance(faces, str):
        missing = [i for i in faces if i not in {tr.index for tr in tracks}]
        if missing:  # as for photos (only known once the whole clip was seen)
            err = UsageError(f"{src}: face index {missing[0]} does not exist: {len(tracks)} face(s) found in the video "
                             "(indices start at 0)")
            err.faces = result.tracks  # (the faces there are, for a report)
            raise err
    if not tracks:
        if not keep_unchanged:
            many = len(container.streams.video)  # (a second angle, say: only the first video stream is read)
            err = NoFaceError(f"{src}: no face found in any frame of the video"
                              + (f" (in its video stream #{vstream.index}, the first of {many})" if many > 1 else ""))
            err.video = result  # (what was read of the clip, for a report)
            raise err
        result.notes.append("no face found in any frame: the video was re-encoded unchanged")
    elif not any(t["edited"] for t in result.tracks) and not all(v == 0 for v in schedule.values):
        reasons = sorted({t["reason"] for t in result.tracks if t["reason"]})
        # faces left as they are because they already smile that much are not an error (as for photos)
        if not keep_unchanged and not all(r.startswith(ALREADY_SMILING) for r in reasons):
            err = NoFaceError(f"{src}: {len(tracks)} face(s) found but none edited ({'; '.join(reasons)})", faces=result.tracks)
            err.video = result
            raise err
