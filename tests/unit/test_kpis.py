"""compute_kpis on a hand-built shop whose every KPI is worked out by hand,
on the inferred-stockout path, on empty input, and on the demo shop."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from replenish.demo import generate_demo
from replenish.forecast import daily_demand, forecast_demand
from replenish.kpis import KPI_NAMES, NO_CLASS, PLAN_INPUTS, Kpis, compute_kpis
from replenish.model import ErpSnapshot, coerce
from replenish.policy import build_plans, learn_lead_times, supplier_on_time
from replenish.policy.plan import PLAN_COLUMNS

AS_OF = date(2024, 3, 1)
WINDOW = 10  # 2024-02-20 .. 2024-02-29


def D(day: str) -> datetime:
    return datetime.fromisoformat(day)


def _frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    return coerce(table, pd.DataFrame(rows))


def _plans(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(PLAN_INPUTS))


def _shop() -> tuple[ErpSnapshot, pd.DataFrame]:
    """One location W1; window 2024-02-20 .. 02-29 (10 days).

    Products (unit cost): A 2, B 5, C 1, J 3 (jit), X 1 (inactive, 8 on hand,
    no plan row).

    Sales lines: A 02-21 4 shipped, A 02-22 6 open, A 02-28 5 open (within the
    3 grace days: not due), A 02-23 3 cancelled, A 02-10 7 shipped (before
    the window), B 02-24 10 shipped. Returns: A 3 restockable on 02-27, B 1 on
    02-15 (before the window).

    Stock history: A [5, 4, 0, 0, 6, 5, 3, 2, 1, 10] (out on 02-22, 02-23),
    C [3, 3, 3, 3, 3, 3, 3, 0, 0, 0] (out 02-27..29); B has none (inferred
    from its sales: one sale in 10 days is no long zero run → no stockout).

    Purchase orders (supplier, ordered → expected, received):
    P0 A S1 02-05 → 02-09, 20 on 02-10; P1 A S1 02-20 → 02-26, 6 on 02-25;
    P2 B S2 01-20 → 01-31, 40 on 02-01; P3 B S2 02-15 → 02-21, 5 on 02-23;
    P4 A S1 02-26 → (no date), 10 open.

    Stock now (on_hand / allocated): A 10 / 5, B 100 / 0, C 0 / 0, J 0 / 0, X 8 / 0.
    Plans (demand_mean, IP, trigger, order): A 1, 5, 8, 0; B 0.5, 100, 30,
    0; C 2, 0, 4, 10; J (jit) 1, 0, 0, 0.
    """
    s = "shipped"
    sales = _frame(
        "sales_order_lines",
        [
            {"order_id": "O1", "line_no": 1, "sku": "A", "location_id": "W1", "channel": "web",
             "qty": 4, "ordered_at": D("2024-02-21 10:00"), "status": s},
            {"order_id": "O2", "line_no": 1, "sku": "A", "location_id": "W1", "channel": "web",
             "qty": 6, "ordered_at": D("2024-02-22 10:00"), "status": "open"},
            {"order_id": "O3", "line_no": 1, "sku": "A", "location_id": "W1", "channel": "web",
             "qty": 5, "ordered_at": D("2024-02-28 10:00"), "status": "Open "},
            {"order_id": "O4", "line_no": 1, "sku": "A", "location_id": "W1", "channel": "web",
             "qty": 3, "ordered_at": D("2024-02-23 10:00"), "status": "cancelled"},
            {"order_id": "O5", "line_no": 1, "sku": "A", "location_id": "W1", "channel": "web",
             "qty": 7, "ordered_at": D("2024-02-10 10:00"), "status": s},
            {"order_id": "O6", "line_no": 1, "sku": "B", "location_id": "W1", "channel": "b2b",
             "qty": 10, "ordered_at": D("2024-02-24 10:00"), "status": s},
        ],
    )  # fmt: skip
    returns = _frame(
        "returns",
        [
            {"order_id": "O1", "sku": "A", "location_id": "W1", "qty": 3,
             "returned_at": D("2024-02-27"), "restockable": True},
            {"order_id": "O9", "sku": "B", "location_id": "W1", "qty": 1,
             "returned_at": D("2024-02-15"), "restockable": True},
        ],
    )  # fmt: skip
    days = pd.date_range("2024-02-20", periods=10, freq="D")
    history = _frame(
        "stock_history",
        [
            {"sku": sku, "location_id": "W1", "date": d, "on_hand": v}
            for sku, values in (
                ("A", [5, 4, 0, 0, 6, 5, 3, 2, 1, 10]),
                ("C", [3, 3, 3, 3, 3, 3, 3, 0, 0, 0]),
            )
            for d, v in zip(days, values, strict=True)
        ],
    )
    pos = _frame(
        "purchase_orders",
        [
            {"po_id": "P0", "supplier_id": "S1", "location_id": "W1", "status": "received",
             "ordered_at": D("2024-02-05"), "expected_at": D("2024-02-09")},
            {"po_id": "P1", "supplier_id": "S1", "location_id": "W1", "status": "received",
             "ordered_at": D("2024-02-20"), "expected_at": D("2024-02-26")},
            {"po_id": "P2", "supplier_id": "S2", "location_id": "W1", "status": "received",
             "ordered_at": D("2024-01-20"), "expected_at": D("2024-01-31")},
            {"po_id": "P3", "supplier_id": "S2", "location_id": "W1", "status": "received",
             "ordered_at": D("2024-02-15"), "expected_at": D("2024-02-21")},
            {"po_id": "P4", "supplier_id": "S1", "location_id": "W1", "status": "sent",
             "ordered_at": D("2024-02-26"), "expected_at": None},
        ],
    )  # fmt: skip
    lines = _frame(
        "purchase_order_lines",
        [
            {"po_id": "P0", "line_no": 1, "sku": "A", "qty_ordered": 20, "qty_received": 20,
             "received_at": D("2024-02-10")},
            {"po_id": "P1", "line_no": 1, "sku": "A", "qty_ordered": 6, "qty_received": 6,
             "received_at": D("2024-02-25")},
            {"po_id": "P2", "line_no": 1, "sku": "B", "qty_ordered": 40, "qty_received": 40,
             "received_at": D("2024-02-01")},
            {"po_id": "P3", "line_no": 1, "sku": "B", "qty_ordered": 5, "qty_received": 5,
             "received_at": D("2024-02-23")},
            {"po_id": "P4", "line_no": 1, "sku": "A", "qty_ordered": 10, "qty_received": 0,
             "received_at": None},
        ],
    )  # fmt: skip
    products = _frame(
        "products",
        [
            {"sku": sku, "name": sku, "unit_cost": cost, "unit_price": 2 * cost,
             "active": sku != "X", "replenishment_mode": "jit" if sku == "J" else "stock"}
            for sku, cost in (("A", 2), ("B", 5), ("C", 1), ("J", 3), ("X", 1))
        ],
    )  # fmt: skip
    levels = _frame(
        "stock_levels",
        [
            {"sku": sku, "location_id": "W1", "on_hand": oh, "allocated": al,
             "as_of": D("2024-03-01")}
            for sku, oh, al in (("A", 10, 5), ("B", 100, 0), ("C", 0, 0), ("J", 0, 0), ("X", 8, 0))
        ],
    )  # fmt: skip
    snapshot = ErpSnapshot(
        products=products,
        stock_levels=levels,
        purchase_orders=pos,
        purchase_order_lines=lines,
        sales_order_lines=sales,
        returns=returns,
        stock_history=history,
    )
    periodic = "periodic (R,S)"
    plans = _plans(
        [
            {"sku": "A", "location_id": "W1", "abc_class": "A", "policy": periodic,
             "demand_mean": 1.0, "on_hand": 10, "allocated": 5, "inventory_position": 5,
             "trigger_level": 8, "order_qty": 0, "unit_price": 2},
            {"sku": "B", "location_id": "W1", "abc_class": "B", "policy": periodic,
             "demand_mean": 0.5, "on_hand": 100, "allocated": 0, "inventory_position": 100,
             "trigger_level": 30, "order_qty": 0, "unit_price": 5},
            {"sku": "C", "location_id": "W1", "abc_class": "C", "policy": periodic,
             "demand_mean": 2.0, "on_hand": 0, "allocated": 0, "inventory_position": 0,
             "trigger_level": 4, "order_qty": 10, "unit_price": 1},
            {"sku": "J", "location_id": "W1", "abc_class": "C", "policy": "jit",
             "demand_mean": 1.0, "on_hand": 0, "allocated": 0, "inventory_position": 0,
             "trigger_level": 0, "order_qty": 0, "unit_price": 3},
        ]
    )  # fmt: skip
    return snapshot, plans


@pytest.fixture(scope="module")
def shop_kpis() -> Kpis:
    snapshot, plans = _shop()
    return compute_kpis(snapshot, plans, AS_OF, window_days=WINDOW)


def _class(k: Kpis, cls: str, kpi: str) -> float:
    return float(k.by_abc_class.set_index("abc_class").loc[cls, kpi])


def test_service_rate(shop_kpis: Kpis) -> None:
    """Due: A 4 (shipped) + A 6 (open since 02-22) + B 10 (shipped) = 20 units
    (A 02-28 is within the 3 grace days, A 02-23 cancelled, A 02-10 before the
    window); served 4 + 10 = 14 → 0.7. Class A 4/10, class B 10/10."""
    assert shop_kpis.value("service_rate") == pytest.approx(0.7)
    assert _class(shop_kpis, "A", "service_rate") == pytest.approx(0.4)
    assert _class(shop_kpis, "B", "service_rate") == pytest.approx(1.0)


def test_grace_days_move_lines_into_due() -> None:
    """open_grace_days=0: A 02-28 (5, open) is due too: 14 / 25 = 0.56."""
    snapshot, plans = _shop()
    k = compute_kpis(snapshot, plans, AS_OF, window_days=WINDOW, open_grace_days=0)
    assert k.value("service_rate") == pytest.approx(14 / 25)


def test_stockout_rate_and_days(shop_kpis: Kpis) -> None:
    """Stock rows A, B, C (J is jit): A out 2 of 10 days (history), C 3 of 10
    (history), B 0 of 10 (inferred from its sales) → 5 / 30 and 5 / 3 days."""
    assert shop_kpis.value("stockout_rate") == pytest.approx(5 / 30)
    assert shop_kpis.value("days_out_of_stock") == pytest.approx(5 / 3)
    basis = shop_kpis.overall.set_index("kpi").loc["stockout_rate", "basis"]
    assert "2 series from stock_history, 1 inferred" in basis
    per = shop_kpis.per_series.set_index("sku")
    assert per.loc["B", "stockout_basis"] == "inferred"
    assert per.loc["A", "stockout_basis"] == "stock_history"
    assert per.loc["J", "observed_days"] == 0


def test_fill_rate_estimated(shop_kpis: Kpis) -> None:
    """A's rate on in-stock days: (4 + 5) units / 8 days = 1.125; lost on its
    stockout days: 02-22 max(1.125 − 6, 0) = 0, 02-23 1.125. C sold nothing
    (rate 0). Sold 15 + 10 = 25 → 25 / 26.125."""
    assert shop_kpis.value("fill_rate_estimated") == pytest.approx(25 / 26.125)
    assert shop_kpis.per_series.set_index("sku").loc["A", "lost_units"] == pytest.approx(1.125)


def test_stock_value_cover_and_overstock(shop_kpis: Kpis) -> None:
    """Stock value 10·2 + 100·5 + 0 + 0 + 8·1 = 528.
    Days of cover: available value (10 − 5)·2 + 100·5 = 510 over demand value
    1·2 + 0.5·5 + 2·1 + 1·3 = 9.5 per day.
    Overstock (90 days): B max(100 − 45, 0)·5 = 275, X (no plan) 8·1 → 283."""
    assert shop_kpis.value("stock_value") == pytest.approx(528.0)
    assert shop_kpis.value("days_of_cover") == pytest.approx(510 / 9.5)
    assert shop_kpis.value("overstock_value") == pytest.approx(283.0)
    assert shop_kpis.value("overstock_share") == pytest.approx(283 / 528)
    assert _class(shop_kpis, NO_CLASS, "overstock_value") == pytest.approx(8.0)


def test_overstock_threshold() -> None:
    """overstock_days 30: A max(5 − 30, 0) = 0, B (100 − 15)·5 = 425, X 8 → 433."""
    snapshot, plans = _shop()
    k = compute_kpis(snapshot, plans, AS_OF, window_days=WINDOW, overstock_days=30)
    assert k.value("overstock_value") == pytest.approx(433.0)


def test_stock_turns(shop_kpis: Kpis) -> None:
    """COGS: served lines ordered in the window, A 4·2 + B 10·5 = 58 in 10 days
    → 58 · 36.5 a year. Average stock value: A mean of its history 36/10 ·
    2 = 7.2, C 21/10 · 1 = 2.1, B (no history) 100·5, X 8·1 → 517.3."""
    assert shop_kpis.value("stock_turns") == pytest.approx(58 * 36.5 / 517.3)


def test_stock_age_fifo(shop_kpis: Kpis) -> None:
    """Ages at 2024-03-01 (2024 is a leap year). A (10 on hand), newest
    first: return 3 on 02-27 (3 days old), P1 6 on 02-25 (5), 1 of P0's 20 on
    02-10 (20): 3·3 + 6·5 + 1·20 = 59 unit-days. B (100): P3 5 on 02-23 (7),
    the restockable return 1 on 02-15 (15), P2 40 on 02-01 (29), 54 beyond any
    receipt aged as the oldest (29): 35 + 15 + 94·29 = 2776. Value-weighted:
    (59·2 + 2776·5) / (10·2 + 100·5) = 13998 / 520. X has no receipt."""
    assert shop_kpis.value("stock_age_days") == pytest.approx(13998 / 520)
    per = shop_kpis.per_series.set_index("sku")
    assert per.loc["A", "stock_age_days"] == pytest.approx(5.9)
    assert math.isnan(per.loc["X", "stock_age_days"])


def test_returns_rate(shop_kpis: Kpis) -> None:
    """Returned in the window 3 (B's return is before it) / sold 15 + 10."""
    assert shop_kpis.value("returns_rate") == pytest.approx(3 / 25)


def test_supplier_on_time(shop_kpis: Kpis) -> None:
    """Received in the window: P1 (02-25, expected 02-26: on time) and P3
    (02-23, expected 02-21: late) → 1/2; S1 1.0, S2 0.0; class A 1, B 0."""
    assert shop_kpis.value("supplier_on_time_rate") == pytest.approx(0.5)
    sup = shop_kpis.by_supplier.set_index("supplier_id")
    assert sup.loc["S1", "on_time_rate"] == 1.0
    assert sup.loc["S2", "on_time_rate"] == 0.0
    assert _class(shop_kpis, "A", "supplier_on_time_rate") == 1.0
    assert _class(shop_kpis, "B", "supplier_on_time_rate") == 0.0


def test_supplier_on_time_matches_leadtime_rule() -> None:
    """The overall rate is supplier_on_time's rule over the window's receipts."""
    snapshot, plans = _shop()
    k = compute_kpis(snapshot, plans, AS_OF, window_days=40)
    lines = snapshot.purchase_order_lines
    recent = lines[
        (lines["received_at"] >= D("2024-01-21")) & (lines["received_at"] < D("2024-03-01"))
    ]
    ref = supplier_on_time(snapshot.purchase_orders, recent)
    expected = (ref["on_time_rate"] * ref["receipts"]).sum() / ref["receipts"].sum()
    assert k.value("supplier_on_time_rate") == pytest.approx(expected)
    assert k.value("supplier_on_time_rate") == pytest.approx(1 / 4)  # P0, P2, P3 late; P1 on time


def test_rop_respected(shop_kpis: Kpis) -> None:
    """PO lines expected in the window: P1 (A, ordered 02-20, expected 02-26)
    saw A's stockouts of 02-22/23 → late; P3 (B, 02-15 → 02-21) saw no
    stockout in the window → in time. C ran out 02-27..29 with no order on
    the way: one missed decision. P4 has no expected date. → 1 / (2 + 1)."""
    assert shop_kpis.value("rop_respected") == pytest.approx(1 / 3)
    per = shop_kpis.per_series.set_index("sku")
    assert per.loc["C", "missed_orders"] == 1
    assert per.loc["A", "po_lines_rated"] == 1
    assert per.loc["A", "po_lines_in_time"] == 0


def test_counts_now(shop_kpis: Kpis) -> None:
    """stockouts_now: C (0 available, demand 2; J is jit). below_trigger_no_order:
    A (IP 5 < trigger 8, no order); C is below but ordered."""
    assert shop_kpis.value("stockouts_now") == 1
    assert shop_kpis.value("below_trigger_no_order") == 1


def test_breakdowns_add_up(shop_kpis: Kpis) -> None:
    for frame in (shop_kpis.by_abc_class, shop_kpis.by_location):
        for kpi in ("stock_value", "overstock_value", "stockouts_now", "below_trigger_no_order"):
            assert frame[kpi].sum() == pytest.approx(shop_kpis.value(kpi))
    loc = shop_kpis.by_location.set_index("location_id").loc["W1"]
    for kpi in KPI_NAMES:
        a, b = loc[kpi], shop_kpis.value(kpi)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), kpi


