"""How the playground is used, measured in the database: aggregates come back, never rows of requests.

Three scans of `requests` serve the whole business report, on two connections that read one snapshot:
- per user (a hash of about as many groups as users, which PostgreSQL runs in parallel workers): the range's requests,
  tokens and quota refusals, whether the user was active in the range before and in the last 30 days, and a bitmask of
  the days of those 30 on which it was (daily active users are counted from the bits, not from a day-by-user grouping
  of the whole month, which on 10 million requests costs twice as much);
- per day and user over the range only (the index on user_id and created_at covers it): daily quota consumption;
- per day, endpoint, model, status and error type over the range and the one before: endpoints, models and errors.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema
from tasks.database.postgres import app_names, connect, rows_as_dicts
from tasks.retry import retrying

MONTH_DAYS = 30


def activity_query(schema: AppSchema) -> sql.Composed:
    """The per-user scan and the range's day-by-user scan, and everything about users computed from them in the same
    statement, as one JSON document of small sections."""
    return sql.SQL("""
WITH p AS MATERIALIZED (
    SELECT {user_id} AS user_id,
           bit_or(CASE WHEN {created_at} >= %(month)s
                       THEN 1::bigint << ({created_at}::date - %(month_day)s::date) ELSE 0 END) AS month_days,
           count(*) FILTER (WHERE {created_at} >= %(start)s) AS requests,
           coalesce(sum({tokens}) FILTER (WHERE {created_at} >= %(start)s), 0) AS tokens,
           count(*) FILTER (WHERE {created_at} >= %(start)s AND {status} = 429
                            AND {error_type} = 'quota_exceeded') AS refused,
           count(*) FILTER (WHERE {created_at} >= %(previous)s AND {created_at} < %(start)s) AS requests_before
    FROM {requests} WHERE {created_at} >= %(since)s AND {created_at} < %(end)s
    GROUP BY 1),
d AS MATERIALIZED (
    SELECT x.day, x.user_id, x.requests, u.{quota} AS quota
    FROM (SELECT {created_at}::date AS day, {user_id} AS user_id, count(*) AS requests FROM {requests}
          WHERE {created_at} >= %(start)s AND {created_at} < %(end)s GROUP BY 1, 2) x
    LEFT JOIN {users} u ON u.{id} = x.user_id),
limits AS (
    SELECT user_id, max(quota) AS quota,
           count(*) FILTER (WHERE quota IS NOT NULL AND requests >= quota) AS days_at_limit,
           max(requests::float / nullif(quota, 0)) AS peak_share
    FROM d GROUP BY user_id),
in_range AS (SELECT p.*, l.quota, l.days_at_limit, l.peak_share FROM p JOIN limits l USING (user_id)
             WHERE p.requests > 0)
SELECT json_build_object(
  'dau', (SELECT json_agg(json_build_object('day', %(month_day)s::date + i, 'active_users',
                 (SELECT count(*) FROM p WHERE month_days & (1::bigint << i) <> 0)) ORDER BY i)
          FROM generate_series(0, %(month_days)s - 1) i),
  'quota_daily', (SELECT coalesce(json_agg(q ORDER BY day), '[]') FROM (
      SELECT day, count(*) FILTER (WHERE quota > 0 AND requests >= 0.8 * quota) AS users_at_80pct,
             count(*) FILTER (WHERE quota IS NOT NULL AND requests >= quota) AS users_at_100pct
      FROM d GROUP BY day) q),
  'mau', (SELECT count(*) FROM p WHERE month_days <> 0),
  'previous_active', (SELECT count(*) FROM p WHERE requests_before > 0),
  'per_user', (SELECT json_build_object('users', count(*),
                   'median', percentile_cont(0.5) WITHIN GROUP (ORDER BY requests),
                   'p90', percentile_cont(0.9) WITHIN GROUP (ORDER BY requests), 'max', max(requests))
               FROM in_range),
  'top_requests', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT user_id, requests, tokens FROM in_range
                   ORDER BY requests DESC, user_id LIMIT %(top)s) t),
  'top_tokens', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT user_id, tokens, requests FROM in_range
                 ORDER BY tokens DESC, user_id LIMIT %(top)s) t),
  'quota_too_small', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT user_id, quota, days_at_limit, refused
                      FROM in_range WHERE days_at_limit >= %(limit_days)s
                      ORDER BY days_at_limit DESC, refused DESC, user_id LIMIT 50) t),
  'quota_unused', (SELECT json_build_object('users', count(*), 'sample', coalesce(json_agg(user_id) FILTER
                   (WHERE rn <= 10), '[]'))
                   FROM (SELECT user_id, row_number() OVER (ORDER BY quota DESC, user_id) AS rn FROM in_range
                         WHERE quota > 0 AND peak_share < %(unused_share)s) t)
) AS usage
""").format(**app_names(schema))


def traffic_query(schema: AppSchema) -> sql.Composed:
    """The range and the one before it, in one scan grouped by the columns as stored (day, endpoint, model, status,
    error type): a few thousand rows at most, from which pandas takes every other view. Grouping raw columns lets the
    planner see how few groups there are (it hashes them) and labels each error once per group, not once per row."""
    return sql.SQL("""
