"""Bad input: one line naming the thing and the expected form, exit code 2, no traceback, nothing started."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import cli, cli_process

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
    ({"OPS_BACKUP_URL": __file__}, "OPS_BACKUP_URL: expected a directory path or s3://bucket/prefix, not a file"),
    ({"OPS_HEARTBEAT_SECONDS": "10"}, "OPS_HEARTBEAT_SECONDS: expected a value of at least 30"),
    ({"OPS_LOST_RUN_SECONDS": "90"}, "OPS_LOST_RUN_SECONDS: expected at least 105 s: the heartbeat (30 s), then "
                                     "the slots' lease (60 s)"),
    ({"OPS_HEARTBEAT_SECONDS": "60", "OPS_LOST_RUN_SECONDS": "120"}, "OPS_LOST_RUN_SECONDS: expected at least 135 s"),
])
def test_malformed_setting_is_named_with_its_expected_form(env, expected):
    line = one_line_error(cli("run", "health-check", env={**SANDBOX_ENV, **env}))
    assert expected in line


def test_the_installed_command_in_its_own_process_answers_bad_input_in_one_line_with_exit_2():
    """The smoke test of the real process (the others run the same command in this process)."""
    line = one_line_error(cli_process("run", "health-check", env={**SANDBOX_ENV, "DATABASE_URL": "mysql://x/y"}))
    assert line == "error: DATABASE_URL: expected postgresql://user:password@host:port/dbname"  # a URL is never echoed


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


@pytest.mark.parametrize("param, expected", [
    ("keep_days=abc", "parameter keep_days of backup-database: expected a whole number from 1 to 3650 (got abc)"),
    ("compression_level=99", "parameter compression_level of backup-database: expected a whole number from 1 to 19 (got 99)"),
    ("verify=perhaps", "parameter verify of backup-database: expected true or false (got perhaps)"),
])
def test_parameters_are_checked_against_the_runbook_before_any_run_is_created(param, expected):
    line = one_line_error(cli("run", "backup-database", "--param", param, env=SANDBOX_ENV))
    assert line == f"error: {expected}"


def test_jobs_out_of_range_is_one_line():
    line = one_line_error(cli("run", "verify-backup", "--param", "jobs=0", env=SANDBOX_ENV))
    assert "parameter jobs of verify-backup: expected a whole number from 1 to" in line and "(got 0)" in line


def test_an_unreachable_prefect_api_is_named():
    for args in (["run", "health-check"], ["setup"], ["audit", "verify"]):
        line = one_line_error(cli(*args, env={**SANDBOX_ENV, "PREFECT_API_URL": "http://127.0.0.1:9/api"}))
        assert line.startswith("error: PREFECT_API_URL: expected a reachable Prefect API (got http://127.0.0.1:9/api"), args


@pytest.mark.parametrize("command", [["run", "health-check"], ["setup"], ["serve"]])
def test_a_malformed_alert_rules_file_is_refused_before_anything_starts(tmp_path, command):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: HighCpu\n    metric: cpu_pct\n    op: '>'\n    threshold: lots\n"
                     "    severity: critical\n")
    line = one_line_error(cli(*command, env={**SANDBOX_ENV, "OPS_ALERT_RULES_FILE": str(rules),
                                             "PREFECT_API_URL": "http://127.0.0.1:9/api"}))
    assert f"{rules}: rules[0] (HighCpu).threshold: expected a number (got lots)" in line


def test_yaml_errors_name_the_file_line_and_column(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: HighCpu\n    metric: [cpu_pct\n")
    line = one_line_error(cli("run", "health-check", env={**SANDBOX_ENV, "OPS_ALERT_RULES_FILE": str(rules)}))
    assert f"OPS_ALERT_RULES_FILE: expected valid YAML (got {rules}, line 4, column 1:" in line
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - name: prod\n     health_url: x\n")
    line = one_line_error(cli("run", "health-check", env={"OPS_TARGETS_FILE": str(targets)}))
    assert f"OPS_TARGETS_FILE: expected valid YAML (got {targets}, line 3, column" in line


@pytest.mark.parametrize("env, expected", [
    ({"OPS_SANDBOX_PORT": "abc"}, "error: OPS_SANDBOX_PORT: expected a whole number (got abc)"),
    ({"OPS_SANDBOX_REDIS_DB": "99"}, "error: OPS_SANDBOX_REDIS_DB: expected a value of at most 15 (got 99)"),
])
def test_error_texts_never_carry_the_validation_librarys_wording(env, expected):
    line = one_line_error(cli("run", "health-check", env={**SANDBOX_ENV, **env}))
    assert line == expected
    assert "Input should be" not in line


def test_an_unknown_field_in_a_targets_file_is_named(tmp_path):
    f = tmp_path / "targets.yaml"
    f.write_text("targets:\n  - name: prod\n    health_url: https://x/health\n    database_url: postgresql://h/db\n"
                 "    redis_url: redis://h:6379/0\n    helth_url: typo\n")
    line = one_line_error(cli("run", "health-check", env={"OPS_TARGETS_FILE": str(f)}))
    assert "targets[0] (prod).helth_url: expected only the fields this place takes" in line
    assert "Extra inputs" not in line


def test_ops_home_defaults_under_home_and_nothing_lands_in_home_itself(tmp_path):
    """OPS_HOME unset: state goes to $HOME/.playground-ops, never straight into $HOME (a setting named `home` once
    read $HOME itself)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPS_HOME"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", "from playground_ops.settings import load_settings; "
                             "print(load_settings().ops_home); from sandbox import manager; "
                             "manager.jwt_secret(load_settings())"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / ".playground-ops")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".playground-ops"]
    assert (tmp_path / ".playground-ops" / "sandbox" / "jwt_secret").exists()


