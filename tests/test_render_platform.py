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
        time.sleep(3)  # the sampler notices the new processes
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
