"""``smile [run] PHOTO...``: make the faces in photos smile and write the results."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from smilecore.errors import InputError, SmileError, UsageError, one_line
from smilecore.atomic import (check_target, followed_links, folder_problem, remove_stale_work_folders,
                              work_folder)
from smilecore.decode import DEFAULT_MAX_PIXELS, load_mask
from smilecore.paths import expand_home
from smilecore.video_streams import CODECS, PRESETS

from .params import PixelCount
from . import report as rep
from .interrupt import Terminated, held_signals
from .inputs import (DEFAULT_SUFFIX, check_no_clash, check_reachable, expand_inputs, in_the_way, make_output_folders,
                     plan_outputs, remove_empty_folders, unreachable)
from .photo import process_photo
from .ray_connect import INSTALL_HINT as RAY_INSTALL_HINT
from .stdio import (STDIN_NAME, STDIO, STDOUT_NAME, check_stdout_free, check_stdout_is_not, read_stdin,
                    rename_in_error, rename_text, result_extension, write_stdout)
from .stdout import Report
from .version import smile_version
from .unused import unused_option_notes
from .video import StrengthParam, check_schedule, check_video_options, is_video_path, process_video, strength_label

RUN_HELP = """Make the faces in PHOTO... smile.

PHOTO can be files, folders (their photos; -r for sub-folders) and glob patterns.
Each result goes next to its photo as NAME.smile.EXT (see --suffix), into --out-dir,
or to -o OUT for a single photo; inputs are never overwritten unless --in-place is given.
PHOTO '-' reads a photo from standard input and -o - writes the result to standard output
(the default for '-'), whole or not at all.
Results keep the photo's format (or the one -o/--ext names), ICC profile, EXIF and
JPEG quality, and are written atomically (a crash never leaves half a file).

\b
Examples:
  smile portrait.jpg                          # -> portrait.smile.jpg
  smile portrait.jpg -s 2 -o big.png          # stronger smile, saved as PNG
  smile shots/ -r --out-dir out/ --keep-unchanged --json > report.json
  smile group.jpg --faces largest --min-face 40
  smile portrait.jpg --debug dbg/             # pictures of crops, masks and flows
  smile - --ext png < photo.jpg > smiling.png # a pipe: standard input to standard output
"""


def parse_faces(value: str) -> str | list[int]:
    """``all``, ``largest`` or comma-separated 0-based indices such as ``0,2``."""
    text = ("all" if value is None else value).strip().lower()
    if text in ("all", "largest"):
        return text
    try:
        idx = [int(part) for part in text.split(",") if part.strip() != ""]
    except ValueError:
        idx = []
    if not idx or any(i < 0 for i in idx):
        raise UsageError(f"--faces must be 'all', 'largest' or face indices like 0,2 (from 'smile detect'), not {value!r}")
    return idx


def _faces_callback(ctx, param, value):
    try:
        return parse_faces(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(", not ")[0], ctx=ctx, param=param) from None


def _ray_address(value: str | None) -> str | None:
    """``--ray``'s value; an empty one (``--ray "$UNSET"``) is refused rather than read as no --ray."""
    if value is not None and not value.strip():
        raise click.BadParameter("an address is needed: auto, local or ray://HOST:10001")
    return value


