"""The steps of the dependency runbooks over the application's repository: prepare a work copy, find what is
outdated, apply and test, commit and push, open or update the pull request, audit and fix.

Each step dispatches to the tool of the project's ecosystem (tasks.dependencies.npm, tasks.dependencies.python_deps) and to git and the code
host (tasks.dependencies.git_repo, tasks.dependencies.pull_requests); every step is safe to run twice (each starts from the base branch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger, task

from playground_ops.errors import ConfigError
from playground_ops.settings import Project, Repository, load_settings
from tasks.dependencies import npm, python_deps
from tasks.dependencies.policy import (AuditOutcome, Outdated, direct_fixes, keep_written_ranges, pypi_release_notes,
                                     release_notes_url, split_majors)
from tasks.dependencies.git_repo import (adds_nothing, check_remote, commit_all, git, prepare_workdir, push_branch,
                                         start_branch)
from tasks.dependencies.versioning import written_ranges
from tasks.dependencies.pull_requests import GitHub, PullRequest, open_or_update
from tasks.retry import PermanentError, retrying


@dataclass
class TestRun:
    project: str
    command: str
    ok: bool
    output: str = ""

    def row(self) -> dict:
        return {"project": self.project, "command": self.command, "result": "passed" if self.ok else "FAILED"}


@dataclass
class Attempt:
    """One try at a set of updates: what was applied, and each test's result."""

    scope: str
    updates: list[Outdated]
    tests: list[TestRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tests)

    @property
    def failures(self) -> list[TestRun]:
        return [t for t in self.tests if not t.ok]


@dataclass
class Pushed:
    branch: str
    commit: str | None
    changed: bool  # False: the branch already had exactly this content, so nothing was pushed


def workdir_for(target: str, runbook: str) -> Path:
    """The work directory this runbook owns for this target (a clone, and Python environments beside it)."""
    return load_settings().ops_home / "work" / target / runbook


def code_host(repo: Repository) -> GitHub:
    """The pull-request API of the repository; a clear error when none is configured."""
    if repo.code_host is None:
        raise ConfigError("GITHUB_REPOSITORY", "owner/name (and GITHUB_TOKEN) to open pull requests")
    return GitHub(repo.code_host.api_url, repo.code_host.repository, repo.code_host.token)


def require_repository(repository: Repository | None, target: str) -> Repository:
    if repository is None:
        raise ConfigError(f"target {target}: repository", "the application's repository (OPS_REPO_URL and "
                                                          "OPS_REPO_PROJECTS, or 'repository:' in the targets file)")
    return repository


def _project_dir(workdir: Path, project: Project) -> Path:
    return workdir / "repo" / project.path


def _venv(workdir: Path, project: Project) -> Path:
    return workdir / "venvs" / project.path.replace("/", "-")


@task(**retrying(retries=2, backoff=2, timeout_seconds=600))
def prepare_repository(repo: Repository, workdir: Path) -> dict:
    """Check the repository and its base branch exist, then clone or fetch a clean copy of the base; every project
    folder must be there. Returns the base commit and the heads of the remote's branches."""
    check_remote(repo.url, repo.base)
    base = prepare_workdir(repo.url, repo.base, workdir / "repo")
    missing = [p.path for p in repo.projects if not _project_dir(workdir, p).is_dir()]
    if missing:
        raise PermanentError(f"repository {repo.base}: expected project folders {', '.join(missing)} to exist "
                             f"(as configured in OPS_REPO_PROJECTS or the targets file)")
    heads = {}
    for line in git("ls-remote", "--heads", "origin", cwd=workdir / "repo").splitlines():
        sha, ref = line.split()
        heads[ref.removeprefix("refs/heads/")] = sha
    return {"base": base, "heads": heads}


def _install(workdir: Path, project: Project) -> TestRun:
    where = _project_dir(workdir, project)
    if project.ecosystem == "npm":
        result = npm.install(where)
    else:
        result = python_deps.install(where, _venv(workdir, project), with_pytest=project.test is None)
    return TestRun(project.path, result.command, result.ok, result.output)


