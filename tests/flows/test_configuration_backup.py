"""backup-configuration, verify-configuration-backup and restore-configuration end to end: the platform stand-in's two
services (a web backend that really restarts, a static frontend), the sandbox's git repository, both store kinds
(a local directory and the S3 stand-in), the session's Prefect server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from sandbox import manager
from tests.conftest import SESSION_DIR
from tests.flows.test_backup import local_store, s3_store  # noqa: F401 - fixtures
from tests.flows.test_environment_variables import never_shown

FRONTEND, BACKEND = manager.FRONTEND_SERVICE_ID, manager.RENDER_SERVICE_ID


@pytest.fixture
def render(ops):
    """The platform stand-in's API, and every env var of both services put back as they were after the test."""
    from tasks.platform.render_platform import Render

    client = Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)
    before = {sid: client.list_env_vars(sid) for sid in (BACKEND, FRONTEND)}
    yield client
    for sid, values in before.items():
        now = client.list_env_vars(sid)
        for key in set(now) - set(values):
            client.delete_env_var(sid, key)
        for key, value in values.items():
            if now.get(key) != value:
                client.set_env_var(sid, key, SecretStr(value))
    if client.list_env_vars(BACKEND) != before[BACKEND] or manager.backend_pid(ops) is None:
        raise AssertionError("could not put the backend's env vars back")


def stored_objects(store) -> dict[str, bytes]:
    """Every object of the store, by key, whichever kind the store is."""
    if isinstance(store, Path):
        return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    _, client, bucket = store
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def config_manifests():
    from playground_ops.settings import load_settings
    from tasks.backup.configuration_steps import list_config_backups

    return list_config_backups.fn(load_settings(), "sandbox")


def secret_values(render) -> list[str]:
    """Values that must never be readable outside the platform: every secret of both services."""
    backend, frontend = render.list_env_vars(BACKEND), render.list_env_vars(FRONTEND)
    return [backend["JWT_SECRET"], backend["JWT_REFRESH_SECRET"], frontend["VITE_ANALYTICS_WRITE_KEY"],
            manager.SANDBOX_DB_PASSWORD]


def nowhere_readable(values: list[str], *places: Path, objects: dict[str, bytes] | None = None) -> None:
    for value in values:
        for key, data in (objects or {}).items():
            assert value.encode() not in data, f"a value is readable in the store's {key}"
        for place in places:
            found = subprocess.run(["grep", "-rlF", "--", value, str(place)], capture_output=True, text=True).stdout
            assert not found, f"a value is readable in {found.split()[0]}"


@pytest.mark.parametrize("store_kind", ["local_store", "s3_store"])
def test_backup_then_verify_keeps_every_value_encrypted_and_apart_from_database_backups(store_kind, request, render):
    from flows.backup_configuration import backup_configuration
    from flows.verify_configuration_backup import verify_configuration_backup
    from tasks.backup.configuration import key_id
    from tests.flows.test_backup import newest_manifests

    store = request.getfixturevalue(store_kind)
    live = {sid: render.list_env_vars(sid) for sid in (BACKEND, FRONTEND)}
    report = backup_configuration()
    assert report.status.value == "ok" and report.figures["services"] == 2
    [manifest], incomplete = config_manifests()
    assert incomplete == {} and manifest.backup_id == report.figures["backup_id"]
    assert {n: s.id for n, s in manifest.services.items()} == {"backend": BACKEND, "frontend": FRONTEND}
    assert set(manifest.services["frontend"].fingerprints) == set(live[FRONTEND])  # names and fingerprints, never values
    assert manifest.services["frontend"].type == "static_site" and manifest.services["backend"].type == "web_service"
    main = subprocess.run(["git", "rev-parse", "main"], cwd=manager.app_repo_path(request.getfixturevalue("ops")),
                          capture_output=True, text=True).stdout.strip()
    assert manifest.infrastructure.path == "render.yaml" and manifest.infrastructure.commit == main
    assert manifest.code.refs["refs/heads/main"] == main
    secret = base64.b64decode((manager.state_dir(_settings()) / "config_backup_key").read_text())
    assert manifest.key_id == key_id(secret) and manifest.encryption_key == manager.CONFIG_BACKUP_KEY_BLOCK

    objects = stored_objects(store)
    prefix = "playground/" if store_kind == "s3_store" else ""
    config_keys = sorted(k for k in objects if k.startswith(f"{prefix}_configuration/sandbox/{manifest.backup_id}/"))
    assert [k.rsplit("/", 1)[1] for k in config_keys] == ["code.bundle.enc", "env-backend.json.enc",
                                                         "env-frontend.json.enc", "infrastructure.enc", "manifest.json"]
    assert all(objects[k].startswith(b"POPSENC1") for k in config_keys if k.endswith(".enc"))
    assert b"ai-api-playground-backend" not in objects[config_keys[3]]  # render.yaml is encrypted too
    assert newest_manifests() == ([], {})  # the database backups' listing does not see configuration backups
    nowhere_readable(secret_values(render), SESSION_DIR / "prefect", SESSION_DIR / "ops" / "audit", objects=objects)
    never_shown(report, live[BACKEND]["JWT_SECRET"])

    verified = verify_configuration_backup(backup_id=manifest.backup_id, mode="full")
    assert [(r["rung"], r["result"]) for r in verified.tables["rungs"]] == [
        ("manifest", "passed"), ("stored", "passed"), ("decrypt", "passed"), ("env files", "passed"),
        ("bundle", "passed")]
    assert verified.tables["drift"] == [] and config_manifests()[0][0].verified is True


