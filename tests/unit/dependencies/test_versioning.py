"""Versions by each ecosystem's own rules: tables of real version strings, each answer taken from the specification
(npm's semver, PEP 440, PEP 508); npm's answers are also checked against the `semver` package npm itself ships."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tasks.dependencies.policy import POLICY
from tasks.dependencies.versioning import (classify, keep_range_form, newest_within, read_requirement_pins,
                                           read_requirements, requirement_name, rewrite_package_json,
                                           rewrite_requirements, satisfies, widen_peer_range, written_ranges)

NPM = [  # (current, target, kind)
    ("1.2.3", "1.2.4", "patch"),
    ("1.2.3", "1.3.0", "minor"),
    ("1.2.3", "2.0.0", "major"),
    ("0.3.1", "0.3.2", "patch"),
    ("0.3.1", "0.4.0", "major"),           # 0.x: the minor is the major
    ("0.0.3", "0.0.4", "major"),           # 0.0.x: every bump may break
    ("1.2.3-rc.1", "1.2.3", "patch"),      # a prerelease's own release
    ("1.0.0-alpha.9", "1.0.0-alpha.10", "prerelease"),  # numeric identifiers compare as numbers: 9 < 10
    ("1.0.0-alpha.10", "1.0.0-alpha.9", "downgrade"),
    ("1.0.0-alpha", "1.0.0-alpha.1", "prerelease"),
    ("1.0.0-alpha.beta", "1.0.0-beta", "prerelease"),
    ("1.2.3", "1.3.0-beta.1", "prerelease"),  # never a routine update
    ("1.2.3", "1.2.3+build.5", "none"),    # build metadata has no precedence in semver
    ("1.2.3", "1.2.3", "none"),
    ("2.0.0", "1.9.9", "downgrade"),
    ("git", "1.0.0", "unknown"),
    (None, "1.0.0", "unknown"),
    ("1.2", "1.3.0", "unknown"),           # not a full semver: npm does not read it as one
    ("^1.2.0", "1.3.0", "unknown"),        # a range, not a version
]

PYTHON = [
    ("1.0", "1.0.post1", "patch"),         # a post-release counts as a patch
    ("1.0.post1", "1.0.post2", "patch"),
    ("1!0.5", "1!0.5.1", "patch"),         # an epoch, kept
    ("0.5", "1!0.5", "major"),             # a new epoch restarts the numbering
    ("1!2.0", "2.0", "downgrade"),         # epoch 0 sorts below epoch 1
    ("2.0.0", "2.0.0+cu118", "local"),     # a local version is not an update
    ("2.0.0+cu118", "2.0.0+cu121", "local"),  # another build of the same public version
    ("2.0.0+cu118", "2.1.0+cu118", "minor"),  # a new public version, built the same way
    ("1.0rc1", "1.0", "patch"),
    ("1.0", "1.1b2", "prerelease"),
    ("1.0", "1.1.dev0", "prerelease"),     # a developmental release is a prerelease
    ("1.1a1", "1.1", "patch"),             # the release of the prerelease it had
    ("3.6", "3.20", "minor"),              # 20 > 6, as numbers
    ("1.15.0", "2.0", "major"),
    ("1.2.3.4", "1.2.3.5", "patch"),       # a fourth part
    ("0.3.1", "0.4", "major"),
    ("0.0.3", "0.0.4", "major"),
    ("1.0.0", "1.0", "none"),              # PEP 440: trailing zeros are equal
    ("v1.0", "1.0.1", "patch"),            # a leading v is allowed
    ("1.0", "1.0-1", "patch"),             # the implicit post-release spelling
    ("latest", "1.0", "unknown"),
]


@pytest.mark.parametrize("current, target, kind", NPM)
def test_npm_versions_by_npms_semver_rules(current, target, kind):
    assert classify(current, target, "npm") == kind


@pytest.mark.parametrize("current, target, kind", PYTHON)
def test_python_versions_by_pep_440(current, target, kind):
    assert classify(current, target, "python") == kind


def test_only_patch_and_minor_apply_and_what_is_not_an_update_is_skipped():
    assert {k: POLICY[k] for k in ("patch", "minor", "major", "prerelease", "local", "downgrade", "none")} == {
        "patch": "apply", "minor": "apply", "major": "plan", "prerelease": "skip", "local": "skip",
        "downgrade": "skip", "none": "skip"}


def test_newest_within_keeps_to_the_routine_range_of_each_ecosystem():
    npm = ["1.2.4", "1.9.0", "2.0.0", "1.10.0-beta.1", "1.10.0"]
    assert newest_within("1.2.3", npm, "npm") == "1.10.0"  # 1.10.0 > 1.9.0 as numbers; the beta never
    assert newest_within("0.3.1", ["0.3.5", "0.4.0", "0.3.6-rc.1"], "npm") == "0.3.5"  # ^0.3.1 stops at 0.4.0
    assert newest_within("0.0.3", ["0.0.4"], "npm") is None  # ^0.0.3 is 0.0.3 alone
    python = ["1.4.0", "1.10.0", "2.0", "1.11.0rc1", "1.10.0+local", "1.10.0.post1"]
    assert newest_within("1.2", python, "python") == "1.10.0.post1"
    assert newest_within("1!1.0", ["1!1.5", "1!2.0", "1.9"], "python") == "1!1.5"
    assert newest_within("0.3.1", ["0.3.9", "0.4.0"], "python") == "0.3.9"


@pytest.mark.parametrize("version, spec, expected", [
    ("1.2.3", "^1.2.0", True), ("2.0.0", "^1.2.0", False),
    ("0.2.5", "^0.2.3", True), ("0.3.0", "^0.2.3", False),   # caret on 0.x
    ("0.0.4", "^0.0.3", False),                               # caret on 0.0.x
    ("1.2.9", "~1.2.3", True), ("1.3.0", "~1.2.3", False),
    ("1.3.0-beta.1", "^1.2.0", False),                        # a prerelease only where the range names one
    ("1.2.4-beta.1", ">=1.2.4-beta.0 <2", True),
    ("1.5.0", "1.x", True), ("1.5.0", ">=1.0.0 <1.5.0", False),
    ("1.5.0", "1.0.0 - 1.5.0", True),
])
def test_npm_ranges(version, spec, expected):
    assert satisfies(version, spec, "npm") is expected


@pytest.mark.parametrize("version, spec, expected", [
    ("1.4.5", "~=1.4.2", True), ("1.5.0", "~=1.4.2", False), ("1.9", "~=1.4", True), ("2.0", "~=1.4", False),
    ("2.5", ">=2,<3", True), ("3.0", ">=2,<3", False), ("3.0rc1", ">=2,<3", False),
    ("1.0.7", "==1.0.*", True), ("1.1", "==1.0.*", False),
    ("2.0.0+cu118", "==2.0.0", True),                         # a specifier without a local part matches any local
    ("1!1.0", ">=2", True),                                   # the epoch sorts first
])
def test_python_specifiers(version, spec, expected):
    assert satisfies(version, spec, "python") is expected


def test_requirement_lines_with_extras_markers_wildcards_and_options():
    text = ("# app\n"
            "six==1.15.0\n"
            "IDNA[all] == 3.6 ; python_version>'3'  # pinned\n"
            "requests>=2,<3\n"
            "Django~=4.2.1\n"
            "urllib3==1.26.*\n"
            "zope.interface==6.0 \\\n"
            "    --hash=sha256:0123\n"
            "-r base.txt\n"
            "pkg @ https://example.org/pkg-1.0.tar.gz\n"
            "torch==2.0.0+cu118\n"
            "Foo_Bar.baz===1.0\n")
    assert read_requirement_pins(text) == {"six": "1.15.0", "idna": "3.6", "zope-interface": "6.0",
                                           "torch": "2.0.0+cu118"}
    assert read_requirements(text)["requests"] == ">=2,<3" and read_requirements(text)["idna"] == "== 3.6"
    assert read_requirements(text)["django"] == "~=4.2.1" and "pkg" not in read_requirements(text)
    moved = rewrite_requirements(text, {"idna": "== 3.10", "zope-interface": "==6.1", "django": "~=4.3.0"})
    assert moved == (text.replace("== 3.6 ;", "== 3.10 ;").replace("zope.interface==6.0", "zope.interface==6.1")
                     .replace("Django~=4.2.1", "Django~=4.3.0"))
    assert requirement_name("Foo_Bar.baz[x]>=1; sys_platform == 'linux'") == "foo-bar-baz"
    assert requirement_name("not a requirement!") is None


def test_an_unknown_ecosystem_is_refused_naming_the_expected_ones():
    with pytest.raises(ValueError, match=r"ecosystem: expected one of npm, python, got 'maven'"):
        classify("1.0", "1.1", "maven")


def _npm_semver() -> str | None:
    """The semver package of the npm on this machine (npm ships it), for node to require."""
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip()
    return f"{root}/npm/node_modules/semver"


def test_npm_answers_agree_with_the_semver_package_npm_ships():
    """Order, validity and ranges of the tables above, asked of npm's own semver through node."""
    semver = _npm_semver()
    if semver is None:
        pytest.skip("node and npm are not installed here: npm's own semver cannot be asked")
    script = ("const s = require(process.argv[1]); const cases = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(cases.map(([a, b, r]) => [s.valid(a), s.valid(b),"
              " s.valid(a) && s.valid(b) ? s.compare(a, b) : null, r ? s.satisfies(b, r) : null])))")
    pairs = [[a or "", b, None] for a, b, _ in NPM]
    ranges = [["", v, r] for v, r, _ in test_npm_ranges.pytestmark[0].args[1]]
    answers = json.loads(subprocess.run(["node", "-e", script, semver, json.dumps(pairs + ranges)],
                                        capture_output=True, text=True, check=True).stdout)
    for (current, target, kind), (va, vb, cmp, _) in zip(NPM, answers):
        if va is None or vb is None:
            assert kind == "unknown", (current, target)
        elif cmp == 0:
            assert kind == "none", (current, target)
        elif cmp > 0:
            assert kind == "downgrade", (current, target)
        else:
            assert kind not in ("none", "downgrade", "unknown"), (current, target)
    for (version, spec, expected), (*_, ok) in zip(test_npm_ranges.pytestmark[0].args[1], answers[len(pairs):]):
        assert ok is expected and satisfies(version, spec, "npm") is ok, (version, spec)


