"""The health check's judgement of its probes (pure): consecutive failures, a degraded dependency."""

from __future__ import annotations

import pytest

from tasks.monitoring.health_assessment import assess_health
from tasks.monitoring.probes import Probe


def probes(service=True, database=True, redis=True, in_use=5, max_conn=100, used=10, maxmemory=0):
    return [
        Probe(component="service", ok=service, latency_ms=10 if service else None, error=None if service else "down",
              details={"status_code": 200, "body": {"status": "ok", "database": "ok", "redis": "ok"}} if service else {}),
        Probe(component="database", ok=database, error=None if database else "refused",
              details={"connections_in_use": in_use, "max_connections": max_conn, "reserved_connections": 0}),
        Probe(component="redis", ok=redis, error=None if redis else "refused",
              details={"used_memory": used, "maxmemory": maxmemory}),
    ]


@pytest.mark.parametrize("streak_before, expected_status", [
    (0, "warning"),   # first failure: not yet critical
    (1, "critical"),  # second in a row: critical (the HealthCheckFailing rule notifies)
])
def test_service_failure_goes_critical_on_the_second_consecutive_check(streak_before, expected_status):
    previous = {"status": "warning" if streak_before else "ok", "consecutive_failures": {"service": streak_before}}
    result = assess_health(probes(service=False), previous)
    assert result.status.value == expected_status
    assert result.state["consecutive_failures"]["service"] == streak_before + 1


def test_a_probe_that_answers_again_clears_its_streak():
    result = assess_health(probes(), {"status": "critical", "consecutive_failures": {"service": 3}})
    assert result.status.value == "ok" and result.state["consecutive_failures"]["service"] == 0
    assert result.figures["database_connections_in_use"] == 5
