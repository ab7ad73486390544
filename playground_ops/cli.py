"""The `playground-ops` command: setup, serve, run, demo, sandbox and audit."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import typer
import yaml

from playground_ops.errors import ConfigError

app = typer.Typer(help="The AI API Playground's maintenance guide as Prefect 3 runbooks.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
sandbox_app = typer.Typer(help="The stand-in playground (database, Redis, backend) on loopback.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit store of runbook reports.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(audit_app, name="audit")


def bad_input_exits_2(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input: one line naming the thing and the expected form, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = exc if isinstance(exc, ConfigError) else prefect_unreachable(exc)
            if error is None:
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def prefect_unreachable(exc: BaseException) -> ConfigError | None:
    """The error naming PREFECT_API_URL when the exception is the Prefect API not answering, else None."""
    import httpx

    api = os.environ.get("PREFECT_API_URL") or _prefect_api_url()
    for err in (exc, exc.__cause__, exc.__context__):
        if isinstance(err, httpx.TransportError):
            try:
                url = str(err.request.url)
            except RuntimeError:  # no request attached
                url = ""
            if not api or url.startswith(api.rstrip("/")) or not url:
                return ConfigError("PREFECT_API_URL", "a reachable Prefect API",
                                   got=f"{api or 'no URL set'}: {type(err).__name__}; start one with "
                                       "`prefect server start` or set PREFECT_API_URL")
    return None


def _prefect_api_url() -> str | None:
    try:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value()
    except Exception:
        return None


def _settings():
    from playground_ops.settings import load_settings

    return load_settings()


# ---------------------------------------------------------------- setup, serve, run


@app.command()
@bad_input_exits_2
def setup(workers: Optional[int] = typer.Option(
        None, min=1, max=1000, help="How many workers will share the work pool (default OPS_WORKERS, else 1); more "
                                    "than one needs OPS_BACKUP_URL, OPS_METRICS_URL and OPS_AUDIT_URL on S3.")) -> None:
    """Create (idempotently) the work pool, concurrency limits, notification block and failure automation."""
    from deployments.setup import setup as run_setup
    from playground_ops.settings import load_targets

    settings = _settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    load_targets(settings)
    check_alert_rules()
    result = run_setup(settings)
    for label, items in (("created", result.created), ("updated", result.updated),
                         ("unchanged", result.unchanged), ("skipped", result.skipped)):
        for item in items:
            typer.echo(f"{label:9} {item}")


@app.command()
@bad_input_exits_2
def worker(pool: str = typer.Option("playground-ops", help="The work pool to take runs from."),
           name: Optional[str] = typer.Option(None, help="This worker's name (default: one Prefect makes up)."),
           limit: int = typer.Option(4, min=1, max=100, help="At most this many runs at once on this worker."),
           work_queue: Optional[list[str]] = typer.Option(None, help="Take runs from these queues of the pool only "
                                                                     "(repeatable; default: every queue)."),
           drain_seconds: float = typer.Option(900, min=0, help="On SIGTERM or Ctrl-C: take no more runs and wait "
                                                                "this long for the running ones to finish.")) -> None:
    """Run a process worker of the pool that drains on SIGTERM: no new runs, the running ones finish, then exit."""
    import asyncio

    from playground_ops.worker import run_worker

    left = asyncio.run(run_worker(pool, name, limit, drain_seconds, work_queue or None, printer=typer.echo))
    raise typer.Exit(1 if left else 0)


@app.command()
@bad_input_exits_2
def serve(limit: Optional[int] = typer.Option(None, help="At most this many runs at once in this process."),
          schedules: bool = typer.Option(True, help="--no-schedules registers the schedules inactive: on demand only.")
          ) -> None:
    """Run every deployment of prefect.yaml on its schedule, without a work pool, until Ctrl-C."""
    from deployments.serve import serve_all
    from playground_ops.settings import load_targets

    load_targets(_settings())
    check_alert_rules()
    serve_all(limit=limit, schedules=schedules)


def _parse_params(params: list[str], allowed: list[str], runbook: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--param", "key=value", got=item)
        if key not in allowed:
            raise ConfigError(f"parameter {key!r} of {runbook}", f"one of {', '.join(allowed) or '(none)'}")
        parsed[key] = yaml.safe_load(value) if value else ""
    return parsed


@app.command()
@bad_input_exits_2
def run(runbook: str = typer.Argument(..., help="The runbook (deployment) to run, e.g. health-check."),
        target: Optional[str] = typer.Option(None, "--target", "-t", help="The target (default: the configured one)."),
        param: list[str] = typer.Option([], "--param", "-p", help="A flow parameter as key=value; repeatable."),
        timeout: float = typer.Option(3600, help="Seconds to wait for the run to finish.")) -> None:
    """Trigger a runbook's deployment now, wait for it, and print its final state and where its report is."""
    from deployments.catalog import get_spec
    from playground_ops.settings import load_targets

    spec = get_spec(runbook)
    settings = _settings()
    targets, default = load_targets(settings)
    check_alert_rules()
    if target is not None and target not in targets:
        raise ConfigError("--target", f"one of {', '.join(sorted(targets))}", got=target)
    parameters = spec.check_parameters(_parse_params(param, [p for p in spec.parameter_names() if p != "target"],
                                                      runbook), targets[target or default])
    if target is not None:
        parameters["target"] = target
    outcome = trigger_and_wait(spec.full_name, parameters, timeout)
    _say_whose_settings_the_run_reads()  # once a run exists: an error before it stays one line
    typer.echo(f"{runbook} on {target or default}: {outcome.state}" + (f": {outcome.message}" if outcome.message else ""))
    if not outcome.final:
        typer.echo(f"still running after {timeout:g} s: the run goes on; watch it at {outcome.link}")
        raise typer.Exit(1)
    typer.echo(f"report: {outcome.report or '(none stored)'}")
    if not outcome.completed:
        raise typer.Exit(1)


