"""Scale-out for real: a Prefect server on PostgreSQL, every deployment of prefect.yaml in the playground-ops pool
(`prefect deploy --all`), two process workers in their own working directories, and runs of the sandbox's target."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest

from tests.conftest import SESSION_DIR, free_port

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


@pytest.fixture(scope="module")
def fleet(ops):
    from sandbox.fleet import Fleet

    env = {**os.environ, "OPS_HOME": str(SESSION_DIR / "fleet" / "ops")}  # its own stores, its own audit chains
    fleet = Fleet(SESSION_DIR / "fleet", ops.sandbox_admin_url, free_port(), env)
    try:
        fleet.start_server()
        out = fleet.setup_and_deploy()
        assert "automation 'playground-ops: a run whose heartbeats stopped is Crashed'" in out, out
        fleet.start_worker("worker-a")
        fleet.start_worker("worker-b")
        yield fleet
    finally:
        fleet.stop()


@contextmanager
def on(fleet):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: fleet.api_url}):
        yield


def trigger(fleet, deployment: str, **parameters):
    from prefect.deployments import run_deployment

    with on(fleet):
        return run_deployment(f"{deployment}/{deployment}", parameters=parameters, timeout=0).id


def read(fleet, run_id):
    from prefect import get_client

    with on(fleet), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_until(fleet, run_ids, done=lambda run: run.state.type.value in FINAL, timeout: float = 420):
    deadline = time.monotonic() + timeout
    while True:
        runs = [read(fleet, run_id) for run_id in run_ids]
        if all(done(run) for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_two_workers_share_the_runs_and_backups_never_overlap(fleet):
    backups = [trigger(fleet, "backup-database") for _ in range(3)]
    checks = [trigger(fleet, "health-check") for _ in range(3)]
    runs = wait_until(fleet, backups + checks)
    states = {str(run.id): run.state.type.value for run in runs}
    assert set(states.values()) == {"COMPLETED"}, states
    by_worker = {w.name: len(w.ran() & set(states)) for w in fleet.workers}
    assert all(n >= 1 for n in by_worker.values()), by_worker  # both workers took runs
    done = sorted((read(fleet, run_id) for run_id in backups), key=lambda r: r.start_time)
    for earlier, later in zip(done, done[1:]):  # one backup at a time, whichever worker ran it
        assert earlier.end_time <= later.start_time, (earlier.name, earlier.end_time, later.name, later.start_time)
    print(f"runs per worker: {by_worker}; backups: "
          + ", ".join(f"{fleet.worker_of(r.id)} {r.start_time:%H:%M:%S}-{r.end_time:%H:%M:%S}" for r in done))


def test_alert_state_and_notifications_stay_single_across_workers(fleet, receiver):
    from sandbox import manager

    settings = fleet_settings()
    subject = "[FIRING:critical] HealthCheckFailing on sandbox"
    before = len(receiver.matching(subject))
    ran_on = []
    manager.stop_backend(settings)
    try:
        for expected in ("Warning", "Critical", "Critical"):
            (run,) = wait_until(fleet, [trigger(fleet, "health-check")])
            ran_on.append(fleet.worker_of(run.id))
            assert run.state.name == expected, (run.state.name, run.state.message)
    finally:
        manager.start_backend(settings)
    assert len(receiver.wait_for(subject, count=before + 1)) == before + 1
    (run,) = wait_until(fleet, [trigger(fleet, "health-check")])
    assert run.state.name == "Completed"
    assert len(receiver.wait_for("[RESOLVED] HealthCheckFailing on sandbox")) >= 1
    assert len(receiver.matching(subject)) == before + 1  # one firing, whichever worker ran each check
    print(f"checks ran on: {ran_on + [fleet.worker_of(run.id)]}")


def fleet_settings():
    from playground_ops.settings import load_settings

    return load_settings()


def test_a_lost_host_leaves_its_run_crashed_and_notified_and_the_next_run_goes_to_the_other_worker(fleet, receiver):
    (run_id,) = [trigger(fleet, "backup-database")]
    (run,) = wait_until(fleet, [run_id], done=lambda r: r.state.type.value == "RUNNING" and r.infrastructure_pid)
    host = next(w for w in fleet.workers if w.name == fleet.worker_of(run.id))
    other = next(w for w in fleet.workers if w is not host)
    time.sleep(2)  # mid-backup
    host.kill()  # the host is lost: its worker and the run's process with it
    os.kill(int(str(run.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)
    lost_at = time.monotonic()
    (crashed,) = wait_until(fleet, [run_id], timeout=300)
    detected_s = time.monotonic() - lost_at
    assert crashed.state.type.value == "CRASHED", (crashed.state.name, crashed.state.message)
    assert "no heartbeat" in (crashed.state.message or "")
    from prefect import get_client

    with on(fleet), get_client(sync_client=True) as client:  # the lost run's slots are free by the time it is Crashed
        held = {name: client.read_global_concurrency_limit_by_name(name).active_slots
                for name in ("playground-ops-backup", "playground-ops-database-heavy")}
    assert held == {"playground-ops-backup": 0, "playground-ops-database-heavy": 0}, held
    notes = receiver.wait_for(f"runbook backup-database", timeout=60)
    assert len([n for n in notes if crashed.name in n["body"] or str(run_id) in n["body"]]) == 1
    (after,) = wait_until(fleet, [trigger(fleet, "backup-database")])
    assert fleet.worker_of(after.id) == other.name
    assert after.state.type.value == "COMPLETED", (after.state.name, after.state.message)
    print(f"lost run Crashed {detected_s:.0f} s after its host went; the next backup ran on {other.name}")
