"""The backup pipeline's I/O: dump from a snapshot into the store, manifests, the verification rungs, deletion."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from pydantic import BaseModel, SecretStr

from playground_ops.errors import ConfigError
from playground_ops.settings import Settings, Target
from tasks.backup import pg_tools
from tasks.backup.archive_reader import ArchiveReader
from tasks.backup.policy import (BackupManifest, ExistingDatabase, Relation, RestorePlan, Rung, TableFigures,
                                 Verification, archive_key, check_versions, group_backups, manifest_key,
                                 leftovers_of_run, missing_from_archive)
from tasks.backup.store import BackupStore, MiB, open_backup_store, part_size_for
from tasks.backup.stream_codec import Hashed, IntegrityError, compress, decompress, decrypt, encrypt
from tasks.database import postgres
from tasks.reporting.publish import in_context
from tasks.retry import PermanentError, TransientError, is_transient, retrying
from tasks.store_keys import check_key


def backup_store(settings: Settings) -> BackupStore:
    return open_backup_store(settings.backup_location, settings.s3_endpoint_url)


def encryption_key(secret_name: str | None) -> bytes | None:
    """The client-side encryption key from a Prefect Secret (base64 of 32 bytes), or None."""
    if not secret_name:
        return None
    from prefect.blocks.system import Secret

    value = Secret.load(secret_name).get()
    key = base64.b64decode(value)
    if len(key) != 32:
        raise PermanentError(f"the Prefect Secret {secret_name!r} must hold base64 of 32 random bytes")
    return key


@task(**retrying(retries=2, timeout_seconds=60))
def check_tool_versions(database_url: SecretStr) -> dict[str, Any]:
    """Choose pg_dump for the server: its own major's where installed (its archive is then read by that server's own
    pg_restore), else the newest; refuse one older than the server, naming both."""
    server_major, server_version = postgres.server_major(database_url)
    tools = pg_tools.tools_for(server_major)
    problem = check_versions(tools.major, server_major)
    if problem:
        raise PermanentError(problem)
    return {"pg_dump": tools.version, "pg_dump_major": tools.major, "server": server_version, "server_major": server_major}


class _Progress:
    """Bytes dumped, shown as a progress artifact in the Prefect UI every couple of seconds (the artifact is created
    beside the dump, not before it)."""

    def __init__(self, key: str, expected: int, pool: ThreadPoolExecutor):
        self.expected, self.done, self.last = max(expected, 1), 0, time.monotonic()
        self.artifact = in_context(pool, create_progress_artifact, 0.0, description=f"{key}: bytes dumped")

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last > 2 and self.artifact.done():
            self.last = now
            update_progress_artifact(self.artifact.result(), min(99.0, 100 * self.done / self.expected),
                                     description=f"{self.done / MiB:,.0f} MiB dumped of about {self.expected / MiB:,.0f} MiB")

    def finish(self) -> None:
        update_progress_artifact(self.artifact.result(), 100.0, description=f"{self.done / MiB:,.0f} MiB dumped")


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), round(time.perf_counter() - t0, 3)


def _through(chunks: Iterator[bytes], reader: ArchiveReader, progress: _Progress,
             relations: list[Relation], large_objects: int) -> Iterator[bytes]:
    """The dump's bytes, read for the archive's table of contents as they pass; at the end, before the store may
    complete the object, the archive must carry data for every relation the snapshot has data in."""
    for chunk in chunks:
        reader.feed(chunk)
        progress.add(len(chunk))
        yield chunk
    missing = missing_from_archive(relations, large_objects, reader.summary().entries)
    if missing:
        raise PermanentError(f"the archive has no data for {len(missing)} relation(s) of the snapshot: "
                             + ", ".join(missing[:10]))


@task(**retrying(retries=1, backoff=30, timeout_seconds=None))
def dump_database_to_store(target: Target, settings: Settings, backup_id: str, versions: dict[str, Any],
                           compression_level: int = 1) -> BackupManifest:
    """Export a snapshot, count and hash every relation with data in it, and stream pg_dump from that snapshot through
    zstd (and encryption) into the store, hashing the stored bytes; the archive appears only once complete and
    checked, and a failure leaves nothing in the store. A retry starts a new snapshot and rewrites the same key."""
    started = datetime.now(timezone.utc)
    pool = ThreadPoolExecutor(max_workers=3)  # bookkeeping beside the dump: the store's client, the progress artifact
    store_future = pool.submit(backup_store, settings)
    key_name = settings.backup_encryption_secret
    key = encryption_key(key_name)
    steps: dict[str, float] = {}
    akey = archive_key(target.name, backup_id, key is not None)
    store = dump = None
    snapshot = postgres.Snapshot(target.database_url)
    try:
        # pg_dump starts at once (its own connection and catalog reads take a while) and waits on its pipe while the
        # snapshot's catalog is read here
        dump = pg_tools.dump_stream(target.database_url, snapshot.id, tools=pg_tools.tools_for(versions["server_major"]))
        relations = snapshot.relations()
        large_objects = snapshot.large_objects()
        # a materialized view's data is not in the archive: pg_restore refreshes it from the restored tables
        with_data = [r for r in relations if r.has_data and r.kind == "r"]
        sizes = {r.name: r.bytes for r in with_data} | ({postgres.LARGE_OBJECTS: 0} if large_objects else {})
        sequences = snapshot.sequence_values([r.name for r in relations if r.kind == "S"])
        # counts and content hashes are read in the snapshot on a second core while pg_dump streams the same snapshot
        figures_future = pool.submit(_timed, snapshot.table_figures, list(sizes))
        reader = ArchiveReader()
        progress = _Progress(f"backup-database-{target.name}-progress", sum(sizes.values()), pool)
        raw = Hashed(_through(dump, reader, progress, relations, large_objects),
                     hash=False)  # zstd's frame checksum covers the raw bytes
        stored = compress(raw, level=compression_level, threads=1)
        if key is not None:
            stored = encrypt(stored, key)
        stored = Hashed(stored)
        part = settings.backup_part_size_mib * MiB if settings.backup_part_size_mib else part_size_for(sum(sizes.values()))
        t0 = time.perf_counter()
        try:
            store = store_future.result()
            store.upload_stream(akey, stored, part_size=part)
            steps["dump_compress_upload"] = round(time.perf_counter() - t0, 3)
            progress.finish()
            figures, steps["counts_and_hashes"] = figures_future.result()
        except pg_tools.PgToolFailed as exc:
            raise (TransientError if exc.transient else PermanentError)(str(exc)) from None
        except psycopg.Error as exc:  # the snapshot's own queries: only a lost connection is worth another try
            raise (TransientError if is_transient(exc) else PermanentError)(
                f"{type(exc).__name__}: {str(exc).strip()}") from None
    except BaseException:
        try:
            snapshot.conn.cancel()  # the content-hash query, if still running, has nothing left to serve
        except Exception:  # already closed or broken: nothing to cancel
            pass
        # nothing half done that looks done: no archive without its manifest, no empty folder
        (store or backup_store(settings)).delete([akey])
        raise
    finally:
        if dump is not None:
            dump.close()  # a consumer that stopped early (or never began) must not leave pg_dump running
        pool.shutdown(wait=True)
        snapshot.close()
    tables = {name: TableFigures(rows=rows, content_hash=content, hash_method=method, bytes=sizes[name])
              for name, (rows, content, method) in figures.items()}
    without_data = {r.name: ("materialized view, refreshed by pg_restore from the restored tables" if r.has_data
                             else "unpopulated materialized view: no data to dump, never read")
                    for r in relations if r.kind == "m"}
    get_run_logger().info("Dumped %s relations with data, %.1f MiB raw, %.1f MiB stored", len(tables),
                          raw.size / MiB, stored.size / MiB)
    return BackupManifest(
        backup_id=backup_id, target=target.name, database=target.database_name, archive_key=akey,
        archive_bytes=stored.size, archive_sha256=stored.sha256, raw_bytes=raw.size, raw_sha256=None,
        compression_level=compression_level, encrypted=key is not None, encryption_key=key_name if key else None,
        part_size=part, pg_dump_version=versions["pg_dump"], server_version=versions["server"],
        archive_version=reader.summary().version, snapshot_id=snapshot.id, snapshot_at=snapshot.taken_at,
        started_at=started, finished_at=datetime.now(timezone.utc), steps_s=steps, tables=tables,
        sequences=sequences, without_data=without_data)


@task(**retrying(retries=3, timeout_seconds=120))
def write_manifest(settings: Settings, manifest: BackupManifest, replace: bool = False) -> BackupManifest:
    """Write the manifest, last: only now does the backup exist. Writing the same manifest again is harmless."""
    put_manifest(backup_store(settings), manifest_key(manifest.target, manifest.backup_id), manifest.model_dump(mode="json"),
                 replace)
    return manifest


def put_manifest(store: BackupStore, key: str, data: dict[str, Any], replace: bool) -> None:
    """A manifest written (replace=False: only if none is there). A retried write that finds its own earlier attempt
    already stored, the same data, is done: that attempt got through before its answer was lost."""
    try:
        store.put_json(key, data, overwrite=replace)
    except Exception:
        if not replace and store.get_json(key) == data:
            return
        raise


@task(**retrying(retries=3, timeout_seconds=300))
def list_backups(settings: Settings, target: str) -> tuple[list[BackupManifest], dict[str, dict[str, Any]]]:
    """The target's complete backups (with a well-formed manifest), newest first, and the incomplete ones."""
    store = backup_store(settings)
    groups = group_backups(store.list(f"{target}/"), target)
    complete, incomplete = [], {}
    for backup_id, entry in groups.items():
        try:
            data = store.get_json(manifest_key(target, backup_id)) if entry["has_manifest"] else None
            if data is None:
                incomplete[backup_id] = entry
            else:
                complete.append(BackupManifest.model_validate(data))
        except ValueError:  # a malformed manifest makes the backup incomplete, never listed
            incomplete[backup_id] = entry
    return sorted(complete, key=lambda m: m.started_at, reverse=True), incomplete


