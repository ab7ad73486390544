"""The sandbox's stand-ins for third-party services, in one process: GitHub's pull-request API under /github,
Render's REST API under /render/v1 (managing the backend's processes), the npm registry's advisory endpoint at the root and OSV's query API under /osv (see each module for its fidelity notes).

Run: uvicorn sandbox.standins:app (settings from GITHUB_STANDIN_TOKEN, GITHUB_STANDIN_REPOS, GITHUB_STANDIN_STATE).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from sandbox import advisories, github_api, render_api


def make_app(github: github_api.PullRequests, render: Starlette | None = None) -> Starlette:
    async def healthz(_request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    mounts = [Mount("/render/v1", render)] if render is not None else []
    return Starlette(routes=[Route("/healthz", healthz), Mount("/github", github_api.make_app(github)), *mounts,
                             Mount("/", advisories.make_app())])


def _from_env() -> Starlette:
    repos = [r for r in os.environ.get("GITHUB_STANDIN_REPOS", "").split(",") if r]
    state = os.environ.get("GITHUB_STANDIN_STATE")
    from playground_ops.settings import load_settings

    render = render_api.make_app(load_settings(), int(os.environ.get("RENDER_STANDIN_WRITE_LIMIT", "30")))
    return make_app(github_api.PullRequests(repos, os.environ.get("GITHUB_STANDIN_TOKEN", ""),
                                            Path(state) if state else None), render)


app = _from_env() if os.environ.get("GITHUB_STANDIN_REPOS") else None
