"""The error boundary of both command lines (mermaid_data.cli_base): any exception is one line, exit non-zero.

The test app is built with ``make_app`` exactly as ``mermaid-data`` and ``mermaid-train`` are, with plain
commands and a plain sub-app (no decorators), as other engineers add them.
"""

from __future__ import annotations

import errno
import subprocess

import mermaid_data.demo
import pytest
import typer
from mermaid_data.cli import app as data_app
from mermaid_data.cli_base import make_app, user_errors
from mermaid_data.errors import SourceFormatError
from mermaid_train.cli import app as train_app
from typer.testing import CliRunner

from tests.support.cli import BIN, assert_names_fix, one_line_error

RAISED: dict[str, BaseException] = {
    "ours": SourceFormatError("bad value 'x'", where="/data/s1/annotations.csv", row=3, fix="correct that line"),
    "bug": ZeroDivisionError("division by zero"),
    "multiline": RuntimeError("first line\n  second line\nthird"),
    "disk-full": OSError(errno.ENOSPC, "No space left on device", "/lake/tables/x.parquet"),
    "read-only": OSError(errno.EROFS, "Read-only file system", "/lake/_delta_log"),
    "denied": PermissionError(errno.EACCES, "Permission denied", "/lake"),
    "disk-full-no-path": OSError(errno.ENOSPC, "No space left on device"),
    # what DuckDB and deltalake raise: their own classes, the OS error only in the text
    "wrapped-full": Exception('IO Error: Could not write file "/lake/t/part-0.parquet": No space left on device'),
    "wrapped-ro": Exception("Generic LocalFileSystem error: Read-only file system (os error 30)"),
    "markup": ValueError("[bold]not markup[/bold] and [red]"),
    "interrupt": KeyboardInterrupt(),
}


def build_app() -> typer.Typer:
    app = make_app("mermaid-data", help="A test app.")

    @app.command()
    def boom(kind: str) -> None:
        """Raise the exception named KIND."""
        raise RAISED[kind]

    @app.command()
    def fine() -> None:
        """Succeed."""
        typer.echo("fine")

    later = typer.Typer(help="A sub-app added later, with no decorators.")

    @later.command("boom")
    def later_boom() -> None:
        raise KeyError("no such key")

    app.add_typer(later, name="later")
    return app


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return build_app()


def run(app: typer.Typer, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={"MERMAID_DEBUG": "", **(env or {})})


def test_our_errors_are_the_line_itself(app: typer.Typer) -> None:
    """Bug pinned: a MermaidDataError printed with a stack trace (or markup eaten)."""
    line = one_line_error(run(app, "boom", "ours"))
    assert line == "error: /data/s1/annotations.csv, row 3: bad value 'x'. Fix: correct that line"


def test_an_unexpected_exception_is_one_line_exit_1(app: typer.Typer) -> None:
    """Bug pinned: any exception other than ours printing Typer's multi-page traceback."""
    line = one_line_error(run(app, "boom", "bug"), code=1)
    assert "unexpected ZeroDivisionError: division by zero" in line
    assert "--debug" in line
    line = one_line_error(run(app, "boom", "multiline"), code=1)
    assert "first line second line third" in line


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("disk-full", ["/lake/tables/x.parquet: disk full (no space left on device)", "Fix: free space"]),
        ("read-only", ["/lake/_delta_log: read-only file system", "Fix: choose a location on a writable disk"]),
        ("denied", ["/lake: permission denied", "Fix: check the permissions"]),
        ("disk-full-no-path", ["error: disk full (no space left on device). Fix: free space"]),
        ("wrapped-full", ["disk full", "/lake/t/part-0.parquet", "Fix: free space"]),
        ("wrapped-ro", ["read-only file system", "Fix: choose a location on a writable disk"]),
    ],
)
def test_os_errors_name_the_path_and_what_to_do(app: typer.Typer, kind: str, fragments: list[str]) -> None:
    """Bug pinned: a full disk or a read-only lake ending in a raw OSError / IOException traceback."""
    line = one_line_error(run(app, "boom", kind))
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert_names_fix(line)