@task(**retrying(retries=3, timeout_seconds=120))
def find_backup(settings: Settings, target: str, backup_id: str | None, verified_only: bool = False
                ) -> tuple[BackupManifest | None, Rung]:
    """Rung 1: the manifest is present and well-formed (default: the newest backup, or newest verified)."""
    t0 = time.perf_counter()
    if backup_id is not None:  # a user's key: checked against the layout before the store sees it
        check_key(backup_id, "backup_id", "<target>-<UTC time>-<run id>")
    store = backup_store(settings)
    if backup_id is None:
        manifests, _ = list_backups.fn(settings, target)
        if verified_only:
            manifests = [m for m in manifests if m.verified]
        if not manifests:
            return None, Rung(name="manifest", ok=False, detail=f"no {'verified ' if verified_only else ''}backup of {target}")
        backup_id = manifests[0].backup_id
    try:
        data = store.get_json(manifest_key(target, backup_id))
        if data is None:
            return None, Rung(name="manifest", ok=False, detail=f"{backup_id}: no manifest (incomplete or missing backup)")
        manifest = BackupManifest.model_validate(data)
    except ValueError as exc:  # not JSON, or not a manifest
        return None, Rung(name="manifest", ok=False, detail=f"{backup_id}: malformed manifest: {str(exc)[:300]}")
    if manifest.backup_id != backup_id or manifest.target != target:
        return None, Rung(name="manifest", ok=False, detail=f"{backup_id}: manifest names another backup")
    return manifest, Rung(name="manifest", ok=True, seconds=round(time.perf_counter() - t0, 3),
                          detail=f"{backup_id}: {len(manifest.tables)} tables, {manifest.archive_bytes:,} bytes")


