"""verify-backup: the guide's backup verification, as a ladder that stops at the first failed rung."""


from typing import Annotated, Literal

from prefect.runtime import flow_run
from pydantic import Field

from flows.expire_backups import expire_backups
from playground_ops.errors import Checked
from playground_ops.runbook import FindingsFailRun, runbook
from tasks.backup.policy import check_backup_id, major_version, rung_rows
from tasks.backup.pipeline import (check_archive, create_scratch_database, drop_scratch_database, prepare_drill_server,
                           find_backup, record_verification, restore_archive, run_amcheck, run_smoke_queries,
                           write_manifest)
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


@runbook("verify-backup", timeout_seconds=12 * 3600)
def verify_backup(target: str | None = None, backup_id: Annotated[str | None, Checked(check_backup_id)] = None,
                  mode: Literal["quick", "full"] = "quick",
                  jobs: Annotated[int, Field(ge=1, le=16)] = 1,
                  apply_retention: bool = True,
                  keep_days: Annotated[int, Field(ge=1, le=3650)] = 7,
                  keep_verified: Annotated[int, Field(ge=1, le=100)] = 3,
                  dry_run: bool = False) -> Report:
    """Check a backup (default: the newest) rung by rung; the full drill restores it into a scratch database.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        backup_id: The backup to use, as listed in the store (empty: the newest one).
        mode: quick: the stored object, decompression and a full read; full: a restore drill as well.
        jobs: Parallel pg_restore jobs (more than 1 decompresses to a scratch file first).
        apply_retention: Run expire-backups after a successful verification.
        keep_days: Retention: keep every backup younger than this many days.
        keep_verified: Retention: never keep fewer than this many verified backups.
        dry_run: Show what would be done and change nothing.
    """
    t = load_target(target)
    settings = load_ops_settings()
    run_id = str(flow_run.id)
    manifest, found = find_backup(settings, t.name, backup_id)
    rungs = [found]
    drill = None
    if manifest is not None and mode == "quick":
        rungs += check_archive(settings, manifest)
    elif manifest is not None:
        drill = prepare_drill_server(t, settings, major_version(manifest.server_version))
        server = drill.url
        scratch = create_scratch_database(server, run_id)
        try:  # every table's count and hash are checked as soon as the data is in, beside the index builds
            rungs += restore_archive(settings, server, manifest, scratch, jobs, check_data=True)
            if all(r.ok for r in rungs):
                rungs.append(run_amcheck(server, scratch))
            if all(r.ok for r in rungs):
                rungs.append(run_smoke_queries(server, scratch, t.app_schema.smoke_queries()))
        finally:
            drop_scratch_database(server, scratch, run_id)
    if manifest is not None:
        manifest = write_manifest(settings, record_verification(manifest, rungs, mode, run_id), replace=True)

    failed = next((r for r in rungs if not r.ok), None)
    report = Report(runbook="verify-backup", target=t.name, tables={"rungs": rung_rows(rungs, mode)},
                    summary=f"{mode} verification of {manifest.backup_id if manifest else backup_id or 'the newest backup'}: "
                            + (f"FAILED at {failed.name}" if failed else "every rung passed"),
                    figures={"backup_id": manifest.backup_id if manifest else backup_id, "mode": mode,
                             "rungs_passed": sum(r.ok for r in rungs),
                             **({"restored_on": drill.name, "proves": drill.proof()} if drill else {})})
    if manifest is not None and mode == "quick":
        report.add("info", "quick check: the archive is intact and pg_restore read all of it; only the full drill "
                   "(mode=full) restores it, onto a server of its origin's major where one can be started here")
    if drill is not None and not drill.proves_origin and not failed:
        report.add("warning", f"the drill {drill.proof()}",
                   next_step=f"Install postgresql-{drill.source_major} (or set OPS_PG_BINDIR to its bin directory) "
                             "so the drill restores onto the origin's major")
    if failed:
        report.add("critical", f"verification failed at rung {failed.name}: {failed.detail}",
                   next_step="Do not rely on this backup; take a new one and investigate the store.")
    publish(report)
    if failed:
        raise FindingsFailRun(f"verification failed at rung {failed.name}: {failed.detail}")
    if apply_retention:
        expire_backups(target=t.name, keep_days=keep_days, keep_verified=keep_verified, dry_run=dry_run)
    return report
