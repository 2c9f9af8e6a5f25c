"""The plan's defaults: the nightly run is a daily periodic review, and an
order never buys more than ``max_cycle_cover_days`` of demand."""

from __future__ import annotations

import math
from statistics import NormalDist

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


def test_trigger_level_accounts_for_the_undershoot() -> None:
    """(R, s, Q) regime: A@W1 orders 14 days at a time (EOQ capped) while a
    review (R = 1) sees μ_R = 10, so IP is triggered below
    s = μ_L + E[U] + z·sqrt(σ_L² + Var U) (Silver, Pyke & Thomas 2017, ch. 7):

    * per review: μ_R = 10, σ_R² = 1·2² = 4, κ₃ = 2·4²/10 − 4 = −0.8,
      E[D³] = 10³ + 3·10·4 − 0.8 = 1119.2;
    * E[U] = (10² + 4)/(2·10) = 5.2, Var U = 1119.2/30 − 5.2² = 10.2667;
    * the smoothed level's error is common to the interval's days (α 0.1:
      factor 1 + h·α/(2 − α), formulas.cumulative_error_factor): over L = 4
      days 1.2105, over R + L = 5 days 1.2632;
    * σ_L² = L·σd²·1.2105 + d²·σL² = 19.368 + 100 = 119.368, μ_L = 40,
      z = Φ⁻¹(0.95);
    * s = 40 + 5.2 + 1.6449·sqrt(129.635) = 45.2 + 18.728 = 63.93, below
      S = 50 + 1.6449·sqrt(5·4·1.2632 + 100) = 68.41 (which keeps its meaning)."""
    a = _row(_plan.build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF), "A")
    z = NormalDist().inv_cdf(0.95)
    e_u = (10.0**2 + 4.0) / (2 * 10.0)
    var_u = (10.0**3 + 3 * 10.0 * 4.0 + (2 * 4.0**2 / 10.0 - 4.0)) / (3 * 10.0) - e_u**2
    assert e_u == pytest.approx(5.2) and var_u == pytest.approx(10.26667, abs=1e-4)
    f_l, f_t = 1 + 4 * 0.1 / 1.9, 1 + 5 * 0.1 / 1.9
    s = 40.0 + e_u + z * math.sqrt(16.0 * f_l + 100.0 + var_u)
    assert s == pytest.approx(63.93, abs=0.01)
    assert a["undershoot"] == pytest.approx(e_u)
    assert a["trigger_level"] == pytest.approx(s)
    assert a["order_up_to"] == pytest.approx(50.0 + z * math.sqrt(20.0 * f_t + 100.0))
    assert a["order_up_to"] == pytest.approx(68.41, abs=0.01)
    assert a["reorder_point"] == pytest.approx(40.0 + a["safety_stock"])
    assert a["trigger_level"] < a["order_up_to"]
    assert "the trigger level s = " in a["reason"]
    assert "order-up-to level" not in a["reason"]


def test_trigger_level_is_s_in_a_plain_periodic_review() -> None:
    """When an order covers no more than a review period's demand the row is
    a plain (R, S) system: trigger_level = order_up_to, undershoot 0. Here
    R = 36 days: μ_R = 360 = 30 packs of 12 > EOQ (capped at 300), so Q = μ_R."""
    settings = _plan.PlanSettings(review_period_days=36.0)
    a = _row(_plan.build_plans(_snapshot(), _forecast(), _lead_times(), AS_OF, settings), "A")
    assert a["undershoot"] == 0.0
    assert a["cycle_qty"] == pytest.approx(360.0)
    assert a["trigger_level"] == pytest.approx(a["order_up_to"])
    assert "order-up-to level" in a["reason"] and "trigger level" not in a["reason"]