def _archive_stream(store: BackupStore, manifest: BackupManifest, key: bytes | None) -> tuple[Hashed, Hashed]:
    stored = Hashed(store.download_stream(manifest.archive_key))
    data = decrypt(stored, key) if manifest.encrypted else stored
    return stored, Hashed(decompress(data), hash=manifest.raw_sha256 is not None)


def _drain(stored: Hashed, raw: Hashed) -> None:
    """Read what the consumer left, so the stored object and its decompression are judged in full."""
    try:
        for _ in raw:
            pass
    except IntegrityError:
        pass
    for _ in stored:
        pass


def _judge(manifest: BackupManifest, stored: Hashed, raw: Hashed, error: Exception | None, seconds: float,
           consumer: list[str]) -> list[Rung]:
    """The rungs a streaming pass covered, in ladder order, ending at the first that failed."""
    if (stored.size, stored.sha256) != (manifest.archive_bytes, manifest.archive_sha256):
        return [Rung(name="stored-object", ok=False, seconds=seconds,
                     detail=f"{stored.size:,} bytes, sha256 {stored.sha256[:16]}; the manifest says "
                            f"{manifest.archive_bytes:,} bytes, sha256 {manifest.archive_sha256[:16]}")]
    rungs = [Rung(name="stored-object", ok=True, seconds=seconds, detail=f"{stored.size:,} bytes, sha256 matches")]
    if isinstance(error, IntegrityError) or (raw.size, raw.sha256) != (manifest.raw_bytes, manifest.raw_sha256):
        detail = str(error) if isinstance(error, IntegrityError) else (
            f"decompressed to {raw.size:,} bytes; expected {manifest.raw_bytes:,} bytes"
            + ("" if raw.sha256 is None else f" (sha256 {raw.sha256[:16]})"))
        return [*rungs, Rung(name="decompression", ok=False, detail=detail)]
    checksum = "sha256 matches" if manifest.raw_sha256 else "zstd frame checksums verified"
    rungs.append(Rung(name="decompression", ok=True, detail=f"{manifest.raw_bytes:,} bytes, {checksum}"))
    if consumer == ["archive-read"]:
        return [*rungs, Rung(name="archive-read", ok=error is None, seconds=seconds,
                             detail=str(error)[:1500] if error else "pg_restore read the whole archive")]
    rungs.append(Rung(name="archive-read", ok=True, detail="the archive's bytes are exactly those dumped"))
    return [*rungs, Rung(name="restore", ok=error is None, seconds=seconds,
                         detail=str(error)[:1500] if error else "pg_restore --exit-on-error completed")]


