"""The pull step of every worker deployment (prefect.yaml): run the runbooks from the checkout of the host that runs
them, decided there at run time. (`{{ $PLAYGROUND_OPS_DIR }}` in prefect.yaml would be filled in by `prefect deploy`
with the deploying machine's path, which another host does not have.)"""

from __future__ import annotations

import os
from pathlib import Path


def checkout_dir(environ: dict[str, str] | None = None) -> Path:
    """PLAYGROUND_OPS_DIR as the worker's host sets it, else the checkout this package is installed from."""
    environ = os.environ if environ is None else environ
    named = environ.get("PLAYGROUND_OPS_DIR", "").strip()
    path = Path(named).expanduser() if named else Path(__file__).resolve().parent.parent
    if not ((path / "prefect.yaml").is_file() and (path / "flows").is_dir()):
        source = "PLAYGROUND_OPS_DIR" if named else "the installed playground_ops package"
        raise ValueError(f"{source}: expected a playground-ops checkout (a folder holding prefect.yaml and flows/), "
                         f"got {path}")
    return path


def enter_checkout() -> dict[str, str]:
    """Prefect pull step: change into this host's checkout; its output names the directory."""
    path = checkout_dir()
    os.chdir(path)
    return {"directory": str(path)}
