"""The row digest (`content_sha256`) is exactly what docs/snapshots.md says, recomputed here in plain
Python from the rows file: each row's 14 columns joined by U+001F (NULL as empty, `updated_on` as
microseconds since the epoch), md5 as a 128-bit number, then count, sums and XORs of both 64-bit halves,
hashed as compact sorted JSON with SHA-256. Pins the definition (a faster serialization must not change
it) and that no session setting such as the time zone can."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from mermaid_data import duck
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import content_digest

from tests.snapshot.golden import load_case

COLUMNS = ("site", "source_id", "image_id", "row", "col", "label_id", "benthic_attribute_id",
           "benthic_attribute_name", "growth_form_id", "growth_form_name", "feature_key", "annotation_id",
           "occurrence", "updated_on")
MASK = (1 << 64) - 1


def python_digest(rows_file: Path) -> str:
    table = pq.read_table(rows_file)
    table = table.set_column(table.schema.get_field_index("updated_on"), "updated_on",
                             pc.cast(table.column("updated_on"), pa.int64()))
    columns = [table.column(name).to_pylist() for name in COLUMNS]
    sum_upper = sum_lower = xor_upper = xor_lower = 0
    for values in zip(*columns):
        text = "\x1f".join("" if v is None else str(v) for v in values)
        h = int.from_bytes(hashlib.md5(text.encode()).digest(), "little")  # DuckDB's md5_number
        upper, lower = h >> 64, h & MASK
        sum_upper, sum_lower, xor_upper, xor_lower = sum_upper + upper, sum_lower + lower, xor_upper ^ upper, xor_lower ^ lower
    parts = {"rows": table.num_rows, "sum_upper": str(sum_upper), "sum_lower": str(sum_lower),
             "xor_upper": str(xor_upper), "xor_lower": str(xor_lower)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_digest_matches_the_documented_definition(golden_lake: Lake) -> None:
    _, spec = load_case("step_map_only")
    result = golden_lake.create_snapshot(spec)
    rows_file = Path(golden_lake.uri.key) / "snapshots" / result.snapshot_id / "rows.parquet"
    updated = pq.read_table(rows_file, columns=["updated_on"]).column(0)
    assert updated.null_count < len(updated), "the golden MERMAID rows carry updated_on"
    assert python_digest(rows_file) == result.manifest["content_sha256"]

    # the time zone of the session that computes the digest does not enter it
    con = duck.connect(s3=False)
    try:
        con.execute("SET TimeZone = 'Pacific/Chatham'")
        con.execute(f"CREATE VIEW snapshot_rows AS SELECT * FROM read_parquet('{rows_file}')")
        assert content_digest(con)["content_sha256"] == result.manifest["content_sha256"]
    finally:
        con.close()