@click.command(help=RUN_HELP, short_help="Make the faces in photos smile (the default command).", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO...")
@click.option("-s", "--strength", type=StrengthParam(), default=1.0, show_default=True,
              help="How much smile: 0 = unchanged, 1 = a natural smile, 2 = a broad one; past 2 it grows less and less "
                   "(4 is about 2.4); negative = less smile. "
                   "Videos also take a schedule SECONDS:STRENGTH,... e.g. 0:0,1.5:2,4:2,5:0.")
@click.option("-o", "--output", metavar="OUT", help="Output file for a single photo; its extension picks the format ('-': standard output).")
@click.option("--out-dir", metavar="DIR", help="Write results into DIR (created if missing), named NAME+SUFFIX+EXT.")
@click.option("--suffix", default=DEFAULT_SUFFIX, show_default=True, help="Added to each result's name (not with -o or --in-place).")
@click.option("--ext", metavar="EXT", help="Output format for every photo, e.g. png (default: the photo's own).")
@click.option("--in-place", is_flag=True, help="Overwrite each photo with its result (atomically).")
@click.option("--faces", "faces", default="all", show_default=True, callback=_faces_callback, metavar="WHICH",
              help="Which faces: all, largest, or 0-based indices like 0,2 (largest face is 0).")
@click.option("--min-face", type=click.IntRange(min=1), metavar="PX", help="Leave faces smaller than PX pixels alone.")
@click.option("--selection", metavar="MASK", help="Grayscale image the size of the photo: only pixels > 0 may change (one photo).")
@click.option("--keep-unchanged", is_flag=True, help="When no face is found, write the photo unchanged and succeed (batch runs).")
@click.option("--skip-existing", is_flag=True,
              help="Leave out the photos and videos whose result already exists (to go on after a stopped batch).")
@click.option("-r", "--recursive", is_flag=True, help="Include photos in sub-folders of folder arguments.")
@click.option("--quality", type=click.IntRange(1, 100), metavar="Q", help="JPEG/WebP/AVIF/HEIF quality (default: a JPEG's own, else 95; AVIF 90, HEIF 85).")
@click.option("--max-pixels", type=PixelCount(), default=DEFAULT_MAX_PIXELS, show_default=True, metavar="N",
              envvar="SMILE_MAX_PIXELS", show_envvar=True,
              help="Refuse photos with more pixels (protects against decompression bombs).")
@click.option("--model", metavar="NAME|PATH", help="Model to use (default: $SMILE_MODEL, else the bundled one).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout (see docs/cli.md).")
@click.option("--debug", "debug_dir", metavar="DIR", help="Write aligned crops, masks and flow pictures into DIR.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--crf", type=click.IntRange(0, 63), metavar="N",
              help="Videos: encoder quality, lower is better (H.264 0-63 and HEVC 0-51, default 18, 0 = lossless; "
                   "VP9/VP8 0-63; MPEG-4 1-31).")
@click.option("--codec", type=click.Choice(tuple(CODECS), case_sensitive=False),
              help="Videos: video codec (default: h264, hevc for progressive 10-bit clips; vp9 for .webm).")
@click.option("--preset", type=click.Choice(PRESETS),
              help="Videos: H.264/HEVC encoder speed (default: veryfast).")
@click.option("-j", "--jobs", "jobs_n", type=click.IntRange(min=1), metavar="N",
              help="Photos smiled at once, by N worker processes (default: the number of CPU cores; "
                   "1 = one after another in this process). Same results either way.")
@click.option("--ray", "ray_address", metavar="ADDRESS", callback=lambda ctx, param, value: _ray_address(value),
              help="Smile the photos on a Ray cluster through Ray Data: auto, ray://HOST:10001, or local "
                   f"(a throwaway cluster on this machine). Needs Ray: {RAY_INSTALL_HINT}.")
@click.option("--ray-actors", type=click.IntRange(min=1), metavar="N",
              help="With --ray: actors (one model each; default: one per CPU of the cluster).")
def run_command(photos, strength, output, out_dir, suffix, ext, in_place, faces, min_face, selection, keep_unchanged,
                recursive, quality, max_pixels, model, as_json, debug_dir, quiet, crf=None, codec=None, preset=None,
                jobs_n=None, ray_address=None, ray_actors=None, skip_existing=False) -> int:
    """Entry of ``smile run``; returns the exit status.  ``-`` as the one PHOTO reads standard input,
    ``-o -`` writes the result to standard output (:mod:`smile_cli.stdio`)."""
    remove_stale_work_folders()  # (a killed run's private copy of a photo, in the temporary folder)
    options = dict(strength=strength, out_dir=out_dir, suffix=suffix, in_place=in_place, faces=faces, min_face=min_face,
                   selection=selection, keep_unchanged=keep_unchanged, recursive=recursive, quality=quality,
                   max_pixels=max_pixels, model=model, as_json=as_json, debug_dir=debug_dir, quiet=quiet, crf=crf,
                   codec=codec, preset=preset, jobs_n=jobs_n, ray_address=ray_address, ray_actors=ray_actors,
                   skip_existing=skip_existing)
    if output and _given("suffix"):
        raise UsageError("--suffix names results after their photos, but -o names the result itself: leave out one of them")
    if in_place and skip_existing:
        raise UsageError("--skip-existing leaves out photos whose result exists, and with --in-place every photo is its "
                         "own result: leave out one of them")
    if in_place and _given("suffix"):
        raise UsageError("--suffix names new files next to the photos, but --in-place replaces the photos "
                         "themselves: leave out one of them")
    from_stdin, to_stdout = STDIO in photos, output == STDIO or (photos == (STDIO,) and output is None and not out_dir)
    if to_stdout and output is None and _given("suffix"):  # (smile - > out.jpg: the result has no name to suffix)
        raise UsageError("--suffix names results after their photos, but this one goes to standard output: leave it out")
    if not from_stdin and not to_stdout:
        return _run(photos, output=output, ext=ext, **options)
    if from_stdin and len(photos) > 1:
        raise UsageError("PHOTO '-' (standard input) must be the only photo")
    if from_stdin and (in_place or out_dir):
        raise UsageError(f"standard input has no file to {'replace' if in_place else 'name a result after'}: "
                         "write the result with -o FILE, or -o - for standard output")
    if to_stdout and as_json:
        raise UsageError("-o - writes the result to standard output, where --json would go too: leave out one of them")
    if to_stdout:
        check_stdout_free()
        check_stdout_is_not([p for p in photos if p != STDIO])
    with work_folder("smile-stdio-") as folder:  # (private, locked while in use: a killed run's goes later)
        names = {}
        if from_stdin:
            photo = read_stdin(folder)
            names[str(photo)] = STDIN_NAME
            photos = (str(photo),)
        if to_stdout:
            if len(photos) != 1:
                raise UsageError("-o - is for one photo; give exactly one PHOTO")
            suffix_of = ("." + ext.lstrip(".")) if ext else result_extension(photos[0], recursive, suffix)
            suffix_of = suffix_of or ".png"  # (no format shows: the run says what is wrong with the photo)
            output = str(folder / f"standard-output{suffix_of}")  # (--ext stays: the plan checks it)
            names[output] = STDOUT_NAME
        stdout = sys.stdout  # (captured: a Ray run points sys.stdout at stderr while it goes)
        deliver = (lambda: write_stdout(Path(output), stdout.buffer)) if to_stdout else None
        try:
            return _run(photos, output=output, ext=ext, names=names, lines_to_stderr=to_stdout, deliver=deliver, **options)
        except SmileError as exc:  # (a refused plan names <stdin>/<stdout>, not the temporary files)
            rename_in_error(exc, names)
            raise


def _run(photos, strength, output, out_dir, suffix, ext, in_place, faces, min_face, selection, keep_unchanged,
         recursive, quality, max_pixels, model, as_json, debug_dir, quiet, crf=None, codec=None, preset=None,
         jobs_n=None, ray_address=None, ray_actors=None, skip_existing=False, names: dict | None = None,
         lines_to_stderr: bool = False, deliver=None) -> int:
    """The run itself (:func:`run_command` with standard input and output made files): ``names`` maps
    such files to the names the report shows; ``lines_to_stderr``: standard output carries the photo;
    ``deliver``: called once a photo's result is written, before its line is printed, to hand the
    result on (to standard output): a :class:`SmileError` it raises fails the photo."""
    # earlier results are skipped in folders and globs: this run's suffix, and the default one's (a run with
    # another suffix, over a tree holding results of the default one, would smile those again)
    results = tuple(dict.fromkeys((suffix, DEFAULT_SUFFIX))) if not in_place else None
    inputs = expand_inputs(list(photos), recursive=recursive, skip_suffix=results,
                           skip_folder=expand_home(out_dir) if out_dir else None)
    inputs = _suggest_commands(inputs, photos)
    jobs = plan_outputs(inputs, output, out_dir, suffix, ext, in_place)
    check_video_options(jobs, selection=selection, debug_dir=debug_dir, in_place=in_place, codec=codec, crf=crf,
                        preset=preset)
    for note in [] if quiet else unused_option_notes(jobs, quality=quality, crf=crf, codec=codec, preset=preset,
                                                          ray=ray_address, ray_actors=ray_actors, jobs_n=jobs_n):
        _to_stderr(f"smile: note: {note}")
    if selection is not None and len(jobs) != 1:
        raise UsageError("--selection applies to one photo; give exactly one PHOTO")
    if selection is not None and jobs[0].output is not None:
        check_no_clash({"--selection": selection}, {"the result": jobs[0].output})
    skipped = 0
    if skip_existing:
        kept = [j for j in jobs if j.output is None or not os.path.lexists(j.output)]  # (a name too long: not there)
        skipped, jobs = len(jobs) - len(kept), kept
        if not quiet and skipped:
            _to_stderr(f"smile: note: {skipped} of {skipped + len(jobs)} inputs left out: their results exist (--skip-existing)")
    created: list[Path] = []  # (folders this run made: those left empty go at its end, a refused run's too)
    try:
        if out_dir:
            created += _make_dir(expand_home(out_dir), "--out-dir")
            created += make_output_folders(jobs, out_dir)  # (-r: the sub-folders the results keep)
        if debug_dir:
            created += _make_dir(expand_home(debug_dir), "--debug")
        if output:
            _check_parent(expand_home(output))
            check_target(expand_home(output))  # (a named pipe or device called x.png is never replaced)
            followed_links(expand_home(output))  # (nor one reached through a link another user planted)
    except BaseException:
        remove_empty_folders(created)
        raise

    report_stream = sys.stdout
    redirect = contextlib.ExitStack()
    try:
        import smilecore

        smile_model = None
        from .parallel import default_jobs, open_pool  # -j N: photos in worker processes (None: one after another here)

        cores, photos_n = default_jobs(), sum(not is_video_path(j.input) for j in jobs)
        if jobs_n is not None and not ray_address and jobs_n > cores and photos_n > cores:
            if not quiet:  # (each worker holds a model: workers past the cores only take memory and time)
                _to_stderr(f"smile: note: -j {jobs_n}: smile may use {cores} core{'s' * (cores != 1)} here, so "
                           f"{cores} worker process{'es' * (cores != 1)}")
            jobs_n = cores

        if ray_address:  # Ray's own lines ("(raylet) WARNING ...") go to stderr: stdout is the report's alone
            redirect.enter_context(contextlib.redirect_stdout(sys.stderr))
        pool = open_pool(jobs_n, jobs, model, dict(strength=strength, faces=faces, min_face=min_face, keep_unchanged=keep_unchanged,
                         quality=quality, max_pixels=max_pixels, debug_dir=expand_home(debug_dir) if debug_dir else None),
                         ray=ray_address, ray_actors=ray_actors)
        if pool is not None:
            smile_model = pool.model  # loaded by the workers (and here too when there are videos)
        elif any(j.problem is None for j in jobs):  # (when every photo is missing, say that, not a model problem)
            smile_model = smilecore.load_model(model)  # once for all photos; ModelError -> exit 6
        check_schedule(strength, jobs, smile_model)  # (a schedule is for videos; each value in the model's range)
        sel = _load_selection(selection, max_pixels) if selection else None

        reports: list[rep.PhotoReport] = []
        out = Report(report_stream)  # a reader that goes away silences the report, never the work
        bar = None
        if len(jobs) > 1 and not as_json and not quiet:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), unit="photo", file=sys.stderr, disable=None, leave=False)
        echo_line = _line_printer(quiet, as_json, out, bar, lines_to_stderr)
        try:
            _smile_all(jobs, reports, echo_line, bar, pool, smile_model, deliver, names, sel,
                       dict(strength=strength, faces=faces, min_face=min_face, keep_unchanged=keep_unchanged,
                            max_pixels=max_pixels), dict(codec=codec, crf=crf, preset=preset, quality=quality,
                                                         debug_dir=debug_dir, show_progress=not (as_json or quiet)))
            if pool is not None:  # (a stop while it shuts down, Ray's taking seconds: still a report of every result)
                pool.close()
        except KeyboardInterrupt as stop:  # (Ctrl-C, SIGTERM, SIGHUP): say what was done before the stop
            from .parallel import PhotoPool

            # the -j pool stops within its grace period: a second signal must not break into its report; Ray's
            # shutdown has no such bound, so a second Ctrl-C may still cut it short
            with held_signals() if pool is None or isinstance(pool, PhotoPool) else contextlib.nullcontext():
                if pool is not None:
                    pool.close()  # (the workers stop their photos; those they had finished are reported)
                    for r in pool.finished():
                        reports.append(r)
                        echo_line(r)
                if bar is not None:
                    bar.close()
                _interrupted_report(reports, len(jobs), as_json, quiet, out, smile_model, strength, stop,
                                resume=not in_place and output is None, skipped=skipped if skip_existing else None)
            raise
        if bar is not None:
            bar.close()

        if as_json:
            doc = _json_report(reports, smile_model, strength)
            if skip_existing:
                doc["summary"]["skipped"] = skipped
            out.echo(json.dumps(doc, indent=2))
        elif len(reports) > 1 and not quiet:
            _to_stderr(rep.summary_line(reports))
        code = rep.overall_exit_code(reports)
        written = sum(r.output is not None for r in reports)
        return out.exit_code(code, f"; {written} of {len(reports)} result{'s' if len(reports) != 1 else ''} written")
    finally:
        redirect.close()
        remove_empty_folders(created)  # (a run refused before it began, a folder whose photos all failed)


