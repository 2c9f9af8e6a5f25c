"""Service targets per ABC × XYZ cell, supplier calendars, supplier choice,
and the suggested replenishment mode."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from replenish.policy.calendar import parse_order_days, supplier_calendar
from replenish.policy.suppliers import choose_suppliers
from replenish.policy.targets import (
    DEFAULT_SERVICE_LEVELS,
    DEFAULT_XYZ_SHORTFALL,
    cell_targets,
    check_targets,
    resolve_targets,
    suggest_mode,
)

NAN = np.nan


def test_default_service_matrix() -> None:
    """Class targets A .98, B .95, C .90 shaded by XYZ shortfall factors
    X 0.5, Y 1, Z 1.5 (docs/policy.md)."""
    m = cell_targets(DEFAULT_SERVICE_LEVELS, DEFAULT_XYZ_SHORTFALL)
    values = {cell: round(v, 4) for cell, (v, _) in m.items()}
    assert values == {
        "AX": 0.99, "AY": 0.98, "AZ": 0.97,
        "BX": 0.975, "BY": 0.95, "BZ": 0.925,
        "CX": 0.95, "CY": 0.90, "CZ": 0.85,
    }  # fmt: skip


def test_priority_override_product_cell_class() -> None:
    """SKU override > products.service_level > explicit cell > class; an
    unknown XYZ class counts as Y."""
    levels = {"A": 0.98, "B": 0.95, "C": 0.90, "CZ": 0.80}
    value, source = resolve_targets(
        abc=["C", "C", "C", "A", "B"],
        xyz=["Z", "Z", "Z", "X", None],
        targets=levels,
        xyz_shortfall=DEFAULT_XYZ_SHORTFALL,
        product_target=[NAN, 0.97, 0.97, NAN, NAN],
        sku_override=[NAN, NAN, 0.999, NAN, NAN],
    )
    assert value.tolist() == pytest.approx([0.80, 0.97, 0.999, 0.99, 0.95])
    assert source.tolist() == ["cell", "product", "sku_override", "class", "class"]


def test_target_keys_are_checked() -> None:
    assert check_targets("t", {"ax": 0.99}) == {"AX": 0.99}
    with pytest.raises(ValueError, match="unknown key 'AQ'"):
        check_targets("t", {"AQ": 0.9})
    with pytest.raises(ValueError, match=r"t\['B'\] must be in \(0, 1\)"):
        check_targets("t", {"B": 0})


def test_suggested_mode_rules() -> None:
    """C×Z and sporadic intermittent items (ADI > 4) are suggested 'jit',
    as are items without demand; A/B×X 'stock' (valuable and steady)."""
    mode, reason = suggest_mode(
        abc=["C", "B", "A", "B", "C", "A"],
        xyz=["Z", "Y", "X", "Z", "Y", "Y"],
        demand_class=["smooth", "lumpy", "smooth", "intermittent", "none", "lumpy"],
        adi=[1.0, 6.25, 1.0, 2.0, NAN, 4.5],
        demand_mean=[1.0, 0.2, 30.0, 0.5, 0.0, 0.3],
        jit_adi=4.0,
    )
    assert mode.tolist() == ["jit", "jit", "stock", "stock", "jit", "jit"]
    assert reason[0] == "slow & erratic, low value (C×Z): order against customer orders"
    assert (
        reason[1] == "intermittent, a sale every 6.2 days on average: order against customer orders"
    )
    assert reason[2] == "valuable and steady (AX): keep stock, reorder-point policy"
    assert reason[3] == "regular demand (BZ): keep stock"
    assert reason[4].startswith("no demand in the history")


def test_parse_order_days() -> None:
    assert parse_order_days("mon,thu") == (0, 3)
    assert parse_order_days(" Thursday / MON ") == (0, 3)
    assert parse_order_days("") is None and parse_order_days(pd.NA) is None
    assert parse_order_days("every day") == ()


def test_supplier_calendar_review_period_and_next_order_day() -> None:
    """Friday 2024-03-01: Mon & Thu → R = 3.5, next order day Mon 04-03 in
    3 days; Fri → today; no order days → any day; unreadable → reported."""
    sup = pd.DataFrame(
        {"supplier_id": ["S1", "S2", "S3", "S4"], "order_days": ["mon,thu", "fri", None, "xx"]}
    )
    cal = supplier_calendar(sup, date(2024, 3, 1)).set_index("supplier_id")
    assert cal.loc["S1", "review_period"] == 3.5
    assert cal.loc["S1", "next_order_label"] == "Mon 04-03"
    assert cal.loc["S1", "days_to_next_order"] == 3 and not cal.loc["S1", "order_day_today"]
    assert cal.loc["S2", "review_period"] == 7 and cal.loc["S2", "order_day_today"]
    assert np.isnan(cal.loc["S3", "review_period"]) and cal.loc["S3", "order_day_today"]
    assert cal.loc["S4", "order_days_problem"] == "xx"


def test_supplier_choice_priority_then_price_then_lead_time() -> None:
    sp = pd.DataFrame(
        {
            "sku": ["A", "A", "B", "B", "C", "D", "D", "E", "E"],
            "supplier_id": ["S1", "S2", "S1", "S2", "S1", "S1", "S2", "S2", "S1"],
            "supplier_sku": "x",
            "moq": 1.0,
            "pack_size": 1.0,
            "unit_price": [3.5, 3.0, 2.0, 2.5, 1.0, 2.0, 2.0, 5.0, 5.0],
            "priority": [1, 2, 1, 1, 1, 1, 1, 1, 1],
        }
    )
    lt = pd.DataFrame({"sku": ["D", "D"], "supplier_id": ["S1", "S2"], "lead_time": [6.0, 4.0]})
    got = choose_suppliers(sp, lt).set_index("sku")
    assert got["supplier_id"].to_dict() == {"A": "S1", "B": "S1", "C": "S1", "D": "S2", "E": "S1"}
    assert got["supplier_reason"].to_dict() == {
        "A": "priority 1 (of 2)",
        "B": "cheapest of equal priority 1: 2 vs 2.5",
        "C": "only supplier",
        "D": "shortest lead time of equal priority and price: 4 vs 6 days",
        "E": "first by id of equal priority, price and lead time",
    }
