"""Ingest: sources → Delta tables, one commit per table per changed site, idempotent and crash-safe.

Order of commits (each atomic): taxonomy tables → annotations (per site) → features → ``sources``.
The ``sources`` table is written last, so a crash before it simply makes the next run redo the work;
an unchanged source (same fingerprint) writes nothing, so a rerun of a finished ingest adds no version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, write_deltalake

from mermaid_data import duck, storage
from mermaid_data.errors import SourceFormatError, SourceUnreachableError
from mermaid_data.lake import Lake, commit_metadata
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.settings import get_settings
from mermaid_data.sources import coralnet, mermaid
from mermaid_data.sources.api import Taxonomy, fetch_taxonomy
from mermaid_data.sqlfiles import load_sql
from mermaid_data.tables import (
    ANNOTATIONS,
    BENTHIC_ATTRIBUTES,
    FEATURES,
    GROWTH_FORMS,
    LABEL_MAPPINGS,
    MERMAID_SOURCE_ID,
    SOURCES,
    TAXONOMY_SOURCE_ID,
    Site,
    TableSpec,
)

MERMAID_FEATURE_SUFFIX = "_featurevector"
CORALNET_FEATURE_PREFIX = "i"
CORALNET_FEATURE_SUFFIX = ".featurevector"
_BATCH_ROWS = 1 << 20


@dataclass
class SourcePlan:
    """What ingest will do (or did) for one source."""

    site: str
    source_id: str
    uri: str
    fingerprint: str
    action: str  # "new", "changed", "unchanged"
    rows: int | None = None


@dataclass
class IngestReport:
    """The plan, the table versions written and the lake-wide summary figures."""

    plan: list[SourcePlan] = field(default_factory=list)
    taxonomy_action: str = "unchanged"
    features_changed: list[str] = field(default_factory=list)
    versions_written: dict[str, int] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def changed(self) -> list[SourcePlan]:
        return [p for p in self.plan if p.action != "unchanged"]


def ingest(
    lake: Lake,
    *,
    mermaid_uri: str | None,
    coralnet_uri: str | None,
    coralnet_sources: list[str] | None = None,
    api: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the lake up to date with the given sources (None skips that source)."""
    progress = progress or SilentProgress()
    settings = get_settings()
    now = datetime.now(UTC)
    report = IngestReport(dry_run=dry_run)
    known = _known_sources(lake)
    new_source_rows: dict[tuple[str, str], dict] = {}

    # ---- plan: fingerprints of everything, so a bad or unreachable input fails before any write
    taxonomy: Taxonomy | None = None
    if api:
        with progress.task("taxonomy: fetch MERMAID benthic attributes, growth forms, label mappings"):
            taxonomy = fetch_taxonomy(api, timeout_s=settings.network_timeout_s, retries=settings.network_retries)
        fp = taxonomy.fingerprint()
        prior = known.get(("api", TAXONOMY_SOURCE_ID))
        report.taxonomy_action = "new" if prior is None else ("unchanged" if prior["fingerprint"] == fp else "changed")
        new_source_rows[("api", TAXONOMY_SOURCE_ID)] = dict(prior) if report.taxonomy_action == "unchanged" else _source_row(
            "api", TAXONOMY_SOURCE_ID, api, api, fp, "", taxonomy.label_mappings.num_rows, 0, 0, 0, now
        )

    mermaid_plan: SourcePlan | None = None
    if mermaid_uri:
        uri = storage.Uri.parse(mermaid_uri)
        try:
            fp = mermaid.fingerprint(uri)
        except FileNotFoundError:
            raise SourceUnreachableError(
                "MERMAID annotations file not found (or no part matches the pattern)",
                where=str(uri),
                fix="pass --mermaid URI of mermaid_confirmed_annotations.parquet, or a glob of its parts such as "
                "PREFIX/*.parquet (or MERMAID_ANNOTATIONS_URI)",
            ) from None
        mermaid_plan = SourcePlan(Site.MERMAID, MERMAID_SOURCE_ID, str(uri), fp, _action(known, Site.MERMAID, MERMAID_SOURCE_ID, fp))
        report.plan.append(mermaid_plan)

    cn_sources: list[coralnet.CoralNetSource] = []
    if coralnet_uri:
        root = storage.Uri.parse(coralnet_uri)
        cn_sources = coralnet.discover(root, coralnet_sources)
        with progress.task("coralnet: fingerprint sources", total=len(cn_sources)) as task:
            def fingerprint(source: coralnet.CoralNetSource) -> str:
                try:
                    info = storage.stat(source.annotations_uri)
                except FileNotFoundError:
                    raise SourceFormatError(
                        "annotations.csv is missing",
                        where=str(source.annotations_uri),
                        fix="every s<id>/ folder needs an annotations.csv",
                    ) from None
                task.advance()
                return f"{info.etag}:{info.size}"

            with ThreadPoolExecutor(max_workers=16) as pool:
                fps = list(pool.map(fingerprint, cn_sources))
        for source, fp in zip(cn_sources, fps):
            report.plan.append(
                SourcePlan(Site.CORALNET, source.source_id, str(source.annotations_uri), fp,
                           _action(known, Site.CORALNET, source.source_id, fp))
            )

    changed_cn = [s for s, p in zip(cn_sources, report.plan[1 if mermaid_plan else 0:]) if p.action != "unchanged"]

    con = duck.connect()
    try:
        if mermaid_plan is not None and mermaid_plan.action != "unchanged":
            mermaid.register_raw_view(con, mermaid_plan.uri)
            with progress.task("mermaid: validate"):
                mermaid.validate(con)
        if changed_cn:
            headers = coralnet.read_headers(changed_cn)
            try:  # binding the view sniffs the files: a ragged line near the top fails here, not at read time
                coralnet.register_raw_view(con, changed_cn, headers)
            except duckdb.Error as exc:
                raise coralnet.explain_csv_error(exc, changed_cn) from exc

        if dry_run:
            _count_planned_rows(con, report, mermaid_plan, changed_cn)
            return report

        # ---- writes
        if taxonomy is not None and report.taxonomy_action != "unchanged":
            for spec, table in (
                (BENTHIC_ATTRIBUTES, taxonomy.benthic_attributes),
                (GROWTH_FORMS, taxonomy.growth_forms),
                (LABEL_MAPPINGS, taxonomy.label_mappings),
            ):
                _overwrite_table(lake, spec, table.select(spec.schema.names).cast(spec.schema), report, ["taxonomy"])

        if mermaid_plan is not None and mermaid_plan.action != "unchanged":
            stream = con.execute(load_sql("ingest/mermaid_annotations"), {"ingested_at": now})
            with progress.task("mermaid: write annotations") as task:
                _replace_partitions(lake, stream, Site.MERMAID, [MERMAID_SOURCE_ID], report, task, known)

        if changed_cn:
            try:
                stream = con.execute(load_sql("ingest/coralnet_annotations"), {"ingested_at": now})
                with progress.task(f"coralnet: write annotations of {len(changed_cn)} sources") as task:
                    _replace_partitions(
                        lake, stream, Site.CORALNET, [s.source_id for s in changed_cn], report, task, known
                    )
            except duckdb.Error as exc:
                raise coralnet.explain_csv_error(exc, changed_cn) from exc

        stats = _source_stats(lake, [p for p in report.plan if p.action != "unchanged"])
        for p in report.plan:
            prior = known.get((p.site, p.source_id))
            if p.action == "unchanged":
                new_source_rows[(p.site, p.source_id)] = dict(prior)
                continue
            rows, images, dups = stats.get((p.site, p.source_id), (0, 0, 0))
            # feature_key is relative to this root: the parquet's folder, or the CoralNet root holding s<id>/
            root = str(storage.Uri.parse(p.uri).parent) if p.site == Site.MERMAID else str(storage.Uri.parse(coralnet_uri or ""))
            new_source_rows[(p.site, p.source_id)] = _source_row(
                p.site, p.source_id, root, p.uri, p.fingerprint, (prior or {}).get("features_fingerprint", ""),
                rows, images, dups, (prior or {}).get("feature_count", 0), now,
            )
            p.rows = rows

        # ---- features: list each source's own prefix; replace the partitions whose listing changed
        listings = _list_features(mermaid_plan, cn_sources, progress)
        changed_features = []
        for key, table in listings.items():
            fp = _listing_fingerprint(table)
            row = new_source_rows.get(key)
            if row is not None and row.get("features_fingerprint") != fp:
                row["features_fingerprint"] = fp
                row["feature_count"] = table.num_rows
                changed_features.append((key, table))
        if changed_features:
            _replace_features(lake, changed_features, report, known)
            report.features_changed = [sid for (_site, sid), _ in changed_features]

        # ---- sources last: the record that the work above is complete
        merged = {**{k: v for k, v in known.items()}, **new_source_rows}
        if any(merged.get(k) != known.get(k) for k in merged):
            table = pa.Table.from_pylist(sorted(merged.values(), key=lambda r: (r["site"], r["source_id"])), schema=SOURCES.schema)
            _overwrite_table(lake, SOURCES, table, report, sorted({k[1] for k in new_source_rows if new_source_rows[k] != known.get(k)}))
    finally:
        con.close()

    report.summary = summarize(lake)
    return report


