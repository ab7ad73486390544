"""Alert rules with Prometheus and Alertmanager semantics (pure: no I/O here).

A rule's condition must hold for its whole `for` duration before it fires (pending until then); one notification when
it fires, one when it resolves, a reminder only after `repeat_interval`; a firing critical rule silences (inhibits) the
warning rules on the same metric; a value that could not be read is `missing`, which keeps the rule as it was (never
resolves it). The state lives outside this module (a Prefect Variable), so a restarted runner neither re-sends nor
forgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from playground_ops.errors import ConfigError, expected_form, shown_value, yaml_problem
from playground_ops.settings import require_match

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "alert_rules.yaml"

# What the health check measures, by name, with its unit (the rules file names these)
METRICS = {
    "error_rate_pct": "% of requests answered 5xx over the window",
    "client_error_rate_pct": "% of requests answered 4xx over the window",
    "p95_latency_ms": "95th percentile latency over the window, ms",
    "p99_latency_ms": "99th percentile latency over the window, ms",
    "health_failed_checks": "consecutive failed checks of the worst probe",
    "cpu_pct": "CPU used, % of the service's limit (busiest instance)",
    "memory_pct": "memory used, % of the service's limit (largest instance)",
    "db_connections_pct": "database connections in use, % of max_connections less reserved",
    "redis_memory_pct": "Redis used_memory, % of maxmemory",
    "redis_hit_rate_pct": "Redis keyspace hit rate since the previous sample, %",
    "redis_rejected_connections": "Redis connections rejected since the previous sample",
    "redis_connected_clients": "Redis connected clients",
    "redis_evicted_keys": "Redis keys evicted since the previous sample",
}
DIAGNOSTICS = ("diagnose-high-cpu", "diagnose-high-memory", "diagnose-database-connections", "diagnose-redis")
DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """'5m', '10m', '4h', '30s' or a number of seconds, as Prometheus writes durations."""
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    match = DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"expected a duration such as 30s, 5m or 4h (got {value!r})")
    return int(match[1]) * SECONDS[match[2]]


class Rule(BaseModel):
    """One alert rule: `metric op threshold` held `for` a duration."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    metric: str
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    for_seconds: float = Field(0, alias="for")
    severity: Literal["critical", "warning"]
    summary: str
    diagnostics: str | None = None
    repeat_interval: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return require_match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", value,
                             "a name of letters, digits, _ and - such as HighErrorRate")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"expected one of {', '.join(METRICS)} (got {value!r})")
        return value

    @field_validator("for_seconds", "repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("diagnostics")
    @classmethod
    def _diagnostics(cls, value: str | None) -> str | None:
        if value is not None and value not in DIAGNOSTICS:
            raise ValueError(f"expected one of {', '.join(DIAGNOSTICS)} (got {value!r})")
        return value

    def holds(self, value: float) -> bool:
        return {">": value > self.threshold, ">=": value >= self.threshold,
                "<": value < self.threshold, "<=": value <= self.threshold}[self.op]

    @property
    def expression(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}" + (f" for {_human(self.for_seconds)}" if self.for_seconds else "")


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repeat_interval: float = 4 * 3600
    rules: list[Rule]

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _unique(self) -> "RuleFile":
        names = [r.name for r in self.rules]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"expected each rule name once ({duplicate!r} is used twice)")
        for rule in self.rules:
            rule.repeat_interval = rule.repeat_interval or self.repeat_interval
        return self


