"""Backups of a PostgreSQL 15 server (Debian's server programs, which `.ci/run` installs), restored onto that same
major and onto 18, by restore-database, by the full drill and by the README's manual steps; compared by psql alone.

Debian's PostgreSQL 15 is a build nobody here wrote: it marks every column with an option of its own (`pg_attver`),
which PostgreSQL 18 refuses. And the archive a pg_dump 18 writes is one pg_restore 15 cannot read (format 1.16), while
pg_restore 18 opens every session with a setting 15 does not have (transaction_timeout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from sandbox import manager
from tests.conftest import SESSION_DIR, free_port

ROOT = Path(__file__).resolve().parents[2]
from tests.flows.test_backup_schemas import PROBES, SCHEMA, psql

# column options of PostgreSQL's own, and a storage setting, beside the ones the server adds
OPTIONS = """
ALTER TABLE events_2025 ALTER COLUMN what SET (n_distinct = 50);
ALTER TABLE "Odd Schema"."Mixed Case" ALTER COLUMN "Weird Col" SET (n_distinct = -0.5, n_distinct_inherited = 10);
ALTER TABLE "Odd Schema"."Mixed Case" ALTER COLUMN doc SET STORAGE EXTERNAL;
"""
PROBES_WITH_OPTIONS = {**PROBES, "column_options": "SELECT attrelid::regclass || '.' || attname || '=' || "
                       "array_to_string(ARRAY(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%' "
                       "ORDER BY 1), ',') || ' ' || attstorage::text FROM pg_attribute WHERE attrelid IN "
                       "('events_2025'::regclass, '\"Odd Schema\".\"Mixed Case\"'::regclass) AND attnum > 0 "
                       "AND NOT attisdropped ORDER BY 1"}


@pytest.fixture(scope="module")
def pg15():
    """A private PostgreSQL 15 cluster from Debian's server programs."""
    from tasks.backup.private_cluster import Cluster, server_bindirs

    programs = server_bindirs().get(15)
    assert programs is not None, "Debian's postgresql-15 server programs are needed (.ci/run installs them)"
    cluster = Cluster(SESSION_DIR / "pg15", free_port(), bindir=programs, port_setting="the tests' PostgreSQL 15 port")
    admin = cluster.ensure()
    yield admin
    cluster.remove()


