"""release end to end: real git (tags, a squash merge by a maintainer), the sandbox's GitHub stand-in (pull requests,
releases), the session's Prefect server."""

from __future__ import annotations

import json

import httpx
import pytest

from tasks.dependencies.git_repo import git
from tests.flows.test_dependency_runbooks import make_repo, pulls, push_commit, show  # noqa: F401 (a fixture)


@pytest.fixture
def released(tmp_path, monkeypatch, pulls):  # noqa: F811
    """The sandbox's application, released as v1.2.0, with three commits since: a feature, a fix, and a message
    that follows no convention."""
    bare = make_repo(tmp_path)
    git("tag", "-a", "v1.2.0", "-m", "Release version 1.2.0", "main", cwd=bare)
    push_commit(bare, "main", {"backend/quota.js": "module.exports = 5;\n"}, "feat(api): quotas per model")
    push_commit(bare, "main", {"backend/quota.js": "module.exports = 6;\n"}, "fix: off-by-one in the quota window")
    push_commit(bare, "main", {"README.md": "# AI API Playground\n"}, "Update README.md")
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    return bare


def test_a_release_is_proposed_merged_tagged_and_published(released, pulls):  # noqa: F811
    from flows.release import release

    dry = release(dry_run=True)
    assert dry.figures["version"] == "1.3.0" and dry.figures["last_tag"] == "v1.2.0" and dry.figures["bump"] == "minor"
    assert "dry run: would propose v1.3.0" in dry.summary and pulls.all() == []
    assert git("branch", "--list", "release-next", cwd=released) == ""
    assert "* **api:** quotas per model (" in dry.documents["Changelog"]
    assert any("follow no convention" in f.message and "Update README.md" in f.message for f in dry.findings)

    proposed = release()
    [pr] = pulls.all()
    assert pr["title"] == "chore: release 1.3.0" and pr["head"]["ref"] == "release-next"
    assert [label["name"] for label in pr["labels"]] == ["release"]
    changelog = show(released, "release-next", "CHANGELOG.md")
    assert changelog.startswith("# Changelog\n\n## 1.3.0 (") and "### Bug fixes\n\n* off-by-one in the quota window (" \
        in changelog and "### Other\n\n* Update README.md (" in changelog
    versions = {path: json.loads(show(released, "release-next", path))["version"]
                for path in ("package.json", "backend/package.json", "frontend/package.json")}
    assert versions == {"package.json": "1.3.0", "backend/package.json": "1.3.0", "frontend/package.json": "1.3.0"}
    assert proposed.figures["pull_request"] == pr["number"]

    merge = push_commit(released, "main", {}, f"chore: release 1.3.0 (#{pr['number']})", squash="release-next")
    tagged = release()
    assert tagged.figures["tag"] == "v1.3.0" and tagged.figures["commit"] == merge
    assert git("cat-file", "-t", "v1.3.0", cwd=released) == "tag"  # annotated
    assert git("tag", "-l", "--format=%(contents:subject)", "v1.3.0", cwd=released) == "Release version 1.3.0"
    assert git("rev-parse", "v1.3.0^{commit}", cwd=released) == merge
    published = httpx.get(f"{pulls.base}/releases/tags/v1.3.0", headers=pulls.headers).json()
    assert published["name"] == "v1.3.0" and "quotas per model" in published["body"]

    again = release()
    assert again.figures["action"] == "nothing" and "tag" not in again.figures  # never tagged twice

    push_commit(released, "main", {"backend/quota.js": "module.exports = {};\n"}, "feat!: quotas are per model only")
    breaking = release(tag_now=True)
    assert breaking.figures["tag"] == "v2.0.0" and breaking.figures["bump"] == "major"
    assert git("rev-parse", "v2.0.0^{commit}", cwd=released) == git("rev-parse", "main", cwd=released)


def test_a_repository_without_tags_gets_its_first_release(tmp_path, monkeypatch, pulls):  # noqa: F811
    from flows.release import release

    monkeypatch.setenv("OPS_REPO_URL", str(make_repo(tmp_path)))
    first = release(dry_run=True)
    # its manifests say 1.0.0: the first release is that version, never a step back to 0.1.0
    assert first.figures["version"] == "1.0.0" and first.figures["last_tag"] == ""
