"""Which photos a ``smile PHOTO...`` run reads, and where each result goes.

Arguments may be files, folders (their photos, sorted; sub-folders with ``--recursive``)
and glob patterns (expanded here too, so quoting them or using a shell without globbing
works the same).  Output paths are planned before any photo is processed, so clashes
(two photos to one file, or a photo over any input) are refused up front.  Files are
compared by what they are, not by how they are named: after resolving symbolic links,
and by device and inode for files that exist (hard links).
"""
from __future__ import annotations

import errno
import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from smilecore import heif
from smilecore.atomic import followed_links
from smilecore.errors import UsageError, WriteError
from smilecore.encode import INPUT_EXTENSIONS, OUTPUT_FORMATS, output_format
from smilecore.paths import expand_home
from smilecore.video_streams import VIDEO_EXTENSIONS, is_video_path, video_format

_GLOB_CHARS = set("*?[")
#: What results' names end in (before their extension) unless ``--suffix`` says otherwise.
DEFAULT_SUFFIX = ".smile"


@dataclass
class Job:
    """One photo to process."""

    input: Path
    output: Path | None  #: None when the input itself could not be found (``problem`` says why)
    problem: str | None = None  #: an input error known before reading (missing file, empty glob)
    blocked: str | None = None  #: a write error known before reading (its --out-dir sub-folder cannot be made)


class Found(tuple):
    """One entry of :func:`expand_inputs`: the pair ``(path, problem)``, plus ``folder``, the folder
    argument ``path`` was found in (None for a file named directly or matched by a glob), so that
    ``--out-dir`` can keep the sub-folders below it.  It unpacks like a plain pair."""

    folder: Path | None

    def __new__(cls, path: Path, problem: str | None = None, folder: Path | None = None) -> "Found":
        self = super().__new__(cls, (path, problem))
        self.folder = folder
        return self

    def __getnewargs__(self) -> tuple:  # (so a copy or a pickle keeps ``folder``)
        return (self[0], self[1], self.folder)


def file_identity(path: str | os.PathLike) -> tuple[tuple, ...]:
    """Keys that are equal for two names of one file: the path after resolving symbolic links
    (``..`` and case where the system ignores it), and for an existing file its device and inode
    (which hard links share).  The file need not exist."""
    keys: list[tuple] = [("path", os.path.normcase(os.path.realpath(path)))]
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return tuple(keys)
    if st.st_ino:  # (some file systems report no inode numbers)
        keys.append(("inode", st.st_dev, st.st_ino))
    return tuple(keys)


def expand_inputs(args: list[str], recursive: bool = False, skip_suffix: str | tuple[str, ...] | None = None,
                  skip_folder: Path | None = None) -> list[Found]:
    """Turn PHOTO arguments into ``(path, problem)`` pairs (:class:`Found`), in order, each file once.

    ``problem`` is None for a file to read, or a one-line message (missing file, a glob or
    folder with no photos, a broken symbolic link, a file behind a folder that may not be opened, a
    folder or, with ``recursive``, a sub-folder that may not be listed).  In folders and glob matches, files whose
    name already ends in ``skip_suffix`` + extension (earlier results) are skipped; a file named
    on its own is always read.  A file met twice, also under another name through symbolic
    links, is kept once, under the first name (silently).  Hard links stay separate names: each
    is written on its own (atomic writes replace a name, never the shared file), so none is
    edited twice.  ``skip_folder``
    (the run's ``--out-dir``) is not walked into when it lies inside a folder argument: its files are
    results, whatever their names.
    """
    out: list[Found] = []
    seen: set[tuple] = set()

    def add(path: Path, problem: str | None = None, folder: Path | None = None) -> None:
        keys = {("name", _key(path))} if problem else set(file_identity(path)[:1])  # (the resolved path)
        if keys & seen:
            return
        seen.update(keys)
        out.append(Found(path, problem, folder))

    kinds = INPUT_EXTENSIONS | VIDEO_EXTENSIONS
    for arg in args:
        path = expand_home(arg)
        try:
            kind = _kind_of(path)
        except OSError as exc:  # (a folder on the way that may not be opened: its own line, exit 4)
            add(path, unreachable(arg, exc))
            continue
        if kind == "folder":
            found = _folder_photos(path, recursive, skip_suffix, skip_folder)
            if not found and skip_suffix and _folder_photos(path, recursive, None, skip_folder):
                ends = " or ".join(x for x in dict.fromkeys((skip_suffix,) if isinstance(skip_suffix, str) else skip_suffix) if x)
                add(path, f"{arg}: folder holds only earlier results (names ending in {ends}), which are "
                          "left out; name one to smile it again")
            elif not found:
                add(path, f"{arg}: folder has no photos ({', '.join(sorted(INPUT_EXTENSIONS))})")
            for p, problem in _targets_first(found):
                add(p, problem, folder=path)
        elif kind is not None:
            add(path)
        elif path.is_symlink():
            add(path, f"{arg}: no such file (a symbolic link to {os.readlink(path)}, which does not exist)")
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=recursive))
            files, locked = [], []
            for m in map(Path, matches):
                try:
                    if _kind_of(m) == "file" and m.suffix.lower() in kinds:
                        files.append(m)
                except OSError as exc:
                    if m.suffix.lower() in kinds:
                        locked.append((m, unreachable(m, exc)))
            photos = [p for p in files if not _is_result(p, skip_suffix)]  # earlier results, as in folders
            if not photos and not locked:
                what = "only earlier results match" if files else "no photo matches"
                add(path, f"{arg}: {what} this pattern")
            for p, problem in _targets_first(sorted([(p, None) for p in photos] + locked, key=lambda item: item[0])):
                add(p, problem)
        else:
            add(path, f"{arg}: no such file")
    return out


