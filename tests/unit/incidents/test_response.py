"""The incident's decisions on paper: which containment the evidence supports, the timeline's order, the impact in
words, and the shortest recovery wait."""

from datetime import datetime, timedelta, timezone

import pytest

from playground_ops.errors import ConfigError
from tasks.incidents.response import (alert_transitions, build_timeline, check_recovery_timeout, containment_options,
                                      impact_summary)

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_a_failing_health_check_offers_a_restart_and_a_deploy_just_before_the_first_error_offers_a_rollback():
    rows = [{"runbook": "health-check", "status": "critical"}, {"runbook": "diagnose-high-cpu", "status": "ok"}]
    impact = {"requests": 100, "server_errors": 40, "first_error": T0}
    deploys = [{"id": "dep-new", "status": "live", "finishedAt": (T0 - timedelta(minutes=3)).isoformat()},
               {"id": "dep-old", "status": "deactivated", "finishedAt": (T0 - timedelta(days=2)).isoformat()}]
    offered = containment_options(rows, impact, instances=1, max_instances=3, deploys=deploys,
                                  since=T0 - timedelta(hours=1))
    assert offered["restart"] == "the health check is critical; 40.0% of requests failed"
    assert offered["rollback"] == "deploy dep-new went live at 2026-12-07T11:57:00+00:00, 3 min before the first error"
    assert "scale_up" not in offered and "rotate_secrets" not in offered


def test_nothing_is_offered_without_evidence_and_a_rotation_only_for_a_suspected_leak():
    rows = [{"runbook": "health-check", "status": "warning"}]
    assert containment_options(rows, {}) == {}
    assert set(containment_options(rows, {}, suspected_leak=True)) == {"rotate_secrets"}


def test_an_impact_that_could_not_be_read_is_said_as_none_counted_not_as_an_error():
    assert impact_summary({}) == "0 of 0 requests failed (n/a); 0 of 0 active users affected"
    text = impact_summary({"requests": 10, "server_errors": 5, "users_affected": 2, "users_active": 4,
                           "first_error": T0, "endpoints": [{"endpoint": "/api/chat"}]})
    assert text == ("5 of 10 requests failed (50.0%); 2 of 4 active users affected; first error at "
                    "2026-12-07T12:00:00+00:00; endpoints: /api/chat")


def test_the_timeline_is_ordered_by_time_and_a_rule_firing_then_not_is_resolved():
    checks = [{"runbook": "health-check", "at": "2026-12-07T12:05:00+00:00", "firing": []},
              {"runbook": "health-check", "at": "2026-12-07T12:00:00+00:00", "firing": ["HealthCheckFailing"]}]
    resolved = alert_transitions(checks)
    assert resolved == [{"at": "2026-12-07T12:05:00+00:00", "source": "alert", "what": "HealthCheckFailing resolved"}]
    timeline = build_timeline(resolved, [{"at": T0, "source": "platform", "what": "server restarted"}])
    assert [r["what"] for r in timeline] == ["server restarted", "HealthCheckFailing resolved"]


def test_a_recovery_wait_under_the_floor_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("OPS_RECOVERY_MIN_SECONDS", "60")
    assert check_recovery_timeout(1) == 1
    with pytest.raises(ConfigError, match=r"recovery_timeout_minutes: expected at least 1 min "
                                          r"\(OPS_RECOVERY_MIN_SECONDS\) \(got 0.5\)"):
        check_recovery_timeout(0.5)
