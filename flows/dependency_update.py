"""dependency-update: the guide's weekly 'Dependency Updates', with Renovate's manners: one tested pull request."""

from datetime import datetime, timezone

from playground_ops.runbook import FindingsFailRun, run_link, runbook
from tasks.dependencies.policy import Bisection, held_back_rows, plan_updates, pull_request_body
from tasks.dependencies.steps import (apply_and_test, close_obsolete_pull_request, commit_and_push, find_outdated,
                                      find_pull_request, open_or_update_pull_request, prepare_repository,
                                      release_notes, require_repository, workdir_for)
from tasks.dependencies.update_report import update_report
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target

BRANCH = "dependency-updates-"


@runbook("dependency-update", timeout_seconds=4 * 3600)
def dependency_update(target: str | None = None, include_minor: bool = True, widen_peer_dependencies: bool = False,
                      dry_run: bool = False) -> Report:
    """Patch and minor updates in one branch, ranges kept as the repository wrote them, tested together; an update
    that breaks the tests is found by bisection and held back, the rest pushed as one pull request that later runs
    update (or close, once the base branch has it all); major updates listed for a person to plan.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        include_minor: Apply minor updates too (false: patch updates only).
        widen_peer_dependencies: Also widen a package's peerDependencies range to admit its new version (never
            narrowed; false: peerDependencies are left as written).
        dry_run: Show what would be done and change nothing.
    """
    t = load_target(target)
    repo = require_repository(t.repository, t.name)
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    existing = find_pull_request(repo, BRANCH) if not dry_run else None  # also proves the PR API answers, first
    workdir = workdir_for(t.name, "dependency-update")
    remote = prepare_repository(repo, workdir)
    plan = plan_updates(find_outdated(repo, workdir), include_minor)
    existing = close_obsolete_pull_request(repo, workdir, existing, nothing_to_update=not plan.apply)
    branch = existing.head if existing else f"{BRANCH}{day}"

    search = Bisection(plan.apply)
    while (updates := search.next_try()) is not None:
        search.record(apply_and_test(repo, workdir, branch, updates, search.scope, widen_peer_dependencies))
    notes = release_notes(plan.apply + plan.planned, workdir)
    report = update_report(t.name, plan, search, branch, dry_run, notes)
    passed = search.passed
    if plan.apply and passed is None:
        publish(report)
        raise FindingsFailRun(f"no dependency update passed the tests: {report.summary}")

    if passed and not dry_run:
        pushed = commit_and_push(workdir, branch, f"chore: update dependencies {day}", remote["heads"].get(branch),
                                 sorted({u.project for u in passed.updates}))
        body = pull_request_body(passed.updates, plan.planned, held_back_rows(search, notes),
                                 notes, [r.row() for r in passed.tests], run_link())
        ecosystems = sorted({u.ecosystem for u in passed.updates})
        pr, action = open_or_update_pull_request(repo, pushed, f"chore: update dependencies {day}", body,
                                                 ["dependencies", *ecosystems])
        report.figures.update(pull_request=pr.number, pull_request_url=pr.url, commit=pushed.commit,
                              pushed=pushed.changed)
        report.summary += f"; pull request #{pr.number} {action}" + ("" if pushed.changed else " (branch unchanged)")
        report.documents["Pull request body"] = body
    return publish(report)
