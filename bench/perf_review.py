"""performance-review on a database with 2,000 tables and 5,000 pg_stat_statements entries (target: under 15 s).

    uv run python bench/perf_review.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_server, ensure_prefect, header, isolated_env, row  # noqa: E402

PG = ""  # the benchmarks' own server (pg_stat_statements preloaded), set in main()
DB = "playground_bench_review"


def build(tables: int = 2000, statements: int = 5600) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        for i in range(tables):
            conn.execute(f"CREATE TABLE t{i} (id serial PRIMARY KEY, a int, b text); CREATE INDEX ON t{i} (a);"
                         f"INSERT INTO t{i} (a, b) SELECT g, md5(g::text) FROM generate_series(1, 20) g")
        conn.execute("SELECT pg_stat_statements_reset()")
        shapes = ["SELECT * FROM t{i} WHERE a = $1", "SELECT b FROM t{i} WHERE id = $1",
                  "SELECT count(*) FROM t{i} WHERE b LIKE $1"]
        n = 0
        while n < statements:
            i, shape = n // len(shapes) % tables, shapes[n % len(shapes)]
            # 2,000 tables x 3 shapes: more distinct statements than pg_stat_statements.max (5,000) keeps
            conn.execute(shape.format(i=i).replace("$1", "%s"), ("1",))
            n += 1


def main() -> None:
    global PG
    home = isolated_env("review")
    PG = bench_server()
    server = ensure_prefect(home)
    try:
        build()
        with psycopg.connect(f"{PG}/{DB}") as conn:
            entries = conn.execute("SELECT count(*) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                                   "WHERE d.datname = current_database()").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone()[0]
        env = {**os.environ, "TARGET_NAME": "bench", "HEALTH_URL": "http://127.0.0.1:1/health",
               "DATABASE_URL": f"{PG}/{DB}", "REDIS_URL": "redis://127.0.0.1:6379/12"}
        from deployments.setup import setup
        from playground_ops.settings import load_settings

        setup(load_settings())
        code = ("import time; from flows.performance_review import performance_review; t = time.perf_counter(); "
                "r = performance_review(); print(time.perf_counter() - t, len(r.findings))")
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = float(out.stdout.strip().splitlines()[-1].split()[0])
        print(header())
        print(row(f"performance-review, {tables} tables, {entries} pg_stat_statements entries", seconds, 15.0, "s",
                  "target"))
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if server is not None:
            server.terminate()


if __name__ == "__main__":
    main()
