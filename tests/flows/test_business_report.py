"""business-report end to end on a database whose every figure is known: users, requests, quotas and errors written
by the test over a fixed range; its charts looked at in the Prefect UI through a real headless browser."""

from __future__ import annotations

import base64
import json
import re
from datetime import date
from pathlib import Path

import psycopg
import pytest

from sandbox import manager
from tests.conftest import flow_run_artifacts, use_target
from tests.flows.test_ui import BROWSER, render

START, END = date(2026, 11, 2), date(2026, 11, 9)  # Monday to Monday: the range reviewed
SCHEMA = Path(__file__).resolve().parents[2] / "sandbox" / "schema.sql"


def known_database(ops, name: str, with_data: bool = True) -> str:
    """A database of the playground's schema; with data, one whose figures are known (see the comments)."""
    with psycopg.connect(ops.sandbox_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = manager.database_url(ops, name)
    if not with_data:
        return url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())
        conn.execute("SET TimeZone = 'UTC'")
        # users 1-20 long before; user 1's quota is 2 a day, user 2's 3, everyone else's 1000
        conn.execute("INSERT INTO users (id, email, daily_quota, created_at) SELECT g, 'user' || g || '@example.com', "
                     "CASE g WHEN 1 THEN 2 WHEN 2 THEN 3 ELSE 1000 END, '2026-09-01' FROM generate_series(1, 20) g")
        # three new users in the range, one in the week before
        conn.execute("INSERT INTO users (id, email, created_at) VALUES (21, 'new21@example.com', '2026-11-03 10:00'), "
                     "(22, 'new22@example.com', '2026-11-05 10:00'), (23, 'new23@example.com', '2026-11-08 10:00'), "
                     "(24, 'new24@example.com', '2026-10-28 10:00')")
        # in the range, day d (0-6): users 1..5+d make two requests each (DAU 5..11, mean 8) on /api/chat, 10 tokens
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, created_at)
            SELECT u, '/api/chat', 'gpt-4o', 200, 100, 10, timestamptz '2026-11-02 09:00' + d * interval '1 day'
                   + r * interval '1 minute'
            FROM generate_series(0, 6) d, generate_series(1, 11) u, generate_series(1, 2) r WHERE u <= 5 + d""")
        # user 1 is also refused once a day for quota (3 requests against a quota of 2: at 100% every day)
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, error_type,
            created_at) SELECT 1, '/api/chat', 'gpt-4o', 429, 5, 0, 'quota_exceeded',
            timestamptz '2026-11-02 12:00' + d * interval '1 day' FROM generate_series(0, 6) d""")
        # five server errors on /api/completions in the range, two in the week before
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, error_type,
            created_at) SELECT 3, '/api/completions', 'gpt-4o-mini', 500, 50, 0, 'internal_error', t
            FROM unnest(ARRAY[timestamptz '2026-11-03 08:00', '2026-11-04 08:00', '2026-11-04 09:00',
                              '2026-11-06 08:00', '2026-11-07 08:00', '2026-10-27 08:00', '2026-10-30 08:00']) t""")
        # the week before: users 1-4 once a day
        conn.execute("""INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, created_at)
            SELECT u, '/api/embeddings', 'gpt-4o-mini', 200, 30, 5, timestamptz '2026-10-26 10:00' + d * interval '1 day'
            FROM generate_series(0, 6) d, generate_series(1, 4) u""")
        conn.execute("VACUUM ANALYZE")
    return url


@pytest.fixture
def known(ops, tmp_path, monkeypatch):
    url = known_database(ops, "business_known")
    use_target(tmp_path, monkeypatch, "business", url, manager.redis_url(ops))
    yield url


def test_every_figure_equals_the_known_answer(known):
    from flows.business_report import business_report

    report = business_report(start=START, end=END)
    f = report.figures
    assert report.status.value == "ok", report.findings
    assert (f["active_users"], f["monthly_active_users"], f["avg_daily_active_users"]) == (11, 11, 8.0)
    assert f["stickiness_pct"] == round(100 * 8 / 11, 1) and f["active_users_change_pct"] == round(100 * (11 - 4) / 4, 1)
    assert (f["new_users"], f["new_users_change_pct"]) == (3, 200.0)
    assert f["requests"] == 56 * 2 + 7 + 5 and f["requests_change_pct"] == round(100 * (124 - 30) / 30, 1)
    assert (f["errors"], f["errors_change_pct"], f["quota_refusals"]) == (12, round(100 * (12 - 2) / 2, 1), 7)
    # per user: 21 (user 1: 14 + 7 refused), 19 (user 3: 14 + 5 errors), 14, 14, 14, 12, 10, 8, 6, 4, 2
    assert (f["requests_per_user_median"], f["requests_per_user_max"]) == (12.0, 21)
    assert [r["user_id"] for r in report.tables["top_users_by_requests"][:3]] == [1, 3, 2]
    assert report.tables["top_users_by_requests"][0]["email"] == "u***@example.com"
    assert [(r["users_at_80pct"], r["users_at_100pct"], r["refused"]) for r in report.tables["quota_per_day"]] == \
        [(1, 1, 1)] * 7
    assert [(r["user_id"], r["daily_quota"], r["days_at_limit"]) for r in report.tables["quota_too_small"]] == [(1, 2, 7)]
    endpoints = {r["endpoint"]: (r["requests"], r["requests_before"]) for r in report.tables["per_endpoint"]}
    assert endpoints == {"/api/chat": (119, 0), "/api/completions": (5, 2), "/api/embeddings": (0, 28)}
    errors = {(r["endpoint"], r["error_type"]): (r["this_range"], r["previous_range"])
              for r in report.tables["errors_by_type"]}
    assert errors == {("/api/completions", "internal_error"): (5, 2), ("/api/chat", "quota_exceeded"): (7, 0)}
    dau = report.charts["dau"].rows
    assert len(dau) == 30 and [r["active_users"] for r in dau if "2026-11-02" <= r["day"] < "2026-11-09"] == \
        list(range(5, 12))


def test_the_charts_are_pngs_stored_with_their_data_and_shown_in_the_ui(known, tmp_path):
    from flows.business_report import business_report
    from playground_ops.settings import load_settings

    report = business_report(start=START, end=END)
    summary = next(a for a in flow_run_artifacts(report.flow_run_id) if a.key == "business-report-business")
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", summary.data)
    assert [title for title, _ in images] == ["Daily active users, 30 days", "Requests per day by endpoint",
                                              "Users reaching their daily quota",
                                              "Errors by type, this range and the one before"]
    for _, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(png) < 200_000
    audit = Path(load_settings().audit_location)
    stored = sorted(audit.glob(f"business-report/business/*/{report.flow_run_id}.*"))
    assert {p.name.split(".", 1)[1] for p in stored} >= {"json", "md", "sha256", "dau.csv", "requests_by_endpoint.csv",
                                                         "quota.csv", "errors_by_type.csv"}
    dau_csv = next(p for p in stored if p.name.endswith(".dau.csv")).read_text().splitlines()
    assert dau_csv[0] == "day,active_users" and "2026-11-08,11" in dau_csv  # the chart can be redrawn from it

    if BROWSER is None:
        pytest.skip("no Chromium on this machine: `apt-get install chromium` (Debian) to look at the UI")
    import os

    from PIL import Image

    ui = os.environ["PREFECT_UI_URL"]
    dom, shot = render(f"{ui}/artifacts/artifact/{summary.id}", tmp_path, "business")
    assert dom.count('<img src="data:image/png;base64,') == 4 and 'alt="Daily active users, 30 days"' in dom
    pixels = Image.open(shot).convert("RGB").get_flattened_data()
    blue = sum(1 for r, g, b in pixels if abs(r - 0x1f) < 12 and abs(g - 0x77) < 12 and abs(b - 0xb4) < 12)
    assert blue > 200  # the DAU line and the first series' bars, drawn on the page


def test_an_empty_range_a_new_database_and_a_bad_range_are_said_not_charted(ops, tmp_path, monkeypatch, known):
    from flows.business_report import business_report
    from playground_ops.runbook import RunbookFailed

    empty = business_report(start=date(2025, 1, 6), end=date(2025, 1, 13))
    assert empty.status.value == "ok" and empty.figures["requests"] == 0
    said = [f.message for f in empty.findings]
    assert any("no requests between 2025-01-06 and 2025-01-13" in m for m in said)
    assert any(m.startswith("Daily active users, 30 days: no data in this range, so no chart") for m in said)
    summary = next(a for a in flow_run_artifacts(empty.flow_run_id) if a.key == "business-report-business")
    assert "data:image/png" not in summary.data and "no data in this range, so no chart" in summary.data

    six_weeks = business_report(start=date(2026, 9, 28), end=END)  # longer than the 30 days of daily active users
    assert (six_weeks.figures["requests"], six_weeks.figures["active_users"]) == (124 + 30, 11)
    assert any(f.message.startswith("average daily active users is over the last 30 days of the range")
               for f in six_weeks.findings)

    with pytest.raises(RunbookFailed, match=r"start: expected a day before end \(got 2026-11-09 to 2026-11-02\)"):
        business_report(start=END, end=START)

    use_target(tmp_path, monkeypatch, "brandnew", known_database(ops, "business_new", with_data=False),
               manager.redis_url(ops))
    new = business_report(start=START, end=END)
    assert new.status.value == "warning" and "UndefinedTable" in new.findings[0].message
    assert new.summary == "no business figures: the playground's tables could not be read"
    json.dumps(new.model_dump(mode="json"))  # a report, not a crash
