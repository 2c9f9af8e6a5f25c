"""Forecasting methods on hand-computed series and against statsforecast."""

from __future__ import annotations

import numpy as np
import pytest

from replenish.forecast.methods import (
    Fit,
    croston_sba,
    damped_steps,
    holt_damped,
    recent_mean,
    residual_rmse,
    ses,
    tsb,
)
from replenish.forecast.selection import backtest_errors, choose, naive_scale, origins


def _final(fit: Fit) -> np.ndarray:
    return fit.level[:, -1]


def _rmse(y: np.ndarray, fit: Fit, valid: np.ndarray | None = None) -> np.ndarray:
    v = np.ones_like(y, bool) if valid is None else valid
    return residual_rmse(y, v, fit.one_step())


# -------------------------------------------------------------- Croston-SBA


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
    fit = croston_sba(y, np.ones_like(y, bool), alpha=0.5)
    assert _final(fit)[0] == pytest.approx(1.227273, abs=1e-6)
    assert _rmse(y, fit)[0] == pytest.approx(2.349193, abs=1e-6)
    assert np.isnan(fit.level[0, :3]).all()  # no forecast before the first demand
    np.testing.assert_allclose(fit.ahead(9, 3), [[1.227273] * 3], atol=1e-6)


def test_croston_sba_matches_statsforecast() -> None:
    """Golden values: statsforecast's CrostonSBA (α fixed at 0.1, factor 0.95)
    on intermittent series; same point forecast to 1e-9."""
    sf = pytest.importorskip("statsforecast.models")
    rng = np.random.default_rng(42)
    occur = rng.random((6, 300)) < rng.uniform(0.05, 0.4, 6)[:, None]
    y = np.where(occur, rng.integers(1, 12, (6, 300)), 0).astype(float)
    ours = _final(croston_sba(y, np.ones_like(y, bool), alpha=0.1))
    theirs = [sf.CrostonSBA().forecast(row, h=1)["mean"][0] for row in y]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_croston_sba_skips_censored_days() -> None:
    """Censored days are removed from the time axis: the same series with
    extra censored zeros inserted forecasts exactly the same."""
    y = np.array([[0, 0, 4, 0, 0, 0, 2, 0, 6]], dtype=float)
    padded = np.array([[0, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 6]], dtype=float)
    valid = np.ones_like(padded, bool)
    valid[0, [2, 5, 6]] = False
    a = croston_sba(y, np.ones_like(y, bool), alpha=0.5)
    b = croston_sba(padded, valid, alpha=0.5)
    assert _final(b)[0] == pytest.approx(_final(a)[0])
    assert _rmse(padded, b, valid)[0] == pytest.approx(_rmse(y, a)[0])


def test_croston_sba_edge_cases() -> None:
    """Row 0 all zero → no forecast (NaN: the caller says 0); row 1 one demand
    of 6 at valid position 4 → (1 − 0.05)·6/4 = 1.425; row 2 its only demand
    on the last day → no residual (RMSE NaN); row 3 all censored → NaN."""
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
    fit = croston_sba(y, valid, alpha=0.1)
    final = _final(fit)
    assert np.isnan(final[0])
    assert final[1] == pytest.approx(0.95 * 6 / 4)
    assert final[2] == pytest.approx(0.95 * 6 / 6)
    assert np.isnan(final[3])
    rmse = _rmse(y, fit, valid)
    assert rmse[1] > 0 and np.isnan(rmse[2])


# ---------------------------------------------------------------------- TSB


def test_tsb_worked_example_of_the_docstring() -> None:
    """α_d = α_p = 0.5, y = [3, 0, 0, 2, 0]: p 1 → 0.5 → 0.25 → 0.625 →
    0.3125, z 3 → 2.5, forecast 0.78125 (statsforecast TSB(0.5, 0.5) gives
    the same)."""
    y = np.array([[3, 0, 0, 2, 0]], dtype=float)
    fit = tsb(y, np.ones_like(y, bool), alpha_d=0.5, alpha_p=0.5)
    np.testing.assert_allclose(fit.level[0, 1:], [3.0, 1.5, 0.75, 1.5625, 0.78125])


def test_tsb_matches_statsforecast() -> None:
    sf = pytest.importorskip("statsforecast.models")
    rng = np.random.default_rng(7)
    occur = rng.random((6, 250)) < rng.uniform(0.05, 0.5, 6)[:, None]
    y = np.where(occur, rng.integers(1, 9, (6, 250)), 0).astype(float)
    y[:, 0] = [0, 3, 0, 1, 0, 0]  # both initialisations of p
    for a_d, a_p in [(0.1, 0.1), (0.2, 0.05)]:
        ours = _final(tsb(y, np.ones_like(y, bool), alpha_d=a_d, alpha_p=a_p))
        theirs = [sf.TSB(alpha_d=a_d, alpha_p=a_p).forecast(row, h=1)["mean"][0] for row in y]
        np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_tsb_decays_after_demand_stops_where_croston_does_not() -> None:
    """Obsolescence (Teunter et al. 2011): 60 days of demand every other day,
    then 60 days of none. Croston keeps its last level; TSB's probability
    decays by (1 − α_p) a day: 0.9⁶⁰ ≈ 0.002 of its level."""
    y = np.concatenate([np.tile([2.0, 0.0], 30), np.zeros(60)])[None, :]
    v = np.ones_like(y, bool)
    c, t = _final(croston_sba(y, v)), _final(tsb(y, v))
    assert c[0] > 0.8
    assert t[0] < 0.01


