"""restart-service: the guide's `render restart`, then the wait until the service is healthy again."""

from typing import Annotated

from pydantic import Field

from playground_ops.errors import ConfigError
from playground_ops.runbook import fail_run, runbook
from tasks.platform.change_recovery import note_recovery, platform_change_on
from tasks.platform.service_actions import read_instances, restart_and_wait, restart_problem
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


@runbook("restart-service", timeout_seconds=1800)
def restart_service(target: str | None = None, reason: str = "",
                    wait_seconds: Annotated[int, Field(ge=10, le=1800)] = 300,
                    wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                    dry_run: bool = False) -> Report:
    """Restart the service's instances on the platform (zero-downtime: new ones start before the old stop), then wait
    until none of the old instances runs and the health endpoint answers; failed when it does not within the wait.
    Never during another change to the service (it waits for it), and a change another run left unfinished is
    completed or rolled back first.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        reason: Why (kept in the report; an incident names itself here).
        wait_seconds: How long to wait for the restarted service to be healthy.
        wait_for_other_change_seconds: How long to wait for another change on this target to end.
        dry_run: Show what would be restarted and change nothing.
    """
    t = load_target(target)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform to restart through (RENDER_SERVICE_ID, RENDER_API_KEY)")
    with platform_change_on(t, "restart-service", wait_for_other_change_seconds, wait_seconds, dry_run) as recovered:
        return restart(t, reason, wait_seconds, dry_run, recovered)


def restart(t, reason: str, wait_seconds: int, dry_run: bool, recovered: str | None) -> Report:
    before = [i["id"] for i in read_instances(t.platform)]
    report = Report(runbook="restart-service", target=t.name, figures={"reason": reason, "dry_run": dry_run,
                                                                       "instances_before": len(before)},
                    tables={"instances_before": [{"id": i} for i in before]})
    note_recovery(report, recovered)
    if dry_run:
        report.summary = f"dry run: would restart {len(before)} instances of {t.platform.service_id}"
        return publish(report)
    seen = restart_and_wait(t.platform, t.health_url, wait_seconds)
    report.tables["instances_after"] = [{"id": i} for i in seen["instances"]]
    report.figures.update(healthy=seen["healthy"], instances_replaced=seen["replaced"])
    if restart_problem(seen, wait_seconds):
        fail_run(report, restart_problem(seen, wait_seconds))
    report.summary = f"restarted: {len(seen['instances'])} new instances, health endpoint answering"
    return publish(report)
