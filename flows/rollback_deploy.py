"""rollback-deploy: back to the deploy before the live one (Render's rollback), approved where it is production."""

from typing import Annotated

from prefect.input import RunInput
from pydantic import Field

from playground_ops.errors import ConfigError
from playground_ops.runbook import fail_run, runbook
from tasks.platform.change_recovery import note_recovery, platform_change_on
from tasks.platform.scaling import rollback_choice
from tasks.platform.service_actions import read_deploys, roll_back_to, wait_until_healthy, read_instances
from tasks.reporting.notify import refused_in_production
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


class RollbackApproval(RunInput):
    approve: bool = Field(False, description="Roll the production service back to the named deploy")
    reason: str = Field("", description="Why (kept in the report)")


@runbook("rollback-deploy", timeout_seconds=3600)
def rollback_deploy(target: str | None = None, deploy_id: str | None = None, reason: str = "",
                    wait_seconds: Annotated[int, Field(ge=30, le=3600)] = 900,
                    approval_timeout_seconds: Annotated[int, Field(ge=30, le=86400)] = 900,
                    wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                    dry_run: bool = False) -> Report:
    """Roll the service back to an earlier deploy (default: the newest one before the live one that went live):
    on a production target only with an operator's approval; then the rollback's deploy must go live and the
    service answer its health endpoint. Never during another change to the service (it waits for it), and a
    change another run left unfinished is completed or rolled back first.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        deploy_id: The deploy to roll back to (empty: the one before the live one).
        reason: Why (kept in the report; an incident names itself here).
        wait_seconds: How long the rollback's deploy may take to go live and the service to be healthy.
        approval_timeout_seconds: How long to wait for an operator's approval on a production target.
        wait_for_other_change_seconds: How long to wait for another change on this target to end.
        dry_run: Show which deploy it would roll back to and change nothing.
    """
    t = load_target(target)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform to roll back through (RENDER_SERVICE_ID, RENDER_API_KEY)")
    with platform_change_on(t, "rollback-deploy", wait_for_other_change_seconds, wait_seconds, dry_run) as recovered:
        return roll_back(t, deploy_id, reason, wait_seconds, approval_timeout_seconds, dry_run, recovered)


def roll_back(t, deploy_id: str | None, reason: str, wait_seconds: int, approval_timeout_seconds: int, dry_run: bool,
              recovered: str | None) -> Report:
    live, chosen = rollback_choice(read_deploys(t.platform), deploy_id)
    change = f"from {live['id']} (live since {live.get('finishedAt') or live.get('createdAt')}) to {chosen['id']}"
    report = Report(runbook="rollback-deploy", target=t.name, figures={"live": live["id"], "to": chosen["id"],
                                                                       "reason": reason, "dry_run": dry_run})
    note_recovery(report, recovered)
    if dry_run:
        report.summary = f"dry run: would roll back {change}"
        return publish(report)
    if refused_in_production(t, report, RollbackApproval, f"rollback-deploy on {t.name}: roll back {change}",
                             approval_timeout_seconds, f"an operator refused to roll back {change}; nothing was changed"):
        return publish(report)
    before = [i["id"] for i in read_instances(t.platform)]
    deployed = roll_back_to(t.platform, chosen["id"], wait_seconds)
    seen = wait_until_healthy(t.platform, t.health_url, before, 120)
    report.figures.update(deploy=deployed["id"], status=deployed["status"], healthy=seen["healthy"])
    if deployed["status"] != "live" or not seen["healthy"]:
        fail_run(report, f"the rollback {change} ended {deployed['status']}, health {seen['health']}")
    report.summary = f"rolled back {change}: deploy {deployed['id']} live, health endpoint answering"
    return publish(report)
