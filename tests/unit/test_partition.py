"""Partitions of SKUs: stable assignment, small slices, and a merged result
identical to the unpartitioned one on the demo shop (replenish.partition)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest

from replenish.demo import generate_demo
from replenish.forecast import Forecast, daily_demand, forecast_demand
from replenish.model import ErpSnapshot
from replenish.partition import (
    FORECAST_TABLES,
    MIN_SERIES_TO_PARTITION,
    PLAN_TABLES,
    SERIES_PER_PARTITION,
    Partitioner,
    default_partitions,
    merge_forecasts,
    merge_plans,
    shared_plan_inputs,
)
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import abc_by_sku, build_plans, sku_values

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def shop() -> ErpSnapshot:
    return generate_demo(AS_OF, seed=11, n_skus=200, days=730)


def _forecast(snapshot: ErpSnapshot) -> Forecast:
    history = daily_demand(
        snapshot.sales_order_lines,
        AS_OF,
        history_days=730,
        stock_history=snapshot.stock_history,
        returns=snapshot.returns,
    )
    return forecast_demand(history, promotions=snapshot.promotions, as_of=AS_OF)


@pytest.fixture(scope="module")
def whole(shop: ErpSnapshot) -> tuple[Forecast, pd.DataFrame]:
    """The unpartitioned forecast and plans: the reference."""
    fc = _forecast(shop)
    lead_times = learn_lead_times(
        shop.purchase_orders, shop.purchase_order_lines, shop.supplier_products, shop.suppliers
    )
    return fc, build_plans(shop, fc, lead_times, AS_OF)


def _partitioned(shop: ErpSnapshot, n: int) -> tuple[Forecast, pd.DataFrame, list[int]]:
    """What tasks.plan.forecast_and_plan does, without Prefect."""
    splitter = Partitioner.for_snapshot(shop, n)
    forecasts = [_forecast(s) for s in splitter.split_snapshot(shop, FORECAST_TABLES)]
    plan_slices = splitter.split_snapshot(shop, PLAN_TABLES)
    shared = shared_plan_inputs(shop)
    lead_times = splitter.split(shared.lead_times)
    values = [
        sku_values(s, f, lt, AS_OF)
        for s, f, lt in zip(plan_slices, forecasts, lead_times, strict=True)
    ]
    sku_abc = abc_by_sku(pd.concat(values))
    plans = [
        build_plans(s, f, lt, AS_OF, sku_abc=sku_abc, on_time=shared.on_time)
        for s, f, lt in zip(plan_slices, forecasts, lead_times, strict=True)
    ]
    return merge_forecasts(forecasts), merge_plans(plans), [len(p) for p in plans]


@pytest.mark.parametrize("n", [2, 3, 7])
def test_partitioned_forecast_and_plans_equal_the_whole_run(
    shop: ErpSnapshot, whole: tuple[Forecast, pd.DataFrame], n: int
) -> None:
    fc, plans = whole
    merged_fc, merged_plans, sizes = _partitioned(shop, n)
    assert len(sizes) == n and sum(sizes) == len(plans)
    assert sum(size > 0 for size in sizes) >= 2  # really split
    pd.testing.assert_frame_equal(merged_fc.frame, fc.frame, check_exact=True)
    np.testing.assert_array_equal(merged_fc.path, fc.path)
    assert merged_fc.start == fc.start
    pd.testing.assert_frame_equal(merged_plans, plans, check_exact=True)
    assert plans["order_qty"].gt(0).sum() > 10  # a plan with orders, not a trivial one


def test_the_forecast_does_not_depend_on_the_blocks_a_series_is_fitted_in(
    shop: ErpSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forecast fits series in blocks (8,192 rows; 16 here, so that the
    demo shop spans many): whether an intermittent series is fitted event by
    event or day by day must depend on the series alone, not on the block it
    shares with others, or partitions would change the blocks and the numbers
    in their last digits (seen at 20,000 series before the fix)."""
    import replenish.forecast as forecast_module

    monkeypatch.setattr(forecast_module, "_BLOCK", 16)
    whole_fc = _forecast(shop)
    assert (whole_fc.frame["method"].isin(["croston_sba", "tsb"])).sum() > 2 * 16
    splitter = Partitioner.for_snapshot(shop, 3)
    merged = merge_forecasts([_forecast(s) for s in splitter.split_snapshot(shop, FORECAST_TABLES)])
    pd.testing.assert_frame_equal(merged.frame, whole_fc.frame, check_exact=True)
    np.testing.assert_array_equal(merged.path, whole_fc.path)


