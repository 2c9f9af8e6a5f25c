"""Daily demand matrix per SKU × location, with censored (stock-out) days.

One row per series, one column per day: the shape every forecasting method in
:mod:`replenish.forecast.methods` works on, all series at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import CANCELLED_SALES_STATUSES

__all__ = ["CENSOR_P", "DemandHistory", "daily_demand", "infer_censored"]

KEY_COLUMNS = ["sku", "location_id"]

#: A run of zero-demand days is taken as a stock-out when the series' own
#: zero-day rate makes it less likely than this (see :func:`infer_censored`).
CENSOR_P = 0.01
#: Rows processed at a time by :func:`infer_censored` (bounds its temporaries).
_ROW_BLOCK = 2048

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class DemandHistory:
    """Daily demand of every series over the history window.

    Attributes:
        keys: columns sku, location_id; one row per series, sorted; row i of
            ``keys`` is row i of ``qty`` and ``censored``.
        dates: the days of the window (daily, ascending; ``as_of`` excluded).
        qty: float64, n_series × n_days; units ordered per day (all
            non-cancelled lines, shipped or still open).
        censored: bool, same shape; True where demand that day may have been
            lost: end-of-day stock <= 0 in ``stock_history``, or, for a series
            that ``stock_history`` does not cover, a zero-demand run too long
            to be chance (:func:`infer_censored`). The forecast ignores them.
        returned: float64, n_series, or None: restockable units returned in
            the window (None: returns not read).
        inferred: bool, n_series, or None: True where ``censored`` was
            inferred from the sales (no ``stock_history`` row for the series).
    """

    keys: pd.DataFrame
    dates: pd.DatetimeIndex
    qty: npt.NDArray[np.float64]
    censored: npt.NDArray[np.bool_]
    returned: npt.NDArray[np.float64] | None = None
    inferred: npt.NDArray[np.bool_] | None = None

    @property
    def n_series(self) -> int:
        return int(self.qty.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.qty.shape[1])


def _day_numbers(stamps: pd.Series) -> IntArray:
    """Days since 1970-01-01 of each timestamp (floor), without a per-row loop."""
    ts = pd.to_datetime(stamps)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    values = np.asarray(ts.to_numpy(), dtype="datetime64[ns]")
    days = values.astype("datetime64[D]").astype(np.int64)
    return np.asarray(days, dtype=np.int64)


def _compact(values: IntArray, bound: int) -> tuple[IntArray, IntArray]:
    """``np.unique(values, return_inverse=True)`` for integers in [0, bound):
    a presence table instead of a sort when the table is small."""
    if bound > 4 * len(values) + 1_000_000:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq.astype(np.int64), inverse.astype(np.int64).ravel()
    present = np.bincount(values, minlength=bound) > 0
    uniq = np.flatnonzero(present)
    code = np.cumsum(present) - 1
    return uniq.astype(np.int64), code[values].astype(np.int64)


def _sorted_codes(values: pd.Series) -> tuple[IntArray, pd.Index]:
    """Integer codes of ``values`` in the sorted order of their string form.

    Factorises the column as it comes (string, object or categorical: no
    full-column conversion), then sorts the few uniques. Missing → -1.
    """
    codes, uniques = pd.factorize(values, sort=False)
    names = pd.Index(np.asarray(uniques, dtype=object)).astype("string")
    order = np.argsort(np.asarray(names, dtype=object), kind="stable")
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # code -1 (missing) indexes the last slot
    return rank[codes], names[order]


def daily_demand(
    sales: pd.DataFrame,
    as_of: date,
    history_days: int = 730,
    stock_history: pd.DataFrame | None = None,
    *,
    returns: pd.DataFrame | None = None,
    infer_stockouts: bool = True,
) -> DemandHistory:
    """Build the n_series × n_days daily demand matrix.

    Demand is the quantity of sales lines by the day they were *ordered*
    (``ordered_at``), summed per sku × location × day, over the
    ``history_days`` days before ``as_of`` (``as_of`` itself excluded: the day
    is not over). Excluded: lines whose status is in
    ``CANCELLED_SALES_STATUSES`` (case-insensitive), lines with a missing key,
    date or quantity, and lines with qty <= 0 (credits and corrections; returns
    are their own table and never make demand negative).

    Series are the sku × location pairs with at least one counted line in the
    window. Censored days (part of that day's demand may have been lost):

    * a series with ``stock_history`` rows in the window: the days it shows
      ``on_hand <= 0`` at the end of the day;
    * a series without (and every series when ``stock_history`` is None or
      empty), if ``infer_stockouts``: the zero-demand runs that are too long
      to be chance (:func:`infer_censored`).

    Returns (optional): restockable units returned in the window per series
    (``returned``), for the forecast's ``return_rate``. They do not reduce
    the demand: the customer did want the item; the returned unit comes back
    to stock later.

    Built with integer codes and ``np.bincount``: no per-series loop.

    Args:
        sales: ``sales_order_lines`` contract frame (sku, location_id,
            ordered_at, qty and status are read).
        as_of: the planning day (excluded from the history).
        history_days: length of the window in days (> 0).
        stock_history: optional ``stock_history`` contract frame.
        returns: optional ``returns`` contract frame.
        infer_stockouts: infer censored days where ``stock_history`` is silent.

    Returns:
        A :class:`DemandHistory`.
    """
    if history_days <= 0:
        raise ValueError("history_days must be > 0")
    end = pd.Timestamp(as_of).normalize()
    start = end - pd.Timedelta(days=history_days)
    dates = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    start_day = int(np.datetime64(start.date(), "D").astype(np.int64))

    status_codes, statuses = pd.factorize(sales["status"])
    status_names = pd.Index(np.asarray(statuses, dtype=object)).astype("string")
    cancelled = status_names.str.strip().str.lower().isin(CANCELLED_SALES_STATUSES)
    is_cancelled = np.append(np.asarray(cancelled, dtype=bool), False)[status_codes]  # NA: -1
    qty_all = pd.to_numeric(sales["qty"], errors="coerce").to_numpy(dtype=np.float64)
    stamp_ok = sales["ordered_at"].notna().to_numpy()
    if stamp_ok.all():
        day = _day_numbers(sales["ordered_at"]) - start_day
    else:
        day = np.full(len(sales), -1, dtype=np.int64)
        day[stamp_ok] = _day_numbers(sales["ordered_at"][stamp_ok]) - start_day
    sku_codes, skus = _sorted_codes(sales["sku"])
    loc_codes, locs = _sorted_codes(sales["location_id"])
    with np.errstate(invalid="ignore"):
        keep = (
            ~is_cancelled
            & (sku_codes >= 0)
            & (loc_codes >= 0)
            & stamp_ok
            & (qty_all > 0)
            & (day >= 0)
            & (day < history_days)
        )
    n_locs = max(len(locs), 1)
    del status_codes, is_cancelled, stamp_ok

    # Series codes: sorted codes of sku and location combined into one integer,
    # so rows come out sorted by (sku, location_id).
    pair = sku_codes[keep] * n_locs + loc_codes[keep]
    series_pairs, codes = _compact(pair, max(len(skus), 1) * n_locs)
    n_series = len(series_pairs)
    del sku_codes, loc_codes, pair
    flat = codes * history_days + day[keep]
    del codes, day
    qty = np.asarray(
        np.bincount(flat, weights=qty_all[keep], minlength=n_series * history_days),
        dtype=np.float64,
    ).reshape(n_series, history_days)
    del flat, keep, qty_all

    keys = pd.DataFrame(
        {
            "sku": skus[series_pairs // n_locs],
            "location_id": locs[series_pairs % n_locs],
        }
    ).astype("string")

    censored = np.zeros((n_series, history_days), dtype=bool)
    covered = np.zeros(n_series, dtype=bool)
    if stock_history is not None and n_series and len(stock_history):
        row, sh_day, ok = _match(stock_history, "date", skus, locs, series_pairs, start_day)
        in_window = ok & (sh_day >= 0) & (sh_day < history_days)
        covered[row[in_window]] = True
        on_hand = pd.to_numeric(stock_history["on_hand"], errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            out = in_window & (on_hand <= 0)
        censored[row[out], sh_day[out]] = True
    inferred = ~covered if infer_stockouts else np.zeros(n_series, dtype=bool)
    if inferred.any():
        rows = np.flatnonzero(inferred)
        censored[rows] = infer_censored(qty[rows])

    returned = None
    if returns is not None:
        returned = np.zeros(n_series)
        if n_series and len(returns):
            row, r_day, ok = _match(returns, "returned_at", skus, locs, series_pairs, start_day)
            restock = returns["restockable"].astype("boolean").fillna(True).to_numpy(dtype=bool)
            r_qty = pd.to_numeric(returns["qty"], errors="coerce").to_numpy(np.float64)
            with np.errstate(invalid="ignore"):
                use = ok & (r_day >= 0) & (r_day < history_days) & restock & (r_qty > 0)
            returned = np.bincount(row[use], weights=r_qty[use], minlength=n_series).astype(
                np.float64
            )
    return DemandHistory(
        keys=keys,
        dates=dates,
        qty=qty,
        censored=censored,
        returned=returned,
        inferred=inferred,
    )


def _match(
    frame: pd.DataFrame,
    date_column: str,
    skus: pd.Index,
    locs: pd.Index,
    series_pairs: IntArray,
    start_day: int,
) -> tuple[IntArray, IntArray, BoolArray]:
    """Series row and day index of each row of ``frame`` (sku, location_id,
    ``date_column``); ``ok`` is False where the series or date is unknown."""
    n_series = len(series_pairs)
    sku_at = _lookup(frame["sku"], skus)
    loc_at = _lookup(frame["location_id"], locs)
    pair = sku_at.astype(np.int64) * max(len(locs), 1) + loc_at
    row = np.minimum(np.searchsorted(series_pairs, pair), n_series - 1)
    has_date = frame[date_column].notna().to_numpy()
    day = np.full(len(frame), -1, dtype=np.int64)
    if has_date.any():
        day[has_date] = _day_numbers(frame[date_column][has_date]) - start_day
    ok = (sku_at >= 0) & (loc_at >= 0) & (series_pairs[row] == pair) & has_date
    return row.astype(np.int64), day, ok


def _lookup(values: pd.Series, index: pd.Index) -> IntArray:
    """Position of each value's string form in ``index`` (-1: absent or missing)."""
    codes, uniques = pd.factorize(values, sort=False)
    at = index.get_indexer(pd.Index(np.asarray(uniques, dtype=object)).astype("string"))
    out = np.where(codes >= 0, np.append(at, -1)[codes], -1)
    return np.asarray(out, dtype=np.int64)


def infer_censored(qty: FloatArray, p: float = CENSOR_P, iterations: int = 3) -> BoolArray:
    """Zero-demand runs too long to be chance, for series without stock history.

    Under the series' own rate of zero-demand days p0, a run of k consecutive
    zero days has probability p0^k. A run with ``p0^k < p`` (default 1 %),
    i.e. ``k ≥ k* = ⌈ln p / ln p0⌉``, is taken as a stock-out (or a time
    before the item was listed): every day of it is censored. p0 is estimated
    *outside* the long runs, with the Laplace rule of succession
    ``(zeros + 1) / (days + 2)`` (never 0 or 1), and the runs are found again
    with the new p0, ``iterations`` times (p0 only falls, so runs only grow).

    Examples: a series selling on half of its days (p0 = 0.5) needs 7 zero
    days in a row (0.5⁷ ≈ 0.8 %); one selling every day (p0 ≈ 0) 1 or 2; a
    slow mover selling on 5 % of days (p0 = 0.95) 90. Leading and trailing
    runs count too: an item listed late, or out of stock since some day up to
    ``as_of``, is not taught that nobody wants it (a discontinued item should
    be inactive in ``products``).

    The test is per run, not corrected for the many runs of a long history:
    on a series of n days about ``n · (1 − p0) · p0^k*`` < n · 1 % chance runs
    are expected to be flagged, which biases its rate up by less than 1 %.

    Works on the list of zero runs (start, length) of all rows at once; the
    iterations cost one operation per run, not per day.

    Args:
        qty: n_series × n_days daily demand.
        p: probability below which a run is not chance, in (0, 1).
        iterations: re-estimations of p0.

    Returns:
        n_series × n_days, True on the censored days.
    """
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    q = np.asarray(qty, dtype=np.float64)
    out = np.zeros(q.shape, dtype=bool)
    for lo in range(0, q.shape[0], _ROW_BLOCK):
        out[lo : lo + _ROW_BLOCK] = _infer_block(q[lo : lo + _ROW_BLOCK], p, iterations)
    return out


def _infer_block(q: FloatArray, p: float, iterations: int) -> BoolArray:
    n, t_days = q.shape
    zero = np.zeros((n, t_days + 2), dtype=np.int8)
    zero[:, 1:-1] = q == 0
    edge = np.diff(zero, axis=1).ravel()  # n × (t_days + 1): +1 run start, -1 run end
    starts = np.flatnonzero(edge == 1)
    ends = np.flatnonzero(edge == -1)
    width = t_days + 1
    row = starts // width
    first = starts % width
    length = ends % width - first
    zeros = np.bincount(row, weights=length, minlength=n)
    long = np.zeros(len(row), dtype=bool)
    log_p = np.log(p)
    for _ in range(iterations):
        long_days = np.bincount(row[long], weights=length[long], minlength=n)
        p0 = (zeros - long_days + 1.0) / (t_days - long_days + 2.0)
        k_star = np.ceil(log_p / np.log(p0))
        new = length >= k_star[row]
        if np.array_equal(new, long):
            break
        long = new
    mark = np.zeros((n, t_days + 1), dtype=np.int32)
    np.add.at(mark, (row[long], first[long]), 1)
    np.add.at(mark, (row[long], first[long] + length[long]), -1)
    out: BoolArray = np.cumsum(mark, axis=1)[:, :t_days] > 0
    return out
