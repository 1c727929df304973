"""A read-only lake and a full disk: one line naming the path and the fix, and the lake exactly as it was.

Uses real file systems: each case runs the installed ``mermaid-data`` inside
``unshare --user --map-root-user --mount`` (util-linux) on a small tmpfs mounted in that private mount
namespace: remounted read-only for EROFS, sized too small for the write for ENOSPC. The mount
disappears with the process. Where user namespaces or mounts are not allowed the tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake

from tests.support.cli import BIN, assert_names_fix, one_line_error

GOOD_CSV = "Image ID,Row,Column,Label ID\n1,10,20,82\n1,11,21,82\n2,12,22,83\n"


def _unshare_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "needs `unshare` (util-linux) to mount a private tmpfs"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True, text=True, check=False, timeout=30,
    )
    if probe.returncode != 0:
        return f"needs user namespaces and tmpfs mounts (`unshare --user --map-root-user --mount`): {probe.stderr.strip()}"
    return None


PROBLEM = _unshare_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    logs_before: list[str]
    logs_after: list[str]
    listing: list[str]  # every path on the tmpfs after the command (relative)
    count_after: str  # `SELECT count(*) FROM annotations` on the lake after the command


SCRIPT = r"""
set -eu
mount -t tmpfs -o size="$SIZE" tmpfs "$MNT"
cp -a "$LAKE" "$MNT/lake"
logs() { (cd "$MNT/lake" && find . -path '*_delta_log*' -type f | sort); }
logs > "$OUT/logs_before"
case "$MODE" in
  readonly) mount -o remount,ro "$MNT" ;;
  full) dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true ;;
  small) ;;
esac
set +e
"$BIN/mermaid-data" "$@" > "$OUT/stdout" 2> "$OUT/stderr"
echo $? > "$OUT/rc"
set -e
logs > "$OUT/logs_after"
(cd "$MNT" && find . -mindepth 1 | sort) > "$OUT/listing"
rm -f "$MNT/filler" 2>/dev/null || true
"$BIN/mermaid-data" sql "SELECT count(*) AS n FROM annotations" --lake "$MNT/lake" --format csv > "$OUT/count" 2>&1 || true
"""


def run_on_tmpfs(tmp_path: Path, lake: Path, mode: str, size: str, *args: str) -> Outcome:
    """Copy ``lake`` onto a fresh tmpfs of ``size`` at MNT, apply ``mode``, run ``mermaid-data args``.

    ``MNT`` in ``args`` is replaced by the mount point.
    """
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir(parents=True)
    out.mkdir()
    env = {**os.environ, "MNT": str(mnt), "OUT": str(out), "LAKE": str(lake), "MODE": mode, "SIZE": size,
           "BIN": str(BIN), "COLUMNS": "250", "MERMAID_DEBUG": ""}
    argv = [a.replace("MNT", str(mnt)) for a in args]
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", SCRIPT, "bash", *argv],
                          capture_output=True, text=True, check=False, env=env, timeout=300)
    assert done.returncode == 0, done.stderr

    def read(name: str) -> str:
        return (out / name).read_text()

    return Outcome(int(read("rc")), read("stdout"), read("stderr"), read("logs_before").split(),
                   read("logs_after").split(), read("listing").split(), read("count").strip())


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """s1 (3 rows, in the lake) and s2 (200,000 rows, not yet ingested: about 3 MB of Parquet)."""
    root = tmp_path_factory.mktemp("disk-src")
    (root / "s1").mkdir()
    (root / "s1" / "annotations.csv").write_text(GOOD_CSV)
    (root / "s2").mkdir()
    rows = "".join(f"{(i * 2654435761) % 1000003},{(i * 40503) % 65521},{(i * 9973) % 65519},"
                   f"{(i * 2246822519) % 1000000007}\n" for i in range(200_000))  # scrambled: compresses badly
    (root / "s2" / "annotations.csv").write_text("Image ID,Row,Column,Label ID\n" + rows)
    return root


@pytest.fixture(scope="module")
def lake(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake holding only s1 (3 rows)."""
    only_s1 = tmp_path_factory.mktemp("disk-only-s1")
    shutil.copytree(sources / "s1", only_s1 / "s1")
    path = tmp_path_factory.mktemp("disk-lake") / "lake"
    ingest(Lake.open(str(path)), mermaid_uri=None, coralnet_uri=str(only_s1), api=None)
    return path


