"""security-review end to end: a database the test writes (steady traffic for four weeks, a brute-force burst from one
IP, a user hammering one endpoint, inactive admin and service accounts), the sandbox backend's own "authentication
failed" log lines through the platform stand-in, and the approval-gated disable through the Prefect API."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from sandbox import manager
from tests.background import in_background, paused_run
from tests.conftest import use_target
from tests.flows.test_business_report import known_database

BURST_IP, HAMMER_IP = "203.0.113.66", "198.51.100.23"


def activity_database(ops) -> str:
    url = known_database(ops, "security_known", with_data=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((manager.ROOT / "sandbox" / "schema.sql").read_text())
        conn.execute("SET TimeZone = 'UTC'")
        # ten ordinary users who logged in yesterday; each makes 4 requests a day for four weeks from its own IP
        conn.execute("INSERT INTO users (id, email, role, created_at, last_login_at) SELECT g, 'user' || g || "
                     "'@example.com', 'user', now() - interval '300 days', now() - interval '1 day' "
                     "FROM generate_series(1, 10) g")
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, client_ip,
            created_at) SELECT u, '/api/chat', 'gpt-4o', 200, 80, 10, ('10.0.0.' || u)::inet,
            date_trunc('hour', now()) - d * interval '1 day' - h * interval '5 hours'
            FROM generate_series(1, 10) u, generate_series(1, 27) d, generate_series(0, 3) h""")
        # accounts for the access review: an admin idle for 200 days, a service account idle for 120, an admin
        # active yesterday, a user idle for 100 days, an idle admin already disabled, a user who never logged in
        # but was created a week ago
        conn.execute("""INSERT INTO users (id, email, role, created_at, last_login_at, disabled_at) VALUES
            (11, 'old-admin@example.com', 'admin', now() - interval '400 days', now() - interval '200 days', NULL),
            (12, 'batch@example.com', 'service', now() - interval '400 days', now() - interval '120 days', NULL),
            (13, 'admin@example.com', 'admin', now() - interval '400 days', now() - interval '1 day', NULL),
            (14, 'idle@example.com', 'user', now() - interval '400 days', now() - interval '100 days', NULL),
            (15, 'gone@example.com', 'admin', now() - interval '400 days', now() - interval '300 days', now()),
            (16, 'fresh@example.com', 'user', now() - interval '7 days', NULL, NULL)""")
        # a brute-force burst yesterday: 30 failed requests (401) within 5 minutes from one IP against five accounts
        conn.execute(f"""INSERT INTO requests (user_id, endpoint, status_code, latency_ms, client_ip, error_type,
            created_at) SELECT 1 + g % 5, '/api/chat', 401, 3, '{BURST_IP}', 'unauthorized',
            now() - interval '1 day' + g * interval '10 seconds' FROM generate_series(1, 30) g""")
        # three scattered 401s over the week from other IPs: nothing to flag
        conn.execute("""INSERT INTO requests (user_id, endpoint, status_code, latency_ms, client_ip, error_type,
            created_at) SELECT g, '/api/chat', 401, 3, ('10.0.0.' || g)::inet, 'unauthorized',
            now() - g * interval '2 days' FROM generate_series(1, 3) g""")
        # user 7 hammers /api/embeddings: 600 requests in one hour two days ago (an hour its steady traffic misses),
        # from an IP of its own
        conn.execute(f"""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, client_ip,
            created_at) SELECT 7, '/api/embeddings', 'gpt-4o-mini', 200, 20, 5, '{HAMMER_IP}',
            date_trunc('hour', now() - interval '2 days') + interval '2 hours' + g * interval '5 seconds'
            FROM generate_series(0, 599) g""")
        # user 9 is refused for quota 60 times within one hour three days ago (a client retrying without backing off)
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, client_ip, error_type,
            created_at) SELECT 9, '/api/chat', 'gpt-4o', 429, 2, '10.0.0.9', 'quota_exceeded',
            date_trunc('hour', now() - interval '3 days') + interval '3 hours' + g * interval '30 seconds'
            FROM generate_series(0, 59) g""")
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        conn.execute("VACUUM ANALYZE")
    return url


@pytest.fixture
def known(ops, tmp_path, monkeypatch):
    url = activity_database(ops)
    use_target(tmp_path, monkeypatch, "secure", url, manager.redis_url(ops))
    return url


def test_the_burst_and_the_hammering_are_flagged_and_nothing_else(known):
    from flows.security_review import security_review

    report = security_review(access_review=False, open_incidents=False)
    flagged = [f for f in report.findings if f.severity.value in ("critical", "warning")]
    assert sorted(f.message.split(":")[0] for f in flagged) == [
        f"brute force? {BURST_IP}", "quota refusal burst", "unusual request rate", "unusual request rate"]
    refusals = next(f for f in flagged if f.message.startswith("quota refusal burst"))
    assert refusals.evidence["user_id"] == 9 and refusals.evidence["refused"] == 60
    burst = next(f for f in flagged if BURST_IP in f.message)
    assert burst.severity.value == "critical" and burst.evidence["peak"] == 30 and "401" in burst.message
    rates = {f.evidence.get("user_id") or f.evidence.get("ip"): f for f in flagged if "rate" in f.message}
    assert set(rates) == {7, HAMMER_IP}
    assert rates[7].evidence["peak"] == 600 and rates[7].evidence["endpoint"] == "/api/embeddings"
    assert rates[7].evidence["before"] == 1  # its busiest hour in the three weeks before
    by_ip = {r["ip"]: r["failures"] for r in report.tables["failed_logins_by_ip"]}
    assert by_ip == {BURST_IP: 30, "10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1}
    assert report.tables["top_users"][0]["user_id"] == 7 and report.figures["access_review"] is False
    assert any(f.message.startswith("no platform: the backend's log lines") for f in report.findings)


def test_failed_requests_count_every_401_not_only_the_twenty_addresses_the_table_shows(known):
    from flows.security_review import security_review

    with psycopg.connect(known, autocommit=True) as conn:  # 25 more addresses, one failed request each
        conn.execute("""INSERT INTO requests (user_id, endpoint, status_code, latency_ms, client_ip, error_type,
            created_at) SELECT 1, '/api/chat', 401, 3, ('10.1.0.' || g)::inet, 'unauthorized',
            now() - interval '3 days' - g * interval '1 minute' FROM generate_series(1, 25) g""")
        total, ips = conn.execute("SELECT count(*), count(DISTINCT client_ip) FROM requests WHERE status_code = 401 "
                                  "AND created_at >= now() - interval '7 days'").fetchone()
    report = security_review(access_review=False, open_incidents=False)
    assert len(report.tables["failed_logins_by_ip"]) == 20 and ips == 29
    assert (report.figures["failed_requests"], report.figures["failed_request_ips"]) == (total, ips) == (58, 29)


def test_the_access_review_names_inactive_privileged_accounts_roles_and_public_create(known):
    from flows.security_review import security_review

    report = security_review(access_review=True, open_incidents=False)
    messages = [f.message for f in report.findings]
    assert "inactive admin account old-admin@example.com (no login for 90 days, not disabled)" in messages
    assert "inactive service account batch@example.com (no login for 90 days, not disabled)" in messages
    assert next(f for f in report.findings if "old-admin" in f.message).severity.value == "critical"
    assert "1 user accounts with no login for 90 days and not disabled" in messages  # idle@, never fresh@
    assert {r["user_id"] for r in report.tables["inactive_accounts"]} == {11, 12, 14}
    assert "PUBLIC may CREATE in schema public (any role can create objects there)" in messages
    assert "database role postgres can log in and is a superuser" in messages
    assert "JWT_SECRET: no rotation on record in the audit trail" in messages
    assert [r["secret"] for r in report.tables["secret_ages"]] == ["JWT_SECRET", "JWT_REFRESH_SECRET"]


def test_a_role_that_cannot_read_every_section_gets_the_others_and_their_names(known, ops, tmp_path, monkeypatch):
    from flows.security_review import security_review

    with psycopg.connect(known, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS security_reader")
        conn.execute("CREATE ROLE security_reader LOGIN")
        conn.execute("GRANT SELECT ON users, requests TO security_reader")
    url = known.replace("postgres:", "security_reader:", 1)
    use_target(tmp_path, monkeypatch, "secure", url, manager.redis_url(ops))
    report = security_review(access_review=True, open_incidents=False)
    unreadable = [f.message for f in report.findings if ": could not be read (" in f.message]
    assert unreadable == ["passwords: could not be read (InsufficientPrivilege: permission denied for table pg_authid)"]
    assert {r["user_id"] for r in report.tables["inactive_accounts"]} == {11, 12, 14}  # the rest was read


def test_disabling_asks_first_disables_exactly_the_listed_accounts_and_nothing_when_refused(known, receiver):
    from prefect.flow_runs import resume_flow_run

    from flows.security_review import security_review

    def disabled() -> set[int]:
        with psycopg.connect(known) as conn:
            return {r[0] for r in conn.execute("SELECT id FROM users WHERE disabled_at IS NOT NULL")}

    before = disabled()
    for answer in (False, True):
        runner, outcome = in_background(security_review, access_review=True, disable_inactive=True, open_incidents=False)
        paused = paused_run("security-review")
        assert paused is not None, "disabling did not wait for an operator"
        assert receiver.wait_for("security-review on secure: disable 3 inactive accounts (11, 12, 14)")
        assert disabled() == before  # nothing changes while it waits
        resume_flow_run(paused.id, run_input={"approve": answer, "reason": "quarterly clean-up"})
        runner.join(timeout=300)
        report = outcome["report"]
        assert [r["user_id"] for r in report.tables["to_disable"]] == [11, 12, 14]
        if not answer:
            assert disabled() == before and "disabled" not in report.tables
    assert disabled() == before | {11, 12, 14} and [r["user_id"] for r in report.tables["disabled"]] == [11, 12, 14]


def test_failed_logins_in_the_backends_log_are_read_through_the_platform(ops):
    from flows.security_review import security_review

    for i in range(12):  # a password spray through the platform's proxy: each attempt a log line with the IP
        answer = httpx.post(f"http://127.0.0.1:{ops.sandbox_port}/api/token", json={"email": f"nobody{i}@example.com"},
                            headers={"X-Forwarded-For": "192.0.2.99, 10.1.1.1"}, timeout=10)
        assert answer.status_code == 401
    report = security_review(access_review=False, open_incidents=False)
    found = next(f for f in report.findings if "192.0.2.99" in f.message)
    assert found.message.startswith("brute force? 192.0.2.99: 12 failed logins within 10 minutes in the backend's log")
    assert "nobody0@example.com" in found.evidence["users"]
