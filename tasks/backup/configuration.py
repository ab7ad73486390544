"""Configuration backups on paper (pure): the store's layout, the manifest, and what a restore or the live services
would change, all as names and fingerprints, never values.

Layout, beside the database backups and never mistaken for them (a target's name cannot start with `_`):

    _configuration/<target>/<backup_id>/env-<service>.json.enc     each service's env vars, AES-256-GCM
    _configuration/<target>/<backup_id>/infrastructure.enc         the infrastructure file (render.yaml), encrypted
    _configuration/<target>/<backup_id>/code.bundle.enc            `git bundle create --all`, encrypted
    _configuration/<target>/<backup_id>/manifest.json              written last: only then does the backup exist
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks.backup.policy import MANIFEST, Rung, Verification
from tasks.platform.env_changes import fingerprint

PREFIX = "_configuration"
RUNGS_QUICK = ["manifest", "stored", "decrypt", "env files"]
RUNGS_FULL = RUNGS_QUICK + ["bundle"]
ENCRYPTION = "AES-256-GCM (POPSENC1 segments)"


def backup_prefix(target: str, backup_id: str | None = None) -> str:
    return f"{PREFIX}/{target}/" + (f"{backup_id}/" if backup_id else "")


def env_key(target: str, backup_id: str, service: str) -> str:
    return f"{backup_prefix(target, backup_id)}env-{service}.json.enc"


def infrastructure_key(target: str, backup_id: str) -> str:
    return f"{backup_prefix(target, backup_id)}infrastructure.enc"


def bundle_key(target: str, backup_id: str) -> str:
    return f"{backup_prefix(target, backup_id)}code.bundle.enc"


def config_manifest_key(target: str, backup_id: str) -> str:
    return f"{backup_prefix(target, backup_id)}{MANIFEST}"


def key_id(key: bytes) -> str:
    """Which key encrypted a backup, without saying anything of the key: a verify with another key is told so."""
    return hashlib.sha256(b"playground-ops configuration backup key\x00" + key).hexdigest()[:16]


class StoredObject(BaseModel):
    key: str             # the object's key in the store
    bytes: int           # as stored (encrypted)
    sha256: str          # of the stored bytes: tampering shows before anything is decrypted
    plain_sha256: str    # of the decrypted content


class ServiceEnv(BaseModel):
    name: str
    id: str
    type: str
    object: StoredObject
    # each key with its value's fingerprint (the first 8 hex of its SHA-256), never the value (not named `keys`:
    # Prefect takes anything with a keys attribute for a mapping when it walks a task's result)
    fingerprints: dict[str, str]


class InfrastructureFile(BaseModel):
    path: str
    commit: str          # the base branch's head the file was read at
    object: StoredObject


class CodeBundle(BaseModel):
    base: str
    base_commit: str
    refs: dict[str, str]  # `git bundle list-heads`: ref -> commit
    object: StoredObject


class ConfigurationManifest(BaseModel):
    """Written last: a configuration backup without one is incomplete and is never listed, verified or restored."""

    format_version: int = 1
    kind: Literal["configuration"] = "configuration"
    backup_id: str
    target: str
    started_at: datetime
    finished_at: datetime
    encryption: str = ENCRYPTION
    encryption_key: str   # the name of the Prefect Secret holding the key, never the key
    key_id: str
    services: dict[str, ServiceEnv] = Field(default_factory=dict)
    infrastructure: InfrastructureFile | None = None
    code: CodeBundle | None = None
    skipped: dict[str, str] = Field(default_factory=dict)  # what this target has nothing of, and why
    flow_run_id: str | None = None
    verifications: list[Verification] = Field(default_factory=list)

    @property
    def verified(self) -> bool | None:
        return self.verifications[-1].ok if self.verifications else None

    def objects(self) -> list[StoredObject]:
        found = [s.object for s in self.services.values()]
        found += [self.infrastructure.object] if self.infrastructure else []
        return found + ([self.code.object] if self.code else [])


def env_document(service: str, service_id: str, values: dict[str, str]) -> bytes:
    """What an env file holds once decrypted: the guide's `render env list --json`, one object per variable."""
    return json.dumps({"service": service, "service_id": service_id,
                       "env_vars": [{"key": k, "value": v} for k, v in sorted(values.items())]},
                      indent=1).encode()


def parse_env_document(data: bytes) -> dict[str, str]:
    """The values of a decrypted env file; a ValueError (never quoting the content) when it is not one."""
    try:
        doc = json.loads(data)
        return {item["key"]: item["value"] for item in doc["env_vars"]}
    except (ValueError, KeyError, TypeError):
        raise ValueError("not an env file (expected JSON with an env_vars list of {key, value})") from None


def fingerprints(values: dict[str, str]) -> dict[str, str]:
    return {k: fingerprint(v) for k, v in values.items()}


def drift(backed_up: dict[str, str], live: dict[str, str]) -> list[dict[str, Any]]:
    """Per key, what a restore of the backup would do to the live service (fingerprints in, rows out): a key added
    since the backup would be removed, a key removed would come back, a changed value would be put back."""
    rows = []
    for key in sorted(set(backed_up) | set(live)):
        was, now = backed_up.get(key), live.get(key)
        if was == now:
            continue
        change = ("added since the backup (a restore removes it)" if was is None
                  else "removed since the backup (a restore puts it back)" if now is None
                  else "changed since the backup (a restore puts the old value back)")
        rows.append({"key": key, "in_backup": was or "", "live": now or "", "since_backup": change})
    return rows


def restore_rows(backed_up: dict[str, str], live: dict[str, str]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The restore as rows, the keys to write and the keys to remove (fingerprints only)."""
    rows, write, remove = [], [], []
    for key in sorted(set(backed_up) | set(live)):
        was, now = backed_up.get(key), live.get(key)
        if was == now:
            continue
        action = "remove" if was is None else "add" if now is None else "change"
        (remove if was is None else write).append(key)
        rows.append({"key": key, "action": action, "before": now or "", "after": was or ""})
    return rows, write, remove


def restore_branch(finished_at: datetime) -> str:
    """restore-YYYYMMDD, after the day the backup was taken."""
    return f"restore-{finished_at:%Y%m%d}"


def rung(name: str, problems: list[str], ok_detail: str, seconds: float = 0.0) -> Rung:
    return Rung(name=name, ok=not problems, seconds=round(seconds, 3),
                detail="; ".join(problems)[:1000] if problems else ok_detail)


def object_rows(manifest: ConfigurationManifest) -> list[dict[str, Any]]:
    """The store's objects of one backup, as the report and the closing note list them."""
    rows = [{"object": o.key, "bytes": o.bytes, "sha256": o.sha256[:16]} for o in manifest.objects()]
    return rows + [{"object": config_manifest_key(manifest.target, manifest.backup_id), "bytes": None,
                    "sha256": "(written last)"}]


def summary_of(manifest: ConfigurationManifest) -> str:
    parts = [f"{len(manifest.services)} services' env vars ("
             + ", ".join(f"{n}: {len(s.fingerprints)} keys" for n, s in sorted(manifest.services.items())) + ")"]
    if manifest.infrastructure:
        parts.append(f"{manifest.infrastructure.path} at {manifest.infrastructure.commit[:10]}")
    if manifest.code:
        parts.append(f"git bundle of {len(manifest.code.refs)} refs")
    return f"{manifest.backup_id}: " + ", ".join(parts) + ", encrypted"
