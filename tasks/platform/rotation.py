"""Secret rotation on paper (pure): which secrets are mid-rotation, what a rotation will do (as fingerprints), when
its grace period ends, and what the token checks found. Staged as AWS Secrets Manager rotates: create (a new value,
kept with the current one in an encrypted block), set (<NAME>_PREVIOUS = current, <NAME> = new, key by key), test
(a token signed with the new value and one signed with the previous value are both accepted), finish (after the grace
period, <NAME>_PREVIOUS removed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

PREVIOUS = "_PREVIOUS"


def previous_name(name: str) -> str:
    return name + PREVIOUS


def mid_rotation(live: dict[str, str], names: list[str]) -> list[str]:
    """The secrets whose previous value is still kept (a rotation not finished)."""
    return [n for n in names if previous_name(n) in live]


def missing(live: dict[str, str], names: list[str]) -> list[str]:
    return [n for n in names if n not in live]


def plan_rows(live: dict[str, str], names: list[str], block: str) -> list[dict[str, Any]]:
    """One row per secret: its fingerprint now, where the current value goes, where the rollback copy is kept."""
    return [{"secret": n, "current": live.get(n, ""), "new": "(made when the rotation runs)",
             "current kept as": previous_name(n), "rollback copy in": f"Prefect Secret block {block}"} for n in names]


def staged_rows(fingerprints: dict[str, dict[str, str]], block: str) -> list[dict[str, Any]]:
    return [{"secret": n, "current": fp["current"], "new": fp["pending"], "current kept as": previous_name(n),
             "rollback copy in": f"Prefect Secret block {block}"} for n, fp in sorted(fingerprints.items())]


def finish_after(rotated_at: datetime, grace_seconds: int) -> datetime:
    return rotated_at + timedelta(seconds=grace_seconds)


def finish_due(state: dict[str, Any], now: datetime) -> bool:
    """Whether the grace period recorded by the rotation is over (no record: due, nothing says otherwise)."""
    when = state.get("finish_after")
    return when is None or datetime.fromisoformat(when) <= now


def failed_checks(rows: list[dict[str, Any]]) -> list[str]:
    """The token checks whose answer was not the expected one, in words."""
    return [f"{r['secret']}: a token signed with the {r['signed with']} value was answered {r['answers']} "
            f"(expected {r['expected']})" for r in rows if not r["ok"]]


def token_row(secret: str, signed_with: str, statuses: list[int | str], expected: int) -> dict[str, Any]:
    """One check, tried on several connections (so on several instances): ok when every answer is the expected one."""
    return {"secret": secret, "signed with": signed_with, "expected": expected,
            "answers": ", ".join(str(s) for s in sorted(set(statuses), key=str)),
            "ok": bool(statuses) and all(s == expected for s in statuses)}
