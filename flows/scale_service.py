"""scale-service: the guide's `render services scale` and its autoscaling PATCH, with approval and verification."""

from typing import Annotated

from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from playground_ops.errors import Checked, ConfigError
from playground_ops.runbook import fail_run, runbook
from tasks.platform.change_record import begin_change, end_change
from tasks.platform.change_recovery import note_recovery, platform_change_on
from tasks.platform.scaling import describe_scaling, plan_scaling
from tasks.platform.service_actions import apply_scaling, read_scaling, restore_scaling, wait_for_instances
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
                  wait_for_other_change_seconds: Annotated[int, Field(ge=0, le=3600)] = 300,
                  dry_run: bool = False) -> Report:
    """Set the number of instances, or the autoscaling settings (the target's declared ones unless given), or
    remove autoscaling; a production scale-down or anything above the target's instance bound waits for an
    operator's approval; then the instance count must converge and the service be healthy. The change is a
    recoverable transaction (the scaling from before recorded first): when the count does not converge, or a
    service healthy before is not after, the scaling from before is put back; a run that stopped midway is put back
    by the next change on the target.

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
        wait_for_other_change_seconds: How long to wait for another change on this target (scaling, env, rotation)
            to end.
        dry_run: Show the change and change nothing.
    """
    t = load_target(target)
    if t.platform.kind != "render":
        raise ConfigError(f"target {t.name}: platform", "a platform to scale through (RENDER_SERVICE_ID, RENDER_API_KEY)")
    with platform_change_on(t, "scale-service", wait_for_other_change_seconds, wait_seconds, dry_run) as recovered:
        current = read_scaling(t.platform)
        plan = plan_scaling(current, t.scaling, t.environment, instances, autoscaling, min_instances, max_instances,
                            cpu_percent, memory_percent)
        report = Report(runbook="scale-service", target=t.name, tables={"before": [current]},
                        figures={"change": plan.description, "dry_run": dry_run, "needs_approval": plan.needs_approval})
        note_recovery(report, recovered)
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
        return change_scaling(t, plan, current, wait_seconds, report)


def change_scaling(t, plan, current: dict, wait_seconds: int, report: Report) -> Report:
    """The change as a recoverable transaction: recorded with the scaling from before, applied, and kept once the
    instances converge; put back when they do not, or when a service healthy before is not after."""
    healthy_before = wait_for_instances(t.platform, t.health_url, None, 0)["healthy"]
    begin_change(t.name, str(flow_run.id or "local"), "scale-service", "scaling", t.platform.service_id, ["scaling"],
                 "the change record", previous=current)
    applied = apply_scaling.submit(t.platform, plan).result(raise_on_failure=False)
    seen = None if isinstance(applied, BaseException) else wait_for_instances(t.platform, t.health_url, plan.instances,
                                                                              wait_seconds)
    if seen is not None:
        report.tables["after"] = [read_scaling(t.platform)]
        report.figures.update(instances=seen["instances"], healthy=seen["healthy"])
    if seen is None or not seen["converged"] or (healthy_before and not seen["healthy"]):
        why = (f"the change failed: {applied}" if seen is None else
               f"{plan.description}: not converged and healthy within {wait_seconds} s ({seen['instances']} "
               f"instances running, health {seen['health']})")
        put_back = restore_scaling.submit(t.platform, current).result(raise_on_failure=False)
        if isinstance(put_back, BaseException):
            fail_run(report, f"{why}; putting the scaling from before back failed too ({put_back}): the next "
                             f"change on {t.name} puts it back first ({describe_scaling(current)})")
        end_change(t.name)
        fail_run(report, f"{why}; rolled back: {describe_scaling(put_back)} again")
    end_change(t.name)  # the change stands
    if not seen["healthy"]:
        report.add("critical", f"{plan.description}: {seen['instances']} instances running, but the service was not "
                               f"healthy before the change either (health {seen['health']}): the change stands")
        report.summary = f"{plan.description}: {seen['instances']} instances running, not healthy (nor before)"
        return publish(report)
    report.summary = f"{plan.description}: {seen['instances']} instances running, healthy"
    return publish(report)
