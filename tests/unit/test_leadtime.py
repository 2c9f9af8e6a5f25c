"""Lead times learned from receipts, with supplier and declared fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replenish.model import coerce
from replenish.policy.leadtime import LEAD_TIME_COLUMNS, learn_lead_times, supplier_on_time

T0 = pd.Timestamp("2024-01-01 08:00")


def _suppliers() -> pd.DataFrame:
    return coerce(
        "suppliers",
        pd.DataFrame(
            {
                "supplier_id": ["S1", "S2"],
                "name": ["One", "Two"],
                "currency": "EUR",
                "min_order_value": 0.0,
                "order_processing_days": [1.0, 0.0],
                "transport_days": [2.0, 1.0],
                "receiving_days": [1.0, 0.0],
            }
        ),
    )


def _supplier_products() -> pd.DataFrame:
    return coerce(
        "supplier_products",
        pd.DataFrame(
            {
                "sku": ["A", "B", "C", "D"],
                "supplier_id": ["S1", "S1", "S2", "S2"],
                "supplier_sku": ["a", "b", "c", "d"],
                "lead_time_days": [5.0, 3.0, 4.0, np.nan],
                "moq": 1.0,
                "pack_size": 1.0,
                "unit_price": 1.0,
                "priority": 1,
            }
        ),
    )


def _purchases(
    receipts: list[tuple[str, str, float, float, float | None]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """receipts: (supplier_id, sku, elapsed days to receipt or NaN, qty_received,
    expected after days or None). One PO per line."""
    po_ids = [f"P{i}" for i in range(len(receipts))]
    pos = coerce(
        "purchase_orders",
        pd.DataFrame(
            {
                "po_id": po_ids,
                "supplier_id": [r[0] for r in receipts],
                "location_id": "W1",
                "status": "received",
                "ordered_at": [T0 + pd.Timedelta(days=i) for i in range(len(receipts))],
                "expected_at": [
                    pd.NaT if r[4] is None else T0 + pd.Timedelta(days=i + r[4])
                    for i, r in enumerate(receipts)
                ],
            }
        ),
    )
    lines = coerce(
        "purchase_order_lines",
        pd.DataFrame(
            {
                "po_id": po_ids,
                "line_no": 1,
                "sku": [r[1] for r in receipts],
                "qty_ordered": 10.0,
                "qty_received": [r[3] for r in receipts],
                "received_at": [
                    pd.NaT if np.isnan(r[2]) else T0 + pd.Timedelta(days=i + r[2])
                    for i, r in enumerate(receipts)
                ],
            }
        ),
    )
    return pos, lines


def _scenario() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _purchases(
        [
            ("S1", "A", 8.0, 10.0, 9.0),
            ("S1", "A", 8.0, 10.0, 9.0),
            ("S1", "A", 9.0, 10.0, 9.0),
            ("S1", "A", 9.0, 10.0, 8.0),  # late by a day
            ("S1", "A", 60.0, 10.0, 9.0),  # outlier (PO left open): late
            ("S1", "B", 7.0, 10.0, None),  # no expected date
            ("S1", "B", np.nan, 0.0, 9.0),  # not received: ignored
            ("S1", "B", 5.0, 0.0, 9.0),  # received nothing: ignored
            ("S1", "B", -2.0, 10.0, 9.0),  # received before ordered: bad data
        ]
    )


def test_receipts_used_when_enough_and_outliers_clipped() -> None:
    """(A, S1): declared 1 + 5 + 2 + 1 = 9 days. Observed = elapsed + 1
    receiving day: 9, 9, 10, 10, 61. Median 10, MAD 1 → clip at
    max(10 + 3·1.4826, 2·10) = 20 (lateness up to twice the median is kept),
    so the mean is (9+9+10+10+20)/5 = 11.6 instead of 19.8 unclipped."""
    pos, lines = _scenario()
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers())
    assert lt.columns.tolist() == LEAD_TIME_COLUMNS
    a = lt.set_index("sku").loc["A"]
    assert a["declared_lead_time"] == 9
    assert a["lead_time_source"] == "receipts"
    assert a["n_receipts"] == 5
    clipped = np.array([9, 9, 10, 10, 20])
    assert a["lead_time_mean"] == pytest.approx(clipped.mean())
    assert a["lead_time_std"] == pytest.approx(clipped.std(ddof=1))


def test_supplier_pooled_when_few_receipts_of_the_sku() -> None:
    """(B, S1) has one valid receipt (< 3): declared 1 + 3 + 2 + 1 = 7 plus
    the supplier's mean deviation from declared over its 6 receipts:
    deviations 0, 0, 1, 1, 52, 1; median 1, MAD 0.5 → clip at
    1 ± 3·1.4826·0.5 → 52 becomes 3.2239; mean 1.0373."""
    pos, lines = _scenario()
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers())
    b = lt.set_index("sku").loc["B"]
    assert b["lead_time_source"] == "supplier"
    assert b["n_receipts"] == 6
    devs = np.array([0, 0, 1, 1, 1 + 3 * 1.4826 * 0.5, 1])
    assert b["lead_time_mean"] == pytest.approx(7 + devs.mean())
    assert b["lead_time_std"] == pytest.approx(devs.std(ddof=1))


def test_declared_fallback_without_receipts() -> None:
    pos, lines = _scenario()
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers()).set_index("sku")
    c = lt.loc["C"]
    assert (c["lead_time_source"], c["lead_time_mean"], c["lead_time_std"]) == ("declared", 5, 0)
    assert c["n_receipts"] == 0
    d = lt.loc["D"]  # missing lead_time_days: unknown, not guessed
    assert d["lead_time_source"] == "declared"
    assert np.isnan(d["lead_time_mean"]) and np.isnan(d["lead_time_std"])


def test_min_receipts_threshold() -> None:
    pos, lines = _scenario()
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers(), min_receipts=6)
    assert lt.set_index("sku").loc["A", "lead_time_source"] == "supplier"
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers(), min_receipts=7)
    assert lt.set_index("sku").loc["A", "lead_time_source"] == "declared"
    with pytest.raises(ValueError, match="min_receipts"):
        learn_lead_times(pos, lines, _supplier_products(), _suppliers(), min_receipts=1)


def test_identical_receipts_damp_rather_than_erase_a_deviation() -> None:
    """MAD = 0 (most receipts equal): the scale falls back to 1.2533 · mean
    absolute deviation, so a real 1-day deviation survives and the outlier
    is clipped at 10 + 3 · 1.2533 · (1 + 50)/7 = 37.39 days."""
    pos, lines = _purchases([("S1", "A", 9.0, 1.0, None)] * 5 + [("S1", "A", 10.0, 1.0, None)]
                            + [("S1", "A", 59.0, 1.0, None)])  # fmt: skip
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers()).set_index("sku")
    values = np.array([10] * 5 + [11] + [10 + 3 * 1.2533 * 51 / 7])
    assert lt.loc["A", "lead_time_mean"] == pytest.approx(values.mean())
    assert lt.loc["A", "lead_time_std"] > 0


def test_inputs_not_mutated() -> None:
    pos, lines = _scenario()
    sp, sup = _supplier_products(), _suppliers()
    copies = [f.copy() for f in (pos, lines, sp, sup)]
    learn_lead_times(pos, lines, sp, sup)
    supplier_on_time(pos, lines)
    for before, after in zip(copies, (pos, lines, sp, sup), strict=True):
        pd.testing.assert_frame_equal(before, after)


def test_supplier_on_time() -> None:
    """S1 receipts with an expected date: A ×5 (one a day late, the outlier
    51 days late) and B's bad-data line (received 'before ordered', but on
    time by date) → 4 of 6 on time; B's undated receipt counts in receipts
    only."""
    pos, lines = _scenario()
    ot = supplier_on_time(pos, lines)
    assert ot.columns.tolist() == ["supplier_id", "receipts", "on_time_rate"]
    row = ot.set_index("supplier_id").loc["S1"]
    assert row["receipts"] == 7
    assert row["on_time_rate"] == pytest.approx(4 / 6)


def test_on_time_rate_joins_the_lead_times_on_supplier_id() -> None:
    """The on-time rate is joinable: same key and dtype as the lead times
    (and the plan's supplier_id), also when there is no receipt at all."""
    pos, lines = _scenario()
    lt = learn_lead_times(pos, lines, _supplier_products(), _suppliers())
    ot = supplier_on_time(pos, lines)
    assert ot["supplier_id"].dtype == lt["supplier_id"].dtype == "string"
    joined = lt.merge(ot, on="supplier_id", how="left").set_index("sku")
    assert joined.loc["A", "on_time_rate"] == pytest.approx(4 / 6)
    assert np.isnan(joined.loc["C", "on_time_rate"])  # S2: no receipt with a date
    empty = supplier_on_time(pos.iloc[:0], lines.iloc[:0])
    assert empty.columns.tolist() == ["supplier_id", "receipts", "on_time_rate"]
    assert empty["supplier_id"].dtype == "string" and empty.empty
