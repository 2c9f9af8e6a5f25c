"""build_plans on a tiny hand-built ERP snapshot: every number checked by hand."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from replenish.model import ErpSnapshot, coerce
from replenish.policy import plan as _plan
from replenish.policy.plan import PLAN_COLUMNS

# The golden cases of this module (and of test_policy_plan) were computed by
# hand for continuous (s, Q) review with the plain EOQ. The defaults plan the
# nightly run as a daily periodic review and cap the EOQ at some days of
# demand; those defaults have tests of their own (test_policy_defaults.py).
# Here the (s, Q) settings are stated explicitly, unless a test says otherwise.
CONTINUOUS: dict[str, float] = {
    "review_period_days": 0.0,
    "max_cycle_cover_days": 1e9,
    "level_alpha": 0.0,  # the textbook σX = sqrt((L + R)·σd² + d²·σL²) of the worked examples
}


def PlanSettings(**kwargs: Any) -> _plan.PlanSettings:
    return _plan.PlanSettings(**{**CONTINUOUS, **kwargs})


def build_plans(
    snap: Any,
    forecast: Any,
    lead_times: Any,
    as_of: date,
    settings: _plan.PlanSettings | None = None,
) -> pd.DataFrame:
    return _plan.build_plans(snap, forecast, lead_times, as_of, settings or PlanSettings())


AS_OF = date(2024, 3, 1)
T = pd.Timestamp("2024-03-01")


def _frame(table: str, **columns: object) -> pd.DataFrame:
    return coerce(table, pd.DataFrame(columns))


def _snapshot() -> ErpSnapshot:
    """SKUs (one supplier S1 unless stated):

    * A  stock, two locations, d = 10/day, σd = 2, L = 4, σL = 1 (learned),
         product service level 0.95, unit cost 4 (h = 1), MOQ 100, pack 12.
    * B  jit, open demand 40 at W1, on hand 3 (all allocated), MOQ 48, pack 12.
    * C  stock, forecast missing (all history censored): degrades alone.
    * D  stock, no supplier.
    * E  jit, in stock, no open demand.
    * X  inactive: not planned.
    """
    suppliers = _frame(
        "suppliers",
        supplier_id=["S1", "S2"],
        name=["One", "Two"],
        currency="EUR",
        min_order_value=0.0,
        order_processing_days=0.0,
        transport_days=0.0,
        receiving_days=[1.0, 0.0],
    )
    products = _frame(
        "products",
        sku=["A", "B", "C", "D", "E", "X"],
        name=["a", "b", "c", "d", "e", "x"],
        unit_cost=[4.0, 10.0, 2.0, 1.0, 5.0, 1.0],
        unit_price=8.0,
        active=[True, True, True, True, True, False],
        replenishment_mode=["stock", "jit", "stock", "stock", "jit", "stock"],
        service_level=[0.95, None, None, None, None, None],
    )
    supplier_products = _frame(
        "supplier_products",
        sku=["A", "A", "B", "C", "E", "X"],
        supplier_id=["S1", "S2", "S1", "S1", "S1", "S1"],
        supplier_sku=["s-a", "s2-a", "s-b", "s-c", "s-e", "s-x"],
        lead_time_days=[3.0, 1.0, 2.0, 3.0, 2.0, 1.0],
        moq=[100.0, 1.0, 48.0, 1.0, 1.0, 1.0],
        pack_size=[12.0, 1.0, 12.0, 1.0, 1.0, 1.0],
        unit_price=[3.5, 3.0, 9.0, 2.0, 5.0, 1.0],
        priority=[1, 2, 1, 1, 1, 1],  # S2 is cheaper for A but priority 2
    )
    stock_levels = _frame(
        "stock_levels",
        sku=["A", "A", "B", "C", "D", "E", "X"],
        location_id=["W1", "W2", "W1", "W1", "W1", "W1", "W1"],
        on_hand=[40.0, 40.0, 3.0, 10.0, 0.0, 7.0, 0.0],
        allocated=[5.0, 5.0, 3.0, 0.0, 0.0, 0.0, 0.0],
        as_of=T,
    )
    purchase_orders = _frame(
        "purchase_orders",
        po_id=["P1", "P2", "P3", "P4"],
        supplier_id="S1",
        location_id=["W1", "W2", "W1", "W1"],
        status=["sent", "confirmed", "received", "cancelled"],
        ordered_at=T - pd.Timedelta(days=3),
        expected_at=[T + pd.Timedelta(days=2), T + pd.Timedelta(days=10), T, T],
    )
    purchase_order_lines = _frame(
        "purchase_order_lines",
        po_id=["P1", "P2", "P3", "P4"],
        line_no=1,
        sku="A",
        qty_ordered=[12.0, 10.0, 50.0, 70.0],
        qty_received=[2.0, 0.0, 50.0, 0.0],
        received_at=[pd.NaT, pd.NaT, T, pd.NaT],
    )
    sales_order_lines = _frame(
        "sales_order_lines",
        order_id=["o1", "o2", "o3", "o4"],
        line_no=1,
        sku=["B", "B", "B", "E"],
        location_id="W1",
        channel="web",
        qty=[30.0, 10.0, 99.0, 2.0],
        ordered_at=T - pd.Timedelta(days=1),
        status=["open", "open", "cancelled", "shipped"],
    )
    return ErpSnapshot(
        suppliers=suppliers,
        products=products,
        supplier_products=supplier_products,
        stock_levels=stock_levels,
        purchase_orders=purchase_orders,
        purchase_order_lines=purchase_order_lines,
        sales_order_lines=sales_order_lines,
    )


def _forecast() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A", "A", "B", "C", "D", "E", "X"],
            "location_id": ["W1", "W2", "W1", "W1", "W1", "W1", "W1"],
            "demand_class": ["smooth", "smooth", "lumpy", "none", "smooth", "lumpy", "smooth"],
            "method": ["ses_weekday"] * 2 + ["croston_sba", "none", "ses_weekday"] * 1
            + ["croston_sba", "ses_weekday"],
            "adi": 1.0,
            "cv2": 0.1,
            "demand_mean": [10.0, 10.0, 0.5, np.nan, 1.0, 0.2, 1.0],
            "demand_std": [2.0, 2.0, 1.0, np.nan, 0.5, 0.5, 1.0],
            "n_days": 730,
            "nonzero_days": 100,
            "censored_days": [0, 0, 0, 730, 0, 0, 0],
        }
    )  # fmt: skip


def _lead_times() -> pd.DataFrame:
    """A learned from receipts; B, C, E absent → declared fallback."""
    return pd.DataFrame(
        {
            "sku": ["A"],
            "supplier_id": ["S1"],
            "declared_lead_time": [4.0],
            "lead_time_mean": [4.0],
            "lead_time_std": [1.0],
            "lead_time_source": ["receipts"],
            "n_receipts": [8],
        }
    )


@pytest.fixture
def plans() -> pd.DataFrame:
    return build_plans(
        _snapshot(),
        _forecast(),
        _lead_times(),
        AS_OF,
        PlanSettings(service_level_overrides={"B": 0.99}),
    )


def _row(plans: pd.DataFrame, sku: str, loc: str = "W1") -> pd.Series:
    hit = plans[(plans["sku"] == sku) & (plans["location_id"] == loc)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_rows_and_columns(plans: pd.DataFrame) -> None:
    assert plans.columns.tolist() == PLAN_COLUMNS
    keys = list(zip(plans["sku"], plans["location_id"], strict=True))
    assert keys == [("A", "W1"), ("A", "W2"), ("B", "W1"), ("C", "W1"), ("D", "W1"), ("E", "W1")]


def test_stock_sku_reorder_point_eoq_and_rounding(plans: pd.DataFrame) -> None:
    """A@W1: z = Φ⁻¹(0.95) = 1.6449 (product level);
    SS = z·sqrt(4·2² + 10²·1²) = 1.6449·sqrt(116) = 17.716; ROP = 10·4 + SS = 57.716.
    on_order = 12 − 2 (P1 sent; P3 received and P4 cancelled do not count);
    IP = 40 − 5 + 10 = 45 <= ROP → order.
    EOQ = sqrt(2·3650·50/(0.25·4)) = 604.15 > ROP − IP = 12.7;
    MOQ 100 does not bind; 604.15 → 51 packs of 12 = 612, at S1 (priority 1)
    for 3.5 → 2,142."""
    a = _row(plans, "A")
    z = norm.ppf(0.95)
    ss = z * math.sqrt(4 * 4 + 100 * 1)
    assert (a["service_level"], a["service_level_source"]) == (0.95, "product")
    assert a["z"] == pytest.approx(z)
    assert a["safety_stock"] == pytest.approx(ss)
    assert a["reorder_point"] == pytest.approx(40 + ss)
    assert (a["on_hand"], a["allocated"], a["on_order"]) == (40, 5, 10)
    assert a["inventory_position"] == 45
    assert a["annual_demand"] == 3650
    assert a["eoq"] == pytest.approx(math.sqrt(2 * 3650 * 50 / 1.0))
    assert a["raw_qty"] == pytest.approx(a["eoq"])
    assert a["needs_order"]
    assert (a["supplier_id"], a["supplier_sku"], a["unit_price"]) == ("S1", "s-a", 3.5)
    assert a["order_qty"] == 612
    assert a["rounding"] == "raw 604.2 → pack 12: 612"
    assert a["order_value"] == pytest.approx(612 * 3.5)
    assert (a["lead_time_mean"], a["lead_time_std"], a["lead_time_source"]) == (4, 1, "receipts")
    assert a["abc_class"] == "A"
    assert a["days_of_cover"] == pytest.approx(3.5)
    assert "reorder point 57.7" in a["reason"] and "612" in a["reason"]


def test_stockout_risk_counts_only_orders_due_within_the_lead_time(
    plans: pd.DataFrame,
) -> None:
    """Free stock 35 at both locations, d·L = 40. W1's open PO (10) is due in
    2 days <= L = 4: 45 >= 40, no risk. W2's PO (10) is due in 10 days: 35 < 40."""
    assert not _row(plans, "A", "W1")["stockout_risk"]
    assert _row(plans, "A", "W2")["stockout_risk"]
    assert not _row(plans, "A", "W1")["below_safety_stock"]  # 35 >= 17.7


