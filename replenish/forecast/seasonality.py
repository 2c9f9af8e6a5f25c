"""Multiplicative seasonal profiles, all series at once: day of week and week of year.

A forecast for day t is ``level · weekday_index[w(t)] · yearly_index(t)``. Both
profiles are estimated here from the *base* days of each series (valid: not
censored, not a promotion day), each shrunk toward a flat profile by the
amount of evidence, and handed to the level methods of
:mod:`replenish.forecast.methods`, which smooth the deseasonalised demand.

Both estimates work on small per-series tables (7 weekdays; 7-day blocks)
built in one pass over the daily data, so they cost little at 100 000 series.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "CLOSED_MIN_RATE",
    "CLOSED_MIN_WEEKS",
    "MIN_YEARLY_DAYS",
    "YEARLY_BINS",
    "DayFolder",
    "WeekdayTables",
    "YearPosition",
    "closed_from_tables",
    "closed_weekday_table",
    "week_blocks",
    "weekday_index",
    "weekday_profile",
    "weekday_tables",
    "weekdays",
    "year_position",
    "yearly_factor",
    "yearly_from_weeks",
    "yearly_profile",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Week-of-year bins of the yearly profile (day 365/366 joins the last one).
YEARLY_BINS = 52
#: Valid days (and days of history) needed before a yearly profile is estimated.
MIN_YEARLY_DAYS = 365
#: Window of the local level the yearly ratios are taken against (7-day blocks).
_LOCAL_WEEKS = 52
#: A weekday is *closed* for a series when it never sold on it over at least
#: this many valid occurrences while the series sells on most other days.
CLOSED_MIN_WEEKS = 8
CLOSED_MIN_RATE = 0.5


def weekdays(dates: pd.DatetimeIndex | None, n_days: int) -> IntArray:
    """Day of week (Monday = 0) of each column; ``column % 7`` without dates."""
    if dates is None or len(dates) != n_days:
        return np.arange(n_days, dtype=np.int64) % 7
    return np.asarray(dates.day_of_week, dtype=np.int64)


def _check_weekday(weekday: npt.ArrayLike | None, n_days: int) -> IntArray:
    if weekday is None:
        return np.arange(n_days, dtype=np.int64) % 7
    wd = np.asarray(weekday, dtype=np.int64)
    if wd.shape != (n_days,) or np.any((wd < 0) | (wd > 6)):
        raise ValueError("weekday must hold one value in 0..6 per column of qty")
    return wd


class DayFolder:
    """Folds daily columns into 7-day blocks and weekdays, fast.

    The days are cut into the blocks of 7 that end on the last day (the
    first ``n_days % 7`` days form a *head* outside any block). Folding goes
    through a (rows, blocks, 7) view and small matrix products, which numpy
    runs far faster than short reductions or a (days × 7) indicator product.

    Args:
        weekday: day of week (0..6) of each column.
    """

    def __init__(self, weekday: npt.ArrayLike) -> None:
        wd = np.asarray(weekday, dtype=np.int64)
        self.n_days = len(wd)
        self.cut, self.weeks = self.n_days % 7, self.n_days // 7
        self.head_weekday = wd[: self.cut]
        #: weekday of each position 0..6 within a block
        self.position_weekday = wd[self.cut : self.cut + 7] if self.weeks else np.arange(7)
        #: position within a block of each weekday
        self.weekday_position = np.argsort(self.position_weekday)
        self._ones_w = np.ones(self.weeks)
        self._ones_7 = np.ones(7)

    def _blocks(self, x: FloatArray) -> FloatArray:
        out: FloatArray = x[:, self.cut :].reshape(x.shape[0], self.weeks, 7)
        return out

    def weekly(self, x: FloatArray) -> FloatArray:
        """Sum of each 7-day block (rows × blocks)."""
        out: FloatArray = self._blocks(x) @ self._ones_7
        return out

    def weekly_weighted(self, x: FloatArray, by_weekday: FloatArray) -> FloatArray:
        """Σ over each block of x_t · w_{weekday(t)} (rows × blocks), with
        ``by_weekday`` rows × 7."""
        w = by_weekday[:, self.position_weekday][:, :, None]
        out: FloatArray = np.matmul(self._blocks(x), w)[:, :, 0]
        return out

    def by_weekday(self, x: FloatArray) -> FloatArray:
        """Sum over the days of each weekday (rows × 7, Monday first)."""
        per_position = np.matmul(self._blocks(x).transpose(0, 2, 1), self._ones_w)
        out: FloatArray = per_position[:, self.weekday_position]
        for j, w in enumerate(self.head_weekday):
            out[:, w] += x[:, j]
        return out


# ------------------------------------------------------------------ weekdays


class WeekdayTables(NamedTuple):
    """Per series and weekday (n_series × 7), over the valid days: days,
    days with demand, total demand, total squared demand."""

    days: FloatArray
    demand_days: FloatArray
    total: FloatArray
    squares: FloatArray


def weekday_tables(
    qty: FloatArray, valid: BoolArray, weekday: IntArray, folder: DayFolder | None = None
) -> WeekdayTables:
    """The :class:`WeekdayTables` of each row (one pass over the days)."""
    f = DayFolder(weekday) if folder is None else folder
    q = np.multiply(qty, valid)
    return WeekdayTables(
        days=f.by_weekday(valid.astype(np.float64)),
        demand_days=f.by_weekday((q > 0).astype(np.float64)),
        total=f.by_weekday(q),
        squares=f.by_weekday(q * q),
    )


def closed_from_tables(t: WeekdayTables) -> BoolArray:
    """n_series × 7: True for the weekdays a series is evidently never sold on.

    Closed: no demand on any of its ≥ 8 valid occurrences while the series
    had demand on at least half of its valid other days (the chance of that
    by luck is < 0.5⁸ ≈ 0.4 %). A B2B shop's weekend, a store's closing day.
    """
    other_valid = t.days.sum(axis=1, keepdims=True) - t.days
    other_sold = t.demand_days.sum(axis=1, keepdims=True) - t.demand_days
    out: BoolArray = (
        (t.days >= CLOSED_MIN_WEEKS)
        & (t.demand_days == 0)
        & (other_sold >= CLOSED_MIN_RATE * np.maximum(other_valid, 1))
        & (other_sold > 0)
    )
    return out


def closed_weekday_table(q: FloatArray, v: BoolArray, wd: IntArray) -> BoolArray:
    """:func:`closed_from_tables` of the daily data."""
    return closed_from_tables(weekday_tables(q, v, wd))


def _shrink_log(
    g: FloatArray, noise: FloatArray, seen: BoolArray, min_seen: int
) -> tuple[FloatArray, FloatArray]:
    """James–Stein shrinkage of the log indices ``g`` of each row toward their
    mean over the seen bins: k_b = τ² / (τ² + v_b) with
    τ² = max(Var_b(g_b) − mean_b(v_b), 0). Returns (exp(k · (g − ḡ)), k);
    unseen bins get 1 and k = 0. Source: Efron & Morris (1975), "Data
    analysis using Stein's estimator", JASA 70(350):311–319."""
    n_seen = seen.sum(axis=1)
    mean = np.where(seen, g, 0.0).sum(axis=1) / np.maximum(n_seen, 1)
    dev = np.where(seen, g - mean[:, None], 0.0)
    spread = (dev * dev).sum(axis=1) / np.maximum(n_seen - 1, 1)
    mean_noise = np.where(seen, noise, 0.0).sum(axis=1) / np.maximum(n_seen, 1)
    tau2 = np.maximum(spread - mean_noise, 0.0)
    ok = (n_seen >= min_seen) & (tau2 > 0)
    safe_noise = np.where(seen, noise, 0.0)
    k = np.where(seen & ok[:, None], tau2[:, None] / (tau2[:, None] + safe_noise), 0.0)
    k = np.where(np.isfinite(k), k, 0.0)
    return np.exp(k * dev), k