RUN_SETTINGS = ("OPS_BACKUP_URL", "OPS_AUDIT_URL", "OPS_METRICS_URL", "OPS_TARGETS_FILE", "OPS_VERIFY_DATABASE_URL",
                "OPS_BACKUP_ENCRYPTION_SECRET", "OPS_PG_BINDIR", "DATABASE_URL", "REDIS_URL", "HEALTH_URL")


def _say_whose_settings_the_run_reads() -> None:
    """A run reads its settings where it runs (the serving process or a worker), not in this shell: say so when this
    shell sets some, so an operator never believes an OPS_BACKUP_URL given here changed where a backup goes."""
    here = [name for name in RUN_SETTINGS if os.environ.get(name)]
    if here:
        typer.echo(f"note: the run reads {', '.join(here)} in the process that serves its deployment (playground-ops "
                   "serve or a worker), not in this shell: set them there", err=True)


def check_alert_rules() -> None:
    """The alert rules file is read and checked before anything starts (a bad one is one line, exit 2)."""
    from tasks.targets import load_alert_rules

    load_alert_rules.fn()


@dataclass
class RunOutcome:
    state: str            # the final state's name (Completed, Critical, Warning, Skipped, Failed, ...)
    message: str | None   # why: the report's summary, or why it failed or was cancelled
    completed: bool       # the run's state is of the Completed type (a Critical finding still completed)
    final: bool           # False when waiting ran out: the run goes on
    link: str
    report: str | None
    seconds: float | None = None  # from the run's own start and end times


