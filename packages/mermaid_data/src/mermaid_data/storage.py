"""URIs for everything the lake reads or writes: a local path or ``s3://bucket/prefix``.

S3 access uses boto3 (listing, small reads, fingerprints) with the client of the one S3 configuration
(``mermaid_data.s3config``: the AWS variables, profiles and credential chain, explicit timeouts and bounded
retries; ``MERMAID_S3_ANONYMOUS=true`` sends unsigned requests to public buckets).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mermaid_data.errors import ConfigError, SourceUnreachableError
from mermaid_data.s3config import s3_config

_HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Uri:
    """A parsed local path or S3 location. ``key`` has no leading slash; local paths are absolute."""

    scheme: str  # "file" or "s3"
    bucket: str  # "" for local
    key: str  # object key / absolute local path

    @classmethod
    def parse(cls, uri: str | os.PathLike[str]) -> Uri:
        text = os.fspath(uri)
        if text.startswith("s3://"):
            parsed = urlparse(text)
            if not parsed.netloc:
                raise ConfigError(f"no bucket in {text!r}", fix="write s3://BUCKET/PREFIX")
            return cls("s3", parsed.netloc, parsed.path.lstrip("/").rstrip("/"))
        if "://" in text and not text.startswith("file://"):
            raise ConfigError(
                f"unsupported URI {text!r}", fix="use a local path or s3://bucket/prefix"
            )
        if text.startswith("file://"):
            text = urlparse(text).path
        return cls("file", "", str(Path(text).expanduser().resolve()))

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    def join(self, *parts: str) -> Uri:
        rel = "/".join(p.strip("/") for p in parts if p)
        if self.is_s3:
            return Uri("s3", self.bucket, f"{self.key}/{rel}".strip("/"))
        return Uri("file", "", str(Path(self.key, rel)))

    @property
    def parent(self) -> Uri:
        if self.is_s3:
            return Uri("s3", self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")
        return Uri("file", "", str(Path(self.key).parent))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the listed prefix, size and a content fingerprint."""

    relative_key: str
    size: int
    etag: str


def s3_client(*, total_attempts: int | None = None, max_pool_connections: int = 32):
    """A boto3 S3 client from the one S3 configuration (``s3config.s3_config().boto3_client``)."""
    return s3_config().boto3_client(total_attempts=total_attempts, max_pool_connections=max_pool_connections)


def _unreachable(uri: Uri | str, exc: Exception) -> SourceUnreachableError:
    config = s3_config()
    why = ""
    fix = "the credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID; MERMAID_S3_ANONYMOUS=true for a public bucket)"
    if config.anonymous:
        why = " (MERMAID_S3_ANONYMOUS: the request went unsigned)"
        fix = "MERMAID_S3_ANONYMOUS (unset it for a private bucket)"
    elif config.credentials is None:
        why = " (no AWS credentials found: the request went unsigned)"
    return SourceUnreachableError(
        f"cannot reach storage ({type(exc).__name__}: {exc}){why}",
        where=str(uri),
        fix=f"check the URI, AWS_ENDPOINT_URL, {fix} and the network",
    )


