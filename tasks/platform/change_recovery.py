"""Recovering a change another run left unfinished (its record found while this run holds the target's
platform-change slot): rolled back when no token can depend on it, completed otherwise; in words for the report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from tasks.monitoring.run_state import write_run_state
from tasks.platform.change_record import describe, end_change, read_change
from tasks.platform.secret_steps import keep_rollback_copy_only, new_value_live, put_back_current, set_pending
from tasks.platform.service_actions import (restart_and_wait, restart_problem, restore_env, restore_scaling,
                                            wait_for_instances)
from tasks.retry import PermanentError


@contextmanager
def platform_change_on(t, runbook: str, wait_for_other_s: float, wait_s: int, dry_run: bool = False
                       ) -> Iterator[str | None]:
    """Every change to a target's service, in one frame: the target's platform-change slot held (another change waits,
    then is refused), and the change another run left unfinished there recovered first (not for a dry run). Yields
    what the recovery did, or None."""
    from prefect.runtime import flow_run

    from tasks.slots import platform_change

    with platform_change(t.name, wait_for_other_s, f"{runbook} on {t.name}"):
        yield None if dry_run else recover_unfinished(t, str(flow_run.id or "local"), wait_s)


def recover_unfinished(t, run_id: str, wait_seconds: int) -> str | None:
    """The change another run left unfinished on this target, completed or rolled back: what was done, or None when
    there was none. A recovery that fails raises, naming the state left and where the previous values are."""
    record = read_change(t.name)
    if not record or record["run"] == run_id:
        return None
    what = describe(record)
    service = next((s for s in t.platform.all_services() if s.id == record["service_id"]), None)
    if service is None:
        raise PermanentError(f"needs recovery: {what}, but that service is not one of {t.name}'s any more; the "
                             f"previous values are in the Prefect Secret block {record['kept_in']}")
    platform = t.platform.for_service(service)
    if record["kind"] == "scaling":
        return _recover_scaling(t, platform, record, what, wait_seconds)
    if record["kind"] == "rotation" and new_value_live(platform, record["kept_in"]):
        left, done = set_pending(platform, record["kept_in"]), "completed (the new values may sign tokens already)"
    elif record["kind"] == "rotation":
        left, done = put_back_current(platform, record["kept_in"]), "rolled back (no new value was live)"
    else:
        left, done = restore_env(platform, record["kept_in"]), "rolled back (the previous values put back)"
    if left:
        raise PermanentError(f"needs recovery: {what}; recovering it left {', '.join(left)} different; the values "
                             f"are in the Prefect Secret block {record['kept_in']}")
    health = ""
    if service.id == t.platform.service_id:  # the web service: restarted onto the values, and checked
        seen = restart_and_wait(platform, t.health_url, wait_seconds)
        health = "; restarted, " + (restart_problem(seen, wait_seconds) or "healthy")
    else:
        health = f"; {service.name} is not restarted by a recovery: its next deploy publishes the values"
    if record["kind"] == "rotation" and done.startswith("completed"):
        keep_rollback_copy_only(record["kept_in"])
        _rotation_state(t, record)
    end_change(t.name)
    return f"{what}: {done}{health}"


def _recover_scaling(t, platform, record: dict[str, Any], what: str, wait_seconds: int) -> str:
    """A scaling change left unfinished: the scaling from before put back (each call sent only where the platform
    differs), then the instances waited for."""
    from tasks.platform.scaling import describe_scaling

    previous = record["previous"]
    now = restore_scaling(platform, previous)
    seen = wait_for_instances(platform, t.health_url, previous.get("instances") if not now.get("autoscaling") else None,
                              wait_seconds)
    end_change(t.name)
    return (f"{what}: rolled back ({describe_scaling(now)} again); {seen['instances']} instances running, "
            + ("healthy" if seen["healthy"] else f"health {seen['health']}"))


def note_recovery(report, recovered: str | None) -> None:
    """What recover_unfinished did, in the report of the run that did it (a warning: someone's change was undone or
    completed by another run)."""
    if recovered:
        report.add("warning", f"an unfinished change was found first: {recovered}")
        report.figures["recovered"] = recovered


def _rotation_state(t, record: dict[str, Any]) -> None:
    """The completed rotation's grace period, from now: its finish removes the previous values after it."""
    from tasks.platform.rotation import finish_after

    now = datetime.now(timezone.utc)
    due = finish_after(now, t.rotation.grace_seconds)
    secrets = sorted(k for k in record["keys"] if not k.endswith("_PREVIOUS"))
    write_run_state("secret-rotation", t.name, {"rotated_at": record["steps"][0]["at"],
                                                "finish_after": due.isoformat(), "block": record["kept_in"],
                                                "run": record["run"], "secrets": secrets, "recovered": True})
