"""incident: the guide's "Incident Response" (detection, assessment, containment, investigation, recovery, lessons
learned) as one run that keeps the incident's record, step by step, in the audit store."""

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field, create_model

from playground_ops.errors import Checked, ConfigError
from playground_ops.runbook import run_link, runbook
from tasks.incidents.evidence import read_alert_events, read_impact, read_platform_history, read_runbook_runs
from tasks.incidents.record import open_incident, read_record, record_step
from tasks.incidents.response import (ACTIONS, alert_transitions, assessment_rows, build_timeline,
                                      check_recovery_timeout, containment_options, impact_summary, post_mortem,
                                      runbook_entries)
from tasks.monitoring.probes import optional_result
from tasks.reporting.notify import check_approval_timeout, send_notification, wait_for_approval
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target

ALERT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@runbook("incident", timeout_seconds=24 * 3600)
def incident(target: str | None = None, severity: Literal["sev1", "sev2", "sev3"] = "sev2", summary: str = "",
             alert: str | None = None, lookback_minutes: Annotated[int, Field(ge=5, le=1440)] = 60,
             green_checks: Annotated[int, Field(ge=1, le=20)] = 3,
             check_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 300,
             recovery_timeout_minutes: Annotated[float, Field(gt=0, le=1440), Checked(check_recovery_timeout)] = 120,
             approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900,
             suspected_secret_leak: bool = False) -> Report:
    """Open an incident (INC-YYYYMMDD-N; a second start for the same alert attaches to it), assess it with the health
    check and the four diagnostics at once and the impact from the requests table, offer the containment that fits
    (each only with an operator's approval), assemble the timeline, wait for the health check to be green, and write
    the post-mortem draft.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        severity: sev1 (service down), sev2 (degraded) or sev3 (minor).
        summary: What is wrong, in a sentence.
        alert: The alert rule this incident is about (one incident per alert), if any.
        lookback_minutes: How far back the impact and the timeline look.
        green_checks: Consecutive green health checks that mark the incident resolved.
        check_interval_seconds: Time between those health checks.
        recovery_timeout_minutes: How long to wait for recovery before leaving the incident open (at least
            OPS_RECOVERY_MIN_SECONDS, 1 min).
        approval_timeout_seconds: How long a containment action waits for an operator; then it is skipped (at
            least OPS_APPROVAL_MIN_SECONDS, 30 s).
        suspected_secret_leak: A secret may have leaked: containment offers a rotation that revokes the old values.
    """
    if alert is not None and not ALERT_NAME.match(alert):
        raise ConfigError("alert", "an alert rule's name such as HighErrorRate", repr(alert))
    t = load_target(target)
    block = load_ops_settings().notification_block
    summary = summary or (f"alert {alert} firing" if alert else "declared by an operator")
    incident_id, how, owner = open_incident(t.name, severity, summary, alert, str(flow_run.id))
    if how == "attached":  # its own run is alive and works it
        return publish(Report(runbook="incident", target=t.name, figures={"incident": incident_id, "attached": True,
                                                                          "worked_by": owner},
                              summary=f"attached to the open incident {incident_id} (alert {alert}), worked by run "
                                      f"{owner}"))
    taken = f" (taken over from run {owner}, which ended without resolving it)" if how == "taken-over" else ""
    send_notification(f"[INCIDENT {incident_id}] {severity} on {t.name}: {summary}{taken}",
                      f"{summary}{taken}\nFollow it at {run_link() or 'the incident run in the Prefect UI'}.", block)
    since = datetime.now(timezone.utc) - timedelta(minutes=lookback_minutes)

    rows = assessment_rows(assess(t.name))
    # the database may be what is down: impact then comes from the probes and the platform, and the report says so
    impact = optional_result(read_impact.submit(t.database_url, t.app_schema, since))
    unread_impact = None if impact is not None else "the requests table could not be read (the database is down?)"
    impact = impact or {}
    record_step(t.name, incident_id, "assessed", {"assessment": rows, "impact": impact_summary(impact)
                                                  if not unread_impact else unread_impact})
    instances, deploys = platform_now(t)
    offered = containment_options(rows, impact, instances, t.scaling.max_instances, deploys, since,
                                  suspected_secret_leak)
    actions = contain(t.name, incident_id, offered, approval_timeout_seconds, block,
                      availability_actions(t.name, instances))

    timeline, unread = investigate(t, incident_id, since)
    record_step(t.name, incident_id, "investigated", {"timeline_entries": len(timeline), "unread": unread})
    greens = wait_for_recovery(t.name, green_checks, check_interval_seconds, round(recovery_timeout_minutes * 60))
    if greens >= green_checks:
        record_step(t.name, incident_id, "resolved", {"green_checks": greens})
        send_notification(f"[RESOLVED {incident_id}] {t.name}: {summary}",
                          f"{greens} consecutive green health checks.", block)

    steps = read_record(t.name, incident_id)
    draft = post_mortem(incident_id, steps, impact, timeline, actions)
    record_step(t.name, incident_id, "post-mortem", {"markdown": draft})
    report = Report(runbook="incident", target=t.name, documents={"Post-mortem draft": draft},
                    tables={"assessment": rows, "actions": actions, "timeline": timeline,
                            "record": [{"at": s["at"], "step": s["kind"]} for s in steps]},
                    figures={"incident": incident_id, "severity": severity, "resolved": greens >= green_checks,
                             "green_checks": greens, **{k: v for k, v in impact.items() if k != "endpoints"}},
                    summary=f"{incident_id} {'resolved' if greens >= green_checks else 'still open'}: "
                            + impact_summary(impact))
    if taken:
        report.figures["taken_over_from"] = owner
        report.add("warning", f"{incident_id} was open with no run working it: taken over from run {owner}")
    if unread_impact:
        report.summary = f"{incident_id} {'resolved' if greens >= green_checks else 'still open'}: impact unknown: " \
                         f"{unread_impact}; the assessment's probes say: " + "; ".join(
                             f"{r.get('runbook')}: {r.get('status')}" for r in rows[:5])
        report.add("warning", f"impact unknown: {unread_impact}; the probes' failures and the platform's figures "
                              "in the assessment are the evidence")
    for source, why in unread.items():
        report.add("warning", f"the timeline lacks {source}: it could not be read ({why})")
    if greens < green_checks:
        report.add("critical", f"{incident_id} is not resolved: the health check was not green {green_checks} times "
                               f"in a row within {recovery_timeout_minutes:g} min",
                   next_step="Keep investigating from the timeline; start incident again to attach to it.")
    return publish(report)


