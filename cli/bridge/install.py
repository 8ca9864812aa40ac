"""``smile install-plugin gimp|krita``: copy an editor adapter into the user's plug-in folder.

The adapters ship inside the package ``smile_plugins``.  Next to the plug-in code the
installer puts the protocol client both plug-ins share (``smile_plugins/common``:
``smile_client.py``, ``smile_merge.py``) and writes ``smile-engine.json``, telling the plug-in how to start this
engine::

    {"command": ["/path/to/smile", "worker"], "python": "/path/to/python",
     "version": "0.1.0", "protocol": 1}

When no ``smile`` executable belongs to this Python, the command is
``[python, "-m", "smile_cli", "worker"]``.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from importlib import resources
from pathlib import Path

import click

from smilecore.errors import SmileError, WriteError
from smilecore.paths import expand_home

from .kritarc import check_rc_path, enable_plugin
from .plugin_dirs import gimp_plugins_dir, krita_pykrita_dir, kritarc_path

ENGINE_FILE = "smile-engine.json"
PLUGIN_NAME = "smile"
#: The folder of ``smile_plugins`` whose files go into every plug-in's folder.
COMMON = "common"
PROTOCOL_VERSION = 1
_SKIP = {"__pycache__"}

INSTALL_HELP = """Install the Smile filter into GIMP 3 or Krita (for this user).

\b
GIMP 3: copies the plug-in to <GIMP config>/3.0/plug-ins/smile/
        (Linux ~/.config/GIMP/3.0, macOS ~/Library/Application Support/GIMP/3.0,
        Windows %APPDATA%\\GIMP\\3.0).  Restart GIMP: Filters > Smile.
Krita:  copies the plug-in to the pykrita folder (Linux ~/.local/share/krita/pykrita,
        macOS ~/Library/Application Support/krita/pykrita, Windows %APPDATA%\\krita\\pykrita)
        and enables it in kritarc.  Restart Krita: Settings > Dockers > Smile.

\b
Examples:
  smile install-plugin gimp
  smile install-plugin krita
  smile install-plugin gimp --dir ~/my-gimp/plug-ins
  smile install-plugin krita --dir /tmp/pykrita --kritarc /tmp/kritarc
"""


class PluginSourceError(SmileError):
    """The installed package lacks the adapter's files (a packaging problem)."""

    code = "internal"
    exit_code = 1


def engine_command() -> list[str]:
    """How a plug-in should start this engine's worker."""
    exe = find_smile_executable()
    if exe is not None:
        return [str(exe), "worker"]
    return [sys.executable, "-m", "smile_cli", "worker"]


