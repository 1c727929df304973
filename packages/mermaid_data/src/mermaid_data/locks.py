"""Who is using the lake: exclusive locks and in-flight leases, with liveness that survives ``kill -9``.

- ``exclusive(lake, "writer", ...)``: one ingest or vacuum at a time; ``exclusive(lake, "catalog", ...)``:
  one appender to the ``snapshots`` table at a time (held for a moment; others wait).
- ``lease(lake, ...)``: a snapshot create or rebuild in flight records the table versions it reads and
  the scratch folder it writes, so ``vacuum`` keeps those files and only reclaims a dead process's
  leftovers.

Local lakes use ``flock(2)`` on files under ``<lake>/_locks/``: the kernel drops a lock when its process
dies (even ``kill -9``), so liveness never depends on clocks or pid reuse. S3 lakes use objects under
``<lake>/_locks/`` created with ``If-None-Match: *`` and renewed by a heartbeat thread every
``HEARTBEAT_S``; one is stale when its owner is a dead process on this machine (pid, boot and process
start time checked), or when it was not renewed for ``LEASE_TTL_S`` (another machine). A stale lock is
taken over with ``If-Match`` on the stale object's ETag (compare-and-swap), so two takers cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mermaid_data import storage
from mermaid_data.errors import LakeBusyError

LOCKS_DIR = "_locks"
INFLIGHT_DIR = "inflight"
#: S3 only: a lease not renewed for this long belongs to a process that is gone.
LEASE_TTL_S = 120.0
HEARTBEAT_S = 20.0
_POLL_S = 0.05


# --------------------------------------------------------------------------------------------------
# owners and liveness
# --------------------------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or ''."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Owner:
    """The process holding a lock or lease."""

    token: str
    pid: int
    host: str
    boot_id: str
    started: str
    command: str
    since: str

    @classmethod
    def me(cls, command: str) -> Owner:
        pid = os.getpid()
        return cls(uuid.uuid4().hex[:16], pid, socket.gethostname(), _boot_id(), _start_ticks(pid), command,
                   datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, data: dict) -> Owner:
        return cls(**{name: data.get(name, "") for name in cls.__dataclass_fields__})

    def alive_here(self) -> bool | None:
        """True/False for a process of this machine (same host and boot); None when it runs elsewhere."""
        if self.host != socket.gethostname() or self.boot_id != _boot_id():
            return None
        try:
            os.kill(int(self.pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, under another user
        return not self.started or _start_ticks(int(self.pid)) == self.started

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {self.since})"


def _busy(lake: storage.Uri, holder: Owner | None, command: str) -> LakeBusyError:
    who = holder.describe() if holder else "another process"
    after = "" if not lake.is_s3 else f" (a lock whose process is gone expires after {LEASE_TTL_S:.0f} s)"
    return LakeBusyError(
        f"another writer is active: {who}; `{command}` changed nothing",
        where=str(lake),
        fix=f"wait for it to finish, then run `{command}` again{after}",
    )


def _lock_uri(lake: storage.Uri, *parts: str) -> storage.Uri:
    return lake.join(LOCKS_DIR, *parts)


# --------------------------------------------------------------------------------------------------
# S3 objects with conditional writes
# --------------------------------------------------------------------------------------------------


def _s3_put(uri: storage.Uri, body: bytes, **condition: str) -> str | None:
    """PUT with ``IfNoneMatch``/``IfMatch``; the new ETag, or None when the condition failed."""
    from botocore.exceptions import ClientError

    try:
        reply = storage.s3_client().put_object(Bucket=uri.bucket, Key=uri.key, Body=body, **condition)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict",
                                                         "NoSuchKey", "404"):
            return None
        raise
    return reply["ETag"]


def _s3_get(uri: storage.Uri) -> tuple[dict, str] | None:
    from botocore.exceptions import ClientError

    try:
        reply = storage.s3_client().get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    body = reply["Body"].read()
    try:
        return json.loads(body), reply["ETag"]
    except ValueError:
        return {}, reply["ETag"]


def _s3_delete(uri: storage.Uri, etag: str | None) -> None:
    from botocore.exceptions import ClientError

    kwargs = {"IfMatch": etag} if etag else {}
    with contextlib.suppress(ClientError):
        storage.s3_client().delete_object(Bucket=uri.bucket, Key=uri.key, **kwargs)


def _stale(record: dict) -> bool:
    """An S3 lock/lease record whose owner is gone (dead here, or not renewed in time elsewhere)."""
    if not record.get("owner"):
        return True
    alive = Owner.from_dict(record["owner"]).alive_here()
    if alive is not None:
        return not alive
    return time.time() - float(record.get("renewed_at", 0)) > LEASE_TTL_S


class _Heartbeat:
    """Renews an S3 object every ``HEARTBEAT_S`` with If-Match on its own ETag."""

    def __init__(self, uri: storage.Uri, record: dict, etag: str) -> None:
        self.uri, self.record, self.etag = uri, record, etag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.record["renewed_at"] = time.time()
            try:
                etag = _s3_put(self.uri, json.dumps(self.record).encode(), IfMatch=self.etag)
            except Exception:  # noqa: BLE001, S112 - a network hiccup: try again at the next beat
                continue
            if etag is None:  # taken over: this process was presumed dead
                return
            self.etag = etag

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.etag


# --------------------------------------------------------------------------------------------------
# exclusive locks
# --------------------------------------------------------------------------------------------------


@dataclass
class Held:
    """An exclusive lock this process holds. ``previous`` is the owner that died holding it, if any."""

    owner: Owner
    previous: Owner | None
    _release: object = field(repr=False, default=None)


def _read_fd(fd: int) -> Owner | None:
    try:
        data = json.loads(os.pread(fd, 1 << 16, 0) or b"null")
    except ValueError:
        return None
    return Owner.from_dict(data["owner"]) if isinstance(data, dict) and data.get("owner") else None


def _acquire_local(path: Path, owner: Owner, deadline: float, lake: storage.Uri) -> tuple[int, Owner | None]:
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another process removed the empty _locks/ just now
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_fd(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise _busy(lake, holder, owner.command) from None
            time.sleep(_POLL_S)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # released (and unlinked) between our open and our flock: try the new file
            os.close(fd)
            continue
        previous = _read_fd(fd)  # a clean release unlinks the file: content left means its owner died
        data = json.dumps({"owner": asdict(owner)}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return fd, previous


def _acquire_s3(uri: storage.Uri, owner: Owner, deadline: float, lake: storage.Uri) -> tuple[_Heartbeat, Owner | None]:
    while True:
        record = {"owner": asdict(owner), "renewed_at": time.time()}
        body = json.dumps(record).encode()
        etag = _s3_put(uri, body, IfNoneMatch="*")
        if etag is not None:
            return _Heartbeat(uri, record, etag), None
        found = _s3_get(uri)
        if found is None:
            continue  # released meanwhile
        held, held_etag = found
        if _stale(held):
            etag = _s3_put(uri, body, IfMatch=held_etag)
            if etag is not None:
                previous = Owner.from_dict(held["owner"]) if held.get("owner") else None
                return _Heartbeat(uri, record, etag), previous
            continue
        if time.monotonic() >= deadline:
            raise _busy(lake, Owner.from_dict(held["owner"]), owner.command)
        time.sleep(max(_POLL_S, 0.25))


@contextlib.contextmanager
def exclusive(lake: storage.Uri, name: str, command: str, *, wait_s: float = 0.0) -> Iterator[Held]:
    """Hold lock ``name`` of the lake while the block runs; ``LakeBusyError`` if a live process holds it
    for longer than ``wait_s``."""
    owner = Owner.me(command)
    deadline = time.monotonic() + wait_s
    if lake.is_s3:
        uri = _lock_uri(lake, f"{name}.json")
        beat, previous = _acquire_s3(uri, owner, deadline, lake)
        try:
            yield Held(owner, previous)
        finally:
            _s3_delete(uri, beat.stop())
        return
    path = Path(_lock_uri(lake, f"{name}.lock").key)
    fd, previous = _acquire_local(path, owner, deadline, lake)
    try:
        yield Held(owner, previous)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
        with contextlib.suppress(OSError):  # leave no empty _locks/ behind (e.g. after a failed first ingest)
            path.parent.rmdir()


# --------------------------------------------------------------------------------------------------
# in-flight leases
# --------------------------------------------------------------------------------------------------


@dataclass
class Lease:
    """A process's record of what it reads and writes: ``content`` (JSON-able) and its owner."""

    owner: Owner
    content: dict

    @property
    def token(self) -> str:
        return self.owner.token


