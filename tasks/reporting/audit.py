"""The audit store: every report as JSON and Markdown, hash-chained per runbook and target, never overwritten.

Layout, under a local directory or s3://bucket/prefix:
    <runbook>/<target>/<YYYY-MM-DD>/<flow-run-id>.json    the report, with its place in the chain
    <runbook>/<target>/<YYYY-MM-DD>/<flow-run-id>.md      the same report rendered for reading
    <runbook>/<target>/<YYYY-MM-DD>/<flow-run-id>.sha256  SHA-256 of the .json bytes

Each report carries `chain: {sequence, previous_key, previous_sha256}`, so changing, removing or inserting a report
breaks the chain where it happened, and `verify` names it.
"""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import quote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from playground_ops.errors import ConfigError
from tasks.store_keys import check_relative


class ObjectExists(Exception):
    """The store refuses to overwrite an object."""


class StoreUnreadable(Exception):
    """The store's location does not exist or cannot be read: an error, never an empty store."""


class Store(Protocol):
    url: str

    def put_new(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def link(self, key: str) -> str: ...
    def web_link(self, key: str) -> str | None: ...
    def check_readable(self) -> None: ...


class LocalStore:
    """A directory; objects are written once (exclusive create) and made read-only."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_relative(key)

    def put_new(self, key: str, data: bytes, content_type: str = "") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # atomic, and fails if the object exists: never overwritten
        except FileExistsError:
            raise ObjectExists(key) from None
        finally:
            tmp.unlink(missing_ok=True)
        path.chmod(0o444)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))

    def link(self, key: str) -> str:
        return self._path(key).as_uri()

    def web_link(self, key: str) -> str | None:
        return None  # a browser refuses file:// links from a web page: the report says how to read it instead

    def check_readable(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreUnreadable(f"the audit store {self.url} does not exist or cannot be read")


class S3Store:
    """s3://bucket/prefix through boto3: server-side encryption on every object, conditional puts never overwrite."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None):
        import boto3

        self.url = url
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        check_relative(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_new(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type,
                                   ServerSideEncryption="AES256", IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise ObjectExists(key) from None
            raise

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                keys.append(key[len(self.prefix) + 1:] if self.prefix else key)
        return sorted(keys)

    def link(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def web_link(self, key: str) -> str | None:
        """The object's https URL (it opens for whoever the bucket lets read it)."""
        endpoint = self.client.meta.endpoint_url.rstrip("/")
        return f"{endpoint}/{self.bucket}/{quote(self._key(key))}"

    def check_readable(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnreadable(f"the audit store {self.url} cannot be read: {type(exc).__name__}") from None


def open_store(url: str, endpoint_url: str | None = None) -> Store:
    """The store behind an audit (or backup) location: a directory, or s3://bucket/prefix."""
    if url.startswith("s3://"):
        return S3Store(url, endpoint_url=endpoint_url)
    if "://" in url:
        raise ConfigError("OPS_AUDIT_URL", "a directory path or s3://bucket/prefix", got=url)
    return LocalStore(url)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class StoredReport:
    key: str
    sha256: str
    sequence: int
    link: str
    web_link: str | None = None


def _chain_prefix(runbook: str, target: str) -> str:
    return f"{runbook}/{target}/"


def _json_keys(store: Store, prefix: str) -> list[str]:
    return [k for k in store.list(prefix) if k.endswith(".json")]


def chain_head(store: Store, runbook: str, target: str) -> tuple[str, str, int] | None:
    """The newest report of a chain: (key, sha256, sequence), or None for a new chain.

    Only the newest day's reports are read, so appending stays cheap however long the chain grows.
    """
    keys = _json_keys(store, _chain_prefix(runbook, target))
    if not keys:
        return None
    newest_day = max(k.split("/")[2] for k in keys)
    best: tuple[str, str, int] | None = None
    for key in (k for k in keys if k.split("/")[2] == newest_day):
        raw = store.get(key)
        seq = json.loads(raw).get("chain", {}).get("sequence", 0)
        if best is None or seq > best[2]:
            best = (key, sha256(raw), seq)
    return best


def report_key(runbook: str, target: str, day: str, run_id: str) -> str:
    """Where a run's report is stored: <runbook>/<target>/<YYYY-MM-DD of its start>/<flow run id>.json."""
    return f"{runbook}/{target}/{day}/{run_id}.json"


def append_report(store: Store, report: dict[str, Any], markdown: str, run_id: str,
                  sidecars: dict[str, tuple[str, str]] | None = None) -> StoredReport:
    """Write a report at the end of its chain (JSON, Markdown, SHA-256, and `sidecars`: suffix -> (text, content
    type), such as the CSV behind a chart); retried writes never duplicate it."""
    runbook, target = report["runbook"], report["target"]
    day = str(report["started_at"])[:10]
    base = report_key(runbook, target, day, run_id).removesuffix(".json")
    head = chain_head(store, runbook, target)
    if f"{base}.json" in store.list(f"{_chain_prefix(runbook, target)}{day}/"):
        # An earlier attempt of this same run stored the report (other runs may have appended since): finish its
        # sidecars, never chain it twice.
        data = store.get(f"{base}.json")
        digest, sequence = sha256(data), json.loads(data)["chain"]["sequence"]
    else:
        sequence = (head[2] + 1) if head else 1
        body = dict(report, chain={"sequence": sequence, "previous_key": head[0] if head else None,
                                   "previous_sha256": head[1] if head else None})
        data = canonical_json(body)
        digest = sha256(data)
        store.put_new(f"{base}.json", data, "application/json")
    for suffix, content, kind in ((".sha256", f"{digest}  {run_id}.json\n", "text/plain"),
                                  (".md", markdown, "text/markdown"),
                                  *((suffix, text, kind) for suffix, (text, kind) in (sidecars or {}).items())):
        try:
            store.put_new(f"{base}{suffix}", content.encode(), kind)
        except ObjectExists:
            pass
    return StoredReport(f"{base}.json", digest, sequence, store.link(f"{base}.json"), store.web_link(f"{base}.md"))


@dataclass
class ChainProblem:
    kind: str  # changed | removed | inserted | unreadable
    key: str
    detail: str


@dataclass
class ChainCheck:
    runbook: str
    target: str
    reports: int = 0
    problems: list[ChainProblem] = field(default_factory=list)


def head_variable(store_url: str, runbook: str, target: str) -> str:
    """The Prefect Variable that holds a chain's head outside the store (one per store, runbook and target)."""
    return f"audit-head-{hashlib.sha256(store_url.encode()).hexdigest()[:10]}-{runbook}-{target}"[:255].lower()


def verify_store(store: Store, heads: list[dict[str, Any]] | None = None) -> list[ChainCheck]:
    """Walk every chain and name each report that was changed, removed or inserted; with the chain heads recorded
    outside the store (`heads`: runbook, target, key, sha256, sequence), a removed tail is named too.
    A store location that does not exist or cannot be read is an error (StoreUnreadable), never an empty store."""
    store.check_readable()
    chains: dict[tuple[str, str], list[str]] = {}
    for key in _json_keys(store, ""):
        parts = key.split("/")
        if len(parts) == 4:
            chains.setdefault((parts[0], parts[1]), []).append(key)
    recorded = {(h["runbook"], h["target"]): h for h in heads or []}
    results = []
    for runbook, target in sorted(set(chains) | set(recorded)):
        check = _verify_chain(store, runbook, target, chains.get((runbook, target), []))
        if (runbook, target) in recorded:
            check.problems += _tail_problems(store, recorded[(runbook, target)], chains.get((runbook, target), []))
        results.append(check)
    return results


def merged_head(before: dict[str, Any] | None, head: dict[str, Any], keep: int) -> dict[str, Any]:
    """The chain's head once a report is added: the newest report (by sequence) as head, whichever was recorded
    first, and the newest reports' [sequence, key], newest last, the new one among them. Reports of one chain
    published at the same instant may record theirs in any order: no head goes backwards, no key is dropped."""
    before = before or {}
    recent = {entry[0]: entry[1] for entry in before.get("recent", [])}
    if before.get("key") and not before.get("recent"):
        recent[before["sequence"]] = before["key"]  # a head recorded before the keys were kept
    recent[head["sequence"]] = head["key"]
    newest = head if head["sequence"] >= before.get("sequence", -1) else before
    return {**newest, "recent": [[seq, recent[seq]] for seq in sorted(recent)][-keep:]}


def _tail_problems(store: Store, head: dict[str, Any], keys: list[str]) -> list[ChainProblem]:
    """The head recorded outside the store must still be in it, unchanged: else the chain's tail was removed, and
    each report of it is named (by the keys kept beside the head; older ones by their sequence)."""
    if head["key"] not in keys:
        sequences = []
        for key in keys:
            try:
                sequences.append(json.loads(store.get(key))["chain"]["sequence"])
            except (ValueError, KeyError, TypeError):
                continue
        end = max(sequences, default=0)
        ends = f"the store's chain ends at sequence {end}" if sequences else "the store holds none of it"
        known = {sequence: key for sequence, key in head.get("recent", [])} | {head["sequence"]: head["key"]}
        problems = []
        for sequence in range(head["sequence"], end, -1):
            what = "the newest report" if sequence == head["sequence"] else "a report of the removed tail"
            if sequence in known and known[sequence] not in keys:
                problems.append(ChainProblem("removed", known[sequence], f"{what} (sequence {sequence}, recorded "
                                                                         f"outside the store) is missing; {ends}"))
            elif sequence not in known:
                problems.append(ChainProblem("removed", f"sequence {sequence}",
                                             f"{what}, older than the keys kept outside the store, is missing; {ends}"))
        return problems
    if sha256(store.get(head["key"])) != head["sha256"]:
        return [ChainProblem("changed", head["key"], "the newest report differs from the hash recorded outside the store")]
    return []


def _verify_chain(store: Store, runbook: str, target: str, keys: list[str]) -> ChainCheck:
    check = ChainCheck(runbook, target, reports=len(keys))
    actual: dict[str, str] = {}
    links: dict[str, dict[str, Any]] = {}
    for key in keys:
        raw = store.get(key)
        actual[key] = sha256(raw)
        try:
            body = json.loads(raw)
            links[key] = body["chain"]
        except (ValueError, KeyError, TypeError):
            check.problems.append(ChainProblem("changed", key, "not a well-formed report"))
            continue
        try:
            recorded = store.get(key.removesuffix(".json") + ".sha256").decode().split()[0]
        except Exception:
            recorded = None
        if recorded != actual[key]:
            check.problems.append(ChainProblem("changed", key, "its content no longer matches its recorded SHA-256"))
    referenced: dict[str, list[str]] = {}
    for key, chain in links.items():
        prev = chain.get("previous_key")
        if prev is None:
            continue
        referenced.setdefault(prev, []).append(key)
        if prev not in actual:
            check.problems.append(ChainProblem("removed", prev, f"missing; {key} follows it in the chain"))
        elif actual[prev] != chain.get("previous_sha256") and not any(p.key == prev for p in check.problems):
            check.problems.append(ChainProblem("changed", prev, f"its hash differs from the one {key} recorded"))
    # Where two reports claim the same predecessor (or two claim to start the chain), the one that more reports
    # follow is genuine; the other, and whatever follows it, was inserted.
    children: dict[str | None, list[str]] = {}
    for key, chain in links.items():
        children.setdefault(chain.get("previous_key"), []).append(key)
    depth: dict[str, int] = {}

    def _depth(key: str) -> int:
        if key not in depth:
            depth[key] = 0
            depth[key] = 1 + max((_depth(c) for c in children.get(key, [])), default=0)
        return depth[key]

    def _mark(key: str, reason: str) -> None:
        check.problems.append(ChainProblem("inserted", key, reason))
        for child in children.get(key, []):
            _mark(child, f"follows {key}, which was inserted")

    for prev, siblings in children.items():
        if len(siblings) > 1:
            ranked = sorted(siblings, key=lambda k: (-_depth(k), links[k].get("sequence", 0), k))
            for extra in ranked[1:]:
                where = f"claims to follow {prev}" if prev else "claims to start the chain"
                _mark(extra, f"{where}, which {ranked[0]} already does")
    return check
