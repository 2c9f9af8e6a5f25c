"""The forecasting engine: describe every series, then fit its candidates.

Passes over the n_series × n_days history, none with a per-series loop:

1. :func:`describe` — in chunks of :data:`CHUNK` rows (small enough that the
   temporaries stay in cache): base days, Syntetos–Boylan and XYZ classes,
   weekday and yearly profiles, from per-series tables (7 weekdays, 7-day
   blocks).
2. :func:`fit_block` — for a block of up to a few thousand series of one
   family, copies their demand into time-major buffers and steps every
   candidate kernel (:mod:`replenish.forecast.methods`) through the days side
   by side. While stepping it scores each kernel's one-step forecast
   (residuals), keeps its state at the backtest origins and sums its baseline
   on past promotion days; no series × days temporary is created, so the
   cost is a handful of vector operations per day.
3. :func:`fit_events` — the same for Croston-SBA and TSB on a block of
   series without seasonality, demand by demand (closed forms for the days
   in between): most slow movers, at the cost of their demands only.

The orchestration (which family, which candidates, the choice and the path)
is :func:`replenish.forecast.forecast_demand`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replenish.forecast.classify import sb_from_counts, xyz_from_weeks
from replenish.forecast.demand import DemandHistory
from replenish.forecast.methods import INIT_DAYS, Kernel, damped_steps
from replenish.forecast.promotions import PromotionDays
from replenish.forecast.seasonality import (
    MIN_YEARLY_DAYS,
    DayFolder,
    WeekdayTables,
    YearPosition,
    closed_from_tables,
    weekday_index,
    yearly_factor,
    yearly_from_weeks,
)
from replenish.forecast.selection import BACKTEST_STEPS

__all__ = [
    "CHUNK",
    "Calendar",
    "Description",
    "KernelScore",
    "describe",
    "fit_block",
    "fit_events",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Rows per chunk of :func:`describe` (temporaries ~ CHUNK × n_days × 8 bytes).
CHUNK = 512
#: Intermittent series selling on fewer of their base days get no profile
#: (see ``forecast_demand``); smooth and erratic ones always may.
YEARLY_MIN_SHARE = 0.2
#: A seasonal index below this carries no level information (a weekday that
#: never sells): its observations do not update the level.
MIN_INDEX = 1e-6


@dataclass(frozen=True)
class Calendar:
    """The days of the history and of the horizon.

    weekday_past / weekday_ahead: day of week of each history / horizon day;
    year_past / year_ahead: their :class:`YearPosition`; skip: days between
    the end of the history and the first horizon day; starts: backtest
    origins (columns of the history).
    """

    weekday_past: IntArray
    weekday_ahead: IntArray
    year_past: YearPosition
    year_ahead: YearPosition
    skip: int
    starts: IntArray


@dataclass
class Description:
    """Per-series results of :func:`describe` (length n_series)."""

    adi: FloatArray
    cv2: FloatArray
    demand_class: npt.NDArray[np.object_]
    xyz_class: npt.NDArray[np.object_]
    base_days: FloatArray
    nonzero_days: IntArray
    censored_days: IntArray
    sold: FloatArray
    weekday: FloatArray  # n × 7 weekday index
    yearly: FloatArray  # n × 52 week-of-year index
    yearly_strength: FloatArray
    informative_days: FloatArray  # base days on weekdays with an index > 0
    base_mean: FloatArray  # mean and population std of the base days' demand
    base_std: FloatArray
    clean: BoolArray  # every quantity finite and >= 0


class Scratch:
    """Work arrays for one chunk of rows, allocated once and reused: fresh
    memory is expensive to touch (page faults), reused memory is not."""

    def __init__(self, rows: int, n_days: int) -> None:
        self.q = np.empty((rows, n_days))
        self.qd = np.empty((rows, n_days))
        self.sq = np.empty((rows, n_days))
        self.base_f = np.empty((rows, n_days))
        self.flag_f = np.empty((rows, n_days))
        self.base = np.empty((rows, n_days), dtype=bool)
        self.flag = np.empty((rows, n_days), dtype=bool)


def _chunk(
    history: DemandHistory,
    promo: PromotionDays,
    rows: IntArray | slice,
    scratch: Scratch,
) -> tuple[FloatArray, BoolArray, bool]:
    """Demand (sanitised) and base-day mask of some rows, in ``scratch``;
    ``clean`` is True when no quantity had to be dropped (NaN, inf or
    negative)."""
    if isinstance(rows, slice):
        index = np.arange(*rows.indices(history.n_series))
        q: FloatArray = history.qty[rows]
        base = scratch.base[: len(index)]
        np.logical_not(history.censored[rows], out=base)
    else:
        index = np.asarray(rows, dtype=np.int64)
        q = scratch.q[: len(index)]
        np.take(history.qty, index, axis=0, out=q)
        base = scratch.base[: len(index)]
        np.take(history.censored, index, axis=0, out=base)
        np.logical_not(base, out=base)
    clean = bool(q.size == 0 or (np.isfinite(q).all() and q.min() >= 0))
    if not clean:
        ok = np.isfinite(q) & (q >= 0)
        q = np.where(ok, q, 0.0)
        base &= ok
    if promo.rows.size:
        at = promo.at(index)
        hit = at >= 0
        if hit.any():
            base[hit] &= ~promo.past[at[hit]]
    return q, base, clean


def describe(history: DemandHistory, promo: PromotionDays, cal: Calendar) -> Description:
    """Classes, profiles and counts of every series, :data:`CHUNK` rows at a
    time (see the module docstring)."""
    n = history.n_series
    out = Description(
        adi=np.full(n, np.nan),
        cv2=np.full(n, np.nan),
        demand_class=np.full(n, "none", dtype=object),
        xyz_class=np.full(n, None, dtype=object),
        base_days=np.zeros(n),
        nonzero_days=np.zeros(n, dtype=np.int64),
        censored_days=np.zeros(n, dtype=np.int64),
        sold=np.zeros(n),
        weekday=np.ones((n, 7)),
        yearly=np.ones((n, 52)),
        yearly_strength=np.zeros(n),
        informative_days=np.zeros(n),
        base_mean=np.full(n, np.nan),
        base_std=np.full(n, np.nan),
        clean=np.ones(n, dtype=bool),
    )
    folder = DayFolder(cal.weekday_past)
    centre_bin = cal.year_past.bin[folder.cut + 7 * np.arange(folder.weeks) + 3]

    scratch = Scratch(min(CHUNK, max(n, 1)), history.n_days)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, min(lo + CHUNK, n))
        m = sl.stop - lo
        q, base, clean = _chunk(history, promo, sl, scratch)
        out.clean[sl] = clean
        out.censored_days[sl] = history.censored[sl].sum(axis=1)
        out.sold[sl] = q.sum(axis=1)
        qd = np.multiply(q, base, out=scratch.qd[:m])
        sq = np.multiply(qd, qd, out=scratch.sq[:m])
        base_f = scratch.base_f[:m]
        np.copyto(base_f, base)
        demand_f = scratch.flag_f[:m]
        np.copyto(demand_f, np.greater(qd, 0.0, out=scratch.flag[:m]))
        tables = WeekdayTables(
            days=folder.by_weekday(base_f),
            demand_days=folder.by_weekday(demand_f),
            total=folder.by_weekday(qd),
            squares=folder.by_weekday(sq),
        )
        closed = closed_from_tables(tables)
        days = tables.days.sum(axis=1)
        open_days = days - np.where(closed, tables.days, 0.0).sum(axis=1)
        demand_days = tables.demand_days.sum(axis=1)
        total = tables.total.sum(axis=1)
        squares = tables.squares.sum(axis=1)
        adi, cv2, label = sb_from_counts(open_days, demand_days, total, squares)
        out.adi[sl], out.cv2[sl], out.demand_class[sl] = adi, cv2, label
        out.base_days[sl] = days
        out.nonzero_days[sl] = demand_days.astype(np.int64)
        mean = total / np.maximum(days, 1)
        out.base_mean[sl] = np.where(days > 0, mean, np.nan)
        out.base_std[sl] = np.where(
            days > 0, np.sqrt(np.maximum(squares / np.maximum(days, 1) - mean**2, 0.0)), np.nan
        )
        week_days = folder.weekly(base_f)
        _, xyz = xyz_from_weeks(folder.weekly(qd), week_days)
        out.xyz_class[sl] = xyz

        index = weekday_index(tables)
        out.weekday[sl] = index
        opened = index > MIN_INDEX
        out.informative_days[sl] = np.where(opened, tables.days, 0.0).sum(axis=1)
        # yearly profile: only for the series that will use one
        wants = (label != "none") & (demand_days >= YEARLY_MIN_SHARE * days)
        wants |= np.isin(label, ("smooth", "erratic"))
        if folder.weeks * 7 < MIN_YEARLY_DAYS or not wants.any():
            continue
        sub = np.flatnonzero(wants)
        every = len(sub) == m
        inv = np.where(opened[sub], 1.0 / np.where(opened[sub], index[sub], 1.0), 0.0)
        yearly, strength = yearly_from_weeks(
            folder.weekly_weighted(qd if every else qd[sub], inv),
            folder.weekly_weighted(sq if every else sq[sub], inv * inv),
            folder.weekly_weighted(
                base_f if every else base_f[sub], opened[sub].astype(np.float64)
            ),
            centre_bin,
        )
        out.yearly[lo + sub], out.yearly_strength[lo + sub] = yearly, strength
    return out


@dataclass
class KernelScore:
    """What :func:`fit_block` learned about one candidate (per series of the block).

    level, trend: state after the last day (trend None without one); phi its
    damping; sse / n_res: sum of squared one-step errors and their count
    (base days with a forecast); bt_abs, bt_sq, bt_n: backtest absolute and
    squared errors and their count; promo_fc, promo_y: the forecast and the
    demand summed over the past (uncensored) promotion days.
    """

    level: FloatArray
    trend: FloatArray | None
    phi: float
    sse: FloatArray
    n_res: FloatArray
    bt_abs: FloatArray
    bt_sq: FloatArray
    bt_n: FloatArray
    promo_fc: FloatArray
    promo_y: FloatArray


@dataclass
class BlockFit:
    """:func:`fit_block`'s result: one :class:`KernelScore` per candidate,
    the in-sample naive MAE (sum and count, before the first origin) and the
    days with demand in the backtest windows."""

    scores: list[KernelScore]
    naive_abs: FloatArray
    naive_n: FloatArray
    window_demands: FloatArray

    @classmethod
    def scored(
        cls, scores: list[KernelScore], y: FloatArray, valid: BoolArray, first_origin: int
    ) -> BlockFit:
        """The block's candidate scores with the naive scale and the demand
        days of its backtest windows (both measured from ``first_origin``)."""
        naive_abs, naive_n = _naive(y, valid, first_origin)
        return cls(
            scores=scores,
            naive_abs=naive_abs,
            naive_n=naive_n,
            window_demands=_window_demands(y, valid, first_origin),
        )


class Buffers:
    """Time-major work arrays, allocated once and reused block after block
    (fresh memory is expensive to touch; reused memory is not)."""

    def __init__(self, n_days: int, width: int) -> None:
        self.y = np.zeros((n_days, width))
        self.valid = np.zeros((n_days, width), dtype=bool)
        self.scratch = Scratch(min(CHUNK, width), n_days)


def _season_row(
    weekday: FloatArray, yearly: FloatArray, wd: int, lo: int, hi: int, w: float, out: FloatArray
) -> FloatArray:
    """Seasonal index of one day for every series (tables are 7 × B, 52 × B)."""
    np.multiply(yearly[lo], 1.0 - w, out=out)
    out += w * yearly[hi]
    out *= weekday[wd]
    return out


@dataclass
class _Block:
    """The time-major data of a block (views into :class:`Buffers`) and its
    past promotion days: ``promo_cols`` the promoted columns, ``promo_mask``
    days × len(promo_cols) (uncensored promotion days), ``promo_steps`` the
    days with any."""

    y: FloatArray
    valid: BoolArray
    promo_cols: IntArray
    promo_mask: BoolArray
    promo_steps: BoolArray


def _fill(history: DemandHistory, promo: PromotionDays, rows: IntArray, buffers: Buffers) -> _Block:
    """Copy the demand and base days of ``rows`` into the time-major buffers."""
    b = len(rows)
    t_days = history.n_days
    y_all, v_all = buffers.y[:, :b], buffers.valid[:, :b]
    promo_cols: list[int] = []
    promo_rows: list[int] = []
    for j in range(0, b, CHUNK):
        part = rows[j : j + CHUNK]
        q, base, _ = _chunk(history, promo, part, buffers.scratch)
        y_all[:, j : j + len(part)] = q.T
        v_all[:, j : j + len(part)] = base.T
        at = promo.at(part)
        promo_cols += list(np.flatnonzero(at >= 0) + j)
        promo_rows += list(at[at >= 0])
    p_cols = np.asarray(promo_cols, dtype=np.int64)
    p_mask: BoolArray = np.zeros((t_days, 0), dtype=bool)
    if p_cols.size:  # past promotion days that are not censored: T × k
        past = promo.past[np.asarray(promo_rows, dtype=np.int64)]
        p_mask = np.ascontiguousarray((past & ~history.censored[rows[p_cols]]).T)
    p_steps = np.asarray(p_mask.any(axis=1), dtype=bool)
    return _Block(y_all, v_all, p_cols, p_mask, p_steps)


def _naive(y: FloatArray, valid: BoolArray, until: int) -> tuple[FloatArray, FloatArray]:
    """Sum and count of |y_t − y_{t−1}| over the days t < ``until`` where both
    days are valid (time-major arrays; 64 days at a time)."""
    b = y.shape[1]
    total, count = np.zeros(b), np.zeros(b)
    for t0 in range(1, until, 64):
        t1 = min(t0 + 64, until)
        both = valid[t0:t1] & valid[t0 - 1 : t1 - 1]
        total += (np.abs(y[t0:t1] - y[t0 - 1 : t1 - 1]) * both).sum(axis=0)
        count += both.sum(axis=0)
    return total, count


def fit_block(
    history: DemandHistory,
    promo: PromotionDays,
    rows: IntArray,
    weekday: FloatArray,
    yearly: FloatArray,
    informative_days: FloatArray,
    cal: Calendar,
    make: Sequence[Callable[[FloatArray | int], Kernel]],
    level_init: Sequence[bool],
    buffers: Buffers,
) -> BlockFit:
    """Step every candidate over the history of ``rows`` (see module docstring).

    Args:
        history, promo: the inputs of the forecast.
        rows: the series of the block (indices into ``history``).
        weekday, yearly: their seasonal tables (B × 7, B × 52); all ones for
            no seasonality.
        informative_days: base days on open weekdays, per series (to stop
            the level initialisation early).
        cal: the calendar.
        make: per candidate, a factory taking the initial level (level
            methods) or the number of series (Croston, TSB).
        level_init: per candidate, whether it needs an initial level.
        buffers: reusable time-major work arrays (width >= len(rows)).
    """
    b = len(rows)
    t_days = history.n_days
    block = _fill(history, promo, rows, buffers)
    y_all, v_all = block.y, block.valid
    p_cols, p_mask, p_steps = block.promo_cols, block.promo_mask, block.promo_steps

    wt = np.ascontiguousarray(weekday.T)  # 7 × B
    yt = np.ascontiguousarray(yearly.T)  # 52 × B
    open_wd = wt > MIN_INDEX
    flat = bool(np.all(weekday == 1.0) and np.all(yearly == 1.0))
    pos, wdays = cal.year_past, cal.weekday_past
    season = np.ones(b)
    x = np.zeros(b)
    inf = np.empty(b, dtype=bool)

    def step_inputs(t: int) -> tuple[FloatArray, BoolArray]:
        """Deseasonalised demand and informative days of day t (no work when
        every series of the block is without seasonality)."""
        if flat:
            return y_all[t], v_all[t]
        w = int(wdays[t])
        _season_row(wt, yt, w, int(pos.lo[t]), int(pos.hi[t]), float(pos.w[t]), season)
        np.divide(y_all[t], season, out=x, where=open_wd[w])
        np.logical_and(v_all[t], open_wd[w], out=inf)
        return x, inf

    # initial level: mean of the first INIT_DAYS informative days (level methods)
    level0 = np.full(b, np.nan)
    if any(level_init):
        total, count = np.zeros(b), np.zeros(b)
        target = np.minimum(informative_days, INIT_DAYS)
        take = np.empty(b, dtype=bool)
        for t in range(t_days):
            if (count >= target).all():
                break
            xs, ok = step_inputs(t)
            np.less(count, INIT_DAYS, out=take)
            take &= ok
            total += xs * take
            count += take
        np.divide(total, count, out=level0, where=count > 0)

    kernels = [f(level0 if init else b) for f, init in zip(make, level_init, strict=True)]
    starts = [int(o) for o in cal.starts]
    start_set = set(starts)
    first_origin = starts[0] if starts else t_days
    saved: list[list[tuple[FloatArray, FloatArray | None, BoolArray | None]]] = [
        [] for _ in kernels
    ]
    sse = [np.zeros(b) for _ in kernels]
    n_res = [np.zeros(b) for _ in kernels]
    promo_fc = [np.zeros(b) for _ in kernels]
    promo_y = np.zeros(b)
    fc = np.empty(b)
    err = np.empty(b)
    weight = np.empty(b, dtype=bool)

    needs_demand = not all(level_init)
    demand = np.empty(b, dtype=bool)
    for t in range(t_days):
        xs, ok = step_inputs(t)
        y, v = y_all[t], v_all[t]
        if needs_demand:
            np.greater(xs, 0.0, out=demand)
            demand &= ok
        for k, kernel in enumerate(kernels):
            scored = kernel.scored()
            if t in start_set:
                lvl, tr = kernel.state()
                saved[k].append((lvl, tr, None if scored is None else scored.copy()))
            if flat:
                np.subtract(y, kernel.forecast(), out=err)
            else:
                np.multiply(kernel.forecast(), season, out=fc)
                np.subtract(y, fc, out=err)
            err *= err
            if scored is None:
                w = v
            else:
                np.logical_and(v, scored, out=weight)
                w = weight
            err *= w
            sse[k] += err
            n_res[k] += w
            if p_steps[t]:
                f_now = kernel.forecast() * season
                hit: BoolArray = p_mask[t]
                ok_fc = hit if scored is None else hit & scored[p_cols]
                promo_fc[k][p_cols] += np.where(ok_fc, f_now[p_cols], 0.0)
                if k == 0:
                    promo_y[p_cols] += np.where(hit, y[p_cols], 0.0)
            kernel.update(xs, ok, demand if needs_demand else None)

    # rolling-origin backtest from the saved states
    steps = BACKTEST_STEPS
    scores: list[KernelScore] = []
    for k, kernel in enumerate(kernels):
        damp = damped_steps(kernel.phi, steps)
        bt_abs, bt_sq, bt_n = np.zeros(b), np.zeros(b), np.zeros(b)
        for o, (lvl, tr, sc) in zip(starts, saved[k], strict=True):
            for h in range(min(steps, t_days - o)):
                t = o + h
                w_day = int(wdays[t])
                _season_row(wt, yt, w_day, int(pos.lo[t]), int(pos.hi[t]), float(pos.w[t]), fc)
                fc *= lvl if tr is None else lvl + damp[h] * tr
                np.subtract(y_all[t], fc, out=err)
                w = v_all[t] if sc is None else v_all[t] & sc
                bt_abs += np.abs(err) * w
                bt_sq += err * err * w
                bt_n += w
        lvl, tr = kernel.state()
        scores.append(
            KernelScore(
                level=lvl,
                trend=tr,
                phi=kernel.phi,
                sse=sse[k],
                n_res=n_res[k],
                bt_abs=bt_abs,
                bt_sq=bt_sq,
                bt_n=bt_n,
                promo_fc=promo_fc[k],
                promo_y=promo_y,
            )
        )
    return BlockFit.scored(scores, y_all, v_all, first_origin)


def _window_demands(y: FloatArray, valid: BoolArray, first_origin: int) -> FloatArray:
    """Days with demand in the backtest windows (from the first origin on)."""
    window = valid[first_origin:] & (y[first_origin:] > 0)
    out: FloatArray = window.sum(axis=0).astype(np.float64)
    return out


def fit_events(
    history: DemandHistory,
    promo: PromotionDays,
    rows: IntArray,
    cal: Calendar,
    alpha: float,
    with_tsb: bool,
    buffers: Buffers,
) -> BlockFit:
    """Croston-SBA (and TSB) on a block of series *without seasonality*,
    event by event: the same results as stepping :class:`~methods.CrostonSBA`
    and :class:`~methods.TSB` through every day (:func:`fit_block`), at the
    cost of the demand events only.

    Between two demands of a series nothing changes for Croston (its forecast
    f is flat) and TSB's probability only decays, p_j = p_e·r^(j−1) with
    r = 1 − α_p, so the errors of the days in between have closed forms. With
    g the valid days since the previous demand (this one included)::

        Croston SSE += (g − 1)·f² + (y − f)²
        TSB     SSE += z²·p_e²·(1 − r^(2(g−1))) / (1 − r²) + (y − z·p_e·r^(g−1))²

    then the usual updates (Croston: z, p ← z + α(y − z), p + α(g − p); TSB:
    p ← p_b + α_p(1 − p_b) with p_b = p_e·r^(g−1), z ← z + α_d(y − z)). The
    valid days after the last demand close the sums the same way.
    """
    b = len(rows)
    t_days = history.n_days
    block = _fill(history, promo, rows, buffers)
    y_all, v_all = block.y, block.valid
    t_ev, col = np.nonzero(v_all & (y_all > 0))  # ordered by day
    y_ev = y_all[t_ev, col]
    bounds = np.searchsorted(t_ev, np.arange(t_days + 1))
    count = np.zeros(b)  # valid days so far
    r = 1.0 - alpha
    r2 = r * r
    one_minus_r2 = 1.0 - r2 if r2 < 1.0 else 1.0
    bias = 1.0 - alpha / 2.0

    started = np.zeros(b, dtype=bool)
    last = np.zeros(b)  # valid-day count at the last demand
    cz, cp = np.zeros(b), np.ones(b)  # Croston size and interval
    cf = np.zeros(b)  # Croston forecast
    tz, tp = np.zeros(b), np.zeros(b)  # TSB size and probability after the last demand
    c_sse, t_sse, n_res = np.zeros(b), np.zeros(b), np.zeros(b)
    starts = [int(o) for o in cal.starts]
    saved: list[tuple[FloatArray, FloatArray, BoolArray]] = []
    p_cols, p_mask = block.promo_cols, block.promo_mask
    c_promo, t_promo, promo_y = np.zeros(b), np.zeros(b), np.zeros(b)

    def tsb_now(cols: IntArray | slice) -> FloatArray:
        """TSB's forecast for the coming day (made before it)."""
        out: FloatArray = tz[cols] * tp[cols] * r ** (count[cols] - last[cols])
        return out

    origin_set = set(starts)
    for t in range(t_days):
        if t in origin_set:
            saved.append((cf.copy(), tsb_now(slice(None)), started.copy()))
        if block.promo_steps[t]:
            hit = p_mask[t] & started[p_cols]
            c_promo[p_cols] += np.where(hit, cf[p_cols], 0.0)
            t_promo[p_cols] += np.where(hit, tsb_now(p_cols), 0.0)
            promo_y[p_cols] += np.where(p_mask[t], y_all[t, p_cols], 0.0)
        count += v_all[t]
        lo, hi = bounds[t], bounds[t + 1]
        if lo == hi:
            continue
        i = col[lo:hi]
        y = y_ev[lo:hi]
        c = count[i]
        s = started[i]
        g = c - last[i]
        f = cf[i]
        err = y - f
        c_sse[i] += np.where(s, (g - 1.0) * f * f + err * err, 0.0)
        pb = tp[i] * r ** (g - 1.0)
        z = tz[i]
        err = y - z * pb
        between = z * z * tp[i] ** 2 * (1.0 - r2 ** (g - 1.0)) / one_minus_r2
        t_sse[i] += np.where(s, between + err * err, 0.0)
        n_res[i] += np.where(s, g, 0.0)
        cz[i] = np.where(s, cz[i] + alpha * (y - cz[i]), y)
        cp[i] = np.where(s, cp[i] + alpha * (g - cp[i]), g)
        cf[i] = bias * cz[i] / cp[i]
        tp[i] = np.where(s, pb + alpha * (1.0 - pb), np.where(c == 1.0, 1.0, alpha))
        tz[i] = np.where(s, z + alpha * (y - z), y)
        started[i] = True
        last[i] = c

    trail = np.where(started, count - last, 0.0)
    c_sse += trail * cf * cf
    t_sse += tz * tz * tp * tp * (1.0 - r2**trail) / one_minus_r2
    n_res += trail
    t_final = tz * tp * r**trail

    first_origin = starts[0] if starts else t_days
    scores: list[KernelScore] = []
    kinds = [(cf, c_sse, c_promo, 0)] + ([(t_final, t_sse, t_promo, 1)] if with_tsb else [])
    for level, sse, promo_fc, which in kinds:
        bt_abs, bt_sq, bt_n = np.zeros(b), np.zeros(b), np.zeros(b)
        for o, snap in zip(starts, saved, strict=True):
            fc, sc = snap[which], snap[2]
            for t in range(o, min(o + BACKTEST_STEPS, t_days)):
                err = y_all[t] - fc
                w = v_all[t] & sc
                bt_abs += np.abs(err) * w
                bt_sq += err * err * w
                bt_n += w
        scores.append(
            KernelScore(
                level=level.copy(),
                trend=None,
                phi=1.0,
                sse=sse,
                n_res=n_res,
                bt_abs=bt_abs,
                bt_sq=bt_sq,
                bt_n=bt_n,
                promo_fc=promo_fc,
                promo_y=promo_y,
            )
        )
    return BlockFit.scored(scores, y_all, v_all, first_origin)


def season_ahead(weekday: FloatArray, yearly: FloatArray, cal: Calendar) -> FloatArray:
    """Seasonal index of every horizon day (B × horizon)."""
    out = yearly_factor(yearly, cal.year_ahead)
    out *= weekday[:, cal.weekday_ahead]  # in place: no third B × horizon array
    return out