@dataclass
class StaleLease:
    """A dead process's lease: what it was doing, and how to delete it once its leftovers are gone."""

    content: dict
    owner: Owner | None
    _uri: storage.Uri
    _etag: str | None = None
    _fd: int | None = None

    def remove(self) -> None:
        if self._uri.is_s3:
            _s3_delete(self._uri, self._etag)
            return
        with contextlib.suppress(FileNotFoundError):
            Path(self._uri.key).unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """Leave it in place (not reclaimed this time)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def lease(lake: storage.Uri, command: str, **content) -> Iterator[Lease]:
    """Record ``content`` as this process's in-flight lease while the block runs."""
    owner = Owner.me(command)
    record = {"owner": asdict(owner), "content": content, "renewed_at": time.time()}
    body = json.dumps(record, sort_keys=True).encode()
    uri = _lock_uri(lake, INFLIGHT_DIR, f"{owner.token}.json")
    if lake.is_s3:
        etag = _s3_put(uri, body)
        beat = _Heartbeat(uri, record, etag)
        try:
            yield Lease(owner, content)
        finally:
            _s3_delete(uri, beat.stop())
        return
    final = Path(uri.key)
    scratch = final.with_name(f".{owner.token}.tmp")
    for _attempt in range(10):
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileNotFoundError:  # another process removed the empty _locks/ just now
            continue
    else:  # pragma: no cover - the folder vanished ten times in a row
        raise FileNotFoundError(str(final.parent))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends: checkers see it alive
        os.write(fd, body)
        os.fsync(fd)
        os.rename(scratch, final)  # only locked, complete leases ever carry a final name
        yield Lease(owner, content)
    finally:
        for path in (final, scratch):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(fd)


