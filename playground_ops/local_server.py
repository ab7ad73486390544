"""A local Prefect server for the demo, the benchmarks and the tests, started in the background when none is named:
on PostgreSQL (a database of a private cluster already there), as Prefect advises for production, or SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def api_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def fresh_prefect_database(admin_url: str, name: str, keep: bool = False) -> str:
    """A database `name` for a Prefect server on the server of admin_url (a libpq URL): empty (dropped first if
    there), or with keep=True the one there is (created if missing); returns its URL for a Prefect server
    (postgresql+asyncpg://...). name is this project's own, never a user's."""
    from urllib.parse import urlsplit

    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+asyncpg://{urlsplit(admin_url).netloc}/{name}"


def start_server(home: Path, host: str = "127.0.0.1", port: int = 4200, timeout: float = 120,
                 ui: bool = True, database_url: str | None = None) -> tuple[str, subprocess.Popen | None]:
    """Start `prefect server start` unless one answers on host:port; returns its API URL and the process we started.
    database_url (postgresql+asyncpg://...) puts the server on PostgreSQL instead of SQLite under home."""
    api_url = f"http://{host}:{port}/api"
    if api_healthy(api_url):
        return api_url, None
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "true" if ui else "false", "PREFECT_UI_URL": f"http://{host}:{port}",
           "PREFECT_API_URL": api_url, "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = open(home / "server.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api_healthy(api_url):
            return api_url, process
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"the Prefect server did not start on {api_url}; see {home / 'server.log'}")