@task(**retrying(retries=2, backoff=5, timeout_seconds=1800))
def find_outdated(repo: Repository, workdir: Path) -> list[Outdated]:
    """Install each project as the base branch has it, then list what is outdated, classified by the policy;
    for a package whose latest is a major, the newest release within its major is offered too. Each update carries
    the range the repository wrote and that range moved in its own form."""
    found: list[Outdated] = []
    for project in repo.projects:
        where = _project_dir(workdir, project)
        if project.ecosystem == "npm":  # read before installing: npm install writes a lock file where there is none
            locked = npm.keeps_lock_file(where)
            written = {k: spec for k, (_, spec) in written_ranges((where / "package.json").read_text()).items()}
        else:
            locked, written = python_deps.keeps_lock_file(where), python_deps.direct_requirements(where)
        installed = _install(workdir, project)
        if not installed.ok:
            raise RuntimeError(f"{installed.command} in {project.path} failed on the base branch: {installed.output[-600:]}")
        if project.ecosystem == "npm":
            items = npm.outdated(where, project.path)
            versions = {i.package: npm.view(i.package, ["versions"], where).get("versions", [])
                        for i in items if i.kind == "major"}
        else:
            items = python_deps.outdated(where, _venv(workdir, project), project.path)
            versions = {i.package: list(python_deps.project_info(i.package).get("releases", {}))
                        for i in items if i.kind == "major"}
        found += keep_written_ranges(split_majors(items, versions), {(project.path, k): v for k, v in written.items()},
                                     {project.path} if locked else set())
    return found


def _tests(repo: Repository, workdir: Path, projects: list[Project]) -> list[TestRun]:
    runs = []
    for project in projects:
        where = _project_dir(workdir, project)
        if project.ecosystem == "npm":
            result = npm.run_script(where, "test") if project.test is None else npm.run_command(where, project.test)
        else:
            result = python_deps.run_tests(where, _venv(workdir, project), project.test)
        runs.append(TestRun(project.path, project.test or result.command.split("/")[-1], result.ok, result.output))
    root = workdir / "repo" / "package.json"
    if projects and root.exists() and repo.integration_test in json.loads(root.read_text()).get("scripts", {}):
        for other in [p for p in repo.projects if p not in projects]:  # the integration tests use every project
            _install(workdir, other)
        result = npm.run_script(root.parent, repo.integration_test)
        runs.append(TestRun(".", f"npm run {repo.integration_test}", result.ok, result.output))
    return runs


@task(**retrying(retries=2, backoff=5, timeout_seconds=3600))
def apply_and_test(repo: Repository, workdir: Path, branch: str, updates: list[Outdated], scope: str,
                   widen_peers: bool = False) -> Attempt:
    """Start the branch afresh from the base, apply the updates project by project (ranges kept as written), then
    run the projects' tests and the repository's integration tests. Safe to repeat: each try starts from the base."""
    start_branch(workdir / "repo", branch, repo.base)
    attempt = Attempt(scope, updates)
    touched = [p for p in repo.projects if any(u.project == p.path for u in updates)]
    for project in touched:
        chosen = [u for u in updates if u.project == project.path]
        where = _project_dir(workdir, project)
        baseline = _install(workdir, project)  # back to the base's versions before applying this try's
        if project.ecosystem == "npm":
            result = npm.apply_updates(where, chosen, widen_peers) if baseline.ok else baseline
        else:
            result = python_deps.apply_updates(where, _venv(workdir, project), chosen) if baseline.ok else baseline
        if not result.ok:
            attempt.tests.append(TestRun(project.path, result.command, False, result.output))
    if attempt.ok:
        attempt.tests = _tests(repo, workdir, touched)
    get_run_logger().info("%s: %d updates, tests %s", scope, len(updates),
                          "passed" if attempt.ok else "FAILED in " + ", ".join(t.project for t in attempt.failures))
    return attempt


@task(**retrying(retries=2, backoff=2, timeout_seconds=600))
def release_notes(updates: list[Outdated], workdir: Path) -> dict[str, str]:
    """Links to each package's release notes where its registry names a repository ('ecosystem:package' -> URL)."""
    links = {}
    for item in {(u.ecosystem, u.package): u for u in updates}.values():
        if item.ecosystem == "npm":
            url = release_notes_url(npm.view(item.package, ["repository"], workdir).get("repository"))
        else:
            url = pypi_release_notes(python_deps.project_info(item.package).get("info") or {})
        if url:
            links[f"{item.ecosystem}:{item.package}"] = url
    return links


@task(**retrying(retries=0, timeout_seconds=300))
def commit_and_push(workdir: Path, branch: str, message: str, seen_head: str | None, projects: list[str]) -> Pushed:
    """Commit the changed projects' files and push the branch, replacing the remote branch only if it still is what
    this run saw at the start (a protected or changed branch is a clear failure); nothing is pushed when the
    content is unchanged."""
    work = workdir / "repo"
    commit = commit_all(work, message, paths=projects)
    if commit is None:
        return Pushed(branch, None, False)
    if seen_head and git("rev-parse", f"{commit}^{{tree}}", cwd=work) == git("rev-parse", f"{seen_head}^{{tree}}", cwd=work):
        return Pushed(branch, seen_head, False)
    return Pushed(branch, push_branch(work, branch, seen_head), True)


