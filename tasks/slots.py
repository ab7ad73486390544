"""Global concurrency slots (created by `playground-ops setup`) that keep heavy database work from overlapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

BACKUP = "playground-ops-backup"
DATABASE_HEAVY = "playground-ops-database-heavy"
AUDIT_HEADS = "playground-ops-audit-heads"  # one writer at a time of the audit chains' heads (a lock held for ms)


# A slot's lease, renewed while its run lives: a run lost with its host frees its slots within this (Prefect's
# minimum) and the server's next sweep of expired leases (Prefect's default loop), before the lost-run automation
# declares it Crashed (OPS_LOST_RUN_SECONDS is at least the heartbeat plus both).
LEASE_SECONDS = 60
LEASE_SWEEP_SECONDS = 15  # PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS' default


class SlotUnavailable(RuntimeError):
    pass


@contextmanager
def hold_slots(names: list[str], wait_seconds: float, what: str,
               holders: str = "another run (a backup, maintenance or performance review)") -> Iterator[None]:
    """Hold every named slot (strict: a missing limit is an error, not a free pass) or fail after waiting."""
    import sys

    from prefect.concurrency.sync import concurrency

    slots = concurrency(names, occupy=1, timeout_seconds=wait_seconds, strict=True, lease_duration=LEASE_SECONDS)
    try:
        slots.__enter__()
    except TimeoutError:
        raise SlotUnavailable(f"{what} did not start: after {wait_seconds:.0f} s, {' or '.join(names)} was still held "
                              f"by {holders}") from None
    try:
        yield
    finally:
        slots.__exit__(*sys.exc_info())


def target_slot(runbook: str, target: str) -> str:
    return f"playground-ops-{runbook}-{target}"[:255]


def ensure_limit(name: str, limit: int = 1):
    """The global concurrency limit, created if it is missing (a target added after `setup` gets its own too)."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
            except ObjectAlreadyExists:  # another run created it meanwhile
                pass
            return client.read_global_concurrency_limit_by_name(name)


@contextmanager
def unless_running(runbook: str, target: str, wait_seconds: float = 120) -> Iterator[bool]:
    """Hold the runbook's slot for this target: yields False at once when another run of the same runbook on the same
    target holds it (this run has nothing to do), True once held. Runs on other targets never wait for, or cancel,
    this one. The slot is asked for once, never waited on: of runs starting in the same instant, the server lets
    exactly one have it (the others are answered 423 Locked)."""
    import sys

    from prefect.concurrency.sync import concurrency

    name = target_slot(runbook, target)
    if ensure_limit(name).active_slots >= 1:
        yield False
        return
    slot = concurrency(name, occupy=1, timeout_seconds=wait_seconds, max_retries=0, strict=True,
                       lease_duration=LEASE_SECONDS)
    try:
        slot.__enter__()
    except TimeoutError:
        yield False
        return
    except Exception as exc:  # ConcurrencySlotAcquisitionError from 423 Locked: another run holds it now
        if getattr(getattr(exc.__cause__, "response", None), "status_code", None) != 423:
            raise
        yield False
        return
    try:
        yield True
    finally:
        slot.__exit__(*sys.exc_info())


@contextmanager
def platform_change(target: str, wait_seconds: float, what: str) -> Iterator[None]:
    """The one global limit per target that every platform change takes (secret-rotation, environment-variables,
    restore-configuration, scale-service): two changes to the same service never interleave; the second waits,
    then is refused."""
    from playground_ops.runbook import stop_if_already_final

    name = target_slot("platform-change", target)
    ensure_limit(name)
    holders = f"another change on {target} (a secret rotation, env var change, configuration restore or scaling)"
    with hold_slots([name], wait_seconds, what, holders=holders):
        stop_if_already_final()  # declared lost while it waited (a frozen host woke up): it changes nothing
        yield
