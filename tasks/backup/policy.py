"""Backups on paper (pure): the manifest, what counts as a backup, and which old backups retention may delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field

MANIFEST = "manifest.json"
RUNGS_QUICK = ["manifest", "stored-object", "decompression", "archive-read"]
RUNGS_FULL = RUNGS_QUICK + ["restore", "table-checks", "amcheck", "smoke-queries"]


class TableFigures(BaseModel):
    rows: int                 # count(*) in the dump's snapshot
    content_hash: str         # sum of every row's hash in the snapshot: order-independent, so a restore can match it
    hash_method: str          # portable_column_hashes | hashtextextended (column_hashes, hash_record_extended in older manifests)
    bytes: int                # the table's size on disk at the snapshot


class Rung(BaseModel):
    name: str
    ok: bool
    seconds: float = 0.0
    detail: str = ""


class Verification(BaseModel):
    at: datetime
    mode: str                 # quick | full
    ok: bool
    failed_rung: str | None = None
    rungs: list[Rung] = Field(default_factory=list)
    flow_run_id: str | None = None


class BackupManifest(BaseModel):
    """Written last: a backup without one is incomplete and is never listed, restored or counted."""

    format_version: int = 1
    backup_id: str
    target: str
    database: str
    archive_key: str
    archive_bytes: int
    archive_sha256: str
    raw_bytes: int
    raw_sha256: str | None = None   # older manifests; the raw dump is now covered by zstd's frame checksum
    compression: str = "zstd"
    compression_level: int = 1
    encrypted: bool = False
    encryption_key: str | None = None   # the name of the Prefect Secret holding the key, never the key
    part_size: int
    pg_dump_version: str
    server_version: str
    archive_version: str
    snapshot_id: str
    snapshot_at: datetime
    started_at: datetime
    finished_at: datetime
    steps_s: dict[str, float] = Field(default_factory=dict)
    tables: dict[str, TableFigures]
    sequences: dict[str, int] = Field(default_factory=dict)      # each sequence's value as the snapshot saw it
    without_data: dict[str, str] = Field(default_factory=dict)  # relations pg_dump writes no data for, and why
    flow_run_id: str | None = None
    verifications: list[Verification] = Field(default_factory=list)

    @property
    def verified(self) -> bool | None:
        """True if the last verification passed, False if it failed, None if never verified."""
        return self.verifications[-1].ok if self.verifications else None

    @property
    def ever_verified(self) -> bool:
        return any(v.ok for v in self.verifications)


@dataclass(frozen=True)
class Relation:
    """A relation pg_dump writes data for: r (table or partition), m (materialized view), S (sequence)."""
    name: str          # format('%I.%I'): ready for SQL
    schema: str        # as the catalog spells it: as the archive's table of contents does
    relname: str
    kind: str
    has_data: bool     # false for an unpopulated materialized view: nothing to dump, and it must not be read
    bytes: int = 0


# what pg_dump writes for each kind's data (pg_dump.c: dumpTableData, refreshMatViewData, dumpSequenceData)
ARCHIVE_DATA_ENTRY = {"r": "TABLE DATA", "m": "MATERIALIZED VIEW DATA", "S": "SEQUENCE SET"}
LARGE_OBJECT_ENTRIES = {"BLOBS", "BLOB METADATA", "LARGE OBJECTS"}


def missing_from_archive(relations: list[Relation], large_objects: int, entries: set[tuple[str, str, str]]) -> list[str]:
    """What the snapshot has data for but the archive's table of contents does not carry; `entries` are the
    archive's (desc, schema, name). Empty when they agree."""
    missing = []
    for r in relations:
        if r.has_data and (ARCHIVE_DATA_ENTRY[r.kind], r.schema, r.relname) not in entries:
            missing.append(f"{r.name} ({ARCHIVE_DATA_ENTRY[r.kind]})")
    if large_objects and not any(desc in LARGE_OBJECT_ENTRIES for desc, _, _ in entries):
        missing.append(f"{large_objects} large objects (BLOBS)")
    return missing


def backup_id_for(target: str, at: datetime, run_id: str) -> str:
    """Sortable by time, unique per run: <target>-<UTC timestamp>-<first 8 characters of the flow run id>."""
    return f"{target}-{at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{run_suffix(run_id)}"


def archive_key(target: str, backup_id: str, encrypted: bool) -> str:
    return f"{target}/{backup_id}/archive.pgdump.zst" + (".enc" if encrypted else "")


def manifest_key(target: str, backup_id: str) -> str:
    return f"{target}/{backup_id}/{MANIFEST}"


def major_version(server_version: str) -> int:
    """'15.20 (Debian 15.20-0+deb12u1)' -> 15; '9.6.24' -> 9."""
    import re

    match = re.match(r"(\d+)", server_version)
    return int(match.group(1)) if match else 0


