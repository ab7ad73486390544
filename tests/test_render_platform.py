"""The Render client against the sandbox's Render-compatible platform over real HTTP: cursor and time paging, rate
limits, transient and permanent errors, and real restarts, deploys and scaling of the backend's processes."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from sandbox.faulty_proxy import FaultyProxy
from tasks.platform.render_platform import Render
from tasks.retry import PermanentError, TransientError
from tests.conftest import free_port


@pytest.fixture
def render(sandbox):
    return Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)


@pytest.fixture
def service():
    return os.environ["RENDER_SERVICE_ID"]


def test_env_vars_page_by_cursor_and_what_is_set_is_what_the_restarted_processes_get(render, service, sandbox):
    from sandbox import manager

    state = manager.platform_state(sandbox)
    saved = json.loads(json.dumps(state))
    try:
        state["env_vars"].update({f"PAGING_{i:03d}": str(i) for i in range(130)})
        manager.save_platform_state(sandbox, state)
        listed = render.list_env_vars(service)  # 135 variables: two pages of at most 100
        assert len([k for k in listed if k.startswith("PAGING_")]) == 130 and listed["PAGING_129"] == "129"
    finally:
        manager.save_platform_state(sandbox, saved)
    render.set_env_var(service, "FEATURE_FLAG", SecretStr("on-" + str(time.time_ns())))
    value = render.list_env_vars(service)["FEATURE_FLAG"]
    old_pid = manager.backend_pid(sandbox)
    render.restart(service)
    assert manager.backend_pid(sandbox) != old_pid
    environ = open(f"/proc/{manager.backend_pid(sandbox)}/environ", "rb").read().split(b"\0")
    assert f"FEATURE_FLAG={value}".encode() in environ
    render.delete_env_var(service, "FEATURE_FLAG")
    assert "FEATURE_FLAG" not in render.list_env_vars(service)


def test_autoscaling_is_set_and_removed(render, service):
    config = render.set_autoscaling(service, True, 1, 3, cpu_percent=70, memory_percent=None)
    assert config["criteria"]["cpu"] == {"enabled": True, "percentage": 70} and config["max"] == 3
    assert httpx.get(f"{os.environ['RENDER_API_URL']}/services/{service}", headers={
        "Authorization": f"Bearer {os.environ['RENDER_API_KEY']}"}).json()["serviceDetails"]["autoscaling"]["max"] == 3
    render.delete_autoscaling(service)
    assert httpx.get(f"{os.environ['RENDER_API_URL']}/services/{service}", headers={
        "Authorization": f"Bearer {os.environ['RENDER_API_KEY']}"}).json()["serviceDetails"]["autoscaling"] is None


def test_deploy_goes_live_and_scale_runs_that_many_processes(render, service, sandbox):
    deploy = render.create_deploy(service)
    assert deploy["status"] == "build_in_progress"
    assert render.wait_for_deploy(service, deploy["id"], timeout=60, poll=0.5)["status"] == "live"
    assert httpx.get(os.environ["HEALTH_URL"]).status_code == 200
    render.scale(service, 2)
    try:
        deadline = time.monotonic() + 30  # the sampler notices the new processes
        while len(render.instances(service)) != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(render.instances(service)) == 2
    finally:
        render.scale(service, 1)
    assert len(render.instances(service)) == 1


def test_logs_are_paged_by_time_newest_first_and_returned_oldest_first(render, sandbox):
    from sandbox import manager

    now = datetime.now(timezone.utc)
    with open(manager.state_dir(sandbox) / "backend.log", "a") as log:
        for i in range(130):
            stamp = (now - timedelta(seconds=130 - i)).isoformat(timespec="milliseconds")
            log.write(json.dumps({"timestamp": stamp, "level": "error", "message": f"paging test {i}", "pid": 1}) + "\n")
    lines = render.logs(os.environ["RENDER_OWNER_ID"], os.environ["RENDER_SERVICE_ID"], now - timedelta(minutes=5),
                        now + timedelta(seconds=1), limit=120, level="error", text="paging test")
    assert [line["message"] for line in lines] == [f"paging test {i}" for i in range(10, 130)]


def test_401_and_404_fail_at_once_naming_the_service(render, service):
    wrong = Render(os.environ["RENDER_API_URL"], SecretStr("rnd_not-the-key"), backoff=0.1)
    with pytest.raises(PermanentError, match=f"answered 401 unauthorized for service {service} .*RENDER_API_KEY"):
        wrong.restart(service)
    with pytest.raises(PermanentError, match="answered 404 service not found for service srv-missing .*RENDER_SERVICE_ID"):
        render.restart("srv-missing")
    assert wrong.waited == 0 and render.waited == 0  # never retried


def test_5xx_is_retried_with_backoff_then_a_clear_transient_failure(sandbox, service):
    proxy = FaultyProxy(os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0])
    try:
        client = Render(f"{proxy.url}/render/v1", SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.05)
        proxy.inject("get", "503", count=2)
        assert "DATABASE_URL" in client.list_env_vars(service)  # two 503s, then the answer
        assert client.waited > 0
        proxy.inject("get", "503", count=-1)
        with pytest.raises(TransientError, match="answered 503 .* after 4 attempts"):
            client.list_env_vars(service)
    finally:
        proxy.close()


def test_429_is_waited_out_as_retry_after_says(sandbox, service):
    from sandbox.render_api import make_app

    port = free_port()
    window = 4
    server = uvicorn.Server(uvicorn.Config(make_app(sandbox, write_limit=2, sample_every=60, window_s=window),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        client = Render(f"http://127.0.0.1:{port}", SecretStr(os.environ["RENDER_API_KEY"]), max_wait=2 * window)
        raw = httpx.Client(headers={"Authorization": f"Bearer {os.environ['RENDER_API_KEY']}"})
        time.sleep(window - time.time() % window)  # a fresh window: the client's write below lands in the same one
        for i in range(3):  # the third write in the window: 429 with Retry-After and the Ratelimit headers
            answer = raw.put(f"http://127.0.0.1:{port}/services/{service}/env-vars/LIMIT_TEST", json={"value": str(i)})
            if answer.status_code == 429:
                break
        assert answer.status_code == 429 and answer.json()["id"] == "rate_limit_exceeded"
        assert 0 < int(answer.headers["Retry-After"]) <= window and answer.headers["Ratelimit-Remaining"] == "0"
        client.set_env_var(service, "LIMIT_TEST", SecretStr("after-the-wait"))  # waits, then succeeds
        assert client.waited > 0
        assert client.list_env_vars(service)["LIMIT_TEST"] == "after-the-wait"
        client.delete_env_var(service, "LIMIT_TEST")
    finally:
        server.should_exit = True


def _restart_events(render: Render, service: str, since: datetime) -> int:
    return sum(e["type"] == "server_restarted" for e in render.events(service, since, datetime.now(timezone.utc)
                                                                      + timedelta(minutes=1)))


def _slow_client(proxy: FaultyProxy, confirm_s: float) -> Render:
    """A client that waits 3 s for an answer (the platform's restart takes longer), through the faulty proxy."""
    headers = {"Authorization": f"Bearer {os.environ['RENDER_API_KEY']}", "Accept": "application/json"}
    return Render(f"{proxy.url}/render/v1", SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.05,
                  client=httpx.Client(timeout=3, headers=headers), confirm_s=confirm_s, confirm_poll_s=0.5)


def test_a_restart_whose_answer_is_lost_is_confirmed_on_the_platform_and_never_sent_again(render, service, sandbox):
    """Render has no idempotency key for a restart: after a timeout the client reads the platform, not resends."""
    proxy = FaultyProxy(os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0])
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    try:
        client = _slow_client(proxy, confirm_s=60)
        proxy.late_seconds = 40  # the platform restarts; its answer comes long after the client gave up
        late = proxy.inject("post", "late", count=1)
        client.restart(service)
        assert late.fired == 1 and len(client.confirmed) == 1
        assert "ReadTimeout after it was sent" in client.confirmed[0] and "not sent again" in client.confirmed[0]
        assert _restart_events(render, service, since) == 1  # exactly one restart, for one asked
    finally:
        proxy.close()