def assess(target: str) -> dict:
    """The health check and the four diagnostics, at once, each its own run under this one."""
    from concurrent.futures import ThreadPoolExecutor

    from flows.diagnose_database_connections import diagnose_database_connections
    from flows.diagnose_high_cpu import diagnose_high_cpu
    from flows.diagnose_high_memory import diagnose_high_memory
    from flows.diagnose_redis import diagnose_redis
    from flows.health_check import health_check
    from tasks.reporting.publish import in_context

    runbooks = {"health-check": health_check, "diagnose-high-cpu": diagnose_high_cpu,
                "diagnose-high-memory": diagnose_high_memory,
                "diagnose-database-connections": diagnose_database_connections, "diagnose-redis": diagnose_redis}
    with ThreadPoolExecutor(max_workers=len(runbooks)) as pool:
        futures = {name: in_context(pool, fn, target=target) for name, fn in runbooks.items()}
        return {name: _outcome(future) for name, future in futures.items()}


def _outcome(future):
    try:
        return future.result()
    except Exception as exc:  # a runbook that failed is evidence too
        return exc


def platform_now(t) -> tuple[int | None, list[dict]]:
    """How many instances the service runs and its newest deploys (None and none without a platform, or when it
    cannot say)."""
    from tasks.platform.service_actions import read_deploys, read_scaling

    if t.platform.kind != "render":
        return None, []
    scaling, deploys = (f.result(raise_on_failure=False) for f in (read_scaling.submit(t.platform),
                                                                    read_deploys.submit(t.platform)))
    return (None if isinstance(scaling, BaseException) else scaling.get("instances"),
            [] if isinstance(deploys, BaseException) else deploys)


def rotate_and_revoke(target: str, reason: str):
    """A rotation whose previous values are removed at once (no grace period): every session is signed out."""
    from flows.secret_rotation import secret_rotation

    rotated = secret_rotation(target=target)
    finished = secret_rotation(target=target, action="finish", force_finish=True)
    finished.summary = f"{rotated.summary.split(':')[0]}; {finished.summary}"
    return finished


