"""Runbooks run in the background while a test plays the operator, and the run that waits for that operator.

The runner threads are daemons: a run left paused by a failing test must not keep pytest from exiting.
The paused run is looked up with the server's own filter (state PAUSED, newest first), never by scanning one page of
every run: late in a session the server holds more runs than a page, in no useful order."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


def in_background(runbook: Callable[..., Any], **parameters: Any) -> tuple[threading.Thread, dict]:
    """Start `runbook(**parameters)` in a daemon thread; its report lands in outcome["report"], an error in
    outcome["error"]."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["report"] = runbook(**parameters)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True, name=f"runbook-{getattr(runbook, 'name', 'flow')}")
    runner.start()
    return runner, outcome


def paused_run(flow_name: str | None = None, timeout: float = 180):
    """The newest run waiting for an operator (of `flow_name`, when given), as the UI lists it; None after timeout."""
    from prefect import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    flows = FlowFilter(name=FlowFilterName(any_=[flow_name])) if flow_name else None
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            found = client.read_flow_runs(flow_run_filter=runs, flow_filter=flows,
                                          sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
            if found:
                return found[0]
            time.sleep(0.5)
    return None
