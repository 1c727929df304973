"""`--help` of every command of both programs: readable, complete, and the README documents every command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from mermaid_data.cli import app as data_app
from mermaid_train.cli import app as train_app
from typer.main import get_command
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
APPS = {"mermaid-data": data_app, "mermaid-train": train_app}


def command_paths(app: typer.Typer) -> list[tuple[str, ...]]:
    """Every command and group of ``app`` as argument paths, e.g. ('snapshot', 'create')."""
    root = get_command(app)
    ctx = root.make_context("prog", ["--help"], resilient_parsing=True)
    paths: list[tuple[str, ...]] = [()]

    def walk(group, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            paths.append((*prefix, name))
            if hasattr(command, "list_commands"):
                walk(command, (*prefix, name))

    walk(root, ())
    return paths


CASES = [(program, path) for program, app in APPS.items() for path in command_paths(app)]


def help_text(program: str, path: tuple[str, ...], flag: str = "--help") -> str:
    result = CliRunner().invoke(APPS[program], [*path, flag], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (program, path, result.output)
    return result.stdout


@pytest.mark.parametrize(("program", "path"), CASES, ids=[" ".join((p, *c)) for p, c in CASES])
def test_help_is_readable(program: str, path: tuple[str, ...]) -> None:
    """Bug pinned: every flag showing <bool> (even --help), usage showing {query}, raw ``double backquotes``."""
    text = help_text(program, path)
    assert text == help_text(program, path, "-h"), "-h and --help differ"
    for noise in ("<bool>", "<str>", "<int>", "<float>", "<path>", "``"):
        assert noise not in text, (noise, text)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert not re.search(r"\{\w+\}", usage), usage
    assert f"Usage: {program}" in usage


def test_sql_usage_names_the_argument_in_capitals() -> None:
    usage = next(line for line in help_text("mermaid-data", ("sql",)).splitlines() if "Usage:" in line)
    assert usage.split() == ["Usage:", "mermaid-data", "sql", "[OPTIONS]", "QUERY"]


@pytest.mark.parametrize("program", APPS)
def test_every_option_and_argument_has_help(program: str) -> None:
    """Bug pinned: `vacuum --dry-run` (and positional arguments) with no help text."""
    root = get_command(APPS[program])
    ctx = root.make_context(program, ["--help"], resilient_parsing=True)
    missing = []
    for path in command_paths(APPS[program]):
        command = root
        for name in path:
            command = command.get_command(ctx, name)
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{program} {' '.join(path)} {param.name}")
    assert not missing, missing


def test_readme_documents_every_command() -> None:
    """Bug pinned: `vacuum` (and `--debug`) missing from the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for program, app in APPS.items():
        for path in command_paths(app):
            if path:
                assert f"{program} {' '.join(path)}" in readme, f"{program} {' '.join(path)} not in README.md"
    assert "--debug" in readme
