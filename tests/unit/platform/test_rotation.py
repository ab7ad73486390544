"""The rotation's decisions on paper: what is mid-rotation, when the finish is due, which token checks failed."""

from datetime import datetime, timedelta, timezone

from tasks.platform.rotation import failed_checks, finish_after, finish_due, mid_rotation, missing, plan_rows, token_row

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_a_secret_whose_previous_value_is_kept_is_mid_rotation_and_an_absent_one_is_missing():
    live = {"JWT_SECRET": "fp1", "JWT_SECRET_PREVIOUS": "fp0", "API_KEY": "fp2"}
    assert mid_rotation(live, ["JWT_SECRET", "API_KEY"]) == ["JWT_SECRET"]
    assert missing(live, ["JWT_SECRET", "SESSION_SECRET"]) == ["SESSION_SECRET"]


def test_the_plan_says_where_the_current_value_is_kept_and_where_the_rollback_copy_is():
    row, = plan_rows({"JWT_SECRET": "sha256:ab12"}, ["JWT_SECRET"], "rotation-sandbox")
    assert row["current"] == "sha256:ab12" and row["current kept as"] == "JWT_SECRET_PREVIOUS"
    assert row["rollback copy in"] == "Prefect Secret block rotation-sandbox"


def test_the_finish_is_due_only_once_the_grace_period_recorded_by_the_rotation_is_over():
    rotated = NOW - timedelta(days=6)
    state = {"finish_after": finish_after(rotated, 7 * 86400).isoformat()}
    assert not finish_due(state, NOW)
    assert finish_due(state, NOW + timedelta(days=1))
    assert finish_due({}, NOW)  # nothing recorded: nothing holds the finish back


def test_a_token_check_passes_only_when_every_instance_gave_the_expected_answer():
    good = token_row("JWT_SECRET", "previous", [200, 200, 200], 200)
    mixed = token_row("JWT_SECRET", "new", [200, 401, 200], 200)
    unanswered = token_row("JWT_SECRET", "new", [], 200)
    assert good["ok"] and not mixed["ok"] and not unanswered["ok"]
    assert failed_checks([good, mixed]) == [
        "JWT_SECRET: a token signed with the new value was answered 200, 401 (expected 200)"]
