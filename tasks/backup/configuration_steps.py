"""Configuration backups' I/O: each service's env vars read from the platform, the infrastructure file and a git
bundle of the application's repository, each encrypted before it leaves the process and streamed into the backup
store; the manifest last; the verification rungs; the restore's writes.

Values exist only inside these tasks: what crosses a task boundary is names, fingerprints, hashes and keys of the
store, never a value (task parameters and results may be recorded)."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prefect import task
from pydantic import SecretStr

from playground_ops.errors import ConfigError
from playground_ops.settings import Platform, PlatformService, Repository, Settings
from tasks.backup.configuration import (CodeBundle, ConfigurationManifest, InfrastructureFile, ServiceEnv,
                                        StoredObject, backup_prefix, bundle_key, config_manifest_key, env_document,
                                        env_key, fingerprints, infrastructure_key, key_id, parse_env_document, rung)
from tasks.backup.pipeline import backup_store, encryption_key, put_manifest
from tasks.backup.policy import MANIFEST, Rung
from tasks.backup.store import BackupStore, MiB
from tasks.backup.stream_codec import Hashed, IntegrityError, decrypt, encrypt
from tasks.dependencies.git_repo import git, git_bytes
from tasks.platform.render_platform import client_for
from tasks.retry import PermanentError, retrying
from tasks.store_keys import check_key

KEY_SETTING = "OPS_CONFIG_BACKUP_ENCRYPTION_SECRET"


def key_name_of(settings: Settings) -> str:
    """The Prefect Secret holding the configuration backups' key; refused when none is configured (an env backup holds
    every secret of every service: it is never stored in the clear)."""
    name = settings.config_backup_encryption_secret or settings.backup_encryption_secret
    if not name:
        raise ConfigError(KEY_SETTING, "the name of a Prefect Secret block holding base64 of 32 random bytes (or "
                          "OPS_BACKUP_ENCRYPTION_SECRET): configuration backups hold every service's secrets and are "
                          "never stored unencrypted")
    return name


def _key(name: str) -> bytes:
    try:
        return encryption_key(name)
    except (ValueError, PermanentError) as exc:
        reason = "no such block" if "Unable to find" in str(exc) or "not found" in str(exc).lower() else "not base64 of 32 bytes"
        raise ConfigError(KEY_SETTING, "the name of a Prefect Secret block holding base64 of 32 random bytes",
                          got=f"{name!r}: {reason}") from None


@task(**retrying(retries=1, timeout_seconds=60))
def check_key_secret(name: str) -> str:
    """The key is there and well-formed (before anything is read from the platform); its id, never the key."""
    return key_id(_key(name))


def _put(store: BackupStore, key: str, plain: Iterable[bytes], secret: bytes) -> StoredObject:
    hashed_plain = Hashed(plain)
    stored = Hashed(encrypt(hashed_plain, secret))
    store.upload_stream(key, stored)
    return StoredObject(key=key, bytes=stored.size, sha256=stored.sha256, plain_sha256=hashed_plain.sha256)


def _file_chunks(path: Path, size: int = 4 * MiB) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


@task(**retrying(retries=2, backoff=2, timeout_seconds=600))
def back_up_service_env(settings: Settings, platform: Platform, service: PlatformService, target: str,
                        backup_id: str, key_name: str) -> ServiceEnv:
    """Every env var of one service (all pages), encrypted in this process, stored; the keys and fingerprints."""
    render = client_for(platform)
    kind = render.get_service(service.id).get("type", "")
    values = render.list_env_vars(service.id)
    obj = _put(backup_store(settings), env_key(target, backup_id, service.name),
               [env_document(service.name, service.id, values)], _key(key_name))
    return ServiceEnv(name=service.name, id=service.id, type=kind, object=obj, fingerprints=fingerprints(values))


@task(**retrying(retries=1, backoff=5, timeout_seconds=3600))
def back_up_repository(settings: Settings, repository: Repository, target: str, backup_id: str,
                       key_name: str) -> tuple[InfrastructureFile, CodeBundle]:
    """A mirror clone in a scratch directory: the infrastructure file read at the base branch's head, and
    `git bundle create --all`, checked with `git bundle verify` before either is stored."""
    store, secret = backup_store(settings), _key(key_name)
    with tempfile.TemporaryDirectory(prefix="config-backup-") as scratch:
        mirror, bundle = Path(scratch) / "repo.git", Path(scratch) / "code.bundle"
        git("clone", "--quiet", "--mirror", repository.url, str(mirror), timeout=1800)
        try:
            base_commit = git("rev-parse", "--verify", f"refs/heads/{repository.base}^{{commit}}", cwd=mirror)
        except PermanentError:
            raise PermanentError(f"repository: expected a branch named {repository.base!r}") from None
        try:
            content = git_bytes("show", f"{base_commit}:{repository.infrastructure_file}", cwd=mirror)
        except PermanentError:
            raise PermanentError(f"repository.infrastructure_file: expected a file in the repository at "
                                 f"{repository.base} ({base_commit[:10]}) (got {repository.infrastructure_file!r}: "
                                 "not there)") from None
        git("bundle", "create", "--quiet", str(bundle), "--all", cwd=mirror, timeout=3600)
        git("bundle", "verify", "--quiet", str(bundle), cwd=mirror)
        refs = _bundle_refs(bundle, mirror)
        infra = InfrastructureFile(path=repository.infrastructure_file, commit=base_commit,
                                   object=_put(store, infrastructure_key(target, backup_id), [content], secret))
        code = CodeBundle(base=repository.base, base_commit=base_commit, refs=refs,
                          object=_put(store, bundle_key(target, backup_id), _file_chunks(bundle), secret))
    return infra, code


def _bundle_refs(bundle: Path, cwd: Path) -> dict[str, str]:
    refs = {}
    for line in git("bundle", "list-heads", str(bundle), cwd=cwd).splitlines():
        sha, _, ref = line.partition(" ")
        if ref and ref != "HEAD":
            refs[ref] = sha
    return refs


@task(**retrying(retries=3, timeout_seconds=120))
def write_config_manifest(settings: Settings, manifest: ConfigurationManifest, replace: bool = False) -> ConfigurationManifest:
    """Written last: only now does the backup exist."""
    put_manifest(backup_store(settings), config_manifest_key(manifest.target, manifest.backup_id),
                 manifest.model_dump(mode="json"), replace)
    return manifest


@task(**retrying(retries=3, timeout_seconds=600))
def remove_unfinished(settings: Settings, target: str, backup_id: str) -> list[str]:
    """What this run stored before it failed (its own backup's objects, which have no manifest), removed; a backup
    with a manifest is never touched."""
    store = backup_store(settings)
    keys = [k for k, _, _ in store.list(backup_prefix(target, backup_id))]
    if any(k.endswith(f"/{MANIFEST}") for k in keys):
        return []
    store.delete(keys)
    for upload in store.incomplete_uploads(backup_prefix(target, backup_id)):
        store.abort_upload(upload["key"], upload["upload_id"])
    return keys


@task(**retrying(retries=3, timeout_seconds=300))
def list_config_backups(settings: Settings, target: str) -> tuple[list[ConfigurationManifest], dict[str, list[str]]]:
    """Complete configuration backups (well-formed manifest), newest first, and the incomplete ones' keys."""
    store = backup_store(settings)
    groups: dict[str, list[str]] = {}
    for key, _, _ in store.list(backup_prefix(target)):
        parts = key.split("/")
        if len(parts) == 4:
            groups.setdefault(parts[2], []).append(key)
    complete, incomplete = [], {}
    for backup_id, keys in groups.items():
        try:
            data = store.get_json(config_manifest_key(target, backup_id))
            manifest = ConfigurationManifest.model_validate(data) if data is not None else None
        except ValueError:
            manifest = None
        if manifest is None or manifest.backup_id != backup_id or manifest.target != target:
            incomplete[backup_id] = keys
        else:
            complete.append(manifest)
    return sorted(complete, key=lambda m: m.started_at, reverse=True), incomplete


@task(**retrying(retries=3, timeout_seconds=120))
def find_config_backup(settings: Settings, target: str, backup_id: str | None,
                       verified_only: bool = False) -> tuple[ConfigurationManifest | None, Rung]:
    """Rung 1: the manifest is there and well-formed (default: the newest backup, or the newest verified one)."""
    if backup_id is not None:  # a user's key: checked against the layout before the store sees it
        check_key(backup_id, "backup_id", "<target>-<UTC time>-<run id>")
    manifests, _ = list_config_backups.fn(settings, target)
    if verified_only:
        manifests = [m for m in manifests if m.verified]
    found = next((m for m in manifests if backup_id in (None, m.backup_id)), None)
    if found is None:
        what = backup_id or f"the newest {'verified ' if verified_only else ''}configuration backup of {target}"
        return None, Rung(name="manifest", ok=False, detail=f"{what}: no complete backup (no manifest) in the store")
    return found, Rung(name="manifest", ok=True, detail=f"{found.backup_id}: {len(found.objects())} objects")


@task(**retrying(retries=2, timeout_seconds=None))
def check_stored(settings: Settings, manifest: ConfigurationManifest) -> Rung:
    """Each object is there with the size and SHA-256 the manifest recorded (tampering shows here, before any key)."""
    t0, store, problems = time.perf_counter(), backup_store(settings), []
    for obj in manifest.objects():
        if store.size(obj.key) is None:
            problems.append(f"{obj.key}: missing")
            continue
        stored = Hashed(store.download_stream(obj.key))
        for _ in stored:
            pass
        if (stored.size, stored.sha256) != (obj.bytes, obj.sha256):
            problems.append(f"{obj.key}: {stored.size:,} bytes, sha256 {stored.sha256[:12]}, the manifest says "
                            f"{obj.bytes:,} bytes, {obj.sha256[:12]} (changed in the store)")
    return rung("stored", problems, f"{len(manifest.objects())} objects, sizes and SHA-256 as recorded",
                time.perf_counter() - t0)


def _decrypted(store: BackupStore, obj: StoredObject, secret: bytes) -> Hashed:
    return Hashed(decrypt(store.download_stream(obj.key), secret))


@task(**retrying(retries=2, timeout_seconds=None))
def check_decrypt(settings: Settings, manifest: ConfigurationManifest, key_name: str) -> Rung:
    """Each object decrypts and authenticates with the configured key, to the plaintext hash recorded."""
    t0, store, secret = time.perf_counter(), backup_store(settings), _key(key_name)
    if key_id(secret) != manifest.key_id:
        return rung("decrypt", [f"the backup was encrypted with the key in the Prefect Secret "
                                f"{manifest.encryption_key!r} (key id {manifest.key_id}); the configured key "
                                f"{key_name!r} is another (key id {key_id(secret)})"], "", time.perf_counter() - t0)
    problems = []
    for obj in manifest.objects():
        plain = _decrypted(store, obj, secret)
        try:
            for _ in plain:
                pass
        except IntegrityError as exc:
            problems.append(f"{obj.key}: {exc}")
            continue
        if plain.sha256 != obj.plain_sha256:
            problems.append(f"{obj.key}: decrypted content differs from the recorded hash")
    return rung("decrypt", problems, f"{len(manifest.objects())} objects decrypt and authenticate "
                f"(key {manifest.encryption_key!r})", time.perf_counter() - t0)


def _read_env(store: BackupStore, service: ServiceEnv, secret: bytes) -> dict[str, str]:
    return parse_env_document(b"".join(decrypt(store.download_stream(service.object.key), secret)))


@task(**retrying(retries=2, timeout_seconds=600))
def check_env_files(settings: Settings, manifest: ConfigurationManifest, key_name: str) -> Rung:
    """Each env file parses, with exactly the keys and value fingerprints the manifest recorded."""
    t0, store, secret, problems = time.perf_counter(), backup_store(settings), _key(key_name), []
    for name, service in sorted(manifest.services.items()):
        try:
            found = fingerprints(_read_env(store, service, secret))
        except (ValueError, IntegrityError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if found != service.fingerprints:
            differ = sorted(k for k in set(found) | set(service.fingerprints) if found.get(k) != service.fingerprints.get(k))
            problems.append(f"{name}: keys or values differ from the manifest: {', '.join(differ)}")
    return rung("env files", problems, f"{len(manifest.services)} env files parse with the recorded keys and "
                "fingerprints", time.perf_counter() - t0)


def _unbundle(store: BackupStore, manifest: ConfigurationManifest, secret: bytes, scratch: Path) -> Path:
    """The bundle decrypted into scratch, checked by `git bundle verify` in an empty repository; its path."""
    bundle = scratch / "code.bundle"
    with open(bundle, "wb") as f:
        for chunk in decrypt(store.download_stream(manifest.code.object.key), secret):
            f.write(chunk)
    git("init", "--quiet", "--bare", str(scratch / "empty.git"))
    git("bundle", "verify", "--quiet", str(bundle), cwd=scratch / "empty.git")
    return bundle


@task(**retrying(retries=1, timeout_seconds=None))
def check_bundle(settings: Settings, manifest: ConfigurationManifest, key_name: str) -> Rung:
    """The bundle passes `git bundle verify`, clones, and the clone's refs are the manifest's; the infrastructure
    file at the recorded commit has the recorded hash."""
    t0, store, secret = time.perf_counter(), backup_store(settings), _key(key_name)
    if manifest.code is None:
        return rung("bundle", [], "no code in this backup: " + manifest.skipped.get("code", "not declared"))
    problems = []
    with tempfile.TemporaryDirectory(prefix="config-verify-") as scratch:
        try:
            bundle = _unbundle(store, manifest, secret, Path(scratch))
            clone = Path(scratch) / "clone.git"
            git("clone", "--quiet", "--mirror", str(bundle), str(clone), timeout=1800)
            refs = dict(line.split(" ", 1) for line in
                        git("for-each-ref", "--format=%(refname) %(objectname)", cwd=clone).splitlines())
            if refs != manifest.code.refs:
                differ = sorted(r for r in set(refs) | set(manifest.code.refs) if refs.get(r) != manifest.code.refs.get(r))
                problems.append(f"the clone's refs differ from the manifest's: {', '.join(differ)}")
            if manifest.infrastructure:
                infra = manifest.infrastructure
                blob = git_bytes("show", f"{infra.commit}:{infra.path}", cwd=clone)
                if hashlib.sha256(blob).hexdigest() != infra.object.plain_sha256:
                    problems.append(f"{infra.path} at {infra.commit[:10]} in the bundle differs from the one stored")
        except (PermanentError, IntegrityError) as exc:
            problems.append(str(exc)[:500])
    return rung("bundle", problems, f"git bundle verify passed; the clone has the {len(manifest.code.refs)} refs "
                "recorded", time.perf_counter() - t0)


@task(**retrying(retries=2, backoff=2, timeout_seconds=300))
def live_drift(platform: Platform, manifest: ConfigurationManifest) -> dict[str, dict[str, str]]:
    """Each backed-up service's live keys and fingerprints (what a restore would undo is computed from these)."""
    render = client_for(platform)
    return {name: fingerprints(render.list_env_vars(service.id)) for name, service in manifest.services.items()}


@task(**retrying(retries=3, timeout_seconds=600))
def delete_config_backups(settings: Settings, target: str, backup_ids: list[str], dry_run: bool) -> list[str]:
    """Whole configuration backups deleted, each manifest first (a half-deleted backup is incomplete, never listed)."""
    store = backup_store(settings)
    deleted = []
    for backup_id in backup_ids:
        keys = sorted((k for k, _, _ in store.list(backup_prefix(target, backup_id))),
                      key=lambda k: not k.endswith(f"/{MANIFEST}"))
        deleted += keys
        if not dry_run:
            for key in keys:
                store.delete([key])
    return deleted


# ---------------------------------------------------------------- restore

@task(**retrying(retries=0, timeout_seconds=900))
def write_backed_up_env(settings: Settings, platform: Platform, manifest: ConfigurationManifest, service: str,
                        key_name: str, write: list[str], remove: list[str]) -> list[str]:
    """The backup's values of `write` set key by key and `remove` deleted (the values decrypted here, and only
    here); read back: the keys whose fingerprints differ from the backup's (empty: the service has the backup's)."""
    backed_up = _read_env(backup_store(settings), manifest.services[service], _key(key_name))
    render = client_for(platform)
    for key in sorted(write):
        render.set_env_var(platform.service_id, key, SecretStr(backed_up[key]))
    for key in sorted(remove):
        render.delete_env_var(platform.service_id, key)
    after = fingerprints(render.list_env_vars(platform.service_id))
    want = manifest.services[service].fingerprints
    return sorted(k for k in set(after) | set(want) if after.get(k) != want.get(k))


@task(**retrying(retries=0, timeout_seconds=None))
def redeploy_static_site(platform: Platform, timeout_s: float) -> dict[str, Any]:
    """A static site takes new env vars only when it is built again: a deploy, waited for until live."""
    render = client_for(platform)
    started = render.create_deploy(platform.service_id, deploy_mode="build_and_deploy")
    if not started:
        raise PermanentError("the platform started no deploy")
    return render.wait_for_deploy(platform.service_id, started["id"], timeout=timeout_s)


@task(**retrying(retries=1, backoff=5, timeout_seconds=1800))
def push_restore_branch(settings: Settings, repository: Repository, manifest: ConfigurationManifest, key_name: str,
                        branch: str) -> dict[str, str]:
    """The backed-up base branch pushed from the bundle as `branch` for a person to review (never the base branch;
    an existing branch is left as it is unless it already is this commit)."""
    if branch == repository.base or not branch.startswith("restore-"):
        raise PermanentError(f"branch: expected a restore-YYYYMMDD branch, never the base branch (got {branch!r})")
    commit = manifest.code.base_commit
    remote = git("ls-remote", "--heads", repository.url, branch, timeout=120).split()
    if remote and remote[0] == commit:
        return {"branch": branch, "commit": commit, "pushed": "already there"}
    if remote:
        raise PermanentError(f"branch {branch} already exists on the repository at {remote[0][:10]}: delete or "
                             "rename it first (nothing was pushed)")
    with tempfile.TemporaryDirectory(prefix="config-restore-") as scratch:
        bundle = _unbundle(backup_store(settings), manifest, _key(key_name), Path(scratch))
        work = Path(scratch) / "empty.git"
        git("fetch", "--quiet", str(bundle), f"refs/heads/{manifest.code.base}:refs/heads/{branch}", cwd=work)
        git("push", "--quiet", repository.url, f"refs/heads/{branch}:refs/heads/{branch}", cwd=work, timeout=1800)
        tree = git("rev-parse", f"{branch}^{{tree}}", cwd=work)
    return {"branch": branch, "commit": commit, "tree": tree, "pushed": "yes"}
