"""Forecasting methods: small pure functions over 2-D arrays.

Rows are series, columns are days. Each method loops over *time* only; every
step updates all series at once. ``valid`` marks the days that are evidence
(False on censored days: the item was out of stock, so a zero there does not
mean nobody wanted it). Invalid days are skipped: the state carries over
unchanged and no residual is recorded.

Each method returns a :class:`MethodResult`: the mean daily demand forecast
and the standard deviation of the daily forecast error, both in units/day.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["MethodResult", "croston_sba", "ses_weekday", "weekday_profile"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Days used to initialise the SES level (the first four weeks of history).
SES_INIT_DAYS = 28
#: A weekday whose seasonal index is below this carries no level information
#: (e.g. Sundays for a B2B shop): its observations do not update the level.
_MIN_INDEX = 1e-6


class MethodResult(NamedTuple):
    """Per-series output of a forecasting method (arrays of length n_series).

    mean: forecast of mean daily demand (units/day).
    std: standard deviation of daily forecast errors (units/day): the root
        mean square of the one-step-ahead residuals.
    """

    mean: FloatArray
    std: FloatArray


def _check(qty: FloatArray, valid: BoolArray, alpha: float) -> tuple[FloatArray, BoolArray]:
    q = np.asarray(qty, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if q.ndim != 2:
        raise ValueError("qty must be a 2-D array (series × days)")
    if v.shape != q.shape:
        raise ValueError("valid must have the shape of qty")
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]")
    return q, v


def _fallback_std(q: FloatArray, v: BoolArray) -> FloatArray:
    """Population std of the valid daily demand (used when no residual exists)."""
    n = v.sum(axis=1)
    safe = np.maximum(n, 1)
    x = np.where(v, q, 0.0)
    mean = x.sum(axis=1) / safe
    var = np.maximum(np.einsum("ij,ij->i", x, x) / safe - mean**2, 0.0)
    return np.where(n > 0, np.sqrt(var), np.nan)


def weekday_profile(
    qty: FloatArray, valid: BoolArray, weekday: npt.ArrayLike | None = None
) -> FloatArray:
    """Multiplicative day-of-week indices, n_series × 7, averaging 1 per row.

    s_w = (mean demand on weekday w) / (mean demand over all days), over valid
    days only, then rescaled so that the seven indices average exactly 1 (so a
    week of forecasts sums to 7 × level). Weekdays without valid days, and
    series without demand, get 1. This is the classical ratio-to-mean seasonal
    index (Hyndman & Athanasopoulos, FPP3 §3.4, classical decomposition).

    Args:
        qty, valid: n_series × n_days.
        weekday: day of week (0..6) of each column; default ``column % 7``.
    """
    q, v = _check(qty, valid, 1.0)
    wd = _weekdays(weekday, q.shape[1])
    sums = np.zeros((q.shape[0], 7))
    counts = np.zeros((q.shape[0], 7))
    for w in range(7):
        cols = wd == w
        if cols.any():
            vw = v[:, cols]
            sums[:, w] = np.where(vw, q[:, cols], 0.0).sum(axis=1)
            counts[:, w] = vw.sum(axis=1)
    total = sums.sum(axis=1)
    n = counts.sum(axis=1)
    overall = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    seen = counts > 0
    day_mean = sums / np.maximum(counts, 1)
    ok = (overall > 0)[:, None] & seen
    index = np.where(ok, day_mean / np.where(overall > 0, overall, 1.0)[:, None], 1.0)
    return index / index.mean(axis=1, keepdims=True)


def _weekdays(weekday: npt.ArrayLike | None, n_days: int) -> npt.NDArray[np.int64]:
    if weekday is None:
        return np.arange(n_days, dtype=np.int64) % 7
    wd = np.asarray(weekday, dtype=np.int64)
    if wd.shape != (n_days,) or np.any((wd < 0) | (wd > 6)):
        raise ValueError("weekday must hold one value in 0..6 per column of qty")
    return wd


def ses_weekday(
    qty: FloatArray,
    valid: BoolArray,
    alpha: float = 0.1,
    weekday: npt.ArrayLike | None = None,
) -> MethodResult:
    """Simple exponential smoothing of the level of weekday-adjusted demand.

    With s_w the multiplicative weekday index (:func:`weekday_profile`) and
    y_t the demand of day t (weekday w(t)), for each valid day::

        e_t = y_t − s_w(t) · ℓ_{t−1}                 (one-step-ahead residual)
        ℓ_t = ℓ_{t−1} + α · (y_t / s_w(t) − ℓ_{t−1})  (level update)

    Invalid (censored) days leave ℓ unchanged and record no residual; days
    whose index is ~0 (a weekday that never sells) record a residual but do
    not update the level. ℓ_0 is the mean deseasonalised demand over the valid
    days of the first 28 days (all valid days if none there).

    Forecast: the returned ``mean`` is the *average daily demand over the next
    week*, mean_w(s_w · ℓ_T) = ℓ_T since the indices average 1 (the weekday
    shape averages out over any whole-week horizon, which is what lead-time
    demand needs). ``std`` = sqrt(mean(e_t²)) over valid days, in the
    original (not deseasonalised) units, so weekday swings count as error.

    Edge cases: an all-zero series gives 0 / 0; a series without any valid
    day gives NaN / NaN (demand unknown); a constant series gives the constant
    with std 0.

    Source: Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*
    (FPP3), §8.1 (simple exponential smoothing) and §3.4 (seasonal indices).

    Args:
        qty: n_series × n_days demand (float).
        valid: same shape; False on censored days.
        alpha: smoothing parameter in (0, 1].
        weekday: day of week (0..6) of each column; default ``column % 7``.
    """
    q, v = _check(qty, valid, alpha)
    n_series, n_days = q.shape
    wd = _weekdays(weekday, n_days)
    profile = weekday_profile(q, v, wd)
    season = profile[:, wd]  # n_series × n_days
    informative = v & (season > _MIN_INDEX)
    deseason = np.where(informative, q / np.where(informative, season, 1.0), 0.0)

    head = informative[:, :SES_INIT_DAYS]
    n_head = head.sum(axis=1)
    n_all = informative.sum(axis=1)
    level = np.where(
        n_head > 0,
        deseason[:, :SES_INIT_DAYS].sum(axis=1) / np.maximum(n_head, 1),
        deseason.sum(axis=1) / np.maximum(n_all, 1),
    )

    # Column-contiguous copies: each time step reads one contiguous row.
    q_t = np.ascontiguousarray(q.T)
    v_t = np.ascontiguousarray(v.T)
    s_t = np.ascontiguousarray(season.T)
    i_t = np.ascontiguousarray(informative.T)
    x_t = np.ascontiguousarray(deseason.T)
    sse = np.zeros(n_series)
    n_res = np.zeros(n_series)
    for t in range(n_days):
        vt = v_t[t]
        err = q_t[t] - s_t[t] * level
        sse += np.where(vt, err * err, 0.0)
        n_res += vt
        it = i_t[t]
        level = np.where(it, level + alpha * (x_t[t] - level), level)

    no_data = n_res == 0
    mean = np.where(no_data, np.nan, level)
    std = np.where(no_data, np.nan, np.sqrt(sse / np.maximum(n_res, 1)))
    return MethodResult(mean=mean, std=std)


def croston_sba(qty: FloatArray, valid: BoolArray, alpha: float = 0.1) -> MethodResult:
    """Croston's method with the Syntetos–Boylan bias correction (SBA).

    Over the valid days only (censored days are removed from the time axis):
    z is the smoothed size of non-zero demands, p the smoothed interval (in
    valid days) between them, q the valid days since the previous demand. At
    a day with demand y_t > 0::

        z ← z + α · (y_t − z),   p ← p + α · (q − p)

    initialised at the first demand with z = y (its size) and p = its position
    (1-based count of valid days up to it), as in statsforecast's Croston.
    Forecast of mean daily demand::

        f = (1 − α/2) · z / p

    ``std`` = sqrt(mean(e_t²)) with e_t = y_t − f_{t−1}, over the valid days
    after the first demand (no forecast exists before it); where there is no
    such day (the only demand is on the last valid day) it falls back to the
    population std of the valid daily demand.

    Edge cases: all-zero series → 0 / 0; all days censored → NaN / NaN
    (demand unknown); one non-zero y at valid position k → f = (1 − α/2)·y/k.

    Sources: Croston (1972), "Forecasting and stock control for intermittent
    demands", ORQ 23(3):289–303; Syntetos & Boylan (2005), "The accuracy of
    intermittent demand estimates", IJF 21(2):303–314.

    Args:
        qty: n_series × n_days demand.
        valid: same shape; False on censored days.
        alpha: smoothing parameter for both size and interval, in (0, 1].
    """
    q, v = _check(qty, valid, alpha)
    n_series, n_days = q.shape
    bias = 1.0 - alpha / 2.0
    q_t = np.ascontiguousarray(q.T)
    v_t = np.ascontiguousarray(v.T)
    z = np.zeros(n_series)
    p = np.ones(n_series)
    since = np.zeros(n_series)
    started = np.zeros(n_series, dtype=bool)
    sse = np.zeros(n_series)
    n_res = np.zeros(n_series)
    for t in range(n_days):
        vt = v_t[t]
        yt = q_t[t]
        scored = vt & started
        err = yt - bias * z / p
        sse += np.where(scored, err * err, 0.0)
        n_res += scored
        since += vt
        demand = vt & (yt > 0)
        first = demand & ~started
        update = demand & started
        z = np.where(first, yt, np.where(update, z + alpha * (yt - z), z))
        p = np.where(first, since, np.where(update, p + alpha * (since - p), p))
        since = np.where(demand, 0.0, since)
        started |= demand

    n_valid = v.sum(axis=1)
    mean = np.where(n_valid == 0, np.nan, np.where(started, bias * z / p, 0.0))
    rmse = np.sqrt(sse / np.maximum(n_res, 1))
    std = np.where(
        n_valid == 0,
        np.nan,
        np.where(~started, 0.0, np.where(n_res > 0, rmse, _fallback_std(q, v))),
    )
    return MethodResult(mean=mean, std=std)
