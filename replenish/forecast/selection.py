"""Model choice per series by a rolling-origin backtest, all series at once.

Each candidate method is fitted once over the whole history; its state path
(:class:`replenish.forecast.methods.Fit`) already holds what it knew before
every day, so forecasting from the last few weekly origins costs no refit.
Errors of every candidate are computed for all series at once, then the best
candidate is the argmin per row.

The criterion: mean absolute error for smooth and erratic series, mean squared
error for intermittent and lumpy ones. On a series that is zero most days the
MAE is minimised by forecasting (nearly) zero — the median — so it would
favour the method that undershoots; the MSE is minimised by the mean, which is
what a replenishment policy needs (Kolassa (2016), "Evaluating predictive
count data distributions in retail sales forecasting", IJF 32(3):788–803).
The reported ``backtest_mae`` is the MAE scaled by the in-sample naive MAE
(MASE, Hyndman & Koehler 2006) either way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from replenish.forecast.methods import Fit

__all__ = [
    "BACKTEST_ORIGINS",
    "BACKTEST_STEPS",
    "MARGIN",
    "MIN_BACKTEST_DEMANDS",
    "BacktestErrors",
    "backtest_errors",
    "choose",
    "naive_scale",
    "origins",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Weekly origins of the backtest (the last 8 weeks of history).
BACKTEST_ORIGINS = 8
#: Days forecast from each origin.
BACKTEST_STEPS = 7
#: Days of history an origin needs before it (the state must have warmed up).
MIN_HISTORY = 28
#: Days with demand the backtest windows need before a candidate other than
#: the default may be chosen (fewer: the errors are noise).
MIN_BACKTEST_DEMANDS = 20
#: A more complex candidate must beat the simpler ones by this relative
#: margin per step of complexity (avoids choosing on noise).
MARGIN = 0.02


def origins(n_days: int, count: int = BACKTEST_ORIGINS, steps: int = BACKTEST_STEPS) -> IntArray:
    """Backtest origins: the days ``n_days − steps·k``, k = 1 … count, that
    leave at least :data:`MIN_HISTORY` days before them (ascending; maybe
    empty)."""
    o = n_days - steps * np.arange(count, 0, -1, dtype=np.int64)
    return o[o >= MIN_HISTORY]


def naive_scale(y: FloatArray, valid: BoolArray, until: int) -> FloatArray:
    """In-sample MAE of the naive one-step forecast (ŷ_t = y_{t−1}) over the
    days before ``until``, where both days are valid — the MASE scale of
    Hyndman & Koehler (2006), "Another look at measures of forecast
    accuracy", IJF 22(4):679–688.

    Where it is 0 or undefined (a constant series, too few days) the mean
    valid demand is used instead, and 1 when that is 0 too, so the scaled
    error stays finite and comparable.
    """
    stop = max(min(until, y.shape[1]), 1)
    both = valid[:, 1:stop] & valid[:, : stop - 1]
    diff = np.where(both, np.abs(y[:, 1:stop] - y[:, : stop - 1]), 0.0)
    n = both.sum(axis=1)
    scale = np.where(n > 0, diff.sum(axis=1) / np.maximum(n, 1), 0.0)
    nv = valid.sum(axis=1)
    level = np.where(nv > 0, np.where(valid, y, 0.0).sum(axis=1) / np.maximum(nv, 1), 0.0)
    out: FloatArray = np.where(scale > 0, scale, np.where(level > 0, level, 1.0))
    return out


class BacktestErrors(NamedTuple):
    """Per-series mean absolute and mean squared error over the windows."""

    mae: FloatArray
    mse: FloatArray


def backtest_errors(
    y: FloatArray,
    valid: BoolArray,
    fit: Fit,
    season: FloatArray | None,
    starts: IntArray,
    steps: int = BACKTEST_STEPS,
) -> BacktestErrors:
    """Errors of the forecasts made at each origin for the next ``steps``
    days, over the valid days of those windows (rolling origin, Tashman
    (2000), "Out-of-sample tests of forecasting accuracy", IJF
    16(4):437–450)::

        MAE = mean_{o, h : valid} | y_{o+h} − s_{o+h} · ŷ_{o+h | o} |
        MSE = mean_{o, h : valid} ( y_{o+h} − s_{o+h} · ŷ_{o+h | o} )²

    ``season`` (n_series × n_days) multiplies the method's (deseasonalised)
    forecast; None for 1. NaN where no window day is valid or the method had
    no forecast yet.
    """
    n, t_days = y.shape
    abs_sum = np.zeros(n)
    sq_sum = np.zeros(n)
    count = np.zeros(n)
    for o in starts:
        hi = min(int(o) + steps, t_days)
        fc = fit.ahead(int(o), hi - int(o))
        if season is not None:
            fc = fc * season[:, o:hi]
        scored = valid[:, o:hi] & np.isfinite(fc)
        err = np.where(scored, y[:, o:hi] - np.where(scored, fc, 0.0), 0.0)
        abs_sum += np.abs(err).sum(axis=1)
        sq_sum += (err * err).sum(axis=1)
        count += scored.sum(axis=1)
    has = count > 0
    safe = np.maximum(count, 1)
    return BacktestErrors(
        mae=np.where(has, abs_sum / safe, np.nan), mse=np.where(has, sq_sum / safe, np.nan)
    )


def choose(errors: FloatArray, usable: BoolArray, margin: float = MARGIN) -> IntArray:
    """Index of the chosen candidate per row (n_series × n_candidates in).

    Candidates are ordered simplest first; candidate c's error is inflated by
    ``(1 + margin · c)`` so a more complex one must win clearly. Unusable
    candidates (a fit that failed or yielded NaN/inf) are never chosen; a
    candidate without a backtest error (no valid day in the windows) is
    chosen only when none has one, the simplest first. -1: none is usable.
    """
    e = np.asarray(errors, dtype=np.float64)
    u = np.asarray(usable, dtype=bool)
    rank = np.arange(e.shape[1], dtype=np.float64)[None, :]
    big = np.finfo(np.float64).max / 4
    key = np.where(np.isnan(e), big + rank, e * (1.0 + margin * rank))
    key = np.where(u, key, np.inf)
    pick = np.argmin(key, axis=1)
    out: IntArray = np.where(u.any(axis=1), pick, -1).astype(np.int64)
    return out