def test_jit_orders_uncovered_open_demand_only(plans: pd.DataFrame) -> None:
    """B@W1 jit: open demand 30 + 10 (the cancelled 99 is not demand); the 3 on
    hand are allocated to those lines, so they still cover them:
    uncovered = 40 − 3 − 0 = 37 → MOQ 48 → pack 12 → 48. No safety stock."""
    b = _row(plans, "B")
    assert b["open_demand"] == 40
    assert (b["safety_stock"], b["reorder_point"]) == (0, 0)
    assert b["raw_qty"] == 37
    assert b["order_qty"] == 48
    assert b["rounding"] == "raw 37 → MOQ 48 → pack 12: 48"
    assert b["inventory_position"] == 0
    assert b["service_level_source"] == "sku_override" and b["service_level"] == 0.99
    assert b["lead_time_source"] == "declared" and b["lead_time_mean"] == 3  # 2 + 1 receiving
    assert b["stockout_risk"]  # 37 units of customer demand wait beyond the lead time
    assert b["reason"].startswith("Just-in-time: open customer demand 40 exceeds")


def test_jit_without_open_demand_orders_nothing(plans: pd.DataFrame) -> None:
    e = _row(plans, "E")
    assert e["order_qty"] == 0 and not e["needs_order"]
    assert e["rounding"] == ""
    assert not e["stockout_risk"]
    assert e["reason"] == "Just-in-time: no open customer demand: nothing to order."


