"""Demand history, Syntetos–Boylan classification and the forecasting methods."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

import replenish.forecast as forecast_pkg
from replenish.forecast import FORECAST_COLUMNS, daily_demand, forecast_demand
from replenish.forecast.classify import syntetos_boylan
from replenish.forecast.demand import DemandHistory
from replenish.forecast.methods import croston_sba, ses_weekday, weekday_profile
from replenish.model import coerce

AS_OF = date(2024, 3, 1)


def _sales(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    """rows: (sku, location_id, ordered_at, qty, status)."""
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(rows))],
            "line_no": 1,
            "sku": [r[0] for r in rows],
            "location_id": [r[1] for r in rows],
            "channel": "web",
            "qty": [r[3] for r in rows],
            "ordered_at": [r[2] for r in rows],
            "status": [r[4] for r in rows],
        }
    )
    return coerce("sales_order_lines", frame)


def _history(qty: np.ndarray, censored: np.ndarray | None = None) -> DemandHistory:
    n, t = qty.shape
    return DemandHistory(
        keys=pd.DataFrame(
            {
                "sku": pd.array([f"S{i:03d}" for i in range(n)], dtype="string"),
                "location_id": pd.array(["W1"] * n, dtype="string"),
            }
        ),
        dates=pd.date_range("2022-01-03", periods=t, freq="D"),  # a Monday
        qty=qty.astype(np.float64),
        censored=np.zeros(qty.shape, bool) if censored is None else censored,
    )


# ------------------------------------------------------------- daily_demand


def test_daily_demand_sums_per_day_and_excludes_cancelled_and_future() -> None:
    sales = _sales(
        [
            ("B", "W1", "2024-02-28 09:00", 2, "shipped"),
            ("B", "W1", "2024-02-28 17:30", 3, "open"),  # same day: summed
            ("B", "W1", "2024-02-29 10:00", 7, "cancelled"),  # not demand
            ("B", "W1", "2024-02-29 11:00", 4, "Canceled"),  # not demand either
            ("B", "W1", "2024-03-01 08:00", 9, "open"),  # as_of: excluded
            ("A", "W2", "2024-02-26 12:00", 1, "shipped"),
            ("A", "W2", "2024-02-20 12:00", 5, "shipped"),  # before the window
            ("A", "W1", "2024-02-27 12:00", 0, "shipped"),  # qty 0: no line
        ]
    )
    before = sales.copy()
    h = daily_demand(sales, AS_OF, history_days=5)
    pd.testing.assert_frame_equal(sales, before)  # input not mutated
    assert h.keys.to_dict("list") == {"sku": ["A", "B"], "location_id": ["W2", "W1"]}
    assert list(h.dates.strftime("%m-%d")) == ["02-25", "02-26", "02-27", "02-28", "02-29"]
    np.testing.assert_array_equal(h.qty, [[0, 1, 0, 0, 0], [0, 0, 0, 5, 0]])
    assert h.qty.dtype == np.float64
    assert not h.censored.any()


def test_daily_demand_marks_censored_days_from_stock_history() -> None:
    sales = _sales([("A", "W1", "2024-02-27", 1, "shipped")])
    stock_history = coerce(
        "stock_history",
        pd.DataFrame(
            {
                "sku": ["A", "A", "A", "Z"],
                "location_id": ["W1", "W1", "W1", "W1"],
                "date": ["2024-02-26", "2024-02-28", "2024-02-29", "2024-02-28"],
                "on_hand": [0.0, 3.0, -1.0, 0.0],
            }
        ),
    )
    h = daily_demand(sales, AS_OF, history_days=5, stock_history=stock_history)
    np.testing.assert_array_equal(h.censored, [[False, True, False, False, True]])


def test_daily_demand_without_sales() -> None:
    h = daily_demand(_sales([]), AS_OF, history_days=7)
    assert h.qty.shape == (0, 7)
    assert list(h.keys.columns) == ["sku", "location_id"]
    assert forecast_demand(h).columns.tolist() == FORECAST_COLUMNS


# ------------------------------------------------------------ classification


def _constructed() -> np.ndarray:
    days = 84
    t = np.arange(days)
    smooth = np.full(days, 5.0)
    erratic = np.where(t % 2 == 0, 1.0, 20.0)
    intermittent = np.where(t % 3 == 0, 5.0, 0.0)
    lumpy = np.where(t % 3 == 0, np.where(t % 6 == 0, 1.0, 20.0), 0.0)
    none = np.zeros(days)
    return np.vstack([smooth, erratic, intermittent, lumpy, none])


def test_syntetos_boylan_classes_of_constructed_series() -> None:
    """ADI / CV² of the constructed series: smooth (1, 0), erratic (1, 0.81),
    intermittent (3, 0), lumpy (3, 0.81), none (no demand)."""
    cls = syntetos_boylan(_constructed(), None)
    assert cls["demand_class"].tolist() == ["smooth", "erratic", "intermittent", "lumpy", "none"]
    np.testing.assert_allclose(cls["adi"].to_numpy()[:4], [1, 1, 3, 3])
    cv2_sizes_1_20 = np.var([1, 20]) / np.mean([1, 20]) ** 2
    np.testing.assert_allclose(cls["cv2"].to_numpy()[:4], [0, cv2_sizes_1_20, 0, cv2_sizes_1_20])
    assert np.isnan(cls.loc[4, "adi"]) and np.isnan(cls.loc[4, "cv2"])


def test_syntetos_boylan_ignores_censored_days() -> None:
    """A daily seller whose zeros all fall on stock-out days stays smooth."""
    qty = np.tile([5.0, 5.0, 0.0], 30)[None, :]
    censored = qty == 0
    assert syntetos_boylan(qty, None)["demand_class"][0] == "intermittent"
    assert syntetos_boylan(qty, censored)["demand_class"][0] == "smooth"
    all_censored = syntetos_boylan(qty, np.ones_like(censored))
    assert all_censored["demand_class"][0] == "none"


# ------------------------------------------------------------------- methods


def test_croston_sba_hand_computed() -> None:
    """y = [0, 0, 4, 0, 0, 0, 2, 0, 6], α = 0.5.

    Demands at valid days 3, 7, 9 (1-based), sizes 4, 2, 6, intervals 3, 4, 2.
    Initialise at the first demand: z = 4, p = 3.
    Day 7: z = 4 + 0.5·(2 − 4) = 3,   p = 3 + 0.5·(4 − 3) = 3.5.
    Day 9: z = 3 + 0.5·(6 − 3) = 4.5, p = 3.5 + 0.5·(2 − 3.5) = 2.75.
    SBA forecast: (1 − 0.5/2) · 4.5 / 2.75 = 0.75 · 1.63636 = 1.227273.

    One-step-ahead forecasts after the first demand: days 4–7 use
    0.75·4/3 = 1, days 8–9 use 0.75·3/3.5 = 0.642857. Residuals:
    −1, −1, −1, +1, −0.642857, 5.357143 → sum of squares 33.112245 over
    6 days → RMSE sqrt(5.518707) = 2.349193.
    """
    y = np.array([[0, 0, 4, 0, 0, 0, 2, 0, 6]], dtype=float)
    res = croston_sba(y, np.ones_like(y, bool), alpha=0.5)
    assert res.mean[0] == pytest.approx(1.227273, abs=1e-6)
    assert res.std[0] == pytest.approx(2.349193, abs=1e-6)


def test_croston_sba_skips_censored_days() -> None:
    """Censored days are removed from the time axis: the same series with
    extra censored zeros inserted forecasts exactly the same."""
    y = np.array([[0, 0, 4, 0, 0, 0, 2, 0, 6]], dtype=float)
    padded = np.array([[0, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 6]], dtype=float)
    valid = np.ones_like(padded, bool)
    valid[0, [2, 5, 6]] = False
    a = croston_sba(y, np.ones_like(y, bool), alpha=0.5)
    b = croston_sba(padded, valid, alpha=0.5)
    assert b.mean[0] == pytest.approx(a.mean[0])
    assert b.std[0] == pytest.approx(a.std[0])


def test_croston_sba_edge_cases() -> None:
    """Row 0 all zero → 0 / 0; row 1 one demand of 6 at valid position 4 →
    (1 − 0.05)·6/4 = 1.425; row 2 its only demand on the last day → no
    residual, std falls back to the std of the daily demand; row 3 all
    censored → NaN / NaN."""
    y = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 6, 0, 0],
            [0, 0, 0, 0, 0, 6],
            [1, 0, 2, 0, 0, 0],
        ],
        dtype=float,
    )
    valid = np.ones_like(y, bool)
    valid[3] = False
    res = croston_sba(y, valid, alpha=0.1)
    assert res.mean[0] == 0 and res.std[0] == 0
    assert res.mean[1] == pytest.approx(0.95 * 6 / 4)
    assert res.std[1] > 0
    assert res.mean[2] == pytest.approx(0.95 * 6 / 6)
    assert res.std[2] == pytest.approx(np.std(y[2]))
    assert np.isnan(res.mean[3]) and np.isnan(res.std[3])


def test_ses_on_constant_series_returns_the_constant_with_zero_std() -> None:
    y = np.full((2, 70), 7.5)
    y[1] = 0.0
    res = ses_weekday(y, np.ones_like(y, bool))
    np.testing.assert_allclose(res.mean, [7.5, 0.0])
    np.testing.assert_allclose(res.std, [0.0, 0.0], atol=1e-12)


def test_ses_weekday_profile_averages_out_over_the_week() -> None:
    """Weekdays sell 10, weekends 3: the weekday profile explains the pattern
    fully, so residuals are 0 and the mean is the weekly average 8/day."""
    days = np.arange(140)
    y = np.where(days % 7 < 5, 10.0, 3.0)[None, :]
    valid = np.ones_like(y, bool)
    res = ses_weekday(y, valid, weekday=days % 7)
    assert res.mean[0] == pytest.approx(8.0)
    assert res.std[0] == pytest.approx(0.0, abs=1e-9)
    profile = weekday_profile(y, valid, days % 7)
    np.testing.assert_allclose(profile[0], [1.25] * 5 + [0.375] * 2)


def test_ses_tracks_a_level_shift() -> None:
    """After a step from 10 to 20 the level closes the gap by a factor
    (1 − α) a day: ℓ = 20 − 10 · 0.9⁹⁸ (14 weeks each side, so every weekday
    index is exactly 1)."""
    y = np.concatenate([np.full(98, 10.0), np.full(98, 20.0)])[None, :]
    res = ses_weekday(y, np.ones_like(y, bool), alpha=0.1)
    assert res.mean[0] == pytest.approx(20 - 10 * 0.9**98, rel=1e-9)
    assert res.std[0] > 0


def test_ses_all_censored_is_unknown() -> None:
    y = np.full((1, 28), 3.0)
    res = ses_weekday(y, np.zeros_like(y, bool))
    assert np.isnan(res.mean[0]) and np.isnan(res.std[0])


def test_censored_zeros_do_not_teach_zero_demand() -> None:
    """A series selling 6/day whose only zeros are on stock-out days
    forecasts 6 (the uncensored mean), not the diluted 4."""
    qty = np.tile([6.0, 6.0, 0.0], 100)[None, :]
    censored = qty == 0
    uncorrected = forecast_demand(_history(qty))
    corrected = forecast_demand(_history(qty, censored))
    assert uncorrected.loc[0, "demand_mean"] < 5
    assert corrected.loc[0, "demand_mean"] == pytest.approx(6.0)
    assert corrected.loc[0, "demand_std"] == pytest.approx(0.0, abs=1e-9)
    assert corrected.loc[0, "censored_days"] == 100
    assert corrected.loc[0, "nonzero_days"] == 200


# -------------------------------------------------------------- forecast_demand


def test_forecast_demand_picks_a_method_per_class() -> None:
    qty = _constructed()
    censored = np.zeros_like(qty, bool)
    qty = np.vstack([qty, np.full(qty.shape[1], 4.0)])
    censored = np.vstack([censored, np.ones(qty.shape[1], bool)])  # all censored
    fc = forecast_demand(_history(qty, censored))
    assert fc.columns.tolist() == FORECAST_COLUMNS
    assert fc["demand_class"].tolist() == [
        "smooth",
        "erratic",
        "intermittent",
        "lumpy",
        "none",
        "none",
    ]
    assert fc["method"].tolist() == [
        "ses_weekday",
        "ses_weekday",
        "croston_sba",
        "croston_sba",
        "none",
        "none",
    ]
    assert fc.loc[0, "demand_mean"] == pytest.approx(5.0)
    assert fc.loc[2, "demand_mean"] == pytest.approx(0.95 * 5 / 3, rel=0.05)
    assert fc.loc[4, "demand_mean"] == 0 and fc.loc[4, "demand_std"] == 0
    assert np.isnan(fc.loc[5, "demand_mean"])  # demand unknown, not zero
    assert (fc["n_days"] == 84).all()
    assert fc["sku"].tolist() == [f"S{i:03d}" for i in range(6)]


def test_forecast_demand_blocks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    qty = rng.poisson(rng.uniform(0.05, 8, 50)[:, None], (50, 120)).astype(float)
    censored = rng.random(qty.shape) < 0.05
    whole = forecast_demand(_history(qty, censored))
    monkeypatch.setattr(forecast_pkg, "_BLOCK", 7)
    blocked = forecast_demand(_history(qty, censored))
    pd.testing.assert_frame_equal(whole, blocked)
    assert set(whole["demand_class"]) >= {"smooth", "intermittent"}
    assert (whole["demand_mean"] >= 0).all()
