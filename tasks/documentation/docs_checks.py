"""The guide's "Documentation Maintenance" checklist as checks that can fail (pure): what the repository's Markdown
documents, against what is live (environment variables, alert rules, served endpoints) and its own review dates.

What counts as documented:
- an environment variable: an UPPER_CASE name in a section whose heading mentions "environment" (a table's first
  column, a bullet's first word, in `backticks`, or `NAME=value` in a code block); anywhere else in the docs, in
  backticks or a code block, it still counts as mentioned;
- an alert threshold: a row of a Markdown table whose header has an "alert" (or "rule") column and a "threshold"
  column; the first number of the threshold cell, in seconds when it says so (`2s` against a rule in ms);
- an endpoint: `METHOD /path` or a `/api/...` path in backticks;
- the review dates: `Last Updated: 2026-11-01` / `Next Review: 2026-12-01` (ISO, or `November 1, 2026`), bold or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

CODE = re.compile(r"`([^`]+)`")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*[A-Z0-9])=")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ENDPOINT = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE)\s+`?(/[A-Za-z0-9_\-/{}:.]*)|`(/api/[A-Za-z0-9_\-/{}:.]*)`")
DATE_LINE = re.compile(r"(Last Updated|Next Review)\**\s*[:|]\s*\**\s*([A-Za-z]+ \d{1,2}, \d{4}|\d{4}-\d{2}-\d{2})",
                       re.IGNORECASE)
NUMBER = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*(ms|s\b|sec|seconds?|%)?", re.IGNORECASE)  # not p95's 95


@dataclass
class Documented:
    """What the documentation says, gathered from every Markdown file."""
    env_vars: dict[str, str] = field(default_factory=dict)          # name -> file
    mentioned: set[str] = field(default_factory=set)                 # every UPPER_CASE name anywhere
    thresholds: dict[str, tuple[str, str]] = field(default_factory=dict)  # alert -> (cell as written, file)
    endpoints: dict[str, str] = field(default_factory=dict)          # path -> file
    dates: dict[str, tuple[date, str]] = field(default_factory=dict)  # "last updated" / "next review" -> (day, file)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _day(text: str) -> date | None:
    for form in ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y"):
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def _env_names(line: str, fenced: bool, in_section: bool) -> set[str]:
    """The environment-variable names a line writes as such."""
    if fenced:
        match = ASSIGNMENT.match(line)
        return {match[1]} if match else set()
    words = [re.split(r"[=\s]", code.strip(), maxsplit=1)[0] for code in CODE.findall(line)]
    if in_section:
        stripped = line.strip()
        if stripped.startswith("|"):
            words.append(_cells(stripped)[0].strip("`* "))
        elif stripped[:2] in ("- ", "* "):
            words.append(stripped[2:].split()[0].strip("`*:,") if stripped[2:].split() else "")
    return {w for w in words if len(w) >= 3 and ENV_NAME.match(w)}


def read_docs(files: dict[str, str]) -> Documented:
    """What a set of Markdown files (path -> text) documents."""
    found = Documented()
    for path, text in sorted(files.items()):
        section, header, fenced = "", None, False
        for line in text.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            heading = HEADING.match(line) if not fenced else None
            if heading:
                section, header = heading[2].lower(), None
                continue
            names = _env_names(line, fenced, "environment" in section)
            found.mentioned |= names
            if "environment" in section:
                for name in names:
                    found.env_vars.setdefault(name, path)
            if fenced:
                continue
            for match in ENDPOINT.finditer(line):
                found.endpoints.setdefault((match[1] or match[2]).rstrip("/.") or "/", path)
            for match in DATE_LINE.finditer(line):
                day = _day(match[2])
                if day:
                    found.dates[match[1].lower()] = (day, path)
            if line.lstrip().startswith("|"):
                cells = [c.lower() for c in _cells(line)]
                if any(w in c for c in cells for w in ("alert", "rule")) and any("threshold" in c for c in cells):
                    header = cells
                elif header and not set(line.strip()) <= set("|-: "):
                    row = dict(zip(header, _cells(line)))
                    name = next((v for k, v in row.items() if "alert" in k or "rule" in k), "").strip("` *")
                    value = next((v for k, v in row.items() if "threshold" in k), "")
                    if name:
                        found.thresholds[name] = (value, path)
            else:
                header = None if not line.strip() else header
    return found


def threshold_of(cell: str, metric: str) -> float | None:
    """The number a threshold cell states, in the rule's unit (a cell in seconds against a metric in ms)."""
    match = NUMBER.search(cell)
    if not match:
        return None
    value, unit = float(match[1]), (match[2] or "").lower()
    if metric.endswith("_ms") and unit.startswith("s"):
        value *= 1000
    return value


