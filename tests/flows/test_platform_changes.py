"""Platform changes as recoverable transactions: a run killed between its first write and its end (its process gone,
as when its host is lost) leaves an intent record; the next change on the target completes or rolls it back first,
and says so. Real runbook processes, the platform stand-in behind the faulty proxy (a restart whose answer never
comes, so the run is surely between its write and its end when it is killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import SecretStr

from sandbox.faulty_proxy import FaultyProxy
from tests.flows.test_secret_rotation import answers, user_tokens


@pytest.fixture
def stalled_restarts(ops):
    """A proxy in front of the platform that holds every restart's answer for minutes (the restart itself happens)."""
    proxy = FaultyProxy(os.environ["RENDER_API_URL"].rsplit("/render/v1", 1)[0])
    proxy.late_seconds = 600
    proxy.inject("post", "late", count=-1)
    yield f"{proxy.url}/render/v1"
    proxy.close()


@pytest.fixture
def render(ops):
    from tasks.platform.render_platform import Render

    return Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)


def killed_mid_change(code: str, api_url: str, written, timeout: float = 120) -> str:
    """Run the runbook call `code` in a process of its own against api_url; SIGKILL it once `written()` is true
    (its first writes are on the platform); the id of the run it left behind."""
    from tasks.platform.change_record import read_change

    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "RENDER_API_URL": api_url},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not written():
            assert process.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "the run never wrote"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    record = read_change("sandbox")
    assert record is not None, "no intent record was left by the killed run"
    return record["run"]


def test_an_env_change_killed_after_its_write_is_rolled_back_by_the_next_change_which_then_makes_its_own(
        stalled_restarts, render):
    from flows.environment_variables import environment_variables
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    before = render.list_env_vars(service)
    code = ("from flows.environment_variables import environment_variables as f; "
            "f(action='set', values={'LOG_LEVEL': 'trace'})")
    lost = killed_mid_change(code, stalled_restarts, lambda: render.list_env_vars(service).get("LOG_LEVEL") == "trace")

    # the lost run's slot lease runs out (60 s), then this run takes the slot and finds its record
    report = environment_variables(action="set", values={"APP_VERSION": "7.7.7"}, wait_for_other_change_seconds=180)
    assert report.status.value == "warning", report.summary
    recovered = report.figures["recovered"]
    assert f"environment-variables run {lost} changing LOG_LEVEL" in recovered
    assert "rolled back (the previous values put back); restarted, healthy" in recovered
    live = render.list_env_vars(service)
    assert live.get("LOG_LEVEL") == before.get("LOG_LEVEL") and live["APP_VERSION"] == "7.7.7"
    assert read_change("sandbox") is None
    assert httpx.get(os.environ["HEALTH_URL"]).status_code == 200
    if "APP_VERSION" not in before:
        environment_variables(action="unset", keys=["APP_VERSION"])


def test_a_rotation_killed_after_its_new_value_went_live_is_completed_and_no_token_is_refused(stalled_restarts,
                                                                                              render):
    from flows.secret_rotation import secret_rotation
    from tasks.platform.change_record import read_change

    service = os.environ["RENDER_SERVICE_ID"]
    original = render.list_env_vars(service)["JWT_SECRET"]
    old_tokens = user_tokens()
    code = "from flows.secret_rotation import secret_rotation as f; f(secrets=['JWT_SECRET'])"
    lost = killed_mid_change(code, stalled_restarts,
                             lambda: render.list_env_vars(service).get("JWT_SECRET") != original)
    new_value = render.list_env_vars(service)["JWT_SECRET"]

    report = secret_rotation(secrets=["JWT_SECRET"], wait_for_other_change_seconds=180)
    assert report.summary.startswith("an unfinished change was found first and recovered: secret-rotation run "
                                     f"{lost} changing JWT_SECRET, JWT_SECRET_PREVIOUS"), report.summary
    assert "completed (the new values may sign tokens already); restarted, healthy" in report.summary
    live = render.list_env_vars(service)
    assert (live["JWT_SECRET"], live["JWT_SECRET_PREVIOUS"]) == (new_value, original)  # never a third state
    assert answers(old_tokens) == (200, 200) and answers(user_tokens()) == (200, 200)
    assert read_change("sandbox") is None
    # the completed rotation is in its grace period: a new one is refused until its finish
    done = secret_rotation(action="finish", force_finish=True)
    assert done.summary.startswith("finished: JWT_SECRET_PREVIOUS removed"), done.summary


def test_a_scaling_left_midway_is_put_back_by_the_next_change_on_the_target(render):
    """A scale-service run gone after its write (as above, its intent record left: here written as that run wrote
    it, so the test need not wait out a killed run's slot lease, which the env change above already does)."""
    from flows.scale_service import scale_service
    from tasks.platform.change_record import begin_change, mark_step, read_change

    service = os.environ["RENDER_SERVICE_ID"]
    instances = lambda: render.get_service(service)["serviceDetails"]["numInstances"]  # noqa: E731
    before = {"instances": instances(), "autoscaling": None}
    assert before["instances"] == 1
    begin_change.fn("sandbox", "gone-run", "scale-service", "scaling", service, ["scaling"], "the change record",
                    previous=before)
    render.scale(service, 2)
    mark_step.fn("sandbox", "applied")

    report = scale_service(instances=1, wait_seconds=60)
    assert report.status.value == "warning", report.summary
    recovered = report.figures["recovered"]
    assert "scale-service run gone-run changing scaling" in recovered, recovered
    assert "rolled back (1 instances, no autoscaling again); 1 instances running, healthy" in recovered, recovered
    assert instances() == 1 and len(render.instances(service)) == 1 and read_change("sandbox") is None


def test_a_run_declared_crashed_while_it_waited_keeps_that_end_and_its_one_notification(ops, receiver, render):
    """As when the lost-run automation declares a frozen host's run Crashed and the host wakes up: the run changes
    nothing, its own end is not written over the final state, and no second notification goes out."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, \
        FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import Abort
    from prefect.states import Crashed

    from flows.environment_variables import environment_variables
    from tasks.slots import ensure_limit, hold_slots, target_slot
    from tests.background import in_background

    def running_runs() -> list:
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["environment-variables"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING]))))

    earlier = {r.id for r in running_runs()}  # a run another test's killed process left Running is not this one

    def running_run():
        return next((r for r in running_runs() if r.id not in earlier), None)

    before = render.list_env_vars(os.environ["RENDER_SERVICE_ID"]).get("LOG_LEVEL")
    ensure_limit(target_slot("platform-change", "sandbox"))
    with hold_slots([target_slot("platform-change", "sandbox")], 30, "the test"):  # the run waits on this
        runner, outcome = in_background(environment_variables, action="set", values={"LOG_LEVEL": "warn"},
                                        restart=False, wait_for_other_change_seconds=120)
        deadline = time.monotonic() + 60
        while (run := running_run()) is None:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        time.sleep(1)  # well inside its wait for the slot
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Crashed(message="Flow run lost: no heartbeat (the test's drill)"),
                                      force=True)
    runner.join(timeout=300)
    assert isinstance(outcome.get("error"), Abort), outcome
    assert render.list_env_vars(os.environ["RENDER_SERVICE_ID"]).get("LOG_LEVEL") == before  # it changed nothing
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state.type == StateType.CRASHED and "the test's drill" in state.message
    assert len(receiver.wait_for(str(run.id), timeout=60)) == 1
    time.sleep(5)  # what must not come: a second notification for the run, from its resumed process
    assert len(receiver.matching(str(run.id))) == 1, receiver.matching(str(run.id))