def test_bad_data_degrades_one_sku_only(plans: pd.DataFrame) -> None:
    c = _row(plans, "C")
    assert c["order_qty"] == 0 and not c["needs_order"]
    assert math.isnan(c["raw_qty"]) and math.isnan(c["safety_stock"])
    assert c["reason"].startswith("Not planned: demand forecast missing")
    assert _row(plans, "A")["order_qty"] == 612  # the others are planned


def test_sku_without_supplier_is_planned_but_not_ordered(plans: pd.DataFrame) -> None:
    d = _row(plans, "D")
    assert pd.isna(d["supplier_id"])
    assert d["order_qty"] == 0
    assert "No supplier" in d["reason"]
    assert d["abc_class"] == "C"


def test_inputs_are_not_mutated() -> None:
    snap, fc, lt = _snapshot(), _forecast(), _lead_times()
    copies = {name: frame.copy() for name, frame in snap.tables().items()}
    fc_copy, lt_copy = fc.copy(), lt.copy()
    build_plans(snap, fc, lt, AS_OF)
    for name, frame in snap.tables().items():
        pd.testing.assert_frame_equal(frame, copies[name])
    pd.testing.assert_frame_equal(fc, fc_copy)
    pd.testing.assert_frame_equal(lt, lt_copy)


def test_stock_sku_above_reorder_point_orders_nothing() -> None:
    snap = _snapshot()
    snap.stock_levels.loc[snap.stock_levels["sku"] == "A", "on_hand"] = 500.0
    plans = build_plans(snap, _forecast(), _lead_times(), AS_OF)
    a = _row(plans, "A")
    assert not a["needs_order"] and a["order_qty"] == 0 and a["raw_qty"] == 0
    assert "above the reorder point" in a["reason"]


