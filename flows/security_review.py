"""security-review: the guide's weekly security checks (failed logins, unusual request rates, the error logs) and,
on the first run of each month, its review of user access; it changes nothing unless asked to disable the inactive
accounts it lists, and then only with an operator's approval."""

from datetime import datetime, timezone
from typing import Annotated

from prefect.input import RunInput
from pydantic import Field

from playground_ops.runbook import runbook
from tasks.platform.render_platform import read_platform_logs
from tasks.reporting.notify import wait_for_approval
from tasks.reporting.publish import publish, read_previous_report, read_recent_reports
from tasks.reporting.report import Report
from tasks.security.activity_queries import disable_accounts, read_access, read_activity
from tasks.incidents.record import incident_since, start_incident_run
from tasks.security.incident import incident_key, security_findings
from tasks.security.signals import (Thresholds, access_findings, activity_findings, bursts, failures_from_logs,
                                    group_errors, review_range, secret_ages)
from tasks.targets import load_ops_settings, load_target


class DisableApproval(RunInput):
    approve: bool = Field(False, description="Disable exactly the inactive accounts listed in the report")
    reason: str = Field("", description="Why (kept in the report)")


@runbook("security-review", timeout_seconds=3600)
def security_review(target: str | None = None, days: Annotated[int, Field(ge=1, le=31)] = 7,
                    access_review: bool | None = None,
                    max_failures: Annotated[int, Field(ge=1, le=10000)] = 10,
                    window_minutes: Annotated[int, Field(ge=1, le=1440)] = 10,
                    min_rate_per_hour: Annotated[int, Field(ge=1, le=10_000_000)] = 300,
                    rate_factor: Annotated[float, Field(ge=1, le=1000)] = 3.0,
                    inactive_days: Annotated[int, Field(ge=7, le=3650)] = 90,
                    secret_max_age_days: Annotated[int, Field(ge=1, le=3650)] = 35,
                    password_expiry_required: bool = False,
                    disable_inactive: bool = False,
                    approval_timeout_seconds: Annotated[int, Field(ge=30, le=86400)] = 900,
                    open_incidents: bool = True,
                    abuse_factor: Annotated[float, Field(ge=2, le=100000)] = 10.0) -> Report:
    """Failed logins by IP and user (fail2ban's rule), request rates against each user's and IP's own previous weeks,
    quota-refusal bursts, the platform's error logs grouped by message; the access review (inactive accounts, admin
    and service accounts, database roles, PUBLIC's privileges, the secrets' age) on the first run of a month.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        days: How many days back the review looks.
        access_review: Review user access too (empty: on the first run of each month).
        max_failures: Flag an IP with more than this many failed logins within window_minutes (fail2ban's maxretry).
        window_minutes: fail2ban's findtime, in minutes.
        min_rate_per_hour: An hour with fewer requests than this is never unusual.
        rate_factor: An unusual hour has this many times the requests of the busiest hour of the three weeks before.
        inactive_days: An account with no login for this many days is inactive.
        secret_max_age_days: The secrets should be rotated at least this often.
        password_expiry_required: The policy wants every database role that can log in to have a password expiry.
        disable_inactive: Disable the inactive accounts listed, after an operator's approval in the UI.
        approval_timeout_seconds: How long to wait for that approval.
        open_incidents: Open a security incident (the security-incident runbook, its own run) for each critical
            finding: each address over the failed-login rule, each account abused far above its normal rate. Once
            per finding: one already opened for it within the review's days is named instead.
        abuse_factor: An account is abused when its busiest hour has this many times the requests of its busiest
            hour of the weeks before.
    """
    t = load_target(target)
    rules = Thresholds(max_failures=max_failures, window_minutes=window_minutes, min_rate_per_hour=min_rate_per_hour,
                       rate_factor=rate_factor, inactive_days=inactive_days, secret_max_age_days=secret_max_age_days,
                       password_expiry_required=password_expiry_required)
    now = datetime.now(timezone.utc)
    start, end, baseline = review_range(now, days)
    report = Report(runbook="security-review", target=t.name, figures={"from": start.isoformat(timespec="minutes")})
    activity = read_activity(t.database_url, t.app_schema, start, end, baseline, rules.for_sql())
    log_events, errors = [], []
    if t.platform.kind == "render":
        reads = [read_platform_logs.submit(t.platform, hours=days * 24, limit=5000, level=None,
                                           text="authentication failed"),
                 read_platform_logs.submit(t.platform, hours=days * 24, limit=100, level="error")]
        auth_lines, error_lines = [r.result(raise_on_failure=False) for r in reads]
        for what, got in (("failed logins", auth_lines), ("error lines", error_lines)):
            if isinstance(got, BaseException):
                report.add("warning", f"the platform's logs ({what}) could not be read: {got}",
                           next_step="Check RENDER_API_KEY and RENDER_OWNER_ID; the database's 401s were still read.")
        log_events = [] if isinstance(auth_lines, BaseException) else failures_from_logs(auth_lines)
        errors = [] if isinstance(error_lines, BaseException) else group_errors(error_lines)
    else:
        report.add("info", "no platform: the backend's log lines (failed logins, errors) could not be read")
    if "missing" in activity:
        report.add("warning", f"requests could not be read: {activity['missing']}",
                   next_step="Point app_schema at the playground's tables, or give the role SELECT on them.")
        activity = {"failed_auth": {}, "rates": {}}
    log_bursts = bursts(log_events, max_failures, window_minutes)
    for f in activity_findings(activity["failed_auth"], log_bursts, activity["rates"], rules):
        report.add(f.severity, f.message, next_step=f.next_step, **f.evidence)
    if open_incidents:
        report.tables["security_incidents"] = open_security_incidents(
            t.name, security_findings(activity["failed_auth"], log_bursts, activity["rates"], abuse_factor), start)
        for row in report.tables["security_incidents"]:
            if row["outcome"].startswith("could not start"):
                report.add("critical", f"the security incident for {row['finding']} from {row['source']} "
                                       f"{row['outcome']}", next_step=f"Start it by hand: playground-ops run "
                                       f"security-incident kind={row['finding']} source={row['source']}")
    report.tables.update(failed_logins_by_ip=activity["failed_auth"].get("by_ip", []),
                         failed_logins_by_user=activity["failed_auth"].get("by_user", []),
                         failed_logins_in_log=log_bursts,
                         top_users=activity["rates"].get("top_users", []), top_ips=activity["rates"].get("top_ips", []),
                         error_log=errors)
    # every 401 of the range, not only those of the 20 addresses the table shows
    report.figures.update(failed_requests=int(activity["failed_auth"].get("total") or 0),
                          failed_request_ips=int(activity["failed_auth"].get("ips") or 0),
                          failed_logins_in_log=len(log_events))

    previous = read_previous_report("security-review", t.name)
    if access_review is None:  # the first run of a month reviews access too
        access_review = previous is None or str(previous.get("started_at", ""))[:7] != now.strftime("%Y-%m")
    inactive = []
    if access_review:
        access = read_access(t.database_url, t.app_schema, inactive_days)
        ages = secret_ages(read_recent_reports("secret-rotation", t.name), [s.name for s in t.rotation.secrets], now)
        report.tables["secret_ages"] = ages
        for f in access_findings(access, ages, now, rules):
            report.add(f.severity, f.message, next_step=f.next_step, **f.evidence)
        inactive = access.get("inactive accounts", {}).get("rows", [])
        report.tables.update(inactive_accounts=inactive,
                             privileged_accounts=access.get("privileged accounts", {}).get("rows", []),
                             database_roles=access.get("database roles", {}).get("rows", []))
    report.figures["access_review"] = access_review
    if disable_inactive:
        disable_listed(t, report, inactive, inactive_days, approval_timeout_seconds, access_review)
    report.summary = (f"{len(report.findings)} findings over {days} days"
                      + (" with the access review" if access_review else ""))
    return publish(report)


