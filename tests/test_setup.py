"""`playground-ops setup` against a real Prefect server: everything exists once, however often it runs."""

from __future__ import annotations

from tests.conftest import WEBHOOK_TOKEN, cli


def test_setup_twice_creates_nothing_twice(ops):
    from prefect import get_client

    from deployments.setup import FAILURE_AUTOMATION, GLOBAL_LIMITS

    second = cli("setup")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout  # the session's fixture already created everything once
    with get_client(sync_client=True) as client:
        automations = [a for a in client.read_automations() if a.name == FAILURE_AUTOMATION]
        assert len(automations) == 1 and automations[0].enabled
        assert client.read_work_pool("playground-ops").type == "process"
        for name, limit in GLOBAL_LIMITS.items():
            assert client.read_global_concurrency_limit_by_name(name).limit == limit
        blocks = [b for b in client.read_block_documents() if b.name == "playground-ops-notifications"]
        assert len(blocks) == 1


def test_notification_block_keeps_the_webhook_url_secret(ops):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        block = next(b for b in client.read_block_documents(include_secrets=False)
                     if b.name == "playground-ops-notifications")
        assert WEBHOOK_TOKEN not in str(block.data)  # what the UI and API show: obfuscated
