"""health-check end to end: real backend, database, Redis and Prefect server; the backend is stopped to cause trouble."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import WEBHOOK_TOKEN, flow_run_artifacts, flow_run_logs


@pytest.fixture
def fresh_state(ops):
    from prefect.variables import Variable

    from tasks.monitoring.run_state import state_name

    Variable.unset(state_name("health-check", "sandbox"))
    yield ops


def run_check():
    from flows.health_check import health_check

    return health_check()


def test_healthy_sandbox_reports_ok_with_probe_figures(fresh_state):
    report = run_check()
    assert report.status.value == "ok"
    assert {row["component"]: row["ok"] for row in report.tables["probes"]} == {
        "service": True, "database": True, "redis": True}
    assert report.figures["database_connections_in_use"] >= 1
    stored = json.loads(Path(report.stored_at.removeprefix("file://")).read_text())
    assert stored["status"] == "ok" and stored["chain"]["sequence"] >= 1
    again = run_check()  # the samples are kept: the report shows how the values moved over the last hour
    assert len(again.tables["last_hour"]) >= 2 and again.tables["last_hour"][-1]["db_connections_pct"] > 0
    artifacts = flow_run_artifacts(report.flow_run_id)
    assert {a.key for a in artifacts if a.key} == {"health-check-sandbox"}  # one keyed summary per runbook and target
    assert any(a.type == "table" for a in artifacts)  # the tables ride along, unkeyed
    summary = next(a for a in artifacts if a.key == "health-check-sandbox").data
    stored_key = Path(report.stored_at.removeprefix("file://")).relative_to(Path(os.environ["OPS_HOME"]) / "audit")
    assert f"`playground-ops audit show {stored_key}`" in summary and "file://" not in summary


def test_service_down_is_critical_only_on_second_failure_and_notifies_once_each_way(fresh_state, receiver):
    from sandbox import manager

    settings = fresh_state
    before = len(receiver.matching("HealthCheckFailing on sandbox"))
    assert run_check().status.value == "ok"
    manager.stop_backend(settings)
    try:
        first = run_check()
        assert first.status.value == "warning"
        assert any("failed this check" in f.message for f in first.findings)
        assert len(receiver.matching("HealthCheckFailing on sandbox")) == before

        second = run_check()
        assert second.status.value == "critical"
        assert any("failed 2 consecutive checks" in f.message for f in second.findings)
        critical = receiver.wait_for("[FIRING:critical] HealthCheckFailing on sandbox")
        assert len(critical) == 1

        third = run_check()
        assert third.status.value == "critical"
        assert len(receiver.matching("[FIRING:critical] HealthCheckFailing on sandbox")) == 1
    finally:
        manager.start_backend(settings)
    recovered = run_check()
    assert recovered.status.value == "ok"
    assert len(receiver.wait_for("[RESOLVED] HealthCheckFailing on sandbox")) == 1
    assert len(receiver.matching("[FIRING:critical] HealthCheckFailing on sandbox")) == 1
    assert run_check().status.value == "ok"
    assert len(receiver.matching("HealthCheckFailing on sandbox")) == before + 2


def test_state_survives_a_new_process(fresh_state, tmp_path):
    """The memory of the previous check lives in the Prefect server, not in the process that ran it."""
    import subprocess
    import sys

    from sandbox import manager

    manager.stop_backend(fresh_state)
    try:
        code = "from flows.health_check import health_check; print(health_check().status.value)"
        statuses = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
                    .stdout.strip().splitlines()[-1] for _ in range(2)]
    finally:
        manager.start_backend(fresh_state)
    assert statuses == ["warning", "critical"]
    assert run_check().status.value == "ok"


def test_no_secret_in_logs_artifacts_or_stored_reports(fresh_state):
    from prefect.artifacts import Artifact

    from sandbox.manager import SANDBOX_DB_PASSWORD

    report = run_check()
    texts = [flow_run_logs(report.flow_run_id)]
    texts += [json.dumps(a.data) + (a.description or "") for a in flow_run_artifacts(report.flow_run_id)]
    stored = Path(report.stored_at.removeprefix("file://"))
    texts += [p.read_text() for p in stored.parent.glob(f"{report.flow_run_id}.*")]
    texts.append(report.model_dump_json())
    assert "Report health-check" in texts[0]  # the logs were really read
    for text in texts:
        assert SANDBOX_DB_PASSWORD not in text
        assert WEBHOOK_TOKEN not in text
    assert Artifact.get("health-check-sandbox") is not None


def test_a_server_dripping_its_answer_is_a_timed_out_probe_counted_in_the_streak(fresh_state, monkeypatch):
    """A health endpoint that sends one byte every 2 s would keep a per-read timeout alive for minutes: the probe's
    total deadline ends it, the report is stored, the failure streak counts, and the probe hangs up."""
    from sandbox.faulty_proxy import FaultyProxy

    proxy = FaultyProxy(f"http://127.0.0.1:{fresh_state.sandbox_port}")
    proxy.inject("get", "drip", count=-1)
    monkeypatch.setenv("HEALTH_URL", f"{proxy.url}/health")
    try:
        first, second = run_check(), run_check()
    finally:
        proxy.close()
    service = next(row for row in first.tables["probes"] if row["component"] == "service")
    assert not service["ok"] and "no complete answer within the probe's 5 s deadline" in json.dumps(service)
    assert first.status.value == "warning" and first.stored_at
    assert second.status.value == "critical" and any("failed 2 consecutive checks" in f.message for f in second.findings)
    assert proxy.abandoned >= 2  # each attempt hung up on the dripping server: nothing left reading it


def test_checks_of_different_targets_run_side_by_side_and_a_second_check_of_one_target_is_skipped(
        fresh_state, tmp_path, monkeypatch):

    from flows.health_check import health_check
    from tasks.slots import unless_running

    env = {k: v for k, v in __import__("os").environ.items()}
    targets = tmp_path / "targets.yaml"
    targets.write_text("default: sandbox\ntargets:\n" + "".join(
        f"  - name: {name}\n    environment: sandbox\n    health_url: {env['HEALTH_URL']}\n"
        f"    database_url: {{env: DATABASE_URL}}\n    redis_url: {{env: REDIS_URL}}\n" for name in ("sandbox", "other")))
    monkeypatch.setenv("OPS_TARGETS_FILE", str(targets))
    with unless_running("health-check", "sandbox") as free:  # a check of sandbox is under way
        assert free
        skipped_state = health_check(target="sandbox", return_state=True)
        other = health_check(target="other")
    assert skipped_state.is_completed() and skipped_state.name == "Skipped"
    assert skipped_state.message == "skipped: another health-check of sandbox is still running"
    assert other.status.value == "ok"  # the other target's check was neither cancelled nor skipped
    assert health_check(target="sandbox").status.value == "ok"  # the slot is free again once the first check ends


def test_three_checks_of_one_target_started_together_one_runs_and_two_are_skipped(fresh_state):
    """Under load: three runs starting in the same instant all find the slot free; the server lets one have it."""
    import threading

    from flows.health_check import health_check

    states, start = [], threading.Barrier(3)

    def check() -> None:
        start.wait()
        states.append(health_check(target="sandbox", return_state=True))

    runners = [threading.Thread(target=check) for _ in range(3)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=300)
    names = sorted(state.name for state in states)
    assert len(states) == 3 and all(state.is_completed() for state in states)
    assert names.count("Skipped") == 2 and len([n for n in names if n != "Skipped"]) == 1, names
