"""Global concurrency slots (created by `playground-ops setup`) that keep heavy database work from overlapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

BACKUP = "playground-ops-backup"
DATABASE_HEAVY = "playground-ops-database-heavy"


class SlotUnavailable(RuntimeError):
    pass


@contextmanager
def hold_slots(names: list[str], wait_seconds: float, what: str) -> Iterator[None]:
    """Hold every named slot (strict: a missing limit is an error, not a free pass) or fail after waiting."""
    import sys

    from prefect.concurrency.sync import concurrency

    slots = concurrency(names, occupy=1, timeout_seconds=wait_seconds, strict=True)
    try:
        slots.__enter__()
    except TimeoutError:
        raise SlotUnavailable(f"{what} did not start: after {wait_seconds:.0f} s, {' or '.join(names)} was still held "
                              "by another run (a backup, maintenance or performance review)") from None
    try:
        yield
    finally:
        slots.__exit__(*sys.exc_info())
