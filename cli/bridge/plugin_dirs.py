"""Per-user folders where GIMP 3 and Krita look for plug-ins, on Linux, macOS and Windows."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def _appdata() -> Path:
    return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming")


def _localappdata() -> Path:
    return Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local")


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else _home() / default


def gimp_plugins_dir(platform: str | None = None) -> Path:
    """GIMP 3's per-user ``plug-ins`` folder (the Smile plug-in goes in ``plug-ins/smile/``)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = _appdata() / "GIMP" / "3.0"
    elif platform == "darwin":
        base = _home() / "Library" / "Application Support" / "GIMP" / "3.0"
    else:
        base = _xdg("XDG_CONFIG_HOME", ".config") / "GIMP" / "3.0"
    return base / "plug-ins"


def krita_pykrita_dir(platform: str | None = None) -> Path:
    """Krita's per-user ``pykrita`` folder (Python plug-ins)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return _appdata() / "krita" / "pykrita"
    if platform == "darwin":
        return _home() / "Library" / "Application Support" / "krita" / "pykrita"
    return _xdg("XDG_DATA_HOME", ".local/share") / "krita" / "pykrita"


def kritarc_path(platform: str | None = None) -> Path:
    """Krita's settings file, where plug-ins are enabled."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return _localappdata() / "kritarc"
    if platform == "darwin":
        return _home() / "Library" / "Preferences" / "kritarc"
    return _xdg("XDG_CONFIG_HOME", ".config") / "kritarc"