def _smile_all(jobs, reports: list, echo_line, bar, pool, smile_model, deliver, names, sel, settings: dict, more: dict) -> None:
    """Smile every job in input order (videos here; photos in the ``pool`` or here), appending each report to
    ``reports`` and printing its line as it comes."""
    strength, faces, min_face = settings["strength"], settings["faces"], settings["min_face"]
    keep_unchanged, max_pixels = settings["keep_unchanged"], settings["max_pixels"]
    debug_dir = expand_home(more["debug_dir"]) if more["debug_dir"] else None
    for number, job in enumerate(jobs, 1):
        if is_video_path(job.input):
            if bar is not None:
                bar.clear()
            r = process_video(job, smile_model, strength, faces, min_face, keep_unchanged, max_pixels, codec=more["codec"],
                              crf=more["crf"], preset=more["preset"], show_progress=more["show_progress"])
        elif pool is not None:
            r = pool.take(number, bar)  # in input order; the bar counts photos as they finish
        else:
            r = process_photo(job, smile_model, strength, faces, min_face, sel, keep_unchanged, more["quality"], max_pixels,
                              debug_dir, number)
        if deliver is not None and r.status != rep.STATUS_FAILED and r.output is not None:
            try:
                deliver()  # (the line says the photo was written only once it was, whole)
            except SmileError as exc:
                r.fail(exc)
                r.output = None
        if names:
            r.input = names.get(str(r.input), r.input)
            r.output = names.get(str(r.output), r.output) if r.output is not None else None
            rename_in_error(r.error, names)
            r.notes = [rename_text(n, names) for n in r.notes]
        reports.append(r)
        echo_line(r)
        if bar is not None and (pool is None or is_video_path(job.input)):
            bar.update(1)


