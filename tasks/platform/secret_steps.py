"""secret-rotation's steps against the platform and the service. Secret values exist only inside these tasks and in
the encrypted Prefect Secret block that holds the rollback copy: every task returns fingerprints, names or statuses,
never a value, so no value reaches a result, a log line, a report or an exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random_source
import time
from datetime import datetime, timezone

import httpx
from prefect import task
from pydantic import SecretStr

from playground_ops.settings import Platform, Rotation, RotatedSecret
from tasks.platform.env_changes import fingerprint
from tasks.platform.render_platform import client_for
from tasks.platform.rotation import previous_name, token_row
from tasks.retry import retrying

CHECK_SUBJECT = "playground-ops-rotation-check"
GENERATORS = {
    "base64-32": lambda: base64.b64encode(random_source.token_bytes(32)).decode(),  # openssl rand -base64 32
    "hex-32": lambda: random_source.token_hex(32),
    "urlsafe-32": lambda: random_source.token_urlsafe(32),
}


def block_name(target: str, run_id: str) -> str:
    return f"playground-ops-rotation-{target}-{run_id[:8]}"


def _load(block: str) -> dict[str, dict[str, str]]:
    from prefect.blocks.system import Secret

    kept = Secret.load(block).get()
    return kept if isinstance(kept, dict) else json.loads(kept)


def _save(block: str, value: dict[str, dict[str, str]]) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(block, overwrite=True)


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def create_pending(platform: Platform, declared: list[RotatedSecret], block: str) -> dict[str, dict[str, str]]:
    """createSecret: a new value per secret (its declared generator), kept with the current one in the encrypted
    block; the fingerprints {name: {current, pending}}. Repeated (a retry), it keeps the values already made."""
    from prefect.exceptions import ObjectNotFound

    live = client_for(platform).list_env_vars(platform.service_id)
    try:
        kept = _load(block)
    except (ValueError, ObjectNotFound):
        kept = {"old": {}, "new": {}}
    for s in declared:
        if s.name not in kept["new"]:
            kept["old"][s.name], kept["new"][s.name] = live[s.name], GENERATORS[s.generator]()
    _save(block, kept)
    return {s.name: {"current": fingerprint(kept["old"][s.name]), "pending": fingerprint(kept["new"][s.name])}
            for s in declared}


def _write_and_read_back(platform: Platform, writes: dict[str, str | None], expected: dict[str, str]) -> list[str]:
    """Key by key (None: delete), never the replace-all call; then the keys whose fingerprint is not the expected."""
    render = client_for(platform)
    live = render.list_env_vars(platform.service_id)
    for key, value in writes.items():
        if value is None:
            if key in live:
                render.delete_env_var(platform.service_id, key)
        elif live.get(key) != value:
            render.set_env_var(platform.service_id, key, SecretStr(value))
    after = {k: fingerprint(v) for k, v in render.list_env_vars(platform.service_id).items()}
    return [k for k, want in expected.items() if after.get(k, "") != want]


@task(**retrying(retries=0, timeout_seconds=900))
def set_pending(platform: Platform, block: str) -> list[str]:
    """setSecret: <NAME>_PREVIOUS = the current value first (so no instance ever lacks it), then <NAME> = the new
    value; read back: the keys that differ (empty: set)."""
    kept = _load(block)
    writes: dict[str, str | None] = {}
    for name in kept["old"]:
        writes[previous_name(name)] = kept["old"][name]
    for name in kept["new"]:
        writes[name] = kept["new"][name]
    expected = {k: fingerprint(v) for k, v in writes.items()}
    return _write_and_read_back(platform, writes, expected)


@task(**retrying(retries=2, backoff=5, timeout_seconds=900))
def put_back_current(platform: Platform, block: str) -> list[str]:
    """The rollback: <NAME> = the value it had before the rotation, <NAME>_PREVIOUS removed; the keys that still
    differ (empty: as before). Safe to repeat."""
    kept = _load(block)
    writes: dict[str, str | None] = {name: value for name, value in kept["old"].items()}
    writes.update({previous_name(name): None for name in kept["old"]})
    expected = {k: fingerprint(v) for k, v in writes.items()}
    return _write_and_read_back(platform, writes, expected)


@task(**retrying(retries=0, timeout_seconds=900))
def remove_previous(platform: Platform, names: list[str]) -> list[str]:
    """finishSecret: <NAME>_PREVIOUS removed, key by key; the keys still there."""
    return _write_and_read_back(platform, {previous_name(n): None for n in names},
                                {previous_name(n): "" for n in names})


@task(**retrying(retries=2, backoff=5, timeout_seconds=900))
def put_back_previous(platform: Platform, block: str) -> list[str]:
    """Undo a finish: <NAME>_PREVIOUS = the value from before the rotation again; the keys that differ."""
    kept = _load(block)
    writes: dict[str, str | None] = {previous_name(n): v for n, v in kept["old"].items()}
    return _write_and_read_back(platform, writes, {k: fingerprint(v) for k, v in writes.items() if v is not None})


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def keep_rollback_copy_only(block: str) -> None:
    """The new values are live now: the block keeps only the values from before (what a rollback needs)."""
    kept = _load(block)
    _save(block, {"old": kept["old"], "new": {}})


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def forget_block(block: str) -> None:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        Secret.delete(block)
    except (ValueError, ObjectNotFound):
        pass


def sign(subject: str, secret: str, ttl: int = 300) -> str:
    """An HS256 JWT, as the application signs its tokens."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": subject, "exp": int(time.time()) + ttl}).encode())
    signature = b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def _answers(base_url: str, rotation: Rotation, kind: str, token: str, tries: int) -> list[int | str]:
    """The status of `tries` calls, each on a new connection (so spread over the instances behind the port)."""
    statuses: list[int | str] = []
    for _ in range(tries):
        try:
            with httpx.Client(timeout=10) as http:
                if kind == "access":
                    r = http.get(base_url + rotation.check_path, headers={"Authorization": f"Bearer {token}"})
                else:
                    r = http.post(base_url + rotation.refresh_path, json={"refresh_token": token})
            statuses.append(r.status_code)
        except httpx.TransportError as exc:
            statuses.append(type(exc).__name__)
    return statuses


