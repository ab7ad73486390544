"""diagnose-database-connections: the guide's 'Database Connection Issues' diagnosis, started when
DatabaseConnectionPool fires, or on demand."""

from typing import Annotated

from pydantic import Field

from playground_ops.runbook import runbook
from tasks.monitoring.diagnostics import connection_diagnosis, session_problems, solutions
from tasks.database.queries import ACTIVITY, BLOCKING, CONNECTION_GROUPS, CONNECTION_LIMITS
from tasks.database.postgres import read_sections
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


@runbook("diagnose-database-connections", timeout_seconds=300)
def diagnose_database_connections(target: str | None = None,
                                  long_running_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0) -> Report:
    """pg_stat_activity by state, application and wait event; long-running and idle-in-transaction sessions;
    blocking chains; the guide's solutions that the evidence supports.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        long_running_s: A query running longer than this many seconds is named as long-running.
    """
    t = load_target(target)
    sections = read_sections(t.database_url, {"limits": CONNECTION_LIMITS, "groups": CONNECTION_GROUPS,
                                              "activity": ACTIVITY, "blocking": BLOCKING})
    long, idle_tx = session_problems(sections["activity"].get("rows") or [], long_running_s)
    limits = (sections["limits"].get("rows") or [{}])[0]

    report = Report(runbook="diagnose-database-connections", target=t.name,
                    tables={"by_state_application_wait": sections["groups"].get("rows") or [],
                            "long_running": long, "idle_in_transaction": idle_tx,
                            "blocking_chains": sections["blocking"].get("rows") or []},
                    figures=limits, summary=f"{limits.get('in_use')} connections of {limits.get('max_connections')}; "
                                            f"{len(long)} long-running, {len(idle_tx)} idle in transaction, "
                                            f"{len(sections['blocking'].get('rows') or [])} blocked")
    for name, section in sections.items():
        if "error" in section:
            report.add("warning", f"section {name} could not be read: {section['error']}",
                       next_step="Grant pg_monitor to the role playground-ops connects as.")
    if idle_tx:
        report.add("warning", f"{len(idle_tx)} sessions idle in transaction for over {long_running_s:g}s hold "
                              "connections and locks", next_step="Find the application code that leaves transactions open.")
    return publish(solutions(report, "database-connections", connection_diagnosis(sections, long_running_s)))
