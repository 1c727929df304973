"""Ingest benchmark: N demo annotations -> Delta lake, against a bare DuckDB COPY of the same files.

    uv run --frozen python bench/ingest.py --annotations 20000000 [--workdir DIR] [--seed S] [--keep]

1. Annotation-only demo sources (``features=False``) are generated under ``DIR/sources`` unless
   ``DIR/sources/.mermaid-demo.json`` already describes a complete demo of the same N and seed
   (generation is not what is measured).
2. A child process ingests them into an empty ``DIR/lake`` (``mermaid_data.ingest.ingest``, taxonomy
   from the demo API pages included) and reports the wall time of the ``ingest()`` call and its own
   peak RSS (``ru_maxrss``, so the figure is that process's alone: DuckDB, deltalake and Python).
3. Another child process runs the floor: one DuckDB ``COPY`` (DuckDB defaults) reading every CoralNet
   CSV (``read_csv(..., union_by_name = true)``) and the MERMAID parquet once and writing one Parquet
   file ``DIR/floor.parquet``.
4. One table is printed (rows, ingest wall s, rows/s, peak RSS GB, copy wall s, ratio) with PASS/FAIL
   per budget, and as the last line ``rows_per_s=<n> vs_copy=<ingest s / copy s> peak_rss_gb=<x>``.

Budget (issue 2, 2-core machine, N = 20,000,000): >= 1,000,000 rows/s, vs_copy <= 1.5, peak RSS < 4 GB.
A missed budget is reported, not an error: the exit status is 0 unless a step crashes.

``DIR`` defaults to ``bench/out/ingest`` (git-ignored). The sources are kept there for reuse; the
lake and ``floor.parquet`` are deleted at the end unless ``--keep``. GB = 10**9 bytes. ``--verbose``
shows the ingest's own step timings (stderr).

Other work on the machine inflates wall times: each child's CPU seconds, the load average and (Linux
PSI) the share of the child's wall time in which some task waited for a CPU are printed above the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BUDGET_ROWS_PER_S = 1_000_000
BUDGET_VS_COPY = 1.5
BUDGET_PEAK_RSS_GB = 4.0

MANIFEST = ".mermaid-demo.json"
MERMAID_FILE = "mermaid_confirmed_annotations.parquet"
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "ingest"
_RESULT_PREFIX = "BENCH_RESULT "


# ----------------------------------------------------------------------------------------------------
# Child processes (run as `python bench/ingest.py --child ingest|floor --workdir DIR`)
# ----------------------------------------------------------------------------------------------------


def _peak_rss_bytes() -> int:
    """This process's peak RSS (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(result: dict) -> None:
    print(_RESULT_PREFIX + json.dumps(result), flush=True)


def _child_ingest(workdir: Path, verbose: bool) -> None:
    from mermaid_data.ingest import ingest
    from mermaid_data.lake import Lake
    from mermaid_data.progress import LineProgress, SilentProgress

    sources = workdir / "sources"
    lake = Lake.open(str(workdir / "lake"))
    started, cpu = time.perf_counter(), _cpu_s()
    report = ingest(
        lake,
        mermaid_uri=str(sources / "mermaid" / MERMAID_FILE),
        coralnet_uri=str(sources / "coralnet"),
        api=str(sources / "api"),
        progress=LineProgress() if verbose else SilentProgress(),
    )
    wall = time.perf_counter() - started
    _emit(
        {
            "wall_s": wall,
            "cpu_s": _cpu_s() - cpu,
            "peak_rss_bytes": _peak_rss_bytes(),
            "rows": int(report.summary.get("annotations", 0)),
            "summary": report.summary,
            "versions": report.versions_written,
        }
    )


def _child_floor(workdir: Path) -> None:
    import duckdb

    sources = workdir / "sources"
    csvs = sorted(str(p) for p in (sources / "coralnet").glob("s*/annotations.csv"))
    parquet = str(sources / "mermaid" / MERMAID_FILE)
    out = str(workdir / "floor.parquet")

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    query = (
        f"COPY (SELECT * FROM read_csv([{', '.join(lit(c) for c in csvs)}], union_by_name = true) "
        f"UNION ALL BY NAME SELECT * FROM read_parquet({lit(parquet)})) TO {lit(out)} (FORMAT parquet)"
    )
    con = duckdb.connect()  # DuckDB defaults: all cores, default memory limit, insertion order kept
    started, cpu = time.perf_counter(), _cpu_s()
    con.execute(query)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    rows = con.execute(f"SELECT count(*) FROM read_parquet({lit(out)})").fetchone()[0]
    con.close()
    _emit(
        {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_bytes": _peak_rss_bytes(),
            "rows": int(rows),
            "files": len(csvs) + 1,
        }
    )


def _cpu_stall_us() -> int | None:
    """Linux PSI: total microseconds in which some runnable task waited for a CPU (None if unavailable)."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as handle:
            some = handle.readline().split()
        return int(some[-1].split("=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def _run_child(kind: str, workdir: Path, verbose: bool) -> dict:
    """Run one measured step in a fresh interpreter; return its JSON result plus the process wall time."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--workdir", str(workdir)]
    if verbose:
        cmd.append("--verbose")
    stall = _cpu_stall_us()
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
    process_wall = time.perf_counter() - started
    stall_after = _cpu_stall_us()
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f"bench: the {kind} step failed (exit status {proc.returncode})")
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    result["process_wall_s"] = process_wall
    result["cpu_stall_share"] = (
        (stall_after - stall) / 1e6 / process_wall if stall is not None and stall_after is not None else None
    )
    return result


