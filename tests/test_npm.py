"""npm for real against the registry, on the sandbox's application."""

from __future__ import annotations

import json

import pytest

from sandbox.app_repo import create_app_repo
from tasks.dependencies import npm
from tasks.dependencies.git_repo import prepare_workdir


@pytest.mark.network
def test_outdated_classified_then_patch_and_minor_applied_and_tested(tmp_path):
    work = tmp_path / "work"
    prepare_workdir(str(create_app_repo(tmp_path)), "main", work)
    backend = work / "backend"
    assert npm.install(backend).ok
    found = {o.package: o for o in npm.outdated(backend, "backend")}
    assert found["ms"].kind == "minor" and found["minimist"].kind == "patch" and found["debug"].kind == "major"
    chosen = [o for o in found.values() if o.action == "apply"]
    assert npm.apply_updates(backend, chosen).ok
    pins = json.loads((backend / "package.json").read_text())["dependencies"]
    assert pins["ms"] == found["ms"].wanted and pins["debug"] == "2.6.8"  # the major stays for a person to plan
    assert npm.run_script(backend, "test").ok
    assert not any(o.action == "apply" for o in npm.outdated(backend, "backend"))
