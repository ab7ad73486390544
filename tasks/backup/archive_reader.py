"""Reading the table of contents of a pg_dump custom-format archive as it streams by (pure: bytes in, entries out).

The backup checks, before it writes its manifest, that the archive it stored has a data entry for every table of the
snapshot. Only the header and TOC are parsed: they come first and are small. (Parsing the data blocks too was measured
and rejected: with -Z0 pg_dump writes one block chunk per row, and walking ten million of them in Python tripled the
backup's wall time.)

Format: src/bin/pg_dump/pg_backup_archiver.c (WriteHead, WriteToc) and pg_backup_custom.c, archive versions 1.12-1.16
(pg_dump 11-17).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    definition: str = ""


@dataclass
class ArchiveSummary:
    version: str
    compressed: bool
    table_data: dict[str, str] = field(default_factory=dict)  # "schema.table" -> its COPY statement
    entries: set[tuple[str, str, str]] = field(default_factory=set)  # every TOC entry: (desc, schema, name)
    definitions: list[str] = field(default_factory=list)  # the SQL of every entry that creates a table


class _NeedMore(Exception):
    pass


class ArchiveReader:
    """Feed it the archive's bytes in any chunking; once the TOC has passed it ignores the rest."""

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

    @property
    def done(self) -> bool:
        return self._stage == "data"

    # -- readers over the buffer; they raise _NeedMore when the bytes have not arrived yet
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
        self._buf += data
        while not self.done:
            mark = self._pos
            try:
                self._read_head() if self._stage == "head" else self._read_toc_entry()
            except _NeedMore:
                self._pos = mark
                break
        if self.done:
            self._buf = bytearray()

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
        definition = self._str() or ""
        self._str()  # drop statement
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
        self._toc[dump_id] = TocEntry(dump_id, desc, namespace, tag, copy_stmt,
                                      definition if desc == "TABLE" else "")
        if len(self._toc) == self._toc_count:
            self._stage = "data"

    def summary(self) -> ArchiveSummary:
        if not self.done:
            raise ArchiveFormatError("the archive ended before its table of contents was complete")
        data = {f"{e.namespace}.{e.tag}": e.copy_stmt for e in self._toc.values() if e.desc == "TABLE DATA"}
        entries = {(e.desc, e.namespace, e.tag) for e in self._toc.values()}
        return ArchiveSummary(f"{self._version[0]}.{self._version[1]}", self.compressed, data, entries,
                              [e.definition for e in self._toc.values() if e.definition])
