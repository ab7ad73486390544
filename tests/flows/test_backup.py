"""Backups end to end: real PostgreSQL with writes going on, real pg_dump/pg_restore/pg_amcheck, moto's S3 server
behind a fault-injecting proxy, and a real Prefect server."""

from __future__ import annotations

import base64
import json
import re
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import psycopg
import pytest

from sandbox import manager
from tests.conftest import flow_run_artifacts
from tests.background import in_background, paused_run


@pytest.fixture
def s3_store(ops, s3_endpoint, monkeypatch):
    """A fresh bucket for each test, reached through a proxy that can fail requests on demand."""
    from sandbox.faulty_proxy import FaultyProxy

    proxy = FaultyProxy(s3_endpoint)
    bucket = f"backups-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv("OPS_BACKUP_URL", f"s3://{bucket}/playground")
    monkeypatch.setenv("OPS_S3_ENDPOINT_URL", proxy.url)
    yield proxy, boto3.client("s3", endpoint_url=s3_endpoint), bucket
    proxy.close()


@pytest.fixture
def local_store(ops, tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_BACKUP_URL", str(tmp_path / "backups"))
    return tmp_path / "backups"


def db(settings) -> str:
    return manager.database_url(settings)


def newest_manifests(target: str = "sandbox"):
    from playground_ops.settings import load_settings
    from tasks.backup.pipeline import list_backups

    return list_backups.fn(load_settings(), target)


def keys(client, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_backup_of_a_busy_database_restores_with_every_table_equal(s3_store, ops):
    from flows.backup_database import backup_database
    from flows.verify_backup import verify_backup

    _, client, bucket = s3_store
    stop = threading.Event()
    written = []

    def app_keeps_writing() -> None:
        with psycopg.connect(db(ops), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO requests (user_id, endpoint, status_code, latency_ms) "
                             "SELECT 1, '/api/chat', 200, 42 FROM generate_series(1, 50)")
                written.append(50)
                time.sleep(0.01)

    writer = threading.Thread(target=app_keeps_writing)
    writer.start()
    try:
        report = backup_database(verify=False)
    finally:
        stop.set()
        writer.join()
    manifests, incomplete = newest_manifests()
    manifest = manifests[0]
    assert report.status.value == "ok" and not incomplete
    assert sum(written) > 0
    with psycopg.connect(db(ops)) as conn:
        live = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    assert manifest.tables["public.requests"].rows < live  # the app wrote on after the snapshot
    head = client.head_object(Bucket=bucket, Key=f"playground/{manifest.archive_key}")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == manifest.archive_bytes
    drill = verify_backup(backup_id=manifest.backup_id, mode="full", apply_retention=False)
    assert drill.status.value == "ok"
    assert [r["result"] for r in drill.tables["rungs"]] == ["passed"] * 8
    assert "counts and hashes equal the manifest" in drill.tables["rungs"][5]["detail"]
    progress = [a for a in flow_run_artifacts(report.flow_run_id) if a.type == "progress"]
    assert progress and progress[0].data == 100.0
    with psycopg.connect(ops.sandbox_admin_url) as conn:  # the drill dropped its scratch database
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname LIKE 'ops_scratch_%'").fetchall()


def test_client_side_encryption_keeps_plaintext_from_the_store(s3_store, monkeypatch):
    from prefect.blocks.system import Secret

    from flows.backup_database import backup_database
    from flows.verify_backup import verify_backup

    _, client, bucket = s3_store
    Secret(value=base64.b64encode(os.urandom(32)).decode()).save("backup-key-test", overwrite=True)
    monkeypatch.setenv("OPS_BACKUP_ENCRYPTION_SECRET", "backup-key-test")
    backup_database(verify=False)
    manifest = newest_manifests()[0][0]
    assert manifest.encrypted and manifest.archive_key.endswith(".enc")
    stored = client.get_object(Bucket=bucket, Key=f"playground/{manifest.archive_key}")["Body"].read()
    assert stored.startswith(b"POPSENC1") and b"PGDMP" not in stored and b"api/chat" not in stored
    assert verify_backup(backup_id=manifest.backup_id, mode="full", apply_retention=False).status.value == "ok"


def test_transient_store_errors_are_retried_and_the_backup_completes(s3_store, monkeypatch, ops):
    from flows.backup_database import backup_database

    proxy, client, bucket = s3_store
    monkeypatch.setenv("OPS_BACKUP_PART_SIZE_MIB", "5")
    with psycopg.connect(db(ops), autocommit=True) as conn:  # enough incompressible data for several parts
        conn.execute("CREATE TABLE IF NOT EXISTS bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS noise "
                     "FROM generate_series(1, 300000) g")
    try:
        fault = proxy.inject("upload-part", "503", count=2, skip=1)
        reset = proxy.inject("upload-part", "reset", count=1, skip=1)
        assert backup_database(verify=True).status.value == "ok"
        assert fault.fired == 2 and reset.fired == 1
        assert newest_manifests()[0][0].verified is True
        assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        with psycopg.connect(db(ops), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bulk")


def test_store_failing_for_good_leaves_no_backup_and_no_incomplete_upload(s3_store, monkeypatch, ops):
    from playground_ops.settings import get_target, load_settings
    from tasks.backup.pipeline import check_tool_versions, dump_database_to_store

    proxy, client, bucket = s3_store
    monkeypatch.setenv("OPS_BACKUP_PART_SIZE_MIB", "5")
    with psycopg.connect(db(ops), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS noise "
                     "FROM generate_series(1, 300000) g")
    try:
        proxy.inject("upload-part", "reset", count=-1, skip=1)
        target = get_target()
        with pytest.raises(Exception):
            dump_database_to_store.fn(target, load_settings(), "sandbox-20260101T000000Z-test0000",
                                      check_tool_versions.fn(target.database_url))
    finally:
        proxy.clear()
        with psycopg.connect(db(ops), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bulk")
    assert keys(client, bucket) == []
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert newest_manifests() == ([], {})


def test_pg_dump_failing_never_stores_a_backup(local_store, ops):
    """The classic: `pg_dump wrong_db | gzip | upload` stores a 20-byte 'backup' and exits 0."""
    from playground_ops.settings import load_settings
    from tasks.backup import pg_tools
    from tasks.backup.pipeline import backup_store
    from tasks.backup.stream_codec import compress

    store = backup_store(load_settings())
    for bad in (db(ops).rsplit("/", 1)[0] + "/no_such_database",
                db(ops).replace("postgres:", "no_such_role:")):
        with pytest.raises(pg_tools.PgToolFailed) as failed:
            store.upload_stream("sandbox/x/archive.pgdump.zst", compress(pg_tools.dump_stream(bad, None)))
        assert "does not exist" in str(failed.value) and not failed.value.transient
        assert "sandbox-db-password" not in str(failed.value)
    assert [p for p in local_store.rglob("*") if p.is_file()] == []


def test_database_connection_lost_mid_dump_leaves_nothing(local_store, ops):
    from playground_ops.settings import get_target, load_settings
    from tasks.backup.pipeline import check_tool_versions, dump_database_to_store
    from tasks.retry import TransientError

    with psycopg.connect(db(ops), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bulk AS SELECT g, md5(g::text) AS noise "
                     "FROM generate_series(1, 1500000) g")
    stop = threading.Event()
    killed = []

    def kill_the_dump() -> None:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
            while not stop.is_set() and not killed:
                killed.extend(r[0] for r in conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY public.bulk%' "
                    "AND pid <> pg_backend_pid()").fetchall())
                time.sleep(0.01)

    killer = threading.Thread(target=kill_the_dump)
    killer.start()
    try:
        target = get_target()
        with pytest.raises(TransientError, match="pg_dump exited"):
            dump_database_to_store.fn(target, load_settings(), "sandbox-20260101T000001Z-test0001",
                                      check_tool_versions.fn(target.database_url))
    finally:
        stop.set()
        killer.join()
        with psycopg.connect(db(ops), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bulk")
    assert killed
    assert [p for p in local_store.rglob("*") if p.is_file()] == []
    assert newest_manifests() == ([], {})


def test_two_backups_never_run_at_once(local_store):
    from flows.backup_database import backup_database

    results = []
    threads = [threading.Thread(target=lambda: results.append(backup_database(verify=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifests = newest_manifests()[0]
    assert len(results) == 2 and len(manifests) == 2
    first, second = sorted(manifests, key=lambda m: m.snapshot_at)
    assert second.snapshot_at >= first.finished_at  # the second waited for the first's slot


def corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, rung, mode", [
    ("truncate archive", "stored-object", "quick"),
    ("flip a byte", "stored-object", "quick"),
    ("remove manifest", "manifest", "quick"),
    ("malformed manifest", "manifest", "quick"),
    ("alter manifest hash", "table-checks", "full"),
    ("forge archive and its hash", "decompression", "quick"),
])
def test_verify_catches_damage_at_the_right_rung_and_notifies(local_store, receiver, damage, rung, mode):
    from prefect import tags

    from flows.backup_database import backup_database
    from flows.verify_backup import verify_backup

    backup_database(verify=False)
    manifest = newest_manifests()[0][0]
    folder = local_store / "sandbox" / manifest.backup_id
    archive, manifest_path = folder / Path(manifest.archive_key).name, folder / "manifest.json"
    if damage == "truncate archive":
        corrupt(archive, "truncate")
    elif damage == "flip a byte":
        corrupt(archive, "flip")
    elif damage == "remove manifest":
        manifest_path.unlink()
    elif damage == "malformed manifest":
        manifest_path.write_text('{"backup_id": "')
    elif damage == "alter manifest hash":
        data = json.loads(manifest_path.read_text())
        data["tables"]["public.users"]["content_hash"] = "12345"
        manifest_path.write_text(json.dumps(data))
    else:  # replace the archive with other bytes and make the manifest agree: only decompression can tell
        import hashlib

        forged = os.urandom(4096)
        archive.write_bytes(forged)
        data = json.loads(manifest_path.read_text())
        data.update(archive_bytes=len(forged), archive_sha256=hashlib.sha256(forged).hexdigest())
        manifest_path.write_text(json.dumps(data))
    before = len(receiver.matching("verify-backup"))
    with tags("playground-ops"), pytest.raises(Exception, match=f"verification failed at rung {rung}"):
        verify_backup(backup_id=manifest.backup_id, mode=mode, apply_retention=False)
    got = receiver.wait_for("verify-backup", count=before + 1, timeout=60)
    assert len(got) == before + 1 and rung in got[-1]["body"]
    listed = [m.backup_id for m in newest_manifests()[0]]
    if rung == "manifest":
        assert manifest.backup_id not in listed  # a backup without a good manifest is never listed


def make_old(store: Path, backup_id: str, days: int) -> None:
    path = store / "sandbox" / backup_id / "manifest.json"
    data = json.loads(path.read_text())
    for field in ("started_at", "finished_at", "snapshot_at"):
        data[field] = (datetime.fromisoformat(data[field]) - timedelta(days=days)).isoformat()
    path.write_text(json.dumps(data))


def test_retention_never_deletes_without_a_verified_backup_and_keeps_the_newest(local_store):
    from flows.backup_database import backup_database
    from flows.expire_backups import expire_backups
    from flows.verify_backup import verify_backup

    ids = []
    for age in (30, 20, 10):
        backup_database(verify=False)
        ids.append(newest_manifests()[0][0].backup_id)
        make_old(local_store, ids[-1], age)
    report = expire_backups(keep_days=7, keep_verified=1)
    assert report.figures["deleted"] == 0
    assert {m.backup_id for m in newest_manifests()[0]} == set(ids)
    # verify the middle one: the one older than it is deleted, the newest (unverified) and it are kept
    verify_backup(backup_id=ids[1], mode="quick", apply_retention=False)
    preview = expire_backups(keep_days=7, keep_verified=1, dry_run=True)
    assert preview.figures["would_delete"] == 1 and {m.backup_id for m in newest_manifests()[0]} == set(ids)
    report = expire_backups(keep_days=7, keep_verified=1)
    assert report.figures["deleted"] == 1
    assert {m.backup_id for m in newest_manifests()[0]} == {ids[1], ids[2]}
    assert any(row["decision"] == "deleted" and row["backup_id"] == ids[0] for row in report.tables["decisions"])


def test_restore_refuses_the_source_and_replaces_a_live_database_only_when_approved(local_store, ops, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.backup_database import backup_database
    from flows.restore_database import restore_database

    backup_database(verify=True)
    with pytest.raises(Exception, match="a database other than the source 'playground_sandbox_test'"):
        restore_database(database="playground_sandbox_test", overwrite=True)
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS reporting_copy")
        conn.execute("CREATE DATABASE reporting_copy")
    with pytest.raises(Exception, match="overwrite: expected true to replace the existing database 'reporting_copy'"):
        restore_database(database="reporting_copy")
    runner, outcome = in_background(restore_database, database="reporting_copy", overwrite=True)
    paused = paused_run("restore-database")
    assert paused is not None, "the restore did not wait for an operator"
    asked = receiver.wait_for("[APPROVAL NEEDED] restore-database on sandbox asks to replace the database reporting_copy")
    assert asked and f"/runs/flow-run/{paused.id}" in asked[-1]["body"]  # operators are told where to answer
    with psycopg.connect(ops.sandbox_admin_url) as conn:  # nothing replaced while it waits
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'reporting_copy'").fetchone()
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname LIKE 'reporting_copy_replaced_%'").fetchone()
    resume_flow_run(paused.id, run_input={"approve": True, "reason": "drill"})
    runner.join(timeout=300)
    report = outcome["report"]
    assert report.status.value == "ok" and "every table's count and hash match" in report.summary
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        replaced = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'reporting_copy_replaced_%'").fetchall()
        assert len(replaced) == 1  # the old one is kept, not dropped
        for (name,) in replaced + [("reporting_copy",)]:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_pg_dump_older_than_the_server_is_refused_naming_both():
    from tasks.backup import pg_tools
    from tasks.backup.policy import check_versions

    major, version = pg_tools.tool_major("pg_dump")
    assert major >= 13 and version.startswith(str(major))
    assert check_versions(major, major) is None
    problem = check_versions(14, 16)
    assert "pg_dump 14 is older than the server's PostgreSQL 16" in problem


@pytest.mark.parametrize("database, expected", [
    ("postgres", "database: expected a database that is not a system or template database (got postgres)"),
    ("template1", "database: expected a database that is not a system or template database (got template1)"),
    ("ops_marked_template", "database: expected a database that is not a system or template database"),
    ("x; DROP TABLE users", "database: expected a plain identifier: lowercase letters, digits and '_'"),
    ("Prod", "database: expected a plain identifier"),
])
def test_restore_refuses_system_template_and_odd_databases_with_a_stored_report(local_store, ops, database, expected):
    from flows.backup_database import backup_database
    from flows.restore_database import restore_database
    from tasks.reporting.publish import read_previous_report

    if not newest_manifests()[0]:
        backup_database(verify=True)
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ops_marked_template")
        conn.execute("CREATE DATABASE ops_marked_template IS_TEMPLATE true")
        before = conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()
    try:
        with pytest.raises(Exception, match=re.escape(expected)):
            restore_database(database=database, overwrite=True)
        with psycopg.connect(ops.sandbox_admin_url) as conn:  # nothing created, renamed or dropped
            assert conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall() == before
        stored = read_previous_report.fn("restore-database", "sandbox")
        assert stored["status"] == "failed" and expected in json.dumps(stored)
    finally:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
            conn.execute("ALTER DATABASE ops_marked_template IS_TEMPLATE false")
            conn.execute("DROP DATABASE ops_marked_template")


def test_restore_replaces_without_approval_only_what_playground_ops_made_for_scratch(local_store, ops):
    from flows.backup_database import backup_database
    from flows.restore_database import restore_database
    from tasks.reporting.publish import read_previous_report

    backup_database(verify=True)
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS someones_scratch WITH (FORCE)")
        conn.execute("DROP DATABASE IF EXISTS playground_sandbox_test_restore_scratch WITH (FORCE)")
    first = restore_database()  # the default: <source>_restore_scratch, labelled as playground-ops' scratch
    second = restore_database(overwrite=True)  # replaces it, no approval: its label says playground-ops made it
    assert second.status.value == "ok"
    steps = [row["step"] for row in second.tables["plan"]]
    assert any("drop the existing playground_sandbox_test_restore_scratch: playground-ops made it" in s for s in steps)
    assert any("replaced copy was dropped" in f.message for f in second.findings)  # the report says what the plan said
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname LIKE '%restore_scratch_replaced%'").fetchone()
        conn.execute("CREATE DATABASE someones_scratch")  # a scratch name, but not made by playground-ops
    try:
        with pytest.raises(Exception, match="FlowPauseTimeout"):  # it waited for an operator, then gave up
            restore_database(database="someones_scratch", overwrite=True, approval_timeout_seconds=60)
        stored = read_previous_report.fn("restore-database", "sandbox")
        assert stored["status"] == "failed"
        with psycopg.connect(ops.sandbox_admin_url) as conn:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'someones_scratch'").fetchone()
            assert not conn.execute("SELECT 1 FROM pg_database WHERE datname LIKE 'someones_scratch_replaced%'").fetchone()
    finally:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
            for name in ("someones_scratch", "playground_sandbox_test_restore_scratch"):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ops_restore_%'").fetchall():
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert first.status.value == "ok"


@pytest.mark.parametrize("backup_id", ["../../dir", "/etc", "sandbox/x", "no-such-backup"])
def test_restore_of_a_backup_that_is_not_there_fails_with_a_stored_report(local_store, ops, backup_id):
    from flows.restore_database import restore_database
    from tasks.reporting.publish import read_previous_report

    with pytest.raises(Exception) as raised:
        restore_database(backup_id=backup_id)
    stored = read_previous_report.fn("restore-database", "sandbox")
    assert stored["status"] == "failed" and stored["flow_run_id"]
    if backup_id == "no-such-backup":
        assert "nothing to restore: no-such-backup: no manifest" in str(raised.value)
    else:
        assert "backup_id: expected a key of the form <target>-<UTC time>-<run id>" in str(raised.value)


def test_cancelling_a_restore_that_waits_for_approval_ends_it_cancelled_without_a_failure_notice(served, ops, receiver):
    """The operator's Cancel in the UI, on a served run paused for approval: Cancelled, never TimedOut, and no
    [FAILED] notification; the database is untouched."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from flows.backup_database import backup_database

    backup_database(verify=True)  # into the default store, the served process's too
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS reporting_cancel WITH (FORCE)")
        conn.execute("CREATE DATABASE reporting_cancel")
    run = run_deployment("restore-database/restore-database", timeout=0,
                         parameters={"database": "reporting_cancel", "overwrite": True})
    with get_client(sync_client=True) as client:
        assert wait_for_state(client, run.id, lambda s: s.is_paused()).is_paused()
        client.set_flow_run_state(run.id, Cancelling(message="cancelled by an operator"), force=True)
        final = wait_for_state(client, run.id, lambda s: s.is_final())
    assert final.type.value == "CANCELLED", (final.name, final.message)
    assert failure_notices(receiver, str(run.id), within=20) == []
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'reporting_cancel'").fetchone()
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname LIKE 'reporting_cancel_replaced_%'").fetchone()
        conn.execute("DROP DATABASE reporting_cancel WITH (FORCE)")


def wait_for_state(client, flow_run_id, condition, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        state = client.read_flow_run(flow_run_id).state
        if (state is not None and condition(state)) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def failure_notices(receiver, flow_run_id: str, within: float) -> list[dict]:
    """The [FAILED] notifications about one run, polled for `within` seconds (the automation answers in seconds)."""
    deadline = time.monotonic() + within
    while True:
        found = [n for n in receiver.matching(flow_run_id) if "[FAILED]" in json.dumps(n)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
