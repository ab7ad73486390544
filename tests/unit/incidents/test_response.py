"""The incident's decisions on paper: which containment the evidence supports, the timeline's order, the impact in
words, and the shortest recovery wait."""

from datetime import datetime, timedelta, timezone

import pytest

from playground_ops.errors import ConfigError
from tasks.incidents.response import (alert_transitions, build_timeline, check_recovery_timeout, containment_options,
                                      impact_summary, post_mortem, runbook_entries)

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


HEALTHY = [{"runbook": "health-check", "status": "ok"}, {"runbook": "diagnose-high-cpu", "status": "ok"},
           {"runbook": "diagnose-high-memory", "status": "ok"}]


def test_containment_offers_only_what_the_evidence_calls_for():
    assert containment_options(HEALTHY, {"requests": 100, "server_errors": 1}, 1, 3) == {}
    down = [dict(HEALTHY[0], status="critical"), *HEALTHY[1:]]
    assert containment_options(down, {}, 1, 3) == {"restart": "the health check is critical"}
    errors = containment_options(HEALTHY, {"requests": 100, "server_errors": 9}, 1, 3)
    assert errors == {"restart": "9.0% of requests failed"}
    busy = [HEALTHY[0], dict(HEALTHY[1], status="critical"), HEALTHY[2]]
    assert containment_options(busy, {}, 2, 3) == {
        "scale_up": "CPU diagnostics found trouble; 2 of at most 3 instances run"}
    assert containment_options(busy, {}, 3, 3) == {}  # already at its declared maximum
    assert containment_options(HEALTHY, {}, 1, 3, suspected_leak=True) == {
        "rotate_secrets": "the incident was declared with a suspected secret leak"}


def test_the_timeline_is_ordered_and_health_checks_appear_where_they_changed():
    runs = [{"at": "2026-11-30T10:00:00+00:00", "runbook": "health-check", "status": "ok", "firing": [], "what": "a"},
            {"at": "2026-11-30T10:05:00+00:00", "runbook": "health-check", "status": "critical",
             "firing": ["HealthCheckFailing"], "what": "b"},
            {"at": "2026-11-30T10:10:00+00:00", "runbook": "health-check", "status": "critical",
             "firing": ["HealthCheckFailing"], "what": "c"},
            {"at": "2026-11-30T10:12:00+00:00", "runbook": "restart-service", "status": "ok", "what": "d"},
            {"at": "2026-11-30T10:15:00+00:00", "runbook": "health-check", "status": "ok", "firing": [], "what": "e"}]
    assert [r["what"] for r in runbook_entries(runs)] == ["a", "b", "d", "e"]
    assert alert_transitions(runs) == [{"at": "2026-11-30T10:15:00+00:00", "source": "alert",
                                        "what": "HealthCheckFailing resolved"}]
    fired = [{"at": datetime(2026, 11, 30, 10, 5, 1, tzinfo=timezone.utc), "source": "alert", "what": "fired"}]
    timeline = build_timeline(runbook_entries(runs), fired, alert_transitions(runs))
    assert [row["what"] for row in timeline] == ["a", "b", "fired", "d", "e", "HealthCheckFailing resolved"]


def test_the_post_mortem_draft_has_every_section():
    steps = [{"at": "2026-11-30T10:06:00+00:00", "kind": "opened", "severity": "sev1", "summary": "API down"},
             {"at": "2026-11-30T10:20:00+00:00", "kind": "resolved"}]
    draft = post_mortem("INC-20261130-1", steps, {"requests": 10, "server_errors": 5, "users_affected": 2,
                                                  "users_active": 4}, [{"at": "x", "source": "alert", "what": "fired"}],
                        [{"action": "restart", "outcome": "done: restarted", "run": "r"}])
    for heading in ("## Summary", "## Impact", "## Timeline", "## Actions taken", "## Follow-up"):
        assert heading in draft
    assert "**Resolved:** 2026-11-30T10:20:00+00:00" in draft and "5 of 10 requests failed (50.0%)" in draft


def test_a_rollback_is_offered_for_a_deploy_that_went_live_in_the_window_before_the_first_error():
    since = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    deploys = [{"id": "dep-new", "status": "live", "finishedAt": "2026-11-30T10:10:00Z"},
               {"id": "dep-old", "status": "live", "finishedAt": "2026-11-29T09:00:00Z"}]
    first_error = datetime(2026, 11, 30, 10, 25, tzinfo=timezone.utc)
    offered = containment_options(HEALTHY, {"first_error": first_error}, 1, 3, deploys, since)
    assert offered == {"rollback": "deploy dep-new went live at 2026-11-30T10:10:00+00:00, 15 min before the first error"}
    assert containment_options(HEALTHY, {"first_error": since}, 1, 3, deploys, since) == {}  # went live after it
    assert containment_options(HEALTHY, {}, 1, 3, deploys[:1], since) == {}                 # nothing to go back to
    assert containment_options(HEALTHY, {}, 1, 3, deploys, since.replace(hour=11)) == {}    # before the window


def test_the_deploy_to_roll_back_to_is_the_one_before_the_live_one_or_a_named_earlier_one():
    import pytest

    from tasks.platform.scaling import rollback_choice

    deploys = [{"id": "d3", "status": "update_failed"}, {"id": "d2", "status": "live"},
               {"id": "d1", "status": "deactivated"}, {"id": "d0", "status": "build_failed"}]
    assert [d["id"] for d in rollback_choice(deploys, None)] == ["d2", "d1"]
    with pytest.raises(ValueError, match="expected deploy_id to name an earlier deploy that went live \\(got 'd0'\\)"):
        rollback_choice(deploys, "d0")
    with pytest.raises(ValueError, match="the service has only one"):
        rollback_choice(deploys[:2], None)


def test_a_busy_hour_before_the_incident_never_pushes_its_own_events_out_of_the_draft():
    """More timeline rows than the draft shows: the newest (the incident's own) are kept, the earlier ones counted."""
    steps = [{"at": "2026-11-30T10:06:00+00:00", "kind": "opened", "severity": "sev1", "summary": "API down"}]
    busy = [{"at": f"2026-11-30T09:{m // 10:02d}:{m % 10}0+00:00", "source": "runbook", "what": f"earlier run {m}"}
            for m in range(250)]
    fired = {"at": "2026-11-30T10:05:00+00:00", "source": "alert", "what": "HealthCheckFailing (critical) fired"}
    draft = post_mortem("INC-20261130-2", steps, {}, busy + [fired], [])
    assert "HealthCheckFailing (critical) fired" in draft
    assert "_51 earlier rows in the stored report_" in draft and "earlier run 50 " not in draft
