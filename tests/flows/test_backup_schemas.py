"""Backups of a schema nobody here designed for: every kind of relation pg_dump writes data for, round-tripped through
backup-database and restore-database, then compared by psql alone (no code shared with the backup)."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from sandbox import manager
from tasks.backup.pg_tools import program
from tests.conftest import use_target

SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS pg_trgm;           -- an extension's own objects are the extension's, not ours
CREATE SCHEMA "Odd Schema";
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE "Odd Schema"."Mixed Case" (id serial PRIMARY KEY, "Weird Col" text, m mood, p positive,
    tags text[], span int4range, doc jsonb, raw bytea, j json, tsv tsvector, at timestamptz DEFAULT now());
INSERT INTO "Odd Schema"."Mixed Case" ("Weird Col", m, p, tags, span, doc, raw, j, tsv)
SELECT 'row ' || g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, g, ARRAY['a' || g, 'b'], int4range(g, g + 10),
       jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')), decode(md5(g::text), 'hex'),
       json_build_object('k', g), to_tsvector('english', 'the quick brown fox ' || g)
FROM generate_series(1, 500) g;
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events (at, what) SELECT DATE '2025-06-01' + (g % 400), 'e' || g FROM generate_series(1, 800) g;
CREATE UNLOGGED TABLE cache_entries (k text PRIMARY KEY, v text);
INSERT INTO cache_entries SELECT 'k' || g, repeat('v', g % 50) FROM generate_series(1, 120) g;
CREATE TABLE empty_table (id int);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.what := upper(NEW.what); RETURN NEW; END $$;
CREATE TRIGGER events_touch BEFORE INSERT ON events_2026 FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO events (at, what) VALUES ('2026-03-01', 'via trigger');
CREATE VIEW busy_days AS SELECT at, count(*) AS n FROM events GROUP BY at;
CREATE MATERIALIZED VIEW daily_counts AS SELECT at, count(*) AS n FROM events GROUP BY at;
CREATE MATERIALIZED VIEW never_filled AS SELECT id, "Weird Col" FROM "Odd Schema"."Mixed Case" WITH NO DATA;
CREATE SEQUENCE invoice_numbers START 1000;
SELECT nextval('invoice_numbers') FROM generate_series(1, 37);
CREATE SEQUENCE unused_numbers;
SELECT lo_from_bytea(0, convert_to(repeat('large object payload ', 2000), 'UTF8'));
SELECT lo_from_bytea(0, '\x00ff00ff'::bytea);
"""

# What an operator would compare, each by psql on its own: relations and their kinds, every relation's rows in a
# canonical order, sequences' values, large objects, whether each materialized view is populated.
PROBES = {
    "relations": "SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text FROM pg_class c JOIN pg_namespace n "
                 "ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'Odd Schema') AND c.relkind IN "
                 "('r','p','v','m','S') ORDER BY 1",
    "mixed": "SELECT t::text FROM \"Odd Schema\".\"Mixed Case\" t ORDER BY id",
    "events": "SELECT t::text FROM events t ORDER BY id",
    "events_2026": "SELECT t::text FROM events_2026 t ORDER BY id",
    "cache": "SELECT t::text FROM cache_entries t ORDER BY k",
    "empty": "SELECT count(*) FROM empty_table",
    "matview": "SELECT t::text FROM daily_counts t ORDER BY at",
    "populated": "SELECT relname || '=' || relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1",
    "sequences": "SELECT (SELECT last_value || '/' || is_called FROM invoice_numbers) || ' ' || "
                 "(SELECT last_value || '/' || is_called FROM unused_numbers) || ' ' || "
                 "(SELECT last_value || '/' || is_called FROM events_id_seq)",
    "large_objects": "SELECT oid || ':' || md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid",
    "functions": "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname = 'touch'",
    "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
}


def psql(url: str, query: str) -> str:
    out = subprocess.run([program("psql"), url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def odd_database(ops, tmp_path, monkeypatch):
    admin = ops.sandbox_admin_url
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in ("ops_odd_schema", "ops_odd_schema_restored"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute("CREATE DATABASE ops_odd_schema")
    url = manager.database_url(ops, "ops_odd_schema")
    subprocess.run([program("psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA], check=True, capture_output=True)
    use_target(tmp_path, monkeypatch, "odd", url, manager.redis_url(ops))
    monkeypatch.setenv("OPS_BACKUP_URL", str(tmp_path / "backups"))
    yield url, manager.database_url(ops, "ops_odd_schema_restored"), tmp_path / "backups"
    with psycopg.connect(admin, autocommit=True) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ops_odd_schema%'").fetchall():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_every_kind_of_relation_round_trips_through_backup_and_restore(odd_database):
    from flows.backup_database import backup_database
    from flows.restore_database import restore_database

    source, restored, _ = odd_database
    backup = backup_database(target="odd", verify=True)
    assert backup.status.value == "ok", backup.summary
    report = restore_database(target="odd", database="ops_odd_schema_restored")
    assert report.status.value == "ok", report.summary
    for name, query in PROBES.items():
        assert psql(restored, query) == psql(source, query), f"{name} differs after the restore"
    assert "never_filled=false" in psql(restored, PROBES["populated"])  # still unpopulated, and never read
    assert psql(restored, "SELECT count(*) FROM pg_largeobject_metadata").strip() == "2"
    assert psql(restored, "SELECT what FROM events WHERE what ILIKE 'via trigger'").strip() == "VIA TRIGGER"


def test_a_backup_whose_archive_lacks_a_relation_leaves_nothing_in_the_store(odd_database, monkeypatch, tmp_path):
    """The archive check runs before the store completes the object: a pg_dump that leaves a table's data out (here
    a real pg_dump behind OPS_PG_BINDIR, told to exclude one table's data) fails for good, is not retried, and the
    store holds nothing of it: no archive, no empty folder."""
    from flows.backup_database import backup_database
    from tasks.backup import pg_tools

    _, _, store = odd_database
    real = pg_tools.bindir()
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("pg_restore", "pg_amcheck"):
        (fake / tool).symlink_to(real / tool)
    calls = tmp_path / "pg_dump.calls"
    (fake / "pg_dump").write_text(f"#!/bin/sh\necho x >> {calls}\n"
                                  f"exec {real / 'pg_dump'} \"$@\" --exclude-table-data=cache_entries\n")
    (fake / "pg_dump").chmod(0o755)
    monkeypatch.setenv("OPS_PG_BINDIR", str(fake))
    with pytest.raises(Exception, match=r"the archive has no data for 1 relation\(s\) of the snapshot: "
                                        r"public.cache_entries \(TABLE DATA\)"):
        backup_database(target="odd", verify=False)
    assert len(calls.read_text().split()) == 2  # the version check, then one dump: a permanent failure is not retried
    assert (list(store.rglob("*")) if store.exists() else []) == []