@pytest.mark.parametrize("spec, new, ecosystem, expected", [
    ("~2.3.0", "2.4.2", "npm", "~2.4.2"), ("^1.2.0", "1.3.0", "npm", "^1.3.0"),
    ("^1.2", "1.3.0", "npm", "^1.3"),                 # the precision written is kept
    ("2.6.8", "2.6.9", "npm", "2.6.9"),               # an exact pin stays exact
    ("=1.0.0", "1.0.1", "npm", "=1.0.1"), ("v1.2.3", "1.2.4", "npm", "v1.2.4"),
    ("~1.2", "1.2.5", "npm", "~1.2"),                 # already admits it: only the lock file moves
    (">=1.1.0 <3", "1.1.2", "npm", ">=1.1.0 <3"), ("1.x", "1.5.0", "npm", "1.x"), ("1.2", "1.2.5", "npm", "1.2"),
    (">=1.1.0 <1.1.2", "1.1.2", "npm", None),         # a compound range that excludes it: a person widens it
    ("==1.15.0", "1.17.0", "python", "==1.17.0"), ("== 3.6", "3.10", "python", "== 3.10"),
    ("~=3.1.0", "3.5.3", "python", "~=3.5.3"), ("~=1.4", "1.9", "python", "~=1.4"),
    (">=3.0", "3.20", "python", ">=3.0"), (">=2,<3", "3.1", "python", None), ("==1.0.*", "1.1", "python", None),
])
def test_ranges_are_kept_in_the_form_the_repository_wrote(spec, new, ecosystem, expected):
    assert keep_range_form(spec, new, ecosystem) == expected
    if expected:
        assert satisfies(new, expected, ecosystem)


