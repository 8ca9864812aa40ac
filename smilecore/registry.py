"""Model registry, the bundled default model, and checksummed downloads into the user cache.

Resolution order of :func:`resolve_model` (first match wins):

1. an explicit path to an ``.onnx`` file, or an explicit registry name;
2. the ``SMILE_MODEL`` environment variable (a path or a registry name);
3. the registry's default model (bundled inside the package, so a fresh offline install works).

Registry models are always checked against their size and sha256 before use; a file that
does not match is refused.  Other models are fetched with :func:`fetch_model` into
``platformdirs.user_cache_dir("smile-filter")/models`` (or ``SMILE_CACHE_DIR``): the download
goes to ``FILE.part`` (resumed after an interruption, one process at a time under a file lock)
and only a file whose sha256 matches is renamed to the model's name.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ModelError, reason
from .model_download import Retry, Stop, cache_error, download
from .paths import expand_home

REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the model registry."""

    name: str
    version: str
    file: str
    sha256: str
    size: int
    license: str
    url: str | None = None
    bundled: bool = False
    description: str = ""


def _models_dir() -> Path:
    return Path(str(resources.files("smilecore") / "models"))


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[str, tuple[ModelInfo, ...]]:
    path = _models_dir() / REGISTRY_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    models = tuple(ModelInfo(**m) for m in data["models"])
    return data["default"], models


def list_models() -> list[ModelInfo]:
    """All models the registry knows."""
    return list(_registry()[1])


def default_model_name() -> str:
    """Name of the default model."""
    return _registry()[0]


def get_info(name: str) -> ModelInfo:
    """Registry entry by name; ``ModelError`` if unknown."""
    for m in list_models():
        if m.name == name:
            return m
    known = ", ".join(m.name for m in list_models()) or "none"
    raise ModelError(f"unknown model {name!r} (known: {known}); see 'smile models list'")


def cache_dir() -> Path:
    """Folder downloaded models are kept in: ``$SMILE_CACHE_DIR`` (``~`` expanded, made absolute),
    else ``platformdirs.user_cache_dir("smile-filter")/models``."""
    env = os.environ.get("SMILE_CACHE_DIR")
    if env:
        return expand_home(env).absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("smile-filter")) / "models"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_path(info: ModelInfo) -> Path:
    """Where the model's file is (bundled) or would be (downloaded)."""
    return (_models_dir() if info.bundled else cache_dir()) / info.file


def part_path(info: ModelInfo) -> Path:
    """The file an unfinished download of ``info`` is kept in (resumed by the next download)."""
    return cache_dir() / (info.file + PART_SUFFIX)


#: Suffix of unfinished downloads in the cache (never loaded: only a file whose sha256 matches is
#: renamed to the model's name).
PART_SUFFIX = ".part"
#: Seconds to wait before the first retry of a download (the second waits twice as long).
RETRY_PAUSE = 0.5
#: Python package to reinstall when a bundled model is damaged.
PACKAGE = "smile-filter"


def _reinstall_hint() -> str:
    return f"the smile-filter installation is damaged: reinstall it (pip install --force-reinstall {PACKAGE})"


#: What :func:`file_problem` says of a file that is not there.
MISSING = "is missing"
#: :func:`file_problem` for a file this user may not read.
UNREADABLE = "may not be read (permission denied)"
#: :func:`file_problem` for a folder (or another thing that is no file) in the model file's place.
NOT_A_FILE = "is not a regular file (a folder?)"


