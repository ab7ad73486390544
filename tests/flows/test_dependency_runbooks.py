"""dependency-update and security-audit end to end: real git, real npm and uv against the registries, pytest and
pip-audit, the sandbox's GitHub-compatible API and advisory services, the session's Prefect server."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from sandbox.app_repo import BACKEND_TEST, write_app
from tasks.dependencies.git_repo import commit_all, git
from tasks.dependencies.versioning import classify

TODAY = datetime.now(timezone.utc).strftime("%Y%m%d")


def make_repo(root: Path, backend_test: str = BACKEND_TEST) -> Path:
    """A bare copy of the sandbox's application, optionally with another backend test."""
    with tempfile.TemporaryDirectory() as seed:
        work = Path(seed)
        write_app(work)
        (work / "backend" / "test.js").write_text(backend_test)
        git("init", "--quiet", "-b", "main", cwd=work)
        commit_all(work, "Initial commit of the playground app")
        git("clone", "--quiet", "--bare", str(work), str(root / "app.git"))
    return root / "app.git"


class PullRequestsSeen:
    """The sandbox GitHub stand-in's pull requests, read over its API as an operator's browser would."""

    def __init__(self):
        self.base = f"{os.environ['GITHUB_API_URL']}/repos/{os.environ['GITHUB_REPOSITORY']}"
        self.headers = {"Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}"}

    def all(self, state: str = "open") -> list[dict]:
        return httpx.get(f"{self.base}/pulls", params={"state": state}, headers=self.headers).json()

    def close_all(self) -> None:
        for pr in self.all("open"):
            httpx.patch(f"{self.base}/pulls/{pr['number']}", json={"state": "closed"}, headers=self.headers)


@pytest.fixture
def pulls(ops):
    seen = PullRequestsSeen()
    seen.close_all()
    yield seen
    seen.close_all()


@pytest.fixture
def app_repo(tmp_path, monkeypatch, pulls):
    bare = make_repo(tmp_path)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    return bare


def stored(report) -> dict:
    return json.loads(Path(report.stored_at.removeprefix("file://")).read_text())


def show(bare: Path, branch: str, path: str) -> str:
    return git("show", f"{branch}:{path}", cwd=bare)


