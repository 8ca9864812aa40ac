"""``smile models list|pull|verify|path``: the smile models, their licences and checksums."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from smilecore.errors import ModelError

MODELS_HELP = """Installed and downloadable smile models.

\b
Examples:
  smile models list             # name, version, licence, size, sha256, installed?
  smile models pull NAME        # download into the user cache (checksum-verified)
  smile models verify           # check every installed model's sha256
  smile models path             # where the default model's file is
"""

_CTX = {"help_option_names": ["-h", "--help"]}


@click.group(help=MODELS_HELP, short_help="List, download, verify and locate smile models.", context_settings=_CTX)
def models_group() -> None:
    """The ``smile models`` group."""


def _registry():
    from smilecore import registry

    return registry


def _present(w, info) -> bool:
    """Something is where the model belongs (whether or not it is the model: a folder, a broken link too)."""
    try:
        return os.path.lexists(w.local_path(info))
    except Exception:
        return False


def _state(w, info) -> tuple[str, str | None]:
    """``(state, problem)``: bundled / installed / corrupt / partial download / not installed, and
    what is wrong with the file in the model's place (None if nothing)."""
    path = w.local_path(info)
    problem = w.file_problem(info, path)
    if problem is None:
        return ("bundled" if info.bundled else "installed"), None
    if info.bundled:
        return "damaged", problem
    if problem == w.UNREADABLE:
        return "unreadable", problem
    if problem != w.MISSING:
        return "corrupt", problem
    part = w.part_path(info)
    if part.is_file():
        total = f" of {info.size}" if info.size > 0 else ""
        return f"partial download ({part.stat().st_size}{total} bytes)", None
    return "not installed", None


def _selected(w) -> tuple[str | None, str | None]:
    """``(name, path)`` of the model ``smile`` uses now: ``$SMILE_MODEL`` (a registry name or a
    path), else the registry's default."""
    env = os.environ.get("SMILE_MODEL") or None
    if env is None:
        return w.default_model_name(), None
    path = w.path_choice(env)
    return (None, str(path)) if path is not None else (env, None)


@models_group.command("list", context_settings=_CTX)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(as_json: bool) -> int:
    """List the registry's models: version, state, size, licence, sha256, where the file is.

    \b
    state: bundled, installed (its sha256 checked), corrupt (fails its checksum: 'smile models
    pull NAME' fetches it again), unreadable (this user may not read it), partial download (resumed by
    'smile models pull NAME'), not installed, or damaged (a bundled file that fails its checksum: reinstall
    smile-filter)."""
    w = _registry()
    default = w.default_model_name()
    sel_name, sel_path = _selected(w)
    rows = []
    for m in w.list_models():
        path = w.local_path(m)
        state, problem = _state(w, m)
        rows.append({
            "name": m.name, "version": m.version, "license": m.license, "size": m.size, "sha256": m.sha256,
            "bundled": m.bundled, "installed": state in ("bundled", "installed"), "state": state, "problem": problem,
            "default": m.name == default, "selected": m.name == sel_name,
            "path": str(path), "url": m.url, "description": getattr(m, "description", ""),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo("no models in the registry")
    for r in rows:
        marks = [word for word, on in (("default", r["default"]), ("SMILE_MODEL", r["selected"] and "SMILE_MODEL" in os.environ
                                                                   and r["name"] != default)) if on]
        star = f" ({', '.join(marks)})" if marks else ""
        click.echo(f"{r['name']}{star}  {r['version']}  {r['state']}  {_size(r['size'])}  licence: {r['license']}")
        click.echo(f"    sha256 {r['sha256']}")
        if r["installed"]:
            click.echo(f"    {r['path']}")
        else:
            if r["problem"]:
                click.echo(f"    {r['path']} {r['problem']}")
            click.echo(f"    url {r['url']}" if r["url"] else "    (no download address)")
    if sel_path is not None:
        from smilecore.errors import SmileError
        from smilecore.model import SmileModel

        try:  # (loaded, as smile loads it: a folder, a text file, a model of another contract are refused)
            SmileModel(w.check_model_file(Path(sel_path)))
            click.echo(f"SMILE_MODEL={sel_path}: 'smile' uses this file, not a registry model")
        except SmileError as exc:
            click.echo(f"SMILE_MODEL={sel_path}: 'smile' will refuse to run (exit 6): {exc}")
    elif sel_name is not None and sel_name not in {r["name"] for r in rows}:
        click.echo(f"SMILE_MODEL={sel_name} is not a registry model: 'smile' will refuse to run (exit 6)")
    return 0


@models_group.command("pull", context_settings=_CTX)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "pull_all", is_flag=True, help="Pull every model of the registry.")
def pull_command(names: tuple[str, ...], pull_all: bool) -> int:
    """Download models (default: the default model) into the user cache, checking their sha256."""
    w = _registry()
    chosen = [m.name for m in w.list_models()] if pull_all else (list(names) or [w.default_model_name()])
    infos = [w.get_info(name) for name in dict.fromkeys(chosen)]  # ModelError for an unknown name, before any download
    for info in infos:
        path = w.fetch_model(info, progress=_terminal())
        click.echo(f"{info.name} {info.version}: {path}")
    return 0


@models_group.command("verify", context_settings=_CTX)
@click.argument("names", nargs=-1, metavar="[NAME]...")
def verify_command(names: tuple[str, ...]) -> int:
    """Check the sha256 of installed models (default: all installed ones); exit 6 if one fails."""
    w = _registry()
    if names:
        infos = [w.get_info(n) for n in names]
    else:
        infos = [m for m in w.list_models() if m.bundled or _present(w, m)]
        if not infos:
            click.echo("no model installed; run 'smile models pull'")
            return 0
    bad = 0
    for info in infos:
        try:
            w.model_path(info.name)
            click.echo(f"{info.name}: ok (sha256 {info.sha256[:16]}…)")
        except ModelError as exc:
            click.echo(f"smile: error: {exc}", err=True)
            bad += 1
    return ModelError.exit_code if bad else 0


@models_group.command("path", context_settings=_CTX)
@click.argument("name", required=False)
def path_command(name: str | None) -> int:
    """Print the verified local file of a model (default: the one 'smile' would use); never downloads."""
    w = _registry()
    path = w.resolve_model(None, download=False) if name is None else w.model_path(name)
    if name is None and not any(w.local_path(info) == path for info in w.list_models()):
        from smilecore.model import SmileModel

        SmileModel(path)  # a file $SMILE_MODEL names: loaded, so that a file smile would refuse is refused here (exit 6)
    click.echo(str(path))
    return 0


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _size(n: int) -> str:
    from smilecore.registry import _size_text

    return _size_text(n)