@task(**retrying(retries=2, timeout_seconds=None))
def check_archive(settings: Settings, manifest: BackupManifest) -> list[Rung]:
    """Rungs 2-4 in one streaming pass: stored size and SHA-256, full decompression, full read by pg_restore."""
    store = backup_store(settings)
    stored, raw = _archive_stream(store, manifest, encryption_key(manifest.encryption_key))
    t0 = time.perf_counter()
    error = None
    try:
        pg_tools.read_archive(raw)
    except (IntegrityError, pg_tools.PgToolFailed) as exc:
        error = exc
    _drain(stored, raw)
    return _judge(manifest, stored, raw, error, round(time.perf_counter() - t0, 3), ["archive-read"])


@task(**retrying(retries=2, timeout_seconds=120))
def create_scratch_database(server: SecretStr, run_id: str, purpose: str = "scratch") -> str:
    """A new, empty database for a restore, labelled with this run; the run may only ever drop that one."""
    name = f"ops_{purpose}_{run_id.replace('-', '')[:16]}"
    postgres.create_scratch_database(server, name, run_id)
    return name


@task(**retrying(retries=1, timeout_seconds=300))
def prepare_drill_server(target: Target, settings: Settings, source_major: int) -> DrillServer:
    """Where a restore drill runs: OPS_VERIFY_DATABASE_URL's server when set, else a private local cluster (started,
    or reused) of the source's own major when its server programs are here (OPS_PG_BINDIR or the installed
    packages), else of the newest major there is. Never the target's own server unless configured so: a drill of a
    production backup must not load the production server. The result says which major the drill proves."""
    from playground_ops.redact import mask_url
    from tasks.backup.private_cluster import server_bindirs

    if settings.verify_database_url is not None:
        url = settings.verify_database_url
        major, version = postgres.server_major(url)
        return DrillServer(url=url, name=f"OPS_VERIFY_DATABASE_URL ({mask_url(url.get_secret_value())}, PostgreSQL "
                                         f"{version})", major=major, version=version, source_major=source_major)
    programs = server_bindirs()
    usable = sorted(m for m in programs if m >= source_major)
    if not usable:
        raise PermanentError(f"no PostgreSQL server programs of major {source_major} or newer are here (found: "
                             f"{sorted(programs) or 'none'}): install postgresql-{source_major}, set OPS_PG_BINDIR to "
                             "its bin directory, or set OPS_VERIFY_DATABASE_URL")
    major = source_major if source_major in usable else usable[-1]
    cluster = (settings.drill_cluster() if programs[major].resolve() == _default_server_programs()
               else settings.drill_cluster(major, programs[major]))
    for other in settings.drill_clusters():  # one drill cluster runs at a time, on OPS_DRILL_PG_PORT
        if other.root != cluster.root and other.running():
            other.stop()
    admin = cluster.ensure()
    running_major, version = postgres.server_major(admin)
    return DrillServer(url=SecretStr(admin), name=f"the private drill cluster (PostgreSQL {version}, "
                                                  f"127.0.0.1:{cluster.port}, {cluster.root})",
                       major=running_major, version=version, source_major=source_major)


