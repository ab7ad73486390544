"""Releases on paper: conventional commits, the next version, the changelog and the manifests' versions."""

from __future__ import annotations

import pytest

from tasks.releases.conventional import (Commit, add_to_changelog, bump, changelog_section, latest_tag, next_version,
                                         plan_release, section_of, set_package_version, set_pyproject_version)


def c(subject: str, body: str = "", sha: str = "0123456789abcdef") -> Commit:
    return Commit(sha, subject, body)


@pytest.mark.parametrize("subjects, body, expected", [
    (["fix: off by one"], "", "1.2.4"),
    (["perf(db): index requests"], "", "1.2.4"),
    (["feat(api): quotas per model", "fix: off by one"], "", "1.3.0"),
    (["feat!: drop the v1 API"], "", "2.0.0"),
    (["refactor(auth)!: tokens are JWTs"], "", "2.0.0"),               # any type with ! is breaking
    (["docs: say how"], "BREAKING CHANGE: the env var is renamed", "2.0.0"),
    (["docs: say how", "chore: tidy", "Merge branch 'x'"], "", None),    # nothing that releases
    (["feature: not a type", "Fix the thing"], "", None),
])
def test_the_next_version_follows_the_commits(subjects, body, expected):
    commits = [c(s, body if i == 0 else "") for i, s in enumerate(subjects)]
    assert next_version("v1.2.3", commits) == expected


def test_the_first_release_and_tags_that_are_not_releases():
    assert next_version(None, [c("chore: initial")]) == "0.1.0" and next_version(None, []) is None
    assert latest_tag(["v1.9.0", "v1.10.0", "v2.0.0-rc.1", "release-3", "1.11.0"]) == "v1.10.0"
    assert bump([c("feat: x"), c("fix: y")]) == "minor"


def test_the_changelog_section_groups_by_kind_and_lists_what_follows_no_convention():
    section = changelog_section("2.0.0", "2026-11-30", [c("feat(api): quotas", sha="aaaaaaa1"),
                                                        c("fix: off by one", sha="bbbbbbb2"),
                                                        c("feat!: drop v1", sha="ccccccc3"),
                                                        c("Update README.md", sha="ddddddd4")])
    assert section == ("## 2.0.0 (2026-11-30)\n\n### Breaking changes\n\n* drop v1 (ccccccc)\n\n### Features\n\n"
                       "* **api:** quotas (aaaaaaa)\n\n### Bug fixes\n\n* off by one (bbbbbbb)\n\n### Other\n\n"
                       "* Update README.md (ddddddd)\n")
    changelog = add_to_changelog("# Changelog\n\n## 1.2.0 (2026-10-01)\n\n* old\n", section)
    assert changelog.startswith("# Changelog\n\n## 2.0.0") and changelog.endswith("## 1.2.0 (2026-10-01)\n\n* old\n")
    assert section_of(changelog, "1.2.0") == "* old\n" and "drop v1" in section_of(changelog, "2.0.0")
    assert add_to_changelog(None, section).startswith("# Changelog\n\n## 2.0.0")


def test_manifest_versions_are_set_and_every_other_byte_kept():
    package = '{\n  "name": "playground-backend",\n  "version": "1.0.0",\n  "private": true\n}\n'
    assert set_package_version(package, "2.0.0") == package.replace("1.0.0", "2.0.0")
    pyproject = '[tool.x]\nversion = "9"\n\n[project]\nname = "w"\nversion = "0.1.0"\n'
    assert set_pyproject_version(pyproject, "2.0.0") == pyproject.replace("0.1.0", "2.0.0")
    with pytest.raises(ValueError, match="package.json: expected a top-level \"version\""):
        set_package_version('{"name": "x"}', "1.0.0")


def test_a_merged_release_is_tagged_where_its_changelog_was_written_and_an_existing_tag_is_refused():
    changelog = "# Changelog\n\n## 1.3.0 (2026-11-30)\n\n* **api:** quotas (aaaaaaa)\n"
    merged = plan_release(["v1.2.0"], [c("chore: release 1.3.0"), c("feat(api): quotas")], changelog, "f00d", "beef",
                          tag_now=False)
    assert (merged.action, merged.version, merged.commit) == ("tag", "1.3.0", "f00d")
    proposed = plan_release(["v1.3.0"], [c("fix: y")], changelog, "f00d", "beef", tag_now=False)
    assert (proposed.action, proposed.version) == ("propose", "1.3.1")
    now = plan_release(["v1.3.0"], [c("fix: y")], changelog, "f00d", "beef", tag_now=True)
    assert (now.action, now.version, now.commit) == ("tag", "1.3.1", "beef")
    assert plan_release(["v1.3.0"], [c("docs: y")], changelog, "f00d", "beef", False).action == "nothing"
    retagged = plan_release(["v1.2.0", "v1.3.0"], [], changelog, "f00d", "beef", tag_now=False)
    assert retagged.action == "nothing"  # a release already tagged is never tagged again
