"""Benchmark: the demand cache (docs/incremental.md).

1. **Ingest**: ``--rows`` synthetic sales lines (two years, chronological,
   ~3 lines an order, 2,000 SKUs, 2 locations) written into the cache of a
   SQLite store and of a PostgreSQL store (a throw-away database on
   ``REPLENISH_TEST_POSTGRES_URL``, default the local server; skipped when it
   cannot be reached): the first ingest (a full build, one transaction), a
   nightly ingest (the last 8 days re-read, replacing the cached ones), and
   the read of the whole window back from the cache: plain, and as the
   nightly read asks for it (lean columns, sources and the gate's verdicts:
   through ADBC on a SQLite file and on PostgreSQL).
2. **Nightly read**: the demo shop (``--skus`` SKUs × 730 days, generic
   profile) as an ERP on SQLite and on PostgreSQL, the store on SQLite: a
   direct read of the ERP, the first incremental run (full read + cache
   build), then one new day of orders and the next night's incremental read
   beside a direct read of the same night.

Usage::

    python benchmarks/incremental_cache.py [--rows N] [--skus N] [--no-postgres]

Runs in about 70 s on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from replenish import model
from replenish.demo import generate_demo
from replenish.sources.generic import GenericErp, write_snapshot
from replenish.sources.incremental import read_incremental
from replenish.store import Store

T = TypeVar("T")
AS_OF = date(2026, 11, 20)
POSTGRES_URL = os.environ.get(
    "REPLENISH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def synthetic_lines(n: int, end: datetime, seed: int = 1) -> pd.DataFrame:
    """``n`` sales lines over the two years before ``end``, in order."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 730 * 86_400, n))
    ordered = pd.Timestamp(end - timedelta(days=730)) + pd.to_timedelta(seconds, unit="s")
    order_no = np.arange(n) // 3
    frame = pd.DataFrame(
        {
            "order_id": pd.Series(order_no).map("SO-{:08d}".format),
            "line_no": np.arange(n) % 3 + 1,
            "sku": pd.Series(rng.integers(0, 2_000, n)).map("SKU-{:05d}".format),
            "location_id": np.where(rng.random(n) < 0.5, "WH1", "WH2"),
            "channel": np.where(rng.random(n) < 0.7, "web", "b2b"),
            "qty": rng.integers(1, 6, n).astype(float),
            "ordered_at": ordered,
            "status": np.where(rng.random(n) < 0.01, "cancelled", "shipped"),
        }
    )
    return model.coerce("sales_order_lines", frame)


@contextmanager
def postgres_database() -> Iterator[str | None]:
    name = f"replenish_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(
            POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception as e:
        print(f"  PostgreSQL: skipped ({type(e).__name__}: {str(e).splitlines()[0]})")
        yield None
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def bench_ingest(label: str, url: str, lines: pd.DataFrame, end: datetime) -> None:
    store = Store(url)
    no_returns = model.empty_frame("returns")
    result, first = timed(
        lambda: store.ingest("erp", lines, no_returns, end, replace_from=None, reset=True)
    )
    reread = end - timedelta(days=8)
    recent = lines[lines["ordered_at"] >= reread].copy()
    recent.loc[recent.index[::10], "status"] = "cancelled"  # changed since the last night
    nightly, night = timed(
        lambda: store.ingest(
            "erp", recent, no_returns, end + timedelta(days=1), replace_from=reread
        )
    )
    frame, read = timed(lambda: store.cached_sales(end - timedelta(days=730)))
    # what the nightly read asks for: lean columns, the source and the gate's verdicts
    lean, read_lean = timed(
        lambda: store.cached_sales(
            end - timedelta(days=730), with_source=True, with_verdicts=True, lean=True
        )
    )
    assert result.cached_lines == len(lines) == len(frame) == nightly.cached_lines == len(lean)
    print(
        f"  {label:<10} full ingest {len(lines):>9,} lines {first:6.1f} s "
        f"({len(lines) / first:>9,.0f} lines/s) | nightly ingest {len(recent):,} lines "
        f"{night:5.2f} s | read back {len(frame):,} lines {read:5.1f} s "
        f"({len(frame) / read:,.0f} lines/s), lean with verdicts {read_lean:5.1f} s"
    )
    store.dispose()


