"""`playground-ops demo --once` from scratch: its own Prefect server, its own sandbox, every runbook once."""

from __future__ import annotations

import json

import pytest

from tasks.dependencies.git_repo import git

from tests.conftest import SESSION_DIR, cli, free_port


@pytest.mark.network  # the dependency runbooks install from the public registries
@pytest.mark.timeout(1800)  # two demos, each up to the 900 s its command is given
def test_demo_once_runs_every_runbook_and_exits_0():
    from deployments.catalog import load_catalog

    env = {"PREFECT_API_URL": "", "PREFECT_HOME": str(SESSION_DIR / "demo-prefect"),
           "OPS_HOME": str(SESSION_DIR / "demo-ops"), "OPS_SANDBOX_DATABASE": "playground_sandbox_demo",
           "OPS_SANDBOX_REDIS_DB": "13", "OPS_SANDBOX_PORT": str(free_port()), "OPS_WEBHOOK_URL": "",
           "OPS_SANDBOX_STANDINS_PORT": str(free_port()), "OPS_SANDBOX_PG_PORT": str(free_port()),
           "OPS_DRILL_PG_PORT": str(free_port())}
    result = cli("demo", "--once", "--port", str(free_port()), env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from playground_ops.cli import NOT_IN_DEMO

    for name in set(load_catalog()) - set(NOT_IN_DEMO):  # a run that found trouble still completed, never Failed
        assert any(f"| {name} | {state} |" in result.stdout for state in ("Completed", "Warning", "Critical")), \
            (name, result.stdout[-4000:])
    assert "Prefect UI: http://127.0.0.1:" in result.stdout
    assert (SESSION_DIR / "demo-ops" / "audit" / "health-check" / "sandbox").is_dir()
    # the dependency runbooks left a real branch, commit and pull request on the sandbox's application repository
    pulls = json.loads((SESSION_DIR / "demo-ops" / "sandbox" / "github.json").read_text())["playground/playground-app"]
    heads = {p["head"]: p for p in pulls}
    update = next(p for h, p in heads.items() if h.startswith("dependency-updates-"))
    assert update["labels"][0] == "dependencies" and "| ms | backend | 2.0.0 | 2.1.3 | minor |" in update["body"]
    assert any(h.startswith("security-fixes-") for h in heads)
    assert heads["release-next"]["title"] == "chore: release 1.0.0"  # the first release: the manifests' version
    incidents = SESSION_DIR / "demo-ops" / "audit" / "incidents" / "sandbox"
    steps = sorted(p.name for p in incidents.glob("INC-*/steps/*.json"))
    assert any(s.endswith("-opened.json") for s in steps) and any(s.endswith("-resolved.json") for s in steps)
    bare = SESSION_DIR / "demo-ops" / "sandbox" / "playground-app.git"
    assert git("log", "-1", "--format=%s", update["head"], cwd=bare).startswith("chore: update dependencies ")
    # the demo stopped the sandbox's own PostgreSQL it had started
    assert not (SESSION_DIR / "demo-ops" / "sandbox" / "postgres" / "pgdata" / "postmaster.pid").exists()
    # and it runs again on the same machine: the first round's rotation (in its grace period) is finished first, the
    # scratch database it restored into is replaced, every runbook runs once more
    again = cli("demo", "--once", "--port", str(free_port()), env=env, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "an earlier round's rotation of JWT_REFRESH_SECRET, JWT_SECRET (the sandbox's) finished first" in again.stdout
    for name in set(load_catalog()) - set(NOT_IN_DEMO):
        assert any(f"| {name} | {state} |" in again.stdout for state in ("Completed", "Warning", "Critical")), \
            (name, again.stdout[-4000:])
    assert not (SESSION_DIR / "demo-ops" / "sandbox" / "postgres" / "pgdata" / "postmaster.pid").exists()
    assert cli("sandbox", "down", "--purge", env=env).returncode == 0
