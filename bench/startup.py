"""Startup benchmark: how long a command takes before it does anything (issue 9, "a newcomer's first hour").

    uv run --frozen python bench/startup.py [--runs 7]

Each command is run ``--runs`` times (after one unmeasured warm-up run) from the repository root, in
this order, and its median, min and max wall times are printed:

- ``uv run --frozen python -c pass``: the floor, uv's own check of the environment plus an interpreter
  (the baseline measured in the same run);
- ``uv run --frozen mermaid-data --help`` and ``uv run --frozen mermaid-train --help``;
- the venv's own console scripts ``.venv/bin/mermaid-data --help`` / ``mermaid-train --help`` (no uv).

It also reports whether any ``uv run`` printed "Bytecode compiled" (it must not: compilation belongs
to ``make sync``).

Budget: ``uv run --frozen mermaid-data --help`` warm under 1.5 s. Last line:
``data_help_s=<median> train_help_s=<median> floor_s=<median> bytecode_compiled=<yes|no>``.
A missed budget is reported (exit status 0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 1.5


def commands() -> dict[str, list[str]]:
    uv = shutil.which("uv")
    uv_run = [uv, "run", "--frozen"] if uv else [sys.executable, "-m", "uv", "run", "--frozen"]
    venv = ROOT / ".venv" / "bin"
    return {
        "uv run python -c pass (floor)": [*uv_run, "python", "-c", "pass"],
        "uv run mermaid-data --help": [*uv_run, "mermaid-data", "--help"],
        "uv run mermaid-train --help": [*uv_run, "mermaid-train", "--help"],
        ".venv/bin/mermaid-data --help": [str(venv / "mermaid-data"), "--help"],
        ".venv/bin/mermaid-train --help": [str(venv / "mermaid-train"), "--help"],
    }


def measure(argv: list[str], runs: int) -> tuple[list[float], bool]:
    """Wall seconds of ``runs`` runs (after one warm-up) and whether stderr said "Bytecode compiled"."""
    compiled = False
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False,
                              env={**os.environ, "COLUMNS": "100"})
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        compiled = compiled or "Bytecode compiled" in done.stderr
        if i:
            times.append(elapsed)
    return times, compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = {}
    compiled_any = False
    for name, argv in commands().items():
        times, compiled = measure(argv, args.runs)
        compiled_any = compiled_any or compiled
        rows[name] = times
    print(f"startup, {args.runs} warm runs each (load average before: {load:.2f})")
    print("| command | median s | min s | max s | budget |")
    print("|---|---|---|---|---|")
    for name, times in rows.items():
        verdict = ""
        if name == "uv run mermaid-data --help":
            verdict = f"< {BUDGET_S} s: " + ("PASS" if statistics.median(times) < BUDGET_S else "FAIL")
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} | {verdict} |")
    print(f"'Bytecode compiled' printed by uv run: {'yes (FAIL)' if compiled_any else 'no (PASS)'}")
    median = {name: statistics.median(times) for name, times in rows.items()}
    print(f"data_help_s={median['uv run mermaid-data --help']:.2f} "
          f"train_help_s={median['uv run mermaid-train --help']:.2f} "
          f"floor_s={median['uv run python -c pass (floor)']:.2f} bytecode_compiled={'yes' if compiled_any else 'no'}")


if __name__ == "__main__":
    main()
