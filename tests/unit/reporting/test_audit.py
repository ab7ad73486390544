"""The audit chain's head on paper: never backwards, no key dropped, whatever order its reports record it in."""

from tasks.reporting.audit import merged_head


def head(seq: int) -> dict:
    return {"store": "file:///a", "runbook": "r", "target": "t", "key": f"r/t/d/{seq}.json", "sha256": f"h{seq}",
            "sequence": seq}


def test_the_newest_report_is_the_head_and_every_key_is_kept_newest_last():
    after_three = merged_head(merged_head(merged_head(None, head(3), 32), head(1), 32), head(2), 32)
    assert after_three["sequence"] == 3 and after_three["key"] == "r/t/d/3.json" and after_three["sha256"] == "h3"
    assert after_three["recent"] == [[1, "r/t/d/1.json"], [2, "r/t/d/2.json"], [3, "r/t/d/3.json"]]


def test_only_the_newest_keys_are_kept_and_an_old_head_without_them_is_one_of_them():
    old = {**head(7)}  # recorded before keys were kept beside the head
    merged = merged_head(old, head(8), 2)
    assert merged["recent"] == [[7, "r/t/d/7.json"], [8, "r/t/d/8.json"]]
    assert merged_head(merged, head(9), 2)["recent"] == [[8, "r/t/d/8.json"], [9, "r/t/d/9.json"]]
