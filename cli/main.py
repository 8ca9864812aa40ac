"""The ``smile`` command group: ``smile PHOTO...`` plus its sub-commands, and error handling.

Every failure ends in one line on stderr (``smile: error: ...``) and a documented exit
status (see :mod:`smilecore.errors`); a traceback is printed only when the environment
variable ``SMILE_DEBUG`` is set.
"""
from __future__ import annotations

import os
import sys
import warnings

import click

from smilecore.errors import SmileError

from .detect import detect_command
from .interrupt import Terminated, stop_behind
from .bridge.install import install_plugin_command
from .models import models_group
from .run import run_command
from .stdout import silence_stdout
from .version import smile_version
from .bridge.worker import worker_command

#: Name of the sub-command that ``smile PHOTO...`` runs.
DEFAULT_COMMAND = "run"

EXIT_CODES_HELP = """\b
Exit status:
  0  success (every photo written, or copied unchanged with --keep-unchanged)
  1  internal error (a bug: please report it)
  2  bad command-line usage or option value
  3  no (selected) face found
  4  input missing, unreadable, corrupt or of an unsupported kind
  5  image above the pixel limit (--max-pixels or SMILE_MAX_PIXELS; default 200 MP)
  6  model missing, corrupt, wrong checksum or wrong contract
  7  output could not be written (or the --json report: stdout full)
  130/143/129  interrupted by Ctrl-C / SIGTERM / SIGHUP (nothing half-written is left)
With several photos, the status is that of the first photo that failed."""

MAIN_HELP = """Make the faces in your photos smile, offline.

\b
Examples:
  smile portrait.jpg                      # writes portrait.smile.jpg
  smile portrait.jpg --strength 2 -o big-smile.png
  smile holidays/ --out-dir smiling/      # every photo of a folder
  smile "shots/*.jpg" --faces largest --keep-unchanged --json > report.json
  smile group.jpg --faces 0,2             # faces by index (see 'smile detect')
  smile models list                       # installed models, licences, checksums
  smile install-plugin gimp               # add the filter to GIMP 3

'smile PHOTO...' is short for 'smile run PHOTO...' (use 'smile run' for a photo
that has the name of a sub-command).  'smile COMMAND --help' for details.
"""


class SmileGroup(click.Group):
    """A group whose unknown first word is a photo: ``smile a.jpg`` runs ``smile run a.jpg``.

    It also turns every error into one line and an exit status (see :data:`EXIT_CODES_HELP`).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names and args[0] != "--version":
            args = [DEFAULT_COMMAND, *args]
        command = self.commands.get(args[0]) if args else None
        if isinstance(command, click.Command):  # (its context: the error line points to its own --help)
            _refuse_short_option_with_equals(command, args[1:], click.Context(command, info_name=args[0], parent=ctx))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # past click, which would print an empty line and say "Aborted!"
            raise _Stopped(exc) from exc

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        restore = _stop_on_signals()
        try:
            with warnings.catch_warnings():
                if not os.environ.get("SMILE_DEBUG"):  # library warnings (PIL's "corrupt EXIF"...) are not for users
                    warnings.simplefilter("ignore")
                rv = super().main(args=args, prog_name=prog_name or "smile", complete_var=complete_var,
                                  standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:  # click >= 8.2: bare 'smile'
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            code = 2
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except _Stopped as exc:
            code = _interrupted(exc.signal)
        except click.Abort as exc:  # click turns KeyboardInterrupt (and so Terminated) into Abort
            code = _interrupted(exc.__cause__ or exc.__context__)
        except click.ClickException as exc:
            code = _report_click_error(exc, sys.argv[1:] if args is None else list(args))
        except SmileError as exc:
            click.echo(f"smile: error: {exc}", err=True)
            code = exc.exit_code
        except KeyboardInterrupt as exc:
            code = _interrupted(exc)
        except BrokenPipeError:
            silence_stdout()
            code = 0
        except Exception as exc:  # a bug (say so in one line), or a stop that a library wrapped in its own error
            stop = stop_behind(exc)
            code = _interrupted(stop) if stop is not None else report_internal_error(exc)
        finally:
            restore()
        if standalone_mode:
            sys.exit(code)
        return code


def _valued_options(command: click.Command | None) -> dict[str, click.Option]:
    """``command``'s options that take a value (the next word, whatever it looks like), by each of their names."""
    return {opt: param for param in getattr(command, "params", ()) if isinstance(param, click.Option)
            and not param.is_flag for opt in param.opts}


