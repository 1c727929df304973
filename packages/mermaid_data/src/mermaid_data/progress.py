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
    """A rich progress bar per task, for interactive terminals.

    A task without a known total shows how many items it counted (nothing when it counted none) and
    a full bar once finished, never ``0/?``.
    """

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        from rich.progress import BarColumn, TimeElapsedColumn
        from rich.progress import Progress as _Bar

        with _Bar(
            "[progress.description]{task.description}",
            BarColumn(),
            _count_column(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task_id = bar.add_task(description, total=total, known_total=total is not None)

            class _T:
                def advance(self, amount: int = 1) -> None:
                    bar.advance(task_id, amount)

            yield _T()
            done = next(t.completed for t in bar.tasks if t.id == task_id) if total is None else total
            bar.update(task_id, total=max(done, 1), completed=max(done, 1), counted=done)

    def log(self, message: str) -> None:
        self.console.print(message)


def _count_column():
    """'done/total' for a task with a known total, 'n' for one that counted n items, else nothing."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task) -> Text:
            counted = task.fields.get("counted", task.completed)
            if task.fields.get("known_total"):
                return Text(f"{int(task.completed):,}/{int(task.total):,}", style="progress.download")
            return Text(f"{int(counted):,}" if counted else "", style="progress.download")

    return CountColumn()


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
