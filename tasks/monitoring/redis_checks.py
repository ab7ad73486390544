"""Everything the runbooks ask Redis."""

from __future__ import annotations

import time

import redis
from prefect import task
from pydantic import SecretStr

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


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def read_redis_review(redis_url: SecretStr, slowlog_entries: int = 10) -> tuple[dict, list[dict]]:
    """INFO (every section) and the SLOWLOG's newest entries."""
    client = connect(redis_url)
    try:
        info = client.info("everything")
        slowlog = [{"id": e["id"], "start_time": e["start_time"], "duration_us": e["duration"],
                    "command": (e["command"] if isinstance(e["command"], str) else " ".join(map(str, e["command"])))[:200],
                    "client": e.get("client_address", "")}
                   for e in client.slowlog_get(slowlog_entries)]
    finally:
        client.close()
    return info, slowlog
