"""Incident response on paper (pure): what the assessment says, which containment actions fit the evidence, the
timeline in order, and the post-mortem draft."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.reporting.report import markdown_table

ASSESSMENT = ("health-check", "diagnose-high-cpu", "diagnose-high-memory", "diagnose-database-connections",
              "diagnose-redis")
# what containment may offer, and the runbook that does it
ACTIONS = {"restart": "restart-service: restart the service's instances (zero-downtime) and wait for health",
           "rotate_secrets": "secret-rotation, then its finish at once: new JWT secrets, and tokens signed with the "
                             "old ones refused from then on (every user signs in again)",
           "scale_up": "scale-service: one more instance, then wait for the count to converge and health",
           "rollback": "rollback-deploy: back to the deploy before the live one, then wait for it to be live and healthy"}


def check_recovery_timeout(minutes: float) -> float:
    """A recovery wait of at least OPS_RECOVERY_MIN_SECONDS (1 min): long enough for the health checks to see it."""
    from playground_ops.errors import ConfigError
    from playground_ops.settings import load_settings

    floor = load_settings().recovery_min_seconds
    if minutes * 60 < floor:
        raise ConfigError("recovery_timeout_minutes", f"at least {floor / 60:g} min (OPS_RECOVERY_MIN_SECONDS)",
                          got=f"{minutes:g}")
    return minutes


def assessment_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per runbook of the assessment: its status and summary, or why it could not run."""
    rows = []
    for runbook in ASSESSMENT:
        result = results.get(runbook)
        if result is None:
            continue
        if isinstance(result, BaseException):
            rows.append({"runbook": runbook, "status": "failed", "summary": str(result)[:300]})
        else:
            rows.append({"runbook": runbook, "status": result.status.value, "summary": result.summary,
                         "flow_run_id": result.flow_run_id or ""})
    return rows


def impact_summary(impact: dict[str, Any]) -> str:
    requests, errors = impact.get("requests") or 0, impact.get("server_errors") or 0
    rate = f"{100 * errors / requests:.1f}%" if requests else "n/a"
    since = impact.get("first_error")
    return (f"{errors} of {requests} requests failed ({rate}); {impact.get('users_affected') or 0} of "
            f"{impact.get('users_active') or 0} active users affected" + (f"; first error at {_iso(since)}" if since else "")
            + (f"; endpoints: {', '.join(e['endpoint'] for e in impact.get('endpoints', [])[:5])}"
               if impact.get("endpoints") else ""))


def containment_options(rows: list[dict[str, Any]], impact: dict[str, Any], instances: int | None = None,
                        max_instances: int | None = None, deploys: list[dict[str, Any]] | None = None,
                        since: datetime | None = None, suspected_leak: bool = False) -> dict[str, str]:
    """The actions that fit the evidence, each with why: a restart when the service's health probe fails, its
    memory is high, or its server errors are above 5%; one more instance when the CPU diagnostics found trouble
    and the service runs fewer than its declared maximum; a rollback when the live deploy went live in the window
    (before the first error, when there is one) and an earlier deploy went live before it; a secret rotation that
    revokes the old values at once when the operator suspects a secret leaked (no log or metric shows a leak)."""
    status = {r["runbook"]: r["status"] for r in rows}
    requests, errors = impact.get("requests") or 0, impact.get("server_errors") or 0
    why = []
    if status.get("health-check") in ("critical", "failed"):
        why.append("the health check is " + status["health-check"])
    if status.get("diagnose-high-memory") in ("warning", "critical"):
        why.append("memory diagnostics found trouble")
    if requests and errors / requests > 0.05:
        why.append(f"{100 * errors / requests:.1f}% of requests failed")
    offered = {"restart": "; ".join(why)} if why else {}
    if status.get("diagnose-high-cpu") in ("warning", "critical") and instances and max_instances \
            and instances < max_instances:
        offered["scale_up"] = f"CPU diagnostics found trouble; {instances} of at most {max_instances} instances run"
    done = [d for d in deploys or [] if d.get("status") in ("live", "deactivated")]
    went_live = _when(done[0].get("finishedAt") or done[0].get("createdAt")) if done else None
    first_error = impact.get("first_error")
    if (len(done) >= 2 and went_live and since and went_live >= since
            and (first_error is None or went_live <= first_error)):
        before = f", {(first_error - went_live).total_seconds() / 60:.0f} min before the first error" if first_error else ""
        offered["rollback"] = f"deploy {done[0]['id']} went live at {_iso(went_live)}{before}"
    if suspected_leak:
        offered["rotate_secrets"] = "the incident was declared with a suspected secret leak"
    return offered


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime) or not value:
        return value or None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _iso(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value or "")


