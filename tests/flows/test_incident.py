"""incident end to end: the sandbox's backend really stopped, the health check's alert, the assessment's five runs,
an operator's approval given (or refused) through the Prefect API as the UI gives it, the platform stand-in's restart,
the record in the audit store, the session's Prefect server."""

from __future__ import annotations

import time

import pytest

from tests.background import in_background, paused_run
from tests.conftest import backend_down


@pytest.fixture
def down(ops, receiver):
    """The backend stopped, after two health checks that saw it down (HealthCheckFailing fires); started again after."""
    from prefect.variables import Variable

    from flows.health_check import health_check
    from sandbox import manager
    from tasks.monitoring.run_state import state_name

    Variable.unset(state_name("health-check", "sandbox"))
    backend_down(ops)
    try:
        assert [health_check().status.value for _ in range(2)] == ["warning", "critical"]
        assert receiver.wait_for("[FIRING:critical] HealthCheckFailing on sandbox")
        yield ops
    finally:
        if manager.backend_pid(ops) is None:
            manager.start_backend(ops)


def run_in_thread(**parameters):
    from flows.incident import incident

    return in_background(incident, **parameters)


def test_a_firing_alert_becomes_an_incident_assessed_contained_with_approval_and_resolved(down, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.incident import incident
    from sandbox import manager

    runner, outcome = run_in_thread(alert="HealthCheckFailing", severity="sev1", summary="the API is down",
                                    green_checks=2, check_interval_seconds=5, approval_timeout_seconds=300)
    paused = paused_run("incident")
    assert paused is not None, "the incident did not ask an operator before containment"
    asked = receiver.wait_for("restart: the health check is critical")
    assert asked[-1]["subject"].startswith("[APPROVAL NEEDED] INC-")
    opened = receiver.wait_for("sev1 on sandbox: the API is down")[-1]["subject"]
    incident_id = opened.split()[1].rstrip("]")
    assert manager.backend_pid(down) is None  # nothing restarted while it waits

    again = incident(alert="HealthCheckFailing")  # the same alert while the incident is open: attached to it
    assert (again.figures["incident"], again.figures["attached"]) == (incident_id, True)

    resume_flow_run(paused.id, run_input={"restart": True, "reason": "drill"})
    runner.join(timeout=600)
    report = outcome["report"]
    assert report.figures["incident"] == incident_id and report.figures["resolved"] is True
    assert [s["step"] for s in report.tables["record"]] == ["opened", "assessed", "attached", "containment",
                                                            "investigated", "resolved"]
    assessed = {r["runbook"]: r["status"] for r in report.tables["assessment"]}
    assert set(assessed) == {"health-check", "diagnose-high-cpu", "diagnose-high-memory",
                             "diagnose-database-connections", "diagnose-redis"}
    assert assessed["health-check"] == "critical"
    actions = {a["action"]: a for a in report.tables["actions"]}  # a rollback, too, if the session deployed lately
    assert actions["restart"]["outcome"].startswith("done: restarted") and actions["restart"]["run"]
    assert all(a["outcome"] == "refused by an operator" for name, a in actions.items() if name != "restart")
    assert manager.backend_pid(down) is not None
    whats = [row["what"] for row in report.tables["timeline"]]
    assert any(w.startswith("HealthCheckFailing (critical) fired") for w in whats)
    assert any(w.startswith("restart-service: ok") for w in whats)
    times = [row["at"] for row in report.tables["timeline"]]
    assert times == sorted(times)
    assert receiver.wait_for(f"[RESOLVED {incident_id}]")
    draft = report.documents["Post-mortem draft"]
    assert f"# Post-mortem draft: {incident_id}" in draft and "HealthCheckFailing (critical) fired" in draft
    assert "**Severity:** sev1" in draft and "restart" in draft.split("## Actions taken")[1]


def test_a_refused_restart_leaves_the_service_untouched_and_the_incident_open(down, receiver):
    from prefect.flow_runs import resume_flow_run

    from sandbox import manager

    runner, outcome = run_in_thread(summary="refusal drill", green_checks=1, check_interval_seconds=5,
                                    recovery_timeout_minutes=0.2, approval_timeout_seconds=300)
    paused = paused_run("incident")
    assert paused is not None
    resume_flow_run(paused.id, run_input={"restart": False, "reason": "not now"})
    runner.join(timeout=600)
    report = outcome["report"]
    assert {"action": "restart", "outcome": "refused by an operator", "run": ""} in report.tables["actions"]
    assert all(a["outcome"] == "refused by an operator" for a in report.tables["actions"])
    assert manager.backend_pid(down) is None  # untouched
    assert report.status.value == "critical" and report.figures["resolved"] is False
    assert "still open" in report.summary


def test_a_bad_alert_name_is_refused_in_one_line(ops):
    from flows.incident import incident
    from playground_ops.runbook import RunbookFailed

    with pytest.raises(RunbookFailed, match=r"alert: expected an alert rule's name such as HighErrorRate "
                                            r"\(got '../etc'\)"):
        incident(alert="../etc")


def test_a_critical_alert_firing_past_OPS_INCIDENT_AFTER_opens_an_incident_by_itself(ops, served, receiver,
                                                                                     monkeypatch):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.states import Cancelling
    from prefect.variables import Variable

    from deployments.setup import SetupResult, ensure_incident_automation
    from flows.health_check import health_check
    from playground_ops.settings import load_settings
    from sandbox import manager
    from tasks.monitoring.run_state import state_name

    def incident_runs():
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["incident"])))

    before = {r.id for r in incident_runs()}
    monkeypatch.setenv("OPS_INCIDENT_AFTER", "0s")
    assert ensure_incident_automation(load_settings(), SetupResult())
    Variable.unset(state_name("health-check", "sandbox"))
    backend_down(ops)
    started = []
    try:
        assert [health_check().status.value for _ in range(3)] == ["warning", "critical", "critical"]
        deadline = time.monotonic() + 180
        while not started and time.monotonic() < deadline:
            started = [r for r in incident_runs() if r.id not in before]
            time.sleep(2)
        assert len(started) == 1, "no incident was started by the alert"  # once per firing, not per check
        assert started[0].parameters["alert"] == "HealthCheckFailing" and started[0].parameters["target"] == "sandbox"
        opened = receiver.wait_for("critical alert HealthCheckFailing firing for 0s or more", timeout=120)
        assert opened and opened[-1]["subject"].startswith("[INCIDENT INC-")
    finally:
        with get_client(sync_client=True) as client:
            for run in started:
                client.set_flow_run_state(run.id, Cancelling(), force=True)
            # the incident's own health checks write the target's check state: the next test starts once it has ended
            deadline = time.monotonic() + 180
            while started and time.monotonic() < deadline:
                started = [r for r in started if not client.read_flow_run(r.id).state.is_final()]
                time.sleep(1)
            assert not started, "the incident started by the alert was not cancelled"
        monkeypatch.delenv("OPS_INCIDENT_AFTER")
        ensure_incident_automation(load_settings(), SetupResult())  # off again: removed
        manager.start_backend(ops)


