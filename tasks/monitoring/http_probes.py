"""HTTP probes of the service."""

from __future__ import annotations

import time

import httpx
from prefect import task

from playground_ops.redact import redact
from tasks.monitoring.probes import Probe
from tasks.retry import PermanentError, TRANSIENT_HTTP, TransientError, retrying


# Submitted probes run in worker threads, where Prefect cannot interrupt them: the client's own timeouts bound them.
@task(**retrying(retries=2, backoff=0.5, timeout_seconds=None))
def probe_health(url: str, timeout: float = 5.0) -> Probe:
    """GET the service's health endpoint; its status code, latency and body go into the report."""
    start = time.perf_counter()
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False, headers={"User-Agent": "playground-ops"})
    except httpx.TransportError as exc:
        raise TransientError(f"GET {url} failed: {type(exc).__name__} {redact(str(exc))}".strip()) from None
    latency = round((time.perf_counter() - start) * 1000, 1)
    try:
        body = response.json()
    except ValueError:
        body = {"text": redact(response.text[:300])}
    if response.status_code != 200:
        error = TransientError if response.status_code in TRANSIENT_HTTP else PermanentError
        raise error(f"GET {url} answered {response.status_code} in {latency} ms: {redact(str(body))[:300]}")
    return Probe(component="service", ok=True, latency_ms=latency,
                 details={"status_code": response.status_code, "body": body})
