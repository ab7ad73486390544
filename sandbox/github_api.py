"""A local stand-in for the part of GitHub's REST API the dependency runbooks use, faithful to its documented shapes.

Endpoints (https://docs.github.com/en/rest/pulls/pulls, /rest/issues/labels):
    GET   /repos/{owner}/{repo}/pulls?state=open&head={owner}:{branch}&base={branch}   list pull requests
    POST  /repos/{owner}/{repo}/pulls            create; 422 "A pull request already exists for owner:branch."
    GET   /repos/{owner}/{repo}/pulls/{number}   one pull request
    PATCH /repos/{owner}/{repo}/pulls/{number}   update title, body, state, base
    POST  /repos/{owner}/{repo}/issues/{number}/labels   add labels ({"labels": [...]}), returns all labels
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
        if path and path.exists():
            self.repos.update(json.loads(path.read_text()))

    def save(self) -> None:
        if self.path:
            self.path.write_text(json.dumps(self.repos))


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
        return {**pr, "html_url": base_url, "url": f"/repos/{owner}/{repo}/pulls/{pr['number']}",
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

    return Starlette(routes=[
        Route("/repos/{owner}/{repo}/pulls", pulls, methods=["GET", "POST"]),
        Route("/repos/{owner}/{repo}/pulls/{number:int}", pull, methods=["GET", "PATCH"]),
        Route("/repos/{owner}/{repo}/issues/{number:int}/labels", labels, methods=["POST"]),
    ])