def test_the_message_is_printed_as_is(app: typer.Typer) -> None:
    """Bug pinned: rich markup in an error message swallowed (a value like '[red]' vanished)."""
    line = one_line_error(run(app, "boom", "markup"), code=1)
    assert "[bold]not markup[/bold] and [red]" in line


def test_ctrl_c_is_one_line_exit_130(app: typer.Typer) -> None:
    line = one_line_error(run(app, "boom", "interrupt"), code=130)
    assert "interrupted" in line


def test_debug_shows_the_traceback(app: typer.Typer) -> None:
    """Bug pinned: no way to see where an unexpected error came from."""
    for result in (run(app, "--debug", "boom", "bug"), run(app, "boom", "bug", env={"MERMAID_DEBUG": "1"})):
        assert result.exit_code == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "ZeroDivisionError: division by zero" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: unexpected ZeroDivisionError")


def test_commands_of_sub_apps_added_later_are_covered(app: typer.Typer) -> None:
    """Bug pinned: only decorated commands had one-line errors; a new command group printed tracebacks."""
    line = one_line_error(run(app, "later", "boom"), code=1)
    assert "unexpected KeyError" in line


def test_usage_errors_are_one_line(app: typer.Typer) -> None:
    """Bug pinned: an unknown option or command printed a framed multi-line panel."""
    line = one_line_error(run(app, "fine", "--nope"))
    assert "--nope" in line and "mermaid-data fine --help" in line
    line = one_line_error(run(app, "nosuch"))
    assert "nosuch" in line
    line = one_line_error(run(app, "--nope"))
    assert "--nope" in line
    line = one_line_error(run(app, "boom"))
    assert "KIND" in line  # the missing argument, named as the help shows it


def test_success_and_help_still_exit_0(app: typer.Typer) -> None:
    assert run(app, "fine").stdout == "fine\n"
    for args in (["-h"], ["--help"], ["fine", "-h"], ["later", "-h"]):
        result = run(app, *args)
        assert result.exit_code == 0 and "Usage:" in result.stdout, (args, result.output)
    assert run(app).exit_code in (0, 2)  # no command: the help (Typer's no_args_is_help)
    assert "Usage:" in run(app).output


def test_user_errors_decorator_still_works() -> None:
    """Bug pinned: commands written with the old @user_errors broke when the boundary arrived."""
    app = typer.Typer()

    @app.command()
    @user_errors
    def old() -> None:
        raise RAISED["disk-full"]

    @app.command()
    def other() -> None:
        pass

    line = one_line_error(CliRunner().invoke(app, ["old"]))
    assert "disk full" in line


def test_real_command_unexpected_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Bug pinned: `mermaid-data demo-sources` (and every command) tracebacking on an unforeseen error."""

    def broken(*args, **kwargs):
        raise IndexError("index 0 is out of bounds for axis 0 with size 0")

    monkeypatch.setattr(mermaid_data.demo, "generate_demo_sources", broken)
    line = one_line_error(CliRunner().invoke(data_app, ["demo-sources", str(tmp_path / "d")]), code=1)
    assert "unexpected IndexError: index 0 is out of bounds" in line


@pytest.mark.parametrize(("program", "app"), [("mermaid-data", data_app), ("mermaid-train", train_app)])
def test_both_programs_have_version_debug_and_short_help(program: str, app: typer.Typer) -> None:
    """Bug pinned: no --version, no -h, no --debug."""
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith(f"{program} 0."), version.output
    short = CliRunner().invoke(app, ["-h"])
    assert short.exit_code == 0 and "--debug" in short.stdout and "--version" in short.stdout


def test_installed_entry_points_use_the_boundary(tmp_path) -> None:
    """Bug pinned: the console script (not CliRunner) printing a traceback for a bad --as-of."""
    result = subprocess.run(
        [str(BIN / "mermaid-data"), "sql", "SELECT 1", "--lake", str(tmp_path), "--as-of", "notadate"],
        capture_output=True, text=True, check=False, timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    line = one_line_error(result)
    assert "'notadate'" in line
    result = subprocess.run([str(BIN / "mermaid-train"), "--version"], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("mermaid-train "), result.stderr
