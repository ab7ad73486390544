"""Semantic-version classification and the reading of npm's and pip-audit's real outputs (recorded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.dependency_policy import classify, judge_npm_audit, judge_pip_audit, parse_npm_outdated

RECORDED = Path(__file__).parent / "fixtures" / "recorded"


@pytest.mark.parametrize("current, target, kind", [
    ("1.2.3", "1.2.4", "patch"),
    ("1.2.3", "1.3.0", "minor"),
    ("1.2.3", "2.0.0", "major"),
    ("0.3.1", "0.3.2", "patch"),
    ("0.3.1", "0.4.0", "major"),      # 0.x minor bumps may break
    ("0.0.3", "0.0.4", "major"),      # 0.0.x: every bump may break
    ("1.2.3", "1.3.0-beta.1", "major"),  # a prerelease is never a routine update
    ("2.0.0-rc.1", "2.0.0", "patch"),
    ("1.2.3", "1.2.3", "none"),
    ("git", "1.0.0", "unknown"),
    (None, "1.0.0", "unknown"),
    ("v1.0.0", "v1.0.1", "patch"),
])
def test_classification(current, target, kind):
    assert classify(current, target) == kind


def test_recorded_npm_outdated_is_classified_with_the_guides_policy():
    items = {o.package: o for o in parse_npm_outdated((RECORDED / "npm-outdated.json").read_text(), "backend")}
    assert items["ms"].kind == "minor" and items["ms"].action == "apply" and items["ms"].wanted == "2.1.3"
    assert items["minimist"].kind == "patch" and items["minimist"].wanted == "1.2.8"
    assert items["debug"].kind == "major" and items["debug"].action == "plan"
    assert items["semver"].kind == "major"


def test_npm_outdated_shapes_several_entries_missing_current_and_git():
    text = json.dumps({
        "a": [{"current": "1.0.0", "wanted": "1.0.1", "latest": "1.0.1"},
              {"current": "1.0.0", "wanted": "1.0.1", "latest": "1.0.1"}],
        "b": {"wanted": "2.0.0", "latest": "2.0.0"},
        "c": {"current": "git", "wanted": "git", "latest": "1.0.0"},
    })
    items = {o.package: o for o in parse_npm_outdated(text, "frontend")}
    assert len(items) == 3 and items["a"].kind == "patch"
    assert items["b"].action == "skip" and items["b"].note == "not installed"
    assert items["c"].action == "skip" and "git" in items["c"].note


def test_npm_audit_that_could_not_reach_its_endpoint_is_a_failure_not_a_clean_report():
    outcome = judge_npm_audit((RECORDED / "npm-audit-endpoint-405.json").read_text(), exit_code=1)
    assert not outcome.ran and "405 Method Not Allowed" in outcome.error and outcome.findings == []


def test_pip_audit_that_skipped_everything_did_not_run_although_it_exited_0():
    outcome = judge_pip_audit((RECORDED / "pip-audit-all-skipped.json").read_text(), exit_code=0)
    assert not outcome.ran and "skipped all 2 dependencies" in outcome.error
