"""Progress reporting behind one small interface: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Task(Protocol):
    def advance(self, amount: int = 1) -> None: ...


class Progress(Protocol):
    """What long-running steps report to. ``task`` opens one bar (or one start/end log line pair)."""

    def task(self, description: str, total: int | None = None) -> Iterator[Task]: ...

    def log(self, message: str) -> None: ...


class _LineTask:
    def __init__(self) -> None:
        self.done = 0

    def advance(self, amount: int = 1) -> None:
        self.done += amount


class LineProgress:
    """Plain log lines on stderr: one when a step starts, one when it ends (with its duration)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        started = time.perf_counter()
        size = f" ({total:,})" if total else ""
        print(f"[mermaid] {description}{size} ...", file=self.stream, flush=True)
        task = _LineTask()
        yield task
        print(
            f"[mermaid] {description} done in {time.perf_counter() - started:.1f}s",
            file=self.stream,
            flush=True,
        )

    def log(self, message: str) -> None:
        print(f"[mermaid] {message}", file=self.stream, flush=True)


class RichProgress:
    """A rich progress bar per task, for interactive terminals."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
        from rich.progress import Progress as _Bar

        with _Bar(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task_id = bar.add_task(description, total=total)

            class _T:
                def advance(self, amount: int = 1) -> None:
                    bar.advance(task_id, amount)

            yield _T()
            if total:
                bar.update(task_id, completed=total)

    def log(self, message: str) -> None:
        self.console.print(message)


class SilentProgress:
    """Reports nothing (library use, tests)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield _LineTask()

    def log(self, message: str) -> None:
        pass


def default_progress() -> Progress:
    """A bar when stderr is a terminal, plain lines otherwise."""
    return RichProgress() if sys.stderr.isatty() else LineProgress()
