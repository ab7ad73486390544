"""npm, driven for real in a project directory: what is outdated, applying chosen updates, running the tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from playground_ops.redact import redact
from tasks.dependency_policy import Outdated, parse_npm_outdated
from tasks.retry import TransientError

NETWORK_ERRORS = ("ETIMEDOUT", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "socket hang up", "503", "502")


@dataclass
class CommandResult:
    command: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _run(args: list[str], cwd: Path, timeout: float) -> CommandResult:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = redact((result.stdout + "\n" + result.stderr).strip())
    return CommandResult(" ".join(args), result.returncode, output[-4000:])


def install(project: Path, timeout: float = 600) -> CommandResult:
    """`npm install`; a registry that cannot be reached is transient (retried), anything else is reported."""
    result = _run(["npm", "install", "--no-audit", "--no-fund"], project, timeout)
    if not result.ok and any(e in result.output for e in NETWORK_ERRORS):
        raise TransientError(f"npm install in {project.name}: the registry could not be reached")
    return result


def outdated(project: Path, name: str, timeout: float = 300) -> list[Outdated]:
    """`npm outdated --json` (exit 1 means 'something is outdated', not failure), classified by the policy."""
    result = subprocess.run(["npm", "outdated", "--json"], cwd=project, capture_output=True, text=True, timeout=timeout)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not result.stdout.strip()):
        if any(e in result.stderr for e in NETWORK_ERRORS):
            raise TransientError(f"npm outdated in {name}: the registry could not be reached")
        raise RuntimeError(f"npm outdated in {name} failed: {redact(result.stderr.strip())[-500:]}")
    return parse_npm_outdated(result.stdout, name)


def apply_updates(project: Path, updates: list[Outdated], timeout: float = 600) -> CommandResult:
    """Install the chosen versions, exactly, in one npm call."""
    specs = [f"{u.package}@{u.wanted}" for u in updates]
    return _run(["npm", "install", "--no-audit", "--no-fund", "--save-exact", *specs], project, timeout)


def run_script(project: Path, script: str, timeout: float = 900) -> CommandResult:
    """`npm test` or `npm run <script>`."""
    args = ["npm", "test"] if script == "test" else ["npm", "run", script]
    return _run(args, project, timeout)
