"""performance-review and database-maintenance against real PostgreSQL (pg_stat_statements loaded) and Redis, with
the situations built on purpose."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from sandbox import manager
from tests.conftest import use_target, wait_for_sql
from tests.background import in_background, paused_run


@pytest.fixture(scope="module")
def situations(ops):
    """An unused, a duplicate, a redundant and an invalid index; a sequence near its maximum; a large table read by
    sequential scans; dead tuples; and statements in pg_stat_statements."""
    url = manager.database_url(ops)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            DROP TABLE IF EXISTS perf_events, perf_seq CASCADE;
            CREATE TABLE perf_events AS SELECT g AS id, g % 1000 AS account_id, md5(g::text) AS payload
              FROM generate_series(1, 60000) g;
            ALTER TABLE perf_events ADD PRIMARY KEY (id);
            CREATE INDEX perf_unused_idx ON requests (tokens);
            CREATE INDEX perf_dup_idx ON requests (created_at);
            CREATE INDEX perf_redundant_idx ON requests (user_id);
            CREATE TABLE perf_seq (id serial PRIMARY KEY, note text);
            SELECT setval('perf_seq_id_seq', 2000000000);
            ANALYZE perf_events;
        """)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY perf_invalid_idx ON requests (endpoint)")
        conn.execute("SELECT pg_stat_statements_reset()")
        for i in range(60):
            conn.execute("SELECT count(*) FROM perf_events WHERE account_id = %s", (i,))
        conn.execute("UPDATE perf_events SET payload = payload || 'x' WHERE id <= 30000")
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS perf_events, perf_seq CASCADE; DROP INDEX IF EXISTS perf_unused_idx, "
                     "perf_dup_idx, perf_redundant_idx, perf_invalid_idx")


def messages(report) -> str:
    return "\n".join(f"{f.severity.value}: {f.message} -> {f.next_step}" for f in report.findings)


def test_review_finds_each_situation_with_the_right_suggestion(situations):
    from flows.performance_review import performance_review

    idle = psycopg.connect(situations)
    idle.execute("SELECT 1")  # leaves the session idle in a transaction
    wait_for_sql(situations, "SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction' AND now() - "
                             "state_change > interval '1 second'", "a session idle in a transaction for over 1 s")
    try:
        report = performance_review(slow_mean_ms=0.5, idle_in_transaction_s=1)
    finally:
        idle.close()
    text = messages(report)
    assert "unused index public.perf_unused_idx" in text and "DROP INDEX CONCURRENTLY public.perf_unused_idx;" in text
    assert "duplicate index public.perf_dup_idx: public.requests_created_at_idx already covers" in text
    assert "redundant index public.perf_redundant_idx: public.requests_user_id_created_at_idx already covers" in text
    assert "invalid index public.perf_invalid_idx" in text
    assert "sequence public.perf_seq_id_seq has used 93% of its range" in text
    assert "public.perf_events (60,000 rows) is read mostly by sequential scans" in text
    assert "CREATE INDEX CONCURRENTLY ON public.perf_events (account_id);" in text
    assert "public.perf_events has 30,000 dead tuples" in text
    assert "idle in transaction for" in text
    assert "slow statement" in text
    # PgHero-style unused check never names indexes that back constraints
    assert "requests_pkey" not in "".join(r["index"] for r in report.tables["unused_indexes"])
    plans = {p["query"]: p["plan"] for p in report.tables["plans"]}
    assert any("perf_events" in q and "Seq Scan on perf_events" in p for q, p in plans.items())
    assert report.figures["redis_used_memory"] > 0 and report.figures["database_bytes"] > 0
    assert report.findings[0].severity.value in ("critical", "warning")  # ordered by severity
    assert [f.severity.value for f in report.findings] == sorted(
        (f.severity.value for f in report.findings), key=["critical", "warning", "info"].index)


