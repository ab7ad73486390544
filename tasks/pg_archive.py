"""Reading a pg_dump custom-format archive as it streams by (pure: bytes in, figures out).

While the backup streams, this parser follows the archive's structure (header, table of contents, data blocks) and
hashes each table's data exactly as pg_dump wrote it, counting its rows. The figures therefore describe what is in
the archive, read in the dump's own snapshot, at the cost of hashing bytes that pass by anyway.

Format: src/bin/pg_dump/pg_backup_archiver.c (WriteHead, WriteToc) and pg_backup_custom.c, archive versions 1.12-1.16
(pg_dump 11-17). Data blocks are read only when uncompressed (pg_dump -Z0), which is how backups dump.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

BLK_DATA, BLK_BLOBS = 1, 3
TERMINATOR = b"\\.\n\n\n"  # what pg_dump writes after a table's COPY data
SUPPORTED = {(1, 12), (1, 13), (1, 14), (1, 15), (1, 16)}


class ArchiveFormatError(ValueError):
    """The stream is not a pg_dump custom archive this parser understands."""


@dataclass
class TocEntry:
    dump_id: int
    desc: str
    namespace: str
    tag: str
    copy_stmt: str


@dataclass
class TableData:
    """One table's data as dumped: rows and SHA-256 of its COPY text."""

    name: str
    copy_stmt: str
    rows: int = 0
    bytes: int = 0
    sha256: str = ""


@dataclass
class ArchiveSummary:
    version: str
    compressed: bool
    tables: dict[str, TableData] = field(default_factory=dict)


class _NeedMore(Exception):
    pass


class ArchiveReader:
    """Feed it the archive's bytes in any chunking; `summary()` at the end gives per-table rows and hashes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._stage = "head"
        self._int_size = 4
        self._off_size = 8
        self._version = (0, 0)
        self.compressed = False
        self._toc: dict[int, TocEntry] = {}
        self._toc_count = 0
        self._current: tuple[TableData, "hashlib._Hash"] | None = None
        self._chunk_left = 0
        self._held = b""
        self._tables: dict[str, TableData] = {}
        self._hashers: dict[str, "hashlib._Hash"] = {}
        self.done = False

    # -- low-level readers over the buffer; raise _NeedMore when the bytes have not arrived yet
    def _take(self, n: int) -> bytes:
        if len(self._buf) - self._pos < n:
            raise _NeedMore
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return out

    def _int(self) -> int:
        raw = self._take(1 + self._int_size)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def _str(self) -> str | None:
        n = self._int()
        if n < 0:
            return None
        return self._take(n).decode("utf-8", "replace")

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if self._stage == "data" and self._current is not None and self._chunk_left and self._pos == len(self._buf):
            data = self._consume_chunk_bytes(data)  # fast path: table bytes pass straight into the hash
            if not data:
                return
        self._buf += data
        while True:
            mark = self._pos
            try:
                if not self._step():
                    break
            except _NeedMore:
                self._pos = mark
                break
        if self._pos > 1 << 20 or self._pos == len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0

    def _consume_chunk_bytes(self, data: bytes) -> bytes:
        n = min(self._chunk_left, len(data))
        self._table_bytes(data[:n] if n < len(data) else data)
        self._chunk_left -= n
        return data[n:]

    def _table_bytes(self, data: bytes | bytearray) -> None:
        """Hash a table's bytes, holding back the last few: the COPY terminator is not table content."""
        table, hasher = self._current
        held = self._held + data
        keep = len(TERMINATOR)
        if len(held) <= keep:
            self._held = bytes(held)
            return
        with memoryview(held) as view:
            body = view[:len(held) - keep]
            hasher.update(body)
            table.rows += held.count(b"\n", 0, len(held) - keep)
            table.bytes += len(body)
        self._held = bytes(held[-keep:])

    def _step(self) -> bool:
        if self._stage == "head":
            self._read_head()
            return True
        if self._stage == "toc":
            self._read_toc_entry()
            return True
        if self._stage == "data":
            return self._read_data()
        return False

    def _read_head(self) -> None:
        if self._take(5) != b"PGDMP":
            raise ArchiveFormatError("not a pg_dump custom-format archive (no PGDMP magic)")
        vmaj, vmin, _vrev = self._take(3)
        self._version = (vmaj, vmin)
        if self._version not in SUPPORTED:
            raise ArchiveFormatError(f"archive version {vmaj}.{vmin} is not supported")
        self._int_size, self._off_size = self._take(2)
        if self._take(1)[0] != 1:  # archCustom
            raise ArchiveFormatError("not a custom-format archive")
        if self._version >= (1, 15):
            self.compressed = self._take(1)[0] != 0  # compression algorithm: 0 = none
        else:
            self.compressed = self._int() != 0  # compression level
        for _ in range(7):  # creation time
            self._int()
        self._str(), self._str(), self._str()  # database name, server version, pg_dump version
        self._toc_count = self._int()
        self._stage = "toc" if self._toc_count else "data"

    def _read_toc_entry(self) -> None:
        dump_id = self._int()
        self._int()  # had dumper
        self._str(), self._str()  # table oid, oid
        tag = self._str() or ""
        desc = self._str() or ""
        self._int()  # section
        self._str(), self._str()  # definition, drop statement
        copy_stmt = self._str() or ""
        namespace = self._str() or ""
        self._str()  # tablespace
        if self._version >= (1, 14):
            self._str()  # table access method
        if self._version >= (1, 16):
            self._int()  # relkind
        self._str()  # owner
        self._str()  # "false" (with oids)
        while self._str() is not None:  # dependencies
            pass
        self._take(1 + self._off_size)  # data offset
        self._toc[dump_id] = TocEntry(dump_id, desc, namespace, tag, copy_stmt)
        if len(self._toc) == self._toc_count:
            self._stage = "data"

    def _read_data(self) -> bool:
        if self._current is None:
            block = self._take(1)[0]
            dump_id = self._int()
            entry = self._toc.get(dump_id)
            name = f"{entry.namespace}.{entry.tag}" if entry else f"dump-id-{dump_id}"
            table = self._tables.setdefault(name, TableData(name, entry.copy_stmt if entry else ""))
            hasher = self._hashers.setdefault(name, hashlib.sha256())
            self._current = (table, hasher)
            if block not in (BLK_DATA, BLK_BLOBS):
                raise ArchiveFormatError(f"unexpected block type {block}")
            self._chunk_left = 0
            return True  # each step commits what it read: a later _NeedMore rewinds only to here
        if self._chunk_left == 0:
            length = self._int()
            if length == 0:
                if self._held not in (TERMINATOR, b""):
                    raise ArchiveFormatError(f"table data of {self._current[0].name} does not end with the COPY terminator")
                self._current, self._held = None, b""
                return True
            self._chunk_left = length
            return True
        available = len(self._buf) - self._pos
        if available == 0:
            raise _NeedMore
        n = min(self._chunk_left, available)
        self._table_bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        self._chunk_left -= n
        return True

    def summary(self) -> ArchiveSummary:
        if self._stage != "data" or self._current is not None:
            raise ArchiveFormatError("the archive ended before its last data block was complete")
        for name, table in self._tables.items():
            table.sha256 = self._hashers[name].hexdigest()
        data_tables = {n: t for n, t in self._tables.items() if t.copy_stmt.startswith("COPY ")}
        return ArchiveSummary(f"{self._version[0]}.{self._version[1]}", self.compressed, data_tables)
