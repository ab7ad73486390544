"""Loading the target a runbook works on (settings, targets file, Prefect Secret blocks)."""

from __future__ import annotations

from prefect import task

from playground_ops.settings import Settings, Target, get_target, load_settings
from tasks.monitoring.alert_rules import RuleFile, load_rules
from tasks.retry import retrying


@task(**retrying(retries=2, timeout_seconds=30))
def load_target(name: str | None = None) -> Target:
    """The target to maintain, with its secrets resolved; fails naming the valid targets if it is unknown, or if
    this worker is one of several (OPS_WORKERS) with a store on its own disk."""
    load_settings().check_shared_stores()
    return get_target(name)


@task(**retrying(retries=0, timeout_seconds=10))
def load_ops_settings() -> Settings:
    """playground-ops' own settings (audit store, notification block)."""
    return load_settings()


@task(**retrying(retries=0, timeout_seconds=10))
def load_alert_rules() -> RuleFile:
    """The alert rules (OPS_ALERT_RULES_FILE, or the guide's rules shipped in alert_rules.yaml); a bad file is refused."""
    return load_rules(load_settings().alert_rules_file)
