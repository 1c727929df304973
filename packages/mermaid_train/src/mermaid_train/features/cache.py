"""A download cache of feature files, shared across runs.

``FeatureCache`` copies each image's pyspacer ``ImageFeatures`` file (a local path or ``s3://``) once into
``<cache_dir>/<sha256(key)[:2]>/<sha256(key)>``, where the key is what the lake's ``features`` table pins
about the object: its URI, size and ETag (local files: size and mtime; a ``Pin``). An object replaced at
the source (re-ingested: ``features`` records its new size or ETag) therefore has a new key and is
fetched again, and an object that no longer is what the pin says (replaced since the lake recorded it)
is reported as changed, never cached under the pin. A cached copy of a local file keeps the source's
mtime (hard link, or a copy with its times), so a file rewritten in place is noticed too.

Many parallel requests (S3 latency, not bandwidth, bounds a fetch of small objects; ``workers``
defaults to the ``MERMAID_FEATURE_FETCH_WORKERS`` setting, 50, as upstream uses); a ``.part`` file
renamed into place (``os.replace``) only when complete, so an existing cache file is always whole and a
crashed run's leftover ``.part`` files are ignored. S3 requests use the one S3 configuration's client
(``mermaid_data.s3config``: credentials, endpoint, timeouts) with a single attempt each, since the cache
retries itself: a body cut short or a failed request is fetched again up to ``retries`` times; a missing
or changed object is reported, not retried. Local files are hard-linked when the cache is on the same
file system.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mermaid_data import storage
from mermaid_data.errors import SourceUnreachableError
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.s3config import s3_config

DEFAULT_FETCH_WORKERS = 50


@dataclass(frozen=True)
class Pin:
    """What the lake's ``features`` table records about one object: its size and ETag (local: size-mtime)."""

    size: int
    etag: str


class ChangedError(Exception):
    """The object at the URI is not the one the pin names (replaced at the source)."""


@dataclass(frozen=True)
class FetchReport:
    """What one ``FeatureCache.fetch`` did."""

    requested: int  # distinct URIs asked for
    fetched: int  # downloaded / linked / copied now
    cached: int  # already complete in the cache
    missing: list[str]  # feature URIs that could not be fetched (absent, or failing after the retries)
    errors: dict[str, str] = field(default_factory=dict)  # URI -> why it could not be fetched
    workers: int = 0  # parallel requests used


