"""Secrets never leak, even when every connection fails and error messages are at their most talkative."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import flow_run_artifacts, flow_run_logs

DB_PW, REDIS_PW, HTTP_PW = "Pg-pass-7781x", "Rd-pass-9912y", "Http-pass-4410z"


def test_failing_probes_of_a_target_with_passwords_leak_none(ops, tmp_path, monkeypatch):
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"""
targets:
  - name: leaky
    environment: staging
    health_url: http://ops:{HTTP_PW}@127.0.0.1:9/health
    database_url: postgresql://app:{DB_PW}@127.0.0.1:9/app
    redis_url: redis://:{REDIS_PW}@127.0.0.1:9/0
""")
    monkeypatch.setenv("OPS_TARGETS_FILE", str(targets))
    from flows.health_check import health_check

    report = health_check(target="leaky")
    assert report.status.value == "warning"
    assert {row["component"] for row in report.tables["probes"] if not row["ok"]} == {"service", "database", "redis"}
    texts = [flow_run_logs(report.flow_run_id), report.model_dump_json()]
    texts += [json.dumps(a.data) + (a.description or "") for a in flow_run_artifacts(report.flow_run_id)]
    stored = Path(report.stored_at.removeprefix("file://"))
    texts += [p.read_text() for p in stored.parent.glob(f"{report.flow_run_id}.*")]
    assert "127.0.0.1:9" in texts[0] or "Connection refused" in texts[0] or "failed" in texts[0]
    for text in texts:
        for secret in (DB_PW, REDIS_PW, HTTP_PW):
            assert secret not in text
