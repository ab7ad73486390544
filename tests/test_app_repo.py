"""The sandbox application repository the dependency runbooks will work on."""

from __future__ import annotations

import json

import pytest

from sandbox.app_repo import create_app_repo
from tasks.dependencies.git_repo import check_remote, git, prepare_workdir


def test_app_repository_has_both_npm_projects_with_tests_and_a_python_project(tmp_path):
    bare = create_app_repo(tmp_path)
    assert check_remote(str(bare), "main")
    work = tmp_path / "work"
    prepare_workdir(str(bare), "main", work)
    backend = json.loads((work / "backend" / "package.json").read_text())
    frontend = json.loads((work / "frontend" / "package.json").read_text())
    assert backend["scripts"]["test"] and frontend["scripts"]["test"]
    assert backend["dependencies"]["ms"] == "2.0.0"  # pinned to an older release, so there is something to update
    assert "test:integration" in json.loads((work / "package.json").read_text())["scripts"]
    assert "six==" in (work / "python" / "requirements.txt").read_text()
    assert create_app_repo(tmp_path) == bare  # an existing repository is kept
    assert git("log", "--format=%s", cwd=bare) == "Initial commit of the playground app"


@pytest.mark.network
def test_app_installs_from_the_npm_registry_and_its_tests_pass(tmp_path):
    import subprocess

    work = tmp_path / "work"
    prepare_workdir(str(create_app_repo(tmp_path)), "main", work)
    for project in ("backend", "frontend"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=work / project, check=True,
                       capture_output=True, timeout=300)
        test = subprocess.run(["npm", "test"], cwd=work / project, capture_output=True, text=True, timeout=120)
        assert test.returncode == 0 and f"{project} ok" in test.stdout
    integration = subprocess.run(["npm", "run", "test:integration"], cwd=work, capture_output=True, text=True,
                                 timeout=120)
    assert integration.returncode == 0 and "integration ok" in integration.stdout
