"""environment-variables end to end: the platform stand-in's env vars (what the restarted backend processes really
get), Prefect Secret blocks, approvals through the Prefect API as the UI gives them, the session's Prefect server."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import SecretStr

from tests.conftest import flow_run_logs
from tests.background import in_background, paused_run

TOKEN = "feature-token-" + os.urandom(6).hex()


@pytest.fixture
def platform(ops):
    from prefect.blocks.system import Secret

    from tasks.platform.render_platform import Render

    Secret(value=TOKEN).save("feature-token", overwrite=True)
    render = Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)
    service = os.environ["RENDER_SERVICE_ID"]
    yield render, service, ops
    for key in ("LOG_LEVEL", "FEATURE_TOKEN"):
        if key in render.list_env_vars(service):
            render.delete_env_var(service, key)


def never_shown(report, value: str) -> None:
    """The value is nowhere an operator or the Prefect server can read it: report, parameters, logs."""
    from prefect import get_client

    assert value not in report.model_dump_json()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(report.flow_run_id)
    assert value not in json.dumps(run.parameters) and value not in flow_run_logs(report.flow_run_id)


def test_set_list_and_unset_with_fingerprints_only_and_the_restarted_processes_get_them(platform):
    from flows.environment_variables import environment_variables
    from sandbox import manager
    from tasks.platform.env_changes import fingerprint

    render, service, _ = platform
    report = environment_variables(action="set", values={"LOG_LEVEL": "debug"},
                                   secret_blocks={"FEATURE_TOKEN": "feature-token"})
    assert report.status.value == "ok" and report.summary.endswith("written and read back; restarted, healthy")
    rows = {r["key"]: r for r in report.tables["change"]}
    assert rows["FEATURE_TOKEN"] == {"key": "FEATURE_TOKEN", "change": "added", "before": "", "after": fingerprint(TOKEN)}
    live = render.list_env_vars(service)
    assert live["LOG_LEVEL"] == "debug" and live["FEATURE_TOKEN"] == TOKEN
    environ = open(f"/proc/{manager.backend_pid(platform[2])}/environ", "rb").read().split(b"\0")
    assert f"FEATURE_TOKEN={TOKEN}".encode() in environ and b"LOG_LEVEL=debug" in environ
    never_shown(report, TOKEN)
    from prefect.blocks.system import Secret
    with pytest.raises(ValueError):  # the backup of the previous values is gone once the change stands
        Secret.load(f"playground-ops-env-backup-sandbox-{report.flow_run_id[:8]}")

    listed = environment_variables()
    assert {"key": "FEATURE_TOKEN", "fingerprint": fingerprint(TOKEN)} in listed.tables["variables"]
    never_shown(listed, TOKEN)

    removed = environment_variables(action="unset", keys=["LOG_LEVEL", "FEATURE_TOKEN"], restart=False)
    assert [r["change"] for r in removed.tables["change"]] == ["removed", "removed"]
    assert not {"LOG_LEVEL", "FEATURE_TOKEN"} & set(render.list_env_vars(service))


def test_production_waits_for_approval_and_a_refusal_writes_nothing(platform, monkeypatch, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.environment_variables import environment_variables

    render, service, _ = platform
    monkeypatch.setenv("TARGET_ENVIRONMENT", "production")
    runner, outcome = in_background(environment_variables, action="set", values={"LOG_LEVEL": "trace"})
    paused = paused_run("environment-variables")
    assert paused is not None, "the production change did not wait for an operator"
    assert receiver.wait_for("environment-variables on sandbox: set LOG_LEVEL")
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "freeze"})
    runner.join(timeout=300)
    assert outcome["report"].summary == "refused: nothing changed"
    assert "LOG_LEVEL" not in render.list_env_vars(service)


def test_a_service_unhealthy_after_the_change_gets_its_previous_values_back(platform):
    from prefect.blocks.system import Secret

    from flows.environment_variables import environment_variables
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    good = render.list_env_vars(service)["REDIS_URL"]
    Secret(value="redis://127.0.0.1:1/0").save("broken-redis-url", overwrite=True)
    with pytest.raises(RunbookFailed, match="not healthy within 15 s of the restart: health 200, old instances still "
                                            "running .*previous values restored, restarted, healthy"):
        environment_variables(action="set", secret_blocks={"REDIS_URL": "broken-redis-url"}, wait_seconds=15)
    assert render.list_env_vars(service)["REDIS_URL"] == good


@pytest.mark.parametrize("request_, message", [
    ({"action": "set", "values": {"JWT_SECRET": "plain"}}, "JWT_SECRET is not declared non-secret: expected its "
                                                          "value in a Prefect Secret block"),
    ({"action": "unset", "keys": ["DATABASE_URL"]}, "DATABASE_URL is required by the application"),
    ({"action": "set", "secret_blocks": {"FEATURE_TOKEN": "no-such-block"}}, "secret_blocks: expected a Prefect "
                                                                               "Secret block named 'no-such-block'"),
    ({"action": "unset", "keys": ["NOT_THERE"]}, "expected keys the service has \\(no NOT_THERE\\)"),
    ({"action": "set", "values": {"bad-key": "x"}}, "expected names such as NODE_ENV \\(got 'bad-key'\\)"),
])
def test_bad_requests_are_refused_in_one_line_before_anything_is_written(platform, request_, message):
    from flows.environment_variables import environment_variables
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    before = render.list_env_vars(service)
    with pytest.raises(RunbookFailed, match=message) as refused:
        environment_variables(**request_)
    assert "\n" not in str(refused.value) and render.list_env_vars(service) == before