def availability_actions(target: str, instances: int | None) -> dict:
    """The incident's containment actions, each its own runbook run."""
    from flows.restart_service import restart_service
    from flows.rollback_deploy import rollback_deploy
    from flows.scale_service import scale_service

    return {"restart": lambda reason: restart_service(target=target, reason=reason),
            "rotate_secrets": lambda reason: rotate_and_revoke(target, reason),
            "scale_up": lambda reason: scale_service(target=target, instances=(instances or 1) + 1),
            "rollback": lambda reason: rollback_deploy(target=target, reason=reason)}


def contain(target: str, incident_id: str, offered: dict[str, str], timeout_s: int, block: str,
            actions_by_name: dict, descriptions: dict[str, str] = ACTIONS) -> list[dict]:
    """Each offered action, only with an operator's approval in the UI (one form, a box per action); each approved
    one run (a runbook of its own, or a task), recorded with its outcome."""
    from prefect.exceptions import FlowPauseTimeout

    if not offered:
        return []
    approval = create_model("ContainmentApproval", __base__=RunInput,
                            **{name: (bool, Field(False, description=f"{descriptions[name]} (why: {why})"))
                               for name, why in offered.items()},
                            reason=(str, Field("", description="Why (kept in the incident's record)")))
    try:
        answer = wait_for_approval(approval, f"{incident_id} on {target}: approve containment ("
                                   + "; ".join(f"{a}: {why}" for a, why in offered.items()) + ")", timeout_s, block)
    except FlowPauseTimeout:
        actions = [{"action": a, "outcome": f"skipped: no approval within {timeout_s} s", "run": ""} for a in offered]
        record_step(target, incident_id, "containment", {"actions": actions})
        return actions
    actions = []
    for name in offered:
        if not getattr(answer, name):
            actions.append({"action": name, "outcome": "refused by an operator", "run": ""})
            continue
        try:
            result = actions_by_name[name](f"{incident_id}: {answer.reason}".strip(": "))
            actions.append({"action": name, "outcome": f"done: {getattr(result, 'summary', result)}",
                            "run": getattr(result, "flow_run_id", None) or ""})
        except Exception as exc:  # the action failed: recorded, the incident goes on
            actions.append({"action": name, "outcome": f"failed: {exc}", "run": ""})
    record_step(target, incident_id, "containment", {"actions": actions, "reason": answer.reason})
    return actions


def investigate(t, incident_id: str, since: datetime) -> tuple[list[dict], dict[str, str]]:
    """The timeline from what is already recorded, read at once; a source that cannot be read is named, not fatal."""
    sources = {"the alerts (Prefect events)": read_alert_events.submit(t.name, since),
               "the runbook runs (audit store)": read_runbook_runs.submit(t.name, since)}
    if t.platform.kind == "render":
        sources["the platform's deploys and error logs"] = read_platform_history.submit(t.platform, since)
    results = {name: future.result(raise_on_failure=False) for name, future in sources.items()}
    unread = {name: str(r)[:200] for name, r in results.items() if isinstance(r, BaseException)}
    read = {name: ([] if isinstance(r, BaseException) else r) for name, r in results.items()}
    runs = read["the runbook runs (audit store)"]
    steps = [{"at": s["at"], "source": "incident", "what": s["kind"]} for s in read_record(t.name, incident_id)]
    return build_timeline(read["the alerts (Prefect events)"], alert_transitions(runs), runbook_entries(runs),
                          read.get("the platform's deploys and error logs", []), steps), unread


def wait_for_recovery(target: str, needed: int, interval_s: int, timeout_s: int) -> int:
    """Run the health check every interval until it is green `needed` times in a row (or the timeout); how many
    green in a row it saw last. A check skipped because another was running does not count either way."""
    from flows.health_check import health_check

    deadline, streak = time.monotonic() + timeout_s, 0
    while streak < needed and time.monotonic() < deadline:
        report = health_check(target=target)
        if "skipped" not in (report.summary or ""):
            streak = streak + 1 if report.status.value == "ok" else 0
        if streak < needed:
            time.sleep(interval_s)
    return streak
