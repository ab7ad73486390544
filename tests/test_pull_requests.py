"""Pull requests against the sandbox's GitHub-compatible API over real HTTP: open once, then update; clear errors."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from sandbox.github_api import PullRequests, make_app
from tasks.dependencies.pull_requests import GitHub, open_or_update
from tasks.retry import PermanentError, is_transient
from tests.conftest import free_port


@pytest.fixture(scope="module")
def github():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(PullRequests(["playground/app"], "ghp-test-token")),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def test_second_weekly_run_updates_the_same_pull_request(github):
    host = GitHub(github, "playground/app", SecretStr("ghp-test-token"))
    first, action = open_or_update(host, "dependency-updates-20261129", "main", "chore: update dependencies 20261129",
                                   "| package | from | to |", ["dependencies", "javascript"])
    assert action == "opened" and first.labels == ["dependencies", "javascript"]
    second, action = open_or_update(host, "dependency-updates-20261129", "main", "chore: update dependencies 20261129",
                                    "| package | from | to |\n| ms | 2.0.0 | 2.1.3 |", ["dependencies", "python"])
    assert action == "updated" and second.number == first.number
    assert "ms" in second.body and second.labels == ["dependencies", "javascript", "python"]
    assert host.find_open("dependency-updates-20261129", "main").number == first.number


def test_a_duplicate_pull_request_is_a_clear_422_never_retried(github):
    host = GitHub(github, "playground/app", SecretStr("ghp-test-token"))
    open_or_update(host, "security-fixes-20261129", "main", "fix: npm audit", "", ["security"])
    with pytest.raises(PermanentError, match="422 Validation Failed: A pull request already exists for "
                                             "playground:security-fixes-20261129") as failed:
        host.create("security-fixes-20261129", "main", "again", "")
    assert not is_transient(failed.value)


@pytest.mark.parametrize("repository, token, status, hint", [
    ("playground/app", "wrong-token", 401, "the token is missing or wrong"),
    ("playground/missing", "ghp-test-token", 404, "no repository playground/missing visible to this token"),
])
def test_authentication_and_missing_repository_are_named(github, repository, token, status, hint):
    host = GitHub(github, repository, SecretStr(token))
    with pytest.raises(PermanentError) as failed:
        host.find_open("dependency-updates-20261129", "main")
    assert f"answered {status}" in str(failed.value) and hint in str(failed.value)
    assert token not in str(failed.value)


def test_the_stand_in_answers_in_githubs_shapes(github):
    response = httpx.post(f"{github}/repos/playground/app/pulls", json={"title": "x"},
                          headers={"Authorization": "Bearer ghp-test-token"})
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "Validation Failed" and {e["field"] for e in body["errors"]} == {"head", "base"}
    assert httpx.get(f"{github}/repos/playground/app/pulls").json()["message"] == "Bad credentials"
