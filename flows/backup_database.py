"""backup-database: the guide's daily backup at 02:00 UTC, as careful as pgBackRest and Barman."""


from datetime import datetime, timezone
from typing import Annotated

from prefect.runtime import flow_run
from pydantic import Field

from flows.verify_backup import verify_backup
from playground_ops.runbook import runbook
from tasks.backup.policy import backup_id_for, backup_report_fields
from tasks.backup.pipeline import check_tool_versions, dump_database_to_store, write_manifest
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.slots import BACKUP, DATABASE_HEAVY, hold_slots
from tasks.targets import load_ops_settings, load_target


@runbook("backup-database", timeout_seconds=12 * 3600)
def backup_database(target: str | None = None,
                    compression_level: Annotated[int, Field(ge=1, le=19)] = 1,
                    verify: bool = True,
                    keep_days: Annotated[int, Field(ge=1, le=3650)] = 7,
                    keep_verified: Annotated[int, Field(ge=1, le=100)] = 3,
                    dry_run: bool = False,
                    wait_for_slot_seconds: Annotated[int, Field(ge=0, le=86400)] = 1800) -> Report:
    """Dump from one snapshot, stream through zstd into the store, write the manifest last, then verify and expire.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        compression_level: zstd level, 1 (fastest) to 19 (smallest).
        verify: Run a quick verification (and retention) right after the backup.
        keep_days: Retention: keep every backup younger than this many days.
        keep_verified: Retention: never keep fewer than this many verified backups.
        dry_run: Show what would be done and change nothing.
        wait_for_slot_seconds: How long to wait for the global concurrency slot before giving up.
    """
    t = load_target(target)
    settings = load_ops_settings()
    versions = check_tool_versions(t.database_url)
    with hold_slots([BACKUP, DATABASE_HEAVY], wait_for_slot_seconds, "backup-database"):
        backup_id = backup_id_for(t.name, datetime.now(timezone.utc), str(flow_run.id))
        archive = dump_database_to_store(t, settings, backup_id, versions, compression_level)
        manifest = write_manifest(settings, archive)
    report = publish(Report(runbook="backup-database", target=t.name, **backup_report_fields(manifest)))
    if verify:
        verify_backup(target=t.name, backup_id=manifest.backup_id, mode="quick", keep_days=keep_days,
                      keep_verified=keep_verified, dry_run=dry_run)
    return report
