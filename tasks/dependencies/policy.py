"""Dependency updates and audits on paper (pure): semantic-version classification with the guide's policy, and the
parsing of what npm and pip-audit really print, telling 'found problems' from 'could not run'."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tasks.reporting.report import markdown_table

from tasks.dependencies.versioning import canonical, classify, keep_range_form, newest_within

# The guide's policy: patch updates apply immediately, minor after testing (both in the weekly branch), major are
# planned; what is not a routine update is skipped, saying why.
POLICY = {"patch": "apply", "minor": "apply", "major": "plan", "unknown": "skip", "none": "skip",
          "prerelease": "skip", "local": "skip", "downgrade": "skip"}
WHY_SKIPPED = {"prerelease": "a prerelease is never a routine update", "local": "a local version is not an update",
               "downgrade": "lower than the version installed"}


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
    ecosystem: str = "npm"
    spec: str = ""        # the range the repository wrote (package.json, requirements, pyproject), if direct
    new_spec: str = ""    # that range moved to admit the target, in the same form ("" when nothing is written)

    @property
    def target(self) -> str | None:
        """The version this update moves to: the one applied, or for a planned major the latest."""
        return self.wanted if self.action == "apply" else self.latest

    @property
    def range_change(self) -> str:
        """How the written range changes: `~2.3.0 -> ~2.4.2`, `pinned`, `lock file only (>=1.1.0 <3)`."""
        if not self.spec or not self.new_spec:
            return ""
        if self.spec == self.new_spec:
            return f"lock file only ({self.spec})"
        return "pinned" if self.spec.lstrip("=v ") == self.current else f"{self.spec} -> {self.new_spec}"

    def __str__(self) -> str:
        return f"{self.package} {self.current} -> {self.target}"


def keep_written_ranges(items: list[Outdated], written: dict[tuple[str, str], str], locked: set[str]) -> list[Outdated]:
    """Renovate's `bump` range strategy on each update: the range the repository wrote moves in its own form
    (`~2.3.0` -> `~2.4.2`, an exact pin stays exact); a range that already admits the target stays, and only the lock
    file moves. An update no rewrite can express (a compound range excluding it), or that would change nothing (the
    range admits it and the project keeps no lock file), is skipped, saying why.

    written: (project, package) -> range as written; locked: the projects that keep a lock file."""
    for item in items:
        spec = written.get((item.project, item.package))
        if not spec or item.target is None:
            continue
        item.spec, item.new_spec = spec, keep_range_form(spec, item.target, item.ecosystem) or ""
        if item.action != "apply":
            continue
        if not item.new_spec:
            item.action, item.note = "skip", f"written as {spec}, which does not admit {item.target}: widen it by hand"
        elif item.new_spec == spec and item.project not in locked:
            item.action, item.note = "skip", f"{spec} already admits {item.target} and there is no lock file to move"
    return items


def split_majors(items: list[Outdated], versions: dict[str, list[str]]) -> list[Outdated]:
    """Renovate's manners for a package whose latest is a major: the newest release within the current major is
    applied as a routine update, and the major itself is listed for a person to plan."""
    out: list[Outdated] = []
    for item in items:
        out.append(item)
        if item.kind == "major" and item.package in versions:
            within = newest_within(item.current, versions[item.package], item.ecosystem)
            if within:
                kind = classify(item.current, within, item.ecosystem)
                out.append(Outdated(item.project, item.package, item.current, within, within, kind, POLICY[kind],
                                    f"latest {item.latest} is a major: planned separately", item.ecosystem))
    return sorted(out, key=lambda o: (o.project, o.package, o.action))


def parse_npm_outdated(text: str, project: str) -> list[Outdated]:
    """`npm outdated --json` (which exits 1 when anything is outdated): one entry per package, or a list of entries
    for a package installed in several places; `current` may be missing (not installed), and versions may be
    `git`, `linked` or `exotic`, which are reported and skipped."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):  # a listing that is not one is a loud error, never "nothing is outdated"
        raise ValueError(f"npm outdated --json in {project}: expected a JSON object of packages "
                         f"(got {text.strip()[:200]!r})")
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
            target = latest if classify(current, latest, "npm") in ("patch", "minor") else wanted
            kind = classify(current, latest, "npm") if not note else "unknown"
            item = Outdated(project, package, current, wanted, latest, kind, POLICY[kind], note or WHY_SKIPPED.get(kind, ""))
            if kind in ("patch", "minor") and target:
                item.wanted = target
            found.setdefault((package, current), item)
    return sorted(found.values(), key=lambda o: (o.project, o.package))


