"""Pull requests through GitHub's REST API, behind a small interface so GitLab merge requests could follow.

Find the open one for a branch before opening one; update it rather than open a second; 401/403/404/422 are clear
failures, never retried; 5xx, 429 and transport errors are transient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr

from tasks.retry import PermanentError, TRANSIENT_HTTP, TransientError


@dataclass
class PullRequest:
    number: int
    url: str
    title: str
    body: str
    head: str
    base: str
    labels: list[str]


class CodeHost(Protocol):
    def find_open(self, head: str, base: str) -> PullRequest | None: ...
    def find_open_by_prefix(self, prefix: str, base: str) -> PullRequest | None: ...
    def create(self, head: str, base: str, title: str, body: str) -> PullRequest: ...
    def update(self, number: int, title: str, body: str) -> PullRequest: ...
    def add_labels(self, number: int, labels: list[str]) -> list[str]: ...
    def comment(self, number: int, body: str) -> None: ...
    def close(self, number: int) -> None: ...


class GitHub:
    """GitHub's REST API v3 (or a compatible stand-in) for one repository."""

    def __init__(self, api_url: str, repository: str, token: SecretStr, client: httpx.Client | None = None):
        self.owner, self.repo = repository.split("/", 1)
        self.base = f"{api_url.rstrip('/')}/repos/{self.owner}/{self.repo}"
        self.client = client or httpx.Client(timeout=30, headers={
            "Authorization": f"Bearer {token.get_secret_value()}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "playground-ops"})

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise TransientError(f"GitHub {method} {path}: {type(exc).__name__}") from None
        if response.status_code in TRANSIENT_HTTP:
            raise TransientError(f"GitHub {method} {path} answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(self._explain(method, path, response))
        return response

    def _explain(self, method: str, path: str, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = {}
        message = body.get("message", response.reason_phrase)
        details = "; ".join(e.get("message") or f"{e.get('field')} {e.get('code')}" for e in body.get("errors", []))
        hint = {401: "the token is missing or wrong", 403: "the token lacks permission (pull_requests: write)",
                404: f"no repository {self.owner}/{self.repo} visible to this token"}.get(response.status_code, "")
        return (f"GitHub {method} {path} answered {response.status_code} {message}"
                + (f": {details}" if details else "") + (f" ({hint})" if hint else ""))

    @staticmethod
    def _pr(data: dict) -> PullRequest:
        return PullRequest(data["number"], data["html_url"], data["title"], data.get("body") or "",
                           data["head"]["ref"], data["base"]["ref"], [label["name"] for label in data.get("labels", [])])

    def find_open(self, head: str, base: str) -> PullRequest | None:
        found = self._call("GET", "/pulls", params={"state": "open", "head": f"{self.owner}:{head}", "base": base}).json()
        return self._pr(found[0]) if found else None

    def find_open_by_prefix(self, prefix: str, base: str) -> PullRequest | None:
        """The newest open pull request into base whose branch starts with prefix (an earlier week's)."""
        found = self._call("GET", "/pulls", params={"state": "open", "base": base, "sort": "created",
                                                    "direction": "desc", "per_page": 100}).json()
        return next((self._pr(p) for p in found if p["head"]["ref"].startswith(prefix)), None)

    def create(self, head: str, base: str, title: str, body: str) -> PullRequest:
        return self._pr(self._call("POST", "/pulls", json={"title": title, "head": head, "base": base, "body": body}).json())

    def update(self, number: int, title: str, body: str) -> PullRequest:
        return self._pr(self._call("PATCH", f"/pulls/{number}", json={"title": title, "body": body}).json())

    def add_labels(self, number: int, labels: list[str]) -> list[str]:
        return [label["name"] for label in self._call("POST", f"/issues/{number}/labels", json={"labels": labels}).json()]

    def comment(self, number: int, body: str) -> None:
        self._call("POST", f"/issues/{number}/comments", json={"body": body})

    def close(self, number: int) -> None:
        self._call("PATCH", f"/pulls/{number}", json={"state": "closed"})

    def find_release(self, tag: str) -> dict | None:
        """The release of a tag, or None."""
        try:
            return self._call("GET", f"/releases/tags/{tag}").json()
        except PermanentError as exc:
            if " 404 " in str(exc):
                return None
            raise

    def create_release(self, tag: str, name: str, body: str, target: str) -> dict:
        return self._call("POST", "/releases", json={"tag_name": tag, "name": name, "body": body,
                                                     "target_commitish": target, "draft": False,
                                                     "prerelease": False}).json()


def open_or_update(host: CodeHost, head: str, base: str, title: str, body: str, labels: list[str]) -> tuple[PullRequest, str]:
    """The open pull request for this branch, updated, or a new one; (pull request, 'opened' | 'updated')."""
    existing = host.find_open(head, base)
    if existing is None:
        pr, action = host.create(head, base, title, body), "opened"
    else:
        pr, action = host.update(existing.number, title, body), "updated"
    pr.labels = host.add_labels(pr.number, labels)
    return pr, action
