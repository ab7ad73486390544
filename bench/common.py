"""Shared by the benchmarks: an isolated environment, a Prefect server, and ratio printing."""

from __future__ import annotations

import atexit
import os
import socket
import statistics
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(name: str) -> Path:
    """Point OPS_* at a scratch home and a bench-only sandbox database, before prefect is imported."""
    home = Path(tempfile.mkdtemp(prefix=f"playground-ops-bench-{name}-"))
    os.environ.update({"OPS_HOME": str(home / "ops"), "OPS_SANDBOX_DATABASE": "playground_sandbox_bench",
                       "OPS_SANDBOX_REDIS_DB": "12", "OPS_SANDBOX_PORT": str(free_port()),
                       "OPS_SANDBOX_STANDINS_PORT": str(free_port()), "OPS_DRILL_PG_PORT": str(free_port()),
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    for var in ("OPS_TARGETS_FILE", "OPS_AUDIT_URL", "OPS_WEBHOOK_URL", "OPS_SLACK_WEBHOOK_URL"):
        os.environ.pop(var, None)
    atexit.register(_stop_drill_clusters)
    return home


def _stop_drill_clusters() -> None:
    """A benchmark stops what it started: the restore drills' private clusters under its scratch home."""
    from playground_ops.settings import load_settings

    for cluster in load_settings().drill_clusters():
        cluster.stop()


def ensure_prefect(home: Path, on_postgres: str | None = "bench", sqlite: bool = False):
    """Use PREFECT_API_URL if it names a server, else start one for the benchmark; returns the process started.
    Its database is on PostgreSQL, a fresh one of its own on on_postgres (a server's base URL; by default the
    benchmarks' own, bench_server()), as Prefect advises for production; sqlite=True puts it on SQLite under home."""
    if on_postgres == "bench" and not sqlite:
        on_postgres = bench_server()
    from playground_ops.local_server import fresh_prefect_database, start_server

    if os.environ.get("PREFECT_API_URL"):
        return None
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    database_url = None
    if on_postgres and not sqlite:
        database_url = fresh_prefect_database(f"{on_postgres}/postgres", f"prefect_{home.name.replace('-', '_').lower()}")
    api_url, process = start_server(home / "prefect", port=free_port(), ui=False, database_url=database_url)
    os.environ["PREFECT_API_URL"] = api_url
    return process


def row(name: str, measured: float, baseline: float, unit: str, baseline_name: str) -> str:
    ratio = measured / baseline if baseline else float("nan")
    return f"| {name} | {measured:.3f} {unit} | {baseline_name} {baseline:.3f} {unit} | {ratio:.2f}x |"


def header() -> str:
    return "| measurement | measured | baseline | ratio (measured / baseline) |\n|---|---|---|---|"


def median(values: list[float]) -> float:
    return statistics.median(values)


def time_runs(fn, runs: int, warmup: int = 3, label=lambda result: "") -> tuple[list[float], object]:
    """Call fn `warmup` times (imports, first queries), then `runs` times, timing each; the durations and last result."""
    import sys
    import time

    for _ in range(warmup):
        fn()
    durations, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        durations.append(time.perf_counter() - began)
        print(f"run {len(durations)}: {durations[-1]:.3f} s {label(result)}", file=sys.stderr)
    return durations, result


def bench_server() -> str:
    """The benchmarks' own PostgreSQL (a private cluster kept under ~/.playground-ops-bench, so a seeded database
    survives between runs); returns its base URL (no database) and makes it the sandbox's server."""
    from tasks.backup.private_cluster import Cluster

    port = int(os.environ.get("OPS_BENCH_PG_PORT", "54349"))
    cluster = Cluster(Path(os.environ.get("OPS_BENCH_HOME", Path.home() / ".playground-ops-bench")) / "postgres", port,
                      port_setting="OPS_BENCH_PG_PORT")
    if not cluster.running():  # the seed is kept on disk; the server the benchmark started stops when it exits
        atexit.register(cluster.stop)
    admin = cluster.ensure()
    os.environ["OPS_SANDBOX_ADMIN_URL"] = admin
    return admin.rsplit("/", 1)[0]


def tool(name: str) -> str:
    """A PostgreSQL client program as the runbooks pick it (the newest available)."""
    from tasks.backup.pg_tools import program

    return program(name)
