"""The run summary's push line (replenish.report)."""

from __future__ import annotations

from replenish.report import _approval_lines


def test_the_push_line_counts_outcomes_and_removed_duplicates() -> None:
    push = {"target": "odoo", "created": 3, "unchanged": 1, "failed": 0, "duplicates_removed": 2}
    assert _approval_lines({"push": push}) == [
        "Push to odoo: 3 created, 1 unchanged (2 duplicate(s) in the ERP removed)."
    ]
    assert _approval_lines({"push": {"target": "erpnext"}}) == ["Push to erpnext: nothing to push."]