def test_outputs_are_json_ready(shop_kpis: Kpis) -> None:
    data = json.loads(json.dumps(shop_kpis.to_dict(), allow_nan=False))
    assert data["overall"]["service_rate"] == pytest.approx(0.7)
    assert data["by_abc_class"]["B"]["service_rate"] == pytest.approx(1.0)
    assert data["by_abc_class"][NO_CLASS]["stockout_rate"] is None  # nothing measured
    assert data["units"]["stock_turns"] == "per year"
    rows = shop_kpis.table_rows()
    assert [r["kpi"] for r in rows] == list(KPI_NAMES)
    json.dumps(rows, allow_nan=False)
    md = shop_kpis.to_markdown()
    assert "| service_rate | 70.0 % | ratio |" in md
    assert "2024-02-20 – 2024-02-29" in md
    assert "### Per ABC class" in md


def test_inferred_stockouts_without_history() -> None:
    """No stock history: A sells 10 a day for 25 days then nothing for 5. Its
    rate of zero days outside long runs is ~0, so the 5-day run is a
    stockout (inferred): 5 / 30 days, and 5 · 10 units lost."""
    as_of = date(2024, 3, 31)
    days = pd.date_range("2024-03-01", periods=25, freq="D")
    sales = _frame(
        "sales_order_lines",
        [
            {"order_id": f"O{i}", "line_no": 1, "sku": "A", "location_id": "W1",
             "channel": "web", "qty": 10, "ordered_at": d + pd.Timedelta(hours=9),
             "status": "shipped"}
            for i, d in enumerate(days)
        ],
    )  # fmt: skip
    snapshot = ErpSnapshot(
        products=_frame("products", [{"sku": "A", "name": "A", "unit_cost": 1.0, "active": True}]),
        sales_order_lines=sales,
    )
    plans = _plans(
        [
            {"sku": "A", "location_id": "W1", "abc_class": "A", "policy": "continuous (s,Q)",
             "demand_mean": 10.0, "on_hand": 0, "allocated": 0, "inventory_position": 0,
             "trigger_level": 50, "order_qty": 100, "unit_price": 1},
        ]
    )  # fmt: skip
    k = compute_kpis(snapshot, plans, as_of, window_days=30)
    assert k.value("stockout_rate") == pytest.approx(5 / 30)
    assert k.value("fill_rate_estimated") == pytest.approx(250 / 300)
    assert (
        "0 series from stock_history, 1 inferred"
        in k.overall.set_index("kpi").loc["stockout_rate", "basis"]
    )
    # the missed decision: out of stock with no order on the way
    assert k.value("rop_respected") == 0.0
    # a stock history given explicitly replaces the inference
    history = _frame(
        "stock_history",
        [{"sku": "A", "location_id": "W1", "date": d, "on_hand": 1.0}
         for d in pd.date_range("2024-03-01", periods=30, freq="D")],
    )  # fmt: skip
    k2 = compute_kpis(snapshot, plans, as_of, window_days=30, stock_history=history)
    assert k2.value("stockout_rate") == 0.0
    assert k2.value("stock_turns") == pytest.approx(250 * 365 / 30 / 1.0)


