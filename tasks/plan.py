"""Forecast and plan: pure computation over the clean snapshot."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import task

from replenish.forecast import Forecast, forecast_demand
from replenish.forecast.demand import daily_demand
from replenish.model import ErpSnapshot
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import PlanSettings, build_plans
from tasks.common import NO_CACHE_OPTIONS


@task(name="forecast", **NO_CACHE_OPTIONS)
def forecast(snapshot: ErpSnapshot, as_of: date, history_days: int) -> Forecast:
    """Daily demand per SKU × location: per-series statistics and the expected
    demand of each of the next 120 days from ``as_of`` (weekday and yearly
    profile, trend, planned promotions; returns read for ``return_rate``)."""
    history = daily_demand(
        snapshot.sales_order_lines,
        as_of,
        history_days=history_days,
        stock_history=snapshot.stock_history,
        returns=snapshot.returns,
    )
    return forecast_demand(history, promotions=snapshot.promotions, as_of=as_of)


@task(name="plan", **NO_CACHE_OPTIONS)
def plan(
    snapshot: ErpSnapshot, demand: Forecast, as_of: date, plan_settings: PlanSettings
) -> pd.DataFrame:
    """Inventory position, lead time, safety stock, reorder point, quantities."""
    lead_times = learn_lead_times(
        snapshot.purchase_orders,
        snapshot.purchase_order_lines,
        snapshot.supplier_products,
        snapshot.suppliers,
    )
    return build_plans(snapshot, demand, lead_times, as_of, plan_settings)
