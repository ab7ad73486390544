"""From what the health check read to the values its rules judge (pure): deltas between samples, freshness, reasons."""

from __future__ import annotations

from datetime import datetime, timezone

from tasks.monitoring.values import build_sample, platform_values, redis_values
from tasks.monitoring.probes import Probe

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def redis(hits: int, misses: int, uptime: int, rejected: int = 0, used: int = 70, maxmemory: int = 100) -> dict:
    return {"keyspace_hits": hits, "keyspace_misses": misses, "evicted_keys": 0, "rejected_connections": rejected,
            "uptime_in_seconds": uptime, "used_memory": used, "maxmemory": maxmemory, "connected_clients": 4}


def test_redis_hit_rate_is_a_delta_between_samples_not_since_restart():
    first, counters, reasons = redis_values(redis(9_000, 1_000, 100), None)
    assert first["redis_hit_rate_pct"] is None and "no previous sample" in reasons["redis_hit_rate_pct"]
    values, _, _ = redis_values(redis(9_050, 1_150, 400, rejected=3), {"redis_counters": counters})
    assert values["redis_hit_rate_pct"] == 25.0  # 50 hits and 150 misses since: not 90% since start
    assert values["redis_rejected_connections"] == 3.0 and values["redis_memory_pct"] == 70.0
    restarted, _, reasons = redis_values(redis(10, 0, 5), {"redis_counters": counters})
    assert restarted["redis_hit_rate_pct"] is None and "restarted" in reasons["redis_hit_rate_pct"]


def test_platform_values_take_the_busiest_fresh_instance_against_the_limit():
    usage = {"cpu": [{"instance": "a", "points": [(NOW.timestamp() - 60, 0.1)]},
                     {"instance": "b", "points": [(NOW.timestamp() - 30, 0.45)]},
                     {"instance": "gone", "points": [(NOW.timestamp() - 3600, 0.5)]}],  # a stopped instance
             "cpu-limit": [{"instance": "", "points": [(NOW.timestamp(), 0.5)]}], "memory": [], "memory-limit": []}
    values, rows = platform_values(usage, NOW)
    assert values["cpu_pct"] == 90.0 and values["memory_pct"] is None
    assert [r["instance"] for r in rows] == ["a", "b"]


def test_each_missing_value_says_why():
    probes = [Probe(component="database", ok=True, details={"connections_in_use": 10, "max_connections": 103,
                                                             "reserved_connections": 3}),
              Probe(component="redis", ok=False, error="refused")]
    sample = build_sample(NOW, probes, 0, None, None, None, platform_configured=False)
    assert sample["values"]["db_connections_pct"] == 10.0
    assert sample["reasons"]["error_rate_pct"] == "the requests table could not be read"
    assert sample["reasons"]["cpu_pct"] == "no platform configured (RENDER_SERVICE_ID)"
    assert sample["reasons"]["redis_memory_pct"] == "the Redis probe failed"
