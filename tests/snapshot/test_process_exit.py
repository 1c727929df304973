"""A finished command exits 0: nothing native is left running when the interpreter shuts down."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec

EXISTS = textwrap.dedent(
    """
    import sys
    from mermaid_data import Lake
    from mermaid_data.snapshot import SnapshotSpec
    result = Lake.open(sys.argv[1]).create_snapshot(SnapshotSpec(annotation_limit=5, name="exit-test"))
    assert not result.created
    print("ok", flush=True)
    """
)


def test_snapshot_exists_path_exits_cleanly(golden_lake: Lake) -> None:
    """Bug pinned: the exists path read the `snapshots` table with deltalake's to_pyarrow_table(columns=...),
    which left a native reader thread that aborted the interpreter at exit ("terminate called without an
    active exception", exit status 134) after the answer was printed. Intermittent (3 of 4 runs here),
    hence several fresh processes that do nothing else."""
    for limit in (3, 4, 5, 6):  # several files in the `snapshots` table, as after a few creates
        golden_lake.create_snapshot(SnapshotSpec(annotation_limit=limit, name="exit-test"))
    for _ in range(4):
        done = subprocess.run([sys.executable, "-c", EXISTS, str(golden_lake.uri)],
                              check=False, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert done.stdout.strip() == "ok"
        assert "terminate called" not in done.stderr
