"""The business report's figures, shaped from aggregates the test writes with known answers."""

from datetime import date, datetime, timezone

import pytest

from playground_ops.errors import ConfigError
from tasks.business.usage import change_pct, label_traffic, mask_email, report_range, shape_usage

START, END = datetime(2026, 11, 30, tzinfo=timezone.utc), datetime(2026, 12, 7, tzinfo=timezone.utc)


def traffic(day, endpoint, status, requests, error_type=None, model="gpt-x", tokens=0):
    return {"day": day, "endpoint": endpoint, "model": model, "status": status, "error_type": error_type,
            "requests": requests, "tokens": tokens}


def raw(rows):
    return {"traffic": rows, "new_users": [{"day": "2026-12-01", "new_users": 4}, {"day": "2026-11-25", "new_users": 2}],
            "activity": {"dau": [{"day": "2026-12-01", "active_users": 6}, {"day": "2026-12-02", "active_users": 4}],
                         "quota_daily": [{"day": "2026-12-01", "users_at_80pct": 2, "users_at_100pct": 1}],
                         "per_user": {"users": 8, "median": 3, "p90": 9, "max": 40}, "mau": 10,
                         "previous_active": 4, "top_requests": [{"user_id": 1, "requests": 40, "tokens": 900}],
                         "top_tokens": [], "quota_too_small": [], "quota_unused": {"users": 3, "sample": []}}}


def test_the_week_against_the_week_before_in_figures_an_operator_reads():
    rows = [traffic("2026-12-01", "/api/chat", 200, 90, tokens=1000),
            traffic("2026-12-01", "/api/chat", 429, 6, "quota_exceeded"),
            traffic("2026-12-02", "/api/chat", 502, 4),
            traffic("2026-11-24", "/api/chat", 200, 50)]
    out = shape_usage(raw(rows), [{"user_id": 1, "email": "alice@example.com", "role": "user"}], START, END)
    f = out.figures
    assert f["range"] == "2026-11-30 to 2026-12-06"
    assert (f["requests"], f["requests_change_pct"]) == (100, 100.0)
    assert (f["errors"], f["quota_refusals"]) == (10, 6)
    assert (f["active_users"], f["active_users_change_pct"]) == (8, 100.0)
    assert (f["new_users"], f["new_users_change_pct"]) == (4, 100.0)
    assert (f["avg_daily_active_users"], f["stickiness_pct"]) == (5.0, 50.0)
    assert out.tables["top_users_by_requests"][0]["email"] == "a***@example.com"  # never the whole address
    by_type = {(r["endpoint"], r["error_type"]): r["this_range"] for r in out.tables["errors_by_type"]}
    assert by_type == {("/api/chat", "quota_exceeded"): 6, ("/api/chat", "http_502"): 4}
    chat, = out.tables["per_endpoint"]
    assert (chat["requests"], chat["errors"], chat["error_rate_pct"], chat["requests_before"]) == (100, 10, 10.0, 50)
    assert out.tables["quota_per_day"][1] == {"day": "2026-12-01", "users_at_80pct": 2, "users_at_100pct": 1,
                                              "refused": 6}


def test_a_range_without_requests_says_so_instead_of_showing_empty_charts_silently():
    out = shape_usage(raw([]), [], START, END)
    assert out.figures["requests"] == 0 and out.figures["requests_change_pct"] is None
    assert any(n.startswith("no requests between 2026-11-30 and 2026-12-07") for n in out.notes)
    assert "Requests per day by endpoint: no data in this range, so no chart" in out.notes


def test_a_refusal_is_a_quota_refusal_only_when_the_app_said_quota_exceeded():
    labelled = label_traffic([traffic("2026-12-01", "/api/chat", 429, 3, "rate_limited"),
                              traffic("2026-12-01", "/api/chat", 429, 2, "quota_exceeded")], date(2026, 11, 30))
    assert list(labelled["refused"]) == [0, 2] and list(labelled["errors"]) == [3, 2]


def test_changes_and_masks_for_edge_values():
    assert change_pct(5, 0) is None and change_pct(None, 3) is None and change_pct(3, 4) == -25.0
    assert mask_email(None) == "" and mask_email("not-an-address") == "not-an-address"


def test_the_default_range_is_the_last_full_week_and_a_bad_range_is_refused_in_one_line():
    assert report_range(None, None, date(2026, 12, 9)) == (START, END)  # a Wednesday: Monday to Sunday before it
    with pytest.raises(ConfigError, match=r"^start: expected a day before end \(got 2026-12-07 to 2026-12-01\)$"):
        report_range(date(2026, 12, 7), date(2026, 12, 1), date(2026, 12, 9))
    with pytest.raises(ConfigError, match="a range of at most 366 days"):
        report_range(date(2024, 1, 1), date(2026, 1, 1), date(2026, 12, 9))