def _default_server_programs() -> Path | None:
    from tasks.backup.private_cluster import server_bindir

    try:
        return server_bindir().resolve()
    except ConfigError:
        return None


class DrillServer(BaseModel):
    """The server a drill restores into, and what a restore there proves of the backup's origin."""

    url: SecretStr
    name: str
    major: int
    version: str
    source_major: int

    @property
    def proves_origin(self) -> bool:
        return self.major == self.source_major

    def proof(self) -> str:
        if self.proves_origin:
            return f"restores onto the origin's major, PostgreSQL {self.major}"
        return (f"proved a restore into PostgreSQL {self.major} only, not onto the origin's PostgreSQL "
                f"{self.source_major}: no PostgreSQL {self.source_major} server programs here (install "
                f"postgresql-{self.source_major} or set OPS_PG_BINDIR)")


@task(**retrying(retries=0, timeout_seconds=None))
def restore_archive(settings: Settings, server: SecretStr, manifest: BackupManifest, database: str, jobs: int = 1,
                    check_data: bool = False) -> list[Rung]:
    """Rungs 2-5: stream the archive (checked as it goes) into pg_restore --exit-on-error, with the server's own
    major's pg_restore where it reads the archive; what that server cannot take is left out and named (pg_tools).
    check_data: the table-checks rung too, begun as soon as every table's data is in, beside the index builds."""
    from tasks.backup.archive_reader import ArchiveFormatError

    store = backup_store(settings)
    stored, raw = _archive_stream(store, manifest, encryption_key(manifest.encryption_key))
    server_version = postgres.server_major(server)
    early = _EarlyCheck(server, manifest, database) if check_data else None
    t0 = time.perf_counter()
    error = outcome = None
    try:
        outcome = pg_tools.restore(server, database, raw, server_version, jobs,
                                   on_data_restored=early.start if early else None)
    except (IntegrityError, pg_tools.PgToolFailed, ArchiveFormatError) as exc:
        error = exc
    _drain(stored, raw)
    rungs = _judge(manifest, stored, raw, error, round(time.perf_counter() - t0, 3), ["archive-read", "restore"])
    if outcome is not None and rungs[-1].name == "restore" and rungs[-1].ok:
        rungs[-1].detail = f"pg_restore --exit-on-error completed: {outcome.describe()}"[:1500]
        if early is not None:  # a restore by script, or in parallel, says nothing of its progress: checked after
            rungs.append(early.result() if early.started else check_tables.fn(server, manifest, database))
    elif early is not None and early.started:
        early.result()  # the restore failed: its checks' verdict does not count
    return rungs


