"""Charts in reports (pure): the data behind a chart, drawn as a small PNG for the Markdown artifact and written as CSV
for the audit store, so a chart can always be redrawn from what was stored."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from pydantic import BaseModel, Field

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


class Chart(BaseModel):
    """A chart's data: rows with an x column and one column per series."""

    title: str
    kind: Literal["line", "bar", "stacked"] = "line"
    x: str
    series: list[str]
    rows: list[dict[str, Any]] = Field(default_factory=list)
    unit: str = ""

    @property
    def empty(self) -> bool:
        return not self.rows or not any(row.get(s) for row in self.rows for s in self.series)


def chart_csv(chart: Chart) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[chart.x, *chart.series], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(chart.rows)
    return out.getvalue()


def chart_png(chart: Chart, width: float = 6.4, height: float = 2.6, dpi: int = 100) -> bytes:
    """The chart as a small PNG (Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(row.get(chart.x, "")) for row in chart.rows]
    positions = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        bottom = [0.0] * len(labels)
        width_each = 0.8 / max(1, len(chart.series))
        for i, name in enumerate(chart.series):
            values = [float(row.get(name) or 0) for row in chart.rows]
            color = COLORS[i % len(COLORS)]
            if chart.kind == "line":
                ax.plot(positions, values, marker="o", markersize=3, color=color, label=name)
            elif chart.kind == "stacked":
                ax.bar(positions, values, bottom=bottom, color=color, label=name)
                bottom = [b + v for b, v in zip(bottom, values)]
            else:
                ax.bar([p - 0.4 + width_each * (i + 0.5) for p in positions], values, width=width_each, color=color,
                       label=name)
        step = max(1, len(labels) // 10)
        ax.set_xticks(positions[::step], labels[::step], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(chart.title, fontsize=10)
        if chart.unit:
            ax.set_ylabel(chart.unit, fontsize=8)
        if len(chart.series) > 1:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def chart_markdown(name: str, chart: Chart) -> str:
    """The chart embedded as a data URI image (the Prefect UI shows it in the Markdown artifact), or why there is
    none."""
    import base64

    if chart.empty:
        return f"_{chart.title}: no data in this range, so no chart._"
    data = base64.b64encode(chart_png(chart)).decode()
    return f"![{chart.title}](data:image/png;base64,{data})"