SELECT {created_at}::date AS day, {endpoint} AS endpoint, {model} AS model, {status} AS status,
       {error_type} AS error_type, count(*) AS requests, coalesce(sum({tokens}), 0) AS tokens
FROM {requests} WHERE {created_at} >= %(previous)s AND {created_at} < %(end)s
GROUP BY 1, 2, 3, 4, 5
""").format(**app_names(schema))


def users_query(schema: AppSchema) -> sql.Composed:
    """New users per day over the activity window, and every user who exists by the end (for the top lists)."""
    return sql.SQL("""
SELECT date_trunc('day', {created_at} AT TIME ZONE 'UTC')::date AS day, count(*) AS new_users
FROM {users} WHERE {created_at} >= %(since)s AND {created_at} < %(end)s GROUP BY 1 ORDER BY 1
""").format(**app_names(schema))


def top_users_query(schema: AppSchema) -> sql.Composed:
    return sql.SQL("SELECT {id} AS user_id, {email} AS email, {role} AS role FROM {users} WHERE {id} = ANY(%(ids)s)"
                   ).format(**app_names(schema))


def usage_params(start: datetime, end: datetime, top: int = 10, limit_days: int = 3,
                 unused_share: float = 0.1) -> dict[str, Any]:
    """The queries' parameters: the range [start, end), the range before it, and the 30 days before the end (the DAU
    chart and MAU); the scans reach back as far as the earliest of those."""
    month, previous = end - timedelta(days=MONTH_DAYS), start - (end - start)
    return {"start": start, "end": end, "previous": previous, "since": min(previous, month), "month": month,
            "month_day": month.date(), "month_days": MONTH_DAYS, "top": top, "limit_days": limit_days,
            "unused_share": unused_share}


def _snapshot_transaction(conn, statement_timeout_s: int, snapshot: str | None = None) -> str:
    """A read-only transaction in UTC with room to hash the day-and-user grouping in memory (about a million groups on
    ten million requests), on the given exported snapshot; this transaction's own snapshot id."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(f"{statement_timeout_s}s")))
    conn.execute("SET LOCAL TimeZone = 'UTC'")  # days are UTC days: created_at::date, the cheapest per-row form
    conn.execute("SET LOCAL work_mem = '256MB'")
    return conn.execute("SELECT pg_export_snapshot()").fetchone()[0] if snapshot is None else snapshot


def _run(conn, queries: list[tuple[str, sql.Composed]], params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": {}}
    for name, query in queries:
        t0 = time.perf_counter()
        rows = rows_as_dicts(conn.execute(query, params))
        out[name] = rows[0]["usage"] if name == "activity" else rows
        out["seconds"][name] = round(time.perf_counter() - t0, 3)
    return out


@task(**retrying(retries=2, backoff=2, timeout_seconds=None))
def read_usage(database_url: SecretStr, schema: AppSchema, start: datetime, end: datetime,
               statement_timeout_s: int = 300) -> dict[str, Any]:
    """The report's aggregates on two connections side by side (the activity scan on one; the traffic scan and new
    users on the other), both reading one snapshot as pg_dump's parallel jobs do; each query's duration."""
    from concurrent.futures import ThreadPoolExecutor

    params = usage_params(start, end)
    t0 = time.perf_counter()
    with connect(database_url) as first, connect(database_url) as second:
        try:
            snapshot = _snapshot_transaction(first, statement_timeout_s)
            _snapshot_transaction(second, statement_timeout_s, snapshot)
            with ThreadPoolExecutor(max_workers=2) as pool:
                jobs = [pool.submit(_run, first, [("activity", activity_query(schema))], params),
                        pool.submit(_run, second, [("traffic", traffic_query(schema)),
                                                   ("new_users", users_query(schema))], params)]
                parts = [job.result() for job in jobs]
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
                psycopg.errors.InsufficientPrivilege) as exc:  # a new database, another schema, a narrow role
            return {"missing": f"{type(exc).__name__}: {str(exc).splitlines()[0]} (app_schema names the tables "
                               "and columns)"}
        for conn in (first, second):
            conn.execute("COMMIT")
    return {**parts[0], **parts[1], "seconds": {**parts[0]["seconds"], **parts[1]["seconds"],
                                                 "total": round(time.perf_counter() - t0, 3)}}


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def read_users(database_url: SecretStr, schema: AppSchema, ids: list[int]) -> list[dict[str, Any]]:
    """The named users' email and role, for the top-user tables."""
    with connect(database_url) as conn:
        return rows_as_dicts(conn.execute(top_users_query(schema), {"ids": ids}))
