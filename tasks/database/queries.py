"""The performance review's and maintenance's SQL, built for the server's version (pure: strings in, strings out).

Column names of pg_stat_statements moved between versions: `*_time` became `*_exec_time` (and planning columns
appeared) in PostgreSQL 13; `blk_read_time` became `shared_blk_read_time` in 17; `stats_since` arrived in 17 and
`pg_stat_statements_info` in 14.
"""

from __future__ import annotations


def statements_sql(server_version_num: int, limit: int = 5000) -> str:
    """Every statement of the current database, with the same column names whatever the server version."""
    if server_version_num >= 130000:
        total, mean = "s.total_exec_time + s.total_plan_time", "s.mean_exec_time"
    else:
        total, mean = "s.total_time", "s.mean_time"
    io_time = ("s.shared_blk_read_time + s.shared_blk_write_time" if server_version_num >= 170000
               else "s.blk_read_time + s.blk_write_time")
    return f"""
SELECT s.queryid::text AS queryid, left(s.query, 2000) AS query, r.rolname AS role, s.calls,
       {total} AS total_ms, {mean} AS mean_ms, s.rows, s.shared_blks_hit, s.shared_blks_read,
       {io_time} AS io_ms
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.calls > 0
ORDER BY {total} DESC
LIMIT {int(limit)}
"""


def statements_reset_sql(server_version_num: int) -> str | None:
    """When the statistics were last reset (to tell a reset from a quiet week), where the server can say."""
    if server_version_num >= 140000:
        return "SELECT stats_reset::text AS stats_reset, dealloc FROM pg_stat_statements_info"
    return None


STATEMENTS_AVAILABLE = """
SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%' AS preloaded,
       EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed
"""

INDEXES = """
SELECT format('%I.%I', n.nspname, t.relname) AS "table", format('%I.%I', n.nspname, c.relname) AS index,
       pg_relation_size(c.oid) AS bytes, coalesce(s.idx_scan, 0) AS scans,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisexclusion AS is_exclusion,
       i.indisvalid AS is_valid, i.indkey::text AS columns, i.indclass::text AS opclasses,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS expressions,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate, am.amname AS method,
       EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = c.oid) AS backs_constraint,
       pg_get_indexdef(c.oid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""

TABLES = """
SELECT format('%I.%I', s.schemaname, s.relname) AS "table", s.seq_scan, s.seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup, s.n_dead_tup,
       s.last_vacuum::text, s.last_autovacuum::text, s.last_analyze::text, s.last_autoanalyze::text,
       pg_total_relation_size(s.relid) AS total_bytes, pg_relation_size(s.relid) AS table_bytes,
       pg_indexes_size(s.relid) AS index_bytes,
       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast_bytes,
       c.relpages::bigint * current_setting('block_size')::bigint AS heap_bytes,
       c.reltuples::bigint AS reltuples, age(c.relfrozenxid) AS xid_age,
       (SELECT sum(st.avg_width) FROM pg_stats st WHERE st.schemaname = s.schemaname AND st.tablename = s.relname)
         AS row_width
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
"""

# The same without opening any relation (sizes from pg_class, as of the last VACUUM or ANALYZE): used when a table
# is locked by someone else, so a review or maintenance run never waits behind an ACCESS EXCLUSIVE lock.
TABLES_WITHOUT_LOCKS = TABLES.replace(
    "pg_total_relation_size(s.relid) AS total_bytes, pg_relation_size(s.relid) AS table_bytes,\n"
    "       pg_indexes_size(s.relid) AS index_bytes,\n"
    "       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast_bytes,",
    "(c.relpages + coalesce(tc.relpages, 0) + coalesce(ix.pages, 0))::bigint * 8192 AS total_bytes,\n"
    "       c.relpages::bigint * 8192 AS table_bytes, coalesce(ix.pages, 0)::bigint * 8192 AS index_bytes,\n"
    "       coalesce(tc.relpages, 0)::bigint * 8192 AS toast_bytes,").replace(
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid",
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid\n"
    "LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid\n"
    "LEFT JOIN LATERAL (SELECT sum(ic.relpages) AS pages FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid\n"
    "                   WHERE i.indrelid = c.oid) ix ON true")
FALLBACKS = {"tables": TABLES_WITHOUT_LOCKS}

INDEX_BLOAT = """
SELECT format('%I.%I', n.nspname, c.relname) AS index, format('%I.%I', n.nspname, t.relname) AS "table",
       c.relpages::bigint * current_setting('block_size')::bigint AS bytes, c.reltuples::bigint AS tuples,
       (SELECT sum(st.avg_width) FROM pg_attribute a JOIN pg_stats st
          ON st.schemaname = n.nspname AND st.tablename = t.relname AND st.attname = a.attname
        WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey)) AS key_width
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND i.indexprs IS NULL
"""

CACHE_HIT = """
SELECT (SELECT sum(heap_blks_hit)::float / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0)
          FROM pg_statio_user_tables) AS table_hit_ratio,
       (SELECT sum(idx_blks_hit)::float / nullif(sum(idx_blks_hit) + sum(idx_blks_read), 0)
          FROM pg_statio_user_indexes) AS index_hit_ratio
