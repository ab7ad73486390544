"""scaling-review: the guide's "Scaling Management", reviewed weekly: drift from the declared scaling, and a
recommendation from the week's CPU and memory samples. It changes nothing."""

from datetime import datetime, timedelta, timezone
from typing import Annotated

from pydantic import Field

from playground_ops.runbook import runbook
from tasks.monitoring.samples import read_samples
from tasks.platform.scaling import hours_above, recommend_scaling, scaling_drift, usage_by_instance
from tasks.platform.service_actions import read_scaling
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target


@runbook("scaling-review", timeout_seconds=900)
def scaling_review(target: str | None = None, days: Annotated[int, Field(ge=1, le=90)] = 7) -> Report:
    """The platform's scaling against the target's declared scaling (drift), and from the samples the health check
    keeps: peak and p95 CPU and memory per instance, hours above the targets, and a recommended configuration.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        days: How many days of samples to review.
    """
    t = load_target(target)
    now = datetime.now(timezone.utc)
    current = read_scaling(t.platform) if t.platform.kind == "render" else None
    samples = read_samples(t.name, now - timedelta(days=days), now)
    s = t.scaling
    recommended = recommend_scaling(samples, s, (current or {}).get("instances"))
    report = Report(runbook="scaling-review", target=t.name, tables={
        "usage_by_instance": usage_by_instance(samples),
        "scaling": [{"": "platform", **(current or {})}, {"": "declared", **s.model_dump()},
                    {"": "recommended", **(recommended or {})}]},
        figures={"samples": len(samples), "days": days,
                 "hours_cpu_above_target": hours_above(samples, "cpu_pct", s.cpu_percent),
                 "hours_memory_above_target": hours_above(samples, "memory_pct", s.memory_percent)})
    for drift in scaling_drift(current, s) if current is not None else []:
        report.add("warning", drift, next_step="scale-service with autoscaling=true sets the declared settings.")
    if current is None:
        report.add("info", "no platform configured (RENDER_SERVICE_ID): drift not checked")
    if recommended is None:
        report.add("info", f"no CPU or memory samples in the last {days} days: nothing to recommend",
                   next_step="The health check keeps them (OPS_METRICS_URL); review again once it has run.")
    elif (recommended["min_instances"], recommended["max_instances"]) != (s.min_instances, s.max_instances):
        report.add("info", f"recommended: {recommended['min_instances']}-{recommended['max_instances']} instances "
                           f"(load at p95 {recommended['load_p95_instances']} instances, at peak "
                           f"{recommended['load_peak_instances']}); declared {s.min_instances}-{s.max_instances}",
                   next_step="If it holds, declare it in the targets file and run scale-service with autoscaling=true.")
    report.summary = (f"{len(samples)} samples over {days} days; {len(scaling_drift(current, s)) if current else 0} "
                      f"drift findings; " + (f"recommended {recommended['min_instances']}-{recommended['max_instances']} "
                                             "instances" if recommended else "no recommendation"))
    return publish(report)
