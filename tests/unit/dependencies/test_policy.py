"""Semantic-version classification and the reading of npm's and pip-audit's real outputs (recorded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.dependencies.policy import (POLICY, AuditOutcome, Bisection, Outdated, at_or_above, direct_fixes, judge_npm_audit,
                                     judge_pip_audit, parse_npm_outdated, parse_pip_outdated, plan_updates,
                                     pull_request_body, release_notes_url, split_majors,
                                     keep_written_ranges)
from tasks.dependencies.versioning import classify
from tasks.dependencies.update_report import AuditFix, audit_failures, audit_report

RECORDED = Path(__file__).parents[2] / "fixtures" / "recorded"


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


def _item(package, current, latest, project="backend", ecosystem="npm"):
    kind = classify(current, latest, ecosystem)
    return Outdated(project, package, current, latest, latest, kind, POLICY[kind], ecosystem=ecosystem)


def test_a_major_latest_still_gets_the_newest_release_within_its_major_and_is_listed_to_plan():
    items = split_majors([_item("debug", "2.6.8", "4.4.3")], {"debug": ["2.6.8", "2.6.9", "3.0.0", "3.2.7", "4.4.3",
                                                                         "2.7.0-beta.1"]})
    plan = plan_updates(items)
    assert [(u.package, u.wanted, u.kind) for u in plan.apply] == [("debug", "2.6.9", "patch")]
    assert [(u.package, u.latest) for u in plan.planned] == [("debug", "4.4.3")]


def test_minor_updates_can_be_turned_off_for_a_run():
    plan = plan_updates([_item("ms", "2.0.0", "2.1.3"), _item("minimist", "1.2.0", "1.2.8")], include_minor=False)
    assert [u.package for u in plan.apply] == ["minimist"]
    assert [(u.package, u.note) for u in plan.skipped] == [("ms", "minor updates turned off for this run")]


def test_written_ranges_move_in_their_own_form_or_the_update_says_why_it_is_skipped():
    items = [_item("on-finished", "2.3.0", "2.4.2"), _item("ms", "2.0.0", "2.1.3"), _item("escape-html", "1.0.2", "1.0.3"),
             _item("depd", "1.1.0", "1.1.2"), _item("qs", "6.5.0", "6.5.3"), _item("send", "0.16.0", "0.16.2", "lib"),
             _item("six", "1.15.0", "1.17.0", "py", "python"), _item("idna", "3.6", "3.10", "py", "python")]
    written = {("backend", "on-finished"): "~2.3.0", ("backend", "ms"): "^2.0.0", ("backend", "escape-html"): "1.0.2",
               ("backend", "depd"): ">=1.1.0 <3", ("backend", "qs"): ">=6.5.0 <6.5.2", ("lib", "send"): "0.16.x",
               ("py", "six"): "==1.15.0", ("py", "idna"): ">=3.0"}
    kept = {i.package: i for i in keep_written_ranges(items, written, locked={"backend", "py"})}
    assert kept["on-finished"].new_spec == "~2.4.2" and kept["ms"].new_spec == "^2.1.3"
    assert kept["escape-html"].new_spec == "1.0.3" and kept["escape-html"].range_change == "pinned"
    assert kept["depd"].action == "apply" and kept["depd"].range_change == "lock file only (>=1.1.0 <3)"
    assert kept["qs"].action == "skip" and kept["qs"].note == ("written as >=6.5.0 <6.5.2, which does not admit 6.5.3: "
                                                               "widen it by hand")
    assert kept["send"].action == "skip" and "no lock file" in kept["send"].note  # a no-op is not an update
    assert kept["six"].new_spec == "==1.17.0" and kept["idna"].range_change == "lock file only (>=3.0)"
    assert kept["on-finished"].range_change == "~2.3.0 -> ~2.4.2"


def test_pip_outdated_is_kept_to_the_direct_pins_and_classified_by_pep_440():
    listing = json.dumps([{"name": "six", "version": "1.15.0", "latest_version": "1.17.0"},
                          {"name": "pluggy", "version": "1.0.0", "latest_version": "1.6.0"},
                          {"name": "Attrs", "version": "23.1.0", "latest_version": "23.1.0.post1"}])
    items = parse_pip_outdated(listing, "python", {"six": "1.15.0", "attrs": "23.1.0"})
    assert [(o.package, o.kind, o.action, o.latest) for o in items] == [
        ("attrs", "patch", "apply", "23.1.0.post1"), ("six", "minor", "apply", "1.17.0")]


@pytest.mark.parametrize("repository, url", [
    ("vercel/ms", "https://github.com/vercel/ms/releases"),
    ({"type": "git", "url": "git+https://github.com/minimistjs/minimist.git"}, "https://github.com/minimistjs/minimist/releases"),
    ("git://github.com/visionmedia/debug.git", "https://github.com/visionmedia/debug/releases"),
    ("https://gitlab.com/a/b", None),
    (None, None),
])
def test_release_notes_links_come_from_the_registrys_repository_field(repository, url):
    assert release_notes_url(repository) == url


def test_pull_request_body_has_the_table_the_majors_and_the_tests():
    applied = [_item("ms", "2.0.0", "2.1.3")]
    planned = [_item("debug", "2.6.8", "4.4.3")]
    body = pull_request_body(applied, planned, [], {"npm:ms": "https://github.com/vercel/ms/releases"},
                             [{"project": "backend", "command": "npm test", "result": "passed"}], "None/flow-runs/x")
    assert "| ms | backend | 2.0.0 | 2.1.3 | minor | [release notes](https://github.com/vercel/ms/releases) |" in body
    assert "### Major updates that need a plan (1)" in body and "| debug | backend | 2.6.8 | 4.4.3 | major |" in body
    assert "| backend | npm test | passed |" in body and "[Run]" not in body  # no link without a UI URL


def test_an_audit_that_could_not_run_fails_the_report_while_findings_make_it_critical():
    finding = {"package": "minimist", "severity": "critical", "range": "<1.2.6", "fix_available": True,
               "fix_is_major": False, "fix_version": "1.2.8", "direct": True, "advisories": ["GHSA-xvch-5gv4-984h"],
               "via": [], "title": "Prototype Pollution"}
    low = {**finding, "package": "debug", "severity": "low", "fix_version": "2.6.9"}
    found = audit_report("sandbox", {"backend": AuditOutcome(True, None, [finding, low], 3)}, "moderate")
    assert found.status.value == "critical" and "1 vulnerable packages at or above moderate" in found.summary
    quiet = audit_report("sandbox", {"backend": AuditOutcome(True, None, [low], 3)}, "moderate")
    assert quiet.status.value == "ok" and quiet.findings[0].severity.value == "info"
    broken = audit_report("sandbox", {"backend": AuditOutcome(True, None, [], 3),
                                      "python": AuditOutcome(False, "pip-audit skipped all 2 dependencies")}, "low")
    assert broken.status.value == "failed" and "The audit of python could not run" in broken.findings[-1].message
    assert audit_failures({"python": AuditOutcome(False, "pip-audit skipped all 2 dependencies")}) == \
        "the audit of python could not run: pip-audit skipped all 2 dependencies"
    assert direct_fixes(AuditOutcome(True, None, [finding, low])) == [("debug", "2.6.9"), ("minimist", "1.2.8")]
    assert at_or_above("unknown", "critical") and not at_or_above("low", "moderate")


def test_the_audits_next_step_fits_what_the_run_did():
    finding = {"package": "minimist", "severity": "critical", "range": "<1.2.6", "fix_available": True,
               "fix_is_major": False, "fix_version": "1.2.8", "direct": True, "advisories": ["GHSA-xvch-5gv4-984h"],
               "via": [], "title": "Prototype Pollution"}
    audits = {"backend": AuditOutcome(True, None, [finding], 3)}

    def step(fixed):
        return audit_report("sandbox", audits, "moderate", fixed).findings[0].next_step

    assert step(AuditFix(False, False, ["backend"])).startswith("Run security-audit with fix=true")
    assert "without dry_run" in step(AuditFix(True, True, ["backend"]))
    assert step(AuditFix(True, False, ["backend"], pull_request=7)).startswith("Review and merge pull request #7")
    from tasks.dependencies.steps import Attempt, TestRun

    failed = Attempt("npm audit fix", [], [TestRun("backend", "npm test", False, "AssertionError")])
    assert "broke the tests" in step(AuditFix(True, False, ["backend"], attempt=failed))
    assert step(AuditFix(True, False, [])).startswith("No fix is available within the written ranges")
    assert all("fix=true" not in step(f) for f in (AuditFix(True, False, ["backend"], pull_request=7),
                                                   AuditFix(True, False, [])))


def test_osv_stand_in_matches_versions_by_range():
    from sandbox.advisories import osv_vulns

    assert [v["id"] for v in osv_vulns("IDNA", "PyPI", "3.6")] == ["GHSA-jjg7-2v4v-x38h"]
    assert osv_vulns("idna", "PyPI", "3.7") == [] and osv_vulns("idna", "npm", "3.6") == []


def test_recorded_npm_audit_with_findings_gives_severity_advisories_and_the_fix():
    outcome = judge_npm_audit((RECORDED / "npm-audit-findings.json").read_text(), exit_code=1)
    assert outcome.ran and outcome.audited == 3
    found = {f["package"]: f for f in outcome.findings}
    assert found["minimist"]["severity"] == "critical"
    assert found["minimist"]["advisories"] == ["GHSA-xvch-5gv4-984h", "GHSA-vh95-rmgr-6w4m"]
    assert found["minimist"]["fix_version"] == "1.2.8" and not found["minimist"]["fix_is_major"]
    assert found["debug"]["severity"] == "low" and found["debug"]["direct"]


class _Try:
    """What the runbook records of one try: the updates applied and whether the tests passed."""

    def __init__(self, updates, breaking):
        self.updates = updates
        self.ok = not any(u.package in breaking for u in updates)


def _bisect(updates, breaking, max_tries=12):
    search = Bisection(updates, max_tries=max_tries)
    tried = []
    while (chosen := search.next_try()) is not None:
        tried.append((search.scope, sorted(u.package for u in chosen)))
        search.record(_Try(chosen, breaking))
    return search, tried


UPDATES = [_item("escape-html", "1.0.2", "1.0.3"), _item("minimist", "1.2.0", "1.2.8"),
           _item("ms", "2.0.0", "2.1.3"), _item("on-finished", "2.3.0", "2.4.1"), _item("depd", "1.1.0", "1.1.2")]


def test_updates_that_pass_together_are_tried_once():
    search, tried = _bisect(UPDATES, breaking=set())
    assert tried == [("try 1: all 5 updates", sorted(u.package for u in UPDATES))]
    assert search.passed is search.attempts[0] and search.held_back == []


def test_bisection_names_the_one_minor_that_breaks_and_ships_the_rest():
    search, tried = _bisect(UPDATES, breaking={"ms"})
    assert [scope for scope, _ in tried] == ["try 1: all 5 updates", "try 2: patch only: escape-html, minimist, depd",
                                            "try 3: + ms", "try 4: + on-finished"]
    assert [u.package for u in search.held_back] == ["ms"] and search.passed is search.attempts[-1]
    assert sorted(u.package for u in search.passed.updates) == ["depd", "escape-html", "minimist", "on-finished"]
    [(_, evidence)] = search.breakers
    assert not evidence.ok and "ms" in [u.package for u in evidence.updates]  # the failing try that named it


def test_a_breaking_second_half_is_named_without_trying_it_again():
    search, tried = _bisect(UPDATES, breaking={"on-finished"})
    assert [scope for scope, _ in tried] == ["try 1: all 5 updates", "try 2: patch only: escape-html, minimist, depd",
                                            "try 3: + ms"]  # good + on-finished is what try 1 showed failing
    assert [u.package for u in search.held_back] == ["on-finished"]
    assert search.passed is search.attempts[-1]


def test_two_breaking_patches_are_both_named():
    search, _ = _bisect(UPDATES, breaking={"escape-html", "depd"})
    assert sorted(u.package for u in search.held_back) == ["depd", "escape-html"]
    assert sorted(u.package for u in search.passed.updates) == ["minimist", "ms", "on-finished"]


def test_when_every_update_breaks_nothing_ships_and_the_tries_are_bounded():
    search, tried = _bisect(UPDATES, breaking={u.package for u in UPDATES})
    assert search.passed is None and len(search.held_back) == 5
    search, tried = _bisect(UPDATES, breaking={u.package for u in UPDATES}, max_tries=3)
    assert len(tried) == 3 and search.passed is None
    assert len(search.breakers) + len(search.untried) == 5 and search.untried  # not isolated: held back, untried


def test_a_passing_set_that_is_not_the_last_try_is_applied_once_more_so_the_work_copy_holds_it():
    search, tried = _bisect(UPDATES[:4], breaking={"on-finished", "ms"})
    assert tried[-1][0] == "final: the 2 updates that passed" and tried[-1][1] == ["escape-html", "minimist"]
    assert sorted(u.package for u in search.held_back) == ["ms", "on-finished"]


@pytest.mark.parametrize("text", ["npm WARN config production Use `--omit=dev` instead.\n{", "[1, 2]", '"x"'])
def test_an_npm_outdated_listing_that_is_not_one_is_a_loud_error_naming_the_project(text):
    with pytest.raises(ValueError, match="npm outdated --json in frontend: expected a JSON object of packages"):
        parse_npm_outdated(text, "frontend")