def test_far_below_reorder_point_tops_up_beyond_eoq() -> None:
    """Backlog: allocated 1,000 → IP = 40 − 1000 + 10 = −950;
    ROP − IP = 1,007.7 > EOQ 604.2 → raw 1,007.7 → 1,008 (84 packs)."""
    snap = _snapshot()
    snap.stock_levels.loc[snap.stock_levels["sku"] == "A", "allocated"] = 1000.0
    a = _row(build_plans(snap, _forecast(), _lead_times(), AS_OF), "A")
    assert a["raw_qty"] == pytest.approx(a["reorder_point"] + 950)
    assert a["order_qty"] == 1008


def test_periodic_review_orders_up_to_s_at_least_an_eoq() -> None:
    """R = 7 (no order days, so every day is a review): SS = z·sqrt((4 + 7)·4 + 100·1)
    protects R + L, S = 10·11 + SS. IP 45 < S: order max(EOQ, S − IP) =
    EOQ 604.2 → 612 (an (R, S) system never orders less than the EOQ). The
    EOQ outlasts a review (Q > 70), so the order is triggered below
    s = μ_L + E[U] + z·sqrt(σ_L² + Var U) = 113.4 < S (test_policy_defaults)."""
    plans = build_plans(
        _snapshot(), _forecast(), _lead_times(), AS_OF, PlanSettings(review_period_days=7)
    )
    a = _row(plans, "A")
    ss = norm.ppf(0.95) * math.sqrt(11 * 4 + 100)
    assert a["policy"] == "periodic (R,S)"
    assert (a["review_period"], a["protection_days"]) == (7, 11)
    assert a["safety_stock"] == pytest.approx(ss)
    assert a["order_up_to"] == pytest.approx(110 + ss)
    assert a["reorder_point"] == pytest.approx(40 + ss)  # μ_L + SS, for reference
    assert a["raw_qty"] == pytest.approx(a["eoq"])
    assert a["order_qty"] == 612
    assert a["trigger_level"] < a["order_up_to"]
    assert "below the trigger level s = 113.4" in a["reason"]
    assert "(S = 129.7)" in a["reason"]
    assert "max(EOQ 604.2, S − IP 84.7) = 604.2" in a["reason"]


def test_periodic_review_without_eoq_orders_up_to_s() -> None:
    """Without a unit cost there is no EOQ: order exactly S − IP."""
    snap = _snapshot()
    snap.products["unit_cost"] = np.nan
    snap.supplier_products["unit_price"] = np.nan
    a = _row(
        build_plans(snap, _forecast(), _lead_times(), AS_OF, PlanSettings(review_period_days=7)),
        "A",
    )
    assert math.isnan(a["eoq"])
    assert a["raw_qty"] == pytest.approx(a["order_up_to"] - 45)
    assert "S − IP 84.7 (EOQ unknown: no unit cost)" in a["reason"]


def test_nan_stock_and_unknown_mode_degrade_per_row() -> None:
    snap = _snapshot()
    snap.stock_levels.loc[snap.stock_levels["sku"] == "B", "on_hand"] = np.nan
    snap.products.loc[snap.products["sku"] == "E", "replenishment_mode"] = "make"
    plans = build_plans(snap, _forecast(), _lead_times(), AS_OF)
    assert _row(plans, "B")["reason"].startswith("Not planned: stock level missing")
    assert _row(plans, "E")["reason"].startswith("Not planned: unknown replenishment_mode 'make'")
    assert _row(plans, "A")["order_qty"] == 612


