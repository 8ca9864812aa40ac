"""Loading ``training/config.toml`` and resolving its paths."""
from __future__ import annotations

import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

#: The repository root (the folder holding ``training/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The configuration file used when none is given.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.toml"

#: Environment variable overriding ``[paths] cache_dir``.
CACHE_ENV = "SMILE_TRAINING_CACHE"


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read the TOML configuration; ``paths.data_dir`` / ``paths.cache_dir`` become absolute ``Path``s."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    paths = cfg.setdefault("paths", {})
    data = Path(paths.get("data_dir", "../shared/data"))
    paths["data_dir"] = data if data.is_absolute() else (REPO_ROOT / data).resolve()
    cache = Path(os.environ.get(CACHE_ENV) or paths.get("cache_dir", "/work/cache/smile-training"))
    paths["cache_dir"] = cache if cache.is_absolute() else (REPO_ROOT / cache).resolve()
    return cfg


def cache_dir(cfg: dict[str, Any]) -> Path:
    """The cache folder (created if missing)."""
    p = Path(cfg["paths"]["cache_dir"])
    p.mkdir(parents=True, exist_ok=True)
    return p


def prepared_dir(cfg: dict[str, Any]) -> Path:
    """Folder holding ``crops_256.npy`` and ``index.npz``."""
    p = cache_dir(cfg) / "prepared"
    p.mkdir(parents=True, exist_ok=True)
    return p


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (works under output capture)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger(step: str, cfg: dict[str, Any]) -> logging.Logger:
    """A logger writing to stdout and to ``cache_dir/logs/<step>.log``."""
    log = logging.getLogger(f"training.{step}")
    for h in list(log.handlers):  # a new call may name another cache folder
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S")
    out = _StdoutHandler()
    out.setFormatter(fmt)
    log.addHandler(out)
    logs = cache_dir(cfg) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(logs / f"{step}.log")
    fh.setFormatter(fmt)
    log.addHandler(fh)
    return log
