"""business-report: the guide's business metrics, weekly: active users, requests per user, endpoint and model, daily
quota consumption and errors, against the week before, with charts."""

from datetime import date, datetime, timezone

from playground_ops.runbook import runbook
from tasks.business.usage import report_range, shape_usage
from tasks.business.usage_queries import read_usage, read_users
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


@runbook("business-report", timeout_seconds=3600)
def business_report(target: str | None = None, start: date | None = None, end: date | None = None) -> Report:
    """How the playground was used over a range (default: the last full week, Monday to Sunday UTC), computed in the
    database and compared with the range before it; charts of daily active users over 30 days, requests per day by
    endpoint, quota consumption and errors by type, their data stored beside the report as CSV.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        start: The first day of the range, YYYY-MM-DD (empty: the Monday a week before end).
        end: The day after the range, YYYY-MM-DD (empty: this week's Monday, so the range is the last full week).
    """
    t = load_target(target)
    since, until = report_range(start, end, datetime.now(timezone.utc).date())
    raw = read_usage(t.database_url, t.app_schema, since, until)
    report = Report(runbook="business-report", target=t.name)
    if "missing" in raw:
        report.add("warning", f"nothing could be computed: {raw['missing']}",
                   next_step="Point app_schema at the playground's users and requests tables, or give the role SELECT on them.")
        report.summary = "no business figures: the playground's tables could not be read"
        return publish(report)
    ids = sorted({r["user_id"] for r in raw["activity"]["top_requests"] + raw["activity"]["top_tokens"]
                  + raw["activity"]["quota_too_small"]})
    shaped = shape_usage(raw, read_users(t.database_url, t.app_schema, ids) if ids else [], since, until)
    report.figures = {**shaped.figures, "query_seconds": raw["seconds"]["total"]}
    report.tables, report.charts = shaped.tables, shaped.charts
    for note in shaped.notes:
        report.add("info", note)
    f = shaped.figures
    report.summary = (f"{f['range']}: {f['active_users']:,} active users (avg {f['avg_daily_active_users']:,} a day, "
                      f"MAU {f['monthly_active_users']:,}), {f['requests']:,} requests, {f['errors']:,} errors, "
                      f"{f['quota_refusals']:,} quota refusals")
    return publish(report)
