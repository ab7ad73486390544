"""The audit store: hash-chained reports that verify names any changed, removed or inserted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.reporting.audit import LocalStore, ObjectExists, append_report, canonical_json, sha256, verify_store
from tasks.reporting.report import Report, render_markdown
from tests.conftest import cli


def store_reports(store, n: int, runbook: str = "health-check", target: str = "prod") -> list[str]:
    keys = []
    for i in range(n):
        report = Report(runbook=runbook, target=target, summary=f"run {i}")
        report.add("info", f"finding {i}")
        stored = append_report(store, report.model_dump(mode="json"), render_markdown(report), f"run-{i:03d}")
        keys.append(stored.key)
    return keys


def problems(store) -> list[tuple[str, str]]:
    return [(p.kind, p.key) for check in verify_store(store) for p in check.problems]


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def test_intact_chain_verifies(tmp_path):
    store = LocalStore(tmp_path)
    keys = store_reports(store, 4)
    assert problems(store) == []
    bodies = [json.loads(store.get(k)) for k in keys]
    assert [b["chain"]["sequence"] for b in bodies] == [1, 2, 3, 4]
    assert bodies[2]["chain"]["previous_sha256"] == sha256(store.get(keys[1]))
    assert store.get(keys[0].replace(".json", ".md")).decode().startswith("# ")


def test_changed_report_is_named_even_when_its_hash_file_is_rewritten_too(tmp_path):
    store = LocalStore(tmp_path)
    keys = store_reports(store, 4)
    body = json.loads(store.get(keys[1]))
    body["status"] = "ok"
    body["findings"] = []
    data = canonical_json(body)
    writable(tmp_path / keys[1]).write_bytes(data)
    assert ("changed", keys[1]) in problems(store)
    writable(tmp_path / keys[1].replace(".json", ".sha256")).write_text(sha256(data) + "\n")
    assert problems(store) == [("changed", keys[1])]


def test_removed_report_is_named(tmp_path):
    store = LocalStore(tmp_path)
    keys = store_reports(store, 4)
    (tmp_path / keys[2]).unlink()
    assert problems(store) == [("removed", keys[2])]


def test_inserted_report_is_named(tmp_path):
    store = LocalStore(tmp_path)
    keys = store_reports(store, 4)
    forged = dict(json.loads(store.get(keys[1])), summary="forged", flow_run_id="run-forged")
    forged["chain"] = {"sequence": 3, "previous_key": keys[1], "previous_sha256": sha256(store.get(keys[1]))}
    data = canonical_json(forged)
    key = keys[1].rsplit("/", 1)[0] + "/run-forged.json"
    store.put_new(key, data, "application/json")
    store.put_new(key.replace(".json", ".sha256"), sha256(data).encode(), "text/plain")
    assert problems(store) == [("inserted", key)]


def test_reports_are_never_overwritten_and_a_retried_store_does_not_chain_twice(tmp_path):
    store = LocalStore(tmp_path)
    keys = store_reports(store, 1)
    with pytest.raises(ObjectExists):
        store.put_new(keys[0], b"{}", "application/json")
    report = Report(runbook="health-check", target="prod")
    first = append_report(store, report.model_dump(mode="json"), "md", "run-x")
    again = append_report(store, report.model_dump(mode="json"), "md", "run-x")
    assert first.key == again.key and first.sha256 == again.sha256
    assert len([k for k in store.list() if k.endswith(".json")]) == 2


def test_verify_command_exits_1_naming_the_changed_report(tmp_path, prefect_server):
    keys = store_reports(LocalStore(tmp_path), 3)
    ok = cli("audit", "verify", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert ok.returncode == 0 and "health-check/prod: 3 reports, ok" in ok.stdout
    writable(tmp_path / keys[0]).write_text("{}")
    bad = cli("audit", "verify", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert bad.returncode == 1
    assert f"changed: {keys[0]}" in bad.stdout
    listed = cli("audit", "list", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert listed.stdout.split() == keys
    shown = cli("audit", "show", keys[1], env={"OPS_AUDIT_URL": str(tmp_path)})
    assert "health-check on prod" in shown.stdout


def test_s3_store_encrypts_chains_and_never_overwrites(s3_endpoint):
    import boto3

    from tasks.reporting.audit import open_store

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ops-audit")
    store = open_store("s3://ops-audit/reports", endpoint_url=s3_endpoint)
    keys = store_reports(store, 3)
    assert problems(store) == []
    head = store.client.head_object(Bucket="ops-audit", Key=f"reports/{keys[0]}")
    assert head["ServerSideEncryption"] == "AES256"
    with pytest.raises(ObjectExists):
        store.put_new(keys[0], b"{}", "application/json")
    assert json.loads(store.get(keys[0]))["summary"] == "run 0"


def test_verify_notices_the_newest_reports_removed(tmp_path, prefect_server):
    """The chain's head is kept outside the store (a Prefect Variable), so removing the tail is noticed."""
    from tasks.reporting.publish import record_chain_head

    store = LocalStore(tmp_path)
    keys = []
    for i in range(3):
        report = Report(runbook="health-check", target="tail", summary=f"run {i}")
        stored = append_report(store, report.model_dump(mode="json"), render_markdown(report), f"tail-{i:03d}")
        record_chain_head(store.url, "health-check", "tail", stored)
        keys.append(stored.key)
    ok = cli("audit", "verify", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert ok.returncode == 0 and "health-check/tail: 3 reports, ok" in ok.stdout
    for key in keys[1:]:  # the two newest reports, removed whole: the rest of the chain is intact
        for suffix in (".json", ".md", ".sha256"):
            (tmp_path / key.removesuffix(".json")).with_suffix(suffix).unlink()
    assert problems(store) == []  # the store alone cannot tell
    bad = cli("audit", "verify", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert bad.returncode == 1
    assert (f"removed: {keys[2]}: the newest report (sequence 3, recorded outside the store) is missing; "
            "the store's chain ends at sequence 1") in bad.stdout
    assert (f"removed: {keys[1]}: a report of the removed tail (sequence 2, recorded outside the store) is missing; "
            "the store's chain ends at sequence 1") in bad.stdout


@pytest.mark.parametrize("command", ["verify", "list"])
def test_a_location_that_does_not_exist_is_an_error_not_an_empty_store(tmp_path, prefect_server, command):
    out = cli("audit", command, env={"OPS_AUDIT_URL": str(tmp_path / "no-such-dir")})
    assert out.returncode == 2 and "no reports stored yet" not in out.stdout and out.stdout == ""
    assert out.stderr.strip() == f"error: OPS_AUDIT_URL: the audit store {tmp_path / 'no-such-dir'} does not exist or cannot be read"


@pytest.mark.parametrize("args", [["show", "../x"], ["show", "/etc/passwd"], ["show", "health-check/../../x/y"],
                                  ["list", "--runbook", ".."], ["list", "--target", "a/b"]])
def test_keys_that_would_leave_the_store_are_refused_in_one_line(tmp_path, args):
    store_reports(LocalStore(tmp_path / "audit"), 1)
    (tmp_path / "x.md").write_text("outside the store")
    out = cli("audit", *args, env={"OPS_AUDIT_URL": str(tmp_path / "audit")})
    assert out.returncode == 2 and "outside the store" not in out.stdout
    assert len(out.stderr.strip().splitlines()) == 1 and "expected a key of the form" in out.stderr


def test_both_stores_refuse_a_key_outside_their_layout(tmp_path, s3_endpoint):
    import boto3

    from playground_ops.errors import ConfigError
    from tasks.backup.store import open_backup_store
    from tasks.reporting.audit import open_store

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ops-keys")
    stores = [LocalStore(tmp_path), open_store("s3://ops-keys/reports", endpoint_url=s3_endpoint)]
    for store in stores:
        for key in ("../outside.json", "/abs/path.json", "a/./b.json", "a//b.json"):
            with pytest.raises(ConfigError, match="a relative key inside the store"):
                store.get(key)
    for store in (open_backup_store(str(tmp_path / "b")), open_backup_store("s3://ops-keys/b", s3_endpoint)):
        with pytest.raises(ConfigError, match="a relative key inside the store"):
            store.get_json("../../etc/manifest.json")


def test_reports_of_one_chain_published_at_the_same_instant_all_reach_its_head(tmp_path, prefect_server):
    """Runs of one runbook on one target ending together (security incidents opened by one review): the head's
    first creation races, its writes interleave; none fails, the head is the newest, every key is named beside it."""
    from concurrent.futures import ThreadPoolExecutor

    from prefect.variables import Variable

    from tasks.reporting.audit import head_variable
    from tasks.reporting.publish import record_chain_head

    store = LocalStore(tmp_path)
    stored = []
    for i in range(6):
        report = Report(runbook="security-incident", target="race", summary=f"run {i}")
        stored.append(append_report(store, report.model_dump(mode="json"), render_markdown(report), f"race-{i:03d}"))
    with ThreadPoolExecutor(max_workers=6) as pool:  # in reverse: the newest report's head written first
        for future in [pool.submit(record_chain_head, store.url, "security-incident", "race", s) for s in reversed(stored)]:
            future.result()
    head = Variable.get(head_variable(store.url, "security-incident", "race"))
    assert head["sequence"] == max(s.sequence for s in stored) and head["key"] == stored[-1].key
    assert [key for _, key in head["recent"]] == [s.key for s in stored]
    ok = cli("audit", "verify", env={"OPS_AUDIT_URL": str(tmp_path)})
    assert ok.returncode == 0 and "security-incident/race: 6 reports, ok" in ok.stdout