def open_security_incidents(target: str, findings: list, since: datetime) -> list[dict]:
    """One security incident per finding: started as its own run, unless one was opened for it since `since` and is
    resolved or still worked; one left open by a run that ended is started again (the new run takes it over)."""
    from prefect.runtime import flow_run

    rows = []
    for f in findings:
        row = {"finding": f.kind, "source": f.source}
        existing = incident_since(target, incident_key(f.kind, f.source), since)
        if existing and existing[1] != "orphaned":
            rows.append({**row, "incident": f"{existing[0]} ({existing[1]})", "run": "", "outcome": "already opened"})
            continue
        started = start_incident_run.submit("security-incident/security-incident", {
            "target": target, "kind": f.kind, "source": f.source, "summary": f.summary},
            f"{flow_run.id or 'local'}:{incident_key(f.kind, f.source)}").result(raise_on_failure=False)
        rows.append({**row, "incident": f"{existing[0]} (taken over)" if existing else "",
                     "run": "" if isinstance(started, BaseException) else started,
                     "outcome": f"could not start: {started}" if isinstance(started, BaseException) else "started"})
    return rows


def disable_listed(t, report: Report, inactive: list[dict], inactive_days: int, timeout_s: int, reviewed: bool) -> None:
    """The listed inactive accounts disabled after an operator approves that exact list; nothing otherwise."""
    if not reviewed or not inactive:
        report.add("info", "disable_inactive: nothing to disable" + ("" if reviewed else " (no access review ran)"))
        return
    ids = [row["user_id"] for row in inactive]
    report.tables["to_disable"] = [{"user_id": r["user_id"], "email": r["email"], "role": r["role"]} for r in inactive]
    answer = wait_for_approval(DisableApproval, f"security-review on {t.name}: disable {len(ids)} inactive accounts "
                               f"({', '.join(str(i) for i in ids[:20])}{'...' if len(ids) > 20 else ''})", timeout_s,
                               load_ops_settings().notification_block)
    if not answer.approve:
        report.add("info", f"disabling was refused ({answer.reason or 'no reason given'}): no account was changed")
        return
    disabled = disable_accounts(t.database_url, t.app_schema, ids, inactive_days)
    report.tables["disabled"] = [{"user_id": i} for i in disabled]
    report.add("info", f"{len(disabled)} inactive accounts disabled after approval ({answer.reason or 'no reason given'})",
               accounts=", ".join(str(i) for i in disabled))