class FeatureCache:
    """A directory of feature files keyed by ``sha256(uri)`` (see the module docstring)."""

    def __init__(self, cache_dir: Path, *, workers: int = DEFAULT_FETCH_WORKERS, retries: int = 3) -> None:
        self.cache_dir = Path(cache_dir)
        self.workers = max(1, int(workers))
        self.retries = max(1, int(retries))

    def path_for(self, uri: str, pin: Pin | None = None) -> Path:
        key = uri if pin is None else f"{uri}\n{pin.size}\n{pin.etag}"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.cache_dir / digest[:2] / digest

    def is_cached(self, uri: str, pin: Pin | None = None) -> bool:
        """The object's file is in the cache and (for a local source) still has the pinned size and mtime."""
        try:
            st = self.path_for(uri, pin).stat()
        except FileNotFoundError:
            return False
        if pin is None:
            return True
        if uri.startswith("s3://"):
            return st.st_size == pin.size
        return f"{st.st_size}-{st.st_mtime_ns}" == pin.etag  # a hard link rewritten in place changes both

    def fetch(self, uris: list[str], *, pins: Mapping[str, Pin] | None = None,
              progress: Progress | None = None) -> FetchReport:
        """Make every URI's file present in the cache; return what was fetched, cached or missing.

        With ``pins`` (URI -> ``Pin``) each object is cached under its pin and checked against it.
        """
        unique = list(dict.fromkeys(uris))
        pins = pins or {}
        progress = progress or SilentProgress()
        todo = [uri for uri in unique if not self.is_cached(uri, pins.get(uri))]
        for parent in {self.path_for(uri, pins.get(uri)).parent for uri in todo}:
            parent.mkdir(parents=True, exist_ok=True)
        missing: list[str] = []
        errors: dict[str, str] = {}
        workers = min(self.workers, max(1, len(todo)))
        if todo:
            with progress.task("fetch feature files", total=len(todo)) as task, \
                    ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
                for uri, error in zip(todo, pool.map(lambda u: self._fetch_one(u, pins.get(u)), todo)):
                    if error is not None:
                        missing.append(uri)
                        errors[uri] = error
                    task.advance()
        return FetchReport(len(unique), len(todo) - len(missing), len(unique) - len(todo), missing, errors, workers)

    def _fetch_one(self, uri: str, pin: Pin | None = None) -> str | None:
        """None when the file is in the cache afterwards, else why not."""
        dest = self.path_for(uri, pin)
        if self.is_cached(uri, pin):
            return None
        try:
            source = storage.Uri.parse(uri) if "://" in uri else None  # None: a plain local path
        except Exception as exc:  # noqa: BLE001 - a malformed URI never heals
            return f"bad URI: {exc}"
        error = "not attempted"
        for attempt in range(self.retries):
            part = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:12]}.part")
            try:
                if source is not None and source.is_s3:
                    self._download(source, part, pin)
                else:
                    _link_or_copy(Path(source.key if source is not None else uri).expanduser(), part, pin)
                os.replace(part, dest)
                return None
            except FileNotFoundError:
                return "not found"
            except ChangedError as exc:
                return str(exc)
            except Exception as exc:  # noqa: BLE001 - OSError, storage and botocore errors: retry, then report
                error = f"{type(exc).__name__}: {exc}"
            finally:
                part.unlink(missing_ok=True)
            if attempt + 1 < self.retries:
                time.sleep(min(2.0, 0.1 * 2**attempt))
        return error

    def _download(self, source: storage.Uri, part: Path, pin: Pin | None = None) -> None:
        from botocore.exceptions import ClientError

        # the one S3 configuration's client, one attempt per request: this cache retries (``retries``)
        client = s3_config().boto3_client(total_attempts=1, max_pool_connections=self.workers)
        try:
            response = client.get_object(Bucket=source.bucket, Key=source.key)
        except ClientError as exc:  # a missing object is reported, not retried; the rest is retried
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(str(source)) from exc
            raise
        expected = int(response.get("ContentLength", -1))
        body = response["Body"]
        if pin is not None:
            etag = str(response.get("ETag", "")).strip('"')
            if expected != pin.size or etag != pin.etag:
                body.close()
                raise ChangedError(_changed(expected, etag, pin))
        written = 0
        with open(part, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)
                written += len(chunk)
        if expected >= 0 and written != expected:
            raise SourceUnreachableError(f"short read: {written} of {expected} bytes", where=str(source),
                                         fix="re-run; the fetch is retried")


def _changed(size: int, etag: str, pin: Pin) -> str:
    return (f"changed at the source since the lake recorded it (now size {size:,}, ETag {etag}; the lake pins "
            f"size {pin.size:,}, ETag {pin.etag})")


def _link_or_copy(source: Path, part: Path, pin: Pin | None = None) -> None:
    """Hard-link ``source`` to ``part`` (or copy it, keeping its times), checked against ``pin``."""
    st = source.stat()  # FileNotFoundError: reported as missing
    if pin is not None and (st.st_size != pin.size or f"{st.st_size}-{st.st_mtime_ns}" != pin.etag):
        raise ChangedError(_changed(st.st_size, f"{st.st_size}-{st.st_mtime_ns}", pin))
    try:
        os.link(source, part)
        return
    except FileNotFoundError:
        if not source.is_file():
            raise
    except OSError:
        if not source.is_file():
            raise FileNotFoundError(str(source)) from None
    shutil.copyfile(source, part)  # another file system (or the cache directory vanished meanwhile)
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
