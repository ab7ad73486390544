"""Bad input: one line naming the thing and the expected form, exit code 2, no traceback, nothing started."""

from __future__ import annotations

import pytest

from tests.conftest import cli

SANDBOX_ENV = {"HEALTH_URL": "http://127.0.0.1:1/health", "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db",
               "REDIS_URL": "redis://127.0.0.1:1/0", "TARGET_NAME": "sandbox"}


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("env, expected", [
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: expected postgresql://user:password@host:port/dbname"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL: expected redis://"),
    ({"HEALTH_URL": "ftp://x/health"}, "HEALTH_URL: expected http(s)://host[:port]/health"),
    ({"TARGET_NAME": "Prod DB"}, "TARGET_NAME: expected lowercase letters, digits and dashes"),
    ({"OPS_SANDBOX_PORT": "80"}, "OPS_SANDBOX_PORT: expected"),
    ({"OPS_AUDIT_URL": "s3://B_/x"}, "OPS_AUDIT_URL: expected a directory path or s3://bucket/prefix"),
])
def test_malformed_setting_is_named_with_its_expected_form(env, expected):
    line = one_line_error(cli("run", "health-check", env={**SANDBOX_ENV, **env}))
    assert expected in line


def test_missing_setting_is_named():
    env = {k: "" for k in ("DATABASE_URL",)}
    line = one_line_error(cli("run", "health-check", env={**SANDBOX_ENV, **env}))
    assert line.startswith("error: DATABASE_URL: expected postgresql://")


def test_unknown_runbook_lists_the_valid_ones():
    line = one_line_error(cli("run", "reboot-everything", env=SANDBOX_ENV))
    assert "runbook: expected one of" in line and "health-check" in line


def test_unknown_target_lists_the_valid_ones():
    line = one_line_error(cli("run", "health-check", "--target", "staging", env=SANDBOX_ENV))
    assert "--target: expected one of sandbox (got staging)" in line


def test_unknown_parameter_lists_the_valid_ones():
    line = one_line_error(cli("run", "health-check", "--param", "verbose=true", env=SANDBOX_ENV))
    assert "parameter 'verbose' of health-check" in line


def test_malformed_targets_file_is_named(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("targets:\n  - name: prod\n    health_url: https://x/health\n    database_url: postgresql://h/db\n"
                   "    redis_url: redis://h:6379/0\n  - name: stage\n    health_url: nope\n"
                   "    database_url: postgresql://h/db\n    redis_url: redis://h:6379/0\n")
    line = one_line_error(cli("run", "health-check", env={"OPS_TARGETS_FILE": str(bad)}))
    assert "targets[1] (stage).health_url: expected http(s)://host[:port]/health" in line
    missing = one_line_error(cli("run", "health-check", env={"OPS_TARGETS_FILE": str(tmp_path / "none.yaml")}))
    assert "OPS_TARGETS_FILE: expected the path of a readable YAML file" in missing


def test_targets_file_env_reference_must_be_set(tmp_path):
    f = tmp_path / "targets.yaml"
    f.write_text("targets:\n  - name: prod\n    health_url: https://x/health\n    database_url: {env: PROD_DB_URL}\n"
                 "    redis_url: redis://h:6379/0\n")
    line = one_line_error(cli("run", "health-check", env={"OPS_TARGETS_FILE": str(f), "PROD_DB_URL": ""}))
    assert "database_url: expected" in line


def test_every_command_has_help():
    for args in (["--help"], ["setup", "--help"], ["serve", "--help"], ["run", "--help"], ["demo", "--help"],
                 ["sandbox", "--help"], ["sandbox", "seed", "--help"], ["audit", "verify", "--help"]):
        result = cli(*args)
        assert result.returncode == 0 and "Usage" in result.stdout, args