def _action(known: dict, site: str, source_id: str, fingerprint: str) -> str:
    prior = known.get((site, source_id))
    if prior is None:
        return "new"
    return "unchanged" if prior["fingerprint"] == fingerprint else "changed"


def _known_sources(lake: Lake) -> dict[tuple[str, str], dict]:
    table = lake.delta(SOURCES.name)
    if table is None:
        return {}
    rows = table.to_pyarrow_table().to_pylist()
    return {(r["site"], r["source_id"]): r for r in rows}


def _source_row(site, source_id, root, uri, fp, features_fp, rows, images, dups, features, now) -> dict:
    return {
        "site": str(site),
        "source_id": source_id,
        "root_uri": root,
        "annotations_uri": uri,
        "fingerprint": fp,
        "features_fingerprint": features_fp,
        "row_count": rows,
        "image_count": images,
        "duplicate_points": dups,
        "feature_count": features,
        "ingested_at": now,
    }


def _count_planned_rows(con, report: IngestReport, mermaid_plan, changed_cn) -> None:
    """Dry run: parse and validate what would be written and count its rows; write nothing."""
    if mermaid_plan is not None and mermaid_plan.action != "unchanged":
        mermaid_plan.rows = con.execute("SELECT count(*) FROM mermaid_raw").fetchone()[0]
    if changed_cn:
        try:
            counts = dict(con.execute("SELECT source_id, count(*) FROM coralnet_raw GROUP BY ALL").fetchall())
        except duckdb.Error as exc:
            raise coralnet.explain_csv_error(exc, changed_cn) from exc
        for p in report.plan:
            if p.site == Site.CORALNET and p.action != "unchanged":
                p.rows = int(counts.get(p.source_id, 0))


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _counting(reader: pa.RecordBatchReader, task) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        task.advance(batch.num_rows)
        yield batch


