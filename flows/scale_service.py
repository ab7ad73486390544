"""scale-service: the guide's `render services scale` and its autoscaling PATCH, with approval and verification."""

from typing import Annotated

from prefect.input import RunInput
from pydantic import Field

from playground_ops.errors import Checked, ConfigError
from playground_ops.runbook import fail_run, runbook
from tasks.platform.scaling import plan_scaling
from tasks.platform.service_actions import apply_scaling, read_scaling, wait_for_instances
from tasks.reporting.notify import check_approval_timeout, wait_for_approval
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_ops_settings, load_target

Count = Annotated[int | None, Field(ge=1, le=100)]
Percent = Annotated[int | None, Field(ge=1, le=100)]


class ScalingApproval(RunInput):
    approve: bool = Field(False, description="Make this scaling change on the service")
    reason: str = Field("", description="Why (kept in the report)")


@runbook("scale-service", timeout_seconds=3600)
def scale_service(target: str | None = None, instances: Count = None, autoscaling: bool | None = None,
                  min_instances: Count = None, max_instances: Count = None, cpu_percent: Percent = None,
                  memory_percent: Percent = None, wait_seconds: Annotated[int, Field(ge=10, le=3600)] = 300,
                  approval_timeout_seconds: Annotated[int, Field(ge=1, le=86400), Checked(check_approval_timeout)] = 900,
                  dry_run: bool = False) -> Report:
    """Set the number of instances, or the autoscaling settings (the target's declared ones unless given), or
    remove autoscaling; a production scale-down or anything above the target's instance bound waits for an
    operator's approval; then the instance count must converge and the service be healthy.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        instances: The number of instances to run (the guide's `render services scale`).
        autoscaling: True to set autoscaling (the settings below, else the target's declared ones), false to remove it.
        min_instances: Autoscaling's fewest instances.
        max_instances: Autoscaling's most instances.
        cpu_percent: Autoscaling's CPU target, %.
        memory_percent: Autoscaling's memory target, %.
        wait_seconds: How long the instance count may take to converge with the service healthy.
        approval_timeout_seconds: How long to wait for an operator's approval, when one is needed.
        dry_run: Show the change and change nothing.
    """
    t = load_target(target)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform to scale through (RENDER_SERVICE_ID, RENDER_API_KEY)")
    current = read_scaling(t.platform)
    plan = plan_scaling(current, t.scaling, t.environment, instances, autoscaling, min_instances, max_instances,
                        cpu_percent, memory_percent)
    report = Report(runbook="scale-service", target=t.name, tables={"before": [current]},
                    figures={"change": plan.description, "dry_run": dry_run, "needs_approval": plan.needs_approval})
    if dry_run:
        report.summary = f"dry run: would set {plan.description}" + (
            f" (needs approval: {'; '.join(plan.approval_reasons)})" if plan.needs_approval else "")
        return publish(report)
    if plan.needs_approval:
        answer = wait_for_approval(ScalingApproval, f"scale-service on {t.name}: {plan.description} ("
                                   + "; ".join(plan.approval_reasons) + ")", approval_timeout_seconds,
                                   load_ops_settings().notification_block)
        report.figures["approval"] = f"{'approved' if answer.approve else 'refused'}: {answer.reason}"
        if not answer.approve:
            report.add("warning", f"an operator refused {plan.description}; nothing was changed")
            report.summary = "refused: nothing changed"
            return publish(report)
    apply_scaling(t.platform, plan)
    seen = wait_for_instances(t.platform, t.health_url, plan.instances, wait_seconds)
    report.tables["after"] = [read_scaling(t.platform)]
    report.figures.update(instances=seen["instances"], healthy=seen["healthy"])
    if not (seen["converged"] and seen["healthy"]):
        fail_run(report, f"{plan.description}: not converged and healthy within {wait_seconds} s "
                         f"({seen['instances']} instances running, health {seen['health']})")
    report.summary = f"{plan.description}: {seen['instances']} instances running, healthy"
    return publish(report)
