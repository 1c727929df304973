"""Ingest: sources → Delta tables, one commit per table per changed site, idempotent and crash-safe.

Every input is read and checked (values and column types) before the first commit, and a source or
taxonomy table that would shrink to nothing is refused unless ``allow_shrink``. Order of commits (each
atomic): taxonomy tables → annotations (per site) → features → ``sources``, whose commit records every
table's version: that commit is the new **lake version**, the state readers see. A crash before it
leaves commits no lake version names; the next ingest rolls them back and redoes the work. An unchanged
source (same fingerprint) writes nothing, so a rerun of a finished ingest adds no version.

An ingest holds the lake's writer lock (``locks.exclusive``): a second ingest or a vacuum fails at once
with one line and changes nothing. Its data files carry the lock's token, so the next ingest deletes the
files a killed one wrote but never committed. Data files that a lake version references and that are
missing (or with ``repair``, unreadable or short of rows) make their sources be ingested again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from mermaid_data import duck, health, locks, recovery, storage
from mermaid_data.delta_files import PartitionWriter
from mermaid_data.errors import (
    LakeBusyError,
    MermaidDataError,
    ShrinkError,
    SourceFormatError,
    SourceUnreachableError,
)
from mermaid_data.lake import INGEST_TABLE_NAMES, LAKE_VERSION_KEY, Lake, commit_metadata
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.settings import get_settings
from mermaid_data.sources import coralnet, mermaid
from mermaid_data.sources.api import Taxonomy, fetch_taxonomy
from mermaid_data.sqlfiles import load_sql, sql_literal
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
#: A source whose row count falls by more than this fraction is reported (it is not refused).
LARGE_DROP = 0.5


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
    warnings: list[str] = field(default_factory=list)  # large drops, repairs, rolled-back leftovers

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
    allow_shrink: bool = False,
    repair: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the lake up to date with the given sources (None skips that source).

    ``allow_shrink`` accepts a source or taxonomy table that now has no rows (otherwise refused);
    ``repair`` also reads every data file the lake version references and re-ingests the sources whose
    files are unreadable or hold fewer rows than recorded (missing files are always healed).
    """
    options = {"mermaid_uri": mermaid_uri, "coralnet_uri": coralnet_uri, "coralnet_sources": coralnet_sources,
               "api": api, "allow_shrink": allow_shrink, "repair": repair, "progress": progress or SilentProgress()}
    if dry_run:
        return _ingest(lake, None, dry_run=True, **options)
    with locks.exclusive(lake.uri, "writer", "mermaid-data ingest") as writer:
        try:
            return _ingest(lake, writer, dry_run=False, **options)
        except CommitFailedError as exc:
            raise LakeBusyError(
                f"another process committed to the lake while this ingest was writing ({str(exc).splitlines()[0]})",
                where=str(lake.uri),
                fix="make sure every writer uses mermaid-data (it serializes writers), then run the ingest again; "
                "the lake version is unchanged and the next ingest rolls back this one's commits",
            ) from exc