def test_a_restart_refused_before_it_reached_the_platform_is_sent_once_more(render, service, sandbox):
    """The connection dropped before the platform saw it: nothing shows a restart, so it is sent a second time,
    and only then."""
    proxy = FaultyProxy(os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0])
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    try:
        client = _slow_client(proxy, confirm_s=3)
        client.client.timeout = httpx.Timeout(60)
        dropped = proxy.inject("post", "reset", count=1)
        client.restart(service)
        assert dropped.fired == 1 and client.confirmed == []
        assert _restart_events(render, service, since) == 1
        proxy.inject("post", "reset", count=2)  # both tries lost: an error saying so, never a third try
        with pytest.raises(TransientError, match="sent twice, 3 s apart, and the platform shows neither taken"):
            client.restart(service)
        assert _restart_events(render, service, since) == 1
    finally:
        proxy.close()


def test_scale_and_deploy_whose_answers_are_lost_are_read_back_not_repeated(render, service, sandbox):
    proxy = FaultyProxy(os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0])
    try:
        client = _slow_client(proxy, confirm_s=30)
        proxy.late_seconds = 10
        before = {d["id"] for d in render.deploys(service, 20)}
        proxy.inject("post", "late", count=1)
        deploy = client.create_deploy(service)
        assert deploy["id"] not in before and len(client.confirmed) == 1
        assert render.wait_for_deploy(service, deploy["id"], timeout=60, poll=0.5)["status"] == "live"
        assert len({d["id"] for d in render.deploys(service, 20)} - before) == 1  # one deploy, for one asked
        proxy.inject("post", "late", count=1)
        client.scale(service, 2)
        assert len(client.confirmed) == 2
        assert render.get_service(service)["serviceDetails"]["numInstances"] == 2
    finally:
        proxy.close()
        render.scale(service, 1)
