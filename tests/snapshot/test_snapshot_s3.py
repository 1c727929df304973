"""Snapshots of a lake on S3 (moto): create, verify, rebuild, create again, list/show/export, SQL by ID."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from mermaid_data.snapshot.lifecycle import published_ids, rebuild, verify
from typer.testing import CliRunner

from tests.snapshot.golden import ingest_golden, load_case

WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def s3_lake(s3, golden_src: Path) -> Lake:
    """The golden sources ingested into a lake on S3 (one per module; tests use different recipes)."""
    bucket = f"snap-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    uri = f"s3://{bucket}/lake"
    ingest_golden(uri, golden_src)
    return Lake.open(uri)


def test_snapshot_lifecycle_on_s3(s3, s3_lake: Lake, tmp_path: Path) -> None:
    _, spec = load_case("step_rollup")
    first = s3_lake.create_snapshot(spec)
    assert first.created
    sid = first.snapshot_id
    assert first.uri == f"{s3_lake.uri}/snapshots/{sid}"
    client = s3.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3_lake.uri.bucket,
                                                           Prefix=f"lake/snapshots/{sid}/")["Contents"])
    assert keys == sorted(f"lake/snapshots/{sid}/{n}" for n in [*first.manifest["files"], "manifest.json"])
    assert sid in published_ids(s3_lake)

    # the same rows as the same recipe on a local lake
    local_dir = tmp_path / "local"
    from tests.snapshot.golden import write_golden_sources

    ingest_golden(local_dir, write_golden_sources(tmp_path / "src"))
    local = Lake.open(str(local_dir)).create_snapshot(spec)
    assert local.snapshot_id == sid
    assert local.manifest["content_sha256"] == first.manifest["content_sha256"]

    assert verify(first.uri)["ok"]
    r = rebuild(s3_lake, sid)
    assert r["identical"], r
    leftovers = client.list_objects_v2(Bucket=s3_lake.uri.bucket, Prefix="lake/snapshots/.rebuild-").get("KeyCount")
    assert leftovers == 0

    again = s3_lake.create_snapshot(spec)
    assert not again.created and again.snapshot_id == sid and again.manifest == first.manifest
    assert s3_lake.sql(f"SELECT count(*) AS n FROM snapshots WHERE snapshot_id = '{sid}'")["n"].item() == 1
    assert s3_lake.sql(f"SELECT count(*) AS n FROM snapshot('{sid}')")["n"].item() == 18

    runner = CliRunner()
    out = runner.invoke(app, ["snapshot", "list", "--lake", str(s3_lake.uri)], env=WIDE)
    assert out.exit_code == 0 and sid in out.output
    out = runner.invoke(app, ["snapshot", "verify", sid[:10], "--lake", str(s3_lake.uri)], env=WIDE)
    assert out.exit_code == 0 and f"ok: {sid}" in out.output, out.output
    out = runner.invoke(app, ["snapshot", "export", sid, str(tmp_path / "export"), "--lake", str(s3_lake.uri)], env=WIDE)
    assert out.exit_code == 0, out.output
    assert runner.invoke(app, ["snapshot", "verify", str(tmp_path / "export")], env=WIDE).exit_code == 0
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["content_sha256"] == first.manifest["content_sha256"]


def test_publish_is_conditional_on_s3(s3, s3_lake: Lake) -> None:
    """A second writer whose manifest PUT finds one already there (If-None-Match: *) does not overwrite it."""
    from mermaid_data.snapshot import build as build_mod

    _, spec = load_case("step_sources")
    first = s3_lake.create_snapshot(spec)
    recipe = build_mod.build_recipe(s3_lake, spec)
    target = build_mod.snapshot_uri(s3_lake, recipe.snapshot_id)
    late = build_mod.build(s3_lake, recipe, "late writer", "", target)
    assert not late.created
    assert late.manifest == first.manifest
    stored = json.loads(s3.client().get_object(Bucket=s3_lake.uri.bucket, Key=target.join("manifest.json").key)["Body"]
                        .read())
    assert stored["name"] == "step_sources"
    sid = recipe.snapshot_id
    assert s3_lake.sql(f"SELECT count(*) AS n FROM snapshots WHERE snapshot_id = '{sid}'")["n"].item() == 1
    assert verify(str(target))["ok"]
