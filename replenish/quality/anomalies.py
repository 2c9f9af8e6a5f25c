"""Demand spikes: a sales line far above what its SKU × location usually sells.

The score of a sales line (vectorised over every line and series at once):

* Daily demand ``D`` of a series (SKU × location) is the sum of the counted
  lines' ``qty`` per day of ``ordered_at`` — the quantity the forecast learns
  from. Counted: status not in
  :data:`~replenish.model.CANCELLED_SALES_STATUSES` (case-insensitive) and
  ``qty > 0``.
* The statistics are taken over the series' *days with demand* (Croston's
  split of demand into sizes and intervals, Croston 1972, "Forecasting and
  stock control for intermittent demands", ORQ 23(3)): a slow mover's line is
  compared with its usual order size, not with a mean diluted by empty days.
* Leave one day out: the line's own day is left out of its series' mean and
  standard deviation, so a spike does not hide itself by inflating σ::

      n' = n − 1,  μ' = (ΣD − D_t) / n',
      σ' = sqrt((ΣD² − D_t² − n'·μ'²) / (n' − 1))        (sample std)
      σ  = max(σ', sqrt(μ'))                               (Poisson floor)
      score = (qty − μ') / σ

  The Poisson floor keeps a series whose days all sold the same quantity
  (σ' = 0) from flagging any larger line: counts vary at least like a
  Poisson variable, whose variance is its mean.
* The *line* is scored, not the day: a day made big by many ordinary lines
  (a rush, a promotion) is real demand; one line larger than an abnormal day
  is what a typing error (an extra zero) or a bulk order looks like, and a
  line is what can be quarantined, explained and released.

Not scored (score NaN, so the GX expectation ignores the line): lines that
are not counted; series with fewer than ``min_days`` *other* days with
demand (too little history to know what is normal); lines of an exempt
channel (e.g. ``b2b``) or of a released order; lines ordered on a day of a
promotion of their SKU (at their location, or at every location when the
promotion's ``location_id`` is empty). Those lines still count in the
statistics of the others: they are demand.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import CANCELLED_SALES_STATUSES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SpikeScores:
    """Per sales line (in the order of the input frame)."""

    score: FloatArray  # (qty − μ) / σ; NaN: not scored
    mean: FloatArray  # μ': mean daily demand of the series' other days with demand
    std: FloatArray  # σ: the standard deviation used (after the Poisson floor)
    days: IntArray  # n': the series' other days with demand
    #: why a scored-looking line was not scored: "", "channel", "released", "promotion"
    exempt: npt.NDArray[np.object_]


def _codes(values: pd.Series) -> tuple[IntArray, pd.Index]:
    """Integer codes (-1: missing) and the distinct values; a categorical's own codes."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat_codes = np.asarray(values.cat.codes, dtype=np.int64)
        return cat_codes, pd.Index(values.cat.categories)
    codes, uniques = pd.factorize(values)
    int_codes: IntArray = np.asarray(codes, dtype=np.int64)
    return int_codes, pd.Index(uniques)


def _counted(sales: pd.DataFrame) -> npt.NDArray[np.bool_]:
    codes, names = _codes(sales["status"])
    lowered = pd.Index(np.asarray(names, dtype=object)).astype("string").str.strip().str.lower()
    cancelled = np.append(np.asarray(lowered.isin(CANCELLED_SALES_STATUSES), dtype=bool), False)
    qty = sales["qty"].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.asarray(~cancelled[codes] & (qty > 0), dtype=bool)


def _in(values: pd.Series, members: Collection[str], *, fold: bool) -> npt.NDArray[np.bool_]:
    """``values`` in ``members``, comparing the few distinct values only."""
    if not members:
        return np.zeros(len(values), dtype=bool)
    codes, names = _codes(values)
    index = pd.Index(np.asarray(names, dtype=object)).astype("string")
    wanted = {m.strip().lower() for m in members} if fold else set(members)
    if fold:
        index = index.str.strip().str.lower()
    hit = np.append(np.asarray(index.isin(wanted), dtype=bool), False)
    return np.asarray(hit[codes], dtype=bool)