def trigger_and_wait(full_name: str, parameters: dict[str, Any], timeout: float) -> RunOutcome:
    """Run a deployment and wait; returns its final state, why, and the stored report's location."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_UI_URL

    from uuid import uuid4

    from prefect.exceptions import PrefectHTTPStatusError

    key = uuid4().hex  # a retry after a busy server's 503 finds the run the first try created, never a second one
    for attempt in range(1, 6):
        try:
            flow_run = run_deployment(full_name, parameters=parameters, timeout=timeout, tags=["on-demand"],
                                      idempotency_key=key)
            break
        except PrefectHTTPStatusError as exc:  # the client's own retries on 503 ran out: a SQLite server under load
            if exc.response.status_code != 503 or attempt == 5:
                raise
            time.sleep(5 * attempt)
    state = flow_run.state
    ui = (PREFECT_UI_URL.value() or os.environ.get("PREFECT_API_URL", "").removesuffix("/api")).rstrip("/")
    final = state is not None and state.is_final()
    return RunOutcome(state=state.name if state else "Unknown", message=state.message if state else None,
                      completed=bool(state and state.is_completed()), final=final,
                      link=f"{ui}/runs/flow-run/{flow_run.id}", report=stored_report_for(str(flow_run.id)) if final else None,
                      seconds=round((flow_run.end_time - flow_run.start_time).total_seconds(), 2)
                      if final and flow_run.start_time and flow_run.end_time else None)


def stored_report_for(flow_run_id: str) -> str | None:
    from tasks.reporting.audit import open_store

    settings = _settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    keys = [k for k in store.list() if k.endswith(f"/{flow_run_id}.json")]
    return store.link(keys[0]) if keys else None


# ---------------------------------------------------------------- demo


@app.command()
@bad_input_exits_2
def demo(once: bool = typer.Option(False, "--once", help="Exit after the first round; non-zero if a runbook failed."),
         port: int = typer.Option(4200, help="Port of the local Prefect server and UI.")) -> None:
    """Start Prefect and the sandbox, set up, run every runbook once, print a table, then keep serving."""
    from deployments.catalog import load_catalog
    from deployments.setup import setup as run_setup
    from playground_ops.local_server import fresh_prefect_database, start_server
    from tasks.reporting.report import markdown_table

    settings = _settings()
    started: list[subprocess.Popen] = []
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cluster = settings.sandbox_cluster()
    cluster_was_up = cluster is None or cluster.running()
    drills_up = {drill.root for drill in settings.drill_clusters() if drill.running()}
    if not os.environ.get("PREFECT_API_URL"):
        # the server's own database on the sandbox's PostgreSQL (SQLite answers writes that meet with 503 "database
        # is locked", which the client retries 2 s later), kept from one demo to the next with its history
        admin = cluster.ensure() if cluster is not None else settings.sandbox_admin_url
        database = fresh_prefect_database(admin, "playground_ops_prefect", keep=True)
        api_url, process = start_server(settings.ops_home / "prefect", port=port, database_url=database)
        os.environ["PREFECT_API_URL"] = api_url
        os.environ.setdefault("PREFECT_UI_URL", api_url.removesuffix("/api"))
        started += [process] if process else []
    typer.echo(f"Prefect API: {os.environ['PREFECT_API_URL']}")
    from sandbox import manager  # imports prefect: only once PREFECT_API_URL names the server (settings are read once)

    backend_was_up = manager.backend_pid(settings) is not None
    status = manager.up(settings)
    typer.echo(f"sandbox: {status.users} users, {status.requests} requests, backend {status.backend_url}")
    os.environ.update(manager.target_env(settings))
    os.environ.pop("OPS_TARGETS_FILE", None)
    manager.ensure_config_backup_key(settings)  # the sandbox's configuration backups are encrypted too
    if not (settings.webhook_url or settings.slack_webhook_url):
        started.append(_start_demo_receiver(settings))
    settings = _settings()
    result = run_setup(settings)
    typer.echo(f"setup: {len(result.created)} created, {len(result.updated)} updated, {len(result.unchanged)} unchanged")

    log = open(settings.ops_home / "serve.log", "ab")
    # the runner looks for runs to start every 2 s rather than 10: a demo's runs follow one another
    serve_env = {"PREFECT_RUNNER_POLL_FREQUENCY": "2", **os.environ}
    # --once: no schedules, so that no scheduled run meets the round's own (a health check already running makes
    # the next one of the same target skip)
    serve = ["serve", "--no-schedules"] if once else ["serve"]
    started.append(subprocess.Popen([sys.executable, "-m", "playground_ops.cli", *serve], env=serve_env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        catalog = load_catalog()
        _wait_for_deployments([spec.full_name for spec in catalog.values()])
        _finish_sandbox_rotation(settings, catalog)
        outcomes = run_demo_round(catalog)
        rows = [{"runbook": name, "state": o.state, "duration_s": o.seconds, "report": o.report or ""}
                for name, o in outcomes.items()]
        failed = any(not o.completed for o in outcomes.values())
        typer.echo(markdown_table(rows))
        ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
        typer.echo(f"\nPrefect UI: {ui}  (runs, artifacts and the audit links are there)")
        if once:
            raise typer.Exit(1 if failed else 0)
        typer.echo(f"Serving the schedules (log: {settings.ops_home / 'serve.log'}); Ctrl-C to stop.")
        started[-1].wait()
    finally:
        for process in reversed(started):  # what the demo started, it stops
            _stop(process)
        if not backend_was_up:
            manager.stop_backend(settings)
            manager.stop_service(settings, "standins")
        if not cluster_was_up:
            cluster.stop()
        for drill in settings.drill_clusters():  # the restore drills' private clusters the demo's runs started
            if drill.root not in drills_up:
                drill.stop()


# Runbooks that need the one before them (a backup to verify, a verified backup to expire and restore) run in
# order; every other runbook runs beside them (the global limits still keep heavy database work apart).
NOT_IN_DEMO = {"reconcile-crashed-run": "it needs a run that crashed; the automation starts it when one does",
               "restart-service": "it restarts the service under the other runbooks; an incident offers it when the "
                                  "evidence calls for it, and runs it once an operator approves",
               "rollback-deploy": "it redeploys the service under the other runbooks; an incident offers it when the "
                                  "live deploy went live just before the trouble",
               "security-incident": "security-review opens one for each critical finding (the sandbox's traffic "
                                    "has none)"}
# What the demo asks of the runbooks that need a request: an incident opened and resolved within the demo's minutes
# (production waits longer), and a scale and an env var change that restart nothing under the other runbooks.
DEMO_PARAMETERS = {"incident": {"severity": "sev3", "summary": "demo: an incident drill on the sandbox",
                                "green_checks": 1, "check_interval_seconds": 5, "recovery_timeout_minutes": 5,
                                "approval_timeout_seconds": 60},
                   "scale-service": {"autoscaling": True},
                   "restore-configuration": {"service": "frontend", "dry_run": True},
                   # the scratch database an earlier round restored into is replaced: playground-ops made it, its
                   # label says so, so no approval is asked (a database it did not make never is replaced this way)
                   "restore-database": {"overwrite": True},
                   "environment-variables": {"action": "set", "values": {"LOG_LEVEL": "info"}, "restart": False}}
# the runbooks that take longest start first, so the round is not left waiting on one started last
DEMO_FIRST = ("incident", "dependency-update", "security-audit", "release")
DEMO_CHAINS = [["health-check", "incident"],  # the incident's own health checks would make the round's one skip
               ["backup-database", "verify-backup", "expire-backups", "restore-database"],
               ["backup-configuration", "verify-configuration-backup", "restore-configuration"],
               ["performance-review", "database-maintenance"]]


def _finish_sandbox_rotation(settings, catalog: dict) -> None:
    """A demo run again: the sandbox's secrets rotated by an earlier round are still in their grace period (7 days),
    and a new rotation is refused until it ends. The sandbox's tokens are the demo's own, so finish it now."""
    from sandbox import manager

    pending = manager.rotation_in_grace(settings)
    if not pending:
        return
    outcome = trigger_and_wait(catalog["secret-rotation"].full_name, {"action": "finish", "force_finish": True},
                               timeout=600)
    typer.echo(f"an earlier round's rotation of {', '.join(pending)} (the sandbox's) finished first: {outcome.state}")


def run_demo_round(catalog: dict) -> dict[str, "RunOutcome"]:
    """Every runbook once, independent ones side by side; the outcomes in the catalog's order."""
    from concurrent.futures import ThreadPoolExecutor

    chained = {name for chain in DEMO_CHAINS for name in chain} | set(NOT_IN_DEMO)
    chains = [[n for n in chain if n in catalog] for chain in DEMO_CHAINS]
    chains += sorted(([name] for name in catalog if name not in chained),
                     key=lambda chain: DEMO_FIRST.index(chain[0]) if chain[0] in DEMO_FIRST else len(DEMO_FIRST))
    outcomes: dict[str, RunOutcome] = {}

    def run_chain(chain: list[str]) -> None:
        for name in chain:
            outcomes[name] = trigger_and_wait(catalog[name].full_name, DEMO_PARAMETERS.get(name, {}), timeout=1800)

    with ThreadPoolExecutor(max_workers=6) as pool:  # most runbooks wait on I/O: six at once fit two cores
        for done in [pool.submit(run_chain, chain) for chain in chains]:
            done.result()
    return {name: outcomes[name] for name in catalog if name in outcomes}


