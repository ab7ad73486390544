"""A Prefect fleet on one machine, laid out as the README's "Outgrowing one machine" says: a Prefect server on
PostgreSQL (a database of the sandbox's cluster), every deployment of prefect.yaml deployed with `prefect deploy --all`
into the `playground-ops` work pool, and process workers, each started in its own working directory. The scale-out
and worker-loss tests drive it; an operator can too, to rehearse a layout before building it on several hosts."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from playground_ops.local_server import fresh_prefect_database, start_server

CHECKOUT = Path(__file__).resolve().parent.parent
DATABASE = "playground_ops_fleet"


@dataclass
class Worker:
    name: str
    directory: Path
    process: subprocess.Popen
    log: Path

    def ran(self) -> set[str]:
        """The flow runs this worker started, from its log: its last submission of each was not aborted (the server
        refuses a submission when another worker took the run, or a concurrency limit holds it)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last: dict[str, str] = {}
        for verb, run_id in re.findall(r"(submitting|Aborted submission of) flow run '([0-9a-f-]{36})'", text):
            last[run_id] = verb
        return {run_id for run_id, verb in last.items() if verb == "submitting"}

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker is gone at once, as with a lost host."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float) -> float:
        """SIGTERM, as systemd or Kubernetes send; returns how long the worker took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise
        return time.monotonic() - started


class Fleet:
    def __init__(self, root: Path, admin_url: str, port: int, env: dict[str, str]):
        self.root, self.admin_url, self.port = root, admin_url, port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = {**env, "PREFECT_API_URL": self.api_url, "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
                    "PREFECT_HOME": str(root / "client")}
        self.env.pop("PLAYGROUND_OPS_DIR", None)  # each worker finds its own checkout (see deploy_steps)
        self.server: subprocess.Popen | None = None
        self.workers: list[Worker] = []

    def start_server(self) -> str:
        """A fresh database for the server, then `prefect server start` on it."""
        database_url = fresh_prefect_database(self.admin_url, DATABASE)
        _, self.server = start_server(self.root / "prefect", port=self.port, ui=False, database_url=database_url)
        return self.api_url

    def command(self, *args: str, cwd: Path = CHECKOUT, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    def setup_and_deploy(self, workers: int) -> str:
        """As the README says: `playground-ops setup --workers N`, `prefect --no-prompt deploy --all` from the
        checkout, then setup again (the reconcile automation names a deployment that now exists)."""
        setup = ("playground_ops.cli", "setup", "--workers", str(workers))
        return "".join(self.command(*args).stdout for args in (setup, ("prefect", "--no-prompt", "deploy", "--all"), setup))

    def pause_schedules(self) -> int:
        """Every deployment's schedules inactive and their scheduled runs gone: only the runs a test starts run."""
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.settings import PREFECT_API_URL, temporary_settings

        paused = 0
        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            for deployment in client.read_deployments():
                for schedule in deployment.schedules:
                    client.update_deployment_schedule(deployment.id, schedule.id, active=False)
                    paused += 1
            scheduled = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED"])))
            while runs := client.read_flow_runs(flow_run_filter=scheduled, limit=200):
                for run in runs:
                    client.delete_flow_run(run.id)
        return paused

    def start_worker(self, name: str, limit: int = 1, query_seconds: int = 2, env: dict[str, str] | None = None,
                     drain_seconds: float = 120) -> Worker:
        """`playground-ops worker --pool playground-ops` in a working directory of its own (env: this host's)."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / "worker.log"
        env = {**(self.env if env is None else env), "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds)}
        process = subprocess.Popen(
            [sys.executable, "-m", "playground_ops.cli", "worker", "--pool", "playground-ops", "--name", name,
             "--limit", str(limit), "--drain-seconds", str(drain_seconds)],
            cwd=directory, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        worker = Worker(name, directory, process, log)
        self.workers.append(worker)
        deadline = time.monotonic() + 120
        while "started!" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start; see {log}")
            time.sleep(0.5)
        return worker

    def worker_of(self, flow_run_id: str) -> str | None:
        return next((w.name for w in self.workers if str(flow_run_id) in w.ran()), None)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.process.kill()
                worker.process.wait(timeout=30)
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        except psycopg.Error:
            pass
