"""secret-rotation end to end: the platform stand-in's env vars and its zero-downtime restart (real backend processes),
tokens a user got before the rotation, the session's Prefect server (Secret blocks, Variables, approvals), the audit
store, the webhook receiver."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sandbox.load import UserLoad
from tests.conftest import SESSION_DIR
from tests.flows.test_environment_variables import never_shown
from tests.background import in_background, paused_run

NAMES = ("JWT_SECRET", "JWT_REFRESH_SECRET")


@pytest.fixture
def platform(ops):
    from tasks.platform.render_platform import Render

    render = Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)
    return render, os.environ["RENDER_SERVICE_ID"], ops


def base() -> str:
    return os.environ["HEALTH_URL"].removesuffix("/health")


def user_tokens() -> dict[str, str]:
    """What a user holds after logging in: an access token and a refresh token."""
    answer = httpx.post(f"{base()}/api/token", json={"email": "user1@example.com"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def answers(tokens: dict[str, str]) -> tuple[int, int]:
    """How the service answers that user now: a call with the access token, a refresh with the refresh token."""
    me = httpx.get(f"{base()}/api/me", headers={"Authorization": f"Bearer {tokens['token']}"}).status_code
    refreshed = httpx.post(f"{base()}/api/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
    return me, refreshed


def past_grace_period() -> None:
    """Time passes: the grace period the rotation recorded is over."""
    from prefect.variables import Variable

    from tasks.monitoring.run_state import state_name

    name = state_name("secret-rotation", "sandbox")
    state = Variable.get(name)
    state["finish_after"] = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    Variable.set(name, state, overwrite=True)


def nowhere_stored(values: list[str]) -> None:
    """No value in the Prefect server's database (blocks are encrypted there) nor in the audit store."""
    places = [p for p in (SESSION_DIR / "prefect").rglob("*") if p.is_file()]
    places += [p for p in Path(os.environ["OPS_HOME"]).rglob("*") if p.is_file() and "sandbox" not in p.parts]
    for path in places:
        data = path.read_bytes()
        for value in values:
            assert value.encode() not in data, f"a secret value is stored in {path}"


def test_a_rotation_keeps_every_user_logged_in_and_finish_removes_the_previous_values(platform, receiver):
    from flows.secret_rotation import secret_rotation
    from tasks.platform.env_changes import fingerprint

    render, service, _ = platform
    before = {n: render.list_env_vars(service)[n] for n in NAMES}
    tokens = user_tokens()

    report = secret_rotation()
    assert report.status.value == "ok", report.summary
    live = render.list_env_vars(service)
    for name in NAMES:
        assert live[f"{name}_PREVIOUS"] == before[name] and live[name] != before[name]
        assert len(live[name]) == 44 and live[name].endswith("=")  # openssl rand -base64 32
    rows = {r["secret"]: r for r in report.tables["rotation"]}
    assert rows["JWT_SECRET"]["current"] == fingerprint(before["JWT_SECRET"])
    assert rows["JWT_SECRET"]["new"] == fingerprint(live["JWT_SECRET"])
    assert all(r["ok"] for r in report.tables["token checks"]) and len(report.tables["token checks"]) == 4
    assert answers(tokens) == (200, 200)  # issued before the rotation, still accepted
    values = [*before.values(), live["JWT_SECRET"], live["JWT_REFRESH_SECRET"]]
    for value in values:
        never_shown(report, value)
        assert all(value not in str(n) for n in receiver.all())
    nowhere_stored(values)

    early = secret_rotation(action="finish")
    assert early.summary.startswith("not yet: the grace period runs until")
    assert "JWT_SECRET_PREVIOUS" in render.list_env_vars(service)

    past_grace_period()
    postponed = secret_rotation(action="finish")  # that user's old tokens were used a moment ago
    assert postponed.summary == "postponed: old tokens still in use"
    assert {r["secret"] for r in postponed.tables["finish"] if r["accepted only by it (last 15 min)"] > 0} == set(NAMES)
    assert "JWT_SECRET_PREVIOUS" in render.list_env_vars(service)

    done = secret_rotation(action="finish", force_finish=True)
    assert done.status.value == "ok" and done.summary.startswith("finished:")
    assert not {f"{n}_PREVIOUS" for n in NAMES} & set(render.list_env_vars(service))
    assert answers(tokens) == (401, 401)  # the grace period is over for tokens from before
    assert answers(user_tokens()) == (200, 200)
    from prefect.blocks.system import Secret
    with pytest.raises(ValueError):  # the rollback copy is gone with the previous values
        Secret.load(f"playground-ops-rotation-sandbox-{report.flow_run_id[:8]}")


