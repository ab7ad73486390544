"""The release's git side, driven for real in the work copy the runbook owns: tags and commits since the last one,
the release files written on the release branch, the annotated tag pushed."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from playground_ops.settings import Repository
from tasks.dependencies.git_repo import git, start_branch
from tasks.dependencies.steps import code_host
from tasks.releases.conventional import (Commit, add_to_changelog, latest_tag, set_package_version,
                                         set_pyproject_version)
from tasks.retry import PermanentError, retrying

FIELD, RECORD = "\x1f", "\x1e"


@task(**retrying(retries=2, backoff=2, timeout_seconds=300))
def read_release_history(repo: Repository, workdir: Path, last_tag_hint: str | None = None) -> dict:
    """The remote's tags, the commits on the base since the last release tag (all of them when there is none),
    CHANGELOG.md as the base has it and the commit that last changed it, and the base's head."""
    work = workdir / "repo"
    git("fetch", "--quiet", "--tags", "--force", "--prune-tags", "origin", cwd=work)
    tags = [t for t in git("tag", "--list", cwd=work).splitlines() if t]
    last = latest_tag(tags)
    base = f"origin/{repo.base}"
    span = f"{last}..{base}" if last else base
    log = git("log", f"--format=%H{FIELD}%s{FIELD}%b{RECORD}", span, cwd=work)
    commits = [Commit(*(part.strip() for part in entry.split(FIELD))) for entry in log.split(RECORD) if entry.strip()]
    changelog = work / "CHANGELOG.md"
    return {"tags": tags, "commits": commits, "head": git("rev-parse", base, cwd=work),
            "manifest_version": manifest_version(work, base, ["."] + [p.path for p in repo.projects]),
            "changelog": changelog.read_text() if changelog.exists() else None,
            "changelog_commit": git("log", "-1", "--format=%H", base, "--", "CHANGELOG.md", cwd=work) or None}


def manifest_version(work: Path, base: str, folders: list[str]) -> str | None:
    """The version the base's manifests carry (the root's first, then each project's; package.json, then
    pyproject.toml), when it is a plain X.Y.Z: where a repository without tags starts its releases."""
    import json
    import re
    import subprocess
    import tomllib

    for folder in dict.fromkeys(folders):
        for name in ("package.json", "pyproject.toml"):
            path = name if folder in (".", "") else f"{folder.strip('/')}/{name}"
            shown = subprocess.run(["git", "show", f"{base}:{path}"], cwd=work, capture_output=True, text=True)
            if shown.returncode != 0:
                continue
            try:
                data = json.loads(shown.stdout) if name == "package.json" else tomllib.loads(shown.stdout).get("project", {})
            except ValueError:
                continue
            version = data.get("version") if isinstance(data, dict) else None
            if isinstance(version, str) and re.fullmatch(r"\d+\.\d+\.\d+", version):
                return version
    return None


@task(**retrying(retries=0, timeout_seconds=300))
def write_release_files(repo: Repository, workdir: Path, branch: str, version: str, section: str) -> list[str]:
    """On the release branch, afresh from the base: the new CHANGELOG.md section and the version in the root's and
    every project's manifest (package.json, pyproject.toml where it states one). Returns the files changed."""
    work = workdir / "repo"
    start_branch(work, branch, repo.base)
    changelog = work / "CHANGELOG.md"
    changelog.write_text(add_to_changelog(changelog.read_text() if changelog.exists() else None, section))
    changed = ["CHANGELOG.md"]
    folders = dict.fromkeys(["."] + [p.path for p in repo.projects])
    for folder in folders:
        for name, setter in (("package.json", set_package_version), ("pyproject.toml", set_pyproject_version)):
            manifest = work / folder / name
            if not manifest.exists():
                continue
            try:
                manifest.write_text(setter(manifest.read_text(), version))
            except ValueError:
                continue  # a manifest without a version of its own (a private root, a dynamic version)
            changed.append(str(Path(folder) / name) if folder != "." else name)
    return changed


@task(**retrying(retries=0, timeout_seconds=120))
def push_release_tag(workdir: Path, version: str, commit: str) -> str:
    """The annotated tag `vX.Y.Z` ("Release version X.Y.Z", as the guide writes it) on commit, pushed; a tag that
    already exists on the remote is refused, never moved."""
    work, tag = workdir / "repo", f"v{version}"
    if git("ls-remote", "--tags", "origin", f"refs/tags/{tag}", cwd=work):
        raise PermanentError(f"tag {tag} already exists on the remote: expected an unreleased version")
    git("-c", "user.name=playground-ops", "-c", "user.email=ops@playground.invalid", "tag", "--force", "-a", tag,
        "-m", f"Release version {version}", commit, cwd=work)  # --force: a local tag an earlier failed try left
    git("push", "--quiet", "origin", f"refs/tags/{tag}", cwd=work)
    return tag


@task(**retrying(retries=3, backoff=2, timeout_seconds=60))
def publish_github_release(repo: Repository, tag: str, version: str, notes: str, commit: str) -> dict:
    """The code host's release of the tag, with the changelog section as its notes (found first: safe to repeat)."""
    host = code_host(repo)
    return host.find_release(tag) or host.create_release(tag, f"v{version}", notes, commit)
