"""restore-database: restore a chosen backup into a named database, never over the source, replacing only with
an operator's approval."""


from typing import Annotated

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked
from playground_ops.runbook import FindingsFailRun, runbook
from tasks.backup.policy import check_backup_id, check_database_name, plan_restore, rung_rows
from tasks.backup.pipeline import (create_scratch_database, drop_scratch_database, find_backup,
                                   inspect_database, restore_archive, swap_in_restored_database)
from tasks.reporting.notify import wait_for_approval
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


class RestoreApproval(RunInput):
    approve: bool = Field(False, description="Replace the existing database with the restored backup")
    reason: str = Field("", description="Why (kept in the report)")


@runbook("restore-database", timeout_seconds=12 * 3600)
def restore_database(target: str | None = None, backup_id: Annotated[str | None, Checked(check_backup_id)] = None,
                     database: Annotated[str | None, Checked(check_database_name)] = None,
                     overwrite: bool = False, dry_run: bool = False,
                     jobs: Annotated[int, Field(ge=1, le=16)] = 1,
                     approval_timeout_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = 3600) -> Report:
    """Restore a backup into a database, never over the source or a system database.

    Args:
        target: The target whose backups are restored (default: the configured one).
        backup_id: The backup to restore (default: the newest verified one).
        database: Where to restore: a plain identifier (default: <source>_restore_scratch).
        overwrite: Replace the database if it exists (kept aside; an operator approves unless playground-ops made it for scratch use).
        dry_run: Show the plan and change nothing.
        jobs: Parallel pg_restore jobs.
        approval_timeout_seconds: How long to wait for an operator's approval.
    """
    t = load_target(target)
    settings = load_ops_settings()
    run_id = str(flow_run.id)
    database = database or f"{t.database_name}_restore_scratch"
    report = Report(runbook="restore-database", target=t.name, figures={"database": database, "dry_run": dry_run})
    manifest, found = find_backup(settings, t.name, backup_id, verified_only=backup_id is None)
    if manifest is None:
        report.fail(f"nothing to restore: {found.detail}")
        publish(report)
        raise FindingsFailRun(f"nothing to restore: {found.detail}")
    plan = plan_restore(t.database_name, database, inspect_database(t.database_url, database), overwrite,
                        manifest.backup_id, run_id)
    report.figures["backup_id"] = manifest.backup_id
    report.tables["plan"] = [{"step": s} for s in plan.steps]
    if dry_run:
        report.summary = f"Dry run: would restore {manifest.backup_id} into {database}"
        return publish(report)
    if plan.needs_approval:
        answer = wait_for_approval(RestoreApproval, f"restore-database on {t.name} asks to replace the database "
                                   f"{database} with backup {manifest.backup_id}", approval_timeout_seconds,
                                   settings.notification_block)
        report.figures["approval"] = f"{'approved' if answer.approve else 'refused'}: {answer.reason}"
        if not answer.approve:
            report.add("warning", f"an operator refused to replace {database}; nothing was changed")
            return publish(report)

    staging = create_scratch_database(t.database_url, run_id, purpose="restore")
    rungs = restore_archive(settings, t.database_url, manifest, staging, jobs, check_data=True)
    report.tables["rungs"] = rung_rows(rungs, "full")
    if not all(r.ok for r in rungs):
        drop_scratch_database(t.database_url, staging, run_id)
        report.fail("the restore failed; the staging database was dropped and nothing else was changed")
        publish(report)
        raise FindingsFailRun(f"restore of {manifest.backup_id} failed: {next(r for r in rungs if not r.ok).detail}")
    replaced = swap_in_restored_database(t.database_url, staging, plan, run_id)
    report.summary = f"Restored {manifest.backup_id} into {database}; every table's count and hash match"
    if replaced:
        report.add("info", f"the previous {database}: {replaced}" if plan.drop_replaced
                   else f"the previous {database} was kept as {replaced}", replaced=replaced)
    return publish(report)