def test_containment_without_an_answer_in_time_is_skipped_and_recorded(down):
    from flows.incident import incident
    from sandbox import manager

    report = incident(summary="nobody answers", green_checks=1, check_interval_seconds=5, recovery_timeout_minutes=0.2,
                      approval_timeout_seconds=3)
    assert report.tables["actions"] and all(a["outcome"] == "skipped: no approval within 3 s"
                                            for a in report.tables["actions"])
    assert manager.backend_pid(down) is None  # nothing was done without an operator
    assert "containment" in [s["step"] for s in report.tables["record"]] and report.figures["resolved"] is False


def test_an_incident_while_the_database_is_down_is_assessed_contained_and_resolved_when_it_returns(ops, receiver):
    """The outage it is for takes the requests table with it: the run goes on to assessment, containment (asked,
    refused: the database, not the backend) and the wait for recovery, naming what it could not read; it is
    resolved once the database is back."""
    from prefect.flow_runs import resume_flow_run
    from prefect.variables import Variable

    from flows.health_check import health_check
    from tasks.monitoring.run_state import state_name

    Variable.unset(state_name("health-check", "sandbox"))
    cluster = ops.sandbox_cluster()
    cluster.stop()
    try:
        assert [health_check().status.value for _ in range(2)] == ["warning", "critical"]
        runner, outcome = run_in_thread(summary="database outage drill", green_checks=1, check_interval_seconds=5,
                                        recovery_timeout_minutes=3, approval_timeout_seconds=120)
        paused = paused_run("incident")
        assert paused is not None, "no containment was asked"
        resume_flow_run(paused.id, run_input={"restart": False, "reason": "the database, not the backend"})
    finally:
        cluster.ensure()
    runner.join(timeout=600)
    report = outcome["report"]
    assert report.figures["resolved"] is True, report.summary
    assert "impact unknown: the requests table could not be read" in report.summary
    assert any(f.message.startswith("impact unknown") for f in report.findings)
    assert {"action": "restart", "outcome": "refused by an operator", "run": ""} in report.tables["actions"]
    steps = [s["step"] for s in report.tables["record"]]
    assert steps[0] == "opened" and {"assessed", "containment", "investigated", "resolved"} <= set(steps)
    assert receiver.wait_for(f"[RESOLVED {report.figures['incident']}]")


def test_an_open_incident_whose_run_has_ended_is_taken_over_never_answered_ok(ops, receiver):
    """Its run died without resolving it: a new alert's run works it (and says so), rather than attaching to it."""
    import uuid

    from flows.incident import incident
    from tasks.incidents.record import open_incident, read_incidents, _store

    dead_run = str(uuid.uuid4())  # a run the server does not know: surely not alive
    alert = f"OrphanDrill{uuid.uuid4().hex[:8]}"  # an alert no other test's incident is open for
    opened, how, _ = open_incident.fn("sandbox", "sev1", "an outage whose run died", alert, dead_run)
    assert how == "opened"
    report = incident(alert=alert, summary=f"alert {alert} firing", green_checks=1,
                      check_interval_seconds=5, recovery_timeout_minutes=0.2, approval_timeout_seconds=3)
    assert report.figures["incident"] == opened and report.figures.get("attached") is not True
    assert report.figures["taken_over_from"] == dead_run
    assert any(f"taken over from run {dead_run}" in f.message for f in report.findings)
    steps = read_incidents(_store(), "sandbox")[opened]
    assert [s["kind"] for s in steps][:2] == ["opened", "taken-over"] and steps[-1]["kind"] == "post-mortem"
    notified = receiver.wait_for(f"[INCIDENT {opened}]")
    assert notified and "taken over from run" in notified[-1]["subject"]
