"""Scaling on paper: what a request changes and when an operator must approve it."""

from __future__ import annotations

import pytest

from playground_ops.settings import Scaling
from tasks.platform.scaling import plan_scaling

DECLARED = Scaling()  # the guide's: 1-3 instances, CPU 70%, memory 80%; bound 5


def plan(current, environment="production", **request):
    args = {"instances": None, "autoscaling": None, "min_instances": None, "max_instances": None, "cpu_percent": None,
            "memory_percent": None, **request}
    return plan_scaling(current, DECLARED, environment, **args)


def test_approval_is_asked_for_production_scale_downs_and_anything_above_the_bound():
    assert not plan({"instances": 1}, instances=2).needs_approval
    assert plan({"instances": 3}, instances=2).approval_reasons == ["a production scale-down (3 -> 2)"]
    assert not plan({"instances": 3}, "staging", instances=2).needs_approval
    assert plan({"instances": 1}, "sandbox", instances=6).approval_reasons == ["6 instances is above the bound of 5"]
    assert plan({"instances": 2, "autoscaling": {"min": 1, "max": 3}}, autoscaling=True,
                max_instances=2).approval_reasons == ["a production scale-down of the autoscaling range"]
    assert plan({"instances": 2, "autoscaling": {"min": 1, "max": 3}}, autoscaling=False).needs_approval


def test_declared_settings_fill_what_the_request_leaves_out_and_bad_requests_are_refused():
    assert plan({"instances": 1}, autoscaling=True, cpu_percent=60).autoscaling == {
        "min": 1, "max": 3, "cpu_percent": 60, "memory_percent": 80}
    with pytest.raises(ValueError, match="expected either instances"):
        plan({"instances": 1})
    with pytest.raises(ValueError, match="min_instances above|expected min_instances <= max_instances"):
        plan({"instances": 1}, autoscaling=True, min_instances=4)
    with pytest.raises(ValueError, match="min_instances <= max_instances <= instance_bound"):
        Scaling(max_instances=9)