def _targets_first(found: list[tuple[Path, str | None]]) -> list[tuple[Path, str | None]]:
    """``found`` (one folder's or one pattern's files, in order) without the symbolic links to a file that
    is itself in it: that file is read under its own name (``link.jpg`` sorts before ``real.jpg``, and
    the result should still be ``real.smile.jpg``)."""
    own = {file_identity(p)[0] for p, problem in found if problem is None and not p.is_symlink()}
    return [(p, problem) for p, problem in found if problem is not None or not p.is_symlink() or file_identity(p)[0] not in own]


def _kind_of(path: Path) -> str | None:
    """``"folder"``, ``"file"`` (a regular file, or anything else that exists: the reader refuses
    what is no photo) or None when ``path`` does not exist (also a broken link); :class:`OSError`
    when it cannot be looked at (a folder on the way may not be opened)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # (a loop of symbolic links: as a broken link)
            return None
        raise
    return "folder" if stat.S_ISDIR(st.st_mode) else "file"


def unreachable(path: str | os.PathLike, exc: OSError, name: str | None = None) -> str:
    """The problem line for a file or folder that cannot be looked at (``exc``), named ``name``
    (default: ``path``): with a permission error, which folder on its way may not be opened."""
    name = str(path) if name is None else name
    if isinstance(exc, PermissionError):
        return f"{name}: permission denied (cannot open the folder {locked_folder(path)})"
    return f"{name}: cannot read it ({exc.strerror or type(exc).__name__})"


def locked_folder(path: str | os.PathLike) -> Path:
    """The first folder on the way to ``path`` that may not be opened (its parent if none is found)."""
    path = Path(path)
    for folder in [*reversed(path.parents), path]:
        try:
            os.stat(os.path.join(folder, "."))  # (needs the right to open ``folder``)
        except PermissionError:
            return folder
        except OSError:
            break
    return path.parent


def check_reachable(path: str | os.PathLike, what: str) -> None:
    """:class:`WriteError` (exit 7) when ``path``, a result or a folder to write into, lies behind a
    folder that may not be opened (``what``: how the message names it, e.g. ``"-o x.jpg"``).  For a
    folder that must be opened itself, pass ``os.path.join(folder, ".")`` (pathlib drops the dot)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return
    except PermissionError:
        raise WriteError(f"{what}: permission denied (cannot open the folder {locked_folder(path)})") from None
    except OSError as exc:
        raise WriteError(f"{what}: cannot write there ({exc.strerror or type(exc).__name__})") from None