def test_a_peer_range_is_widened_never_narrowed():
    assert widen_peer_range("^4.17.0", "4.18.2") == "^4.17.0"
    assert widen_peer_range("~4.17.0", "4.18.2") == "~4.17.0 || ~4.18.2"
    assert satisfies("4.17.1", widen_peer_range("~4.17.0", "4.18.2"), "npm")


PACKAGE_JSON = """{
  "name": "mw",
  "scripts": {"test": "node -e \\"require('ms')\\""},
  "files": ["index.js", {"dependencies": "not a section"}],
  "dependencies": {
    "ms": "^2.0.0",
    "on-finished":"~2.3.0"
  },
  "devDependencies": { "escape-html": "1.0.2", "mocha": "10.2.0" },
  "peerDependencies": { "ms": "^2.0.0" }
}
"""


def test_package_json_ranges_are_rewritten_in_their_section_and_every_other_byte_kept():
    out = rewrite_package_json(PACKAGE_JSON, {"dependencies": {"ms": "^2.1.3", "on-finished": "~2.4.2"},
                                              "devDependencies": {"escape-html": "1.0.3"}})
    assert out == (PACKAGE_JSON.replace('"ms": "^2.0.0",', '"ms": "^2.1.3",')
                   .replace('"on-finished":"~2.3.0"', '"on-finished":"~2.4.2"').replace('"1.0.2"', '"1.0.3"'))
    assert json.loads(out)["peerDependencies"] == {"ms": "^2.0.0"}  # peers only when asked
    assert written_ranges(out)["ms"] == ("dependencies", "^2.1.3")
    with pytest.raises(ValueError, match="package.json: expected left-pad in dependencies"):
        rewrite_package_json(PACKAGE_JSON, {"dependencies": {"left-pad": "1.3.0"}})


