"""build_plans beyond the basics: supplier order days, forecast paths,
ABC × XYZ targets, fill rates, discrete demand, suggested modes, and the
properties every plan must keep."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from replenish.forecast.result import Forecast
from replenish.model import ErpSnapshot, coerce
from replenish.policy.formulas import normal_loss
from tests.unit.test_plan import (  # (s, Q) settings stated explicitly: see there
    AS_OF,
    PlanSettings,
    T,
    _forecast,
    _lead_times,
    _row,
    _snapshot,
    build_plans,
)

# AS_OF = Friday 2024-03-01


def _with_order_days(days: str | None, snap: ErpSnapshot | None = None) -> ErpSnapshot:
    snap = snap or _snapshot()
    snap.suppliers["order_days"] = pd.array([days, None], dtype="string")
    return snap


def test_off_order_day_waits_for_the_next_order_day() -> None:
    """S1 takes orders on Thursdays: R = 7, SS protects R + L = 11 days.
    A@W1 with plenty of stock (free 495 + due 10 >= 10·(6 + 4) = 100) is not
    ordered on Friday; the row names the next order day."""
    snap = _with_order_days("thu")
    snap.stock_levels.loc[snap.stock_levels["sku"] == "A", "on_hand"] = 500.0
    plans = build_plans(snap, _forecast(), _lead_times(), AS_OF)
    a = _row(plans, "A")
    assert a["policy"] == "periodic (R,S)"
    assert (a["order_days"], a["review_period"], a["protection_days"]) == ("Thu", 7.0, 11.0)
    assert a["next_order_date"] == pd.Timestamp("2024-03-07")
    assert a["order_qty"] == 0 and not a["needs_order"]
    assert a["reason"].startswith("Next order day Thu 07-03: nothing ordered today")
    assert not a["stockout_risk"]


def test_off_order_day_orders_when_a_stockout_is_expected() -> None:
    """A@W2: free 35, its open PO (10) is due only in 10 days: 35 < 100
    expected until an order placed on Thursday arrives (6 + 4 days):
    order now, and say so."""
    plans = build_plans(_with_order_days("thu"), _forecast(), _lead_times(), AS_OF)
    a = _row(plans, "A", "W2")
    assert a["order_qty"] > 0 and a["stockout_risk"]
    assert a["reason"].startswith(
        "Not an order day (next order day Thu 07-03), but a stockout is expected: available 35"
    )
    assert "order max(EOQ 604.2, S − IP" in a["reason"]


def test_order_day_reviews_against_the_order_up_to_level() -> None:
    plans = build_plans(_with_order_days("mon, fri"), _forecast(), _lead_times(), AS_OF)
    a = _row(plans, "A")
    assert (a["review_period"], a["next_order_date"]) == (3.5, pd.Timestamp(AS_OF))
    assert a["reason"].startswith("Review (order day Mon, Fri): inventory position 45 is below")
    assert a["order_up_to"] == pytest.approx(10 * 7.5 + a["safety_stock"])
    assert a["order_qty"] == 612


def test_jit_waits_for_the_order_day_too() -> None:
    b = _row(build_plans(_with_order_days("thu"), _forecast(), _lead_times(), AS_OF), "B")
    assert b["order_qty"] == 0
    assert b["reason"] == (
        "Just-in-time: open customer demand 40 exceeds on hand 3 + on order 0 by 37: "
        "to be ordered on the next order day Thu 07-03."
    )


def test_unreadable_order_days_plan_continuously_and_say_so() -> None:
    a = _row(build_plans(_with_order_days("someday"), _forecast(), _lead_times(), AS_OF), "A")
    assert a["policy"] == "continuous (s,Q)"
    assert a["reason"].endswith("Supplier order_days 'someday' unreadable: any day assumed.")


def test_protection_interval_demand_follows_the_forecast_path() -> None:
    """A promotion doubles A@W1's demand over the next 4 days: the lead-time
    demand is 80, not d·L = 40; demand_mean stays the per-day figure."""
    frame = _forecast()
    path = np.repeat(frame["demand_mean"].to_numpy()[:, None], 30, axis=1)
    path[0, :4] = 20.0
    fc = Forecast(frame=frame, path=path, start=AS_OF)
    a = _row(build_plans(_snapshot(), fc, _lead_times(), AS_OF), "A")
    assert a["demand_mean"] == 10
    assert a["lead_time_demand"] == pytest.approx(80.0)
    assert a["lead_time_demand"] == pytest.approx(fc.interval_demand(np.full(7, 4.0))[0])
    assert a["reorder_point"] == pytest.approx(80 + a["safety_stock"])
    # a forecast made a day before the plan is read from the plan's day on
    earlier = Forecast(
        frame=frame, path=np.hstack([np.full((7, 1), 99.0), path]), start=AS_OF - timedelta(1)
    )
    assert _row(build_plans(_snapshot(), earlier, _lead_times(), AS_OF), "A")[
        "lead_time_demand"
    ] == pytest.approx(80.0)


def test_xyz_class_shades_the_service_target() -> None:
    """Without a product level, A×X gets 0.99 and A×Z 0.97 (class A 0.98,
    shortfall ×0.5 / ×1.5); an explicit 'AZ' cell beats that."""
    snap = _snapshot()
    snap.products["service_level"] = np.nan
    frame = _forecast().assign(xyz_class=["X", "Z", "Y", "Y", "Y", "Y", "Y"])
    plans = build_plans(snap, frame, _lead_times(), AS_OF)
    w1, w2 = _row(plans, "A", "W1"), _row(plans, "A", "W2")
    assert (w1["xyz_class"], w1["service_level"], w1["service_level_source"]) == (
        "X",
        0.99,
        "class",
    )
    assert w2["service_level"] == pytest.approx(0.97)
    plans = build_plans(snap, frame, _lead_times(), AS_OF, PlanSettings(service_levels={"AZ": 0.9}))
    w2 = _row(plans, "A", "W2")
    assert (w2["service_level"], w2["service_level_source"]) == (0.9, "cell")
    assert _row(build_plans(snap, _forecast(), _lead_times(), AS_OF), "A")["xyz_class"] == "Y"


def test_fill_rate_target_solves_the_loss_equation() -> None:
    """target_type 'fill_rate': the product's 0.99 is a fill rate; K = 0.5
    gives EOQ 60.4 → Q = 108 (MOQ 100, packs of 12); k solves
    σ·G(k) = (1 − 0.99)·108."""
    snap = _snapshot()
    snap.products.loc[snap.products["sku"] == "A", "service_level"] = 0.99
    settings = PlanSettings(target_type="fill_rate", order_cost=0.5)
    a = _row(build_plans(snap, _forecast(), _lead_times(), AS_OF, settings), "A")
    assert a["target_type"] == "fill_rate" and a["cycle_qty"] == 108
    sigma = a["protection_demand_std"]
    assert sigma * normal_loss(a["z"]) == pytest.approx(0.01 * 108)
    assert a["expected_fill_rate"] == pytest.approx(0.99)
    assert a["safety_stock"] == pytest.approx(a["z"] * sigma)
    assert a["safety_stock_basis"].startswith("k 0.9")


def test_intermittent_item_gets_a_discrete_reorder_point() -> None:
    """E (lumpy, 0.2/day, σd 0.5) planned as stock: L = 2 + 1 = 3 days,
    μ = 0.6, V = 3·0.25 = 0.75 > 0.66: negative binomial; ROP is the
    smallest s with P(LTD <= s) >= 0.90 (class C), SS = s − μ."""
    snap = _snapshot()
    snap.products.loc[snap.products["sku"] == "E", "replenishment_mode"] = "stock"
    e = _row(build_plans(snap, _forecast(), _lead_times(), AS_OF), "E")
    assert e["ltd_distribution"] == "negbin"
    assert e["protection_demand_mean"] == pytest.approx(0.6)
    assert e["protection_demand_std"] ** 2 == pytest.approx(0.75)
    assert e["reorder_point"] == round(e["reorder_point"]) == 2
    assert e["safety_stock"] == pytest.approx(2 - 0.6)
    assert e["expected_cycle_service"] >= e["service_level"] == 0.9
    assert math.isnan(e["z"])
    assert e["safety_stock_basis"].startswith("negative binomial(μ 0.6, σ 0.87) over 3 days")


def test_suggested_mode_is_advice_unless_applied() -> None:
    """E is C × Z (lumpy, erratic): suggested 'jit'. Planned as stock unless
    apply_suggested_jit."""
    snap = _snapshot()
    snap.products.loc[snap.products["sku"] == "E", "replenishment_mode"] = "stock"
    frame = _forecast().assign(xyz_class=["Y", "Y", "Y", "Y", "Y", "Z", "Y"])
    e = _row(build_plans(snap, frame, _lead_times(), AS_OF), "E")
    assert (e["suggested_mode"], e["policy"]) == ("jit", "continuous (s,Q)")
    assert e["mode_reason"].startswith("slow & erratic, low value (C×Z)")
    settings = PlanSettings(apply_suggested_jit=True)
    e = _row(build_plans(snap, frame, _lead_times(), AS_OF, settings), "E")
    assert (e["policy"], e["safety_stock"], e["order_qty"]) == ("jit", 0, 0)
    assert e["mode_reason"].endswith("(applied)")


def test_supplier_order_cost_and_on_time_rate() -> None:
    """K is the supplier's order_cost (else the setting); the supplier's
    on-time rate from receipts is on the row."""
    snap = _snapshot()
    snap.suppliers["order_cost"] = [200.0, np.nan]
    a = _row(build_plans(snap, _forecast(), _lead_times(), AS_OF), "A")
    assert a["order_cost"] == 200 and a["holding_cost"] == 1
    assert a["eoq"] == pytest.approx(math.sqrt(2 * 3650 * 200 / 1.0))
    assert a["supplier_on_time_rate"] == 1.0  # P3: expected and received on as_of
    assert (a["supplier_reason"], a["n_suppliers"]) == ("priority 1 (of 2)", 2)


# ------------------------------------------------------------------ properties


def _random_shop(seed: int, n: int = 300) -> tuple[ErpSnapshot, pd.DataFrame, pd.DataFrame]:
    """n SKUs at one location, two suppliers (one ordering on Thursdays
    only), random stock, open POs, open customer demand, modes, MOQ and packs."""
    rng = np.random.default_rng(seed)
    skus = [f"S{i:04d}" for i in range(n)]
    sup = rng.choice(["S1", "S2"], n)
    suppliers = coerce(
        "suppliers",
        pd.DataFrame(
            {
                "supplier_id": ["S1", "S2"],
                "name": ["one", "two"],
                "currency": "EUR",
                "min_order_value": 0.0,
                "order_processing_days": 1.0,
                "transport_days": [2.0, 5.0],
                "receiving_days": 0.0,
                "order_days": ["thu", None],
            }
        ),
    )
    products = coerce(
        "products",
        pd.DataFrame(
            {
                "sku": skus,
                "name": skus,
                "unit_cost": rng.uniform(0.5, 50, n),
                "unit_price": 10.0,
                "active": True,
                "replenishment_mode": rng.choice(["stock", "jit"], n, p=[0.7, 0.3]),
            }
        ),
    )
    supplier_products = coerce(
        "supplier_products",
        pd.DataFrame(
            {
                "sku": skus,
                "supplier_id": sup,
                "supplier_sku": skus,
                "lead_time_days": rng.integers(1, 15, n).astype(float),
                "moq": rng.choice([1.0, 10.0, 48.0], n),
                "pack_size": rng.choice([1.0, 6.0, 12.0], n),
                "unit_price": rng.uniform(0.5, 50, n),
                "priority": 1,
            }
        ),
    )
    stock = coerce(
        "stock_levels",
        pd.DataFrame(
            {
                "sku": skus,
                "location_id": "W1",
                "on_hand": rng.integers(0, 300, n).astype(float),
                "allocated": rng.integers(0, 10, n).astype(float),
                "as_of": T,
            }
        ),
    )
    with_po = rng.random(n) < 0.3
    po_ids = [f"P{i}" for i in range(int(with_po.sum()))]
    purchase_orders = coerce(
        "purchase_orders",
        pd.DataFrame(
            {
                "po_id": po_ids,
                "supplier_id": sup[with_po],
                "location_id": "W1",
                "status": "sent",
                "ordered_at": T - pd.Timedelta(days=2),
                "expected_at": T + pd.to_timedelta(rng.integers(0, 20, len(po_ids)), "D"),
            }
        ),
    )
    lines = coerce(
        "purchase_order_lines",
        pd.DataFrame(
            {
                "po_id": po_ids,
                "line_no": 1,
                "sku": np.array(skus)[with_po],
                "qty_ordered": rng.integers(1, 100, len(po_ids)).astype(float),
                "qty_received": 0.0,
            }
        ),
    )
    has_open = rng.random(n) < 0.4
    sales = coerce(
        "sales_order_lines",
        pd.DataFrame(
            {
                "order_id": [f"O{i}" for i in range(int(has_open.sum()))],
                "line_no": 1,
                "sku": np.array(skus)[has_open],
                "location_id": "W1",
                "channel": "web",
                "qty": rng.integers(1, 400, int(has_open.sum())).astype(float),
                "ordered_at": T,
                "status": "open",
            }
        ),
    )
    cls = rng.choice(["smooth", "erratic", "intermittent", "lumpy"], n)
    mean = np.where(
        np.isin(cls, ["smooth", "erratic"]), rng.uniform(0.5, 30, n), rng.uniform(0, 1, n)
    )
    forecast = pd.DataFrame(
        {
            "sku": skus,
            "location_id": "W1",
            "demand_class": cls,
            "method": "x",
            "adi": rng.uniform(1, 8, n),
            "demand_mean": mean,
            "demand_std": mean * rng.uniform(0.1, 2, n),
            "xyz_class": rng.choice(["X", "Y", "Z"], n),
        }
    )
    lead_times = pd.DataFrame(
        {
            "sku": pd.Series([], dtype="string"),
            "supplier_id": pd.Series([], dtype="string"),
            "lead_time_mean": pd.Series([], dtype=float),
            "lead_time_std": pd.Series([], dtype=float),
            "lead_time_source": pd.Series([], dtype="string"),
        }
    )
    snap = ErpSnapshot(
        suppliers=suppliers,
        products=products,
        supplier_products=supplier_products,
        stock_levels=stock,
        purchase_orders=purchase_orders,
        purchase_order_lines=lines,
        sales_order_lines=sales,
    )
    return snap, forecast, lead_times


@pytest.mark.parametrize("target_type", ["cycle", "fill_rate"])
@pytest.mark.parametrize("seed", [1, 2])
def test_plan_properties(seed: int, target_type: str) -> None:
    """On random shops:

    * an order is a whole number of packs and at least the MOQ;
    * a jit SKU is never ordered without uncovered open demand;
    * a periodic SKU off its order day is ordered only when a stockout is
      expected before an order placed on the next order day could arrive
      (S1 orders on Thursdays; no PO is counted as due here unless its
      expected date falls in time);
    * for discrete rows the achieved P(demand <= s) reaches the target.
    """
    snap, fc, lt = _random_shop(seed)
    plans = build_plans(snap, fc, lt, AS_OF, PlanSettings(target_type=target_type))
    ordered = plans[plans["order_qty"] > 0]
    assert len(ordered) > 20
    packs = ordered["order_qty"] / ordered["pack_size"]
    assert np.allclose(packs, np.round(packs))
    assert (ordered["order_qty"] >= ordered["moq"]).all()

    jit = plans[plans["policy"] == "jit"]
    uncovered = jit["open_demand"] - jit["on_hand"] - jit["on_order"]
    assert (uncovered[jit["order_qty"] > 0] > 0).all()
    assert (jit["order_qty"] > 0).any()

    off_day = plans[(plans["policy"] == "periodic (R,S)") & (plans["order_days"] == "Thu")]
    assert (off_day["next_order_date"] == pd.Timestamp("2024-03-07")).all()
    expected_until = off_day["demand_mean"] * (6 + off_day["lead_time_mean"])
    free = off_day["on_hand"] - off_day["allocated"]
    ordered_off = off_day["order_qty"] > 0
    assert (free[ordered_off] < expected_until[ordered_off]).all()
    assert off_day["reason"][ordered_off].str.startswith("Not an order day").all()
    assert off_day["reason"][~ordered_off].str.match("Next order day|Not an order day").all()
    waiting = off_day[off_day["reason"].str.startswith("Next order day")]
    assert (waiting["order_qty"] == 0).all() and len(waiting) > 0

    discrete = plans[plans["ltd_distribution"].isin(["poisson", "negbin"])]
    assert len(discrete) > 10
    if target_type == "cycle":
        assert (discrete["expected_cycle_service"] >= discrete["service_level"] - 1e-12).all()
    else:
        assert (discrete["expected_fill_rate"] >= discrete["service_level"] - 1e-9).all()


def test_plan_does_not_depend_on_row_order_or_duplicated_forecast_rows() -> None:
    snap, fc, lt = _random_shop(3, n=120)
    base = build_plans(snap, fc, lt, AS_OF)
    shuffled = fc.sample(frac=1.0, random_state=0)
    again = build_plans(snap, pd.concat([fc.iloc[:5], shuffled], ignore_index=True), lt, AS_OF)
    pd.testing.assert_frame_equal(base, again)


def test_next_order_date_of_continuous_rows_is_today() -> None:
    plans = build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF)
    assert (plans["next_order_date"] == pd.Timestamp(date(2024, 3, 1))).all()
    assert set(plans["policy"]) == {"continuous (s,Q)", "jit"}


def test_a_stock_item_with_rare_large_orders_is_still_stocked() -> None:
    """E as a stock item whose demand comes as rare large orders: 0.05/day
    on average, σd 1.0 (orders of ~20 units once a year), daily periodic
    review (R 1), L 3. Over R + L = 4 days μ = 0.2, V = 4: a negative
    binomial with P(X = 0) >= its 0.90 target, so its count quantile is 0:
    without a floor the shelf would never be restocked. The safety stock is
    floored at 0 and, as one order (Q 1) outlasts a review, the (R, s, Q)
    trigger applies: E[U] = (0.05² + 1)/(2·0.05) = 10.025, which would ask
    for ~26 units (520 days of demand); it is capped at
    max_trigger_cover_days (60) of demand beyond μ_{R+L}: 0.2 + 0.05·60 = 3.2,
    and S is raised to it."""
    snap = _snapshot()
    snap.products.loc[snap.products["sku"] == "E", "replenishment_mode"] = "stock"
    snap.stock_levels = snap.stock_levels[snap.stock_levels["sku"] != "E"]
    frame = _forecast()
    frame.loc[frame["sku"] == "E", ["demand_mean", "demand_std"]] = [0.05, 1.0]
    settings = PlanSettings(review_period_days=1.0)
    e = _row(build_plans(snap, frame, _lead_times(), AS_OF, settings), "E")
    assert e["ltd_distribution"] == "negbin"
    assert e["protection_demand_mean"] == pytest.approx(0.2)
    assert e["safety_stock"] >= 0.0
    assert e["undershoot"] == pytest.approx(10.025)
    assert e["trigger_level"] == pytest.approx(3.2)
    assert e["order_up_to"] == pytest.approx(3.2)
    assert e["inventory_position"] == 0.0
    assert e["order_qty"] >= 3.2  # S − IP, then MOQ and pack
    capped = PlanSettings(review_period_days=1.0, max_trigger_cover_days=20.0)
    e = _row(build_plans(snap, frame, _lead_times(), AS_OF, capped), "E")
    assert e["trigger_level"] == pytest.approx(0.2 + 0.05 * 20)


def test_trigger_above_order_up_to_raises_the_order_up_to_level() -> None:
    """(R, s, Q) where the undershoot model asks for more than S: E at 0.5 a
    day with σd 2 (orders of several units at once), R 1, L 3, Q capped at 14
    days (7 units) > μ_R 0.5. E[U] = (0.5² + 4)/(2·0.5) = 4.25, so the
    trigger s = μ_L + E[U] + safety lies above the plain S = μ_{R+L} + SS.
    S is raised to s: an order brings the position to at least the trigger
    (otherwise the next review would order again)."""
    snap = _snapshot()
    snap.products.loc[snap.products["sku"] == "E", "replenishment_mode"] = "stock"
    snap.stock_levels = snap.stock_levels[snap.stock_levels["sku"] != "E"]
    frame = _forecast()
    frame.loc[frame["sku"] == "E", ["demand_mean", "demand_std"]] = [0.5, 2.0]
    settings = PlanSettings(review_period_days=1.0, max_cycle_cover_days=14.0)
    e = _row(build_plans(snap, frame, _lead_times(), AS_OF, settings), "E")
    assert e["undershoot"] == pytest.approx(4.25)
    assert e["trigger_level"] > e["protection_demand_mean"] + e["safety_stock"]
    assert e["trigger_level"] >= 1.5 + 4.25  # μ_L + E[U]
    assert e["order_up_to"] == pytest.approx(e["trigger_level"])
    assert e["inventory_position"] + e["order_qty"] >= e["trigger_level"]