# ----------------------------------------------------------------------------------------------------
# Parent
# ----------------------------------------------------------------------------------------------------


def _ensure_sources(sources: Path, annotations: int, seed: int) -> dict:
    """Generate the demo sources unless a complete demo of the same size and seed is already there."""
    manifest_path = sources / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            manifest = {}
        if (
            manifest.get("complete")
            and manifest.get("target_annotations") == annotations
            and manifest.get("seed") == seed
            and manifest.get("features") is False
        ):
            print(f"sources: reusing {sources} ({manifest['total_rows']:,} rows, seed {seed})", flush=True)
            return manifest
    from mermaid_data.demo import generate_demo_sources

    print(f"sources: generating {annotations:,} annotations (seed {seed}) under {sources} ...", flush=True)
    started = time.perf_counter()
    summary = generate_demo_sources(sources, annotations=annotations, features=False, seed=seed)
    print(
        f"sources: {summary.total_rows:,} rows ({summary.mermaid_rows:,} MERMAID, {summary.coralnet_rows:,} "
        f"CoralNet in {summary.coralnet_sources:,} sources) in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    )


def _load() -> str:
    """The 1-minute load average against the core count: other work on the machine skews wall times."""
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except OSError:
        return "load average unknown"


def _contention(result: dict) -> str:
    share = result.get("cpu_stall_share")
    if share is None:
        return ""
    return f"; tasks waited for a CPU during {100 * share:.0f}% of it (PSI)"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, help="annotation rows to generate (e.g. 20000000)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"default {DEFAULT_WORKDIR}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the lake and floor.parquet afterwards")
    parser.add_argument("--verbose", action="store_true", help="ingest step timings on stderr")
    parser.add_argument("--child", choices=("ingest", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()

    if args.child == "ingest":
        _child_ingest(workdir, args.verbose)
        return 0
    if args.child == "floor":
        _child_floor(workdir)
        return 0
    if args.annotations is None:
        parser.error("--annotations N is required")

    workdir.mkdir(parents=True, exist_ok=True)
    manifest = _ensure_sources(workdir / "sources", args.annotations, args.seed)
    lake_dir, floor_file = workdir / "lake", workdir / "floor.parquet"
    _remove(lake_dir)
    _remove(floor_file)
    print(f"machine: {_load()}", flush=True)

    try:
        print("ingest: running in a child process ...", flush=True)
        ing = _run_child("ingest", workdir, args.verbose)
        print(
            f"ingest: {ing['rows']:,} rows, ingest() {ing['wall_s']:.2f}s wall, {ing['cpu_s']:.1f}s CPU "
            f"(process incl. interpreter start and imports {ing['process_wall_s']:.2f}s); {_load()}{_contention(ing)}",
            flush=True,
        )
        print("floor: bare DuckDB COPY in a child process ...", flush=True)
        floor = _run_child("floor", workdir, False)
        print(
            f"floor: {floor['rows']:,} rows from {floor['files']:,} files, COPY {floor['wall_s']:.2f}s wall, "
            f"{floor['cpu_s']:.1f}s CPU (process {floor['process_wall_s']:.2f}s), "
            f"peak RSS {floor['peak_rss_bytes'] / 1e9:.2f} GB; {_load()}{_contention(floor)}",
            flush=True,
        )
    finally:
        if not args.keep:
            _remove(lake_dir)
            _remove(floor_file)

    expected = int(manifest.get("total_rows", 0))
    if ing["rows"] != expected or floor["rows"] != expected:
        print(
            f"warning: the demo has {expected:,} rows; ingest wrote {ing['rows']:,}, COPY {floor['rows']:,}"
        )

    rows = ing["rows"]
    rows_per_s = rows / ing["wall_s"]
    peak_gb = ing["peak_rss_bytes"] / 1e9
    vs_copy = ing["wall_s"] / floor["wall_s"]
    print()
    print(
        _table(
            [
                ["", "rows", "ingest wall s", "rows/s", "peak RSS GB", "copy wall s", "ratio"],
                [
                    "measured",
                    f"{rows:,}",
                    f"{ing['wall_s']:.2f}",
                    f"{rows_per_s:,.0f}",
                    f"{peak_gb:.2f}",
                    f"{floor['wall_s']:.2f}",
                    f"{vs_copy:.2f}",
                ],
                [
                    "budget",
                    "",
                    "",
                    f">= {BUDGET_ROWS_PER_S:,}",
                    f"< {BUDGET_PEAK_RSS_GB:g}",
                    "",
                    f"<= {BUDGET_VS_COPY:g}",
                ],
                [
                    "result",
                    "",
                    "",
                    _verdict(rows_per_s >= BUDGET_ROWS_PER_S),
                    _verdict(peak_gb < BUDGET_PEAK_RSS_GB),
                    "",
                    _verdict(vs_copy <= BUDGET_VS_COPY),
                ],
            ]
        )
    )
    print(f"rows_per_s={rows_per_s:.0f} vs_copy={vs_copy:.2f} peak_rss_gb={peak_gb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
