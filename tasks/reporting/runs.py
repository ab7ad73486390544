"""What Prefect knows of another runbook run (the reconcile reads the run that crashed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from prefect import task

from deployments.catalog import runbook_names
from playground_ops.errors import ConfigError
from tasks.retry import retrying


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    runbook: str
    state_type: str
    state_name: str
    message: str
    target: str | None
    started_at: datetime | None


def check_run_id(text: str) -> str:
    """A flow run id as the automation passes it: a UUID, nothing else."""
    try:
        return str(UUID(str(text).strip()))
    except ValueError:
        raise ConfigError("flow_run_id", "a flow run's id (a UUID such as 0b5e4c1e-4f7a-4a51-9d0e-2f1f3c4d5e6f)",
                          got=repr(str(text)[:60])) from None


@task(**retrying(retries=3, timeout_seconds=30))
def read_run(flow_run_id: str) -> RunRecord:
    """The run, its runbook (flow name), state and target parameter."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    run_id = check_run_id(flow_run_id)
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except ObjectNotFound:
            raise ConfigError("flow_run_id", "the id of a flow run on this Prefect server", got=run_id) from None
        flow = client.read_flow(run.flow_id)
    if flow.name not in runbook_names():  # its name becomes a key in the audit store: only a runbook's
        raise ConfigError("flow_run_id", "the id of a playground-ops runbook's run", got=f"a run of flow {flow.name!r}")
    state = run.state
    return RunRecord(run_id, run.name, flow.name, state.type.value if state else "", state.name if state else "",
                     (state.message or "") if state else "", (run.parameters or {}).get("target"),
                     run.start_time or run.expected_start_time)