def next_day_orders(shop: model.ErpSnapshot, day: date) -> pd.DataFrame:
    """One more day of orders: the lines of the demo's last day (the one
    before ``AS_OF``) again, dated ``day``."""
    lines = shop.sales_order_lines
    last = pd.Timestamp(AS_OF - timedelta(days=1))
    new = lines[lines["ordered_at"].dt.normalize() == last].copy()
    assert len(new), last
    shift = pd.Timestamp(day) - new["ordered_at"].dt.normalize()
    new["ordered_at"] = new["ordered_at"] + shift
    new["order_id"] = "NEW-" + new["order_id"].astype(str)
    new["status"] = "open"
    return new


def bench_nightly(label: str, shop: model.ErpSnapshot, erp_url: str, store_url: str) -> None:
    _, write = timed(lambda: write_snapshot(shop, erp_url))
    print(f"  {label} (written in {write:.1f} s)")
    erp, store = GenericErp(erp_url), Store(store_url)
    evening = datetime.combine(AS_OF, dtime(23, 30))

    def direct(day: date, now: datetime) -> model.ErpSnapshot:
        return erp.read_snapshot(day, history_days=730, now=now)

    _, t_direct = timed(lambda: direct(AS_OF, evening))
    (_, first), t_first = timed(lambda: read_incremental(erp, store, AS_OF, 730, None, now=evening))
    day2, evening2 = AS_OF + timedelta(days=1), evening + timedelta(days=1)
    new = next_day_orders(shop, day2)
    with erp.engine.begin() as c:
        c.execute(
            insert(model.ERP_METADATA.tables["sales_order_lines"]),
            new.astype(object).where(new.notna(), None).to_dict("records"),
        )
    (snap, night), t_night = timed(
        lambda: read_incremental(erp, store, day2, 730, None, now=evening2)
    )
    want, t_direct2 = timed(lambda: direct(day2, evening2))
    assert len(snap.sales_order_lines) == len(want.sales_order_lines)
    # where the incremental night's time goes (each part timed again on its own)
    _, t_erp = timed(
        lambda: erp.read_snapshot(day2, history_days=730, now=evening2, sales_start=night.read_from)
    )
    start = datetime.combine(day2 - timedelta(days=730), dtime.min)
    _, t_cache = timed(lambda: store.cached_sales(start, with_source=True))
    print(f"    direct read, first night                {t_direct:6.2f} s")
    print(
        f"    incremental, first night ({first.mode})       {t_first:6.2f} s "
        f"(read {first.erp_lines_read:,} ERP lines, cache built in "
        f"{first.ingest.seconds if first.ingest else 0:.2f} s)"
    )
    print(f"    direct read, next night                 {t_direct2:6.2f} s")
    print(
        f"    incremental, next night ({night.mode})  {t_night:6.2f} s "
        f"(read {night.erp_lines_read:,} ERP lines from {night.read_from:%Y-%m-%d}, "
        f"{len(new)} of them new: ERP tables {t_erp:.2f} s, cached sales {t_cache:.2f} s, "
        f"cache ingest {night.ingest.seconds if night.ingest else 0:.2f} s)"
    )
    erp.engine.dispose()
    store.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    print(f"replenish demand cache benchmark ({platform.node()}, {os.cpu_count()} cores)")
    end = datetime.combine(AS_OF, dtime(23, 30))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines, gen = timed(lambda: synthetic_lines(args.rows, end))
        print(f"1. ingest ({args.rows:,} synthetic lines generated in {gen:.1f} s)")
        bench_ingest("SQLite", f"sqlite:///{(folder / 'cache.db').as_posix()}", lines, end)
        if not args.no_postgres:
            with postgres_database() as pg:
                if pg is not None:
                    bench_ingest("PostgreSQL", pg, lines, end)
        del lines
        shop = generate_demo(AS_OF, seed=7, n_skus=args.skus)
        rows = shop.row_counts()
        print(
            f"2. nightly read: demo shop of {args.skus} SKUs, {rows['sales_order_lines']:,} "
            f"sales lines, {rows['returns']:,} returns, {rows['stock_history']:,} stock "
            "history rows (read whole every night); the store on SQLite"
        )
        store_url = f"sqlite:///{(folder / 'store.db').as_posix()}"
        bench_nightly(
            "ERP on SQLite", shop, f"sqlite:///{(folder / 'erp.db').as_posix()}", store_url
        )
        if not args.no_postgres:
            with postgres_database() as pg:
                if pg is not None:
                    pg_store = f"sqlite:///{(folder / 'store2.db').as_posix()}"
                    bench_nightly("ERP on PostgreSQL", shop, pg, pg_store)


if __name__ == "__main__":
    main()
