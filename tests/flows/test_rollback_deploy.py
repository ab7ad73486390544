"""rollback-deploy end to end: deploys on the platform stand-in (each really restarts the backend), an approval
refused through the Prefect API as the UI gives it, the session's Prefect server."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from tests.background import in_background, paused_run


@pytest.fixture
def two_deploys(ops):
    from tasks.platform.render_platform import Render

    render = Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)
    service = os.environ["RENDER_SERVICE_ID"]
    ids = []
    for _ in range(2):
        deploy = render.create_deploy(service)
        assert render.wait_for_deploy(service, deploy["id"], timeout=120)["status"] == "live"
        ids.append(deploy["id"])
    return render, service, ids


def test_a_rollback_goes_back_to_the_deploy_before_the_live_one(two_deploys):
    from flows.rollback_deploy import rollback_deploy

    render, service, (older, newer) = two_deploys
    assert rollback_deploy(dry_run=True).summary.startswith(f"dry run: would roll back from {newer}")
    report = rollback_deploy(reason="drill")
    assert report.status.value == "ok" and report.figures["to"] == older and report.figures["healthy"] is True
    [latest] = render.deploys(service, limit=1)
    assert latest["id"] == report.figures["deploy"] and latest["trigger"] == "rollback"
    assert latest["rollbackOf"] == older and latest["status"] == "live"


def test_production_asks_first_and_a_refusal_changes_nothing(two_deploys, monkeypatch, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.rollback_deploy import rollback_deploy

    render, service, (older, newer) = two_deploys
    monkeypatch.setenv("TARGET_ENVIRONMENT", "production")
    runner, outcome = in_background(rollback_deploy)
    paused = paused_run("rollback-deploy")
    assert paused is not None, "the production rollback did not wait for an operator"
    assert receiver.wait_for(f"rollback-deploy on sandbox: roll back from {newer}")
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "not this one"})
    runner.join(timeout=300)
    assert outcome["report"].summary == "refused: nothing changed"
    assert render.deploys(service, limit=1)[0]["id"] == newer  # no new deploy


def test_a_deploy_id_that_is_not_an_earlier_live_one_is_refused_in_one_line(two_deploys):
    from flows.rollback_deploy import rollback_deploy
    from playground_ops.runbook import RunbookFailed

    with pytest.raises(RunbookFailed, match="expected deploy_id to name an earlier deploy that went live "
                                            "\\(got 'dep-nope'\\)"):
        rollback_deploy(deploy_id="dep-nope")
