"""One Prefect server, one sandbox and one webhook receiver per test session (per xdist worker), all real, all
on loopback.

The environment is set here, before anything imports prefect, so every import and every subprocess sees it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest


# pytest-xdist runs the suite in several workers side by side, each a whole session of its own (its own Prefect
# server, sandbox, clusters and receiver). What they would share is kept apart: each worker has its own Redis
# database and its own range of ports, below the kernel's ephemeral range (32768 and up), so that no port one worker
# chose can be handed to another, or to an outgoing connection, before its server binds it.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_DBS = (14, 11, 10, 9, 8, 7)  # 13 is the demo test's, 12 the benchmarks', 3 the bystander of test_sandbox
# a suite beside a running one: OPS_TEST_REDIS_DB=N, its workers on N, N-1, ...
REDIS_DB = int(os.environ["OPS_TEST_REDIS_DB"]) - WORKER if os.environ.get("OPS_TEST_REDIS_DB") else REDIS_DBS[WORKER]
assert REDIS_DB not in (3, 12, 13), (f"Redis database {REDIS_DB} is another test's own (3: test_sandbox's bystander, "
                                     "12: the benchmarks', 13: the demo test's): choose another OPS_TEST_REDIS_DB")
_PORTS = iter(range(20000 + 600 * REDIS_DB, 20000 + 600 * (REDIS_DB + 1)))  # a suite beside this one: another db


def free_port() -> int:
    """A port of this worker's range that nothing holds now; never the same one twice in a session."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port left in the range of the suite on Redis database {REDIS_DB}")


SESSION_DIR = Path(tempfile.mkdtemp(prefix="playground-ops-tests-"))
PREFECT_PORT = free_port()
RECEIVER_PORT = free_port()
WEBHOOK_TOKEN = "hook-token-Zq81xT"  # a secret: it must never show in a log, artifact or report
ENV = {
    "PREFECT_HOME": str(SESSION_DIR / "prefect"),
    "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
    "PREFECT_UI_URL": f"http://127.0.0.1:{PREFECT_PORT}",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
    "OPS_HOME": str(SESSION_DIR / "ops"),
    "OPS_SANDBOX_DATABASE": "playground_sandbox_test",
    "OPS_SANDBOX_REDIS_DB": str(REDIS_DB),
    "OPS_SANDBOX_PORT": str(free_port()),
    "OPS_SANDBOX_STANDINS_PORT": str(free_port()),
    "OPS_SANDBOX_PG_PORT": str(free_port()),
    "OPS_DRILL_PG_PORT": str(free_port()),
    "OPS_WEBHOOK_URL": f"http://127.0.0.1:{RECEIVER_PORT}/hooks/{WEBHOOK_TOKEN}",
    # the shortest approval and recovery waits a run may be asked for (production: 30 s and 1 min), so that a test of
    # an approval nobody gives, or of a recovery that never comes, waits seconds
    "OPS_APPROVAL_MIN_SECONDS": "2",
    "OPS_RECOVERY_MIN_SECONDS": "5",
}
for _name in ("OPS_SANDBOX_ADMIN_URL", "OPS_VERIFY_DATABASE_URL", "OPS_PG_BINDIR", "OPS_TARGETS_FILE", "OPS_AUDIT_URL", "DATABASE_URL", "REDIS_URL", "HEALTH_URL", "TARGET_NAME",
              "OPS_SLACK_WEBHOOK_URL", "PREFECT_PROFILE", "OPS_REPO_URL", "OPS_REPO_PROJECTS", "GITHUB_TOKEN",
              "GITHUB_REPOSITORY", "GITHUB_API_URL", "OPS_NPM_AUDIT_REGISTRY", "OPS_OSV_URL", "RENDER_SERVICES",
              "OPS_BACKUP_ENCRYPTION_SECRET", "OPS_CONFIG_BACKUP_ENCRYPTION_SECRET"):
    os.environ.pop(_name, None)
os.environ.update(ENV)


