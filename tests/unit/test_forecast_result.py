"""Forecast.interval_demand: the expected demand over a protection interval."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from replenish.forecast.result import Forecast

START = date(2026, 1, 1)


def _fc(path: list[list[float]]) -> Forecast:
    arr = np.array(path, dtype=float)
    return Forecast(frame=pd.DataFrame({"demand_mean": arr.mean(axis=1)}), path=arr, start=START)


def test_fractional_days_are_pro_rata() -> None:
    """Over [0, 2.5): 1 + 2 + half of 3 = 4.5; over [1.5, 2.5): half of 2 + half of 3."""
    fc = _fc([[1, 2, 3, 4]])
    assert fc.interval_demand(2.5)[0] == pytest.approx(4.5)
    assert fc.interval_demand(1.0, 1.5)[0] == pytest.approx(2.5)


def test_beyond_the_horizon_the_last_day_is_extended() -> None:
    assert _fc([[1, 2, 3, 4]]).interval_demand(6.0)[0] == pytest.approx(10 + 2 * 4)


def test_per_series_days_and_unforecastable_series() -> None:
    fc = _fc([[1, 1, 1], [2, 2, np.nan]])
    out = fc.interval_demand(np.array([2.0, 1.0]))
    assert out[0] == pytest.approx(2.0) and np.isnan(out[1])


def test_flat_forecast_is_d_times_days() -> None:
    fc = Forecast.flat(pd.DataFrame({"demand_mean": [3.0, 0.0]}), START, horizon=10)
    np.testing.assert_allclose(fc.interval_demand(7.5), [22.5, 0.0])


def test_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="path must be"):
        Forecast(frame=pd.DataFrame({"demand_mean": [1.0]}), path=np.ones((2, 3)), start=START)
