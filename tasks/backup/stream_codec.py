"""Streaming transforms of backup bytes (pure CPU, no I/O): zstd compression and AES-256-GCM client-side encryption.

Encrypted format ("POPSENC1"): an 8-byte magic, a random 8-byte nonce prefix, then segments, each a 4-byte big-endian
length and an AES-256-GCM ciphertext of up to 1 MiB of plaintext with its tag. Each segment's nonce is the prefix and
its 4-byte index; its associated data says whether it is the last, so truncation and reordering are detected.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator

import zstandard

MAGIC = b"POPSENC1"
SEGMENT = 1024 * 1024


class IntegrityError(ValueError):
    """The bytes are not what was written: decompression or decryption failed its checksum."""


def compress(chunks: Iterable[bytes], level: int = 1, threads: int = 1) -> Iterator[bytes]:
    """zstd frames with content checksums, so a flipped byte fails decompression."""
    cobj = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads).compressobj()
    for chunk in chunks:
        out = cobj.compress(chunk)
        if out:
            yield out
    yield cobj.flush()


def decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            out = dobj.decompress(chunk)
            if out:
                yield out
        if not dobj.eof:
            raise IntegrityError("the compressed stream is truncated (zstd frame incomplete)")
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"decompression failed: {exc}") from None


def _aead(key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(key) != 32:
        raise ValueError("the backup encryption key must be 32 bytes (base64 of 32 random bytes)")
    return AESGCM(key)


def encrypt(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    aead = _aead(key)
    prefix = os.urandom(8)
    yield MAGIC + prefix
    index = 0
    pending = bytearray()

    def seal(data: bytes, last: bool) -> bytes:
        sealed = aead.encrypt(prefix + index.to_bytes(4, "big"), data, b"last" if last else b"more")
        return len(sealed).to_bytes(4, "big") + sealed

    for chunk in chunks:
        pending += chunk
        while len(pending) > SEGMENT:  # keep at least one byte back so the last segment is marked as such
            yield seal(bytes(pending[:SEGMENT]), False)
            del pending[:SEGMENT]
            index += 1
    yield seal(bytes(pending), True)


def decrypt(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    from cryptography.exceptions import InvalidTag

    aead = _aead(key)
    buf = bytearray()
    prefix = None
    index = 0
    finished = False
    for chunk in chunks:
        buf += chunk
        if prefix is None:
            if len(buf) < 16:
                continue
            if bytes(buf[:8]) != MAGIC:
                raise IntegrityError("not an encrypted playground-ops archive (bad magic)")
            prefix = bytes(buf[8:16])
            del buf[:16]
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + n:
                break
            sealed = bytes(buf[4:4 + n])
            del buf[:4 + n]
            if finished:
                raise IntegrityError("data after the last encrypted segment")
            nonce = prefix + index.to_bytes(4, "big")
            try:
                plain = aead.decrypt(nonce, sealed, b"more")
            except InvalidTag:
                try:
                    plain = aead.decrypt(nonce, sealed, b"last")
                    finished = True
                except InvalidTag:
                    raise IntegrityError(f"encrypted segment {index} failed authentication") from None
            index += 1
            yield plain
    if not finished or buf:
        raise IntegrityError("the encrypted stream is truncated (no final segment)")


class Hashed:
    """Pass chunks through while counting and hashing them (SHA-256); with hash=False only counting (where another
    checksum already covers the bytes, such as zstd's frame checksum over the raw dump)."""

    def __init__(self, chunks: Iterable[bytes], hash: bool = True):
        self._chunks = chunks
        self.size = 0
        self._sha = hashlib.sha256() if hash else None

    def __iter__(self) -> Iterator[bytes]:
        sha = self._sha
        for chunk in self._chunks:
            self.size += len(chunk)
            if sha is not None:
                sha.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None


def main(argv: list[str]) -> int:
    """By hand, without playground-ops running: `python -m tasks.backup.stream_codec decrypt KEY_FILE < in > out`
    (KEY_FILE holds the key as the Prefect Secret does: base64 of 32 bytes), or `decompress < in > out`."""
    import base64
    import sys

    if len(argv) == 2 and argv[0] == "decrypt":
        key = base64.b64decode(open(argv[1]).read().strip())
        stream = decrypt(iter(lambda: sys.stdin.buffer.read(1024 * 1024), b""), key)
    elif len(argv) == 1 and argv[0] == "decompress":
        stream = decompress(iter(lambda: sys.stdin.buffer.read(1024 * 1024), b""))
    else:
        print("usage: python -m tasks.backup.stream_codec decrypt KEY_FILE < in > out | decompress < in > out",
              file=sys.stderr)
        return 2
    try:
        for chunk in stream:
            sys.stdout.buffer.write(chunk)
    except (IntegrityError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
