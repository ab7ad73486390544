"""daily-error-review: the guide's daily 'Check error logs' and 'Check error rates', against the week before."""

from datetime import datetime, timezone

from playground_ops.runbook import runbook
from tasks.monitoring.diagnostics import error_review, error_totals
from tasks.reporting.publish import publish
from tasks.platform.render_platform import read_platform_logs
from tasks.reporting.report import Report
from tasks.monitoring.request_metrics import read_error_review
from tasks.targets import load_target


@runbook("daily-error-review", timeout_seconds=900)
def daily_error_review(target: str | None = None) -> Report:
    """The platform's recent error logs (--level error --tail 50), error rates by endpoint and error type over the last
    24 hours against the 7 days before, and the top failing endpoints.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
    """
    t = load_target(target)
    now = datetime.now(timezone.utc)
    logs = read_platform_logs.submit(t.platform, hours=24, limit=50) if t.platform.kind == "render" else None
    review = read_error_review(t.database_url, t.app_schema, now)
    log_lines = logs.result(raise_on_failure=False) if logs else None
    logs_error = str(log_lines) if isinstance(log_lines, BaseException) else None
    endpoints, error_types, findings = error_review(review["errors"], review["volumes"],
                                                    None if logs_error else log_lines)
    totals = error_totals(endpoints)

    report = Report(runbook="daily-error-review", target=t.name,
                    tables={"endpoints": endpoints, "error_types": error_types, "error_logs": [] if logs_error else (log_lines or [])},
                    figures=totals,
                    summary=f"{totals['errors_24h']} errors in {totals['requests_24h']} requests over 24 h; "
                            f"{sum(f[0] == 'warning' for f in findings)} endpoints worse than last week")
    for severity, message, next_step in findings:
        report.add(severity, message, next_step=next_step)
    if logs_error:
        report.add("warning", f"the platform's error logs could not be read: {logs_error}")
    elif t.platform.kind != "render":
        report.add("info", "no platform configured (RENDER_SERVICE_ID): error logs not read")
    return publish(report)