@pytest.mark.parametrize("current, target, kind", [
    ("1.2.3", "1.2.4+cu118", "local"),        # onto a local build: never a routine update
    ("2.0.1+cu118", "2.0.2", "local"),        # off a local build (CUDA to the public wheel): never routine either
    ("2.0.1+cu118", "2.2.0+cu121", "local"),  # another build flavour
    ("2.0.1+cu118", "2.1.0+cu118", "minor"),  # the same flavour, a new public version
])
def test_local_versions_are_never_a_routine_move_between_builds(current, target, kind):
    assert classify(current, target, "python") == kind


def test_a_locally_versioned_pin_with_a_newer_major_is_planned_not_a_crash():
    versions = ["2.0.2", "2.1.0+cu118", "3.0.0+cu118", "2.2.0+cu121"]
    assert newest_within("2.0.1+cu118", versions, "python") == "2.1.0+cu118"
    assert classify("2.0.1+cu118", "3.0.0+cu118", "python") == "major"


@pytest.mark.parametrize("spec, new, expected", [
    ("npm:debug@~2.6.0", "2.6.9", "npm:debug@~2.6.9"),           # an alias: its package's range, in its own form
    ("npm:@scope/pkg@^1.0.0", "1.4.0", "npm:@scope/pkg@^1.4.0"),
    ("1.2", "1.3.0", "1.3"),                                     # npm's x-range 1.2.x, moved at its precision
    ("1.2", "1.2.5", "1.2"),                                     # it admits 1.2.5 already: only the lock moves
])
def test_npm_aliases_and_bare_x_ranges_are_bumped_as_npm_reads_them(spec, new, expected):
    assert keep_range_form(spec, new, "npm") == expected
    assert satisfies(new, expected.split("@")[-1], "npm")