class _EarlyCheck:
    """check_tables in a thread of its own, started when pg_restore says the data is in."""

    def __init__(self, server: SecretStr, manifest: BackupManifest, database: str):
        self.args, self.started, self.rung = (server, manifest, database), False, None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.started = True
        self.thread.start()

    def _run(self) -> None:
        try:
            self.rung = check_tables.fn(*self.args)
        except Exception as exc:  # the check could not run: this rung's failure, named
            self.rung = Rung(name="table-checks", ok=False, detail=f"{type(exc).__name__}: {exc}"[:1500])

    def result(self) -> Rung:
        self.thread.join()
        return self.rung


@task(**retrying(retries=1, timeout_seconds=None))
def check_tables(server: SecretStr, manifest: BackupManifest, database: str, workers: int = 2) -> Rung:
    """Every table's row count and content hash in the restored database equal the manifest's."""
    t0 = time.perf_counter()
    names = sorted(manifest.tables, key=lambda n: -manifest.tables[n].bytes)
    shares = [{n: manifest.tables[n].hash_method for n in names[i::workers]} for i in range(workers)]
    results: dict[str, tuple[int, str]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(lambda share: postgres.table_content_hashes(server, database, share), shares):
            results.update(part)
    wrong = [f"{name}: {rows} rows, hash {total} (manifest: {manifest.tables[name].rows} rows, "
             f"{manifest.tables[name].content_hash})" for name, (rows, total) in results.items()
             if (rows, total) != (manifest.tables[name].rows, manifest.tables[name].content_hash)]
    # pg_dump reads a sequence when it reaches it, which may be after the snapshot's read: never less, though
    restored = postgres.restored_sequence_values(server, database, list(manifest.sequences))
    wrong += [f"sequence {name}: {'missing' if value is None else value} (at the snapshot: {manifest.sequences[name]})"
              for name, value in restored.items() if value is None or value < manifest.sequences[name]]
    detail = "; ".join(wrong) if wrong else (f"{len(results)} tables: counts and hashes equal the manifest"
                                             + (f"; {len(restored)} sequences restored" if restored else ""))
    return Rung(name="table-checks", ok=not wrong, seconds=round(time.perf_counter() - t0, 3), detail=detail[:2000])


@task(**retrying(retries=1, timeout_seconds=None))
def run_amcheck(server: SecretStr, database: str, jobs: int = 2) -> Rung:
    """pg_amcheck over the restored database: heap and btree index structure."""
    t0 = time.perf_counter()
    if postgres.server_major(server)[0] < 14:  # pg_amcheck's heap checks need amcheck 1.3 (PostgreSQL 14)
        try:
            checked = postgres.check_btree_indexes(server, database)
        except psycopg.Error as exc:
            return Rung(name="amcheck", ok=False, seconds=round(time.perf_counter() - t0, 3),
                        detail=f"bt_index_check: {type(exc).__name__}: {exc}"[:1500])
        return Rung(name="amcheck", ok=True, seconds=round(time.perf_counter() - t0, 3),
                    detail=f"{checked} btree indexes checked with bt_index_check, no corruption found (the heap "
                           "checks of pg_amcheck need PostgreSQL 14)")
    try:
        pg_tools.amcheck(server, database, jobs=jobs)
    except pg_tools.PgToolFailed as exc:
        return Rung(name="amcheck", ok=False, seconds=round(time.perf_counter() - t0, 3), detail=str(exc)[:1500])
    return Rung(name="amcheck", ok=True, seconds=round(time.perf_counter() - t0, 3), detail="no corruption found")


@task(**retrying(retries=1, timeout_seconds=300))
def run_smoke_queries(server: SecretStr, database: str, queries: dict[str, str]) -> Rung:
    """The application's smoke queries (the guide's counts of users and requests) against the restored database."""
    t0 = time.perf_counter()
    try:
        results = postgres.run_queries(server, database, queries)
    except Exception as exc:  # a query that cannot run is this rung's failure, not the run's
        return Rung(name="smoke-queries", ok=False, detail=f"{type(exc).__name__}: {exc}"[:1000])
    return Rung(name="smoke-queries", ok=True, seconds=round(time.perf_counter() - t0, 3),
                detail=", ".join(f"{k}={v}" for k, v in results.items()))


@task(**retrying(retries=3, timeout_seconds=120))
def drop_scratch_database(server: SecretStr, database: str, run_id: str) -> bool:
    """Drop a scratch database; refuses any database this run did not create."""
    return postgres.drop_scratch_database(server, database, run_id)


@task(**retrying(retries=1, timeout_seconds=300))
def swap_in_restored_database(server: SecretStr, restored: str, plan: RestorePlan, run_id: str) -> str | None:
    """Give the restored database its final name and label, as the plan says: an existing one is kept under another
    name, unless playground-ops made it for scratch use, which is dropped."""
    return postgres.swap_in_database(server, restored, plan.database, run_id, plan.label, drop_replaced=plan.drop_replaced)


@task(**retrying(retries=3, timeout_seconds=600))
def delete_backups(settings: Settings, target: str, backup_ids: list[str], dry_run: bool) -> list[str]:
    """Delete whole backups (archive and manifest, the manifest last-but-not-least: first), or only list them."""
    store = backup_store(settings)
    groups = group_backups(store.list(f"{target}/"), target)
    keys = []
    for backup_id in backup_ids:
        entry_keys = groups.get(backup_id, {}).get("keys", [])
        # the manifest goes first: a backup half deleted is then incomplete, never listed as complete
        keys += sorted(entry_keys, key=lambda k: not k.endswith("manifest.json"))
    if not dry_run:
        for key in keys:
            store.delete([key])
    return keys


@task(**retrying(retries=3, timeout_seconds=600))
def clean_incomplete(settings: Settings, target: str, incomplete: dict[str, dict[str, Any]], older_than_hours: float,
                     dry_run: bool) -> list[str]:
    """Remove leftovers no run can finish any more: backups without a manifest and multipart uploads older than
    the limit (a backup in progress is younger, and holds the backup concurrency slot)."""
    store = backup_store(settings)
    now = datetime.now(timezone.utc)
    removed = []
    for backup_id, entry in incomplete.items():
        if (now - entry["modified"]).total_seconds() > older_than_hours * 3600:
            removed += entry["keys"]
            if not dry_run:
                store.delete(entry["keys"])
    for upload in store.incomplete_uploads(f"{target}/"):
        if (now - upload["initiated"]).total_seconds() > older_than_hours * 3600:
            removed.append(f"{upload['key']} (incomplete upload)")
            if not dry_run:
                store.abort_upload(upload["key"], upload["upload_id"])
    return removed


@task(**retrying(retries=3, timeout_seconds=600))
def remove_run_leftovers(settings: Settings, target: str, run_id: str, dry_run: bool) -> list[str]:
    """Remove what one backup run left half done (it crashed): its archive without a manifest, its unfinished
    multipart upload. Nothing else: a complete backup, or another run's, is never touched. Idempotent."""
    store = backup_store(settings)
    _, incomplete = list_backups.fn(settings, target)
    ids, uploads = leftovers_of_run(incomplete, store.incomplete_uploads(f"{target}/"), target, run_id)
    removed = [key for backup_id in ids for key in incomplete[backup_id]["keys"]]
    removed += [f"{u['key']} (incomplete upload)" for u in uploads]
    if not dry_run:
        for backup_id in ids:
            store.delete(incomplete[backup_id]["keys"])
        for upload in uploads:
            store.abort_upload(upload["key"], upload["upload_id"])
    return removed


def record_verification(manifest: BackupManifest, rungs: list[Rung], mode: str, run_id: str | None) -> BackupManifest:
    failed = next((r.name for r in rungs if not r.ok), None)
    updated = manifest.model_copy(deep=True)
    updated.verifications.append(Verification(at=datetime.now(timezone.utc), mode=mode, ok=failed is None,
                                              failed_rung=failed, rungs=rungs, flow_run_id=run_id))
    return updated


@task(**retrying(retries=2, timeout_seconds=60))
def inspect_database(server: SecretStr, name: str) -> ExistingDatabase | None:
    """What the server says of a database a restore would replace (template, label), or None if there is none."""
    return postgres.inspect_database(server, name)