# ------------------------------------------------------------- SES and Holt


def test_ses_on_constant_series_returns_the_constant_with_zero_error() -> None:
    y = np.full((2, 70), 7.5)
    y[1] = 0.0
    fit = ses(y, np.ones_like(y, bool))
    np.testing.assert_allclose(_final(fit), [7.5, 0.0])
    np.testing.assert_allclose(_rmse(y, fit), [0.0, 0.0], atol=1e-12)


def test_ses_tracks_a_level_shift() -> None:
    """After a step from 10 to 20 the level closes the gap by a factor
    (1 − α) a day: ℓ = 20 − 10 · 0.9⁹⁸."""
    y = np.concatenate([np.full(98, 10.0), np.full(98, 20.0)])[None, :]
    fit = ses(y, np.ones_like(y, bool), alpha=0.1)
    assert _final(fit)[0] == pytest.approx(20 - 10 * 0.9**98, rel=1e-9)


def test_ses_skips_invalid_days_and_unknown_series() -> None:
    y = np.array([[10.0, 0.0, 0.0, 10.0], [3.0, 3.0, 3.0, 3.0]])
    valid = np.array([[True, False, False, True], [False] * 4])
    fit = ses(y, valid)
    assert _final(fit)[0] == pytest.approx(10.0)
    assert np.isnan(_final(fit)[1])


def test_holt_damped_steady_state_slope_on_a_linear_series() -> None:
    """On y_t = 5 + c·t the damped trend settles where the level grows by c a
    day: φ·b + α·e = c and (1 − φ)·b = α·β·e give b* = c / (φ + (1 − φ)/β).
    α = 0.5, β = 0.1, φ = 0.9, c = 1 → b* = 1/1.9 = 0.526316; with φ = 1
    (Holt's linear trend) b* = c exactly."""
    t = np.arange(400, dtype=float)
    y = (5 + t)[None, :]
    v = np.ones_like(y, bool)
    damped = holt_damped(y, v, alpha=0.5, beta=0.1, phi=0.9)
    assert damped.trend is not None
    assert damped.trend[0, -1] == pytest.approx(1 / 1.9, rel=1e-6)
    linear = holt_damped(y, v, alpha=0.5, beta=0.1, phi=1.0)
    assert linear.trend is not None
    assert linear.trend[0, -1] == pytest.approx(1.0, rel=1e-6)
    # h-step forecasts add (φ + … + φ^h)·b: beyond the data the line goes on
    np.testing.assert_allclose(linear.ahead(400, 3)[0], 5 + np.arange(400, 403), rtol=1e-6)


def test_damped_steps() -> None:
    np.testing.assert_allclose(damped_steps(0.5, 3), [0.5, 0.75, 0.875])


def test_methods_validate_their_arguments() -> None:
    y = np.ones((1, 5))
    v = np.ones_like(y, bool)
    with pytest.raises(ValueError, match="alpha"):
        ses(y, v, alpha=0)
    with pytest.raises(ValueError, match="phi"):
        holt_damped(y, v, phi=1.5)
    with pytest.raises(ValueError, match="alpha_p"):
        tsb(y, v, alpha_p=2)
    with pytest.raises(ValueError, match="shape"):
        croston_sba(y, v[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        croston_sba(np.ones(5), np.ones(5, bool))


# ------------------------------------------------------------------ fallback


def test_recent_mean_uses_the_last_eight_weeks() -> None:
    y = np.vstack([np.r_[np.full(100, 2.0), np.full(56, 5.0)], np.full(156, 1e300)])
    valid = np.ones_like(y, bool)
    mean, std = recent_mean(y, valid)
    np.testing.assert_allclose(mean, [5.0, 1e300])
    np.testing.assert_allclose(std, [0.0, 0.0])
    valid[0, 100:] = False  # nothing recent is valid: all valid days
    mean, _ = recent_mean(y, valid)
    assert mean[0] == pytest.approx(2.0)


# ------------------------------------------------------------------ selection


def test_rolling_origin_backtest_and_choice() -> None:
    """A level shift 3 weeks before the end: SES with α = 0.5 adapts, α = 0.01
    does not; the backtest (8 weekly origins, 7 days ahead) prefers the
    former. Errors are scaled by the in-sample naive MAE."""
    y = np.r_[np.tile([4.0, 6.0], 50), np.full(21, 15.0)][None, :]
    v = np.ones_like(y, bool)
    starts = origins(y.shape[1])
    np.testing.assert_array_equal(starts, 121 - 7 * np.arange(8, 0, -1))
    fast = backtest_errors(y, v, ses(y, v, alpha=0.5), None, starts)
    slow = backtest_errors(y, v, ses(y, v, alpha=0.01), None, starts)
    assert fast.mae[0] < slow.mae[0] and fast.mse[0] < slow.mse[0]
    assert naive_scale(y, v, int(starts[0]))[0] == pytest.approx(2.0)
    errors = np.array([[slow.mae[0], fast.mae[0]]])
    np.testing.assert_array_equal(choose(errors, np.ones((1, 2), bool)), [1])


def test_choose_prefers_the_simple_candidate_unless_clearly_better() -> None:
    errors = np.array([[1.0, 0.99], [1.0, 0.9], [np.nan, np.nan], [1.0, 0.5], [2.0, 1.0]])
    usable = np.array([[True, True], [True, True], [True, True], [True, False], [False, False]])
    np.testing.assert_array_equal(choose(errors, usable), [0, 1, 0, 0, -1])
