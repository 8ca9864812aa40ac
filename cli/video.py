"""Videos in ``smile`` and ``smile worker``: the strength option, one clip's job, progress.

``smile clip.mp4 --strength 2`` goes through the same command as photos (cli/run.py sends
each video job here); the engine is :func:`smilecore.video.smile_video`.  PyAV is imported
only when a video is actually processed, so photos never need it.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import click

from smilecore.errors import InputError, NoFaceError, UsageError, WriteError
from smilecore.arguments import plain_number
from smilecore.video_schedule import StrengthSchedule
from smilecore.video_streams import VIDEO_EXTENSIONS, is_video_path, video_format

from . import report as rep

__all__ = ["StrengthParam", "VIDEO_EXTENSIONS", "is_video_path", "video_format", "VideoReport", "process_video",
           "check_schedule", "worker_video"]


class StrengthParam(click.ParamType):
    """A finite number, or for videos a schedule ``SECONDS:STRENGTH,...`` (a :class:`StrengthSchedule`)."""

    name = "NUMBER|SCHEDULE"

    def convert(self, value, param, ctx):
        if isinstance(value, (float, StrengthSchedule)):
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"{value!r} is not a finite number", param, ctx)
            return value
        text = str(value)
        if ":" in text:
            try:
                return StrengthSchedule.parse(text)
            except UsageError as exc:
                self.fail(str(exc).replace("strength schedule ", "schedule ", 1), param, ctx)
        try:
            f = plain_number(text)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number (or, for videos, a schedule like 0:0,1.5:2,4:2,5:0)", param, ctx)
        if not math.isfinite(f):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return f


def strength_label(strength) -> float | str:
    """What reports show as the strength: the number, or the schedule's text."""
    return strength.text if isinstance(strength, StrengthSchedule) else strength


def check_schedule(strength, jobs, model) -> None:
    """A schedule is for videos only; each of its strengths must be in the model's range."""
    if isinstance(strength, StrengthSchedule):
        photos = [j.input for j in jobs if j.problem is None and not is_video_path(j.input)]
        if photos:
            raise UsageError(f"--strength {strength.text}: a schedule applies to videos, {photos[0]} is a photo "
                             "(give photos a number)")
        if model is not None:
            for v in strength.values:
                model.check_strength(v, "--strength")
    elif model is not None:
        model.check_strength(strength, "--strength")


def check_video_options(jobs, selection=None, debug_dir=None, in_place=False, codec=None, crf=None,
                        preset=None) -> None:
    """Options that only photos take are refused for videos, and the encoder's (``--codec``, ``--crf``,
    ``--preset``) checked against each video's output, before any work."""
    videos = [j for j in jobs if j.problem is None and is_video_path(j.input)]
    if not videos:
        return
    for given, option in ((selection, "--selection"), (debug_dir, "--debug"), (in_place, "--in-place")):
        if given:
            raise UsageError(f"{option} is for photos, {videos[0].input} is a video")
    from smilecore.video_streams import output_options

    for j in videos:
        if j.output is not None:
            try:
                output_options(j.output, codec, crf, preset)
            except UsageError as exc:
                raise UsageError(f"{j.input}: {exc}") from None


class VideoReport(rep.PhotoReport):
    """A clip's entry in the report: a photo's fields plus ``video`` (frames, rate, tracks)."""

    video: dict | None = None
    reencoded: bool = False  #: left unchanged, but written into another container (not a byte copy)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["strength"] = strength_label(self.strength)
        d["video"] = self.video
        return d

    def line(self) -> str:
        if self.status == rep.STATUS_UNCHANGED and self.reencoded:
            return f"{self.input} -> {self.output}: re-encoded unchanged ({self.reason})"
        if self.status == rep.STATUS_OK and self.video:
            v = self.video
            return (f"{self.input} -> {self.output}: {self.faces_phrase()}, "
                    f"{v['frames']} frame{'' if v['frames'] == 1 else 's'} at {v['fps']:.3g} fps ({self.seconds:.1f} s, "
                    f"{v['frames'] / max(self.seconds, 1e-9):.1f} fps)")
        return super().line()


