"""Configuration backups on paper: drift and restore plans as fingerprints, the services a target declares, and the
forms refused before anything is read."""

from __future__ import annotations

import pytest

from playground_ops.errors import ConfigError
from tasks.backup.configuration import drift, env_document, parse_env_document, restore_rows


def test_drift_says_what_a_restore_would_undo_per_key():
    backed_up, live = {"A": "aaaa", "B": "bbbb", "C": "cccc"}, {"A": "aaaa", "B": "b2b2", "D": "dddd"}
    rows = {r["key"]: r["since_backup"] for r in drift(backed_up, live)}
    assert rows == {"B": "changed since the backup (a restore puts the old value back)",
                    "C": "removed since the backup (a restore puts it back)",
                    "D": "added since the backup (a restore removes it)"}
    assert drift(backed_up, dict(backed_up)) == []


def test_a_restore_writes_changed_and_missing_keys_and_removes_added_ones():
    rows, write, remove = restore_rows({"A": "aaaa", "B": "bbbb", "C": "cccc"}, {"A": "aaaa", "B": "b2b2", "D": "dddd"})
    assert (write, remove) == (["B", "C"], ["D"])
    assert rows == [{"key": "B", "action": "change", "before": "b2b2", "after": "bbbb"},
                    {"key": "C", "action": "add", "before": "", "after": "cccc"},
                    {"key": "D", "action": "remove", "before": "dddd", "after": ""}]


def test_an_env_file_round_trips_and_anything_else_is_refused_without_quoting_it():
    assert parse_env_document(env_document("frontend", "srv-x", {"B": "2", "A": "1"})) == {"A": "1", "B": "2"}
    with pytest.raises(ValueError, match="not an env file") as err:
        parse_env_document(b'{"secret": "s3cr3t-value"}')
    assert "s3cr3t" not in str(err.value)


def test_a_targets_file_declares_services_and_the_infrastructure_file(tmp_path, monkeypatch):
    from playground_ops.settings import get_target

    targets = tmp_path / "targets.yaml"
    base = ("targets:\n  - name: prod\n    health_url: http://127.0.0.1:1/health\n"
            "    database_url: postgresql://u@h:5432/app\n    redis_url: redis://h:6379/0\n"
            "    platform:\n      kind: render\n      api_key: rnd_x\n      service_id: srv-back\n")
    monkeypatch.setenv("OPS_TARGETS_FILE", str(targets))
    targets.write_text(base)
    assert [(s.name, s.id) for s in get_target("prod").platform.all_services()] == [("backend", "srv-back")]
    targets.write_text(base + "      services:\n        - {name: backend, id: srv-back}\n"
                              "        - {name: frontend, id: srv-front}\n")
    platform = get_target("prod").platform
    assert platform.for_service(platform.service("frontend")).service_id == "srv-front"
    with pytest.raises(ValueError, match="service: expected one of backend, frontend \\(got 'worker'\\)"):
        platform.service("worker")
    targets.write_text(base + "      services:\n        - {name: web, id: srv-a}\n        - {name: web, id: srv-b}\n")
    with pytest.raises(ConfigError, match="distinct names"):
        get_target("prod")
    targets.write_text(base + "      services:\n        - {name: web, id: '../x'}\n")
    with pytest.raises(ConfigError, match="a platform service id such as srv-abc123"):
        get_target("prod")
    repo = "    repository:\n      url: /tmp/x.git\n      projects: [{path: backend, ecosystem: npm}]\n"
    targets.write_text(base + repo + "      infrastructure_file: ../../etc/passwd\n")
    with pytest.raises(ConfigError, match="a file path inside the repository, such as render.yaml"):
        get_target("prod")
    targets.write_text(base + repo + "      infrastructure_file: deploy/render.yaml\n")
    assert get_target("prod").repository.infrastructure_file == "deploy/render.yaml"
