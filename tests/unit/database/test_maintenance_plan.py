"""What the monthly maintenance will run, decided from the review's sections."""

import pytest

from playground_ops.errors import ConfigError
from tasks.database.maintenance_plan import (dead_tuples_before_after, ensure_configured_database, plan_maintenance,
                                             size_rows)
from tasks.database.review import Thresholds


def sections(indexes=(), tables=(), bloat=(), reindexing=0):
    return {"indexes": {"rows": list(indexes)}, "tables": {"rows": list(tables)}, "index_bloat": {"rows": list(bloat)},
            "reindex_in_progress": {"rows": [{"running": reindexing}]}}


def index(name, table="public.requests", valid=True):
    return {"index": name, "table": table, "is_valid": valid}


def table(name, dead):
    return {"table": name, "n_dead_tup": dead, "total_bytes": dead * 100, "table_bytes": dead * 60,
            "index_bytes": dead * 30, "toast_bytes": dead * 10}


def test_leftovers_of_a_failed_concurrent_reindex_go_first_then_vacuum_by_dead_tuples_then_reindex():
    s = sections(indexes=[index("public.requests_pkey"), index("public.requests_user_idx_ccnew", valid=False),
                          index("public.users_email_idx", "public.users", valid=False)],
                 tables=[table("public.users", 10), table("public.requests", 5000)])
    steps = plan_maintenance(s, vacuum=True, full=False, reindex=[], t=Thresholds())
    assert [(st.kind, st.object) for st in steps] == [
        ("drop-leftover", "public.requests_user_idx_ccnew"),
        ("vacuum", "public.requests"), ("vacuum", "public.users"),
        ("reindex", "public.users_email_idx")]  # invalid, and not a leftover: rebuilt, never dropped
    assert steps[0].sql == "DROP INDEX CONCURRENTLY IF EXISTS public.requests_user_idx_ccnew"
    assert steps[1].why == "5,000 dead tuples"


def test_no_leftover_is_dropped_while_a_concurrent_reindex_is_running():
    s = sections(indexes=[index("public.requests_user_idx_ccnew", valid=False)], reindexing=1)
    assert [st.kind for st in plan_maintenance(s, vacuum=False, full=False, reindex=[], t=Thresholds())] == []


def test_a_bloated_index_is_reindexed_but_not_when_vacuum_full_rebuilds_its_table_anyway():
    bloat = [{"index": "public.requests_pkey", "table": "public.requests", "bytes": 50_000_000, "tuples": 10_000,
              "key_width": 8}]
    s = sections(indexes=[index("public.requests_pkey")], tables=[table("public.requests", 1)], bloat=bloat)
    plain = plan_maintenance(s, vacuum=False, full=False, reindex=[], t=Thresholds())
    assert [(st.kind, st.object) for st in plain] == [("reindex", "public.requests_pkey")]
    assert "bloated" in plain[0].why
    full = plan_maintenance(s, vacuum=True, full=True, reindex=[], t=Thresholds())
    assert [st.kind for st in full] == ["vacuum-full"]


def test_an_index_asked_for_that_the_database_lacks_is_refused_naming_the_known_ones():
    s = sections(indexes=[index("public.requests_pkey")])
    with pytest.raises(ConfigError) as err:
        plan_maintenance(s, vacuum=False, full=False, reindex=["public.nope"], t=Thresholds())
    assert str(err.value) == "reindex: expected index names of this database as schema.index, one of " \
                             "public.requests_pkey (got public.nope)"


def test_sizes_and_dead_tuples_read_as_the_report_shows_them():
    before = sections(tables=[table("public.a", 0), table("public.b", 300)])
    after = sections(tables=[table("public.a", 0), table("public.b", 2)])
    assert [r["table"] for r in size_rows(before, top=1)] == ["public.b"]
    assert dead_tuples_before_after(before, after) == [{"table": "public.b", "before": 300, "after": 2}]


def test_a_connection_that_landed_on_another_database_or_cluster_is_refused():
    ensure_configured_database("app", "7301", {"database": "app", "system_identifier": "7301"})
    with pytest.raises(ConfigError, match="DATABASE_URL: expected a connection to app"):
        ensure_configured_database("app", None, {"database": "postgres"})
    with pytest.raises(ConfigError, match="system_identifier: expected the cluster 7301"):
        ensure_configured_database("app", "7301", {"database": "app", "system_identifier": "9999"})
