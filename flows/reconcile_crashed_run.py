"""reconcile-crashed-run: what a run that Crashed (its process or host lost) could not finish itself: its failed
report, and the removal of what it left half done. Started by an automation when a runbook run becomes Crashed."""

from uuid import UUID

from playground_ops.runbook import runbook
from tasks.backup.pipeline import remove_run_leftovers
from tasks.reporting.publish import publish, stored_report_of
from tasks.reporting.report import Report
from tasks.reporting.runs import read_run
from tasks.targets import load_ops_settings, load_target


@runbook("reconcile-crashed-run", timeout_seconds=900)
def reconcile_crashed_run(flow_run_id: UUID, dry_run: bool = False) -> Report:
    """Store the failed report a crashed runbook run could not, and remove what it left half done (a backup's archive
    without a manifest, its unfinished upload); running it twice changes nothing more.

    Args:
        flow_run_id: The id of the runbook run that Crashed (the automation passes it).
        dry_run: Show what would be stored and removed, and change nothing.
    """
    crashed = read_run(str(flow_run_id))
    t = load_target(crashed.target)
    report = Report(runbook="reconcile-crashed-run", target=t.name,
                    figures={"crashed_run": crashed.id, "runbook": crashed.runbook, "dry_run": dry_run})
    if crashed.state_type != "CRASHED":
        report.summary = f"nothing to do: {crashed.runbook} run {crashed.name} is {crashed.state_name}, not Crashed"
        return publish(report)

    removed = []
    if crashed.runbook == "backup-database":
        removed = remove_run_leftovers(load_ops_settings(), t.name, crashed.id, dry_run)
    stored = stored_report_of(crashed.runbook, t.name, crashed.id, crashed.started_at)
    if stored is None and not dry_run:
        failed = Report(runbook=crashed.runbook, target=t.name, flow_run_id=crashed.id,
                        **({"started_at": crashed.started_at} if crashed.started_at else {}))
        failed.fail(f"the run Crashed before it could report: {crashed.message or crashed.state_name}",
                    flow_run=crashed.name)
        stored = publish(failed).stored_at
    verb = "would remove" if dry_run else "removed"
    report.summary = (f"{crashed.runbook} run {crashed.name} Crashed: {verb} {len(removed)} leftover(s); its failed "
                      f"report " + ("is stored" if stored else "would be stored"))
    report.figures.update(leftovers=len(removed), failed_report=stored or "")
    report.tables["leftovers"] = [{"object": key, "action": verb} for key in removed]
    return publish(report)
