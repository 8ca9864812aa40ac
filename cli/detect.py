"""``smile detect PHOTO...``: list the faces Smile finds, with the indices ``--faces`` takes."""
from __future__ import annotations

import json
from pathlib import Path

import click

from smilecore.errors import InputError, SmileError, UsageError, one_line
from smilecore.face import DETECTED_FIELDS
from smilecore.decode import DEFAULT_MAX_PIXELS, load_image
from smilecore.video_streams import is_video_path

from .params import PixelCount
from .inputs import expand_inputs, unreachable
from .stdio import STDIN_NAME, STDIO, read_stdin, rename_in_error
from .stdout import Report

DETECT_HELP = """List the faces found in each PHOTO (largest first, index 0).

PHOTO can be files, folders (their photos; -r for sub-folders) and glob patterns,
as for 'smile PHOTO...'; '-' reads one photo from standard input. A video (named
or matched by a glob) lists the faces tracked through it, with the indices 'smile
VIDEO --faces' takes and the frames each was seen in (it is decoded whole: that
takes about as long as smiling it).

\b
Examples:
  smile detect group.jpg            # index, box, size and score of every face
  smile detect group.jpg --json
  smile detect shots/ -r            # every photo of a folder and its sub-folders
  smile group.jpg --faces 0,2       # then smile only faces 0 and 2
  smile detect clip.mp4             # a video's faces, and the frames each is in
"""


@click.command(help=DETECT_HELP, short_help="List the faces found in photos, with their indices.", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO...")
@click.option("-r", "--recursive", is_flag=True, help="Include photos in sub-folders of folder arguments.")
@click.option("--min-face", type=click.IntRange(min=1), metavar="PX", help="Ignore faces smaller than PX pixels.")
@click.option("--max-pixels", type=PixelCount(), default=DEFAULT_MAX_PIXELS, show_default=True, metavar="N",
              envvar="SMILE_MAX_PIXELS", show_envvar=True, help="Refuse photos with more pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{input, faces: [{index, box, score}], error}].")
def detect_command(photos: tuple[str, ...], recursive: bool, min_face: int | None, max_pixels: int, as_json: bool) -> int:
    """Entry of ``smile detect``; returns the exit status (that of the first photo that failed: 3 if
    it has no face, 4 if it is missing...).  PHOTO arguments are expanded as ``smile`` expands them
    (:func:`smile_cli.inputs.expand_inputs`: folders, globs, each file once), except that earlier
    results are listed too (detecting writes nothing)."""
    if STDIO not in photos:
        return _detect(photos, recursive, min_face, max_pixels, as_json)
    if len(photos) > 1:
        raise UsageError("PHOTO '-' (standard input) must be the only photo")
    from smilecore.atomic import work_folder

    with work_folder("smile-stdio-") as folder:
        photo = read_stdin(folder)
        return _detect((str(photo),), recursive, min_face, max_pixels, as_json, {str(photo): STDIN_NAME})


def _detect(photos, recursive: bool, min_face: int | None, max_pixels: int, as_json: bool,
            names: dict[str, str] | None = None) -> int:
    """:func:`detect_command` on files (``names``: what the listing calls some of them)."""
    import smilecore

    out = []
    code = 0
    report = Report()  # a reader that goes away silences the listing, never the work
    try:
        for path, problem in expand_inputs(list(photos), recursive=recursive, skip_suffix=None):
            photo = (names or {}).get(str(path), str(path))
            entry = {"input": photo, "faces": [], "error": None}
            try:
                if problem:
                    raise InputError(problem)
                if is_video_path(path):
                    entry["faces"], notes = _video_faces(path, min_face, max_pixels, show_bar=not as_json)
                    if notes:
                        entry["notes"] = notes
                    for note in notes:
                        click.echo(one_line(f"smile: note: {photo}: {note}"), err=True)
                    if not entry["faces"]:
                        raise smilecore.NoFaceError(f"{photo}: no face found in the video")
                    _list(report, photo, entry["faces"], as_json)
                    out.append(entry)
                    continue
                try:
                    image, _info = load_image(path, max_pixels=max_pixels)
                except OSError as exc:  # (a folder on its way that may not be opened, since it was listed)
                    raise InputError(unreachable(path, exc)) from None
                faces = smilecore.detect_faces(image, min_face=min_face, max_pixels=max_pixels)
                entry["faces"] = [f.to_dict(DETECTED_FIELDS) for f in faces]
                if not faces:
                    raise smilecore.NoFaceError(f"{photo}: no face found")
            except SmileError as exc:
                rename_in_error(exc, names)
                entry["error"] = {"code": exc.code, "exit_code": exc.exit_code, "message": str(exc)}
                code = code or exc.exit_code
                click.echo(f"smile: error: {exc}", err=True)
            out.append(entry)
            _list(report, photo, entry["faces"], as_json)
    except KeyboardInterrupt:  # (Ctrl-C, SIGTERM: the inputs listed so far, then the stop as smile reports it)
        if as_json:
            report.echo(json.dumps(out, indent=2))
        raise
    if as_json:
        report.echo(json.dumps(out, indent=2))
    return report.exit_code(code)


def _list(report: Report, name: str, faces: list[dict], as_json: bool) -> None:
    """One line per face (a video's: the frames it was seen in, and its box when first seen)."""
    if as_json:
        return
    for f in faces:
        x0, y0, x1, y1 = f["box"]
        frames = f"frames {f['first_frame']}-{f['last_frame']}, " if "first_frame" in f else ""
        first = " when first seen" if frames else ""
        report.echo(one_line(f"{name}: face {f['index']}: {frames}box {x0},{y0},{x1},{y1} ({x1 - x0}x{y1 - y0} px)"
                             f"{first}, score {f['score']:.2f}"))


def _video_faces(path: Path, min_face: int | None, max_pixels: int, show_bar: bool) -> tuple[list[dict], list[str]]:
    """A video's face tracks, as ``smile VIDEO --faces`` numbers them (:func:`smilecore.video_faces.video_faces`),
    with a progress bar on a terminal."""
    from smilecore.video_faces import video_faces

    from .video import _bar

    bar = _bar(path.name, show_bar)

    def progress(p) -> None:
        if bar is not None:
            if p.total and bar.total != max(p.total, p.frame):
                bar.total = max(p.total, p.frame)
                bar.refresh()
            bar.update(p.frame - bar.n)

    try:
        # (videos' own pixel limit is 8K per frame: a --max-pixels above the default photo one is not needed)
        found = video_faces(path, min_face=min_face, max_pixels=max_pixels, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    keys = ("index", "box", "score", "first_frame", "last_frame")
    return [{k: t[k] for k in keys if k in t} for t in found.tracks], found.notes
