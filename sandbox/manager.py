"""Bring the sandbox up and down on loopback: its own database, its own Redis database number, its backend process.

Nothing else on the PostgreSQL or Redis servers is touched: only the database named by OPS_SANDBOX_DATABASE and the
Redis database OPS_SANDBOX_REDIS_DB.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql

from playground_ops.settings import Settings
from sandbox.app_repo import create_app_repo

SANDBOX_DB_PASSWORD = "sandbox-db-password"  # trust auth ignores it; it is there to show that passwords are masked
ROOT = Path(__file__).resolve().parent.parent
APP_REPO = "playground/playground-app"  # the application's repository, as the GitHub stand-in names it
RENDER_SERVICE_ID = "srv-sandboxbackend00001"  # the backend, as the Render stand-in names it
RENDER_OWNER_ID = "tea-sandboxowner000001"
FRONTEND_SERVICE_ID = "srv-sandboxfrontend0001"  # the static frontend, as the Render stand-in names it
CONFIG_BACKUP_KEY_BLOCK = "sandbox-config-backup-key"  # the Prefect Secret with the configuration backups' key


@dataclass
class SandboxStatus:
    database: str
    database_exists: bool
    users: int | None
    requests: int | None
    backend_pid: int | None
    backend_url: str
    healthy: bool


def state_dir(settings: Settings) -> Path:
    path = settings.ops_home / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(settings: Settings, database: str | None = None) -> str:
    admin = psycopg.conninfo.conninfo_to_dict(settings.sandbox_admin_url)
    host, port, user = admin.get("host", "127.0.0.1"), admin.get("port", "5432"), admin.get("user", "postgres")
    return f"postgresql://{user}:{SANDBOX_DB_PASSWORD}@{host}:{port}/{database or settings.sandbox_database}"


def redis_url(settings: Settings) -> str:
    return f"{settings.sandbox_redis_url.rstrip('/')}/{settings.sandbox_redis_db}"


def _state_secret(settings: Settings, name: str) -> str:
    path = state_dir(settings) / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def jwt_secret(settings: Settings) -> str:
    return _state_secret(settings, "jwt_secret")


def jwt_refresh_secret(settings: Settings) -> str:
    return _state_secret(settings, "jwt_refresh_secret")


def github_token(settings: Settings) -> str:
    return "ghp_" + _state_secret(settings, "github_token")[:36]


def render_api_key(settings: Settings) -> str:
    return "rnd_" + _state_secret(settings, "render_api_key")[:32]


def platform_state(settings: Settings) -> dict:
    """The Render stand-in's record of the backend service: its env vars (what the processes get), instances,
    autoscaling and deploys."""
    path = state_dir(settings) / "render.json"
    if path.exists():
        state = json.loads(path.read_text())
    else:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        env = {"DATABASE_URL": database_url(settings), "REDIS_URL": redis_url(settings),
               "JWT_SECRET": jwt_secret(settings), "JWT_REFRESH_SECRET": jwt_refresh_secret(settings),
               "APP_VERSION": "sandbox-1.0.0", "NODE_ENV": "production"}
        state = {"env_vars": env, "num_instances": 1, "autoscaling": None, "deploys": [], "created_at": now}
    # the static frontend: its build-time env vars and deploys (an older state file gets it on first read)
    state.setdefault("services", {}).setdefault(FRONTEND_SERVICE_ID, {
        "env_vars": {"VITE_API_URL": f"http://127.0.0.1:{settings.sandbox_port}", "VITE_APP_NAME": "AI API Playground",
                     "VITE_ANALYTICS_WRITE_KEY": "wk_" + _state_secret(settings, "analytics_key")[:24]},
        "deploys": [], "created_at": state["created_at"]})
    return state


def rotation_in_grace(settings: Settings) -> list[str]:
    """The sandbox backend's secrets still in a rotation's grace period (their <NAME>_PREVIOUS is set)."""
    env = platform_state(settings)["env_vars"]
    return sorted(name.removesuffix("_PREVIOUS") for name in env if name.endswith("_PREVIOUS"))


def save_platform_state(settings: Settings, state: dict) -> None:
    path = state_dir(settings) / "render.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)


def standins_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.sandbox_standins_port}"


def app_repo_path(settings: Settings) -> Path:
    return state_dir(settings) / f"{APP_REPO.split('/')[1]}.git"


def target_env(settings: Settings) -> dict[str, str]:
    """The environment that makes the sandbox the default target."""
    return {"TARGET_NAME": "sandbox", "TARGET_ENVIRONMENT": "sandbox",
            "HEALTH_URL": f"http://127.0.0.1:{settings.sandbox_port}/health",
            "DATABASE_URL": database_url(settings), "REDIS_URL": redis_url(settings),
            "JWT_SECRET": jwt_secret(settings),
            "OPS_REPO_URL": str(app_repo_path(settings)), "OPS_REPO_BASE": "main",
            "OPS_REPO_PROJECTS": "backend=npm,frontend=npm,python=python",
            "GITHUB_API_URL": f"{standins_url(settings)}/github", "GITHUB_REPOSITORY": APP_REPO,
            "GITHUB_TOKEN": github_token(settings),
            "OPS_NPM_AUDIT_REGISTRY": f"{standins_url(settings)}/", "OPS_OSV_URL": f"{standins_url(settings)}/osv/v1/query",
            "RENDER_API_URL": f"{standins_url(settings)}/render/v1", "RENDER_API_KEY": render_api_key(settings),
            "RENDER_SERVICE_ID": RENDER_SERVICE_ID, "RENDER_OWNER_ID": RENDER_OWNER_ID,
            "RENDER_SERVICES": f"backend={RENDER_SERVICE_ID},frontend={FRONTEND_SERVICE_ID}",
            "OPS_CONFIG_BACKUP_ENCRYPTION_SECRET": CONFIG_BACKUP_KEY_BLOCK}


def ensure_config_backup_key(settings: Settings) -> str:
    """The Prefect Secret block with the sandbox's configuration-backup key (base64 of 32 random bytes, kept in the
    sandbox's state directory), saved on the current Prefect server; its name."""
    import base64

    from prefect.blocks.system import Secret

    path = state_dir(settings) / "config_backup_key"
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    Secret(value=path.read_text().strip()).save(CONFIG_BACKUP_KEY_BLOCK, overwrite=True)
    return CONFIG_BACKUP_KEY_BLOCK


