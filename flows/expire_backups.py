"""expire-backups: the guide's 7-day retention, that never deletes the last good backup."""


from datetime import datetime, timezone
from typing import Annotated

from pydantic import Field

from playground_ops.runbook import runbook
from tasks.backup.policy import plan_retention
from tasks.backup.pipeline import clean_incomplete, delete_backups, list_backups
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


@runbook("expire-backups", timeout_seconds=3600)
def expire_backups(target: str | None = None,
                   keep_days: Annotated[int, Field(ge=1, le=3650)] = 7,
                   keep_verified: Annotated[int, Field(ge=1, le=100)] = 3,
                   incomplete_after_hours: Annotated[float, Field(ge=1, le=720)] = 24,
                   dry_run: bool = False) -> Report:
    """Delete backups older than the newest verified one and outside the retention rules; preview with dry_run.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        keep_days: Retention: keep every backup younger than this many days.
        keep_verified: Retention: never keep fewer than this many verified backups.
        incomplete_after_hours: Remove leftovers without a manifest (and multipart uploads) older than this.
        dry_run: Show what would be done and change nothing.
    """
    t = load_target(target)
    settings = load_ops_settings()
    manifests, incomplete = list_backups(settings, t.name)
    plan = plan_retention(manifests, datetime.now(timezone.utc), keep_days, keep_verified)
    deleted = delete_backups(settings, t.name, [backup_id for backup_id, _ in plan.delete], dry_run)
    leftovers = clean_incomplete(settings, t.name, incomplete, incomplete_after_hours, dry_run)

    verb = "would delete" if dry_run else "deleted"
    report = Report(runbook="expire-backups", target=t.name,
                    summary=f"{len(manifests)} complete backups: {len(plan.keep)} kept, {verb} {len(plan.delete)}"
                            f"; {len(leftovers)} incomplete leftovers {'found' if dry_run else 'removed'}",
                    figures={"kept": len(plan.keep), "deleted": 0 if dry_run else len(plan.delete),
                             "would_delete": len(plan.delete) if dry_run else 0, "dry_run": dry_run},
                    tables={"decisions": [{"backup_id": b, "decision": "keep", "why": why} for b, why in plan.keep]
                            + [{"backup_id": b, "decision": verb, "why": why} for b, why in plan.delete],
                            "objects": [{"key": k, "action": verb} for k in deleted + leftovers]})
    return publish(report)
