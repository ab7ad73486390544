"""Bad input in the operator's words: the thing, the expected form, the offending value unless it may be a secret."""

from typing import Annotated

import pytest
import yaml
from pydantic import BaseModel, Field, ValidationError

from playground_ops.errors import Checked, ConfigError, expected_form, shown_value, yaml_problem


class Form(BaseModel):
    port: int = Field(ge=1024, le=65535)
    mode: str = Field(pattern="^(quick|full)$")
    jobs: int = 1


def first_error(**data) -> dict:
    with pytest.raises(ValidationError) as caught:
        Form(**data)
    return caught.value.errors()[0]


@pytest.mark.parametrize("data, expected", [
    ({"port": 80, "mode": "quick"}, "a value of at least 1024"),
    ({"port": "eighty", "mode": "quick"}, "a whole number"),
    ({"port": 2000, "mode": "slow"}, "text matching ^(quick|full)$"),
    ({"mode": "quick"}, "a value (it is required)"),
])
def test_validation_errors_become_the_expected_form(data, expected):
    assert expected_form(first_error(**data)) == expected


def test_a_value_is_shown_beside_the_error_unless_its_name_says_it_may_be_secret():
    err = first_error(port=80, mode="quick")
    assert shown_value("OPS_SANDBOX_PORT", err) == "80"
    assert shown_value("DATABASE_URL", {**err, "input": "postgresql://u:pw@h/db"}) is None
    assert shown_value("GITHUB_TOKEN", {**err, "input": "ghp_x"}) is None
    assert shown_value("NAME", {**err, "input": "x" * 100}) == "x" * 80 + "..."


def test_the_one_line_names_the_thing_and_the_form():
    assert str(ConfigError("jobs", "1 to 8", got="0")) == "jobs: expected 1 to 8 (got 0)"
    assert str(ConfigError("OPS_AUDIT_URL", "a directory path")) == "OPS_AUDIT_URL: expected a directory path"


def test_yaml_problems_name_the_file_line_and_column_from_one():
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load("targets:\n  - name: a\n   bad: [")
    assert yaml_problem(caught.value, "targets.yaml").startswith("targets.yaml, line 3, column ")


def test_checked_rules_in_an_annotation_run_on_given_values_only():
    def at_least_30(value):
        if value < 30:
            raise ConfigError("approval_timeout_seconds", "at least 30 s", got=str(value))

    annotation = Annotated[int | None, Field(ge=1), Checked(at_least_30)]
    Checked.run_all(annotation, None)  # the default: nothing to check
    Checked.run_all(annotation, 30)
    with pytest.raises(ConfigError, match="approval_timeout_seconds: expected at least 30 s \\(got 5\\)"):
        Checked.run_all(annotation, 5)
