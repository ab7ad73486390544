"""The one report every runbook returns, and its Markdown rendering (pure: no I/O here)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from playground_ops.redact import redact
from tasks.reporting.charts import Chart, chart_markdown


class Status(str, Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return list(Status).index(self)

    @classmethod
    def worst(cls, *statuses: "Status") -> "Status":
        return max(statuses, key=lambda s: s.rank, default=cls.OK)


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def status(self) -> Status:
        return {Severity.INFO: Status.OK, Severity.WARNING: Status.WARNING, Severity.CRITICAL: Status.CRITICAL}[self]


class Finding(BaseModel):
    """Something the runbook found, how serious it is, and the evidence behind it."""

    severity: Severity
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    next_step: str | None = None


class Report(BaseModel):
    """What one run of a runbook found and did; published as artifacts and stored in the audit store."""

    runbook: str
    target: str
    status: Status = Status.OK
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    figures: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None
    flow_run_id: str | None = None
    stored_at: str | None = None
    kept: dict[str, Any] = Field(default_factory=dict)  # stored for the next run to compare against; never rendered
    documents: dict[str, str] = Field(default_factory=dict)  # Markdown shown as it is (e.g. a pull request's body)
    charts: dict[str, Chart] = Field(default_factory=dict)  # drawn in the Markdown; their data stored as CSV too

    def add(self, severity: Severity | str, message: str, next_step: str | None = None, **evidence: Any) -> "Report":
        """Add a finding; the report's status becomes at least as bad as it."""
        finding = Finding(severity=Severity(severity), message=message, evidence=evidence, next_step=next_step)
        self.findings.append(finding)
        self.status = Status.worst(self.status, finding.severity.status)
        return self

    def fail(self, message: str, **evidence: Any) -> "Report":
        """Mark the run as failed: something it had to do could not be done."""
        self.findings.append(Finding(severity=Severity.CRITICAL, message=message, evidence=evidence))
        self.status = Status.FAILED
        return self

    def finish(self) -> "Report":
        self.finished_at = datetime.now(timezone.utc)
        self.figures.setdefault("duration_s", round((self.finished_at - self.started_at).total_seconds(), 3))
        return self

    def redacted(self) -> "Report":
        """A copy with every registered secret and URL password blanked, for publishing."""
        return Report.model_validate_json(redact(self.model_dump_json()))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value).replace("|", "\\|").replace("\n", " ")


def humanize_bytes(n: int | float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def _shown(name: str, value: Any) -> Any:
    """A byte count humanized beside its raw number (columns and figures named *bytes)."""
    if name.endswith("bytes") and isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) >= 1024:
        return f"{value:,} ({humanize_bytes(value)})" if isinstance(value, int) else f"{value:,.0f} ({humanize_bytes(value)})"
    return value


def markdown_table(rows: list[dict[str, Any]], limit: int = 50) -> str:
    """A Markdown table of rows (the union of their keys as columns), at most `limit` rows."""
    if not rows:
        return "_none_"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(_shown(c, row.get(c))) for c in columns) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows in the stored report_")
    return "\n".join(lines)


ICON = {Status.OK: "✅", Status.WARNING: "⚠️", Status.CRITICAL: "🔴", Status.FAILED: "❌"}


def render_markdown(report: Report) -> str:
    """The report as the Markdown an operator reads in the Prefect UI and in the audit store."""
    lines = [f"# {ICON[report.status]} {report.runbook} on {report.target}: {report.status.value}", ""]
    if report.summary:
        lines += [report.summary, ""]
    meta = {"started": report.started_at.isoformat(timespec="seconds"),
            "finished": report.finished_at.isoformat(timespec="seconds") if report.finished_at else "",
            "flow run": report.flow_run_id or "", "stored at": report.stored_at or ""}
    lines += [" · ".join(f"**{k}** {v}" for k, v in meta.items() if v), ""]
    if report.findings:
        lines += ["## Findings", ""]
        order = sorted(report.findings, key=lambda f: [Severity.CRITICAL, Severity.WARNING, Severity.INFO].index(f.severity))
        for f in order:
            lines.append(f"- **{f.severity.value}**: {f.message}")
            if f.evidence:
                lines.append("  - evidence: " + ", ".join(f"{k}={_cell(v)}" for k, v in f.evidence.items()))
            if f.next_step:
                lines.append(f"  - next step: {f.next_step}")
        lines.append("")
    if report.charts:
        lines += ["## Charts", ""]
        lines += [part for name, chart in report.charts.items() for part in (chart_markdown(name, chart), "")]
    if report.figures:
        lines += ["## Figures", "", markdown_table([{"figure": k, "value": _shown(k, v)} for k, v in report.figures.items()]), ""]
    for name, rows in report.tables.items():
        lines += [f"## {name.replace('_', ' ').capitalize()}", "", markdown_table(rows), ""]
    for name, text in report.documents.items():
        lines += [f"## {name}", "", text, ""]
    return redact("\n".join(lines))
