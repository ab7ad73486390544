"""Judging a health check's probes (pure): which failed, and for how many checks in a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tasks.monitoring.probes import Probe
from tasks.reporting.report import Finding, Severity, Status

WHAT = {"service": "the service's /health", "database": "the database", "redis": "Redis"}
NEXT_STEP = {
    "service": "Check the service's logs and recent deploys; restart it if it is hung.",
    "database": "Check the database is up and accepting connections (pg_isready, max_connections).",
    "redis": "Check Redis is up (redis-cli ping) and its memory and client limits.",
}


@dataclass
class HealthAssessment:
    status: Status
    findings: list[Finding]
    state: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)


def assess_health(probes: list[Probe], previous: dict[str, Any], now: datetime | None = None,
                  failures_for_critical: int = 2) -> HealthAssessment:
    """A component failing `failures_for_critical` consecutive checks is critical, once is a warning (the capacity
    thresholds are alert rules, in the rules file)."""
    now = now or datetime.now(timezone.utc)
    before = previous.get("consecutive_failures", {})
    streaks: dict[str, int] = {}
    findings: list[Finding] = []
    figures: dict[str, Any] = {}
    table = []
    for probe in probes:
        streaks[probe.component] = 0 if probe.ok else int(before.get(probe.component, 0)) + 1
        table.append({"component": probe.component, "ok": probe.ok, "latency_ms": probe.latency_ms,
                      "consecutive_failures": streaks[probe.component], "error": probe.error or ""})
        if probe.latency_ms is not None:
            figures[f"{probe.component}_latency_ms"] = probe.latency_ms
        if not probe.ok:
            n = streaks[probe.component]
            if n >= failures_for_critical:
                findings.append(Finding(severity=Severity.CRITICAL, next_step=NEXT_STEP[probe.component],
                                        message=f"{WHAT[probe.component]} failed {n} consecutive checks",
                                        evidence={"error": probe.error, "consecutive_failures": n}))
            else:
                findings.append(Finding(severity=Severity.WARNING, next_step=NEXT_STEP[probe.component],
                                        message=f"{WHAT[probe.component]} failed this check; critical if it fails "
                                                f"{failures_for_critical - n} more in a row",
                                        evidence={"error": probe.error, "consecutive_failures": n}))
    findings += _dependency_findings(probes, figures)

    status = Status.worst(*(f.severity.status for f in findings))
    since = previous.get("since") if previous.get("status") == status.value else now.isoformat()
    state = {"status": status.value, "since": since, "consecutive_failures": streaks}
    return HealthAssessment(status, findings, state, figures, table)


def _dependency_findings(probes: list[Probe], figures: dict[str, Any]) -> list[Finding]:
    findings = []
    for probe in (p for p in probes if p.ok):
        d = probe.details
        if probe.component == "database" and d.get("max_connections"):
            figures["database_connections_in_use"] = d["connections_in_use"]
        if probe.component == "redis":
            figures["redis_used_memory"] = d.get("used_memory", 0)
        if probe.component == "service":
            body = d.get("body") if isinstance(d.get("body"), dict) else {}
            degraded = {k: v for k, v in body.items() if k in ("database", "redis") and v not in ("ok", True)}
            if degraded:
                findings.append(Finding(severity=Severity.WARNING, evidence=degraded,
                                        message="the service reports a degraded dependency: " + ", ".join(degraded)))
    return findings
