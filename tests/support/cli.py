"""Checks shared by the command-line tests: one error line, no traceback, and the real entry points."""

from __future__ import annotations

import sys
from pathlib import Path

#: Progress lines (``LineProgress``) may precede the error on stderr; nothing else may.
PROGRESS = "[mermaid] "
BIN = Path(sys.executable).parent  # the venv's console scripts: mermaid-data, mermaid-train


def one_line_error(result, code: int = 2) -> str:
    """Exit status ``code``, exactly one line on stderr besides progress lines, ``error: ...``, no traceback.

    ``result`` is a ``CliRunner`` result or a ``subprocess.CompletedProcess`` (text mode).
    """
    status = result.exit_code if hasattr(result, "exit_code") else result.returncode
    stdout, stderr = result.stdout, result.stderr
    assert status == code, (status, stdout, stderr, getattr(result, "exception", None))
    exception = getattr(result, "exception", None)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert "Traceback" not in stdout + stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(PROGRESS)]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def assert_names_fix(line: str) -> None:
    assert ". Fix: " in line, line
    assert len(line.split(". Fix: ", 1)[1].strip()) > 10, line
