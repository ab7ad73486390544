"""What a probe of one component found: reachable or not, how fast, and the figures it read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from playground_ops.redact import redact


class Probe(BaseModel):
    component: str  # service | database | redis
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def failed(cls, component: str, exc: BaseException) -> "Probe":
        message = redact(str(exc)) or type(exc).__name__
        return cls(component=component, ok=False, error=f"{type(exc).__name__}: {message}"[:500])


def probe_outcome(component: str, future: Any) -> Probe:
    """The probe a submitted task returned, or a failed probe carrying the error it ended with after its retries."""
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return Probe.failed(component, outcome)
    return outcome


def optional_result(future: Any) -> Any:
    """What a submitted task returned, or None when it failed (the health check then marks its values missing)."""
    if future is None:
        return None
    outcome = future.result(raise_on_failure=False)
    return None if isinstance(outcome, BaseException) else outcome
