"""The traffic window's figures and the error review's split, from the one scan's rows."""

from datetime import datetime, timezone

from tasks.monitoring.request_metrics import split_error_review, summarise_window


def test_the_window_reads_server_errors_as_the_error_rate_and_client_errors_apart():
    minute = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    rows = [{"by_endpoint": False, "by_minute": False, "requests": 200, "server_errors": 4, "client_errors": 10,
             "latency": (20, 180, 400)},
            {"by_endpoint": True, "by_minute": False, "endpoint": "/health", "requests": 50, "server_errors": 0,
             "client_errors": 0, "latency": None},
            {"by_endpoint": True, "by_minute": False, "endpoint": "/api/chat", "requests": 150, "server_errors": 4,
             "client_errors": 10, "latency": (30, 200, 420)},
            {"by_endpoint": False, "by_minute": True, "minute": minute, "requests": 200, "server_errors": 4}]
    out = summarise_window(rows, minutes=5)
    assert (out["requests"], out["error_rate_pct"], out["client_error_rate_pct"]) == (200, 2.0, 5.0)
    assert (out["p95_latency_ms"], out["throughput_per_min"]) == (180, 40.0)
    assert [e["endpoint"] for e in out["endpoints"]] == ["/api/chat", "/health"]  # busiest first
    assert out["per_minute"] == [{"minute": "2026-12-07T12:00:00+00:00", "requests": 200, "server_errors": 4}]


def test_a_window_without_requests_is_zero_not_an_error():
    out = summarise_window([], minutes=5)
    assert (out["requests"], out["error_rate_pct"], out["p95_latency_ms"], out["endpoints"]) == (0, 0.0, None, [])


def test_the_error_review_splits_volumes_from_errors_by_type_most_frequent_first():
    base = {"requests_24h": 100, "requests_prev_7d": 700, "server_errors_24h": 0}
    rows = [{**base, "endpoint": "/api/chat", "by_type": False, "error_type": None, "errors_24h": 9, "errors_prev_7d": 14},
            {**base, "endpoint": "/api/chat", "by_type": True, "error_type": "invalid_request", "errors_24h": 2,
             "errors_prev_7d": 7},
            {**base, "endpoint": "/api/chat", "by_type": True, "error_type": "upstream_timeout", "errors_24h": 7,
             "errors_prev_7d": 7, "server_errors_24h": 7}]
    out = split_error_review(rows)
    assert out["volumes"] == [{"endpoint": "/api/chat", "requests_24h": 100, "errors_24h": 9, "requests_prev_7d": 700,
                               "errors_prev_7d": 14}]
    assert [(e["error_type"], e["last_24h"], e["daily_avg_prev_7d"]) for e in out["errors"]] == [
        ("upstream_timeout", 7, 1.0), ("invalid_request", 2, 1.0)]
