"""Promotions: which days of each series are promoted, and how much they lift demand.

Past promotion days are masked out of the base fit (a promotion is not the
normal level) and compared with the baseline forecast to learn a
multiplicative uplift per SKU; planned promotion days in the forecast horizon
get that uplift applied to their expected demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["PRIOR_UNITS", "PromotionDays", "Uplift", "learn_uplift", "promotion_days"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Weight of the prior in baseline units (see :func:`learn_uplift`).
PRIOR_UNITS = 20.0


@dataclass(frozen=True)
class PromotionDays:
    """The promotion days of the promoted series only (most series have none).

    Attributes:
        n_series: series of the forecast.
        rows: the promoted series (ascending indices).
        past: len(rows) × n_days of history, True on promotion days.
        ahead: len(rows) × horizon (from the forecast start), True on
            planned promotion days.
    """

    n_series: int
    rows: IntArray
    past: BoolArray
    ahead: BoolArray

    def at(self, series: npt.ArrayLike) -> IntArray:
        """Position in ``rows`` of each series index (-1: not promoted)."""
        idx = np.asarray(series, dtype=np.int64)
        if not len(self.rows):
            return np.full(idx.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.rows, idx), len(self.rows) - 1)
        return np.where(self.rows[pos] == idx, pos, -1).astype(np.int64)

    def days_ahead(self) -> IntArray:
        """Planned promotion days in the horizon, per series."""
        out = np.zeros(self.n_series, dtype=np.int64)
        out[self.rows] = self.ahead.sum(axis=1)
        return out


def _days(values: pd.Series) -> IntArray:
    ts = pd.to_datetime(values)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = np.asarray(ts.to_numpy(), dtype="datetime64[ns]").astype("datetime64[D]")
    return np.asarray(arr.astype(np.int64), dtype=np.int64)


def promotion_days(
    promotions: pd.DataFrame | None,
    keys: pd.DataFrame,
    history_start: pd.Timestamp,
    n_days: int,
    forecast_start: pd.Timestamp,
    horizon: int,
) -> PromotionDays:
    """Mark the promotion days of every series, in the history and ahead.

    A ``promotions`` row (promo_id, sku, location_id, start_date, end_date
    inclusive) covers the series of its sku at its location, or at every
    location when ``location_id`` is NULL. Rows with a missing sku or date,
    or ending before they start, are ignored. Built with a difference array
    over the promoted series only (no per-promotion or per-series loop); the
    result holds masks for the promoted series only.

    Args:
        promotions: the contract ``promotions`` frame, or None.
        keys: sku, location_id of each series (the forecast's rows).
        history_start: first day of the history (column 0).
        n_days: days of history.
        forecast_start: first day of the horizon.
        horizon: days ahead.
    """
    n = len(keys)
    empty = PromotionDays(
        n_series=n,
        rows=np.zeros(0, dtype=np.int64),
        past=np.zeros((0, n_days), dtype=bool),
        ahead=np.zeros((0, horizon), dtype=bool),
    )
    if promotions is None or promotions.empty or n == 0:
        return empty
    p = promotions
    ok = (
        p["sku"].notna().to_numpy()
        & p["start_date"].notna().to_numpy()
        & p["end_date"].notna().to_numpy()
    )
    p = p[ok]
    if p.empty:
        return empty
    promos = pd.DataFrame(
        {
            "sku": pd.Index(p["sku"]).astype("string"),
            "location_id": pd.Index(p["location_id"]).astype("string"),
            "first": _days(p["start_date"]),
            "last": _days(p["end_date"]),
        }
    )
    promoted_skus = pd.Index(promos["sku"].unique())
    in_promo = keys["sku"].astype("string").isin(promoted_skus).to_numpy()
    candidates = np.flatnonzero(in_promo)
    series = pd.DataFrame(
        {
            "sku": keys["sku"].astype("string").to_numpy()[candidates],
            "location_id": keys["location_id"].astype("string").to_numpy()[candidates],
            "row": candidates,
        }
    )
    everywhere = promos["location_id"].isna().to_numpy()
    matched = pd.concat(
        [
            promos[~everywhere].merge(series, on=["sku", "location_id"], how="inner"),
            promos[everywhere].drop(columns="location_id").merge(series, on="sku", how="inner"),
        ],
        ignore_index=True,
    )
    if matched.empty:
        return empty
    h0 = int(np.datetime64(pd.Timestamp(history_start).date(), "D").astype(np.int64))
    f0 = int(np.datetime64(pd.Timestamp(forecast_start).date(), "D").astype(np.int64))
    span = max(f0 + horizon - h0, n_days)
    lo = np.clip(matched["first"].to_numpy(np.int64) - h0, 0, span)
    hi = np.clip(matched["last"].to_numpy(np.int64) - h0 + 1, 0, span)
    use = hi > lo
    if not use.any():
        return empty
    rows_all = matched["row"].to_numpy(np.int64)[use]
    lo, hi = lo[use], hi[use]
    rows, local = np.unique(rows_all, return_inverse=True)
    diff = np.zeros((len(rows), span + 1), dtype=np.int32)
    np.add.at(diff, (local.ravel(), lo), 1)
    np.add.at(diff, (local.ravel(), hi), -1)
    on = np.cumsum(diff, axis=1)[:, :span] > 0
    ahead = np.zeros((len(rows), horizon), dtype=bool)
    a0 = f0 - h0
    if a0 >= 0:
        ahead[:] = on[:, a0 : a0 + horizon]
    else:  # the horizon starts inside the history (not used by forecast_demand)
        ahead[:, -a0:] = on[:, : horizon + a0]
    return PromotionDays(n_series=n, rows=rows, past=on[:, :n_days].copy(), ahead=ahead)


class Uplift(NamedTuple):
    """per_series: the uplift applied to each series' promotion days;
    learned: True where the series' SKU had past promotion days of its own;
    pooled: the uplift of a SKU never promoted before."""

    per_series: FloatArray
    learned: BoolArray
    pooled: float


def learn_uplift(
    actual: FloatArray,
    baseline: FloatArray,
    sku_codes: IntArray,
    prior_units: float = PRIOR_UNITS,
) -> Uplift:
    """Multiplicative promotion uplift per SKU, shrunk toward the pooled one.

    ``actual`` and ``baseline`` are, per series, the demand on its past
    (uncensored) promotion days and the baseline forecast for those same
    days (what the base model, which never saw promotion days, expected).
    Summed over the locations of each SKU s (A_s, B_s) and over all promoted
    SKUs (A, B)::

        pooled u₀ = (A + k) / (B + k)                  (shrunk toward 1)
        u_s      = (A_s + k · u₀) / (B_s + k)          (shrunk toward u₀)

    with k = ``prior_units`` baseline units of prior weight: the posterior
    mean of a multiplier of a Poisson rate under a Gamma prior of mean u₀
    (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.6). A promotion
    that lifted 100 expected units to 250 gives u = (250 + 20·u₀)/120, close
    to 2.5; one seen over 5 expected units stays close to u₀. A SKU without
    past promotion days gets u₀; u₀ = 1 when nothing was ever promoted.

    Returns:
        :class:`Uplift` (never negative).
    """
    a = np.nan_to_num(np.asarray(actual, dtype=np.float64), nan=0.0, posinf=0.0)
    b = np.nan_to_num(np.asarray(baseline, dtype=np.float64), nan=0.0, posinf=0.0)
    codes = np.asarray(sku_codes, dtype=np.int64)
    n_sku = int(codes.max()) + 1 if codes.size else 0
    a_s = np.bincount(codes, weights=a, minlength=n_sku)
    b_s = np.bincount(codes, weights=b, minlength=n_sku)
    seen = b_s > 0
    k = float(prior_units)
    pooled = float((a_s[seen].sum() + k) / (b_s[seen].sum() + k))
    u_s = np.where(seen, (a_s + k * pooled) / (b_s + k), pooled)
    per_series = np.maximum(u_s[codes], 0.0) if codes.size else np.zeros(0)
    return Uplift(per_series=per_series, learned=seen[codes], pooled=max(pooled, 0.0))
