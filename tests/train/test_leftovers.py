"""Which scratch folders `leftovers.clean` may remove: only a dead process's, judged by its owner record."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mermaid_data.locks import Owner
from mermaid_train import leftovers
from mermaid_train.leftovers import OWNER_FILE, OWNERLESS_AGE_S, clean, write_owner


def _owned(folder: Path, **changes: str | int) -> Path:
    """``folder`` with an owner record of this process, with ``changes`` applied to it."""
    folder.mkdir(parents=True)
    owner = dataclasses.replace(Owner.me("a trainer"), **changes)
    (folder / OWNER_FILE).write_text(json.dumps(owner.__dict__), encoding="utf-8")
    return folder


def _dead_pid() -> int:
    """The pid of a real process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def test_a_reused_pid_is_not_the_owner(tmp_path: Path) -> None:
    """Bug pinned: judged by pid alone, a folder whose owner died would be kept forever once another process
    got its pid, and a new process with the old pid would look like the owner. The start time decides."""
    reused = _owned(tmp_path / "packed" / "snap-1" / ".tmp-k-reused", started="1")  # our pid, another start
    mine = _owned(tmp_path / "packed" / "snap-1" / ".tmp-k-mine")
    report = clean(cache_dir=tmp_path, temp_dir=tmp_path / "no-temp")
    assert report.removed == [reused] and not reused.exists()
    assert report.kept_live == [mine] and (mine / OWNER_FILE).is_file()


def test_only_dead_owners_of_this_machine_are_reclaimed(tmp_path: Path) -> None:
    """Bug pinned: a killed trainer's `mermaid-train-*` temp folder and `.partial` run folder were never
    reclaimed; another machine's folder (a shared disk) must never be judged dead from here."""
    temp, runs = tmp_path / "temp", tmp_path / "runs"
    dead = [_owned(temp / "mermaid-train-dead", pid=_dead_pid()), _owned(runs / ".run-1.partial", pid=_dead_pid())]
    elsewhere = _owned(temp / "mermaid-train-elsewhere", pid=_dead_pid(), host="another-machine")
    rebooted = _owned(runs / ".run-2.partial", pid=os.getpid(), boot_id="an-earlier-boot")
    unrelated = temp / "somebody-else"  # not a trainer's folder at all
    unrelated.mkdir()
    report = clean(runs_dir=runs, temp_dir=temp)
    assert sorted(report.removed) == sorted([*dead, rebooted])
    assert not any(p.exists() for p in [*dead, rebooted])
    assert elsewhere.is_dir() and unrelated.is_dir() and report.kept_live == [elsewhere]
    assert [line for line in report.lines() if "dead process" in line] == [
        f"removed {p} (left by a dead process)" for p in report.removed]


def test_a_folder_without_owner_record_is_removed_only_when_old(tmp_path: Path) -> None:
    """Bug pinned: a folder killed before its owner was recorded would stay forever, or (if removed at
    once) a live process's folder could vanish in the moment between creating it and recording it."""
    fresh = tmp_path / "mermaid-train-fresh"
    old = tmp_path / "mermaid-train-old"
    for folder in (fresh, old):
        folder.mkdir()
        (folder / "classifier.pkl").write_bytes(b"x" * 100)
    past = time.time() - OWNERLESS_AGE_S - 60
    os.utime(old, (past, past))
    report = clean(temp_dir=tmp_path)
    assert report.removed == [old] and report.removed_bytes == 100
    assert fresh.is_dir() and report.kept_live == [fresh]


def test_write_owner_records_this_process(tmp_path: Path) -> None:
    """Bug pinned: an owner record that does not name this process (pid, boot, start) would let `clean`
    remove a live trainer's pack."""
    write_owner(tmp_path, "mermaid-train run")
    owner = leftovers.owner_of(tmp_path)
    assert owner is not None and owner.pid == os.getpid() and owner.alive_here() is True
    assert not leftovers.is_dead(owner)