def _ingest(lake: Lake, writer: locks.Held | None, *, mermaid_uri, coralnet_uri, coralnet_sources, api, dry_run,
            allow_shrink, repair, progress) -> IngestReport:
    settings = get_settings()
    now = datetime.now(UTC)
    report = IngestReport(dry_run=dry_run)
    if not dry_run:
        for name in INGEST_TABLE_NAMES:  # never build on a damaged log
            damaged = health.check_log(lake, name)
            if damaged is not None:
                raise damaged
    known = _known_sources(lake, repair=repair)
    damage = recovery.Damage() if dry_run else recovery.find_damage(lake, known, deep=repair)
    new_source_rows: dict[tuple[str, str], dict] = {}

    # ---- plan: fingerprints of everything, so a bad or unreachable input fails before any write
    taxonomy: Taxonomy | None = None
    # The MERMAID export's content hash runs in the background while the taxonomy is fetched.
    plan_pool = ThreadPoolExecutor(1, thread_name_prefix="fingerprint")
    mm_uri = storage.Uri.parse(mermaid_uri) if mermaid_uri else None
    mm_fingerprint = plan_pool.submit(mermaid.fingerprint, mm_uri) if mm_uri is not None else None
    plan_pool.shutdown(wait=False)
    if api:
        with progress.task("taxonomy: fetch MERMAID benthic attributes, growth forms, label mappings"):
            taxonomy = fetch_taxonomy(api, timeout_s=settings.network_timeout_s, retries=settings.network_retries)
        fp = taxonomy.fingerprint()
        prior = known.get(("api", TAXONOMY_SOURCE_ID))
        report.taxonomy_action = "new" if prior is None else ("unchanged" if prior["fingerprint"] == fp else "changed")
        if damage.taxonomy and report.taxonomy_action == "unchanged":
            report.taxonomy_action = "repair"
        new_source_rows[("api", TAXONOMY_SOURCE_ID)] = dict(prior) if report.taxonomy_action == "unchanged" else _source_row(
            "api", TAXONOMY_SOURCE_ID, api, api, fp, "", taxonomy.label_mappings.num_rows, 0, 0, 0, now
        )

    mermaid_plan: SourcePlan | None = None
    if mm_uri is not None:
        uri = mm_uri
        try:
            fp = mm_fingerprint.result()
        except FileNotFoundError:
            raise SourceUnreachableError(
                "MERMAID annotations file not found (or no part matches the pattern)",
                where=str(uri),
                fix="pass --mermaid URI of mermaid_confirmed_annotations.parquet, or a glob of its parts such as "
                "PREFIX/*.parquet (or MERMAID_ANNOTATIONS_URI)",
            ) from None
        mermaid_plan = SourcePlan(Site.MERMAID, MERMAID_SOURCE_ID, str(uri), fp,
                                  _action(known, Site.MERMAID, MERMAID_SOURCE_ID, fp, damage))
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
                           _action(known, Site.CORALNET, source.source_id, fp, damage))
            )
    damage.require_inputs(report, taxonomy is not None, lake)

    changed_cn = [s for s, p in zip(cn_sources, report.plan[1 if mermaid_plan else 0:]) if p.action != "unchanged"]

    mm_con = duck.connect() if mermaid_plan is not None and mermaid_plan.action != "unchanged" else None
    cn_con = duck.connect() if changed_cn else None
    features_pool = ThreadPoolExecutor(1, thread_name_prefix="list-features")
    try:
        # ---- stage: read, check and type every changed input once, before any write. The two sites
        # are independent (one DuckDB connection each), so MERMAID is checked in a second thread.
        stats: dict[tuple[str, str], tuple[int, int, int]] = {}
        cn_rows, cn_occurrence = None, None
        with ThreadPoolExecutor(1, thread_name_prefix="mermaid-check") as pool:
            mm_future = pool.submit(_stage_mermaid, mm_con, mermaid_plan.uri) if mm_con is not None else None
            try:
                if cn_con is not None:
                    cn_rows, cn_occurrence, cn_stats = _stage_coralnet(cn_con, changed_cn, progress)
                    stats.update(cn_stats)
            except BaseException:
                if mm_future is not None:
                    mm_future.result()  # a bad MERMAID export is reported first, as the plan lists it first
                raise
            if mm_future is not None:
                with progress.task("mermaid: read and check"):
                    stats.update(mm_future.result())
        taxonomy_tables = _stage_taxonomy(taxonomy, api) if taxonomy is not None and \
            report.taxonomy_action != "unchanged" else {}
        # ---- nothing lost: a source or taxonomy table emptied is refused; a large drop is reported
        report.warnings += _check_shrink(lake, report, known, stats, taxonomy_tables, allow_shrink, api or "")

        if dry_run:
            for p in report.plan:
                if p.action != "unchanged":
                    p.rows = stats.get((p.site, p.source_id), (0, 0, 0))[0]
            return report

        # ---- every input is checked: clear what dead ingests left, then write
        report.warnings += damage.notes
        report.warnings += recovery.clear_leftovers(lake, writer)
        for warning in report.warnings:
            progress.log(f"warning: {warning}")
        tag = writer.owner.token
        # (the feature listing runs meanwhile: it is I/O, the writes are CPU)
        listings_future = features_pool.submit(_list_features, mermaid_plan, cn_sources, SilentProgress())
        for spec, table in taxonomy_tables.items():
            _overwrite_table(lake, spec, table, report, ["taxonomy"])

        if mermaid_plan is not None and mermaid_plan.action != "unchanged":
            with progress.task("mermaid: write annotations") as task:
                def fill_mermaid(writer: PartitionWriter) -> int:
                    rows = writer.copy_from_duckdb(mm_con, load_sql("ingest/mermaid_annotations"), {"ingested_at": now},
                                                   partition={"site": Site.MERMAID.value, "source_id": MERMAID_SOURCE_ID})
                    task.advance(rows)
                    return rows

                _replace_annotations(lake, Site.MERMAID, [MERMAID_SOURCE_ID], fill_mermaid, report, known, tag)

        if changed_cn:
            with progress.task(f"coralnet: write annotations of {len(changed_cn)} sources") as task:
                _replace_annotations(lake, Site.CORALNET, [s.source_id for s in changed_cn],
                                     partial(_submit_coralnet, rows=cn_rows, occurrence=cn_occurrence, ingested_at=now,
                                             task=task), report, known, tag)

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
        for key in damage.features:  # a listing whose files are damaged is written again
            if key in new_source_rows:
                new_source_rows[key] = {**new_source_rows[key], "features_fingerprint": "repair"}

        # ---- features: list each source's own prefix; replace the partitions whose listing changed
        listings = listings_future.result()
        progress.log(f"features: listed {sum(t.num_rows for t in listings.values()):,} feature objects "
                     f"under {len(listings):,} source prefixes")
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

        # ---- sources last: the record that the work above is complete, and the new lake version
        merged = {**{k: v for k, v in known.items()}, **new_source_rows}
        if report.versions_written or any(merged.get(k) != known.get(k) for k in merged) or \
                recovery.behind_lake_version(lake):
            table = pa.Table.from_pylist(sorted(merged.values(), key=lambda r: (r["site"], r["source_id"])), schema=SOURCES.schema)
            tables = {name: v for name, v in lake.raw_versions().items() if name in INGEST_TABLE_NAMES and name != SOURCES.name}
            _overwrite_table(lake, SOURCES, table, report,
                             sorted({k[1] for k in new_source_rows if new_source_rows[k] != known.get(k)}),
                             extra={LAKE_VERSION_KEY: json.dumps(tables, sort_keys=True)})
    finally:
        features_pool.shutdown(wait=True, cancel_futures=True)
        for con in (mm_con, cn_con):
            if con is not None:
                con.close()

    report.summary = summarize(lake)
    return report


