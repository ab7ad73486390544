"""`playground-ops demo --once` from a fresh OPS_HOME (its own Prefect server, a new sandbox and its own PostgreSQL
cluster, every runbook once), after the first install, against the issue's 90 s target.

    uv run python bench/demo.py
"""

from __future__ import annotations

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
    home = isolated_env("demo")
    env = {**os.environ, "PREFECT_API_URL": "", "PREFECT_HOME": str(home / "prefect"),
           "OPS_SANDBOX_PG_PORT": str(free_port()), "OPS_DRILL_PG_PORT": str(free_port()), "OPS_WEBHOOK_URL": ""}
    env.pop("OPS_SANDBOX_ADMIN_URL", None)
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "playground_ops.cli", "demo", "--once", "--port", str(free_port())],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - t0
    subprocess.run([sys.executable, "-m", "playground_ops.cli", "sandbox", "down", "--purge"], cwd=ROOT, env=env,
                   capture_output=True)
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    print("\n".join(table), file=sys.stderr)
    runs = [float(m) for m in re.findall(r"^\| [a-z-]+ \| \w+ \| ([\d.]+) \|", result.stdout, re.M)]
    print(header())
    print(row(f"demo --once, fresh OPS_HOME (exit {result.returncode}; {len(runs)} runbooks, their own run times "
              f"summing to {sum(runs):.0f} s)", seconds, TARGET_S, "s", "target"))


if __name__ == "__main__":
    main()
