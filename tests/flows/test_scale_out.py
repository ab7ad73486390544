"""Scale-out for real: a Prefect server on PostgreSQL, every deployment of prefect.yaml in the playground-ops pool
(`setup --workers 2`, `prefect deploy --all`), two process workers in working directories of their own, sharing
stores on S3 (moto's server, through a proxy that can stall an upload), and runs of the sandbox's target. The tests run
in order: the last ones lose a host and stop the surviving worker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import boto3
import pytest

from tests.conftest import SESSION_DIR, cli, free_port

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
STATE: dict = {}


@pytest.fixture(scope="module")
def fleet(ops, s3_endpoint):
    from sandbox.faulty_proxy import FaultyProxy
    from sandbox.fleet import Fleet

    proxy = FaultyProxy(s3_endpoint)
    bucket = f"fleet-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    env = {**os.environ, "OPS_HOME": str(SESSION_DIR / "fleet" / "ops"), "OPS_S3_ENDPOINT_URL": proxy.url,
           **{f"OPS_{kind.upper()}_URL": f"s3://{bucket}/{kind}" for kind in ("backup", "metrics", "audit")}}
    fleet = Fleet(SESSION_DIR / "fleet", ops.sandbox_admin_url, free_port(), env)
    fleet.proxy, fleet.s3, fleet.bucket = proxy, s3, bucket
    try:
        fleet.start_server()
        out = fleet.setup_and_deploy(workers=2)
        for automation in ("a run whose heartbeats stopped is Crashed", "reconcile a run that crashed"):
            assert f"automation 'playground-ops: {automation}'" in out, out
        from deployments.catalog import load_catalog

        # deployed with every schedule of prefect.yaml; paused, so that the tests start every run themselves
        assert fleet.pause_schedules() == sum(len(spec.schedules) for spec in load_catalog().values())
        fleet.start_worker("worker-a")
        fleet.start_worker("worker-b")
        yield fleet
    finally:
        fleet.stop()
        proxy.close()


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


def uploads_of(fleet, run_id) -> list[str]:
    suffix = str(run_id).replace("-", "")[:8]
    listing = fleet.s3.list_multipart_uploads(Bucket=fleet.bucket, Prefix="backup/")
    return [u["Key"] for u in listing.get("Uploads", []) if suffix in u["Key"]]


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
    stored = fleet.s3.list_objects_v2(Bucket=fleet.bucket, Prefix="backup/sandbox/")["Contents"]
    assert sum(o["Key"].endswith("/manifest.json") for o in stored) == 3  # in the shared store, all of them
    print(f"runs per worker: {by_worker}; backups: "
          + ", ".join(f"{fleet.worker_of(r.id)} {r.start_time:%H:%M:%S}-{r.end_time:%H:%M:%S}" for r in done))


def test_alert_state_and_notifications_stay_single_across_workers(fleet, receiver):
    from playground_ops.settings import load_settings
    from sandbox import manager

    settings = load_settings()
    subject = "[FIRING:critical] HealthCheckFailing on sandbox"
    before = len(receiver.matching(subject))
    ran_on, names = [], []
    started = datetime.now(timezone.utc)
    manager.stop_backend(settings)
    try:
        for expected in ("Warning", "Critical", "Critical"):
            (run,) = wait_until(fleet, [trigger(fleet, "health-check")])
            ran_on.append(fleet.worker_of(run.id))
            names.append(run.name)
            assert run.state.name == expected, (run.state.name, run.state.message)
    finally:
        manager.start_backend(settings)
    assert len(receiver.wait_for(subject, count=before + 1)) == before + 1
    (run,) = wait_until(fleet, [trigger(fleet, "health-check")])
    names.append(run.name)
    assert run.state.name == "Completed"
    assert len(receiver.wait_for("[RESOLVED] HealthCheckFailing on sandbox")) >= 1
    assert len(receiver.matching(subject)) == before + 1  # one firing, whichever worker ran each check
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with on(fleet), get_client(sync_client=True) as client:  # no check started another by its own alert
        runs = [r for r in client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=["health-check"]))) if r.start_time and r.start_time >= started]
    assert sorted(r.name for r in runs) == sorted(names), [(r.name, r.state.name) for r in runs]
    print(f"checks ran on: {ran_on + [fleet.worker_of(run.id)]}")


def test_a_host_lost_mid_backup_is_crashed_notified_reconciled_and_the_next_run_goes_to_the_other_worker(fleet, receiver):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    fleet.proxy.inject("upload-part", "drip", count=-1)  # the archive's first part stalls: the backup is mid-upload
    run_id = trigger(fleet, "backup-database")
    (run,) = wait_until(fleet, [run_id], done=lambda r: r.state.type.value == "RUNNING" and bool(uploads_of(fleet, r.id)))
    assert uploads_of(fleet, run_id), "the backup never started its upload"
    host = next(w for w in fleet.workers if w.name == fleet.worker_of(run.id))
    other = next(w for w in fleet.workers if w is not host)
    host.kill()  # the host is lost: its worker and the run's process with it
    os.kill(int(str(run.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)
    lost_at = time.monotonic()
    fleet.proxy.clear()
    (crashed,) = wait_until(fleet, [run_id], timeout=300)
    detected_s = time.monotonic() - lost_at
    assert crashed.state.type.value == "CRASHED", (crashed.state.name, crashed.state.message)
    assert "no heartbeat" in (crashed.state.message or "")
    with on(fleet), get_client(sync_client=True) as client:  # its slots are free by the time it is Crashed
        held = {name: client.read_global_concurrency_limit_by_name(name).active_slots
                for name in ("playground-ops-backup", "playground-ops-database-heavy")}
    assert held == {"playground-ops-backup": 0, "playground-ops-database-heavy": 0}, held
    notes = receiver.wait_for(str(run_id), timeout=60)
    assert len(notes) == 1 and notes[0]["subject"] == "[CRASHED] runbook backup-database on sandbox", notes

    deadline = time.monotonic() + 300  # the reconcile, started by the automation
    while True:
        with on(fleet), get_client(sync_client=True) as client:
            reconciles = [r for r in client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["reconcile-crashed-run"])))
                if r.parameters.get("flow_run_id") == str(run_id)]
        if reconciles and all(r.state.is_final() for r in reconciles) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(reconciles) == 1 and reconciles[0].state.type.value == "COMPLETED", reconciles
    assert uploads_of(fleet, run_id) == []  # the half-done upload is gone, at once
    day = f"{crashed.start_time:%Y-%m-%d}"
    failed = fleet.s3.get_object(Bucket=fleet.bucket, Key=f"audit/backup-database/sandbox/{day}/{run_id}.json")
    assert b'"status":"failed"' in failed["Body"].read().replace(b" ", b"")

    (after,) = wait_until(fleet, [trigger(fleet, "backup-database")])
    assert fleet.worker_of(after.id) == other.name
    assert after.state.type.value == "COMPLETED", (after.state.name, after.state.message)
    again = trigger(fleet, "reconcile-crashed-run", flow_run_id=str(run_id))  # idempotent: nothing more to do
    (again_run,) = wait_until(fleet, [again])
    assert again_run.state.type.value == "COMPLETED"
    STATE["survivor"] = other
    print(f"lost run Crashed {detected_s:.0f} s after its host went; reconciled: its upload aborted, its failed "
          f"report stored; the next backup ran on {other.name}")


def test_a_stopped_worker_lets_its_run_finish_and_exits(fleet):
    worker = STATE["survivor"]
    run_id = trigger(fleet, "health-check")
    wait_until(fleet, [run_id], done=lambda r: r.state.type.value == "RUNNING")
    waited = worker.stop(timeout=120)  # SIGTERM, as systemd and Kubernetes send
    (run,) = wait_until(fleet, [run_id], timeout=60)
    assert run.state.type.value == "COMPLETED", (run.state.name, run.state.message)
    assert worker.process.returncode == 0 and "drained and stopped" in worker.log.read_text()
    print(f"the worker exited {waited:.1f} s after SIGTERM; its run ended {run.state.name}")


def test_a_worker_with_a_store_on_its_own_disk_is_refused_in_a_shared_pool(fleet):
    env = {k: v for k, v in fleet.env.items() if k not in ("OPS_BACKUP_URL", "OPS_METRICS_URL", "OPS_AUDIT_URL")}
    fleet.start_worker("worker-local", env=env)
    (run,) = wait_until(fleet, [trigger(fleet, "health-check")])
    assert fleet.worker_of(run.id) == "worker-local"
    assert run.state.type.value == "FAILED"
    home = fleet.env["OPS_HOME"]
    assert ("OPS_BACKUP_URL, OPS_METRICS_URL, OPS_AUDIT_URL (2 workers share the work pool: OPS_WORKERS): expected a "
            f"store every worker reaches, s3://bucket/prefix (got {home}/backups, {home}/metrics, {home}/audit)"
            ) in run.state.message, run.state.message
    refused = cli("setup", "--workers", "2", env={"PREFECT_API_URL": fleet.api_url, "OPS_BACKUP_URL": ""})
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "OPS_BACKUP_URL" in refused.stderr, refused.stderr