@pytest.fixture(scope="module")
def origin(ops, pg15, tmp_path_factory):
    """The odd schema on the 15 server, a target `odd15` for it and a backup store of its own."""
    with psycopg.connect(pg15, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ops_odd WITH (FORCE)")
        conn.execute("CREATE DATABASE ops_odd")
    url = pg15.rsplit("/", 1)[0] + "/ops_odd"
    subprocess.run([psql_program(), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA + OPTIONS], check=True,
                   capture_output=True)
    assert "pg_attver=" in psql(url, "SELECT attoptions::text FROM pg_attribute WHERE attrelid = 'events'::regclass "
                                     "AND attname = 'what'")  # the vendor's marker is there, as in the field
    home = tmp_path_factory.mktemp("odd15")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPS_BACKUP_URL", str(home / "backups"))
        point_target(mp, home, url)
        yield url, home, mp


def psql_program() -> str:
    from tasks.backup.pg_tools import program

    return program("psql")


def point_target(mp: pytest.MonkeyPatch, home: Path, database_url: str) -> None:
    from playground_ops.settings import load_settings

    targets = home / "targets.yaml"
    targets.write_text(f"targets:\n  - name: odd15\n    health_url: http://127.0.0.1:1/health\n"
                       f"    database_url: {database_url}\n    redis_url: {manager.redis_url(load_settings())}\n"
                       "    app_schema: {users: empty_table, requests: events}\n")  # the drill's smoke queries
    mp.setenv("OPS_TARGETS_FILE", str(targets))


def same_objects(restored: str, source: str) -> None:
    for name, query in PROBES_WITH_OPTIONS.items():
        assert psql(restored, query) == psql(source, query), f"{name} differs after the restore"


def fresh(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return server.rsplit("/", 1)[0] + "/" + name


def rung(report, name: str) -> str:
    return next(r["detail"] for r in report.tables["rungs"] if r["rung"] == name)


@pytest.fixture(scope="module")
def backup15(origin):
    """backup-database of the 15 server: pg_dump 15 chosen for it."""
    from flows.backup_database import backup_database
    from tasks.backup.pipeline import list_backups
    from tasks.targets import load_ops_settings

    report = backup_database(target="odd15", verify=True)
    assert report.status.value == "ok", report.summary
    manifest = list_backups.fn(load_ops_settings(), "odd15")[0][0]
    assert manifest.pg_dump_version.startswith("15.") and manifest.server_version.startswith("15.")
    return manifest


def test_a_backup_of_a_15_server_restores_onto_that_same_server(origin, backup15, pg15):
    from flows.restore_database import restore_database

    source, _, _ = origin
    restored = fresh(pg15, "ops_odd_back")
    report = restore_database(target="odd15", database="ops_odd_back")
    assert report.status.value == "ok", report.summary
    assert "pg_restore 15." in rung(report, "restore") and "onto PostgreSQL 15." in rung(report, "restore")
    same_objects(restored, source)


def test_the_same_backup_restores_onto_18_leaving_out_the_option_18_refuses(origin, backup15, ops):
    """A move to a newer server: the target now points at a PostgreSQL 18 server (the sandbox's cluster)."""
    from flows.restore_database import restore_database

    source, home, mp = origin
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ops_odd WITH (FORCE)")
        conn.execute("CREATE DATABASE ops_odd")  # the new server's (empty) application database
    restored = fresh(ops.sandbox_admin_url, "ops_odd_moved")
    point_target(mp, home, ops.sandbox_admin_url.rsplit("/", 1)[0] + "/ops_odd")
    try:
        report = restore_database(target="odd15", database="ops_odd_moved")
    finally:
        point_target(mp, home, source)
    assert report.status.value == "ok", report.summary
    assert "pg_restore 18." in rung(report, "restore") and "onto PostgreSQL 18." in rung(report, "restore")
    same_objects(restored, source)
    fresh(ops.sandbox_admin_url, "ops_odd_moved")
    fresh(ops.sandbox_admin_url, "ops_odd")


def test_the_full_drill_restores_onto_the_origins_major_and_says_so(origin, backup15):
    from flows.verify_backup import verify_backup

    report = verify_backup(target="odd15", backup_id=backup15.backup_id, mode="full", apply_retention=False)
    assert report.status.value == "ok", report.summary
    assert "PostgreSQL 15." in report.figures["restored_on"]
    assert report.figures["proves"] == "restores onto the origin's major, PostgreSQL 15"


def test_a_drill_without_the_origins_server_programs_says_what_it_proved(origin, backup15, monkeypatch):
    """Only PostgreSQL 18 here (OPS_PG_BINDIR names the wheel's): the drill restores into 18 and says it proved
    that only, as a warning, never a plain ok."""
    from flows.verify_backup import verify_backup
    from tasks.backup.private_cluster import wheel_bindir

    monkeypatch.setenv("OPS_PG_BINDIR", str(wheel_bindir()))
    report = verify_backup(target="odd15", backup_id=backup15.backup_id, mode="full", apply_retention=False)
    assert report.status.value == "warning", report.summary
    assert "proved a restore into PostgreSQL 18 only, not onto the origin's PostgreSQL 15" in report.figures["proves"]
    assert any("proved a restore into PostgreSQL 18 only" in f.message for f in report.findings)


def test_a_backup_written_by_pg_dump_18_restores_onto_15_with_each_left_out_statement_named(origin, pg15, monkeypatch):
    """The field's case: backups of a 15 server taken by pg_dump 18 (the only client tools then). pg_restore 15
    cannot read them; pg_restore 18's script goes in without the one setting 15 lacks, and the report says so."""
    from flows.backup_database import backup_database
    from flows.restore_database import restore_database
    from flows.verify_backup import verify_backup
    from tasks.backup.private_cluster import wheel_bindir

    source, _, _ = origin
    monkeypatch.setenv("OPS_PG_BINDIR", str(wheel_bindir()))
    report = backup_database(target="odd15", verify=False)
    assert report.status.value == "ok", report.summary
    backup_id = report.figures["backup_id"]
    monkeypatch.delenv("OPS_PG_BINDIR")
    verify_backup(target="odd15", backup_id=backup_id, mode="quick", apply_retention=False)  # restorable: verified
    restored = fresh(pg15, "ops_odd_from18")
    report = restore_database(target="odd15", backup_id=backup_id, database="ops_odd_from18")
    assert report.status.value == "ok", report.summary
    detail = rung(report, "restore")
    assert "pg_restore 18." in detail and "onto PostgreSQL 15." in detail
    assert "SET transaction_timeout left out 1 time(s): PostgreSQL 15." in detail
    same_objects(restored, source)
    drill = verify_backup(target="odd15", backup_id=backup_id, mode="full", apply_retention=False)
    assert drill.status.value == "ok" and "PostgreSQL 15." in drill.figures["restored_on"], drill.summary
    # and by hand, as the README says for an archive a newer pg_dump wrote
    _, home, _ = origin
    target = fresh(pg15, "ops_odd_by_hand18")
    env = {"PATH": "/usr/bin:/bin", "ARCHIVE": str(home / "backups" / "odd15" / backup_id / "archive.pgdump.zst"),
           "NEWDB": "ops_odd_by_hand18", "PGHOST": "127.0.0.1", "PGPORT": pg15.split(":")[-1].split("/")[0],
           "PGUSER": "postgres", "PG18": str(wheel_bindir()), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    script = ('createdb "$NEWDB" && zstd -dc "$ARCHIVE" | "$PG18/pg_restore" --no-owner -f - '
              '| "$PYTHON" -m tasks.backup.restore_script --server-major 15 '
              '| "$PG18/psql" -X -q -v ON_ERROR_STOP=1 -d "$NEWDB"')
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "SET transaction_timeout left out 1 time(s)" in done.stderr
    same_objects(target, source)


def test_the_readmes_manual_restore_onto_the_origin_server(origin, backup15, pg15):
    """The README's commands, run as an operator would, from the store's files."""
    source, home, _ = origin
    archive = home / "backups" / "odd15" / backup15.backup_id / "archive.pgdump.zst"
    target = fresh(pg15, "ops_odd_by_hand")
    env = {"PATH": "/usr/bin:/bin", "ARCHIVE": str(archive), "NEWDB": "ops_odd_by_hand",
           "PGHOST": "127.0.0.1", "PGPORT": pg15.split(":")[-1].split("/")[0], "PGUSER": "postgres"}
    # README: "Restoring by hand", with the server's own major's pg_restore
    script = ('createdb "$NEWDB" && zstd -dc "$ARCHIVE" | '
              '/usr/lib/postgresql/15/bin/pg_restore --exit-on-error --no-owner -d "$NEWDB"')
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    same_objects(target, source)


def test_content_hashes_of_every_kind_of_column_agree_between_15_and_18(pg15, ops):
    """The figures a backup records on one major are recomputed by the check on another: equal for the same rows."""
    from tasks.database.postgres import HASH_SESSION, content_hash
    from tests.test_content_hash import SCHEMA as EVERY_KIND

    found = []
    for admin in (pg15, ops.sandbox_admin_url):
        url = fresh(admin, "ops_every_kind")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ops_every_kind")
        subprocess.run([psql_program(), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", EVERY_KIND], check=True,
                       capture_output=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(HASH_SESSION)
            found.append(content_hash(conn, "public.everything"))
        fresh(admin, "ops_every_kind")
    assert found[0] == found[1] and found[0][0] == 501 and found[0][2] == "portable_column_hashes"


@pytest.mark.network  # the other majors' server programs come from the npm registry (sandbox/pg_servers.py)
@pytest.mark.parametrize("major", [13, 14, 16, 17])
def test_a_backup_of_every_supported_major_restores_onto_its_own_major_and_onto_18(major, ops, tmp_path, monkeypatch):
    """The restore matrix beside 15 and 18: a server of each other major, with no client programs of its own here
    (pg_dump 18 backs it up), restored onto that major by restore-database and by the drill, and onto 18."""
    from flows.backup_database import backup_database
    from flows.restore_database import restore_database
    from flows.verify_backup import verify_backup
    from sandbox.pg_servers import server_programs
    from tasks.backup.private_cluster import Cluster

    programs = server_programs(major, Path.home() / ".cache" / "playground-ops" / "postgres")
    monkeypatch.setenv("OPS_PG_BINDIRS", str(programs))
    monkeypatch.setenv("OPS_BACKUP_URL", str(tmp_path / "backups"))
    cluster = Cluster(tmp_path / "origin", free_port(), bindir=programs, port_setting=f"the PostgreSQL {major} port")
    admin = cluster.ensure()
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ops_odd")
        source = admin.rsplit("/", 1)[0] + "/ops_odd"
        subprocess.run([psql_program(), source, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA + OPTIONS],
                       check=True, capture_output=True)
        point_target(monkeypatch, tmp_path, source)
        backup = backup_database(target="odd15", verify=True)  # the target's name; its server is of `major`
        assert backup.status.value == "ok", backup.summary
        assert backup.figures["server"].startswith(f"{major}.") and backup.figures["pg_dump"].startswith("18.")

        restored = fresh(admin, "ops_odd_back")
        report = restore_database(target="odd15", database="ops_odd_back")
        assert report.status.value == "ok", report.summary
        assert f"onto PostgreSQL {major}." in rung(report, "restore")
        if major < 17:  # pg_restore 18 opens its sessions with a setting these majors lack
            assert "SET transaction_timeout left out 1 time(s)" in rung(report, "restore")
        same_objects(restored, source)

        drill = verify_backup(target="odd15", mode="full", apply_retention=False)
        assert drill.status.value == "ok", drill.summary
        assert drill.figures["proves"] == f"restores onto the origin's major, PostgreSQL {major}"

        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS ops_odd WITH (FORCE)")
            conn.execute("CREATE DATABASE ops_odd")
        moved = fresh(ops.sandbox_admin_url, "ops_odd_moved")
        point_target(monkeypatch, tmp_path, ops.sandbox_admin_url.rsplit("/", 1)[0] + "/ops_odd")
        report = restore_database(target="odd15", database="ops_odd_moved")
        assert report.status.value == "ok", report.summary
        assert "onto PostgreSQL 18." in rung(report, "restore")
        same_objects(moved, source)
        for name in ("ops_odd_moved", "ops_odd"):
            fresh(ops.sandbox_admin_url, name)
    finally:
        cluster.remove()
        for drill_cluster in ops.drill_clusters():
            drill_cluster.stop()
