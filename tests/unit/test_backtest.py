"""Backtest building blocks, and the replay on data whose outcome is known exactly."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from replenish import model
from replenish.backtest import (
    METRIC_KEYS,
    BacktestConfig,
    BacktestDataError,
    BacktestResult,
    format_table,
    run_backtest,
    to_json,
)
from replenish.backtest.accuracy import AccuracyCollector, seasonal_naive_scale
from replenish.backtest.baseline import MinMaxBaseline
from replenish.backtest.metrics import Trajectory, cycle_counts, service_metrics
from replenish.backtest.supply import empirical_lead_times
from replenish.errors import ConfigurationError
from replenish.policy import PlanSettings

FIRST_DAY = date(2025, 1, 1)


def synthetic_shop(
    demand: np.ndarray,
    *,
    lead_time: int = 5,
    unit_cost: float = 20.0,
    service_level: float | None = 0.9,
    receipts: int = 12,
    receipt_days: list[int] | None = None,
    pack_size: float = 1.0,
) -> model.ErpSnapshot:
    """One supplier, one warehouse, SKUs ``P000``… with the daily ``demand``
    given (n_skus × days, from ``FIRST_DAY``), a declared lead time of
    ``lead_time`` days, and ``receipts`` past receipts per SKU that took
    exactly that long (or the ``receipt_days`` given, in turn)."""
    n_skus, days = demand.shape
    start = pd.Timestamp(FIRST_DAY)
    skus = [f"P{i:03d}" for i in range(n_skus)]
    s_idx, d_idx = np.nonzero(demand)
    sales = pd.DataFrame(
        {
            "order_id": [f"SO-{i}" for i in range(len(s_idx))],
            "line_no": 1,
            "sku": np.asarray(skus)[s_idx],
            "location_id": "WH1",
            "channel": "web",
            "qty": demand[s_idx, d_idx].astype(float),
            "ordered_at": start + pd.to_timedelta(d_idx, unit="D") + pd.Timedelta(hours=12),
            "status": "shipped",
        }
    )
    took = receipt_days or [lead_time]
    po, lines = [], []
    for i, sku in enumerate(skus):
        for j in range(receipts):
            ordered = start + pd.Timedelta(days=3 + 7 * j, hours=8)
            received = ordered + pd.Timedelta(days=took[j % len(took)])
            po.append((f"PO-{i}-{j}", "SUP-1", "WH1", "received", ordered, received))
            lines.append((f"PO-{i}-{j}", 1, sku, 10.0, 10.0, received))
    frames = {
        "suppliers": pd.DataFrame(
            {
                "supplier_id": ["SUP-1"],
                "name": ["Supplier"],
                "email": ["orders@supplier.example"],
                "currency": ["EUR"],
                "min_order_value": [0.0],
                "order_processing_days": [0.0],
                "transport_days": [0.0],
                "receiving_days": [0.0],
            }
        ),
        "products": pd.DataFrame(
            {
                "sku": skus,
                "name": skus,
                "category": "test",
                "unit_cost": unit_cost,
                "unit_price": 2 * unit_cost,
                "active": True,
                "replenishment_mode": "stock",
                "service_level": service_level,
            }
        ),
        "supplier_products": pd.DataFrame(
            {
                "sku": skus,
                "supplier_id": "SUP-1",
                "supplier_sku": skus,
                "lead_time_days": float(lead_time),
                "moq": 1.0,
                "pack_size": pack_size,
                "unit_price": unit_cost,
                "priority": 1,
            }
        ),
        "stock_levels": pd.DataFrame(
            {
                "sku": skus,
                "location_id": "WH1",
                "on_hand": 0.0,
                "allocated": 0.0,
                "as_of": start + pd.Timedelta(days=days),
            }
        ),
        "purchase_orders": pd.DataFrame(
            po,
            columns=["po_id", "supplier_id", "location_id", "status", "ordered_at", "expected_at"],
        ),
        "purchase_order_lines": pd.DataFrame(
            lines,
            columns=["po_id", "line_no", "sku", "qty_ordered", "qty_received", "received_at"],
        ),
        "sales_order_lines": sales,
    }
    return model.ErpSnapshot(**{k: model.coerce(k, v) for k, v in frames.items()})


# ------------------------------------------------------------------ metrics


def test_cycles_run_from_one_arrival_to_the_next() -> None:
    """Arrivals on days 0, 3, 5 make two complete cycles [0, 2] and [3, 4];
    the loss on day 2 fails the first. Days after the last arrival and before
    the first one are no cycle; a loss on an arrival day counts in the cycle
    that arrival opens."""
    received = np.array([[0.0, 5, 0, 0, 5, 0, 5, 0], [5, 0, 0, 0, 0, 0, 0, 0]])
    lost = np.array([[1.0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0, 0, 0]])
    cycles, good = cycle_counts(received, lost)
    assert cycles.tolist() == [2, 0]
    assert good.tolist() == [1, 0]

    lost_on_arrival = np.array([[0.0, 0, 0, 0, 1, 0, 0, 0], [0] * 8])
    assert cycle_counts(received, lost_on_arrival)[1].tolist() == [1, 0]


def test_service_metrics_add_up_per_class() -> None:
    t = Trajectory(
        on_hand=np.array([[4.0, 2.0], [10.0, 10.0], [0.0, 0.0]]),
        demand=np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]),
        lost=np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
        received=np.zeros((3, 2)),
        orders=np.array([1, 0, 2]),
    )
    out = service_metrics(
        t,
        unit_cost=[2.0, 1.0, 5.0],
        target=[0.9, 0.9, 0.95],
        group=["A", "C", "A"],
        order_cost=10.0,
        holding_rate=0.365,
    )
    assert set(METRIC_KEYS) <= set(out)
    assert out["fill_rate"] == pytest.approx(5 / 7)
    assert out["stockout_days"] == 2
    assert out["avg_stock_units"] == pytest.approx((14 + 12) / 2)
    assert out["avg_stock_value"] == pytest.approx((18 + 14) / 2)
    assert out["orders"] == 3
    assert out["ordering_cost"] == pytest.approx(30.0)
    assert out["holding_cost"] == pytest.approx(32 * 0.365 / 365)
    assert out["cycle_service_level"] is None  # no arrival, no cycle
    a, b, c = (out["by_class"][k] for k in ("A", "B", "C"))
    assert a["fill_rate"] == pytest.approx(5 / 7) and a["series"] == 2
    assert b["series"] == 0 and b["fill_rate"] is None and b["orders"] == 0
    assert c["fill_rate"] is None and c["avg_stock_units"] == pytest.approx(10.0)


# ------------------------------------------------------------------ baseline


def test_min_max_orders_up_to_max_when_at_or_below_min() -> None:
    """d = 2/day, L = 5 → min 10, max 10 + 2·14 = 38; MOQ 12, packs of 6."""
    rule = MinMaxBaseline.from_history([2.0, 2.0, 2.0, 0.0], 5.0, 12.0, 6.0, review_days=14)
    assert rule.minimum.tolist() == [10, 10, 10, 0]
    assert rule.maximum.tolist() == [38, 38, 38, 0]
    qty = rule.order_qty([11.0, 10.0, 30.0 - 27.0, 0.0])
    # above min: nothing; at min: 28 → 30 (packs of 6); at 3: 35 → 36; d = 0: nothing
    assert qty.tolist() == [0.0, 30.0, 36.0, 0.0]
    assert MinMaxBaseline.from_history([np.nan], 5.0, 1.0, 1.0).order_qty([-5.0]).tolist() == [0]


# ------------------------------------------------------------------ supply


def test_lead_times_are_drawn_from_receipts_then_supplier_then_declared() -> None:
    """P000 has 4 receipts (5, 5, 6, 9 days): its own distribution. P001 has
    2 (fewer than min_receipts): the supplier's deviations from the declared
    5 days, added to P001's declared 5. P002 of a supplier without receipts:
    its declared lead time."""
    snap = synthetic_shop(np.ones((2, 30)), receipts=4, receipt_days=[5, 5, 6, 9])
    lines = snap.purchase_order_lines
    keep = ~lines["po_id"].isin(["PO-1-2", "PO-1-3"])
    snap.purchase_order_lines = lines[keep].reset_index(drop=True)
    sp = snap.supplier_products
    snap.supplier_products = pd.concat(
        [sp, sp.iloc[:1].assign(sku="P002", supplier_id="SUP-2", lead_time_days=7.0)],
        ignore_index=True,
    )
    snap.suppliers = pd.concat(
        [snap.suppliers, snap.suppliers.assign(supplier_id="SUP-2")], ignore_index=True
    )
    draws = empirical_lead_times(snap, ["P000", "P001", "P002"], ["SUP-1", "SUP-1", "SUP-2"])
    assert draws.source.tolist() == ["receipts", "supplier", "declared"]
    u = np.linspace(0, 0.999, 1000)
    for i, expected in enumerate([{5, 6, 9}, {5, 6, 9}, {7}]):
        assert set(draws.draw(np.full(len(u), i), u).tolist()) == expected
    # P000: half of its receipts took 5 days
    assert np.mean(draws.draw(np.zeros(len(u), np.int64), u) == 5) == pytest.approx(0.5, abs=0.01)
    # P001 pools the supplier: 6 receipts, deviations 0, 0, 1, 4, 0, 0
    assert draws.mean()[1] == pytest.approx(5 + 5 / 6)
    # the same uniforms give the same draws: common random numbers
    same = draws.draw(np.array([0, 0]), np.array([0.3, 0.3]))
    assert same[0] == same[1]


# ------------------------------------------------------------------ accuracy


def test_seasonal_naive_scale_and_scores() -> None:
    weekly = np.tile([1.0, 2, 3, 4, 5, 6, 7], 5)[None, :]
    assert seasonal_naive_scale(weekly).tolist() == [0.0]  # a perfect weekly pattern
    assert np.isnan(seasonal_naive_scale(np.ones((1, 7)))).all()

    acc = AccuracyCollector(horizon=2, baselines=False)
    train = np.array([[0.0, 0, 0, 0, 0, 0, 0, 2, 0, 0]])  # scale 2/3
    acc.add_origin(0, train, np.array([[2.0, 2.0]]), ["smooth"])
    acc.add_origin(2, train, np.array([[1.0, 1.0]]), ["smooth"])
    demand = np.array([[1.0, 3.0, 1.0, 1.0]])
    censored = np.array([[False, False, False, True]])
    out = acc.summary(demand, censored)
    assert "statsforecast" in out["note"]
    ours = out["overall"]["replenish"]
    # origin 0: |2-1|, |2-3| → MAE 1 → 1.5 scaled; origin 2: day 3 censored, MAE 0
    assert ours["mase"] == pytest.approx((1.5 + 0.0) / 2)
    assert ours["bias"] == pytest.approx((1 - 1 + 0) / 5)
    assert out["by_demand_class"]["smooth"]["replenish"] == ours


def test_statsforecast_baselines_score_beside_ours() -> None:
    pytest.importorskip("statsforecast")
    rng = np.random.default_rng(3)
    train = rng.poisson(4.0, (5, 60)).astype(float)
    acc = AccuracyCollector(horizon=7)
    acc.add_origin(0, train, np.full((5, 7), 4.0), ["smooth"] * 5)
    out = acc.summary(rng.poisson(4.0, (5, 7)).astype(float), np.zeros((5, 7), dtype=bool))
    assert out["models"] == ["replenish", "seasonal_naive_7", "croston_sba"]
    assert "note" not in out
    for model_scores in out["overall"].values():
        assert model_scores["n"] == 5 and 0 < model_scores["mase"] < 3
    # the true mean beats last week's values on pure noise
    assert out["overall"]["replenish"]["mase"] < out["overall"]["seasonal_naive_7"]["mase"]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": date(2025, 3, 2), "end": date(2025, 3, 1)}, "is before start"),
        ({"refit_every": 0}, "refit every"),
        ({"service_level": 1.0}, "strictly between 0 and 1"),
        ({"history_days": 10}, "history_days"),
    ],
)
def test_bad_configuration_is_one_clear_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"start": date(2025, 3, 1), "end": date(2025, 3, 31), **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        BacktestConfig(**args)  # type: ignore[arg-type]


def test_window_outside_the_data_is_one_clear_error() -> None:
    snap = synthetic_shop(np.full((2, 90), 3.0))  # sales 2025-01-01 .. 2025-03-31
    with pytest.raises(ConfigurationError, match=r"after the last recorded sale \(2025-03-31\)"):
        run_backtest(snap, BacktestConfig(start=date(2025, 3, 1), end=date(2025, 4, 2)))
    with pytest.raises(ConfigurationError, match="start on 2025-01-29 or later"):
        run_backtest(snap, BacktestConfig(start=date(2025, 1, 10), end=date(2025, 3, 1)))
    empty = synthetic_shop(np.zeros((2, 90)))
    with pytest.raises(BacktestDataError, match="no sales"):
        run_backtest(empty, BacktestConfig(start=date(2025, 3, 1), end=date(2025, 3, 2)))
    jit = synthetic_shop(np.full((2, 90), 3.0))
    jit.products = jit.products.assign(replenishment_mode="jit")
    with pytest.raises(BacktestDataError, match="no series to replay"):
        run_backtest(jit, BacktestConfig(start=date(2025, 3, 1), end=date(2025, 3, 2)))


# ------------------------------------------------------------------ the replay


Steady = tuple[model.ErpSnapshot, BacktestConfig, BacktestResult]


@pytest.fixture(scope="module")
def steady() -> Steady:
    """Constant demand (1 and 2 units a day), a lead time of exactly 5 days,
    packs of 4: nothing is uncertain, and every stock position stays on the
    lattice of the reorder point (steps of d from a start and orders that
    are multiples of 2d), so no order is triggered below it. A policy that
    times its orders right never loses a sale, nor does a min/max with
    min = d·L."""
    demand = np.repeat([[1.0], [2.0]], 150, axis=1)
    snap = synthetic_shop(demand, lead_time=5, pack_size=4.0)
    start = FIRST_DAY + timedelta(days=90)
    config = BacktestConfig(
        start=start,
        end=start + timedelta(days=59),
        # continuous (s, Q) review, stated: the lattice argument above needs it
        plan_settings=PlanSettings(order_cost=2.0, review_period_days=0.0),
    )
    return snap, config, run_backtest(snap, config)


def test_certain_demand_and_lead_time_lose_no_sale(
    steady: Steady,
) -> None:
    """Timing conventions: an order placed on the morning of day t with a
    5-day lead time is sold from on day t + 5; the policy orders when the
    position reaches ROP = d·L (σ = 0, so SS = 0): the stock lasts exactly."""
    _, config, result = steady
    for replay in (result.policy, result.baseline):
        assert replay["fill_rate"] == 1.0
        assert replay["stockout_days"] == 0
        assert replay["cycle_service_level"] == 1.0
        assert replay["cycles"] > 0
        assert replay["demand_units"] == (1 + 2) * 60
    # the planner read exactly the simulated stock and open orders every day
    assert result.parameters["planner_state_mismatch_days"] == 0
    s = result.series.set_index("sku")
    assert s["reorder_point"].tolist() == pytest.approx([5.0, 10.0])
    assert s["safety_stock"].tolist() == pytest.approx([0.0, 0.0])
    assert s["baseline_min"].tolist() == pytest.approx([5.0, 10.0])
    assert s["baseline_max"].tolist() == pytest.approx([19.0, 38.0])
    # initial stock ROP + Q/2, Q the EOQ sqrt(2·365·d·2 / (0.25·20)) capped at
    # max_cycle_cover_days (14) of demand, in packs of 4
    d = np.array([1.0, 2.0])
    q = np.ceil(np.minimum(np.sqrt(2 * 365 * d * 2 / 5.0), 14 * d) / 4) * 4
    assert q.tolist() == [16.0, 28.0]
    assert s["initial_stock"].tolist() == pytest.approx((np.array([5, 10]) + q / 2).tolist())
    orders = result.orders
    assert (orders["lead_time_days"] == 5).all()
    placed = pd.to_datetime(orders["placed"])
    assert placed.min() >= pd.Timestamp(config.start)
    assert placed.max() <= pd.Timestamp(config.end)
    policy = orders[orders["replay"] == "policy"]
    # the policy orders exactly at its reorder point, at least the EOQ
    assert (policy["position"] == policy["sku"].map(s["reorder_point"])).all()
    assert (policy["qty"] >= policy["sku"].map(s["eoq"])).all()
    baseline = orders[orders["replay"] == "baseline"]
    assert (baseline["position"] + baseline["qty"] >= baseline["sku"].map(s["baseline_max"])).all()


def test_json_document_has_the_documented_keys(
    steady: Steady,
) -> None:
    _, config, result = steady
    doc = json.loads(to_json(result))
    assert set(doc) == {"policy", "baseline", "equal_service", "forecast_accuracy", "parameters"}
    for replay in ("policy", "baseline"):
        assert set(doc[replay]) == {*METRIC_KEYS, "by_class"}
        assert set(doc[replay]["by_class"]) == {"A", "B", "C"}
        for block in doc[replay]["by_class"].values():
            assert set(block) == set(METRIC_KEYS)
    acc = doc["forecast_accuracy"]
    assert {"horizon_days", "origins", "models", "overall", "by_demand_class"} <= set(acc)
    assert acc["origins"] == 9  # days 0, 7, …, 56 of a 60-day window
    assert {"mase", "bias", "n"} <= set(acc["overall"]["replenish"])
    params = doc["parameters"]
    assert params["start"] == config.start.isoformat() and params["days"] == 60
    assert params["series"] == 2 and params["refit_every"] == 7


def test_table_shows_policy_beside_baseline(
    steady: Steady,
) -> None:
    text = format_table(steady[2])
    assert "policy" in text and "min/max" in text
    for label in ("cycle service level", "fill rate", "avg stock value", "Class A", "MASE"):
        assert label in text


def test_service_level_flag_sets_every_target(
    steady: Steady,
) -> None:
    snap, config, _ = steady
    snap = model.ErpSnapshot(**snap.tables())
    snap.products = snap.products.assign(service_level=np.nan)
    config = dataclasses.replace(config, end=config.start + timedelta(days=9), service_level=0.8)
    result = run_backtest(snap, config)
    assert result.series["service_level"].tolist() == [0.8, 0.8]
    assert result.parameters["service_level"] == 0.8
    assert "every SKU 80.0%" in format_table(result)
