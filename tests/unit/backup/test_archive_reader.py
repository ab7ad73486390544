"""The archive's table of contents read as it streams by, from archives real pg_dump programs wrote (every major
installed here, each its own archive version): the tables with data, in any chunking, and a stream that is not an
archive, or ends inside its table of contents, refused."""

import os
import subprocess

import psycopg
import pytest

from tasks.backup.archive_reader import ArchiveFormatError, ArchiveReader
from tasks.backup.pg_tools import installed_tools

SERVER = "postgresql://postgres@127.0.0.1:5432"  # the machine's PostgreSQL (trust auth)
DATABASE = f"ops_unit_archive_{os.getpid()}"


@pytest.fixture(scope="module")
def archives():
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    try:
        with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
            conn.execute("CREATE SCHEMA billing")
            conn.execute("CREATE TABLE public.users (id serial PRIMARY KEY, email text)")
            conn.execute("INSERT INTO public.users (email) SELECT 'u' || g FROM generate_series(1, 500) g")
            conn.execute('CREATE TABLE billing."Invoices" (id int, total numeric)')
            conn.execute("CREATE MATERIALIZED VIEW public.empty_view AS SELECT 1 AS one WITH NO DATA")
        found = {}
        for tools in installed_tools():
            dump = subprocess.run([tools.program("pg_dump"), "-Fc", "-d", f"{SERVER}/{DATABASE}"],
                                  capture_output=True, check=False)
            if dump.returncode == 0:  # an older pg_dump than the server refuses it: not an archive to read
                found[tools.major] = dump.stdout
        assert found, "no installed pg_dump could dump the machine's PostgreSQL"
        yield found
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def read(archive: bytes, chunk: int):
    reader = ArchiveReader()
    for i in range(0, len(archive), chunk):
        reader.feed(archive[i:i + chunk])
    return reader.summary()


def test_every_installed_pg_dump_s_archive_names_each_table_with_its_data_and_copy_statement(archives):
    for major, archive in archives.items():
        summary = read(archive, 1 << 20)
        assert summary.version in {"1.14", "1.15", "1.16"}, major
        assert set(summary.table_data) == {"public.users", "billing.Invoices"}, major
        assert summary.table_data["public.users"].startswith("COPY public.users (id, email) FROM stdin"), major
        assert ("SEQUENCE SET", "public", "users_id_seq") in summary.entries
        assert ("MATERIALIZED VIEW DATA", "public", "empty_view") not in summary.entries  # never populated
        assert any("CREATE TABLE billing.\"Invoices\"" in d for d in summary.definitions), major


def test_the_same_summary_whatever_the_chunk_boundaries(archives):
    for archive in archives.values():
        whole = read(archive, len(archive))
        assert read(archive, 1) == whole
        assert read(archive, 7) == whole


def test_a_stream_that_is_not_a_custom_archive_is_refused_at_its_first_bytes():
    reader = ArchiveReader()
    with pytest.raises(ArchiveFormatError, match="no PGDMP magic"):
        reader.feed(b"-- PostgreSQL database dump\nSET statement_timeout = 0;\n")


def test_an_archive_cut_inside_its_table_of_contents_is_not_complete(archives):
    archive = next(iter(archives.values()))
    reader = ArchiveReader()
    reader.feed(archive[:200])
    assert not reader.done
    with pytest.raises(ArchiveFormatError, match="ended before its table of contents was complete"):
        reader.summary()
