"""health-check: the guide's 'Service health checks (every 5 minutes)', with database and Redis monitoring."""


from prefect.runtime import flow_run

from playground_ops.runbook import runbook
from tasks.health import assess_health, notification_text
from tasks.http_probes import probe_health
from tasks.notify import send_notification
from tasks.postgres import probe_database
from tasks.probes import probe_outcome
from tasks.publish import publish
from tasks.redis_checks import probe_redis
from tasks.report import Report
from tasks.run_state import read_run_state, write_run_state
from tasks.targets import load_ops_settings, load_target


@runbook("health-check", timeout_seconds=120)
def health_check(target: str | None = None) -> Report:
    """Probe the service, its database and Redis at once; critical when a probe fails two checks in a row."""
    t = load_target(target)
    probes = {"service": probe_health.submit(t.health_url),
              "database": probe_database.submit(t.database_url),
              "redis": probe_redis.submit(t.redis_url)}
    results = [probe_outcome(component, future) for component, future in probes.items()]
    previous = read_run_state("health-check", t.name)
    health = assess_health(results, previous)
    if health.state != previous:
        write_run_state("health-check", t.name, health.state)
    if health.transition:
        subject, body = notification_text("health-check", t.name, health, flow_run.ui_url)
        send_notification(subject, body, load_ops_settings().notification_block)

    report = Report(runbook="health-check", target=t.name, status=health.status, findings=health.findings,
                    figures=health.figures, tables={"probes": health.table},
                    summary=f"{sum(p.ok for p in results)}/{len(results)} probes answered; "
                            + (f"went {health.transition}" if health.transition else f"status {health.status.value}"))
    return publish(report)
