"""A runbook run that fails notifies exactly once, through the automation `setup` created, on a real server."""

from __future__ import annotations

import json

from tests.conftest import WEBHOOK_TOKEN, cli


def test_each_failed_run_sends_exactly_one_notification_naming_runbook_deployment_target_and_link(served, receiver):
    from prefect.deployments import run_deployment

    runs = [run_deployment("health-check/health-check", parameters={"target": f"no-such-target-{i}"}, timeout=300)
            for i in range(2)]
    assert [r.state.type.value for r in runs] == ["FAILED", "FAILED"]
    for i, run in enumerate(runs):
        got = receiver.wait_for(f"no-such-target-{i}", timeout=90)
        assert len(got) == 1, got
        body, subject = got[0]["body"], got[0]["subject"]
        assert "[FAILED] runbook health-check on no-such-target-" in subject
        assert "Deployment: health-check" in body
        assert "target: expected one of sandbox" in body  # the state message says what was wrong
        assert f"/runs/flow-run/{run.id}" in body
    # and nothing more arrives for them later
    assert len(receiver.wait_for("no-such-target-0", count=2, timeout=5)) == 1
    assert WEBHOOK_TOKEN not in json.dumps(receiver.all())


def test_failed_run_still_leaves_a_failed_report_in_the_audit_store(served):
    from prefect.deployments import run_deployment

    from playground_ops.cli import stored_report_for

    run = run_deployment("health-check/health-check", parameters={"target": "ghost"}, timeout=300)
    assert run.state.type.value == "FAILED"
    link = stored_report_for(str(run.id))
    assert link is not None and "/health-check/ghost/" in link
    report = json.loads(open(link.removeprefix("file://")).read())
    assert report["status"] == "failed"
    assert "target: expected one of sandbox" in report["findings"][0]["message"]


def test_run_command_triggers_waits_and_prints_state_and_report(served):
    result = cli("run", "health-check")
    assert result.returncode == 0, result.stderr
    assert "health-check on sandbox: Completed" in result.stdout
    assert "report: file://" in result.stdout
    # this shell's target settings are not the run's: the serving process reads its own, and the command says so
    note = next((line for line in result.stderr.splitlines() if line.startswith("note: the run reads ")), "")
    assert "DATABASE_URL" in note and "in the process that serves its deployment" in note, result.stderr


def test_a_runbook_run_outside_any_deployment_is_notified_too(ops, receiver):
    """No deployment, no tags: the automation matches runbooks by their flow's name."""
    import pytest

    from flows.health_check import health_check

    with pytest.raises(Exception):
        health_check(target="by-hand-ghost")
    got = receiver.wait_for("by-hand-ghost", timeout=90)
    assert len(got) == 1 and "Deployment: (run by hand)" in got[0]["body"]


def test_run_prints_why_a_run_failed_and_where_to_watch_one_still_running(served, receiver):
    failed = cli("run", "restore-database", "--param", "backup_id=no-such-backup")
    assert failed.returncode == 1
    assert ("restore-database on sandbox: Failed: " in failed.stdout
            and "nothing to restore: no-such-backup: no manifest" in failed.stdout), failed.stdout
    # the run named no target: its notification names the default one by its name
    note = receiver.wait_for("no-such-backup: no manifest", timeout=90)
    assert note and note[-1]["subject"] == "[FAILED] runbook restore-database on sandbox", note
    assert "Target: sandbox\n" in note[-1]["body"]
    waiting = cli("run", "health-check", "--timeout", "0")
    assert waiting.returncode == 1
    assert "still running after 0 s: the run goes on; watch it at http://" in waiting.stdout
    assert "/runs/flow-run/" in waiting.stdout
    # the run goes on: it must end before the next test stops the sandbox's backend under it
    import asyncio
    from uuid import UUID

    from prefect.flow_runs import wait_for_flow_run

    run_id = UUID(waiting.stdout.split("/runs/flow-run/")[1].split()[0].strip(".,)"))
    assert asyncio.run(wait_for_flow_run(run_id, timeout=300)).state.is_final()
