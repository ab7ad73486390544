"""Every call to the hosting platform's API: Render's REST API v1 (https://api-docs.render.com), behind a small
interface so another platform could be added.

Render's manners, honoured here: `Authorization: Bearer <key>`; lists are `[{cursor, <resource>}]`, paged by passing
the last cursor (limit at most 100); logs are paged by time (`nextStartTime`/`nextEndTime` while `hasMore`); 429 comes
with `Retry-After` and the `Ratelimit-Limit/-Remaining/-Reset` headers, so the client waits as told; errors are
`{"id", "message"}`. Transport errors, 429 and 5xx are retried with backoff, then raised as transient; 401, 403, 404
and other 4xx are raised at once with Render's message and the service id.

Restarts, deploys, rollbacks and scaling have no idempotency key at Render, so they are never sent twice blindly: sent
again only when the platform certainly did not take them (the connection refused, 429); after a timeout or a 5xx, the
platform is read (its events, deploys, instances, the service) to learn whether the call took, and the call is sent
once more only when, after a while, nothing shows it did, and the platform has answered those reads without a break
for a while: a platform that is frozen or down may still hold the call and do it when it wakes, so it is never sent
the call again (the error says whether it was taken is unknown).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from prefect import task
from pydantic import SecretStr

from playground_ops.settings import Platform
from tasks.retry import TRANSIENT_HTTP, PermanentError, TransientError, retrying

# Transport errors that happen before a request leaves: it cannot have reached the platform.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
RESTART_EVENTS = {"server_restarted", "server_failed"}


class Unconfirmed(TransientError):
    """A call that is not idempotent may or may not have been taken (a timeout or a 5xx after it was sent)."""


DEPLOY_DONE = {"live", "deactivated", "build_failed", "update_failed", "pre_deploy_failed", "canceled"}


@dataclass
class Series:
    """One time series of a metric: its labels (instance, ...), unit, and (epoch seconds, value) points."""

    labels: dict[str, str]
    unit: str
    points: list[tuple[float, float]]


class PlatformClient(Protocol):
    """What the runbooks ask of a hosting platform (Render implements it; another platform could)."""

    waited: float  # seconds spent honouring rate limits and backoff

    def list_env_vars(self, service_id: str) -> dict[str, str]: ...
    def set_env_var(self, service_id: str, key: str, value: SecretStr) -> None: ...
    def delete_env_var(self, service_id: str, key: str) -> None: ...
    def restart(self, service_id: str) -> None: ...
    def create_deploy(self, service_id: str, deploy_mode: str = "deploy_only") -> dict | None: ...
    def get_deploy(self, service_id: str, deploy_id: str) -> dict: ...
    def deploys(self, service_id: str, limit: int = 20) -> list[dict]: ...
    def rollback(self, service_id: str, deploy_id: str) -> dict: ...
    def wait_for_deploy(self, service_id: str, deploy_id: str, timeout: float = 900, poll: float = 2.0) -> dict: ...
    def scale(self, service_id: str, instances: int) -> None: ...
    def get_service(self, service_id: str) -> dict: ...
    def set_autoscaling(self, service_id: str, enabled: bool, minimum: int, maximum: int, cpu_percent: int | None,
                        memory_percent: int | None) -> dict: ...
    def delete_autoscaling(self, service_id: str) -> None: ...
    def instances(self, service_id: str) -> list[dict]: ...
    def events(self, service_id: str, start: datetime, end: datetime) -> list[dict]: ...
    def metrics(self, kind: str, service_id: str, start: datetime, end: datetime, resolution_s: int = 60,
                **filters: Any) -> list[Series]: ...
    def logs(self, owner_id: str, service_id: str, start: datetime, end: datetime, limit: int = 50,
             **filters: Any) -> list[dict]: ...


class Render:
    """Render's REST API v1 (or the sandbox's Render-compatible stand-in)."""

    def __init__(self, api_url: str, api_key: SecretStr, client: httpx.Client | None = None,
                 max_attempts: int = 4, backoff: float = 1.0, max_wait: float = 60.0, confirm_s: float = 60.0,
                 confirm_poll_s: float = 2.0, timeout_s: float = 30.0):
        self.api_url = api_url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout_s, headers={
            "Authorization": f"Bearer {api_key.get_secret_value()}", "Accept": "application/json",
            "User-Agent": "playground-ops"})
        self.max_attempts, self.backoff, self.max_wait = max_attempts, backoff, max_wait
        self.waited = 0.0  # seconds spent honouring rate limits and backoff (reported by the callers)
        self.confirm_s, self.confirm_poll_s = confirm_s, confirm_poll_s
        # how long the platform must have answered reads without a break before they can show a call was not taken:
        # a frozen platform may still hold the call and do it when it wakes, and a call being done may not show yet
        self.settle_s = confirm_s / 2
        self.confirmed: list[str] = []  # calls whose answer was lost and which the platform showed taken
        self._confirming = False

    # ---------------------------------------------------------------- transport
    def _call(self, method: str, path: str, service_id: str | None = None, once: bool = False,
              **kwargs: Any) -> httpx.Response:
        """The request, retried on transport errors, 429 and 5xx; with `once` (a call that is not idempotent),
        retried only when it cannot have been taken, and an Unconfirmed error raised when it may have been."""
        attempts = 1 if self._confirming else self.max_attempts  # confirming: the reads' loop is the retry
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.request(method, f"{self.api_url}{path}", **kwargs)
            except httpx.TransportError as exc:
                reason = f"Render {method} {path}: {type(exc).__name__}"
                if once and not isinstance(exc, NOT_SENT):
                    raise Unconfirmed(f"{reason} after it was sent: the platform may have taken it") from None
                if attempt == attempts:
                    raise TransientError(f"{reason}, after {attempt} attempts") from None
                self._sleep(self._backoff(attempt))
                continue
            if response.status_code in TRANSIENT_HTTP:
                if once and response.status_code != 429:  # 429: refused before anything was done
                    raise Unconfirmed(f"{self._explain(method, path, response, service_id)}: the platform may "
                                      "have taken it")
                if attempt == attempts:
                    raise TransientError(f"{self._explain(method, path, response, service_id)}, after {attempt} attempts")
                self._sleep(self._wait_for(response.headers, attempt))
                continue
            if response.status_code >= 400:
                raise PermanentError(self._explain(method, path, response, service_id))
            self._respect_remaining(response)
            return response
        raise AssertionError("unreachable")

    def _send_once(self, method: str, path: str, service_id: str, happened: Callable[[], Any],
                   **kwargs: Any) -> Any:
        """A call the platform has no idempotency key for. Its response; or, when its answer was lost after it was
        sent, what `happened()` found on the platform to show it took (what it compares with was read before the
        first send; read every few seconds, for up to confirm_s); when nothing shows it did, it is sent once more,
        and a second lost answer is raised."""
        for attempt in (1, 2):
            try:
                return self._call(method, path, service_id, once=True, **kwargs)
            except Unconfirmed as exc:
                found, answered = self._confirm(happened)
                if found:
                    self.confirmed.append(f"{method} {path}: {exc}; the platform shows it was taken, so it was not "
                                          "sent again")
                    return found
                if not answered:
                    raise Unconfirmed(f"{exc}; the platform did not answer steadily for {self.settle_s:.0f} s within "
                                      f"{self._confirm_limit():.0f} s after it, so whether it was taken is unknown: "
                                      "not sent again") from None
                if attempt == 2:
                    raise Unconfirmed(f"{exc}; sent twice, {self.confirm_s:.0f} s apart, and the platform shows "
                                      "neither taken") from None
        raise AssertionError("unreachable")

    def _confirm_limit(self) -> float:
        return self.confirm_s + self.settle_s

    def _confirm(self, happened: Callable[[], Any]) -> tuple[Any, bool]:
        """What `happened` finds, read every confirm_poll_s for at least confirm_s (a platform that does not answer
        is read again), and whether the platform answered: (found, True) when it showed the call taken; (None, True)
        when it answered for settle_s without a break at the end of the window and nothing showed it (the call was
        not taken); (None, False) when it never answered that long within _confirm_limit() (frozen or down: the
        call may still be held and done when it wakes)."""
        start = time.monotonic()
        answering_since = None
        while True:
            self._confirming = True
            try:
                found = happened()
                if found:
                    return found, True
                answering_since = answering_since if answering_since is not None else time.monotonic()
            except (TransientError, httpx.TransportError):
                answering_since = None
            finally:
                self._confirming = False
            now = time.monotonic()
            if now - start >= self.confirm_s and answering_since is not None and now - answering_since >= self.settle_s:
                return None, True
            if now - start >= self._confirm_limit():
                return None, False
            time.sleep(self.confirm_poll_s)

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait, self.backoff * 2 ** (attempt - 1) * (1 + random.random() * 0.5))

    def _wait_for(self, headers: httpx.Headers, attempt: int) -> float:
        """Retry-After (seconds) when given, else Ratelimit-Reset, else exponential backoff with jitter."""
        for header in ("Retry-After", "Ratelimit-Reset"):
            value = headers.get(header)
            if value and value.strip().isdigit():
                seconds = int(value)
                if seconds > 10 * 365 * 86400:  # an epoch time, as Render's page describes Ratelimit-Reset
                    seconds = max(0, seconds - int(time.time()))
                return min(self.max_wait, float(seconds))
        return self._backoff(attempt)

    def _respect_remaining(self, response: httpx.Response) -> None:
        """When the window's budget is spent, wait for its reset before the next call rather than earn a 429."""
        if response.headers.get("Ratelimit-Remaining", "").strip() == "0":
            self._sleep(self._wait_for(response.headers, 1))

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        time.sleep(seconds)

    @staticmethod
    def _explain(method: str, path: str, response: httpx.Response, service_id: str | None) -> str:
        try:
            body = response.json()
        except ValueError:
            body = {}
        message = body.get("message") if isinstance(body, dict) else None
        hint = {401: "the API key is missing, wrong or revoked (RENDER_API_KEY)",
                403: "the API key's workspace may not act on this service",
                404: "no such service visible to this API key (RENDER_SERVICE_ID)"}.get(response.status_code, "")
        return (f"Render {method} {path} answered {response.status_code} {message or response.reason_phrase}"
                + (f" for service {service_id}" if service_id else "") + (f" ({hint})" if hint else ""))

    def _paged(self, path: str, key: str, service_id: str | None = None, params: dict | None = None) -> list[dict]:
        """Every item of a cursor-paginated list."""
        items: list[dict] = []
        cursor = None
        while True:
            page = self._call("GET", path, service_id, params={**(params or {}), "limit": 100,
                                                               **({"cursor": cursor} if cursor else {})}).json()
            items += [entry[key] for entry in page]
            if len(page) < 100:
                return items
            cursor = page[-1]["cursor"]

    # ---------------------------------------------------------------- env vars
    def list_env_vars(self, service_id: str) -> dict[str, str]:
        return {e["key"]: e["value"] for e in self._paged(f"/services/{service_id}/env-vars", "envVar", service_id)}

    def set_env_var(self, service_id: str, key: str, value: SecretStr) -> None:
        self._call("PUT", f"/services/{service_id}/env-vars/{key}", service_id,
                   json={"value": value.get_secret_value()})  # the response echoes the value: never kept

    def delete_env_var(self, service_id: str, key: str) -> None:
        self._call("DELETE", f"/services/{service_id}/env-vars/{key}", service_id)

    # ---------------------------------------------------------------- restarts, deploys, scaling
    def _restart_events(self, service_id: str) -> set[str]:
        now = datetime.now(timezone.utc)
        return {e["id"] for e in self.events(service_id, now - timedelta(hours=1), now + timedelta(minutes=1))
                if e.get("type") in RESTART_EVENTS}

    def restart(self, service_id: str) -> None:
        try:
            before = {i["id"] for i in self.instances(service_id)}
        except PermanentError:  # a service without instances (a static site): the restart's own answer says why
            before = set()
        events_before = self._restart_events(service_id) if before else set()

        def restarted() -> bool:
            """A restart event that was not there before the call, or none of the instances running before it
            still running."""
            if self._restart_events(service_id) - events_before:
                return True
            return bool(before) and not before & {i["id"] for i in self.instances(service_id)}

        self._send_once("POST", f"/services/{service_id}/restart", service_id, restarted)

    def _new_deploy(self, service_id: str) -> Callable[[], dict | None]:
        before = {d["id"] for d in self.deploys(service_id, 20)}

        def created() -> dict | None:
            """The newest deploy that was not there before the call, if any."""
            return next((d for d in self.deploys(service_id, 20) if d["id"] not in before), None)
        return created

    def create_deploy(self, service_id: str, deploy_mode: str = "deploy_only") -> dict | None:
        """Start a deploy; the deploy, or None when Render queued it without one (202)."""
        answer = self._send_once("POST", f"/services/{service_id}/deploys", service_id,
                                 self._new_deploy(service_id), json={"deployMode": deploy_mode})
        if isinstance(answer, dict):  # its answer was lost: the deploy the platform shows
            return answer
        return answer.json() if answer.status_code == 201 else None

    def get_deploy(self, service_id: str, deploy_id: str) -> dict:
        return self._call("GET", f"/services/{service_id}/deploys/{deploy_id}", service_id).json()

    def rollback(self, service_id: str, deploy_id: str) -> dict:
        """Roll back to an earlier deploy (POST /services/{id}/rollback): the new deploy it starts."""
        answer = self._send_once("POST", f"/services/{service_id}/rollback", service_id,
                                 self._new_deploy(service_id), json={"deployId": deploy_id})
        return answer if isinstance(answer, dict) else answer.json()

    def deploys(self, service_id: str, limit: int = 20) -> list[dict]:
        """The newest deploys, newest first (GET /services/{id}/deploys)."""
        return [item["deploy"] for item in self._call("GET", f"/services/{service_id}/deploys", service_id,
                                                      params={"limit": min(limit, 100)}).json()]

    def wait_for_deploy(self, service_id: str, deploy_id: str, timeout: float = 900, poll: float = 2.0) -> dict:
        """Poll a deploy until it is live or has failed."""
        deadline = time.monotonic() + timeout
        while True:
            deploy = self.get_deploy(service_id, deploy_id)
            if deploy["status"] in DEPLOY_DONE or time.monotonic() > deadline:
                return deploy
            time.sleep(poll)

    def get_service(self, service_id: str) -> dict:
        """The service (its serviceDetails hold numInstances and the autoscaling settings)."""
        return self._call("GET", f"/services/{service_id}", service_id).json()

    def scale(self, service_id: str, instances: int) -> None:
        def scaled() -> bool:
            return (self.get_service(service_id).get("serviceDetails") or {}).get("numInstances") == instances

        self._send_once("POST", f"/services/{service_id}/scale", service_id, scaled, json={"numInstances": instances})

    def set_autoscaling(self, service_id: str, enabled: bool, minimum: int, maximum: int, cpu_percent: int | None,
                        memory_percent: int | None) -> dict:
        criteria = {"cpu": {"enabled": cpu_percent is not None, "percentage": cpu_percent or 70},
                    "memory": {"enabled": memory_percent is not None, "percentage": memory_percent or 70}}
        return self._call("PUT", f"/services/{service_id}/autoscaling", service_id,
                          json={"enabled": enabled, "min": minimum, "max": maximum, "criteria": criteria}).json()

    def delete_autoscaling(self, service_id: str) -> None:
        self._call("DELETE", f"/services/{service_id}/autoscaling", service_id)

    def instances(self, service_id: str) -> list[dict]:
        return self._call("GET", f"/services/{service_id}/instances", service_id).json()

    def events(self, service_id: str, start: datetime, end: datetime) -> list[dict]:
        """The service's events in the window (restarts, deploys, instance count and autoscaling changes), oldest first."""
        found = self._paged(f"/services/{service_id}/events", "event", service_id,
                            params={"startTime": start.isoformat(), "endTime": end.isoformat()})
        return sorted(found, key=lambda e: e.get("timestamp", ""))

    # ---------------------------------------------------------------- metrics and logs
    def metrics(self, kind: str, service_id: str, start: datetime, end: datetime, resolution_s: int = 60,
                **filters: Any) -> list[Series]:
        """GET /metrics/{kind} (cpu, memory, cpu-limit, memory-limit, http-requests, http-latency, ...)."""
        params = {"resource": service_id, "startTime": int(start.timestamp()), "endTime": math.ceil(end.timestamp()),
                  "resolutionSeconds": resolution_s, **filters}
        data = self._call("GET", f"/metrics/{kind}", service_id, params=params).json()
        return [Series({label["field"]: label["value"] for label in s.get("labels", [])}, s.get("unit", ""),
                       [(_epoch(p["timestamp"]), float(p["value"])) for p in s.get("values", [])]) for s in data]

    def logs(self, owner_id: str, service_id: str, start: datetime, end: datetime, limit: int = 50,
             **filters: Any) -> list[dict]:
        """The newest `limit` log lines in the window (paged by time, newest first), oldest first."""
        lines: list[dict] = []
        window = {"startTime": start.isoformat(), "endTime": end.isoformat()}
        while len(lines) < limit:
            page = self._call("GET", "/logs", service_id, params={
                "ownerId": owner_id, "resource": service_id, "direction": "backward",
                "limit": min(100, limit - len(lines)), **window, **filters}).json()
            lines += page.get("logs", [])
            if not page.get("hasMore"):
                break
            window = {"startTime": page["nextStartTime"], "endTime": page["nextEndTime"]}
        return sorted(lines[:limit], key=lambda line: line["timestamp"])


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def client_for(platform: Platform) -> PlatformClient:
    """The platform client of a target's `platform` settings (Render, or the sandbox's Render-compatible one)."""
    if platform.kind != "render" or not platform.service_id or platform.api_key is None:
        raise PermanentError("target platform: expected kind render with service_id and api_key "
                             "(RENDER_SERVICE_ID and RENDER_API_KEY)")
    from playground_ops.settings import load_settings

    settings = load_settings()
    return Render(platform.api_url, platform.api_key, timeout_s=settings.platform_timeout_seconds,
                  confirm_s=settings.platform_confirm_seconds)


