"""What the reconcile reads of another run, against a real Prefect server."""

from __future__ import annotations

import pytest

from playground_ops.errors import ConfigError


def test_only_a_runbook_runs_id_is_read(ops):
    from prefect import flow, get_client

    from tasks.reporting.runs import read_run

    @flow(name="not-a-runbook")
    def other() -> None:
        pass

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(other)
    with pytest.raises(ConfigError, match=r"^flow_run_id: expected the id of a playground-ops runbook's run "
                                          r"\(got a run of flow 'not-a-runbook'\)$"):
        read_run.fn(str(run.id))
    with pytest.raises(ConfigError, match=r"^flow_run_id: expected a flow run's id \(a UUID"):
        read_run.fn("../../etc")
