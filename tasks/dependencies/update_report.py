"""The reports of the dependency runbooks (pure: from what the steps returned to a Report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.dependencies.policy import (SEVERITIES, AuditOutcome, Bisection, UpdatePlan, at_or_above, held_back_rows,
                                      update_rows, vulnerability_rows)
from tasks.reporting.report import Report, markdown_table


def _test_rows(attempts: list[Any]) -> list[dict[str, Any]]:
    return [{"try": a.scope, **t.row()} for a in attempts for t in a.tests]


def update_report(target: str, plan: UpdatePlan, search: Bisection, branch: str, dry_run: bool,
                  notes: dict[str, str]) -> Report:
    """What dependency-update found, tried and tested; failed when no update passed the tests."""
    passed = search.passed
    report = Report(runbook="dependency-update", target=target,
                    tables={"updates": update_rows(passed.updates if passed else plan.apply, notes),
                            "held_back": held_back_rows(search, notes),
                            "majors_to_plan": update_rows(plan.planned, notes),
                            "skipped": [{"package": s.package, "project": s.project, "current": s.current or "",
                                         "latest": s.latest or "", "why": s.note or s.kind} for s in plan.skipped],
                            "tests": _test_rows(search.attempts)},
                    figures={"branch": branch, "to_apply": len(plan.apply), "majors": len(plan.planned),
                             "tries": len(search.attempts), "held_back": len(search.held_back), "dry_run": dry_run})
    if plan.planned:
        report.add("info", f"{len(plan.planned)} major updates need a plan: "
                           + ", ".join(f"{p.package} {p.current} -> {p.latest}" for p in plan.planned[:10]),
                   next_step="Read their release notes and plan each upgrade as its own change.")
    for update, attempt in search.breakers:
        failed = attempt.failures
        report.add("warning", f"{update} breaks the tests in {', '.join(t.project for t in failed)}: held back",
                   next_step=f"Read the output of {attempt.scope.split(':')[0]}, adapt the code to {update.package} "
                             f"{update.target} in its own change, or wait for a fixed release.",
                   failed_tests=", ".join(t.command for t in failed), output=failed[0].output[-800:] if failed else "")
    if search.untried:
        report.add("warning", f"{len(search.untried)} updates held back, not isolated within {search.max_tries} "
                              "tries: " + ", ".join(str(u) for u in search.untried),
                   next_step="Run dependency-update again (patch only with include_minor=false) to narrow them down.")
    if plan.apply and passed is None:
        report.fail("No update passed the tests, alone or together: nothing was pushed.",
                    packages=", ".join(sorted({u.package for u in plan.apply})))
        report.summary = f"every update failed the tests ({len(search.attempts)} tries); nothing pushed to {branch}"
    elif passed is None:
        report.summary = "every dependency is up to date within the policy" + (
            f"; {len(plan.planned)} major updates to plan" if plan.planned else "")
    else:
        held = len(search.held_back)
        report.summary = (f"{len(passed.updates)} updates passed the tests"
                          + (f"; {held} held back ({', '.join(u.package for u in search.held_back)})" if held else "")
                          + f" after {len(search.attempts)} tries" * (len(search.attempts) > 1)
                          + (f"; dry run: nothing pushed to {branch}" if dry_run else ""))
    return report


@dataclass
class AuditFix:
    """What security-audit did about its findings, for the report's next steps."""
    requested: bool = False           # fix=true
    dry_run: bool = False
    fixable: list[str] = field(default_factory=list)   # projects where npm audit fix has something to do
    attempt: Any = None               # the fix's try (its tests), when one was made
    pull_request: int | None = None
    action: str = ""                  # opened | updated


def audit_next_step(fixed: AuditFix, needs_major: bool) -> str:
    """The next step that fits what the run did."""
    by_hand = " Upgrade by hand what needs a major bump." if needs_major else ""
    if fixed.pull_request is not None:
        return f"Review and merge pull request #{fixed.pull_request} (npm audit fix, tested).{by_hand}"
    if not fixed.fixable:
        return "No fix is available within the written ranges: upgrade by hand (a major bump) or wait for a fixed release."
    if not fixed.requested:
        return f"Run security-audit with fix=true for a tested pull request.{by_hand}"
    if fixed.dry_run:
        return f"Run security-audit with fix=true and without dry_run to open the pull request.{by_hand}"
    return "npm audit fix broke the tests (see the warning): fix these by hand, test, and open a pull request."


def audit_failures(audits: dict[str, AuditOutcome]) -> str:
    """Why the audits that could not run did not: one line naming each project."""
    return "; ".join(f"the audit of {p} could not run: {o.error}" for p, o in audits.items() if not o.ran)


def audit_report(target: str, audits: dict[str, AuditOutcome], level: str, fixed: AuditFix | None = None) -> Report:
    """What security-audit found and did: failed when an audit could not run, critical for findings at or above the
    level, with the next step that fits what the run did."""
    fixed = fixed or AuditFix()
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
                   next_step=audit_next_step(fixed, any(r["fix"] == "major bump" for r in serious)))
    below = len(rows) - len(serious)
    if below:
        report.add("info", f"{below} vulnerable packages below {level}")
    for project, outcome in audits.items():
        if not outcome.ran:
            report.fail(f"The audit of {project} could not run: {outcome.error}", project=project)
    attempt = fixed.attempt
    if attempt is not None and not attempt.ok:
        report.add("warning", "npm audit fix did not pass the tests: nothing was pushed",
                   failed=", ".join(f"{t.project}: {t.command}" for t in attempt.failures),
                   output=attempt.failures[0].output[-800:])
    ran = sum(o.ran for o in audits.values())
    report.summary = (f"{ran}/{len(audits)} projects audited; {len(serious)} vulnerable packages at or above {level}"
                      + (f", {below} below" if below else ""))
    if fixed.pull_request is not None:
        report.summary += f"; fixes in pull request #{fixed.pull_request} ({fixed.action})"
        report.figures["pull_request"] = fixed.pull_request
    elif fixed.requested and fixed.dry_run and fixed.fixable:
        report.summary += f"; dry run: would run npm audit fix in {', '.join(fixed.fixable)}"
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
