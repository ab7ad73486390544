"""scaling-review end to end: samples the test writes into a metrics store of its own, the platform stand-in's
scaling, the session's Prefect server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tasks.platform.scaling import recommend_scaling
from playground_ops.settings import Scaling


def week(peak_cpu: float) -> list[dict]:
    """Two days of samples every 10 minutes: CPU 40% but 2 hours at peak_cpu, memory 50%, one instance."""
    start = datetime.now(timezone.utc) - timedelta(days=2, hours=3)
    samples = []
    for i in range(288):
        cpu = peak_cpu if 100 <= i < 112 else 40.0
        samples.append({"at": (start + timedelta(minutes=10 * i)).isoformat(),
                        "values": {"cpu_pct": cpu, "memory_pct": 50.0},
                        "instances": [{"instance": "srv-sandbox-1", "cpu_pct": cpu, "memory_pct": 50.0}]})
    return samples


def test_a_recommendation_follows_the_load_at_p95_and_at_peak():
    declared = Scaling()  # 1-3 at CPU 70% / memory 80%
    assert recommend_scaling(week(120.0), declared, 1)["max_instances"] == 3  # 120/70 x 1.2 = 2.06: 3, as declared
    busy = recommend_scaling(week(200.0), declared, 1)
    assert (busy["min_instances"], busy["max_instances"]) == (1, 4)           # 200/70 x 1.2 = 3.43: 4
    assert busy["load_p95_instances"] == 0.62 and busy["load_peak_instances"] == 2.86  # memory 50/80 at p95
    assert recommend_scaling(week(900.0), declared, 2)["max_instances"] == 5  # never above the bound
    assert recommend_scaling([], declared, 1) is None


def test_drift_usage_hours_above_and_the_recommendation_from_a_weeks_samples(ops, tmp_path, monkeypatch):
    from flows.scale_service import scale_service
    from flows.scaling_review import scaling_review
    from tasks.monitoring.samples import save_sample

    scale_service(autoscaling=False)  # the platform as the guide found it: fixed instances
    monkeypatch.setenv("OPS_METRICS_URL", str(tmp_path / "metrics"))
    for sample in week(200.0):
        save_sample.fn("sandbox", sample)
    report = scaling_review(days=3)
    assert report.figures["samples"] == 288
    assert report.figures["hours_cpu_above_target"] == 2.0 and report.figures["hours_memory_above_target"] == 0
    [usage] = report.tables["usage_by_instance"]
    assert (usage["cpu_peak_pct"], usage["cpu_p95_pct"], usage["memory_p95_pct"]) == (200.0, 40.0, 50.0)
    warnings = [f.message for f in report.findings if f.severity.value == "warning"]
    assert warnings == ["autoscaling is off (1 fixed instances); declared: 1-3 at CPU 70% / memory 80%"]
    infos = [f.message for f in report.findings if f.severity.value == "info"]
    assert infos == ["recommended: 1-4 instances (load at p95 0.62 instances, at peak 2.86); declared 1-3"]
    assert "recommended 1-4 instances" in report.summary


def test_no_samples_is_said_not_guessed(ops, tmp_path, monkeypatch):
    from flows.scaling_review import scaling_review

    monkeypatch.setenv("OPS_METRICS_URL", str(tmp_path / "empty"))
    report = scaling_review()
    assert any("no CPU or memory samples in the last 7 days" in f.message for f in report.findings)
