"""secret-rotation: the guide's "Secret Rotation" (`openssl rand -base64 32`, `render env set`, `render restart`)
staged as AWS Secrets Manager rotates, so that no one is logged out: create, set (the current value kept as
<NAME>_PREVIOUS), restart without downtime, test both tokens, and finish after the grace period."""

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, NoReturn

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked, ConfigError
from playground_ops.runbook import fail_run, run_link, runbook
from tasks.monitoring.run_state import read_run_state, write_run_state
from tasks.platform.change_record import begin_change, end_change, mark_step
from tasks.platform.change_recovery import platform_change_on
from tasks.platform.rotation import (failed_checks, finish_after, finish_due, mid_rotation, missing, plan_rows,
                                     previous_name, staged_rows)
from tasks.platform.secret_steps import (block_name, cancel_scheduled_finishes, check_live_tokens, check_tokens,
                                         create_pending, forget_block, keep_rollback_copy_only, previous_secret_use,
                                         put_back_current, put_back_previous, remove_previous, schedule_finish,
                                         set_pending)
from tasks.platform.service_actions import read_env_fingerprints, restart_and_wait, restart_problem
from tasks.reporting.notify import check_approval_timeout, refused_in_production
from tasks.reporting.publish import publish
from tasks.reporting.report import Report, Status
from tasks.targets import load_target

RUNBOOK = "secret-rotation"


class RotationApproval(RunInput):
    approve: bool = Field(False, description="Rotate these secrets on the production service")
    reason: str = Field("", description="Why (kept in the report)")


@runbook(RUNBOOK, timeout_seconds=3600)
def secret_rotation(target: str | None = None, action: Literal["rotate", "finish"] = "rotate",
                    secrets: list[str] | None = None, force_finish: bool = False,
                    recent_use_minutes: Annotated[int, Field(ge=1, le=1440)] = 15,
                    wait_seconds: Annotated[int, Field(ge=10, le=1800)] = 300,
                    wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                    approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900,
                    dry_run: bool = False) -> Report:
    """Rotate the target's declared secrets (default JWT_SECRET and JWT_REFRESH_SECRET) without logging anyone out:
    the current value is kept as <NAME>_PREVIOUS and a new one set, key by key; the service restarts without
    downtime; a token signed with the new value and one signed with the previous value must both be accepted, else
    the previous values are put back. `finish` (scheduled by the rotation for the end of its grace period) removes
    <NAME>_PREVIOUS once no request has needed it for `recent_use_minutes`. Values never leave the run's tasks:
    reports show fingerprints (first 8 hex characters of SHA-256).

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        action: rotate, or finish (remove the previous values after the grace period).
        secrets: Which of the target's declared secrets (empty: all of them).
        force_finish: Finish before the grace period ends or while old tokens are still in use (they are refused).
        recent_use_minutes: How far back finish looks for requests that only the previous value accepted.
        wait_seconds: How long the restarted service may take to run the new values and be healthy.
        wait_for_other_change_seconds: How long to wait for another rotation or env change on this target to end.
        approval_timeout_seconds: How long to wait for an operator's approval on a production target.
        dry_run: Show what would change and change nothing.
    """
    t = load_target(target)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform holding the env vars (RENDER_SERVICE_ID, RENDER_API_KEY)")
    declared = [t.rotation.declared(name) for name in secrets] if secrets else list(t.rotation.secrets)
    names = [s.name for s in declared]
    with platform_change_on(t, RUNBOOK, wait_for_other_change_seconds, wait_seconds, dry_run) as recovered:
        live = read_env_fingerprints(t.platform)
        if missing(live, names):
            raise ConfigError(f"secrets on {t.name}", "secrets the service already has (rotation renews them)",
                              ", ".join(missing(live, names)))
        pending, state = mid_rotation(live, names), read_run_state(RUNBOOK, t.name)
        if recovered:  # a completed rotation starts its grace period now: no finish, no new rotation before it
            return publish(Report(runbook=RUNBOOK, target=t.name, status=Status.WARNING,
                                  figures={"action": action, "recovered": recovered},
                                  summary=f"an unfinished change was found first and recovered: {recovered}; "
                                          f"nothing else done (run again for {action})"))
        if action == "finish":
            return finish(t, pending, state, force_finish, recent_use_minutes, wait_seconds, dry_run)
        earlier = None
        if pending and finish_due(state, datetime.now(timezone.utc)) and not dry_run:
            # the earlier rotation's finish is this run's first part: one report for both, stored once
            earlier = finish(t, pending, state, False, recent_use_minutes, wait_seconds, dry_run=False,
                             part_of_rotation=True)
            live = read_env_fingerprints(t.platform)
            pending = mid_rotation(live, names)  # a finish postponed (old tokens in use) leaves them pending
        if pending:
            why = ConfigError(f"secrets on {t.name}", "no rotation still in its grace period (run action=finish when "
                              f"it ends, at {state.get('finish_after', 'its end')})", ", ".join(pending))
            if earlier is None:
                raise why
            fail_run(earlier, f"{why}: {earlier.summary}; nothing rotated, the previous values kept")
        return rotate(t, declared, live, wait_seconds, approval_timeout_seconds, dry_run, earlier)


