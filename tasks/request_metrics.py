"""The application's traffic, measured by SQL in the database (never by pulling rows into Python): requests and
throughput per minute, 4xx and 5xx rates, p50/p95/p99 latency, overall and per endpoint, in one pass over the window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema
from tasks.postgres import connect
from tasks.retry import retrying


def window_query(schema: AppSchema) -> sql.Composed:
    """One scan of the window (the created_at index), grouped three ways at once: overall, per endpoint, per minute."""
    return sql.SQL("""
SELECT GROUPING({endpoint}) = 0 AS by_endpoint, GROUPING(date_trunc('minute', {created_at})) = 0 AS by_minute,
       {endpoint} AS endpoint, date_trunc('minute', {created_at}) AS minute,
       count(*) AS requests,
       count(*) FILTER (WHERE {status} >= 500) AS server_errors,
       count(*) FILTER (WHERE {status} BETWEEN 400 AND 499) AS client_errors,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {latency}) AS latency
FROM {requests}
WHERE {created_at} >= %(start)s AND {created_at} < %(end)s
GROUP BY GROUPING SETS ((), ({endpoint}), (date_trunc('minute', {created_at})))
""").format(endpoint=sql.Identifier(schema.endpoint), created_at=sql.Identifier(schema.created_at),
            status=sql.Identifier(schema.status_code), latency=sql.Identifier(schema.latency_ms),
            requests=sql.Identifier(*schema.requests.split(".")))


def error_review_query(schema: AppSchema) -> sql.Composed:
    """Errors by endpoint and error type: the last 24 hours against the daily average of the 7 days before."""
    return sql.SQL("""
SELECT {endpoint} AS endpoint, coalesce({error_type}, 'http_' || {status}::text) AS error_type,
       count(*) FILTER (WHERE {created_at} >= %(since)s) AS last_24h,
       round(count(*) FILTER (WHERE {created_at} < %(since)s) / 7.0, 1) AS daily_avg_prev_7d,
       count(*) FILTER (WHERE {created_at} >= %(since)s AND {status} >= 500) AS server_errors_24h
FROM {requests}
WHERE {created_at} >= %(baseline)s AND {created_at} < %(end)s AND {status} >= 400
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2
""").format(endpoint=sql.Identifier(schema.endpoint), created_at=sql.Identifier(schema.created_at),
            status=sql.Identifier(schema.status_code), error_type=sql.Identifier(schema.error_type),
            requests=sql.Identifier(*schema.requests.split(".")))


def endpoint_volume_query(schema: AppSchema) -> sql.Composed:
    """Requests per endpoint in the last 24 hours and the 7 days before (the denominators of the error rates)."""
    return sql.SQL("""
SELECT {endpoint} AS endpoint,
       count(*) FILTER (WHERE {created_at} >= %(since)s) AS requests_24h,
       count(*) FILTER (WHERE {created_at} >= %(since)s AND {status} >= 400) AS errors_24h,
       count(*) FILTER (WHERE {created_at} < %(since)s) AS requests_prev_7d,
       count(*) FILTER (WHERE {created_at} < %(since)s AND {status} >= 400) AS errors_prev_7d
FROM {requests}
WHERE {created_at} >= %(baseline)s AND {created_at} < %(end)s
GROUP BY 1
""").format(endpoint=sql.Identifier(schema.endpoint), created_at=sql.Identifier(schema.created_at),
            status=sql.Identifier(schema.status_code), requests=sql.Identifier(*schema.requests.split(".")))


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    n = row["requests"]
    p50, p95, p99 = row["latency"] or (None, None, None)
    return {"requests": n,
            "error_rate_pct": round(100.0 * row["server_errors"] / n, 3) if n else 0.0,
            "client_error_rate_pct": round(100.0 * row["client_errors"] / n, 3) if n else 0.0,
            "p50_latency_ms": p50, "p95_latency_ms": p95, "p99_latency_ms": p99}


def summarise_window(rows: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    """The window's figures (pure): overall rates and percentiles, per endpoint, and requests per minute."""
    overall = next((r for r in rows if not r["by_endpoint"] and not r["by_minute"]),
                   {"requests": 0, "server_errors": 0, "client_errors": 0, "latency": None})
    endpoints = sorted(({"endpoint": r["endpoint"], **_rates(r)} for r in rows if r["by_endpoint"]),
                       key=lambda e: -e["requests"])
    per_minute = sorted(({"minute": r["minute"].isoformat(), "requests": r["requests"],
                          "server_errors": r["server_errors"]} for r in rows if r["by_minute"]), key=lambda m: m["minute"])
    return {**_rates(overall), "throughput_per_min": round(overall["requests"] / minutes, 2) if minutes else None,
            "endpoints": endpoints, "per_minute": per_minute}


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def measure_requests(database_url: SecretStr, schema: AppSchema, start: datetime, end: datetime) -> dict[str, Any]:
    """Traffic over the window, from the application's requests table, in one query under a statement timeout."""
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '30s'")
        cur = conn.execute(window_query(schema), {"start": start, "end": end})
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return summarise_window(rows, (end - start).total_seconds() / 60)


@task(**retrying(retries=2, backoff=1, timeout_seconds=300))
def read_error_review(database_url: SecretStr, schema: AppSchema, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Errors of the last 24 hours by endpoint and type, and request volumes, against the 7 days before."""
    from datetime import timedelta

    params = {"since": end - timedelta(hours=24), "baseline": end - timedelta(days=8), "end": end}
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '240s'")
        out = {}
        for name, query in (("errors", error_review_query(schema)), ("volumes", endpoint_volume_query(schema))):
            cur = conn.execute(query, params)
            names = [c.name for c in cur.description]
            out[name] = [dict(zip(names, r)) for r in cur.fetchall()]
    return out
