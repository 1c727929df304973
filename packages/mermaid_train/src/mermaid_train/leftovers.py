"""What a killed trainer leaves behind, and reclaiming it — only what a dead process left.

Every scratch folder the trainer writes records its owner (``owner.json``: pid, host, boot id and the
process's start time, ``mermaid_data.locks.Owner``) as soon as it exists:

- ``<cache_dir>/packed/<snapshot>/.tmp-*``: a pack being written (``features.pack``);
- ``<temp dir>/mermaid-train-*``: ``MLflowTrainingRunner``'s run folder until it is logged;
- ``<runs_dir>/.<run name>.partial``: a run folder being written (``TrainingRunner``).

``clean`` removes those whose owner is dead (its pid is gone, or another process has it now, or the
machine rebooted since); a live process's folder is never touched, nor one of another machine. A folder
without an owner record (written by an older version, or killed in the microseconds between creating it
and recording its owner) is removed once it is older than ``OWNERLESS_AGE_S``. The RUNNING MLflow runs of
dead trainers are marked FAILED by ``tracking.mlflow.fail_orphaned_runs``. The next run of the trainer
calls ``clean``; ``mermaid-train cleanup`` does it on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mermaid_data.locks import Owner

OWNER_FILE = "owner.json"
SCRATCH_PREFIX = "mermaid-train-"
PACK_SCRATCH_PREFIX = ".tmp-"
PARTIAL_SUFFIX = ".partial"
#: A leftover without an owner record is removed once this old (seconds since it last changed).
OWNERLESS_AGE_S = 3600.0


def write_owner(folder: Path, command: str) -> None:
    """Record this process as the owner of ``folder`` (call right after creating it)."""
    owner = Owner.me(command)
    (Path(folder) / OWNER_FILE).write_text(json.dumps(owner.__dict__), encoding="utf-8")


def owner_of(folder: Path) -> Owner | None:
    try:
        return Owner.from_dict(json.loads((Path(folder) / OWNER_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def is_dead(owner: Owner) -> bool:
    """True when ``owner`` is certainly not running: a dead pid of this machine, or from before its last boot."""
    alive = owner.alive_here()
    if alive is not None:
        return not alive
    return owner.host == socket.gethostname() and owner.boot_id != Owner.me("").boot_id


def _reclaimable(folder: Path, now: float) -> bool:
    owner = owner_of(folder)
    if owner is not None:
        return is_dead(owner)
    try:
        return now - folder.stat().st_mtime > OWNERLESS_AGE_S
    except OSError:
        return False


@dataclass(frozen=True)
class CleanupReport:
    """What ``clean`` removed (folders and their bytes), left alone (a live owner), and runs it failed."""

    removed: list[Path] = field(default_factory=list)
    removed_bytes: int = 0
    kept_live: list[Path] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)  # MLflow run IDs marked FAILED

    def lines(self) -> list[str]:
        out = [f"removed {p} (left by a dead process)" for p in self.removed]
        out += [f"marked MLflow run {r} FAILED (its trainer died while logging)" for r in self.failed_runs]
        return out


def candidates(cache_dir: Path | None = None, runs_dir: Path | None = None,
               temp_dir: Path | None = None) -> list[Path]:
    """Every scratch folder of the kinds above under the given places (dead or alive)."""
    found: list[Path] = []
    if cache_dir is not None and (Path(cache_dir) / "packed").is_dir():
        found += sorted(p for p in (Path(cache_dir) / "packed").glob(f"*/{PACK_SCRATCH_PREFIX}*") if p.is_dir())
    temp = Path(temp_dir or tempfile.gettempdir())
    if temp.is_dir():
        found += sorted(p for p in temp.glob(f"{SCRATCH_PREFIX}*") if p.is_dir())
    if runs_dir is not None and Path(runs_dir).is_dir():
        found += sorted(p for p in Path(runs_dir).glob(f".*{PARTIAL_SUFFIX}") if p.is_dir())
    return found


def clean(cache_dir: Path | None = None, runs_dir: Path | None = None, temp_dir: Path | None = None) -> CleanupReport:
    """Remove the scratch folders dead processes left (module docstring); never a live process's."""
    now = time.time()
    removed, live, size = [], [], 0
    for folder in candidates(cache_dir, runs_dir, temp_dir):
        if not _reclaimable(folder, now):
            live.append(folder)
            continue
        bytes_here = _size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            size += bytes_here
    return CleanupReport(removed, size, live)


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