def rotate(t, declared, live: dict, wait_seconds: int, approval_timeout_seconds: int, dry_run: bool,
           earlier: Report | None = None) -> Report:
    names, block = [s.name for s in declared], block_name(t.name, str(flow_run.id or "local"))
    report = Report(runbook=RUNBOOK, target=t.name, tables={"rotation": plan_rows(live, names, block)},
                    figures={"action": "rotate", "secrets": len(names), "dry_run": dry_run,
                             "grace_period_s": t.rotation.grace_seconds})
    if earlier is not None:  # part one: the earlier rotation's finish
        report.tables.update({f"earlier rotation: {name}": rows for name, rows in earlier.tables.items()})
        report.findings += earlier.findings
        report.figures["earlier_rotation"] = earlier.summary
    if dry_run:
        report.summary = f"dry run: would rotate {', '.join(names)}, keeping the current values as *_PREVIOUS"
        return publish(report)
    if refused_in_production(t, report, RotationApproval, f"secret-rotation on {t.name}: {', '.join(names)}",
                             approval_timeout_seconds, "an operator refused the rotation; nothing was written"):
        return publish(report)

    fingerprints = create_pending(t.platform, declared, block)
    report.tables["rotation"] = staged_rows(fingerprints, block)
    begin_change(t.name, str(flow_run.id or "local"), RUNBOOK, "rotation", t.platform.service_id,
                 names + [previous_name(n) for n in names], block)
    wrong = set_pending.submit(t.platform, block).result(raise_on_failure=False)
    problem = (f"the write failed: {wrong}" if isinstance(wrong, BaseException)
               else f"read back differently: {', '.join(wrong)}" if wrong else None)
    if problem is None:
        mark_step(t.name, "set")
        problem = restart_and_test(t, block, wait_seconds, report, {"new": 200, "previous": 200})
    if problem:
        roll_back(t, report, block, wait_seconds, problem)
    mark_step(t.name, "tested")

    keep_rollback_copy_only(block)
    now = datetime.now(timezone.utc)
    due = finish_after(now, t.rotation.grace_seconds)
    scheduled = schedule_finish(t.name, due)
    write_run_state(RUNBOOK, t.name, {"rotated_at": now.isoformat(), "finish_after": due.isoformat(), "block": block,
                                      "run": str(flow_run.id or ""), "secrets": names,
                                      "fingerprints": {n: fp["pending"] for n, fp in fingerprints.items()}})
    end_change(t.name)  # the rotation stands; its finish comes after the grace period
    report.figures.update(finish_after=due.isoformat(), finish_scheduled=bool(scheduled))
    report.summary = (f"earlier rotation {earlier.summary}; then " if earlier is not None else "") + (
                      f"rotated {', '.join(names)}: new and previous tokens accepted; the previous values stay "
                      f"accepted until {due:%Y-%m-%d %H:%M} UTC, then finish removes them"
                      + (" (scheduled)" if scheduled else " (run action=finish then)"))
    return publish(report)


def restart_and_test(t, block: str, wait_seconds: int, report: Report, expect: dict[str, int]) -> str | None:
    """Restart (new instances before the old stop), wait until only new instances run and the service is healthy,
    then send the tokens; what went wrong, or None."""
    seen = restart_and_wait(t.platform, t.health_url, wait_seconds)
    if restart_problem(seen, wait_seconds):
        return restart_problem(seen, wait_seconds)
    rows = check_tokens(base_url(t.health_url), t.rotation, block, expect)
    report.tables["token checks"] = rows
    failed = failed_checks(rows)
    return "; ".join(failed) if failed else None


