"""The Typer app both command lines are built from (``make_app``): one error boundary and clean help.

The boundary is the root command group (``BoundaryGroup``): every command and sub-app added to the
app runs inside it, so a command needs no decorator. Any exception becomes one line on stderr,
``error: <where>: <problem>. Fix: <what to do>`` (``mermaid_data.errors.from_exception`` names OS
errors such as a full disk or a read-only file system; anything else is reported as a bug), and a
non-zero exit: 2 for what the user can fix, 1 for a bug, 130 for Ctrl-C. The traceback is printed
only with the global ``--debug`` option (``mermaid-data --debug sql ...``) or ``MERMAID_DEBUG=1``.
Usage errors (an unknown option, a bad value) are one line too.

Every app also gets ``-h``/``--help`` and ``--version``, and help without Typer's type noise: flags
show no ``<bool>``, value options show their metavar (or TEXT, INTEGER, ...), arguments read
``QUERY`` rather than ``{query}`` / ``query <str>``, and RST double backquotes are dropped from
docstrings.
"""

# No `from __future__ import annotations`: Typer reads the annotations of make_app's inner callback,
# which names the closure's show_version.
import contextvars
import functools
import os
import sys
import traceback
from importlib import metadata
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from mermaid_data.errors import MermaidDataError, from_exception, one_line

_DEBUG = contextvars.ContextVar("mermaid_debug", default=False)


def debug_requested() -> bool:
    """Whether ``--debug`` was given (this process) or ``MERMAID_DEBUG`` is set to a true value."""
    return _DEBUG.get() or os.environ.get("MERMAID_DEBUG", "").lower() in ("1", "true", "yes")


def fail(exc: BaseException, *, debug: bool | None = None) -> NoReturn:
    """Report ``exc`` as one line (the traceback first under ``--debug``) and exit non-zero."""
    from mermaid_data.output import print_error

    if debug_requested() if debug is None else debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        print_error(MermaidDataError("interrupted", fix="run the command again to finish"))
        raise typer.Exit(130) from None
    if _is_usage_error(exc):
        print_error(_usage_error(exc))
        raise typer.Exit(exc.exit_code) from None
    error = from_exception(exc)
    print_error(error)
    raise typer.Exit(error.exit_code) from None


def _passes_through(exc: BaseException) -> bool:
    """Control flow, not errors: exits, --help, a closed pipe (handled by Typer's own main)."""
    if isinstance(exc, (typer.Exit, typer.Abort, SystemExit, BrokenPipeError)):
        return True
    return type(exc).__name__ == "NoArgsIsHelpError"


def _is_usage_error(exc: BaseException) -> bool:
    return isinstance(exc, typer.TyperException) and hasattr(exc, "ctx")


def _usage_error(exc: Any) -> MermaidDataError:
    """A usage error as one line: what is wrong and the --help that explains the command."""
    path = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "the command"
    return MermaidDataError(one_line(exc.format_message()).rstrip("."), fix=f"see `{path} --help`")


def user_errors(fn):
    """Decorator kept for commands written before the boundary: the same one-line errors, per command.

    Commands of an app made by ``make_app`` do not need it.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if _passes_through(exc):
                raise
            fail(exc)

    return wrapper


# ---- help without Typer's noise -----------------------------------------------------------------

_TYPE_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "FILE",
                "directory": "DIRECTORY"}


class _Option(TyperOption):
    def display_type_rich(self, ctx) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).removeprefix("<").removesuffix(">")
        return " ".join(_TYPE_LABELS.get(part, part) for part in label.split(","))


class _Argument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return (self.metavar or self.name or "").upper()

    def display_type_rich(self, ctx) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain(text: str | None) -> str | None:
    return text.replace("``", "") if text else text


def _restyle_params(params: list) -> list:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
        param.help = _plain(getattr(param, "help", None))
    return params


def _restyle(command) -> None:
    """Give a command (and a group's commands, when listed) the clean help of this module."""
    if type(command) is TyperCommand:
        command.__class__ = _Command
    elif type(command) is TyperGroup:
        command.__class__ = _Group
    command.help = _plain(command.help)
    command.short_help = _plain(command.short_help)


class _Command(TyperCommand):
    def get_params(self, ctx) -> list:
        return _restyle_params(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx) -> list:
        return _restyle_params(super().get_params(ctx))

    def get_command(self, ctx, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _restyle(command)
        return command


# ---- the boundary ---------------------------------------------------------------------------------


class BoundaryGroup(_Group):
    """The root group: parses the root options, then runs the command inside the error boundary.

    ``program`` (set by ``make_app``) names the program in usage lines and hints, however it was started
    (console script, ``python -m``, a test's CliRunner).
    """

    program: str | None = None

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(self.program or info_name, args, parent=parent, **extra)
        except BaseException as exc:
            if _passes_through(exc):
                raise
            fail(exc)

    def invoke(self, ctx):
        debug = bool(ctx.params.get("debug")) or debug_requested()
        token = _DEBUG.set(debug)
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            if _passes_through(exc):
                raise
            fail(exc, debug=debug)
        finally:
            _DEBUG.reset(token)


def make_app(distribution: str, *, help: str | None) -> typer.Typer:
    """A Typer app with the boundary, ``-h``, ``--version`` (of ``distribution``) and ``--debug``."""
    group = type("BoundaryGroup", (BoundaryGroup,), {"program": distribution})
    app = typer.Typer(
        cls=group,
        help=_plain(help),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def show_version(value: bool) -> None:
        if value:
            typer.echo(f"{distribution} {metadata.version(distribution)}")
            raise typer.Exit()

    @app.callback()
    def root(
        debug: Annotated[bool, typer.Option(
            "--debug", help="Print the full traceback of an error (also: MERMAID_DEBUG=1)")] = False,
        version: Annotated[bool, typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit")] = False,
    ) -> None:
        pass  # the options act through their callbacks and BoundaryGroup.invoke

    return app
