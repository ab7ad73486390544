"""The health check's judgement (pure): consecutive failures, capacity warnings, transitions."""

from __future__ import annotations

import pytest

from tasks.health import assess_health, notification_text
from tasks.probes import Probe


def probes(service=True, database=True, redis=True, in_use=5, max_conn=100, used=10, maxmemory=0):
    return [
        Probe(component="service", ok=service, latency_ms=10 if service else None, error=None if service else "down",
              details={"status_code": 200, "body": {"status": "ok", "database": "ok", "redis": "ok"}} if service else {}),
        Probe(component="database", ok=database, error=None if database else "refused",
              details={"connections_in_use": in_use, "max_connections": max_conn, "reserved_connections": 0}),
        Probe(component="redis", ok=redis, error=None if redis else "refused",
              details={"used_memory": used, "maxmemory": maxmemory}),
    ]


@pytest.mark.parametrize("streak_before, expected_status, expected_transition", [
    (0, "warning", None),      # first failure: not yet critical
    (1, "critical", "critical"),  # second in a row: critical, notify
])
def test_service_failure_goes_critical_on_the_second_consecutive_check(streak_before, expected_status, expected_transition):
    previous = {"status": "warning" if streak_before else "ok", "consecutive_failures": {"service": streak_before}}
    result = assess_health(probes(service=False), previous)
    assert result.status.value == expected_status
    assert result.transition == expected_transition
    assert result.state["consecutive_failures"]["service"] == streak_before + 1


@pytest.mark.parametrize("previous_status, ok_now, transition", [
    ("critical", False, None),        # still critical: no second notification
    ("critical", True, "recovered"),  # back: one recovery notification
    ("warning", True, None),
])
def test_transitions_notify_once_each_way(previous_status, ok_now, transition):
    previous = {"status": previous_status, "consecutive_failures": {"service": 3}}
    result = assess_health(probes(service=ok_now), previous)
    assert result.transition == transition


@pytest.mark.parametrize("in_use, max_conn, warn", [(81, 100, True), (80, 100, False), (5, 100, False)])
def test_connection_pool_above_80_percent_is_a_warning(in_use, max_conn, warn):
    result = assess_health(probes(in_use=in_use, max_conn=max_conn), {})
    assert (result.status.value == "warning") is warn
    assert any("connection pool" in f.message for f in result.findings) is warn


@pytest.mark.parametrize("used, maxmemory, warn", [(71, 100, True), (70, 100, False), (10**9, 0, False)])
def test_redis_memory_above_70_percent_of_maxmemory_is_a_warning_and_zero_means_no_limit(used, maxmemory, warn):
    result = assess_health(probes(used=used, maxmemory=maxmemory), {})
    assert any("Redis memory" in f.message for f in result.findings) is warn


def test_notification_text_names_target_findings_and_link():
    result = assess_health(probes(database=False), {"status": "warning", "consecutive_failures": {"database": 1}})
    subject, body = notification_text("health-check", "prod", result, "http://ui/runs/flow-run/1")
    assert subject == "[CRITICAL] health-check on prod"
    assert "the database failed 2 consecutive checks" in body and "http://ui/runs/flow-run/1" in body