def _bar(name: str, enabled: bool):
    """A per-frame progress bar on stderr (frames, fps, ETA), or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=None, unit="frame", desc=name, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def process_video(job, model, strength, faces, min_face, keep_unchanged, max_pixels, codec=None, crf=None,
                  preset=None, show_progress: bool = True) -> VideoReport:
    """Smile one clip; never raises a SmileError (it goes into the report).  Ctrl-C and
    SIGTERM go through (the temporary output is removed on the way)."""
    from smilecore.atomic import copy_file_atomic
    from smilecore.video import smile_video

    r = VideoReport(input=job.input, strength=strength)
    t0 = time.perf_counter()
    bar = _bar(job.input.name, show_progress)

    def progress(p) -> None:
        if bar is None:
            return
        if p.total and bar.total != max(p.total, p.frame):
            bar.total = max(p.total, p.frame)
            bar.refresh()
        bar.update(p.frame - bar.n)

    try:
        if job.problem:
            raise InputError(job.problem)
        if job.blocked:
            raise WriteError(job.blocked)
        try:
            res = smile_video(job.input, job.output, strength=strength, faces=faces, min_face=min_face, model=model,
                              codec=codec, crf=crf, preset=preset, max_pixels=max_pixels, progress=progress)
        except NoFaceError as exc:
            r.faces = list(exc.faces)  # the tracked faces, each with why it was left alone
            if not keep_unchanged:
                raise NoFaceError(f"{exc} (--keep-unchanged copies such videos as they are)") from None
            r.status, r.reason = rep.STATUS_UNCHANGED, str(exc).split(": ", 1)[-1]
            r.notes.append(r.reason)
            seen = getattr(exc, "video", None)  # (what was read of the clip)
            if job.output != job.input:
                if _copies_as_is(job, codec, crf, preset):
                    copy_file_atomic(job.input, job.output)
                    if seen is not None:
                        r.video = _video_dict(seen, copied_from=job.input)
                else:
                    res = smile_video(job.input, job.output, strength=0.0, model=model, codec=codec, crf=crf,
                                      preset=preset, max_pixels=max_pixels, keep_unchanged=True)
                    r.reencoded = True  # (another container or encoding: the frames as they are, written anew)
                    r.notes.extend(n for n in res.notes if not n.startswith("no face found"))  # (sound re-encoded...)
                    seen, r.video = res, _video_dict(res)
            if seen is not None:
                r.size = seen.size
            r.output = job.output
            return r
        copied = not any(t.get("edited") for t in res.tracks) and _copies_as_is(job, codec, crf, preset)
        if copied:  # no face changed (each already smiles as much, or strength 0): the clip as it is, not re-encoded
            copy_file_atomic(job.input, job.output)
            res.notes = list(res.read_notes)  # (of reading the clip: still true of the copy)
        r.faces = res.tracks
        r.size = res.size
        r.timings = dict(res.timings)
        r.notes.extend(res.notes)
        r.video = _video_dict(res, copied_from=job.input if copied else None)
        r.output = job.output
        r.status = rep.STATUS_OK
    except Exception as exc:  # a SmileError, or a bug in one clip that must not lose the others' results
        r.fail(exc)
    finally:
        r.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return r


def _copies_as_is(job, codec, crf, preset) -> bool:
    """Whether a clip left as it is gets copied byte for byte (the one rule for both ways a clip can be left
    unchanged): a result of its own in the same container, and no --codec, --crf or --preset asking for an encoding."""
    return (job.output != job.input and codec is None and crf is None and preset is None
            and job.input.suffix.lower() == job.output.suffix.lower())


def _video_dict(res, copied_from: Path | None = None) -> dict:
    """The report's ``video`` object; for a clip copied byte for byte (``copied_from``), its own codec and
    every one of its streams, since what was encoded on the way was thrown away."""
    codec, streams = res.codec, res.streams_copied
    if copied_from is not None:
        codec, streams = _source_streams(copied_from, codec)
    return {"frames": res.frames, "fps": round(res.fps, 4), "duration": round(res.duration, 4), "codec": codec,
            "streams_copied": streams, "copied": copied_from is not None, "detections": res.detections,
            "processing_fps": round(res.frames / max(res.timings.get("total", 0.0), 1e-9), 2)}


def _source_streams(path: Path, fallback: str) -> tuple[str, list[str]]:
    """(the video codec, every stream as "type #index (codec)") of the clip at ``path``, as the report names
    copied streams; ``fallback`` and no streams when it cannot be read again."""
    try:
        import av

        from smilecore.video_audio import stream_name
        from smilecore.video_input import open_input

        with open_input(av, path) as c:
            streams = list(c.streams)
            names = [stream_name(s) for s in streams]
            video = [s.codec_context.name for s in streams if s.type == "video" and s.codec_context]
            return (video[0] if video else fallback), names
    except Exception:  # (read a moment ago; a report must not fail over it)
        return fallback, []


# ---------------------------------------------------------------------- worker


def worker_video(session, req: dict, src: str, dst: str, emit) -> dict:
    """The worker's ``smile`` request for a video: progress events while it runs, then the reply."""
    from smilecore.video import smile_video

    from .bridge.fields import BadRequest, crf_field, faces_field, min_face_field

    value = req.get("strength", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest("field 'strength' must be a finite number or a schedule string like \"0:0,1.5:2\"")
    try:  # (a number too large, infinite or NaN is refused by the schedule's own check)
        schedule = StrengthSchedule.parse(value)
    except UsageError as exc:
        raise BadRequest(str(exc)) from None
    faces = faces_field(req)
    min_face = min_face_field(req)
    for name in ("selection", "mask_output"):
        if req.get(name) is not None:
            raise BadRequest(f"field {name!r} is not supported for videos")
    codec = req.get("codec")
    crf = crf_field(req)
    if codec is not None and not isinstance(codec, str):
        raise BadRequest("field 'codec' must be a string like \"h264\"")
    if session.model is None:
        session.load_model()
        if session.model is None:
            raise session.model_error
    req_id = req.get("id")
    last = [0.0]

    def progress(p) -> None:
        now = time.perf_counter()
        if emit is None or (now - last[0] < 0.25 and not (p.total and p.frame >= p.total)):
            return
        last[0] = now
        eta = p.eta
        if emit({"event": "progress", "id": req_id, "frame": p.frame, "frames": p.total, "fps": round(p.fps, 2),
                 "eta": None if eta is None else round(eta, 1)}) is False:
            from .interrupt import ClientGone

            raise ClientGone  # (no one will read the reply: stop the clip, leaving nothing behind)

    from smilecore.decode import env_max_pixels

    res = smile_video(src, dst, strength=schedule, faces=faces, min_face=min_face, model=session.model, codec=codec,
                      crf=crf, max_pixels=env_max_pixels(), progress=progress)
    return {"output": dst, "mask_output": None, "faces": res.tracks,
            "timings": {k: round(float(v), 4) for k, v in res.timings.items()}, "notes": res.notes,
            "video": _video_dict(res)}


