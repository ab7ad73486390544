"""diagnose-high-memory: the guide's 'High Memory Usage' diagnosis, started when HighMemory fires, or on demand."""

from datetime import datetime, timedelta, timezone

from playground_ops.runbook import runbook
from tasks.monitoring.diagnostics import memory_diagnosis, memory_log_lines, per_instance, solutions
from tasks.monitoring.samples import read_samples
from tasks.monitoring.values import latest_values
from tasks.reporting.publish import publish
from tasks.platform.render_platform import read_platform_logs, read_platform_usage
from tasks.reporting.report import Report
from tasks.monitoring.request_metrics import measure_requests
from tasks.targets import load_target


@runbook("diagnose-high-memory", timeout_seconds=600)
def diagnose_high_memory(target: str | None = None) -> Report:
    """Memory per instance over the last hour (and its growth), the recent requests, and log lines that mention
    memory; the guide's solutions that the evidence supports.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
    """
    t = load_target(target)
    now = datetime.now(timezone.utc)
    usage = read_platform_usage(t.platform, minutes=60)
    traffic = measure_requests(t.database_url, t.app_schema, now - timedelta(minutes=15), now)
    logs = read_platform_logs(t.platform, hours=1, limit=200, level=None)
    memory_logs = memory_log_lines(logs)
    last = latest_values(read_samples(t.name, now - timedelta(hours=1), now))

    report = Report(runbook="diagnose-high-memory", target=t.name,
                    tables={"memory_by_instance": per_instance(usage, "memory"),
                            "endpoints_last_15_min": traffic["endpoints"], "memory_logs": memory_logs},
                    figures={"requests_last_15_min": traffic["requests"]},
                    summary="memory diagnosis: per-instance usage and growth over the last hour, recent requests, logs")
    return publish(solutions(report, "high-memory", memory_diagnosis(usage, memory_logs,
                                                                      last.get("redis_memory_pct"))))
