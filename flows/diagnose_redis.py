"""diagnose-redis: the guide's 'Redis Connection Issues' diagnosis, started when RedisMemory fires, or on demand."""

from playground_ops.runbook import runbook
from tasks.monitoring.diagnostics import redis_diagnosis, redis_info_rows, solutions
from tasks.monitoring.probes import probe_outcome
from tasks.reporting.publish import publish
from tasks.monitoring.redis_checks import probe_redis, read_redis_review
from tasks.reporting.report import Report
from tasks.targets import load_target


@runbook("diagnose-redis", timeout_seconds=300)
def diagnose_redis(target: str | None = None) -> Report:
    """PING latency, INFO memory and clients, and the SLOWLOG; the guide's solutions that the evidence supports.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
    """
    t = load_target(target)
    ping = probe_outcome("redis", probe_redis.submit(t.redis_url))
    info, slowlog = read_redis_review(t.redis_url) if ping.ok else ({}, [])

    report = Report(runbook="diagnose-redis", target=t.name,
                    tables={"memory_and_clients": redis_info_rows(info),
                            "slowlog": slowlog},
                    figures={"ping_ms": ping.latency_ms, "ping_ok": ping.ok},
                    summary=f"PING {'answered in %s ms' % ping.latency_ms if ping.ok else 'failed: ' + str(ping.error)}")
    if not ping.ok:
        report.add("critical", f"Redis did not answer PING: {ping.error}")
    return publish(solutions(report, "redis", redis_diagnosis(ping.latency_ms, ping.error, info, slowlog)))
