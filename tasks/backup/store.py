"""The backup store: a local directory or s3://bucket/prefix. Archives are streamed in and out, never held whole.

An archive object appears only once it is complete: locally through a rename, on S3 by completing the multipart
upload. Any failure removes the partial file or aborts the multipart upload, so nothing incomplete is left behind.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from tasks.store_keys import check_relative

MiB = 1024 * 1024
MIN_PART = 16 * MiB
MAX_PARTS = 10_000


def part_size_for(expected_bytes: int, headroom: float = 4.0) -> int:
    """An S3 part size so that `headroom` times the expected size still fits in 10,000 parts (min 16 MiB).

    A 300 GB database gets 128 MiB parts (1.2 TB fits); the sandbox gets 16 MiB.
    """
    needed = int(expected_bytes * headroom / (MAX_PARTS - 100)) + 1
    size = MIN_PART
    while size < needed:
        size *= 2
    return min(size, 5 * 1024 * MiB)


class BackupStore(Protocol):
    url: str

    def upload_stream(self, key: str, chunks: Iterable[bytes], part_size: int = MIN_PART) -> int: ...
    def download_stream(self, key: str, chunk_size: int = 4 * MiB) -> Iterator[bytes]: ...
    def size(self, key: str) -> int | None: ...
    def put_json(self, key: str, data: dict[str, Any], overwrite: bool = False) -> None: ...
    def get_json(self, key: str) -> dict[str, Any] | None: ...
    def list(self, prefix: str) -> list[tuple[str, int, datetime]]: ...
    def delete(self, keys: list[str]) -> None: ...
    def incomplete_uploads(self, prefix: str) -> list[dict[str, Any]]: ...
    def abort_upload(self, key: str, upload_id: str) -> None: ...


class LocalBackupStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_relative(key)

    def upload_stream(self, key: str, chunks: Iterable[bytes], part_size: int = MIN_PART) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
        written = 0
        try:
            with open(partial, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return written

    def download_stream(self, key: str, chunk_size: int = 4 * MiB) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.exists() else None

    def put_json(self, key: str, data: dict[str, Any], overwrite: bool = False) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not overwrite:
            raise FileExistsError(key)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)

    def get_json(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[tuple[str, int, datetime]]:
        base = self._path(prefix)
        if not base.exists():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and ".partial-" not in p.name and ".tmp-" not in p.name:
                st = p.stat()
                out.append((str(p.relative_to(self.root)), st.st_size,
                            datetime.fromtimestamp(st.st_mtime, timezone.utc)))
        return sorted(out)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
            parent = self._path(key).parent
            while parent != self.root and parent.is_relative_to(self.root) and parent.exists() \
                    and not any(parent.iterdir()):  # no empty folder left behind, up to the store's root
                parent.rmdir()
                parent = parent.parent

    def incomplete_uploads(self, prefix: str) -> list[dict[str, Any]]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return [{"key": str(p.relative_to(self.root)), "upload_id": "",
                 "initiated": datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)}
                for p in base.rglob("*.partial-*")]

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3BackupStore:
    """Multipart uploads of a stream of unknown length, AES256 server-side encryption on every object."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None, concurrency: int = 2):
        import boto3
        from botocore.config import Config

        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.url = url
        self.concurrency = concurrency
        # botocore retries transient failures (5xx, throttling, connection resets) of each request itself
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, config=Config(
            retries={"max_attempts": 6, "mode": "standard"}, connect_timeout=10, read_timeout=120))

    def _key(self, key: str) -> str:
        check_relative(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def upload_stream(self, key: str, chunks: Iterable[bytes], part_size: int = MIN_PART) -> int:
        full = self._key(key)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full,
                                                        ServerSideEncryption="AES256")["UploadId"]
        parts: list[Future] = []
        total = 0
        # at most `concurrency` parts in flight plus the one being filled: memory stays near (concurrency+1) parts
        slots = threading.BoundedSemaphore(self.concurrency)
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                buffer = bytearray()
                number = 0

                def send(data: bytes, n: int) -> dict[str, Any]:
                    try:
                        etag = self.client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                                       PartNumber=n, Body=data)["ETag"]
                        return {"PartNumber": n, "ETag": etag}
                    finally:
                        slots.release()

                def flush(data: bytes) -> None:
                    nonlocal number
                    number += 1
                    if number > MAX_PARTS:
                        raise ValueError(f"the archive needs more than {MAX_PARTS} parts of {part_size} bytes")
                    slots.acquire()
                    for done in [p for p in parts if p.done()]:
                        done.result()  # surface a failed part at once
                    parts.append(pool.submit(send, data, number))

                for chunk in chunks:
                    buffer += chunk
                    total += len(chunk)
                    while len(buffer) >= part_size:
                        flush(bytes(buffer[:part_size]))
                        del buffer[:part_size]
                if buffer or number == 0:
                    flush(bytes(buffer))
                completed = [p.result() for p in parts]
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                                  MultipartUpload={"Parts": completed})
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise
        return total

    def download_stream(self, key: str, chunk_size: int = 4 * MiB) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def put_json(self, key: str, data: dict[str, Any], overwrite: bool = False) -> None:
        extra = {} if overwrite else {"IfNoneMatch": "*"}
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), ContentType="application/json",
                               Body=json.dumps(data, indent=2, sort_keys=True, default=str).encode(),
                               ServerSideEncryption="AES256", **extra)

    def get_json(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return json.loads(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                return None
            raise

    def list(self, prefix: str) -> list[tuple[str, int, datetime]]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            out += [(self._strip(o["Key"]), o["Size"], o["LastModified"]) for o in page.get("Contents", [])]
        return sorted(out)

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i:i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def incomplete_uploads(self, prefix: str) -> list[dict[str, Any]]:
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                  Prefix=self._key(prefix)):
            found += [{"key": self._strip(u["Key"]), "upload_id": u["UploadId"], "initiated": u["Initiated"]}
                      for u in page.get("Uploads", [])]
        return found

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)


def open_backup_store(url: str, endpoint_url: str | None = None) -> BackupStore:
    from playground_ops.errors import ConfigError

    if url.startswith("s3://"):
        return S3BackupStore(url, endpoint_url=endpoint_url)
    if "://" in url:
        raise ConfigError("OPS_BACKUP_URL", "a directory path or s3://bucket/prefix", got=url)
    return LocalBackupStore(url)

