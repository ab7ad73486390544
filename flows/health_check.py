"""health-check: the guide's 'Service health checks (every 5 minutes)' and its 'Monitoring and Alerting' rules."""

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Field

from playground_ops.runbook import run_link, runbook, scheduled_at, skipped
from tasks.monitoring.alert_rules import evaluate, incidents_due
from tasks.monitoring.health_assessment import assess_health
from tasks.monitoring.http_probes import probe_health
from tasks.monitoring.samples import read_samples, save_sample
from tasks.monitoring.values import build_sample, trend
from tasks.reporting.notify import emit_alert_fired, emit_incident_due, send_notification
from tasks.database.postgres import probe_database
from tasks.monitoring.probes import optional_result, probe_outcome
from tasks.reporting.publish import publish
from tasks.monitoring.redis_checks import probe_redis
from tasks.platform.render_platform import read_platform_usage
from tasks.reporting.report import Report
from tasks.monitoring.request_metrics import measure_requests
from tasks.monitoring.run_state import read_run_state, write_run_state
from tasks.slots import unless_running
from tasks.targets import load_alert_rules, load_ops_settings, load_target


@runbook("health-check", timeout_seconds=240)
def health_check(target: str | None = None, window_minutes: Annotated[int, Field(ge=1, le=60)] = 5) -> Report:
    """Probe the service, its database and Redis at once, measure traffic and the platform's CPU and memory, and
    evaluate the alert rules: one notification when a rule fires, one when it resolves.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        window_minutes: The traffic window the alert rules judge, in minutes.
    """
    t = load_target(target)
    with unless_running("health-check", t.name) as free:
        if not free:
            why = f"skipped: another health-check of {t.name} is still running"
            return skipped(publish(Report(runbook="health-check", target=t.name, summary=why)), why)
        return check_target(t, window_minutes, scheduled_at())


def check_target(t, window_minutes: int, now: datetime) -> Report:
    """The check itself, once this run holds the target's slot."""
    rules = load_alert_rules()
    probes = {"service": probe_health.submit(t.health_url), "database": probe_database.submit(t.database_url),
              "redis": probe_redis.submit(t.redis_url)}
    traffic = measure_requests.submit(t.database_url, t.app_schema, now - timedelta(minutes=window_minutes), now)
    usage = read_platform_usage.submit(t.platform) if t.platform.kind == "render" else None
    previous = read_run_state("health-check", t.name)  # probe streaks and alert states, in one Variable
    hour = read_samples.submit(t.name, now - timedelta(hours=1), now)
    results = [probe_outcome(component, future) for component, future in probes.items()]
    health = assess_health(results, previous)
    failed = max(health.state["consecutive_failures"].values(), default=0)
    history = optional_result(hour) or []  # the metrics store unreachable: no history, the check goes on
    sample = build_sample(now, results, failed, optional_result(traffic), optional_result(usage),
                          (history or [None])[-1], platform_configured=usage is not None)
    stored = save_sample.submit(t.name, sample)
    alerts = evaluate(rules, sample["values"], previous.get("alerts", {}), now, t.name, run_link(),
                      sample["reasons"])
    settings = load_ops_settings()
    due = incidents_due(rules, alerts.state, now, settings.incident_after_seconds)  # marks them in the state
    block = settings.notification_block if alerts.notifications else None
    for note in alerts.notifications:
        send_notification(note.subject, note.body, block)
    state = {**health.state, "alerts": alerts.state}
    if state != previous:  # written on changes only: a steady check costs no write
        write_run_state("health-check", t.name, state)
    stored = optional_result(stored)
    for rule in alerts.fired:
        emit_alert_fired(t.name, rule.name, rule.severity, rule.diagnostics, sample["values"].get(rule.metric))
    for rule in due:
        emit_incident_due(t.name, rule.name, rule.severity, alerts.state[rule.name]["fired_at"])

    firing = [r for r in alerts.rows if r["state"] == "firing"]
    report = Report(runbook="health-check", target=t.name, status=health.status, findings=health.findings,
                    figures={**health.figures, **{k: v for k, v in sample["values"].items() if v is not None}},
                    tables={"probes": health.table, "alert_rules": alerts.rows,
                            "last_hour": trend(history + [sample]),
                            "endpoints": sample["traffic"].get("endpoints", []), "instances": sample["instances"]},
                    summary=f"{sum(p.ok for p in results)}/{len(results)} probes answered; "
                            f"{len(firing)} alert rules firing" + (f" ({', '.join(r['rule'] for r in firing)})" if firing else ""))
    for row in firing:
        report.add(row["severity"], f"alert {row['rule']} firing: {row['expression']} (value {row['value']})")
    if stored is None:
        report.add("warning", "this check's sample could not be stored (OPS_METRICS_URL): trends will have a gap")
    return publish(report)
