"""Daily demand matrix per SKU × location, with censored (stock-out) days.

One row per series, one column per day: the shape every forecasting method in
:mod:`replenish.forecast.methods` works on, all series at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import CANCELLED_SALES_STATUSES

__all__ = ["DemandHistory", "daily_demand"]

KEY_COLUMNS = ["sku", "location_id"]


@dataclass(frozen=True)
class DemandHistory:
    """Daily demand of every series over the history window.

    Attributes:
        keys: columns sku, location_id; one row per series, sorted; row i of
            ``keys`` is row i of ``qty`` and ``censored``.
        dates: the days of the window (daily, ascending; ``as_of`` excluded).
        qty: float64, n_series × n_days; units ordered per day (all
            non-cancelled lines, shipped or still open).
        censored: bool, same shape; True where the end-of-day stock was <= 0,
            i.e. demand that day may have been lost (the forecast ignores it).
    """

    keys: pd.DataFrame
    dates: pd.DatetimeIndex
    qty: npt.NDArray[np.float64]
    censored: npt.NDArray[np.bool_]

    @property
    def n_series(self) -> int:
        return int(self.qty.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.qty.shape[1])


def _day_index(stamps: pd.Series, start: pd.Timestamp) -> npt.NDArray[np.int64]:
    days = (pd.to_datetime(stamps).dt.normalize() - start) // pd.Timedelta(days=1)
    return np.asarray(days.to_numpy(dtype=np.int64), dtype=np.int64)


def daily_demand(
    sales: pd.DataFrame,
    as_of: date,
    history_days: int = 730,
    stock_history: pd.DataFrame | None = None,
) -> DemandHistory:
    """Build the n_series × n_days daily demand matrix.

    Demand is the quantity of sales lines by the day they were *ordered*
    (``ordered_at``), summed per sku × location × day, over the
    ``history_days`` days before ``as_of`` (``as_of`` itself excluded: the day
    is not over). Excluded: lines whose status is in
    ``CANCELLED_SALES_STATUSES`` (case-insensitive), lines with a missing key,
    date or quantity, and lines with qty <= 0 (credits and corrections; returns
    are their own table and do not reduce demand).

    Series are the sku × location pairs with at least one counted line in the
    window. A day is *censored* when ``stock_history`` has a row for the
    series and day with ``on_hand <= 0`` (end-of-day stock-out: part of that
    day's demand may have been lost). Without ``stock_history``, or for days
    it does not cover, no day is censored.

    Built with integer codes and ``np.bincount``: no per-series loop.

    Args:
        sales: ``sales_order_lines`` contract frame.
        as_of: the planning day (excluded from the history).
        history_days: length of the window in days (> 0).
        stock_history: optional ``stock_history`` contract frame.

    Returns:
        A :class:`DemandHistory`.
    """
    if history_days <= 0:
        raise ValueError("history_days must be > 0")
    end = pd.Timestamp(as_of).normalize()
    start = end - pd.Timedelta(days=history_days)
    dates = pd.date_range(start, end - timedelta(days=1), freq="D")

    status_codes, statuses = pd.factorize(sales["status"].astype("string"))
    cancelled = pd.Index(statuses).str.strip().str.lower().isin(CANCELLED_SALES_STATUSES)
    is_cancelled = np.append(np.asarray(cancelled, dtype=bool), False)[status_codes]  # NA: -1
    keep = (
        ~is_cancelled
        & sales["sku"].notna().to_numpy()
        & sales["location_id"].notna().to_numpy()
        & sales["ordered_at"].notna().to_numpy()
        & (pd.to_numeric(sales["qty"], errors="coerce") > 0).fillna(False).to_numpy(dtype=bool)
    )
    lines = sales.loc[keep, ["sku", "location_id", "ordered_at", "qty"]]
    day = _day_index(lines["ordered_at"], start)
    in_window = (day >= 0) & (day < history_days)
    lines = lines[in_window]
    day = day[in_window]

    # Series codes: sorted codes of sku and location combined into one integer,
    # so rows come out sorted by (sku, location_id).
    sku_codes, skus = pd.factorize(lines["sku"].astype("string"), sort=True)
    loc_codes, locs = pd.factorize(lines["location_id"].astype("string"), sort=True)
    pair = sku_codes.astype(np.int64) * max(len(locs), 1) + loc_codes
    series_pairs, codes = np.unique(pair, return_inverse=True)
    n_series = len(series_pairs)
    flat = codes.astype(np.int64) * history_days + day
    qty = np.asarray(
        np.bincount(
            flat,
            weights=pd.to_numeric(lines["qty"]).to_numpy(dtype=np.float64),
            minlength=n_series * history_days,
        ),
        dtype=np.float64,
    ).reshape(n_series, history_days)

    skus_index = pd.Index(skus, dtype="string")
    locs_index = pd.Index(locs, dtype="string")
    keys = pd.DataFrame(
        {
            "sku": skus_index[series_pairs // max(len(locs), 1)],
            "location_id": locs_index[series_pairs % max(len(locs), 1)],
        }
    ).astype("string")

    censored = np.zeros((n_series, history_days), dtype=bool)
    if stock_history is not None and n_series and len(stock_history):
        sh = stock_history
        on_hand = pd.to_numeric(sh["on_hand"], errors="coerce")
        sh = sh[(on_hand <= 0).fillna(False).to_numpy(dtype=bool) & sh["date"].notna().to_numpy()]
        sku_at = skus_index.get_indexer(sh["sku"].astype("string"))
        loc_at = locs_index.get_indexer(sh["location_id"].astype("string"))
        sh_pair = sku_at.astype(np.int64) * len(locs) + loc_at
        row = np.searchsorted(series_pairs, sh_pair)
        row = np.minimum(row, n_series - 1)
        sh_day = _day_index(sh["date"], start)
        ok = (
            (sku_at >= 0)
            & (loc_at >= 0)
            & (series_pairs[row] == sh_pair)
            & (sh_day >= 0)
            & (sh_day < history_days)
        )
        censored[row[ok], sh_day[ok]] = True
    return DemandHistory(keys=keys, dates=dates, qty=qty, censored=censored)
