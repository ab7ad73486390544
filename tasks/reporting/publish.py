"""Publishing a report: Prefect artifacts with stable keys, and the audit store's hash chain."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from playground_ops.runbook import RUN_REPORTS, RUN_STARTED
from playground_ops.settings import load_settings
from prefect.variables import Variable

from tasks.reporting.audit import StoredReport, append_report, head_variable, open_store
from tasks.reporting.charts import chart_csv
from tasks.reporting.report import Report, render_markdown
from tasks.retry import retrying


def artifact_key(*parts: str) -> str:
    """A stable artifact key (lowercase letters, digits and dashes) so the UI shows each report's history."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")[:120]


def in_context(pool: ThreadPoolExecutor, fn, *args, **kwargs):
    """Submit fn to the pool inside a copy of this run's context, so what it creates belongs to this run."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id)


@task(**retrying(retries=3, backoff=1, timeout_seconds=120))
def publish(report: Report) -> Report:
    """Store the report in the audit store and show it in the Prefect UI; returns it with where it is stored."""
    settings = load_settings()
    report = report.model_copy(deep=True)
    if report.flow_run_id is None:  # this run's own report (a reconcile may store one for a run that crashed)
        report.flow_run_id = _flow_run_id()
        report.started_at = RUN_STARTED.get() or report.started_at
    if report.finished_at is None:
        report.finish()
    report = report.redacted()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    markdown = render_markdown(report)
    charts = {f".{name}.csv": (chart_csv(chart), "text/csv") for name, chart in report.charts.items()}
    with chain_lock(report.runbook, report.target):  # one writer of a chain at a time: its end never forks
        stored = append_report(store, report.model_dump(mode="json"), markdown, report.flow_run_id, charts)
        record_chain_head(store.url, report.runbook, report.target, stored, locked=True)
    report.stored_at = stored.link
    key = artifact_key(report.runbook, report.target)
    where = (f"\n\n---\nStored in the audit store as `{stored.key}` (report #{stored.sequence}, sha256 "
             f"{stored.sha256[:12]}): " + (f"[open it]({stored.web_link}), or read it" if stored.web_link else "read it")
             + f" with `playground-ops audit show {stored.key}`.")
    # one keyed summary per runbook and target (its history is the Artifacts page's row); tables ride along unkeyed.
    # The artifacts are independent writes to the Prefect API: made side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        writes = [in_context(pool, create_markdown_artifact, markdown + where, key=key,
                             description=f"{report.runbook} on {report.target}: {report.status.value}")]
        writes += [in_context(pool, create_table_artifact, rows, description=f"{report.runbook} on {report.target}: {name}")
                   for name, rows in report.tables.items() if rows and len(rows) <= 500]
        if stored.web_link:
            writes.append(in_context(pool, create_link_artifact, stored.web_link, link_text=f"stored report #{stored.sequence}",
                                     description="The report's copy in the audit store"))
        for write in writes:
            write.result()
    get_run_logger().info("Report %s (%s) stored at %s", report.runbook, report.status.value, stored.link)
    published = RUN_REPORTS.get()
    if published is not None:
        published.append(report)
    return report


@task(**retrying(retries=3, backoff=1, timeout_seconds=120))
def stored_report_of(runbook: str, target: str, run_id: str, started_at) -> str | None:
    """Where the audit store holds the report of that run, or None if it stored none."""
    from tasks.reporting.audit import report_key

    settings = load_settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    key = report_key(runbook, target, str(started_at)[:10] if started_at else "", run_id)
    return store.link(key) if key in store.list(key.rsplit("/", 1)[0] + "/") else None


RECENT_KEYS = 32  # the newest reports' keys kept beside the head, so a removed tail is named report by report


@contextmanager
def chain_lock(runbook: str, target: str) -> Iterator[None]:
    """The audit chains' one writer at a time (a Prefect slot of one, held for the milliseconds of an append): runs
    of one runbook on one target that end in the same instant (security incidents opened by one review) append one
    after the other, so a chain never forks and its head never goes backwards."""
    from tasks.slots import AUDIT_HEADS, ensure_limit, hold_slots

    ensure_limit(AUDIT_HEADS)
    with hold_slots([AUDIT_HEADS], 120, f"storing a report of {runbook} on {target}",
                    holders="another run storing its report in the audit chain"):
        yield


def record_chain_head(store_url: str, runbook: str, target: str, stored: StoredReport, locked: bool = False) -> None:
    """Keep the chain's head outside the store (a Prefect Variable), with the keys of the newest reports, so
    `audit verify` notices a removed tail and names each report of it. The head's read and write are one step under
    chain_lock (taken here unless the caller holds it): no head goes backwards and no key is lost."""
    from tasks.reporting.audit import merged_head

    if not locked:
        with chain_lock(runbook, target):
            return record_chain_head(store_url, runbook, target, stored, locked=True)
    name = head_variable(store_url, runbook, target)
    mine = {"store": store_url, "runbook": runbook, "target": target, "key": stored.key, "sha256": stored.sha256,
            "sequence": stored.sequence}
    before = Variable.get(name, default=None)
    Variable.set(name, merged_head(before if isinstance(before, dict) else None, mine, RECENT_KEYS), overwrite=True)


def recorded_chain_heads(store_url: str) -> list[dict]:
    """Every chain head recorded for this store."""
    from prefect import get_client

    prefix = head_variable(store_url, "", "").rstrip("-")
    with get_client(sync_client=True) as client:
        return [v.value for v in client.read_variables() if v.name.startswith(prefix) and isinstance(v.value, dict)
                and v.value.get("store") == store_url]


@task(**retrying(retries=3, backoff=1, timeout_seconds=120))
def read_previous_report(runbook: str, target: str) -> dict | None:
    """The newest stored report of this runbook on this target (what this run compares against), or None."""
    import json

    from tasks.reporting.audit import chain_head

    settings = load_settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    head = chain_head(store, runbook, target)
    return json.loads(store.get(head[0])) if head else None


@task(**retrying(retries=3, backoff=1, timeout_seconds=120))
def read_recent_reports(runbook: str, target: str, max_back: int = 200) -> list[dict]:
    """The stored reports of this runbook on this target, newest first, walking back the chain (at most max_back)."""
    import json

    from tasks.reporting.audit import chain_head

    settings = load_settings()
    store = open_store(settings.audit_location, settings.s3_endpoint_url)
    head = chain_head(store, runbook, target)
    key, found = (head[0] if head else None), []
    while key is not None and len(found) < max_back:
        body = json.loads(store.get(key))
        found.append(body)
        key = (body.get("chain") or {}).get("previous_key")
    return found
