"""Notifications to operators, through the Prefect notification block that `playground-ops setup` creates."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.blocks.core import Block

from playground_ops.redact import redact
from tasks.retry import retrying

BLOCK_TYPES = ("custom-webhook", "slack-webhook")


def load_notification_block(name: str) -> Block | None:
    """The notification block of that name, whichever supported type it is; None if there is none."""
    for slug in BLOCK_TYPES:
        try:
            return Block.load(f"{slug}/{name}")
        except ValueError:
            continue
    return None


@task(**retrying(retries=3, backoff=2, timeout_seconds=30))
def send_notification(subject: str, body: str, block_name: str) -> bool:
    """Send one notification to the operators; False (and a warning in the log) if none is configured."""
    block = load_notification_block(block_name)
    if block is None:
        get_run_logger().warning("No notification block named %r: run `playground-ops setup`.", block_name)
        return False
    block.notify(body=redact(body), subject=redact(subject))
    return True
