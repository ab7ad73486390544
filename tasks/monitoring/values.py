"""From what the health check read to the values its alert rules judge (pure: no I/O here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def usage_limit(usage: dict[str, Any], kind: str) -> float | None:
    """The service's latest limit for cpu or memory, from the platform's usage."""
    return next((s["points"][-1][1] for s in usage.get(f"{kind}-limit", []) if s["points"]), None)


def running_series(usage: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The cpu or memory series of the instances running now (the window still holds replaced ones)."""
    series = usage.get(kind, [])
    running = set(usage.get("running", [s["instance"] for s in series]))
    return [s for s in series if s["instance"] in running]


def latest_values(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The values of the newest of the samples (none: an empty dict)."""
    return samples[-1].get("values", {}) if samples else {}


def platform_values(usage: dict[str, Any] | None, now: datetime, fresh_s: float = 180) -> tuple[dict[str, float | None], list[dict]]:
    """CPU and memory as % of the service's limits, for the busiest running instance with a recent point; and per
    instance."""
    if not usage:
        return {"cpu_pct": None, "memory_pct": None}, []
    values: dict[str, float | None] = {}
    rows: dict[str, dict[str, Any]] = {}
    for kind in ("cpu", "memory"):
        limit = usage_limit(usage, kind)
        latest = [(s["instance"], s["points"][-1][1]) for s in running_series(usage, kind)
                  if s["points"] and now.timestamp() - s["points"][-1][0] <= fresh_s]
        for instance, value in latest:
            rows.setdefault(instance, {"instance": instance})[f"{kind}_pct"] = round(100 * value / limit, 1) if limit else None
        values[f"{kind}_pct"] = round(100 * max(v for _, v in latest) / limit, 2) if latest and limit else None
    return values, sorted(rows.values(), key=lambda r: r["instance"])


def redis_values(details: dict[str, Any] | None, previous: dict[str, Any] | None) -> tuple[dict[str, float | None], dict[str, Any], dict[str, str]]:
    """Redis memory vs maxmemory, and the hit rate, evictions and rejected connections since the previous sample
    (deltas of INFO's counters: since-restart totals hide today's behaviour). Returns values, counters, reasons."""
    if not details:
        return {"redis_memory_pct": None, "redis_hit_rate_pct": None, "redis_rejected_connections": None,
                "redis_connected_clients": None}, {}, {}
    counters = {k: details.get(k) for k in ("keyspace_hits", "keyspace_misses", "evicted_keys", "rejected_connections",
                                             "uptime_in_seconds")}
    reasons = {}
    # maxmemory 0 means no limit: nothing to run out of, so 0% of it (a definite value, which resolves the rule)
    values: dict[str, float | None] = {
        "redis_memory_pct": round(100 * details["used_memory"] / details["maxmemory"], 2) if details.get("maxmemory") else 0.0,
        "redis_connected_clients": float(details.get("connected_clients") or 0)}
    before = (previous or {}).get("redis_counters") or {}
    restarted = before and (counters.get("uptime_in_seconds") or 0) < (before.get("uptime_in_seconds") or 0)
    if before and not restarted:
        hits = (counters["keyspace_hits"] or 0) - (before.get("keyspace_hits") or 0)
        misses = (counters["keyspace_misses"] or 0) - (before.get("keyspace_misses") or 0)
        values["redis_hit_rate_pct"] = round(100 * hits / (hits + misses), 2) if hits + misses > 0 else None
        if hits + misses == 0:
            reasons["redis_hit_rate_pct"] = "no reads since the previous sample"
        values["redis_rejected_connections"] = float((counters["rejected_connections"] or 0)
                                                     - (before.get("rejected_connections") or 0))
        values["redis_evicted_keys"] = float((counters["evicted_keys"] or 0) - (before.get("evicted_keys") or 0))
    else:
        values["redis_hit_rate_pct"] = values["redis_rejected_connections"] = None
        reasons["redis_hit_rate_pct"] = reasons["redis_rejected_connections"] = (
            "Redis restarted since the previous sample" if restarted else "no previous sample to compare with")
    return values, counters, reasons


def database_values(details: dict[str, Any] | None) -> dict[str, float | None]:
    if not details or not details.get("max_connections"):
        return {"db_connections_pct": None}
    usable = details["max_connections"] - details.get("reserved_connections", 0)
    return {"db_connections_pct": round(100 * details["connections_in_use"] / usable, 2) if usable > 0 else 100.0}


def build_sample(now: datetime, probes: list[Any], failed_checks: int, traffic: dict[str, Any] | None,
                 usage: dict[str, Any] | None, previous: dict[str, Any] | None,
                 platform_configured: bool = True) -> dict[str, Any]:
    """One sample: every value the rules judge (None when it could not be read, with the reason), kept for trends."""
    by = {p.component: p for p in probes}
    reasons: dict[str, str] = {}
    values: dict[str, float | None] = {"health_failed_checks": float(failed_checks)}
    for name in ("error_rate_pct", "client_error_rate_pct", "p95_latency_ms", "p99_latency_ms"):
        values[name] = traffic.get(name) if traffic else None
        if values[name] is None:
            reasons[name] = "no requests in the window" if traffic else "the requests table could not be read"
    platform, instances = platform_values(usage, now)
    values.update(platform)
    for name, value in platform.items():
        if value is None:
            reasons[name] = ("no platform configured (RENDER_SERVICE_ID)" if not platform_configured
                             else "the platform's metrics could not be read" if usage is None else "no recent samples")
    database = by.get("database")
    values.update(database_values(database.details if database and database.ok else None))
    if values["db_connections_pct"] is None:
        reasons["db_connections_pct"] = "the database probe failed"
    redis = by.get("redis")
    redis_vals, counters, redis_reasons = redis_values(redis.details if redis and redis.ok else None, previous)
    values.update(redis_vals)
    reasons.update(redis_reasons if redis and redis.ok else {k: "the Redis probe failed" for k in redis_vals})
    return {"at": now.isoformat(), "values": values, "reasons": reasons, "redis_counters": counters,
            "instances": instances, "traffic": {k: v for k, v in (traffic or {}).items() if k != "per_minute"}}


TREND = ("error_rate_pct", "p95_latency_ms", "cpu_pct", "memory_pct", "db_connections_pct", "redis_memory_pct")


def trend(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples of the last hour, one row each: the values the rules judge, as they moved."""
    return [{"at": s["at"][11:19], **{k: s["values"].get(k) for k in TREND}} for s in samples]
