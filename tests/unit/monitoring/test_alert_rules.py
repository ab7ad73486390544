"""Alert rules as Prometheus and Alertmanager behave (pure): pending, firing, silenced, resolved, missing, reminders,
and a bad rules file refused with a clear error."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from playground_ops.errors import ConfigError
from tasks.monitoring.alert_rules import evaluate, load_rules

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
GUIDE = load_rules()


def run(values_by_minute: list[dict], rules=GUIDE, step_min: int = 5):
    """Evaluate every 5 minutes, as the health check does; returns each evaluation."""
    state, out = {}, []
    for i, values in enumerate(values_by_minute):
        result = evaluate(rules, values, state, T0 + timedelta(minutes=step_min * i), "prod")
        state = result.state
        out.append(result)
    return out


def row(result, rule):
    return next(r for r in result.rows if r["rule"] == rule)


def test_the_shipped_rules_are_exactly_the_guides():
    got = {(r.name, r.metric, r.op, r.threshold, r.for_seconds, r.severity) for r in GUIDE.rules}
    assert got == {
        ("HighErrorRate", "error_rate_pct", ">", 5, 300, "critical"),
        ("HighLatency", "p95_latency_ms", ">", 2000, 300, "critical"),
        ("HealthCheckFailing", "health_failed_checks", ">=", 2, 0, "critical"),
        ("HighCpu", "cpu_pct", ">", 80, 600, "critical"),
        ("HighMemory", "memory_pct", ">", 80, 600, "critical"),
        ("ElevatedErrorRate", "error_rate_pct", ">", 2, 600, "warning"),
        ("ElevatedLatency", "p95_latency_ms", ">", 1000, 600, "warning"),
        ("DatabaseConnectionPool", "db_connections_pct", ">", 80, 0, "warning"),
        ("RedisMemory", "redis_memory_pct", ">", 70, 0, "warning"),
    }
    assert GUIDE.repeat_interval == 4 * 3600


def test_cpu_fires_only_after_holding_10_minutes_and_notifies_once_then_once_resolved():
    results = run([{"cpu_pct": 95}, {"cpu_pct": 95}, {"cpu_pct": 95}, {"cpu_pct": 95}, {"cpu_pct": 20}])
    assert [row(r, "HighCpu")["state"] for r in results] == ["pending", "pending", "firing", "firing", "inactive"]
    notes = [(n.rule, n.kind) for r in results for n in r.notifications]
    assert notes == [("HighCpu", "firing"), ("HighCpu", "resolved")]
    assert results[2].notifications[0].subject == "[FIRING:critical] HighCpu on prod"
    assert "diagnose-high-cpu" in results[2].notifications[0].body
    assert [r.name for r in results[2].fired] == ["HighCpu"]  # diagnostics start once, when it begins firing


def test_a_condition_that_stops_before_its_duration_never_fires():
    results = run([{"memory_pct": 90}, {"memory_pct": 90}, {"memory_pct": 50}, {"memory_pct": 90}])
    assert [row(r, "HighMemory")["state"] for r in results] == ["pending", "pending", "inactive", "pending"]
    assert not any(r.notifications for r in results)


def test_a_firing_critical_silences_the_warning_on_the_same_metric():
    results = run([{"error_rate_pct": 8}] * 4 + [{"error_rate_pct": 3}] * 2 + [{"error_rate_pct": 0.5}])
    crit = [row(r, "HighErrorRate")["state"] for r in results]
    warn = [row(r, "ElevatedErrorRate")["state"] for r in results]
    assert crit == ["pending", "firing", "firing", "firing", "inactive", "inactive", "inactive"]
    assert warn == ["pending", "pending", "silenced", "silenced", "firing", "firing", "inactive"]
    notes = [(i, n.rule, n.kind) for i, r in enumerate(results) for n in r.notifications]
    # the warning notifies only once the critical is over, and resolves once
    assert notes == [(1, "HighErrorRate", "firing"), (4, "HighErrorRate", "resolved"),
                     (4, "ElevatedErrorRate", "firing"), (6, "ElevatedErrorRate", "resolved")]


def test_missing_data_is_reported_as_missing_and_never_resolves_a_firing_rule():
    results = run([{"p95_latency_ms": 2500}] * 2 + [{"p95_latency_ms": None}] * 2 + [{"p95_latency_ms": 100}])
    states = [row(r, "HighLatency")["state"] for r in results]
    assert states == ["pending", "firing", "firing (no data: missing)", "firing (no data: missing)", "inactive"]
    assert [n.kind for r in results for n in r.notifications if n.rule == "HighLatency"] == ["firing", "resolved"]


def test_a_reminder_comes_only_after_the_repeat_interval():
    values = [{"db_connections_pct": 90}] * 50  # every 5 minutes for 4h05
    kinds = [(i, n.kind) for i, r in enumerate(run(values)) for n in r.notifications]
    assert kinds == [(0, "firing"), (48, "reminder")]


def test_state_carried_across_evaluations_is_all_a_restarted_runner_needs():
    first = evaluate(GUIDE, {"health_failed_checks": 2}, {}, T0, "prod")
    assert [n.kind for n in first.notifications] == ["firing"]
    import json

    restored = json.loads(json.dumps(first.state))  # as stored in, and read back from, a Prefect Variable
    again = evaluate(GUIDE, {"health_failed_checks": 3}, restored, T0 + timedelta(minutes=5), "prod")
    assert again.notifications == [] and row(again, "HealthCheckFailing")["state"] == "firing"


@pytest.mark.parametrize("text, expected", [
    ("rules: []", "a YAML mapping with a non-empty 'rules:' list"),
    ("rules:\n  - {name: X, metric: cpu, threshold: 1, severity: critical, summary: s}",
     "rules[0] (X).metric: expected one of error_rate_pct"),
    ("rules:\n  - {name: X, metric: cpu_pct, threshold: 1, for: 10 minutes, severity: critical, summary: s}",
     "rules[0] (X).for: expected a duration such as 30s, 5m or 4h"),
    ("rules:\n  - {name: X, metric: cpu_pct, threshold: 1, severity: page, summary: s}", "rules[0] (X).severity"),
    ("rules:\n  - {name: X, metric: cpu_pct, threshold: 1, severity: warning, summary: s}\n"
     "  - {name: X, metric: cpu_pct, threshold: 2, severity: warning, summary: s}", "expected each rule name once"),
    ("rules: [", "OPS_ALERT_RULES_FILE: expected valid YAML (got "),  # and the file, line and column
])
def test_a_bad_rules_file_is_refused_naming_what_is_wrong(tmp_path, text, expected):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_rules(path)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_thresholds_and_durations_come_from_the_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("repeat_interval: 1h\nrules:\n  - {name: Busy, metric: cpu_pct, threshold: 50, for: 0s, "
                    "severity: warning, summary: busy}\n")
    rules = load_rules(path)
    assert [row(r, "Busy")["state"] for r in run([{"cpu_pct": 60}], rules)] == ["firing"]


def test_a_5_minute_rule_on_the_5_minute_schedule_fires_at_the_second_check_despite_start_drift():
    """Fixed clocks: checks scheduled at 12:00 and 12:05 actually start at 12:00:00.06 and 12:05:00.00 (a run starts a
    little after its schedule, by varying amounts). Timed by start, the error rate has held 299.94 s at the second
    check and the rule stays pending a whole extra check; timed as Prometheus ticks, by the schedule, it fires."""
    from tasks.monitoring.alert_rules import check_time

    scheduled = [T0, T0 + timedelta(minutes=5)]
    started = [T0 + timedelta(milliseconds=60), T0 + timedelta(minutes=5)]
    by_start, by_schedule = {}, {}
    for when_started, when_scheduled in zip(started, scheduled):
        by_start = evaluate(GUIDE, {"error_rate_pct": 9.0}, by_start, when_started, "prod").state
        by_schedule = evaluate(GUIDE, {"error_rate_pct": 9.0}, by_schedule,
                               check_time(when_scheduled, when_started), "prod").state
    assert by_start["HighErrorRate"]["state"] == "pending"
    assert by_schedule["HighErrorRate"]["state"] == "firing"


@pytest.mark.parametrize("scheduled, started, expected", [
    (T0, T0 + timedelta(seconds=3), T0),                                         # a few seconds late: the schedule
    (None, T0, T0),                                                              # run by hand: when it started
    (T0 + timedelta(minutes=1), T0, T0),                                         # scheduled in the future: started
    (T0 - timedelta(minutes=30), T0, T0),                                        # far behind its schedule: started
])
def test_check_time_is_the_schedule_only_when_it_is_recent(scheduled, started, expected):
    from tasks.monitoring.alert_rules import check_time

    assert check_time(scheduled, started) == expected
