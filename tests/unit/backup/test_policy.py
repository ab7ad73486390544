"""Backups on paper: retention never deletes the last good backup or anything newer, a restore's plan refuses what
it must never touch before anything is changed, and a failed run's leftovers are exactly its own."""

from datetime import datetime, timedelta, timezone

import pytest

from playground_ops.errors import ConfigError
from tasks.backup.policy import (BackupManifest, ExistingDatabase, Relation, Rung, Verification, backup_id_for,
                                 check_versions, group_backups, leftovers_of_run, major_version, missing_from_archive,
                                 plan_restore, plan_retention, rung_rows)

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)


def manifest(days_ago: float, verified: bool | None) -> BackupManifest:
    at = NOW - timedelta(days=days_ago)
    checks = [] if verified is None else [Verification(at=at, mode="full", ok=verified)]
    return BackupManifest(backup_id=f"b{days_ago:g}", target="prod", database="app", archive_key="k",
                          archive_bytes=1, archive_sha256="x", raw_bytes=1, part_size=1, pg_dump_version="18",
                          server_version="18", archive_version="1.16", snapshot_id="s", snapshot_at=at, started_at=at,
                          finished_at=at, tables={}, verifications=checks)


def test_with_no_verified_backup_nothing_is_deleted_however_old():
    plan = plan_retention([manifest(40, None), manifest(30, False)], NOW)
    assert plan.delete == [] and {b for b, _ in plan.keep} == {"b40", "b30"}


def test_old_backups_go_but_the_newest_verified_and_everything_newer_stay():
    backups = [manifest(d, v) for d, v in [(0, None), (1, False), (20, True), (30, True), (40, True), (50, True),
                                           (60, None)]]
    plan = plan_retention(backups, NOW, keep_days=7, keep_verified=3)
    keep = dict(plan.keep)
    assert keep["b0"] == keep["b1"] == "newer than the newest verified"  # unverified or failed, but newer
    assert keep["b20"] == "newest verified"
    assert keep["b30"] == keep["b40"] == "one of the 3 newest verified"
    assert dict(plan.delete) == {"b50": "50 days old, verified, older than the newest verified backup",
                                 "b60": "60 days old, unverified, older than the newest verified backup"}


def test_young_backups_older_than_the_newest_verified_stay_for_keep_days():
    plan = plan_retention([manifest(1, True), manifest(3, False), manifest(9, False)], NOW, keep_days=7,
                          keep_verified=1)
    assert dict(plan.keep)["b3"] == "younger than 7 days"
    assert [b for b, _ in plan.delete] == ["b9"]


def test_leftovers_are_only_the_failed_run_s_own():
    run, other = "6f1c2a9e-0000-4000-8000-000000000001", "77aa0000-0000-4000-8000-000000000002"
    mine, theirs = backup_id_for("prod", NOW, run), backup_id_for("prod", NOW, other)
    assert mine == "prod-20261207T030000Z-6f1c2a9e"
    incomplete = {mine: {}, theirs: {}}
    uploads = [{"key": f"prod/{mine}/archive.pgdump.zst"}, {"key": f"prod/{theirs}/archive.pgdump.zst"},
               {"key": f"staging/{mine}/archive.pgdump.zst"}]
    ids, parts = leftovers_of_run(incomplete, uploads, "prod", run)
    assert ids == [mine] and parts == [uploads[0]]


def test_a_backup_without_its_manifest_is_incomplete():
    t = NOW
    found = group_backups([("prod/b1/archive.pgdump.zst", 10, t), ("prod/b1/manifest.json", 1, t),
                           ("prod/b2/archive.pgdump.zst", 10, t), ("staging/b3/manifest.json", 1, t),
                           ("prod/stray", 1, t)], "prod")
    assert {b: e["has_manifest"] for b, e in found.items()} == {"b1": True, "b2": False}


def test_what_the_snapshot_has_data_for_must_be_in_the_archive():
    relations = [Relation('public."Users"', "public", "Users", "r", True),
                 Relation("public.mv", "public", "mv", "m", False),  # unpopulated: pg_dump writes no data
                 Relation("public.seq", "public", "seq", "S", True)]
    entries = {("TABLE DATA", "public", "Users")}
    assert missing_from_archive(relations, 2, entries) == ["public.seq (SEQUENCE SET)", "2 large objects (BLOBS)"]
    assert missing_from_archive(relations, 0, entries | {("SEQUENCE SET", "public", "seq")}) == []


def test_pg_dump_older_than_the_server_is_refused_naming_what_to_install():
    assert major_version("15.20 (Debian 15.20-0+deb12u1)") == 15 and major_version("9.6.24") == 9
    assert check_versions(18, 15) is None
    assert "install the PostgreSQL 18 client tools" in check_versions(15, 18)


@pytest.mark.parametrize("database, existing, overwrite, expected", [
    ("app", None, False, "other than the source"),
    ("postgres", None, False, "not a system or template database"),
    ("Robert'); DROP", None, False, "a plain identifier"),
    ("tmpl", ExistingDatabase("tmpl", is_template=True), True, "not a system or template database"),
    ("copy", ExistingDatabase("copy"), False, "true to replace the existing database 'copy'"),
])
def test_a_restore_that_must_not_happen_is_refused_before_anything_is_changed(database, existing, overwrite, expected):
    with pytest.raises(ConfigError, match=expected):
        plan_restore("app", database, existing, overwrite, "b1", "run1")


def test_a_database_someone_else_made_is_kept_aside_after_approval_and_a_scratch_one_of_ours_is_dropped():
    theirs = plan_restore("app", "reporting", ExistingDatabase("reporting", comment="made by hand"), True, "b1", "r1")
    assert theirs.needs_approval and not theirs.drop_replaced
    assert any("rename it aside as reporting_replaced_" in s for s in theirs.steps)
    ours = plan_restore("app", "app_scratch", ExistingDatabase("app_scratch", comment="playground-ops scratch restore"),
                        True, "b1", "r1")
    assert not ours.needs_approval and ours.drop_replaced and ours.label.startswith("playground-ops scratch")
    fresh = plan_restore("app", "app_copy", None, False, "b1", "r1")
    assert not fresh.needs_approval and fresh.label == "restored by playground-ops flow run r1 from backup b1"


def test_every_rung_is_shown_and_those_after_a_failure_say_not_reached():
    rows = rung_rows([Rung(name="manifest", ok=True, seconds=0.1), Rung(name="stored-object", ok=False,
                                                                        detail="sha256 differs")], "quick")
    assert [(r["rung"], r["result"]) for r in rows] == [("manifest", "passed"), ("stored-object", "FAILED"),
                                                        ("decompression", "not reached"), ("archive-read", "not reached")]
    assert rows[2]["detail"] == "stopped at stored-object"