def find_smile_executable() -> Path | None:
    """The ``smile`` script installed with this Python, if there is one."""
    names = ["smile.exe", "smile"] if os.name == "nt" else ["smile"]
    folders = []
    for scheme in (None, f"{os.name}_user"):
        try:
            folders.append(Path(sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")))
        except (KeyError, TypeError):
            pass
    folders.append(Path(sys.executable).parent)
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name in names and argv0.is_file():
        folders.insert(0, argv0.resolve().parent)
    for folder in folders:
        for name in names:
            p = folder / name
            if p.is_file() and os.access(p, os.X_OK):
                return p.absolute()
    return None


def engine_record() -> dict:
    """The contents of ``smile-engine.json``."""
    import smilecore

    return {"command": engine_command(), "python": sys.executable, "version": smilecore.__version__,
            "protocol": PROTOCOL_VERSION}


def plugin_source(kind: str):
    """The adapter's files inside the installed ``smile_plugins`` package (a Traversable)."""
    try:
        root = resources.files("smile_plugins") / kind
    except ModuleNotFoundError:
        raise PluginSourceError("the package smile_plugins is not installed; reinstall smile-filter") from None
    if not root.is_dir():
        raise PluginSourceError(f"the {kind} plug-in files are missing from the installed package; reinstall smile-filter")
    return root


def _copy_tree(src, dst: Path) -> None:
    """Copy a Traversable folder to ``dst`` (skipping caches)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in _SKIP or item.name.endswith((".pyc", ".pyo")):
            continue
        target = dst / item.name
        if item.is_dir():
            _copy_tree(item, target)
        else:
            target.write_bytes(item.read_bytes())


def _replace_dir(staged: Path, dest: Path) -> None:
    """Move ``staged`` to ``dest``, replacing an older installation in one rename where possible."""
    old = None
    if dest.exists() or dest.is_symlink():
        if dest.is_symlink() or not dest.is_dir():
            dest.unlink()
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            old.rmdir()
            os.replace(dest, old)
    try:
        os.replace(staged, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)  # put the old version back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _install_package_dir(src, dest: Path, executable: str | None = None) -> None:
    """Stage ``src``, the shared client and the engine record next to ``dest``, then swap it into place."""
    common = plugin_source(COMMON)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    try:
        _copy_tree(src, staged)
        _copy_tree(common, staged)
        (staged / ENGINE_FILE).write_text(json.dumps(engine_record(), indent=2) + "\n", encoding="utf-8")
        if executable:
            script = staged / executable
            if not script.is_file():
                raise PluginSourceError(f"{executable} is missing from the installed plug-in files; reinstall smile-filter")
            script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.chmod(staged, 0o755)
        _replace_dir(staged, dest)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def install_gimp(plugins_dir: Path) -> Path:
    """Install the GIMP 3 plug-in into ``plugins_dir/smile/``; returns that folder."""
    src = plugin_source("gimp") / PLUGIN_NAME
    if not src.is_dir():
        raise PluginSourceError("the GIMP plug-in files are missing from the installed package; reinstall smile-filter")
    dest = plugins_dir / PLUGIN_NAME
    _install_package_dir(src, dest, executable=f"{PLUGIN_NAME}.py")
    return dest


def install_krita(pykrita_dir: Path, rc_file: Path | None) -> tuple[Path, bool]:
    """Install the Krita plug-in into ``pykrita_dir`` and enable it in ``rc_file`` (None: leave it).

    Returns the plug-in folder and whether kritarc changed.
    """
    root = plugin_source("krita")
    src = root / PLUGIN_NAME
    desktop = root / f"{PLUGIN_NAME}.desktop"
    if not src.is_dir() or not desktop.is_file():
        raise PluginSourceError("the Krita plug-in files are missing from the installed package; reinstall smile-filter")
    if rc_file is not None:
        check_rc_path(rc_file)  # before anything is installed
    dest = pykrita_dir / PLUGIN_NAME
    _install_package_dir(src, dest)
    from smilecore.atomic import write_atomic

    data = desktop.read_bytes()
    write_atomic(pykrita_dir / f"{PLUGIN_NAME}.desktop", lambda f: f.write(data))
    changed = enable_plugin(rc_file, PLUGIN_NAME) if rc_file is not None else False
    return dest, changed


@click.command(help=INSTALL_HELP, short_help="Install the GIMP 3 or Krita plug-in for this user.", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("editor", type=click.Choice(["gimp", "krita"], case_sensitive=False))
@click.option("--dir", "folder", metavar="DIR", help="Destination folder: GIMP's plug-ins folder, or Krita's pykrita folder.")
@click.option("--kritarc", "rc_file", metavar="PATH", help="Krita only: the kritarc file to enable the plug-in in.")
@click.option("--no-enable", is_flag=True, help="Krita only: do not edit kritarc (enable it in Krita's settings yourself).")
def install_plugin_command(editor: str, folder: str | None, rc_file: str | None, no_enable: bool) -> int:
    """Entry of ``smile install-plugin``."""
    editor = editor.lower()
    if editor == "gimp" and (rc_file or no_enable):
        from smilecore.errors import UsageError

        raise UsageError("--kritarc and --no-enable apply to krita only")
    lines = []
    try:
        if editor == "gimp":
            dest = install_gimp(expand_home(folder) if folder else gimp_plugins_dir())
            lines += [f"installed the GIMP plug-in in {dest}", "restart GIMP, then open an image and use Filters > Smile"]
        else:
            rc = None if no_enable else (expand_home(rc_file) if rc_file else kritarc_path())
            dest, changed = install_krita(expand_home(folder) if folder else krita_pykrita_dir(), rc)
            lines.append(f"installed the Krita plug-in in {dest}")
            if rc is not None:
                lines.append(f"enabled it in {rc}" + ("" if changed else " (it already was)"))
            lines.append("restart Krita, then Settings > Dockers > Smile")
    except PermissionError as exc:
        raise WriteError(f"cannot write {exc.filename or folder}: permission denied; use --dir to choose another folder") from None
    except OSError as exc:
        raise WriteError(f"cannot install the plug-in: {exc.strerror or exc} ({exc.filename or ''})") from None
    # the report: a reader that closes stdout early silences it (the plug-in is installed either way)
    from ..stdout import Report

    report = Report()
    for line in lines + [f"engine: {' '.join(engine_command())}"]:
        report.echo(line)
    return report.exit_code(0, "; the plug-in was installed")
