"""Scaling on paper (pure): what a scale-service request changes, and whether an operator must approve it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playground_ops.settings import Scaling


@dataclass
class ScalingPlan:
    """One change: a number of instances, or autoscaling settings (or autoscaling removed)."""
    instances: int | None = None
    autoscaling: dict[str, Any] | None = None      # {min, max, cpu_percent, memory_percent}
    remove_autoscaling: bool = False
    approval_reasons: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def needs_approval(self) -> bool:
        return bool(self.approval_reasons)


def current_scaling(service: dict[str, Any]) -> dict[str, Any]:
    """numInstances and the autoscaling settings from the platform's service, as the report shows them."""
    details = service.get("serviceDetails") or {}
    auto = details.get("autoscaling") or None
    return {"instances": details.get("numInstances"), "autoscaling": auto}


def describe_scaling(scaling: dict[str, Any]) -> str:
    """A scaling as current_scaling reads it, in words."""
    auto = scaling.get("autoscaling") or {}
    if auto and auto.get("enabled", True):
        return f"autoscaling {auto.get('min')}-{auto.get('max')} instances"
    return f"{scaling.get('instances')} instances, no autoscaling"


def plan_scaling(current: dict[str, Any], declared: Scaling, environment: str, instances: int | None,
                 autoscaling: bool | None, min_instances: int | None, max_instances: int | None,
                 cpu_percent: int | None, memory_percent: int | None) -> ScalingPlan:
    """The change asked for; one clear ValueError for a request that is not one (both or neither of instances and
    autoscaling, min above max). Production scale-downs and anything above the target's instance bound need an
    operator's approval."""
    if (instances is None) == (autoscaling is None):
        raise ValueError("scale-service: expected either instances (a number) or autoscaling (true or false)")
    production = environment == "production"
    plan = ScalingPlan()
    if instances is not None:
        plan.instances = instances
        before = current.get("instances")
        plan.description = f"instances {before} -> {instances}"
        if production and before is not None and instances < before:
            plan.approval_reasons.append(f"a production scale-down ({before} -> {instances})")
        if instances > declared.instance_bound:
            plan.approval_reasons.append(f"{instances} instances is above the bound of {declared.instance_bound}")
        return plan
    if not autoscaling:
        plan.remove_autoscaling = True
        plan.description = "autoscaling removed (the service keeps its current instances)"
        if production and current.get("autoscaling"):
            plan.approval_reasons.append("autoscaling removed from production")
        return plan
    settings = {"min": min_instances or declared.min_instances, "max": max_instances or declared.max_instances,
                "cpu_percent": cpu_percent or declared.cpu_percent,
                "memory_percent": memory_percent or declared.memory_percent}
    if settings["min"] > settings["max"]:
        raise ValueError(f"scale-service: expected min_instances <= max_instances (got {settings['min']} > "
                         f"{settings['max']})")
    plan.autoscaling = settings
    plan.description = (f"autoscaling {settings['min']}-{settings['max']} instances at CPU {settings['cpu_percent']}% "
                        f"/ memory {settings['memory_percent']}%")
    if settings["max"] > declared.instance_bound:
        plan.approval_reasons.append(f"max {settings['max']} instances is above the bound of {declared.instance_bound}")
    old = (current.get("autoscaling") or {}).get("max")
    if production and (settings["min"] < (current.get("autoscaling") or {}).get("min", settings["min"])
                       or (old is not None and settings["max"] < old)):
        plan.approval_reasons.append("a production scale-down of the autoscaling range")
    return plan


def scaling_drift(current: dict[str, Any], declared: Scaling) -> list[str]:
    """How the platform's scaling differs from the declared one (the guide's settings unless the target says)."""
    auto = current.get("autoscaling") or {}
    if not auto or not auto.get("enabled", True):
        return [f"autoscaling is off ({current.get('instances')} fixed instances); declared: "
                f"{declared.min_instances}-{declared.max_instances} at CPU {declared.cpu_percent}% / memory "
                f"{declared.memory_percent}%"]
    criteria = auto.get("criteria") or {}
    found = {"min": auto.get("min"), "max": auto.get("max"),
             "cpu_percent": (criteria.get("cpu") or {}).get("percentage") if (criteria.get("cpu") or {}).get("enabled") else None,
             "memory_percent": (criteria.get("memory") or {}).get("percentage")
             if (criteria.get("memory") or {}).get("enabled") else None}
    wanted = {"min": declared.min_instances, "max": declared.max_instances, "cpu_percent": declared.cpu_percent,
              "memory_percent": declared.memory_percent}
    return [f"autoscaling {k} is {found[k]}, declared {v}" for k, v in wanted.items() if found[k] != v]


