"""What the incident runbook gathers: the impact from the requests table, and the timeline's raw entries from where
they are already recorded (Prefect events, the platform's deploys and error logs, the audit store's reports)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema, Platform, load_settings
from tasks.database.postgres import connect, rows_as_dicts
from tasks.platform.render_platform import client_for
from tasks.reporting.audit import open_store
from tasks.retry import retrying


@task(**retrying(retries=2, backoff=1, timeout_seconds=120))
def read_impact(database_url: SecretStr, schema: AppSchema, since: datetime) -> dict[str, Any]:
    """Since `since`: requests, server errors, the users and endpoints they hit, and the first and last error."""
    names = {k: sql.Identifier(getattr(schema, k)) for k in ("endpoint", "status_code", "request_user_id", "created_at")}
    requests = sql.Identifier(*schema.requests.split("."))
    overall = sql.SQL("""
SELECT count(*) AS requests, count(*) FILTER (WHERE {status_code} >= 500) AS server_errors,
       count(DISTINCT {request_user_id}) FILTER (WHERE {status_code} >= 500) AS users_affected,
       count(DISTINCT {request_user_id}) AS users_active,
       min({created_at}) FILTER (WHERE {status_code} >= 500) AS first_error,
       max({created_at}) FILTER (WHERE {status_code} >= 500) AS last_error
FROM {requests} WHERE {created_at} >= %(since)s""").format(requests=requests, **names)
    endpoints = sql.SQL("""
SELECT {endpoint} AS endpoint, count(*) AS requests, count(*) FILTER (WHERE {status_code} >= 500) AS server_errors
FROM {requests} WHERE {created_at} >= %(since)s GROUP BY 1
HAVING count(*) FILTER (WHERE {status_code} >= 500) > 0 ORDER BY 3 DESC LIMIT 20""").format(requests=requests, **names)
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '60s'")
        row = rows_as_dicts(conn.execute(overall, {"since": since}))[0]
        row["endpoints"] = rows_as_dicts(conn.execute(endpoints, {"since": since}))
    return row


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def read_alert_events(target: str, since: datetime) -> list[dict[str, Any]]:
    """The alerts that began firing on this target since then (the health check's Prefect events)."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    wanted = EventFilter(occurred=EventOccurredFilter(since=since, until=datetime.now(timezone.utc)),
                         event=EventNameFilter(prefix=["playground-ops.alert."]),
                         resource=EventResourceFilter(id_prefix=[f"playground-ops.alert.{target}."]))
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=wanted, limit=50)  # the API's most per page
        events = list(page.events)
        while page.next_page and len(events) < 500:
            page = client.read_events_page(page.next_page)
            events += page.events
    return [{"at": e.occurred, "source": "alert", "what": f"{e.resource.get('prefect.resource.name')} "
             f"({e.resource.get('playground-ops.severity')}) fired" + (f", value {e.payload['value']}"
                                                                          if e.payload.get("value") is not None else "")}
            for e in events]


@task(**retrying(retries=1, backoff=2, timeout_seconds=120))
def read_platform_history(platform: Platform, since: datetime) -> list[dict[str, Any]]:
    """The platform's deploys since then, its events (restarts, failed starts, instance count and autoscaling
    changes), and the first error log lines (the guide's `--level error`)."""
    render = client_for(platform)
    now = datetime.now(timezone.utc)
    entries = [{"at": d.get("createdAt"), "source": "platform",
                "what": f"deploy {d.get('id')} {d.get('status')} (trigger {d.get('trigger', 'api')})"}
               for d in render.deploys(platform.service_id, limit=20) if (d.get("createdAt") or "") >= since.isoformat()]
    entries += [{"at": e.get("timestamp"), "source": "platform", "what": event_text(e)}
                for e in render.events(platform.service_id, since, now) if not e.get("type", "").startswith("deploy_")]
    logs = render.logs(platform.owner_id, platform.service_id, since, now, limit=20, level="error")
    entries += [{"at": line.get("timestamp"), "source": "error log", "what": str(line.get("message", ""))[:200]}
                for line in logs[:5]]
    return entries


def event_text(event: dict[str, Any]) -> str:
    details = event.get("details") or {}
    return (event.get("type", "event").replace("_", " ")
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(details.items())) + ")" if details else ""))


@task(**retrying(retries=1, backoff=1, timeout_seconds=120))
def read_runbook_runs(target: str, since: datetime) -> list[dict[str, Any]]:
    """The runbook runs on this target since then, from their reports in the audit store (health checks only where
    their status or firing alerts changed, so the timeline stays readable)."""
    settings = load_settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    days = {(since + timedelta(days=d)).strftime("%Y-%m-%d") for d in range((datetime.now(timezone.utc) - since).days + 2)}
    runs = []
    for key in store.list(""):
        parts = key.split("/")
        if len(parts) != 4 or parts[1] != target or parts[2] not in days or not key.endswith(".json"):
            continue
        body = json.loads(store.get(key))
        started = body.get("started_at") or ""
        if started < since.isoformat():
            continue
        firing = sorted(r["rule"] for r in body.get("tables", {}).get("alert_rules", []) if r.get("state") == "firing")
        said = body.get("summary") or next((f.get("message", "") for f in body.get("findings", [])
                                            if f.get("severity") == "critical"), "")  # a failed run: why it failed
        runs.append({"at": started, "source": "runbook", "runbook": body.get("runbook"), "status": body.get("status"),
                     "firing": firing, "what": f"{body.get('runbook')}: {body.get('status')}: {said[:160]}"})
    return runs