def compare(docs: Documented, live_env: set[str] | None, rules: list[Any], served: dict[str, int] | None,
            today: date, stale_after_days: int) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, str, str]]]:
    """Tables for the report and findings (severity, message, next step). live_env None: the platform could not
    be read; served None: the database could not be read; each then says so instead of guessing."""
    findings: list[tuple[str, str, str]] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    if live_env is not None:
        names = sorted(live_env | set(docs.env_vars))
        tables["environment_variables"] = [{"name": n, "live": n in live_env, "documented": docs.env_vars.get(n, "")}
                                           for n in names]
        missing = sorted(n for n in live_env if n not in docs.env_vars and n not in docs.mentioned)
        gone = sorted(n for n in docs.env_vars if n not in live_env)
        if missing:
            findings.append(("warning", f"{len(missing)} environment variables are live but not documented: "
                             + ", ".join(missing), "Add them (names only) to the docs' environment section."))
        if gone:
            findings.append(("warning", f"{len(gone)} documented environment variables do not exist on the service: "
                             + ", ".join(gone), "Remove them from the docs, or set them if the application needs them."))
    rows = []
    for rule in rules:
        written = docs.thresholds.get(rule.name)
        stated = threshold_of(written[0], rule.metric) if written else None
        rows.append({"alert": rule.name, "metric": rule.metric, "rules file": rule.threshold,
                     "docs": written[0] if written else "", "file": written[1] if written else ""})
        if written and stated != float(rule.threshold):
            findings.append(("warning", f"{rule.name}: the docs state {written[0]!r} ({written[1]}), the rules file "
                                        f"{rule.op} {rule.threshold:g} ({rule.metric})",
                             "Make the docs say what the rules file enforces (or change the rule)."))
    undocumented = [r.name for r in rules if r.name not in docs.thresholds]
    if undocumented and docs.thresholds:
        findings.append(("info", f"{len(undocumented)} alert rules are not in the docs' thresholds table: "
                         + ", ".join(undocumented), "Add them to the table."))
    unknown = sorted(set(docs.thresholds) - {r.name for r in rules})
    if unknown:
        findings.append(("warning", "the docs state thresholds for alerts the rules file does not have: "
                         + ", ".join(unknown), "Remove them from the docs, or add the rules."))
    tables["alert_thresholds"] = rows
    if served is not None:
        paths = sorted(set(served) | set(docs.endpoints))
        tables["endpoints"] = [{"endpoint": p, "requests_30d": served.get(p, 0), "documented": docs.endpoints.get(p, "")}
                               for p in paths]
        undocumented_paths = sorted(p for p in served if p not in docs.endpoints)
        if undocumented_paths:
            findings.append(("warning", f"{len(undocumented_paths)} endpoints the backend serves are not in the API "
                             "documentation: " + ", ".join(undocumented_paths), "Document them."))
        idle = sorted(p for p in docs.endpoints if p.startswith("/api") and p not in served)
        if idle:
            findings.append(("info", f"{len(idle)} documented endpoints had no request in 30 days: " + ", ".join(idle),
                             "Check that they still exist; remove them from the docs if not."))
    review = docs.dates.get("next review")
    updated = docs.dates.get("last updated")
    tables["review_dates"] = [{"date": k, "day": v[0].isoformat(), "file": v[1]} for k, v in sorted(docs.dates.items())]
    if review and review[0] < today:
        findings.append(("warning", f"the docs' Next Review date {review[0].isoformat()} ({review[1]}) has passed",
                         "Review the docs against this report, then move Last Updated and Next Review."))
    if updated and (today - updated[0]).days > stale_after_days:
        findings.append(("warning", f"the docs were last updated {updated[0].isoformat()} ({updated[1]}), "
                                    f"more than {stale_after_days} days ago", "Review and update them."))
    if not docs.dates:
        findings.append(("info", "the docs state no Last Updated / Next Review date", "Add both, as the guide does."))
    return tables, findings