def _json_report(reports: list, smile_model, strength) -> dict:
    """The ``--json`` document of ``reports`` (the model described, when one was loaded)."""
    model_info = None if smile_model is None else {
        "name": smile_model.name, "version": smile_model.version, "license": smile_model.license,
        "path": str(smile_model.path)}
    return rep.document(reports, smile_version(), model_info, strength_label(strength))


def _interrupted_report(reports: list, total: int, as_json: bool, quiet: bool, out: Report, smile_model, strength,
                        stop: BaseException, resume: bool = False, skipped: int | None = None) -> None:
    """What a stopped run had done: with ``--json`` the report of the photos finished (``"interrupted"``
    names the signal), else a line on stderr (the caller then says "interrupted" and exits 128 + signal)."""
    written = sum(r.output is not None for r in reports)
    if as_json:
        import signal as _signal

        doc = _json_report(reports, smile_model, strength)
        signum = stop.signum if isinstance(stop, Terminated) else _signal.SIGINT
        doc["interrupted"] = _signal.Signals(signum).name
        doc["summary"]["exit_code"] = 128 + int(signum)  # (the run's status, as the process exits with it)
        doc["summary"]["not_done"] = total - len(reports)  # (not started, or stopped half-way: nothing written)
        if skipped is not None:
            doc["summary"]["skipped"] = skipped
        out.echo(json.dumps(doc, indent=2))
    elif not quiet and total > 1:
        hint = "; the same command with --skip-existing goes on from there" if resume else ""
        _to_stderr(f"smile: stopped after {len(reports)} of {total} inputs: {written} result{'s' if written != 1 else ''} "
                   f"written; the others were not started or were stopped, nothing half-written{hint}")


