"""security-audit: the guide's weekly 'Security Audits' (npm audit, pip-audit), with an optional tested fix PR."""

from datetime import datetime, timezone
from typing import Literal

from playground_ops.runbook import FindingsFailRun, run_link, runbook
from tasks.dependencies.policy import fixable_in
from tasks.dependencies.steps import (audit_project, close_obsolete_pull_request, commit_and_push, find_pull_request,
                                      fix_vulnerabilities, open_or_update_pull_request, prepare_repository,
                                      require_repository, workdir_for)
from tasks.dependencies.update_report import AuditFix, audit_failures, audit_report, fix_summary
from tasks.reporting.notify import send_notification
from tasks.reporting.publish import publish
from tasks.reporting.report import Report, Status
from tasks.targets import load_ops_settings, load_target

BRANCH = "security-fixes-"


@runbook("security-audit", timeout_seconds=3 * 3600)
def security_audit(target: str | None = None,
                   level: Literal["info", "low", "moderate", "high", "critical"] = "moderate",
                   fix: bool = False, dry_run: bool = False) -> Report:
    """Audit every project; findings at or above the level make the report critical and notify; an audit that could
    not run fails the run, saying why. With fix=true, `npm audit fix` (never --force) on a tested pull request; an
    earlier fix pull request the base branch already has is closed.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        level: The lowest severity that counts as a finding (low, moderate, high, critical).
        fix: Open (or update) a pull request with the fixes npm audit fix and exact pins allow.
        dry_run: Show what would be done and change nothing.
    """
    t = load_target(target)
    repo = require_repository(t.repository, t.name)
    existing = find_pull_request(repo, BRANCH) if fix and not dry_run else None  # the PR API answers, first
    workdir = workdir_for(t.name, "security-audit")
    remote = prepare_repository(repo, workdir)
    existing = close_obsolete_pull_request(repo, workdir, existing)
    audits = {p.path: audit_project(repo, workdir, p) for p in repo.projects}

    fixable = [p for p in repo.projects if p.ecosystem == "npm" and fixable_in(audits[p.path])]
    fixed = AuditFix(fix, dry_run, [p.path for p in fixable])
    if fix and fixable and not dry_run:
        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        branch = existing.head if existing else f"{BRANCH}{day}"
        fixed.attempt = fix_vulnerabilities(repo, workdir, branch, fixable, audits)
        if fixed.attempt.ok:
            pushed = commit_and_push(workdir, branch, f"fix: npm audit fix {day}", remote["heads"].get(branch),
                                     [p.path for p in fixable])
            body = fix_summary(audits, fixable, fixed.attempt, run_link())
            pr, fixed.action = open_or_update_pull_request(repo, pushed, f"fix: security updates {day}", body,
                                                           ["security", "dependencies", "npm"])
            fixed.pull_request = pr.number
    report = audit_report(t.name, audits, level, fixed)

    if report.status == Status.CRITICAL:
        send_notification(f"security-audit on {t.name}: critical", "\n".join(filter(None, [report.summary, run_link()])),
                          load_ops_settings().notification_block)
    published = publish(report)
    if report.status == Status.FAILED:
        raise FindingsFailRun(audit_failures(audits))
    return published
