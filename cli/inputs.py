"""Which photos a ``smile PHOTO...`` run reads, and where each result goes.

Arguments may be files, folders (their photos, sorted; sub-folders with ``--recursive``)
and glob patterns (expanded here too, so quoting them or using a shell without globbing
works the same).  Output paths are planned before any photo is processed, so clashes
(two photos to one file, or a photo over its own input) are refused up front.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from smilecore.errors import UsageError
from smilecore.encode import INPUT_EXTENSIONS, output_format
from smilecore.video_streams import VIDEO_EXTENSIONS, is_video_path, video_format

_GLOB_CHARS = set("*?[")


@dataclass
class Job:
    """One photo to process."""

    input: Path
    output: Path | None  #: None when the input itself could not be found (``problem`` says why)
    problem: str | None = None  #: an input error known before reading (missing file, empty glob)


def expand_inputs(args: list[str], recursive: bool = False, skip_suffix: str | None = None) -> list[tuple[Path, str | None]]:
    """Turn PHOTO arguments into ``(path, problem)`` pairs, in order, without duplicates.

    ``problem`` is None for a file to read, or a one-line message (missing file, a glob
    or folder with no photos).  In folders and glob matches, files whose name already ends
    in ``skip_suffix`` + extension (earlier results) are skipped; a file named on its own is
    always read.
    """
    out: list[tuple[Path, str | None]] = []
    seen: set[str] = set()

    def add(path: Path, problem: str | None = None) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            out.append((path, problem))

    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            photos = _folder_photos(path, recursive, skip_suffix)
            if not photos:
                add(path, f"{arg}: folder has no photos ({', '.join(sorted(INPUT_EXTENSIONS))})")
            for p in photos:
                add(p)
        elif path.exists():
            add(path)
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file()
                     and Path(m).suffix.lower() in INPUT_EXTENSIONS | VIDEO_EXTENSIONS]  # (videos: named or globbed)
            photos = [p for p in files if not _is_result(p, skip_suffix)]  # earlier results, as in folders
            if not photos:
                what = "only earlier results match" if files else "no photo matches"
                add(path, f"{arg}: {what} this pattern")
            files = photos
            for p in files:
                add(p)
        else:
            add(path, f"{arg}: no such file")
    return out


def _folder_photos(folder: Path, recursive: bool, skip_suffix: str | None) -> list[Path]:
    walker = folder.rglob("*") if recursive else folder.iterdir()
    photos = []
    for p in walker:
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() not in INPUT_EXTENSIONS:
            continue
        if _is_result(p, skip_suffix):
            continue
        photos.append(p)
    return sorted(photos)


def _is_result(path: Path, suffix: str | None) -> bool:
    """Is ``path`` named like a result of an earlier run (``NAME`` + ``suffix`` + extension)?"""
    return bool(suffix) and path.stem.endswith(suffix) and path.stem != suffix


def plan_outputs(
    inputs: list[tuple[Path, str | None]],
    output: str | None,
    out_dir: str | None,
    suffix: str,
    ext: str | None,
    in_place: bool,
) -> list[Job]:
    """Decide each photo's output path; :class:`UsageError` for impossible or unsafe plans."""
    if in_place and (output or out_dir):
        raise UsageError("--in-place cannot be combined with -o/--output or --out-dir")
    if output and out_dir:
        raise UsageError("use either -o/--output (one photo) or --out-dir (several), not both")
    if in_place and ext:
        raise UsageError("--in-place keeps each photo's format; --ext cannot be used with it")
    if output and len(inputs) != 1:
        raise UsageError(f"-o/--output names one file but {len(inputs)} photos were given; use --out-dir DIR")
    if ext is not None:
        ext = ext if ext.startswith(".") else "." + ext
        if ext.lower() not in VIDEO_EXTENSIONS:
            output_format("x" + ext)  # raises UsageError for an unknown one
    if not in_place and not suffix and not out_dir and not output:
        raise UsageError("an empty --suffix would overwrite the photos; use --out-dir, or --in-place if you mean it")
    if suffix and any(sep in suffix for sep in ("/", "\\")):
        raise UsageError(f"--suffix {suffix!r} must not contain a folder separator")

    jobs: list[Job] = []
    for path, problem in inputs:
        if problem:
            jobs.append(Job(path, None, problem))
            continue
        if in_place:
            target = path
        elif output:
            target = Path(output).expanduser()
            if target.is_dir():
                raise UsageError(f"-o {output} is a folder; use --out-dir {output} to write into it")
        else:
            name = path.stem + suffix + (ext or path.suffix)
            target = (Path(out_dir).expanduser() / name) if out_dir else path.with_name(name)
        try:
            if is_video_path(path):
                video_format(target)  # a clip becomes a clip
            else:
                output_format(target)
        except UsageError as exc:
            if output:
                raise
            raise UsageError(f"{exc}; choose one with --ext, e.g. --ext {'mp4' if is_video_path(path) else 'png'}") from None
        jobs.append(Job(path, target))

    _check_clashes(jobs, in_place)
    return jobs


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do two paths name one file: the same text after ``./`` and ``../``, the same target after
    symbolic links, or one file under two names (a hard link)?  Neither needs to exist."""
    if _key(Path(a)) == _key(Path(b)):
        return True
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_no_clash(inputs: dict[str, str | os.PathLike | None], outputs: dict[str, str | os.PathLike | None]) -> None:
    """:class:`UsageError` when an output would replace an input or another output.

    ``inputs`` and ``outputs`` map a name for the message (``"input"``, ``"--selection"``...)
    to a path (None: not given).  Checked before any work, so nothing is written."""
    given_out = [(k, v) for k, v in outputs.items() if v]
    given_in = [(k, v) for k, v in inputs.items() if v]
    for i, (name, out) in enumerate(given_out):
        for src_name, src in given_in:
            if same_file(out, src):
                raise UsageError(f"{name} {out} is the same file as {src_name} {src}: Smile never overwrites what it reads")
        for other_name, other in given_out[i + 1:]:
            if same_file(out, other):
                raise UsageError(f"{name} {out} and {other_name} {other} are the same file: each result needs its own")


def _check_clashes(jobs: list[Job], in_place: bool) -> None:
    inputs = {_key(j.input) for j in jobs if j.output is not None}
    targets: dict[str, Path] = {}
    for j in jobs:
        if j.output is None:
            continue
        k = _key(j.output)
        if k in targets:
            raise UsageError(f"{targets[k]} and {j.input} would both be written to {j.output}; use --suffix or separate runs")
        targets[k] = j.input
        if not in_place and (k in inputs or same_file(j.output, j.input)):
            raise UsageError(f"{j.output} is one of the inputs: Smile never overwrites inputs unless --in-place is given")
