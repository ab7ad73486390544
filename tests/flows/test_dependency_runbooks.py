"""dependency-update and security-audit end to end: real git, real npm and uv against the registries, pytest and
pip-audit, the sandbox's GitHub-compatible API and advisory services, the session's Prefect server."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from sandbox.app_repo import BACKEND_TEST, write_app
from tasks.dependencies.git_repo import commit_all, git

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

    git("branch", "dependency-updates-20261122", "main", cwd=app_repo)
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
def test_a_minor_update_that_breaks_the_tests_falls_back_to_patch_only(tmp_path, monkeypatch, pulls):
    from flows.dependency_update import dependency_update

    strict = BACKEND_TEST + "assert.ok(require('ms/package.json').version.startsWith('2.0.'), 'ms 2.0 only');\n"
    bare = make_repo(tmp_path, strict)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    report = dependency_update()
    assert report.status.value == "warning"
    assert any("patch and minor: tests failed in backend" in f.message for f in report.findings)
    branch = f"dependency-updates-{TODAY}"
    backend = json.loads(show(bare, branch, "backend/package.json"))["dependencies"]
    assert backend["ms"] == "2.0.0" and backend["minimist"] == "1.2.8"  # the minor held back, the patches in
    [pr] = pulls.all()
    assert "### Held back: the tests failed with them" in pr["body"] and "| ms | backend | 2.0.0 | 2.1.3 |" in pr["body"]


@pytest.mark.network
def test_updates_failing_even_patch_only_push_nothing_and_fail_the_run(tmp_path, monkeypatch, pulls):
    from prefect import tags

    from flows.dependency_update import dependency_update
    from playground_ops.runbook import RunbookFailed

    frozen = BACKEND_TEST + "assert.strictEqual(require('minimist/package.json').version, '1.2.0');\n"
    bare = make_repo(tmp_path, frozen)
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    with tags("playground-ops"), pytest.raises(RunbookFailed, match="failed their tests, even patch only"):
        dependency_update()
    assert git("branch", "--list", "dependency-updates-*", cwd=bare) == ""  # nothing pushed
    assert pulls.all() == []
    reports = sorted((Path(os.environ["OPS_HOME"]) / "audit" / "dependency-update" / "sandbox").rglob("*.json"),
                     key=lambda p: p.stat().st_mtime)
    failed = json.loads(reports[-1].read_text())
    assert failed["status"] == "failed"
    assert "minimist" in json.dumps(failed["findings"]) and "backend" in json.dumps(failed["tables"]["tests"])


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
    with pytest.raises(RunbookFailed, match="an audit could not run"):
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
