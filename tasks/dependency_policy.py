"""Dependency updates and audits on paper (pure): semantic-version classification with the guide's policy, and the
parsing of what npm and pip-audit really print, telling 'found problems' from 'could not run'."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str | None = None


def parse_version(text: str | None) -> Version | None:
    """A semantic version, or None for what is not one (git URLs, `linked`, ranges, missing)."""
    match = SEMVER.match((text or "").strip())
    if not match:
        return None
    return Version(int(match[1]), int(match[2]), int(match[3]), match[4])


def classify(current: str | None, target: str | None) -> str:
    """patch, minor or major by semantic version; 0.x minor bumps and anything into or out of a prerelease count as
    major (breaking), as Renovate and the semver spec treat them; 'unknown' when either side is not a version."""
    a, b = parse_version(current), parse_version(target)
    if a is None or b is None:
        return "unknown"
    if (a.major, a.minor, a.patch, a.prerelease) == (b.major, b.minor, b.patch, b.prerelease):
        return "none"
    if b.prerelease and (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch):
        return "major"  # a prerelease of another version is never applied as a routine update
    if a.major != b.major:
        return "major"
    if a.major == 0 and a.minor != b.minor:
        return "major"  # in 0.x, a minor bump may break
    if a.minor != b.minor:
        return "minor"
    if a.major == 0 and a.minor == 0:
        return "major"  # 0.0.x: every bump may break
    return "patch"


# The guide's policy: patch updates apply immediately, minor after testing (both in the weekly branch), major are planned.
POLICY = {"patch": "apply", "minor": "apply", "major": "plan", "unknown": "skip", "none": "skip"}


@dataclass
class Outdated:
    project: str
    package: str
    current: str | None
    wanted: str | None
    latest: str | None
    kind: str
    action: str
    note: str = ""


def parse_npm_outdated(text: str, project: str) -> list[Outdated]:
    """`npm outdated --json` (which exits 1 when anything is outdated): one entry per package, or a list of entries
    for a package installed in several places; `current` may be missing (not installed), and versions may be
    `git`, `linked` or `exotic`, which are reported and skipped."""
    if not text.strip():
        return []
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("npm outdated --json: expected an object of packages")
    if "error" in data and isinstance(data["error"], dict):
        raise RuntimeError(f"npm outdated failed: {data['error'].get('summary') or data['error']}")
    found: dict[tuple[str, str | None], Outdated] = {}
    for package, entries in data.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            current, wanted, latest = entry.get("current"), entry.get("wanted"), entry.get("latest")
            note = ""
            if current is None:
                note = "not installed"
            elif any(v in ("git", "linked", "exotic") for v in (current, wanted, latest)):
                note = "not from the registry (git, linked or exotic)"
            target = latest if classify(current, latest) in ("patch", "minor") else wanted
            kind = classify(current, latest) if not note else "unknown"
            item = Outdated(project, package, current, wanted, latest, kind, POLICY[kind], note)
            if kind in ("patch", "minor") and target:
                item.wanted = target
            found.setdefault((package, current), item)
    return sorted(found.values(), key=lambda o: (o.project, o.package))


@dataclass
class AuditOutcome:
    ran: bool
    error: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    audited: int = 0


def judge_npm_audit(text: str, exit_code: int) -> AuditOutcome:
    """npm exits non-zero both for findings and for its own failures: read the JSON, not the exit code."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return AuditOutcome(False, f"npm audit printed no JSON (exit {exit_code})")
    if "auditReportVersion" not in data:
        reason = data.get("message") or (data.get("error") or {}).get("summary") or "no audit report"
        return AuditOutcome(False, f"npm audit could not run: {reason}")
    findings = [{"package": name, "severity": v.get("severity"), "range": v.get("range"),
                 "fix_available": bool(v.get("fixAvailable")),
                 "fix_is_major": isinstance(v.get("fixAvailable"), dict) and v["fixAvailable"].get("isSemVerMajor", False),
                 "advisories": [a.get("url") or a.get("source") for a in v.get("via", []) if isinstance(a, dict)]}
                for name, v in (data.get("vulnerabilities") or {}).items()]
    total = (data.get("metadata") or {}).get("dependencies", {})
    return AuditOutcome(True, None, findings, total.get("total", 0) if isinstance(total, dict) else 0)


def judge_pip_audit(text: str, exit_code: int) -> AuditOutcome:
    """pip-audit exits 0 when it skipped everything: an audit that audited nothing did not run."""
    try:
        data = json.loads(text)
    except ValueError:
        return AuditOutcome(False, f"pip-audit printed no JSON (exit {exit_code})")
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    if deps and not audited:
        return AuditOutcome(False, f"pip-audit skipped all {len(deps)} dependencies: {skipped[0]['skip_reason']}")
    findings = [{"package": d["name"], "version": d.get("version"), "id": v["id"], "aliases": v.get("aliases", []),
                 "fix_versions": v.get("fix_versions", [])} for d in audited for v in d.get("vulns", [])]
    return AuditOutcome(True, None, findings, len(audited))
