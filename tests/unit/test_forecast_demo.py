"""Forecast accuracy on the demo shop, whose true expected demand is known."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from replenish.demo import DemoShop, simulate_demo
from replenish.forecast import Forecast, daily_demand, forecast_demand

AS_OF = date(2025, 1, 1)
HOLDOUT = 56


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return simulate_demo(AS_OF)


def _truth_columns(shop: DemoShop, keys: pd.DataFrame) -> np.ndarray:
    """Column of ``truth.expected`` of each forecast row."""
    items = shop.truth.items.reset_index()[["sku", "location_id", "index"]]
    at = keys.merge(items, on=["sku", "location_id"], how="left")["index"]
    assert at.notna().all()
    return at.to_numpy(dtype=np.int64)


def _forecast(shop: DemoShop, as_of: date) -> Forecast:
    s = shop.snapshot
    days = 730 - (AS_OF - as_of).days
    history = daily_demand(s.sales_order_lines, as_of, days, s.stock_history, returns=s.returns)
    return forecast_demand(history, promotions=s.promotions, as_of=as_of)


def test_accuracy_against_the_true_expected_demand(shop: DemoShop) -> None:
    """Forecast made 8 weeks before the end of the demo history (the run-up
    to Christmas), scored against the generator's expected demand of those 8
    weeks: the weighted absolute percentage error (WAPE = Σ|f − E| / ΣE) and
    the mean over series of MAE / in-sample naive MAE (MASE) beat the naive
    forecasts (mean of the last 28 days; last week repeated) clearly.
    Measured: WAPE 0.20 vs 0.34 and 0.51; MASE 0.41 vs 0.60 and 1.13."""
    cut = AS_OF - timedelta(days=HOLDOUT)
    s = shop.snapshot
    history = daily_demand(s.sales_order_lines, cut, 730 - HOLDOUT, s.stock_history)
    fc = forecast_demand(history, promotions=s.promotions, as_of=cut)
    truth = shop.truth.expected[-HOLDOUT:, _truth_columns(shop, history.keys)].T
    q, valid = history.qty, ~history.censored
    recent = np.where(valid[:, -28:], q[:, -28:], 0).sum(1) / np.maximum(valid[:, -28:].sum(1), 1)
    candidates = {
        "ours": fc.path[:, :HOLDOUT],
        "mean_28d": np.repeat(recent[:, None], HOLDOUT, axis=1),
        "last_week": np.tile(q[:, -7:], (1, HOLDOUT // 7)),
    }
    scale = np.abs(np.diff(q, axis=1)).mean(axis=1)
    wape = {k: np.abs(v - truth).sum() / truth.sum() for k, v in candidates.items()}
    mase = {k: np.mean(np.abs(v - truth).mean(axis=1) / scale) for k, v in candidates.items()}
    assert wape["ours"] < 0.75 * min(wape["mean_28d"], wape["last_week"])
    assert mase["ours"] < 0.85 * min(mase["mean_28d"], mase["last_week"])
    assert np.isfinite(fc.path).all() and (fc.path >= 0).all()
    assert not fc.frame["fallback"].any()


def test_yearly_profile_is_visible_for_seasonal_categories(shop: DemoShop) -> None:
    """Forecast made on 1 October from 21 months of history: the Christmas
    peak of Gifts & Decor (true ×2 mid-December vs early October) and the
    winter peak of Textiles (true ×1.6 mid-January) are in the path; Computer
    Accessories' Christmas closure is not a peak. Measured: 1.95, 1.62, 0.97."""
    as_of = date(2024, 10, 1)
    fc = _forecast(shop, as_of)
    items = shop.truth.items.iloc[_truth_columns(shop, fc.frame[["sku", "location_id"]])]
    yearly = (fc.frame["seasonality"] == "weekday+yearly").to_numpy()
    category = items["category"].to_numpy()
    dates = pd.date_range(as_of, periods=fc.horizon, freq="D")

    def ratio(cat: str, peak: tuple[str, str]) -> float:
        rows = yearly & (category == cat)
        assert rows.sum() >= 5
        window = (dates >= peak[0]) & (dates <= peak[1])
        october = dates < "2024-10-15"
        return float(
            fc.path[rows][:, window].sum() / fc.path[rows][:, october].sum() * 14 / window.sum()
        )

    assert ratio("Gifts & Decor", ("2024-12-05", "2024-12-18")) > 1.5
    assert ratio("Textiles", ("2025-01-08", "2025-01-21")) > 1.25
    assert ratio("Computer Accessories", ("2024-12-05", "2024-12-18")) < 1.3


def test_planned_promotions_raise_the_path_by_the_learned_uplift(shop: DemoShop) -> None:
    """The demo re-runs two past promotions just after as_of with the same
    true uplift (2–3×). Against the same forecast without the planned rows,
    the path on those 7 days rises by the learned uplift, within 25 % of the
    truth; every other day is unchanged."""
    s = shop.snapshot
    history = daily_demand(s.sales_order_lines, AS_OF, 730, s.stock_history)
    planned = s.promotions["start_date"] >= pd.Timestamp(AS_OF)
    with_plan = forecast_demand(history, promotions=s.promotions, as_of=AS_OF)
    past_only = forecast_demand(history, promotions=s.promotions[~planned], as_of=AS_OF)
    truth = shop.truth.promotions
    future = truth[truth["start"] >= pd.Timestamp(AS_OF)]
    assert len(future) == 2
    frame = with_plan.frame
    touched = np.zeros(with_plan.path.shape, dtype=bool)
    for _, promo in future.iterrows():
        rows = np.flatnonzero((frame["sku"] == promo["sku"]).to_numpy())
        first = (promo["start"] - pd.Timestamp(AS_OF)).days
        days = slice(first, first + 7)
        touched[rows, days] = True
        lift = with_plan.path[rows, days] / past_only.path[rows, days]
        assert lift == pytest.approx(np.full(lift.shape, promo["uplift"]), rel=0.25)
        assert (frame.loc[rows, "promo_days_ahead"] == 7).all()
        assert frame.loc[rows, "promo_uplift"].to_numpy() == pytest.approx(lift[:, 0])
    np.testing.assert_allclose(with_plan.path[~touched], past_only.path[~touched])