def _s3_call(uri: Uri, fn, *args, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(str(uri)) from exc
        if code == "NoSuchBucket":
            raise SourceUnreachableError(
                "bucket does not exist", where=str(uri), fix="check the bucket name"
            ) from exc
        raise _unreachable(uri, exc) from exc
    except BotoCoreError as exc:
        raise _unreachable(uri, exc) from exc


def exists(uri: Uri) -> bool:
    """True if the object or local file/directory exists."""
    if not uri.is_s3:
        return Path(uri.key).exists()
    try:
        stat(uri)
        return True
    except FileNotFoundError:
        return False


def stat(uri: Uri) -> ObjectInfo:
    """Size and fingerprint of one object: ETag for S3, SHA-256 of the content for local files."""
    if uri.is_s3:
        head = _s3_call(uri, s3_client().head_object, Bucket=uri.bucket, Key=uri.key)
        return ObjectInfo(uri.name, int(head["ContentLength"]), head["ETag"].strip('"'))
    path = Path(uri.key)
    if not path.is_file():
        raise FileNotFoundError(str(path))
    return ObjectInfo(path.name, path.stat().st_size, sha256_file(path))


def sha256_file(path: Path) -> str:
    """SHA-256 of a local file, read in large chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_prefix(uri: Uri, *, recursive: bool = True) -> Iterator[ObjectInfo]:
    """Objects under ``uri`` (a "directory"), keys relative to it. Local etags are size+mtime."""
    if uri.is_s3:
        prefix = f"{uri.key}/" if uri.key else ""
        paginator = s3_client().get_paginator("list_objects_v2")
        kwargs = {"Bucket": uri.bucket, "Prefix": prefix}
        if not recursive:
            kwargs["Delimiter"] = "/"
        pages = _s3_call(uri, lambda: list(paginator.paginate(**kwargs)))
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"][len(prefix) :], int(item["Size"]), item["ETag"].strip('"')
                )
        return
    root = Path(uri.key)
    if not root.is_dir():
        return
    if recursive:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                full = Path(dirpath, name)
                st = full.stat()
                yield ObjectInfo(str(full.relative_to(root)), st.st_size, f"{st.st_size}-{st.st_mtime_ns}")
    else:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_file():
                    st = entry.stat()
                    yield ObjectInfo(entry.name, st.st_size, f"{st.st_size}-{st.st_mtime_ns}")


def list_dirs(uri: Uri) -> list[str]:
    """Immediate "sub-directory" names under ``uri`` (S3 common prefixes)."""
    if uri.is_s3:
        prefix = f"{uri.key}/" if uri.key else ""
        paginator = s3_client().get_paginator("list_objects_v2")
        pages = _s3_call(
            uri, lambda: list(paginator.paginate(Bucket=uri.bucket, Prefix=prefix, Delimiter="/"))
        )
        return sorted(
            p["Prefix"][len(prefix) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])
        )
    root = Path(uri.key)
    if not root.is_dir():
        raise SourceUnreachableError(
            "directory does not exist", where=str(root), fix="check the path (--coralnet / CORALNET_ROOT_URI)"
        )
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir())


def read_bytes(uri: Uri, *, max_bytes: int | None = None) -> bytes:
    """The content of one object (or its first ``max_bytes``)."""
    if uri.is_s3:
        kwargs = {"Bucket": uri.bucket, "Key": uri.key}
        if max_bytes is not None:
            kwargs["Range"] = f"bytes=0-{max_bytes - 1}"
        response = _s3_call(uri, s3_client().get_object, **kwargs)
        return response["Body"].read()
    with open(uri.key, "rb") as handle:
        return handle.read(max_bytes) if max_bytes is not None else handle.read()


def write_bytes(uri: Uri, data: bytes) -> None:
    """Write one object atomically (local: temp file + rename; S3: a single PUT)."""
    if uri.is_s3:
        _s3_call(uri, s3_client().put_object, Bucket=uri.bucket, Key=uri.key, Body=data)
        return
    path = Path(uri.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def delete_prefix(uri: Uri) -> None:
    """Remove everything under ``uri`` (used for aborted, never-published outputs)."""
    if uri.is_s3:
        keys = [f"{uri.key}/{o.relative_key}" for o in list_prefix(uri)]
        client = s3_client()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            _s3_call(uri, client.delete_objects, Bucket=uri.bucket, Delete={"Objects": batch})
        return
    shutil.rmtree(uri.key, ignore_errors=True)


def delta_storage_options() -> dict[str, str]:
    """deltalake's ``storage_options``, from the same S3 configuration as boto3 and DuckDB."""
    return s3_config().deltalake_options()
