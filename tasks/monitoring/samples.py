"""Samples the health check takes, kept durably (a directory or S3, never in the monitored systems), so rules can look
back and reports can show trends: <target>/<YYYY-MM-DD>/<UTC time>.json under OPS_METRICS_URL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from prefect import task

from playground_ops.settings import load_settings
from tasks.reporting.audit import ObjectExists, open_store
from tasks.retry import retrying


def _store():
    settings = load_settings()
    return open_store(settings.metrics_location, settings.s3_endpoint_url)


@task(**retrying(retries=3, backoff=1, timeout_seconds=60))
def save_sample(target: str, sample: dict[str, Any]) -> str:
    """Store one sample under its own time (a retry that finds it already stored is done)."""
    at = datetime.fromisoformat(sample["at"])
    key = f"{target}/{at:%Y-%m-%d}/{at:%Y%m%dT%H%M%S.%fZ}.json"
    store = _store()
    try:
        store.put_new(key, json.dumps(sample, default=str).encode(), "application/json")
    except ObjectExists:
        pass
    return store.link(key)


@task(**retrying(retries=3, backoff=1, timeout_seconds=60))
def read_samples(target: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The samples taken in [since, until), oldest first."""
    store = _store()
    keys: list[str] = []
    day = since.date()
    while day <= until.date():
        keys += store.list(f"{target}/{day:%Y-%m-%d}/")
        day += timedelta(days=1)
    lo, hi = f"{since:%Y%m%dT%H%M%S.%fZ}", f"{until:%Y%m%dT%H%M%S.%fZ}"
    return [json.loads(store.get(k)) for k in sorted(keys) if lo <= k.rsplit("/", 1)[1] < hi]
