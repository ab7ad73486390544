"""Foundation benchmarks: the health-check runbook against a running Prefect server (median of 10 runs, target 2 s)
and the sandbox seed of 1,000,000 request rows (target 30 s). Prints ratios against those targets.

    uv run python bench/foundation.py [--runs 10] [--requests 1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_server, ensure_prefect, header, isolated_env, median, row, time_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()

    home = isolated_env("foundation")
    bench_server()
    server = ensure_prefect(home)
    import os

    from playground_ops.settings import load_settings
    from sandbox import manager
    from sandbox.seed import seed

    settings = load_settings()
    try:
        manager.ensure_database(settings)
        result = seed(manager.database_url(settings), users=5000, requests=args.requests, days=30)
        manager.up(settings)
        os.environ.update(manager.target_env(settings))

        from flows.health_check import health_check

        durations, report = time_runs(health_check, args.runs)
        assert report.status.value == "ok", report.summary
        print(header())
        print(row(f"health-check runbook, median of {args.runs}", median(durations), 2.0, "s", "target"))
        print(row(f"seed of {args.requests:,} request rows (COPY)", result.seconds, 30.0, "s", "target"))
    finally:
        manager.down(settings, purge=True)
        if server is not None:
            server.terminate()


if __name__ == "__main__":
    main()