def leases(lake: storage.Uri) -> tuple[list[Lease], list[StaleLease]]:
    """Every in-flight lease of the lake: the live ones, and the stale ones (held for reclaiming:
    call ``remove()`` once their leftovers are deleted, or ``release()``)."""
    live: list[Lease] = []
    stale: list[StaleLease] = []
    folder = _lock_uri(lake, INFLIGHT_DIR)
    if lake.is_s3:
        for item in storage.list_prefix(folder, recursive=False):
            if not item.relative_key.endswith(".json"):
                continue
            uri = folder.join(item.relative_key)
            found = _s3_get(uri)
            if found is None:
                continue
            record, etag = found
            owner = Owner.from_dict(record["owner"]) if record.get("owner") else None
            if _stale(record):
                stale.append(StaleLease(record.get("content") or {}, owner, uri, _etag=etag))
            else:
                live.append(Lease(owner, record.get("content") or {}))
        return live, stale
    root = Path(folder.key)
    if not root.is_dir():
        return live, stale
    for path in sorted(root.glob("*.json")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read_record(fd)
            os.close(fd)
            if record is not None:
                live.append(Lease(Owner.from_dict(record["owner"]), record.get("content") or {}))
            continue
        record = _read_record(fd) or {}
        owner = Owner.from_dict(record["owner"]) if record.get("owner") else None
        stale.append(StaleLease(record.get("content") or {}, owner, storage.Uri.parse(str(path)), _fd=fd))
    # scratch files of leases whose process died before renaming them into place
    for path in root.glob(".*.tmp"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        stale.append(StaleLease({}, None, storage.Uri.parse(str(path)), _fd=fd))
    return live, stale


def _read_record(fd: int) -> dict | None:
    try:
        data = json.loads(os.pread(fd, 1 << 20, 0) or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("owner") else None
