"""What a server older or other than the archive's cannot take, left out of pg_restore's SQL script (pure).

pg_restore of a newer major opens every session with settings an older server does not have (`SET
transaction_timeout = 0`, PostgreSQL 17), and a server may carry column options of its own (a vendor's build marks
every column with one) that another server refuses (`unrecognized parameter`). Restoring onto such a server goes
through `pg_restore -f -`; this filter leaves out exactly those statements or options, outside COPY data only, and
counts each, so the report can name every one and why it is harmless. Nothing else is touched.

Also a command, for restoring by hand:  pg_restore -f - archive | python -m tasks.backup.restore_script
  --server-major 15 [--drop-column-option pg_attver] | psql -v ON_ERROR_STOP=1 -d NEWDB
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field

# Settings pg_dump's session preamble sets, by the major version that introduced them (older ones predate 13).
SETTINGS_SINCE = {"transaction_timeout": 17}
# PostgreSQL's own column options (ALTER TABLE ... ALTER COLUMN ... SET (...)) in every supported major.
POSTGRES_COLUMN_OPTIONS = frozenset({"n_distinct", "n_distinct_inherited"})

_SET = re.compile(rb"^SET ([a-z_]+) = .*;$")
_COLUMN_OPTIONS = re.compile(rb"^(ALTER TABLE (?:ONLY )?.+ ALTER COLUMN .+ SET \()(.*)(\);)$")
_OPTION = re.compile(r"\s*([^=,\s]+)=('(?:[^']|'')*'|[^,]*)\s*(?:,|$)")
_COPY = re.compile(rb"^COPY .* FROM stdin;$")
_COPY_END = b"\n\\.\n"


def column_options(definitions: list[str]) -> dict[str, str]:
    """Every column option the definitions set that is not PostgreSQL's own: name -> one value it is set to."""
    found: dict[str, str] = {}
    for definition in definitions:
        for line in definition.splitlines():
            match = _COLUMN_OPTIONS.match(line.encode())
            if match:
                for name, value in _OPTION.findall(match.group(2).decode()):
                    if name not in POSTGRES_COLUMN_OPTIONS:
                        found.setdefault(name, value)
    return found


def settings_unknown_to(server_major: int) -> set[str]:
    return {name for name, since in SETTINGS_SINCE.items() if since > server_major}


@dataclass
class ScriptFilter:
    """Streams pg_restore's SQL script through, leaving out the settings and column options named."""

    settings: set[str]
    options: set[str]
    left_out: Counter = field(default_factory=Counter)
    _pending: bytes = b""
    _in_copy: bool = False
    _line_start: bool = True

    def feed(self, data: bytes) -> bytes:
        buf, out = self._pending + data, []
        pos = 0
        while pos < len(buf):
            if self._in_copy:  # COPY data passes through untouched, in bulk, up to its end marker
                if self._line_start and buf.startswith(b"\\.\n", pos):
                    end = pos + 3
                else:
                    found = buf.find(_COPY_END, pos)
                    if found < 0:
                        keep = max(pos, len(buf) - len(_COPY_END) + 1)  # the marker may straddle two chunks
                        if keep > pos:
                            out.append(buf[pos:keep])
                            self._line_start = buf[keep - 1:keep] == b"\n"
                        pos = keep
                        break
                    end = found + len(_COPY_END)
                out.append(buf[pos:end])
                pos, self._in_copy, self._line_start = end, False, True
                continue
            newline = buf.find(b"\n", pos)
            if newline < 0:
                break
            out.append(self._line(buf[pos:newline]))
            pos, self._line_start = newline + 1, True
        self._pending = buf[pos:]
        return b"".join(out)

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest if self._in_copy else self._line(rest, newline=False) if rest else b""

    def _line(self, line: bytes, newline: bool = True) -> bytes:
        end = b"\n" if newline else b""
        if _COPY.match(line):
            self._in_copy = True
            return line + end
        setting = _SET.match(line)
        if setting and setting.group(1).decode() in self.settings:
            self.left_out[f"SET {setting.group(1).decode()}"] += 1
            return b""
        options = _COLUMN_OPTIONS.match(line) if self.options else None
        if options:
            kept = []
            for name, value in _OPTION.findall(options.group(2).decode()):
                if name in self.options:
                    self.left_out[f"column option {name}"] += 1
                else:
                    kept.append(f"{name}={value}")
            if not kept:
                return b""
            return options.group(1) + ", ".join(kept).encode() + options.group(3) + end
        return line + end


def describe(left_out: Counter, server: str) -> list[str]:
    """Each kind of statement left out, how often, and why leaving it out loses nothing."""
    why = {"SET": f"PostgreSQL {server} has no such setting; pg_restore only sets it to switch a timeout off",
           "column": f"PostgreSQL {server} refuses it (unrecognized parameter): not one of PostgreSQL's own column "
                     "options, but a marker the origin server sets on every column itself; no data depends on it"}
    return [f"{what} left out {n} time(s): {why[what.split(' ', 1)[0]]}" for what, n in sorted(left_out.items())]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-major", type=int, required=True, help="the major version of the server restored onto")
    parser.add_argument("--drop-column-option", action="append", default=[], metavar="NAME",
                        help="a column option that server refuses (repeatable)")
    args = parser.parse_args(argv)
    script = ScriptFilter(settings_unknown_to(args.server_major), set(args.drop_column_option) - POSTGRES_COLUMN_OPTIONS)
    while chunk := sys.stdin.buffer.read(1 << 20):
        sys.stdout.buffer.write(script.feed(chunk))
    sys.stdout.buffer.write(script.close())
    for line in describe(script.left_out, str(args.server_major)):
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