def load_rules(path: Path | None = None) -> RuleFile:
    """The rules file (default: the one shipped, with the guide's rules); a bad one is refused naming what is wrong."""
    path = path or DEFAULT_RULES
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
    except OSError as exc:
        raise ConfigError("OPS_ALERT_RULES_FILE", "a readable YAML file with a 'rules:' list",
                          got=f"{path}: {exc.strerror or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("OPS_ALERT_RULES_FILE", "valid YAML", got=yaml_problem(exc, path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list) or not data["rules"]:
        raise ConfigError("OPS_ALERT_RULES_FILE", "a YAML mapping with a non-empty 'rules:' list", got=str(path))
    try:
        return RuleFile(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        where = "rules"
        if loc[:1] == ["rules"] and len(loc) > 1:
            index = loc[1]
            name = data["rules"][index].get("name") if isinstance(data["rules"][index], dict) else None
            where = f"rules[{index}]" + (f" ({name})" if name else "") + "".join(f".{p}" for p in loc[2:])
        elif loc:
            where = ".".join(str(p) for p in loc)
        raise ConfigError(f"{path}: {where}", expected_form(err), got=shown_value(where, err)) from None


@dataclass
class Notification:
    rule: str
    kind: Literal["firing", "resolved", "reminder"]
    severity: str
    subject: str
    body: str


@dataclass
class Evaluation:
    state: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    notifications: list[Notification]
    fired: list[Rule]  # rules that began firing in this evaluation (their diagnostics start)


def _human(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check_time(scheduled: datetime | None, started: datetime, interval_s: float = 300) -> datetime:
    """The time a check counts as, as Prometheus' evaluation ticks do: its scheduled time, when it has one that is
    not in the future and at most one interval old (a run starts a few seconds after its schedule, and that drift
    must not make a 5-minute rule on a 5-minute schedule wait a whole extra check); else when it started."""
    if scheduled is not None and timedelta(0) <= started - scheduled <= timedelta(seconds=interval_s):
        return scheduled
    return started


def evaluate(rules: RuleFile, values: dict[str, float | None], previous: dict[str, dict[str, Any]], now: datetime,
             target: str, link: str | None = None, reasons: dict[str, str] | None = None) -> Evaluation:
    """One evaluation of every rule against this check's values, from the state the previous one left."""
    state: dict[str, dict[str, Any]] = {}
    for rule in rules.rules:
        before = dict(previous.get(rule.name) or {"state": "inactive"})
        value = values.get(rule.metric)
        s = dict(before, value=value, missing=value is None)
        if value is None:
            state[rule.name] = s  # missing data: the rule stays as it was, never resolved by a gap
            continue
        if rule.holds(value):
            if s["state"] == "inactive":
                s.update(state="pending", active_at=now.isoformat())
            if s["state"] == "pending" and now - datetime.fromisoformat(s["active_at"]) >= timedelta(seconds=rule.for_seconds):
                s.update(state="firing", fired_at=now.isoformat(), new=True)
        else:
            s.update(state="resolved" if s["state"] == "firing" else "inactive")
        state[rule.name] = s

    firing_critical = {r.metric for r in rules.rules if r.severity == "critical" and state[r.name]["state"] == "firing"}
    notifications, rows, fired = [], [], []
    for rule in rules.rules:
        s = state[rule.name]
        silenced = rule.severity == "warning" and s["state"] == "firing" and rule.metric in firing_critical
        s["silenced"] = silenced
        if s.pop("new", False):
            fired.append(rule)
        if s["state"] == "firing" and not silenced:
            last = s.get("notified_at")
            if last is None:
                notifications.append(_notify(rule, "firing", s, target, now, link))
                s["notified_at"] = now.isoformat()
            elif now - datetime.fromisoformat(last) >= timedelta(seconds=rule.repeat_interval or 0):
                notifications.append(_notify(rule, "reminder", s, target, now, link))
                s["notified_at"] = now.isoformat()
        if s["state"] == "resolved":
            if s.get("notified_at"):  # a firing that was never notified (silenced) resolves quietly
                notifications.append(_notify(rule, "resolved", s, target, now, link))
            s = {"state": "inactive", "value": s["value"], "missing": False, "resolved_at": now.isoformat()}
            state[rule.name] = s
        if s["state"] == "inactive":
            for key in ("active_at", "fired_at", "notified_at", "silenced"):
                s.pop(key, None)
        shown = "silenced" if silenced else s["state"]
        rows.append({"rule": rule.name, "severity": rule.severity, "expression": rule.expression,
                     "value": None if s["value"] is None else round(s["value"], 3),
                     "state": f"{shown} (no data: {(reasons or {}).get(rule.metric, 'missing')})" if s["missing"] else shown,
                     "since": s.get("fired_at") or s.get("active_at") or ""})
    # what the next evaluation needs (values are read afresh): a steady state is an unchanged one
    kept = {name: {k: v for k, v in s.items() if k not in ("value", "missing")} for name, s in state.items()}
    return Evaluation(kept, rows, notifications, fired)


def incidents_due(rules: RuleFile, state: dict[str, dict[str, Any]], now: datetime,
                  after_s: float | None) -> list[Rule]:
    """The critical rules that have been firing for at least after_s and have not asked for an incident in this
    firing yet; each is marked in the state (which the next evaluation keeps until the rule resolves)."""
    if after_s is None:
        return []
    due = []
    for rule in rules.rules:
        s = state.get(rule.name) or {}
        if (rule.severity == "critical" and s.get("state") == "firing" and not s.get("incident_due")
                and now - datetime.fromisoformat(s["fired_at"]) >= timedelta(seconds=after_s)):
            s["incident_due"] = now.isoformat()
            due.append(rule)
    return due


def _notify(rule: Rule, kind: str, s: dict[str, Any], target: str, now: datetime, link: str | None) -> Notification:
    value = "missing" if s["value"] is None else f"{s['value']:g}"
    if kind == "resolved":
        subject = f"[RESOLVED] {rule.name} on {target}"
        lines = [f"{rule.summary}: resolved on {target}.", f"{rule.metric} is now {value} "
                 f"(rule: {rule.expression}); it fired at {s.get('fired_at')}."]
    else:
        subject = f"[FIRING:{rule.severity}] {rule.name} on {target}" + (" (reminder)" if kind == "reminder" else "")
        lines = [f"{rule.summary} on {target}.", f"{rule.metric} = {value} (rule: {rule.expression}); "
                 f"pending since {s.get('active_at')}, firing since {s.get('fired_at')}."]
        if rule.diagnostics:
            lines.append(f"Diagnostics: the {rule.diagnostics} runbook starts automatically.")
    if link:
        lines.append(f"Run: {link}")
    return Notification(rule.name, kind, rule.severity, subject, "\n".join(lines))
