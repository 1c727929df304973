"""One S3 configuration for every S3 client in the project: boto3, DuckDB (httpfs + aws) and deltalake.

AWS users configure S3 with the standard variables and files: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with ``~/.aws/config`` and
``~/.aws/credentials`` (or ``AWS_CONFIG_FILE`` / ``AWS_SHARED_CREDENTIALS_FILE``), SSO, roles,
``AWS_ENDPOINT_URL[_S3]`` and ``AWS_REGION``. ``resolve_s3_config`` reads them once, through botocore's
credential chain, into a frozen ``S3Config``; each consumer gets its settings from that object only:

- boto3: ``S3Config.boto3_client()`` (the resolved keys, endpoint, addressing style, timeouts, retries);
- DuckDB: ``S3Config.duckdb_secret_sql()`` (a secret: the resolved keys when they came from the
  environment; else ``PROVIDER credential_chain`` for the same profile and source, so DuckDB's AWS SDK
  refreshes temporary credentials, with the resolved keys as the fallback where that SDK cannot read
  the source (static keys in ``~/.aws/config``, which botocore reads and it does not); no keys at all
  when anonymous);
- deltalake: ``S3Config.deltalake_options()`` (the resolved keys, endpoint, style, timeouts, retries).

``MERMAID_S3_ANONYMOUS=true`` makes every consumer send unsigned requests (public buckets) and skips
credential lookup; so does finding no credentials anywhere (rather than each client searching again,
deltalake's with retries against the instance metadata service). ``s3_config()`` caches the resolution
for as long as the environment (and the config files) are unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from mermaid_data.errors import ConfigError
from mermaid_data.settings import get_settings
from mermaid_data.sqlfiles import sql_literal

__all__ = ["AddressingStyle", "S3Config", "S3Credentials", "resolve_s3_config", "s3_config"]

DEFAULT_REGION = "us-east-1"

#: botocore's name for where credentials came from -> the DuckDB aws extension's chain that reads the
#: same source (methods not listed use the AWS SDK's default chain, with the same profile).
_DUCKDB_CHAIN = {
    "shared-credentials-file": "config",
    "config-file": "config",
    "custom-process": "process",
    "sso": "sso",
    "assume-role-with-web-identity": "sts",
    "iam-role": "instance",
}

_FIX_CREDENTIALS = (
    "set AWS_PROFILE to a profile in ~/.aws/config (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE), or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or MERMAID_S3_ANONYMOUS=true for a public bucket"
)


class AddressingStyle(StrEnum):
    """How a bucket is named in request URLs: ``endpoint/bucket/key`` or ``bucket.endpoint/key``."""

    PATH = "path"
    VIRTUAL = "virtual"


@dataclass(frozen=True)
class S3Credentials:
    """Credentials as botocore resolved them; ``method`` says from where (``env``, ``config-file``, ...)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(repr=False)
    method: str


@dataclass(frozen=True)
class S3Config:
    """Everything an S3 client needs, resolved once. ``credentials`` is None when anonymous or none exist."""

    region: str
    endpoint_url: str | None
    addressing_style: AddressingStyle
    anonymous: bool
    profile: str | None
    credentials: S3Credentials | None
    timeout_s: float
    retries: int

    @property
    def unsigned(self) -> bool:
        """Requests go unsigned: ``MERMAID_S3_ANONYMOUS``, or no credentials found anywhere."""
        return self.anonymous or self.credentials is None

    # ---- boto3 ------------------------------------------------------------------------------------

    def boto3_client(self, *, total_attempts: int | None = None, max_pool_connections: int = 32) -> Any:
        """A boto3 S3 client (cached; thread-safe). ``total_attempts`` defaults to 1 + the retries setting;
        pass 1 when the caller retries itself."""
        attempts = self.retries + 1 if total_attempts is None else max(1, total_attempts)
        return _boto3_client(self, attempts, max_pool_connections)

    # ---- DuckDB -----------------------------------------------------------------------------------

    @property
    def duckdb_chain(self) -> bool:
        """True when DuckDB should read the credentials itself (``PROVIDER credential_chain``): they exist
        and did not come from the environment (keys from the environment are given as they are)."""
        return not self.unsigned and self.credentials.method != "env"

    def duckdb_secret_sql(self, name: str = "mermaid_s3", *, chain: bool | None = None) -> str:
        """``CREATE SECRET`` for a DuckDB connection with httpfs (and, for the chain, aws) loaded.

        ``chain`` defaults to ``duckdb_chain``; ``chain=False`` gives the resolved keys instead."""
        chain = self.duckdb_chain if chain is None else chain and self.duckdb_chain
        options: list[tuple[str, str]] = [
            ("TYPE", "s3"),
            ("PROVIDER", "credential_chain" if chain else "config"),
        ]
        credentials = None if self.unsigned else self.credentials
        if not chain:
            # Empty values when there are no keys: without KEY_ID, httpfs falls back to AWS_ACCESS_KEY_ID
            # from the environment and signs "anonymous" requests.
            options += [("KEY_ID", sql_literal(credentials.access_key_id if credentials else ""))]
            options += [("SECRET", sql_literal(credentials.secret_access_key if credentials else ""))]
            options += [
                ("SESSION_TOKEN", sql_literal((credentials.session_token if credentials else "") or ""))
            ]
        elif credentials is not None:
            if credentials.method in _DUCKDB_CHAIN:
                options.append(("CHAIN", sql_literal(_DUCKDB_CHAIN[credentials.method])))
            if self.profile:
                options.append(("PROFILE", sql_literal(self.profile)))
            options.append(("REFRESH", "auto"))
        options.append(("REGION", sql_literal(self.region)))
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            options.append(("ENDPOINT", sql_literal(parts.netloc + parts.path.rstrip("/"))))
            options.append(("USE_SSL", "true" if parts.scheme == "https" else "false"))
        style = "path" if self.addressing_style is AddressingStyle.PATH else "vhost"
        options.append(("URL_STYLE", sql_literal(style)))
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(f'{key} {value}' for key, value in options)})"

    def duckdb_settings_sql(self) -> list[str]:
        """The timeout and retries of DuckDB's HTTP client."""
        return [f"SET http_timeout = {int(self.timeout_s * 1000)}", f"SET http_retries = {self.retries}"]

    # ---- deltalake --------------------------------------------------------------------------------

    def deltalake_options(self) -> dict[str, str]:
        """``storage_options`` for deltalake's object store (ignored for local tables)."""
        seconds = f"{max(1, round(self.timeout_s))}s"
        options = {
            "AWS_REGION": self.region,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(self.addressing_style is AddressingStyle.VIRTUAL).lower(),
            "timeout": seconds,
            "connect_timeout": seconds,
            "max_retries": str(self.retries),
        }
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.unsigned:
            options["AWS_SKIP_SIGNATURE"] = "true"
        else:
            options["AWS_ACCESS_KEY_ID"] = self.credentials.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = self.credentials.secret_access_key
            if self.credentials.session_token:
                options["AWS_SESSION_TOKEN"] = self.credentials.session_token
        return options


