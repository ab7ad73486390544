"""State a runbook remembers between runs, kept in Prefect Variables: durable, shared by every worker, and never in
the monitored database or Redis."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.variables import Variable

from tasks.retry import retrying


def state_name(runbook: str, target: str) -> str:
    return f"{runbook}-state-{target}"[:255]


@task(**retrying(retries=3, timeout_seconds=30))
def read_run_state(runbook: str, target: str) -> dict[str, Any]:
    """What the previous run of this runbook on this target left behind (empty on the first run)."""
    return Variable.get(state_name(runbook, target), default={}) or {}


@task(**retrying(retries=3, timeout_seconds=30))
def write_run_state(runbook: str, target: str, state: dict[str, Any]) -> None:
    """Remember this run's state for the next run; writing the same value twice is harmless."""
    Variable.set(state_name(runbook, target), state, overwrite=True)
