"""Security incidents on paper (pure): which findings of security-review open one (once per finding), the key that
names it, the containment the evidence calls for, whether the source has gone quiet, and the post-mortem draft."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from playground_ops.errors import ConfigError
from tasks.incidents.response import follow_ups, opened_and_resolved
from tasks.reporting.report import markdown_table

KINDS = ("brute-force", "account-abuse")
ACTIONS = {
    "disable_account": "disable the abusing account (its requests are refused from now on)",
    "disable_accounts": "disable the accounts signed into from the attacking address after its failures",
    "rotate_secrets": "rotate the JWT secrets at once, with no grace period: every session is signed out and every "
                      "user signs in again",
}


@dataclass(frozen=True)
class SecurityFinding:
    kind: str        # brute-force (source: an IP address) | account-abuse (source: a user id)
    source: str
    summary: str
    first_seen: str | None = None


def check_source(kind: str, source: str) -> str:
    """The finding's source in its one allowed form: an IP address for brute-force, a user id for account-abuse."""
    if kind not in KINDS:
        raise ConfigError("kind", f"one of {', '.join(KINDS)}", got=str(kind)[:40])
    if kind == "brute-force":
        try:
            return str(ipaddress.ip_address(source))
        except ValueError:
            raise ConfigError("source", "an IP address such as 203.0.113.9 (the address the failures came from)",
                              got=str(source)[:60]) from None
    if not str(source).isdigit() or len(str(source)) > 18:
        raise ConfigError("source", "the abusing account's user id (digits)", got=str(source)[:60])
    return str(int(source))


def incident_key(kind: str, source: str) -> str:
    """What names one finding across reviews: one incident per key."""
    return f"security:{kind}:{source}"


def security_findings(failed_auth: dict[str, Any], log_bursts: list[dict[str, Any]], rates: dict[str, Any],
                      abuse_factor: float) -> list[SecurityFinding]:
    """The critical findings that open a security incident: each address over the failed-login rule (from the
    requests table or the backend's log, once), and each account whose busiest hour is at least abuse_factor times its
    busiest hour of the weeks before (an account abused far above its normal rate)."""
    out: dict[str, SecurityFinding] = {}
    for b in [*failed_auth.get("bursts", []), *log_bursts]:
        ip = str(b["ip"])
        if ip != "unknown":
            out.setdefault(incident_key("brute-force", ip), SecurityFinding(
                "brute-force", ip, f"brute force from {ip}: {b['peak']} failed logins within the window",
                str(b.get("first_over") or "") or None))
    for r in rates.get("users", []):
        before = r.get("before") or 1
        if r["peak"] >= abuse_factor * before:
            user = str(r["user_id"])
            out.setdefault(incident_key("account-abuse", user), SecurityFinding(
                "account-abuse", user, f"account {user} abused: {r['peak']} requests in one hour ({r['peak_hour']}), "
                f"{r['peak'] / before:.0f} times its busiest hour before, mostly {r['endpoint']}",
                str(r.get("peak_hour") or "") or None))
    return list(out.values())


def containment_for(kind: str, source: str, evidence: dict[str, Any]) -> dict[str, str]:
    """The containment the evidence calls for, each with why (all asked of an operator first)."""
    if kind == "account-abuse" and evidence.get("disabled"):
        return {}
    if not evidence:  # its activity could not be read (the database down): the finding alone
        return {"disable_account" if kind == "account-abuse" else "rotate_secrets":
                f"security-review's finding on {source}; its activity could not be read"}
    if kind == "account-abuse":
        return {"disable_account": f"user {source} made {evidence.get('requests', 0)} requests in the window"}
    offered = {"rotate_secrets": f"{evidence.get('failures', 0)} failed logins from {source} against "
                                 f"{len(evidence.get('accounts', []))} accounts"}
    if evidence.get("signed_in_after_failures"):
        offered["disable_accounts"] = (f"{source} got answers for accounts {', '.join(map(str, evidence['signed_in_after_failures']))} "
                                       "after its failures")
    return offered


def is_quiet(kind: str, evidence: dict[str, Any]) -> bool:
    """Recovered: the source has made no (failed, for brute force) request in the quiet window, or the abusing
    account is disabled."""
    if kind == "account-abuse" and evidence.get("disabled"):
        return True
    return not evidence.get("recent")


def security_post_mortem(incident: str, finding: SecurityFinding, steps: list[dict[str, Any]],
                         evidence: dict[str, Any], actions: list[dict[str, Any]]) -> str:
    """The post-mortem draft: what happened, who the source was, the evidence, what was done, what to follow up."""
    opened, resolved = opened_and_resolved(steps)
    what = "address" if finding.kind == "brute-force" else "account"
    follow = follow_ups([f"Block {finding.source} at the edge (a firewall or WAF rule) if it is not blocked yet." if
                         finding.kind == "brute-force" else f"Decide with account {finding.source}'s owner whether it "
                         "comes back, and lower its quota if so.",
                         "Check whether any account the source reached was used afterwards.",
                         "Add a rate limit or lockout to the app for what this source did."], actions)
    return "\n".join([
        f"# Post-mortem draft: {incident} (security: {finding.kind})", "",
        f"**Source:** {what} {finding.source} · **Opened:** {opened.get('at', '')} · **Resolved:** {resolved}", "",
        "## Detection", "", finding.summary, "",
        "## Evidence", "", f"{evidence.get('requests', 0)} requests from the source in the window, "
        f"{evidence.get('failures', 0)} of them failed logins (401); first {evidence.get('first')}, last "
        f"{evidence.get('last')}; accounts: {', '.join(map(str, evidence.get('accounts', []))) or 'none'}.", "",
        markdown_table(evidence.get("hours", []), limit=48), "",
        "## Containment", "", markdown_table(actions, limit=20) if actions else "None was taken.", "",
        "## Lessons learned", "", *follow, ""])