@task(**retrying(retries=0, timeout_seconds=300))
def check_tokens(base_url: str, rotation: Rotation, block: str, expect: dict[str, int], tries: int = 6) -> list[dict]:
    """testSecret: for each secret the service proves with a token, a token signed with the new value and one signed
    with the value from before, each sent `tries` times; expect: {"new": status, "previous": status}. Rows of
    secret, signed with, expected, answers, ok."""
    kept = _load(block)
    rows = []
    for s in rotation.secrets:
        if s.token == "none" or s.name not in kept["old"]:
            continue
        values = {"new": kept["new"].get(s.name), "previous": kept["old"][s.name]}
        for which, status in expect.items():
            if values.get(which) is None:
                continue
            token = sign(CHECK_SUBJECT, values[which])
            rows.append(token_row(s.name, which, _answers(base_url, rotation, s.token, token, tries), status))
    return rows


@task(**retrying(retries=0, timeout_seconds=300))
def check_live_tokens(base_url: str, platform: Platform, rotation: Rotation, names: list[str], tries: int = 6) -> list[dict]:
    """After a finish: a token signed with each secret's value as the platform holds it now is accepted."""
    live = client_for(platform).list_env_vars(platform.service_id)
    return [token_row(s.name, "current", _answers(base_url, rotation, s.token, sign(CHECK_SUBJECT, live[s.name]), tries),
                      200) for s in rotation.secrets if s.name in names and s.token != "none" and s.name in live]


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def previous_secret_use(platform: Platform, names: list[str], since: datetime) -> dict[str, int]:
    """How many times, since `since`, the service logged that a user's token was accepted only by <NAME>_PREVIOUS
    (tokens that would be refused once it is removed); this runbook's own check tokens do not count."""
    render = client_for(platform)
    now = datetime.now(timezone.utc)
    return {n: sum(CHECK_SUBJECT not in line.get("message", "") for line in render.logs(
        platform.owner_id, platform.service_id, since, now, limit=100, text=f"accepted with {previous_name(n)}"))
        for n in names}


def schedule_finish(target: str, when: datetime) -> str | None:
    """A run of this deployment's finish at `when`, if this run belongs to a deployment; its id."""
    from prefect.deployments import run_deployment
    from prefect.runtime import deployment

    if not deployment.id:
        return None
    run = run_deployment("secret-rotation/secret-rotation", parameters={"target": target, "action": "finish"},
                         scheduled_time=when, timeout=0, tags=["scheduled-finish"])
    return str(run.id)


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def cancel_scheduled_finishes(target: str, why: str) -> list[str]:
    """The finish runs scheduled for this target (a rotation's end of grace, a postponed finish), cancelled once a
    finish has removed the previous values: left Scheduled, they would run later for nothing. Their ids."""
    from prefect import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
                                                FlowRunFilterTags)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    waiting = FlowRunFilter(tags=FlowRunFilterTags(all_=["scheduled-finish"]),
                            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    cancelled = []
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=waiting):
            if (run.parameters or {}).get("target") == target and (run.parameters or {}).get("action") == "finish":
                client.set_flow_run_state(run.id, Cancelled(message=why), force=True)
                cancelled.append(str(run.id))
    return cancelled


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def new_value_live(platform: Platform, block: str) -> bool:
    """Whether any secret of the rotation kept in the block has its new value live as <NAME>: then tokens may have
    been signed with it, and the rotation can only be completed, never undone."""
    kept = _load(block)
    live = client_for(platform).list_env_vars(platform.service_id)
    return any(live.get(name) == value for name, value in kept["new"].items()) or not kept["new"]