def test_second_review_compares_with_the_first_instead_of_resetting(situations):
    from flows.performance_review import performance_review

    first = performance_review()
    with psycopg.connect(situations, autocommit=True) as conn:
        for i in range(5):
            conn.execute("SELECT id FROM perf_events WHERE payload = %s", (str(i),))
        before = conn.execute("SELECT sum(calls) FROM pg_stat_statements").fetchone()[0]
    second = performance_review()
    assert second.figures["statements_window"] == "since the previous review"
    assert any("payload" in row["query"] for row in second.tables["new_statements"])
    assert not any("payload = $1" in row["query"] for row in first.tables.get("new_statements", []))
    with psycopg.connect(situations) as conn:  # the review did not reset the statistics
        assert conn.execute("SELECT sum(calls) FROM pg_stat_statements").fetchone()[0] >= before
    assert "database_growth_bytes" in second.figures


def test_missing_extension_is_reported_and_the_rest_still_runs(ops, tmp_path, monkeypatch):
    from flows.performance_review import performance_review

    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS perf_noext")
        conn.execute("CREATE DATABASE perf_noext")
    use_target(tmp_path, monkeypatch, "noext", manager.database_url(ops, "perf_noext"), manager.redis_url(ops))
    try:
        report = performance_review(target="noext")
    finally:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS perf_noext WITH (FORCE)")
    assert "pg_stat_statements is loaded but not installed in this database" in messages(report)
    assert "CREATE EXTENSION pg_stat_statements" in messages(report)
    assert "pg_monitor" not in messages(report)  # nothing the role lacks: the extension is simply not there
    assert report.figures["database_bytes"] > 0 and "connections" in report.tables


