"""Benchmark: daily demand → forecast → plan at production scale.

Synthetic shop: ``--series`` SKU × location series (half as many SKUs, two
locations), ``--days`` days of history; ~30 % smooth sellers (1–40 units a day
with a weekday profile, a yearly season on half of them, a trend on some) and
~70 % intermittent ones (a sale on 2–30 % of days, sizes 1–6); stock-out gaps
(no stock history, so censoring is inferred), ~1 % cancelled lines, ~2 %
returns, one past promotion on 1 % of the SKUs and a planned one on 0.5 %.
Sales are one line per series and day with demand (the sku, location_id and
status columns are categoricals, as a large extract would be loaded).

Timed stages (wall clock; peak resident memory above the stage's start,
sampled every 5 ms; and the process's peak resident set size at the end):

* ``daily_demand`` — sales lines → the series × days matrix;
* ``forecast_demand`` — with the backtest choice, and with default methods;
* ``croston_sba`` (ours, every series) vs statsforecast's ``CrostonSBA``
  (``StatsForecast(...).forecast``, one core) on the same series, on a
  subsample extrapolated linearly when the full run would be too slow;
* ``build_plans`` — the replenishment plan from the forecast, measured as a
  run holds it: the snapshot and the forecast, the history dropped.

The generator's own matrix is dropped before the stages, so "resident before
the stages" is the snapshot (mostly its sales frame) and "peak of a run's
stages" what a run's demand history, forecast and plan reach on top of it
(the kernel comparison and the second forecast are the benchmark's own).

Usage::

    python benchmarks/forecast_plan.py [--series N] [--days D] [--sf-sample N] [--save DIR]

``--save DIR`` writes the history, forecasts and plans (npy, parquet), to
check that a change leaves every result bit-identical (compare two DIRs).

Target (issue 02): forecast + plan ≤ 10 s and ≤ 4 GB at 100 000 series.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from replenish import model
from replenish.forecast import daily_demand, forecast_demand, methods
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import build_plans

AS_OF = date(2026, 3, 2)


@dataclass
class Row:
    stage: str
    seconds: float
    peak_mb: float  # above the resident memory at the stage's start
    rss_mb: float  # peak resident memory of the process during the stage
    note: str = ""


def _rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; else peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _PeakRss:
    """Samples the resident set size every 5 ms in a thread: the peak of a
    stage without the overhead of tracing every allocation."""

    def __enter__(self) -> _PeakRss:
        self.base = _rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def measure(stage: str, fn: Callable[[], Any], rows: list[Row], note: str = "") -> Any:
    """Run ``fn`` once; record wall time and its peak memory above the start."""
    gc.collect()
    with _PeakRss() as mem:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    rows.append(Row(stage, seconds, mem.peak - mem.base, mem.peak, note))
    print(f"  {stage}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------- synthetic data


def synthetic_demand(n: int, days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n × days integer demand (float64) and the smooth flag per series."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(AS_OF - timedelta(days=days), periods=days, freq="D")
    smooth = rng.random(n) < 0.3
    level = np.exp(rng.uniform(np.log(1.0), np.log(40.0), n))
    wd_shape = np.array([1.1, 1.05, 1.0, 1.0, 1.05, 0.95, 0.85])
    weekday = wd_shape[dates.day_of_week.to_numpy()]
    doy = dates.day_of_year.to_numpy()
    season = 1 + 0.4 * np.cos(2 * np.pi * (doy - 340) / 365.25)
    seasonal = rng.random(n) < 0.5
    trend = np.where(rng.random(n) < 0.3, rng.uniform(-0.3, 0.3, n), 0.0)
    qty = np.empty((n, days))
    p = rng.uniform(0.02, 0.3, n)
    size = rng.uniform(0.0, 5.0, n)
    t_rel = (np.arange(days) - days) / 365.25
    block = 8192
    for lo in range(0, n, block):  # bounded temporaries, not a per-series loop
        hi = min(lo + block, n)
        s = smooth[lo:hi, None]
        mult = weekday[None, :] * np.where(seasonal[lo:hi, None], season[None, :], 1.0)
        mult = mult * np.exp(trend[lo:hi, None] * t_rel[None, :])
        sm = rng.poisson(level[lo:hi, None] * mult)
        occ = rng.random((hi - lo, days)) < p[lo:hi, None]
        it = occ * (1 + rng.poisson(np.broadcast_to(size[lo:hi, None], (hi - lo, days))))
        qty[lo:hi] = np.where(s, sm, it)
    # stock-out gaps: 3 runs of 3–20 days on 40 % of the series
    k = int(0.4 * n) * 3
    rows = np.repeat(rng.choice(n, int(0.4 * n), replace=False), 3)[:k]
    starts = rng.integers(0, days - 20, k)
    lengths = rng.integers(3, 21, k)
    cols = starts[:, None] + np.arange(20)[None, :]
    mask = np.arange(20)[None, :] < lengths[:, None]
    qty[np.repeat(rows, 20)[mask.ravel()], cols.ravel()[mask.ravel()]] = 0.0
    return qty, smooth


def synthetic_snapshot(qty: np.ndarray, seed: int) -> model.ErpSnapshot:
    """Contract frames around the demand matrix (sales lines, master data,
    stock, returns, promotions); purchase orders empty (declared lead times)."""
    rng = np.random.default_rng(seed + 1)
    n, days = qty.shape
    n_sku = (n + 1) // 2
    sku_names = np.array([f"SKU-{i:06d}" for i in range(n_sku)], dtype=object)
    series_sku = np.arange(n) // 2
    series_loc = np.arange(n) % 2
    start = np.datetime64(AS_OF - timedelta(days=days), "ns")

    row, day = np.nonzero(qty)
    lines = qty[row, day]
    cancelled = rng.random(row.size) < 0.01
    status = pd.Categorical.from_codes(np.where(cancelled, 1, 0), ["shipped", "cancelled"])
    stamps = start + (day.astype(np.int64) * 86_400 + 36_000).astype("timedelta64[s]")
    sales = pd.DataFrame(
        {
            "order_id": pd.Categorical.from_codes(np.zeros(row.size, np.int8), ["bench"]),
            "line_no": np.arange(row.size, dtype=np.int64),
            "sku": pd.Categorical.from_codes(series_sku[row], sku_names),
            "location_id": pd.Categorical.from_codes(series_loc[row], ["WH1", "WH2"]),
            "channel": pd.Categorical.from_codes(np.zeros(row.size, np.int8), ["web"]),
            "qty": lines,
            "ordered_at": stamps.astype("datetime64[ns]"),
            "status": status,
        }
    )
    del lines, stamps

    ret = rng.choice(row.size, row.size // 50, replace=False)
    returns = pd.DataFrame(
        {
            "order_id": "bench",
            "sku": sku_names[series_sku[row[ret]]],
            "location_id": np.array(["WH1", "WH2"])[series_loc[row[ret]]],
            "qty": 1.0,
            "returned_at": (start + ((day[ret] + 5) * 86_400).astype("timedelta64[s]")).astype(
                "datetime64[ns]"
            ),
            "restockable": rng.random(ret.size) < 0.85,
        }
    )

    promoted = rng.choice(n_sku, max(1, n_sku // 100), replace=False)
    planned = promoted[: max(1, n_sku // 200)]
    past_start = rng.integers(30, days - 30, promoted.size)
    history_start = pd.Timestamp(AS_OF - timedelta(days=days))
    promotions = pd.DataFrame(
        {
            "promo_id": [f"P{i}" for i in range(promoted.size + planned.size)],
            "sku": np.r_[sku_names[promoted], sku_names[planned]],
            "location_id": None,
            "start_date": np.r_[
                (history_start + pd.to_timedelta(past_start, unit="D")).to_numpy(),
                np.full(planned.size, np.datetime64(AS_OF + timedelta(days=10), "ns")),
            ],
            "end_date": np.r_[
                (history_start + pd.to_timedelta(past_start + 6, unit="D")).to_numpy(),
                np.full(planned.size, np.datetime64(AS_OF + timedelta(days=16), "ns")),
            ],
            "kind": "promotion",
        }
    )

    suppliers = pd.DataFrame(
        {
            "supplier_id": [f"SUP-{i}" for i in range(20)],
            "name": [f"Supplier {i}" for i in range(20)],
            "email": None,
            "currency": "EUR",
            "min_order_value": 0.0,
            "order_processing_days": 1.0,
            "transport_days": rng.integers(2, 20, 20).astype(float),
            "receiving_days": 1.0,
        }
    )
    cost = np.round(rng.uniform(1.0, 50.0, n_sku), 2)
    products = pd.DataFrame(
        {
            "sku": sku_names,
            "name": sku_names,
            "category": "bench",
            "unit_cost": cost,
            "unit_price": cost * 1.8,
            "active": True,
            "replenishment_mode": np.where(rng.random(n_sku) < 0.05, "jit", "stock"),
            "service_level": np.nan,
        }
    )
    supplier_products = pd.DataFrame(
        {
            "sku": sku_names,
            "supplier_id": np.array([f"SUP-{i}" for i in range(20)])[rng.integers(0, 20, n_sku)],
            "supplier_sku": sku_names,
            "lead_time_days": rng.integers(3, 30, n_sku).astype(float),
            "moq": 1.0,
            "pack_size": rng.choice([1.0, 6.0, 12.0], n_sku),
            "unit_price": cost,
            "priority": 1,
        }
    )
    mean = qty[:, -28:].mean(axis=1)
    stock_levels = pd.DataFrame(
        {
            "sku": sku_names[series_sku],
            "location_id": np.array(["WH1", "WH2"])[series_loc],
            "on_hand": np.floor(mean * rng.uniform(0, 40, n)),
            "allocated": 0.0,
            "as_of": np.datetime64(AS_OF, "ns"),
        }
    )
    frames = {
        "suppliers": suppliers,
        "products": products,
        "supplier_products": supplier_products,
        "stock_levels": stock_levels,
        "returns": returns,
        "promotions": promotions,
    }
    snap = model.ErpSnapshot(**{k: model.coerce(k, v) for k, v in frames.items()})
    snap.sales_order_lines = sales  # categoricals kept: a 20M-row string column is not the point
    return snap


def our_croston_sba(qty: np.ndarray, block: int = 8192) -> np.ndarray:
    """Croston-SBA (α = 0.1) point forecast of every row with our kernel,
    stepped over time for a block of series at a time (what the engine does,
    without the scoring): the like-for-like comparison with statsforecast."""
    n, days = qty.shape
    out = np.zeros(n)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        y = np.ascontiguousarray(qty[lo:hi].T)
        valid = np.ones(hi - lo, dtype=bool)
        kernel = methods.CrostonSBA(hi - lo, alpha=0.1)
        for t in range(days):
            kernel.update(y[t], valid)
        out[lo:hi] = np.where(kernel.started, kernel.forecast(), 0.0)
    return out


def long_frame(qty: np.ndarray, days: int) -> pd.DataFrame:
    """statsforecast's input: unique_id, ds, y."""
    n = qty.shape[0]
    ds = pd.date_range(AS_OF - timedelta(days=days), periods=days, freq="D")
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(n), days),
            "ds": np.tile(ds.to_numpy(), n),
            "y": qty.ravel(),
        }
    )


