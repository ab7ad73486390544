"""The reports of the dependency runbooks (pure: from what the steps returned to a Report)."""

from __future__ import annotations

from typing import Any

from tasks.dependencies.policy import SEVERITIES, AuditOutcome, UpdatePlan, at_or_above, update_rows, vulnerability_rows
from tasks.reporting.report import Report, markdown_table


def _test_rows(attempts: list[Any]) -> list[dict[str, Any]]:
    return [{"try": a.scope, **t.row()} for a in attempts for t in a.tests]


def update_report(target: str, plan: UpdatePlan, attempts: list[Any], branch: str, dry_run: bool) -> Report:
    """What dependency-update found, tried and tested; failed when no try passed its tests."""
    passed = next((a for a in attempts if a.ok), None)
    report = Report(runbook="dependency-update", target=target,
                    tables={"updates": update_rows(passed.updates if passed else plan.apply, {}),
                            "majors_to_plan": update_rows(plan.planned, {}),
                            "skipped": [{"package": s.package, "project": s.project, "current": s.current or "",
                                         "latest": s.latest or "", "why": s.note or s.kind} for s in plan.skipped],
                            "tests": _test_rows(attempts)},
                    figures={"branch": branch, "to_apply": len(plan.apply), "majors": len(plan.planned),
                             "tries": len(attempts), "dry_run": dry_run})
    if plan.planned:
        report.add("info", f"{len(plan.planned)} major updates need a plan: "
                           + ", ".join(f"{p.package} {p.current} -> {p.latest}" for p in plan.planned[:10]),
                   next_step="Read their release notes and plan each upgrade as its own change.")
    for attempt in attempts:
        if attempt.ok:
            continue
        failed = attempt.failures
        report.add("warning", f"{attempt.scope}: tests failed in {', '.join(t.project for t in failed)} with "
                              + ", ".join(f"{u.package} {u.current} -> {u.wanted}" for u in attempt.updates),
                   failed_tests=", ".join(t.command for t in failed), output=failed[0].output[-800:])
    if attempts and passed is None:
        report.fail("No set of updates passed the tests (patch and minor, then patch only): nothing was pushed.",
                    packages=", ".join(sorted({u.package for a in attempts for u in a.updates})))
        report.summary = f"updates failed their tests in every try; nothing pushed to {branch}"
    elif passed is None:
        report.summary = "every dependency is up to date within the policy" + (
            f"; {len(plan.planned)} major updates to plan" if plan.planned else "")
    else:
        held = len(plan.apply) - len(passed.updates)
        report.summary = (f"{len(passed.updates)} updates ({passed.scope}) passed the tests"
                          + (f"; {held} held back" if held else "")
                          + (f"; dry run: nothing pushed to {branch}" if dry_run else ""))
    return report


def audit_report(target: str, audits: dict[str, AuditOutcome], level: str) -> Report:
    """What security-audit found: failed when an audit could not run, critical for findings at or above the level."""
    rows = vulnerability_rows(audits)
    counts = {s: sum(r["severity"] == s for r in rows) for s in [*reversed(SEVERITIES), "unknown"]}
    report = Report(runbook="security-audit", target=target, tables={
        "vulnerabilities": rows,
        "audits": [{"project": p, "ran": o.ran, "dependencies": o.audited, "findings": len(o.findings),
                    "error": o.error or ""} for p, o in audits.items()]},
        figures={"level": level, **{f"{k}_findings": v for k, v in counts.items() if v}})
    serious = [r for r in rows if at_or_above(r["severity"], level)]
    if serious:
        report.add("critical", f"{len(serious)} vulnerable packages at or above {level}: "
                               + ", ".join(f"{r['package']} ({r['severity']}, {r['project']})" for r in serious[:10]),
                   next_step="Run security-audit with fix=true for a tested pull request, or upgrade by hand "
                             "where the fix is a major bump.")
    below = len(rows) - len(serious)
    if below:
        report.add("info", f"{below} vulnerable packages below {level}")
    for project, outcome in audits.items():
        if not outcome.ran:
            report.fail(f"The audit of {project} could not run: {outcome.error}", project=project)
    ran = sum(o.ran for o in audits.values())
    report.summary = (f"{ran}/{len(audits)} projects audited; {len(serious)} vulnerable packages at or above {level}"
                      + (f", {below} below" if below else ""))
    return report


def fix_summary(audits: dict[str, AuditOutcome], projects: list[Any], attempt: Any, run_url: str | None) -> str:
    """The security-fix pull request's description: the vulnerabilities it addresses and the tests it passed."""
    rows = vulnerability_rows({p.path: audits[p.path] for p in projects})
    fixed = [r for r in rows if r["fix"] == "yes"]
    return "\n".join([
        "This pull request runs `npm audit fix` (never `--force`: no major bumps) where the weekly security audit "
        "found fixable vulnerabilities, and passed the tests below.", "",
        f"### Vulnerabilities addressed ({len(fixed)})", markdown_table(fixed, limit=500), "",
        "### Tests", markdown_table([t.row() for t in attempt.tests], limit=500), "", "---",
        "Opened and kept up to date by playground-ops `security-audit`." + (f" [Run]({run_url})" if run_url and run_url.startswith("http") else "")])
