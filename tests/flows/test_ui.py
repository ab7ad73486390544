"""What an operator sees in the Prefect UI, seen through a real headless browser: a critical health-check run's page
says Critical, and its report artifact shows the finding."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import backend_down, flow_run_artifacts

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, tmp_path: Path, name: str) -> tuple[str, Path]:
    """The page's DOM once its scripts have run, and a screenshot of it."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / ('profile-' + name)}", "--virtual-time-budget=20000",
             "--window-size=1400,1000"]
    dom = subprocess.run([BROWSER, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / f"{name}.png"
    subprocess.run([BROWSER, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    return dom, shot


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine: `apt-get install chromium` (Debian) to run it")
def test_a_critical_run_is_named_critical_in_the_ui_and_its_report_shows_the_finding(ops, tmp_path):
    import os

    from prefect import get_client
    from prefect.variables import Variable

    from flows.health_check import health_check
    from sandbox import manager
    from tasks.monitoring.run_state import state_name

    Variable.unset(state_name("health-check", "sandbox"))
    backend_down(ops)
    try:
        health_check()
        state = health_check(return_state=True)
    finally:
        manager.start_backend(ops)
    assert state.is_completed() and state.name == "Critical"
    report = state.result()
    finding = next(f.message for f in report.findings if "failed 2 consecutive checks" in f.message)
    ui = os.environ["PREFECT_UI_URL"]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    summary = next(a for a in flow_run_artifacts(str(run.id)) if a.key == "health-check-sandbox")
    page, page_shot = render(f"{ui}/runs/flow-run/{run.id}", tmp_path, "run")
    assert "Critical" in page and run.name in page
    artifact, artifact_shot = render(f"{ui}/artifacts/artifact/{summary.id}", tmp_path, "artifact")
    assert finding.split(":")[0] in artifact
    for shot in (page_shot, artifact_shot):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("OPS_UI_SCREENSHOTS"):  # where a person wants to look at them
        keep = Path(os.environ["OPS_UI_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        for shot in (page_shot, artifact_shot):
            shutil.copy(shot, keep / shot.name)