def test_restore_puts_back_exactly_what_the_backup_had_on_both_services(local_store, render, receiver):
    from flows.backup_configuration import backup_configuration
    from flows.restore_configuration import restore_configuration
    from flows.verify_configuration_backup import verify_configuration_backup
    from tasks.platform.env_changes import fingerprint

    backed_up = {sid: render.list_env_vars(sid) for sid in (BACKEND, FRONTEND)}
    backup_configuration()
    render.set_env_var(FRONTEND, "VITE_APP_NAME", SecretStr("Renamed by hand"))
    render.delete_env_var(FRONTEND, "VITE_ANALYTICS_WRITE_KEY")
    render.set_env_var(FRONTEND, "VITE_EXPERIMENT", SecretStr("on"))
    render.set_env_var(BACKEND, "LOG_LEVEL", SecretStr("trace"))
    render.delete_env_var(BACKEND, "APP_VERSION")

    drift = verify_configuration_backup(mode="quick").tables["drift"]
    assert {(r["service"], r["key"], r["since_backup"].split(" (")[0]) for r in drift} == {
        ("frontend", "VITE_APP_NAME", "changed since the backup"),
        ("frontend", "VITE_ANALYTICS_WRITE_KEY", "removed since the backup"),
        ("frontend", "VITE_EXPERIMENT", "added since the backup"),
        ("backend", "LOG_LEVEL", "added since the backup"), ("backend", "APP_VERSION", "removed since the backup")}

    preview = restore_configuration(service="frontend", dry_run=True)
    assert {r["key"]: r["action"] for r in preview.tables["change"]} == {
        "VITE_APP_NAME": "change", "VITE_ANALYTICS_WRITE_KEY": "add", "VITE_EXPERIMENT": "remove"}
    assert render.list_env_vars(FRONTEND)["VITE_APP_NAME"] == "Renamed by hand"  # the preview changed nothing
    assert next(r for r in preview.tables["change"] if r["key"] == "VITE_APP_NAME")["after"] == \
        fingerprint(backed_up[FRONTEND]["VITE_APP_NAME"])

    deploys = len(render.deploys(FRONTEND, limit=100))
    front = restore_configuration(service="frontend")
    assert front.status.value == "ok" and render.list_env_vars(FRONTEND) == backed_up[FRONTEND]
    assert len(render.deploys(FRONTEND, limit=100)) == deploys + 1  # a static site rebuilt to take them
    pid = manager.backend_pid(_settings())
    back = restore_configuration(service="backend")
    assert back.status.value == "ok" and back.summary.endswith("service healthy")
    assert render.list_env_vars(BACKEND) == backed_up[BACKEND]
    environ = open(f"/proc/{manager.backend_pid(_settings())}/environ", "rb").read().split(b"\0")
    assert manager.backend_pid(_settings()) != pid and not any(e.startswith(b"LOG_LEVEL=") for e in environ)
    assert restore_configuration(service="backend").summary.startswith("nothing to restore")
    never_shown(front, backed_up[FRONTEND]["VITE_ANALYTICS_WRITE_KEY"])


