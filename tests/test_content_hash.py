"""The per-table content hash a backup records and a restore drill recomputes, on real PostgreSQL through a real
pg_dump | pg_restore: equal after a restore for every kind of column, different for any change of the data."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
import pytest

from tasks.database.postgres import HASH_SESSION, content_hash


SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE everything (
    id bigint PRIMARY KEY, gone text, small smallint, flag boolean, day date, at timestamptz, local timestamp,
    span interval, amount numeric, ratio double precision, body text, name varchar(20), blob bytea,
    doc jsonb, raw json, tags text[], place point, feeling mood, count positive, couple pair, ip inet,
    ident uuid, window_ tsrange);
ALTER TABLE everything DROP COLUMN gone;
CREATE TABLE nothing ();
CREATE TABLE plain (a int, b text);
INSERT INTO plain SELECT i, 'p' || i FROM generate_series(1, 100) i;
INSERT INTO nothing DEFAULT VALUES;
INSERT INTO everything
SELECT i, i % 300, i % 2 = 0, date '2026-01-01' + i, timestamptz '2026-01-01 00:00+02' + i * interval '1 minute',
       timestamp '2026-01-01' + i * interval '1 hour', i * interval '1 second', i / 7.0, i / 3.0,
       repeat('x', i % 40) || E'\\ttab\\nline', 'n' || i, decode(md5(i::text), 'hex'),
       jsonb_build_object('i', i, 'tags', jsonb_build_array(i, 'a')), json_build_object('i', i),
       ARRAY['a' || i, 'b'], point(i, -i), (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood, 1 + i, ROW(i, 't' || i)::pair,
       ('10.0.' || i % 250 || '.1')::inet, md5(i::text)::uuid, tsrange(timestamp '2026-01-01', timestamp '2026-02-01')
FROM generate_series(1, 500) i;
INSERT INTO everything (id) VALUES (0);  -- a row of NULLs
"""


@pytest.fixture
def source(sandbox):
    """A database with every kind of column (and a dropped one), and a restored copy made by pg_dump | pg_restore,
    on the sandbox's server."""
    from tasks.backup.pg_tools import program

    ADMIN = sandbox.sandbox_admin_url
    SERVER = ADMIN.rsplit("/", 1)[0]
    names = [f"ops_hash_test_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("source", "restored")]
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{SERVER}/{names[0]}", autocommit=True) as conn:
            conn.execute(SCHEMA)
        dump = subprocess.run([program("pg_dump"), "-Fc", "-d", f"{SERVER}/{names[0]}"],
                              capture_output=True, check=True).stdout
        subprocess.run([program("pg_restore"), "--exit-on-error", "-d", f"{SERVER}/{names[1]}"],
                       input=dump, check=True)
        yield [f"{SERVER}/{name}" for name in names]
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def figures(url: str, table: str, method: str | None = None) -> tuple[int, str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(HASH_SESSION)
        return content_hash(conn, table, method)


def test_every_kind_of_column_hashes_equal_after_a_restore(source):
    original, restored = source
    rows, total, method = figures(original, "public.everything")
    assert (rows, method) == (501, "portable_column_hashes")
    assert figures(restored, "public.everything", method) == (rows, total, method)
    assert figures(original, "public.nothing") == figures(restored, "public.nothing") == (1, "0", "portable_column_hashes")
    # manifests written before portable_column_hashes are still checked by their own methods
    assert figures(original, "public.everything", "column_hashes") == figures(restored, "public.everything",
                                                                              "column_hashes")
    assert figures(original, "public.everything", "hashtextextended") == figures(restored, "public.everything",
                                                                                 "hashtextextended")
    assert figures(original, "public.plain", "hash_record_extended") == figures(restored, "public.plain",
                                                                              "hash_record_extended")
    assert figures(original, "public.plain", "hash_record_extended")[1] != figures(original, "public.plain")[1]
    with psycopg.connect(original, autocommit=True) as conn:  # a rewrite reorders the rows; the hash does not care
        conn.execute("CLUSTER everything USING everything_pkey")
        conn.execute("UPDATE everything SET small = small WHERE id % 2 = 0")
    assert figures(original, "public.everything")[:2] == (rows, total)


@pytest.mark.parametrize("change", [
    "UPDATE everything SET at = at + interval '1 microsecond' WHERE id = 7",
    "UPDATE everything SET doc = doc || '{\"x\": 1}' WHERE id = 7",
    "UPDATE everything SET place = point(0, 0) WHERE id = 7",          # a type with no hash function
    "UPDATE everything SET flag = NULL WHERE id = 7",
    "UPDATE everything SET small = 1, count = 1 WHERE id = 7",       # two columns given one value
    "UPDATE everything SET name = body, body = name WHERE id = 8",    # two columns' values swapped
    "UPDATE everything SET body = 'same' WHERE id IN (1, 2); UPDATE everything SET id = -id WHERE id IN (1, 2)",
])
def test_any_change_of_the_data_changes_the_hash(source, change):
    original, _ = source
    before = figures(original, "public.everything")
    with psycopg.connect(original, autocommit=True) as conn:
        conn.execute(change)
    assert figures(original, "public.everything")[1] != before[1]


def test_duplicate_rows_count_in_the_hash(source):
    """Two equal rows must not cancel each other out: {A, A} and {B, B} differ."""
    original, _ = source
    with psycopg.connect(original, autocommit=True) as conn:
        conn.execute("CREATE TABLE twins (v text)")
        conn.execute("INSERT INTO twins VALUES ('a'), ('a')")
        first = figures(original, "public.twins")
        conn.execute("UPDATE twins SET v = 'b'")
    assert figures(original, "public.twins")[1] != first[1]
