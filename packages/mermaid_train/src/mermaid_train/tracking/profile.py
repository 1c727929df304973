"""Seconds and peak memory per stage of a run (``profiled_sections.csv``)."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: ``echo 5 > /proc/self/clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Profiler:
    """Seconds and peak memory per stage (``profiled_sections.csv``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        exact = _reset_peak()
        rss_before = _status_kb("VmRSS") or 0
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            peak = _status_kb("VmHWM") if exact else None
            if peak is None:  # no per-stage reset: the process's peak so far (an upper bound)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            rss_after = _status_kb("VmRSS") or 0
            self.rows.append({
                "section": name,
                "seconds": round(seconds, 4),
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_start_mb": round(rss_before / 1024, 1),
                "rss_end_mb": round(rss_after / 1024, 1),
                "peak_is_per_section": exact,
            })

    def frame(self) -> pl.DataFrame:
        schema = {"section": pl.String, "seconds": pl.Float64, "peak_rss_mb": pl.Float64, "rss_start_mb": pl.Float64,
                  "rss_end_mb": pl.Float64, "peak_is_per_section": pl.Boolean}
        return pl.DataFrame(self.rows, schema=schema)