def _replace_partitions(lake: Lake, cursor, site: str, source_ids: list[str], report, task, known) -> None:
    """Write the query's rows replacing exactly these sources' partitions, in one Delta commit."""
    reader = cursor.to_arrow_reader(_BATCH_ROWS)
    schema = ANNOTATIONS.schema
    batches = (b.cast(schema) if b.schema != schema else b for b in _counting(reader, task))
    source = pa.RecordBatchReader.from_batches(schema, batches)
    removed = sum(int((known.get((site, s)) or {}).get("row_count") or 0) for s in source_ids)
    _write(lake, ANNOTATIONS, source, source_ids, site, report, removed)


def _write(lake: Lake, spec: TableSpec, data, source_ids: list[str], site: str, report, removed: int = 0) -> None:
    uri = lake.table_uri(spec.name)
    exists = lake.delta(spec.name) is not None
    write_deltalake(
        uri,
        data,
        partition_by=list(spec.partition_by) or None,
        mode="overwrite" if exists else "append",
        predicate=f"site = '{site}' AND source_id IN {_in_list(source_ids)}" if exists else None,
        storage_options=storage.delta_storage_options(),
        commit_properties=CommitProperties(custom_metadata=commit_metadata([f"{site}:{s}" for s in source_ids], removed)),
    )
    report.versions_written[spec.name] = lake.delta(spec.name).version()


def _overwrite_table(lake: Lake, spec: TableSpec, table: pa.Table, report, sources: list[str]) -> None:
    previous = lake.delta(spec.name)
    removed = previous.to_pyarrow_dataset().count_rows() if previous is not None else 0
    write_deltalake(
        lake.table_uri(spec.name),
        table,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=storage.delta_storage_options(),
        commit_properties=CommitProperties(custom_metadata=commit_metadata(sources, removed)),
    )
    report.versions_written[spec.name] = lake.delta(spec.name).version()


