"""Changes to the running service that incidents and operators ask for: a restart, then the wait until it is healthy
again (new instances running and the health endpoint answering)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prefect import task

from playground_ops.settings import Platform
from tasks.monitoring.http_probes import _get_within
from tasks.platform.render_platform import client_for
from tasks.retry import retrying


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def read_instances(platform: Platform) -> list[dict[str, Any]]:
    """The service's running instances (id, createdAt)."""
    return client_for(platform).instances(platform.service_id)


@task(**retrying(retries=0, timeout_seconds=300))
def restart_instances(platform: Platform) -> None:
    """Ask the platform to restart the service (Render starts new instances before stopping the old ones). Not
    retried: a second restart is a second disruption, and the wait below tells whether the first one took."""
    client_for(platform).restart(platform.service_id)


@task(**retrying(retries=0, timeout_seconds=None))
def wait_until_healthy(platform: Platform, health_url: str, replaced: list[str], timeout_s: float,
                       poll_s: float = 2.0) -> dict[str, Any]:
    """Until none of the replaced instances runs any more and the health endpoint answers 200 (or the timeout): what
    was seen last, and whether it is healthy."""
    deadline, seen = time.monotonic() + timeout_s, {}
    while True:
        running = [i["id"] for i in client_for(platform).instances(platform.service_id)]
        try:
            status = asyncio.run(_get_within(health_url, 5.0))[0]
        except (TimeoutError, httpx.TransportError) as exc:
            status = f"{type(exc).__name__}"
        seen = {"instances": running, "health": status,
                "replaced": not (set(running) & set(replaced)), "healthy": status == 200}
        if (seen["replaced"] and seen["healthy"]) or time.monotonic() > deadline:
            return seen
        time.sleep(poll_s)


def restart_and_wait(platform: Platform, health_url: str, wait_s: float) -> dict[str, Any]:
    """The one restart of every runbook: restart (sent once, never blindly again), then wait until none of the
    instances from before runs and the health endpoint answers. What was seen; a restart the platform refused, or
    whose taking is unknown, is seen as such (`error`), never raised past the caller's rollback."""
    before = [i["id"] for i in read_instances(platform)]
    done = restart_instances.submit(platform).result(raise_on_failure=False)
    if isinstance(done, BaseException):
        return {"instances": before, "health": "not checked", "replaced": False, "healthy": False,
                "error": f"the restart failed: {done}"}
    return wait_until_healthy(platform, health_url, before, wait_s)


def restart_problem(seen: dict[str, Any], wait_s: float) -> str | None:
    """What restart_and_wait saw, in words, when the restart did not take (None when it did): the platform keeps
    the old instances serving when the new ones are not healthy, so a healthy endpoint alone proves nothing."""
    if seen.get("error"):
        return seen["error"]
    if seen["healthy"] and seen["replaced"]:
        return None
    return (f"the service was not healthy within {wait_s:.0f} s of the restart: health {seen['health']}, old "
            "instances " + ("gone" if seen["replaced"] else "still running (the new ones never took over)"))


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def read_scaling(platform: Platform) -> dict[str, Any]:
    """The service's instance count and autoscaling settings, as the platform states them."""
    from tasks.platform.scaling import current_scaling

    return current_scaling(client_for(platform).get_service(platform.service_id))


@task(**retrying(retries=0, timeout_seconds=300))
def apply_scaling(platform: Platform, plan: Any) -> None:
    """The one change the plan names (not retried: the verification says whether it took)."""
    render = client_for(platform)
    if plan.instances is not None:
        render.scale(platform.service_id, plan.instances)
    elif plan.remove_autoscaling:
        render.delete_autoscaling(platform.service_id)
    else:
        a = plan.autoscaling
        render.set_autoscaling(platform.service_id, True, a["min"], a["max"], a["cpu_percent"], a["memory_percent"])


@task(**retrying(retries=2, backoff=5, timeout_seconds=300))
def restore_scaling(platform: Platform, previous: dict[str, Any]) -> dict[str, Any]:
    """The scaling from before a change put back (autoscaling as it was, or the fixed instance count), each call
    sent only when the platform differs; the scaling as the platform states it afterwards."""
    from tasks.platform.scaling import current_scaling

    render = client_for(platform)
    now = current_scaling(render.get_service(platform.service_id))
    auto = previous.get("autoscaling") or {}
    if auto.get("enabled", bool(auto)):
        if now.get("autoscaling") != auto:
            criteria = auto.get("criteria") or {}
            percent = lambda kind: (criteria.get(kind) or {}).get("percentage") if (criteria.get(kind) or {}).get("enabled") else None  # noqa: E731
            render.set_autoscaling(platform.service_id, True, auto["min"], auto["max"], percent("cpu"), percent("memory"))
    else:
        if now.get("autoscaling"):
            render.delete_autoscaling(platform.service_id)
        if previous.get("instances") is not None and now.get("instances") != previous["instances"]:
            render.scale(platform.service_id, previous["instances"])
    return current_scaling(render.get_service(platform.service_id))


