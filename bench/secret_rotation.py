"""Secret rotation under load, in the sandbox (the platform stand-in, the backend's real instance processes, a Prefect
server): users keep calling with the access and refresh tokens they got before the rotation, each call on a new
connection, during the whole rotation. Side by side in one run:

- baseline: the guide's procedure as typed today: `render env set JWT_SECRET=<new>`, `render env set
  JWT_REFRESH_SECRET=<new>`, `render restart` (through the same platform API), then the same wait for health;
- secret-rotation: the runbook (previous values kept, zero-downtime restart, tokens tested).

Reported: requests answered 401 or 5xx, and requests that failed without an answer, for each. The rotation target is 0.

    uv run python bench/secret_rotation.py [--users 8] [--instances 2]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_server, ensure_prefect, isolated_env  # noqa: E402
from sandbox.load import UserLoad  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    home = isolated_env("rotation")
    bench_server()
    server = ensure_prefect(home)
    import httpx
    from pydantic import SecretStr

    from deployments.setup import setup
    from playground_ops.settings import load_settings
    from sandbox import manager
    from tasks.platform.render_platform import Render

    settings = load_settings()
    manager.down(settings, purge=True)
    manager.up(settings, users=50, requests=500, days=1)
    os.environ.update(manager.target_env(settings))
    setup(load_settings())
    render = Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]))
    service = os.environ["RENDER_SERVICE_ID"]
    render.scale(service, args.instances)
    base = os.environ["HEALTH_URL"].removesuffix("/health")

    def login() -> dict[str, str]:
        return httpx.post(f"{base}/api/token", json={"email": "user1@example.com"}).json()

    def wait_healthy(timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(os.environ["HEALTH_URL"], timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)

    try:
        from flows.secret_rotation import secret_rotation

        results = {}
        with UserLoad(base, login(), args.users, linger_s=1) as load:  # the guide's way
            began = time.perf_counter()
            for name in ("JWT_SECRET", "JWT_REFRESH_SECRET"):
                render.set_env_var(service, name, SecretStr(base64.b64encode(secrets.token_bytes(32)).decode()))
            render.restart(service)
            wait_healthy()
            results["guide: env set + restart"] = (load.figures(), time.perf_counter() - began)
        with UserLoad(base, login(), args.users, linger_s=1) as load:  # the runbook
            began = time.perf_counter()
            report = secret_rotation()
            results[f"secret-rotation ({report.status.value})"] = (load.figures(), time.perf_counter() - began)
    finally:
        manager.down(settings, purge=True)
        if server is not None:
            server.terminate()

    print(f"{args.users} users, {args.instances} instances, tokens issued before the rotation, a new connection per call")
    print("| procedure | requests | answered 401 | answered 5xx | no answer | rejected (401+5xx+no answer) | seconds |")
    print("|---|---|---|---|---|---|---|")
    rejected = {}
    for name, (f, seconds) in results.items():
        rejected[name] = f["401"] + f["5xx"] + f["no answer"]
        print(f"| {name} | {f['requests']} | {f['401']} | {f['5xx']} | {f['no answer']} | {rejected[name]} | {seconds:.1f} |")
    (guide, g), (rot, r) = list(rejected.items())
    print(f"rejected requests, secret-rotation / guide: {r} / {g} = {r / g if g else float('nan'):.3f}x")


if __name__ == "__main__":
    main()
