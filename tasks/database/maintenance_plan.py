"""What the monthly maintenance will run (pure): VACUUM (ANALYZE) table by table, REINDEX CONCURRENTLY only where
it pays, and the cleanup of indexes a failed concurrent reindex left behind."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from playground_ops.errors import ConfigError
from tasks.database.review import Thresholds, index_bloat
from tasks.database.queries import drop_index_sql, reindex_sql, vacuum_sql

LEFTOVER = re.compile(r"_cc(new|old)\d*$")


@dataclass
class Step:
    kind: str       # vacuum | vacuum-full | reindex | drop-leftover
    object: str
    sql: str
    why: str


def plan_maintenance(sections: dict[str, dict], vacuum: bool, full: bool, reindex: list[str],
                     t: Thresholds) -> list[Step]:
    """The statements to run, in order: leftovers first (they slow every write), then vacuum, then reindex."""
    rows = lambda name: sections.get(name, {}).get("rows") or []  # noqa: E731
    indexes = {r["index"]: r for r in rows("indexes")}
    unknown = [name for name in reindex if name not in indexes]
    if unknown:
        raise ConfigError("reindex", f"index names of this database as schema.index, one of {', '.join(sorted(indexes)[:20])}",
                          got=", ".join(unknown))
    steps: list[Step] = []
    reindexing_now = (rows("reindex_in_progress") or [{"running": 0}])[0]["running"]
    for name, r in sorted(indexes.items()):
        if not r["is_valid"] and LEFTOVER.search(name.split(".")[-1]) and not reindexing_now:
            steps.append(Step("drop-leftover", name, drop_index_sql(name), "invalid index left by a failed concurrent reindex"))
    if vacuum:
        for r in sorted(rows("tables"), key=lambda r: -r["n_dead_tup"]):
            steps.append(Step("vacuum-full" if full else "vacuum", r["table"], vacuum_sql(r["table"], full),
                              f"{r['n_dead_tup']:,} dead tuples"))
    chosen: dict[str, str] = {name: "asked for" for name in reindex}
    for b in index_bloat(rows("index_bloat"), t):
        chosen.setdefault(b["index"], f"about {b['bloat_ratio']:.0%} bloated (~{b['wasted_bytes']:,} bytes)")
    for name, r in indexes.items():
        if not r["is_valid"] and not LEFTOVER.search(name.split(".")[-1]):
            chosen.setdefault(name, "invalid")
    for name, why in sorted(chosen.items()):
        if not (full and any(s.kind == "vacuum-full" and s.object == indexes[name]["table"] for s in steps)):
            steps.append(Step("reindex", name, reindex_sql(name), why))  # VACUUM FULL rebuilds indexes already
    return steps


def size_rows(sections: dict[str, dict], top: int = 15) -> list[dict[str, Any]]:
    """The guide's size query, broken down: total, table, index and TOAST bytes of the largest tables."""
    tabs = sorted(sections.get("tables", {}).get("rows") or [], key=lambda r: -r["total_bytes"])[:top]
    return [{"table": r["table"], "total_bytes": r["total_bytes"], "table_bytes": r["table_bytes"],
             "index_bytes": r["index_bytes"], "toast_bytes": r["toast_bytes"], "dead_tuples": r["n_dead_tup"]}
            for r in tabs]


def dead_tuples_before_after(before: dict[str, dict], after: dict[str, dict]) -> list[dict[str, Any]]:
    """Each table that had dead tuples, with its count before and after the run."""
    dead = {r["table"]: r["n_dead_tup"] for r in after["tables"]["rows"]}
    return [{"table": r["table"], "before": r["n_dead_tup"], "after": dead.get(r["table"])}
            for r in before["tables"]["rows"] if r["n_dead_tup"]]


def ensure_configured_database(configured_name: str, configured_identifier: str | None, server: dict[str, Any]) -> None:
    """Refuse a connection that landed on another database than the target's (or another cluster, when pinned)."""
    if server["database"] != configured_name:
        raise ConfigError("DATABASE_URL", f"a connection to {configured_name}", got=f"connected to {server['database']}")
    if configured_identifier and server.get("system_identifier") != configured_identifier:
        raise ConfigError("system_identifier", f"the cluster {configured_identifier}",
                          got=f"cluster {server.get('system_identifier') or 'unknown'}")
