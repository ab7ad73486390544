"""Python projects with real tools: a uv project's outdated direct dependencies, moved in its lock file and tested;
pip-audit judged by what it printed."""

from __future__ import annotations

import subprocess
import tomllib

import pytest

from tasks.dependencies import python_deps

PYPROJECT = """[project]
name = "playground-worker"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = ["six>=1.15"]

[dependency-groups]
dev = ["pytest>=8"]
"""
TEST = "import six\n\n\ndef test_six():\n    assert six.PY3\n"


@pytest.fixture
def uv_project(tmp_path):
    project = tmp_path / "worker"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "test_worker.py").write_text(TEST)
    for args in (["uv", "lock", "--quiet"], ["uv", "lock", "--quiet", "--upgrade-package", "six==1.15.0"]):
        subprocess.run(args, cwd=project, check=True, capture_output=True)
    return project


def _locked(project, name):
    return next(p["version"] for p in tomllib.loads((project / "uv.lock").read_text())["package"] if p["name"] == name)


@pytest.mark.network
def test_a_uv_projects_direct_dependency_is_found_outdated_moved_in_the_lock_and_tested(uv_project, tmp_path):
    venv = tmp_path / "venv"
    assert python_deps.manager(uv_project) == "uv"
    assert python_deps.install(uv_project, venv).ok
    found = {o.package: o for o in python_deps.outdated(uv_project, venv, "worker")}
    assert set(found) == {"six"}  # pytest and its dependencies are not the project's own dependencies
    assert found["six"].current == "1.15.0" and found["six"].kind == "minor" and found["six"].action == "apply"
    assert python_deps.apply_updates(uv_project, venv, [found["six"]]).ok
    assert _locked(uv_project, "six") == found["six"].wanted
    assert python_deps.run_tests(uv_project, venv, None).ok
    assert not (uv_project / ".venv").exists()  # the environment lives outside the work tree


@pytest.mark.network
def test_pip_audit_through_the_osv_stand_in_reads_findings_and_their_fix(sandbox, tmp_path):
    import os

    project = tmp_path / "api"
    project.mkdir()
    (project / "requirements.txt").write_text("idna==3.6\nsix==1.17.0\n")
    outcome = python_deps.audit(project, os.environ["OPS_OSV_URL"])
    assert outcome.ran and outcome.audited == 2
    [finding] = outcome.findings
    assert finding["package"] == "idna" and "GHSA-jjg7-2v4v-x38h" in finding["advisories"]
    assert finding["fix_available"] and not finding["fix_is_major"]


def test_pip_audit_against_a_service_that_cannot_be_reached_is_a_transient_error_not_a_clean_audit(tmp_path):
    from tasks.retry import TransientError, is_transient

    project = tmp_path / "api"
    project.mkdir()
    (project / "requirements.txt").write_text("six==1.17.0\n")
    with pytest.raises(TransientError, match="pip-audit in api: the vulnerability service could not be reached") as e:
        python_deps.audit(project, "http://127.0.0.1:9/v1/query", timeout=120)
    assert is_transient(e.value)  # retried by the task, then the run fails saying so


@pytest.mark.network
def test_a_uv_project_is_audited_from_its_lock_file(uv_project, sandbox):
    import os

    (uv_project / "pyproject.toml").write_text(PYPROJECT.replace('["six>=1.15"]', '["six>=1.15", "idna>=3"]'))
    subprocess.run(["uv", "lock", "--quiet", "--upgrade-package", "idna==3.6"], cwd=uv_project, check=True,
                   capture_output=True)
    outcome = python_deps.audit(uv_project, os.environ["OPS_OSV_URL"])
    assert outcome.ran and outcome.audited >= 2
    assert [f["package"] for f in outcome.findings] == ["idna"]  # the locked 3.6, found through OSV
