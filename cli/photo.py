"""One photo of a ``smile PHOTO...`` run: read it, smile it, write the result, report the outcome.

The same function serves every way a run is spread out: one photo after another
(:mod:`smile_cli.run`), worker processes (``-j N``, :mod:`smile_cli.parallel`) and Ray actors
(``--ray``, :mod:`smile_cli.ray_data`), so the bytes written never depend on the way.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from smilecore.atomic import copy_file_atomic
from smilecore.decode import MAX_PAGES_COUNTED, load_image
from smilecore.encode import OUTPUT_FORMATS, output_format, save_image
from smilecore.errors import InputError, NoFaceError, SmileError, UsageError, WriteError

from . import report as rep
from .inputs import Job


def same_format(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name files of the same known output format (so a copy may stand for a save)."""
    return OUTPUT_FORMATS.get(a.suffix.lower()) == OUTPUT_FORMATS.get(b.suffix.lower()) is not None


def file_error(job: Job, exc: OSError) -> Exception:
    """The one-line error for a file-system error about ``job``'s photo (exit 4) or result (exit 7);
    ``exc`` itself (a bug) when it is about another file."""
    if not isinstance(exc.filename, (str, bytes, os.PathLike)):
        return exc
    name = os.path.abspath(os.fsdecode(exc.filename))
    reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or type(exc).__name__)
    if job.output is not None and name in (os.path.abspath(job.output), os.path.abspath(job.output.parent)):
        return WriteError(f"{job.output}: cannot write it ({reason})")
    if name == os.path.abspath(job.input):
        return InputError(f"{job.input}: cannot read it ({reason})")
    return exc


def process_photo(job: Job, model, strength, faces, min_face, selection, keep_unchanged, quality, max_pixels,
                  debug_dir: Path | None, number: int) -> rep.PhotoReport:
    """Smile one photo; never raises a SmileError (it goes into the report)."""
    import smilecore

    r = rep.PhotoReport(input=job.input, strength=strength)
    t0 = time.perf_counter()
    try:
        if job.problem:
            raise InputError(job.problem)
        if job.blocked:
            raise WriteError(job.blocked)
        image, info = load_image(job.input, max_pixels=max_pixels)
        r.size = info.size
        w, h = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size  # (16-bit: an array)
        if selection is not None and np.shape(selection)[:2] != (h, w):
            mh, mw = np.shape(selection)[:2]
            raise UsageError(f"{job.input}: the --selection mask is {mw}x{mh}, the photo {w}x{h}"
                             " (as it is shown, turned by its EXIF orientation): give a mask of the photo's size")
        in_place = job.output == job.input
        if in_place and info.frames > 1:  # the result holds the first frame only: the others would be lost
            counted = info.format == "TIFF" and info.frames > MAX_PAGES_COUNTED  # (a TIFF's pages: counted so far)
            many = f"more than {MAX_PAGES_COUNTED}" if counted else info.frames
            raise UsageError(f"{job.input}: it holds {many} frames (pages, an animation, a burst or a second "
                             "picture) and Smile edits and writes one only (the first, or a HEIF's primary one): "
                             "--in-place would lose the others; "
                             "write a new file with -o or --out-dir")
        # --in-place keeps the photo's own format, even under another format's extension (PNG named .jpg)
        fmt = info.format if in_place and info.format and info.format != output_format(job.output) else None
        r.notes.extend(info.notes)
        try:
            result = smilecore.smile(image, strength=strength, faces=faces, min_face=min_face, selection=selection,
                                     model=model, max_pixels=max_pixels, debug=debug_dir is not None)
        except NoFaceError as exc:
            r.faces = [f.to_dict() for f in exc.faces]  # the faces found, each with why it was left alone
            if not keep_unchanged:
                raise NoFaceError(f"{job.input}: {exc} (--keep-unchanged copies such photos as they are)") from None
            r.error = None
            r.status = rep.STATUS_UNCHANGED
            r.reason = str(exc)
            r.notes.append(r.reason)
            if job.output != job.input:
                if same_format(job.input, job.output):
                    copy_file_atomic(job.input, job.output)
                else:
                    r.notes.extend(save_image(job.output, image, info, quality=quality))
            r.output = job.output
            return r
        except SmileError as exc:
            named = type(exc)(f"{job.input}: {exc}")
            named.faces = getattr(exc, "faces", None)  # (a face index that does not exist: the faces there are)
            raise named from None
        r.faces = [f.to_dict() for f in result.faces]
        r.timings = dict(result.timings)
        if not any(f.edited for f in result.faces) and info.orientation == 1 and same_format(job.input, job.output):
            # no face changed (each already smiles as much, say): the photo as it is, not re-encoded (a
            # photo stored sideways is still written upright, as every result is)
            if job.output != job.input:
                copy_file_atomic(job.input, job.output)
        else:
            r.notes.extend(save_image(job.output, result.image, info, quality=quality, fmt=fmt))
            if fmt:
                r.notes.append(f"written as {fmt}, the format it holds, under its {job.output.suffix} name")
        r.output = job.output
        r.status = rep.STATUS_OK
        if debug_dir is not None:
            from .debug_dump import write_debug

            try:
                write_debug(debug_dir, number, job.input.name, image, result, like=job.input)
            except (OSError, SmileError) as exc:  # (the result is written: a note, not a failure)
                r.notes.append(f"--debug: could not write pictures ({exc})")
    except OSError as exc:  # (a folder of the photo or of its result that may not be opened, say)
        r.fail(file_error(job, exc))
    except Exception as exc:  # a SmileError, or a bug in one photo that must not lose the others' results
        r.fail(exc)
    finally:
        r.seconds = time.perf_counter() - t0
    return r
