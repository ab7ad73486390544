"""environment-variables: the guide's `render env list / set / unset`, previewed as fingerprints, approved for
production, written key by key, read back, and rolled back when the service is not healthy afterwards."""

from typing import Annotated, Literal, NoReturn

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked, ConfigError
from playground_ops.runbook import fail_run, runbook
from tasks.platform.change_record import begin_change, end_change, mark_step
from tasks.platform.change_recovery import note_recovery, platform_change_on
from tasks.platform.env_changes import check_env_request, plan_env_change
from tasks.platform.service_actions import (back_up_env, backup_block_name, forget_backup, new_fingerprints,
                                            read_env_fingerprints, restart_and_wait, restart_problem, restore_env,
                                            write_env)
from tasks.reporting.notify import check_approval_timeout, refused_in_production
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


class EnvApproval(RunInput):
    approve: bool = Field(False, description="Make this change to the production service's environment")
    reason: str = Field("", description="Why (kept in the report)")


def check_request(parameters: dict, t) -> None:
    """The whole request against the target's declarations (no I/O): the CLI runs it before a run exists."""
    check_env_request(parameters["action"], parameters.get("values") or {}, parameters.get("secret_blocks") or {},
                      parameters.get("keys") or [], t.env)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform",
                          "a platform holding the env vars (RENDER_SERVICE_ID, RENDER_API_KEY)")


@runbook("environment-variables", request_check=check_request, timeout_seconds=3600)
def environment_variables(target: str | None = None, action: Literal["list", "set", "unset"] = "list",
                          values: dict[str, str] | None = None, secret_blocks: dict[str, str] | None = None,
                          keys: list[str] | None = None, restart: bool = True,
                          wait_seconds: Annotated[int, Field(ge=10, le=1800)] = 300,
                          approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900,
                          wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                          dry_run: bool = False) -> Report:
    """List the service's environment variables (names and fingerprints), or set or unset several at once: the
    change is shown first as fingerprints; production waits for an operator's approval; the previous values are
    kept encrypted (a Prefect Secret block) until the change stands; after the restart, a service that is not
    healthy gets its previous values back and the run fails.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        action: list, set or unset.
        values: Plain values, only for keys the target declares non-secret (env.non_secret).
        secret_blocks: For secret keys: KEY -> the name of the Prefect Secret block holding its value.
        keys: The keys to unset (never one the application requires).
        restart: Restart the service after the change, then wait for health.
        wait_seconds: How long the restarted service may take to be healthy.
        approval_timeout_seconds: How long to wait for an operator's approval on a production target.
        wait_for_other_change_seconds: How long to wait for another env change or rotation on this target to end.
        dry_run: Show the change and change nothing.
    """
    values, secret_blocks, keys = values or {}, secret_blocks or {}, keys or []
    t = load_target(target)
    check_request({"action": action, "values": values, "secret_blocks": secret_blocks, "keys": keys}, t)
    if action == "list":
        live = read_env_fingerprints(t.platform)
        return publish(Report(runbook="environment-variables", target=t.name, summary=f"{len(live)} variables",
                              tables={"variables": [{"key": k, "fingerprint": v} for k, v in sorted(live.items())]}))
    with platform_change_on(t, "environment-variables", wait_for_other_change_seconds, wait_seconds,
                            dry_run) as recovered:
        return change_env(t, action, values, secret_blocks, keys, restart, wait_seconds, approval_timeout_seconds,
                          dry_run, recovered)


def change_env(t, action: str, values: dict, secret_blocks: dict, keys: list, restart: bool, wait_seconds: int,
               approval_timeout_seconds: int, dry_run: bool, recovered: str | None) -> Report:
    """The change, previewed, approved, written, read back, restarted; rolled back when the service is not healthy."""
    live = read_env_fingerprints(t.platform)
    new = new_fingerprints(values, secret_blocks) if action == "set" else {}
    change = plan_env_change(live, action, new, keys)
    report = Report(runbook="environment-variables", target=t.name, tables={"change": change.rows},
                    figures={"action": action, "keys": len(change.keys), "dry_run": dry_run})
    note_recovery(report, recovered)
    if dry_run or not change.keys:
        report.summary = (f"dry run: would {action} " if dry_run else "nothing to change: ") + (
            ", ".join(change.keys) or "no key differs")
        return publish(report)
    if refused_in_production(t, report, EnvApproval, f"environment-variables on {t.name}: {action} "
                             f"{', '.join(change.keys)}", approval_timeout_seconds,
                             "an operator refused the change; nothing was written"):
        return publish(report)

    backup = back_up_env(t.platform, change.keys, backup_block_name(t.name, str(flow_run.id)))
    begin_change(t.name, str(flow_run.id), "environment-variables", "env", t.platform.service_id, change.keys, backup)
    wrong = write_env.submit(t.platform, values, secret_blocks, keys, change.expected).result(raise_on_failure=False)
    healthy = None
    if not isinstance(wrong, BaseException) and not wrong:
        mark_step(t.name, "written")
    if not isinstance(wrong, BaseException) and not wrong and restart:
        healthy = restart_and_wait(t.platform, t.health_url, wait_seconds)
    if isinstance(wrong, BaseException) or wrong or (healthy is not None and restart_problem(healthy, wait_seconds)):
        return roll_back(t, report, backup, restart, wait_seconds, wrong, healthy)
    end_change(t.name)  # the change stands
    forget_backup(backup)
    report.summary = f"{action}: {', '.join(change.keys)} written and read back" + (
        "; restarted, healthy" if restart else " (no restart: the running processes keep the old values)")
    return publish(report)


def roll_back(t, report: Report, backup: str, restart: bool, wait_seconds: int, wrong, healthy) -> NoReturn:
    """Put the previous values back (and restart), then fail the run naming what went wrong and the state left."""
    why = (f"the write failed: {wrong}" if isinstance(wrong, BaseException)
           else f"read back differently: {', '.join(wrong)}" if wrong
           else restart_problem(healthy, wait_seconds))
    left = restore_env.submit(t.platform, backup).result(raise_on_failure=False)
    if not isinstance(left, BaseException) and not left and restart:
        after = restart_and_wait(t.platform, t.health_url, wait_seconds)
        state = "previous values restored, restarted, " + (restart_problem(after, wait_seconds) or "healthy")
    elif not isinstance(left, BaseException) and not left:
        state = "previous values restored"
    else:
        state = (f"the rollback failed too ({left if isinstance(left, BaseException) else 'still different: ' + ', '.join(left)}); "
                 f"the previous values are in the Prefect Secret block {backup}, and the next change on "
                 f"{t.name} puts them back first")
    if not isinstance(left, BaseException) and not left:
        end_change(t.name)  # rolled back: nothing left to recover
    fail_run(report, f"{why}; {state}")
