"""The performance review's judgement on paper: statements compared with the previous review (never since a reset
it did not see), indexes PgHero would flag and those it must not, sessions, wraparound, sequences and Redis over the
week."""

from tasks.database.review import (Thresholds, filter_columns, growth_review, health_review, index_review,
                                   redis_review, safe_to_explain, statement_review)

T = Thresholds(slow_mean_ms=100, slow_min_calls=10)
AVAILABLE = {"preloaded": True, "installed": True}


def stmt(queryid, calls, total_ms, query="SELECT * FROM requests WHERE user_id = $1"):
    return {"queryid": queryid, "query": query, "role": "app", "calls": calls, "total_ms": total_ms,
            "mean_ms": total_ms / calls, "rows": calls, "shared_blks_hit": 90, "shared_blks_read": 10, "io_ms": 0}


def messages(section) -> list[str]:
    return [f.message for f in section.findings]


def test_without_pg_stat_statements_the_review_says_how_to_load_it():
    out = statement_review({"preloaded": False, "installed": False}, None, None, None, None, T)
    assert messages(out) == ["pg_stat_statements is not loaded: slow queries cannot be reviewed"]
    assert "shared_preload_libraries" in out.findings[0].next_step


def test_statements_are_judged_on_the_week_since_the_previous_review_not_since_the_reset():
    previous = [{"queryid": 1, "calls": 1000, "total_ms": 500_000, "rows": 1000, "shared_blks_hit": 0,
                 "shared_blks_read": 0}]
    # query 1 was slow before; this week it ran 100 more calls at 1 ms each: not slow now
    current = [stmt(1, 1100, 500_100), stmt(2, 20, 4000, "SELECT pg_sleep(0.2)")]
    out = statement_review(AVAILABLE, current, previous, "2026-11-01", "2026-11-01", T)
    assert out.figures["statements_window"] == "since the previous review"
    assert [f.evidence["queryid"] for f in out.findings] == [2]  # 200 ms over 20 calls; query 1 was 1 ms this week
    assert {r["queryid"]: r["new"] for r in out.tables["top_by_total_time"]} == {1: False, 2: True}


def test_after_a_reset_the_review_does_not_subtract_the_old_counts():
    previous = [{"queryid": 1, "calls": 1000, "total_ms": 1, "rows": 1, "shared_blks_hit": 0, "shared_blks_read": 0}]
    out = statement_review(AVAILABLE, [stmt(1, 50, 10_000)], previous, "2026-12-01", "2026-11-01", T)
    assert "reset after the previous review" in out.figures["statements_window"]
    assert len(out.findings) == 1 and "200 ms on average over 50 calls" in out.findings[0].message


def test_only_plain_reads_are_ever_explained():
    assert safe_to_explain("SELECT * FROM t WHERE id = $1")
    assert safe_to_explain("/* report */ WITH x AS (SELECT 1) SELECT * FROM x")
    assert not safe_to_explain("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone")
    assert not safe_to_explain("SELECT * FROM t FOR UPDATE")
    assert not safe_to_explain("UPDATE t SET a = 1")


def index(name, columns, **kw):
    row = {"index": f"public.{name}", "table": "public.requests", "scans": 5, "is_unique": False, "is_primary": False,
           "is_exclusion": False, "backs_constraint": False, "is_valid": True, "bytes": 8192, "method": "btree",
           "columns": columns, "opclasses": " ".join("int4_ops" for _ in columns.split()), "expressions": None,
           "predicate": None}
    return {**row, **kw}


def test_unused_redundant_and_invalid_indexes_are_flagged_and_constraint_indexes_never():
    indexes = [index("requests_pkey", "id", is_primary=True, is_unique=True, scans=0),
               index("requests_user_created", "user_id created_at"),
               index("requests_user", "user_id"),                     # a prefix of the one above
               index("requests_email_key", "email", is_unique=True, scans=0, backs_constraint=True),
               index("requests_unused", "model", scans=0),
               index("requests_idx_ccnew", "endpoint", is_valid=False)]
    out = index_review(indexes, None, None, T)
    assert [r["index"] for r in out.tables["unused_indexes"]] == ["public.requests_unused"]
    assert [(r["index"], r["kind"], r["covered_by"]) for r in out.tables["duplicate_indexes"]] == [
        ("public.requests_user", "redundant", "public.requests_user_created")]
    (invalid,) = out.tables["invalid_indexes"]
    assert invalid["why"] == "left by a failed concurrent reindex"
    assert invalid["suggested_sql"] == "DROP INDEX CONCURRENTLY public.requests_idx_ccnew;"


