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

import itertools
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import CANCELLED_SALES_STATUSES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The series are scored in blocks of whole series of about this many counted
#: lines: the per-line temporaries of the formula (a dozen arrays) are then
#: those of one block, not of every line (28 M lines in one block took
#: ~5 GB above the frame). The scores do not depend on it.
BLOCK_LINES = 2_000_000
#: Most cells (series × days) of the dense grid a block's daily demand is
#: summed in (8 bytes a cell, plus 4 while the first line of each day is
#: found); the blocks then hold at most this many cells over the history's
#: span, and a block whose own span still makes more cells is keyed by a hash
#: table instead. The scores do not depend on it.
GRID_CELLS = 8_000_000
#: Fewest series a block may be cut to for the grid's sake (a history of more
#: than GRID_CELLS / this many days: the blocks are cut by lines only).
_GRID_MIN_SERIES = 1024
_NS_PER_DAY = 86_400 * 10**9
#: Why a counted line was not scored, by ``SpikeScores.exempt_code``.
_EXEMPT_WHY = ("", "promotion", "released", "channel")


@dataclass(frozen=True)
class SpikeScores:
    """Per sales line (in the order of the input frame).

    ``mean``, ``std`` and ``days`` are per line, unless :func:`spike_scores`
    kept them for the likely spikes only (``stats_from``): they are then
    aligned with ``stats_rows``. :meth:`stats` reads them either way.
    """

    score: FloatArray  # (qty − μ) / σ; NaN: not scored
    mean: FloatArray  # μ': mean daily demand of the series' other days with demand
    std: FloatArray  # σ: the standard deviation used (after the Poisson floor)
    days: IntArray  # n': the series' other days with demand
    #: per line, the index in ``_EXEMPT_WHY`` of why it was not scored (0: it was not exempt)
    exempt_code: npt.NDArray[np.int8]
    #: the lines ``mean``, ``std`` and ``days`` describe (ascending); None: every line
    stats_rows: IntArray | None = None

    @property
    def exempt(self) -> npt.NDArray[np.object_]:
        """Why a scored-looking line was not scored: "", "channel", "released", "promotion"."""
        why: npt.NDArray[np.object_] = np.array(_EXEMPT_WHY, dtype=object)[self.exempt_code]
        return why

    def stats(self, lines: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """``(mean, std, days)`` of ``lines`` (positions).

        Raises:
            KeyError: the statistics of one of the lines were not kept.
        """
        if self.stats_rows is None:
            return self.mean[lines], self.std[lines], self.days[lines]
        kept = self.stats_rows
        at = np.minimum(np.searchsorted(kept, lines), max(len(kept) - 1, 0))
        if len(lines) and (len(kept) == 0 or not np.array_equal(kept[at], lines)):
            raise KeyError("spike statistics of lines that were not kept (stats_from)")
        return self.mean[at], self.std[at], self.days[at]


def _codes(values: pd.Series) -> tuple[npt.NDArray[np.signedinteger], pd.Index]:
    """Integer codes (-1: missing) and the distinct values; a categorical's own
    codes (1, 2 or 4 bytes a line, not widened)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return np.asarray(values.cat.codes), pd.Index(values.cat.categories)
    codes, uniques = pd.factorize(values)
    return np.asarray(codes), pd.Index(uniques)


def _floats(values: pd.Series) -> FloatArray:
    """The values as float64, missing as NaN; no copy when they are that already."""
    if values.dtype == np.float64:
        return np.asarray(values.to_numpy(), dtype=np.float64)
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _counted(sales: pd.DataFrame) -> npt.NDArray[np.bool_]:
    codes, names = _codes(sales["status"])
    lowered = pd.Index(np.asarray(names, dtype=object)).astype("string").str.strip().str.lower()
    cancelled = np.append(np.asarray(lowered.isin(CANCELLED_SALES_STATUSES), dtype=bool), False)
    qty = _floats(sales["qty"])
    with np.errstate(invalid="ignore"):
        return np.asarray(~cancelled[codes] & (qty > 0), dtype=bool)


def _in(values: pd.Series, members: Collection[str], *, fold: bool) -> npt.NDArray[np.bool_]:
    """``values`` in ``members``, comparing the few distinct values only."""
    if not members:
        return np.zeros(len(values), dtype=bool)
    if not fold and not isinstance(values.dtype, pd.CategoricalDtype):
        # nearly unique ids (order ids): no table of their distinct values
        return np.asarray(values.isin(list(members)).fillna(False), dtype=bool)
    codes, names = _codes(values)
    index = pd.Index(np.asarray(names, dtype=object)).astype("string")
    wanted = {m.strip().lower() for m in members} if fold else set(members)
    if fold:
        index = index.str.strip().str.lower()
    hit = np.append(np.asarray(index.isin(wanted), dtype=bool), False)
    return np.asarray(hit[codes], dtype=bool)


def _day_numbers(stamps: pd.Series) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """The day of each timestamp (days since 1970-01-01, as ``datetime64[D]``
    counts them) and where it is missing."""
    ns = stamps.to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(ns)
    out = np.zeros(len(ns), dtype=np.int32)
    for lo in range(0, len(ns), BLOCK_LINES):
        part = ns[lo : lo + BLOCK_LINES].astype("datetime64[D]").astype(np.int64)
        out[lo : lo + BLOCK_LINES] = np.where(missing[lo : lo + BLOCK_LINES], 0, part)
    return out, missing


def _series_blocks(lines: IntArray, most_series: int | None) -> list[tuple[int, int]]:
    """Ranges of series codes of about :data:`BLOCK_LINES` lines each (``lines``:
    the counted lines of each series code) and, when ``most_series`` is given,
    at most that many series with lines."""
    n_series = len(lines)
    cum = np.cumsum(lines)
    total = int(cum[-1]) if n_series else 0
    blocks = max(1, -(-total // BLOCK_LINES))
    if most_series is None or int(np.count_nonzero(lines)) <= most_series:
        if blocks == 1:
            return [(0, n_series)]
        cuts = np.searchsorted(cum, np.arange(1, blocks) * (total / blocks)) + 1
        bounds = sorted({0, n_series, *(int(c) for c in cuts if 0 < c < n_series)})
        return list(itertools.pairwise(bounds))
    # greedy: about total / blocks lines and at most most_series series with lines a block
    target = total / blocks
    with_lines = np.cumsum(lines > 0)
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < n_series:
        lines_before = int(cum[lo - 1]) if lo else 0
        series_before = int(with_lines[lo - 1]) if lo else 0
        by_lines = int(np.searchsorted(cum, lines_before + target)) + 1
        by_series = int(np.searchsorted(with_lines, series_before + most_series, side="right"))
        hi = min(n_series, max(lo + 1, min(by_lines, by_series)))
        out.append((lo, hi))
        lo = hi
    return out


def _block_rows(
    counted: npt.NDArray[np.bool_],
    series: npt.NDArray[np.signedinteger],
    blocks: list[tuple[int, int]],
) -> list[npt.NDArray[np.signedinteger]]:
    """The counted lines (positions, ascending) of each block of series: one
    pass over the lines, a :data:`BLOCK_LINES` slice at a time (not one mask
    of every line per block)."""
    n_lines = len(counted)
    pos_type = np.int32 if n_lines < 2**31 else np.int64
    if len(blocks) == 1:
        return [np.flatnonzero(counted).astype(pos_type)]
    bounds = np.array([lo for lo, _ in blocks] + [blocks[-1][1]], dtype=np.int64)
    block_type = np.int16 if len(blocks) < 2**15 else np.int32
    block_of = np.repeat(np.arange(len(blocks), dtype=block_type), np.diff(bounds))
    pieces: list[list[npt.NDArray[np.signedinteger]]] = [[] for _ in blocks]
    step = max(BLOCK_LINES, 1)
    for lo in range(0, n_lines, step):
        at = np.flatnonzero(counted[lo : lo + step])
        if len(at) == 0:
            continue
        b = block_of[series[lo : lo + step][at]]
        order = np.argsort(b, kind="stable")  # a radix sort of small ints; stable: ascending lines
        ends = np.cumsum(np.bincount(b, minlength=len(blocks)))
        at = (at[order] + lo).astype(pos_type)
        for k in np.flatnonzero(np.bincount(b, minlength=len(blocks))):
            pieces[k].append(at[(ends[k - 1] if k else 0) : ends[k]])
    return [np.concatenate(p) if p else np.zeros(0, dtype=pos_type) for p in pieces]


def spike_scores(
    sales: pd.DataFrame,
    promotions: pd.DataFrame | None = None,
    *,
    min_days: int = 20,
    exempt_channels: Collection[str] = (),
    released_orders: Collection[str] = (),
    include: npt.NDArray[np.bool_] | None = None,
    stats_from: float | None = None,
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
        stats_from: keep ``mean``, ``std`` and ``days`` only for the lines
            scored at least this (the gate passes ``k``: the spikes it
            explains) instead of three arrays of the frame's length.
    """
    if min_days < 2:
        raise ValueError("min_days must be >= 2 (a standard deviation needs two days)")
    n_lines = len(sales)
    full = stats_from is None
    out = SpikeScores(
        score=np.full(n_lines, np.nan),
        mean=np.full(n_lines if full else 0, np.nan),
        std=np.full(n_lines if full else 0, np.nan),
        days=np.zeros(n_lines if full else 0, dtype=np.int64),
        exempt_code=np.zeros(n_lines, dtype=np.int8),
        stats_rows=None if full else np.zeros(0, dtype=np.int64),
    )
    if n_lines == 0:
        return out

    counted = _counted(sales)
    sku_codes, skus = _codes(sales["sku"])
    loc_codes, locs = _codes(sales["location_id"])
    n_locs = max(len(locs), 1)
    n_series = max(len(skus), 1) * n_locs
    wide = np.int32 if n_series < 2**31 else np.int64
    series = np.add(sku_codes.astype(wide) * n_locs, loc_codes, dtype=wide)
    day_no, no_day = _day_numbers(sales["ordered_at"])
    counted &= (sku_codes >= 0) & (loc_codes >= 0) & ~no_day
    del no_day
    if include is not None:
        counted &= include
    if not counted.any():
        return out
    qty_all = _floats(sales["qty"])

    kept: list[tuple[IntArray, FloatArray, FloatArray, IntArray]] = []
    lines, first_day, last_day = _scan(counted, series, day_no, n_series)
    span = last_day - first_day + 1
    most_series = GRID_CELLS // span if GRID_CELLS // span >= _GRID_MIN_SERIES else None
    blocks = _series_blocks(lines, most_series)
    # series with lines numbered 0, 1, ... (the grid has no row of a series without lines)
    dense = np.cumsum(lines > 0, dtype=np.int64)
    del lines
    block_rows = _block_rows(counted, series, blocks)
    for b, (lo, hi) in enumerate(blocks):
        rows, block_rows[b] = block_rows[b], block_rows[b][:0]  # freed once scored
        if len(rows) == 0:
            continue
        before = int(dense[lo - 1]) if lo else 0
        local = dense[series[rows]] - (before + 1)
        mu, sigma, n1, z = _leave_one_day_out(
            local, int(dense[hi - 1]) - before, day_no[rows], qty_all[rows]
        )
        del local
        enough = n1 >= min_days
        out.score[rows] = np.where(enough & np.isfinite(z), z, np.nan)
        mean = np.where(n1 >= 1, mu, np.nan)
        std = np.where(n1 >= 2, sigma, np.nan)
        days = n1.astype(np.int64)
        if full:
            out.mean[rows], out.std[rows], out.days[rows] = mean, std, days
        else:
            assert stats_from is not None
            keep = out.score[rows] >= stats_from
            kept.append((rows[keep].astype(np.int64), mean[keep], std[keep], days[keep]))
        del rows, mu, sigma, n1, z, enough, mean, std, days
    del series, qty_all

    # exemptions: kept in the statistics, not scored
    by_channel = _in(sales["channel"], exempt_channels, fold=True)
    by_order = _in(sales["order_id"], released_orders, fold=False)
    on_promo = _promotion_days(sales, promotions, sku_codes, skus, loc_codes, locs, day_no)
    for flag, why in ((on_promo, 1), (by_order, 2), (by_channel, 3)):
        hit = flag & counted
        out.exempt_code[hit] = why
        out.score[hit] = np.nan
    if full or not kept:
        return out
    rows = np.concatenate([k[0] for k in kept])
    # ascending, as stats() needs: the blocks take the lines by series, not in order
    order = np.argsort(rows, kind="stable")
    return SpikeScores(
        out.score,
        np.concatenate([k[1] for k in kept])[order],
        np.concatenate([k[2] for k in kept])[order],
        np.concatenate([k[3] for k in kept])[order],
        out.exempt_code,
        rows[order],
    )


def _scan(
    counted: npt.NDArray[np.bool_],
    series: npt.NDArray[np.signedinteger],
    day_no: npt.NDArray[np.int32],
    n_series: int,
) -> tuple[IntArray, int, int]:
    """The counted lines of each series code and the first and last day of
    the counted lines, a :data:`BLOCK_LINES` slice at a time."""
    lines = np.zeros(n_series, dtype=np.int64)
    first, last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    step = max(BLOCK_LINES, 1)
    for lo in range(0, len(counted), step):
        c = counted[lo : lo + step]
        days = day_no[lo : lo + step][c]
        if len(days) == 0:
            continue
        lines += np.bincount(series[lo : lo + step][c], minlength=n_series)
        first, last = min(first, int(days.min())), max(last, int(days.max()))
    return lines, first, last


def _leave_one_day_out(
    local: IntArray, n_series: int, day_no: npt.NDArray[np.int32], qty: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """μ', σ, n' and the score of each counted line of whole series (``local``:
    their codes 0 .. ``n_series`` − 1, lines in the frame's order).

    The sums are those of a hash of the (series, day) pairs in the order the
    pairs first occur (the daily demand: its lines in order; ΣD, ΣD²: the
    series' days in the order they first occur), so the floats do not depend
    on how the pairs are keyed: a dense series × day grid when it is small
    enough (:data:`GRID_CELLS`), a hash table else.
    """
    first = int(day_no.min())
    span = int(day_no.max()) - first + 1
    cells = n_series * span
    if cells <= GRID_CELLS:
        small = np.int32 if cells < 2**31 and len(local) < 2**31 else np.int64
        cell = np.add(local.astype(small) * span, day_no - first, dtype=small)
        daily_of = np.bincount(cell, weights=qty, minlength=cells)  # D per series-day
        if len(cell) < 2 or bool((cell[1:] >= cell[:-1]).all()):
            # each series-day's lines together (the frame is sorted by series, day)
            starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        else:
            line = np.arange(len(cell), dtype=small)
            first_line = np.full(cells, len(cell), dtype=small)
            np.minimum.at(first_line, cell, line)
            starts = np.flatnonzero(first_line[cell] == line)
            del line, first_line
        sd_series = local[starts]
        daily = daily_of[cell[starts]]  # D per series-day, in the order they first occur
        d_t = daily_of[cell]
        del cell, daily_of, starts
    else:
        series_day = local * span + (day_no - first)
        sd_codes, sd_keys = pd.factorize(series_day)
        del series_day
        daily = np.bincount(sd_codes, weights=qty)  # D per series-day
        sd_series = np.asarray(sd_keys, dtype=np.int64) // span
        d_t = daily[sd_codes]
        del sd_codes, sd_keys
    n = np.bincount(sd_series, minlength=n_series).astype(np.float64)
    s1 = np.bincount(sd_series, weights=daily, minlength=n_series)
    s2 = np.bincount(sd_series, weights=daily * daily, minlength=n_series)
    del sd_series, daily
    n1 = n[local] - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (s1[local] - d_t) / n1
        var = np.maximum(s2[local] - d_t * d_t - n1 * mu * mu, 0.0) / (n1 - 1.0)
        sigma = np.maximum(np.sqrt(var), np.sqrt(np.maximum(mu, 0.0)))
        z = (qty - mu) / sigma
    return mu, sigma, n1, z


def _promotion_days(
    sales: pd.DataFrame,
    promotions: pd.DataFrame | None,
    sku_codes: IntArray,
    skus: pd.Index,
    loc_codes: IntArray,
    locs: pd.Index,
    day: npt.NDArray[np.int32],
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
            "start": _day_numbers(promo["start_date"])[0],
            "end": _day_numbers(promo["end_date"])[0],
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