def test_a_role_without_statistics_privileges_gets_a_report_naming_what_it_could_not_read(situations, ops, tmp_path,
                                                                                             monkeypatch):
    from flows.performance_review import performance_review

    with psycopg.connect(situations, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ops_limited")
        conn.execute("CREATE ROLE ops_limited LOGIN")
        conn.execute("REVOKE ALL ON pg_stat_statements FROM PUBLIC")
    try:
        url = manager.database_url(ops).replace("postgres:", "ops_limited:")
        use_target(tmp_path, monkeypatch, "limited", url, manager.redis_url(ops))
        report = performance_review(target="limited")
        text = messages(report)
        assert "could not read statements: InsufficientPrivilege" in text
        assert "GRANT pg_monitor" in text
        assert report.tables["sizes"]  # the rest of the review still ran
    finally:
        with psycopg.connect(situations, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON pg_stat_statements TO PUBLIC")
            conn.execute("DROP ROLE IF EXISTS ops_limited")


def test_dry_run_lists_exactly_what_would_run_and_runs_nothing(situations):
    from flows.database_maintenance import database_maintenance

    def vacuums() -> int:
        with psycopg.connect(situations) as conn:
            return conn.execute("SELECT sum(vacuum_count) FROM pg_stat_user_tables").fetchone()[0]

    before = vacuums()
    report = database_maintenance(dry_run=True, reindex=["public.perf_dup_idx"])
    sqls = [row["sql"] for row in report.tables["plan"]]
    assert "VACUUM (ANALYZE) public.perf_events" in sqls
    assert "REINDEX INDEX CONCURRENTLY public.perf_dup_idx" in sqls
    assert not any("FULL" in s or s.startswith("REINDEX DATABASE") for s in sqls)
    assert vacuums() == before


def test_maintenance_vacuums_skips_a_locked_table_and_retries_a_dropped_connection(situations, ops):
    from flows.database_maintenance import database_maintenance

    with psycopg.connect(situations, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS perf_locked, perf_dropped")
        conn.execute("CREATE TABLE perf_locked AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("CREATE TABLE perf_dropped AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("UPDATE perf_events SET payload = payload || 'y' WHERE id <= 20000")
        vacuumed_before = dict(conn.execute("SELECT relname, vacuum_count FROM pg_stat_user_tables "
                                            "WHERE relname IN ('perf_events', 'perf_dropped')").fetchall())
    holder = psycopg.connect(situations)
    holder.execute("LOCK TABLE perf_locked IN ACCESS EXCLUSIVE MODE")  # held for the whole run
    blocker = psycopg.connect(situations)
    blocker.execute("LOCK TABLE perf_dropped IN ACCESS EXCLUSIVE MODE")
    killed = []

    def drop_the_vacuum_connection() -> None:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                pids = admin.execute("SELECT pid FROM pg_stat_activity WHERE query = 'VACUUM (ANALYZE) public.perf_dropped' "
                                     "AND wait_event_type = 'Lock'").fetchall()
                for (pid,) in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed.append(pid)
                time.sleep(0.05)
        blocker.rollback()  # the retry then finds the table free

    killer = threading.Thread(target=drop_the_vacuum_connection)
    killer.start()
    try:
        report = database_maintenance(lock_timeout_s=3, reindex_min_bytes=10**12)
    finally:
        killer.join()
        holder.rollback()
        holder.close()
        blocker.close()
    results = {r["object"]: r for r in report.tables["results"]}
    assert killed
    assert results["public.perf_locked"]["status"] == "skipped" and "lock timeout" in results["public.perf_locked"]["detail"]
    assert results["public.perf_dropped"]["status"] == "done"
    assert results["public.perf_events"]["status"] == "done"
    assert "vacuum of public.perf_locked skipped" in messages(report)
    dead = {r["table"]: r for r in report.tables["dead_tuples"]}
    assert dead["public.perf_events"]["before"] >= 20000 and dead["public.perf_events"]["after"] == 0
    with psycopg.connect(situations) as conn:  # finished work was not redone by the retry
        counts = dict(conn.execute("SELECT relname, vacuum_count FROM pg_stat_user_tables "
                                   "WHERE relname IN ('perf_events', 'perf_dropped')").fetchall())
    assert {name: counts[name] - vacuumed_before[name] for name in counts} == {"perf_events": 1, "perf_dropped": 1}
    with psycopg.connect(situations, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS perf_locked, perf_dropped")


def test_bloated_index_is_rebuilt_concurrently_while_a_writer_keeps_writing_and_leftovers_are_dropped(situations, ops):
    from flows.database_maintenance import database_maintenance

    with psycopg.connect(situations, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS perf_bloat")
        conn.execute("CREATE TABLE perf_bloat (id bigserial PRIMARY KEY, v text)")
        conn.execute("CREATE INDEX perf_bloat_v_idx ON perf_bloat (v)")
        conn.execute("INSERT INTO perf_bloat (v) SELECT md5(g::text) FROM generate_series(1, 200000) g")
        conn.execute("DELETE FROM perf_bloat WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE perf_bloat")
        with pytest.raises(psycopg.errors.UniqueViolation):  # an invalid index named like a failed reindex's leftover
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY perf_events_payload_idx_ccnew ON perf_events ((id % 2))")
        size_before, node_before, rows_before = conn.execute(
            "SELECT pg_relation_size('perf_bloat_v_idx'), pg_relation_filenode('perf_bloat_v_idx'), "
            "(SELECT count(*) FROM perf_bloat)").fetchone()
    stop = threading.Event()
    writes, during = [], []

    def writer() -> None:
        with psycopg.connect(situations, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO perf_bloat (v) VALUES (md5(random()::text))")
                writes.append(time.monotonic())

    def watch() -> None:
        with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as admin:
            while not stop.is_set():
                if admin.execute("SELECT 1 FROM pg_stat_progress_create_index WHERE command = 'REINDEX CONCURRENTLY'"
                                 ).fetchone():
                    during.append(len(writes))
                time.sleep(0.005)

    threads = [threading.Thread(target=writer), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    try:
        report = database_maintenance(vacuum=False, reindex_min_bytes=1, reindex_bloat_ratio=0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    results = {r["object"]: r for r in report.tables["results"]}
    assert results["public.perf_bloat_v_idx"]["status"] == "done"
    assert results["public.perf_events_payload_idx_ccnew"]["step"] == "drop-leftover"
    assert len(during) >= 2 and during[-1] > during[0]  # rows went in while the index was being rebuilt
    with psycopg.connect(situations, autocommit=True) as conn:
        size_after, node_after, rows_after = conn.execute(
            "SELECT pg_relation_size('perf_bloat_v_idx'), pg_relation_filenode('perf_bloat_v_idx'), "
            "(SELECT count(*) FROM perf_bloat)").fetchone()
        assert not conn.execute("SELECT 1 FROM pg_class WHERE relname LIKE 'perf_events_payload_idx_ccnew%'").fetchone()
        conn.execute("DROP TABLE perf_bloat")
    # a new index, at most half the bytes per live row of the bloated one (however many rows the writer added)
    assert node_after != node_before and size_after / rows_after < size_before / rows_before / 2


def test_maintenance_refuses_a_database_that_is_not_the_configured_one(ops, tmp_path, monkeypatch):
    from flows.database_maintenance import database_maintenance

    use_target(tmp_path, monkeypatch, "pinned", manager.database_url(ops), manager.redis_url(ops),
               extra="    system_identifier: '1234567890'\n")
    with pytest.raises(Exception, match="system_identifier: expected the cluster 1234567890"):
        database_maintenance(target="pinned")


@pytest.mark.parametrize("version, present, absent", [
    (130000, ["total_exec_time + s.total_plan_time", "mean_exec_time", "blk_read_time + s.blk_write_time"],
     ["shared_blk_read_time", "s.total_time"]),
    (170000, ["total_exec_time + s.total_plan_time", "shared_blk_read_time + s.shared_blk_write_time"],
     ["s.blk_read_time", "s.mean_time"]),
    (120000, ["s.total_time", "s.mean_time"], ["exec_time"]),
])
def test_statement_query_uses_the_column_names_of_each_server_version(version, present, absent):
    from tasks.database.queries import statements_reset_sql, statements_sql

    sql = statements_sql(version)
    for text in present:
        assert text in sql
    for text in absent:
        assert text not in sql
    assert (statements_reset_sql(version) is None) == (version < 140000)


def test_statement_query_runs_on_this_server(situations):
    from tasks.database.queries import statements_sql

    with psycopg.connect(situations) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        rows = conn.execute(statements_sql(int(version))).fetchall()
    assert rows


def test_vacuum_full_waits_for_an_operator_and_runs_nothing_when_refused(situations):
    from prefect.flow_runs import resume_flow_run

    from flows.database_maintenance import database_maintenance

    def fulls() -> int:
        with psycopg.connect(situations) as conn:  # VACUUM FULL rewrites the table: its file node changes
            return conn.execute("SELECT pg_relation_filenode('perf_events')").fetchone()[0]

    before = fulls()
    runner, outcome = in_background(database_maintenance, full=True)
    paused = paused_run("database-maintenance")
    assert paused is not None, "VACUUM FULL did not wait for an operator"
    assert fulls() == before
    resume_flow_run(paused.id, run_input={"approve": False})
    runner.join(timeout=120)
    report = outcome["report"]
    assert "VACUUM FULL was not approved; nothing was run" in messages(report)
    assert any("VACUUM (FULL, ANALYZE)" in row["sql"] for row in report.tables["plan"])
    assert "results" not in report.tables and fulls() == before


@pytest.mark.parametrize("available, expected", [
    ({"preloaded": False, "installed": False}, "pg_stat_statements is not loaded"),
    ({"preloaded": True, "installed": False}, "CREATE EXTENSION pg_stat_statements"),
])
def test_missing_pg_stat_statements_is_explained(available, expected):
    from tasks.database.review import Thresholds, statement_review

    section = statement_review(available, None, None, None, None, Thresholds())
    text = " ".join(f"{f.message} {f.next_step}" for f in section.findings)
    assert expected in text and "shared_preload_libraries" in text or available["preloaded"]