# The files that take longest, first: `--dist loadfile` hands files to the workers in the order collected, so a long
# file started last would leave the other worker idle at the end (measured: the demo's two rounds, the fleet's lost host,
# the incidents' waits, the backups' restores).
LONGEST_FIRST = ("test_demo.py", "test_scale_out.py", "test_platform_changes.py", "test_platform_freeze.py", "test_incident.py", "test_backup.py",
                 "test_secret_rotation.py", "test_dependency_runbooks.py", "test_environment_variables.py", "test_failure_notification.py",
                 "test_configuration_backup.py", "test_health_check.py", "test_alerting.py", "test_restore_majors.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


@pytest.fixture(scope="session")
def prefect_server():
    """A real `prefect server start` for the whole session, its database on PostgreSQL (a private cluster of its own,
    which no sandbox test stops), as Prefect advises for production and as the demo and the benchmarks run it."""
    from playground_ops.local_server import fresh_prefect_database, start_server
    from tasks.backup.private_cluster import Cluster

    cluster = Cluster(SESSION_DIR / "prefect-postgres", free_port(), port_setting="the tests' Prefect database port")
    database = fresh_prefect_database(cluster.ensure(), "prefect")
    # the UI test looks at the UI
    api_url, process = start_server(SESSION_DIR / "prefect", port=PREFECT_PORT, ui=True, database_url=database)
    yield api_url
    if process is not None:
        process.terminate()
        process.wait(timeout=30)
    cluster.remove()


@pytest.fixture(scope="session")
def sandbox(prefect_server):
    """The sandbox up, with a small seed; its target is the default target of this session."""
    from playground_ops.settings import load_settings
    from sandbox import manager

    settings = load_settings()
    manager.down(settings, purge=True)
    manager.up(settings, users=50, requests=2000, days=3)
    os.environ.update(manager.target_env(settings))
    yield load_settings()
    manager.down(settings, purge=True)
    for drill in settings.drill_clusters():  # the restore drills' private clusters, if a test started them
        drill.remove()


class Receiver:
    """What the local webhook receiver got: one dict per notification."""

    def __init__(self, path: Path):
        self.path = path

    def all(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line)["payload"] for line in self.path.read_text().splitlines() if line.strip()]

    def matching(self, text: str) -> list[dict]:
        return [n for n in self.all() if text in json.dumps(n)]

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(text)
            if len(found) >= count:
                return found
            time.sleep(0.5)
        return self.matching(text)


@pytest.fixture(scope="session")
def receiver():
    from sandbox.receiver import make_server

    server = make_server(RECEIVER_PORT, SESSION_DIR / "notifications.jsonl")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(SESSION_DIR / "notifications.jsonl")
    server.shutdown()


@pytest.fixture(scope="session")
def ops(sandbox, receiver):
    """`playground-ops setup` done against the session's server: notification block and failure automation exist."""
    from deployments.setup import setup
    from playground_ops.settings import load_settings

    setup(load_settings())
    from sandbox import manager

    manager.ensure_config_backup_key(load_settings())
    return load_settings()


