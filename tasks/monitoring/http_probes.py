"""HTTP probes of the service."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from prefect import task

from playground_ops.redact import redact
from tasks.monitoring.probes import Probe
from tasks.retry import PermanentError, TRANSIENT_HTTP, TransientError, retrying


MAX_BODY = 64 * 1024  # a health body larger than this is cut: the probe judges the status, not a novel


async def _get_within(url: str, deadline_s: float) -> tuple[int, bytes]:
    """GET with one deadline for everything (connect, headers, whole body): a server dripping bytes cannot stretch
    it, and cancelling closes the connection, so nothing is left running once the probe has given up."""
    async with asyncio.timeout(deadline_s):
        async with httpx.AsyncClient(timeout=deadline_s, follow_redirects=False,
                                     headers={"User-Agent": "playground-ops"}) as client:
            async with client.stream("GET", url) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        break
                return response.status_code, bytes(body[:MAX_BODY])


# Submitted probes run in worker threads, where Prefect cannot interrupt them: the probe's own deadline bounds them.
@task(**retrying(retries=2, backoff=0.5, timeout_seconds=None))
def probe_health(url: str, timeout: float = 5.0) -> Probe:
    """GET the service's health endpoint within a total deadline; its status code, latency and body go into the report."""
    start = time.perf_counter()
    try:
        status_code, raw = asyncio.run(_get_within(url, timeout))
    except TimeoutError:
        raise TransientError(f"GET {url} timed out: no complete answer within the probe's {timeout:g} s deadline") from None
    except httpx.TransportError as exc:
        raise TransientError(f"GET {url} failed: {type(exc).__name__} {redact(str(exc))}".strip()) from None
    latency = round((time.perf_counter() - start) * 1000, 1)
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"text": redact(raw[:300].decode("utf-8", "replace"))}
    if status_code != 200:
        error = TransientError if status_code in TRANSIENT_HTTP else PermanentError
        raise error(f"GET {url} answered {status_code} in {latency} ms: {redact(str(body))[:300]}")
    return Probe(component="service", ok=True, latency_ms=latency, details={"status_code": status_code, "body": body})
