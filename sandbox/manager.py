"""Bring the sandbox up and down on loopback: its own database, its own Redis database number, its backend process.

Nothing else on the PostgreSQL or Redis servers is touched: only the database named by OPS_SANDBOX_DATABASE and the
Redis database OPS_SANDBOX_REDIS_DB.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
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


def github_token(settings: Settings) -> str:
    return "ghp_" + _state_secret(settings, "github_token")[:36]


def render_api_key(settings: Settings) -> str:
    return "rnd_" + _state_secret(settings, "render_api_key")[:32]


def platform_state(settings: Settings) -> dict:
    """The Render stand-in's record of the backend service: its env vars (what the processes get), instances,
    autoscaling and deploys."""
    path = state_dir(settings) / "render.json"
    if path.exists():
        return json.loads(path.read_text())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env = {"DATABASE_URL": database_url(settings), "REDIS_URL": redis_url(settings), "JWT_SECRET": jwt_secret(settings),
           "APP_VERSION": "sandbox-1.0.0", "NODE_ENV": "production"}
    return {"env_vars": env, "num_instances": 1, "autoscaling": None, "deploys": [], "created_at": now}


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
            "RENDER_SERVICE_ID": RENDER_SERVICE_ID, "RENDER_OWNER_ID": RENDER_OWNER_ID}


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
        "backend": ("sandbox.backend:app", settings.sandbox_port, "/health", platform_state(settings)["env_vars"]),
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


def backend_pid(settings: Settings) -> int | None:
    return service_pid(settings, "backend")


def start_service(settings: Settings, name: str, wait: float = 30.0) -> int:
    """Start one of the sandbox's processes (uvicorn on loopback) unless it runs; wait until it answers."""
    app, port, health, extra_env = _services(settings)[name]
    pid = service_pid(settings, name)
    if pid is None:
        env = {**os.environ, **extra_env, "PYTHONPATH": str(ROOT)}
        log = open(state_dir(settings) / f"{name}.log", "ab")
        workers = platform_state(settings)["num_instances"] if name == "backend" else 1
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
             *(["--workers", str(workers)] if workers > 1 else [])],
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


def start_backend(settings: Settings, wait: float = 30.0) -> int:
    return start_service(settings, "backend", wait)


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


def stop_backend(settings: Settings, timeout: float = 10.0) -> bool:
    return stop_service(settings, "backend", timeout)


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
