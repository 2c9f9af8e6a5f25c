"""The fast spike scores equal those of the former implementation, bit for bit.

``spike_scores`` sums the daily demand of a block of series in a dense
series × day grid (a hash table when the grid would be too large) and hands
the counted lines to the blocks in one pass. ``_reference`` below is a
verbatim copy of the implementation before that change (a hash of the
(series, day) pairs per block, one mask of every line per block): on a
synthetic shop (integer and fractional quantities, several lines a day,
missing keys and dates, cancelled lines, include masks, promotions, exempt
channels and orders, shuffled and sorted lines) the scores, means, standard
deviations, days and exemptions must be *equal*, in several blocks, on the
grid, on the hash table and on both in one run.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from replenish.quality import anomalies
from replenish.quality.anomalies import (
    SpikeScores,
    _codes,
    _counted,
    _floats,
    _in,
    _promotion_days,
    spike_scores,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --- the implementation before the grid (verbatim but for the names) ------------------

REF_BLOCK_LINES = 2_000_000


def _ref_day_numbers(stamps: pd.Series) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    ns = stamps.to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(ns)
    out = np.zeros(len(ns), dtype=np.int32)
    for lo in range(0, len(ns), REF_BLOCK_LINES):
        part = ns[lo : lo + REF_BLOCK_LINES].astype("datetime64[D]").astype(np.int64)
        out[lo : lo + REF_BLOCK_LINES] = np.where(missing[lo : lo + REF_BLOCK_LINES], 0, part)
    return out, missing


def _ref_series_blocks(
    series: npt.NDArray[np.signedinteger], n_series: int
) -> list[tuple[int, int]]:
    cum = np.cumsum(np.bincount(series, minlength=n_series))
    total = int(cum[-1]) if len(cum) else 0
    blocks = max(1, -(-total // REF_BLOCK_LINES))
    if blocks == 1:
        return [(0, n_series)]
    cuts = np.searchsorted(cum, np.arange(1, blocks) * (total / blocks)) + 1
    bounds = sorted({0, n_series, *(int(c) for c in cuts if 0 < c < n_series)})
    return list(itertools.pairwise(bounds))


def _reference(
    sales: pd.DataFrame,
    promotions: pd.DataFrame | None = None,
    *,
    min_days: int = 20,
    exempt_channels: Collection[str] = (),
    released_orders: Collection[str] = (),
    include: npt.NDArray[np.bool_] | None = None,
    stats_from: float | None = None,
) -> SpikeScores:
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
    day_no, no_day = _ref_day_numbers(sales["ordered_at"])
    counted &= (sku_codes >= 0) & (loc_codes >= 0) & ~no_day
    del no_day
    if include is not None:
        counted &= include
    if not counted.any():
        return out
    qty_all = _floats(sales["qty"])

    kept: list[tuple[IntArray, FloatArray, FloatArray, IntArray]] = []
    blocks = _ref_series_blocks(series[counted], n_series)
    for lo, hi in blocks:
        if len(blocks) == 1:
            rows = np.flatnonzero(counted)
        else:
            rows = np.flatnonzero(counted & (series >= lo) & (series < hi))
        if len(rows) == 0:
            continue
        mu, sigma, n1, z = _ref_leave_one_day_out(series[rows], day_no[rows], qty_all[rows])
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
            kept.append((rows[keep], mean[keep], std[keep], days[keep]))
        del rows, mu, sigma, n1, z, enough, mean, std, days
    del series, qty_all

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
    return SpikeScores(
        out.score,
        np.concatenate([k[1] for k in kept]),
        np.concatenate([k[2] for k in kept]),
        np.concatenate([k[3] for k in kept]),
        out.exempt_code,
        rows,
    )


def _ref_leave_one_day_out(
    s: npt.NDArray[np.signedinteger], day_no: npt.NDArray[np.int32], qty: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    first = int(day_no.min())
    span = int(day_no.max()) - first + 1
    base = int(s.min())
    series_day = (s - base).astype(np.int64) * span + (day_no - first)
    sd_codes, sd_keys = pd.factorize(series_day)
    del series_day
    daily = np.bincount(sd_codes, weights=qty)
    sd_series = np.asarray(sd_keys, dtype=np.int64) // span
    n_series = int(s.max()) - base + 1
    n = np.bincount(sd_series, minlength=n_series).astype(np.float64)
    s1 = np.bincount(sd_series, weights=daily, minlength=n_series)
    s2 = np.bincount(sd_series, weights=daily * daily, minlength=n_series)
    local = s - base
    d_t = daily[sd_codes]
    n1 = n[local] - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (s1[local] - d_t) / n1
        var = np.maximum(s2[local] - d_t * d_t - n1 * mu * mu, 0.0) / (n1 - 1.0)
        sigma = np.maximum(np.sqrt(var), np.sqrt(np.maximum(mu, 0.0)))
        z = (qty - mu) / sigma
    return mu, sigma, n1, z


# --- a synthetic shop ------------------------------------------------------------------

N_SKU, N_LOC, DAYS = 400, 12, 150  # 4,800 combinations, ~3,900 of them sold


def _shop(seed: int, *, shuffle: bool, categorical: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sold = rng.random((N_SKU, N_LOC)) < 0.8
    sku_of, loc_of = np.nonzero(sold)
    rate = rng.uniform(0.02, 0.9, len(sku_of))  # slow movers to daily sellers
    day_of = [np.flatnonzero(rng.random(DAYS) < r) for r in rate]
    per_day = [1 + rng.poisson(0.4, len(d)) for d in day_of]  # several lines a day
    series = np.repeat(np.arange(len(sku_of)), [int(p.sum()) for p in per_day])
    day = np.concatenate([np.repeat(d, p) for d, p in zip(day_of, per_day, strict=True)])
    n = len(series)
    fractional = rng.random(len(sku_of)) < 0.5  # per series: integer or fractional quantities
    qty = np.where(
        fractional[series],
        np.round(rng.gamma(2.0, 1.7, n), 3) + 0.001,
        1.0 + rng.poisson(3.0, n),
    )
    qty[rng.random(n) < 0.002] *= 40  # spikes
    qty[rng.random(n) < 0.003] = 0.0  # not counted
    qty[rng.random(n) < 0.002] = -2.0
    qty[rng.random(n) < 0.002] = np.nan
    stamps = (
        np.datetime64("2024-01-01T00:00", "ns")
        + (day.astype(np.int64) * 86_400 + rng.integers(0, 86_400, n)).astype("timedelta64[s]")
    ).astype("datetime64[ns]")
    stamps[rng.random(n) < 0.002] = np.datetime64("NaT")
    skus = np.array([f"S{i:04d}" for i in range(N_SKU)], dtype=object)[sku_of[series]]
    locs = np.array([f"L{i:02d}" for i in range(N_LOC)], dtype=object)[loc_of[series]]
    skus[rng.random(n) < 0.002] = None
    locs[rng.random(n) < 0.002] = None
    channel = np.array(["web", "B2B ", "shop"], dtype=object)[rng.choice(3, n, p=[0.8, 0.05, 0.15])]
    status = np.array(["shipped", "open", "Cancelled"], dtype=object)[
        rng.choice(3, n, p=[0.9, 0.08, 0.02])
    ]
    sales = pd.DataFrame(
        {
            "order_id": np.array([f"O{i}" for i in range(n)], dtype=object),
            "line_no": np.ones(n, dtype=np.int64),
            "sku": skus,
            "location_id": locs,
            "channel": channel,
            "qty": qty,
            "ordered_at": stamps,
            "status": status,
        }
    )
    if shuffle:
        sales = sales.iloc[rng.permutation(n)].reset_index(drop=True)
    if categorical:
        for column in ("sku", "location_id", "channel", "status"):
            sales[column] = sales[column].astype("category")
    start = rng.integers(0, DAYS - 10, 60)
    promo_loc = np.array([f"L{i:02d}" for i in range(N_LOC)] + ["L99"], dtype=object)
    where = rng.integers(0, N_LOC + 1, 60)
    promotions = pd.DataFrame(
        {
            "promo_id": [f"P{i}" for i in range(60)],
            "sku": [f"S{i:04d}" for i in rng.integers(0, N_SKU, 60)],
            "location_id": np.where(rng.random(60) < 0.4, None, promo_loc[where]),
            "start_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(start, unit="D"),
            "end_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(start + 6, unit="D"),
        }
    )
    return sales, promotions


def _assert_same(new: SpikeScores, ref: SpikeScores) -> None:
    assert np.isfinite(ref.score).sum() > 1000  # the comparison compares scores
    np.testing.assert_array_equal(new.score, ref.score)  # NaN == NaN here; no tolerance
    np.testing.assert_array_equal(new.mean, ref.mean)
    np.testing.assert_array_equal(new.std, ref.std)
    np.testing.assert_array_equal(new.days, ref.days)
    assert new.days.dtype == ref.days.dtype
    np.testing.assert_array_equal(new.exempt_code, ref.exempt_code)
    if ref.stats_rows is None:
        assert new.stats_rows is None
    else:
        assert new.stats_rows is not None and new.stats_rows.dtype == ref.stats_rows.dtype
        np.testing.assert_array_equal(new.stats_rows, ref.stats_rows)


@functools.cache
def _case(
    shuffle: bool, categorical: bool
) -> tuple[
    pd.DataFrame, pd.DataFrame, npt.NDArray[np.bool_], dict[str, Any], dict[str, SpikeScores]
]:
    """A shop, an include mask, the arguments and the reference's scores (once)."""
    sales, promotions = _shop(11, shuffle=shuffle, categorical=categorical)
    include = np.random.default_rng(5).random(len(sales)) < 0.97
    kwargs: dict[str, Any] = {
        "min_days": 5,
        "exempt_channels": {"b2b"},
        "released_orders": {str(o) for o in sales["order_id"].iloc[::997]},
    }
    refs = {
        "all": _reference(sales, promotions, **kwargs),
        "include": _reference(sales, promotions, include=include, **kwargs),
        "stats": _reference(sales, promotions, include=include, stats_from=2.0, **kwargs),
    }
    return sales, promotions, include, kwargs, refs


