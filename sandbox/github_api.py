"""A local stand-in for the part of GitHub's REST API the dependency runbooks use, faithful to its documented shapes.

Endpoints (https://docs.github.com/en/rest/pulls/pulls, /rest/issues/labels):
    GET   /repos/{owner}/{repo}/pulls?state=open&head={owner}:{branch}&base={branch}   list pull requests
    POST  /repos/{owner}/{repo}/pulls            create; 422 "A pull request already exists for owner:branch."
    GET   /repos/{owner}/{repo}/pulls/{number}   one pull request
    PATCH /repos/{owner}/{repo}/pulls/{number}   update title, body, state, base
    POST  /repos/{owner}/{repo}/issues/{number}/labels   add labels ({"labels": [...]}), returns all labels
    GET   /repos/{owner}/{repo}/issues/{number}/comments list a pull request's comments (a pull request is an issue)
    POST  /repos/{owner}/{repo}/issues/{number}/comments add one ({"body": ...}); 201 with the comment
    POST  /repos/{owner}/{repo}/releases         create a release for a tag; 422 "already_exists" for a tag that has one
    GET   /repos/{owner}/{repo}/releases/tags/{tag}   the release of a tag, or 404
Authentication: `Authorization: Bearer <token>` (or `token <token>`); a wrong or missing token gets 401
{"message": "Bad credentials", ...}; an unknown repository gets 404 {"message": "Not Found", ...}.
Differences from GitHub: one process's memory (optionally a JSON file), no pagination beyond one page of 100,
no rate limiting, repositories are declared when the stand-in starts.
It runs inside the sandbox's stand-ins process (sandbox.standins), under /github.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DOCS = "https://docs.github.com/rest"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PullRequests:
    """The state: pull requests per repository."""

    def __init__(self, repos: list[str], token: str, path: Path | None = None):
        self.token, self.path, self.lock = token, path, threading.Lock()
        self.repos: dict[str, list[dict[str, Any]]] = {r: [] for r in repos}
        self.releases: dict[str, list[dict[str, Any]]] = {r: [] for r in repos}
        if path and path.exists():
            self.repos.update(json.loads(path.read_text()))
        if path and self._releases_path.exists():
            self.releases.update(json.loads(self._releases_path.read_text()))

    @property
    def _releases_path(self) -> Path:
        return self.path.with_name(self.path.stem + "-releases.json")

    def save(self) -> None:
        if self.path:
            self.path.write_text(json.dumps(self.repos))
            self._releases_path.write_text(json.dumps(self.releases))


def _error(status: int, message: str, errors: list[dict] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def make_app(state: PullRequests) -> Starlette:
    def guard(request: Request) -> tuple[list[dict] | None, JSONResponse | None]:
        auth = request.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        if token != state.token:
            return None, _error(401, "Bad credentials")
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        if repo not in state.repos:
            return None, _error(404, "Not Found")
        return state.repos[repo], None

    def guarded_pr(request: Request) -> tuple[dict | None, JSONResponse | None]:
        """The pull request the path names, or the 401/404 GitHub would answer instead."""
        prs, denied = guard(request)
        if denied:
            return None, denied
        pr = next((p for p in prs if p["number"] == int(request.path_params["number"])), None)
        return (pr, None) if pr is not None else (None, _error(404, "Not Found"))

    def shape(pr: dict[str, Any], request: Request) -> dict[str, Any]:
        """A pull request as GitHub's API returns it."""
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        base_url = f"https://github.com/{owner}/{repo}/pull/{pr['number']}"
        return {**{k: v for k, v in pr.items() if not k.startswith("_")}, "comments": len(pr.get("_comments", [])),
                "html_url": base_url, "url": f"/repos/{owner}/{repo}/pulls/{pr['number']}",
                "head": {"ref": pr["head"], "label": f"{owner}:{pr['head']}"},
                "base": {"ref": pr["base"], "label": f"{owner}:{pr['base']}"},
                "labels": [{"name": n} for n in pr["labels"]]}

    async def pulls(request: Request) -> JSONResponse:
        owner = request.path_params["owner"]
        prs, denied = guard(request)
        if denied:
            return denied
        if request.method == "GET":
            state_filter = request.query_params.get("state", "open")
            head = request.query_params.get("head")
            base = request.query_params.get("base")
            found = [p for p in prs if (state_filter == "all" or p["state"] == state_filter)
                     and (head is None or f"{owner}:{p['head']}" == head)
                     and (base is None or p["base"] == base)]
            return JSONResponse([shape(p, request) for p in found][:100])
        body = await request.json()
        missing = [f for f in ("title", "head", "base") if not body.get(f)]
        if missing:
            return _error(422, "Validation Failed",
                          [{"resource": "PullRequest", "code": "missing_field", "field": f} for f in missing])
        head = body["head"].split(":")[-1]
        with state.lock:
            if any(p["state"] == "open" and p["head"] == head and p["base"] == body["base"] for p in prs):
                return _error(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                          "message": f"A pull request already exists for {owner}:{head}."}])
            pr = {"number": sum(len(v) for v in state.repos.values()) + 1, "state": "open", "title": body["title"],
                  "body": body.get("body", ""), "head": head, "base": body["base"], "labels": [],
                  "created_at": _now(), "updated_at": _now(), "draft": bool(body.get("draft", False))}
            prs.append(pr)
            state.save()
        return JSONResponse(shape(pr, request), status_code=201)

    async def pull(request: Request) -> JSONResponse:
        pr, denied = guarded_pr(request)
        if denied:
            return denied
        if request.method == "PATCH":
            body = await request.json()
            with state.lock:
                for field in ("title", "body", "state", "base"):
                    if field in body:
                        pr[field] = body[field]
                pr["updated_at"] = _now()
                pr["closed_at"] = pr["updated_at"] if pr["state"] == "closed" else None
                state.save()
        return JSONResponse(shape(pr, request))

    async def labels(request: Request) -> JSONResponse:
        pr, denied = guarded_pr(request)
        if denied:
            return denied
        body = await request.json()
        with state.lock:
            pr["labels"] = list(dict.fromkeys(pr["labels"] + list(body.get("labels", []))))
            state.save()
        return JSONResponse([{"name": n} for n in pr["labels"]])

    async def comments(request: Request) -> JSONResponse:
        pr, denied = guarded_pr(request)
        if denied:
            return denied
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        if request.method == "GET":
            return JSONResponse(pr.get("_comments", []))
        body = await request.json()
        if not isinstance(body.get("body"), str) or not body["body"]:
            return _error(422, "Validation Failed", [{"resource": "IssueComment", "code": "missing_field",
                                                      "field": "body"}])
        with state.lock:
            number = 1 + sum(len(p.get("_comments", [])) for prs in state.repos.values() for p in prs)
            comment = {"id": number, "body": body["body"], "user": {"login": "playground-ops"},
                       "html_url": f"https://github.com/{owner}/{repo}/pull/{pr['number']}#issuecomment-{number}",
                       "created_at": _now(), "updated_at": _now()}
            pr.setdefault("_comments", []).append(comment)
            state.save()
        return JSONResponse(comment, status_code=201)

    async def releases(request: Request) -> JSONResponse:
        prs, denied = guard(request)
        if denied:
            return denied
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        known = state.releases.setdefault(f"{owner}/{repo}", [])
        if request.method == "GET":
            found = next((r for r in known if r["tag_name"] == request.path_params["tag"]), None)
            return JSONResponse(found) if found else _error(404, "Not Found")
        body = await request.json()
        if not body.get("tag_name"):
            return _error(422, "Validation Failed", [{"resource": "Release", "code": "missing_field",
                                                      "field": "tag_name"}])
        with state.lock:
            if any(r["tag_name"] == body["tag_name"] for r in known):
                return _error(422, "Validation Failed", [{"resource": "Release", "code": "already_exists",
                                                          "field": "tag_name"}])
            number = 1 + sum(len(v) for v in state.releases.values())
            release = {"id": number, "tag_name": body["tag_name"], "name": body.get("name") or body["tag_name"],
                       "body": body.get("body", ""), "draft": bool(body.get("draft", False)),
                       "prerelease": bool(body.get("prerelease", False)),
                       "target_commitish": body.get("target_commitish", "main"),
                       "html_url": f"https://github.com/{owner}/{repo}/releases/tag/{body['tag_name']}",
                       "created_at": _now(), "published_at": _now()}
            known.append(release)
            state.save()
        return JSONResponse(release, status_code=201)

    return Starlette(routes=[
        Route("/repos/{owner}/{repo}/pulls", pulls, methods=["GET", "POST"]),
        Route("/repos/{owner}/{repo}/pulls/{number:int}", pull, methods=["GET", "PATCH"]),
        Route("/repos/{owner}/{repo}/issues/{number:int}/labels", labels, methods=["POST"]),
        Route("/repos/{owner}/{repo}/issues/{number:int}/comments", comments, methods=["GET", "POST"]),
        Route("/repos/{owner}/{repo}/releases", releases, methods=["POST"]),
        Route("/repos/{owner}/{repo}/releases/tags/{tag}", releases, methods=["GET"]),
    ])

