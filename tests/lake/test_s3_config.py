"""One S3 configuration for boto3, DuckDB and deltalake: static keys, a profile in config files, anonymous.

The moto server here checks signatures the way AWS does (``require_signatures``): a request signed with a
key moto's IAM does not know, or with the wrong secret or session token, is refused, and so is an unsigned
one for a private object. So a test passes only if every client really used the credentials under test;
moto's request recorder shows which key (or none) each request carried, client by client (user agent).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mermaid_data import duck, storage
from mermaid_data.demo import DemoSummary
from mermaid_data.errors import ConfigError, MermaidDataError
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake
from mermaid_data.s3config import AddressingStyle, s3_config

from tests.support.s3 import REGION, ProcessS3Server

PRIVATE = "reef-private"
PUBLIC = "reef-public"
MERMAID = "public/mermaid/mermaid_confirmed_annotations.parquet"
CORALNET = "public/coralnet"

_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


@dataclass(frozen=True)
class StrictS3:
    server: ProcessS3Server
    admin: tuple[str, str]  # an IAM user that may do everything (the tests' own setup)
    user: tuple[str, str]  # the user whose keys go into env or a profile
    role: tuple[str, str, str]  # temporary credentials of an assumed role: key, secret, session token


@pytest.fixture(scope="module")
def strict_s3(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary) -> Iterator[StrictS3]:
    """A moto server of its own (it is made strict), with the demo sources in a private and a public
    bucket, and IAM users created while signatures are not yet required."""
    server = ProcessS3Server(recording=tmp_path_factory.mktemp("moto") / "requests.jsonl")
    server.start()
    try:
        for bucket in (PRIVATE, PUBLIC):
            server.create_bucket(bucket)
            server.upload_dir(demo_sources.dest / "mermaid", bucket, "public/mermaid")
            server.upload_dir(demo_sources.dest / "coralnet", bucket, CORALNET)
        public_read = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{PUBLIC}", f"arn:aws:s3:::{PUBLIC}/*"],
                }
            ],
        }
        server.client().put_bucket_policy(Bucket=PUBLIC, Policy=json.dumps(public_read))
        admin = server.create_user("admin")
        user = server.create_user("reef-user")
        role = server.assume_role("reef-role", as_user=admin)
        yield StrictS3(server, admin, user, role)
    finally:
        server.stop()


def _isolate(monkeypatch: pytest.MonkeyPatch, strict_s3: StrictS3, aws_dir: Path) -> None:
    """No AWS_* variable but the endpoint and region; config files that do not exist (never ~/.aws)."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "MERMAID_S3_ANONYMOUS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", strict_s3.server.endpoint_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_dir / "credentials"))