def _source_stats(lake: Lake, plans: list[SourcePlan]) -> dict[tuple[str, str], tuple[int, int, int]]:
    if not plans or lake.delta(ANNOTATIONS.name) is None:
        return {}
    con = lake.connect()
    try:
        rows = con.execute(
            """
            SELECT site, source_id, count(*), count(DISTINCT image_id), count(*) FILTER (WHERE occurrence > 1)
            FROM annotations_stored
            WHERE (site, source_id) IN (SELECT UNNEST(?), UNNEST(?))
            GROUP BY ALL
            """,
            [[str(p.site) for p in plans], [p.source_id for p in plans]],
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows}


def _list_features(mermaid_plan, cn_sources, progress) -> dict[tuple[str, str], pa.Table]:
    """Feature objects per source, found by listing each source's own prefix (never a whole bucket)."""
    jobs = []
    if mermaid_plan is not None:
        jobs.append((Site.MERMAID, MERMAID_SOURCE_ID, storage.Uri.parse(mermaid_plan.uri).parent, False))
    for source in cn_sources:
        jobs.append((Site.CORALNET, source.source_id, source.features_uri, True))

    def list_one(job) -> pa.Table:
        site, source_id, prefix, is_cn = job
        objects = list(storage.list_prefix(prefix, recursive=False))
        keys = pa.array([o.relative_key for o in objects], pa.string())
        if is_cn:
            mask = pc.and_(pc.starts_with(keys, CORALNET_FEATURE_PREFIX), pc.ends_with(keys, CORALNET_FEATURE_SUFFIX))
            image = pc.utf8_slice_codeunits(keys, len(CORALNET_FEATURE_PREFIX), -len(CORALNET_FEATURE_SUFFIX))
            feature_key = pc.binary_join_element_wise(f"s{source_id}/features/", keys, "")
        else:
            mask = pc.ends_with(keys, MERMAID_FEATURE_SUFFIX)
            image = pc.utf8_slice_codeunits(keys, 0, -len(MERMAID_FEATURE_SUFFIX))
            feature_key = keys
        n = len(objects)
        table = pa.table(
            {
                "site": pa.array([str(site)] * n, pa.string()),
                "source_id": pa.array([source_id] * n, pa.string()),
                "image_id": image,
                "feature_key": feature_key,
                "size_bytes": pa.array([o.size for o in objects], pa.int64()),
                "etag": pa.array([o.etag for o in objects], pa.string()),
            }
        ).filter(mask)
        return table.sort_by("feature_key")

    with progress.task("features: list feature objects", total=len(jobs)) as task, ThreadPoolExecutor(16) as pool:
        out = {}
        for job, table in zip(jobs, pool.map(list_one, jobs)):
            out[(str(job[0]), job[1])] = table
            task.advance()
    return out


def _listing_fingerprint(table: pa.Table) -> str:
    digest = hashlib.sha256()
    for key, size, etag in zip(*(table.column(c).to_pylist() for c in ("feature_key", "size_bytes", "etag"))):
        digest.update(f"{key}\t{size}\t{etag}\n".encode())
    return digest.hexdigest()


def _replace_features(lake: Lake, changed, report, known) -> None:
    by_site: dict[str, list] = {}
    for (site, source_id), table in changed:
        by_site.setdefault(site, []).append((source_id, table))
    for site, items in by_site.items():
        data = pa.concat_tables([t for _, t in items]) if items else FEATURES.schema.empty_table()
        removed = sum(int((known.get((site, s)) or {}).get("feature_count") or 0) for s, _ in items)
        if data.num_rows == 0 and lake.delta(FEATURES.name) is None:
            data = FEATURES.schema.empty_table()
        _write(lake, FEATURES, data.cast(FEATURES.schema), [s for s, _ in items], site, report, removed)


def summarize(lake: Lake) -> dict[str, int]:
    """Lake-wide figures for the end-of-ingest table."""
    if not lake.exists():
        return {}
    con = lake.connect()
    try:
        row = con.execute(load_sql("ingest/summary")).fetchone()
        names = [d[0] for d in con.description]
    finally:
        con.close()
    return {n: int(v or 0) for n, v in zip(names, row)}
