"""`playground-ops setup` against a real Prefect server: everything exists once, however often it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import WEBHOOK_TOKEN, cli


def test_setup_twice_creates_nothing_twice(ops):
    from prefect import get_client

    from deployments.setup import FAILURE_AUTOMATION, GLOBAL_LIMITS, LOST_RUN_AUTOMATION

    second = cli("setup")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout  # the session's fixture already created everything once
    with get_client(sync_client=True) as client:
        for name in (FAILURE_AUTOMATION, LOST_RUN_AUTOMATION):
            automations = [a for a in client.read_automations() if a.name == name]
            assert len(automations) == 1 and automations[0].enabled
        lost = next(a for a in client.read_automations() if a.name == LOST_RUN_AUTOMATION)
        assert lost.trigger.within.total_seconds() == 105  # OPS_LOST_RUN_SECONDS' default
        pool = client.read_work_pool("playground-ops")
        assert pool.type == "process"  # and every run it starts sends heartbeats:
        variables = pool.base_job_template["variables"]["properties"]
        assert variables["env"]["default"] == {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "OPS_WORKERS": "1"}
        assert variables["stream_output"]["default"] is False  # a run never goes down with its worker's pipe
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


def test_targets_file_reads_secrets_from_prefect_secret_blocks(ops, tmp_path, monkeypatch):
    from prefect.blocks.system import Secret

    from playground_ops.settings import get_target

    Secret(value="postgresql://app:blockpw-5521@db.internal:5432/app").save("prod-db-url", overwrite=True)
    f = tmp_path / "targets.yaml"
    f.write_text("targets:\n  - name: prod\n    health_url: https://x/health\n    database_url: {secret: prod-db-url}\n"
                 "    redis_url: redis://h:6379/0\n  - name: other\n    health_url: https://y/health\n"
                 "    database_url: {secret: no-such-block}\n    redis_url: redis://h:6379/0\n")
    monkeypatch.setenv("OPS_TARGETS_FILE", str(f))
    from playground_ops.errors import ConfigError

    import pytest

    with pytest.raises(ConfigError, match=r"targets\[1\] \(other\)\.database_url: expected a Prefect Secret block named 'no-such-block'"):
        get_target("prod")
    f.write_text(f.read_text().split("  - name: other")[0])
    target = get_target("prod")
    assert target.database_name == "app"
    assert "blockpw-5521" not in str(target) and "blockpw-5521" not in str(target.describe())


def test_every_runbook_parameter_has_a_description_in_the_run_form():
    """The Prefect UI's Run form shows each parameter's description, taken from the runbook's docstring."""
    from prefect.utilities.callables import parameter_schema

    from deployments.catalog import load_catalog

    for spec in load_catalog().values():
        assert spec.description, spec.name
        schema = parameter_schema(spec.load_flow().fn).model_dump()
        assert {name for name, field in schema["properties"].items() if not field.get("description")} == set(), spec.name


def test_the_pull_step_finds_the_hosts_checkout_and_refuses_a_folder_that_is_not_one(tmp_path):
    from playground_ops.deploy_steps import checkout_dir

    here = Path(__file__).resolve().parent.parent
    assert checkout_dir({}) == here  # the checkout this host's playground_ops is installed from
    assert checkout_dir({"PLAYGROUND_OPS_DIR": str(here)}) == here
    with pytest.raises(ValueError, match=r"^PLAYGROUND_OPS_DIR: expected a playground-ops checkout .* got /nowhere"):
        checkout_dir({"PLAYGROUND_OPS_DIR": "/nowhere"})


def test_setup_without_a_webhook_says_loudly_that_no_one_will_be_notified(ops):
    result = cli("setup", env={"OPS_WEBHOOK_URL": "", "OPS_SLACK_WEBHOOK_URL": ""})
    assert result.returncode == 0, result.stderr
    assert "skipped   failure automation: NO ONE WILL BE NOTIFIED when a runbook fails or crashes" in result.stdout
