"""The guide's alert rules end to end: data written into the sandbox (requests rows, real database connections, Redis
memory, CPU and memory samples on the Render-compatible platform) drives each rule through pending, firing, silenced
and resolved in the health-check runbook, with exactly one notification per transition at a real HTTP receiver.

The rules file is the shipped one with its thresholds untouched and its durations shortened, as an operator may."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import psycopg
import pytest
import redis
import yaml

from tests.conftest import platform_sample

TEST_ENDPOINT = "/api/alert-test"
FOR_S = 2  # every rule's `for`, shortened from the guide's 5 and 10 minutes
STARTED: dict[str, int] = {}


@pytest.fixture
def short_rules(tmp_path, monkeypatch, ops, receiver):
    from prefect.variables import Variable

    from tasks.monitoring.alert_rules import DEFAULT_RULES

    data = yaml.safe_load(DEFAULT_RULES.read_text())
    for rule in data["rules"]:
        if rule.get("for") not in (None, "0s"):
            rule["for"] = f"{FOR_S}s"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("OPS_ALERT_RULES_FILE", str(path))
    for name in ("alerts-state-sandbox", "health-check-state-sandbox"):
        Variable.unset(name)
    STARTED["notifications"] = len(receiver.all())
    yield data
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM requests WHERE endpoint = %s", (TEST_ENDPOINT,))
    for kind in ("cpu", "memory"):
        platform_sample(kind)


def check():
    from flows.health_check import health_check

    report = health_check()
    return {r["rule"]: r["state"] for r in report.tables["alert_rules"]}, report


def window_counts() -> tuple[int, int]:
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        return conn.execute("SELECT count(*), count(*) FILTER (WHERE status_code >= 500) FROM requests "
                            "WHERE created_at >= now() - interval '5 minutes'").fetchone()


def add_requests(n: int, status: int = 200, latency_ms: int = 20) -> None:
    if n <= 0:
        return
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO requests (user_id, endpoint, status_code, latency_ms, error_type) "
                     "SELECT (SELECT min(id) FROM users), %s, %s, %s, %s FROM generate_series(1, %s)",
                     (TEST_ENDPOINT, status, latency_ms, "upstream_error" if status >= 500 else None, n))


def set_error_rate(pct: float) -> None:
    """Write requests until the last 5 minutes' 5xx rate is about pct."""
    total, errors = window_counts()
    if errors / max(total, 1) * 100 < pct:  # more errors: e/(t+e') = pct  =>  e' = (pct*t - e) / (1 - pct)
        add_requests(math.ceil((pct / 100 * total - errors) / (1 - pct / 100)) + 1, status=500)
    else:
        add_requests(math.ceil(errors / (pct / 100) - total), status=200)