def test_a_pending_rotation_past_its_grace_period_is_finished_by_the_next_one(platform):
    from flows.secret_rotation import secret_rotation
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    first = secret_rotation(secrets=["JWT_SECRET"])
    assert first.status.value == "ok"
    with pytest.raises(RunbookFailed, match=r"secrets on sandbox: expected no rotation still in its grace period "
                                            r".*\(got JWT_SECRET\)"):
        secret_rotation(secrets=["JWT_SECRET"])
    rotated = render.list_env_vars(service)["JWT_SECRET"]
    past_grace_period()  # and nobody used an old token since: only the runbook's own checks did
    stored = len(rotation_reports())
    second = secret_rotation(secrets=["JWT_SECRET"])
    assert second.status.value == "ok"
    assert second.summary.startswith("earlier rotation finished: JWT_SECRET_PREVIOUS removed; new tokens accepted; "
                                     "then rotated JWT_SECRET"), second.summary
    assert "earlier rotation: finish" in second.tables  # one report in two parts
    assert len(rotation_reports()) == stored + 1 and any(second.flow_run_id in k for k in rotation_reports()[-1:])
    live = render.list_env_vars(service)
    assert live["JWT_SECRET_PREVIOUS"] == rotated and live["JWT_SECRET"] != rotated
    assert secret_rotation(action="finish", force_finish=True).summary.startswith("finished:")


def rotation_reports() -> list[str]:
    """The secret-rotation reports in the audit store, oldest first."""
    root = Path(os.environ["OPS_HOME"]) / "audit" / "secret-rotation" / "sandbox"
    return [str(p) for p in sorted(root.rglob("*.json"), key=lambda p: p.stat().st_mtime)]


def test_a_rotation_whose_earlier_finish_is_postponed_keeps_the_original_secret_and_rotates_nothing(platform):
    """Old tokens still in use when the grace period has ended: the finish is postponed, so the new rotation must
    not build on the pending state (it would drop the value those tokens were signed with)."""
    from flows.secret_rotation import secret_rotation
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    original = render.list_env_vars(service)["JWT_SECRET"]
    tokens = user_tokens()
    assert secret_rotation(secrets=["JWT_SECRET"]).status.value == "ok"
    rotated = render.list_env_vars(service)["JWT_SECRET"]
    assert answers(tokens) == (200, 200)  # an old token in use, signed with the original value
    past_grace_period()
    stored = len(rotation_reports())
    with pytest.raises(RunbookFailed, match=r"expected no rotation still in its grace period .*postponed: old tokens "
                                            r"still in use; nothing rotated, the previous values kept"):
        secret_rotation(secrets=["JWT_SECRET"])
    live = render.list_env_vars(service)
    assert (live["JWT_SECRET_PREVIOUS"], live["JWT_SECRET"]) == (original, rotated)
    assert answers(tokens) == (200, 200)
    assert len(rotation_reports()) == stored + 1  # one report, stating the state left
    assert secret_rotation(action="finish", force_finish=True).summary.startswith("finished:")


def test_a_backend_that_refuses_old_tokens_is_rolled_back_with_the_old_values_live(platform, receiver):
    from flows.secret_rotation import secret_rotation
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    render.set_env_var(service, "SANDBOX_LEGACY_JWT", SecretStr("1"))  # verifies with the current secret only
    try:
        render.restart(service)
        before = render.list_env_vars(service)
        tokens = user_tokens()
        with pytest.raises(RunbookFailed, match=r"JWT_SECRET: a token signed with the previous value was answered "
                                                r"401 \(expected 200\).*rolled back: the previous values are live"):
            secret_rotation()
        live = render.list_env_vars(service)
        assert {n: live[n] for n in NAMES} == {n: before[n] for n in NAMES}
        assert not {f"{n}_PREVIOUS" for n in NAMES} & set(live)
        assert answers(tokens) == (200, 200)
        assert receiver.wait_for("[FAILED] runbook secret-rotation", timeout=120)
    finally:
        render.delete_env_var(service, "SANDBOX_LEGACY_JWT")
        render.restart(service)


