"""Ingest from s3:// sources (moto on 127.0.0.1) into a local lake, and a lake that lives on S3 itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.lake import Lake
from typer.testing import CliRunner

from tests.support.api_server import ApiServer
from tests.support.s3 import S3Server

MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"
CONTENT = (
    'SELECT site, source_id, image_id, "row", col, label_id, benthic_attribute_id, growth_form_id, '
    "feature_key, annotation_id FROM {view} ORDER BY annotation_id"
)


@dataclass(frozen=True)
class Bucket:
    name: str
    mermaid: str  # s3:// URI of the MERMAID parquet
    coralnet: str  # s3:// root holding s<id>/


@pytest.fixture(scope="module")
def demo_bucket(s3: S3Server, demo_sources: DemoSummary) -> Bucket:
    """The demo sources uploaded under s3://<bucket>/public/ (read-only for the tests)."""
    name = "demo-sources-s3"
    s3.create_bucket(name)
    s3.upload_dir(demo_sources.dest / "mermaid", name, "public/mermaid")
    s3.upload_dir(demo_sources.dest / "coralnet", name, "public/coralnet")
    return Bucket(name, f"s3://{name}/public/{MERMAID_PARQUET}", f"s3://{name}/public/coralnet")


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> Lake:
    lake_dir = tmp_path_factory.mktemp("s3ref") / "lake"
    ingest_demo(lake_dir, demo_sources.dest)
    return Lake.open(str(lake_dir))


def test_ingest_from_s3_equals_local_ingest(
    tmp_path: Path,
    s3: S3Server,
    demo_bucket: Bucket,
    api_server: ApiServer,
    local_reference: Lake,
    ingest_demo,
) -> None:
    """Bug pinned: S3 sources read differently from local ones (rows, ids, feature keys, mapping)."""
    lake_dir = tmp_path / "lake"
    report = ingest_demo(
        lake_dir,
        "unused",
        mermaid=demo_bucket.mermaid,
        coralnet=demo_bucket.coralnet,
        api=api_server.base_url,
    )
    lake = Lake.open(str(lake_dir))
    for view in ("annotations", "annotations_mapped", "unmapped_annotations"):
        got = lake.sql(CONTENT.format(view=view))
        want = local_reference.sql(CONTENT.format(view=view))
        assert got.height == want.height > 0, view
        assert got.equals(want), view
    assert report.summary == {**local_reference_summary(local_reference)}
    sources = lake.sql("SELECT site, source_id, root_uri, annotations_uri FROM sources WHERE site <> 'api'")
    assert sources["annotations_uri"].str.starts_with(f"s3://{demo_bucket.name}/public/").all()
    cn = sources.filter(pl.col("site") == "coralnet")
    assert set(cn["root_uri"]) == {demo_bucket.coralnet}
    assert sources.filter(pl.col("site") == "mermaid")["root_uri"].to_list() == [
        demo_bucket.mermaid.rsplit("/", 1)[0]
    ]

    # rerun: ETags unchanged -> no new version
    before = lake.versions()
    again = ingest_demo(
        lake_dir,
        "unused",
        mermaid=demo_bucket.mermaid,
        coralnet=demo_bucket.coralnet,
        api=api_server.base_url,
    )
    assert again.versions_written == {}
    assert lake.versions() == before


def local_reference_summary(lake: Lake) -> dict[str, int]:
    from mermaid_data.ingest import summarize

    return summarize(lake)


def test_features_table_lists_the_s3_objects(
    tmp_path: Path, s3: S3Server, demo_bucket: Bucket, demo_sources: DemoSummary, ingest_demo
) -> None:
    """Bug pinned: S3 feature listing missing objects, listing the whole bucket, or recording wrong sizes."""
    # an unrelated object elsewhere in the bucket must not be listed
    client = s3.client()
    client.put_object(Bucket=demo_bucket.name, Key="elsewhere/x_featurevector", Body=b"123")
    lake_dir = tmp_path / "lake"
    ingest_demo(lake_dir, demo_sources.dest, mermaid=demo_bucket.mermaid, coralnet=demo_bucket.coralnet)
    listed = Lake.open(str(lake_dir)).sql("SELECT site, feature_key, size_bytes, etag FROM features")

    expected = set()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=demo_bucket.name, Prefix="public/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.startswith("public/mermaid/") and key.endswith("_featurevector"):
                expected.add(
                    ("mermaid", key.removeprefix("public/mermaid/"), obj["Size"], obj["ETag"].strip('"'))
                )
            elif key.startswith("public/coralnet/") and key.endswith(".featurevector"):
                expected.add(
                    ("coralnet", key.removeprefix("public/coralnet/"), obj["Size"], obj["ETag"].strip('"'))
                )
    assert len(expected) == demo_sources.feature_files_written
    assert set(listed.rows()) == expected


def test_lake_on_s3(
    s3: S3Server,
    s3_bucket,
    demo_bucket: Bucket,
    demo_sources: DemoSummary,
    local_reference: Lake,
    ingest_demo,
) -> None:
    """Bug pinned: a lake at s3://bucket/lake not writable by deltalake or not readable by DuckDB over httpfs."""
    bucket = s3_bucket("lake")
    lake_uri = f"s3://{bucket}/lake"
    report = ingest_demo(
        lake_uri, demo_sources.dest, mermaid=demo_bucket.mermaid, coralnet=demo_bucket.coralnet
    )
    assert report.versions_written
    lake = Lake.open(lake_uri)
    assert lake.exists()
    keys = [
        o["Key"]
        for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="lake/tables/annotations/_delta_log/")[
            "Contents"
        ]
    ]
    assert any(k.endswith(".json") for k in keys)

    got = lake.sql("SELECT site, count(*) AS n FROM annotations GROUP BY site ORDER BY site")
    assert dict(got.rows()) == {"coralnet": demo_sources.coralnet_rows, "mermaid": demo_sources.mermaid_rows}
    mapped = lake.sql(CONTENT.format(view="annotations_mapped"))
    assert mapped.equals(local_reference.sql(CONTENT.format(view="annotations_mapped")))

    # idempotent on S3 too, and the CLI reads it
    before = lake.versions()
    again = ingest_demo(
        lake_uri, demo_sources.dest, mermaid=demo_bucket.mermaid, coralnet=demo_bucket.coralnet
    )
    assert again.versions_written == {} and lake.versions() == before
    result = CliRunner().invoke(
        app, ["sql", "SELECT count(*) AS n FROM annotations", "--lake", lake_uri, "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == str(demo_sources.total_rows)
    history = lake.history()
    assert set(history["table"]) >= {"annotations", "sources", "features"}


def test_missing_s3_object_and_bucket_are_clear_errors(
    tmp_path: Path, s3: S3Server, demo_bucket: Bucket
) -> None:
    """Bug pinned: a wrong s3:// key or bucket surfacing as a raw botocore error."""
    from mermaid_data.errors import SourceUnreachableError
    from mermaid_data.ingest import ingest

    lake = Lake.open(str(tmp_path / "lake"))
    with pytest.raises(SourceUnreachableError, match="not found"):
        ingest(lake, mermaid_uri=f"s3://{demo_bucket.name}/public/nope.parquet", coralnet_uri=None, api=None)
    with pytest.raises(SourceUnreachableError, match="no-such-bucket-here"):
        ingest(lake, mermaid_uri="s3://no-such-bucket-here/m.parquet", coralnet_uri=None, api=None)
    assert not lake.exists()