def check_versions(pg_dump_major: int, server_major: int) -> str | None:
    """Why pg_dump cannot dump this server, or None: pg_dump refuses servers newer than its own major version."""
    if pg_dump_major < server_major:
        return (f"pg_dump {pg_dump_major} is older than the server's PostgreSQL {server_major}: install the "
                f"PostgreSQL {server_major} client tools (pg_dump cannot dump a newer server)")
    return None


@dataclass
class Retention:
    keep: list[tuple[str, str]]     # (backup_id, why)
    delete: list[tuple[str, str]]   # (backup_id, why)


def plan_retention(manifests: list[BackupManifest], now: datetime, keep_days: int = 7, keep_verified: int = 3) -> Retention:
    """Which complete backups to keep and delete, as pgBackRest and Barman would:

    - nothing newer than the newest verified backup is ever deleted (an unverified newest backup stays);
    - the newest `keep_verified` verified backups always stay, whatever their age;
    - backups younger than `keep_days` stay;
    - only backups older than the newest verified one and outside both rules are deleted.
    With no verified backup at all, nothing is deleted.
    """
    ordered = sorted(manifests, key=lambda m: m.started_at, reverse=True)
    verified = [m for m in ordered if m.verified]
    keep: list[tuple[str, str]] = []
    delete: list[tuple[str, str]] = []
    if not verified:
        return Retention([(m.backup_id, "no verified backup exists yet: nothing is deleted") for m in ordered], [])
    newest_verified = verified[0]
    protected = {m.backup_id for m in verified[:keep_verified]}
    cutoff = now - timedelta(days=keep_days)
    for m in ordered:
        if m.started_at >= newest_verified.started_at:
            keep.append((m.backup_id, "newest verified" if m is newest_verified else "newer than the newest verified"))
        elif m.backup_id in protected:
            keep.append((m.backup_id, f"one of the {keep_verified} newest verified"))
        elif m.started_at > cutoff:
            keep.append((m.backup_id, f"younger than {keep_days} days"))
        else:
            age = (now - m.started_at).days
            state = "failed verification" if m.verified is False else ("verified" if m.verified else "unverified")
            delete.append((m.backup_id, f"{age} days old, {state}, older than the newest verified backup"))
    return Retention(keep, delete)


def run_suffix(run_id: str) -> str:
    """The part of a backup's id that names the run which made it (see backup_id_for)."""
    return run_id.replace("-", "")[:8]