def test_reconcile_refuses_a_run_id_that_is_not_one_before_any_run():
    line = one_line_error(cli("run", "reconcile-crashed-run", "--param", "flow_run_id=../x", env=SANDBOX_ENV))
    assert "parameter flow_run_id of reconcile-crashed-run: expected an id (a UUID such as" in line and "../x" in line


def test_a_security_incident_for_a_source_that_is_not_one_is_refused_before_any_run_exists(ops):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    def runs() -> int:
        with get_client(sync_client=True) as client:
            return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["security-incident"]))))

    before = runs()
    line = one_line_error(cli("run", "security-incident", "-p", "kind=brute-force", "-p", "source=10.0.0.1; rm -rf /",
                              env=SANDBOX_ENV))
    assert "source: expected an IP address such as 203.0.113.9" in line
    assert runs() == before


@pytest.mark.parametrize("param, expected", [
    ("database=postgres", "database: expected a database that is not a system or template database (got postgres)"),
    ("database=template1", "database: expected a database that is not a system or template database (got template1)"),
    ("database=x; DROP TABLE users", "database: expected a plain identifier: lowercase letters, digits and '_'"),
    ("backup_id=../../etc", "backup_id: expected a key of the form <target>-<UTC time>-<run id>"),
])
def test_a_parameter_the_runbook_would_refuse_is_refused_before_any_run_exists(prefect_server, param, expected):
    """No run is created, so no [FAILED] notification can go out: the runbook's own check runs in the CLI first."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    def runs() -> int:
        with get_client(sync_client=True) as client:
            return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["restore-database"]))))

    before = runs()
    line = one_line_error(cli("run", "restore-database", "-p", param, env=SANDBOX_ENV))
    assert expected in line
    assert runs() == before


@pytest.mark.parametrize("runbook, param, expected", [
    ("incident", "approval_timeout_seconds=10",
     "approval_timeout_seconds: expected at least 30 s (OPS_APPROVAL_MIN_SECONDS) (got 10)"),
    ("secret-rotation", "approval_timeout_seconds=29",
     "approval_timeout_seconds: expected at least 30 s (OPS_APPROVAL_MIN_SECONDS) (got 29)"),
    ("incident", "recovery_timeout_minutes=0.5",
     "recovery_timeout_minutes: expected at least 1 min (OPS_RECOVERY_MIN_SECONDS) (got 0.5)"),
])
def test_waits_shorter_than_the_production_floors_are_refused_before_any_run(runbook, param, expected):
    """Production's floors (30 s for an approval, 1 min for a recovery) hold unless the settings lower them."""
    floors = {"OPS_APPROVAL_MIN_SECONDS": "30", "OPS_RECOVERY_MIN_SECONDS": "60"}
    line = one_line_error(cli("run", runbook, "-p", param, env={**SANDBOX_ENV, **floors}))
    assert expected in line


def test_a_run_started_elsewhere_with_a_wait_below_the_floor_fails_before_its_first_step(ops, monkeypatch):
    """The same rule inside the run, for runs started from the UI: nothing opened, a failed report naming it."""
    from flows.incident import incident
    from playground_ops.runbook import RunbookFailed
    from tasks.incidents.record import _store, read_incidents

    monkeypatch.setenv("OPS_APPROVAL_MIN_SECONDS", "30")
    before = read_incidents(_store(), "sandbox")
    with pytest.raises(RunbookFailed, match=r"approval_timeout_seconds: expected at least 30 s"):
        incident(summary="too hasty", approval_timeout_seconds=5)
    assert read_incidents(_store(), "sandbox") == before


@pytest.mark.parametrize("runbook, params, expected", [
    ("environment-variables", ["action=set", "values={bad-key: x}"],
     "environment-variables: expected names such as NODE_ENV (got 'bad-key')"),
    ("environment-variables", ["action=set", "values={JWT_SECRET: plain-but-secret-value}"],
     "JWT_SECRET is not declared non-secret: expected its value in a Prefect Secret block"),
    ("environment-variables", ["action=set", "values={LOG_LEVEL: " + "x" * 100_000 + "}"],
     "environment-variables set: expected values of at most 8192 bytes (got LOG_LEVEL: 100000 bytes)"),
    ("environment-variables", ["action=unset", "keys=[DATABASE_URL]"],
     "DATABASE_URL is required by the application"),
    ("restore-configuration", ["service=worker"], "service: expected one of backend, frontend (got 'worker')"),
    ("scale-service", ["instances=2", "approval_timeout_seconds=5"],
     "approval_timeout_seconds: expected at least 30 s (OPS_APPROVAL_MIN_SECONDS) (got 5)"),
])
def test_a_platform_change_the_target_would_refuse_is_refused_before_any_run_exists(ops, receiver, runbook, params,
                                                                                      expected):
    """Checked against the target's declarations in the CLI: exit 2, no run (so no value stored as a run's
    parameter), no notification."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    def runs() -> int:
        with get_client(sync_client=True) as client:
            return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[runbook]))))

    before, notified = runs(), len(receiver.matching(f"runbook {runbook} "))
    args = [item for p in params for item in ("-p", p)]
    line = one_line_error(cli("run", runbook, *args, env={"OPS_APPROVAL_MIN_SECONDS": "30"}))
    assert expected in line and "plain-but-secret-value" not in line
    assert runs() == before and len(receiver.matching(f"runbook {runbook} ")) == notified
