"""Demand classification and forecasting, all series at once.

Usage::

    history = daily_demand(
        snapshot.sales_order_lines, as_of, 730, snapshot.stock_history,
        returns=snapshot.returns,
    )
    forecast = forecast_demand(history, promotions=snapshot.promotions, as_of=as_of)
    forecast.frame        # one row per series: class, method, mean, std, ...
    forecast.path         # n_series × horizon expected demand per day from as_of

Each Syntetos–Boylan class has candidate methods; the rolling-origin backtest
picks one per series (DESIGN.md; docs/forecasting.md):

==================  =====================================  ==========================
demand_class        candidates (first = default)           seasonal profiles
==================  =====================================  ==========================
smooth, erratic     ``ses_weekday``, ``holt_damped``       weekday (+ yearly)
intermittent, lumpy ``croston_sba``, ``tsb``               as smooth when selling on
                                                           ≥ 1 day in 5, else none
none                ``none``: 0 units/day (NaN when every day is censored)
==================  =====================================  ==========================

A series whose chosen fit yields NaN/inf falls back to ``mean_8w`` (the mean
of its last 8 weeks), flagged in ``fallback``; the other series are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.forecast import methods
from replenish.forecast.demand import DemandHistory, daily_demand
from replenish.forecast.engine import (
    YEARLY_MIN_SHARE,
    Buffers,
    Calendar,
    Description,
    describe,
    fit_block,
    fit_events,
    season_ahead,
)
from replenish.forecast.methods import Kernel, damped_steps
from replenish.forecast.promotions import PromotionDays, learn_uplift, promotion_days
from replenish.forecast.result import Forecast
from replenish.forecast.seasonality import weekdays, year_position
from replenish.forecast.selection import MIN_BACKTEST_DEMANDS, choose, origins

__all__ = [
    "FORECAST_COLUMNS",
    "DemandHistory",
    "Forecast",
    "daily_demand",
    "forecast_demand",
]

FORECAST_COLUMNS = [
    "sku",
    "location_id",
    "demand_class",
    "method",
    "adi",
    "cv2",
    "demand_mean",
    "demand_std",
    "n_days",
    "nonzero_days",
    "censored_days",
    "xyz_class",
    "trend",
    "seasonality",
    "promo_uplift",
    "promo_days_ahead",
    "return_rate",
    "backtest_mae",
    "fallback",
]

#: Series fitted per block: bounds the time-major work arrays
#: (days × block × 9 bytes) without a per-series loop.
_BLOCK = 8192
#: Fit intermittent blocks without seasonality event by event (same results
#: as stepping every day, much faster); False only to compare the two.
_EVENTS = True
#: Days of the path averaged into ``demand_mean``.
MEAN_DAYS = 28
#: A weekday profile within this of 1 on every day counts as flat.
_FLAT = 0.01

_LEVEL_CLASSES = ("smooth", "erratic")
_INTERMITTENT_CLASSES = ("intermittent", "lumpy")
_SEASONALITY = np.array(["none", "weekday", "weekday+yearly"], dtype=object)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Candidate:
    name: str
    make: Callable[[FloatArray | int], Kernel]
    needs_level: bool


def _level_candidates(alpha: float, select: bool) -> list[_Candidate]:
    out = [_Candidate("ses_weekday", lambda lv: methods.SES(np.asarray(lv), alpha), True)]
    if select:
        out.append(
            _Candidate("holt_damped", lambda lv: methods.HoltDamped(np.asarray(lv), alpha), True)
        )
    return out


def _intermittent_candidates(alpha: float, select: bool) -> list[_Candidate]:
    out = [_Candidate("croston_sba", lambda n: methods.CrostonSBA(int(n), alpha), False)]
    if select:
        out.append(_Candidate("tsb", lambda n: methods.TSB(int(n), alpha, alpha), False))
    return out


@dataclass
class _Out:
    """Per-series results, filled block by block (n = all series)."""

    n: int
    horizon: int
    path: FloatArray = field(init=False)
    std: FloatArray = field(init=False)
    trend: FloatArray = field(init=False)
    backtest: FloatArray = field(init=False)
    season: IntArray = field(init=False)
    method: npt.NDArray[np.object_] = field(init=False)
    fallback: BoolArray = field(init=False)
    promo_actual: FloatArray = field(init=False)
    promo_baseline: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        n = self.n
        self.path = np.zeros((n, self.horizon))
        self.std = np.zeros(n)
        self.trend = np.zeros(n)
        self.backtest = np.full(n, np.nan)
        self.season = np.zeros(n, dtype=np.int64)
        self.method = np.full(n, "none", dtype=object)
        self.fallback = np.zeros(n, dtype=bool)
        self.promo_actual = np.zeros(n)
        self.promo_baseline = np.zeros(n)


def forecast_demand(
    history: DemandHistory,
    *,
    promotions: pd.DataFrame | None = None,
    as_of: date | None = None,
    horizon: int = 120,
    alpha: float = 0.1,
    select_by_backtest: bool = True,
) -> Forecast:
    """Classify every series, choose its method and forecast its daily demand.

    Per series (all series at once, in blocks of rows; loops only over time):

    1. Base days: not censored (``history.censored``), not a promotion day,
       a finite quantity >= 0. Only base days teach the base model; the
       promotion days teach the uplift.
    2. Classes: Syntetos–Boylan on the base days (leaving out weekdays the
       series is evidently never sold on: :func:`classify.closed_weekdays`)
       and XYZ on weekly demand.
    3. Seasonal profiles: weekday × week-of-year (≥ 1 year of evidence), both
       shrunk toward flat by their evidence; intermittent series selling on
       fewer than 1 base day in 5 get none.
    4. Candidates on the deseasonalised demand: smooth/erratic SES or Holt
       damped, intermittent/lumpy Croston-SBA or TSB. Choice: the lowest
       error over a rolling-origin backtest (8 weekly origins, 7 days ahead;
       MAE for smooth/erratic, MSE for intermittent/lumpy, see
       :mod:`selection`), the default (first) candidate unless the windows
       hold >= 10 days with demand; with ``select_by_backtest=False`` always
       the default. A series whose candidates all yield NaN/inf falls back to
       ``mean_8w`` (the mean of its last 8 weeks), flagged.
    5. Promotions: uplift learned per SKU from past promotion days
       (:func:`promotions.learn_uplift`), applied to the planned days ahead.

    Args:
        history: output of :func:`daily_demand`.
        promotions: the contract ``promotions`` table (past and planned), or None.
        as_of: first day of the forecast; default the day after the history.
        horizon: days forecast (>= 1).
        alpha: smoothing of every method's level (and Croston/TSB's size and
            interval or probability), in (0, 1].
        select_by_backtest: choose the method per series (else the default).

    Returns:
        A :class:`Forecast`: ``frame`` with :data:`FORECAST_COLUMNS` (one row
        per series in ``history.keys`` order) and ``path`` (n × horizon):

        * demand_class, adi, cv2 — Syntetos–Boylan on the base days;
        * method — 'ses_weekday' | 'holt_damped' | 'croston_sba' | 'tsb' |
          'mean_8w' (fallback) | 'none';
        * demand_mean — mean of the path over its first 28 days (units/day);
        * demand_std — RMSE of the one-step-ahead daily errors on base days
          (units/day); for class 'none' mean and std are 0, or NaN when
          every day was censored (demand unknown);
        * n_days, nonzero_days (base days with demand), censored_days;
        * xyz_class — 'X' | 'Y' | 'Z' by the CV of weekly demand (<NA>: unknown);
        * trend — damped trend per day of the level (0 unless holt_damped);
        * seasonality — 'none' | 'weekday' | 'weekday+yearly';
        * promo_uplift — multiplier of promotion days (learned for the SKU,
          else pooled when a promotion is planned, else 1.0);
        * promo_days_ahead — planned promotion days within the horizon;
        * return_rate — restockable returned / ordered units in the window
          (0 when returns were not read);
        * backtest_mae — MAE of the chosen method in the backtest divided by
          the in-sample naive MAE (MASE-like; NaN when not measurable);
        * fallback — True when the series fell back to ``mean_8w``.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]")
    qty = history.qty
    n_series, n_days = qty.shape
    if len(history.dates) != n_days:
        raise ValueError("history.dates must have one date per column of history.qty")
    history_start = (
        pd.Timestamp(history.dates[0]) if n_days else pd.Timestamp(as_of or date.today())
    )
    history_end = history_start + pd.Timedelta(days=n_days)  # the day after the history
    start = pd.Timestamp(as_of) if as_of is not None else history_end
    skip = int((start.normalize() - history_end.normalize()) // pd.Timedelta(days=1))
    if skip < 0:
        raise ValueError("as_of must not fall inside the history")
    ahead_dates = pd.date_range(start.normalize(), periods=horizon, freq="D")
    cal = Calendar(
        weekday_past=weekdays(history.dates, n_days),
        weekday_ahead=np.asarray(ahead_dates.day_of_week, dtype=np.int64),
        year_past=year_position(history.dates),
        year_ahead=year_position(ahead_dates),
        skip=skip,
        starts=origins(n_days),
    )
    promo = promotion_days(promotions, history.keys, history_start, n_days, start, horizon)

    out = _Out(n_series, horizon)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        desc = describe(history, promo, cal)
        label = desc.demand_class
        level_rows = np.flatnonzero(np.isin(label, _LEVEL_CLASSES))
        sparse_rows = np.flatnonzero(np.isin(label, _INTERMITTENT_CLASSES))
        # intermittent series without any seasonality (rare sellers get none,
        # see _fit_rows) are fitted event by event, the others day by day: the
        # same numbers up to rounding. Two families, so that the choice is made
        # per series, never by the company a series keeps in its block: the
        # results do not depend on how the series are split into partitions.
        share = desc.nonzero_days[sparse_rows] / np.maximum(desc.base_days[sparse_rows], 1)
        flat = (share < YEARLY_MIN_SHARE) | (
            np.all(desc.weekday[sparse_rows] == 1.0, axis=1)
            & np.all(desc.yearly[sparse_rows] == 1.0, axis=1)
        )
        families = [
            (level_rows, _level_candidates, False),
            (sparse_rows[flat], _intermittent_candidates, True),
            (sparse_rows[~flat], _intermittent_candidates, True),
        ]
        width = min(_BLOCK, max([len(rows) for rows, _, _ in families] + [1]))
        buffers = Buffers(n_days, width)
        for rows, candidates, intermittent in families:
            cands = candidates(alpha, select_by_backtest)
            for lo in range(0, len(rows), _BLOCK):
                block = rows[lo : lo + _BLOCK]
                _fit_rows(
                    history, promo, block, desc, cal, cands, intermittent, alpha, buffers, out
                )
        del buffers
        unknown = desc.base_days == 0
        out.path[unknown] = np.nan
        out.std[unknown] = np.nan

        sku_codes, _ = pd.factorize(history.keys["sku"].astype("string"))
        uplift = learn_uplift(out.promo_actual, out.promo_baseline, np.asarray(sku_codes))
        if promo.rows.size:
            factor = np.where(promo.ahead, uplift.per_series[promo.rows][:, None], 1.0)
            out.path[promo.rows] *= factor
        mean = out.path[:, : min(MEAN_DAYS, horizon)].mean(axis=1)

    days_ahead = promo.days_ahead()
    promo_uplift = np.where(
        uplift.learned, uplift.per_series, np.where(days_ahead > 0, uplift.pooled, 1.0)
    )
    if history.returned is not None:
        sold = desc.sold
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(sold > 0, history.returned / np.where(sold > 0, sold, 1.0), 0.0)
        return_rate = np.clip(rate, 0.0, 1.0)
    else:
        return_rate = np.zeros(n_series)

    frame = pd.DataFrame(
        {
            "sku": history.keys["sku"].astype("string").to_numpy(),
            "location_id": history.keys["location_id"].astype("string").to_numpy(),
            "demand_class": pd.array(desc.demand_class, dtype="string"),
            "method": pd.array(out.method, dtype="string"),
            "adi": desc.adi,
            "cv2": desc.cv2,
            "demand_mean": mean,
            "demand_std": out.std,
            "n_days": np.full(n_series, n_days, dtype=np.int64),
            "nonzero_days": desc.nonzero_days,
            "censored_days": desc.censored_days,
            "xyz_class": pd.array(desc.xyz_class, dtype="string"),
            "trend": out.trend,
            "seasonality": pd.array(_SEASONALITY[out.season], dtype="string"),
            "promo_uplift": promo_uplift,
            "promo_days_ahead": days_ahead,
            "return_rate": return_rate,
            "backtest_mae": out.backtest,
            "fallback": out.fallback,
        }
    ).astype({"sku": "string", "location_id": "string"})
    return Forecast(frame=frame, path=out.path, start=start.date())


def _fit_rows(
    history: DemandHistory,
    promo: PromotionDays,
    rows: IntArray,
    desc: Description,
    cal: Calendar,
    candidates: list[_Candidate],
    intermittent: bool,
    alpha: float,
    buffers: Buffers,
    out: _Out,
) -> None:
    """Fit the candidates of one family on a block of series, choose one per
    series, and write its path and statistics into ``out``."""
    weekday = desc.weekday[rows]
    yearly = desc.yearly[rows]
    strength = desc.yearly_strength[rows]
    if intermittent:
        share = desc.nonzero_days[rows] / np.maximum(desc.base_days[rows], 1)
        rare = share < YEARLY_MIN_SHARE
        weekday[rare], yearly[rare], strength = 1.0, 1.0, np.where(rare, 0.0, strength)
    flat_week = np.abs(weekday - 1.0).max(axis=1) <= _FLAT
    season = np.where(strength > 0, 2, np.where(flat_week, 0, 1)).astype(np.int64)

    if intermittent and _EVENTS and np.all(weekday == 1.0) and np.all(yearly == 1.0):
        # no seasonality in the block: the same fit, event by event (fast)
        fit = fit_events(history, promo, rows, cal, alpha, len(candidates) > 1, buffers)
    else:
        fit = fit_block(
            history,
            promo,
            rows,
            weekday,
            yearly,
            desc.informative_days[rows],
            cal,
            [c.make for c in candidates],
            [c.needs_level for c in candidates],
            buffers,
        )
    b = len(rows)
    k = len(candidates)
    criterion = np.full((b, k), np.nan)
    mae = np.full((b, k), np.nan)
    usable = np.zeros((b, k), dtype=bool)
    std = np.full((b, k), np.nan)
    for c, score in enumerate(fit.scores):
        has = score.bt_n > 0
        mae[:, c] = np.where(has, score.bt_abs / np.maximum(score.bt_n, 1), np.nan)
        mse = np.where(has, score.bt_sq / np.maximum(score.bt_n, 1), np.nan)
        criterion[:, c] = mse if intermittent else mae[:, c]
        rmse = np.sqrt(score.sse / np.maximum(score.n_res, 1))
        std[:, c] = np.where(score.n_res > 0, rmse, desc.base_std[rows])
        ok = np.isfinite(score.level) & np.isfinite(std[:, c])
        if score.trend is not None:
            ok &= np.isfinite(score.trend)
        usable[:, c] = ok
    criterion[fit.window_demands < MIN_BACKTEST_DEMANDS, 1:] = np.nan
    pick = choose(criterion, usable)
    chosen = pick >= 0
    take = np.maximum(pick, 0)
    idx = np.arange(b)

    naive = np.where(fit.naive_n > 0, fit.naive_abs / np.maximum(fit.naive_n, 1), 0.0)
    level_mean = np.nan_to_num(desc.base_mean[rows])
    scale = np.where(naive > 0, naive, np.where(level_mean > 0, level_mean, 1.0))

    # the path of each candidate's series, written straight into out.path (the
    # rows not chosen are the fallback's below): level (+ damped trend) times
    # the seasonal index, element by element, no block × horizon copies
    trend = np.zeros(b)
    promo_fc = np.zeros(b)
    for c, score in enumerate(fit.scores):
        mine = chosen & (pick == c)
        if not mine.any():
            continue
        base = score.level[mine, None]
        if score.trend is not None:
            damp = damped_steps(score.phi, cal.skip + out.horizon)[cal.skip :]
            base = base + score.trend[mine, None] * damp[None, :]
            trend[mine] = score.trend[mine]
        path = season_ahead(weekday[mine], yearly[mine], cal)
        path *= base
        out.path[rows[mine]] = np.maximum(path, 0.0, out=path)
        promo_fc[mine] = score.promo_fc[mine]
    names = np.array([c.name for c in candidates], dtype=object)
    out.std[rows] = std[idx, take]
    out.backtest[rows] = mae[idx, take] / scale
    out.method[rows] = names[take]
    out.season[rows] = season
    out.trend[rows] = trend
    out.promo_actual[rows] = np.where(chosen, fit.scores[0].promo_y, 0.0)
    out.promo_baseline[rows] = np.where(chosen, promo_fc, 0.0)

    if not chosen.all():
        bad = rows[~chosen]
        q = history.qty[bad]
        valid = ~history.censored[bad] & np.isfinite(q) & (q >= 0)
        at = promo.at(bad)
        if (at >= 0).any():
            valid[at >= 0] &= ~promo.past[at[at >= 0]]
        mean, sd = methods.recent_mean(q, valid)
        out.path[bad] = mean[:, None]
        out.std[bad] = sd
        out.backtest[bad] = np.nan
        out.method[bad] = "mean_8w"
        out.season[bad] = 0
        out.trend[bad] = 0.0
        out.fallback[bad] = True