def _unlistable(folder: str | os.PathLike, exc: OSError) -> str:
    """The problem line for a folder whose photos cannot be listed (``exc``)."""
    if isinstance(exc, PermissionError):
        return f"{folder}: permission denied (cannot list the photos in this folder)"
    return f"{folder}: cannot list the photos in this folder ({exc.strerror or type(exc).__name__})"


def _folder_photos(folder: Path, recursive: bool, skip_suffix: str | tuple[str, ...] | None,
                   skip_folder: Path | None = None) -> list[tuple[Path, str | None]]:
    """The photos in ``folder`` (and, ``recursive``, its sub-folders), sorted, as ``(path, problem)``
    pairs: ``problem`` is None for a photo to read, or the line for a folder that may not be listed
    (``folder`` itself, or a sub-folder: its photos would be missed without a word) or a photo that
    may not be looked at (a folder that may be listed but not opened).

    Hidden files are skipped, and so is everything under a hidden sub-folder (``.thumbnails/``;
    ``folder`` itself may be hidden).  Sub-folders that are symbolic links are not followed (no
    loops, no walking out of the tree) and broken links are skipped, silently; a link to a photo
    is read."""
    found: list[tuple[Path, str | None]] = []
    if recursive:
        candidates: list[Path] = []

        def refused(exc: OSError) -> None:
            found.append((Path(exc.filename if exc.filename is not None else folder), _unlistable(exc.filename or folder, exc)))

        skip = os.path.normcase(os.path.realpath(skip_folder)) if skip_folder is not None else None
        for root, dirs, files in os.walk(folder, onerror=refused, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and os.path.normcase(os.path.realpath(os.path.join(root, d))) != skip]
            candidates.extend(Path(root) / name for name in files)
    else:
        try:
            candidates = list(folder.iterdir())
        except OSError as exc:
            return [(folder, _unlistable(folder, exc))]
    for p in candidates:
        if p.name.startswith(".") or p.suffix.lower() not in INPUT_EXTENSIONS or _is_result(p, skip_suffix):
            continue
        try:
            if _kind_of(p) != "file" or not p.is_file():  # (a broken link, a folder or a pipe named x.jpg)
                continue
        except OSError as exc:
            found.append((p, unreachable(p, exc)))
            continue
        found.append((p, None))
    return sorted(found, key=lambda item: item[0])


def _is_result(path: Path, suffix: str | tuple[str, ...] | None) -> bool:
    """Is ``path`` named like a result of an earlier run (``NAME`` + ``suffix`` + extension; ``suffix`` may be
    several)?"""
    suffixes = (suffix,) if isinstance(suffix, str) else suffix or ()
    return any(s and path.stem.endswith(s) and path.stem != s for s in suffixes)


