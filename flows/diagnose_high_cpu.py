"""diagnose-high-cpu: the guide's 'High CPU Usage' diagnosis, started when HighCpu fires, or on demand."""

from datetime import datetime, timedelta, timezone

from playground_ops.runbook import runbook
from tasks.monitoring.diagnostics import cpu_diagnosis, per_instance, solutions
from tasks.monitoring.samples import read_samples
from tasks.monitoring.values import latest_values
from tasks.database.queries import ACTIVITY
from tasks.database.postgres import read_sections
from tasks.reporting.publish import publish
from tasks.platform.render_platform import read_platform_logs, read_platform_usage
from tasks.reporting.report import Report
from tasks.monitoring.request_metrics import measure_requests
from tasks.targets import load_target


@runbook("diagnose-high-cpu", timeout_seconds=600)
def diagnose_high_cpu(target: str | None = None) -> Report:
    """CPU per instance over the last hour, the recent requests by endpoint and the recent logs; the guide's solutions
    that the evidence supports.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
    """
    t = load_target(target)
    now = datetime.now(timezone.utc)
    usage = read_platform_usage(t.platform, minutes=60)
    traffic = measure_requests(t.database_url, t.app_schema, now - timedelta(minutes=15), now)
    logs = read_platform_logs(t.platform, hours=1, limit=100, level=None)
    activity = read_sections(t.database_url, {"activity": ACTIVITY})["activity"].get("rows") or []
    last = latest_values(read_samples(t.name, now - timedelta(hours=1), now))

    report = Report(runbook="diagnose-high-cpu", target=t.name,
                    tables={"cpu_by_instance": per_instance(usage, "cpu"), "endpoints_last_15_min": traffic["endpoints"],
                            "recent_logs": logs[-100:]},
                    figures={"requests_last_15_min": traffic["requests"], "p95_latency_ms": traffic["p95_latency_ms"]},
                    summary="CPU diagnosis: per-instance usage over the last hour, recent requests and logs")
    return publish(solutions(report, "high-cpu", cpu_diagnosis(usage, traffic, last, activity)))
