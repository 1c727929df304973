"""What the next ingest heals: damaged or missing files of the lake version, and what a dead ingest left.

``find_damage`` maps the data files of the latest lake version that are missing or of the wrong size
(and with ``deep``, unreadable or short of the rows ``sources`` records) to the sources they belong to,
so ingest can read those sources again. ``clear_leftovers`` deletes the files the ingest that died
holding the writer lock wrote but never committed (their names carry its token) and restores every
table that is ahead of the latest lake version (the commits of an ingest that never completed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deltalake import CommitProperties, write_deltalake

from mermaid_data import health, locks, storage
from mermaid_data.errors import LakeDamagedError, LakeError
from mermaid_data.lake import INGEST_TABLE_NAMES, Lake
from mermaid_data.tables import (
    ANNOTATIONS,
    BENTHIC_ATTRIBUTES,
    FEATURES,
    GROWTH_FORMS,
    LABEL_MAPPINGS,
    SOURCES,
    TABLES,
    TAXONOMY_SOURCE_ID,
    Site,
)

TAXONOMY_TABLE_NAMES = frozenset(spec.name for spec in (BENTHIC_ATTRIBUTES, GROWTH_FORMS, LABEL_MAPPINGS))


@dataclass
class Damage:
    """What the lake version references that is missing or damaged, and so must be ingested again."""

    sources: set[tuple[str, str]] = field(default_factory=set)  # annotations partitions
    features: set[tuple[str, str]] = field(default_factory=set)  # feature listings
    taxonomy: bool = False
    notes: list[str] = field(default_factory=list)
    first: health.DamagedFile | None = None

    def require_inputs(self, report, have_taxonomy: bool, lake: Lake) -> None:
        """Refuse when a damaged source is not among this run's inputs (it cannot be healed)."""
        given = {(str(p.site), p.source_id) for p in report.plan}
        missing = sorted((self.sources | self.features) - given)
        if self.taxonomy and not have_taxonomy:
            missing.append(("api", TAXONOMY_SOURCE_ID))
        if not missing:
            return
        names = ", ".join(f"{site}/{sid}" for site, sid in missing[:5]) + (" …" if len(missing) > 5 else "")
        what = f"{self.first.uri} {self.first.problem}; " if self.first else ""
        raise LakeDamagedError(
            f"data of {names} is missing or damaged ({what}this run was not given {'it' if len(missing) == 1 else 'them'})",
            where=str(lake.uri),
            fix="run `mermaid-data ingest --repair` with the sources that hold them (--mermaid, --coralnet ROOT, --api) "
            "to ingest them again",
        )


def find_damage(lake: Lake, known: dict, *, deep: bool) -> Damage:
    """Files of the latest lake version that are missing or of the wrong size (and with ``deep`` also
    unreadable, or fewer rows than ``sources`` records), mapped to the sources they belong to."""
    damage = Damage()
    pinned = {}
    versions = lake.versions()
    for name in INGEST_TABLE_NAMES:
        version = versions.get(name)
        if version is None:
            continue
        try:
            lake.delta(name, version)
            pinned[name] = version
        except LakeError:  # a log file was moved aside after damage: heal from the table as it is now
            if not deep:
                raise
            current = lake.delta(name)
            if current is not None:
                pinned[name] = current.version()
            damage.notes.append(f"table {name}: lake version names version {version}, which is gone; "
                                f"repairing from version {pinned.get(name)}")
            _everything(damage, name, known)
    for found in health.find_damaged_files(lake, pinned, deep=deep):
        damage.first = damage.first or found
        damage.notes.append(f"repair: {found.uri} {found.problem}")
        _mark(damage, found.table, found.partition)
    if deep and ANNOTATIONS.name in pinned:
        counted: dict[tuple[str, str], int] = {}
        for item in health.referenced_files(lake, ANNOTATIONS.name, pinned[ANNOTATIONS.name]):
            key = (item["partition"].get("site"), item["partition"].get("source_id"))
            counted[key] = counted.get(key, 0) + int(item["rows"] or 0)
        for (site, sid), row in known.items():
            if site in (Site.MERMAID, Site.CORALNET) and int(row.get("row_count") or 0) != counted.get((site, sid), 0):
                damage.sources.add((site, sid))
                damage.notes.append(f"repair: {site}/{sid} holds {counted.get((site, sid), 0):,} rows where sources "
                                    f"records {int(row.get('row_count') or 0):,}")
    return damage


def _mark(damage: Damage, table: str, partition: dict) -> None:
    key = (partition.get("site"), partition.get("source_id"))
    if table == ANNOTATIONS.name:
        damage.sources.add(key)
    elif table == FEATURES.name:
        damage.features.add(key)
    elif table in TAXONOMY_TABLE_NAMES:
        damage.taxonomy = True


def _everything(damage: Damage, table: str, known: dict) -> None:
    for site, sid in known:
        if site == "api":
            if table in TAXONOMY_TABLE_NAMES:
                damage.taxonomy = True
        elif table == ANNOTATIONS.name:
            damage.sources.add((site, sid))
        elif table == FEATURES.name:
            damage.features.add((site, sid))


def behind_lake_version(lake: Lake) -> bool:
    """True when a table's latest version is not the one the latest lake version records."""
    latest = lake.lake_version()
    if latest is None:
        return False
    raw = lake.raw_versions()
    return any(raw.get(name) != version for name, version in latest.tables.items() if name != SOURCES.name)


def clear_leftovers(lake: Lake, writer: locks.Held) -> list[str]:
    """Delete the uncommitted files of the ingest that died holding the lock, and roll back the commits
    of ingests that never completed (tables ahead of the latest lake version). Returns what was done."""
    notes = []
    if writer.previous is not None:
        table = lake.delta(ANNOTATIONS.name)
        committed = {item["path"] for item in health.referenced_files(lake, ANNOTATIONS.name, table.version())} \
            if table is not None else set()
        base = storage.Uri.parse(lake.table_uri(ANNOTATIONS.name))
        token = writer.previous.token
        orphans = [o.relative_key for o in storage.list_prefix(base)
                   if token in o.relative_key and o.relative_key not in committed]
        for rel in orphans:
            _delete(base.join(*rel.split("/")))
        if orphans:
            notes.append(f"deleted {len(orphans)} uncommitted file(s) of the ingest that died ({writer.previous.describe()})")
    latest = lake.lake_version()
    if latest is None:
        return notes
    for name in INGEST_TABLE_NAMES:
        if name == SOURCES.name:
            continue
        table = lake.delta(name)
        if table is None:
            continue
        base = latest.tables.get(name)
        if base is not None and table.version() <= base:
            continue
        properties = CommitProperties(custom_metadata={"mermaid.sources": "rollback of an unfinished ingest",
                                                       "mermaid.rows_removed": "0"})
        if base is None:  # created by an ingest that never completed
            spec = TABLES[name]
            write_deltalake(lake.table_uri(name), spec.schema.empty_table(), mode="overwrite",
                            partition_by=list(spec.partition_by) or None, schema_mode="overwrite",
                            storage_options=storage.delta_storage_options(), commit_properties=properties)
        else:
            table.restore(base, commit_properties=properties)
        notes.append(f"rolled back {name} from version {table.version()} to the lake version's "
                     f"{'empty table' if base is None else f'version {base}'} (an ingest that did not complete)")
    return notes


def _delete(uri: storage.Uri) -> None:
    if uri.is_s3:
        storage.s3_client().delete_object(Bucket=uri.bucket, Key=uri.key)
    else:
        Path(uri.key).unlink(missing_ok=True)
