"""npm, driven for real in a project directory: what is outdated, applying chosen updates, running the tests."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from playground_ops.redact import redact
from tasks.dependencies.policy import AuditOutcome, Outdated, judge_npm_audit, parse_npm_outdated
from tasks.dependencies.versioning import keep_range_form, rewrite_package_json, widen_peer_range, written_ranges
from tasks.retry import TransientError

NETWORK_ERRORS = ("ETIMEDOUT", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "socket hang up", "503", "502")


@dataclass
class CommandResult:
    command: str
    returncode: int
    output: str  # stdout and stderr, redacted, the last 4,000 characters: what a report shows
    stdout: str = ""  # the whole of stdout, never cut: what a parser reads

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# Installs of versions already chosen (the lock's, or those `npm outdated` just read fresh from the registry) take
# the metadata npm cached without asking the registry again; a package not in the cache is still fetched. What is
# outdated, and what an audit resolves, is always asked of the registry.
PREFER_CACHE = ("--prefer-offline",)


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **env} if env else None)
    output = redact((result.stdout + "\n" + result.stderr).strip())
    return CommandResult(" ".join(args), result.returncode, output[-4000:], result.stdout)


def install(project: Path, timeout: float = 600) -> CommandResult:
    """`npm install`; a registry that cannot be reached is transient (retried), anything else is reported."""
    result = _run(["npm", "install", "--no-audit", "--no-fund", *PREFER_CACHE], project, timeout)
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


def apply_updates(project: Path, updates: list[Outdated], widen_peers: bool = False,
                  timeout: float = 600) -> CommandResult:
    """Install the chosen versions exactly (the lock file and node_modules move to them), then write package.json's
    ranges back in the form the repository wrote them (Outdated.new_spec) and let npm settle the lock on them; the
    lock must then resolve each package to its chosen version. peerDependencies are widened only when asked."""
    manifest = project / "package.json"
    original = manifest.read_text()
    exact = install_exact(project, [(u.package, u.wanted) for u in updates], timeout)
    if not exact.ok:
        return exact
    written, peers = written_ranges(original), json.loads(original).get("peerDependencies") or {}
    changes: dict[str, dict[str, str]] = {}
    for u in (u for u in updates if u.package in written):
        section, spec = written[u.package]
        changes.setdefault(section, {})[u.package] = u.new_spec or keep_range_form(spec, u.wanted, "npm") or u.wanted
        if widen_peers and isinstance(peers.get(u.package), str):
            changes.setdefault("peerDependencies", {})[u.package] = widen_peer_range(peers[u.package], u.wanted)
    manifest.write_text(rewrite_package_json(original, changes))
    settled = _run(["npm", "install", "--no-audit", "--no-fund", *PREFER_CACHE], project, timeout)
    command = f"{exact.command} && npm install (package.json ranges as written)"
    if not settled.ok:
        return CommandResult(command, settled.returncode, settled.output)
    wrong = [f"{u.package} {found} (expected {u.wanted})" for u in updates
             if (found := locked_version(project, u.package)) != u.wanted]
    if wrong:
        return CommandResult(command, 1, "the lock file resolves " + ", ".join(wrong))
    return CommandResult(command, 0, settled.output)


def locked_version(project: Path, package: str) -> str | None:
    """The version package-lock.json resolves a top-level package to."""
    lock = project / "package-lock.json"
    if not lock.exists():
        return None
    return (json.loads(lock.read_text()).get("packages", {}).get(f"node_modules/{package}") or {}).get("version")


def keeps_lock_file(project: Path) -> bool:
    """Whether the project commits a lock file (package-lock.json or npm-shrinkwrap.json)."""
    return any((project / name).exists() for name in ("package-lock.json", "npm-shrinkwrap.json"))


def run_script(project: Path, script: str, timeout: float = 900) -> CommandResult:
    """`npm test` or `npm run <script>`."""
    args = ["npm", "test"] if script == "test" else ["npm", "run", script]
    return _run(args, project, timeout)


def run_command(project: Path, command: str, timeout: float = 900, env: dict[str, str] | None = None) -> CommandResult:
    """A test command the target configures, run by the shell in the project's folder."""
    return _run(["sh", "-c", command], project, timeout, env)


def ensure_lockfile(project: Path, timeout: float = 300) -> CommandResult | None:
    """`npm audit` reads package-lock.json: write one (lock only, no scripts) where the repository has none."""
    if (project / "package-lock.json").exists():
        return None
    result = _run(["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], project,
                  timeout)
    if not result.ok and any(e in result.output for e in NETWORK_ERRORS):
        raise TransientError(f"npm install --package-lock-only in {project.name}: the registry could not be reached")
    return result


def audit(project: Path, registry: str | None = None, timeout: float = 300) -> AuditOutcome:
    """`npm audit --json`, judged by what it printed: findings, or the reason it could not run."""
    args = ["npm", "audit", "--json"] + ([f"--registry={registry}"] if registry else [])
    result = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=timeout)
    outcome = judge_npm_audit(result.stdout, result.returncode)
    if not outcome.ran and any(e in (outcome.error or "") + result.stderr for e in NETWORK_ERRORS):
        raise TransientError(f"npm audit in {project.name}: the advisory service could not be reached")
    if outcome.error:
        outcome.error = redact(outcome.error)
    return outcome


def audit_fix(project: Path, registry: str | None = None, timeout: float = 600) -> CommandResult:
    """`npm audit fix`, never `--force`: only fixes within the ranges package.json allows. It exits 1 whenever
    something stays vulnerable, so only npm's own errors count as failure."""
    args = ["npm", "audit", "fix", "--no-fund"] + ([f"--registry={registry}"] if registry else [])
    result = _run(args, project, timeout)
    if result.returncode == 1 and "npm error" not in result.output and "npm ERR!" not in result.output:
        result.returncode = 0
    return result


def install_exact(project: Path, versions: list[tuple[str, str]], timeout: float = 600) -> CommandResult:
    """Install exact versions of named packages (package.json pins them)."""
    return _run(["npm", "install", "--no-audit", "--no-fund", *PREFER_CACHE, "--save-exact",
                 *(f"{n}@{v}" for n, v in versions)],
                project, timeout)


def view(package: str, fields: list[str], cwd: Path, timeout: float = 60) -> dict:
    """`npm view <package> <fields> --json` (what the registry says of a package); {} when it says nothing."""
    result = subprocess.run(["npm", "view", package, *fields, "--json"], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0 or not result.stdout.strip():
        return {}
    data = json.loads(result.stdout)
    return {fields[0]: data} if len(fields) == 1 else data  # one field: npm prints its value, whatever its type
