"""Environment-variable requests checked against the target's declarations, and changes shown as fingerprints."""

import pytest

from playground_ops.errors import ConfigError
from playground_ops.settings import EnvPolicy
from tasks.platform.env_changes import check_env_request, fingerprint, plan_env_change

POLICY = EnvPolicy()


@pytest.mark.parametrize("request_, message", [
    (("set", {"bad-key": "x"}, {}, []), "environment-variables: expected names such as NODE_ENV (got 'bad-key')"),
    (("set", {"JWT_SECRET": "s3cret"}, {}, []),
     "environment-variables set: JWT_SECRET is not declared non-secret: expected its value in a Prefect Secret block "
     "named in secret_blocks, never as a plain value"),
    (("set", {"LOG_LEVEL": "x" * 9000}, {}, []),
     "environment-variables set: expected values of at most 8192 bytes (got LOG_LEVEL: 9000 bytes)"),
    (("set", {"LOG_LEVEL": "info"}, {"LOG_LEVEL": "blk"}, []),
     "environment-variables set: expected each key once (in values or in secret_blocks) (got LOG_LEVEL)"),
    (("unset", {}, {}, ["DATABASE_URL"]),
     "environment-variables unset: DATABASE_URL is required by the application: expected keys the target's "
     "env.required does not list"),
    (("set", {}, {}, []), "environment-variables set: expected values (non-secret keys) or secret_blocks"),
])
def test_a_request_the_target_does_not_allow_is_one_line_naming_what_is_expected(request_, message):
    with pytest.raises(ConfigError) as err:
        check_env_request(*request_, POLICY)
    assert str(err.value) == message and "s3cret" not in str(err.value)


def test_a_change_is_planned_as_fingerprints_and_an_unset_of_a_missing_key_is_refused():
    live = {"LOG_LEVEL": fingerprint("info"), "NODE_ENV": fingerprint("production")}
    change = plan_env_change(live, "set", {"LOG_LEVEL": fingerprint("debug"), "NODE_ENV": fingerprint("production"),
                                           "APP_VERSION": fingerprint("1.2.0")}, [])
    assert [(r["key"], r["change"]) for r in change.rows] == [("APP_VERSION", "added"), ("LOG_LEVEL", "changed"),
                                                              ("NODE_ENV", "unchanged")]
    assert change.keys == ["APP_VERSION", "LOG_LEVEL"] and change.expected["LOG_LEVEL"] == fingerprint("debug")
    with pytest.raises(ValueError, match=r"expected keys the service has \(no NOPE\)"):
        plan_env_change(live, "unset", {}, ["NOPE"])