@task(**retrying(retries=0, timeout_seconds=None))
def wait_for_instances(platform: Platform, health_url: str, wanted: int | None, timeout_s: float,
                       poll_s: float = 2.0) -> dict[str, Any]:
    """Until the running instances are `wanted` (any count when None) and the health endpoint answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = client_for(platform).instances(platform.service_id)
        try:
            status = asyncio.run(_get_within(health_url, 5.0))[0]
        except (TimeoutError, httpx.TransportError) as exc:
            status = type(exc).__name__
        seen = {"instances": len(running), "health": status,
                "converged": wanted is None or len(running) == wanted, "healthy": status == 200}
        if (seen["converged"] and seen["healthy"]) or time.monotonic() > deadline:
            return seen
        time.sleep(poll_s)


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def read_deploys(platform: Platform, limit: int = 20) -> list[dict[str, Any]]:
    """The service's newest deploys, newest first."""
    return client_for(platform).deploys(platform.service_id, limit)


@task(**retrying(retries=0, timeout_seconds=None))
def roll_back_to(platform: Platform, deploy_id: str, timeout_s: float) -> dict[str, Any]:
    """Start the rollback to that deploy and wait until the new deploy is live or failed (not retried: a second
    rollback is a second deploy)."""
    render = client_for(platform)
    started = render.rollback(platform.service_id, deploy_id)
    return render.wait_for_deploy(platform.service_id, started["id"], timeout=timeout_s)


# ---------------------------------------------------------------- environment variables: values stay in these tasks

def _fingerprints(values: dict[str, str]) -> dict[str, str]:
    from tasks.platform.env_changes import fingerprint

    return {key: fingerprint(value) for key, value in values.items()}


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def read_env_fingerprints(platform: Platform) -> dict[str, str]:
    """Each of the service's environment variables by name, with its value's fingerprint (never the value)."""
    return _fingerprints(client_for(platform).list_env_vars(platform.service_id))


def _new_values(values: dict[str, str], secret_blocks: dict[str, str]) -> dict[str, str]:
    from prefect.blocks.system import Secret

    new = dict(values)
    for key, block in secret_blocks.items():
        try:
            new[key] = str(Secret.load(block).get())
        except ValueError:
            raise ValueError(f"secret_blocks: expected a Prefect Secret block named {block!r} (for {key})") from None
    return new


@task(**retrying(retries=1, backoff=2, timeout_seconds=60))
def new_fingerprints(values: dict[str, str], secret_blocks: dict[str, str]) -> dict[str, str]:
    """The fingerprints of the values to set, the secret ones read from their Prefect Secret blocks (each within
    the size limit, before anything is written)."""
    from tasks.platform.env_changes import check_value_sizes

    new = _new_values(values, secret_blocks)
    check_value_sizes(new)
    return _fingerprints(new)


def backup_block_name(target: str, run_id: str) -> str:
    return f"playground-ops-env-backup-{target}-{run_id[:8]}"


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def back_up_env(platform: Platform, keys: list[str], name: str) -> str:
    """The current values of the keys about to change, kept encrypted in a Prefect Secret block (absent keys as
    null, to be removed on a restore); the block's name."""
    from prefect.blocks.system import Secret

    live = client_for(platform).list_env_vars(platform.service_id)
    Secret(value={key: live.get(key) for key in keys}).save(name, overwrite=True)
    return name


@task(**retrying(retries=0, timeout_seconds=900))
def write_env(platform: Platform, values: dict[str, str], secret_blocks: dict[str, str], unset: list[str],
              expected: dict[str, str]) -> dict[str, str]:
    """Key by key (never the replace-all call; the client waits out 429s), then read back: the fingerprints that
    differ from the expected ones (empty: everything took)."""
    from pydantic import SecretStr

    render = client_for(platform)
    for key, value in sorted(_new_values(values, secret_blocks).items()):
        render.set_env_var(platform.service_id, key, SecretStr(value))
    for key in sorted(unset):
        render.delete_env_var(platform.service_id, key)
    after = _fingerprints(render.list_env_vars(platform.service_id))
    return {key: after.get(key, "") for key, want in expected.items() if after.get(key, "") != want}


@task(**retrying(retries=2, backoff=5, timeout_seconds=900))
def restore_env(platform: Platform, backup: str) -> dict[str, str]:
    """Put back the values the backup block holds (removing keys that did not exist), key by key; read back: the
    keys that still differ (empty: restored). Safe to repeat: it writes the same values again."""
    import json

    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    kept = Secret.load(backup).get()
    before = kept if isinstance(kept, dict) else json.loads(kept)
    render = client_for(platform)
    live = render.list_env_vars(platform.service_id)
    for key, value in sorted(before.items()):
        if value is None and key in live:
            render.delete_env_var(platform.service_id, key)
        elif value is not None and live.get(key) != value:
            render.set_env_var(platform.service_id, key, SecretStr(value))
    after = render.list_env_vars(platform.service_id)
    return {key: _fingerprints({key: after[key]})[key] if key in after else "" for key, value in before.items()
            if after.get(key) != value}


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def forget_backup(name: str) -> None:
    """Delete the backup block once the change stands (no copy of a secret kept longer than needed)."""
    from prefect.blocks.system import Secret

    Secret.delete(name)  # a classmethod: the block by its name