def plan_outputs(
    inputs: list[tuple[Path, str | None]],
    output: str | None,
    out_dir: str | None,
    suffix: str,
    ext: str | None,
    in_place: bool,
) -> list[Job]:
    """Decide each photo's output path; :class:`UsageError` for impossible or unsafe plans.

    With ``out_dir``, a photo found in a folder argument (a :class:`Found` with ``folder``) keeps
    its sub-folder below that folder (``c/s1/x.jpg`` from ``c`` -> ``OUT/s1/x.smile.jpg``); files
    named directly or matched by a glob go to ``OUT`` itself.  Nothing is created here: the caller
    makes the folders once every check has passed (:func:`make_output_folders`)."""
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
            try:
                output_format("x" + ext)
            except UsageError as exc:
                known = str(exc).split("(use ", 1)[-1].rstrip(")") if "(use " in str(exc) else ""
                if ext.lower() in OUTPUT_FORMATS:  # known but not writable here (e.g. HEIF without pillow-heif)
                    raise UsageError(f"--ext {ext.lstrip('.')}: {str(exc).split(': ', 1)[-1]}") from None
                raise UsageError(f"--ext {ext.lstrip('.')} is not a format Smile can write"
                                 + (f" (use {known}; for videos {', '.join(sorted(VIDEO_EXTENSIONS))})" if known else "")) from None
    if not in_place and not suffix and not out_dir and not output:
        raise UsageError("an empty --suffix would overwrite the photos; use --out-dir, or --in-place if you mean it")
    if suffix and any(sep in suffix for sep in ("/", "\\")):
        raise UsageError(f"--suffix {suffix!r} must not contain a folder separator")

    jobs: list[Job] = []
    for item in inputs:
        path, problem = item
        if problem:
            jobs.append(Job(path, None, problem))
            continue
        if in_place:
            target = path
        elif output:
            target = expand_home(output)
            check_reachable(target, f"-o {output}")
            if target.is_dir() or output.endswith(("/", os.sep)):  # (Path drops the slash: 'out/' read as a file)
                what = "is a folder" if target.is_dir() else "names a folder (it ends with a slash)"
                raise UsageError(f"-o {output} {what}; use --out-dir {output} to write into it")
        else:
            name = path.stem + suffix + (ext or path.suffix)
            if out_dir:
                target = expand_home(out_dir) / _below(path, getattr(item, "folder", None)) / name
            else:
                target = path.with_name(name)
        try:
            _check_extension(target, path, output, ext)
            if is_video_path(path):
                video_format(target)  # a clip becomes a clip
            else:
                output_format(target)
        except UsageError as exc:
            if output:
                raise
            problem = None if ext else heif.read_problem(path)
            if problem:  # a HEIF photo pillow-heif is missing for: its own line (exit 4), the others still run
                jobs.append(Job(path, None, problem))
                continue
            raise UsageError(f"{exc}; choose one with --ext, e.g. --ext {'mp4' if is_video_path(path) else 'png'}") from None
        blocked = None
        if not in_place and not output and os.path.islink(target):
            blocked = (f"{target}: not written: it is a symbolic link (to {os.readlink(target)}), and a result named "
                       "by Smile is never written through a link it did not get from you (an unpacked archive can "
                       "hold one); remove the link, or name the result with -o")
        jobs.append(Job(path, target, blocked=blocked))

    _check_clashes(jobs, in_place, ext, out_dir)
    return jobs


def _check_extension(target: Path, photo: Path, output: str | None, ext: str | None) -> None:
    """:class:`UsageError` for a result whose name has no extension (it picks the format)."""
    if target.suffix:
        if output or ext or photo.suffix or target.suffix.lower() in OUTPUT_FORMATS:  # (--suffix .png, say)
            return
        # (a photo named without an extension: NAME+SUFFIX would take the suffix for an extension)
        raise UsageError(f"{photo}: has no file extension, so its result would have none either")  # (+ the --ext hint)
    if is_video_path(photo):
        known = ", ".join(sorted(VIDEO_EXTENSIONS))
    else:
        known = ", ".join(sorted({".jpg", ".png", ".tif", ".webp", ".bmp", ".avif", ".heic"}))
    raise UsageError(f"{target}: has no file extension; name the output with one Smile can write ({known})")


def _below(path: Path, folder: Path | None) -> Path:
    """The sub-folder of ``folder`` that holds ``path`` (``Path()`` for none, or no ``folder``)."""
    if folder is None:
        return Path()
    try:
        return path.relative_to(folder).parent
    except ValueError:
        return Path()


def make_output_folders(jobs: list[Job], out_dir: str | None) -> list[Path]:
    """Create the sub-folders of ``out_dir`` that the planned results go into (the writer only
    writes into existing folders); ``out_dir`` itself is not created here.  Returns the folders it
    created, parents first (see :func:`remove_empty_folders`).

    :class:`UsageError` when ``out_dir`` is not a folder.  A sub-folder that cannot be created (a file of
    that name is in the way, no permission) fails only the photos whose results go there: their jobs get
    ``blocked`` (a write error, exit 7), and the others run."""
    if not out_dir:
        return []
    root = expand_home(out_dir)
    check_reachable(os.path.join(root, "."), f"--out-dir {root}")
    if root.exists() and not root.is_dir():
        raise UsageError(f"--out-dir {root} exists and is not a folder")
    folders = sorted({j.output.parent for j in jobs if j.output is not None and j.output.parent != root})
    created: list[Path] = []
    failed: dict[Path, str] = {}
    for folder in folders:
        why = next((w for f, w in failed.items() if f == folder or f in folder.parents), None)
        if why is None:
            try:
                check_reachable(os.path.join(folder, "."), f"--out-dir {folder}")
                real = followed_links(folder)  # (never through a link another user planted)
                missing = [p for p in [folder, *folder.parents] if p not in created and not p.exists()]
                try:
                    real.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise WriteError(in_the_way(folder) or
                                     f"cannot create the folder {folder} ({exc.strerror or exc})") from None
                created.extend(reversed(missing))
                continue
            except WriteError as exc:
                why = failed[folder] = str(exc)
        for j in jobs:
            if j.output is not None and j.output.parent == folder and j.problem is None:
                j.blocked = f"{j.output}: cannot write it, {why}"
    return created


