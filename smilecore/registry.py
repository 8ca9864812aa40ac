"""Model registry, the bundled default model, and checksummed downloads into the user cache.

Resolution order of :func:`resolve_model` (first match wins):

1. an explicit path to an ``.onnx`` file, or an explicit registry name;
2. the ``SMILE_MODEL`` environment variable (a path or a registry name);
3. the registry's default model (bundled inside the package, so a fresh offline install works).

Registry models are always checked against their sha256 before use; a file that does not
match is refused.  Other models are fetched with :func:`fetch_model` into
``platformdirs.user_cache_dir("smile-filter")/models`` (or ``SMILE_CACHE_DIR``).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ModelError

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
    """Folder downloaded models are kept in."""
    env = os.environ.get("SMILE_CACHE_DIR")
    if env:
        return Path(env)
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


def verify_file(info: ModelInfo, path: str | os.PathLike) -> None:
    """Raise ``ModelError`` unless ``path`` holds exactly the registered bytes."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {info.name} is not installed ({path} missing); run 'smile models pull {info.name}'")
    digest = sha256_of(path)
    if digest != info.sha256:
        raise ModelError(
            f"model file {path} fails its checksum (sha256 {digest[:12]}…, registry says {info.sha256[:12]}…): "
            f"it is corrupt or was modified; run 'smile models pull {info.name}' to fetch it again"
        )


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


def _resuming_downloader(progress: bool):
    """A pooch downloader that keeps a ``.part`` file and resumes it with an HTTP Range request."""

    def download(url: str, output_file, pooch_obj=None, check_only: bool = False) -> bool | None:
        if check_only:
            return True
        out = Path(output_file)
        part = cache_dir() / (Path(url).name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        with urllib.request.urlopen(req, timeout=60) as resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = have + int(resp.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total or None, initial=have, unit="B", unit_scale=True, desc=Path(url).name)
            with open(part, "ab" if have else "wb") as f:
                while True:
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    f.write(chunk)
                    if bar:
                        bar.update(len(chunk))
            if bar:
                bar.close()
        shutil.move(str(part), str(out))
        return None

    return download


def fetch_model(info: ModelInfo | str, progress: bool = False, retries: int = 2) -> Path:
    """Return a verified local copy of a model, downloading it into :func:`cache_dir` if needed.

    Interrupted downloads resume; a download whose sha256 is wrong is deleted and retried.
    """
    if isinstance(info, str):
        info = get_info(info)
    path = local_path(info)
    why = "not downloaded yet"
    if path.is_file():
        if sha256_of(path) == info.sha256:
            return path
        why = f"the cached file {path} fails its checksum (corrupt or modified)"
    if info.bundled:
        verify_file(info, path)  # raises with the reason
    if not info.url:
        raise ModelError(f"model {info.name}: {why}, and it has no download address")
    import pooch

    last = ""
    for _ in range(retries + 1):
        try:
            got = pooch.retrieve(
                info.url,
                known_hash=f"sha256:{info.sha256}",
                fname=info.file,
                path=cache_dir(),
                downloader=_resuming_downloader(progress),
                progressbar=False,
            )
            return Path(got)
        except ValueError as exc:  # pooch: hash mismatch (file removed)
            last = f"downloaded file fails its checksum ({str(exc).splitlines()[0][:120]})"
            part = cache_dir() / (Path(info.url).name + ".part")
            part.unlink(missing_ok=True)
        except OSError as exc:
            last = f"download failed: {exc}"
    raise ModelError(f"cannot fetch model {info.name} ({why}) from {info.url}: {last}")


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Path:
    """Path of the model to load (see module docstring for the order)."""
    choice = name_or_path if name_or_path is not None else os.environ.get("SMILE_MODEL") or None
    if choice is None:
        return fetch_model(get_info(default_model_name()))
    text = str(choice)
    if text.lower().endswith(".onnx") or os.sep in text or Path(text).is_file():
        path = Path(text).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        return path
    return fetch_model(get_info(text))