def file_problem(info: ModelInfo, path: str | os.PathLike) -> str | None:
    """Why ``path`` is not the registered model file (missing, a folder, wrong size, wrong sha256), or None.

    The size is compared first, so a huge file in the model's place is refused without reading it."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return MISSING
    if not path.is_file():
        return NOT_A_FILE
    if info.size > 0 and st.st_size != info.size:
        return f"fails its checksum (it has {st.st_size} bytes, the registry says {info.size})"
    try:
        digest = sha256_of(path)
    except PermissionError:
        return UNREADABLE
    except OSError as exc:
        return f"cannot be read ({exc.strerror or reason(exc)})"
    if digest != info.sha256:
        return f"fails its checksum (sha256 {digest[:12]}…, registry says {info.sha256[:12]}…)"
    return None


def verify_file(info: ModelInfo, path: str | os.PathLike) -> None:
    """Raise ``ModelError`` unless ``path`` holds exactly the registered bytes."""
    path = Path(path)
    problem = file_problem(info, path)
    if problem is None:
        return
    if info.bundled:
        raise ModelError(f"the bundled model file {path} of {info.name} {problem}: {_reinstall_hint()}")
    if problem == MISSING:
        raise ModelError(f"model {info.name} is not installed ({path} missing); run 'smile models pull {info.name}'")
    if problem == NOT_A_FILE:
        raise ModelError(f"{path}, where the file of model {info.name} belongs, {problem}: move it away, then run "
                         f"'smile models pull {info.name}'")
    if problem == UNREADABLE:  # (another user's cache: nothing is wrong with the file itself)
        raise ModelError(f"model file {path} {problem}: give this user read access to it, or set SMILE_CACHE_DIR "
                         "to a cache of its own")
    raise ModelError(f"model file {path} {problem}: it is corrupt or was modified; "
                     f"run 'smile models pull {info.name}' to fetch it again")


def model_path(name: str) -> Path:
    """Verified local file of a registry model (no download)."""
    info = get_info(name)
    path = local_path(info)
    verify_file(info, path)
    return path


def verify_model(name: str) -> bool:
    """True if the model's local file exists and matches its checksum."""
    try:
        model_path(name)
    except ModelError:
        return False
    return True


# ------------------------------------------------------------------------------ downloads