# block layouts: (BLOCK_LINES, GRID_CELLS, _GRID_MIN_SERIES)
LAYOUTS = {
    "one-block-grid": (10**9, 10**9, 1024),
    "blocks-grid": (9_000, 10**9, 1024),
    "blocks-grid-capped": (50_000, 500 * DAYS, 100),  # blocks cut by series for the grid
    "blocks-hash": (9_000, 50, 1024),  # every block too large for the grid
    "blocks-mixed": (9_000, 700 * DAYS, 10**9),  # some blocks on the grid, some hashed
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(
    ("shuffle", "categorical"),
    [(False, True), (True, True), (True, False)],
    ids=["sorted", "shuffled", "shuffled-object"],
)
def test_fast_spike_scores_equal_the_reference(
    layout: str, shuffle: bool, categorical: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sales, promotions, include, kwargs, refs = _case(shuffle, categorical)
    block_lines, grid_cells, min_series = LAYOUTS[layout]
    monkeypatch.setattr(anomalies, "BLOCK_LINES", block_lines)
    monkeypatch.setattr(anomalies, "GRID_CELLS", grid_cells)
    monkeypatch.setattr(anomalies, "_GRID_MIN_SERIES", min_series)
    _assert_same(spike_scores(sales, promotions, **kwargs), refs["all"])
    _assert_same(spike_scores(sales, promotions, include=include, **kwargs), refs["include"])
    stats = spike_scores(sales, promotions, include=include, stats_from=2.0, **kwargs)
    _assert_same(stats, refs["stats"])
    # the kept statistics are found by line (stats_rows ascending, whatever the blocks)
    rows = np.flatnonzero(stats.score >= 2.0)
    mean, std, days = stats.stats(rows)
    np.testing.assert_array_equal(mean, refs["include"].mean[rows])
    np.testing.assert_array_equal(std, refs["include"].std[rows])
    np.testing.assert_array_equal(days, refs["include"].days[rows])
    assert refs["stats"].stats_rows is not None and len(refs["stats"].stats_rows) > 10
    assert (refs["all"].exempt_code > 0).sum() > 100


def test_a_date_far_off_leaves_its_block_to_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line decades early widens the span of its block past the grid: that
    block is hashed, the others stay on the grid; the scores are the same."""
    sales, promotions = _shop(3, shuffle=True, categorical=True)
    sales.loc[17, "ordered_at"] = pd.Timestamp("1990-06-01 10:00")
    ref = _reference(sales, promotions, min_days=5)
    monkeypatch.setattr(anomalies, "BLOCK_LINES", 9_000)
    _assert_same(spike_scores(sales, promotions, min_days=5), ref)


def test_blocks_respect_their_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anomalies, "BLOCK_LINES", 100)
    lines = np.array([0, 30, 0, 90, 500, 0, 10, 10, 10, 10, 0, 40, 60], dtype=np.int64)
    for most in (None, 1, 2, 3):
        blocks = anomalies._series_blocks(lines, most)
        assert blocks[0][0] == 0 and blocks[-1][1] == len(lines)
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(blocks))
        for lo, hi in blocks:
            with_lines = int(np.count_nonzero(lines[lo:hi]))
            assert most is None or with_lines <= most
            # a block exceeds the lines only by its last series
            assert int(lines[lo : hi - 1].sum()) < 100 or hi - lo == 1