def parse_pip_outdated(text: str, project: str, pinned: dict[str, str]) -> list[Outdated]:
    """`uv pip list --outdated --format json`, kept to what the project pins directly (`name==version`)."""
    try:
        listing = json.loads(text)
    except ValueError:
        listing = None
    if not isinstance(listing, list):  # never an empty list in silence: that reads as "nothing is outdated"
        raise ValueError(f"uv pip list --outdated in {project}: expected a JSON list of packages "
                         f"(got {text.strip()[:200]!r})")
    items = []
    for entry in listing:
        name = canonical(entry["name"])
        if name not in pinned:
            continue
        kind = classify(entry["version"], entry["latest_version"], "python")
        items.append(Outdated(project, name, entry["version"], entry["latest_version"], entry["latest_version"], kind,
                              POLICY[kind], WHY_SKIPPED.get(kind, ""), ecosystem="python"))
    return sorted(items, key=lambda o: o.package)


@dataclass
class UpdatePlan:
    apply: list[Outdated]
    planned: list[Outdated]
    skipped: list[Outdated]


@dataclass
class _Group:
    updates: list[Outdated]
    name: str = ""
    known_to_fail_with: frozenset[int] | None = None  # the good set with which good + this group already failed
    evidence: Any = None                              # the attempt that showed it


class Bisection:
    """Which updates break the tests, found rather than guessed: every update together first; a set that fails is
    split (the projects whose tests passed apart from those whose tests failed, then patch only, then halves), each try
    being the updates known good plus one group, until the update that breaks is named. The rest ship. Pure: the
    runbook applies and tests each try and records it here."""

    def __init__(self, updates: list[Outdated], max_tries: int = 12):
        self.max_tries = max_tries
        self.good: list[Outdated] = []
        self.breakers: list[tuple[Outdated, Any]] = []   # (update, the attempt whose failure named it)
        self.untried: list[Outdated] = []
        self.attempts: list[Any] = []
        self.scope = ""
        self._queue = [_Group(list(updates), f"all {len(updates)} updates")] if updates else []
        self._current: _Group | None = None
        self._final = False

    @staticmethod
    def _ids(updates: list[Outdated]) -> frozenset[int]:
        return frozenset(id(u) for u in updates)

    def _split(self, group: _Group, attempt: Any) -> list[_Group]:
        """Two groups to try in turn: the updates of the projects whose tests did not fail before those of the
        projects whose tests did, else patch before minor, else halves."""
        failing = {t.project for t in getattr(attempt, "failures", [])}
        suspects = [u for u in group.updates if u.project in failing]
        patches = [u for u in group.updates if u.kind == "patch"]
        if 0 < len(suspects) < len(group.updates):
            halves = [[u for u in group.updates if u not in suspects], suspects]
            names = ["", ""]
        elif 0 < len(patches) < len(group.updates):
            halves, names = [patches, [u for u in group.updates if u.kind != "patch"]], ["patch only: ", ""]
        else:
            middle = (len(group.updates) + 1) // 2
            halves, names = [group.updates[:middle], group.updates[middle:]], ["", ""]
        # if good + first half passes, good + second half is what just failed: no need to try it again
        return [_Group(halves[0], names[0] + ", ".join(u.package for u in halves[0])),
                _Group(halves[1], names[1] + ", ".join(u.package for u in halves[1]),
                       self._ids(self.good + halves[0]), attempt)]

    def next_try(self) -> list[Outdated] | None:
        """The updates to apply and test next (each try starts from the base), or None when done."""
        while self._queue:
            group = self._queue[0]
            if group.known_to_fail_with == self._ids(self.good):
                self._queue.pop(0)
                self._failed(group, group.evidence)
                continue
            if len(self.attempts) >= self.max_tries:
                self.untried += [u for g in self._queue for u in g.updates]
                self._queue = []
                break
            self._current = group
            self.scope = f"try {len(self.attempts) + 1}: " + ("+ " if self.good else "") + group.name
            return self.good + group.updates
        if self.good and not self._final and self.passed is None:
            self._final, self._current = True, None  # leave the work copy with exactly the updates that ship
            self.scope = f"final: the {len(self.good)} updates that passed"
            return list(self.good)
        return None

    def record(self, attempt: Any) -> None:
        """The result of the try next_try gave."""
        self.attempts.append(attempt)
        if self._current is None:
            return
        group, self._current = self._queue.pop(0), None
        if attempt.ok:
            self.good += group.updates
        else:
            self._failed(group, attempt)

    def _failed(self, group: _Group, attempt: Any) -> None:
        if len(group.updates) == 1:
            self.breakers.append((group.updates[0], attempt))
        else:
            self._queue[0:0] = self._split(group, attempt)

    @property
    def passed(self) -> Any:
        """The attempt whose updates ship (its tests passed and it is what the work copy holds), or None."""
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and last.ok and self._ids(last.updates) == self._ids(self.good) else None

    @property
    def held_back(self) -> list[Outdated]:
        return [u for u, _ in self.breakers] + self.untried


