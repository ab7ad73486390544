"""The daily error review and the four troubleshooting runbooks on the sandbox, each with evidence the test creates,
ending with the guide's solutions that evidence supports."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone

import psycopg
import pytest
import redis

from tests.conftest import platform_sample, wait_for_sql

ENDPOINT = "/api/review-test"


def solutions(report) -> list[str]:
    return [row["solution"].split(":")[0] for row in report.tables["candidate_solutions"]]


@pytest.fixture
def review_data(sandbox):
    from sandbox import manager

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        user = conn.execute("SELECT min(id) FROM users").fetchone()[0]
        rows = "INSERT INTO requests (user_id, endpoint, status_code, latency_ms, error_type, created_at) " \
               "SELECT %s, %s, %s, 30, %s, now() - %s::interval * random() - %s::interval FROM generate_series(1, %s)"
        conn.execute(rows, (user, ENDPOINT, 200, None, "20 hours", "1 hour", 450))
        conn.execute(rows, (user, ENDPOINT, 502, "upstream_error", "20 hours", "1 hour", 50))
        conn.execute(rows, (user, ENDPOINT, 200, None, "6 days", "30 hours", 3500))
        conn.execute(rows, (user, ENDPOINT, 502, "upstream_error", "6 days", "30 hours", 5))
    with open(manager.state_dir(sandbox) / "backend.log", "a") as log:
        log.write(json.dumps({"timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                              "level": "error", "message": f"{ENDPOINT} answered 502: upstream_error", "pid": 1}) + "\n")
    yield
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM requests WHERE endpoint = %s", (ENDPOINT,))


def test_daily_error_review_compares_the_last_day_with_the_week_before(review_data):
    from flows.daily_error_review import daily_error_review

    report = daily_error_review()
    row = next(r for r in report.tables["endpoints"] if r["endpoint"] == ENDPOINT)
    assert row["errors_24h"] == 50 and row["error_rate_24h_pct"] == 10.0 and row["error_rate_prev_7d_pct"] == pytest.approx(0.14, abs=0.01)
    assert report.tables["endpoints"][0]["endpoint"] == ENDPOINT  # the top failing endpoint comes first
    assert any(e["endpoint"] == ENDPOINT and e["error_type"] == "upstream_error" and e["last_24h"] == 50
               for e in report.tables["error_types"])
    assert any(f"{ENDPOINT}: error rate 10.0%" in f.message for f in report.findings)
    assert any("upstream_error" in line["message"] for line in report.tables["error_logs"])
    assert report.status.value == "warning"


def test_high_cpu_diagnosis_offers_scaling_when_every_instance_is_busy(sandbox):
    from flows.diagnose_high_cpu import diagnose_high_cpu

    platform_sample("cpu", 0.47, real_instances=True)
    try:
        report = diagnose_high_cpu()
    finally:
        platform_sample("cpu")
    assert any(r["avg_pct"] > 80 for r in report.tables["cpu_by_instance"])
    assert "Scale Up" in solutions(report)


def test_high_memory_diagnosis_sees_growth_and_offers_a_restart(sandbox):
    from flows.diagnose_high_memory import diagnose_high_memory

    # growing over the last hour, as a leak does
    platform_sample("memory", 100 * 2 ** 20, real_instances=True, minutes_ago=40)
    platform_sample("memory", 250 * 2 ** 20, real_instances=True, minutes_ago=20)
    platform_sample("memory", 450 * 2 ** 20, real_instances=True)
    try:
        report = diagnose_high_memory()
    finally:
        platform_sample("memory")
    growing = [r for r in report.tables["memory_by_instance"] if r["change_pct_points"] >= 10]
    assert growing and {"Restart Service", "Fix Memory Leaks"} <= set(solutions(report))


def test_database_connection_diagnosis_shows_a_blocking_chain_and_idle_transactions(sandbox):
    from flows.diagnose_database_connections import diagnose_database_connections

    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS diag_lock (id int)")
        setup.commit()
    holder = psycopg.connect(url, application_name="leaky-worker")
    holder.execute("LOCK TABLE diag_lock IN ACCESS EXCLUSIVE MODE")  # and leaves the transaction open
    waiter = threading.Thread(target=lambda: psycopg.connect(url, autocommit=True, application_name="report-job")
                              .execute("SELECT count(*) FROM diag_lock"), daemon=True)
    waiter.start()
    wait_for_sql(url, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'report-job' AND wait_event_type = 'Lock' "
                      "AND now() - query_start > interval '1 second'", "report-job waiting on the lock for over 1 s")
    try:
        report = diagnose_database_connections(long_running_s=1)
    finally:
        holder.rollback()
        holder.close()
        waiter.join(10)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS diag_lock")
    chain = report.tables["blocking_chains"]
    assert chain and chain[0]["blocked_application"] == "report-job" and chain[0]["blocking_application"] == "leaky-worker"
    assert any(r["application"] == "leaky-worker" for r in report.tables["idle_in_transaction"])
    assert any(g["state"] == "idle in transaction" for g in report.tables["by_state_application_wait"])
    assert "Optimize Queries" in solutions(report)
    assert any("idle in transaction" in f.message for f in report.findings)


def test_redis_diagnosis_reads_ping_memory_clients_and_slowlog(sandbox):
    from flows.diagnose_redis import diagnose_redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    before = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    client.config_set("slowlog-log-slower-than", 0)  # every command is "slow": the SLOWLOG fills
    try:
        client.set("diag:key", "card-4111111111111111-" + "x" * 1000)
        client.get("diag:key")
        report = diagnose_redis()
    finally:
        client.config_set("slowlog-log-slower-than", before)
        client.delete("diag:key")
    assert report.figures["ping_ok"] is True and report.figures["ping_ms"] is not None
    fields = {r["field"] for r in report.tables["memory_and_clients"]}
    assert {"used_memory", "connected_clients", "maxmemory"} <= fields
    assert report.tables["slowlog"] and "Optimize Usage" in solutions(report)
    set_row = next(r for r in report.tables["slowlog"] if r["command"].startswith("SET diag:key"))
    assert set_row["command"] == "SET diag:key … (1 more argument, masked)"  # text, and the value never shown
    assert datetime.fromisoformat(set_row["started"]).tzinfo is not None  # an ISO time, not a raw epoch
    assert "4111111111111111" not in json.dumps(report.model_dump(mode="json"), default=str)


def test_a_platform_refusing_the_key_fails_the_diagnosis_naming_the_service(sandbox, monkeypatch):
    from flows.diagnose_high_cpu import diagnose_high_cpu
    from playground_ops.runbook import RunbookFailed

    monkeypatch.setenv("RENDER_API_KEY", "rnd_revoked-key-for-this-test")
    with pytest.raises(RunbookFailed, match=f"answered 401 unauthorized for service {os.environ['RENDER_SERVICE_ID']}"):
        diagnose_high_cpu()
