"""Monitoring benchmarks, in one run, against their targets: the health check's traffic query (one pass: overall,
per endpoint and per minute; 4xx/5xx rates; p50/p95/p99) on a requests table of 10,000,000 rows for windows of 5
minutes, 1 hour and 24 hours (target 300 ms each), the daily error review's queries (24 hours against the 7 days
before), and the full health-check runbook with its alert rules on that database (median of 10 runs, target 2 s, the
foundation's).

    uv run python bench/monitoring.py [--runs 10] [--requests 10000000]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_server, ensure_prefect, header, isolated_env, median, row, time_runs  # noqa: E402

DB = "playground_bench_2g"


def time_query(conn, query, params, repeats: int = 5) -> float:
    """The median of `repeats` runs, after one that warms the cache (as a query every 5 minutes finds it)."""
    return median(time_runs(lambda: conn.execute(query, params).fetchall(), repeats, warmup=1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10_000_000)
    args = parser.parse_args()

    home = isolated_env("monitoring")
    bench_server()
    os.environ["OPS_SANDBOX_DATABASE"] = DB
    from bench.backup import ensure_seeded

    ensure_seeded(DB, args.requests)
    server = ensure_prefect(home)
    import psycopg

    from playground_ops.settings import AppSchema, load_settings
    from sandbox import manager
    from tasks.monitoring.request_metrics import error_review_query, window_query

    settings = load_settings()
    lines = []
    with psycopg.connect(manager.database_url(settings)) as conn:
        total, end = conn.execute("SELECT count(*), max(created_at) FROM requests").fetchone()
        schema = AppSchema()
        for label, span in (("5 minutes", timedelta(minutes=5)), ("1 hour", timedelta(hours=1)),
                            ("24 hours", timedelta(hours=24))):
            rows = conn.execute("SELECT count(*) FROM requests WHERE created_at >= %s AND created_at < %s",
                                (end - span, end)).fetchone()[0]
            seconds = time_query(conn, window_query(schema), {"start": end - span, "end": end})
            lines.append(row(f"traffic query, {label} window ({rows:,} of {total:,} rows)", seconds * 1000, 300.0,
                             "ms", "target"))
        params = {"since": end - timedelta(hours=24), "baseline": end - timedelta(days=8), "end": end}
        seconds = time_query(conn, error_review_query(schema), params, repeats=3)
        rows = conn.execute("SELECT count(*) FROM requests WHERE created_at >= %s", (end - timedelta(days=8),)).fetchone()[0]
        lines.append(row(f"daily error review's one scan of 8 days ({rows:,} rows; a daily job, not a window query)",
                         seconds * 1000, 300.0, "ms", "window target"))

    with psycopg.connect(manager.database_url(settings)) as conn:
        last_id = conn.execute("SELECT max(id) FROM requests").fetchone()[0]
    shifted = ("INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, client_ip, error_type, "
               "created_at) SELECT user_id, endpoint, model, status_code, latency_ms, tokens, client_ip, error_type, "
               "created_at + (now() - %(end)s) FROM requests WHERE created_at > %(end)s - interval '15 minutes'")
    try:
        with psycopg.connect(manager.database_url(settings), autocommit=True) as conn:
            conn.execute(shifted, {"end": end})  # the seed's last 15 minutes of traffic, moved to now: a live window
        manager.up(settings)
        os.environ.update(manager.target_env(settings))
        from flows.health_check import health_check

        durations, report = time_runs(health_check, args.runs, label=lambda r: f"({r.summary})")
        lines.append(row(f"health-check runbook with {len(report.tables['alert_rules'])} alert rules on {total:,} rows, "
                         f"median of {args.runs}", median(durations), 2.0, "s", "target"))
    finally:
        manager.down(settings)
        with psycopg.connect(manager.database_url(settings), autocommit=True) as conn:
            conn.execute("DELETE FROM requests WHERE id > %s", (last_id,))  # back to the seeded 10,000,000
        if server is not None:
            server.terminate()
    print(header())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
