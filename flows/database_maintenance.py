"""database-maintenance: the guide's monthly VACUUM ANALYZE and reindex, done without hurting production."""

from typing import Annotated

from prefect.input import RunInput
from pydantic import Field

from playground_ops.runbook import runbook
from tasks.database.maintenance_plan import dead_tuples_before_after, ensure_configured_database, plan_maintenance, size_rows
from tasks.database.review import Thresholds
from tasks.database.queries import DATABASE_SIZE, INDEX_BLOAT, INDEXES, REINDEX_IN_PROGRESS, TABLES
from tasks.database.postgres import read_sections, read_server_identity, run_maintenance_step
from tasks.reporting.progress import show_progress, start_progress
from tasks.reporting.notify import wait_for_approval
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.slots import DATABASE_HEAVY, hold_slots
from tasks.targets import load_ops_settings, load_target

STATE = {"tables": TABLES, "database_size": DATABASE_SIZE, "indexes": INDEXES, "index_bloat": INDEX_BLOAT,
         "reindex_in_progress": REINDEX_IN_PROGRESS}


class FullVacuumApproval(RunInput):
    approve: bool = Field(False, description="Run VACUUM FULL: it locks each table for the whole rewrite")


@runbook("database-maintenance", timeout_seconds=8 * 3600)
def database_maintenance(target: str | None = None, vacuum: bool = True, full: bool = False,
                         reindex: list[str] | None = None,
                         reindex_bloat_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.3,
                         reindex_min_bytes: Annotated[int, Field(ge=0)] = 10 * 1024 * 1024,
                         lock_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0,
                         statement_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 3600.0,
                         dry_run: bool = False,
                         wait_for_slot_seconds: Annotated[int, Field(ge=0, le=86_400)] = 1800) -> Report:
    """VACUUM (ANALYZE) table by table and REINDEX CONCURRENTLY where it pays; dry_run lists exactly what would run.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        vacuum: Run VACUUM (ANALYZE) table by table.
        full: Also run VACUUM FULL (locks each table; waits for an operator's approval).
        reindex: Indexes to rebuild concurrently whatever their bloat, e.g. [public.requests_created_at_idx].
        reindex_bloat_ratio: Rebuild an index whose estimated bloat is above this share of its size.
        reindex_min_bytes: ...and only if the index is at least this many bytes.
        lock_timeout_s: Skip a table whose lock is not granted within this many seconds.
        statement_timeout_s: Give up a statement that runs longer than this many seconds.
        dry_run: Show what would be done and change nothing.
        wait_for_slot_seconds: How long to wait for the global concurrency slot before giving up.
    """
    t = load_target(target)
    server = read_server_identity(t.database_url)
    ensure_configured_database(t.database_name, t.system_identifier, server)
    limits = Thresholds(bloat_ratio=reindex_bloat_ratio, bloat_min_bytes=reindex_min_bytes)
    with hold_slots([DATABASE_HEAVY], wait_for_slot_seconds, "database-maintenance"):
        before = read_sections(t.database_url, STATE)
        steps = plan_maintenance(before, vacuum, full, reindex or [], limits)
        report = Report(runbook="database-maintenance", target=t.name,
                        tables={"plan": [{"step": s.kind, "object": s.object, "sql": s.sql, "why": s.why} for s in steps],
                                "sizes_before": size_rows(before)},
                        figures={"database_bytes_before": before["database_size"]["rows"][0]["bytes"],
                                 "steps": len(steps), "dry_run": dry_run})
        if dry_run:
            report.summary = f"Dry run: {len(steps)} statements would run (listed in the plan)"
            return publish(report)
        if full and not wait_for_approval(FullVacuumApproval, f"database-maintenance on {t.name} asks to run VACUUM FULL "
                                          "(it locks each table while it rewrites it)", 3600,
                                          load_ops_settings().notification_block).approve:
            report.add("warning", "VACUUM FULL was not approved; nothing was run")
            return publish(report)
        progress = start_progress(f"database-maintenance-{t.name}-progress", len(steps))
        results = []
        for number, step in enumerate(steps, 1):
            results.append({"step": step.kind, "object": step.object,
                            **run_maintenance_step(t.database_url, step.sql, lock_timeout_s, statement_timeout_s)})
            show_progress(progress, number, len(steps), step.object)
        after = read_sections(t.database_url, STATE)

    report.tables.update(results=results, sizes_after=size_rows(after))
    report.figures["database_bytes_after"] = after["database_size"]["rows"][0]["bytes"]
    report.tables["dead_tuples"] = dead_tuples_before_after(before, after)
    for r in results:
        if r["status"] != "done":
            report.add("warning", f"{r['step']} of {r['object']} {r['status']}: {r['detail']}",
                       next_step="run it again in a quieter moment; see what held the lock (pg_locks)")
    done = sum(r["status"] == "done" for r in results)
    report.summary = f"{done} of {len(results)} maintenance statements done"
    return publish(report)