def _suggest_commands(inputs: list, photos: tuple[str, ...]) -> list:
    """A missing first 'photo' that looks like a mistyped sub-command gets a hint."""
    import difflib

    ctx = click.get_current_context(silent=True)
    group = ctx.parent.command if ctx is not None and ctx.parent is not None else None
    names = [n for n in getattr(group, "commands", {}) if n != "run"]
    if not inputs or not photos or not names:
        return inputs
    path, problem = inputs[0]
    close = difflib.get_close_matches(photos[0], names, n=1, cutoff=0.75)
    if problem and problem.endswith("no such file") and close:
        if "." not in photos[0] and os.sep not in photos[0] and "/" not in photos[0]:  # a bare word: a command
            raise UsageError(f"no command and no file called {photos[0]!r}: did you mean 'smile {close[0]}'?")
        inputs = [(path, f"{problem} (did you mean 'smile {close[0]}'?)"), *inputs[1:]]
    return inputs


def _given(param: str) -> bool:
    """Was the option ``param`` given on the command line (not left at its default)?"""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    from click.core import ParameterSource

    return ctx.get_parameter_source(param) not in (None, ParameterSource.DEFAULT)


def _load_selection(selection: str, max_pixels: int):
    """The ``--selection`` mask; its errors say that the file is the selection mask."""
    try:
        return load_mask(selection, max_pixels=max_pixels)
    except SmileError as exc:
        text = str(exc)
        name = f"{selection}: "
        raise type(exc)(f"{selection} (the --selection mask): {text[len(name):]}" if text.startswith(name)
                        else f"--selection {selection}: {text}") from None
    except OSError as exc:  # (a folder on its way that may not be opened)
        raise InputError(unreachable(selection, exc, f"{selection} (the --selection mask)")) from None


