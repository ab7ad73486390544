"""Reports: status follows the worst finding, rendering shows what an operator needs, secrets never pass."""

from __future__ import annotations

from playground_ops.redact import mask_url, redact, register_secret
from tasks.reporting.report import Report, render_markdown


def test_status_is_the_worst_finding_and_failed_beats_all():
    report = Report(runbook="health-check", target="prod")
    assert report.status.value == "ok"
    report.add("warning", "slow")
    report.add("info", "fine")
    assert report.status.value == "warning"
    report.add("critical", "down")
    assert report.status.value == "critical"
    report.fail("could not publish")
    assert report.status.value == "failed"


def test_markdown_lists_findings_worst_first_with_evidence_and_tables():
    report = Report(runbook="health-check", target="prod", summary="2/3 probes answered")
    report.add("warning", "pool at 85%", next_step="look for leaks", in_use=85)
    report.add("critical", "service down", error="refused")
    report.tables["probes"] = [{"component": "service", "ok": False}, {"component": "redis", "ok": True}]
    md = render_markdown(report.finish())
    assert md.index("service down") < md.index("pool at 85%")
    assert "evidence: in_use=85" in md and "next step: look for leaks" in md
    assert "| component | ok |" in md and "| redis | True |" in md


def test_passwords_in_urls_are_masked_and_registered_secrets_blanked():
    assert mask_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert mask_url("redis://:pw1234@cache:6379/0") == "redis://:***@cache:6379/0"
    register_secret("tok-ABCDEF-123")
    text = "connect postgresql://app:s3cret@db/app with tok-ABCDEF-123"
    assert redact(text) == "connect postgresql://app:***@db/app with ***"
    report = Report(runbook="x", target="y")
    report.add("critical", "failed with tok-ABCDEF-123")
    assert "tok-ABCDEF-123" not in report.redacted().model_dump_json()


def test_byte_counts_are_humanized_beside_the_raw_number():
    from tasks.reporting.report import Report, render_markdown

    report = Report(runbook="backup-database", target="prod", figures={"raw_bytes": 2_254_857_830, "tables": 7},
                    tables={"sizes": [{"table": "requests", "total_bytes": 1536, "rows": 2048}]})
    text = render_markdown(report)
    assert "| raw_bytes | 2,254,857,830 (2.1 GiB) |" in text
    assert "| requests | 1,536 (1.5 KiB) | 2048 |" in text
