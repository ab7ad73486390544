"""The troubleshooting diagnoses: only the guide's solutions the evidence supports, each with its evidence."""

from tasks.monitoring.diagnostics import (connection_diagnosis, cpu_diagnosis, error_review, memory_diagnosis,
                                          per_instance, redis_diagnosis, slowlog_row, solutions)
from tasks.reporting.report import Report


def usage(kind, limit, series, running=None):
    out = {f"{kind}-limit": [{"points": [(0, limit)]}],
           kind: [{"instance": name, "points": list(enumerate(values))} for name, values in series.items()]}
    if running is not None:
        out["running"] = running
    return out


def test_per_instance_reads_percent_of_the_limit_and_leaves_out_a_replaced_instance():
    rows = per_instance(usage("cpu", 1.0, {"a": [0.5, 0.9], "old": [1.0]}, running=["a"]), "cpu")
    assert rows == [{"instance": "a", "latest_pct": 90.0, "avg_pct": 70.0, "peak_pct": 90.0,
                     "change_pct_points": 40.0, "samples": 2}]
    assert per_instance(None, "cpu") == []


def test_high_cpu_offers_scale_up_only_when_every_instance_is_hot_and_names_the_endpoint_that_dominates():
    hot = usage("cpu", 1.0, {"a": [0.9, 0.95], "b": [0.85, 0.9]})
    traffic = {"requests": 100, "endpoints": [{"endpoint": "/api/chat", "requests": 80, "p95_latency_ms": 300}]}
    supported = cpu_diagnosis(hot, traffic, {"redis_hit_rate_pct": 95}, [{"state": "active"}] * 2)
    assert supported == {0: "every instance averaged above 80% CPU over the hour (2 instances)",
                         1: "/api/chat carries 80% of requests (p95 300 ms)"}
    one_cold = usage("cpu", 1.0, {"a": [0.9, 0.95], "b": [0.1, 0.1]})
    assert 0 not in cpu_diagnosis(one_cold, None, {"redis_hit_rate_pct": 50}, [{"state": "active"}] * 5)
    assert set(cpu_diagnosis(one_cold, None, {"redis_hit_rate_pct": 50}, [{"state": "active"}] * 5)) == {2, 3}


def test_memory_growth_offers_a_restart_and_a_leak_fix_and_a_report_without_evidence_says_none_fits():
    growing = usage("memory", 1000, {"a": [500, 700]})
    supported = memory_diagnosis(growing, [], 40)
    assert set(supported) == {0, 2} and "grew 20 points" in supported[0]
    report = solutions(Report(runbook="diagnose-high-memory", target="t"), "high-memory", memory_diagnosis(None, [], None))
    assert report.tables["candidate_solutions"][0]["solution"] == "none of the guide's"


def test_connections_near_the_limit_with_many_active_sessions_point_at_the_server():
    sections = {"limits": {"rows": [{"max_connections": 100, "reserved": 3, "in_use": 90}]},
                "activity": {"rows": [{"state": "active", "query_seconds": 120, "state_seconds": 120}] * 60},
                "blocking": {"rows": [{"pid": 1}]}}
    supported = connection_diagnosis(sections)
    assert supported[0] == "90 of 97 usable connections in use (93%)"
    assert supported[1] == "60 queries running over 60s; 1 sessions waiting on another's lock"
    assert set(supported) == {0, 1, 2, 3}


def test_redis_that_does_not_answer_is_a_connection_problem_and_nothing_else_is_guessed():
    assert redis_diagnosis(None, "Connection refused", None, []) == {0: "PING failed: Connection refused",
                                                                     3: "the connection itself failed"}
    full = redis_diagnosis(2.0, None, {"maxmemory": 100, "used_memory": 90, "evicted_keys": 5}, [])
    assert full == {1: "used_memory at 90% of maxmemory"}


def test_an_endpoint_whose_error_rate_rose_is_a_warning_and_a_steady_one_is_not():
    volumes = [{"endpoint": "/api/chat", "requests_24h": 1000, "errors_24h": 50, "requests_prev_7d": 7000,
                "errors_prev_7d": 70},
               {"endpoint": "/api/models", "requests_24h": 1000, "errors_24h": 20, "requests_prev_7d": 7000,
                "errors_prev_7d": 140}]
    rows, _, findings = error_review([], volumes, None)
    assert [r["change"] for r in rows] == ["+4.00 points", "+0.00 points"]
    assert findings == [("warning", "/api/chat: error rate 5.0% over the last 24 h against 1.0% the 7 days before",
                         "Read the error logs and the error types below; check the latest deploy.")]


def test_a_slowlog_entry_shows_the_command_and_key_with_the_data_masked():
    row = slowlog_row({"id": 7, "start_time": 0, "duration": 15000, "command": [b"SET", b"session:42", b"s3cret"]})
    assert row == {"id": 7, "started": "1970-01-01T00:00:00+00:00", "duration_us": 15000,
                   "command": "SET session:42 … (1 more argument, masked)", "client": ""}
