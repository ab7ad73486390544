"""The business report on paper (pure): the database's aggregates shaped with pandas into figures, tables and charts,
the range against the one before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from playground_ops.errors import ConfigError
from tasks.reporting.charts import Chart


@dataclass
class UsageReport:
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    charts: dict[str, Chart] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be computed, and why


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def change_pct(now: float | None, before: float | None) -> float | None:
    """Week over week, in percent; None when there is nothing before to compare with."""
    if now is None or not before:
        return None
    return round(100.0 * (now - before) / before, 1)


def mask_email(email: str | None) -> str:
    """a***@example.com: enough for an operator to recognise an account, not a list of addresses in every report."""
    if not email or "@" not in email:
        return email or ""
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


TRAFFIC_COLUMNS = ["day", "endpoint", "model", "status", "error_type", "requests", "tokens"]


def label_traffic(rows: list[dict[str, Any]], start: date) -> pd.DataFrame:
    """The traffic scan's groups, labelled: in the range or before it, the error's type (the stored one, else
    http_<status>), errors and quota refusals as counts."""
    traffic = pd.DataFrame(rows, columns=TRAFFIC_COLUMNS)
    traffic["day"] = pd.to_datetime(traffic["day"]).dt.date
    traffic["current"] = traffic["day"] >= start
    traffic["model"] = traffic["model"].fillna("(none)")
    failed = traffic["status"] >= 400
    stored = traffic["error_type"].fillna("").astype(str)
    traffic["error_type"] = stored.where(stored != "", "http_" + traffic["status"].astype(str)).where(failed, None)
    traffic["errors"] = traffic["requests"].where(failed, 0)
    traffic["refused"] = traffic["requests"].where((traffic["status"] == 429) & (stored == "quota_exceeded"), 0)
    return traffic


def shape_usage(raw: dict[str, Any], users: list[dict[str, Any]], start: datetime, end: datetime) -> UsageReport:
    out = UsageReport()
    activity = raw["activity"]
    start_day, end_day = start.date(), end.date()
    traffic = label_traffic(raw["traffic"], start_day)
    current, previous = traffic[traffic["current"]], traffic[~traffic["current"]]
    month = pd.DataFrame(activity["dau"] or [], columns=["day", "active_users"])
    month["day"] = pd.to_datetime(month["day"]).dt.date
    quota = pd.DataFrame(activity["quota_daily"] or [], columns=["day", "users_at_80pct", "users_at_100pct"])
    quota["day"] = pd.to_datetime(quota["day"]).dt.date
    refused = current.groupby("day")["refused"].sum().rename("refused").reset_index()
    in_range = (pd.DataFrame({"day": _days(start_day, end_day)}).merge(quota, on="day", how="left")
                .merge(refused, on="day", how="left").fillna(0))
    dau_in_range = month[(month["day"] >= start_day) & (month["day"] < end_day)]
    if (end_day - start_day).days > len(month):
        out.notes.append(f"average daily active users is over the last {len(month)} days of the range (daily active "
                         "users are counted for the 30 days before its end)")
    new_users = pd.DataFrame(raw["new_users"] or [], columns=["day", "new_users"])
    new_users["day"] = pd.to_datetime(new_users["day"]).dt.date
    previous_start = start_day - (end_day - start_day)
    new_now = int(new_users[(new_users["day"] >= start_day)]["new_users"].sum())
    new_before = int(new_users[(new_users["day"] >= previous_start) & (new_users["day"] < start_day)]["new_users"].sum())

    per_user = activity["per_user"] or {}
    active, mau = int(per_user.get("users") or 0), int(activity["mau"] or 0)
    avg_dau = round(float(dau_in_range["active_users"].mean()), 1) if len(dau_in_range) else 0.0
    requests_now, requests_before = int(current["requests"].sum()), int(previous["requests"].sum())
    errors_now, errors_before = int(current["errors"].sum()), int(previous["errors"].sum())
    out.figures = {
        "range": f"{start_day.isoformat()} to {(end_day - timedelta(days=1)).isoformat()}",
        "active_users": active, "active_users_change_pct": change_pct(active, activity.get("previous_active")),
        "avg_daily_active_users": avg_dau, "monthly_active_users": mau,
        "stickiness_pct": round(100.0 * avg_dau / mau, 1) if mau else None,
        "new_users": new_now, "new_users_change_pct": change_pct(new_now, new_before),
        "requests": requests_now, "requests_change_pct": change_pct(requests_now, requests_before),
        "errors": errors_now, "errors_change_pct": change_pct(errors_now, errors_before),
        "requests_per_user_median": per_user.get("median"), "requests_per_user_p90": per_user.get("p90"),
        "requests_per_user_max": per_user.get("max"),
        "quota_refusals": int(current["refused"].sum()),
    }
    if requests_now == 0:
        out.notes.append(f"no requests between {start_day} and {end_day}: no per-user, endpoint, model, quota or "
                         "error figures to compute")

    names = {u["user_id"]: u for u in users}

    def who(row: dict[str, Any]) -> dict[str, Any]:
        user = names.get(row["user_id"], {})
        return {"user_id": row["user_id"], "email": mask_email(user.get("email")), "role": user.get("role", "")}

    out.tables["top_users_by_requests"] = [{**who(r), "requests": r["requests"], "tokens": r["tokens"]}
                                           for r in activity["top_requests"]]
    out.tables["top_users_by_tokens"] = [{**who(r), "tokens": r["tokens"], "requests": r["requests"]}
                                         for r in activity["top_tokens"]]
    out.tables["per_endpoint"] = _compare(current, previous, "endpoint")
    out.tables["per_model"] = _compare(current, previous, "model")
    out.tables["quota_per_day"] = [{"day": r["day"].isoformat(), "users_at_80pct": int(r["users_at_80pct"]),
                                    "users_at_100pct": int(r["users_at_100pct"]), "refused": int(r["refused"])}
                                   for r in in_range.to_dict("records")]
    out.tables["quota_too_small"] = [{**who(r), "daily_quota": r["quota"], "days_at_limit": r["days_at_limit"],
                                      "refused": r["refused"]} for r in activity["quota_too_small"]]
    unused = activity["quota_unused"] or {"users": 0, "sample": []}
    out.figures["users_with_quota_unused"] = unused["users"]
    out.tables["errors_by_type"] = _errors(current, previous)

    out.charts["dau"] = Chart(title="Daily active users, 30 days", kind="line", x="day", series=["active_users"],
                              rows=[{"day": r["day"].isoformat(), "active_users": int(r["active_users"])}
                                    for r in month.to_dict("records")], unit="users")
    out.charts["requests_by_endpoint"] = _requests_by_endpoint(current, start_day, end_day)
    out.charts["quota"] = Chart(title="Users reaching their daily quota", kind="bar", x="day",
                                series=["users_at_80pct", "users_at_100pct"], rows=out.tables["quota_per_day"],
                                unit="users")
    out.charts["errors_by_type"] = Chart(title="Errors by type, this range and the one before", kind="bar",
                                         x="error_type", series=["this_range", "previous_range"],
                                         rows=_errors_by_type_only(current, previous),
                                         unit="requests")
    for chart in out.charts.values():
        if chart.empty:
            out.notes.append(f"{chart.title}: no data in this range, so no chart")
    return out


def _compare(current: pd.DataFrame, previous: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    now = current.groupby(column)[["requests", "tokens", "errors"]].sum()
    before = previous.groupby(column)["requests"].sum()
    rows = []
    for key in sorted(set(now.index) | set(before.index), key=lambda k: (-int(now["requests"].get(k, 0)), k)):
        n, b = int(now["requests"].get(key, 0)), int(before.get(key, 0))
        errors = int(now["errors"].get(key, 0))
        rows.append({column: key, "requests": n, "tokens": int(now["tokens"].get(key, 0)), "errors": errors,
                     "error_rate_pct": round(100.0 * errors / n, 2) if n else None,
                     "requests_before": b, "change_pct": change_pct(n, b)})
    return rows


def _error_counts(df: pd.DataFrame, by: list[str]) -> pd.Series:
    return df[df["error_type"].notna()].groupby(by)["requests"].sum()


def _errors(current: pd.DataFrame, previous: pd.DataFrame) -> list[dict[str, Any]]:
    now, before = _error_counts(current, ["endpoint", "error_type"]), _error_counts(previous, ["endpoint", "error_type"])
    keys = sorted(set(now.index) | set(before.index), key=lambda k: (-int(now.get(k, 0)), k))
    return [{"endpoint": e, "error_type": t, "this_range": int(now.get((e, t), 0)),
             "previous_range": int(before.get((e, t), 0)),
             "change_pct": change_pct(int(now.get((e, t), 0)), int(before.get((e, t), 0)))} for e, t in keys]


def _errors_by_type_only(current: pd.DataFrame, previous: pd.DataFrame) -> list[dict[str, Any]]:
    now, before = _error_counts(current, ["error_type"]), _error_counts(previous, ["error_type"])
    return [{"error_type": t, "this_range": int(now.get(t, 0)), "previous_range": int(before.get(t, 0))}
            for t in sorted(set(now.index) | set(before.index))]


def _requests_by_endpoint(current: pd.DataFrame, start: date, end: date) -> Chart:
    rows: list[dict[str, Any]] = []
    endpoints: list[str] = []
    if len(current):
        per_day = current.pivot_table(index="day", columns="endpoint", values="requests", aggfunc="sum", fill_value=0)
        endpoints = sorted(per_day.columns, key=lambda e: -int(per_day[e].sum()))
        per_day.index = pd.to_datetime(per_day.index).date
        for day in _days(start, end):
            rows.append({"day": day.isoformat(), **{e: int(per_day[e].get(day, 0)) for e in endpoints}})
    return Chart(title="Requests per day by endpoint", kind="stacked", x="day", series=endpoints, rows=rows,
                 unit="requests")


def report_range(start: date | None, end: date | None, today: date) -> tuple[datetime, datetime]:
    """[start, end) at midnight UTC: by default the last full week, Monday to Sunday, before today; a ConfigError
    naming the expected form for a range that is not one."""
    from datetime import timezone

    if end is None:
        end = today - timedelta(days=today.weekday())  # this Monday: the week before it is the last full one
    if start is None:
        start = end - timedelta(days=7)
    if start >= end:
        raise ConfigError("start", "a day before end", got=f"{start} to {end}")
    if (end - start).days > 366:
        raise ConfigError("start, end", "a range of at most 366 days", got=str((end - start).days))
    return (datetime(start.year, start.month, start.day, tzinfo=timezone.utc),
            datetime(end.year, end.month, end.day, tzinfo=timezone.utc))