def _to_stderr(text: str, bar=None) -> None:
    """One line on stderr (around the progress ``bar``); a stderr that cannot be written is ignored."""
    try:
        if bar is not None and not bar.disable:
            bar.write(text, file=sys.stderr)
        else:
            click.echo(text, err=True)
    except (OSError, ValueError):
        pass


def _line_printer(quiet: bool, as_json: bool, out: Report, bar=None, to_stderr: bool = False):
    """A function printing a photo's line (stdout, or stderr with ``to_stderr``; errors and notes to
    stderr), around a progress bar."""

    def emit(text: str, err: bool) -> None:
        text = one_line(text)  # (a newline in a file's name, escaped as error messages escape it)
        if err or to_stderr:
            _to_stderr(text, bar)
        else:
            out.echo(text, bar)

    def echo(r: rep.PhotoReport) -> None:
        failed = r.status == rep.STATUS_FAILED
        if (quiet or as_json) and not failed:
            return
        emit(r.line(), failed)
        if not quiet:
            for note in r.notes:
                if note != r.reason:
                    emit(f"  note: {note}", True)

    return echo


def _make_dir(path: Path, option: str) -> list[Path]:
    """Create the folder ``option`` names; returns the folders it created, outermost first (removed again
    at the end of a run that left them empty)."""
    check_reachable(os.path.join(path, "."), f"{option} {path}")  # (a folder on its way that may not be opened)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a folder")
    blocked = in_the_way(path)
    if blocked is not None:  # (a file on its way: a/x where a is a file; a link to nothing)
        raise UsageError(f"{option} {path}: {blocked}")
    try:
        real = followed_links(path)  # (no folder is made through a link another user planted)
    except SmileError as exc:
        raise type(exc)(f"{option} {exc.message}") from None
    missing = [p for p in [path, *path.parents] if not p.exists()]
    try:
        real.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from smilecore.errors import WriteError

        raise WriteError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    return list(reversed(missing))


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    check_reachable(path, f"-o {path}")
    problem = folder_problem(parent)
    if problem:
        raise UsageError(f"-o {path}: {problem}")
