"""dependency-update: the guide's weekly 'Dependency Updates', with Renovate's manners: one tested pull request."""

from datetime import datetime, timezone

from playground_ops.runbook import FindingsFailRun, run_link, runbook
from tasks.dependencies.steps import (apply_and_test, commit_and_push, find_outdated, find_pull_request,
                                open_or_update_pull_request, prepare_repository, release_notes, require_repository,
                                workdir_for)
from tasks.dependencies.policy import plan_updates, pull_request_body
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target
from tasks.dependencies.update_report import update_report

BRANCH = "dependency-updates-"


@runbook("dependency-update", timeout_seconds=4 * 3600)
def dependency_update(target: str | None = None, include_minor: bool = True, dry_run: bool = False) -> Report:
    """Patch and minor updates in one branch, tested (patch only if that fails), pushed as one pull request that
    later runs update; major updates listed for a person to plan.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        include_minor: Apply minor updates too (false: patch updates only).
        dry_run: Show what would be done and change nothing.
    """
    t = load_target(target)
    repo = require_repository(t.repository, t.name)
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    existing = find_pull_request(repo, BRANCH) if not dry_run else None  # also proves the PR API answers, first
    branch = existing.head if existing else f"{BRANCH}{day}"
    workdir = workdir_for(t.name, "dependency-update")
    remote = prepare_repository(repo, workdir)
    plan = plan_updates(find_outdated(repo, workdir), include_minor)

    attempts = []
    for scope, updates in plan.scopes():
        attempts.append(apply_and_test(repo, workdir, branch, updates, scope))
        if attempts[-1].ok:
            break
    report = update_report(t.name, plan, attempts, branch, dry_run)
    passed = next((a for a in attempts if a.ok), None)
    if attempts and passed is None:
        publish(report)
        raise FindingsFailRun(f"dependency updates failed their tests, even patch only: {report.summary}")

    if passed and not dry_run:
        notes = release_notes(plan.apply + plan.planned, workdir)
        held_back = [u for u in plan.apply if u not in passed.updates]
        pushed = commit_and_push(workdir, branch, f"chore: update dependencies {day}", remote["heads"].get(branch),
                                 sorted({u.project for u in passed.updates}))
        body = pull_request_body(passed.updates, plan.planned, held_back, notes, [r.row() for r in passed.tests],
                                 run_link())
        ecosystems = sorted({u.ecosystem for u in passed.updates})
        pr, action = open_or_update_pull_request(repo, pushed, f"chore: update dependencies {day}", body,
                                                 ["dependencies", *ecosystems])
        report.figures.update(pull_request=pr.number, pull_request_url=pr.url, commit=pushed.commit,
                              pushed=pushed.changed)
        report.summary += f"; pull request #{pr.number} {action}" + ("" if pushed.changed else " (branch unchanged)")
        report.documents["Pull request body"] = body
    return publish(report)
