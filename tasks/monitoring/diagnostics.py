"""The troubleshooting diagnostics and the daily error review on paper (pure): from evidence to the guide's candidate
solutions, offering only those the evidence supports, each with the evidence that supports it."""

from __future__ import annotations

from typing import Any

from tasks.monitoring.values import running_series, usage_limit
from tasks.reporting.report import Report

SOLUTIONS = {
    "high-cpu": ["Scale Up: increase instance count or size", "Optimize Code: identify and fix performance bottlenecks",
                 "Cache More: increase Redis caching", "Database Optimization: add indexes, optimize queries"],
    "high-memory": ["Restart Service: temporary fix for memory leaks", "Scale Up: increase instance memory",
                    "Fix Memory Leaks: identify and fix in code", "Optimize Caching: reduce cache size or TTL"],
    "database-connections": ["Increase Connection Pool: update pool size in configuration",
                             "Optimize Queries: reduce query execution time", "Add Indexes: improve query performance",
                             "Scale Database: upgrade database plan"],
    "redis": ["Restart Redis: temporary fix for connection issues", "Increase Memory: upgrade Redis plan",
              "Optimize Usage: reduce key count or TTL", "Check Network: verify network connectivity"],
}


def per_instance(usage: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    """Per instance running now, over the window: latest, average, peak and change from first to last, as % of the
    limit (an instance replaced during the window is left out)."""
    if not usage:
        return []
    limit = usage_limit(usage, kind)
    rows = []
    for s in running_series(usage, kind):
        values = [v for _, v in s["points"]]
        if not values or not limit:
            continue
        pct = [100 * v / limit for v in values]
        rows.append({"instance": s["instance"], "latest_pct": round(pct[-1], 1), "avg_pct": round(sum(pct) / len(pct), 1),
                     "peak_pct": round(max(pct), 1), "change_pct_points": round(pct[-1] - pct[0], 1),
                     "samples": len(pct)})
    return rows


def solutions(report: Report, kind: str, supported: dict[int, str]) -> Report:
    """End the report with the guide's candidate solutions the evidence supports (index -> the evidence)."""
    report.tables["candidate_solutions"] = [{"solution": SOLUTIONS[kind][i], "because": why}
                                            for i, why in sorted(supported.items())] or [
        {"solution": "none of the guide's", "because": "the evidence gathered supports none of them; see the tables"}]
    return report


def cpu_diagnosis(usage: dict | None, traffic: dict | None, redis_sample: dict | None, db_activity: list[dict],
                  threshold: float = 80) -> dict[int, str]:
    rows = per_instance(usage, "cpu")
    db_active = sum(a["state"] == "active" for a in db_activity)
    supported: dict[int, str] = {}
    hot = [r for r in rows if r["avg_pct"] > threshold]
    if rows and len(hot) == len(rows):
        supported[0] = f"every instance averaged above {threshold:g}% CPU over the hour ({len(rows)} instances)"
    endpoints = (traffic or {}).get("endpoints") or []
    if endpoints and traffic and traffic.get("requests"):
        top = endpoints[0]
        share = top["requests"] / traffic["requests"]
        if share > 0.5 or (top.get("p95_latency_ms") or 0) > 1000:
            supported[1] = f"{top['endpoint']} carries {share:.0%} of requests (p95 {top.get('p95_latency_ms')} ms)"
    hit = (redis_sample or {}).get("redis_hit_rate_pct")
    if hit is not None and hit < 80:
        supported[2] = f"Redis hit rate {hit:g}% since the previous sample"
    if db_active >= 5:
        supported[3] = f"{db_active} database sessions active at once"
    return supported


def memory_log_lines(logs: list[dict]) -> list[dict]:
    """The log lines that mention memory."""
    return [line for line in logs if "memory" in line["message"].lower()]


def memory_diagnosis(usage: dict | None, memory_logs: list[dict], redis_memory_pct: float | None,
                     threshold: float = 80) -> dict[int, str]:
    rows = per_instance(usage, "memory")
    supported: dict[int, str] = {}
    growing = [r for r in rows if r["change_pct_points"] >= 10]
    if growing:
        supported[0] = f"memory grew {max(r['change_pct_points'] for r in growing):g} points over the hour on " \
                       f"{len(growing)} instance(s): a restart buys time"
        supported[2] = "steady growth is the shape of a leak"
    if rows and all(r["latest_pct"] > threshold for r in rows):
        supported[1] = f"every instance above {threshold:g}% of its memory"
    if memory_logs:
        supported.setdefault(2, f"{len(memory_logs)} recent log lines mention memory")
    if redis_memory_pct is not None and redis_memory_pct > 70:
        supported[3] = f"the cache (Redis) is at {redis_memory_pct:g}% of its memory"
    return supported


def session_problems(activity: list[dict[str, Any]], long_running_s: float) -> tuple[list[dict], list[dict]]:
    """Sessions running one query longer than long_running_s, and sessions idle in a transaction that long."""
    long = [a for a in activity if a["state"] == "active" and (a["query_seconds"] or 0) > long_running_s]
    idle = [a for a in activity if a["state"] == "idle in transaction" and (a["state_seconds"] or 0) > long_running_s]
    return long, idle


def connection_diagnosis(sections: dict[str, dict], long_running_s: float = 60) -> dict[int, str]:
    limits = (sections.get("limits", {}).get("rows") or [{}])[0]
    activity = sections.get("activity", {}).get("rows") or []
    blocking = sections.get("blocking", {}).get("rows") or []
    supported: dict[int, str] = {}
    usable = (limits.get("max_connections") or 0) - (limits.get("reserved") or 0)
    utilisation = limits.get("in_use", 0) / usable if usable > 0 else 0
    active = [a for a in activity if a["state"] == "active"]
    long, _ = session_problems(activity, long_running_s)
    if utilisation > 0.8:
        supported[0] = f"{limits['in_use']} of {usable} usable connections in use ({utilisation:.0%})"
        if len(active) > 0.5 * limits.get("in_use", 1):
            supported[3] = f"{len(active)} sessions are active at once: the server, not the pool, is the limit"
    if long or blocking:
        supported[1] = (f"{len(long)} queries running over {long_running_s:g}s" if long else "") + (
            f"{'; ' if long else ''}{len(blocking)} sessions waiting on another's lock" if blocking else "")
    if long:
        supported[2] = "long-running queries are often scans an index would avoid (see performance-review)"
    return supported


REDIS_FIELDS = ("used_memory", "used_memory_peak", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio",
                "connected_clients", "blocked_clients", "maxclients", "rejected_connections", "evicted_keys")


def redis_info_rows(info: dict[str, Any]) -> list[dict[str, Any]]:
    """INFO's memory and clients fields the diagnosis shows, one row each."""
    return [{"field": k, "value": info.get(k)} for k in REDIS_FIELDS if k in info]


def redis_diagnosis(ping_ms: float | None, ping_error: str | None, info: dict | None, slowlog: list[dict]) -> dict[int, str]:
    supported: dict[int, str] = {}
    if ping_error:
        supported[0] = f"PING failed: {ping_error}"
        supported[3] = "the connection itself failed"
        return supported
    info = info or {}
    if ping_ms is not None and ping_ms > 50:
        supported[3] = f"PING took {ping_ms:g} ms"
    if info.get("maxmemory") and info.get("used_memory", 0) / info["maxmemory"] > 0.7:
        supported[1] = f"used_memory at {100 * info['used_memory'] / info['maxmemory']:.0f}% of maxmemory"
    if info.get("evicted_keys"):
        supported[1] = supported.get(1) or f"{info['evicted_keys']} keys evicted since start"
    keys = sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))
    if info.get("rejected_connections"):
        supported[3] = f"{info['rejected_connections']} connections rejected since start"
    if slowlog or (info.get("maxmemory") and keys > 1_000_000):
        supported[2] = f"{len(slowlog)} slow commands in SLOWLOG" + (f"; {keys} keys" if keys else "")
    return supported


