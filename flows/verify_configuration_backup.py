"""verify-configuration-backup: a configuration backup checked rung by rung (stored hashes, decryption, env files,
the bundle cloned), and what has drifted on the live services since."""

from datetime import datetime, timezone
from typing import Annotated, Literal

from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked
from playground_ops.runbook import FindingsFailRun, runbook
from tasks.backup.configuration import RUNGS_FULL, RUNGS_QUICK, drift
from tasks.backup.configuration_steps import (check_bundle, check_decrypt, check_env_files, check_stored,
                                              delete_config_backups, find_config_backup, key_name_of,
                                              list_config_backups, live_drift, write_config_manifest)
from tasks.backup.pipeline import record_verification
from tasks.backup.policy import check_backup_id, plan_retention, rung_rows
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


@runbook("verify-configuration-backup", timeout_seconds=3 * 3600)
def verify_configuration_backup(target: str | None = None, backup_id: Annotated[str | None, Checked(check_backup_id)] = None,
                                mode: Literal["quick", "full"] = "full", apply_retention: bool = True,
                                keep_days: Annotated[int, Field(ge=1, le=3650)] = 30,
                                keep_verified: Annotated[int, Field(ge=1, le=100)] = 3,
                                dry_run: bool = False) -> Report:
    """Check a configuration backup (default: the newest), stopping at the first failed rung; show what changed on
    the live services since (what a restore would undo); then apply retention.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        backup_id: The configuration backup to check, as listed in the store (empty: the newest one).
        mode: quick: stored hashes, decryption and the env files; full: the bundle cloned and its refs compared too.
        apply_retention: Delete configuration backups outside the retention rules after a passed verification.
        keep_days: Retention: keep every configuration backup younger than this many days.
        keep_verified: Retention: never keep fewer than this many verified configuration backups.
        dry_run: Show what retention would delete and delete nothing.
    """
    t = load_target(target)
    settings = load_ops_settings()
    key_name = key_name_of(settings)
    manifest, found = find_config_backup(settings, t.name, backup_id)
    rungs = [found]
    if manifest is not None:
        rungs.append(check_stored(settings, manifest))
        checks = [check_decrypt, check_env_files] + ([check_bundle] if mode == "full" else [])
        for check in checks:
            if not rungs[-1].ok:
                break
            rungs.append(check(settings, manifest, key_name))
        manifest = write_config_manifest(settings, record_verification(manifest, rungs, mode, str(flow_run.id)),
                                         replace=True)
    failed = next((r for r in rungs if not r.ok), None)
    name = manifest.backup_id if manifest else backup_id or "the newest configuration backup"
    ladder = RUNGS_FULL if mode == "full" else RUNGS_QUICK
    report = Report(runbook="verify-configuration-backup", target=t.name, tables={"rungs": rung_rows(rungs, mode, ladder)},
                    summary=f"{mode} verification of {name}: " + (f"FAILED at {failed.name}" if failed
                                                                  else "every rung passed"),
                    figures={"backup_id": manifest.backup_id if manifest else backup_id, "mode": mode,
                             "rungs_passed": sum(r.ok for r in rungs)})
    if failed:
        report.add("critical", f"verification failed at rung {failed.name}: {failed.detail}",
                   next_step="Do not restore from this backup; take a new one and find out who changed the store.")
        publish(report)
        raise FindingsFailRun(f"verification failed at rung {failed.name}: {failed.detail}")
    if t.platform.kind == "render" and manifest.services:
        live = live_drift(t.platform, manifest)
        rows = [{"service": s, **row} for s, service in sorted(manifest.services.items())
                for row in drift(service.fingerprints, live[s])]
        report.tables["drift"] = rows
        report.figures["drifted_keys"] = len(rows)
        if rows:
            report.add("warning", f"{len(rows)} env vars differ from the backup on the live services "
                       f"({', '.join(sorted({r['service'] + ':' + r['key'] for r in rows}))}): a restore would undo "
                       "these changes", next_step="Take a new configuration backup if the changes are meant to stay.")
    if apply_retention:
        manifests, _ = list_config_backups(settings, t.name)
        plan = plan_retention(manifests, datetime.now(timezone.utc), keep_days, keep_verified)
        deleted = delete_config_backups(settings, t.name, [b for b, _ in plan.delete], dry_run)
        verb = "would delete" if dry_run else "deleted"
        report.tables["retention"] = ([{"backup_id": b, "decision": "keep", "why": why} for b, why in plan.keep]
                                      + [{"backup_id": b, "decision": verb, "why": why} for b, why in plan.delete])
        report.figures["objects_deleted"] = 0 if dry_run else len(deleted)
    return publish(report)