# ---- nothing lost: the shrink guard ---------------------------------------------------------------


def _table_rows(lake: Lake, name: str) -> int:
    version = lake.versions().get(name)
    if version is None:
        return 0
    return sum(int(item["rows"] or 0) for item in health.referenced_files(lake, name, version))


def _check_shrink(lake: Lake, report: IngestReport, known: dict, stats: dict, taxonomy_tables: dict,
                  allow_shrink: bool, api: str) -> list[str]:
    """Refuse a source or taxonomy table that would shrink to nothing (unless ``allow_shrink``); return
    a line for each one that shrinks by more than LARGE_DROP."""
    emptied, warnings = [], []
    changes = []
    for p in report.plan:
        if p.action == "unchanged":
            continue
        before = int((known.get((p.site, p.source_id)) or {}).get("row_count") or 0)
        changes.append((f"{p.site}/{p.source_id}", p.uri, before, stats.get((p.site, p.source_id), (0, 0, 0))[0]))
    for spec, table in taxonomy_tables.items():
        changes.append((f"taxonomy table {spec.name}", api or "the MERMAID API", _table_rows(lake, spec.name), table.num_rows))
    for what, uri, before, after in changes:
        if before and not after:
            emptied.append((what, uri, before))
        elif before and after < before * (1 - LARGE_DROP):
            warnings.append(f"{what} shrinks from {before:,} to {after:,} rows (-{100 - after * 100 // before}%)")
    if emptied and not allow_shrink:
        what, uri, before = emptied[0]
        more = f" (and {len(emptied) - 1} more)" if len(emptied) > 1 else ""
        raise ShrinkError(
            f"would replace the {before:,} rows of {what} with none{more}: the input has no rows; nothing was written",
            where=uri,
            fix="if it really is empty now, run again with --allow-shrink (Python: allow_shrink=True); otherwise "
            "check the file or the API page",
        )
    warnings += [f"{what} is now empty (was {before:,} rows; --allow-shrink)" for what, _uri, before in emptied]
    return warnings


