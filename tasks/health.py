"""Judging a health check (pure): which probes failed, for how many checks in a row, and what changed since the last."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tasks.probes import Probe
from tasks.report import Finding, Severity, Status

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
    transition: str | None  # "critical" when the check goes critical, "recovered" when it comes back, else None
    figures: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)


def assess_health(probes: list[Probe], previous: dict[str, Any], now: datetime | None = None,
                  failures_for_critical: int = 2, connections_warning: float = 0.8,
                  redis_memory_warning: float = 0.7) -> HealthAssessment:
    """The guide's rules: a component failing `failures_for_critical` consecutive checks is critical, once is a warning;
    connection pool above 80% and Redis memory above 70% are warnings."""
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
    findings += _capacity_findings(probes, figures, connections_warning, redis_memory_warning)

    status = Status.worst(*(f.severity.status for f in findings))
    was_critical = previous.get("status") == Status.CRITICAL.value
    transition = None
    if status == Status.CRITICAL and not was_critical:
        transition = "critical"
    elif status != Status.CRITICAL and was_critical:
        transition = "recovered"
    since = previous.get("since") if previous.get("status") == status.value else now.isoformat()
    state = {"status": status.value, "since": since, "consecutive_failures": streaks}
    return HealthAssessment(status, findings, state, transition, figures, table)


def _capacity_findings(probes: list[Probe], figures: dict[str, Any], connections_warning: float,
                       redis_memory_warning: float) -> list[Finding]:
    findings = []
    for probe in (p for p in probes if p.ok):
        d = probe.details
        if probe.component == "database" and d.get("max_connections"):
            usable = d["max_connections"] - d.get("reserved_connections", 0)
            ratio = d["connections_in_use"] / usable if usable > 0 else 1.0
            figures["database_connections_in_use"] = d["connections_in_use"]
            figures["database_connection_utilisation"] = round(ratio, 3)
            if ratio > connections_warning:
                findings.append(Finding(
                    severity=Severity.WARNING,
                    message=f"database connection pool at {ratio:.0%} (> {connections_warning:.0%})",
                    evidence={"in_use": d["connections_in_use"], "usable": usable},
                    next_step="Look for idle or leaked connections; raise the pool size or max_connections."))
        if probe.component == "redis":
            figures["redis_used_memory"] = d.get("used_memory", 0)
            if d.get("maxmemory"):
                ratio = d["used_memory"] / d["maxmemory"]
                figures["redis_memory_utilisation"] = round(ratio, 3)
                if ratio > redis_memory_warning:
                    findings.append(Finding(
                        severity=Severity.WARNING,
                        message=f"Redis memory at {ratio:.0%} of maxmemory (> {redis_memory_warning:.0%})",
                        evidence={"used_memory": d["used_memory"], "maxmemory": d["maxmemory"]},
                        next_step="Reduce key count or TTLs, or raise maxmemory."))
        if probe.component == "service":
            body = d.get("body") if isinstance(d.get("body"), dict) else {}
            degraded = {k: v for k, v in body.items() if k in ("database", "redis") and v not in ("ok", True)}
            if degraded:
                findings.append(Finding(severity=Severity.WARNING, evidence=degraded,
                                        message="the service reports a degraded dependency: " + ", ".join(degraded)))
    return findings


def notification_text(runbook: str, target: str, assessment: HealthAssessment, ui_url: str | None) -> tuple[str, str]:
    """Subject and body of the one notification sent when a check goes critical or recovers."""
    if assessment.transition == "critical":
        subject = f"[CRITICAL] {runbook} on {target}"
        lines = [f"{runbook} on {target} is critical:"] + [
            f"- {f.message}" for f in assessment.findings if f.severity == Severity.CRITICAL]
    else:
        subject = f"[RESOLVED] {runbook} on {target}"
        lines = [f"{runbook} on {target} has recovered; status is now {assessment.status.value}."]
    if ui_url:
        lines.append(f"Run: {ui_url}")
    return subject, "\n".join(lines)
