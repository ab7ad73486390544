"""The security review on paper (pure): failed logins read from the backend's log lines, fail2ban's windows over them,
error lines grouped by message, and the access review's findings, each with severity, evidence and the next step."""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

AUTH_FAILED = re.compile(r"authentication failed for (?P<user>.+?) from (?P<ip>\S+?):")
VARIABLE = re.compile(r"\b(?:[0-9a-f]{8}-[0-9a-f-]{27,}|0x[0-9a-f]+|\d+(?:\.\d+)*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Thresholds:
    """fail2ban's maxretry and findtime, and what makes a request rate unusual."""

    max_failures: int = 10          # more than this many failed logins from one IP ...
    window_minutes: int = 10        # ... within this many minutes is flagged
    min_rate_per_hour: int = 300    # an hour with fewer requests is never unusual
    rate_factor: float = 3.0        # ... and it must be this many times the busiest hour of the weeks before
    refusal_burst: int = 50         # quota refusals of one user in one hour
    inactive_days: int = 90
    secret_max_age_days: int = 35   # the guide rotates monthly
    password_expiry_required: bool = False

    def for_sql(self) -> dict[str, Any]:
        return {"max_failures": self.max_failures, "window_minutes": self.window_minutes,
                "min_rate": self.min_rate_per_hour, "factor": self.rate_factor, "refusal_burst": self.refusal_burst}


def failures_from_logs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backend's "authentication failed for <user> from <ip>: <reason>" lines as events (time, ip, user)."""
    events = []
    for line in lines:
        match = AUTH_FAILED.search(line.get("message", ""))
        if match:
            user = match["user"]
            events.append({"at": datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")),
                           "ip": match["ip"], "user": None if user == "unknown user" else user})
    return sorted(events, key=lambda e: e["at"])


def bursts(events: list[dict[str, Any]], max_failures: int, window_minutes: int) -> list[dict[str, Any]]:
    """fail2ban's rule over events sorted by time: an IP with more than max_failures within window_minutes; its
    busiest window's count, when it was first over, and the users it tried."""
    window = timedelta(minutes=window_minutes)
    recent: dict[str, deque] = defaultdict(deque)
    tried: dict[str, set[str]] = defaultdict(set)
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        q = recent[event["ip"]]
        q.append(event)
        while event["at"] - q[0]["at"] >= window:
            q.popleft()
        if event["user"]:
            tried[event["ip"]].add(event["user"])
        if len(q) > max_failures:
            entry = found.setdefault(event["ip"], {"ip": event["ip"], "peak": 0, "first_over": event["at"].isoformat()})
            entry["peak"] = max(entry["peak"], len(q))
    return [{**e, "accounts": len(tried[e["ip"]]), "users": sorted(tried[e["ip"]])[:10]}
            for e in sorted(found.values(), key=lambda e: -e["peak"])]


def group_errors(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Error lines grouped by message, numbers and ids blanked (`GET /api/chat answered 504` and its twins)."""
    groups: dict[str, dict[str, Any]] = {}
    for line in lines:
        shape = VARIABLE.sub("#", line.get("message", ""))[:200]
        entry = groups.setdefault(shape, {"message": shape, "count": 0, "first": line["timestamp"],
                                          "last": line["timestamp"]})
        entry["count"] += 1
        entry["first"], entry["last"] = min(entry["first"], line["timestamp"]), max(entry["last"], line["timestamp"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["message"]))


@dataclass
class Finding:
    severity: str
    message: str
    next_step: str
    evidence: dict[str, Any] = field(default_factory=dict)


def activity_findings(failed_db: dict[str, Any], log_bursts: list[dict[str, Any]], rates: dict[str, Any],
                      t: Thresholds) -> list[Finding]:
    findings = []
    rule = f"more than {t.max_failures} failed logins within {t.window_minutes} minutes"
    for b in failed_db.get("bursts", []):
        findings.append(Finding("critical", f"brute force? {b['ip']}: {b['peak']} failed requests (401) within "
                                f"{t.window_minutes} minutes ({rule})", f"Block {b['ip']} at the edge and check the "
                                "accounts it tried.", {"ip": b["ip"], "peak": b["peak"], "first_over": b["first_over"],
                                                       "source": "requests (401)"}))
    for b in log_bursts:
        findings.append(Finding("critical", f"brute force? {b['ip']}: {b['peak']} failed logins within "
                                f"{t.window_minutes} minutes in the backend's log ({rule})",
                                f"Block {b['ip']} at the edge and check the accounts it tried.",
                                {"ip": b["ip"], "peak": b["peak"], "first_over": b["first_over"],
                                 "users": ", ".join(b["users"]), "source": "backend log"}))
    for kind, key in (("users", "user_id"), ("ips", "ip")):
        for r in rates.get(kind, []):
            before = f"{r['before']} at most an hour in the weeks before" if r.get("before") else "none in the weeks before"
            findings.append(Finding("warning", f"unusual request rate: {kind[:-1]} {r[key]} made {r['peak']} requests "
                                    f"in one hour ({r['peak_hour']}), mostly {r['endpoint']} ({before})",
                                    "Check whether this is a script or an abuse of the API; lower its quota or block "
                                    "it if so.", {key: r[key], "peak": r["peak"], "before": r.get("before"),
                                                  "endpoint": r["endpoint"]}))
    for r in rates.get("refusal_bursts", []):
        findings.append(Finding("warning", f"quota refusal burst: user {r['user_id']} was refused {r['refused']} "
                                f"times in the hour from {r['hour']}", "A client retrying without backing off: "
                                "tell its owner, or block it until the next day.", dict(r)))
    return findings


def secret_ages(rotations: list[dict[str, Any]], secrets: list[str], now: datetime) -> list[dict[str, Any]]:
    """Each declared secret's last rotation, from secret-rotation's stored reports (newest first): a rotation that
    ran (not a dry run) and ended ok or warning, whose table names the secret."""
    rows = []
    for name in secrets:
        done = next((r for r in rotations if r.get("figures", {}).get("action") == "rotate"
                     and not r.get("figures", {}).get("dry_run") and r.get("status") in ("ok", "warning")
                     and any(row.get("secret") == name for row in r.get("tables", {}).get("rotation", []))), None)
        at = datetime.fromisoformat(done["finished_at"]) if done else None
        rows.append({"secret": name, "rotated_at": at.isoformat(timespec="minutes") if at else None,
                     "age_days": (now - at).days if at else None})
    return rows


def access_findings(access: dict[str, dict[str, Any]], ages: list[dict[str, Any]], now: datetime,
                    t: Thresholds) -> list[Finding]:
    findings = []
    for name, section in access.items():
        if "error" in section:
            findings.append(Finding("warning", f"{name}: could not be read ({section['error']})",
                                    "Run the review with a role that may read it (pg_authid needs a superuser)."))
    privileged = access.get("privileged accounts", {}).get("rows", [])
    for row in (r for r in privileged if r.get("inactive")):
        findings.append(Finding("critical" if row["role"] == "admin" else "warning",
                                f"inactive {row['role']} account {row['email']} (no login for {t.inactive_days} days, "
                                "not disabled)", "Disable it (security-review with disable_inactive=true, approved "
                                "in the UI) or confirm the owner still needs it.",
                                {"user_id": row["user_id"], "last_login_at": row.get("last_login_at")}))
    inactive = access.get("inactive accounts", {}).get("rows", [])
    users = [r for r in inactive if r["role"] == "user"]
    if users:
        findings.append(Finding("info", f"{len(users)} user accounts with no login for {t.inactive_days} days and not "
                                "disabled", "Review them; disable_inactive=true disables the listed ones once approved.",
                                {"accounts": len(users)}))
    for role in access.get("database roles", {}).get("rows", []):
        if role["can_login"] and role["superuser"]:
            findings.append(Finding("warning", f"database role {role['role']} can log in and is a superuser",
                                    "The application should connect as a role without superuser.", {"role": role["role"]}))
        if role["can_login"] and t.password_expiry_required and role["password_valid_until"] is None:
            findings.append(Finding("warning", f"database role {role['role']} can log in and its password never "
                                    "expires (the policy wants an expiry)",
                                    f"ALTER ROLE {role['role']} VALID UNTIL '<date>'", {"role": role["role"]}))
    public = access.get("public schema", {}).get("rows", [{}])
    if public and public[0].get("public_can_create"):
        findings.append(Finding("warning", "PUBLIC may CREATE in schema public (any role can create objects there)",
                                "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"))
    for row in ages:
        if row["age_days"] is None:
            findings.append(Finding("warning", f"{row['secret']}: no rotation on record in the audit trail",
                                    "Run secret-rotation (monthly, as the guide says).", {"secret": row["secret"]}))
        elif row["age_days"] > t.secret_max_age_days:
            findings.append(Finding("warning", f"{row['secret']} was last rotated {row['age_days']} days ago "
                                    f"({row['rotated_at'][:10]}; the policy: every {t.secret_max_age_days} days)",
                                    "Run secret-rotation.", dict(row)))
    return findings


def review_range(end: datetime, days: int = 7) -> tuple[datetime, datetime, datetime]:
    """The week reviewed, and the three weeks before it that request rates are compared with."""
    start = end - timedelta(days=days)
    return start, end, start - timedelta(days=21)