def build_timeline(*sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every entry of every source, ordered by time (ISO strings and datetimes alike)."""
    def key(entry: dict[str, Any]) -> str:
        value = entry.get("at")
        return value.isoformat() if isinstance(value, datetime) else str(value or "")

    rows = [{"at": _iso(e.get("at")), "source": e.get("source", ""), "what": e.get("what", "")}
            for source in sources for e in source if e.get("at")]
    return sorted(rows, key=key)


def alert_transitions(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts resolved, read from consecutive health-check reports: a rule firing in one and not in the next."""
    checks = sorted((r for r in runs if r.get("runbook") == "health-check"), key=lambda r: r["at"])
    entries = []
    for before, after in zip(checks, checks[1:]):
        for rule in sorted(set(before.get("firing", [])) - set(after.get("firing", []))):
            entries.append({"at": after["at"], "source": "alert", "what": f"{rule} resolved"})
    return entries


TIMELINE_ROWS = 200  # in the draft; the stored report keeps them all


def _newest(timeline: list[dict[str, Any]], rows: int) -> list[str]:
    """The timeline's newest rows, those nearest the incident (a busy hour before it can hold more than fit)."""
    earlier = len(timeline) - rows
    shown = markdown_table(timeline[-rows:], limit=rows)
    return [f"_{earlier} earlier rows in the stored report_", "", shown] if earlier > 0 else [shown]


def opened_and_resolved(steps: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """An incident record's opening step, and when it was resolved (or "not yet")."""
    resolved = next((s for s in reversed(steps) if s["kind"] == "resolved"), None)
    return (steps[0] if steps else {}), (resolved["at"] if resolved else "not yet")


def follow_ups(items: list[str], actions: list[dict[str, Any]]) -> list[str]:
    """A post-mortem's follow-up checklist: the items, then a decision for each action taken."""
    items = items + [f"{a['action']} was {a['outcome']}: decide whether it should be automatic next time."
                     for a in actions]
    return [f"- [ ] {item}" for item in items]


def post_mortem(incident: str, steps: list[dict[str, Any]], impact: dict[str, Any], timeline: list[dict[str, Any]],
                actions: list[dict[str, Any]]) -> str:
    """The post-mortem draft: summary, impact, timeline, actions taken, what to follow up."""
    opened, resolved = opened_and_resolved(steps)
    follow = follow_ups(["Find the root cause behind the first error in the timeline and write it here.",
                         "Add or tune the alert rule that would have caught this sooner."], actions)
    return "\n".join([
        f"# Post-mortem draft: {incident}", "",
        f"**Severity:** {opened.get('severity', '')} · **Opened:** {opened.get('at', '')} · **Resolved:** {resolved}",
        "",
        "## Summary", "", opened.get("summary") or "(to be written)", "",
        "## Impact", "", impact_summary(impact), "",
        "## Timeline", "", *_newest(timeline, TIMELINE_ROWS), "",
        "## Actions taken", "", markdown_table(actions, limit=50), "",
        "## Follow-up", "", *follow, ""])


def runbook_entries(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runbook runs worth a line in the timeline: every run of another runbook, and a health check only where
    its status changed from the check before."""
    entries, last = [], None
    for run in sorted(runs, key=lambda r: r["at"]):
        if run.get("runbook") == "health-check":
            if run.get("status") == last:
                continue
            last = run.get("status")
        entries.append(run)
    return entries