def save_history(directory: str, history: Any) -> None:
    """The demand history as files, to compare two runs exactly."""
    os.makedirs(directory, exist_ok=True)
    history.keys.to_parquet(os.path.join(directory, "history_keys.parquet"))
    np.save(os.path.join(directory, "history_qty.npy"), history.qty)
    np.save(os.path.join(directory, "history_censored.npy"), history.censored)
    extras = {"returned": history.returned, "inferred": history.inferred}
    for name, value in extras.items():
        if value is not None:
            np.save(os.path.join(directory, f"history_{name}.npy"), value)


def save_outputs(directory: str, fc: Any, plans: pd.DataFrame, fc_defaults: Any = None) -> None:
    """The forecasts and plans as files (parquet, npy), to compare two runs exactly."""
    os.makedirs(directory, exist_ok=True)
    frame = fc.frame if hasattr(fc, "frame") else fc
    frame.to_parquet(os.path.join(directory, "forecast.parquet"))
    if hasattr(fc, "path"):
        np.save(os.path.join(directory, "forecast_path.npy"), fc.path)
    plans.to_parquet(os.path.join(directory, "plans.parquet"))
    if fc_defaults is not None:
        fc_defaults.frame.to_parquet(os.path.join(directory, "forecast_defaults.parquet"))
        np.save(os.path.join(directory, "forecast_defaults_path.npy"), fc_defaults.path)


