"""Daily demand matrix per SKU × location, with censored (stock-out) days.

One row per series, one column per day: the shape every forecasting method in
:mod:`replenish.forecast.methods` works on, all series at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

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
#: integer codes of any width (-1: missing)
Codes = npt.NDArray[np.integer[Any]]


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
    # already timestamps: used as they are (pd.to_datetime would sample the
    # values as Python objects to decide on a cache, on every block of lines)
    ts = stamps if pd.api.types.is_datetime64_any_dtype(stamps.dtype) else pd.to_datetime(stamps)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    values = np.asarray(ts.to_numpy(), dtype="datetime64[ns]")
    days = values.astype("datetime64[D]").astype(np.int64)
    return np.asarray(days, dtype=np.int64)


def _timestamps(values: pd.Series) -> pd.Series:
    """``values`` as timestamps: as they are when they are, else parsed once
    for the whole column (not block by block, where the format inferred from
    a block's first value could differ)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    return pd.to_datetime(values)


def _small_codes(codes: Codes, n: int) -> Codes:
    """``codes`` (-1 missing, else < ``n``) in the smallest signed integer type."""
    for small in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(small).max:
            return codes.astype(small, copy=False)
    return codes.astype(np.int64, copy=False)


def _key_codes(values: pd.Series) -> tuple[Codes, pd.Index]:
    """Integer codes of ``values`` (-1: missing), as small as they fit, and the
    string form of each code.

    A categorical's own codes are used as they are (no copy); another column
    is factorised once and its codes narrowed at once.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = np.asarray(values.cat.codes.to_numpy())
        uniques = np.asarray(values.cat.categories, dtype=object)
    else:
        wide, found = pd.factorize(values, sort=False)
        codes = _small_codes(wide, len(found))
        del wide
        uniques = np.asarray(found, dtype=object)
    return codes, pd.Index(uniques, dtype=object).astype("string")


def _sorted_codes(values: pd.Series) -> tuple[Codes, IntArray, pd.Index]:
    """Codes of ``values`` and, per code, its rank in the sorted string forms
    of the values present (``rank[code]``; ``rank[-1] = -1`` for missing),
    and those sorted string forms.

    A categorical's unused categories are left out, so the ranks are those of
    the values present whatever the column's dtype.
    """
    codes, names = _key_codes(values)
    used = np.zeros(len(names) + 1, dtype=bool)
    used[codes] = True  # code -1 marks the last slot
    present = np.flatnonzero(used[:-1])
    order = present[np.argsort(np.asarray(names[present], dtype=object), kind="stable")]
    rank = np.full(len(names) + 1, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return codes, rank, names[order]


#: Sales lines processed at a time by :func:`daily_demand` (bounds the
#: temporaries per line: a few tens of MB whatever the length of the history).
_LINE_BLOCK = 1 << 20
#: Series are found through a table of every sku × location code pair (5
#: bytes a pair) while there are at most this many pairs beyond half the
#: number of lines; past that, through the sorted distinct pairs.
_PAIR_TABLE = 1 << 22


class _Lines:
    """The sales lines as :func:`daily_demand` reads them: the key columns as
    codes (built once), the rest read block by block."""

    def __init__(self, sales: pd.DataFrame, start_day: int, history_days: int) -> None:
        self.status_codes, status_names = _key_codes(sales["status"])
        cancelled = status_names.str.strip().str.lower().isin(CANCELLED_SALES_STATUSES)
        self.is_cancelled = np.append(np.asarray(cancelled, dtype=bool), False)  # NA: code -1
        self.sku_codes, self.sku_rank, self.skus = _sorted_codes(sales["sku"])
        self.loc_codes, self.loc_rank, self.locs = _sorted_codes(sales["location_id"])
        self.n_locs = max(len(self.locs), 1)
        self.qty, self.stamps = sales["qty"], _timestamps(sales["ordered_at"])
        self.start_day, self.history_days = start_day, history_days

    def block(self, lo: int, hi: int) -> tuple[IntArray, IntArray, FloatArray]:
        """Series pair (sku rank · n_locs + location rank), day and quantity
        of the counted lines among lines lo..hi-1."""
        qty_all = pd.to_numeric(self.qty.iloc[lo:hi], errors="coerce").to_numpy(dtype=np.float64)
        stamps = self.stamps.iloc[lo:hi]
        stamp_ok = stamps.notna().to_numpy()
        if stamp_ok.all():
            day = _day_numbers(stamps) - self.start_day
        else:
            day = np.full(hi - lo, -1, dtype=np.int64)
            day[stamp_ok] = _day_numbers(stamps[stamp_ok]) - self.start_day
        sku = self.sku_codes[lo:hi]
        loc = self.loc_codes[lo:hi]
        with np.errstate(invalid="ignore"):
            keep = (
                ~self.is_cancelled[self.status_codes[lo:hi]]
                & (sku >= 0)
                & (loc >= 0)
                & stamp_ok
                & (qty_all > 0)
                & (day >= 0)
                & (day < self.history_days)
            )
        pair = self.sku_rank[sku[keep]] * self.n_locs + self.loc_rank[loc[keep]]
        return pair, day[keep], qty_all[keep]


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

    Built with integer codes, no per-series loop, and in blocks of
    :data:`_LINE_BLOCK` sales lines: beside the result (n_series × n_days ×
    9 bytes), the memory it takes is the key columns' codes (1–4 bytes per
    line; none for a categorical column, whose own codes are read) and a few
    tens of MB, not several arrays as long as the sales. The lines are read
    twice: once for the series present, once to add them up.

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

    lines = _Lines(sales, start_day, history_days)
    skus, locs, n_locs = lines.skus, lines.locs, lines.n_locs

    # First pass: the series (sku × location pairs) with a counted line;
    # rows come out sorted by (sku, location_id).
    n_lines = len(sales)
    blocks = [(lo, min(lo + _LINE_BLOCK, n_lines)) for lo in range(0, n_lines, _LINE_BLOCK)]
    bound = max(len(skus), 1) * n_locs
    table = bound <= n_lines // 2 + _PAIR_TABLE  # else sorted pairs and searchsorted
    present = np.zeros(bound if table else 0, dtype=bool)
    found: list[IntArray] = []
    for lo, hi in blocks:
        pair = lines.block(lo, hi)[0]
        if table:
            present[pair] = True
        else:
            found.append(np.unique(pair))
    if table:
        series_pairs = np.flatnonzero(present)
    else:
        series_pairs = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    series_pairs = series_pairs.astype(np.int64)
    n_series = len(series_pairs)
    del found
    code_of = np.cumsum(present, dtype=np.int64) - 1 if table else series_pairs

    # Second pass: add the lines up, in the order they come (as np.bincount
    # would: the same sums to the last digit).
    flat_qty = np.zeros(n_series * history_days, dtype=np.float64)
    for lo, hi in blocks:
        pair, day, weight = lines.block(lo, hi)
        code = code_of[pair] if table else np.searchsorted(series_pairs, pair)
        code *= history_days
        code += day
        np.add.at(flat_qty, code, weight)
    del present, code_of, lines
    qty = flat_qty.reshape(n_series, history_days)

    keys = pd.DataFrame(
        {
            "sku": skus[series_pairs // n_locs],
            "location_id": locs[series_pairs % n_locs],
        }
    ).astype("string")

    censored = np.zeros((n_series, history_days), dtype=bool)
    covered = np.zeros(n_series, dtype=bool)
    if stock_history is not None and n_series and len(stock_history):
        on_hand_column = stock_history["on_hand"]
        for lo, row, sh_day, ok in _match(
            stock_history, "date", skus, locs, series_pairs, start_day
        ):
            in_window = ok & (sh_day >= 0) & (sh_day < history_days)
            covered[row[in_window]] = True
            on_hand = pd.to_numeric(
                on_hand_column.iloc[lo : lo + len(row)], errors="coerce"
            ).to_numpy(np.float64)
            with np.errstate(invalid="ignore"):
                out = in_window & (on_hand <= 0)
            censored[row[out], sh_day[out]] = True
    inferred = ~covered if infer_stockouts else np.zeros(n_series, dtype=bool)
    if inferred.any():
        rows = np.flatnonzero(inferred)
        for lo in range(0, len(rows), _ROW_BLOCK):  # rows are independent
            part = rows[lo : lo + _ROW_BLOCK]
            censored[part] = infer_censored(qty[part])

    returned = None
    if returns is not None:
        returned = np.zeros(n_series)
        if n_series and len(returns):
            restock_all = returns["restockable"].astype("boolean").fillna(True)
            r_qty_all = pd.to_numeric(returns["qty"], errors="coerce").to_numpy(np.float64)
            row_parts: list[IntArray] = []
            qty_parts: list[FloatArray] = []
            for lo, row, r_day, ok in _match(
                returns, "returned_at", skus, locs, series_pairs, start_day
            ):
                hi = lo + len(row)
                restock = restock_all.iloc[lo:hi].to_numpy(dtype=bool)
                r_qty = r_qty_all[lo:hi]
                with np.errstate(invalid="ignore"):
                    use = ok & (r_day >= 0) & (r_day < history_days) & restock & (r_qty > 0)
                row_parts.append(row[use])
                qty_parts.append(r_qty[use])
            returned = np.bincount(
                np.concatenate(row_parts), weights=np.concatenate(qty_parts), minlength=n_series
            ).astype(np.float64)
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
) -> Iterator[tuple[int, IntArray, IntArray, BoolArray]]:
    """Series row and day index of the rows of ``frame`` (sku, location_id,
    ``date_column``), :data:`_LINE_BLOCK` rows at a time: ``(first row,
    row, day, ok)``; ``ok`` is False where the series or date is unknown."""
    n_series = len(series_pairs)
    sku_at = _lookup(frame["sku"], skus)
    loc_at = _lookup(frame["location_id"], locs)
    dates = _timestamps(frame[date_column])
    for lo in range(0, len(frame), _LINE_BLOCK):
        hi = min(lo + _LINE_BLOCK, len(frame))
        s_at, l_at = sku_at[lo:hi], loc_at[lo:hi]
        pair = s_at.astype(np.int64) * max(len(locs), 1) + l_at
        row = np.minimum(np.searchsorted(series_pairs, pair), n_series - 1)
        stamps = dates.iloc[lo:hi]
        has_date = stamps.notna().to_numpy()
        day = np.full(hi - lo, -1, dtype=np.int64)
        if has_date.any():
            day[has_date] = _day_numbers(stamps[has_date]) - start_day
        ok = (s_at >= 0) & (l_at >= 0) & (series_pairs[row] == pair) & has_date
        yield lo, row.astype(np.int64), day, ok


def _lookup(values: pd.Series, index: pd.Index) -> Codes:
    """Position of each value's string form in ``index`` (-1: absent or
    missing), in the smallest integer type that holds it."""
    codes, names = _key_codes(values)
    at = np.append(index.get_indexer(names), -1)  # code -1 (missing) takes the last slot
    return _small_codes(at, len(index))[codes]


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
