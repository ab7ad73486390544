"""A change to a live service's environment as a recoverable transaction: an intent record written before the first
write (the service, the keys, where the previous values are kept, the step reached), each step recorded as it
completes, and removed once the change stands or has been rolled back. A run that finds another run's record first
completes or rolls back that change, and says so; it never builds on it.

Records are written only while the target's platform-change slot is held (tasks.slots.platform_change), so a record
that is not this run's, found while holding the slot, belongs to a run that lost the slot: its process or host is gone.
They live in a Prefect Variable per target: durable, shared by every worker, never on the platform they describe.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import task
from prefect.variables import Variable

from tasks.retry import retrying

def record_name(target: str) -> str:
    return f"platform-change-{target}"[:255]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@task(**retrying(retries=3, timeout_seconds=30))
def read_change(target: str) -> dict[str, Any] | None:
    """The unfinished change recorded for the target, if any."""
    return Variable.get(record_name(target), default=None) or None


@task(**retrying(retries=3, timeout_seconds=30))
def begin_change(target: str, run: str, runbook: str, kind: str, service_id: str, keys: list[str],
                 kept_in: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The intent, written before the change's first write. kind: env, rotation (previous values kept in the Secret
    block kept_in) or scaling (the previous scaling, nothing secret, kept in the record itself as `previous`)."""
    record = {"run": run, "runbook": runbook, "kind": kind, "service_id": service_id, "keys": sorted(keys),
              "kept_in": kept_in, "previous": previous, "step": "intent", "steps": [{"step": "intent", "at": _now()}]}
    Variable.set(record_name(target), record, overwrite=True)
    return record


@task(**retrying(retries=3, timeout_seconds=30))
def mark_step(target: str, step: str) -> None:
    """A step of the recorded change completed (written, restarted, tested, ...)."""
    record = Variable.get(record_name(target), default=None)
    if record:
        record["step"] = step
        record["steps"].append({"step": step, "at": _now()})
        Variable.set(record_name(target), record, overwrite=True)


@task(**retrying(retries=3, timeout_seconds=30))
def end_change(target: str) -> None:
    """The change stands or has been rolled back: nothing left to recover."""
    Variable.unset(record_name(target))


def describe(record: dict[str, Any]) -> str:
    return (f"{record['runbook']} run {record['run']} changing {', '.join(record['keys'])} on {record['service_id']}, "
            f"stopped after its {record['step']} step ({record['steps'][-1]['at']})")