@pytest.fixture(scope="session")
def served(ops):
    """`playground-ops serve` running in a subprocess, every deployment registered; schedules inactive so that
    no scheduled run collides with the runs a test starts."""
    from deployments.catalog import load_catalog
    from playground_ops.cli import _wait_for_deployments

    log = open(SESSION_DIR / "serve.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "playground_ops.cli", "serve", "--no-schedules"], env=os.environ.copy(),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for_deployments([s.full_name for s in load_catalog().values()])
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def backend_down(settings, quiet_seconds: float = 3.0, timeout: float = 90.0) -> None:
    """The sandbox's backend stopped and staying stopped: a restart another test asked the platform stand-in for
    (a deploy still running in its background) may start it again just after a stop, so stop until nothing has
    answered the service's port for `quiet_seconds`."""
    import httpx

    from sandbox import manager

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manager.stop_backend(settings)
        quiet_until = time.monotonic() + quiet_seconds
        while time.monotonic() < quiet_until:
            try:
                httpx.get(f"http://127.0.0.1:{settings.sandbox_port}/health", timeout=1)
                break  # answered: stop again
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            return
    raise AssertionError("the sandbox's backend kept being started again")


# What in-process runs cannot honour: Prefect reads its own settings once per process, and these commands start
# servers or processes of their own and change the environment they run in.
PROCESS_ONLY_COMMANDS = {"demo", "serve", "worker"}


def cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `playground-ops` command as an operator would, and answer as a finished process does (returncode,
    stdout, stderr). In this process through Typer's CliRunner (no interpreter and Prefect import per call), with the
    environment given for this call only; in a process of its own when the command or a PREFECT_* setting needs one."""
    if args[0] in PROCESS_ONLY_COMMANDS or any(name.startswith("PREFECT_") for name in env or {}):
        return cli_process(*args, env=env, timeout=timeout)
    import traceback

    from prefect.logging.configuration import ensure_logging_setup
    from typer.testing import CliRunner

    ensure_logging_setup()  # Prefect's console handler binds to this process's stderr, never to one call's capture

    from playground_ops.cli import app

    result = CliRunner().invoke(app, list(args), env={k: v for k, v in (env or {}).items()}, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # what the process would have printed
    return subprocess.CompletedProcess(["playground-ops", *args], result.exit_code, result.stdout, stderr)


def cli_process(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed command in a process of its own, exactly as an operator's shell runs it."""
    return subprocess.run([sys.executable, "-m", "playground_ops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def platform_sample(kind: str, value: float | None = None, real_instances: bool = False, minutes_ago: float = 0) -> None:
    """Add a CPU (cores) or memory (bytes) sample on the sandbox's Render-compatible platform, for every running
    instance of the backend or for one extra instance; without a value, remove what was added."""
    import httpx

    from playground_ops.settings import load_settings
    from sandbox import manager

    api, headers = os.environ["RENDER_API_URL"], {"Authorization": f"Bearer {manager.render_api_key(load_settings())}"}
    if value is None:
        httpx.post(f"{api}/sandbox/metrics", json={"kind": kind, "clear": True}, headers=headers).raise_for_status()
        return
    instances = [i["id"] for i in httpx.get(f"{api}/services/{os.environ['RENDER_SERVICE_ID']}/instances",
                                            headers=headers).json()] if real_instances else [None]
    for instance in instances:
        body = {"kind": kind, "value": value, "instance": instance, "timestamp": time.time() - 60 * minutes_ago}
        httpx.post(f"{api}/sandbox/metrics", json=body, headers=headers).raise_for_status()


def wait_for_sql(url: str, query: str, what: str, timeout: float = 30) -> None:
    """Poll the database until `query` returns a row: a condition the test waits for, never a fixed sleep."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(query).fetchone() is None:
            assert time.monotonic() < deadline, f"{what} never happened within {timeout:.0f} s"
            time.sleep(0.1)


def flow_run_logs(flow_run_id: str, timeout: float = 30) -> str:
    """Every log line the Prefect server holds for a flow run that has ended: logs reach the API in batches, so read
    until the engine's last line ("Finished in state ...") is there."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs, page = [], None
            while page is None or len(page) == 200:  # every page: a leak check reads every line
                page = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                        limit=200, offset=len(logs), sort=LogSort.TIMESTAMP_ASC)
                logs += page
            text = "\n".join(log.message for log in logs)
            if "Finished in state" in text:
                return text
            assert time.monotonic() < deadline, f"the run's last log line never reached the server:\n{text[-2000:]}"
            time.sleep(0.2)


def flow_run_artifacts(flow_run_id: str) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto in server mode: a real S3-compatible HTTP endpoint on loopback."""
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield url
    process.terminate()


def use_target(tmp_path, monkeypatch, name: str, database_url: str, redis_url: str, extra: str = "") -> None:
    """Make a one-target targets file the configuration of this test."""
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  - name: {name}\n    health_url: http://127.0.0.1:1/health\n"
                       f"    database_url: {database_url}\n    redis_url: {redis_url}\n{extra}")
    monkeypatch.setenv("OPS_TARGETS_FILE", str(targets))
