"""security-incident: the guide's "Incident Response" for what security-review finds (a brute-force source, an account
abused far above its normal rate): detection, assessment from the logs, containment (with approval), investigation,
recovery, lessons learned, in the same incident record as any incident."""

import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from prefect.runtime import flow_run
from pydantic import Field

from flows.incident import contain, rotate_and_revoke
from playground_ops.errors import Checked
from playground_ops.runbook import run_link, runbook
from tasks.incidents.record import open_incident, read_record, record_step
from tasks.incidents.response import check_recovery_timeout
from tasks.monitoring.probes import optional_result
from tasks.reporting.notify import check_approval_timeout, send_notification
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.security.activity_queries import disable_users, read_source_activity
from tasks.security.incident import (ACTIONS, SecurityFinding, check_source, containment_for, incident_key, is_quiet,
                                     security_post_mortem)
from tasks.targets import load_ops_settings, load_target


def check_request(parameters: dict, t) -> None:
    """The source in its kind's one form (no I/O): the CLI refuses anything else before a run exists."""
    check_source(parameters.get("kind", ""), str(parameters.get("source", "")))


@runbook("security-incident", request_check=check_request, timeout_seconds=24 * 3600)
def security_incident(kind: Literal["brute-force", "account-abuse"], source: str, target: str | None = None,
                      summary: str = "", lookback_hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24 * 7,
                      quiet_minutes: Annotated[int, Field(ge=1, le=1440)] = 15,
                      check_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 60,
                      recovery_timeout_minutes: Annotated[float, Field(gt=0, le=1440), Checked(check_recovery_timeout)] = 120,
                      approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900
                      ) -> Report:
    """Open a security incident for one finding (one incident per finding: a second start attaches), read what the
    source did from the requests table, offer the containment that fits (disable the account; rotate the secrets at
    once, signing every session out), each only with an operator's approval, wait until the source is quiet, and draft
    the post-mortem naming the source.

    Args:
        kind: brute-force (source: the IP address) or account-abuse (source: the user id).
        source: The address or the account the finding names.
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        summary: What security-review found, in a sentence.
        lookback_hours: How far back the evidence is read.
        quiet_minutes: The source is quiet when it made no (failed, for brute force) request for this long.
        check_interval_seconds: Time between the recovery checks.
        recovery_timeout_minutes: How long to wait for the source to be quiet before leaving the incident open.
        approval_timeout_seconds: How long containment waits for an operator; then it is skipped.
    """
    source = check_source(kind, source)
    t = load_target(target)
    finding = SecurityFinding(kind, source, summary or f"{kind} from {source}")
    block = load_ops_settings().notification_block
    incident_id, how, owner = open_incident(t.name, "sev2", finding.summary, incident_key(kind, source), str(flow_run.id))
    if how == "attached":
        return publish(Report(runbook="security-incident", target=t.name, summary=f"attached to {incident_id}, worked "
                              f"by run {owner}", figures={"incident": incident_id, "attached": True}))
    send_notification(f"[INCIDENT {incident_id}] security on {t.name}: {finding.summary}",
                      f"{finding.summary}\nFollow it at {run_link() or 'the incident run in the Prefect UI'}.", block)
    since = datetime.now(timezone.utc) - timedelta(hours=lookback_hours)
    read = lambda: optional_result(read_source_activity.submit(  # noqa: E731 - None while the database is down
        t.database_url, t.app_schema, kind, source, since, quiet_minutes))
    evidence = read()
    unread = None if evidence is not None else "the requests table could not be read (the database is down?)"
    evidence = evidence or {}
    record_step(t.name, incident_id, "assessed", {"evidence": {k: v for k, v in evidence.items() if k != "hours"}
                                                  if not unread else unread})
    actions = contain(t.name, incident_id, containment_for(kind, source, evidence), approval_timeout_seconds, block,
                      security_actions(t, source, evidence), ACTIONS)
    record_step(t.name, incident_id, "investigated", {"hours": len(evidence.get("hours", [])),
                                                      "accounts": evidence.get("accounts", [])})
    quiet = wait_until_quiet(kind, read, check_interval_seconds, recovery_timeout_minutes * 60)
    if quiet:
        record_step(t.name, incident_id, "resolved", {"quiet_minutes": quiet_minutes})
        send_notification(f"[RESOLVED {incident_id}] {t.name}: {finding.summary}",
                          f"{source} quiet for {quiet_minutes} min.", block)
    draft = security_post_mortem(incident_id, finding, read_record(t.name, incident_id), evidence, actions)
    record_step(t.name, incident_id, "post-mortem", {"markdown": draft})
    report = Report(runbook="security-incident", target=t.name, documents={"Post-mortem draft": draft},
                    tables={"evidence by hour": evidence.get("hours", []), "actions": actions},
                    figures={"incident": incident_id, "kind": kind, "source": source, "resolved": quiet,
                             "requests": evidence.get("requests"), "failures": evidence.get("failures")},
                    summary=f"{incident_id} {'resolved' if quiet else 'still open'}: {finding.summary}")
    if unread:
        report.add("warning", f"evidence unknown: {unread}; containment was offered on the finding alone")
    if not quiet:
        report.add("critical", f"{incident_id}: {source} was not quiet for {quiet_minutes} min within "
                               f"{recovery_timeout_minutes:g} min", next_step="Block it at the edge; keep watching.")
    return publish(report)


def security_actions(t, source: str, evidence: dict) -> dict:
    """The security incident's containment actions (each only once an operator approved it)."""
    return {"disable_account": lambda _: f"disabled {disable_users(t.database_url, t.app_schema, [int(source)])}",
            "disable_accounts": lambda _: "disabled " + str(disable_users(
                t.database_url, t.app_schema, evidence.get("signed_in_after_failures", []))),
            "rotate_secrets": lambda reason: rotate_and_revoke(t.name, reason)}


def wait_until_quiet(kind: str, read, interval_s: int, timeout_s: float) -> bool:
    """Read the source's activity every interval until it is quiet (or the timeout); a read that fails (the database
    down) is not quiet, and is read again."""
    deadline = time.monotonic() + timeout_s
    while True:
        evidence = read()
        if evidence is not None and is_quiet(kind, evidence):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
