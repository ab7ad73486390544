"""Platform changes while the platform freezes: the stand-in's process stopped with SIGSTOP at a step of a runbook
(the restart as it arrives, the first write of a rotation) and continued later, while users keep calling the backend
with the tokens they already hold. Each run, then the run again: no request refused, exactly one restart per restart
asked for, the platform in the previous or the new state, the state left named in the report, the rerun clean.

The platform client waits 1 s for an answer and confirms for 20 s here (OPS_PLATFORM_TIMEOUT_SECONDS,
OPS_PLATFORM_CONFIRM_SECONDS; production: 30 s and 60 s), so that freezes of seconds stand for freezes of minutes:
a call whose answer was lost is judged not taken only once the platform has answered for 10 s without a break and
showed nothing; a platform that has not by 30 s leaves it unknown (each read of the platform then waits 1 s at
most). A write is retried 4 times with backoff (about 13 s)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from sandbox.faulty_proxy import FaultyProxy
from sandbox.load import UserLoad
from tests.flows.test_secret_rotation import answers, base, user_tokens


@pytest.fixture
def render(ops):
    from tasks.platform.render_platform import Render

    return Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)


@pytest.fixture
def frozen(ops, monkeypatch):
    """The runbooks reach the platform through a proxy that can freeze the stand-in's process."""
    from playground_ops.settings import load_settings
    from sandbox import manager

    upstream = os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0]
    proxy = FaultyProxy(upstream)
    proxy.freeze_pid = manager.service_pid(load_settings(), "standins")
    monkeypatch.setenv("RENDER_API_URL", f"{proxy.url}/render/v1")
    monkeypatch.setenv("OPS_PLATFORM_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("OPS_PLATFORM_CONFIRM_SECONDS", "20")
    yield proxy
    proxy.close()


def Users(tokens: dict[str, str]) -> UserLoad:
    return UserLoad(base(), tokens, users=3, pause_s=0.05)


def restarts_since(render, since: datetime) -> int:
    service = os.environ["RENDER_SERVICE_ID"]
    return sum(e["type"] == "server_restarted" for e in render.events(service, since, datetime.now(timezone.utc)
                                                                      + timedelta(minutes=1)))


def notifications(receiver, run_id: str) -> list[dict]:
    time.sleep(3)  # what must not come: a second notification for the run
    return receiver.matching(run_id)


def test_an_env_change_whose_restart_meets_a_frozen_platform_restarts_once_and_stands(frozen, render, receiver):
    from flows.environment_variables import environment_variables
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    frozen.freeze_seconds = 4  # longer than the client waits for the restart's answer, shorter than it confirms
    freeze = frozen.inject("post", "freeze", count=1)  # the restart: the platform stops as it arrives
    with Users(user_tokens()) as users:
        report = environment_variables(action="set", values={"LOG_LEVEL": "debug"})
        again = environment_variables(action="set", values={"LOG_LEVEL": "info"})  # the run again
    assert freeze.fired == 1
    assert report.status.value == "ok" and report.summary.endswith("restarted, healthy"), report.summary
    assert again.status.value == "ok" and "recovered" not in again.figures
    assert restarts_since(render, since) == 2  # one per run, none sent twice
    assert render.list_env_vars(service)["LOG_LEVEL"] == "info" and read_change("sandbox") is None
    assert len(users.answers) > 50 and users.refused == []
    render.delete_env_var(service, "LOG_LEVEL")


def test_a_restart_frozen_past_the_confirmation_is_never_resent_and_the_change_is_rolled_back(frozen, render,
                                                                                             receiver):
    from prefect import get_client

    from flows.environment_variables import environment_variables
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    before = render.list_env_vars(service).get("LOG_LEVEL")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    # frozen longer than the client confirms (at most 30 s, and one read, reading a platform that does not answer
    # steadily): whether the restart was taken cannot be known, so it is not sent again
    frozen.freeze_seconds = 36
    frozen.inject("post", "freeze", count=1)
    with Users(user_tokens()) as users:
        state = environment_variables(action="set", values={"LOG_LEVEL": "trace"}, return_state=True)
        again = environment_variables(action="set", values={"LOG_LEVEL": "warn"})  # the run again
    assert state.is_failed()
    message = state.message or ""
    assert "whether it was taken is unknown: not sent again" in message, message
    assert "previous values restored, restarted" in message, message  # the state left, named
    assert again.status.value == "ok" and "recovered" not in again.figures
    # the frozen restart (done when the platform woke), the rollback's, the rerun's: each sent once
    assert restarts_since(render, since) == 3
    assert render.list_env_vars(service)["LOG_LEVEL"] == "warn" and read_change("sandbox") is None
    assert len(users.answers) > 50 and users.refused == []
    run_id = str(state.state_details.flow_run_id)
    assert len(notifications(receiver, run_id)) == 1
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_failed()
    if before is None:
        render.delete_env_var(service, "LOG_LEVEL")


def test_a_rotation_frozen_at_its_first_write_keeps_the_original_secret_and_the_rerun_rotates(frozen, render,
                                                                                             receiver):
    from flows.secret_rotation import secret_rotation
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    original = render.list_env_vars(service)["JWT_SECRET"]
    old_tokens = user_tokens()
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    # frozen at the first write (JWT_SECRET_PREVIOUS) for longer than the write's own retries
    frozen.freeze_seconds = 16
    freeze = frozen.inject("put", "freeze", count=1)
    with Users(old_tokens) as users:
        state = secret_rotation(secrets=["JWT_SECRET"], return_state=True)
        frozen.clear()
        rerun = secret_rotation(secrets=["JWT_SECRET"])
    assert freeze.fired == 1 and state.is_failed()
    message = state.message or ""
    assert "the write failed" in message and "rolled back: the previous values are live again and accepted" in message, message
    assert read_change("sandbox") is None
    live = render.list_env_vars(service)
    assert rerun.status.value == "ok", rerun.summary
    assert live["JWT_SECRET_PREVIOUS"] == original and live["JWT_SECRET"] != original  # rotated once, on top of the original
    assert answers(old_tokens) == (200, 200)
    assert len(users.answers) > 50 and users.refused == []
    # the failed run's rollback restart and the rerun's: one each
    assert restarts_since(render, since) == 2
    assert len(notifications(receiver, str(state.state_details.flow_run_id))) == 1
    assert secret_rotation(action="finish", force_finish=True).summary.startswith("finished:")


def scale_events_since(render, since: datetime) -> list[dict]:
    service = os.environ["RENDER_SERVICE_ID"]
    return [e for e in render.events(service, since, datetime.now(timezone.utc) + timedelta(minutes=1))
            if e["type"] == "instance_count_changed"]


def test_a_scale_frozen_past_the_confirmation_is_put_back_and_the_rerun_scales(frozen, render, receiver):
    from flows.scale_service import scale_service
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    frozen.freeze_seconds = 36
    frozen.inject("post", "freeze", count=1)  # the scale: the platform stops as it arrives
    try:
        with Users(user_tokens()) as users:
            state = scale_service(instances=2, wait_seconds=60, return_state=True)
            again = scale_service(instances=2, wait_seconds=60)  # the run again
        message = state.message or ""
        assert state.is_failed() and "whether it was taken is unknown: not sent again" in message, message
        assert "rolled back: 1 instances, no autoscaling again" in message, message
        assert again.status.value == "ok" and "recovered" not in again.figures, again.summary
        assert render.get_service(service)["serviceDetails"]["numInstances"] == 2 and read_change("sandbox") is None
        # the frozen scale (done when the platform woke), the rollback's, the rerun's: each sent once
        assert len(scale_events_since(render, since)) == 3
        assert len(users.answers) > 50 and users.refused == []
        assert len(notifications(receiver, str(state.state_details.flow_run_id))) == 1
    finally:
        frozen.clear()
        scale_service(instances=1, wait_seconds=60)