def _wait_for_deployments(names: list[str], timeout: float = 180) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in names:
            while True:
                try:
                    client.read_deployment_by_name(name)
                    break
                except ObjectNotFound:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"deployment {name} was not registered by `serve`") from None
                    time.sleep(1)


def _start_demo_receiver(settings) -> subprocess.Popen:
    """A local webhook receiver that appends each notification to <OPS_HOME>/notifications.jsonl."""
    port = 8799
    log = settings.ops_home / "notifications.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "sandbox.receiver", "--port", str(port), "--out", str(log)],
                               start_new_session=True)
    os.environ["OPS_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hooks/demo"
    typer.echo(f"notifications: no webhook configured, so the demo writes them to {log}")
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# ---------------------------------------------------------------- sandbox


@sandbox_app.command("up")
@bad_input_exits_2
def sandbox_up() -> None:
    """Create the sandbox database (seeding it if empty) and start the stand-in backend."""
    from sandbox import manager

    s = manager.up(_settings())
    typer.echo(f"sandbox up: database {s.database} ({s.users} users, {s.requests} requests), backend {s.backend_url}")


@sandbox_app.command("down")
@bad_input_exits_2
def sandbox_down(backend: bool = typer.Option(False, "--backend", help="Stop the backend only (a backend-failure "
                                                                          "drill: the platform and database stay up)."),
                 platform: bool = typer.Option(False, "--platform", help="Stop the stand-ins only (Render's, GitHub's "
                                                                           "and the advisories' APIs)."),
                 database: bool = typer.Option(False, "--database", help="Stop the sandbox's PostgreSQL only."),
                 purge: bool = typer.Option(False, help="Also drop the sandbox database and empty its Redis db "
                                                        "(with everything stopped).")) -> None:
    """Stop the sandbox: the backend, the stand-ins and its PostgreSQL, or only the parts named."""
    from sandbox import manager

    settings = _settings()
    parts = [name for name, asked in (("backend", backend), ("platform", platform), ("database", database)) if asked]
    if parts and purge:
        raise ConfigError("--purge", "everything stopped (no --backend, --platform or --database)")
    if not parts:
        manager.down(settings, purge=purge)
        typer.echo("sandbox down" + (" and purged" if purge else ""))
        return
    if backend:
        manager.stop_backend(settings)
    if platform:
        manager.stop_service(settings, "standins")
    if database and settings.sandbox_cluster() is not None:
        settings.sandbox_cluster().stop()
    typer.echo(f"sandbox: {', '.join(parts)} stopped; the rest still runs (`sandbox up` starts everything again)")


@sandbox_app.command("status")
@bad_input_exits_2
def sandbox_status() -> None:
    """Show the sandbox database, its row counts and the backend's health."""
    from dataclasses import asdict

    from sandbox import manager

    typer.echo(json.dumps(asdict(manager.status(_settings())), indent=2))


@sandbox_app.command("seed")
@bad_input_exits_2
def sandbox_seed(users: int = typer.Option(200, min=1), requests: int = typer.Option(20_000, min=0),
                 days: int = typer.Option(7, min=1), seed: int = typer.Option(42, help="Random seed.")) -> None:
    """Replace the sandbox's users and requests with a deterministic, realistic data set (COPY)."""
    from sandbox import manager
    from sandbox.seed import seed as run_seed

    settings = _settings()
    manager.ensure_database(settings)
    r = run_seed(manager.database_url(settings), users=users, requests=requests, days=days, seed_value=seed)
    typer.echo(f"seeded {r.users} users and {r.requests} requests ({r.start:%Y-%m-%d} to {r.end:%Y-%m-%d}) "
               f"in {r.seconds} s")


@sandbox_app.command("env")
@bad_input_exits_2
def sandbox_env() -> None:
    """Print the environment (export lines) that makes the sandbox the default target."""
    from sandbox import manager

    for key, value in manager.target_env(_settings()).items():
        typer.echo(f"export {key}='{value}'")


# ---------------------------------------------------------------- audit


@audit_app.command("list")
@bad_input_exits_2
def audit_list(runbook: Optional[str] = typer.Option(None), target: Optional[str] = typer.Option(None)) -> None:
    """List stored reports, oldest first."""
    from tasks.reporting.audit import open_store
    from tasks.store_keys import check_key

    for option, value in (("--runbook", runbook), ("--target", target)):
        if value is not None:
            check_key(value, option, "<name>")
    from tasks.reporting.audit import StoreUnreadable

    settings = _settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    try:
        store.check_readable()
    except StoreUnreadable as exc:
        typer.echo(f"error: OPS_AUDIT_URL: {exc}", err=True)
        raise typer.Exit(2) from None
    prefix = f"{runbook}/" + (f"{target}/" if target else "") if runbook else ""
    for key in store.list(prefix):
        if key.endswith(".json") and (target is None or key.split("/")[1] == target):
            typer.echo(key)


@audit_app.command("show")
@bad_input_exits_2
def audit_show(key: str = typer.Argument(..., help="A key from `audit list`."),
               as_json: bool = typer.Option(False, "--json", help="The JSON instead of the Markdown.")) -> None:
    """Print one stored report."""
    from tasks.reporting.audit import open_store
    from tasks.store_keys import check_key

    base = key.removesuffix(".json").removesuffix(".md")
    check_key(base, "key", "<runbook>/<target>/<YYYY-MM-DD>/<flow-run-id>[.json|.md]")
    settings = _settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    try:
        typer.echo(store.get(base + (".json" if as_json else ".md")).decode())
    except (FileNotFoundError, KeyError, Exception) as exc:
        if isinstance(exc, typer.Exit):
            raise
        raise ConfigError("key", "a key listed by `playground-ops audit list`", got=key) from None


@audit_app.command("verify")
@bad_input_exits_2
def audit_verify() -> None:
    """Walk every report chain; name each report that was changed, removed or inserted (exit 1 if any)."""
    from tasks.reporting.audit import StoreUnreadable, open_store, verify_store
    from tasks.reporting.publish import recorded_chain_heads

    settings = _settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    try:
        checks = verify_store(store, heads=recorded_chain_heads(store.url))
    except StoreUnreadable as exc:
        typer.echo(f"error: OPS_AUDIT_URL: {exc}", err=True)
        raise typer.Exit(2) from None
    problems = 0
    for check in checks:
        verdict = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
        typer.echo(f"{check.runbook}/{check.target}: {check.reports} reports, {verdict}")
        for p in check.problems:
            typer.echo(f"  {p.kind}: {p.key}: {p.detail}")
        problems += len(check.problems)
    if not checks:
        typer.echo("no reports stored yet")
    if problems:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
