"""restore-configuration: one service's env vars put back from a configuration backup (shown as fingerprints,
approved for production, written key by key, read back, restarted, rolled back when unhealthy); the code and the
infrastructure file only ever as a restore-YYYYMMDD branch for a person to review."""

from typing import Annotated, Any

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked, ConfigError
from tasks.backup.policy import check_backup_id
from playground_ops.runbook import fail_run, runbook
from tasks.backup.configuration import restore_branch, restore_rows
from tasks.backup.configuration_steps import (check_key_secret, find_config_backup, key_name_of, push_restore_branch,
                                              redeploy_static_site, write_backed_up_env)
from tasks.platform.service_actions import (back_up_env, backup_block_name, forget_backup, read_env_fingerprints,
                                            restart_and_wait, restart_problem, restore_env)
from tasks.platform.change_record import begin_change, end_change, mark_step
from tasks.platform.change_recovery import note_recovery, platform_change_on
from tasks.reporting.notify import check_approval_timeout, refused_in_production
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


class RestoreApproval(RunInput):
    approve: bool = Field(False, description="Put the backup's env vars back on the production service")
    reason: str = Field("", description="Why (kept in the report)")


def check_request(parameters: dict, t) -> None:
    """The service must be one the target declares (no I/O): the CLI runs it before a run exists."""
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform holding the env vars (RENDER_SERVICE_ID, RENDER_API_KEY)")
    t.platform.service(parameters["service"])


@runbook("restore-configuration", request_check=check_request, timeout_seconds=3600)
def restore_configuration(service: str = "backend", target: str | None = None, backup_id: Annotated[str | None, Checked(check_backup_id)] = None,
                          restore_code: bool = False, restart: bool = True,
                          wait_seconds: Annotated[int, Field(ge=10, le=1800)] = 300,
                          approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900,
                          wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                          dry_run: bool = False) -> Report:
    """Put one service's env vars back as a configuration backup has them (default: the newest verified backup): the
    change is shown as fingerprints first; production waits for an operator's approval; the current values are kept
    until the service is healthy on the restored ones, and put back otherwise. With restore_code, the backed-up base
    branch (with its infrastructure file) is pushed as restore-YYYYMMDD, never over the base branch.

    Args:
        service: The service whose env vars to restore, as the target declares it (backend, frontend, ...).
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        backup_id: The configuration backup to restore from (empty: the newest verified one).
        restore_code: Also push the backed-up code as a restore-YYYYMMDD branch for review.
        restart: Restart the service (a web service) or rebuild it (a static site) after the change, then wait.
        wait_seconds: How long the restarted service may take to be healthy.
        approval_timeout_seconds: How long to wait for an operator's approval on a production target.
        wait_for_other_change_seconds: How long to wait for another env change or rotation on this target to end.
        dry_run: Show the change and change nothing.
    """
    t = load_target(target)
    settings = load_ops_settings()
    key_name = key_name_of(settings)
    check_request({"service": service}, t)
    platform = t.platform.for_service(t.platform.service(service))
    check_key_secret(key_name)
    manifest, found = find_config_backup(settings, t.name, backup_id, verified_only=backup_id is None)
    report = Report(runbook="restore-configuration", target=t.name, figures={"service": service, "dry_run": dry_run})
    if manifest is None or service not in manifest.services:
        fail_run(report, found.detail if manifest is None else f"{manifest.backup_id} holds no env vars of {service} "
                 f"(it has {', '.join(manifest.services) or 'none'})")
    if restore_code and manifest.code is None:
        fail_run(report, f"{manifest.backup_id} holds no code: {manifest.skipped.get('code', 'none was backed up')}")
    rows, write, remove = restore_rows(manifest.services[service].fingerprints, read_env_fingerprints(platform))
    branch = restore_branch(manifest.finished_at) if restore_code else None
    report.tables["change"] = rows
    report.figures.update(backup_id=manifest.backup_id, keys=len(rows), **({"branch": branch} if branch else {}))
    what = f"{service}: {len(write)} keys to write, {len(remove)} to remove" + (f"; push {branch}" if branch else "")
    if dry_run or not (rows or branch):
        report.summary = (f"dry run: would restore from {manifest.backup_id}: {what}" if dry_run
                          else f"nothing to restore: {service} has the env vars of {manifest.backup_id}")
        return publish(report)
    with platform_change_on(t, "restore-configuration", wait_for_other_change_seconds, wait_seconds) as recovered:
        note_recovery(report, recovered)
        if refused_in_production(t, report, RestoreApproval, f"restore-configuration on {t.name} from "
                                 f"{manifest.backup_id}: {what}", approval_timeout_seconds,
                                 "an operator refused the restore; nothing was written"):
            return publish(report)
        if rows:
            restore_env_vars(t, platform, settings, manifest, service, key_name, write, remove, restart, wait_seconds,
                             report)
    if branch:
        pushed = push_restore_branch(settings, t.repository, manifest, key_name, branch)
        report.tables["code"] = [pushed]
    report.summary = f"restored from {manifest.backup_id}: {what}" + (
        "" if not rows else "; written, read back" + ("" if not restart else ", service healthy"))
    return publish(report)


def restore_env_vars(t, platform, settings, manifest, service: str, key_name: str, write: list[str],
                     remove: list[str], restart: bool, wait_seconds: int, report: Report) -> None:
    """The current values kept aside, the backup's written and read back, the service restarted and healthy; on any
    failure the kept values go back and the run fails saying what state it left."""
    backup = back_up_env(platform, write + remove, backup_block_name(t.name, str(flow_run.id)))
    begin_change(t.name, str(flow_run.id), "restore-configuration", "env", platform.service_id, write + remove, backup)
    static = manifest.services[service].type == "static_site"
    wrong = write_backed_up_env.submit(settings, platform, manifest, service, key_name, write, remove
                                       ).result(raise_on_failure=False)
    if not wrong:
        mark_step(t.name, "written")
    seen = restart_or_rebuild(t, platform, static, wait_seconds) if restart and not wrong else None
    if not wrong and (seen is None or not restart_problem(seen, wait_seconds)):
        end_change(t.name)  # the restore stands
        forget_backup(backup)
        return
    why = (f"the write failed: {wrong}" if isinstance(wrong, BaseException)
           else f"read back differently: {', '.join(wrong)}" if wrong
           else restart_problem(seen, wait_seconds))
    left = restore_env.submit(platform, backup).result(raise_on_failure=False)
    if isinstance(left, BaseException) or left:
        fail_run(report, f"{why}; the rollback failed too; the previous values are in the Prefect Secret block {backup}, "
                         f"and the next change on {t.name} puts them back first")
    end_change(t.name)  # rolled back
    after = restart_or_rebuild(t, platform, static, wait_seconds) if restart else None
    fail_run(report, f"{why}; previous values put back" + (
        "" if after is None else ", restarted, " + (restart_problem(after, wait_seconds) or "healthy")))


def restart_or_rebuild(t, platform, static: bool, wait_seconds: int) -> dict[str, Any]:
    """A web service restarted until its new instances answer health; a static site rebuilt until its deploy is live."""
    if static:
        deploy = redeploy_static_site.submit(platform, wait_seconds).result(raise_on_failure=False)
        live = not isinstance(deploy, BaseException) and deploy.get("status") == "live"
        return {"healthy": live, "replaced": live,
                "health": deploy.get("status") if isinstance(deploy, dict) else type(deploy).__name__}
    return restart_and_wait(platform, t.health_url, wait_seconds)
