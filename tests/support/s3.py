"""A moto S3 server on 127.0.0.1 (random port) for tests that need a real S3 API endpoint.

``S3Server`` runs moto in a thread of the test process, ``ProcessS3Server`` in a child process. Both can
make moto check signatures the way AWS does (``require_signatures``: requests must be signed with the
secret of an access key that moto's IAM knows, ``create_user`` makes one) and record every request with
its headers (``recorded_requests``, when started with ``recording=PATH``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
_SPACE = re.compile(r"\s*")


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
        self._moto_api("reset")

    def _moto_api(self, path: str, data: bytes = b"", *, method: str = "POST") -> bytes:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/{path}",
            data=data if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/octet-stream"},  # not a form: moto reads the raw body
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    # ---- signatures and recording ---------------------------------------------------------------

    def require_signatures(self, on: bool = True) -> None:
        """On: every request must be signed with a key and secret moto's IAM knows (``create_user``), like
        AWS; unsigned requests are refused. Off: moto accepts any credentials (its default)."""
        self._moto_api("reset-auth", b"0" if on else b"inf")

    def create_user(self, name: str, *, admin: tuple[str, str] = ("testing", "testing")) -> tuple[str, str]:
        """An IAM user allowed everything; returns its (access key id, secret). Call with signatures off,
        or pass ``admin`` keys of an existing user."""
        iam = self._client("iam", *admin)
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def assume_role(self, role: str, *, as_user: tuple[str, str]) -> tuple[str, str, str]:
        """Temporary credentials (key id, secret, session token) of a new role allowed everything."""
        iam = self._client("iam", *as_user)
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(policy))
        creds = self._client("sts", *as_user).assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
        return creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]

    def start_recording(self) -> None:
        """Forget what was recorded and record every request from now on (needs ``recording=``)."""
        self._moto_api("recorder/reset-recording")
        self._moto_api("recorder/start-recording")

    def recorded_requests(self) -> list[dict[str, Any]]:
        """The requests recorded since ``start_recording``: ``{"method", "url", "headers", ...}`` each."""
        text = self._moto_api("recorder/download-recording", method="GET").decode("utf-8")
        # moto writes each entry and its newline separately from concurrent threads: an entry is whole,
        # but two may share a line, so read JSON values one after another rather than line by line.
        decoder, entries, index = json.JSONDecoder(), [], 0
        while (index := _SPACE.match(text, index).end()) < len(text):
            entry, index = decoder.raw_decode(text, index)
            entries.append(entry)
        return entries

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

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> Any:
        return self._client("s3", key, secret)

    def _client(self, service: str, key: str, secret: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(  # a new session: reads AWS_* as they are now
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
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


class ProcessS3Server(S3Server):
    """``S3Server`` with moto in a child process instead of a thread of the test process.

    Why: deltalake blocks on S3 calls while holding the GIL in some calls (``DeltaTable.history()``
    for one), so an in-process (threaded) moto can never answer them: each request times out and is
    retried for minutes. A separate process has its own GIL. ``recording`` is the file moto records
    requests into (``start_recording``); the process is stopped by its own pid.
    """

    def __init__(self, *, recording: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self._process: subprocess.Popen[bytes] | None = None
        self._recording = recording

    def start(self) -> str:
        if self._process is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            env = dict(os.environ)
            if self._recording is not None:
                env["MOTO_RECORDER_FILEPATH"] = os.fspath(self._recording)
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            endpoint = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                        break
                except OSError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError("the moto server did not start") from None
                    time.sleep(0.1)
            self._endpoint = endpoint
        return self.endpoint_url

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
            self._endpoint = None