def test_without_the_global_inputs_the_partitions_would_differ(
    shop: ErpSnapshot, whole: tuple[Forecast, pd.DataFrame]
) -> None:
    """Why the pre-pass exists: ABC classes, pooled lead times and on-time
    rates computed per partition are not those of the whole shop."""
    _, plans = whole
    splitter = Partitioner.for_snapshot(shop, 3)
    naive = []
    for fs, ps in zip(
        splitter.split_snapshot(shop, FORECAST_TABLES),
        splitter.split_snapshot(shop, PLAN_TABLES),
        strict=True,
    ):
        lead_times = learn_lead_times(
            ps.purchase_orders, ps.purchase_order_lines, ps.supplier_products, ps.suppliers
        )
        naive.append(build_plans(ps, _forecast(fs), lead_times, AS_OF))
    merged = merge_plans(naive)
    assert (merged["abc_class"] != plans["abc_class"]).any()
    assert (merged["supplier_on_time_rate"] != plans["supplier_on_time_rate"]).any()


def test_promoted_skus_stay_together_for_the_pooled_uplift(
    shop: ErpSnapshot, whole: tuple[Forecast, pd.DataFrame]
) -> None:
    fc, _ = whole
    promoted = set(shop.promotions["sku"].dropna())
    splitter = Partitioner.for_snapshot(shop, 4)
    assert splitter.together == frozenset(promoted)
    assert set(splitter.of(shop.promotions["sku"])) == {0}
    # spread by hash alone, the promoted SKUs' forecasts change
    spread = Partitioner(4)
    assert len(set(spread.of(shop.promotions["sku"]))) > 1
    merged = merge_forecasts([_forecast(s) for s in spread.split_snapshot(shop, FORECAST_TABLES)])
    assert not np.array_equal(merged.path, fc.path)


def test_every_row_of_a_sku_lands_in_one_partition_in_order(shop: ErpSnapshot) -> None:
    splitter = Partitioner.for_snapshot(shop, 5)
    sales = shop.sales_order_lines
    pieces = splitter.split(sales)
    assert sum(len(p) for p in pieces) == len(sales)
    seen: dict[str, int] = {}
    for k, piece in enumerate(pieces):
        for sku in piece["sku"].unique():
            assert seen.setdefault(sku, k) == k, sku
        # row order within a partition is the order of the input
        original = sales[sales["sku"].isin(piece["sku"].unique())].reset_index(drop=True)
        pd.testing.assert_frame_equal(piece, original)
    stock_parts = splitter.split(shop.stock_levels)
    for k, piece in enumerate(stock_parts):
        assert all(seen.get(s, k) == k for s in piece["sku"])