@pytest.fixture(scope="module")
def public_lake(
    strict_s3: StrictS3, demo_sources: DemoSummary, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A lake in the public bucket, written with the admin's keys."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, strict_s3, tmp_path_factory.mktemp("aws"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", strict_s3.admin[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", strict_s3.admin[1])
        _ingest(demo_sources, PUBLIC, f"s3://{PUBLIC}/lake")
    return f"s3://{PUBLIC}/lake"


@pytest.fixture
def aws_env(strict_s3: StrictS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``_isolate``d, and signatures required. Returns a folder for the test's AWS config files."""
    aws_dir = tmp_path / "aws"
    aws_dir.mkdir()
    _isolate(monkeypatch, strict_s3, aws_dir)
    strict_s3.server.require_signatures(True)
    return aws_dir


def _lake_bucket(strict_s3: StrictS3, name: str) -> str:
    client = strict_s3.server.client(*strict_s3.admin)
    if name not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=name)
    return name


def _use_every_client(demo_sources: DemoSummary, bucket: str, lake_uri: str, *, write: bool = True) -> None:
    """boto3 lists, DuckDB reads Parquet and CSV, deltalake writes (ingest, unless not ``write``) and
    reads (Lake.sql) a lake."""
    listed = list(storage.list_prefix(storage.Uri.parse(f"s3://{bucket}/{CORALNET}")))
    csvs = sorted(o.relative_key for o in listed if o.relative_key.endswith("/annotations.csv"))
    assert len(csvs) == demo_sources.coralnet_sources

    con = duck.connect()
    try:
        mermaid = con.execute(f"SELECT count(*) FROM read_parquet('s3://{bucket}/{MERMAID}')").fetchone()
        assert mermaid == (demo_sources.mermaid_rows,)
        coralnet = con.execute(
            f"SELECT count(*) FROM read_csv('s3://{bucket}/{CORALNET}/{csvs[0]}')"
        ).fetchone()
        assert coralnet[0] > 0
    finally:
        con.close()

    if write:
        _ingest(demo_sources, bucket, lake_uri)
    lake = Lake.open(lake_uri)
    counts = dict(lake.sql("SELECT site, count(*) AS n FROM annotations GROUP BY site").rows())
    assert counts.pop("mermaid") == demo_sources.mermaid_rows
    assert list(counts) == ["coralnet"] and counts["coralnet"] > 0


def _ingest(demo_sources: DemoSummary, bucket: str, lake_uri: str) -> None:
    """Ingest MERMAID and one CoralNet source (enough for every client; the whole demo is slow on a
    moto that checks every signature and records every request)."""
    ingest(
        Lake.open(lake_uri),
        mermaid_uri=f"s3://{bucket}/{MERMAID}",
        coralnet_uri=f"s3://{bucket}/{CORALNET}",
        coralnet_sources=[min(p.name[1:] for p in (demo_sources.dest / "coralnet").glob("s*"))],
        api=str(demo_sources.dest / "api"),
    )


def _by_client(requests: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Recorded S3 requests' headers grouped by client: boto3, duckdb, deltalake (object_store)."""
    groups: dict[str, list[dict[str, str]]] = {}
    for request in requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        agent = headers.get("user-agent", "").lower()
        client = next((name for name, mark in _AGENTS.items() if mark in agent), agent or "unknown")
        groups.setdefault(client, []).append(headers | {"url": request["url"]})
    return groups


_AGENTS = {"boto3": "boto3", "duckdb": "duckdb", "deltalake": "object_store"}


def _signed_by(headers: dict[str, str]) -> str | None:
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    return match.group(1) if match else None


def _assert_every_client_signed_with(strict_s3: StrictS3, key: str, token: str | None) -> None:
    groups = _by_client(strict_s3.server.recorded_requests())
    assert set(groups) == set(_AGENTS), f"requests by client: { {k: len(v) for k, v in groups.items()} }"
    for client, requests in groups.items():
        assert {_signed_by(h) for h in requests} == {key}, client
        assert {h.get("x-amz-security-token") for h in requests} == {token}, client


# --------------------------------------------------------------------------------------------------
# moto really checks: the tests below could fail
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["unknown key", "wrong secret"])
def test_strict_moto_refuses_keys_it_does_not_know(
    strict_s3: StrictS3, public_lake: str, aws_env: Path, monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    """Control: with signatures required, boto3, DuckDB and deltalake all fail with bad keys."""
    key, secret = strict_s3.user
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00" if wrong == "unknown key" else key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret if wrong == "unknown key" else secret[::-1])
    with pytest.raises(MermaidDataError, match="InvalidAccessKeyId|SignatureDoesNotMatch"):
        list(storage.list_prefix(storage.Uri.parse(f"s3://{PRIVATE}/{CORALNET}")))
    con = duck.connect()
    with pytest.raises(Exception, match="403"):
        con.execute(f"SELECT count(*) FROM read_parquet('s3://{PRIVATE}/{MERMAID}')").fetchall()
    con.close()
    with pytest.raises(MermaidDataError):
        Lake.open(public_lake).sql("SELECT 1")


# --------------------------------------------------------------------------------------------------
# static keys
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user keys", "session token"])
def test_static_keys_reach_every_client(
    strict_s3: StrictS3, aws_env: Path, demo_sources: DemoSummary, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Bug pinned: DuckDB and deltalake translated AWS_* themselves (and could drift from boto3)."""
    key, secret, token = (*strict_s3.user, None) if kind == "user keys" else strict_s3.role
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    config = s3_config()
    assert config.credentials is not None and config.credentials.method == "env"
    assert not config.duckdb_chain
    bucket = _lake_bucket(strict_s3, f"lake-static-{'token' if token else 'user'}")
    strict_s3.server.start_recording()
    _use_every_client(demo_sources, PRIVATE, f"s3://{bucket}/lake")
    _assert_every_client_signed_with(strict_s3, key, token)


# --------------------------------------------------------------------------------------------------
# a profile in config files (no AWS_ACCESS_KEY_ID anywhere in the environment)
# --------------------------------------------------------------------------------------------------


def _write_profile(aws_dir: Path, where: str, key: str, secret: str, token: str | None) -> None:
    lines = [f"aws_access_key_id = {key}", f"aws_secret_access_key = {secret}"]
    if token:
        lines.append(f"aws_session_token = {token}")
    # a default profile with keys moto refuses: it must not be the one used
    decoy = "aws_access_key_id = AKIADECOYDECOYDECOY0\naws_secret_access_key = decoy\n"
    if where == "credentials file":
        (aws_dir / "credentials").write_text(f"[default]\n{decoy}\n[reef]\n" + "\n".join(lines) + "\n")
        (aws_dir / "config").write_text(f"[profile reef]\nregion = {REGION}\n")
    else:
        (aws_dir / "config").write_text(
            f"[default]\n{decoy}\n[profile reef]\nregion = {REGION}\n" + "\n".join(lines) + "\n"
        )


@pytest.mark.parametrize(
    ("where", "duckdb_provider"),
    [("credentials file", "credential_chain"), ("config file", "config")],
)
def test_profile_in_config_files_reaches_every_client(
    strict_s3: StrictS3,
    aws_env: Path,
    demo_sources: DemoSummary,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    duckdb_provider: str,
) -> None:
    """Bug pinned: only boto3 honoured AWS_PROFILE; DuckDB and deltalake sent no credentials at all.

    DuckDB reads the profile with its own AWS SDK (credential_chain) where that SDK can; it reads no keys
    from the config file (botocore and the AWS CLI do), and there DuckDB gets the keys botocore read."""
    key, secret, token = (*strict_s3.user, None) if where == "credentials file" else strict_s3.role
    _write_profile(aws_env, where, key, secret, token)
    monkeypatch.setenv("AWS_PROFILE", "reef")
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    config = s3_config()
    assert config.profile == "reef" and config.credentials is not None
    assert config.credentials.access_key_id == key
    assert config.duckdb_chain
    con = duck.connect()
    assert con.execute("SELECT provider FROM duckdb_secrets() WHERE name = 'mermaid_s3'").fetchall() == [
        (duckdb_provider,)
    ]
    con.close()
    bucket = _lake_bucket(strict_s3, f"lake-profile-{'token' if token else 'user'}")
    strict_s3.server.start_recording()
    _use_every_client(demo_sources, PRIVATE, f"s3://{bucket}/lake")
    _assert_every_client_signed_with(strict_s3, key, token)


def test_default_profile_without_aws_profile_is_the_decoy(
    strict_s3: StrictS3, aws_env: Path, demo_sources: DemoSummary
) -> None:
    """Control for the profile test: without AWS_PROFILE the decoy default keys are used, and refused."""
    _write_profile(aws_env, "credentials file", *strict_s3.user, None)
    assert s3_config().credentials.access_key_id == "AKIADECOYDECOYDECOY0"
    with pytest.raises(MermaidDataError, match="InvalidAccessKeyId"):
        list(storage.list_prefix(storage.Uri.parse(f"s3://{PRIVATE}/{CORALNET}")))


def test_unknown_profile_is_one_line(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    (aws_env / "config").write_text("[profile reef]\nregion = us-east-1\n")
    with pytest.raises(ConfigError) as caught:
        s3_config()
    message = str(caught.value)
    assert "'nope'" in message and str(aws_env / "config") in message and "Fix: " in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------------
# anonymous
# --------------------------------------------------------------------------------------------------


def test_anonymous_sends_no_credentials_from_any_client(
    strict_s3: StrictS3,
    public_lake: str,
    aws_env: Path,
    demo_sources: DemoSummary,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MERMAID_S3_ANONYMOUS=true: unsigned requests from boto3, DuckDB and deltalake, even with keys in
    the environment, so a public bucket reads and a private one is refused.

    Bug pinned: DuckDB signed "anonymous" requests with AWS_ACCESS_KEY_ID (httpfs falls back to the
    environment when a secret has no KEY_ID)."""
    key, secret, token = strict_s3.role
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    strict_s3.server.require_signatures(False)  # moto cannot check an unsigned request's signature
    monkeypatch.setenv("MERMAID_S3_ANONYMOUS", "true")
    config = s3_config()
    assert config.anonymous and config.credentials is None
    _assert_every_client_unsigned(strict_s3, demo_sources, public_lake, "MERMAID_S3_ANONYMOUS")


def test_no_credentials_anywhere_means_unsigned_everywhere(
    strict_s3: StrictS3, public_lake: str, aws_env: Path, demo_sources: DemoSummary
) -> None:
    """No keys, no profile: every client sends unsigned requests (public buckets read; deltalake does
    not go looking for credentials again, with retries, at the instance metadata service)."""
    strict_s3.server.require_signatures(False)
    config = s3_config()
    assert not config.anonymous and config.credentials is None and config.unsigned
    _assert_every_client_unsigned(strict_s3, demo_sources, public_lake, "no AWS credentials found")


def _assert_every_client_unsigned(
    strict_s3: StrictS3, demo_sources: DemoSummary, lake: str, why: str
) -> None:
    strict_s3.server.start_recording()
    _use_every_client(demo_sources, PUBLIC, lake, write=False)
    groups = _by_client(strict_s3.server.recorded_requests())
    assert set(groups) == set(_AGENTS)
    for client, requests in groups.items():
        signed = [h for h in requests if "authorization" in h or "x-amz-security-token" in h]
        assert signed == [], client
        assert all("X-Amz-Signature" not in h["url"] for h in requests), client

    # unsigned really means no access to a private object, and the error says why
    with pytest.raises(MermaidDataError, match="403") as caught:
        storage.read_bytes(storage.Uri.parse(f"s3://{PRIVATE}/{MERMAID}"), max_bytes=4)
    assert why in str(caught.value) and "\n" not in str(caught.value)
    con = duck.connect()
    with pytest.raises(Exception, match="403"):
        con.execute(f"SELECT count(*) FROM read_parquet('s3://{PRIVATE}/{MERMAID}')").fetchall()
    con.close()


# --------------------------------------------------------------------------------------------------
# the configuration itself
# --------------------------------------------------------------------------------------------------


def test_endpoint_region_and_style_come_from_the_profile(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's endpoint_url, region and `s3 = addressing_style` are honoured by every consumer."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_REGION")
    (aws_env / "config").write_text(
        "[profile reef]\nregion = eu-west-3\nendpoint_url = https://objects.example:9000\n"
        "aws_access_key_id = AKIAEXAMPLEEXAMPLE00\naws_secret_access_key = s3cr'et\n"
        "s3 =\n    addressing_style = virtual\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "reef")
    config = s3_config()
    assert (config.region, config.endpoint_url) == ("eu-west-3", "https://objects.example:9000")
    assert config.addressing_style is AddressingStyle.VIRTUAL
    secret = config.duckdb_secret_sql()
    assert "ENDPOINT 'objects.example:9000'" in secret and "USE_SSL true" in secret
    assert "URL_STYLE 'vhost'" in secret and "REGION 'eu-west-3'" in secret and "PROFILE 'reef'" in secret
    options = config.deltalake_options()
    assert options["AWS_ENDPOINT_URL"] == "https://objects.example:9000" and "AWS_ALLOW_HTTP" not in options
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "true" and options["AWS_REGION"] == "eu-west-3"
    assert options["AWS_SECRET_ACCESS_KEY"] == "s3cr'et"
    client = config.boto3_client()
    assert client.meta.endpoint_url == "https://objects.example:9000"
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.config.s3["addressing_style"] == "virtual"
    assert "s3cr'et" not in repr(config)


def test_timeouts_and_retries_come_from_the_settings(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERMAID_NETWORK_TIMEOUT_S", "7")
    monkeypatch.setenv("MERMAID_NETWORK_RETRIES", "2")
    config = s3_config()
    client = config.boto3_client()
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (7, 7)
    assert client.meta.config.retries["total_max_attempts"] == 3
    assert config.boto3_client(total_attempts=1).meta.config.retries["total_max_attempts"] == 1
    assert config.duckdb_settings_sql() == ["SET http_timeout = 7000", "SET http_retries = 2"]
    options = config.deltalake_options()
    assert (options["timeout"], options["connect_timeout"], options["max_retries"]) == ("7s", "7s", "2")


def test_configuration_is_resolved_once_per_environment(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAONEONEONEONEONE0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "one")
    first = s3_config()
    assert s3_config() is first and first.boto3_client() is s3_config().boto3_client()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATWOTWOTWOTWOTWO0")
    assert s3_config().credentials.access_key_id == "AKIATWOTWOTWOTWOTWO0"
