"""One shared answer to 'is this failure worth retrying?', and the retry settings every I/O task uses."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from prefect.tasks import exponential_backoff

TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class TransientError(Exception):
    """A failure that may pass by itself: worth another attempt."""


class PermanentError(Exception):
    """A failure another attempt will not fix (bad credentials, not found, invalid input)."""


def is_transient(exc: BaseException) -> bool:
    """Connection errors, timeouts, 429 and 5xx, PostgreSQL connection loss and S3 throttling are transient."""
    import psycopg
    import redis

    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in TRANSIENT_HTTP
    if isinstance(exc, (httpx.TransportError, TimeoutError, ConnectionError, socket.timeout)):
        return True
    if isinstance(exc, psycopg.Error):
        return postgres_error_is_transient(exc)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    try:
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError

        if isinstance(exc, BotoConnectionError):
            return True
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return code in {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"} or status >= 500
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    return False


# SQLSTATE classes that may pass by themselves: connection exceptions, insufficient resources, operator intervention
# (admin or crash shutdown, cannot connect now), serialization failures and deadlocks. Not a query cancelled by a
# statement timeout (57014), nor an object in the wrong state (55xxx, e.g. an unpopulated materialized view).
TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01")


def postgres_error_is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (no SQLSTATE: the client's own error) or a transient SQLSTATE."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith(TRANSIENT_SQLSTATES)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry only what is transient."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by result()
        return is_transient(exc)
    return False


def retrying(retries: int = 3, backoff: float = 1.0, timeout_seconds: float | None = 30) -> dict[str, Any]:
    """Keyword arguments for @task: exponential backoff with jitter, transient failures only, a timeout."""
    from prefect.cache_policies import NO_CACHE

    return dict(retries=retries, retry_delay_seconds=exponential_backoff(backoff_factor=backoff),
                retry_jitter_factor=0.5, retry_condition_fn=retry_transient, timeout_seconds=timeout_seconds,
                cache_policy=NO_CACHE, persist_result=False)
