"""`playground-ops serve`: every deployment of prefect.yaml on its schedule, in this process, without a work pool."""

from __future__ import annotations

import threading
import time
from typing import Any

from deployments.catalog import DeploymentSpec, load_catalog


def _schedule(raw: dict[str, Any], active: bool = True) -> Any:
    from prefect.schedules import Cron, Interval, RRule

    common = {"timezone": raw.get("timezone", "UTC"), "slug": raw.get("slug"), "active": active and raw.get("active", True),
              "parameters": raw.get("parameters") or {}}
    if "cron" in raw:
        return Cron(raw["cron"], day_or=raw.get("day_or", True), **common)
    if "interval" in raw:
        from datetime import datetime

        anchor = raw.get("anchor_date")
        anchor = datetime.fromisoformat(anchor.replace("Z", "+00:00")) if isinstance(anchor, str) else anchor
        return Interval(raw["interval"], anchor_date=anchor, **common)
    return RRule(raw["rrule"], **common)


def _concurrency(raw: dict[str, Any] | int | None) -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    if raw is None or isinstance(raw, int):
        return raw
    return ConcurrencyLimitConfig(limit=raw["limit"],
                                  collision_strategy=ConcurrencyLimitStrategy(raw.get("collision_strategy", "ENQUEUE")))


def runner_deployment(spec: DeploymentSpec, schedules: bool = True) -> Any:
    return spec.load_flow().to_deployment(
        name=spec.name, description=spec.description, tags=spec.tags, parameters=spec.parameters,
        schedules=[_schedule(s, active=schedules) for s in spec.schedules],
        concurrency_limit=_concurrency(spec.concurrency_limit))


def serve_all(limit: int | None = None, schedules: bool = True) -> None:
    """Register every deployment and run them until interrupted; schedules stay active on shutdown.

    With schedules=False the deployments are registered with their schedules inactive: on-demand runs only.
    """
    import os

    from prefect import serve

    from playground_ops.settings import load_settings

    # the runs this process starts send heartbeats, so a run lost with this host is marked Crashed
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(load_settings().heartbeat_seconds))
    deployments = [runner_deployment(spec, schedules) for spec in load_catalog().values()]
    threading.Thread(target=_automations_once_registered, daemon=True).start()
    serve(*deployments, pause_on_shutdown=False, limit=limit)


def _automations_once_registered(timeout: float = 300) -> None:
    """The reconcile and incident automations name their runbooks' deployments: made as soon as serve has
    registered them."""
    from deployments.setup import SetupResult, ensure_incident_automation, ensure_reconcile_automation
    from playground_ops.settings import load_settings

    pending = {"reconcile": lambda: ensure_reconcile_automation(SetupResult()),
               "incident": lambda: ensure_incident_automation(load_settings(), SetupResult())}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, ensure in list(pending.items()):
            try:
                if ensure():
                    del pending[name]
            except Exception:  # the API not answering yet: try again
                pass
        time.sleep(2)