def test_a_large_table_read_by_sequential_scans_gets_an_index_on_the_column_its_statements_filter():
    tables = [{"table": "public.events", "seq_scan": 300, "idx_scan": 2, "seq_tup_read": 3_000_000, "n_live_tup": 60_000},
              {"table": "public.small", "seq_scan": 300, "idx_scan": 0, "seq_tup_read": 3000, "n_live_tup": 10}]
    statements = [{"query": "SELECT * FROM events WHERE account_id = $1 AND created_at > $2", "calls": 40},
                  {"query": "SELECT * FROM public.events WHERE kind = $1", "calls": 5}]
    assert filter_columns("public.events", statements) == ["account_id", "created_at", "kind"]
    (row,) = index_review(None, tables, statements, T).tables["missing_index_candidates"]
    assert row["suggested_sql"] == "CREATE INDEX CONCURRENTLY ON public.events (account_id);"


def test_sessions_wraparound_and_sequences_get_the_severity_their_danger_calls_for():
    sections = {
        "activity": {"rows": [
            {"pid": 7, "state": "idle in transaction", "state_seconds": 120, "query_seconds": 0, "application": "worker",
             "user": "app", "query": "SELECT 1"},
            {"pid": 8, "state": "active", "query_seconds": 5, "state_seconds": 5, "application": "web", "user": "app",
             "query": "SELECT 2"}]},
        "xid_age": {"rows": [{"database": "app", "xid_age": 1_600_000_000}, {"database": "other", "xid_age": 10}]},
        "sequences": {"rows": [{"sequence": "public.users_id_seq", "last_value": 2_140_000_000, "sequence_max": 2**63 - 1,
                                "column_type": "integer", "column_name": "public.users.id"}]},
    }
    out = health_review(sections, T)
    by_severity = {(f.severity.value, f.message.split(" ")[0]) for f in out.findings}
    assert ("warning", "session") in by_severity and ("critical", "database") in by_severity
    assert ("critical", "sequence") in by_severity  # 99.7% of an integer column, not of the bigint sequence
    assert out.tables["long_running_queries"] == []
    assert "pg_terminate_backend(7)" in next(f for f in out.findings if f.message.startswith("session")).next_step


def test_growth_is_against_the_previous_review():
    sections = {"database_size": {"rows": [{"bytes": 1_100}]},
                "tables": {"rows": [{"table": "public.t", "total_bytes": 600, "table_bytes": 500, "index_bytes": 100,
                                     "toast_bytes": 0}]}}
    out = growth_review(sections, {"database_bytes": 1_000, "table_bytes": {"public.t": 450}})
    assert out.figures["database_growth_pct"] == 10.0 and out.tables["sizes"][0]["growth_bytes"] == 150


def test_redis_counters_are_deltas_within_one_process_and_whole_after_a_restart():
    before = {"keyspace_hits": 9000, "keyspace_misses": 0, "total_commands_processed": 0, "evicted_keys": 0,
              "rejected_connections": 0, "uptime_in_seconds": 100, "run_id": "a"}
    info = {**before, "keyspace_hits": 9500, "keyspace_misses": 1500, "uptime_in_seconds": 700, "maxmemory": 100,
            "used_memory": 90, "evicted_keys": 3}
    week = redis_review(info, [], before, T)
    assert week.figures["redis_window"] == "since the previous review" and week.figures["redis_hit_ratio"] == 0.25
    assert {"Redis uses 90% of maxmemory", "Redis evicted 3 keys", "Redis keyspace hit rate 25% is below 80%"} \
        <= set(messages(week))
    restarted = redis_review({**info, "run_id": "b"}, [], before, T)
    assert restarted.figures["redis_window"] == "since Redis started"
    assert restarted.figures["redis_hit_ratio"] == round(9500 / 11000, 4)