"""

CONNECTIONS = """
SELECT coalesce(state, backend_type) AS state, count(*) AS connections,
       current_setting('max_connections')::int AS max_connections
FROM pg_stat_activity GROUP BY 1 ORDER BY 2 DESC
"""

ACTIVITY = """
SELECT pid, usename AS "user", application_name AS application, state, backend_type,
       extract(epoch FROM now() - coalesce(query_start, xact_start))::float AS query_seconds,
       extract(epoch FROM now() - xact_start)::float AS xact_seconds,
       extract(epoch FROM now() - state_change)::float AS state_seconds,
       wait_event_type, wait_event, left(query, 500) AS query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'
"""

XID_AGE = """
SELECT datname AS database, age(datfrozenxid) AS xid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age
FROM pg_database WHERE datallowconn ORDER BY 2 DESC
"""

SEQUENCES = """
SELECT format('%I.%I', s.schemaname, s.sequencename) AS sequence, s.data_type::text AS sequence_type,
       coalesce(s.last_value, s.start_value) AS last_value, s.max_value AS sequence_max,
       col.column_type, col.column_name
FROM pg_sequences s
LEFT JOIN LATERAL (
  SELECT format_type(a.atttypid, a.atttypmod) AS column_type, format('%I.%I.%I', tn.nspname, t.relname, a.attname) AS column_name
  FROM pg_depend d
  JOIN pg_class sc ON sc.oid = d.objid AND sc.relname = s.sequencename
  JOIN pg_namespace sn ON sn.oid = sc.relnamespace AND sn.nspname = s.schemaname
  JOIN pg_class t ON t.oid = d.refobjid
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LIMIT 1) col ON true
"""

DATABASE_SIZE = "SELECT current_database() AS database, pg_database_size(current_database()) AS bytes"

SERVER = """
SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version,
       current_database() AS database
"""

SYSTEM_IDENTIFIER = "SELECT system_identifier::text AS system_identifier FROM pg_control_system()"


def review_queries(server_version_num: int) -> dict[str, str]:
    """Every section of the review, by name; each is read on its own so one refusal does not stop the rest."""
    queries = {"statements_available": STATEMENTS_AVAILABLE, "indexes": INDEXES, "tables": TABLES,
               "index_bloat": INDEX_BLOAT, "cache_hit": CACHE_HIT, "connections": CONNECTIONS, "activity": ACTIVITY,
               "xid_age": XID_AGE, "sequences": SEQUENCES, "database_size": DATABASE_SIZE}
    reset = statements_reset_sql(server_version_num)
    if reset:
        queries["statements_reset"] = reset
    return queries


REINDEX_IN_PROGRESS = "SELECT count(*) AS running FROM pg_stat_progress_create_index"


def vacuum_sql(table: str, full: bool = False) -> str:
    return f"VACUUM ({'FULL, ' if full else ''}ANALYZE) {table}"


def reindex_sql(index: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {index}"


def drop_index_sql(index: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {index}"

# The guide's "Database Connection Issues" diagnosis
CONNECTION_GROUPS = """
SELECT coalesce(state, '(none)') AS state, coalesce(nullif(application_name, ''), '(unnamed)') AS application,
       coalesce(wait_event_type || ':' || wait_event, '') AS wait_event, count(*) AS connections
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2
"""

CONNECTION_LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use
"""

BLOCKING = """
SELECT blocked.pid AS blocked_pid, blocked.application_name AS blocked_application,
       extract(epoch FROM now() - blocked.query_start)::float AS waiting_seconds, left(blocked.query, 200) AS blocked_query,
       blocker.pid AS blocking_pid, blocker.application_name AS blocking_application, blocker.state AS blocking_state,
       left(blocker.query, 200) AS blocking_query
FROM pg_stat_activity blocked
JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid) ON true
JOIN pg_stat_activity blocker ON blocker.pid = b.pid
ORDER BY waiting_seconds DESC NULLS LAST
"""
