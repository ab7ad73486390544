"""Python projects, driven with real tools: uv for environments and updates, pytest for tests, pip-audit for audits.

Two kinds of project: pinned requirements files (`requirements.txt`, `name==version`) and uv projects (`uv.lock`).
Each gets a virtual environment outside the git work tree, so nothing of it can end up in a commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import httpx

from playground_ops.redact import redact
from tasks.dependencies.policy import AuditOutcome, Outdated, judge_pip_audit, parse_pip_outdated
from tasks.dependencies.versioning import (read_requirements, requirement_specs, rewrite_pyproject_dependencies,
                                         rewrite_requirements)
from tasks.dependencies.npm import CommandResult, run_command
from tasks.retry import TransientError

NETWORK_ERRORS = ("Failed to fetch", "Could not connect", "error sending request", "dns error", "timed out",
                  "Connection reset", "503 Service Unavailable", "502 Bad Gateway")
PYPI_JSON = "https://pypi.org/pypi/{name}/json"


def manager(project: Path) -> str:
    """'uv' for a uv project, 'requirements' for a pinned requirements file; anything else is named as unsupported."""
    if (project / "uv.lock").exists():
        return "uv"
    if (project / "requirements.txt").exists():
        return "requirements"
    raise ValueError(f"Python project {project.name}: expected a uv.lock or a requirements.txt")


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    output = redact((result.stdout + "\n" + result.stderr).strip())
    if result.returncode != 0 and any(e in output for e in NETWORK_ERRORS):
        raise TransientError(f"{args[0]} {args[1]} in {cwd.name}: the package index could not be reached")
    return CommandResult(" ".join(args), result.returncode, output[-4000:], result.stdout)


def _uv_env(venv: Path) -> dict[str, str]:
    return {"UV_PROJECT_ENVIRONMENT": str(venv), "VIRTUAL_ENV": str(venv)}


def install(project: Path, venv: Path, with_pytest: bool = True, timeout: float = 600) -> CommandResult:
    """Make the environment match the project exactly (uv sync / uv pip sync), plus pytest to run its tests."""
    if manager(project) == "uv":
        return _run(["uv", "sync", "--frozen"], project, timeout, _uv_env(venv))
    if not (venv / "bin" / "python").exists():
        _run(["uv", "venv", "--quiet", str(venv)], project, timeout)
    result = _run(["uv", "pip", "sync", "--python", str(venv), "requirements.txt"], project, timeout)
    if result.ok and with_pytest:
        result = _run(["uv", "pip", "install", "--python", str(venv), "pytest"], project, timeout)
    return result


def direct_requirements(project: Path) -> dict[str, str]:
    """What the project itself asks for, by normalised name, as written: the requirements file's specifiers, or a uv
    project's `[project] dependencies`."""
    if manager(project) == "requirements":
        return read_requirements((project / "requirements.txt").read_text())
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    return {r.name: r.spec for r in requirement_specs("\n".join(meta.get("project", {}).get("dependencies", [])))}


def keeps_lock_file(project: Path) -> bool:
    """A uv project's uv.lock; a requirements file is its own lock only where it pins."""
    return manager(project) == "uv"


def outdated(project: Path, venv: Path, name: str, timeout: float = 300) -> list[Outdated]:
    """`uv pip list --outdated`, kept to the project's direct dependencies, classified by the guide's policy."""
    result = _run(["uv", "pip", "list", "--outdated", "--format", "json", "--python", str(venv)], project, timeout)
    if not result.ok:
        raise RuntimeError(f"uv pip list --outdated in {name} failed: {result.output[-500:]}")
    return parse_pip_outdated(result.stdout, name, direct_requirements(project))  # the whole output, never cut


def apply_updates(project: Path, venv: Path, updates: list[Outdated], timeout: float = 600) -> CommandResult:
    """Move the chosen requirements in the form they are written (Outdated.new_spec: `==` pins move, `>=` stays),
    in requirements.txt or pyproject.toml, and the uv project's lock (uv lock --upgrade-package); then sync."""
    specs = {u.package: u.new_spec for u in updates if u.new_spec and u.new_spec != u.spec}
    if manager(project) == "requirements":
        path = project / "requirements.txt"
        path.write_text(rewrite_requirements(path.read_text(), specs))
    else:
        path = project / "pyproject.toml"
        path.write_text(rewrite_pyproject_dependencies(path.read_text(), specs))
        args = ["uv", "lock"] + [a for u in updates for a in ("--upgrade-package", f"{u.package}=={u.wanted}")]
        result = _run(args, project, timeout, _uv_env(venv))
        if not result.ok:
            return result
    return install(project, venv, timeout=timeout)


def run_tests(project: Path, venv: Path, command: str | None, timeout: float = 900) -> CommandResult:
    """The project's tests in its environment: the configured command, or pytest."""
    env = {**_uv_env(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command:
        return run_command(project, command, timeout, env)
    if manager(project) == "uv":
        return _run(["uv", "run", "--frozen", "pytest", "-q"], project, timeout, env)
    return _run([str(venv / "bin" / "python"), "-m", "pytest", "-q"], project, timeout, env)


def audit(project: Path, osv_url: str | None = None, timeout: float = 600) -> AuditOutcome:
    """pip-audit on what the project pins (exported from uv.lock for uv projects), judged by what it printed."""
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as scratch:
        requirements = project / "requirements.txt"
        if manager(project) == "uv":
            requirements = Path(scratch) / "requirements.txt"
            exported = _run(["uv", "export", "--frozen", "--no-hashes", "--no-emit-project", "-o", str(requirements)],
                            project, timeout)
            if not exported.ok:
                return AuditOutcome(False, f"uv export failed: {exported.output[-300:]}")
        service = ["--vulnerability-service", "osv"] + (["--osv-url", osv_url] if osv_url else [])
        args = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps", "--disable-pip",
                "--format", "json", "--progress-spinner", "off", "--cache-dir", str(Path(scratch) / "cache"), *service]
        result = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=timeout)
    outcome = judge_pip_audit(result.stdout, result.returncode)
    if not outcome.ran:
        tail = redact(result.stderr.strip())[-300:]
        if any(e in tail for e in ("ConnectionError", "Max retries exceeded", "timed out")):
            raise TransientError(f"pip-audit in {project.name}: the vulnerability service could not be reached")
        outcome.error = f"{outcome.error}{': ' + tail if tail else ''}"
    return outcome


def project_info(package: str, timeout: float = 20) -> dict:
    """PyPI's JSON for a package (its releases and project URLs); {} when the index does not answer."""
    try:
        response = httpx.get(PYPI_JSON.format(name=package), timeout=timeout, follow_redirects=True)
        return response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
