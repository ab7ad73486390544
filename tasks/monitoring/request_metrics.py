"""The application's traffic, measured by SQL in the database (never by pulling rows into Python): requests and
throughput per minute, 4xx and 5xx rates, p50/p95/p99 latency, overall and per endpoint, in one pass over the window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema
from tasks.database.postgres import connect, rows_as_dicts
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
    """One scan of 8 days: per endpoint, and per endpoint and error type, requests and errors in the last 24 hours and
    in the 7 days before."""
    return sql.SQL("""
WITH r AS (
    SELECT {endpoint} AS endpoint, {created_at} >= %(since)s AS recent, {status} >= 400 AS failed,
           {status} >= 500 AS server_error,
           CASE WHEN {status} >= 400 THEN coalesce({error_type}, 'http_' || {status}::text) END AS error_type
    FROM {requests} WHERE {created_at} >= %(baseline)s AND {created_at} < %(end)s)
SELECT endpoint, GROUPING(error_type) = 0 AS by_type, error_type,
       count(*) FILTER (WHERE recent) AS requests_24h,
       count(*) FILTER (WHERE recent AND failed) AS errors_24h,
       count(*) FILTER (WHERE recent AND server_error) AS server_errors_24h,
       count(*) FILTER (WHERE NOT recent) AS requests_prev_7d,
       count(*) FILTER (WHERE NOT recent AND failed) AS errors_prev_7d
FROM r GROUP BY GROUPING SETS ((endpoint), (endpoint, error_type))
""").format(endpoint=sql.Identifier(schema.endpoint), created_at=sql.Identifier(schema.created_at),
            status=sql.Identifier(schema.status_code), error_type=sql.Identifier(schema.error_type),
            requests=sql.Identifier(*schema.requests.split(".")))


def split_error_review(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The one scan's rows as request volumes per endpoint and errors per endpoint and type (pure)."""
    volumes = [{k: r[k] for k in ("endpoint", "requests_24h", "errors_24h", "requests_prev_7d", "errors_prev_7d")}
               for r in rows if not r["by_type"]]
    errors = sorted(({"endpoint": r["endpoint"], "error_type": r["error_type"], "last_24h": r["errors_24h"],
                      "daily_avg_prev_7d": round(r["errors_prev_7d"] / 7.0, 1), "server_errors_24h": r["server_errors_24h"]}
                     for r in rows if r["by_type"] and r["error_type"] is not None),
                    key=lambda e: (-e["last_24h"], e["endpoint"], e["error_type"]))
    return {"errors": errors, "volumes": volumes}


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
        rows = rows_as_dicts(conn.execute(window_query(schema), {"start": start, "end": end}))
    return summarise_window(rows, (end - start).total_seconds() / 60)


@task(**retrying(retries=2, backoff=1, timeout_seconds=300))
def read_error_review(database_url: SecretStr, schema: AppSchema, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Errors of the last 24 hours by endpoint and type, and request volumes, against the 7 days before."""
    params = {"since": end - timedelta(hours=24), "baseline": end - timedelta(days=8), "end": end}
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '240s'")
        return split_error_review(rows_as_dicts(conn.execute(error_review_query(schema), params)))