def in_the_way(folder: Path) -> str | None:
    """What on the way to ``folder`` keeps it from being created ("F is a file, not a folder", "F is a
    symbolic link to nothing"); None if nothing does."""
    for p in [folder, *folder.parents]:
        if p.is_symlink() and not p.exists():
            return f"{p} is a symbolic link to nothing ({os.readlink(p)})"
        if p.exists():
            return None if p.is_dir() else f"{p} is a file, not a folder"
    return None


def remove_empty_folders(created: list[Path]) -> None:
    """Remove the folders :func:`make_output_folders` created that hold nothing (a run refused
    before it began, or whose photos in that folder all failed), deepest first."""
    for folder in reversed(created):
        try:
            folder.rmdir()  # (only an empty folder goes)
        except OSError:
            pass


def _key(path: Path) -> str:
    """``path`` as text for comparing names (absolute, ``..`` removed, links not resolved)."""
    return os.path.normcase(os.path.abspath(path))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do two paths name one file: the same text after ``./`` and ``../``, the same target after
    symbolic links, or one file under two names (a hard link)?  Neither needs to exist."""
    if _key(Path(a)) == _key(Path(b)):
        return True
    return bool(set(file_identity(a)) & set(file_identity(b)))


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


def _check_clashes(jobs: list[Job], in_place: bool, ext: str | None = None, out_dir: str | None = None) -> None:
    """:class:`UsageError` when a result would replace any input (unless ``in_place``, where each
    photo replaces only itself) or two results would be one file, by name or through a link (with
    ``in_place``: through a symbolic link)."""
    planned = [j for j in jobs if j.output is not None]
    if not in_place:
        readers: dict[tuple, Job] = {}
        for j in planned:
            for k in file_identity(j.input):
                readers.setdefault(k, j)
        for j in planned:
            hit = next((readers[k] for k in file_identity(j.output) if k in readers), None)
            if hit is None:
                continue
            if _key(j.output) == _key(hit.input):
                raise UsageError(f"{j.output} is one of the inputs: Smile never overwrites inputs unless --in-place is given")
            raise UsageError(f"{j.output} is the same file as the input {hit.input} (through a link): "
                             f"Smile never overwrites inputs unless --in-place is given")
    targets: dict[tuple, Job] = {}
    for j in planned:
        keys = file_identity(j.output)
        if in_place:  # (hard links are separate names here: each is replaced on its own, atomically)
            keys = keys[:1]
        first = next((targets[k] for k in keys if k in targets), None)
        if first is not None:
            raise UsageError(_clash_message(first, j, ext, out_dir))
        for k in keys:
            targets[k] = j


def _clash_message(first: Job, second: Job, ext: str | None, out_dir: str | None) -> str:
    """Why two photos would end in one file, and what would actually keep them apart."""
    a, b = first.input, second.input
    if _key(first.output) != _key(second.output):
        return (f"{a} and {b} would be written to {first.output} and {second.output}, which are the same file "
                f"(a link); remove the link or write elsewhere")
    head = f"{a} and {b} would both be written to {second.output}"
    if a.stem == b.stem and a.suffix != b.suffix and ext:
        return (f"{head}: their names differ only in the extension that --ext {ext.lstrip('.')} replaces; leave out "
                f"--ext, or smile one of them in a separate run with another --suffix or --out-dir")
    if out_dir and a.parent != b.parent:
        return (f"{head}: they have the same name in different folders; name a folder that holds both with -r "
                f"(--out-dir then keeps the sub-folders), or smile each folder in a separate run with its own --out-dir")
    return f"{head}; smile one of them in a separate run with another --suffix or --out-dir"