def push_commit(bare: Path, branch: str, files: dict[str, str], message: str, start: str = "main",
                squash: str | None = None) -> str:
    """A person's commit on branch (started from start when new; with the changes of the squash branch, as a
    squash merge makes them), pushed to the bare repository."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "clone"
        git("clone", "--quiet", str(bare), str(work))
        git("checkout", "--quiet", "-B", branch, f"origin/{branch}" if git("ls-remote", "--heads", "origin", branch,
                                                                            cwd=work) else f"origin/{start}", cwd=work)
        if squash:
            git("merge", "--quiet", "--squash", f"origin/{squash}", cwd=work)
        for name, text in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        commit = commit_all(work, message, author="A Maintainer <maintainer@example.org>")
        git("push", "--quiet", "origin", f"{branch}:{branch}", cwd=work)
        return commit


@pytest.mark.network
def test_weekly_update_opens_one_tested_pull_request_and_the_next_run_updates_it(app_repo, pulls):
    from flows.dependency_update import dependency_update

    first = dependency_update()
    branch = f"dependency-updates-{TODAY}"
    assert first.status.value == "ok", first.summary
    assert git("log", "-1", "--format=%s", branch, cwd=app_repo) == f"chore: update dependencies {TODAY}"
    backend = json.loads(show(app_repo, branch, "backend/package.json"))["dependencies"]
    assert backend["ms"] == "2.1.3" and backend["minimist"] == "1.2.8"
    assert backend["debug"].startswith("2.6.") and backend["debug"] != "2.6.8"  # newest within its major
    assert "six==1.15.0" not in show(app_repo, branch, "python/requirements.txt")
    [pr] = pulls.all()
    assert pr["head"]["ref"] == branch and pr["title"] == f"chore: update dependencies {TODAY}"
    assert [label["name"] for label in pr["labels"]] == ["dependencies", "npm", "python"]
    body = pr["body"]
    assert "| ms | backend | 2.0.0 | 2.1.3 | minor | [release notes](https://github.com/vercel/ms/releases) |" in body
    assert "### Major updates that need a plan" in body and "| debug | backend | 2.6.8 | " in body
    assert "| . | npm run test:integration | passed |" in body
    assert stored(first)["figures"]["pull_request"] == pr["number"]

    second = dependency_update()  # next week's run, nothing new upstream: the same pull request, updated
    assert [p["number"] for p in pulls.all()] == [pr["number"]]
    assert second.figures["pull_request"] == pr["number"] and second.figures["pushed"] is False
    assert "updated (branch unchanged)" in second.summary


@pytest.mark.network
def test_an_earlier_weeks_open_pull_request_is_updated_not_duplicated(app_repo, pulls):
    from flows.dependency_update import dependency_update
    from playground_ops.settings import get_target
    from tasks.dependencies.pull_requests import GitHub

    last_week = show(app_repo, "main", "backend/package.json").replace('"ms": "2.0.0"', '"ms": "2.1.2"')
    push_commit(app_repo, "dependency-updates-20261122", {"backend/package.json": last_week}, "last week's updates")
    host = get_target().repository.code_host
    earlier = GitHub(host.api_url, host.repository, host.token).create(
        "dependency-updates-20261122", "main", "chore: update dependencies 20261122", "last week's")
    report = dependency_update()
    assert [p["number"] for p in pulls.all()] == [earlier.number]
    assert report.figures["branch"] == "dependency-updates-20261122" and report.figures["pushed"] is True
    assert git("log", "-1", "--format=%s", "dependency-updates-20261122", cwd=app_repo) == \
        f"chore: update dependencies {TODAY}"
    assert "| ms | backend | 2.0.0 | 2.1.3 | minor |" in pulls.all()[0]["body"]


@pytest.mark.network
def test_a_minor_update_that_breaks_the_tests_is_named_and_the_rest_ship(tmp_path, monkeypatch, pulls):
    from flows.dependency_update import dependency_update

    strict = BACKEND_TEST + "assert.ok(require('ms/package.json').version.startsWith('2.0.'), 'ms 2.0 only');\n"
    bare = make_repo(tmp_path, strict)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    report = dependency_update()
    assert report.status.value == "warning"
    [held] = [f for f in report.findings if "held back" in f.message]
    assert held.message == "ms 2.0.0 -> 2.1.3 breaks the tests in backend: held back" and "ms 2.0 only" in \
        held.evidence["output"]
    branch = f"dependency-updates-{TODAY}"
    backend = json.loads(show(bare, branch, "backend/package.json"))["dependencies"]
    assert backend["ms"] == "2.0.0" and backend["minimist"] == "1.2.8"  # the breaking minor held back, the rest in
    assert json.loads(show(bare, branch, "frontend/package.json"))["dependencies"]["escape-html"] == "1.0.3"
    [pr] = pulls.all()
    assert "### Held back (1)" in pr["body"] and "| ms | backend | 2.0.0 | 2.1.3 |" in pr["body"]
    assert report.figures["tries"] <= 4  # frontend and python apart from backend, then patch only: ms is named


@pytest.mark.network
def test_when_every_update_breaks_the_tests_nothing_is_pushed_and_the_run_fails(tmp_path, monkeypatch, pulls):
    from prefect import tags

    from flows.dependency_update import dependency_update
    from playground_ops.runbook import RunbookFailed

    frozen = BACKEND_TEST + "".join(f"assert.strictEqual(require('{name}/package.json').version, '{version}');\n"
                                    for name, version in (("ms", "2.0.0"), ("minimist", "1.2.0"), ("debug", "2.6.8")))
    bare = make_repo(tmp_path, frozen)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    monkeypatch.setenv("OPS_REPO_PROJECTS", "backend=npm")
    with tags("playground-ops"), pytest.raises(RunbookFailed, match="no dependency update passed the tests"):
        dependency_update()
    assert git("branch", "--list", "dependency-updates-*", cwd=bare) == ""  # nothing pushed
    assert pulls.all() == []
    reports = sorted((Path(os.environ["OPS_HOME"]) / "audit" / "dependency-update" / "sandbox").rglob("*.json"),
                     key=lambda p: p.stat().st_mtime)
    failed = json.loads(reports[-1].read_text())
    assert failed["status"] == "failed"
    assert sorted(row["package"] for row in failed["tables"]["held_back"]) == ["debug", "minimist", "ms"]
    assert "backend" in json.dumps(failed["tables"]["tests"])


@pytest.mark.network
def test_a_rejected_push_is_a_clear_failure_and_opens_no_pull_request(app_repo, pulls):
    from flows.dependency_update import dependency_update
    from playground_ops.runbook import RunbookFailed

    hook = app_repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GH006: Protected branch update failed for refs/heads/dependency-updates' >&2\n"
                    "exit 1\n")
    hook.chmod(0o755)
    with pytest.raises(RunbookFailed, match=f"push of dependency-updates-{TODAY} rejected.*GH006"):
        dependency_update()
    assert git("branch", "--list", "dependency-updates-*", cwd=app_repo) == ""
    assert pulls.all() == []


@pytest.mark.parametrize("variable, value, expected", [
    ("OPS_REPO_URL", "/no/such/repository.git", "repository /no/such/repository.git: expected a git URL or path "
                                                "that exists"),
    ("OPS_REPO_PROJECTS", "backend=npm,services/billing=npm", "expected project folders services/billing to exist"),
])
def test_a_repository_or_project_that_does_not_exist_is_one_line_before_anything_changes(
        app_repo, monkeypatch, variable, value, expected):
    from flows.dependency_update import dependency_update
    from playground_ops.runbook import RunbookFailed

    monkeypatch.setenv(variable, value)
    with pytest.raises(RunbookFailed) as failed:
        dependency_update()
    assert expected in str(failed.value) and "\n" not in str(failed.value)
    assert git("branch", "--list", "dependency-updates-*", cwd=app_repo) == ""


def test_a_pull_request_api_refusing_the_token_fails_before_anything_is_cloned(app_repo, monkeypatch, tmp_path):
    from flows.dependency_update import dependency_update
    from playground_ops.runbook import RunbookFailed
    from tasks.dependencies.steps import workdir_for

    monkeypatch.setenv("OPS_HOME", str(tmp_path / "ops"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_wrong-token-for-this-test")
    with pytest.raises(RunbookFailed, match="answered 401 Bad credentials.*the token is missing or wrong") as failed:
        dependency_update()
    assert "ghp_wrong-token-for-this-test" not in str(failed.value)
    assert not workdir_for("sandbox", "dependency-update").exists()  # nothing was cloned


@pytest.mark.network
def test_audit_findings_are_critical_notify_and_fix_opens_a_tested_pull_request(app_repo, pulls, receiver):
    from flows.security_audit import security_audit

    report = security_audit(fix=True)
    assert report.status.value == "critical"
    rows = {(r["project"], r["package"]): r for r in report.tables["vulnerabilities"]}
    assert rows[("backend", "minimist")]["severity"] == "critical"
    assert "GHSA-xvch-5gv4-984h" in rows[("backend", "minimist")]["advisories"]
    assert rows[("backend", "debug")]["severity"] == "low"  # below the level: reported, not alarming
    assert "GHSA-jjg7-2v4v-x38h" in rows[("python", "idna")]["advisories"]  # pip-audit, through OSV
    assert ("frontend", "is-number") not in rows
    assert receiver.wait_for("security-audit on sandbox: critical", timeout=30)
    [pr] = pulls.all()
    assert pr["head"]["ref"] == f"security-fixes-{TODAY}"
    assert [label["name"] for label in pr["labels"]] == ["security", "dependencies", "npm"]
    assert "| backend | minimist | critical | GHSA-xvch-5gv4-984h" in pr["body"]
    fixed = json.loads(show(app_repo, f"security-fixes-{TODAY}", "backend/package.json"))["dependencies"]
    assert fixed["minimist"] == "1.2.8" and fixed["ms"] == "2.0.0"  # the fix only, nothing else
    assert stored(report)["status"] == "critical"


@pytest.mark.network
def test_an_audit_that_could_not_run_fails_the_run_never_a_clean_report(app_repo, monkeypatch):
    from flows.security_audit import security_audit
    from playground_ops.runbook import RunbookFailed

    # a registry without the advisory endpoint, as the public one behind a proxy that refuses the bulk POST
    monkeypatch.setenv("OPS_NPM_AUDIT_REGISTRY", f"{os.environ['GITHUB_API_URL']}/")
    with pytest.raises(RunbookFailed, match="the audit of backend could not run: npm audit could not run: 40"):
        security_audit()
    reports = sorted((Path(os.environ["OPS_HOME"]) / "audit" / "security-audit" / "sandbox").rglob("*.json"),
                     key=lambda p: p.stat().st_mtime)
    failed = json.loads(reports[-1].read_text())
    assert failed["status"] == "failed"
    assert any("The audit of backend could not run" in f["message"] for f in failed["findings"])


def test_an_unreachable_registry_is_retried_then_fails_the_run_saying_so(app_repo, monkeypatch):
    from flows.dependency_update import dependency_update
    from tests.conftest import flow_run_logs

    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    state = dependency_update(return_state=True)
    assert state.is_failed()
    assert "npm install in backend: the registry could not be reached" in state.message
    logs = flow_run_logs(str(state.state_details.flow_run_id))
    assert "Retry 1/2" in logs and "Retry 2/2" in logs  # transient: retried, then the run failed


# A published Express-style middleware as its maintainer keeps it, pinned about a year behind: exact pins, `~` and
# `^` ranges, a compound range, a committed lock file, and a test that relies on ms 2.0's behaviour (no weeks).
MIDDLEWARE = {
    "name": "request-window", "version": "1.4.0", "main": "index.js", "license": "MIT",
    "scripts": {"test": "node test.js"},
    "dependencies": {"debug": "2.6.9", "on-finished": "~2.3.0", "ms": "^2.0.0", "depd": ">=1.1.0 <3"},
    "devDependencies": {"minimist": "1.2.0", "escape-html": "1.0.2"},
}
LOCKED_AT = ["ms@2.0.0", "depd@1.1.0"]  # what the committed lock file resolves the ranges to
MIDDLEWARE_INDEX = """const ms = require('ms');
const debug = require('debug')('request-window');
const onFinished = require('on-finished');
const deprecate = require('depd')('request-window');

