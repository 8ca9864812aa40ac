"""Atomic file writes: a file is either the old one or the complete new one, never half of it.

:func:`write_atomic` fills a temporary file in the target's folder and renames it over the
target; an interrupted run (Ctrl-C, SIGTERM, an error) leaves the target as it was.  A run
killed outright leaves its temporary file, which the next write into that folder removes
(:func:`remove_stale_temps`).  Photos (:mod:`smilecore.encode`), videos and the CLI's own
files are all written this way.

Symbolic links on the way to a file written are followed here, not by the kernel
(:func:`followed_links`), and one that another user could have chosen, pointing at what is not
theirs, is refused: ``holiday.smile.jpg -> ~/.bashrc`` in /tmp or a shared folder would make a run
write over the file that user chose.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import SmileError, WriteError, system_reason
from .signals import deferred_signals

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` byte for byte, atomically (used for photos left unchanged)."""
    source = Path(src)

    def write(f):
        with open(source, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    write_atomic(Path(dst), write, like=source)


class _WholeFile(io.BufferedRandom):
    """The temporary file :func:`write_atomic` hands to its ``write``: a buffered file that hides its
    descriptor, so every byte goes through Python's writes, which go on after a short write and raise
    when the disk is full.  Pillow's encoders (JPEG, and libtiff's) write to a file's descriptor
    themselves and ignore a short write: a result filling the disk was left cut short, reported as
    written."""

    def fileno(self) -> int:
        """Refused (:class:`io.UnsupportedOperation`), so writers fall back to :meth:`write`."""
        raise io.UnsupportedOperation("fileno")


#: Most symbolic links one name may pass through (the kernel's own limit; more is a loop).
MAX_LINKS = 40


def followed_links(path: str | os.PathLike) -> Path:
    """``path`` with every symbolic link on its way followed here, as the kernel would follow it: the
    name's own link, each folder's, each link of a chain; a ``..`` after a link goes up from where the
    link points, not from the text.  Returns an absolute path that passes through no link (a tail that
    does not exist yet is kept as given: writing there fails as it would have).

    :class:`WriteError` (exit 7) when a link on the way belongs to another user and points at something
    that is not theirs (``x.smile.jpg -> ~/.bashrc`` planted in /tmp, a shared folder or a folder of
    theirs): writing through it would write where that user chose.  Links of the effective user and of
    root are followed, and so are another user's that point at their own file or folder (a colleague's
    ``photos -> /srv/bob/photos``), which gives them nothing they could not do already.  (The kernel's
    ``fs.protected_symlinks`` guards only sticky world-writable folders, and never a link Python resolved
    itself.)"""
    given = os.fsdecode(os.fspath(path))
    if sys.platform == "win32" or not hasattr(os, "geteuid"):
        return Path(os.path.realpath(given))
    todo = given.split("/")[::-1]  # (a stack: the next name last)
    try:
        here = "/" if given.startswith("/") else os.getcwd()
    except OSError as exc:  # (the current folder was removed)
        raise WriteError(f"{given}: could not write it ({system_reason(exc)})") from None
    hops = 0
    while todo:
        name = todo.pop()
        if name in ("", "."):
            continue
        if name == "..":
            here = os.path.dirname(here)
            continue
        step = os.path.join(here, name)
        try:
            st = os.lstat(step)
        except (OSError, ValueError):  # (not there yet, or not reachable: the rest as given)
            return Path(step, *reversed(todo))
        if not stat.S_ISLNK(st.st_mode):
            here = step
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise WriteError(f"{given}: could not write it (too many levels of symbolic links)")
        _check_link_owner(given, step, st.st_uid, here)
        try:
            to = os.readlink(step)
        except OSError as exc:
            raise WriteError(f"{given}: could not write it ({system_reason(exc)})") from None
        if to.startswith("/"):
            here = "/"
        todo.extend(to.split("/")[::-1])
    return Path(here)


def _check_link_owner(given: str, link: str, uid: int, folder: str) -> None:
    """:class:`WriteError` unless the link ``link`` in ``folder``, owned by ``uid``, may be followed.  Whose
    choice it is: ``uid``'s; but a link of this user's or root's in a folder of another user counts as
    theirs (they may rename entries there, and an archive unpacked by root can give a link any owner).
    A link of this user's or root's in a folder of this user's or root's is followed; anyone else's only
    to what belongs to them (at the end of its chain; where that does not exist yet, the folder it would
    be made in)."""
    me = os.geteuid()
    try:
        folder_owner = os.stat(folder).st_uid
    except OSError:
        folder_owner = me
    chooser = uid if uid not in (me, 0) else folder_owner
    if chooser in (me, 0):
        return
    target = os.path.realpath(link)
    try:
        owner = os.stat(target).st_uid
    except FileNotFoundError:
        try:
            owner = os.stat(os.path.dirname(target)).st_uid
        except OSError:
            owner = None
    except OSError:
        owner = None
    if owner == chooser:
        return
    whose = (f"a symbolic link of {_user_name(uid)}" if chooser == uid else
             f"a symbolic link in {folder}, a folder of {_user_name(chooser)}, who can replace it")
    owned = f" (owned by {_user_name(owner)})" if owner is not None else ""
    raise WriteError(f"{given}: not written: {link} is {whose}; it points to {target}{owned}, which is not theirs, "
                     "so it could point at any of your files: give that path itself if it is where the result "
                     "should go, or write elsewhere")


def _user_name(uid: int) -> str:
    """"user NAME" for ``uid``, or "user id N" where it has no name."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"user id {uid}"


def check_target(path: str | os.PathLike, name: str | os.PathLike | None = None) -> None:
    """:class:`WriteError` unless ``path`` can receive a photo: it must not exist, or be a regular
    file (or a link to one).  A named pipe or device called ``x.png`` is never replaced.  ``name``: what
    the message calls it (default ``path``; the name given, where ``path`` is where its links lead)."""
    name = path if name is None else name
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:  # (a name too long for the file system, a loop of links)
        raise WriteError(f"{name}: could not write it ({system_reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise WriteError(f"{name}: could not write it, it is a folder")
    if not stat.S_ISREG(st.st_mode):
        raise WriteError(f"{name}: could not write it, it is not a regular file (a named pipe, socket or device)")


#: Name of the temporary files :func:`write_atomic` makes: ``.NAME.XXXXXXXX.smile-tmp``.
TEMP_SUFFIX = ".smile-tmp"
#: A temporary file untouched for this long and not locked by a writer was left by a run that died.
STALE_TEMP_SECONDS = 10 * 60
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")
_swept: set[str] = set()


def remove_stale_temps(folder: str | os.PathLike, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete Smile's own temporary files that a killed run left in ``folder``; returns them.

    Only files with :func:`write_atomic`'s naming, unmodified for ``max_age`` seconds and not
    locked by a live writer (every writer holds an exclusive lock on its temporary file; on
    Windows an open file cannot be deleted at all) are removed."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(TEMP_SUFFIX) or not _TEMP_NAME.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            if _locked_by_writer(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _locked_by_writer(path: str) -> bool:
    if fcntl is None:
        return False  # Windows: unlinking an open file fails, which protects a live writer
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False  # (the lock goes with the descriptor)
    except OSError:
        return True
    finally:
        os.close(fd)


def folder_problem(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` by name ("folder F does not exist", "F is a file, not a
    folder"), or None where it is a folder."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return f"folder {folder} does not exist"
    except (OSError, ValueError) as exc:  # (a name too long, a loop of links, a folder on the way not a folder)
        if isinstance(exc, NotADirectoryError):
            return f"folder {folder} does not exist (a file stands on its way)"
        return f"folder {folder} cannot be used ({getattr(exc, 'strerror', None) or exc})"
    return None if stat.S_ISDIR(st.st_mode) else f"{folder} is a file, not a folder"


def check_writable(target: Path, name: str | os.PathLike | None = None) -> None:
    """:class:`WriteError` when ``target`` is a file that exists and is read-only (no write permission for
    anyone: ``chmod a-w``): an atomic rename would replace it all the same, and a file made read-only is
    one its owner meant to keep.  ``name``: what the message calls it (default ``target``)."""
    try:
        st = os.stat(target)
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222:
        raise WriteError(f"{target if name is None else name}: not replaced, it is read-only: make it writable "
                         "(chmod u+w) or remove it")


def write_atomic(target: str | os.PathLike, write, like: str | os.PathLike | None = None,
                 before_replace: Callable[[], object] | None = None) -> None:
    """Create or replace ``target`` atomically: ``write(f)`` fills a temporary file in the same
    folder, which is then renamed over ``target``.  On any failure (or Ctrl-C, SIGTERM) the
    temporary file is removed, ``target`` is left as it was, and :class:`WriteError` names the
    file.  The first write into a folder also removes temporary files that runs killed outright
    (SIGKILL, power loss) left there (:func:`remove_stale_temps`).  A read-only ``target`` is not
    replaced (:func:`check_writable`).  Links on the way are followed (the new file goes where they
    point, and they stay links), except one that another user planted (:func:`followed_links`).  A
    new ``target`` gets the umask's permissions, less those for the group and others that the file
    ``like`` (the photo it is made from) withholds: a private photo's result stays private; one replaced keeps its own.
    ``before_replace``, when given, runs once the new file is complete, just before it replaces ``target``:
    when it raises, ``target`` is left as it was (two files written all or nothing: the second is written
    there)."""
    given = Path(target)
    target = followed_links(given)  # (through links, like an editor saving a file; never a planted one)
    named = target if os.path.islink(given) else given  # (what messages call it: the file a link names)
    folder = target.parent
    problem = folder_problem(named.parent if str(named.parent) else Path("."))
    if problem:
        raise WriteError(f"{named}: cannot write it, {problem}")
    check_target(target, named)
    check_writable(target, named)
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temps(folder)
    tmp = None
    try:
        with deferred_signals():  # (a stop while the file is made waits until its name is kept: it is removed)
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=f".{_short_name(target.name)}.", suffix=TEMP_SUFFIX,
                                                dir=folder)
            except OSError as exc:
                raise WriteError(f"{named}: cannot write in {named.parent} ({system_reason(exc)})") from None
            tmp = Path(tmp_name)
        if fcntl is not None:  # tells remove_stale_temps in other processes that this file is alive
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass
        with _WholeFile(io.FileIO(fd, "r+b")) as f:
            write(f)
            f.flush()
            os.fsync(fd)
        _set_mode(tmp, target, like)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, (KeyboardInterrupt, SystemExit, SmileError)):  # (before_replace's own, as it is)
            raise
        raise WriteError(f"{named}: could not write it ({system_reason(exc)})") from None


def _short_name(name: str, limit: int = 120) -> str:
    """``name`` cut to at most ``limit`` UTF-8 bytes, so a temporary name built from it stays under
    the usual 255-byte limit however long the target's name is."""
    raw = name.encode("utf-8", "surrogateescape")
    return name if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def _set_mode(tmp: Path, target: Path, like: str | os.PathLike | None = None) -> None:
    """Give the new file the target's permissions if it exists, else the umask default (mkstemp uses 0600)
    less the group's and others' permissions that ``like`` lacks."""
    try:
        if target.exists():
            mode = target.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
            if like is not None:
                try:
                    mode &= os.stat(like).st_mode | 0o700  # (the owner's own bits stay the umask's)
                except (OSError, ValueError):
                    pass
        os.chmod(tmp, mode)
    except OSError:
        pass


#: Smile's private working folders in the temporary folder (:func:`work_folder`): a photo read from
#: standard input (``smile -``), a video re-encoded to list its faces (``smile detect clip.mp4``).
WORK_PREFIXES = ("smile-stdio-", "smile-faces-")
#: The folders the GIMP and Krita plug-ins make in the temporary folder for a request (no lock in them).
PLUGIN_PREFIXES = ("smile-gimp-", "smile-krita-")
#: A working folder unchanged for this long and not locked was left by a run that was killed.
STALE_WORK_SECONDS = 10 * 60
#: A plug-in's request folder unchanged for this long was left by an editor that was killed.
STALE_PLUGIN_SECONDS = 60 * 60
#: The file a live :func:`work_folder` holds locked.
WORK_LOCK = ".smile-lock"
#: The names ``tempfile.mkdtemp`` gives these folders: the prefix and eight of its random letters (a
#: user's own ``smile-krita-plugin`` or ``smile-stdio-notes`` is never taken for one).
WORK_NAME = re.compile("(" + "|".join(re.escape(p) for p in WORK_PREFIXES + PLUGIN_PREFIXES) + ")[a-z0-9_]{8}")
#: What a working folder holds: its lock, standard input's copy (``cli/stdio.py``), a result for standard
#: output, a clip's faces (``video_faces``), and temporary files of their writes.
WORK_FILES = re.compile(r"\.smile-lock|standard-input\.part|standard-(input|output)(\.\w+)?|faces\.mkv|\..+\.smile-tmp")
#: What a plug-in's request folder holds: the files of the request, and temporary files of their writes.
PLUGIN_FILES = re.compile(r"(input|output|mask|selection)\.png|\..+\.smile-tmp")
_work_swept = False


@contextlib.contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    """A new private folder (mode 0700) ``PREFIX...`` in the temporary folder, removed with all it
    holds on leaving.  While in use it holds the file :data:`WORK_LOCK`, locked, so that
    :func:`remove_stale_work_folders` in another process leaves it alone however old it gets; a folder a
    killed run left (with a copy of a photo inside) is removed by the next one.  The first call in a
    process sweeps such folders (:func:`remove_stale_work_folders`)."""
    global _work_swept
    if prefix not in WORK_PREFIXES:
        raise ValueError(f"work_folder: prefix {prefix!r} is none of {WORK_PREFIXES}")
    if not _work_swept:
        _work_swept = True
        remove_stale_work_folders(plugins=False)  # (the plug-ins' folders: smile's run and worker only)
    folder = fd = None
    try:
        with deferred_signals():  # (a stop while the folder is made waits until it is kept: it is removed)
            folder = Path(tempfile.mkdtemp(prefix=prefix))
        fd = os.open(folder / WORK_LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        if fcntl is not None:
            with contextlib.suppress(OSError):  # (no locks on this file system: the sweep cannot lock it either)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)  # (the lock held until its folder is gone)
        if fd is not None:
            os.close(fd)


def remove_stale_work_folders(temp: str | os.PathLike | None = None, plugins: bool = True) -> list[Path]:
    """Remove the working folders that killed runs left in the temporary folder (``temp``, default
    :func:`tempfile.gettempdir`; none where there is no usable one); returns them.  A folder goes only when
    its name is one ``mkdtemp`` gave (:data:`WORK_NAME`), it is this user's own (never another user's,
    never a link), unchanged for :data:`STALE_WORK_SECONDS` (a plug-in's request folder:
    :data:`STALE_PLUGIN_SECONDS`; its newest entry counts), holds only what such a folder holds
    (:data:`WORK_FILES`; a plug-in's: :data:`PLUGIN_FILES`), all regular files, in a folder of mode 0700
    as ``mkdtemp`` makes it, and is not locked by a live run; its files are removed one by one, then the
    folder.  ``plugins=False`` leaves the plug-ins' folders alone."""
    global _work_swept
    removed: list[Path] = []
    if temp is None:
        _work_swept = True
        try:
            temp = tempfile.gettempdir()
        except OSError:  # (no usable temporary folder: nothing can have been left there)
            return removed
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    now = time.time()
    try:
        entries = list(os.scandir(temp))
    except OSError:
        return removed
    for entry in entries:
        if WORK_NAME.fullmatch(entry.name) is None:
            continue
        plugin = entry.name.startswith(PLUGIN_PREFIXES)
        if plugin and not plugins:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or (euid is not None and st.st_uid != euid):
                continue
            if euid is not None and stat.S_IMODE(st.st_mode) != 0o700:
                continue  # (mkdtemp makes 0700: a folder made otherwise is someone's own; Windows has no modes)
            files = _regular_files(entry.path)
            if files is None or not all((PLUGIN_FILES if plugin else WORK_FILES).fullmatch(n) for n in files):
                continue  # (not what Smile leaves there: someone's own folder of that name)
            if now - _last_change(entry.path, st.st_mtime) < (STALE_PLUGIN_SECONDS if plugin else STALE_WORK_SECONDS):
                continue
            with _work_lock(entry.path) as free:
                if free:
                    for name in files:  # (files only, each by its name in the folder: nothing else is reached)
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(entry.path, name))
                    os.rmdir(entry.path)  # (fails, keeping it, if something was put there meanwhile)
                    removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _regular_files(folder: str) -> list[str] | None:
    """The names in ``folder`` when every entry is a regular file (not followed if a link), else None."""
    names = []
    with os.scandir(folder) as entries:
        for e in entries:
            if not e.is_file(follow_symlinks=False):
                return None
            names.append(e.name)
    return names


def _last_change(folder: str, mtime: float) -> float:
    """The latest modification time of ``folder`` (``mtime``) and of the entries in it."""
    with os.scandir(folder) as entries:
        for e in entries:
            with contextlib.suppress(OSError):
                mtime = max(mtime, e.stat(follow_symlinks=False).st_mtime)
    return mtime


@contextlib.contextmanager
def _work_lock(folder: str) -> Iterator[bool]:
    """Holds ``folder``'s :data:`WORK_LOCK` while in the block (True), or False when a live run holds it.
    A folder without one (a plug-in's, or one whose run was killed before it made it) is free."""
    try:
        fd = os.open(os.path.join(folder, WORK_LOCK), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) |
                     getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        yield True
        return
    except OSError:
        yield False  # (a link, say: not Smile's)
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
        yield True
    finally:
        os.close(fd)