# -------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--sf-sample",
        type=int,
        default=10_000,
        help="series given to statsforecast (extrapolated to all); 0 skips it",
    )
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="write the history, forecast and plans to DIR (parquet, npy) to compare runs",
    )
    args = parser.parse_args(argv)
    n, days = args.series, args.days

    rows: list[Row] = []
    t0 = time.perf_counter()
    print("generating ...", file=sys.stderr, flush=True)
    qty, _smooth = synthetic_demand(n, days, args.seed)
    snap = synthetic_snapshot(qty, args.seed)
    del qty, _smooth  # the generator's matrix is not part of a run: not held while measuring
    gc.collect()
    sales_mb = snap.sales_order_lines.memory_usage(index=True, deep=True).sum() / 2**20
    start_rss_mb = _rss_mb()
    gen_seconds = time.perf_counter() - t0
    n_lines = len(snap.sales_order_lines)

    dd_params = inspect.signature(daily_demand).parameters
    dd_kw: dict[str, Any] = {"returns": snap.returns} if "returns" in dd_params else {}
    history = measure(
        "daily_demand",
        lambda: daily_demand(snap.sales_order_lines, AS_OF, days, None, **dd_kw),
        rows,
        f"{n_lines / 1e6:.1f} M sales lines",
    )
    fd_params = inspect.signature(forecast_demand).parameters
    fd_kw: dict[str, Any] = (
        {"promotions": snap.promotions, "as_of": AS_OF} if "promotions" in fd_params else {}
    )
    selects = "select_by_backtest" in fd_params
    fc = measure(
        "forecast_demand",
        partial(forecast_demand, history, **fd_kw),
        rows,
        "backtest choice, path, promotions" if selects else "flat mean per series",
    )
    fc_defaults = None
    if selects:
        fc_defaults = measure(
            "forecast_demand (defaults)",
            partial(forecast_demand, history, select_by_backtest=False, **fd_kw),
            rows,
            "no backtest choice",
        )
        if not args.save:  # kept only to be saved: not part of the measured run
            fc_defaults = None
    if hasattr(methods, "CrostonSBA"):  # absent before the kernels existed
        measure(
            "croston_sba (ours)",
            partial(our_croston_sba, history.qty),
            rows,
            "all series, α = 0.1, kernel only",
        )

    if args.sf_sample:
        try:
            from statsforecast import StatsForecast
            from statsforecast.models import CrostonSBA
        except ImportError:  # pragma: no cover - dev extra
            print("statsforecast not installed: skipped", file=sys.stderr)
        else:
            m = min(args.sf_sample, n)
            sample = history.qty[np.linspace(0, n - 1, m).astype(np.int64)]
            frame = long_frame(sample, days)
            sf = StatsForecast(models=[CrostonSBA()], freq="D", n_jobs=1)
            measure(
                "statsforecast CrostonSBA",
                lambda: sf.forecast(df=frame, h=28),
                rows,
                f"{m} series" + (f", ×{n / m:.1f} extrapolated" if m < n else ""),
            )
            if m < n:
                last = rows[-1]
                last.seconds *= n / m
                last.peak_mb *= n / m
                last.rss_mb = float("nan")
            del frame, sample

    # As in a run, the history is dropped once forecast (the kernels above
    # read it): the plan is measured holding the snapshot and the forecast.
    if args.save:
        save_history(args.save, history)
    del history
    lead_times = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    wants_forecast = "Forecast" in str(inspect.signature(build_plans).parameters["forecast"])
    fc_arg = fc if wants_forecast or not hasattr(fc, "frame") else fc.frame
    plans = measure(
        "build_plans", lambda: build_plans(snap, fc_arg, lead_times, AS_OF), rows, "declared L"
    )
    if args.save:
        save_outputs(args.save, fc, plans, fc_defaults)
    del fc_defaults

    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    width = max(len(r.stage) for r in rows) + 2
    print()
    print(
        f"replenish forecast + plan benchmark — {n:,} series × {days} days, "
        f"{n_lines / 1e6:.1f} M sales lines ({plans.shape[0]:,} plan rows)"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{platform.machine()}; data generated in {gen_seconds:.1f} s"
    )
    print()
    print(f"{'stage':<{width}}{'seconds':>9}{'+peak MB':>10}{'RSS MB':>9}  note")
    print("-" * (width + 50))
    for r in rows:
        print(f"{r.stage:<{width}}{r.seconds:>9.2f}{r.peak_mb:>10.0f}{r.rss_mb:>9.0f}  {r.note}")
    print("-" * (width + 50))
    by = {r.stage: r for r in rows}
    core = by["forecast_demand"].seconds + by["build_plans"].seconds
    core_rss = max(by["forecast_demand"].rss_mb, by["build_plans"].rss_mb)
    verdict = "met" if core <= 10 and core_rss <= 4096 else "NOT met"
    print(
        f"{'forecast + plan':<{width}}{core:>9.2f}{'':>10}{core_rss:>9.0f}  "
        f"target ≤ 10 s and ≤ 4096 MB: {verdict}"
    )
    if "statsforecast CrostonSBA" in by and "croston_sba (ours)" in by:
        ratio = by["statsforecast CrostonSBA"].seconds / by["croston_sba (ours)"].seconds
        print(f"statsforecast CrostonSBA / our croston_sba: {ratio:.1f}× the time")
    run_rss = max(by[s].rss_mb for s in ("daily_demand", "forecast_demand", "build_plans"))
    print(
        f"resident before the stages {start_rss_mb:,.0f} MB (the snapshot; its sales frame "
        f"{sales_mb:,.0f} MB); peak of a run's stages (daily_demand, forecast_demand, "
        f"build_plans) {run_rss:,.0f} MB, {run_rss - start_rss_mb:,.0f} MB above the snapshot"
    )
    print(
        f"process peak RSS {maxrss_mb:,.0f} MB (includes generating the data and the "
        f"{n_lines / 1e6:.0f} M-line sales frame)"
    )
    if hasattr(fc, "frame"):
        counts = fc.frame["method"].value_counts().to_dict()
        print("methods chosen:", ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
