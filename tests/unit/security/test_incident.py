"""Security incidents on paper: which findings open one (once per source), what containment the evidence calls for,
when the source is quiet, and a post-mortem that names it; a source in any other form refused before anything."""

import pytest

from playground_ops.errors import ConfigError
from tasks.security.incident import (SecurityFinding, check_source, containment_for, incident_key, is_quiet,
                                     security_findings, security_post_mortem)


def test_each_address_over_the_rule_and_each_account_far_above_its_normal_rate_is_one_finding():
    failed = {"bursts": [{"ip": "203.0.113.66", "peak": 30, "first_over": "2026-12-06T10:00:00"},
                         {"ip": "unknown", "peak": 40, "first_over": None}]}
    log = [{"ip": "203.0.113.66", "peak": 12, "first_over": "2026-12-06T10:01:00", "users": ["a"]}]
    rates = {"users": [{"user_id": 7, "peak": 600, "before": 1, "peak_hour": "2026-12-05T02:00", "endpoint": "/e"},
                       {"user_id": 8, "peak": 400, "before": 100, "peak_hour": "2026-12-05T03:00", "endpoint": "/e"}]}
    found = security_findings(failed, log, rates, abuse_factor=10)
    assert [(f.kind, f.source) for f in found] == [("brute-force", "203.0.113.66"), ("account-abuse", "7")]
    assert "600 requests in one hour" in found[1].summary and "600 times its busiest hour before" in found[1].summary
    assert incident_key("brute-force", "203.0.113.66") == "security:brute-force:203.0.113.66"


def test_containment_fits_the_evidence():
    assert containment_for("account-abuse", "7", {"requests": 600, "disabled": False}) == {
        "disable_account": "user 7 made 600 requests in the window"}
    assert containment_for("account-abuse", "7", {"disabled": True}) == {}
    quiet = containment_for("brute-force", "203.0.113.66", {"failures": 30, "accounts": [1, 2]})
    assert list(quiet) == ["rotate_secrets"]
    reached = containment_for("brute-force", "203.0.113.66", {"failures": 30, "accounts": [1, 2],
                                                             "signed_in_after_failures": [2]})
    assert reached["disable_accounts"] == "203.0.113.66 got answers for accounts 2 after its failures"


def test_quiet_means_no_recent_requests_or_the_account_disabled():
    assert is_quiet("brute-force", {"recent": 0}) and not is_quiet("brute-force", {"recent": 3})
    assert is_quiet("account-abuse", {"recent": 50, "disabled": True})


def test_the_post_mortem_names_the_source_the_evidence_and_what_was_done():
    finding = SecurityFinding("brute-force", "203.0.113.66", "brute force from 203.0.113.66: 30 failed logins")
    steps = [{"kind": "opened", "at": "2026-12-07T10:00:00+00:00"}, {"kind": "resolved", "at": "2026-12-07T10:05:00+00:00"}]
    draft = security_post_mortem("INC-20261207-1", finding, steps, {"requests": 30, "failures": 30, "accounts": [1, 2],
                                                                    "hours": [{"hour": "10:00", "failures": 30}]},
                                 [{"action": "rotate_secrets", "outcome": "refused by an operator", "run": ""}])
    assert "**Source:** address 203.0.113.66" in draft and "**Resolved:** 2026-12-07T10:05:00+00:00" in draft
    assert "30 of them failed logins (401)" in draft and "accounts: 1, 2" in draft
    assert "Block 203.0.113.66 at the edge" in draft and "rotate_secrets was refused by an operator" in draft


@pytest.mark.parametrize("kind, source, expected", [
    ("brute-force", "'; DROP TABLE users; --", "source: expected an IP address such as 203.0.113.9"),
    ("account-abuse", "../../etc", "source: expected the abusing account's user id"),
    ("phishing", "1", "kind: expected one of brute-force, account-abuse"),
])
def test_a_source_that_is_not_one_is_refused_naming_the_form(kind, source, expected):
    with pytest.raises(ConfigError, match=expected):
        check_source(kind, source)
    assert check_source("brute-force", "2001:db8::1") == "2001:db8::1" and check_source("account-abuse", "007") == "7"
