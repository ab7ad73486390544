"""The incident record in the audit store: `INC-YYYYMMDD-N`, one object per step, appended and never rewritten, under
`incidents/<target>/<id>/steps/NNN-<kind>.json` (the audit chains' verification leaves them to this module).

One incident per alert: a start for an alert that already has an open incident attaches to it; two starts in the
same instant both create one, and the later number merges into the earlier (put_new is an exclusive create, on a
directory and on S3 alike)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from prefect import task

from playground_ops.redact import redact
from playground_ops.settings import load_settings
from tasks.reporting.audit import ObjectExists, Store, open_store
from tasks.retry import retrying

INCIDENT_ID = re.compile(r"^INC-\d{8}-\d+$")
CLOSED = ("resolved", "merged")


def _store() -> Store:
    settings = load_settings()
    return open_store(settings.audit_location, settings.s3_endpoint_url)


def _prefix(target: str, incident: str | None = None) -> str:
    return f"incidents/{target}/" + (f"{incident}/steps/" if incident else "")


def read_incidents(store: Store, target: str) -> dict[str, list[dict[str, Any]]]:
    """Every incident of the target with its steps in order."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for key in store.list(_prefix(target)):
        parts = key.split("/")
        if len(parts) == 5 and parts[3] == "steps" and INCIDENT_ID.match(parts[2]) and key.endswith(".json"):
            found.setdefault(parts[2], []).append((parts[4], json.loads(store.get(key))))
    return {incident: [step for _, step in sorted(steps, key=lambda s: s[0])] for incident, steps in found.items()}


def status_of(steps: list[dict[str, Any]]) -> str:
    """open, resolved or merged (into another incident): the last closing step decides."""
    closing = [s["kind"] for s in steps if s["kind"] in CLOSED]
    return closing[-1] if closing else "open"


def _number(incident: str) -> tuple[str, int]:
    day, n = incident.split("-")[1:]
    return day, int(n)


def _put_step(store: Store, target: str, incident: str, kind: str, data: dict[str, Any]) -> int:
    step = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kind": kind, **data}
    body = redact(json.dumps(step, default=str, sort_keys=True)).encode()
    seq = len(store.list(_prefix(target, incident)))
    while True:
        try:
            store.put_new(f"{_prefix(target, incident)}{seq:03d}-{kind}.json", body, "application/json")
            return seq
        except ObjectExists:  # another step landed first: take the next number
            seq += 1


def _open_for(incidents: dict[str, list[dict]], alert: str | None) -> list[str]:
    return sorted((i for i, steps in incidents.items() if alert and steps and steps[0].get("alert") == alert
                   and status_of(steps) == "open"), key=_number)


def owner_run(steps: list[dict[str, Any]]) -> str | None:
    """The run that works the incident: the one that opened it, or the last to take it over."""
    owners = [s.get("run_id") for s in steps if s.get("kind") in ("opened", "taken-over")]
    return owners[-1] if owners else None


def run_alive(run_id: str | None) -> bool:
    """Whether that flow run is still going (not in a final state); an unknown run is not."""
    from uuid import UUID

    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    if not run_id:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
    except (ObjectNotFound, ValueError):
        return False
    return state is not None and not state.is_final()


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def open_incident(target: str, severity: str, summary: str, alert: str | None,
                  run_id: str) -> tuple[str, str, str | None]:
    """The incident this run works, and how: "opened" (a new one), "attached" (the same alert's incident, whose run
    is alive and works it), or "taken-over" (that incident's run has ended without resolving it: this run works it
    now, and the record says so); with the run it was taken from."""
    store = _store()
    incidents = read_incidents(store, target)
    existing = _open_for(incidents, alert)
    if existing:
        owner = owner_run(incidents[existing[0]])
        if run_alive(owner):
            _put_step(store, target, existing[0], "attached", {"run_id": run_id})
            return existing[0], "attached", owner
        _put_step(store, target, existing[0], "taken-over", {"run_id": run_id, "from_run": owner, "severity": severity,
                                                             "why": "its run ended without resolving it"})
        return existing[0], "taken-over", owner
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    numbers = [_number(i)[1] for i in read_incidents(store, target) if _number(i)[0] == day]
    n = max(numbers, default=0) + 1
    opened = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kind": "opened", "severity": severity,
              "summary": summary, "alert": alert, "run_id": run_id}
    while True:
        incident = f"INC-{day}-{n}"
        try:
            store.put_new(f"{_prefix(target, incident)}000-opened.json",
                          redact(json.dumps(opened, sort_keys=True)).encode(), "application/json")
            break
        except ObjectExists:
            n += 1
    earlier = [i for i in _open_for(read_incidents(store, target), alert) if _number(i) < _number(incident)]
    if earlier:  # started in the same instant as another: one incident, the earlier
        _put_step(store, target, incident, "merged", {"into": earlier[0]})
        _put_step(store, target, earlier[0], "attached", {"run_id": run_id})
        return earlier[0], "attached", owner_run(read_incidents(store, target)[earlier[0]])
    return incident, "opened", None


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def record_step(target: str, incident: str, kind: str, data: dict[str, Any]) -> int:
    """Append one step to the incident's record; its sequence number."""
    return _put_step(_store(), target, incident, kind, data)


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def read_record(target: str, incident: str) -> list[dict[str, Any]]:
    return read_incidents(_store(), target).get(incident, [])


@task(**retrying(retries=2, backoff=1, timeout_seconds=60))
def incident_since(target: str, key: str, since: datetime) -> tuple[str, str] | None:
    """The incident opened for this key (a finding's) since `since`, and its status: resolved or merged, open (its run
    alive and working it), or orphaned (open, but its run has ended: a new run takes it over); None when there is
    none."""
    incidents = read_incidents(_store(), target)
    found = [i for i, steps in incidents.items() if steps and steps[0].get("alert") == key
             and datetime.fromisoformat(steps[0]["at"]) >= since]
    if not found:
        return None
    newest = max(found, key=_number)
    status = status_of(incidents[newest])
    if status == "open" and not run_alive(owner_run(incidents[newest])):
        status = "orphaned"
    return newest, status


@task(**retrying(retries=1, backoff=2, timeout_seconds=60))
def start_incident_run(deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
    """A run of an incident runbook's deployment, started now on its own (it outlives the run that starts it): its
    id. The idempotency key makes a retry after a lost answer return the same run, never a second one. Raised when
    the deployment is not registered (serve or deploy it)."""
    from prefect.deployments import run_deployment

    return str(run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False,
                              idempotency_key=idempotency_key, tags=["security-incident"]).id)
