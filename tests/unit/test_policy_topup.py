"""Draft orders below the supplier's minimum order value: the top-up."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from replenish.orders import (
    HEADER_COLUMNS,
    LINE_COLUMNS,
    TopUpSettings,
    build_drafts,
    build_headers,
    build_lines,
    merge_partial,
    top_up_to_minimum,
)

AS_OF = date(2026, 11, 20)
KEY = "2026-11-20/S2/WH1"


def _suppliers(minimum: float) -> pd.DataFrame:
    return pd.DataFrame({"supplier_id": ["S2"], "currency": ["EUR"], "min_order_value": [minimum]})


def _plans() -> pd.DataFrame:
    """Three lines worth 440 for S2 at WH1:

    * X-1 12 × 10 — 3 days of cover for a 5-day lead time (most urgent),
      packs of 6, EOQ 30, d 2/day, IP 10: room up to min(2·30, 60·2 − 10) = 60;
    * X-2 24 × 5 — 20 days of cover, packs of 12, EOQ 60, d 5/day, IP 100:
      room up to min(120, 300 − 100) = 120;
    * X-3 10 × 20 — just-in-time: never topped up.
    """
    return pd.DataFrame(
        {
            "sku": ["X-1", "X-2", "X-3"],
            "location_id": "WH1",
            "supplier_id": "S2",
            "supplier_sku": ["s1", "s2", "s3"],
            "order_qty": [12.0, 24.0, 10.0],
            "unit_price": [10.0, 5.0, 20.0],
            "moq": [6.0, 12.0, 1.0],
            "pack_size": [6.0, 12.0, 1.0],
            "eoq": [30.0, 60.0, 5.0],
            "demand_mean": [2.0, 5.0, 1.0],
            "inventory_position": [10.0, 100.0, 0.0],
            "days_of_cover": [3.0, 20.0, 0.0],
            "lead_time_mean": [5.0, 5.0, 5.0],
            "policy": ["continuous (s,Q)", "periodic (R,S)", "jit"],
            "reason": ["r1", "r2", "r3"],
        }
    )


def _drafts(minimum: float, **kwargs: float) -> tuple[pd.Series, pd.DataFrame]:
    headers, lines = build_drafts(_plans(), _suppliers(minimum), AS_OF, TopUpSettings(**kwargs))
    assert headers.columns.tolist() == HEADER_COLUMNS
    assert lines.columns.tolist() == LINE_COLUMNS
    return headers.set_index("po_key").loc[KEY], lines.set_index("sku")


def test_most_urgent_line_is_topped_up_first_by_whole_packs() -> None:
    """Gap 60: one pack of X-1 (6 × 10) reaches 500; X-2 is left alone."""
    header, lines = _drafts(500)
    assert lines["qty"].to_dict() == {"X-1": 18.0, "X-2": 24.0, "X-3": 10.0}
    assert header["total_value"] == 500 and not header["below_minimum"]
    assert header["topped_up"] and header["topup_value"] == 60
    assert header["minimum_note"] == (
        "topped up 60, most urgent lines first, to reach the minimum 500"
    )
    assert lines.loc["X-1", "explanation"].endswith(
        "; topped up +6 (1 pack, most urgent first) to reach the supplier minimum order value 500"
    )
    assert "topped up" not in lines.loc["X-2", "explanation"]


def test_caps_pass_the_rest_to_the_next_most_urgent_line() -> None:
    """Gap 560: X-1 up to its cap (2 × EOQ = 60 units: +48, 480), then X-2
    by two packs of 12 (120) → 1,040 >= 1,000. The jit line never grows."""
    header, lines = _drafts(1000)
    assert lines["qty"].to_dict() == {"X-1": 60.0, "X-2": 48.0, "X-3": 10.0}
    assert header["total_value"] == 1040 and not header["below_minimum"]
    assert header["topup_value"] == 600
    for sku, pack in (("X-1", 6), ("X-2", 12)):
        assert lines.loc[sku, "qty"] % pack == 0
    assert lines.loc["X-2", "line_value"] == 240


def test_days_of_cover_cap() -> None:
    """With a 20-day cover cap X-1 may hold at most 20·2 − 10 = 30 units:
    +18 (3 packs, 180); X-2 at most 100 − 100 = 0 more: the minimum 1,000
    is out of reach, nothing is topped up and the header says why."""
    header, lines = _drafts(1000, max_days_of_cover=20)
    assert lines["qty"].to_dict() == {"X-1": 12.0, "X-2": 24.0, "X-3": 10.0}
    assert header["below_minimum"] and not header["topped_up"]
    assert header["minimum_note"] == (
        "below the supplier minimum 1000 by 560: the lines can add only 180 within their caps "
        "(2× EOQ, 20 days of cover), so nothing was topped up"
    )


def test_drafts_at_their_minimum_and_without_top_up_are_unchanged() -> None:
    header, lines = _drafts(400)
    assert not header["topped_up"] and header["minimum_note"] == ""
    assert lines["qty"].to_dict() == {"X-1": 12.0, "X-2": 24.0, "X-3": 10.0}
    headers, _ = build_drafts(_plans(), _suppliers(500), AS_OF, top_up=None)
    h = headers.set_index("po_key").loc[KEY]
    assert (
        h["below_minimum"] and h["minimum_note"] == "below the supplier minimum 500 (not topped up)"
    )


def test_stored_lines_of_other_skus_count_but_are_not_topped_up() -> None:
    """A partial run: the stored line of Z-9 (no plan row now) counts in the
    total; only the planned lines may grow."""
    plans = _plans()
    stored = pd.DataFrame(
        {
            "po_key": [KEY],
            "line_no": [1],
            "supplier_id": ["S2"],
            "location_id": ["WH1"],
            "sku": ["Z-9"],
            "supplier_sku": ["z"],
            "qty": [3.0],
            "unit_price": [10.0],
            "line_value": [30.0],
            "explanation": ["stored"],
            "status": ["draft"],
        }
    )
    lines = merge_partial(stored, build_lines(plans, AS_OF), {"X-1", "X-2", "X-3"})
    lines, topups = top_up_to_minimum(lines, plans, _suppliers(500))
    headers = build_headers(lines, _suppliers(500), topups).set_index("po_key")
    got = lines.set_index("sku")["qty"].to_dict()
    assert got == {"X-1": 18.0, "X-2": 24.0, "X-3": 10.0, "Z-9": 3.0}
    assert headers.loc[KEY, "total_value"] == 530


def test_top_up_is_deterministic_and_validated() -> None:
    first = build_drafts(_plans(), _suppliers(1000), AS_OF)
    second = build_drafts(_plans().iloc[::-1], _suppliers(1000), AS_OF)
    pd.testing.assert_frame_equal(first[1], second[1])
    with pytest.raises(ValueError, match="max_days_of_cover"):
        TopUpSettings(max_days_of_cover=-1)
    assert np.isclose(first[0]["total_value"].sum(), 1040)
