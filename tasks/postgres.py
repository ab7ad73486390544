"""Everything the runbooks ask PostgreSQL."""

from __future__ import annotations

import time

import psycopg
from prefect import task
from pydantic import SecretStr

from tasks.probes import Probe
from tasks.retry import retrying

APPLICATION_NAME = "playground-ops"


def connect(database_url: SecretStr | str, autocommit: bool = True, timeout: int = 5) -> psycopg.Connection:
    """A connection labelled playground-ops in pg_stat_activity, so operators can tell it from the app's."""
    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout, application_name=APPLICATION_NAME)


# Submitted probes run in worker threads, where Prefect cannot interrupt them: the client's own timeouts bound them.
@task(**retrying(retries=2, backoff=0.5, timeout_seconds=None))
def probe_database(database_url: SecretStr) -> Probe:
    """Connect, SELECT 1, and read the server version and connections in use against max_connections."""
    start = time.perf_counter()
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("SELECT 1").fetchone()
        latency = round((time.perf_counter() - start) * 1000, 1)
        version, in_use, max_conn, reserved = conn.execute(
            """SELECT current_setting('server_version'),
                      (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                      current_setting('max_connections')::int,
                      current_setting('superuser_reserved_connections')::int""").fetchone()
    return Probe(component="database", ok=True, latency_ms=latency,
                 details={"server_version": version, "connections_in_use": in_use, "max_connections": max_conn,
                          "reserved_connections": reserved})