def s3_config() -> S3Config:
    """The S3 configuration of the current environment, resolved once while the environment is unchanged."""
    settings = get_settings()
    files = tuple(_stamp(path) for path in _config_paths())
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _cached_config(
        environment, files, settings.s3_anonymous, settings.network_timeout_s, settings.network_retries
    )


def resolve_s3_config() -> S3Config:
    """Read the AWS variables and files (botocore's rules) and the MERMAID_* settings into an ``S3Config``."""
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    settings = get_settings()
    session = botocore.session.Session()
    profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or None
    try:
        scoped = session.get_scoped_config()
        region = os.environ.get("AWS_REGION") or session.get_config_variable("region") or DEFAULT_REGION
        credentials = None if settings.s3_anonymous else _credentials(session)
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS profile {profile!r} is not defined ({exc})",
            where=_config_files(),
            fix="add the profile to the config/credentials file, or set AWS_PROFILE to one that exists",
        ) from exc
    except BotoCoreError as exc:
        raise ConfigError(
            f"cannot read AWS credentials for profile {profile or 'default'!r}: {exc}",
            where=_config_files(),
            fix=_FIX_CREDENTIALS,
        ) from exc
    endpoint = (
        os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or scoped.get("endpoint_url")
    )
    return S3Config(
        region=region,
        endpoint_url=endpoint or None,
        addressing_style=_addressing_style(scoped, endpoint),
        anonymous=settings.s3_anonymous,
        profile=profile,
        credentials=credentials,
        timeout_s=settings.network_timeout_s,
        retries=max(0, settings.network_retries),
    )


def _credentials(session: Any) -> S3Credentials | None:
    found = session.get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        return None
    return S3Credentials(frozen.access_key, frozen.secret_key, frozen.token or None, found.method)


def _addressing_style(scoped: dict[str, Any], endpoint: str | None) -> AddressingStyle:
    """The profile's ``s3 = addressing_style = ...`` if set, else path-style for a custom endpoint."""
    section = scoped.get("s3")
    configured = section.get("addressing_style") if isinstance(section, dict) else None
    if configured in (AddressingStyle.PATH.value, AddressingStyle.VIRTUAL.value):
        return AddressingStyle(configured)
    return AddressingStyle.PATH if endpoint else AddressingStyle.VIRTUAL


def _config_paths() -> tuple[str, str]:
    """The AWS config and shared credentials files, where botocore looks for them."""
    return (
        os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config",
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials",
    )


def _config_files() -> str:
    return " / ".join(_config_paths())


def _stamp(path: str) -> tuple[str, int]:
    """A file's path and modification time, so an edited config file is read again."""
    target = os.path.expanduser(path)
    try:
        return target, os.stat(target).st_mtime_ns
    except OSError:
        return target, -1


@lru_cache(maxsize=8)
def _cached_config(_env: tuple, _files: tuple, _anonymous: bool, _timeout: float, _retries: int) -> S3Config:
    return resolve_s3_config()


@lru_cache(maxsize=16)
def _boto3_client(config: S3Config, total_attempts: int, max_pool_connections: int) -> Any:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {
        "region_name": config.region,
        "connect_timeout": config.timeout_s,
        "read_timeout": config.timeout_s,
        "retries": {"total_max_attempts": total_attempts, "mode": "standard"},
        "max_pool_connections": max_pool_connections,
        "s3": {"addressing_style": config.addressing_style.value},
    }
    keys: dict[str, Any] = {}
    if config.unsigned:
        options["signature_version"] = UNSIGNED
    else:
        keys = {
            "aws_access_key_id": config.credentials.access_key_id,
            "aws_secret_access_key": config.credentials.secret_access_key,
            "aws_session_token": config.credentials.session_token,
        }
    return boto3.session.Session().client(
        "s3", endpoint_url=config.endpoint_url, config=Config(**options), **keys
    )