def _refuse_short_option_with_equals(command: click.Command, args: list[str], ctx: click.Context) -> None:
    """A :class:`click.UsageError` for ``-o=out.png``: a short option's value is what follows it, '=' and all,
    so the result would be named ``=out.png`` (and ``-s=2`` be refused as not a number)."""
    valued = _valued_options(command)
    words = iter(args)
    for word in words:
        if word == "--":
            return
        if word in valued:  # (its value is the next word, whatever it looks like: --suffix -s=x)
            next(words, None)
        elif len(word) > 3 and word[0] == "-" and word[1] != "-" and word[2] == "=" and word[:2] in valued:
            long = next((o for o in valued[word[:2]].opts if o.startswith("--")), None)
            raise click.UsageError(f"{word}: a short option takes its value after a space: "
                                   f"{word[:2]} {word[3:]}" + (f" (or {long}={word[3:]})" if long else ""), ctx)


class _Stopped(Exception):
    """Ctrl-C, SIGTERM or SIGHUP (``signal``: the KeyboardInterrupt or :class:`Terminated`) on its way out
    past click."""

    def __init__(self, signal: KeyboardInterrupt):
        super().__init__(str(signal))
        self.signal = signal


def _stop_on_signals():
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, unless the process was
    started with them ignored (``nohup``); returns a function that puts the previous handlers back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        raise Terminated(signum)

    for name in ("SIGTERM", "SIGHUP"):  # (Windows has no SIGHUP)
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) == signal.SIG_IGN:
            continue  # ignored on purpose (`nohup smile ...`): it stays ignored
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):
            pass

    def restore() -> None:
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError, TypeError):
                pass

    return restore


def _interrupted(exc: BaseException | None) -> int:
    """Say that the run was stopped; the exit status is 128 + the signal's number (130 for Ctrl-C)."""
    import signal

    signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    name = signal.Signals(signum).name if isinstance(exc, Terminated) else "Ctrl-C"
    try:
        if not isinstance(exc, Terminated) and sys.stderr is not None and sys.stderr.isatty():
            click.echo("", err=True)  # (after the terminal's "^C")
        click.echo(f"smile: interrupted ({name})", err=True)
    except (OSError, ValueError):
        pass
    return 128 + int(signum)


def _report_click_error(exc: click.ClickException, argv: list[str] = ()) -> int:
    """One line for a usage mistake, with the command to ask for help (``argv``: the words given, to tell a
    file whose name starts with a dash from an unknown option)."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "smile"
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.UsageError):
        named = _dashed_file(argv, _valued_options(ctx.command if ctx is not None else None))
        if named is not None:
            message += f"{'' if message.endswith('.') else '.'} To read the file {named}, write ./{named} or give it after --."
    param = getattr(exc, "param", None)
    if ctx is not None and param is not None and getattr(param, "envvar", None):
        from click.core import ParameterSource

        if ctx.get_parameter_source(param.name) != ParameterSource.ENVIRONMENT:  # (typed on the command line)
            message = message.replace(f" (env var: {param.envvar!r})", "")
    click.echo(f"smile: error: {message} (see '{where} --help')", err=True)
    return 2 if isinstance(exc, click.UsageError) or exc.exit_code == 2 else max(2, exc.exit_code)


def _dashed_file(argv: list[str], valued: dict[str, click.Option]) -> str | None:
    """The first word of ``argv`` (before ``--``; not the value of one of the options ``valued``) that starts
    with a dash and names a file or folder, which click read as options (``-dash.jpg`` as ``-d -a -s -h``...,
    ``-sun.jpg`` as ``-s un.jpg``), else None."""
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if word in valued:  # (-o -out.png: the result's name)
            next(words, None)
        elif len(word) > 1 and word.startswith("-") and os.path.lexists(word):
            return word
    return None


def report_internal_error(exc: BaseException) -> int:
    """Print one line about an unexpected exception (a traceback only with SMILE_DEBUG); return 1."""
    if os.environ.get("SMILE_DEBUG"):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)
    text = " ".join(str(exc).split())[:300]
    click.echo(f"smile: internal error: {type(exc).__name__}: {text} (please report it; set SMILE_DEBUG=1 for details)", err=True)
    return 1


@click.group(cls=SmileGroup, help=MAIN_HELP, epilog=EXIT_CODES_HELP, no_args_is_help=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=smile_version(), prog_name="smile", message="%(prog)s %(version)s")
def cli() -> None:
    """The ``smile`` command group."""


cli.add_command(run_command, DEFAULT_COMMAND)
cli.add_command(detect_command, "detect")
cli.add_command(models_group, "models")
cli.add_command(install_plugin_command, "install-plugin")
cli.add_command(worker_command, "worker")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``smile``)."""
    cli.main(args=argv, prog_name="smile")