def test_a_production_restore_waits_for_an_operator_and_a_refusal_changes_nothing(local_store, render, receiver,
                                                                                  monkeypatch):
    from prefect.flow_runs import resume_flow_run

    from flows.backup_configuration import backup_configuration
    from flows.restore_configuration import restore_configuration
    from tests.background import in_background, paused_run

    backup_configuration()
    render.set_env_var(FRONTEND, "VITE_APP_NAME", SecretStr("Changed in production"))
    monkeypatch.setenv("TARGET_ENVIRONMENT", "production")
    runner, outcome = in_background(restore_configuration, service="frontend")
    paused = paused_run("restore-configuration")
    assert paused is not None, "the production restore did not wait for an operator"
    assert receiver.wait_for("restore-configuration on sandbox from sandbox-")
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "not now"})
    runner.join(timeout=300)
    assert outcome["report"].summary == "refused: nothing changed"
    assert render.list_env_vars(FRONTEND)["VITE_APP_NAME"] == "Changed in production"


def _settings():
    from playground_ops.settings import load_settings

    return load_settings()


def test_the_bundle_restored_to_a_branch_has_the_same_refs_and_trees(local_store, render, tmp_path):
    from flows.backup_configuration import backup_configuration
    from flows.restore_configuration import restore_configuration

    repo = manager.app_repo_path(_settings())

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    backup_configuration()
    manifest = config_manifests()[0][0]
    branch = f"restore-{manifest.finished_at:%Y%m%d}"
    try:
        report = restore_configuration(service="frontend", restore_code=True)
        assert report.tables["code"][0]["pushed"] == "yes" and report.tables["change"] == []
        assert git("rev-parse", branch) == manifest.code.refs["refs/heads/main"] == git("rev-parse", "main")
        assert git("rev-parse", f"{branch}^{{tree}}") == git("rev-parse", "main^{tree}")
        assert git("show", f"{branch}:render.yaml").startswith("# Render blueprint")
        again = restore_configuration(service="frontend", restore_code=True)
        assert again.tables["code"][0]["pushed"] == "already there"
    finally:
        subprocess.run(["git", "branch", "-D", branch], cwd=repo, capture_output=True)

    # by hand, as the README says: decrypt with the key, then git clone from the bundle; the env file is JSON
    key_file = manager.state_dir(_settings()) / "config_backup_key"
    for stored, plain in ((manifest.code.object.key, "code.bundle"), (manifest.services["frontend"].object.key, "env.json")):
        with open(local_store / stored, "rb") as given, open(tmp_path / plain, "wb") as out:
            subprocess.run([sys.executable, "-m", "tasks.backup.stream_codec", "decrypt", str(key_file)], stdin=given,
                           stdout=out, check=True, cwd=Path(__file__).resolve().parents[2])
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(tmp_path / "code.bundle"), str(tmp_path / "clone.git")],
                   check=True)
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=tmp_path / "clone.git",
                          capture_output=True, text=True, check=True).stdout.split("\n")
    assert dict(line.split(" ") for line in refs if line) == manifest.code.refs
    env = json.loads((tmp_path / "env.json").read_text())
    assert {e["key"]: e["value"] for e in env["env_vars"]} == render.list_env_vars(FRONTEND)