def test_under_load_no_request_with_an_old_token_is_refused_or_fails(platform):
    """Users keep calling with the tokens they had before, on new connections, during the whole rotation."""
    from flows.secret_rotation import secret_rotation

    with UserLoad(base(), user_tokens(), users=4, linger_s=1) as users:
        report = secret_rotation()
    assert report.status.value == "ok"
    assert len(users.answers) > 100 and users.refused == []
    assert secret_rotation(action="finish", force_finish=True).summary.startswith("finished:")


def test_a_second_change_on_the_same_target_waits_then_is_refused(platform, monkeypatch):
    from prefect.flow_runs import resume_flow_run

    from flows.environment_variables import environment_variables
    from flows.secret_rotation import secret_rotation
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    monkeypatch.setenv("TARGET_ENVIRONMENT", "production")
    runner, outcome = in_background(secret_rotation)
    paused = paused_run("secret-rotation")
    assert paused is not None, "the production rotation did not wait for an operator"
    try:
        with pytest.raises(RunbookFailed, match="environment-variables on sandbox did not start: after 0 s, "
                                                "playground-ops-platform-change-sandbox was still held by another "
                                                r"change on sandbox \(a secret rotation, env var change, "
                                                r"configuration restore or scaling\)"):
            environment_variables(action="set", values={"LOG_LEVEL": "debug"}, wait_for_other_change_seconds=0)
    finally:
        resume_flow_run(paused.id, run_input={"approve": False, "reason": "drill"})
        runner.join(timeout=300)
    assert outcome["report"].summary == "refused: nothing changed"
    assert "LOG_LEVEL" not in render.list_env_vars(service) and "JWT_SECRET_PREVIOUS" not in render.list_env_vars(service)


@pytest.mark.parametrize("secrets, message", [
    (["NOPE"], r"secrets: expected secrets the target declares for rotation \(JWT_SECRET, JWT_REFRESH_SECRET\) "
               r"\(got 'NOPE'\)"),
    (["JWT_SECRET_PREVIOUS"], r"expected secrets the target declares for rotation .*\(got 'JWT_SECRET_PREVIOUS'\)"),
    (["../etc"], r"expected secrets the target declares for rotation .*\(got '../etc'\)"),
])
def test_bad_secret_names_are_refused_in_one_line_before_anything_is_written(platform, secrets, message):
    from flows.secret_rotation import secret_rotation
    from playground_ops.runbook import RunbookFailed

    render, service, _ = platform
    before = render.list_env_vars(service)
    with pytest.raises(RunbookFailed, match=message):
        secret_rotation(secrets=secrets)
    assert render.list_env_vars(service) == before


def test_an_incident_with_a_suspected_leak_rotates_and_revokes_once_approved(platform):
    from prefect.flow_runs import resume_flow_run

    from tests.flows.test_incident import run_in_thread

    render, service, _ = platform
    before = render.list_env_vars(service)["JWT_SECRET"]
    tokens = user_tokens()
    runner, outcome = run_in_thread(summary="a JWT secret was pasted in a public channel", suspected_secret_leak=True,
                                    green_checks=1, check_interval_seconds=5, recovery_timeout_minutes=2,
                                    approval_timeout_seconds=300)
    paused = paused_run("incident")
    assert paused is not None, "the incident did not ask an operator before rotating"
    assert answers(tokens) == (200, 200)  # nothing done while it waits
    resume_flow_run(paused.id, run_input={"rotate_secrets": True, "reason": "leak drill"})
    runner.join(timeout=600)
    actions = {a["action"]: a for a in outcome["report"].tables["actions"]}
    assert actions["rotate_secrets"]["outcome"].startswith("done: rotated JWT_SECRET, JWT_REFRESH_SECRET; finished:")
    live = render.list_env_vars(service)
    assert live["JWT_SECRET"] != before and "JWT_SECRET_PREVIOUS" not in live
    assert answers(tokens) == (401, 401)  # the leaked values are revoked
    whats = [row["what"] for row in outcome["report"].tables["timeline"]]
    assert whats.count("server restarted") >= 2  # the platform's own events: the rotation's and the finish's restarts


