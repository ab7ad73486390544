"""backup-configuration: the guide's "Application Backups" (each service's env vars, render.yaml, a git bundle of the
code), encrypted before anything is stored, manifest last, then verified."""

from datetime import datetime, timezone
from typing import Annotated

from prefect.runtime import flow_run
from pydantic import Field

from flows.verify_configuration_backup import verify_configuration_backup
from playground_ops.errors import ConfigError
from playground_ops.runbook import runbook
from tasks.backup.configuration import ConfigurationManifest, object_rows, summary_of
from tasks.backup.configuration_steps import (back_up_repository, back_up_service_env, check_key_secret, key_name_of,
                                              remove_unfinished, write_config_manifest)
from tasks.backup.policy import backup_id_for
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target


@runbook("backup-configuration", timeout_seconds=4 * 3600)
def backup_configuration(target: str | None = None, verify: bool = True,
                         keep_days: Annotated[int, Field(ge=1, le=3650)] = 30,
                         keep_verified: Annotated[int, Field(ge=1, le=100)] = 3,
                         dry_run: bool = False) -> Report:
    """Every service's env vars (all pages), the infrastructure file at the base branch's head and a verified
    `git bundle --all`, each encrypted with AES-256-GCM in this process, then the manifest; a quick verification and
    retention follow. Without an encryption key nothing is read.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        verify: Verify the backup right after it is written (and apply retention).
        keep_days: Retention: keep every configuration backup younger than this many days.
        keep_verified: Retention: never keep fewer than this many verified configuration backups.
        dry_run: Say what would be backed up and store nothing.
    """
    t = load_target(target)
    settings = load_ops_settings()
    key_name = key_name_of(settings)
    key_id = check_key_secret(key_name)
    services = t.platform.all_services() if t.platform.kind == "render" else []
    skipped = {**({} if services else {"env": "the target has no platform services (platform.kind none)"}),
               **({} if t.repository else {"code": "the target declares no repository",
                                           "infrastructure": "the target declares no repository"})}
    if not services and t.repository is None:
        raise ConfigError(f"target {t.name}", "a platform with services or a repository to back up")
    started = datetime.now(timezone.utc)
    backup_id = backup_id_for(t.name, started, str(flow_run.id))
    if dry_run:
        return publish(Report(runbook="backup-configuration", target=t.name, figures={"dry_run": True},
                              summary=f"dry run: would back up {', '.join(s.name for s in services) or 'no service'}"
                                      + (f" and {t.repository.infrastructure_file} and the code" if t.repository else ""),
                              tables={"skipped": [{"what": k, "why": v} for k, v in skipped.items()]}))
    try:
        envs = [back_up_service_env(settings, t.platform, s, t.name, backup_id, key_name) for s in services]
        infra, code = back_up_repository(settings, t.repository, t.name, backup_id, key_name) if t.repository else (None, None)
        manifest = write_config_manifest(settings, ConfigurationManifest(
            backup_id=backup_id, target=t.name, started_at=started, finished_at=datetime.now(timezone.utc),
            encryption_key=key_name, key_id=key_id, services={e.name: e for e in envs}, infrastructure=infra,
            code=code, skipped=skipped, flow_run_id=str(flow_run.id)))
    except BaseException:
        remove_unfinished(settings, t.name, backup_id)  # this run's objects without a manifest: nothing half done
        raise
    report = Report(runbook="backup-configuration", target=t.name, summary=summary_of(manifest),
                    figures={"backup_id": backup_id, "services": len(envs),
                             "keys": sum(len(e.fingerprints) for e in envs), "refs": len(code.refs) if code else 0},
                    tables={"objects": object_rows(manifest),
                            "services": [{"service": e.name, "type": e.type, "keys": len(e.fingerprints)} for e in envs],
                            **({"skipped": [{"what": k, "why": v} for k, v in skipped.items()]} if skipped else {})})
    for what, why in skipped.items():
        report.add("warning", f"no {what} in this backup: {why}")
    report = publish(report)
    if verify:
        verify_configuration_backup(target=t.name, backup_id=backup_id, mode="quick", keep_days=keep_days,
                                    keep_verified=keep_verified)
    return report
