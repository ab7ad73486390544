"""performance-review: the guide's weekly performance review, as thorough as PgHero, for PostgreSQL and Redis."""

from typing import Annotated

from pydantic import Field

from playground_ops.runbook import runbook
from tasks.database.maintenance_plan import ensure_configured_database
from tasks.database.review import (Section, Thresholds, growth_review, health_review, index_review, order_findings,
                               redis_review, statement_review, unreadable)
from tasks.database.queries import review_queries, statements_sql
from tasks.database.postgres import explain_statements, read_sections, read_server_identity
from tasks.reporting.publish import publish, read_previous_report
from tasks.monitoring.redis_checks import read_redis_review
from tasks.reporting.report import Report
from tasks.slots import DATABASE_HEAVY, hold_slots
from tasks.targets import load_target


@runbook("performance-review", timeout_seconds=3600)
def performance_review(target: str | None = None,
                       slow_mean_ms: Annotated[float, Field(gt=0, le=600_000)] = 100.0,
                       long_running_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0,
                       idle_in_transaction_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0,
                       explain_top: Annotated[int, Field(ge=0, le=50)] = 5,
                       wait_for_slot_seconds: Annotated[int, Field(ge=0, le=86_400)] = 1800) -> Report:
    """Slow statements (deltas since last week), indexes, database health, Redis, and size growth; suggests, never applies.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        slow_mean_ms: A statement whose mean time is above this many ms is slow.
        long_running_s: A query running longer than this many seconds is named as long-running.
        idle_in_transaction_s: A session idle in a transaction for longer than this is named.
        explain_top: Show generic plans (EXPLAIN, never ANALYZE) of this many slowest reads.
        wait_for_slot_seconds: How long to wait for the global concurrency slot before giving up.
    """
    t = load_target(target)
    limits = Thresholds(slow_mean_ms=slow_mean_ms, long_running_s=long_running_s,
                        idle_in_transaction_s=idle_in_transaction_s)
    server = read_server_identity(t.database_url)
    ensure_configured_database(t.database_name, t.system_identifier, server)
    previous = (read_previous_report("performance-review", t.name) or {}).get("kept", {})
    with hold_slots([DATABASE_HEAVY], wait_for_slot_seconds, "performance-review"):
        sections = read_sections(t.database_url, review_queries(server["version_num"]))
        available = (sections["statements_available"].get("rows") or [None])[0]
        if available is None or (available["preloaded"] and available["installed"]):  # None: the role may not tell
            sections.update(read_sections(t.database_url, {"statements": statements_sql(server["version_num"])}))
        info, slowlog = read_redis_review(t.redis_url)

    statements = sections.get("statements", {}).get("rows")
    reset = (sections.get("statements_reset", {}).get("rows") or [{}])[0].get("stats_reset")
    review = Section().merge(statement_review(available, statements, previous.get("statements"), reset,
                                              previous.get("statements_reset"), limits))
    review.merge(index_review(sections["indexes"].get("rows"), sections["tables"].get("rows"), statements, limits))
    review.merge(health_review(sections, limits)).merge(growth_review(sections, previous))
    review.merge(redis_review(info, slowlog, previous.get("redis"), limits)).merge(unreadable(sections, available))
    candidates = {c["queryid"]: c["query"] for c in review.keep.pop("explain_candidates", [])[:explain_top]}
    plans = explain_statements(t.database_url, candidates) if candidates else {}
    review.tables["plans"] = [{"queryid": q, "query": candidates[q][:300], "plan": p} for q, p in plans.items()]

    report = Report(runbook="performance-review", target=t.name, findings=order_findings(review.findings),
                    tables=review.tables, figures={"server": server["version"], **review.figures}, kept=review.keep,
                    summary=f"{len(review.findings)} findings on {server['database']} (PostgreSQL {server['version']})")
    report.status = max((f.severity.status for f in review.findings), key=lambda s: s.rank, default=report.status)
    return publish(report)