// a window is seconds, minutes, hours or days: 'w' is refused (ms 2.0 has no weeks)
exports.parseWindow = function (text) {
  const value = ms(String(text));
  return typeof value === 'number' ? value : null;
};
exports.timer = function (req, res, next) {
  const started = Date.now();
  onFinished(res, () => debug('%s took %dms', req.url, Date.now() - started));
  next();
};
exports.legacy = deprecate.function(function legacy() { return 1; }, 'legacy');
"""
MIDDLEWARE_TEST = """const assert = require('assert');
const escape = require('escape-html');
const argv = require('minimist')(['--window', '2h']);
const { parseWindow, timer, legacy } = require('./index');
assert.strictEqual(parseWindow(argv.window), 7200000);
assert.strictEqual(parseWindow('2w'), null, 'weeks are not a window');
assert.strictEqual(escape('<w>'), '&lt;w&gt;');
assert.strictEqual(typeof timer, 'function');
console.log('middleware ok');
"""
TOOLS_PYPROJECT = """[project]
name = "request-window-tools"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [
    "six==1.15.0",
    "idna>=3.0",
]

[dependency-groups]
dev = ["pytest>=8"]
"""
TOOLS_TEST = 'import idna\nimport six\n\n\ndef test_tools():\n    assert six.PY3 and idna.encode("example.org")\n'


def make_middleware_repo(root: Path) -> Path:
    """The middleware, its lock file written by npm itself at the older versions, and a uv project of tools."""
    from tasks.dependencies.npm import run_command

    with tempfile.TemporaryDirectory() as seed:
        work = Path(seed)
        (work / "package.json").write_text(json.dumps(MIDDLEWARE, indent=2) + "\n")
        assert run_command(work, f"npm install --no-audit --no-fund --save-exact {' '.join(LOCKED_AT)}").ok
        (work / "package.json").write_text(json.dumps(MIDDLEWARE, indent=2) + "\n")  # the ranges, as written
        assert run_command(work, "npm install --no-audit --no-fund").ok
        tools = work / "tools"
        tools.mkdir()
        (tools / "pyproject.toml").write_text(TOOLS_PYPROJECT)
        (tools / "test_tools.py").write_text(TOOLS_TEST)
        assert run_command(tools, "uv lock --quiet && uv lock --quiet --upgrade-package idna==3.6").ok
        files = {"index.js": MIDDLEWARE_INDEX, "test.js": MIDDLEWARE_TEST, ".gitignore": "node_modules/\n"}
        for name, text in files.items():
            (work / name).write_text(text)
        git("init", "--quiet", "-b", "main", cwd=work)
        commit_all(work, "request-window 1.4.0")
        git("clone", "--quiet", "--bare", str(work), str(root / "middleware.git"))
    return root / "middleware.git"


def _locked(bare: Path, branch: str, package: str) -> str:
    return json.loads(show(bare, branch, "package-lock.json"))["packages"][f"node_modules/{package}"]["version"]


@pytest.mark.network
def test_a_real_middlewares_pull_request_is_what_its_maintainer_would_merge(tmp_path, monkeypatch, pulls):
    from flows.dependency_update import dependency_update

    bare = make_middleware_repo(tmp_path)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    monkeypatch.setenv("OPS_REPO_PROJECTS", ".=npm,tools=python")
    branch = f"dependency-updates-{TODAY}"

    first = dependency_update()
    assert first.status.value == "warning", first.summary  # one update held back
    written = json.loads(show(bare, branch, "package.json"))
    assert written["dependencies"] == {"debug": "2.6.9", "on-finished": "~2.4.2", "ms": "^2.0.0",
                                       "depd": ">=1.1.0 <3"}  # ranges keep their operator; ms held back
    assert written["devDependencies"] == {"minimist": "1.2.8", "escape-html": "1.0.3"}  # exact pins stay exact
    assert _locked(bare, branch, "depd") == "1.1.2" and _locked(bare, branch, "ms") == "2.0.0"  # lock only for depd
    assert _locked(bare, branch, "debug") == "2.6.9" and _locked(bare, branch, "on-finished") == "2.4.2"
    tools = show(bare, branch, "tools/pyproject.toml")
    assert '"six==1.17.0",' in tools and '"idna>=3.0",' in tools  # == moves, >= is kept
    locked = {p["name"]: p["version"] for p in tomllib.loads(show(bare, branch, "tools/uv.lock"))["package"]}
    assert locked["six"] == "1.17.0" and classify("3.6", locked["idna"], "python") == "minor"  # the lock moved

    [pr] = pulls.all()
    body = pr["body"]
    (Path(os.environ.get("OPS_EVIDENCE_DIR", tmp_path)) / "middleware-pull-request.md").write_text(body)
    updated = body.split("### Updated")[1].split("###")[0]
    assert "| debug |" not in updated and "2.6.8" not in body  # never a downgrade, never a no-op
    assert "| debug | . | 2.6.9 | 4." in body.split("### Major updates that need a plan")[1]
    assert "| on-finished | . | 2.3.0 | 2.4.2 | minor |" in updated and "~2.3.0 -> ~2.4.2" in updated
    assert "lock file only (>=1.1.0 <3)" in updated and "| six | tools | 1.15.0 | 1.17.0 | minor |" in updated
    held = body.split("### Held back (1)")[1].split("###")[0]
    assert "| ms | . | 2.0.0 | 2.1.3 | minor |" in held and "the tests failed in . with it (try " in held
    assert "[release notes](https://github.com/" in updated
    assert first.tables["held_back"][0]["package"] == "ms" and first.tables["updates"][0]["release notes"]

    # the maintainer squash-merges the pull request and teaches the code about weeks; a dry run came first
    dry = dependency_update(dry_run=True)
    assert dry.figures["dry_run"] is True and [p["number"] for p in pulls.all()] == [pr["number"]]
    weeks = MIDDLEWARE_TEST.replace("assert.strictEqual(parseWindow('2w'), null, 'weeks are not a window');",
                                    "assert.ok(parseWindow('2w') === null || parseWindow('2w') > 0);")
    push_commit(bare, "main", {"test.js": weeks}, f"Update dependencies (#{pr['number']}); weeks may be a window",
                squash=branch)

    second = dependency_update()
    assert second.status.value == "ok", second.summary
    closed = httpx.get(f"{pulls.base}/pulls/{pr['number']}", headers=pulls.headers).json()
    assert closed["state"] == "closed"
    [comment] = httpx.get(f"{pulls.base}/issues/{pr['number']}/comments", headers=pulls.headers).json()
    assert "`main` already has every change of this pull request" in comment["body"]
    [again] = pulls.all()
    assert again["number"] != pr["number"] and "| ms | . | 2.0.0 | 2.1.3 | minor |" in again["body"]
    assert json.loads(show(bare, branch, "package.json"))["dependencies"]["ms"] == "^2.1.3"
    assert _locked(bare, branch, "ms") == "2.1.3"


@pytest.mark.network
def test_a_security_fix_pull_request_the_base_already_has_is_closed_and_not_reopened(app_repo, pulls):
    from flows.security_audit import security_audit

    first = security_audit(fix=True)
    [pr] = pulls.all()
    assert first.findings[0].next_step.startswith(f"Review and merge pull request #{pr['number']}")
    push_commit(app_repo, "main", {}, f"fix: security updates (#{pr['number']})", squash=pr["head"]["ref"])

    second = security_audit(fix=True)
    assert pulls.all() == []  # closed, and nothing left that npm audit fix could do
    [comment] = httpx.get(f"{pulls.base}/issues/{pr['number']}/comments", headers=pulls.headers).json()
    assert "`main` already has every change of this pull request" in comment["body"]
    assert "minimist" not in {r["package"] for r in second.tables["vulnerabilities"] if r["project"] == "backend"}
    assert "pull request" not in second.summary