def ensure_database(settings: Settings) -> bool:
    """Create the sandbox database and schema if missing (the server started first); True if it was created."""
    ensure_server(settings)
    with psycopg.connect(settings.sandbox_admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.sandbox_database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.sandbox_database)))
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        conn.execute((Path(__file__).with_name("schema.sql")).read_text())
        if _preloaded(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return not exists


def _preloaded(conn: psycopg.Connection) -> bool:
    return "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]


def _services(settings: Settings) -> dict[str, tuple[str, int, str, dict[str, str]]]:
    """name -> (ASGI app, port, health path, extra environment)."""
    return {
        "standins": ("sandbox.standins:app", settings.sandbox_standins_port, "/healthz",
                     {"GITHUB_STANDIN_TOKEN": github_token(settings), "GITHUB_STANDIN_REPOS": APP_REPO,
                      "GITHUB_STANDIN_STATE": str(state_dir(settings) / "github.json")}),
    }


def _pidfile(settings: Settings, name: str) -> Path:
    return state_dir(settings) / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def service_pid(settings: Settings, name: str) -> int | None:
    path = _pidfile(settings, name)
    if path.exists():
        pid = int(path.read_text().strip() or 0)
        if pid and _alive(pid):
            return pid
    return None


def start_service(settings: Settings, name: str, wait: float = 30.0) -> int:
    """Start one of the sandbox's helper processes (uvicorn on loopback) unless it runs; wait until it answers. (The
    backend has start_backend.)"""
    app, port, health, extra_env = _services(settings)[name]
    pid = service_pid(settings, name)
    if pid is None:
        env = {**os.environ, **extra_env, "PYTHONPATH": str(ROOT)}
        log = open(state_dir(settings) / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        pid = process.pid
        _pidfile(settings, name).write_text(str(pid))
    url = f"http://127.0.0.1:{port}{health}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return pid
        except httpx.TransportError:
            pass
        if not _alive(pid):
            break
        time.sleep(0.2)
    raise RuntimeError(f"the sandbox's {name} did not answer at {url}; see {state_dir(settings) / (name + '.log')}")


def stop_service(settings: Settings, name: str, timeout: float = 10.0) -> bool:
    """Stop one of the sandbox's processes; True if it was running."""
    pid = service_pid(settings, name)
    if pid is None:
        _pidfile(settings, name).unlink(missing_ok=True)
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _pidfile(settings, name).unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- the backend: instances behind one port

def _instances_dir(settings: Settings) -> Path:
    path = state_dir(settings) / "backend"
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def _backend_lock(settings: Settings) -> Iterator[None]:
    """One start, restart or stop of the backend at a time, whichever process asks (tests, the stand-ins, the CLI)."""
    with open(state_dir(settings) / "backend.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def backend_instances(settings: Settings) -> list[dict]:
    """The running instances, oldest first: {pid, private_port, public} (public: taking the service's traffic)."""
    found = []
    for record in _instances_dir(settings).glob("*.json"):
        try:
            found.append(json.loads(record.read_text()))
        except (OSError, ValueError):
            continue
        if not _alive(found[-1]["pid"]):
            found.pop()
            record.unlink(missing_ok=True)
    return sorted(found, key=lambda i: _started(i["pid"]))


def _started(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def backend_pids(settings: Settings) -> list[int]:
    """The processes serving the backend's port (one per instance)."""
    return [i["pid"] for i in backend_instances(settings) if i["public"]]


def backend_pid(settings: Settings) -> int | None:
    pids = backend_pids(settings)
    return pids[0] if pids else None


def _spawn(settings: Settings, n: int) -> list[subprocess.Popen]:
    env = {**os.environ, **platform_state(settings)["env_vars"], "PYTHONPATH": str(ROOT)}
    with open(state_dir(settings) / "backend.log", "ab") as log:
        return [subprocess.Popen([sys.executable, "-m", "sandbox.instance", "sandbox.backend:app",
                                  str(settings.sandbox_port), str(_instances_dir(settings))],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True) for _ in range(n)]


def _healthy_on_private_ports(settings: Settings, spawned: list[subprocess.Popen], wait: float) -> bool:
    """Until every new instance answers 200 on its own port (or one exits, or the wait is over)."""
    deadline, pending = time.monotonic() + wait, {p.pid for p in spawned}
    while pending and time.monotonic() < deadline:
        if any(p.poll() is not None for p in spawned):
            return False
        for instance in backend_instances(settings):
            if instance["pid"] in pending:
                try:
                    url = f"http://127.0.0.1:{instance['private_port']}/health"
                    if httpx.get(url, timeout=2).status_code == 200:
                        pending.discard(instance["pid"])
                except httpx.TransportError:
                    pass
        time.sleep(0.2)
    return not pending


def _go_public(settings: Settings, spawned: list[subprocess.Popen], wait: float = 15.0) -> None:
    """Let the new instances take traffic; back once each listens on the service's port."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ready = {i["pid"]: i for i in backend_instances(settings)}
        waiting = [p for p in spawned if p.poll() is None and not ready.get(p.pid, {}).get("public")]
        if not waiting:
            return
        for p in waiting:
            if p.pid in ready:
                os.kill(p.pid, signal.SIGUSR1)
        time.sleep(0.1)


def _stop_pids(pids: list[int], timeout: float) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_backend(settings: Settings, wait: float = 30.0) -> int:
    """Start the backend's instances (platform_state's num_instances, with its env vars) unless they run; wait until
    they are healthy (RuntimeError if not within `wait`: they are left running, as a platform leaves a failing
    service)."""
    with _backend_lock(settings):
        pid = backend_pid(settings)
        if pid is not None:
            return pid
        spawned = _spawn(settings, platform_state(settings)["num_instances"])
        healthy = _healthy_on_private_ports(settings, spawned, wait)
        _go_public(settings, spawned)
        if not healthy:
            raise RuntimeError(f"the sandbox's backend was not healthy within {wait:.0f} s; see "
                               f"{state_dir(settings) / 'backend.log'}")
        return backend_pid(settings) or spawned[0].pid


def replace_backend(settings: Settings, wait: float = 20.0, on_live=None) -> bool:
    """A zero-downtime restart, as Render deploys: new instances (the current env vars and instance count) are
    started and checked on their own ports; only once all are healthy do they take traffic and the old ones stop,
    draining. New instances that are not healthy within `wait` are stopped and the old ones keep serving (False);
    with no old instance running, the new ones take traffic healthy or not. on_live(healthy) is called as the new
    instances take the traffic, before the old ones have drained."""
    with _backend_lock(settings):
        old = [i["pid"] for i in backend_instances(settings)]
        spawned = _spawn(settings, platform_state(settings)["num_instances"])
        healthy = _healthy_on_private_ports(settings, spawned, wait)
        if not healthy and old:
            _stop_pids([p.pid for p in spawned], 10)
            return False
        _go_public(settings, spawned)
        if on_live is not None:  # the new instances take the traffic: the restart is done, the old ones drain
            on_live(healthy)
        _stop_pids(old, 40)
        return healthy


def stop_backend(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop every instance of the backend; True if one was running."""
    with _backend_lock(settings):
        pids = [i["pid"] for i in backend_instances(settings)]
        _stop_pids(pids, timeout)
        for record in _instances_dir(settings).glob("*.json"):
            record.unlink(missing_ok=True)
        return bool(pids)


def ensure_server(settings: Settings) -> str:
    """The PostgreSQL the sandbox lives on, running: its own private cluster (started, and initialised the first
    time), unless OPS_SANDBOX_ADMIN_URL names another server. Returns the admin URL."""
    cluster = settings.sandbox_cluster()
    return cluster.ensure() if cluster is not None else settings.sandbox_admin_url


def up(settings: Settings, users: int = 200, requests: int = 20_000, days: int = 7) -> SandboxStatus:
    """The sandbox's PostgreSQL, database, schema, a first seed if it is empty, and the backend."""
    from sandbox.seed import seed

    ensure_server(settings)
    ensure_database(settings)
    with psycopg.connect(database_url(settings)) as conn:
        empty = conn.execute("SELECT NOT EXISTS (SELECT FROM users)").fetchone()[0]
    if empty:
        seed(database_url(settings), users=users, requests=requests, days=days)
    create_app_repo(state_dir(settings), APP_REPO.split("/")[1])
    start_backend(settings)
    start_service(settings, "standins")
    return status(settings)


def down(settings: Settings, purge: bool = False) -> None:
    """Stop the backend, the stand-ins and the sandbox's own PostgreSQL; with purge, first drop the sandbox database
    (nothing else of the server), empty its Redis database, and remove the application repository and the pull
    requests."""
    stop_backend(settings)
    stop_service(settings, "standins")
    cluster = settings.sandbox_cluster()
    if purge:
        shutil.rmtree(app_repo_path(settings), ignore_errors=True)
        (state_dir(settings) / "github.json").unlink(missing_ok=True)
        (state_dir(settings) / "render.json").unlink(missing_ok=True)
        if cluster is None or cluster.running() or cluster.initialised():
            with psycopg.connect(ensure_server(settings), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(settings.sandbox_database)))
        redis.Redis.from_url(redis_url(settings)).flushdb()
    if cluster is not None:
        cluster.stop()


def status(settings: Settings) -> SandboxStatus:
    users = reqs = None
    exists = False
    try:
        with psycopg.connect(database_url(settings), connect_timeout=3) as conn:
            exists = True
            users, reqs = conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM requests)").fetchone()
    except psycopg.Error:
        pass
    url = target_env(settings)["HEALTH_URL"]
    try:
        healthy = httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        healthy = False
    return SandboxStatus(settings.sandbox_database, exists, users, reqs, backend_pid(settings), url, healthy)