def test_a_platform_answering_429_mid_write_is_waited_out_and_every_key_written(platform, monkeypatch):
    """Another client of the same API key spends the window's remaining writes just before the runbook's second
    write, so that write meets 429 (the runbook's client had seen writes remaining) and must be waited out."""
    import json

    import uvicorn

    from bench.common import free_port
    from flows.secret_rotation import secret_rotation
    from sandbox.render_api import make_app

    render, service, sandbox = platform
    app, statuses, puts = make_app(sandbox, write_limit=3, sample_every=60, window_s=6), [], []
    other = [(b"authorization", f"Bearer {os.environ['RENDER_API_KEY']}".encode()),
             (b"content-type", b"application/json")]

    async def spend_the_window(scope):  # the other client writes until the platform says 429
        path = f"/services/{service}/env-vars/OTHER_CLIENT"
        while True:
            answered = []

            async def receive():
                return {"type": "http.request", "body": json.dumps({"value": "x"}).encode(), "more_body": False}

            async def sink(message):
                if message["type"] == "http.response.start":
                    answered.append(message["status"])
            await app(dict(scope, method="PUT", path=path, raw_path=path.encode(), headers=other, query_string=b""),
                      receive, sink)
            if answered == [429]:
                return

    async def platform_seen_by_the_runbook(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "PUT":
            puts.append(scope["path"])
            if len(puts) == 2:
                await spend_the_window(scope)

        async def seen(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)
        await app(scope, receive, seen)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(platform_seen_by_the_runbook, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    monkeypatch.setenv("RENDER_API_URL", f"http://127.0.0.1:{port}")
    try:
        before = render.list_env_vars(service)["JWT_SECRET"]
        report = secret_rotation(secrets=["JWT_SECRET"])
        assert 429 in statuses and report.status.value == "ok"
        live = render.list_env_vars(service)
        assert live["JWT_SECRET_PREVIOUS"] == before and live["JWT_SECRET"] != before
        assert secret_rotation(action="finish", force_finish=True).summary.startswith("finished:")
    finally:
        server.should_exit = True
        render.delete_env_var(service, "OTHER_CLIENT")


def test_a_forced_finish_cancels_the_finish_runs_scheduled_for_the_end_of_the_grace_period(platform, served):
    """A deployed rotation schedules its finish for the end of the grace period (and a postponed finish an hour on):
    once a forced finish has removed the previous values, those runs are cancelled, not left to run for nothing."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    from flows.secret_rotation import secret_rotation

    assert secret_rotation(secrets=["JWT_SECRET"]).status.value == "ok"
    later = datetime.now(timezone.utc) + timedelta(days=7)
    scheduled = [run_deployment("secret-rotation/secret-rotation", parameters={"target": "sandbox", "action": "finish"},
                                scheduled_time=later + timedelta(hours=h), timeout=0, tags=["scheduled-finish"])
                 for h in (0, 1)]
    other = run_deployment("secret-rotation/secret-rotation", parameters={"target": "elsewhere", "action": "finish"},
                           scheduled_time=later, timeout=0, tags=["scheduled-finish"])
    try:
        done = secret_rotation(action="finish", force_finish=True)
        assert done.summary.endswith("; 2 scheduled finish run(s) cancelled"), done.summary
        assert done.figures["scheduled_finishes_cancelled"] == 2
        with get_client(sync_client=True) as client:
            states = [client.read_flow_run(run.id).state for run in scheduled]
            assert [s.type.value for s in states] == ["CANCELLED", "CANCELLED"]
            assert "the rotation was finished early by run" in states[0].message
            assert client.read_flow_run(other.id).state.is_scheduled()  # another target's: untouched
    finally:
        from prefect.states import Cancelled

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(other.id, Cancelled(), force=True)
