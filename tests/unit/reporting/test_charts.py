"""Charts in reports: the data stored as CSV so it can be redrawn; an empty chart says so instead of drawing nothing."""

from tasks.reporting.charts import Chart, chart_csv, chart_markdown, chart_png

CHART = Chart(title="Daily active users", x="day", series=["active_users"],
              rows=[{"day": "2026-12-01", "active_users": 6, "extra": 1}, {"day": "2026-12-02", "active_users": 4}])


def test_the_csv_holds_the_x_column_and_each_series_and_nothing_else():
    assert chart_csv(CHART) == "day,active_users\n2026-12-01,6\n2026-12-02,4\n"


def test_a_chart_is_a_png_image_in_the_markdown_and_an_empty_one_is_a_sentence():
    assert chart_png(CHART).startswith(b"\x89PNG\r\n\x1a\n")
    assert chart_markdown("dau", CHART).startswith("![Daily active users](data:image/png;base64,")
    empty = Chart(title="Errors", x="day", series=["errors"], rows=[{"day": "2026-12-01", "errors": 0}])
    assert empty.empty and chart_markdown("errors", empty) == "_Errors: no data in this range, so no chart._"
