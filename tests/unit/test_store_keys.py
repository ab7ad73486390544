"""Keys from users and parameters never leave their store."""

import pytest

from playground_ops.errors import ConfigError
from tasks.store_keys import check_key, check_relative


def test_a_key_of_the_layout_passes_and_one_that_would_leave_the_store_is_refused_naming_the_form():
    assert check_key("sandbox/20261207T060000Z", "backup_id", "target/backup") == "sandbox/20261207T060000Z"
    for bad in ("../etc/passwd", "sandbox/..", "sandbox/a/b", "/abs", "sandbox/", "sand box/x", ""):
        with pytest.raises(ConfigError) as err:
            check_key(bad, "backup_id", "target/backup")
        assert str(err.value).startswith("backup_id: expected a key of the form target/backup (letters, digits")


def test_every_key_a_store_is_asked_for_stays_inside_it():
    assert check_relative("health-check/sandbox/") == "health-check/sandbox/"
    for bad in ("/etc", "a/../b", "a//b", "a\\b", "./a", "a\x00b"):
        with pytest.raises(ConfigError, match="store key: expected a relative key inside the store"):
            check_relative(bad)
