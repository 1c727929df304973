"""The lake's writer lock and leases, locally (flock) and on S3 (conditional puts): a live holder makes a second
writer fail in one line with nothing changed; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mermaid_data import locks, storage
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.errors import LakeBusyError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.lifecycle import vacuum
from typer.testing import CliRunner

from tests.support.s3 import S3Server


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> Path:
    lake_dir = tmp_path_factory.mktemp("locks") / "lake"
    ingest_demo(lake_dir, demo_sources.dest)
    return lake_dir


def ingest_args(lake: str, demo_sources: DemoSummary) -> list[str]:
    src = demo_sources.dest
    return ["ingest", "--lake", lake, "--mermaid", str(src / "mermaid" / "mermaid_confirmed_annotations.parquet"),
            "--coralnet", str(src / "coralnet"), "--api", str(src / "api")]


def assert_busy(result, *, holder: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    line = errors[0]
    assert "another writer is active" in line and holder in line and "changed nothing" in line, line
    return line


def check_writer_lock(lake_uri: str, demo_sources: DemoSummary) -> None:
    lake = Lake.open(lake_uri)
    before = lake.raw_versions()
    with locks.exclusive(lake.uri, "writer", "test holder"):
        for args in (ingest_args(lake_uri, demo_sources), ["vacuum", "--lake", lake_uri]):
            assert_busy(CliRunner().invoke(app, args, env={"COLUMNS": "250"}), holder="`test holder`")
        with pytest.raises(LakeBusyError), locks.exclusive(lake.uri, "writer", "second"):
            pass
    assert lake.raw_versions() == before
    result = CliRunner().invoke(app, ["vacuum", "--lake", lake_uri])
    assert result.exit_code == 0, result.output


def test_a_live_writer_makes_ingest_and_vacuum_fail_in_one_line(local_lake: Path, demo_sources: DemoSummary) -> None:
    """Bug pinned: two ingests at once, or vacuum during an ingest, ended in a raw DeltaError or
    CommitFailedError. A second writer fails at once, saying who holds the lake, and changes nothing."""
    check_writer_lock(str(local_lake), demo_sources)
    assert not (local_lake / "_locks" / "writer.lock").exists()


def test_a_live_writer_on_s3(s3: S3Server, s3_bucket, demo_sources: DemoSummary, ingest_demo) -> None:
    bucket = s3_bucket("locks")
    uri = f"s3://{bucket}/lake"
    ingest_demo(uri, demo_sources.dest)
    check_writer_lock(uri, demo_sources)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="lake/_locks/").get("Contents", [])]
    assert keys == []

    # a dead create's in-place objects are reclaimed by vacuum; a live create's are not
    lake = storage.Uri.parse(uri)
    dead = {"owner": {**locks.Owner.me("snapshot create").__dict__, "pid": dead_pid()}, "renewed_at": time.time(),
            "content": {"kind": "create", "snapshot_id": "snap-dead", "versions": {}}}
    storage.write_bytes(lake.join("_locks", "inflight", "dead.json"), json.dumps(dead).encode())
    storage.write_bytes(lake.join("snapshots", "snap-dead", "rows.parquet"), b"half written")
    with locks.lease(lake, "snapshot create", kind="create", snapshot_id="snap-live", versions={}):
        storage.write_bytes(lake.join("snapshots", "snap-live", "rows.parquet"), b"being written")
        removed = vacuum(Lake.open(uri))
        assert removed["snapshots (unfinished)"] == 1
        assert not storage.exists(lake.join("snapshots", "snap-dead", "rows.parquet"))
        assert not storage.exists(lake.join("_locks", "inflight", "dead.json"))
        assert storage.exists(lake.join("snapshots", "snap-live", "rows.parquet"))


def test_a_dead_holders_lock_is_taken_over_on_s3(s3: S3Server, s3_bucket) -> None:
    """On S3 the kernel cannot release a lock: a lease whose process is gone (dead here, or not renewed for
    LEASE_TTL_S elsewhere) is taken over; a fresh lease from another machine is respected."""
    lake = storage.Uri.parse(f"s3://{s3_bucket('stale')}/lake")
    key = lake.join("_locks", "writer.json")
    owner = locks.Owner.me("killed ingest")

    def plant(**changes) -> None:
        record = {"owner": {**owner.__dict__, **changes.pop("owner", {})}, "renewed_at": time.time(), **changes}
        storage.write_bytes(key, json.dumps(record).encode())

    plant(owner={"pid": dead_pid()})
    with locks.exclusive(lake, "writer", "ingest") as held:
        assert held.previous is not None and held.previous.command == "killed ingest"
    plant(owner={"host": "another-machine"}, renewed_at=time.time() - locks.LEASE_TTL_S - 5)
    with locks.exclusive(lake, "writer", "ingest") as held:
        assert held.previous.host == "another-machine"
    plant(owner={"host": "another-machine"})
    with pytest.raises(LakeBusyError, match="another-machine"), locks.exclusive(lake, "writer", "ingest"):
        pass


def test_leases_tell_live_from_dead(tmp_path: Path, s3: S3Server, s3_bucket) -> None:
    """A lease of this process is live; one whose process died (flock released / dead pid) is stale."""
    for lake in (storage.Uri.parse(str(tmp_path / "lake")), storage.Uri.parse(f"s3://{s3_bucket('lease')}/lake")):
        with locks.lease(lake, "snapshot create", snapshot_id="snap-1", versions={"annotations": 1}) as mine:
            live, stale = locks.leases(lake)
            assert [held.token for held in live] == [mine.token] and not stale
            assert live[0].content["versions"] == {"annotations": 1}
        assert locks.leases(lake) == ([], [])
    lake = storage.Uri.parse(str(tmp_path / "lake"))
    script = ("import sys, os; from mermaid_data import locks, storage\n"
              "with locks.lease(storage.Uri.parse(sys.argv[1]), 'killed'):\n"
              "    print('ready', flush=True); os._exit(0)\n")  # dies without releasing (like kill -9)
    done = subprocess.run([sys.executable, "-c", script, str(lake.key)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ready"
    live, stale = locks.leases(lake)
    assert not live and len(stale) == 1 and stale[0].owner.command == "killed"
    stale[0].remove()
    assert locks.leases(lake) == ([], [])
    shutil.rmtree(tmp_path / "lake")