def ingest_args(sources: Path) -> list[str]:
    return ["ingest", "--lake", "MNT/lake", "--mermaid", "none", "--api", "none", "--coralnet", str(sources)]


def test_ingest_into_a_read_only_lake(tmp_path: Path, lake: Path, sources: Path) -> None:
    """Bug pinned: ingest into a read-only lake read every source, then `OSError: [Errno 30]` (a traceback)."""
    outcome = run_on_tmpfs(tmp_path, lake, "readonly", "4m", *ingest_args(sources))
    line = one_line_error(outcome)
    assert "read-only file system" in line and str(tmp_path / "mnt" / "lake") in line
    assert_names_fix(line)
    assert "[mermaid]" not in outcome.stderr, "the lake must be checked before any source is read"
    assert outcome.logs_after == outcome.logs_before
    assert outcome.count_after.splitlines() == ["n", "3"]


@pytest.mark.parametrize(
    "args",
    [["snapshot", "create", "--lake", "MNT/lake"], ["vacuum", "--lake", "MNT/lake"]],
    ids=["snapshot create", "vacuum"],
)
def test_writes_to_a_read_only_lake(tmp_path: Path, lake: Path, args: list[str]) -> None:
    """Bug pinned: `snapshot create` on a read-only lake ended in `OSError: [Errno 30]` (a traceback)."""
    outcome = run_on_tmpfs(tmp_path, lake, "readonly", "4m", *args)
    line = one_line_error(outcome)
    assert "read-only file system" in line
    assert outcome.logs_after == outcome.logs_before


def test_reading_a_read_only_lake_works(tmp_path: Path, lake: Path) -> None:
    """A lake on a read-only disk (a shared copy) is still queried."""
    outcome = run_on_tmpfs(tmp_path, lake, "readonly", "4m", "sql", "SELECT count(*) AS n FROM annotations",
                           "--lake", "MNT/lake", "--format", "csv")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.splitlines() == ["n", "3"]


def test_ingest_onto_a_full_disk(tmp_path: Path, lake: Path, sources: Path) -> None:
    """Bug pinned: a full disk during ingest ended in a raw OSError / DeltaError traceback.

    The tmpfs holds the lake with 256 KiB to spare: the new source's Parquet does not fit.
    """
    used_kib = int(subprocess.run(["du", "-sk", str(lake)], capture_output=True, text=True, check=False).stdout.split()[0])
    outcome = run_on_tmpfs(tmp_path, lake, "small", f"{used_kib + 256}k", *ingest_args(sources))
    line = one_line_error(outcome)
    assert line.startswith(f"error: {tmp_path / 'mnt' / 'lake'}") and "disk full" in line, line
    assert_names_fix(line)
    assert outcome.logs_after == outcome.logs_before, "a failed ingest must commit nothing"
    assert outcome.count_after.splitlines() == ["n", "3"]


def test_sql_output_onto_a_full_disk(tmp_path: Path, lake: Path) -> None:
    """Bug pinned: `sql --output` on a full disk: a traceback and a truncated file left behind."""
    for name in ("out.csv", "out.parquet"):
        outcome = run_on_tmpfs(tmp_path / name, lake, "full", "1m", "sql", "SELECT * FROM annotations",
                               "--lake", "MNT/lake", "--output", f"MNT/{name}")
        line = one_line_error(outcome)
        assert line.startswith(f"error: {tmp_path / name / 'mnt' / name}: disk full"), line
        assert not [p for p in outcome.listing if p.startswith(("./out", "./.out"))], outcome.listing


def test_snapshot_create_onto_a_full_disk(tmp_path: Path, lake: Path) -> None:
    """Bug pinned: `snapshot create` on a full disk printed a traceback."""
    outcome = run_on_tmpfs(tmp_path, lake, "full", "1m", "snapshot", "create", "--lake", "MNT/lake")
    line = one_line_error(outcome)
    assert str(tmp_path / "mnt" / "lake") in line and "disk full" in line, line
    assert outcome.logs_after == outcome.logs_before
    assert not [p for p in outcome.listing if p.startswith("./lake/snapshots/snap-")], outcome.listing