def usage_by_instance(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak and p95 CPU and memory (% of the limit) per instance over the samples (pandas), busiest first."""
    import pandas as pd

    rows = [{"instance": i.get("instance"), "cpu_pct": i.get("cpu_pct"), "memory_pct": i.get("memory_pct")}
            for s in samples for i in s.get("instances") or []]
    if not rows:
        return []
    frame = pd.DataFrame(rows).set_index("instance").apply(pd.to_numeric, errors="coerce")
    stats = frame.groupby(level=0).agg(["max", lambda x: x.quantile(0.95), "count"])
    out = [{"instance": name, "samples": int(row[("cpu_pct", "count")]),
            "cpu_peak_pct": round(float(row[("cpu_pct", "max")]), 1),
            "cpu_p95_pct": round(float(row[("cpu_pct", "<lambda_0>")]), 1),
            "memory_peak_pct": round(float(row[("memory_pct", "max")]), 1),
            "memory_p95_pct": round(float(row[("memory_pct", "<lambda_0>")]), 1)} for name, row in stats.iterrows()]
    return sorted(out, key=lambda r: -r["cpu_peak_pct"])


def hours_above(samples: list[dict[str, Any]], metric: str, threshold: float, max_gap_s: float = 900) -> float:
    """Hours the busiest instance's value stayed above threshold: each sample counts until the next (a gap longer
    than max_gap_s counts as max_gap_s: the health check was not running)."""
    from datetime import datetime

    points = [(datetime.fromisoformat(s["at"]), (s.get("values") or {}).get(metric)) for s in samples]
    total = 0.0
    for (at, value), (following, _) in zip(points, points[1:]):
        if value is not None and value > threshold:
            total += min((following - at).total_seconds(), max_gap_s)
    return round(total / 3600, 2)


def recommend_scaling(samples: list[dict[str, Any]], declared: Scaling, instances: int | None) -> dict[str, Any] | None:
    """A scaling configuration from a week of samples, as Kubernetes' recommenders reason: the load, in instances
    running at the declared targets, at p95 sets the minimum and at peak (with 20% headroom) the maximum, within
    the target's bound. None without samples."""
    import math

    import pandas as pd

    values = pd.DataFrame([s.get("values") or {} for s in samples])
    if values.empty or not {"cpu_pct", "memory_pct"} & set(values.columns):
        return None
    n = instances or 1
    demand = {}
    for metric, target in (("cpu_pct", declared.cpu_percent), ("memory_pct", declared.memory_percent)):
        series = pd.to_numeric(values.get(metric), errors="coerce").dropna() if metric in values else pd.Series([])
        if not series.empty:
            demand[metric] = (n * series.quantile(0.95) / target, n * series.max() / target)
    if not demand:
        return None
    p95 = max(d[0] for d in demand.values())
    peak = max(d[1] for d in demand.values())
    minimum = min(declared.instance_bound, max(declared.min_instances, math.ceil(round(p95, 6))))
    maximum = min(declared.instance_bound, max(minimum, math.ceil(round(peak * 1.2, 6))))
    return {"min_instances": minimum, "max_instances": maximum, "cpu_percent": declared.cpu_percent,
            "memory_percent": declared.memory_percent, "load_p95_instances": round(p95, 2),
            "load_peak_instances": round(peak, 2), "samples": len(samples)}


def rollback_choice(deploys: list[dict[str, Any]], deploy_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the live deploy, the one to roll back to): the named deploy, or the newest one before the live one that
    went live; one clear ValueError when there is none."""
    done = [d for d in deploys if d.get("status") in ("live", "deactivated")]
    if not done:
        raise ValueError("rollback-deploy: expected a live deploy to roll back from (the service has none)")
    live = done[0]
    if deploy_id is not None:
        chosen = next((d for d in deploys if d.get("id") == deploy_id), None)
        if chosen is None or chosen is live or chosen.get("status") not in ("live", "deactivated"):
            raise ValueError(f"rollback-deploy: expected deploy_id to name an earlier deploy that went live "
                             f"(got {deploy_id!r})")
        return live, chosen
    if len(done) < 2:
        raise ValueError("rollback-deploy: expected an earlier deploy that went live (the service has only one)")
    return live, done[1]
