"""The plan's defaults: the nightly run is a daily periodic review, and an
order never buys more than ``max_cycle_cover_days`` of demand."""

from __future__ import annotations

import math

import pytest

from replenish.policy import plan as _plan
from tests.unit.test_plan import AS_OF, _forecast, _lead_times, _row, _snapshot


def test_nightly_run_is_a_daily_periodic_review() -> None:
    """R = 1: the protection interval is L + 1 day and orders go up to S =
    μ(L+1) + SS (Silver, Pyke & Peterson 2017, ch. 6: (R, s, S) with R = 1)."""
    a = _row(_plan.build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF), "A")
    assert a["review_period"] == 1.0
    assert a["policy"].startswith("periodic")
    assert a["protection_days"] == pytest.approx(a["lead_time_mean"] + 1.0)
    assert a["order_up_to"] == pytest.approx(a["protection_demand_mean"] + a["safety_stock"])


def test_order_quantity_is_capped_at_cover_days() -> None:
    """EOQ = sqrt(2DK/h) can be months of demand for a slow item; the cap
    keeps one order to max_cycle_cover_days of demand, and both figures
    stay visible."""
    settings = _plan.PlanSettings(max_cycle_cover_days=10.0, order_cost=500.0)
    a = _row(_plan.build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF, settings), "A")
    d = a["annual_demand"] / 365.0
    assert a["eoq_uncapped"] > 10.0 * d  # the EOQ would be more than 10 days
    assert a["eoq"] == pytest.approx(10.0 * d)
    uncapped = _plan.PlanSettings(max_cycle_cover_days=1e9, order_cost=500.0)
    b = _row(_plan.build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF, uncapped), "A")
    assert b["eoq"] == pytest.approx(b["eoq_uncapped"]) and b["eoq"] > a["eoq"]
    assert not math.isnan(a["eoq"])


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_cycle_cover_days"):
        _plan.PlanSettings(max_cycle_cover_days=0)