def error_review(errors: list[dict], volumes: list[dict], logs: list[dict] | None,
                 spike_factor: float = 2.0) -> tuple[list[dict], list[dict], list[tuple[str, str, str]]]:
    """Endpoint error rates over the last 24 h against the 7 days before, the top failing endpoints, and findings
    (severity, message, next step) for endpoints whose error rate rose."""
    rows = []
    for v in volumes:
        rate = 100 * v["errors_24h"] / v["requests_24h"] if v["requests_24h"] else 0.0
        before = 100 * v["errors_prev_7d"] / v["requests_prev_7d"] if v["requests_prev_7d"] else None
        rows.append({"endpoint": v["endpoint"], "requests_24h": v["requests_24h"], "errors_24h": v["errors_24h"],
                     "error_rate_24h_pct": round(rate, 2),
                     "error_rate_prev_7d_pct": None if before is None else round(before, 2),
                     "change": "new traffic" if before is None else f"{rate - before:+.2f} points"})
    rows.sort(key=lambda r: (-r["errors_24h"], r["endpoint"]))
    findings = []
    for r in rows:
        before = r["error_rate_prev_7d_pct"]
        if r["errors_24h"] >= 10 and r["error_rate_24h_pct"] > 1 and (before is None or r["error_rate_24h_pct"] > spike_factor * max(before, 0.1)):
            findings.append(("warning", f"{r['endpoint']}: error rate {r['error_rate_24h_pct']}% over the last 24 h "
                                        f"against {before if before is not None else 'no'}% the 7 days before",
                             "Read the error logs and the error types below; check the latest deploy."))
    if logs:
        findings.append(("info", f"{len(logs)} error log lines in the last 24 h (newest shown)", None))
    return rows, errors[:50], findings


def error_totals(endpoints: list[dict]) -> dict[str, int]:
    """Requests and errors of the last 24 hours over every endpoint."""
    return {"requests_24h": sum(e["requests_24h"] for e in endpoints),
            "errors_24h": sum(e["errors_24h"] for e in endpoints)}


def slowlog_row(entry: dict) -> dict:
    """One SLOWLOG entry as an operator reads it: the command as text with its key, the other arguments (which may
    hold data) masked; the start time in ISO; the duration in microseconds."""
    from datetime import datetime, timezone

    raw = entry.get("command", b"")
    if isinstance(raw, (list, tuple)):
        parts = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in raw]
    else:
        parts = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).split()
    shown = [p[:60] for p in parts[:2]]
    if len(parts) > 2:
        shown.append(f"… ({len(parts) - 2} more argument{'s' if len(parts) > 3 else ''}, masked)")
    started = entry.get("start_time")
    return {"id": entry.get("id"), "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
            if isinstance(started, (int, float)) else started, "duration_us": entry.get("duration"),
            "command": " ".join(shown), "client": entry.get("client_address", "") or ""}
