"""The security review's rules on paper: fail2ban's window, log lines read, error lines grouped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tasks.security.signals import bursts, failures_from_logs, group_errors

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def events(ip: str, times: list[float], user: str | None = "a@example.com") -> list[dict]:
    return [{"at": T0 + timedelta(minutes=m), "ip": ip, "user": user} for m in times]


def test_more_than_max_failures_within_the_window_is_flagged_and_no_fewer():
    spaced = events("10.0.0.1", [i * 1.2 for i in range(10)])      # 10 failures in 11 minutes: never more than 9 in 10
    burst = events("10.0.0.2", [i * 0.5 for i in range(11)])       # 11 in 5 minutes: more than 10
    exactly = events("10.0.0.3", [i * 0.5 for i in range(10)])     # 10 in 5 minutes: not more than 10
    found = bursts(sorted(spaced + burst + exactly, key=lambda e: e["at"]), max_failures=10, window_minutes=10)
    assert [(b["ip"], b["peak"]) for b in found] == [("10.0.0.2", 11)]
    assert found[0]["first_over"] == (T0 + timedelta(minutes=5)).isoformat()


def test_log_lines_become_events_with_the_ip_and_the_user_when_known():
    lines = [{"timestamp": "2026-11-30T12:00:00.000Z", "message": "authentication failed for x@example.com from "
              "192.0.2.9: unknown or disabled user"},
             {"timestamp": "2026-11-30T12:00:01.000Z", "message": "authentication failed for unknown user from "
              "192.0.2.9: invalid access token"},
             {"timestamp": "2026-11-30T12:00:02.000Z", "message": "/api/chat answered 500: internal_error"}]
    assert [(e["ip"], e["user"]) for e in failures_from_logs(lines)] == [("192.0.2.9", "x@example.com"),
                                                                           ("192.0.2.9", None)]


def test_error_lines_group_by_message_with_numbers_blanked():
    lines = [{"timestamp": f"2026-11-30T12:00:0{i}Z", "message": m} for i, m in enumerate(
        ["/api/chat answered 504: upstream_timeout", "/api/chat answered 504: upstream_timeout",
         "health check degraded: redis error: ConnectionError"])]
    groups = group_errors(lines)
    assert [(g["message"], g["count"]) for g in groups] == [("/api/chat answered #: upstream_timeout", 2),
                                                            ("health check degraded: redis error: ConnectionError", 1)]


def test_each_secret_is_aged_from_its_last_real_rotation_in_the_audit_trail():
    from tasks.security.signals import Thresholds, access_findings, secret_ages

    def rotation(day: str, secrets: list[str], status: str = "ok", dry_run: bool = False, action: str = "rotate"):
        return {"status": status, "finished_at": f"{day}T05:00:00+00:00",
                "figures": {"action": action, "dry_run": dry_run},
                "tables": {"rotation": [{"secret": s} for s in secrets]}}

    reports = [rotation("2026-11-29", ["JWT_SECRET"], dry_run=True),            # newest first: a dry run,
               rotation("2026-11-20", ["JWT_SECRET"], status="failed"),         # a failed one,
               rotation("2026-11-10", ["JWT_SECRET"], action="finish"),         # a finish,
               rotation("2026-10-01", ["JWT_SECRET", "JWT_REFRESH_SECRET"])]    # and the last real rotation
    ages = secret_ages(reports, ["JWT_SECRET", "JWT_REFRESH_SECRET", "API_KEY"], T0)
    assert [(r["secret"], r["age_days"]) for r in ages] == [("JWT_SECRET", 60), ("JWT_REFRESH_SECRET", 60),
                                                           ("API_KEY", None)]
    roles = {"database roles": {"rows": [{"role": "app", "can_login": True, "superuser": False,
                                          "password_valid_until": None}]}}
    messages = [f.message for f in access_findings(roles, ages, T0, Thresholds(password_expiry_required=True))]
    assert messages == ["database role app can log in and its password never expires (the policy wants an expiry)",
                        "JWT_SECRET was last rotated 60 days ago (2026-10-01; the policy: every 35 days)",
                        "JWT_REFRESH_SECRET was last rotated 60 days ago (2026-10-01; the policy: every 35 days)",
                        "API_KEY: no rotation on record in the audit trail"]
    assert [f.message for f in access_findings(roles, ages[:0], T0, Thresholds())] == []