def leftovers_of_run(incomplete: dict[str, dict[str, Any]], uploads: list[dict[str, Any]], target: str,
                     run_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """What one run left half done: its backups without a manifest, and its unfinished uploads (by the run's id in
    the backup's id). A complete backup (manifest written last) is never among them."""
    suffix = f"-{run_suffix(run_id)}"
    ids = sorted(b for b in incomplete if b.endswith(suffix))
    mine = [u for u in uploads if len(parts := u["key"].split("/")) >= 2 and parts[0] == target
            and parts[1].endswith(suffix)]
    return ids, mine


def group_backups(objects: list[tuple[str, int, datetime]], target: str) -> dict[str, dict[str, Any]]:
    """Backup directories of a target: {backup_id: {"keys": [...], "has_manifest": bool, "modified": datetime}}."""
    found: dict[str, dict[str, Any]] = {}
    for key, _size, modified in objects:
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != target:
            continue
        entry = found.setdefault(parts[1], {"keys": [], "has_manifest": False, "modified": modified})
        entry["keys"].append(key)
        entry["has_manifest"] |= parts[2] == MANIFEST
        entry["modified"] = max(entry["modified"], modified)
    return found


def _mib(n: int) -> float:
    return round(n / 1024 / 1024, 1)


def backup_report_fields(manifest: BackupManifest) -> dict[str, Any]:
    """Summary, figures and tables of a backup run's report."""
    seconds = max((manifest.finished_at - manifest.started_at).total_seconds(), 1e-6)
    figures = {"backup_id": manifest.backup_id, "raw_mib": _mib(manifest.raw_bytes),
               "stored_mib": _mib(manifest.archive_bytes),
               "compression_ratio": round(manifest.raw_bytes / max(manifest.archive_bytes, 1), 2),
               "throughput_mib_s": round(manifest.raw_bytes / 1024 / 1024 / seconds, 1),
               "tables": len(manifest.tables), "rows": sum(t.rows for t in manifest.tables.values()),
               "encrypted": manifest.encrypted, "pg_dump": manifest.pg_dump_version, "server": manifest.server_version,
               **{f"step_{k}_s": v for k, v in manifest.steps_s.items()}}
    tables = [{"table": name, "rows": t.rows, "mib_on_disk": _mib(t.bytes), "content_hash": t.content_hash}
              for name, t in sorted(manifest.tables.items(), key=lambda kv: -kv[1].bytes)]
    summary = (f"Backup {manifest.backup_id} of {manifest.database}: {_mib(manifest.raw_bytes)} MiB dumped from "
               f"snapshot {manifest.snapshot_id} ({manifest.snapshot_at:%Y-%m-%d %H:%M:%S} UTC), stored as "
               f"{_mib(manifest.archive_bytes)} MiB at {manifest.archive_key}")
    return {"summary": summary, "figures": figures, "tables": {"tables": tables}}


def rung_rows(rungs: list[Rung], mode: str, ladder: list[str] | None = None) -> list[dict[str, Any]]:
    """Every rung of the ladder (default: a database backup's): passed, failed, or not reached after a failure."""
    names = ladder or (RUNGS_FULL if mode == "full" else RUNGS_QUICK)
    done = {r.name: r for r in rungs}
    failed = next((r.name for r in rungs if not r.ok), None)
    rows = []
    for name in names:
        rung = done.get(name)
        result = "not reached" if rung is None else ("passed" if rung.ok else "FAILED")
        rows.append({"rung": name, "result": result, "seconds": rung.seconds if rung else None,
                     "detail": rung.detail if rung else (f"stopped at {failed}" if failed else "")})
    return rows


SYSTEM_DATABASES = {"postgres", "template0", "template1"}
PLAIN_DATABASE = r"[a-z_][a-z0-9_]{0,62}"
PLAIN_DATABASE_FORM = "a plain identifier: lowercase letters, digits and '_', starting with a letter or '_', at most 63"
SCRATCH_LABEL = "playground-ops scratch"   # how a database this project made for scratch use is labelled


def is_scratch_name(name: str) -> bool:
    """A name that marks a database for scratch use (a restore there is labelled scratch)."""
    return name.endswith("_scratch") or name.startswith("scratch_") or name.startswith("ops_scratch_")


def is_ours_to_drop(comment: str | None) -> bool:
    """Only a database this project created for scratch use (its label says so) is dropped without approval;
    a name alone never decides it."""
    return bool(comment) and comment.startswith(SCRATCH_LABEL)


@dataclass
class ExistingDatabase:
    """What the server says of a database a restore would replace."""
    name: str
    is_template: bool = False
    comment: str | None = None


@dataclass
class RestorePlan:
    database: str
    exists: bool
    needs_approval: bool
    drop_replaced: bool       # the replaced database is ours (labelled scratch): dropped; otherwise kept aside
    label: str                # the label the restored database gets
    steps: list[str]


def check_database_name(database: str) -> str:
    """A database a restore may write: a plain identifier, never a system database (the rest needs the server)."""
    import re

    from playground_ops.errors import ConfigError

    if not isinstance(database, str) or not re.fullmatch(PLAIN_DATABASE, database):
        raise ConfigError("database", PLAIN_DATABASE_FORM, got=str(database)[:80])
    if database in SYSTEM_DATABASES:
        raise ConfigError("database", "a database that is not a system or template database", got=database)
    return database


def check_backup_id(backup_id: str) -> str:
    from tasks.store_keys import check_key

    return check_key(backup_id, "backup_id", "<target>-<UTC time>-<run id>")


def plan_restore(source: str, database: str, existing: ExistingDatabase | None, overwrite: bool, backup_id: str,
                 run_id: str) -> RestorePlan:
    """What a restore will do, or a ConfigError before anything is changed: never the source, a system or template
    database, or a name that is not a plain identifier; an existing database is replaced only with overwrite=true,
    and with an operator's approval unless this project made it for scratch use. The steps say exactly that."""
    import re

    from playground_ops.errors import ConfigError

    check_database_name(database)
    if database == source:
        raise ConfigError("database", f"a database other than the source {source!r} (a restore never touches it)")
    if database in SYSTEM_DATABASES or (existing is not None and existing.is_template):
        raise ConfigError("database", "a database that is not a system or template database", got=database)
    if existing is not None and not overwrite:
        raise ConfigError("overwrite", f"true to replace the existing database {database!r}", got="false")
    ours = existing is not None and is_ours_to_drop(existing.comment)
    approval = existing is not None and not ours
    label = (f"{SCRATCH_LABEL} restore by flow run {run_id} from backup {backup_id}" if is_scratch_name(database)
             else f"restored by playground-ops flow run {run_id} from backup {backup_id}")
    steps = [f"restore backup {backup_id} into a new staging database",
             "check every table's row count and hash against the manifest"]
    if existing is not None and ours:
        steps.append(f"drop the existing {database}: playground-ops made it for scratch use ({existing.comment!r})")
    elif existing is not None:
        steps.append(f"after an operator approves in the Prefect UI, end the sessions on {database} and rename it "
                     f"aside as {database}_replaced_<UTC time> (kept, not dropped)")
    steps.append(f"rename the staging database to {database}, labelled {label!r}")
    return RestorePlan(database, existing is not None, approval, ours, label, steps)