def roll_back(t, report: Report, block: str, wait_seconds: int, why: str) -> NoReturn:
    """Put the values from before the rotation back, restart, check that old tokens are accepted; fail the run
    naming what went wrong and the state left."""
    left = put_back_current.submit(t.platform, block).result(raise_on_failure=False)
    if isinstance(left, BaseException) or left:
        fail_run(report, f"{why}; the rollback failed too ({left if isinstance(left, BaseException) else 'still different: ' + ', '.join(left)}): "
                         f"the values from before are in the Prefect Secret block {block}")
    again = restart_and_test(t, block, wait_seconds, report, {"previous": 200})
    if again:
        fail_run(report, f"{why}; the previous values were put back but the service is not right: {again}; they "
                         f"are also kept in the Prefect Secret block {block}")
    end_change(t.name)
    forget_block(block)
    fail_run(report, f"{why}; rolled back: the previous values are live again and accepted")


def finish(t, pending: list[str], state: dict, force: bool, recent_minutes: int, wait_seconds: int,
           dry_run: bool, part_of_rotation: bool = False) -> Report:
    """finishSecret: after the grace period, and once no request needed the previous values lately, remove them.
    part_of_rotation: the report is the first part of a rotation's, returned unpublished (a failure still fails
    the run with its own report)."""
    publish_ = (lambda r: r) if part_of_rotation else publish  # noqa: E731
    now = datetime.now(timezone.utc)
    report = Report(runbook=RUNBOOK, target=t.name, figures={"action": "finish", "secrets": len(pending),
                                                             "dry_run": dry_run},
                    tables={"finish": [{"secret": n, "remove": f"{n}_PREVIOUS"} for n in pending]})
    if not pending:
        report.summary = "nothing to finish: no secret keeps a previous value"
        return publish_(report)
    if not force and not finish_due(state, now):
        report.summary = f"not yet: the grace period runs until {state['finish_after']} (force_finish to end it now)"
        return publish_(report)
    since = now - timedelta(minutes=recent_minutes)
    if state.get("rotated_at"):  # a line from before this rotation's set step speaks of another previous value
        since = max(since, datetime.fromisoformat(state["rotated_at"]))
    uses = previous_secret_use(t.platform, pending, since)
    report.tables["finish"] = [{"secret": n, "remove": f"{n}_PREVIOUS", f"accepted only by it (last {recent_minutes} min)":
                                uses.get(n, 0)} for n in pending]
    if any(uses.values()) and not force:
        later = schedule_finish(t.name, now + timedelta(hours=1))
        report.add("warning", f"tokens from before the rotation were still accepted only by the previous value in the "
                              f"last {recent_minutes} min: finish postponed, nothing removed",
                   next_step="It runs again in an hour" if later else "Run action=finish again later")
        report.summary = "postponed: old tokens still in use"
        return publish_(report)
    if dry_run:
        report.summary = f"dry run: would remove {', '.join(n + '_PREVIOUS' for n in pending)}"
        return publish_(report)
    block = state.get("block")
    left = remove_previous(t.platform, pending)
    problem = f"still there after the delete: {', '.join(left)}" if left else None
    if problem is None:
        seen = restart_and_wait(t.platform, t.health_url, wait_seconds)
        if restart_problem(seen, wait_seconds):
            problem = restart_problem(seen, wait_seconds)
        else:
            report.tables["token checks"] = check_live_tokens(base_url(t.health_url), t.platform, t.rotation, pending)
            problem = "; ".join(failed_checks(report.tables["token checks"])) or None
    if problem:
        restored = put_back_previous.submit(t.platform, block).result(raise_on_failure=False) if block else None
        fail_run(report, f"{problem}; " + ("the previous values were put back (restart the service to load them)"
                                          if restored == [] else f"the previous values are in the Prefect Secret "
                                                                 f"block {block}" if block else "no copy was kept"))
    if block:
        forget_block(block)
    write_run_state(RUNBOOK, t.name, {"finished_at": now.isoformat(), "secrets": pending})
    cancelled = cancel_scheduled_finishes(t.name, f"the rotation was finished {'early ' if force else ''}by run "
                                                  f"{run_link() or 'another run'}")
    report.figures["scheduled_finishes_cancelled"] = len(cancelled)
    report.summary = f"finished: {', '.join(n + '_PREVIOUS' for n in pending)} removed; new tokens accepted" + (
        f"; {len(cancelled)} scheduled finish run(s) cancelled" if cancelled else "")
    return publish_(report)


def base_url(health_url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(health_url)
    return f"{parts.scheme}://{parts.netloc}"