def test_the_assignment_is_stable_across_processes() -> None:
    """CRC-32, not hash(): another interpreter with another hash seed agrees."""
    skus = [f"SKU-{i:05d}" for i in range(300)] + ["é-ü-ß", ""]
    mine = Partitioner(7).of(pd.Series(skus)).tolist()
    code = (
        "import sys, pandas as pd\n"
        "from replenish.partition import Partitioner\n"
        "skus = sys.stdin.read().split('\\n')\n"
        "print(','.join(map(str, Partitioner(7).of(pd.Series(skus)))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input="\n".join(skus),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert [int(x) for x in out.stdout.strip().split(",")] == mine
    assert len(set(mine)) == 7  # and it spreads


def test_slices_hold_only_what_their_step_reads(shop: ErpSnapshot) -> None:
    splitter = Partitioner.for_snapshot(shop, 3)
    forecast_slices = splitter.split_snapshot(shop, FORECAST_TABLES)
    plan_slices = splitter.split_snapshot(shop, PLAN_TABLES)
    for f in forecast_slices:
        assert f.products.empty and f.purchase_order_lines.empty and f.suppliers.empty
    assert sum(len(f.sales_order_lines) for f in forecast_slices) == len(shop.sales_order_lines)
    status = shop.sales_order_lines["status"].str.strip().str.lower()
    n_open = int((status == "open").sum())
    assert 0 < n_open < len(shop.sales_order_lines)
    assert sum(len(p.sales_order_lines) for p in plan_slices) == n_open
    for p in plan_slices:
        assert p.stock_history.empty and p.returns.empty and p.promotions.empty
        pd.testing.assert_frame_equal(p.suppliers, shop.suppliers)
        # only the purchase orders the partition's lines refer to
        assert set(p.purchase_orders["po_id"]) == set(p.purchase_order_lines["po_id"])
    # an order with lines of several SKUs is in each of their partitions
    referenced = set(shop.purchase_order_lines["po_id"])
    assert set().union(*(set(p.purchase_orders["po_id"]) for p in plan_slices)) == referenced
    assert sum(len(p.purchase_orders) for p in plan_slices) < 3 * len(shop.purchase_orders)


def test_one_partition_is_the_whole_snapshot(shop: ErpSnapshot) -> None:
    (only,) = Partitioner(1).split_snapshot(shop)
    for name, frame in shop.tables().items():
        pd.testing.assert_frame_equal(getattr(only, name), frame.reset_index(drop=True))


def test_default_partitions_by_size() -> None:
    assert default_partitions(0) == 1
    assert default_partitions(MIN_SERIES_TO_PARTITION - 1, workers=4) == 1
    assert default_partitions(MIN_SERIES_TO_PARTITION) == 1
    assert default_partitions(MIN_SERIES_TO_PARTITION, workers=3) == 3
    assert default_partitions(4 * SERIES_PER_PARTITION + 1) == 5
    assert default_partitions(100_000, workers=4) == 4


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="partitions must be an integer >= 1"):
        Partitioner(0)
    with pytest.raises(ValueError, match="unknown snapshot tables"):
        Partitioner(2).split_snapshot(ErpSnapshot(), ["salez"])
    with pytest.raises(ValueError, match=r"SKU-1.*partitions must not share"):
        abc_by_sku(pd.Series([1.0, 2.0], index=["SKU-1", "SKU-1"]))
    with pytest.raises(ValueError, match="at least one"):
        merge_plans([])
    a = Forecast.flat(
        pd.DataFrame({"sku": ["A"], "location_id": ["L"], "demand_mean": [1.0]}), AS_OF
    )
    b = Forecast.flat(
        pd.DataFrame({"sku": ["B"], "location_id": ["L"], "demand_mean": [1.0]}), date(2026, 1, 1)
    )
    with pytest.raises(ValueError, match="partition forecasts differ"):
        merge_forecasts([a, b])


def test_build_plans_names_a_sku_missing_from_sku_abc(
    shop: ErpSnapshot, whole: tuple[Forecast, pd.DataFrame]
) -> None:
    fc, plans = whole
    lead_times = learn_lead_times(
        shop.purchase_orders, shop.purchase_order_lines, shop.supplier_products, shop.suppliers
    )
    values = sku_values(shop, fc, lead_times, AS_OF)
    sku_abc = abc_by_sku(values)
    # the classes of the whole computed outside give the same plans
    again = build_plans(shop, fc, lead_times, AS_OF, sku_abc=sku_abc)
    pd.testing.assert_frame_equal(again, plans, check_exact=True)
    first = str(sku_abc.index[0])
    with pytest.raises(ValueError, match=f"no ABC class for sku '{first}'"):
        build_plans(shop, fc, lead_times, AS_OF, sku_abc=sku_abc.iloc[1:])
