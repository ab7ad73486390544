"""The filter between pg_restore's script and an older server: exactly the named statements left out, never COPY data,
whatever the chunk boundaries."""

import pytest

from tasks.backup.restore_script import ScriptFilter, column_options, describe, settings_unknown_to

SCRIPT = (b"SET statement_timeout = 0;\n"
          b"SET transaction_timeout = 0;\n"
          b"CREATE TABLE public.t (id integer, note text);\n"
          b"ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver='1');\n"
          b"ALTER TABLE ONLY public.t ALTER COLUMN note SET (n_distinct=-1, pg_attver='1');\n"
          b"COPY public.t (id, note) FROM stdin;\n"
          b"1\tSET transaction_timeout = 0;\n"
          b"2\tALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver='1');\n"
          b"\\.\n"
          b"SELECT 1;")

EXPECTED = (b"SET statement_timeout = 0;\n"
            b"CREATE TABLE public.t (id integer, note text);\n"
            b"ALTER TABLE ONLY public.t ALTER COLUMN note SET (n_distinct=-1);\n"
            b"COPY public.t (id, note) FROM stdin;\n"
            b"1\tSET transaction_timeout = 0;\n"
            b"2\tALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver='1');\n"
            b"\\.\n"
            b"SELECT 1;")


def run(chunk: int) -> tuple[bytes, ScriptFilter]:
    f = ScriptFilter(settings_unknown_to(15), {"pg_attver"})
    out = b"".join(f.feed(SCRIPT[i:i + chunk]) for i in range(0, len(SCRIPT), chunk)) + f.close()
    return out, f


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_only_the_named_statements_are_left_out_and_copy_data_passes_untouched_at_any_chunk_size(chunk):
    out, f = run(chunk)
    assert out == EXPECTED
    assert dict(f.left_out) == {"SET transaction_timeout": 1, "column option pg_attver": 2}


def test_a_server_of_17_or_later_keeps_the_setting_and_the_report_says_why_each_left_out_is_harmless():
    assert settings_unknown_to(17) == set() and settings_unknown_to(16) == {"transaction_timeout"}
    _, f = run(1 << 20)
    lines = describe(f.left_out, "15.20")
    assert lines[0].startswith("SET transaction_timeout left out 1 time(s): PostgreSQL 15.20 has no such setting")
    assert lines[1].startswith("column option pg_attver left out 2 time(s): PostgreSQL 15.20 refuses it")


def test_the_archive_toc_names_a_vendors_column_option_but_never_postgresql_s_own():
    definitions = ["CREATE TABLE x (a int);\nALTER TABLE ONLY public.x ALTER COLUMN a SET (n_distinct=5, pg_attver='3');"]
    assert column_options(definitions) == {"pg_attver": "'3'"}
