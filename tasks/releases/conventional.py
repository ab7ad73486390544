"""Releases on paper (pure): conventional commits read, the next semantic version computed from them, the
CHANGELOG.md section written, and the version set in each project's manifest, as release-please does.

Conventional Commits 1.0.0 (https://www.conventionalcommits.org/en/v1.0.0/): `type(scope)!: description`, a
`BREAKING CHANGE:` (or `BREAKING-CHANGE:`) footer; `feat` is a minor release, `fix` and `perf` a patch, a breaking
change a major; every other type is listed but releases nothing by itself; a message that follows no convention is
listed under "Other".
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass

from tasks.dependencies.versioning import parse
from tasks.reporting.report import Report

HEADER = re.compile(r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^()\r\n]+)\))?(?P<bang>!)?: (?P<description>\S.*)$")
BREAKING = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)
SECTIONS = [("breaking", "Breaking changes"), ("feat", "Features"), ("fix", "Bug fixes"), ("perf", "Performance"),
            ("other", "Other")]
TAG = re.compile(r"^v(?P<version>\d+\.\d+\.\d+)$")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    body: str = ""

    @property
    def header(self) -> re.Match | None:
        return HEADER.match(self.subject.strip())

    @property
    def kind(self) -> str:
        """feat, fix, perf, another conventional type (chore, docs, ...), or 'other' for a non-conventional message."""
        return self.header["type"].lower() if self.header else "other"

    @property
    def breaking(self) -> bool:
        return bool(self.header and (self.header["bang"] or BREAKING.search(self.body)))

    @property
    def line(self) -> str:
        """The changelog line: `**scope:** description (abc1234)`."""
        header = self.header
        text = header["description"] if header else self.subject.strip()
        scope = f"**{header['scope']}:** " if header and header["scope"] else ""
        return f"* {scope}{text} ({self.sha[:7]})"


def latest_tag(tags: list[str]) -> str | None:
    """The highest `vX.Y.Z` tag by semantic-version order (other tags are not releases)."""
    versions = [(parse(m["version"], "npm").order, t) for t in tags if (m := TAG.match(t))]
    return max(versions)[1] if versions else None


def bump(commits: list[Commit]) -> str | None:
    """major, minor or patch from the commits, or None when none of them releases anything."""
    if any(c.breaking for c in commits):
        return "major"
    if any(c.kind == "feat" for c in commits):
        return "minor"
    if any(c.kind in ("fix", "perf") for c in commits):
        return "patch"
    return None


def next_version(last_tag: str | None, commits: list[Commit], first: str = "0.1.0") -> str | None:
    """The version to release: the first one when there is no tag yet, else the last tag bumped; None when nothing
    since it releases anything."""
    level = bump(commits)
    if last_tag is None:
        return first if commits else None
    if level is None:
        return None
    major, minor, patch = (int(p) for p in last_tag.removeprefix("v").split("."))
    return {"major": f"{major + 1}.0.0", "minor": f"{major}.{minor + 1}.0", "patch": f"{major}.{minor}.{patch + 1}"}[level]


def changelog_section(version: str, day: str, commits: list[Commit], compare_url: str | None = None) -> str:
    """The new section of CHANGELOG.md, newest first as keepachangelog and release-please write it."""
    title = f"[{version}]({compare_url})" if compare_url else version
    parts = [f"## {title} ({day})"]
    for key, heading in SECTIONS:
        lines = [c.line for c in commits if (c.breaking if key == "breaking" else
                                            (not c.breaking and c.kind == key) if key != "other" else
                                            (not c.breaking and c.kind not in ("feat", "fix", "perf")))]
        if lines:
            parts += ["", f"### {heading}", "", *lines]
    return "\n".join(parts) + "\n"


def add_to_changelog(existing: str | None, section: str) -> str:
    """CHANGELOG.md with the new section on top, under the file's title (one is written when there is none)."""
    if not existing or not existing.strip():
        return f"# Changelog\n\n{section}"
    if existing.startswith("# "):
        title, _, rest = existing.partition("\n")
        return f"{title}\n\n{section}\n{rest.lstrip(chr(10))}"
    return f"{section}\n{existing}"


def set_package_version(text: str, version: str) -> str:
    """package.json with its top-level "version" set, every other byte kept."""
    data = json.loads(text)
    if "version" not in data:
        raise ValueError("package.json: expected a top-level \"version\"")
    match = re.search(r'^(\s*"version"\s*:\s*)"[^"]*"', text, re.MULTILINE)
    if match is None:
        raise ValueError("package.json: expected \"version\" on a line of its own")
    return text[:match.start()] + match[1] + json.dumps(version) + text[match.end():]