def test_tampering_and_a_wrong_key_fail_at_the_right_rung_and_notify(local_store, render, receiver, monkeypatch):
    from prefect.blocks.system import Secret

    from prefect import tags

    from flows.backup_configuration import backup_configuration
    from flows.verify_configuration_backup import verify_configuration_backup
    from playground_ops.runbook import RunbookFailed

    backup_configuration(verify=False)
    manifest = config_manifests()[0][0]

    Secret(value=base64.b64encode(os.urandom(32)).decode()).save("another-config-key", overwrite=True)
    monkeypatch.setenv("OPS_CONFIG_BACKUP_ENCRYPTION_SECRET", "another-config-key")
    with tags("playground-ops"), pytest.raises(
            RunbookFailed, match="failed at rung decrypt: the backup was encrypted with the key in the Prefect Secret "
                                 "'sandbox-config-backup-key'.*'another-config-key' is another"):
        verify_configuration_backup(apply_retention=False)
    assert receiver.wait_for("'another-config-key' is another", timeout=60)  # operators are told, naming the key
    monkeypatch.setenv("OPS_CONFIG_BACKUP_ENCRYPTION_SECRET", manager.CONFIG_BACKUP_KEY_BLOCK)

    for name in ("env-frontend.json.enc", "code.bundle.enc"):
        path = local_store / "_configuration" / "sandbox" / manifest.backup_id / name
        original = path.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        before = len(receiver.matching("verify-configuration-backup"))
        with tags("playground-ops"), pytest.raises(
                RunbookFailed, match=f"failed at rung stored: .*{name}: .* \\(changed in the store\\)"):
            verify_configuration_backup(apply_retention=False)
        got = receiver.wait_for("verify-configuration-backup", count=before + 1, timeout=60)
        assert len(got) == before + 1 and name in got[-1]["body"]
        path.write_bytes(original)
    assert verify_configuration_backup(apply_retention=False).status.value == "ok"


def test_a_backup_that_fails_midway_leaves_nothing_listed_and_nothing_stored(local_store, render, receiver,
                                                                            monkeypatch):
    from prefect import tags

    from flows.backup_configuration import backup_configuration
    from playground_ops.runbook import RunbookFailed
    from sandbox.faulty_proxy import FaultyProxy

    api = os.environ["RENDER_API_URL"]
    before = len(receiver.matching("backup-configuration"))
    proxy = FaultyProxy(api.removesuffix("/render/v1"))
    try:
        monkeypatch.setenv("RENDER_API_URL", f"{proxy.url}/render/v1")
        proxy.inject("get", "503", count=-1, skip=3)  # the backend's service and env vars, the frontend's service
        with tags("playground-ops"), pytest.raises(RunbookFailed, match="503"):
            backup_configuration()
    finally:
        proxy.close()
        monkeypatch.setenv("RENDER_API_URL", api)
    assert config_manifests() == ([], {}) and not (local_store / "_configuration").exists()

    monkeypatch.setenv("OPS_REPO_URL", str(local_store.parent / "no-such-repository.git"))
    with tags("playground-ops"), pytest.raises(RunbookFailed, match="git clone failed"):
        backup_configuration()
    assert config_manifests() == ([], {}) and not (local_store / "_configuration").exists()  # env files removed
    assert len(receiver.wait_for("backup-configuration", count=before + 2, timeout=60)) == before + 2


def test_without_a_usable_key_nothing_is_read_and_bad_requests_are_refused_in_one_line(local_store, monkeypatch):
    from flows.backup_configuration import backup_configuration
    from flows.restore_configuration import restore_configuration
    from playground_ops.runbook import RunbookFailed

    monkeypatch.delenv("OPS_CONFIG_BACKUP_ENCRYPTION_SECRET")
    monkeypatch.delenv("OPS_BACKUP_ENCRYPTION_SECRET", raising=False)
    with pytest.raises(RunbookFailed, match="OPS_CONFIG_BACKUP_ENCRYPTION_SECRET: expected the name of a Prefect "
                                            "Secret block .* never stored unencrypted"):
        backup_configuration()
    monkeypatch.setenv("OPS_CONFIG_BACKUP_ENCRYPTION_SECRET", "no-such-key-block")
    with pytest.raises(RunbookFailed, match="got 'no-such-key-block': no such block"):
        backup_configuration()
    assert not local_store.exists()
    monkeypatch.setenv("OPS_CONFIG_BACKUP_ENCRYPTION_SECRET", manager.CONFIG_BACKUP_KEY_BLOCK)
    with pytest.raises(RunbookFailed, match="service: expected one of backend, frontend \\(got 'worker'\\)"):
        restore_configuration(service="worker")
    with pytest.raises(RunbookFailed, match="backup_id: expected a key of the form"):
        restore_configuration(service="frontend", backup_id="../../etc")
    with pytest.raises(RunbookFailed, match="no complete backup"):
        restore_configuration(service="frontend")
