"""security-audit's report as an operator reads it: failed when an audit could not run, critical at or above the
level, and a next step that fits what the run did (a pull request, a dry run, nothing fixable)."""

from tasks.dependencies.policy import AuditOutcome
from tasks.dependencies.update_report import AuditFix, audit_report


def finding(package, severity, fix_available=True, major=False):
    return {"package": package, "severity": severity, "advisories": [f"GHSA-{package}"], "via": [], "range": "<2.0.0",
            "fix_available": fix_available, "fix_is_major": major, "title": f"{package} is vulnerable"}


AUDITS = {"backend": AuditOutcome(True, findings=[finding("lodash", "high"), finding("debug", "low")], audited=120),
          "frontend": AuditOutcome(True, findings=[finding("vite", "critical", major=True)], audited=300)}


def test_findings_at_or_above_the_level_are_critical_worst_first_and_those_below_only_counted():
    report = audit_report("prod", AUDITS, "high", AuditFix(fixable=["backend"]))  # fix=false: only a next step
    assert report.status.value == "critical"
    (serious,) = [f for f in report.findings if f.severity.value == "critical"]
    assert serious.message == ("2 vulnerable packages at or above high: vite (critical, frontend), "
                               "lodash (high, backend)")
    assert report.summary == "2/2 projects audited; 2 vulnerable packages at or above high, 1 below"
    assert serious.next_step == "Run security-audit with fix=true for a tested pull request. Upgrade by hand what needs a major bump."


def test_an_audit_that_could_not_run_fails_the_report_naming_the_project():
    audits = {**AUDITS, "worker": AuditOutcome(False, "npm audit printed no JSON (exit 1)")}
    report = audit_report("prod", audits, "high")
    assert report.status.value == "failed" and report.summary.startswith("2/3 projects audited")
    assert any("The audit of worker could not run: npm audit printed no JSON (exit 1)" in f.message
               for f in report.findings)


def test_the_next_step_follows_what_the_run_did():
    opened = audit_report("prod", AUDITS, "high", AuditFix(requested=True, fixable=["backend"], pull_request=12,
                                                           action="opened"))
    assert opened.figures["pull_request"] == 12 and opened.summary.endswith("; fixes in pull request #12 (opened)")
    assert next(f for f in opened.findings if f.severity.value == "critical").next_step.startswith(
        "Review and merge pull request #12")
    dry = audit_report("prod", AUDITS, "high", AuditFix(requested=True, dry_run=True, fixable=["backend"]))
    assert dry.summary.endswith("; dry run: would run npm audit fix in backend")
    nothing = audit_report("prod", {"frontend": AUDITS["frontend"]}, "high", AuditFix(requested=True))
    assert next(f for f in nothing.findings if f.severity.value == "critical").next_step.startswith(
        "No fix is available within the written ranges")


def test_a_clean_audit_is_ok():
    report = audit_report("prod", {"backend": AuditOutcome(True, audited=120)}, "high")
    assert report.status.value == "ok" and report.summary == "1/1 projects audited; 0 vulnerable packages at or above high"
