"""Weekday and week-of-year profiles: estimation and shrinkage by evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replenish.forecast.seasonality import (
    YEARLY_BINS,
    weekday_profile,
    year_position,
    yearly_factor,
    yearly_profile,
)


def test_weekday_profile_of_a_clean_pattern_is_exact() -> None:
    """Weekdays sell 10, weekends 3 (mean 8): indices 1.25 and 0.375. No
    noise within a weekday, so shrinkage leaves it alone."""
    days = np.arange(140)
    y = np.where(days % 7 < 5, 10.0, 3.0)[None, :]
    profile = weekday_profile(y, np.ones_like(y, bool), days % 7)
    np.testing.assert_allclose(profile[0], [1.25] * 5 + [0.375] * 2)


def test_weekday_profile_of_noise_shrinks_toward_flat() -> None:
    """A slow Poisson(0.3) mover has no weekday pattern; its raw indices
    wander by chance, the shrunk ones stay near 1. A fast mover with a real
    pattern keeps it."""
    rng = np.random.default_rng(1)
    days = np.arange(364)
    shape = np.array([1.2, 1.2, 1.0, 1.0, 1.0, 0.8, 0.8])
    y = np.vstack([rng.poisson(0.3, days.size), rng.poisson(30 * shape[days % 7])]).astype(float)
    v = np.ones_like(y, bool)
    raw = weekday_profile(y, v, days % 7, shrink=False)
    shrunk = weekday_profile(y, v, days % 7)
    assert np.abs(shrunk[0] - 1).max() < 0.5 * np.abs(raw[0] - 1).max()
    np.testing.assert_allclose(shrunk[1], shape, atol=0.05)


def _seasonal_series(rng: np.random.Generator, days: int, amplitude: float) -> np.ndarray:
    dates = pd.date_range("2022-01-03", periods=days, freq="D")
    doy = dates.day_of_year.to_numpy()
    season = 1 + amplitude * np.cos(2 * np.pi * (doy - 15) / 365.25)
    return rng.poisson(40 * season).astype(float)


def test_yearly_profile_recovers_a_known_season() -> None:
    """Two years of a winter season (±50 %, peak mid-January) at 40/day: the
    week-of-year index follows the cosine within 0.1; a series without a
    season gets a profile near 1."""
    rng = np.random.default_rng(3)
    dates = pd.date_range("2022-01-03", periods=730, freq="D")
    y = np.vstack([_seasonal_series(rng, 730, 0.5), _seasonal_series(rng, 730, 0.0)])
    pos = year_position(dates)
    index, strength = yearly_profile(y, np.ones_like(y, bool), pos)
    assert index.shape == (2, YEARLY_BINS)
    centres = np.arange(YEARLY_BINS) * 7 + 4
    truth = 1 + 0.5 * np.cos(2 * np.pi * (centres - 15) / 365.25)
    np.testing.assert_allclose(index[0], truth / truth.mean(), atol=0.1)
    assert strength[0] > 0.8
    assert np.abs(index[1] - 1).max() < 0.1


def test_yearly_profile_needs_a_year_of_evidence() -> None:
    rng = np.random.default_rng(4)
    dates = pd.date_range("2022-01-03", periods=300, freq="D")
    y = _seasonal_series(rng, 300, 0.5)[None, :]
    index, strength = yearly_profile(y, np.ones_like(y, bool), year_position(dates))
    np.testing.assert_array_equal(index, 1.0)
    assert strength[0] == 0
    # a long history with too few valid days: no profile either
    y2 = _seasonal_series(rng, 730, 0.5)[None, :]
    valid = np.zeros_like(y2, bool)
    valid[:, :200] = True
    dates2 = pd.date_range("2022-01-03", periods=730, freq="D")
    index2, _ = yearly_profile(y2, valid, year_position(dates2))
    np.testing.assert_array_equal(index2, 1.0)


def test_year_position_interpolates_between_week_centres() -> None:
    """Bin b is centred on day-of-year 7b + 4: Jan 4 is bin 0 exactly, Jan 8
    is 4/7 of the way to bin 1, Dec 31 sits between bin 51 and bin 0."""
    dates = pd.DatetimeIndex(["2023-01-04", "2023-01-08", "2023-12-31"])
    pos = year_position(dates)
    np.testing.assert_array_equal(pos.bin, [0, 1, 51])
    np.testing.assert_array_equal(pos.lo, [0, 0, 51])
    np.testing.assert_array_equal(pos.hi, [1, 1, 0])
    np.testing.assert_allclose(pos.w, [0.0, 4 / 7, (365 - 361) / 7])
    index = np.arange(YEARLY_BINS, dtype=float)[None, :]
    np.testing.assert_allclose(yearly_factor(index, pos)[0], [0.0, 4 / 7, 51 * (1 - 4 / 7)])


def test_weekday_profile_validates_shapes() -> None:
    with pytest.raises(ValueError, match="weekday"):
        weekday_profile(np.ones((1, 7)), np.ones((1, 7), bool), [0, 1, 2])