def plan_updates(items: list[Outdated], include_minor: bool = True) -> UpdatePlan:
    """The guide's policy: patch (and, after testing, minor) updates apply; majors are planned by a person."""
    apply = [i for i in items if i.action == "apply" and (include_minor or i.kind == "patch")]
    held = [i for i in items if i.action == "apply" and not (include_minor or i.kind == "patch")]
    for item in held:
        item.note = item.note or "minor updates turned off for this run"
    return UpdatePlan(apply, [i for i in items if i.action == "plan"],
                      held + [i for i in items if i.action == "skip"])


def release_notes_url(repository: str | dict | None) -> str | None:
    """The releases page of a GitHub-hosted package, from the repository its registry gives (a URL, an object with
    one, or npm's `owner/name` / `github:owner/name` shorthand)."""
    if isinstance(repository, dict):
        repository = repository.get("url")
    shorthand = re.match(r"^(?:github:)?([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)$", repository or "")
    if shorthand:
        return f"https://github.com/{shorthand[1]}/{shorthand[2]}/releases"
    match = re.search(r"github\.com[/:]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?(?:[/#].*)?$", repository or "")
    return f"https://github.com/{match[1]}/{match[2]}/releases" if match else None


def pypi_release_notes(info: dict[str, Any]) -> str | None:
    """From PyPI's `info`: the project URL named changelog / release notes / changes / history, else the releases page
    of its GitHub source or homepage."""
    urls = {k.lower(): v for k, v in (info.get("project_urls") or {}).items()}
    named = next((v for k, v in urls.items() if any(w in k for w in ("changelog", "release", "changes", "history"))), None)
    return named or release_notes_url(urls.get("source") or urls.get("homepage") or info.get("home_page"))


def fixable_in(outcome: AuditOutcome) -> bool:
    """Whether `npm audit fix` (never --force) has something to do: a finding whose fix is not a major bump."""
    return any(f["fix_available"] and not f["fix_is_major"] for f in outcome.findings)


def update_rows(items: list[Outdated], notes: dict[str, str]) -> list[dict[str, Any]]:
    """package, project, from, to, type and a release-notes link, one row per update."""
    def link(item: Outdated) -> str:
        url = notes.get(f"{item.ecosystem}:{item.package}")
        return f"[release notes]({url})" if url else ""

    return [{"package": i.package, "project": i.project, "from": i.current or "", "to": i.target or "",
             "type": i.kind, "release notes": link(i), "range": i.range_change} for i in items]


def _http(url: str | None) -> bool:
    return bool(url) and url.startswith(("http://", "https://"))


def held_back_reasons(search: Bisection) -> list[tuple[Outdated, str]]:
    """Each update held back and why: the tests it broke, in the try that named it, or too many tries to isolate it."""
    def why(attempt: Any) -> str:
        where = ", ".join(dict.fromkeys(t.project for t in attempt.failures)) if attempt is not None else "?"
        return f"the tests failed in {where} with it ({attempt.scope.split(':')[0] if attempt is not None else ''})"

    return ([(u, why(a)) for u, a in search.breakers]
            + [(u, f"not isolated within {search.max_tries} tries") for u in search.untried])


def held_back_rows(search: Bisection, notes: dict[str, str]) -> list[dict[str, Any]]:
    reasons = held_back_reasons(search)
    return [{**row, "why": why} for row, (_, why) in zip(update_rows([u for u, _ in reasons], notes), reasons)]


