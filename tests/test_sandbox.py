"""The sandbox: deterministic realistic seed, a backend that records requests, and nothing else touched."""

from __future__ import annotations

import hashlib
import os

import httpx
import psycopg
import redis

from sandbox import manager
from sandbox.seed import seed


def digest(url: str) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT user_id, endpoint, model, status_code, latency_ms, tokens, client_ip::text, "
                            "error_type, created_at FROM requests ORDER BY id").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_seed_is_deterministic_and_realistic(sandbox):
    from datetime import datetime, timedelta, timezone

    url = manager.database_url(sandbox)
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    seed(url, users=100, requests=20_000, days=7, end=end)
    first = digest(url)
    seed(url, users=100, requests=20_000, days=7, end=end)
    assert digest(url) == first
    with psycopg.connect(url) as conn:
        error_rate = conn.execute("SELECT avg((status_code >= 400)::int) FROM requests").fetchone()[0]
        top_share = conn.execute("""SELECT sum(n) FILTER (WHERE rk <= 5)::float / sum(n) FROM
            (SELECT count(*) n, rank() OVER (ORDER BY count(*) DESC) rk FROM requests GROUP BY user_id) t""").fetchone()[0]
        p50, p99 = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), "
                                "percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FROM requests").fetchone()
        by_hour = dict(conn.execute("SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int, count(*) "
                                    "FROM requests GROUP BY 1").fetchall())
        span = conn.execute("SELECT min(created_at), max(created_at) FROM requests").fetchone()
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'requests'")}
    assert 0.01 <= error_rate <= 0.03
    assert top_share > 0.2  # 5 of 100 users make more than a fifth of the traffic
    assert p99 > 4 * p50  # a long tail
    assert by_hour[15] > 2 * by_hour[3]  # diurnal: afternoon busier than night
    assert span[0] >= end - timedelta(days=7) and span[1] <= end
    assert {"requests_created_at_idx", "requests_user_id_created_at_idx"} <= indexes


def test_backend_health_and_api_record_requests_with_jwt_and_quota(sandbox):
    base = manager.target_env(sandbox)["HEALTH_URL"].removesuffix("/health")
    health = httpx.get(f"{base}/health").json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["redis"] == "ok"
    url = manager.database_url(sandbox)
    with psycopg.connect(url) as conn:
        email, before = conn.execute("SELECT email, (SELECT count(*) FROM requests) FROM users "
                                     "WHERE disabled_at IS NULL ORDER BY id LIMIT 1").fetchone()
    token = httpx.post(f"{base}/api/token", json={"email": email}).json()["token"]
    assert httpx.post(f"{base}/api/chat", json={"model": "gpt-4o"}).status_code == 401
    ok = httpx.post(f"{base}/api/chat", json={"model": "gpt-4o"}, headers={"Authorization": f"Bearer {token}"})
    bad = httpx.post(f"{base}/api/chat", json={"model": "nope"}, headers={"Authorization": f"Bearer {token}"})
    assert (ok.status_code, bad.status_code) == (200, 400)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status_code, error_type FROM requests ORDER BY id DESC LIMIT 2").fetchall()
        after = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    assert after == before + 2 and rows == [(400, "invalid_request"), (200, None)]


def test_sandbox_leaves_other_databases_and_redis_dbs_untouched(sandbox):
    admin = sandbox.sandbox_admin_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bystander")
        conn.execute("CREATE DATABASE bystander")
    other = redis.Redis.from_url(f"{sandbox.sandbox_redis_url}/3")
    other.set("bystander", "still here")
    try:
        manager.down(sandbox, purge=True)
        manager.up(sandbox, users=50, requests=2000, days=3)
        with psycopg.connect(admin) as conn:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bystander'").fetchone()
        assert other.get("bystander") == b"still here"
    finally:
        other.delete("bystander")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bystander")


def test_sandbox_commands(sandbox):
    from tests.conftest import cli

    status = cli("sandbox", "status")
    assert status.returncode == 0 and '"healthy": true' in status.stdout
    env = cli("sandbox", "env")
    assert "export DATABASE_URL='postgresql://" in env.stdout and "export JWT_SECRET=" in env.stdout


def test_sandbox_down_backend_stops_the_backend_alone_for_a_backend_failure_drill(sandbox):
    """A drill of the backend failing must not become a total outage: the platform's API and the database stay up."""
    from tests.conftest import backend_down, cli

    stopped = cli("sandbox", "down", "--backend")
    try:
        assert stopped.returncode == 0, stopped.stderr
        assert "backend stopped; the rest still runs" in stopped.stdout
        backend_down(sandbox)  # and stays down
        assert manager.backend_pid(sandbox) is None
        headers = {"Authorization": f"Bearer {os.environ['RENDER_API_KEY']}"}
        assert httpx.get(f"{os.environ['RENDER_API_URL']}/services", headers=headers).status_code == 200
        with psycopg.connect(manager.database_url(sandbox)) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0
        refused = cli("sandbox", "down", "--backend", "--purge")
        assert refused.returncode == 2 and "--purge: expected everything stopped" in refused.stderr
    finally:
        manager.up(sandbox, users=50, requests=2000, days=3)
    assert httpx.get(os.environ["HEALTH_URL"]).status_code == 200
