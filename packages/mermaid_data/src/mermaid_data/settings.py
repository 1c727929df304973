"""One settings object, read from environment variables and an optional ``.env`` file.

The standard ``AWS_*`` variables and files (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``...) are
read once, by ``mermaid_data.s3config`` through botocore, for every S3 client; ``MLFLOW_TRACKING_URI`` is
read by MLflow as-is. Neither is duplicated here.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MERMAID_PUBLIC_ANNOTATIONS_URI = (
    "s3://coral-reef-training/mermaid/mermaid_confirmed_annotations.parquet"
)
MERMAID_PUBLIC_API_URL = "https://api.datamermaid.org/v1/"


class Settings(BaseSettings):
    """Where the lake and the sources live, and how patient network calls are."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    lake_uri: str = Field(default="./lake", validation_alias="MERMAID_LAKE_URI")
    annotations_uri: str = Field(
        default=MERMAID_PUBLIC_ANNOTATIONS_URI, validation_alias="MERMAID_ANNOTATIONS_URI"
    )
    coralnet_root_uri: str | None = Field(default=None, validation_alias="CORALNET_ROOT_URI")
    api_url: str = Field(default=MERMAID_PUBLIC_API_URL, validation_alias="MERMAID_API_URL")
    s3_anonymous: bool = Field(default=False, validation_alias="MERMAID_S3_ANONYMOUS")
    missing_features_allowed: float = Field(
        default=5.0, validation_alias="MERMAID_MISSING_FEATURES_ALLOWED"
    )
    network_timeout_s: float = Field(default=10.0, validation_alias="MERMAID_NETWORK_TIMEOUT_S")
    network_retries: int = Field(default=3, validation_alias="MERMAID_NETWORK_RETRIES")
    api_deadline_s: float = Field(default=60.0, gt=0, validation_alias="MERMAID_API_DEADLINE_S")
    duckdb_memory_limit: str = Field(default="3GB", validation_alias="MERMAID_DUCKDB_MEMORY_LIMIT")


def get_settings() -> Settings:
    """The settings for the current environment (re-read whenever a relevant variable changes)."""
    relevant = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("MERMAID_", "CORALNET_"))))
    return _settings_for(relevant, os.getcwd())


@lru_cache(maxsize=16)
def _settings_for(_env: tuple, _cwd: str) -> Settings:
    return Settings()
