"""`playground-ops demo --once` from a fresh OPS_HOME (its own Prefect server, a new sandbox and its own PostgreSQL
cluster, every runbook once), after the first install, then again on that used OPS_HOME (the sandbox's state and the
Prefect server's history kept from the round before), each against the issue's 90 s target.

    uv run python bench/demo.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, header, isolated_env, row  # noqa: E402

TARGET_S = 90.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="demos on one OPS_HOME: the first fresh, the rest used")
    args = parser.parse_args()
    home = isolated_env("demo")
    env = {**os.environ, "PREFECT_API_URL": "", "PREFECT_HOME": str(home / "prefect"),
           "OPS_SANDBOX_PG_PORT": str(free_port()), "OPS_DRILL_PG_PORT": str(free_port()), "OPS_WEBHOOK_URL": ""}
    env.pop("OPS_SANDBOX_ADMIN_URL", None)
    rows = []
    try:
        for n in range(args.rounds):
            t0 = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "playground_ops.cli", "demo", "--once", "--port",
                                     str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
            seconds = time.perf_counter() - t0
            table = [line for line in result.stdout.splitlines() if line.startswith("|")]
            print(f"round {n + 1}:\n" + "\n".join(table), file=sys.stderr)
            if result.returncode:
                print(result.stdout[-3000:] + result.stderr[-3000:], file=sys.stderr)
            runs = [float(m) for m in re.findall(r"^\| [a-z-]+ \| \w+ \| ([\d.]+) \|", result.stdout, re.M)]
            kind = "fresh OPS_HOME" if n == 0 else f"used OPS_HOME (round {n + 1})"
            rows.append(row(f"demo --once, {kind} (exit {result.returncode}; {len(runs)} runbooks, their own run "
                            f"times summing to {sum(runs):.0f} s)", seconds, TARGET_S, "s", "target"))
    finally:  # the benchmark stops what it started
        subprocess.run([sys.executable, "-m", "playground_ops.cli", "sandbox", "down", "--purge"], cwd=ROOT, env=env,
                       capture_output=True)
    print(header())
    print("\n".join(rows))


if __name__ == "__main__":
    main()