def set_p95(latency_ms: int, total_hint: int = 400) -> None:
    """Make latency_ms the p95 of the window: a quarter of the window's requests at that latency, or, to bring it
    down, enough fast ones that the slow stay under 5%."""
    total, _ = window_counts()
    if latency_ms >= 1000:
        add_requests(max(total // 3, total_hint), latency_ms=latency_ms)
    else:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            slow = conn.execute("SELECT count(*) FROM requests WHERE created_at >= now() - interval '5 minutes' "
                                "AND latency_ms >= 1000").fetchone()[0]
        add_requests(slow * 25 - total + 50, latency_ms=latency_ms)


def notes(receiver, rule: str) -> list[str]:
    """This test's notifications about a rule, in order."""
    return [n["subject"] for n in receiver.all()[STARTED["notifications"]:] if f"] {rule} on sandbox" in n["subject"]]


def test_error_rate_pending_then_firing_silences_the_warning_then_each_resolves_once(short_rules, receiver):
    set_error_rate(10)
    states, _ = check()
    assert states["HighErrorRate"] == "pending" and states["ElevatedErrorRate"] == "pending"
    time.sleep(FOR_S + 0.5)
    set_error_rate(10)
    states, report = check()
    assert states["HighErrorRate"] == "firing" and states["ElevatedErrorRate"] == "silenced"
    assert report.figures["error_rate_pct"] > 5
    assert any("alert HighErrorRate firing" in f.message for f in report.findings)
    assert receiver.wait_for("[FIRING:critical] HighErrorRate on sandbox")
    assert notes(receiver, "ElevatedErrorRate") == []  # silenced by the critical

    set_error_rate(3)  # below the critical's 5%, above the warning's 2%
    states, _ = check()
    assert states["HighErrorRate"] == "inactive" and states["ElevatedErrorRate"] == "firing"
    assert receiver.wait_for("[RESOLVED] HighErrorRate on sandbox")
    assert receiver.wait_for("[FIRING:warning] ElevatedErrorRate on sandbox")

    set_error_rate(0.5)
    states, _ = check()
    assert states["ElevatedErrorRate"] == "inactive"
    receiver.wait_for("[RESOLVED] ElevatedErrorRate on sandbox")
    assert notes(receiver, "HighErrorRate") == ["[FIRING:critical] HighErrorRate on sandbox",
                                                "[RESOLVED] HighErrorRate on sandbox"]
    assert notes(receiver, "ElevatedErrorRate") == ["[FIRING:warning] ElevatedErrorRate on sandbox",
                                                    "[RESOLVED] ElevatedErrorRate on sandbox"]


def test_latency_fires_and_a_restarted_runner_neither_resends_nor_forgets(short_rules, receiver):
    set_p95(2500)
    assert check()[0]["HighLatency"] == "pending"
    time.sleep(FOR_S + 0.5)
    states, _ = check()
    assert states["HighLatency"] == "firing" and states["ElevatedLatency"] == "silenced"
    receiver.wait_for("[FIRING:critical] HighLatency on sandbox")
    # another process, as after a restart of the runner: the alert is still firing, and nobody is told twice
    code = ("from flows.health_check import health_check; r = health_check(); "
            "print([x['state'] for x in r.tables['alert_rules'] if x['rule'] == 'HighLatency'][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.stdout.strip().splitlines()[-1] == "firing", out.stderr[-2000:]
    time.sleep(2)
    assert notes(receiver, "HighLatency") == ["[FIRING:critical] HighLatency on sandbox"]
    set_p95(20)
    assert check()[0]["HighLatency"] == "inactive"
    receiver.wait_for("[RESOLVED] HighLatency on sandbox")
    assert notes(receiver, "HighLatency")[-1] == "[RESOLVED] HighLatency on sandbox"
    assert len(notes(receiver, "HighLatency")) == 2


@pytest.mark.parametrize("kind, rule, value", [("cpu", "HighCpu", 0.45), ("memory", "HighMemory", 480 * 2 ** 20)])
def test_platform_cpu_and_memory_rules_fire_after_their_duration_and_resolve(short_rules, receiver, kind, rule, value):
    platform_sample(kind, value, real_instances=True)  # 0.45 of 0.5 CPU, 480 of 512 MB: 90% and 94%
    assert check()[0][rule] == "pending"
    time.sleep(FOR_S + 0.5)
    platform_sample(kind, value, real_instances=True)
    states, report = check()
    assert states[rule] == "firing" and report.figures[f"{kind}_pct"] > 80
    receiver.wait_for(f"[FIRING:critical] {rule} on sandbox")
    platform_sample(kind)
    time.sleep(1)
    assert check()[0][rule] == "inactive"
    receiver.wait_for(f"[RESOLVED] {rule} on sandbox")
    assert notes(receiver, rule) == [f"[FIRING:critical] {rule} on sandbox", f"[RESOLVED] {rule} on sandbox"]


def test_database_connection_pool_above_80_percent_fires_and_resolves(short_rules, receiver):
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        max_conn, reserved, in_use = conn.execute(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')").fetchone()
    needed = math.floor(0.8 * (max_conn - reserved)) + 1 - (in_use - 1)
    held = [psycopg.connect(os.environ["DATABASE_URL"]) for _ in range(max(needed, 0))]
    try:
        states, report = check()
        assert states["DatabaseConnectionPool"] == "firing" and report.figures["db_connections_pct"] > 80
        receiver.wait_for("[FIRING:warning] DatabaseConnectionPool on sandbox")
    finally:
        for conn in held:
            conn.close()
    assert check()[0]["DatabaseConnectionPool"] == "inactive"
    receiver.wait_for("[RESOLVED] DatabaseConnectionPool on sandbox")
    assert notes(receiver, "DatabaseConnectionPool") == ["[FIRING:warning] DatabaseConnectionPool on sandbox",
                                                         "[RESOLVED] DatabaseConnectionPool on sandbox"]


def test_redis_memory_above_70_percent_fires_and_resolves(short_rules, receiver):
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    before = client.config_get("maxmemory")["maxmemory"]
    used = client.info("memory")["used_memory"]
    try:
        client.config_set("maxmemory", int(used / 0.75))  # used memory at about 75% of the limit
        states, _ = check()
        assert states["RedisMemory"] == "firing"
        receiver.wait_for("[FIRING:warning] RedisMemory on sandbox")
    finally:
        client.config_set("maxmemory", before)
    states, _ = check()
    assert states["RedisMemory"].startswith("inactive")
    receiver.wait_for("[RESOLVED] RedisMemory on sandbox")
    assert len(notes(receiver, "RedisMemory")) == 2


def test_missing_platform_metrics_are_reported_missing_and_do_not_resolve(short_rules, receiver, monkeypatch):
    platform_sample("cpu", 0.45, real_instances=True)
    check()
    time.sleep(FOR_S + 0.5)
    platform_sample("cpu", 0.45, real_instances=True)
    assert check()[0]["HighCpu"] == "firing"
    monkeypatch.setenv("RENDER_API_KEY", "rnd_revoked-key-for-this-test")  # the platform now answers 401
    states, report = check()
    assert states["HighCpu"].startswith("firing (no data")
    assert {r["component"]: r["ok"] for r in report.tables["probes"]} == {"service": True, "database": True,
                                                                         "redis": True}
    assert notes(receiver, "HighCpu") == ["[FIRING:critical] HighCpu on sandbox"]  # no false RESOLVED


def test_a_firing_alert_starts_its_diagnostics_runbook_by_itself(short_rules, served, receiver):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    def diagnostics_runs():
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(
                any_=["diagnose-high-cpu"])))

    # an earlier test's HighCpu may have started one (the served process picks it up when it starts): the deployment
    # runs one at a time and cancels a new one meanwhile, so this test starts once those have ended
    deadline = time.monotonic() + 180
    while any(not (r.state and r.state.is_final()) for r in diagnostics_runs()):
        assert time.monotonic() < deadline, "an earlier diagnostics run never ended"
        time.sleep(1)
    before = {r.id for r in diagnostics_runs()}
    platform_sample("cpu", 0.45, real_instances=True)
    check()
    time.sleep(FOR_S + 0.5)
    platform_sample("cpu", 0.45, real_instances=True)
    assert check()[0]["HighCpu"] == "firing"
    deadline = time.monotonic() + 180
    new = []
    while time.monotonic() < deadline:
        new = [r for r in diagnostics_runs() if r.id not in before]
        if new and new[0].state and new[0].state.is_final():
            break
        time.sleep(2)
    assert len(new) == 1, "the diagnostics runbook did not start"
    assert new[0].parameters == {"target": "sandbox"} and new[0].state.is_completed()