def _say(text: str) -> None:
    """A note on stderr (downloads take time: say what is happening)."""
    try:
        print(f"smile: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _ready_cache() -> Path:
    """The cache folder, created if needed; ModelError if it cannot be (a file in its place, read-only)."""
    folder = cache_dir()
    if folder.exists() and not folder.is_dir():
        raise ModelError(f"the model cache {folder} is a file, not a folder: move it away, "
                         "or set SMILE_CACHE_DIR to a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cache_error(folder, exc) from None
    return folder


@contextlib.contextmanager
def _download_lock(folder: Path, info: ModelInfo, say):
    """Hold an exclusive lock on the model's download, so two processes never write one file at once;
    a second process waits (saying so) and then finds the model downloaded."""
    lock = folder / f".{info.file}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise cache_error(folder, exc) from None
    try:
        try:
            import fcntl
        except ImportError:  # Windows
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"waiting for another smile process that downloads model {info.name}")
                fcntl.flock(fd, fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        yield
    finally:
        os.close(fd)  # releases the lock


def fetch_model(info: ModelInfo | str, progress: bool = False, retries: int = 2) -> Path:
    """Return a verified local copy of a model, downloading it into :func:`cache_dir` if needed.

    The download goes to ``FILE.part`` and is renamed to the model's name only once its size and
    sha256 match the registry, so a file under that name is never half-written or wrong.  An
    interrupted download (a dropped connection, Ctrl-C) is resumed by the next one; a download whose
    sha256 is wrong is deleted and tried again from scratch.  Two processes fetching one model take
    turns (a file lock): the second finds the model the first downloaded.
    """
    if isinstance(info, str):
        info = get_info(info)
    path = local_path(info)
    problem = file_problem(info, path)
    if problem is None:
        return path
    if info.bundled or not info.url or problem == UNREADABLE:  # (one this user may not read is not damaged)
        verify_file(info, path)  # raises with the reason
        return path
    folder = _ready_cache()
    part = part_path(info)
    say = _say if progress else (lambda text: None)
    with _download_lock(folder, info, say):
        problem = file_problem(info, path)
        if problem is None:  # another process has just downloaded it
            return path
        why = ""
        if problem != MISSING:  # the cached file is damaged: never leave it looking like the model
            why = f" (the cached file {path} {problem})"
            say(f"the cached file {path} {problem}: downloading model {info.name} again")
            try:
                path.unlink()
            except IsADirectoryError:
                raise ModelError(f"{path} is a folder, where the file of model {info.name} belongs: move it away") from None
            except OSError as exc:
                raise cache_error(folder, exc) from None
        size = f" ({_size_text(info.size)})" if info.size > 0 else ""
        say(f"downloading model {info.name} {info.version}{size} from {info.url}")
        last = ""
        for attempt in range(retries + 1):
            try:
                download(info, part, progress)
            except Stop as exc:
                if exc.args and isinstance(exc.args[0], ModelError):  # the cache, not the server
                    raise exc.args[0] from None
                raise ModelError(f"cannot download model {info.name}{why} from {info.url}: {exc}") from None
            except Retry as exc:
                last = str(exc)
                if attempt < retries:
                    time.sleep(RETRY_PAUSE * (attempt + 1))
                continue
            problem = file_problem(info, part)
            if problem is None:
                try:
                    os.replace(part, path)
                except OSError as exc:
                    raise cache_error(folder, exc) from None
                if why and not progress:  # (a damaged cache is worth a line in a log too)
                    _say(f"note: model {info.name} downloaded again{why}")
                return path
            part.unlink(missing_ok=True)  # never kept: the next try starts from scratch
            last = f"the file received {problem}: the file at that address is not this model"
        kept = part.stat().st_size if part.is_file() else 0
        resume = f"; {kept} bytes are kept: run 'smile models pull {info.name}' again to resume" if kept else ""
        raise ModelError(f"cannot download model {info.name}{why} from {info.url}: {last}{resume}")


def _size_text(n: int) -> str:
    """``6974292`` → ``7.0 MB`` (powers of 1000, as ``smile models list`` shows sizes)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


# ------------------------------------------------------------------------------ choosing a model


def path_choice(text: str) -> Path | None:
    """The path ``text`` names when it is one (an ``.onnx`` name, a path with a separator, or
    something that exists here and is not a registry name), else None (a registry name)."""
    seps = [s for s in (os.sep, os.altsep) if s]
    if text.lower().endswith(".onnx") or any(s in text for s in seps) or text.startswith("~"):
        return expand_home(text)
    if text and text not in {m.name for m in list_models()} and os.path.lexists(text):
        return Path(text)
    return None


def check_model_file(path: Path) -> Path:
    """``path`` itself, after checking it is a file that could be a model (ModelError otherwise)."""
    try:
        path.stat()
    except OSError:
        if os.path.lexists(path):
            raise ModelError(f"model file {path} is a broken symbolic link") from None
        raise ModelError(f"model file {path} does not exist") from None
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a model file: give the path of an .onnx file "
                         "('smile models list' shows the installed models)")
    if not path.is_file():
        raise ModelError(f"{path} is not a regular file (a device or pipe?): a model is an .onnx file")
    return path


def resolve_model(name_or_path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Path of the model to load (see module docstring for the order).

    A registry model that is not downloaded yet is downloaded, unless ``download`` is false (then
    ``ModelError`` says how to get it)."""
    if name_or_path is None and os.environ.get("SMILE_MODEL"):
        try:
            return resolve_model(os.environ["SMILE_MODEL"], download)
        except ModelError as exc:  # (a variable set long ago in a shell's profile: say where the choice came from)
            raise ModelError(f"{exc} (the model SMILE_MODEL names)") from None
    choice = name_or_path
    if choice is None:
        info = get_info(default_model_name())
    else:
        text = os.fspath(choice)
        if not text.strip():
            raise ModelError("the model name is empty: give a registry name (see 'smile models list') or an .onnx file, "
                             "or leave it out for the default")
        path = path_choice(text)
        if path is not None:
            return check_model_file(path)
        info = get_info(text)
    if not download:
        return model_path(info.name)
    return fetch_model(info, progress=_stderr_is_terminal())


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