def test_empty_inputs_give_nan_not_errors() -> None:
    k = compute_kpis(ErpSnapshot(), pd.DataFrame(columns=PLAN_COLUMNS), AS_OF)
    assert list(k.overall["kpi"]) == list(KPI_NAMES)
    assert math.isnan(k.value("service_rate"))
    assert k.value("stock_value") == 0.0
    json.dumps(k.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_days": 0}, "window_days must be > 0"),
        ({"overstock_days": -1.0}, "overstock_days must be > 0"),
        ({"open_grace_days": -1}, "open_grace_days must be >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    snapshot, plans = _shop()
    with pytest.raises(ValueError, match=message):
        compute_kpis(snapshot, plans, AS_OF, **kwargs)


def test_plans_without_needed_columns() -> None:
    snapshot, plans = _shop()
    with pytest.raises(ValueError, match=r"plans lacks the column.*trigger_level"):
        compute_kpis(snapshot, plans.drop(columns="trigger_level"), AS_OF)
    with pytest.raises(KeyError, match="unknown KPI"):
        compute_kpis(snapshot, plans, AS_OF).value("happiness")


# ------------------------------------------------------------------ demo shop

DEMO_AS_OF = date(2024, 6, 3)


@pytest.fixture(scope="module")
def demo() -> tuple[ErpSnapshot, pd.DataFrame]:
    snap = generate_demo(DEMO_AS_OF, n_skus=40, days=240)
    history = daily_demand(
        snap.sales_order_lines, DEMO_AS_OF, 240, snap.stock_history, returns=snap.returns
    )
    forecast = forecast_demand(history, promotions=snap.promotions, as_of=DEMO_AS_OF)
    lead_times = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    return snap, build_plans(snap, forecast, lead_times, DEMO_AS_OF)


def test_demo_kpis_are_plausible(demo: tuple[ErpSnapshot, pd.DataFrame]) -> None:
    """The demo loses demand on ~4 % of days, delivers mostly on time and
    keeps two dead-stock SKUs: every ratio in [0, 1], stockouts seen, the
    inactive SKUs' stock is overstock, the breakdowns add up."""
    snap, plans = demo
    k = compute_kpis(snap, plans, DEMO_AS_OF)
    ratios = k.overall[k.overall["unit"] == "ratio"]
    assert ratios["value"].between(0.0, 1.0).all(), ratios
    assert 0.0 < k.value("stockout_rate") < 0.2
    assert 0.0 < k.value("fill_rate_estimated") < 1.0
    assert 0.5 < k.value("supplier_on_time_rate") < 1.0
    assert k.value("stock_turns") > 1.0
    inactive = set(snap.products.loc[~snap.products["active"].astype(bool), "sku"])
    per = k.per_series.set_index("sku")
    held = per.loc[per.index.isin(inactive)]
    assert (held["abc_class"] == NO_CLASS).all()
    assert held["overstock_value"].sum() == pytest.approx(held["stock_value"].sum())
    assert k.by_abc_class["stock_value"].sum() == pytest.approx(k.value("stock_value"))
    assert k.by_location["overstock_value"].sum() == pytest.approx(k.value("overstock_value"))
    stock = snap.stock_levels.merge(snap.products[["sku", "unit_cost"]], on="sku")
    assert k.value("stock_value") == pytest.approx((stock["on_hand"] * stock["unit_cost"]).sum())
    # the class breakdown orders as ABC should: A turns faster than C
    assert _class(k, "A", "stock_turns") > _class(k, "C", "stock_turns")
    assert set(k.by_supplier["supplier_id"]) <= set(snap.suppliers["supplier_id"])


def test_demo_window_changes_figures(demo: tuple[ErpSnapshot, pd.DataFrame]) -> None:
    snap, plans = demo
    short = compute_kpis(snap, plans, DEMO_AS_OF, window_days=14)
    long = compute_kpis(snap, plans, DEMO_AS_OF, window_days=120)
    assert short.value("stock_value") == long.value("stock_value")  # a stock, not a flow
    sold_short = short.per_series["sold_units"].sum()
    sold_long = long.per_series["sold_units"].sum()
    assert 0 < sold_short < sold_long
    assert np.isfinite(short.value("days_of_cover"))
