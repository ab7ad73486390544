"""Everything the runbooks ask Redis."""

from __future__ import annotations

import time

import redis
from prefect import task
from pydantic import SecretStr

from tasks.monitoring.diagnostics import slowlog_row
from tasks.monitoring.probes import Probe
from tasks.retry import retrying


def connect(redis_url: SecretStr | str, timeout: float = 5.0) -> redis.Redis:
    url = redis_url.get_secret_value() if isinstance(redis_url, SecretStr) else redis_url
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)


# Submitted probes run in worker threads, where Prefect cannot interrupt them: the client's own timeouts bound them.
@task(**retrying(retries=2, backoff=0.5, timeout_seconds=None))
def probe_redis(redis_url: SecretStr) -> Probe:
    """PING, and read used_memory against maxmemory (0 means no limit)."""
    client = connect(redis_url)
    try:
        start = time.perf_counter()
        client.ping()
        latency = round((time.perf_counter() - start) * 1000, 1)
        info = client.info()  # the default sections: server, clients, memory, stats among them, in one round trip
    finally:
        client.close()
    details = {"redis_version": info.get("redis_version"), "maxmemory_policy": info.get("maxmemory_policy"),
               **{k: info.get(k, 0) for k in ("used_memory", "maxmemory", "uptime_in_seconds", "connected_clients",
                                              "keyspace_hits", "keyspace_misses", "evicted_keys", "rejected_connections")}}
    return Probe(component="redis", ok=True, latency_ms=latency, details=details)


def read_slowlog(client: redis.Redis, entries: int) -> list[dict]:
    """SLOWLOG GET with each command's arguments kept apart (redis-py joins them with spaces, which loses where one
    argument ends once Redis has shortened a long one)."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("SLOWLOG GET", lambda response, **options: response)
    out = []
    for entry in raw.execute_command("SLOWLOG GET", entries):
        out.append({"id": entry[0], "start_time": entry[1], "duration": entry[2], "command": list(entry[3]),
                    "client_address": (entry[4].decode("utf-8", "replace") if len(entry) > 4 and
                                       isinstance(entry[4], bytes) else "")})
    return out


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def read_redis_review(redis_url: SecretStr, slowlog_entries: int = 10) -> tuple[dict, list[dict]]:
    """INFO (every section) and the SLOWLOG's newest entries."""
    client = connect(redis_url)
    try:
        info = client.info("everything")
        slowlog = [slowlog_row(e) for e in read_slowlog(client, slowlog_entries)]
    finally:
        client.close()
    return info, slowlog
