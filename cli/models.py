"""``smile models list|pull|verify|path``: the smile models, their licences and checksums."""
from __future__ import annotations

import json
import sys

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


def _installed(w, info) -> bool:
    try:
        return w.local_path(info).is_file()
    except Exception:
        return False


@models_group.command("list", context_settings=_CTX)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(as_json: bool) -> int:
    """List the registry's models: version, licence, size, sha256, where the file is."""
    w = _registry()
    default = w.default_model_name()
    rows = []
    for m in w.list_models():
        path = w.local_path(m)
        rows.append({
            "name": m.name, "version": m.version, "license": m.license, "size": m.size, "sha256": m.sha256,
            "bundled": m.bundled, "installed": _installed(w, m), "default": m.name == default,
            "path": str(path), "url": m.url, "description": getattr(m, "description", ""),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo("no models in the registry")
        return 0
    for r in rows:
        state = "bundled" if r["bundled"] else ("installed" if r["installed"] else "not installed")
        star = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{star}  {r['version']}  {state}  {_size(r['size'])}  licence: {r['license']}")
        click.echo(f"    sha256 {r['sha256']}")
        click.echo(f"    {r['path'] if r['installed'] or r['bundled'] else 'url ' + str(r['url'])}")
    return 0


@models_group.command("pull", context_settings=_CTX)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "pull_all", is_flag=True, help="Pull every model of the registry.")
def pull_command(names: tuple[str, ...], pull_all: bool) -> int:
    """Download models (default: the default model) into the user cache, checking their sha256."""
    w = _registry()
    chosen = [m.name for m in w.list_models()] if pull_all else (list(names) or [w.default_model_name()])
    for name in chosen:
        info = w.get_info(name)  # ModelError for an unknown name
        path = w.fetch_model(info, progress=sys.stderr.isatty())
        click.echo(f"{name} {info.version}: {path}")
    return 0


@models_group.command("verify", context_settings=_CTX)
@click.argument("names", nargs=-1, metavar="[NAME]...")
def verify_command(names: tuple[str, ...]) -> int:
    """Check the sha256 of installed models (default: all installed ones); exit 6 if one fails."""
    w = _registry()
    if names:
        infos = [w.get_info(n) for n in names]
    else:
        infos = [m for m in w.list_models() if m.bundled or _installed(w, m)]
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
    """Print the verified local file of a model (default: the one 'smile' would use)."""
    w = _registry()
    if name is None:
        path = w.resolve_model(None) if _env_model() else w.model_path(w.default_model_name())
    else:
        path = w.model_path(name)
    click.echo(str(path))
    return 0


def _env_model() -> bool:
    import os

    return bool(os.environ.get("SMILE_MODEL"))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
