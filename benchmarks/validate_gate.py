"""Benchmark: the validation gate (Great Expectations 1.x) on a large snapshot.

Synthetic shop: ``--skus`` SKUs (default 10 000) at two locations, 20
suppliers, ``--lines`` sales lines (default 1 000 000) over two years, and the
other tables at that scale: one supplier link per SKU (a second for 30 %),
one stock row per SKU × location, ~2 000 purchase orders with ~20 000 lines,
~2 % returns, a few promotions and, with ``--history-days``, that many days of
``stock_history`` per SKU × location. All frames are contract frames
(:func:`replenish.model.coerce`), as the extract task produces them.

About 1 % of the sales lines are bad, of every kind the gate rejects:
negative or non-numeric quantities, unknown SKUs, dates after the as-of day,
duplicated keys, demand spikes (a quantity 60× the line's usual size); and
a few bad rows elsewhere (negative stock, lead times of 0, active products
without a cost, an unknown location). The benchmark checks that the gate
rejected exactly the planted sales rows (a gate that is fast because it
misses them would not count).

Timed: wall clock, CPU seconds of the process (on a shared machine the
better estimate of the wall time on an idle one: the gate runs on one
thread, the memory sampler costs ~1 %), and the peak resident memory above
the stage's start (sampled every 5 ms):

* ``engine`` — importing GX and creating its context (once per process);
* ``validate_snapshot (first)`` — includes building the suites (once per
  process);
* ``validate_snapshot`` — a second run, what every later run costs;
* per dataset: the gate's own timing (``GateResult.summary["seconds"]``);
* ``build_data_docs`` — the run's Data Docs site.

Usage::

    python benchmarks/validate_gate.py [--lines N] [--skus N] [--history-days D]

Target (issue 03): validating 1M sales rows ≤ 2 s.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from replenish import model
from replenish.quality import build_data_docs, validate_snapshot
from replenish.quality.engine import get_engine

AS_OF = date(2026, 3, 2)
CUTOFF = datetime(2026, 3, 3)  # day_end(AS_OF): what the validate task passes
LOCATIONS = np.array(["WH1", "WH2"], dtype=object)


@dataclass
class Row:
    stage: str
    seconds: float  # wall clock
    cpu: float  # CPU seconds of this process (all threads)
    peak_mb: float  # above the resident memory at the stage's start
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
    """Samples the resident set size every 5 ms in a thread."""

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
    gc.collect()
    with _PeakRss() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows.append(Row(stage, seconds, cpu, mem.peak - mem.base, note))
    print(f"  {stage}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------- synthetic data


def _ids(prefix: str, numbers: np.ndarray, width: int = 0) -> pd.Series:
    return prefix + pd.Series(numbers).astype(str).str.zfill(width)


@dataclass
class Planted:
    """The sales rows the gate must reject (0-based positions), by kind."""

    sales: dict[str, np.ndarray]


def synthetic_snapshot(
    n_lines: int, n_skus: int, history_days: int, seed: int
) -> tuple[model.ErpSnapshot, Planted]:
    rng = np.random.default_rng(seed)
    days = 730
    start = np.datetime64(AS_OF - timedelta(days=days), "s")
    skus = _ids("SKU-", np.arange(n_skus), 6).to_numpy(dtype=object)
    n_series = 2 * n_skus

    # sales: series drawn by a skewed popularity, one line per order line
    popularity = rng.lognormal(0.0, 1.2, n_series)
    series = rng.choice(n_series, n_lines, p=popularity / popularity.sum())
    day = rng.integers(0, days, n_lines)
    seconds = rng.integers(6 * 3600, 22 * 3600, n_lines)
    stamps = start + (day * 86_400 + seconds).astype("timedelta64[s]")
    size = rng.uniform(0.3, 3.0, n_series)
    qty = (1 + rng.poisson(size[series])).astype(np.float64)
    sku = skus[series // 2]
    loc = LOCATIONS[series % 2]
    order_no = np.arange(n_lines) // 3
    line_no = np.arange(n_lines) % 3 + 1
    status = np.where(rng.random(n_lines) < 0.01, "cancelled", "shipped").astype(object)
    channel = np.array(["web", "shopify", "woocommerce"], dtype=object)[rng.integers(0, 3, n_lines)]
    qty_obj: np.ndarray = qty.astype(object)

    # ~1 % bad rows, at distinct random positions; the spikes among the lines
    # of series with a long history (the rule needs one, see docs/data-quality.md)
    n_bad = n_lines // 600
    bad = rng.choice(n_lines, 5 * n_bad, replace=False)
    kinds = ["negative_qty", "not_a_number", "unknown_sku", "future_date", "duplicate"]
    planted = dict(zip(kinds, bad.reshape(5, n_bad), strict=True))
    long_history = np.bincount(series, minlength=n_series)[series] >= 100
    eligible = np.flatnonzero(long_history & ~np.isin(np.arange(n_lines), bad))
    planted["spike"] = rng.choice(eligible, n_bad, replace=False)
    bad = np.concatenate([bad, planted["spike"]])
    qty[planted["negative_qty"]] = -2.0
    qty_obj = qty.astype(object)
    qty_obj[planted["not_a_number"]] = "n/a"
    sku[planted["unknown_sku"]] = "SKU-UNKNOWN"
    stamps[planted["future_date"]] = np.datetime64(CUTOFF, "s") + np.timedelta64(3600, "s")
    # a duplicate repeats the key of the next planted duplicate: both are rejected
    dup = planted["duplicate"]
    order_no[dup[1::2]] = order_no[dup[0::2][: len(dup[1::2])]]
    line_no[dup[1::2]] = line_no[dup[0::2][: len(dup[1::2])]]
    planted["duplicate"] = dup[: 2 * (len(dup) // 2)]
    spike = planted["spike"]
    status[spike] = "shipped"
    qty_obj[spike] = np.round(60 * (1 + size[series[spike]]))
    sales = model.coerce(
        "sales_order_lines",
        pd.DataFrame(
            {
                "order_id": _ids("SO-", order_no, 8),
                "line_no": line_no,
                "sku": sku,
                "location_id": loc,
                "channel": channel,
                "qty": qty_obj,
                "ordered_at": stamps.astype("datetime64[ns]"),
                "status": status,
            }
        ),
    )

    n_sup = 20
    sup_ids = _ids("SUP-", np.arange(n_sup), 2).to_numpy(dtype=object)
    suppliers = pd.DataFrame(
        {
            "supplier_id": sup_ids,
            "name": [f"Supplier {i}" for i in range(n_sup)],
            "email": None,
            "currency": "EUR",
            "min_order_value": 0.0,
            "order_processing_days": 1.0,
            "transport_days": rng.integers(2, 20, n_sup).astype(float),
            "receiving_days": 1.0,
        }
    )
    cost = np.round(rng.uniform(1.0, 50.0, n_skus), 2)
    cost[rng.choice(n_skus, 10, replace=False)] = np.nan  # active, no cost: flagged
    products = pd.DataFrame(
        {
            "sku": skus,
            "name": skus,
            "category": "bench",
            "unit_cost": cost,
            "unit_price": np.round(np.nan_to_num(cost, nan=10.0) * 1.8, 2),
            "active": True,
            "replenishment_mode": np.where(rng.random(n_skus) < 0.05, "jit", "stock"),
            "service_level": np.nan,
        }
    )
    second = rng.random(n_skus) < 0.3
    sp_sku = np.r_[skus, skus[second]]
    first_sup = rng.integers(0, n_sup, n_skus)
    sp_sup = np.r_[sup_ids[first_sup], sup_ids[(first_sup[second] + 1) % n_sup]]
    lead = rng.integers(3, 30, len(sp_sku)).astype(float)
    lead[rng.choice(len(sp_sku), 10, replace=False)] = 0.0  # rejected
    supplier_products = pd.DataFrame(
        {
            "sku": sp_sku,
            "supplier_id": sp_sup,
            "supplier_sku": sp_sku,
            "lead_time_days": lead,
            "moq": 1.0,
            "pack_size": rng.choice([1.0, 6.0, 12.0], len(sp_sku)),
            "unit_price": np.r_[cost, cost[second]],
            "priority": np.r_[np.ones(n_skus, int), np.full(second.sum(), 2)],
        }
    )
    on_hand = rng.integers(0, 200, n_series).astype(float)
    on_hand[rng.choice(n_series, 20, replace=False)] = -3.0  # rejected (negative stock)
    stock_levels = pd.DataFrame(
        {
            "sku": skus[np.arange(n_series) // 2],
            "location_id": LOCATIONS[np.arange(n_series) % 2],
            "on_hand": on_hand,
            "allocated": 0.0,
            "as_of": np.datetime64(AS_OF, "ns"),
        }
    )
    n_po = 2000
    po_day = rng.integers(0, days, n_po)
    purchase_orders = pd.DataFrame(
        {
            "po_id": _ids("PO-", np.arange(n_po), 6),
            "supplier_id": sup_ids[rng.integers(0, n_sup, n_po)],
            "location_id": np.r_[LOCATIONS[rng.integers(0, 2, n_po - 1)], ["WH9"]],  # flagged
            "status": np.where(po_day > days - 20, "sent", "received"),
            "ordered_at": start.astype("datetime64[ns]") + po_day.astype("timedelta64[D]"),
            "expected_at": start.astype("datetime64[ns]") + (po_day + 10).astype("timedelta64[D]"),
        }
    )
    n_pol = 10 * n_po
    pol_po = np.repeat(np.arange(n_po), 10)
    received = po_day[pol_po] <= days - 20
    purchase_order_lines = pd.DataFrame(
        {
            "po_id": _ids("PO-", pol_po, 6),
            "line_no": np.tile(np.arange(1, 11), n_po),
            "sku": skus[rng.integers(0, n_skus, n_pol)],
            "qty_ordered": 12.0,
            "qty_received": np.where(received, 12.0, 0.0),
            "received_at": np.where(
                received,
                start.astype("datetime64[ns]") + (po_day[pol_po] + 9).astype("timedelta64[D]"),
                np.datetime64("NaT", "ns"),
            ),
        }
    )
    ret = rng.choice(n_lines, n_lines // 50, replace=False)
    ret = ret[~np.isin(ret, bad.ravel())]
    returns = pd.DataFrame(
        {
            "order_id": sales["order_id"].to_numpy()[ret],
            "sku": sales["sku"].to_numpy()[ret],
            "location_id": loc[ret],
            "qty": 1.0,
            "returned_at": np.minimum(
                stamps[ret] + np.timedelta64(5 * 86_400, "s"), np.datetime64(AS_OF, "s")
            ).astype("datetime64[ns]"),
            "restockable": rng.random(len(ret)) < 0.85,
        }
    ).drop_duplicates(["order_id", "sku", "returned_at"])
    promoted = rng.choice(n_skus, max(1, n_skus // 100), replace=False)
    promo_start = start.astype("datetime64[D]") + rng.integers(30, days - 30, len(promoted))
    promotions = pd.DataFrame(
        {
            "promo_id": _ids("P", np.arange(len(promoted))),
            "sku": skus[promoted],
            "location_id": None,
            "start_date": promo_start.astype("datetime64[ns]"),
            "end_date": (promo_start + 6).astype("datetime64[ns]"),
            "kind": "promotion",
        }
    )
    hist_days = np.arange(history_days)
    stock_history = pd.DataFrame(
        {
            "sku": np.repeat(skus[np.arange(n_series) // 2], history_days),
            "location_id": np.repeat(LOCATIONS[np.arange(n_series) % 2], history_days),
            "date": np.tile(
                (np.datetime64(AS_OF, "D") - history_days + hist_days).astype("datetime64[ns]"),
                n_series,
            ),
            "on_hand": np.repeat(on_hand.clip(0), history_days),
        }
    )
    frames = {
        "suppliers": suppliers,
        "products": products,
        "supplier_products": supplier_products,
        "stock_levels": stock_levels,
        "purchase_orders": purchase_orders,
        "purchase_order_lines": purchase_order_lines,
        "returns": returns,
        "stock_history": stock_history,
        "promotions": promotions,
    }
    snap = model.ErpSnapshot(**{k: model.coerce(k, v) for k, v in frames.items()})
    snap.sales_order_lines = sales
    return snap, Planted(planted)


# -------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=0, help="stock_history days")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    print("generating ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    snap, planted = synthetic_snapshot(args.lines, args.skus, args.history_days, args.seed)
    gen_seconds = time.perf_counter() - t0

    rows: list[Row] = []
    engine = measure("engine", get_engine, rows, "import GX, create the context")
    measure(
        "validate_snapshot (first)",
        lambda: validate_snapshot(snap, CUTOFF),
        rows,
        "builds the suites",
    )
    result = measure("validate_snapshot", lambda: validate_snapshot(snap, CUTOFF), rows)
    with tempfile.TemporaryDirectory() as tmp:
        index = measure(
            "build_data_docs",
            lambda: build_data_docs(result, Path(tmp), "benchmark"),
            rows,
            "GX site + index page",
        )
        docs_ok = index.is_file()

    # the gate must have rejected exactly the planted sales rows
    q = result.quarantine[result.quarantine["dataset"] == "sales_order_lines"]
    expected = set(np.concatenate(list(planted.sales.values())) + 1)
    found = set(q["reason"].str.extract(r"row (\d+) ", expand=False).astype(int))
    exact = found == expected
    by_field = q.groupby(["field", "expectation", "rule"]).size()

    width = 30
    print()
    print(
        f"replenish validation gate benchmark — {len(snap.sales_order_lines):,} sales lines, "
        f"{args.skus:,} SKUs × 2 locations, {args.history_days} stock-history days"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{platform.machine()}; data generated in {gen_seconds:.1f} s; "
        f"GX context created in {engine.created_in:.2f} s"
    )
    print()
    print(f"{'stage':<{width}}{'seconds':>9}{'CPU s':>8}{'+peak MB':>10}  note")
    print("-" * (width + 55))
    for r in rows:
        print(f"{r.stage:<{width}}{r.seconds:>9.2f}{r.cpu:>8.2f}{r.peak_mb:>10.0f}  {r.note}")
    print("-" * (width + 55))
    print()
    print("per dataset (second run):")
    s = result.summary
    print(
        s[
            ["dataset", "rows", "rejected_rows", "flagged_rows", "expectations", "seconds"]
        ].to_string(index=False, float_format=lambda x: f"{x:.3f}")
    )
    print()
    print("sales_order_lines rejections by check:")
    print(by_field.to_string())
    planted_n = sum(len(v) for v in planted.sales.values())
    print(
        f"planted bad sales rows: {planted_n:,}; rejected: {len(found):,}; "
        f"exactly the planted ones: {'yes' if exact else 'NO'}"
    )
    print(f"data docs built: {'yes' if docs_ok else 'NO'}")
    by = {r.stage: r for r in rows}
    sales_s = float(s.set_index("dataset").loc["sales_order_lines", "seconds"])
    run = by["validate_snapshot"]
    verdict = "met" if run.seconds <= 2.0 else ("met in CPU time" if run.cpu <= 2.0 else "NOT met")
    print(
        f"validate_snapshot {run.seconds:.2f} s wall, {run.cpu:.2f} s CPU (sales_order_lines "
        f"{sales_s:.2f} s wall), peak +{run.peak_mb:.0f} MB; target ≤ 2 s: {verdict}"
    )
    return 0 if exact and docs_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
