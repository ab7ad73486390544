"""scale-service end to end: the platform stand-in really runs that many backend processes; approvals through the
Prefect API as the UI gives them; the session's Prefect server."""

from __future__ import annotations


import pytest

from tests.background import in_background, paused_run


@pytest.fixture
def one_instance(ops, monkeypatch):
    from flows.scale_service import scale_service

    yield ops
    monkeypatch.setenv("TARGET_ENVIRONMENT", "sandbox")
    if scale_service(instances=1).figures.get("instances") != 1:
        raise AssertionError("could not scale the sandbox back to 1 instance")


def test_instances_converge_up_and_down_with_the_service_healthy(one_instance):
    from flows.scale_service import scale_service

    up = scale_service(instances=2)
    assert up.status.value == "ok" and up.figures["instances"] == 2 and up.figures["healthy"] is True
    assert up.tables["before"][0]["instances"] == 1 and up.tables["after"][0]["instances"] == 2
    down = scale_service(instances=1)
    assert down.figures["instances"] == 1 and down.figures["needs_approval"] is False  # not production


def test_a_production_scale_down_waits_for_approval_and_a_refusal_changes_nothing(one_instance, monkeypatch, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.scale_service import scale_service

    monkeypatch.setenv("TARGET_ENVIRONMENT", "production")
    assert scale_service(instances=2).figures["needs_approval"] is False  # up, within the bound
    runner, outcome = in_background(scale_service, instances=1)
    paused = paused_run("scale-service")
    assert paused is not None, "the scale-down did not wait for an operator"
    asked = receiver.wait_for("instances 2 -> 1 (a production scale-down (2 -> 1))")
    assert asked[-1]["subject"].startswith("[APPROVAL NEEDED] scale-service on sandbox")
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "peak hours"})
    runner.join(timeout=300)
    report = outcome["report"]
    assert report.summary == "refused: nothing changed" and "after" not in report.tables
    assert scale_service(instances=2, dry_run=True).tables["before"][0]["instances"] == 2  # untouched


def test_autoscaling_is_set_to_the_declared_settings_and_removed(one_instance):
    from flows.scale_service import scale_service

    report = scale_service(autoscaling=True)
    assert report.figures["change"] == "autoscaling 1-3 instances at CPU 70% / memory 80%"  # the guide's settings
    auto = report.tables["after"][0]["autoscaling"]
    assert auto["enabled"] is True and (auto["min"], auto["max"]) == (1, 3)
    assert auto["criteria"]["cpu"]["percentage"] == 70 and auto["criteria"]["memory"]["percentage"] == 80
    removed = scale_service(autoscaling=False)
    assert removed.tables["after"][0]["autoscaling"] is None


def test_a_request_that_is_not_one_is_refused_in_one_line(ops):
    from flows.scale_service import scale_service
    from playground_ops.runbook import RunbookFailed

    with pytest.raises(RunbookFailed, match="expected either instances \\(a number\\) or autoscaling"):
        scale_service(instances=2, autoscaling=True)
    with pytest.raises(RunbookFailed, match="expected min_instances <= max_instances \\(got 4 > 2\\)"):
        scale_service(autoscaling=True, min_instances=4, max_instances=2)