def spike_scores(
    sales: pd.DataFrame,
    promotions: pd.DataFrame | None = None,
    *,
    min_days: int = 20,
    exempt_channels: Collection[str] = (),
    released_orders: Collection[str] = (),
    include: npt.NDArray[np.bool_] | None = None,
) -> SpikeScores:
    """Score every line of ``sales``; see the module docstring for the formula
    and what is not scored.

    Args:
        sales: a ``sales_order_lines`` frame (sku, location_id, channel,
            order_id, qty, ordered_at, status are read; string columns may be
            categoricals). Lines with a missing sku, location or date are not
            counted.
        promotions: a ``promotions`` contract frame; their days are not scored.
        min_days: fewest other days with demand a series needs to be scored (>= 2).
        exempt_channels: channels whose lines are not scored (case-insensitive).
        released_orders: order ids whose lines are not scored (exact match).
        include: lines to consider at all (default: every line); the others
            (e.g. rows the gate rejected) neither count nor are scored.
    """
    if min_days < 2:
        raise ValueError("min_days must be >= 2 (a standard deviation needs two days)")
    n_lines = len(sales)
    score = np.full(n_lines, np.nan)
    mean = np.full(n_lines, np.nan)
    std = np.full(n_lines, np.nan)
    days = np.zeros(n_lines, dtype=np.int64)
    exempt = np.full(n_lines, "", dtype=object)
    if n_lines == 0:
        return SpikeScores(score, mean, std, days, exempt)

    counted = _counted(sales)
    sku_codes, skus = _codes(sales["sku"])
    loc_codes, locs = _codes(sales["location_id"])
    series = sku_codes.astype(np.int64) * max(len(locs), 1) + loc_codes
    day = sales["ordered_at"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    day_no = day.astype(np.int64)
    counted &= (sku_codes >= 0) & (loc_codes >= 0) & ~np.isnat(day)
    if include is not None:
        counted &= include

    rows = np.flatnonzero(counted)
    if len(rows) == 0:
        return SpikeScores(score, mean, std, days, exempt)
    qty = sales["qty"].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    s = series[rows]
    span = int(day_no[rows].max() - day_no[rows].min()) + 1
    series_day = s * span + (day_no[rows] - day_no[rows].min())
    sd_codes, sd_keys = pd.factorize(series_day)
    daily = np.bincount(sd_codes, weights=qty)  # D per series-day
    sd_series = np.asarray(sd_keys, dtype=np.int64) // span
    n_series = int(series.max()) + 1
    n = np.bincount(sd_series, minlength=n_series).astype(np.float64)
    s1 = np.bincount(sd_series, weights=daily, minlength=n_series)
    s2 = np.bincount(sd_series, weights=daily * daily, minlength=n_series)

    d_t = daily[sd_codes]
    n1 = n[s] - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (s1[s] - d_t) / n1
        var = np.maximum(s2[s] - d_t * d_t - n1 * mu * mu, 0.0) / (n1 - 1.0)
        sigma = np.maximum(np.sqrt(var), np.sqrt(np.maximum(mu, 0.0)))
        z = (qty - mu) / sigma
    enough = n1 >= min_days
    mean[rows] = np.where(n1 >= 1, mu, np.nan)
    std[rows] = np.where(n1 >= 2, sigma, np.nan)
    days[rows] = n1.astype(np.int64)
    score[rows] = np.where(enough & np.isfinite(z), z, np.nan)

    # exemptions: kept in the statistics, not scored
    by_channel = _in(sales["channel"], exempt_channels, fold=True)
    by_order = _in(sales["order_id"], released_orders, fold=False)
    on_promo = _promotion_days(sales, promotions, sku_codes, skus, loc_codes, locs, day)
    for flag, why in ((on_promo, "promotion"), (by_order, "released"), (by_channel, "channel")):
        hit = flag & counted
        exempt[hit] = why
        score[hit] = np.nan
    return SpikeScores(score, mean, std, days, exempt)


def _promotion_days(
    sales: pd.DataFrame,
    promotions: pd.DataFrame | None,
    sku_codes: IntArray,
    skus: pd.Index,
    loc_codes: IntArray,
    locs: pd.Index,
    day: npt.NDArray[np.datetime64],
) -> npt.NDArray[np.bool_]:
    """Lines ordered on a day of a promotion of their SKU (at their location,
    or anywhere when the promotion's location is empty)."""
    out = np.zeros(len(sales), dtype=bool)
    if promotions is None or promotions.empty:
        return out
    promo = promotions.dropna(subset=["sku", "start_date", "end_date"])
    p_sku = pd.Index(skus).get_indexer(promo["sku"].astype(object))
    found = p_sku >= 0
    if not found.any():
        return out
    promo = promo[found]
    p_sku = p_sku[found]
    p_loc_text = promo["location_id"]
    known = pd.Index(locs).get_indexer(p_loc_text.astype(object).fillna(""))
    # -1: every location (empty); -2: a location without sales (matches no line)
    p_loc = np.where(p_loc_text.isna().to_numpy(), -1, np.where(known >= 0, known, -2))
    lines = np.flatnonzero(np.isin(sku_codes, p_sku))
    if len(lines) == 0:
        return out
    left = pd.DataFrame({"line": lines, "sku": sku_codes[lines]})
    right = pd.DataFrame(
        {
            "sku": p_sku,
            "loc": p_loc,
            "start": promo["start_date"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"),
            "end": promo["end_date"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"),
        }
    )
    pairs = left.merge(right, on="sku")
    line = pairs["line"].to_numpy()
    d = day[line]
    match = (
        (d >= pairs["start"].to_numpy())
        & (d <= pairs["end"].to_numpy())
        & ((pairs["loc"].to_numpy() < 0) | (pairs["loc"].to_numpy() == loc_codes[line]))
    )
    out[line[match]] = True
    return out


__all__ = ["SpikeScores", "spike_scores"]
