"""business-report's queries on 100,000 users and 10,000,000 requests over 30 days (the issue's budget: 5 s in total).

Side by side in one run, on the benchmarks' own PostgreSQL:
- business-report: `read_usage`, the runbook's task as it runs (two scans on two connections sharing one snapshot);
- one query per metric, run one after another on one connection, as each figure would be asked for by hand
  (DAU with count(DISTINCT) per day, MAU, per-user figures, per endpoint, per model, quota per day, errors);
- the budget the issue names, 5 s.
Also shown: pandas shaping and the four charts drawn (CPU only).

    uv run python bench/business_report.py [--users 100000] [--requests 10000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_server, header, isolated_env, median, row, time_runs  # noqa: E402

END = datetime(2026, 11, 30, tzinfo=timezone.utc)
START = END - timedelta(days=7)

ONE_QUERY_PER_METRIC = {
    "dau per day": "SELECT created_at::date, count(DISTINCT user_id), count(*), sum(tokens) FROM requests "
                   "WHERE created_at >= %(since)s AND created_at < %(end)s GROUP BY 1",
    "mau": "SELECT count(DISTINCT user_id) FROM requests WHERE created_at >= %(since)s AND created_at < %(end)s",
    "active the range before": "SELECT count(DISTINCT user_id) FROM requests WHERE created_at >= %(previous)s "
                               "AND created_at < %(start)s",
    "requests per user": "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n), percentile_cont(0.9) WITHIN GROUP "
                         "(ORDER BY n), max(n) FROM (SELECT user_id, count(*) n FROM requests WHERE created_at >= "
                         "%(start)s AND created_at < %(end)s GROUP BY user_id) x",
    "top users": "SELECT user_id, count(*), sum(tokens) FROM requests WHERE created_at >= %(start)s AND created_at < "
                 "%(end)s GROUP BY user_id ORDER BY 2 DESC LIMIT 10",
    "top users by tokens": "SELECT user_id, sum(tokens), count(*) FROM requests WHERE created_at >= %(start)s AND "
                           "created_at < %(end)s GROUP BY user_id ORDER BY 2 DESC LIMIT 10",
    "quota per day": "SELECT d, count(*) FILTER (WHERE n >= 0.8 * u.daily_quota), count(*) FILTER (WHERE n >= "
                     "u.daily_quota) FROM (SELECT created_at::date d, user_id, count(*) n FROM requests WHERE "
                     "created_at >= %(start)s AND created_at < %(end)s GROUP BY 1, 2) x JOIN users u ON u.id = "
                     "x.user_id GROUP BY d",
    "per endpoint": "SELECT endpoint, created_at >= %(start)s, count(*), sum(tokens), count(*) FILTER (WHERE "
                    "status_code >= 400) FROM requests WHERE created_at >= %(previous)s AND created_at < %(end)s "
                    "GROUP BY 1, 2",
    "per model": "SELECT model, created_at >= %(start)s, count(*), sum(tokens) FROM requests WHERE created_at >= "
                 "%(previous)s AND created_at < %(end)s GROUP BY 1, 2",
    "requests per day by endpoint": "SELECT created_at::date, endpoint, count(*) FROM requests WHERE created_at >= "
                                    "%(start)s AND created_at < %(end)s GROUP BY 1, 2",
    "errors by type": "SELECT endpoint, error_type, created_at >= %(start)s, count(*) FROM requests WHERE "
                      "status_code >= 400 AND created_at >= %(previous)s AND created_at < %(end)s GROUP BY 1, 2, 3",
}


def seeded(url: str, users: int, requests: int) -> bool:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM requests)").fetchone() == \
                (users, requests)
    except psycopg.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    isolated_env("business")
    base = bench_server()
    db = f"playground_bench_business_{args.users}_{args.requests}"
    url = f"{base}/{db}"
    if not seeded(url, args.users, args.requests):
        from sandbox.seed import seed

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((ROOT / "sandbox" / "schema.sql").read_text())
        print(f"seeding {args.users:,} users and {args.requests:,} requests over 30 days ...", file=sys.stderr)
        print(seed(url, users=args.users, requests=args.requests, days=30, end=END), file=sys.stderr)

    from pydantic import SecretStr

    from playground_ops.settings import AppSchema
    from tasks.business.usage import shape_usage
    from tasks.business.usage_queries import read_usage, usage_params
    from tasks.reporting.report import Report, render_markdown

    secret = SecretStr(url)
    ours, raw = time_runs(lambda: read_usage.fn(secret, AppSchema(), START, END), args.runs, warmup=1,
                          label=lambda r: str(r["seconds"]))
    params = usage_params(START, END)

    def one_per_metric() -> None:
        with psycopg.connect(url) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            for query in ONE_QUERY_PER_METRIC.values():
                conn.execute(query, params).fetchall()

    theirs, _ = time_runs(one_per_metric, args.runs, warmup=0)
    began = time.perf_counter()
    shaped = shape_usage(raw, [], START, END)
    render_markdown(Report(runbook="business-report", target="bench", figures=shaped.figures, tables=shaped.tables,
                           charts=shaped.charts))
    shaping = time.perf_counter() - began

    print(f"\nbusiness-report queries, {args.users:,} users, {args.requests:,} requests over 30 days; "
          f"median of {args.runs} runs\n")
    print(header())
    print(row("report queries, total (read_usage)", median(ours), 5.0, "s", "the issue's budget"))
    print(row("report queries, total (read_usage)", median(ours), median(theirs), "s",
              f"one query per metric ({len(ONE_QUERY_PER_METRIC)} queries)"))
    print(f"| shaping with pandas and drawing 4 charts | {shaping:.3f} s | (CPU, after the queries) | |")


if __name__ == "__main__":
    main()