@task(**retrying(retries=3, backoff=2, timeout_seconds=60))
def find_pull_request(repo: Repository, branch_prefix: str) -> PullRequest | None:
    """The open pull request an earlier run opened (its branch starts with the prefix), if any."""
    return code_host(repo).find_open_by_prefix(branch_prefix, repo.base)


@task(**retrying(retries=3, backoff=2, timeout_seconds=60))
def open_or_update_pull_request(repo: Repository, pushed: Pushed, title: str, body: str,
                                labels: list[str]) -> tuple[PullRequest, str]:
    """Update the open pull request for the pushed branch, or open one (find first: safe to repeat); labels added.
    If the API refuses, the failure says that the branch is on the remote without its pull request."""
    try:
        return open_or_update(code_host(repo), pushed.branch, repo.base, title, body, labels)
    except PermanentError as exc:
        state = f"pushed as {pushed.commit[:12]}" if pushed.changed and pushed.commit else "unchanged on the remote"
        raise PermanentError(f"branch {pushed.branch} is {state}, but its pull request could not be opened or "
                             f"updated: {exc}") from None


@task(**retrying(retries=3, backoff=2, timeout_seconds=120))
def close_obsolete_pull_request(repo: Repository, workdir: Path, pr: PullRequest | None, nothing_to_update: bool = False,
                                dry_run: bool = False) -> PullRequest | None:
    """Close, with a comment saying why, an open pull request of this runbook that the base branch made obsolete:
    merging it would change nothing (the base already has its changes), or there is nothing left to update. Returns
    the pull request when it stays open, None when it is (or, in a dry run, would be) closed. Safe to repeat: a
    closed pull request is not found open again."""
    if pr is None:
        return None
    work = workdir / "repo"
    if nothing_to_update:
        why = f"Every dependency on `{repo.base}` is up to date within the policy: nothing is left for this pull request."
    elif adds_nothing(work, f"origin/{repo.base}", f"origin/{pr.head}"):
        why = (f"`{repo.base}` already has every change of this pull request (as of "
               f"{git('rev-parse', '--short=12', f'origin/{repo.base}', cwd=work)}).")
    else:
        return pr
    if dry_run:
        get_run_logger().info("dry run: would close pull request #%d: %s", pr.number, why)
        return None
    host = code_host(repo)
    host.comment(pr.number, f"{why} Closing it; playground-ops opens a new one when there is something to do.")
    host.close(pr.number)
    get_run_logger().info("closed pull request #%d: %s", pr.number, why)
    return None


@task(**retrying(retries=2, backoff=5, timeout_seconds=1200))
def audit_project(repo: Repository, workdir: Path, project: Project) -> AuditOutcome:
    """`npm audit --json` or pip-audit for one project, judged by what it printed, never by its exit code."""
    where = _project_dir(workdir, project)
    if project.ecosystem == "npm":
        locked = npm.ensure_lockfile(where)
        if locked is not None and not locked.ok:
            return AuditOutcome(False, f"npm could not write a lockfile to audit: {locked.output[-300:]}")
        return npm.audit(where, repo.npm_audit_registry)
    return python_deps.audit(where, repo.osv_url)


@task(**retrying(retries=2, backoff=5, timeout_seconds=3600))
def fix_vulnerabilities(repo: Repository, workdir: Path, branch: str, projects: list[Project],
                        audits: dict[str, AuditOutcome]) -> Attempt:
    """`npm audit fix` (never --force) in each npm project with fixable findings, on a branch afresh from the base;
    direct dependencies pinned exactly get their non-major fix version pinned instead; then the tests.
    Safe to repeat: it starts from the base branch."""
    start_branch(workdir / "repo", branch, repo.base)
    attempt = Attempt("npm audit fix", [])
    for project in projects:
        where = _project_dir(workdir, project)
        npm.ensure_lockfile(where)
        result = npm.audit_fix(where, repo.npm_audit_registry)
        pins = direct_fixes(audits[project.path])
        if result.ok and pins:
            result = npm.install_exact(where, pins)
        if not result.ok:
            attempt.tests.append(TestRun(project.path, result.command, False, result.output))
    if attempt.ok:
        attempt.tests = _tests(repo, workdir, projects)
    return attempt
