"""release: the guide's "Documentation Maintenance" release step (`git tag -a v1.0.1 -m "Release version 1.0.1"`), as
release-please does it: the next version from conventional commits, a changelog and consistent versions proposed as
a pull request, and once it is merged, the annotated tag and the code host's release."""

from datetime import datetime, timezone

from playground_ops.runbook import FindingsFailRun, run_link, runbook
from tasks.dependencies.steps import (commit_and_push, open_or_update_pull_request, prepare_repository,
                                      require_repository, workdir_for)
from tasks.releases.conventional import changelog_section, plan_release, release_report, section_of
from tasks.releases.git_release import publish_github_release, push_release_tag, read_release_history, \
    write_release_files
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_target

BRANCH = "release-next"


@runbook("release", timeout_seconds=1800)
def release(target: str | None = None, tag_now: bool = False, dry_run: bool = False) -> Report:
    """Propose the next release as a pull request (CHANGELOG.md and every manifest's version); a later run tags the
    merged release `vX.Y.Z` and publishes it on the code host.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        tag_now: Tag the base branch's head with the next version at once, without a release pull request.
        dry_run: Show the version and the changelog, and change nothing.
    """
    t = load_target(target)
    repo = require_repository(t.repository, t.name)
    workdir = workdir_for(t.name, "release")
    remote = prepare_repository(repo, workdir)
    history = read_release_history(repo, workdir)
    try:
        # a repository without tags starts from the version its manifests carry (else 0.1.0)
        plan = plan_release(history["tags"], history["commits"], history["changelog"], history["changelog_commit"],
                            history["head"], tag_now, first=history["manifest_version"] or "0.1.0")
    except ValueError as exc:
        raise FindingsFailRun(str(exc)) from None
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    merged = plan.action == "tag" and not tag_now
    section = (section_of(history["changelog"], plan.version) if merged
               else changelog_section(plan.version, day, plan.commits) if plan.version else None)
    report = release_report(t.name, plan, section, dry_run)

    if plan.action == "propose" and not dry_run:
        write_release_files(repo, workdir, BRANCH, plan.version, section)
        pushed = commit_and_push(workdir, BRANCH, f"chore: release {plan.version}", remote["heads"].get(BRANCH), ["."])
        pr, action = open_or_update_pull_request(repo, pushed, f"chore: release {plan.version}",
                                                 f"{section}\n---\nMerge to release; playground-ops `release` then "
                                                 f"tags v{plan.version}." + (f" [Run]({run_link()})" if run_link() else ""),
                                                 ["release"])
        report.figures.update(pull_request=pr.number, pull_request_url=pr.url)
        report.summary += f"; pull request #{pr.number} {action}"
    elif plan.action == "tag" and not dry_run:
        tag = push_release_tag(workdir, plan.version, plan.commit)
        published = publish_github_release(repo, tag, plan.version, section, plan.commit)
        report.figures.update(tag=tag, commit=plan.commit, release_url=published.get("html_url", ""))
        report.summary += f"; tagged {tag} at {plan.commit[:12]} and published the release"
    return publish(report)