def test_stock_row_without_forecast_and_missing_lead_time_row() -> None:
    """A stock-only row has demand 0 (class 'none'); a supplier pair missing
    from lead_times uses the declared lead time with σL = 0."""
    plans = build_plans(_snapshot(), _forecast().iloc[:0], _lead_times().iloc[:0], AS_OF)
    a = _row(plans, "A")
    assert (a["demand_mean"], a["demand_class"], a["method"]) == (0, "none", "none")
    assert (a["lead_time_mean"], a["lead_time_std"], a["lead_time_source"]) == (4, 0, "declared")
    assert a["days_of_cover"] == np.inf
    assert not a["needs_order"]  # IP 45 > ROP 0


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="service_level_overrides"):
        PlanSettings(service_level_overrides={"A": 95})
    with pytest.raises(ValueError, match="service_levels: unknown key 'D'"):
        PlanSettings(service_levels={"D": 0.9})
    with pytest.raises(ValueError, match=r"service_levels\['AX'\]"):
        PlanSettings(service_levels={"AX": 1.2})
    with pytest.raises(ValueError, match="fill_rate_target"):
        PlanSettings(fill_rate_target=1.0)
    with pytest.raises(ValueError, match="target_type"):
        PlanSettings(target_type="fill")
    with pytest.raises(ValueError, match="holding_cost_rate"):
        PlanSettings(holding_cost_rate=0)
    settings = PlanSettings(service_level_overrides={"A": 0.9})
    with pytest.raises(TypeError):
        settings.service_level_overrides["B"] = 0.5  # type: ignore[index]


def test_settings_fill_in_defaults() -> None:
    """Classes left out keep their default; a single fill rate applies to
    every class; flow-style {"A", "B", "C"} dicts work as before."""
    s = PlanSettings(service_levels={"A": 0.99, "CZ": 0.8}, fill_rate_target=0.97)
    assert dict(s.service_levels) == {"A": 0.99, "B": 0.95, "C": 0.90, "CZ": 0.8}
    assert dict(s.fill_rate_target) == {"A": 0.97, "B": 0.97, "C": 0.97}  # type: ignore[arg-type]
    assert s.targets is s.service_levels
    assert PlanSettings(target_type="fill_rate").targets["A"] == 0.99


def test_empty_snapshot_gives_an_empty_plan_with_all_columns() -> None:
    from replenish.forecast import daily_demand, forecast_demand
    from replenish.policy import learn_lead_times

    snap = ErpSnapshot()
    fc = forecast_demand(daily_demand(snap.sales_order_lines, AS_OF, 30, snap.stock_history))
    lt = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    plans = build_plans(snap, fc, lt, AS_OF)
    assert plans.empty
    assert plans.columns.tolist() == PLAN_COLUMNS


def test_end_to_end_from_sales_lines() -> None:
    """Sales → daily demand → forecast → lead times → plan, no hand-made
    intermediate: A sells 10/day for 8 weeks at W1 and gets a stock plan
    with d = 10, σd = 0, declared L = 3 + 1 = 4, σL = 0 → SS = 0, ROP = 40;
    IP = 45 is above it, so nothing is ordered."""
    from replenish.forecast import daily_demand, forecast_demand
    from replenish.policy import learn_lead_times

    snap = _snapshot()
    days = pd.date_range(end=T - pd.Timedelta(days=1), periods=56, freq="D")
    history = _frame(
        "sales_order_lines",
        order_id=[f"h{i}" for i in range(len(days))],
        line_no=1,
        sku="A",
        location_id="W1",
        channel="web",
        qty=10.0,
        ordered_at=days + pd.Timedelta(hours=10),
        status="shipped",
    )
    snap.sales_order_lines = pd.concat([snap.sales_order_lines, history], ignore_index=True)
    fc = forecast_demand(daily_demand(snap.sales_order_lines, AS_OF, 56, snap.stock_history))
    lt = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    a = _row(build_plans(snap, fc, lt, AS_OF), "A")
    assert (a["demand_class"], a["method"]) == ("smooth", "ses_weekday")
    assert a["demand_mean"] == pytest.approx(10.0)
    assert a["demand_std"] == pytest.approx(0.0, abs=1e-9)
    assert (a["lead_time_mean"], a["lead_time_source"]) == (4.0, "declared")
    assert a["safety_stock"] == pytest.approx(0.0, abs=1e-9)
    assert a["reorder_point"] == pytest.approx(40.0)
    assert not a["needs_order"] and a["order_qty"] == 0
    assert a["reason"] == "Inventory position 45 is above the reorder point 40: nothing to order."