def _stage_taxonomy(taxonomy: Taxonomy, api: str) -> dict[TableSpec, pa.Table]:
    """The taxonomy tables in their stored shape, before any write (a value that does not fit stops here)."""
    out = {}
    for spec, table in ((BENTHIC_ATTRIBUTES, taxonomy.benthic_attributes), (GROWTH_FORMS, taxonomy.growth_forms),
                        (LABEL_MAPPINGS, taxonomy.label_mappings)):
        try:
            out[spec] = table.select(spec.schema.names).cast(spec.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
            raise SourceFormatError(f"{spec.name} does not fit the table's columns ({exc})", where=api,
                                    fix="check the API pages (docs/lake.md, 'Sources')") from exc
    return out


def _action(known: dict, site: str, source_id: str, fingerprint: str, damage: recovery.Damage) -> str:
    prior = known.get((site, source_id))
    if prior is None:
        return "new"
    if prior["fingerprint"] != fingerprint:
        return "changed"
    return "repair" if (str(site), source_id) in damage.sources else "unchanged"


def _known_sources(lake: Lake, *, repair: bool = False) -> dict[tuple[str, str], dict]:
    try:
        table = lake.read(SOURCES.name)
    except MermaidDataError:
        if not repair:
            raise
        return {}  # the record itself is damaged: every source is ingested as new
    if table is None:
        return {}
    rows = table.to_pylist()
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


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


def _replace_annotations(lake: Lake, site: str, source_ids: list[str], fill: Callable[[PartitionWriter], int],
                         report, known, tag: str) -> None:
    """Replace exactly these sources' partitions of ``annotations`` with the files ``fill`` writes
    (returning their row count), in one Delta commit (files encoded in parallel, see delta_files).
    File names carry ``tag`` (the writer lock's token), so a killed ingest's files can be found."""
    removed = sum(int((known.get((site, s)) or {}).get("row_count") or 0) for s in source_ids)
    table = lake.delta(ANNOTATIONS.name)
    writer = PartitionWriter(lake.table_uri(ANNOTATIONS.name), ANNOTATIONS, tag=tag)
    try:
        added = fill(writer)
        metadata = {**commit_metadata([f"{site}:{s}" for s in source_ids], removed), "mermaid.rows_added": str(added)}
        writer.commit(
            table,
            replace={"site": [str(site)], "source_id": list(source_ids)},
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
    except BaseException:
        writer.abort()
        raise
    report.versions_written[ANNOTATIONS.name] = lake.delta(ANNOTATIONS.name).version()


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


def _overwrite_table(lake: Lake, spec: TableSpec, table: pa.Table, report, sources: list[str],
                     extra: dict[str, str] | None = None) -> None:
    previous = lake.delta(spec.name)
    removed = sum(int(item["rows"] or 0) for item in health.referenced_files(lake, spec.name, previous.version())) \
        if previous is not None else 0
    write_deltalake(
        lake.table_uri(spec.name),
        table,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=storage.delta_storage_options(),
        commit_properties=CommitProperties(custom_metadata={**commit_metadata(sources, removed), **(extra or {})}),
    )
    report.versions_written[spec.name] = lake.delta(spec.name).version()


def _stage_mermaid(con: duckdb.DuckDBPyConnection, uri: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    mermaid.register_raw_view(con, uri)
    mermaid.check_types(con, uri)
    _number_duplicates(con, "mermaid", mermaid.check(con))
    return _stage_stats(con, "mermaid")


def _stage_coralnet(con: duckdb.DuckDBPyConnection, sources, progress) -> tuple[pa.Table, np.ndarray, dict]:
    """CoralNet rows, their occurrence numbers and per-source stats, all before any write.

    CoralNet's part of ingest runs on Arrow arrays rather than SQL, for speed: parsing is the fast
    path of ``coralnet.read_rows``, duplicate points are found with one sort of 64-bit point hashes
    (only candidates go through the window of sql/ingest/coralnet_occurrence.sql), and the rows
    handed to the Delta writer are built with Arrow casts (``_coralnet_table``).
    """
    with progress.task(f"coralnet: read and check {len(sources)} sources"):
        rows = coralnet.read_rows(con, sources)
        cols = {name: rows.column(name).to_numpy() for name in ("source_key", "image_id", "row", "col")}
        occurrence = np.ones(rows.num_rows, dtype=np.int32)
        candidates = _candidate_duplicates(cols)
        if candidates.size:
            con.register("occurrence_candidates", pa.table({
                "row_index": pa.array(candidates, pa.int64()),
                **{name: rows.column(name).take(pa.array(candidates)) for name in rows.column_names},
            }))
            numbered = con.execute(load_sql("ingest/coralnet_occurrence")).to_arrow_table()
            con.unregister("occurrence_candidates")
            occurrence[numbered.column("row_index").to_numpy()] = numbered.column("occurrence").to_numpy()
        con.register("coralnet_rows", pa.table({"source_key": rows.column("source_key"),
                                                "image_id": rows.column("image_id"),
                                                "occurrence": pa.array(occurrence)}))
        stats = {(Site.CORALNET.value, r[0]): (int(r[1]), int(r[2]), int(r[3]))
                 for r in con.execute(load_sql("ingest/coralnet_stats")).fetchall()}
        con.unregister("coralnet_rows")
    return rows, occurrence, stats


def _source_spans(keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of equal source keys (rows come grouped by source)."""
    return list(pairwise([0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(keys)]))


def _candidate_duplicates(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Row indices that may be duplicate points, found source by source (small sorts are
    cache-friendly, and numpy sorts in parallel threads)."""
    keys = cols["source_key"]

    def one(span: tuple[int, int]) -> np.ndarray:
        a, b = span
        if b - a < 2:
            return np.empty(0, dtype=np.int64)
        part = slice(a, b)
        return a + _repeated_points(_point_hash(keys[part], cols["image_id"][part], cols["row"][part], cols["col"][part]))

    with ThreadPoolExecutor(2, thread_name_prefix="duplicates") as pool:
        found = list(pool.map(one, _source_spans(keys)))
    return np.concatenate([np.empty(0, dtype=np.int64), *found]).astype(np.int64)


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _point_hash(source_key: np.ndarray, image_id: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """A 64-bit hash per point (source, image, row, col): equal points hash equally (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        h = image_id.astype(np.uint64) * _MIX[0]
        h ^= ((row.astype(np.uint64) << np.uint64(16)) | col.astype(np.uint64)) * _MIX[1]
        h ^= source_key.astype(np.uint64) * _MIX[2]
        h ^= h >> np.uint64(29)
        h *= _MIX[0]
        h ^= h >> np.uint64(32)
    return h


def _repeated_values(hashes: np.ndarray) -> np.ndarray:
    """The hash values that occur more than once, sorted and unique (one sort)."""
    ordered = np.sort(np.asarray(hashes, dtype=np.uint64))
    return np.unique(ordered[1:][ordered[1:] == ordered[:-1]])


def _repeated_points(hashes: np.ndarray) -> np.ndarray:
    """Indices of the rows whose hash occurs more than once (candidate duplicate points), ascending."""
    repeated = _repeated_values(hashes)
    if repeated.size == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(repeated, hashes), repeated.size - 1)
    return np.flatnonzero(repeated[pos] == hashes)


def _submit_coralnet(writer: PartitionWriter, rows: pa.Table, occurrence: np.ndarray, ingested_at: datetime,
                     task) -> int:
    """Hand the CoralNet rows to ``writer`` as one file per source, split at ``_BATCH_ROWS``; each file's
    table is built by the writer's thread (``_coralnet_table``). Returns the number of rows."""
    keys = rows.column("source_key").to_numpy()
    for first, end in _source_spans(keys):
        partition = {"site": Site.CORALNET.value, "source_id": str(int(keys[first]))}
        for start in range(first, end, _BATCH_ROWS):
            n = min(_BATCH_ROWS, end - start)
            writer.submit(partition, partial(_coralnet_table, rows.slice(start, n), occurrence[start:start + n], ingested_at))
            task.advance(n)
    return rows.num_rows


def _coralnet_table(part: pa.Table, occurrence: np.ndarray, ingested_at: datetime) -> pa.Table:
    """CoralNet rows of one source in the stored ``annotations`` shape (the partition columns left out:
    they are in the file's path). BA/GF stay NULL: CoralNet labels are mapped in the
    ``annotations_mapped`` view, so a new mapping never needs a re-ingest."""
    schema = ANNOTATIONS.schema
    n = part.num_rows
    text_null = pa.nulls(n, pa.string())
    return pa.table(
        {
            "image_id": pc.cast(part.column("image_id"), pa.string()),
            "row": pc.cast(part.column("row"), pa.int32()),
            "col": pc.cast(part.column("col"), pa.int32()),
            "label_id": pc.cast(part.column("label_id"), pa.int64()),
            "benthic_attribute_id": text_null,
            "growth_form_id": text_null,
            "annotation_id": text_null,
            "occurrence": pa.array(occurrence, pa.int32()),
            "updated_on": pa.nulls(n, schema.field("updated_on").type),
            "ingested_at": pa.repeat(pa.scalar(ingested_at, schema.field("ingested_at").type), n),
        }
    )


def _number_duplicates(con: duckdb.DuckDBPyConnection, site: str, hashes: np.ndarray) -> None:
    """Fill table ``occurrence_<site>``: occurrence numbers of the rows that may be duplicate points.

    Numbering every row with a window over (image, row, col) sorts all rows by a wide key; instead
    one numpy sort of the 64-bit point hashes finds the few hashes that repeat, and only those rows go
    through the window (sql/ingest/<site>_occurrence.sql). Every other row has occurrence 1.
    """
    repeated = _repeated_values(hashes)
    con.register("repeated_hashes_arrow", pa.table({"point_hash": pa.array(repeated, pa.uint64())}))
    con.execute("CREATE OR REPLACE TEMP TABLE repeated_hashes AS SELECT point_hash FROM repeated_hashes_arrow")
    con.unregister("repeated_hashes_arrow")
    con.execute(load_sql(f"ingest/{site}_occurrence"))


def _stage_stats(con: duckdb.DuckDBPyConnection, site: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Rows, images and duplicate points per staged source (sql/ingest/<site>_stats.sql)."""
    rows = con.execute(load_sql(f"ingest/{site}_stats")).fetchall()
    return {(site, r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


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
    except duckdb.Error as exc:
        damaged = lake.damage(exc, lake.versions())
        if damaged is None:
            raise
        raise damaged from exc
    finally:
        con.close()
    return {n: int(v or 0) for n, v in zip(names, row)}