def _relative_noise(s1: FloatArray, s2: FloatArray, n_b: FloatArray, seen: BoolArray) -> FloatArray:
    """Noise variance of ln(mean) per bin: c² / n_b, with c² the squared
    coefficient of variation of the daily values within a bin (pooled over
    the seen bins of the row: one stable noise level per series)."""
    mean = s1 / np.maximum(n_b, 1.0)
    var = np.maximum(s2 / np.maximum(n_b, 1.0) - mean**2, 0.0) * n_b / np.maximum(n_b - 1, 1.0)
    rel = np.where(seen, var / np.where(seen, mean, 1.0) ** 2, 0.0)
    dof = np.where(seen, n_b - 1.0, 0.0)
    c2 = (rel * dof).sum(axis=1) / np.maximum(dof.sum(axis=1), 1.0)
    out: FloatArray = np.where(seen, c2[:, None] / np.maximum(n_b, 1.0), 0.0)
    return out


def weekday_index(t: WeekdayTables, shrink: bool = True) -> FloatArray:
    """Multiplicative day-of-week indices (n_series × 7, averaging 1) from
    :class:`WeekdayTables`; see :func:`weekday_profile`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = t.days.sum(axis=1)
        overall = np.where(n > 0, t.total.sum(axis=1) / np.maximum(n, 1), 0.0)
        closed = closed_from_tables(t)
        seen = (t.days >= 2) & (t.total > 0) & ~closed
        safe_overall = np.where(overall > 0, overall, 1.0)[:, None]
        raw = np.where(seen, t.total / np.maximum(t.days, 1) / safe_overall, 1.0)
        if shrink:
            noise = _relative_noise(t.total, t.squares, t.days, seen)
            index, _ = _shrink_log(np.log(raw), noise, seen, 2)
        else:
            index = raw
        index = np.where(closed, 0.0, np.where(seen, index, 1.0))
        index = np.where((overall > 0)[:, None], index, 1.0)
        out: FloatArray = index / index.mean(axis=1, keepdims=True)
    return out


def weekday_profile(
    qty: FloatArray,
    valid: BoolArray,
    weekday: npt.ArrayLike | None = None,
    *,
    shrink: bool = True,
) -> FloatArray:
    """Multiplicative day-of-week indices, n_series × 7, averaging 1 per row.

    Raw index: s_w = (mean demand on weekday w) / (mean demand over all days),
    over valid days only — the classical ratio-to-mean seasonal index
    (Hyndman & Athanasopoulos, FPP3 §3.4, classical decomposition). Then:

    * a *closed* weekday (:func:`closed_from_tables`) gets 0;
    * with ``shrink``, the log indices of the other weekdays are shrunk
      toward their mean by the James–Stein factor τ²/(τ² + v_w), v_w the
      noise variance of ln s_w (c²/n_w, see :func:`yearly_from_weeks`): a
      slow mover's accidental weekday pattern flattens, a fast mover's real
      one stays;
    * weekdays without valid days or without demand (not closed) get 1;
    * rescaled so the seven indices average exactly 1 (a week of forecasts
      sums to 7 × level).

    Series without demand get all ones.

    Args:
        qty, valid: n_series × n_days.
        weekday: day of week (0..6) of each column; default ``column % 7``.
        shrink: shrink toward a flat profile by the amount of evidence.
    """
    q = np.asarray(qty, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if q.ndim != 2 or v.shape != q.shape:
        raise ValueError("qty and valid must be 2-D arrays of the same shape")
    wd = _check_weekday(weekday, q.shape[1])
    return weekday_index(weekday_tables(q, v, wd), shrink)


# -------------------------------------------------------------- week of year


class YearPosition(NamedTuple):
    """Where each day falls in the year, for the week-of-year profile.

    bin: the week-of-year bin of the day (0..51, days 365–366 in 51). lo, hi,
    w: the two bins whose centres surround the day and the weight of ``hi``,
    used to read the profile back as a piecewise-linear (circular) curve
    rather than a weekly staircase.
    """

    bin: IntArray
    lo: IntArray
    hi: IntArray
    w: FloatArray


def year_position(dates: pd.DatetimeIndex) -> YearPosition:
    """The :class:`YearPosition` of each date (bin centres at day 4, 11, …)."""
    doy = np.asarray(dates.day_of_year, dtype=np.int64)
    hard = np.minimum((doy - 1) // 7, YEARLY_BINS - 1)
    u = (doy - 4).astype(np.float64) / 7.0
    lo = np.floor(u)
    w = u - lo
    lo_i = lo.astype(np.int64) % YEARLY_BINS
    return YearPosition(bin=hard, lo=lo_i, hi=(lo_i + 1) % YEARLY_BINS, w=w)


def week_blocks(n_days: int) -> tuple[int, int]:
    """(first day, number) of the 7-day blocks ending on the last day."""
    return n_days % 7, n_days // 7


def yearly_profile(
    qty: FloatArray,
    valid: BoolArray,
    position: YearPosition,
    min_days: int = MIN_YEARLY_DAYS,
) -> tuple[FloatArray, FloatArray]:
    """Week-of-year indices (n_series × 52, averaging 1), shrunk toward 1.

    ``qty`` is daily demand already divided by its weekday index; it is
    summed into 7-day blocks (ending on the last day) and the profile
    estimated from the blocks by :func:`yearly_from_weeks`.

    Args:
        qty: n_series × n_days weekday-adjusted demand.
        valid: same shape, True on base days.
        position: :func:`year_position` of the history's dates.
        min_days: evidence needed (valid days, and days of history).

    Returns:
        (index n_series × 52, strength n_series): strength is the mean
        shrinkage factor (0 = no yearly profile).
    """
    q = np.asarray(qty, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    x = np.where(v, q, 0.0)
    t_days = q.shape[1]
    folder = DayFolder(np.arange(t_days) % 7)
    centre = position.bin[folder.cut + 7 * np.arange(folder.weeks) + 3]
    return yearly_from_weeks(
        folder.weekly(x),
        folder.weekly(x * x),
        folder.weekly(v.astype(np.float64)),
        centre,
        min_days,
    )


def yearly_from_weeks(
    s1: FloatArray,
    s2: FloatArray,
    days: FloatArray,
    block_bin: IntArray,
    min_days: int = MIN_YEARLY_DAYS,
) -> tuple[FloatArray, FloatArray]:
    """Week-of-year indices from 7-day block sums (n_series × n_blocks):
    ``s1`` the sum, ``s2`` the sum of squares and ``days`` the number of
    valid days of each block of weekday-adjusted demand; ``block_bin`` the
    week-of-year bin of each block's centre day.

    1. Local level ``L_w``: the mean demand per valid day over the 52 blocks
       around block w (centred where the history allows, else the first or
       last 52). Dividing by it removes the level and any trend, so the ratio
       ``r_w = mean_w / L_w`` carries only the time of year (ratio to moving
       average, FPP3 §3.4 classical multiplicative decomposition).
    2. Raw index of bin b: ``r̄_b``, the mean of r over the blocks of week b
       of any year, weighted by their valid days (n_b in all). Estimation
       works on ``ln r̄_b`` (seasons are multiplicative, so the noise is
       relative): its noise variance is ``c² / n_b`` with c² the squared
       coefficient of variation of the daily values within a block, pooled
       over the blocks of the series. The log indices are smoothed over
       neighbouring weeks, circular weights (1, 2, 1)/4, giving ``g_b`` with
       noise variance ``v_b``.
    3. Empirical-Bayes (James–Stein) shrinkage toward the mean ḡ: the signal
       variance ``τ² = max(Var_b(g_b) − mean_b(v_b), 0)`` and
       ``index_b = exp(τ² / (τ² + v_b) · (g_b − ḡ))``. Little evidence (a
       week seen once, noisy days) or no season (τ² ≈ 0) gives an index near
       1; a clear season seen twice keeps its shape. Source: Efron & Morris
       (1975), "Data analysis using Stein's estimator", JASA 70(350):311–319.
    4. Rescale to average 1 over the 52 bins.

    Series with fewer than ``min_days`` valid days, or fewer than 52 blocks
    (a year) of history, get all-ones (no yearly profile).

    Returns:
        (index n_series × 52, strength n_series): strength is the mean
        shrinkage factor τ²/(τ² + v_b) (0 = no yearly profile).
    """
    n, weeks = s1.shape
    ones = np.ones((n, YEARLY_BINS))
    if weeks < max(_LOCAL_WEEKS, -(-min_days // 7)) or n == 0:
        return ones, np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cs = np.concatenate([np.zeros((n, 1)), np.cumsum(s1, axis=1)], axis=1)
        cn = np.concatenate([np.zeros((n, 1)), np.cumsum(days, axis=1)], axis=1)
        lo = np.clip(np.arange(weeks) - _LOCAL_WEEKS // 2, 0, weeks - _LOCAL_WEEKS)
        hi = lo + _LOCAL_WEEKS
        local_days = cn[:, hi] - cn[:, lo]
        local = np.where(local_days > 0, (cs[:, hi] - cs[:, lo]) / local_days, 0.0)
        use = (days > 0) & (local > 0) & (s1 > 0)
        mean = np.where(use, s1 / np.maximum(days, 1.0), 0.0)
        ratio = np.where(use, mean / np.where(local > 0, local, 1.0), 0.0)
        var = np.maximum(s2 / np.maximum(days, 1.0) - mean**2, 0.0) * days
        var = var / np.maximum(days - 1.0, 1.0)
        rel = np.where(use, var / np.where(use, mean, 1.0) ** 2, 0.0)
        dof = np.where(use, days - 1.0, 0.0)
        c2 = (rel * dof).sum(axis=1) / np.maximum(dof.sum(axis=1), 1.0)

        weight = np.where(use, days, 0.0)
        n_b = _to_bins(weight, block_bin)
        seen = n_b >= 2
        raw = np.where(seen, _to_bins(ratio * weight, block_bin) / np.maximum(n_b, 1.0), 1.0)
        noise = np.where(seen, c2[:, None] / np.maximum(n_b, 1.0), 0.0)
        g, noise, seen = _smooth(np.where(seen & (raw > 0), np.log(raw), 0.0), noise, seen)
        index, k = _shrink_log(g, noise, seen, YEARLY_BINS // 2)
        enough = days.sum(axis=1) >= min_days
        index = np.where(enough[:, None], index, 1.0)
        k = np.where(enough[:, None], k, 0.0)
        index = index / index.mean(axis=1, keepdims=True)
    return index, k.mean(axis=1)


def _to_bins(x: FloatArray, block_bin: IntArray) -> FloatArray:
    """Sum the block columns of ``x`` into their week-of-year bins (n × 52)."""
    bins = np.asarray(block_bin, dtype=np.int64)
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    first = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
    out = np.zeros((x.shape[0], YEARLY_BINS))
    if bins.size:
        out[:, sorted_bins[first]] = np.add.reduceat(x[:, order], first, axis=1)
    return out


def _smooth(
    g: FloatArray, noise: FloatArray, seen: BoolArray
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Circular (1, 2, 1)/4 moving average of the seen bins of each row, and
    the noise variance of the result (Σ w_j² v_j / (Σ w_j)²)."""
    w = seen.astype(np.float64)
    num = np.zeros_like(g)
    den = np.zeros_like(g)
    var = np.zeros_like(g)
    for shift, weight in ((-1, 1.0), (0, 2.0), (1, 1.0)):
        ws = np.roll(w, shift, axis=1) * weight
        num += ws * np.roll(g, shift, axis=1)
        den += ws
        var += ws * ws * np.roll(noise, shift, axis=1)
    ok = den > 0
    smooth = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    noise_out = np.where(ok, var / np.where(ok, den, 1.0) ** 2, np.inf)
    return smooth, noise_out, ok


def yearly_factor(index: FloatArray, position: YearPosition) -> FloatArray:
    """The yearly index of each series on each day (n_series × days),
    interpolated linearly between the centres of the week bins."""
    idx = np.asarray(index, dtype=np.float64)
    # (1 − w)·idx[lo] + w·idx[hi], with two n × days arrays instead of four
    out: FloatArray = idx[:, position.lo]
    out *= 1.0 - position.w
    upper = idx[:, position.hi]
    upper *= position.w
    out += upper
    return out