def set_pyproject_version(text: str, version: str) -> str:
    """pyproject.toml with `[project] version` set, every other byte kept."""
    if "version" not in tomllib.loads(text).get("project", {}):
        raise ValueError("pyproject.toml: expected a static `version` in [project]")
    project = re.search(r"^\[project\]\s*$", text, re.MULTILINE)
    following = re.compile(r"^version\s*=\s*([\"'])[^\"']*\1", re.MULTILINE)
    match = following.search(text, project.end()) if project else None
    if match is None:
        raise ValueError("pyproject.toml: expected `version = \"...\"` under [project]")
    return text[:match.start()] + f'version = "{version}"' + text[match.end():]


SECTION_HEADING = re.compile(r"^## \[?v?(?P<version>\d+\.\d+\.\d+)\]?", re.MULTILINE)


def newest_section(changelog: str | None) -> str | None:
    """The version of CHANGELOG.md's newest section (its first `## X.Y.Z` or `## [X.Y.Z](...)` heading)."""
    match = SECTION_HEADING.search(changelog or "")
    return match["version"] if match else None


def section_of(changelog: str, version: str) -> str:
    """The body of the changelog's section for version (what the GitHub release says)."""
    headings = list(SECTION_HEADING.finditer(changelog))
    for i, heading in enumerate(headings):
        if heading["version"] == version:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(changelog)
            return changelog[heading.end():end].split("\n", 1)[-1].strip() + "\n"
    raise ValueError(f"CHANGELOG.md: expected a section for {version}")


@dataclass
class ReleasePlan:
    """What release will do: tag a merged release, propose the next one, or nothing."""
    action: str                  # "tag" | "propose" | "nothing"
    version: str | None
    last_tag: str | None
    commits: list[Commit]
    reason: str
    commit: str | None = None    # what the tag points at


def plan_release(tags: list[str], commits: list[Commit], changelog: str | None, changelog_commit: str | None,
                 head: str, tag_now: bool, first: str = "0.1.0") -> ReleasePlan:
    """release-please's cycle: a base branch whose CHANGELOG.md's newest section is a version above the last tag and
    not tagged yet holds a merged release, which is tagged (at the commit that wrote that section); otherwise the
    commits since the last tag give the next version, proposed as a pull request (or, with tag_now, tagged on the
    base's head at once). A version whose tag exists is refused."""
    last = latest_tag(tags)
    written = newest_section(changelog)
    last_version = parse(last.removeprefix("v"), "npm") if last else None
    if written and f"v{written}" not in tags and (last_version is None or parse(written, "npm").order > last_version.order):
        return ReleasePlan("tag", written, last, commits, f"the base branch holds the merged release {written}",
                           changelog_commit)
    version = next_version(last, commits, first)
    if version is None:
        return ReleasePlan("nothing", None, last, commits, f"no commit since {last or 'the start'} releases anything"
                           if commits else f"no commit since {last}")
    if f"v{version}" in tags:
        raise ValueError(f"tag v{version} already exists: expected the next version to be unreleased")
    if tag_now:
        return ReleasePlan("tag", version, last, commits, "tag_now: the base branch's head is tagged at once", head)
    return ReleasePlan("propose", version, last, commits, f"{bump(commits) or 'first'} release from "
                                                          f"{len(commits)} commits since {last or 'the start'}")


def release_report(target: str, plan: ReleasePlan, section: str | None, dry_run: bool) -> Report:
    """What release found and will do (pure); the runbook adds the pull request or the tag it made."""
    report = Report(runbook="release", target=target, summary=plan.reason, tables={
        "commits": [{"commit": c.sha[:12], "type": c.kind, "breaking": c.breaking, "subject": c.subject}
                    for c in plan.commits]},
        figures={"last_tag": plan.last_tag or "", "version": plan.version or "", "action": plan.action,
                 "bump": bump(plan.commits) or "", "dry_run": dry_run})
    if section:
        report.documents["Changelog"] = section
    others = [c for c in plan.commits if c.kind == "other"]
    if others:
        report.add("info", f"{len(others)} commits follow no convention; listed under Other: "
                           + ", ".join(c.subject[:60] for c in others[:5]),
                   next_step="Write commit messages as `type(scope): description` (feat, fix, ...).")
    if dry_run and plan.action != "nothing":
        report.summary += f"; dry run: would {'tag' if plan.action == 'tag' else 'propose'} v{plan.version}"
    return report