@task(**retrying(retries=0, timeout_seconds=120))
def read_platform_usage(platform: Platform, minutes: int = 10, resolution_s: int = 60) -> dict[str, Any]:
    """CPU and memory per instance over the last minutes, the service's limits, and which instances run now (the
    window still holds replaced ones); the client retries and honours rate limits itself."""
    render = client_for(platform)
    end = datetime.now(timezone.utc)
    start = end - timedelta(minutes=minutes)
    usage: dict[str, Any] = {}
    for kind in ("cpu", "memory", "cpu-limit", "memory-limit"):
        usage[kind] = [{"instance": s.labels.get("instance", ""), "unit": s.unit, "points": s.points}
                       for s in render.metrics(kind, platform.service_id, start, end, resolution_s)]
    usage["running"] = [i["id"] for i in render.instances(platform.service_id)]
    usage["rate_limit_wait_s"] = round(render.waited, 1)
    return usage


@task(**retrying(retries=0, timeout_seconds=300))
def read_platform_logs(platform: Platform, hours: float = 24, limit: int = 50, level: str | None = "error",
                       text: str | None = None) -> list[dict]:
    """The service's newest log lines (the guide's `render logs --level error --tail 50`), or those containing text."""
    render = client_for(platform)
    if not platform.owner_id:
        raise PermanentError("target platform: expected owner_id (RENDER_OWNER_ID), which Render's logs API asks for")
    end = datetime.now(timezone.utc)
    filters = {**({"level": level} if level else {}), **({"text": text} if text else {})}
    return [{"timestamp": line["timestamp"], "message": line["message"][:500],
             **{label["name"]: label["value"] for label in line.get("labels", [])}}
            for line in render.logs(platform.owner_id, platform.service_id, end - timedelta(hours=hours), end, limit,
                                    **filters)]