def pull_request_body(applied: list[Outdated], planned: list[Outdated], held_back: list[dict[str, Any]],
                      notes: dict[str, str], tests: list[dict[str, Any]], run_url: str | None) -> str:
    """The pull request's description: what changed, what was tested, what needs a person (pure)."""
    parts = ["This pull request updates dependencies under the maintenance guide's policy: patch and minor updates, "
             "tested together, each range kept in the form the repository wrote it; major updates are listed for a "
             "person to plan.", "",
             f"### Updated ({len(applied)})", markdown_table(update_rows(applied, notes), limit=500)]
    if held_back:
        parts += ["", f"### Held back ({len(held_back)}): each one broke the tests when tried", "",
                  markdown_table(held_back, limit=500)]
    if planned:
        parts += ["", f"### Major updates that need a plan ({len(planned)})",
                  markdown_table(update_rows(planned, notes), limit=500)]
    parts += ["", "### Tests", markdown_table(tests, limit=500)]
    parts += ["", "---", "Opened and kept up to date by playground-ops `dependency-update`; a later run updates this "
              "pull request rather than opening another." + (f" [Run]({run_url})" if _http(run_url) else "")]
    return "\n".join(parts)


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
                 "fix_version": v["fixAvailable"].get("version") if isinstance(v.get("fixAvailable"), dict)
                 and v["fixAvailable"].get("name") == name else None,
                 "direct": bool(v.get("isDirect")),
                 "advisories": [advisory_id(a) for a in v.get("via", []) if isinstance(a, dict)],
                 "via": [a for a in v.get("via", []) if isinstance(a, str)],  # reached through these packages
                 "title": "; ".join(dict.fromkeys(a.get("title", "") for a in v.get("via", []) if isinstance(a, dict)))}
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
    findings = [{"package": d["name"], "severity": "unknown", "range": f"=={d.get('version')}",
                 "fix_available": bool(v.get("fix_versions")), "fix_is_major": _fix_is_major(d.get("version"), v),
                 "advisories": [v["id"], *v.get("aliases", [])], "via": [],
                 "title": (v.get("description") or "").split("\n")[0][:160]}
                for d in audited for v in d.get("vulns", [])]
    return AuditOutcome(True, None, findings, len(audited))


def _fix_is_major(version: str | None, vuln: dict) -> bool:
    fixes = vuln.get("fix_versions") or []
    return bool(fixes) and all(classify(version, f, "python") == "major" for f in fixes)


def advisory_id(advisory: dict) -> str:
    """GHSA-xxxx from an npm advisory's URL, else its numeric id."""
    match = re.search(r"(GHSA(?:-[a-z0-9]{4}){3})", advisory.get("url") or "")
    return match[1] if match else str(advisory.get("source") or advisory.get("id") or "")


SEVERITIES = ["info", "low", "moderate", "high", "critical"]


def at_or_above(severity: str, level: str) -> bool:
    """npm's severities in order; pip-audit gives none, and an unknown severity counts as meeting any level."""
    if severity not in SEVERITIES:
        return True
    return SEVERITIES.index(severity) >= SEVERITIES.index(level)


def direct_fixes(outcome: AuditOutcome) -> list[tuple[str, str]]:
    """(package, version) for direct dependencies whose fix is not a major bump: what `npm audit fix` will not do for
    an exact pin ('outside the stated dependency range') and `--force` would, minus the majors."""
    return sorted({(f["package"], f["fix_version"]) for f in outcome.findings
                   if f.get("direct") and f.get("fix_version") and f["fix_available"] and not f["fix_is_major"]})


def vulnerability_rows(audits: dict[str, AuditOutcome]) -> list[dict[str, Any]]:
    """One row per vulnerable package per project, worst first."""
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    rows = [{"project": project, "package": f["package"], "severity": f["severity"] or "unknown",
             "advisories": ", ".join(a for a in f["advisories"] if a) or ("via " + ", ".join(f["via"])),
             "affected": f["range"] or "", "fix": ("major bump" if f["fix_is_major"] else "yes")
             if f["fix_available"] else "none", "title": f.get("title", "")}
            for project, outcome in audits.items() for f in outcome.findings]
    return sorted(rows, key=lambda r: (rank.get(r["severity"], -1), r["project"], r["package"]))
