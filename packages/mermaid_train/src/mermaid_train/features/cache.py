"""A download cache of feature files, shared across runs.

``FeatureCache`` copies each image's pyspacer ``ImageFeatures`` file (a local path or ``s3://``) once into
``<cache_dir>/<sha256(uri)[:2]>/<sha256(uri)>``: many parallel requests (S3 latency, not bandwidth, bounds
a fetch of small objects; ``workers`` defaults to the ``MERMAID_FEATURE_FETCH_WORKERS`` setting, 50, as
upstream uses), a ``.part`` file renamed into place (``os.replace``) only when complete, so an existing
cache file is always whole and a crashed run's leftover ``.part`` files are ignored. S3 requests go
through ``mermaid_data.storage``'s client (its timeouts and retries); a body cut short is fetched again
up to ``retries`` times; a missing object is reported, not retried. Local files are hard-linked when the
cache is on the same file system.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mermaid_data import storage
from mermaid_data.errors import SourceUnreachableError
from mermaid_data.progress import Progress, SilentProgress

DEFAULT_FETCH_WORKERS = 50


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

    def path_for(self, uri: str) -> Path:
        digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()
        return self.cache_dir / digest[:2] / digest

    def fetch(self, uris: list[str], *, progress: Progress | None = None) -> FetchReport:
        """Make every URI's file present in the cache; return what was fetched, cached or missing."""
        unique = list(dict.fromkeys(uris))
        progress = progress or SilentProgress()
        todo = [uri for uri in unique if not self.path_for(uri).is_file()]
        for parent in {self.path_for(uri).parent for uri in todo}:
            parent.mkdir(parents=True, exist_ok=True)
        missing: list[str] = []
        errors: dict[str, str] = {}
        workers = min(self.workers, max(1, len(todo)))
        if todo:
            with progress.task("fetch feature files", total=len(todo)) as task, \
                    ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
                for uri, error in zip(todo, pool.map(self._fetch_one, todo)):
                    if error is not None:
                        missing.append(uri)
                        errors[uri] = error
                    task.advance()
        return FetchReport(len(unique), len(todo) - len(missing), len(unique) - len(todo), missing, errors, workers)

    def _fetch_one(self, uri: str) -> str | None:
        """None when the file is in the cache afterwards, else why not."""
        dest = self.path_for(uri)
        if dest.is_file():
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
                    self._download(source, part)
                else:
                    _link_or_copy(Path(source.key if source is not None else uri).expanduser(), part)
                os.replace(part, dest)
                return None
            except FileNotFoundError:
                return "not found"
            except Exception as exc:  # noqa: BLE001 - OSError, storage and botocore errors: retry, then report
                error = f"{type(exc).__name__}: {exc}"
            finally:
                part.unlink(missing_ok=True)
            if attempt + 1 < self.retries:
                time.sleep(min(2.0, 0.1 * 2**attempt))
        return error

    def _download(self, source: storage.Uri, part: Path) -> None:
        from botocore.exceptions import ClientError

        client = storage.s3_client(max_pool_connections=self.workers)
        try:
            response = client.get_object(Bucket=source.bucket, Key=source.key)
        except ClientError as exc:  # a missing object is reported, not retried; the rest is retried
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(str(source)) from exc
            raise
        expected = int(response.get("ContentLength", -1))
        written = 0
        body = response["Body"]
        with open(part, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)
                written += len(chunk)
        if expected >= 0 and written != expected:
            raise SourceUnreachableError(f"short read: {written} of {expected} bytes", where=str(source),
                                         fix="re-run; the fetch is retried")


def _link_or_copy(source: Path, part: Path) -> None:
    try:
        os.link(source, part)
    except FileNotFoundError:
        if not source.is_file():
            raise
        shutil.copyfile(source, part)  # the cache directory vanished meanwhile: copy reports it
    except OSError:
        if not source.is_file():
            raise FileNotFoundError(str(source)) from None
        shutil.copyfile(source, part)
