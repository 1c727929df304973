"""A moto S3 server on 127.0.0.1 (random port) for tests that need a real S3 API endpoint."""

from __future__ import annotations

import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class S3Server:
    """``start()`` -> endpoint URL; ``env()`` -> the AWS_* variables that point boto3/DuckDB/deltalake at it.

    moto keeps its state per process: two servers in one process see the same buckets; ``reset()``
    empties them.
    """

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._endpoint: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("S3Server is not started")
        return self._endpoint

    def start(self) -> str:
        if self._server is None:
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            self._endpoint = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._endpoint = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def upload_dir(self, local_dir: str | os.PathLike[str], bucket: str, prefix: str = "") -> list[str]:
        """Upload every file under ``local_dir`` to ``s3://bucket/prefix/<relative path>``; return the keys."""
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a directory")
        prefix = prefix.strip("/")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        keys = [
            f"{prefix}/{p.relative_to(root).as_posix()}" if prefix else p.relative_to(root).as_posix()
            for p in files
        ]
        client = self.client()  # boto3 clients are thread-safe

        def upload(pair: tuple[Path, str]) -> None:
            client.upload_file(str(pair[0]), bucket, pair[1])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(upload, zip(files, keys)))
        return keys
