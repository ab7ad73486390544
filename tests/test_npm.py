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


@pytest.mark.network
@pytest.mark.parametrize("widen, peer", [(False, "~2.0.0"), (True, "~2.0.0 || ~2.1.3")])
def test_a_peer_range_is_widened_only_when_asked_and_the_lock_resolves_the_target(tmp_path, widen, peer):
    from tasks.dependencies.policy import Outdated

    project = tmp_path / "plugin"
    project.mkdir()
    manifest = {"name": "ms-plugin", "version": "1.0.0", "devDependencies": {"ms": "~2.0.0"},
                "peerDependencies": {"ms": "~2.0.0"}}
    (project / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    assert npm.install(project).ok
    update = Outdated("plugin", "ms", "2.0.0", "2.1.3", "2.1.3", "minor", "apply", spec="~2.0.0", new_spec="~2.1.3")
    assert npm.apply_updates(project, [update], widen_peers=widen).ok
    written = json.loads((project / "package.json").read_text())
    assert written["devDependencies"] == {"ms": "~2.1.3"} and written["peerDependencies"] == {"ms": peer}
    assert npm.locked_version(project, "ms") == "2.1.3"
