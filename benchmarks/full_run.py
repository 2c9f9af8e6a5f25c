"""Benchmark: a cold full run and an incremental nightly run, read from PostgreSQL.

The synthetic shop of ``benchmarks/forecast_plan.py`` (``--series`` SKU ×
location series, half as many SKUs at two locations, ``--days`` days of
sales: ~28 M sales lines at 100,000 × 730), bulk-loaded with COPY into a
throw-away PostgreSQL database (the generic ERP profile's tables, primary keys
included), then, each phase in a fresh child process (its own peak memory,
nothing cached from the previous phase):

1. **raw read** — the I/O floor: every table with the same rows as the
   extract, ``COPY (SELECT ...) TO STDOUT`` into memory and parsed by
   pandas' pyarrow CSV reader (the fastest plain read we found; the bytes
   alone are timed too);
2. **cold full run** — ``GenericErp.read_snapshot`` (our extract: on
   PostgreSQL the column-wise ADBC read of ``replenish/sources/fastread.py``;
   the note names any statement read with ``pandas.read_sql`` instead, and
   the snapshot's size), the validation gate, forecast, plan: each step
   timed, and the ratio extract / raw read (target ≤ 2×), the peak memory
   (target ≤ 4 GB);
3. **incremental nightly run** — a store (SQLite file, or ``--store
   postgresql``) whose demand cache is built by a first run
   (``read_incremental``, timed, not the target), then one new day of sales
   lines and a new stock snapshot in the ERP, and the next night end to end
   without Prefect: incremental extract, validation, forecast, plan, and
   publication (run record, plans, draft orders) into the store. Target
   ≤ 60 s.

Usage::

    python benchmarks/full_run.py                     # 100,000 series: several minutes
    python benchmarks/full_run.py --series 2000       # a quick look
    python benchmarks/full_run.py --no-incremental --memory-limit-gb 12

``REPLENISH_TEST_POSTGRES_URL`` (default the local server) names the
PostgreSQL server; the database is dropped at the end. A child process whose
resident memory passes ``--memory-limit-gb`` is stopped (the machine is
shared) and reported as such.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_plan import AS_OF, synthetic_demand, synthetic_snapshot

from replenish import model

T = TypeVar("T")
POSTGRES_URL = os.environ.get(
    "REPLENISH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
HISTORY_DAYS = 730
#: The first night (cold run, cache build) and the next one (incremental).
NIGHT_1 = AS_OF
NIGHT_2 = AS_OF + timedelta(days=1)
_CSV_CHUNK = 1_000_000


# ------------------------------------------------------------------ helpers


#: Per timed step of this process: (peak resident memory so far, resident
#: memory at its end), MB. The step whose row first shows the phase's peak is
#: where the memory went; "at its end" is what the step left held (memory
#: freed to the allocator but not returned to the system counts as held).
MEMORY: dict[str, tuple[float, float]] = {}
#: Width of the name column of the printed tables.
NAME = 52


def _rss_mb() -> float:
    """Resident memory now (Linux: /proc/self/statm), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(steps: dict[str, float], name: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    out = fn()
    steps[name] = time.perf_counter() - started
    MEMORY[name] = (_peak_mb(), _rss_mb())
    print(f"  {name}: {steps[name]:.1f} s", file=sys.stderr, flush=True)
    return out


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg's connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    name = f"replenish_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _csv_chunks(frame: pd.DataFrame) -> Iterator[str]:
    for lo in range(0, len(frame), _CSV_CHUNK):
        yield frame.iloc[lo : lo + _CSV_CHUNK].to_csv(
            index=False, header=False, date_format="%Y-%m-%d %H:%M:%S"
        )


def copy_in(url: str, table: str, frame: pd.DataFrame) -> int:
    """COPY ``frame``'s contract columns into ``table`` (CSV, empty = NULL)."""
    cols = list(model.CONTRACT[table])
    frame = frame[cols]
    sql = f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)"
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
        for chunk in _csv_chunks(frame):
            copy.write(chunk)
    return len(frame)


def build_erp(url: str, n: int, days: int, seed: int) -> dict[str, Any]:
    """Generate the synthetic shop and COPY it into the ERP database."""
    steps: dict[str, float] = {}
    qty, _ = timed(steps, "generate demand", lambda: synthetic_demand(n, days, seed))
    snap = timed(steps, "generate snapshot", lambda: synthetic_snapshot(qty, seed))
    sales = snap.sales_order_lines
    # ~3 lines an order; returns keyed by their own id (the ERP's primary keys)
    sales["order_id"] = (sales["line_no"] // 3).map("SO{:08d}".format)
    snap.returns["order_id"] = [f"R{i:08d}" for i in range(len(snap.returns))]
    engine = create_engine(url)
    model.ERP_METADATA.create_all(engine)
    engine.dispose()
    rows: dict[str, int] = {}

    def load() -> None:
        for name, frame in snap.tables().items():
            if len(frame):
                rows[name] = copy_in(url, name, frame)

    timed(steps, "COPY into PostgreSQL", load)
    last = qty[:, -7]  # the new day sells like the same weekday a week before
    return {
        "steps": steps,
        "rows": rows,
        "next_line_no": int(sales["line_no"].max()) + 1,
        "new_day": last,
    }


def add_new_day(url: str, new_day: np.ndarray, first_line_no: int) -> int:
    """Night 2's news in the ERP: NIGHT_1's sales lines and a fresh stock snapshot."""
    n = new_day.size
    series = np.flatnonzero(new_day > 0)
    n_sku = (n + 1) // 2
    sku_names = np.array([f"SKU-{i:06d}" for i in range(n_sku)], dtype=object)
    line_no = first_line_no + np.arange(series.size)
    lines = pd.DataFrame(
        {
            "order_id": [f"SN{i:08d}" for i in line_no // 3],
            "line_no": line_no,
            "sku": sku_names[series // 2],
            "location_id": np.array(["WH1", "WH2"], dtype=object)[series % 2],
            "channel": "web",
            "qty": new_day[series],
            "ordered_at": pd.Timestamp(NIGHT_1) + pd.Timedelta(hours=10),
            "status": "shipped",
        }
    )
    copy_in(url, "sales_order_lines", lines)
    with psycopg.connect(_libpq(url)) as conn:
        conn.execute(
            "UPDATE stock_levels SET as_of = %s", (datetime.combine(NIGHT_2, datetime.min.time()),)
        )
    return len(lines)


# ------------------------------------------------------------------ phases (children)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase_raw(erp_url: str) -> dict[str, Any]:
    """COPY every table's rows of the read window out, parse them with pyarrow."""
    start = datetime.combine(NIGHT_1 - timedelta(days=HISTORY_DAYS), datetime.min.time())
    windows = {"sales_order_lines": "ordered_at", "returns": "returned_at"}
    steps: dict[str, float] = {}
    nbytes = 0
    rows = 0
    copy_seconds = 0.0
    started = time.perf_counter()
    with psycopg.connect(_libpq(erp_url)) as conn, conn.cursor() as cur:
        for table, cols in model.CONTRACT.items():
            if table not in model.ERP_METADATA.tables:
                continue
            where = f" WHERE {windows[table]} >= '{start:%Y-%m-%d}'" if table in windows else ""
            sql = f"COPY (SELECT {', '.join(cols)} FROM {table}{where}) TO STDOUT (FORMAT csv)"
            t0 = time.perf_counter()
            buf = io.BytesIO()
            with cur.copy(sql) as copy:
                for block in copy:
                    buf.write(block)
            copy_seconds += time.perf_counter() - t0
            nbytes += buf.tell()
            buf.seek(0)
            if buf.getbuffer().nbytes:
                frame = pd.read_csv(buf, names=list(cols), header=None, engine="pyarrow")
                rows += len(frame)
                del frame
            del buf
    steps["raw read (COPY + pyarrow parse)"] = time.perf_counter() - started
    steps["of which COPY bytes only"] = copy_seconds
    return {"steps": steps, "rows": rows, "mb": nbytes / 2**20, "peak_mb": _peak_mb()}


def _plan(snapshot: model.ErpSnapshot, demand: Any, as_of: date) -> pd.DataFrame:
    from replenish.policy.leadtime import learn_lead_times
    from replenish.policy.plan import build_plans

    lead_times = learn_lead_times(
        snapshot.purchase_orders,
        snapshot.purchase_order_lines,
        snapshot.supplier_products,
        snapshot.suppliers,
    )
    return build_plans(snapshot, demand, lead_times, as_of)


def phase_cold(erp_url: str) -> dict[str, Any]:
    """Extract, validate, forecast, plan: the cold full run (no cache, no store)."""
    from replenish.quality import validate_snapshot
    from replenish.sources.generic import GenericErp, day_end
    from tasks.plan import forecast

    steps: dict[str, float] = {}
    now = datetime.combine(NIGHT_1, datetime.min.time()) + timedelta(hours=22)
    erp = GenericErp(erp_url)
    fallbacks = _FallbackCounter()
    logging.getLogger("replenish.sources.fastread").addHandler(fallbacks)
    logging.getLogger("replenish.sources.fastread").setLevel(logging.INFO)
    snap = timed(
        steps,
        "extract (GenericErp.read_snapshot)",
        lambda: erp.read_snapshot(NIGHT_1, history_days=HISTORY_DAYS, now=now),
    )
    extract_peak = _peak_mb()
    erp.engine.dispose()
    rows = sum(snap.row_counts().values())
    sales = snap.sales_order_lines
    note = (
        f"extract read path: {'ADBC' if not fallbacks.messages else 'pandas.read_sql for '}"
        + "; ".join(fallbacks.messages)
        + f"; peak after extract {extract_peak:,.0f} MB; snapshot in memory "
        f"{sum(int(f.memory_usage(deep=True).sum()) for f in snap.tables().values()) / 2**20:,.0f}"
        f" MB, sales lines {sales.memory_usage(deep=True).sum() / max(len(sales), 1):.0f} B each"
    )
    gate = timed(steps, "validate", functools.partial(validate_snapshot, snap, day_end(NIGHT_1)))
    del snap, sales  # as the nightly flow does: only the gate's clean snapshot goes on
    demand = timed(steps, "forecast", lambda: forecast.fn(gate.clean, NIGHT_1, HISTORY_DAYS))
    plans = timed(steps, "plan", lambda: _plan(gate.clean, demand, NIGHT_1))
    return {
        "steps": steps,
        "rows": rows,
        "plans": len(plans),
        "peak_mb": _peak_mb(),
        "memory": MEMORY,
        "note": note,
    }


class _FallbackCounter(logging.Handler):
    """The statements the extract read with pandas.read_sql instead of ADBC."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read(erp_url: str, store_url: str, as_of: date) -> tuple[model.ErpSnapshot, Any]:
    from replenish.sources.generic import GenericErp
    from replenish.sources.incremental import read_incremental
    from replenish.store import Store

    erp = GenericErp(erp_url)
    store = Store(store_url)
    now = datetime.combine(as_of, datetime.min.time()) + timedelta(hours=22)
    try:
        snap, report = read_incremental(erp, store, as_of, HISTORY_DAYS, None, now=now)
    finally:
        erp.engine.dispose()
        store.dispose()
    return snap, report


def _extract_parts(steps: dict[str, float], report: Any) -> None:
    """Where the incremental extract's time went (not added to the total)."""
    steps["of which ERP read (sales from the re-read start)"] = report.seconds_erp
    steps["of which cache write (ingest, prune)"] = report.seconds_ingest
    steps["of which cache read + snapshot assembly"] = report.seconds_cache


def _validate_and_keep_verdicts(
    steps: dict[str, float], store_url: str, snap: model.ErpSnapshot, as_of: date
) -> Any:
    """The validate task's work: the gate with the snapshot's cached verdicts,
    then the verdicts taken tonight written back to the cache."""
    from replenish.quality import validate_snapshot
    from replenish.quality.verdicts import known_verdicts_of
    from replenish.sources.generic import day_end
    from replenish.sources.incremental import save_verdicts
    from replenish.store import Store

    known = known_verdicts_of(snap)
    gate = timed(steps, "validate", lambda: validate_snapshot(snap, day_end(as_of), known=known))
    sales = gate.summary.set_index("dataset").loc["sales_order_lines"]
    what = f"of which sales lines ({sales['validated_rows']:,} of {sales['rows']:,} to GX)"
    steps[what] = float(sales["seconds"])
    if known is not None:
        store = Store(store_url)
        try:
            timed(
                steps,
                "verdicts written back to the cache",
                lambda: save_verdicts(store, known, gate.new_verdicts),
            )
        finally:
            store.dispose()
    return gate


def phase_cache(erp_url: str, store_url: str) -> dict[str, Any]:
    """Night 1 with an empty store: a full read that builds the demand cache,
    and the gate that validates every line and keeps their verdicts."""
    steps: dict[str, float] = {}
    snap, report = timed(steps, "extract + cache build", lambda: _read(erp_url, store_url, NIGHT_1))
    _extract_parts(steps, report)
    _validate_and_keep_verdicts(steps, store_url, snap, NIGHT_1)
    return {
        "steps": steps,
        "rows": sum(snap.row_counts().values()),
        "note": report.summary(),
        "peak_mb": _peak_mb(),
        "memory": MEMORY,
    }


def phase_nightly(erp_url: str, store_url: str) -> dict[str, Any]:
    """Night 2 end to end without Prefect: the nightly flow's tasks' functions,
    in its order, every one but the Prefect artifacts (no alert channel)."""
    os.environ["REPLENISH_ERP_URL"] = erp_url
    os.environ["REPLENISH_DB_URL"] = store_url
    from flows.nightly import FLOW_NAME
    from replenish.notify.dispatch import dispatch
    from replenish.notify.rules import run_alerts, run_scopes
    from replenish.quality.engine import warm_up
    from replenish.store import Store
    from tasks.plan import forecast
    from tasks.publish import (
        finish_run,
        publish_drafts,
        run_kpis,
        start_run,
        store_plans,
        store_quarantine,
        write_sku_report,
    )

    steps: dict[str, float] = {}
    warm_up()  # as the extract task does: GX's import overlaps the extraction
    snap, report = timed(steps, "extract (incremental)", lambda: _read(erp_url, store_url, NIGHT_2))
    _extract_parts(steps, report)
    gate = _validate_and_keep_verdicts(steps, store_url, snap, NIGHT_2)
    demand = timed(steps, "forecast", lambda: forecast.fn(gate.clean, NIGHT_2, HISTORY_DAYS))
    plans = timed(steps, "plan", lambda: _plan(gate.clean, demand, NIGHT_2))

    def publish() -> str:
        run_id = start_run.fn(NIGHT_2, {"benchmark": True}, False, None)
        store_quarantine.fn(run_id, gate.quarantine)
        store_plans.fn(run_id, plans)
        publish_drafts.fn(run_id, NIGHT_2, plans, gate.clean, None)
        return str(run_id)

    run_id = timed(steps, "publish (run, quarantine, plans, drafts)", publish)

    def alerts() -> Any:  # what send_alerts does with no channel configured
        raised = run_alerts(plans, gate.clean, NIGHT_2, quarantined=len(gate.quarantine))
        store = Store(store_url)
        try:
            return dispatch(
                store, [], NIGHT_2, run_id, raised, heading="benchmark",
                scopes=run_scopes(None, FLOW_NAME), logger=logging.getLogger("benchmark"),
            )  # fmt: skip
        finally:
            store.dispose()

    timed(steps, "alerts (rules, reconciled with the store)", alerts)
    timed(steps, "KPIs", lambda: run_kpis.fn(run_id, gate.clean, plans, NIGHT_2))
    timed(
        steps,
        "per-SKU report (10 pictures)",
        lambda: write_sku_report.fn(run_id, gate.clean, plans, NIGHT_2, HISTORY_DAYS, 10),
    )
    timed(steps, "run record", lambda: finish_run.fn(run_id, "completed", {}, None))
    return {
        "steps": steps,
        "plans": len(plans),
        "note": report.summary(),
        "peak_mb": _peak_mb(),
        "memory": MEMORY,
    }


PHASES: dict[str, Callable[..., dict[str, Any]]] = {
    "raw": phase_raw,
    "cold": phase_cold,
    "cache": phase_cache,
    "nightly": phase_nightly,
}


def run_child(phase: str, *urls: str, limit_gb: float) -> dict[str, Any]:
    """Run a phase in a fresh interpreter, stopped if its memory passes the limit."""
    print(f"{phase} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--phase", phase, *urls],
        stdout=subprocess.PIPE,
        text=True,
    )
    killed = threading.Event()

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                rss_kb = next(
                    int(line.split()[1])
                    for line in status.read_text().splitlines()
                    if line.startswith("VmRSS:")
                )
            except (OSError, StopIteration, ValueError):
                rss_kb = 0
            if rss_kb > limit_gb * 2**20:
                killed.set()
                proc.kill()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    if killed.is_set():
        elapsed = time.perf_counter() - started
        return {"failed": f"stopped after {elapsed:.0f} s: resident memory passed {limit_gb:g} GB"}
    if proc.returncode != 0:
        return {"failed": f"exit code {proc.returncode} (see stderr)"}
    return dict(json.loads(out.strip().splitlines()[-1]))


# ------------------------------------------------------------------ report


def _table(title: str, result: dict[str, Any]) -> float:
    print(f"\n{title}")
    if "failed" in result:
        print(f"  FAILED: {result['failed']}")
        return float("nan")
    total = 0.0
    memory = result.get("memory", {})
    print(f"  {'step':<{NAME}}{'time':>11}{'peak so far':>15}{'held after':>14}")
    for name, seconds in result["steps"].items():
        mem = memory.get(name)
        where = f"{mem[0]:>12,.0f} MB{mem[1]:>11,.0f} MB" if mem else ""
        print(f"  {name:<{NAME}}{seconds:>9.1f} s{where}")
        if not name.startswith("of which"):
            total += seconds
    print(f"  {'peak resident memory':<{NAME}}{result['peak_mb']:>9,.0f} MB")
    if result.get("note"):
        print(f"  ({result['note']})")
    return total


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=HISTORY_DAYS)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--memory-limit-gb", type=float, default=14.0)
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the ERP database and night 1's store in DIR (raw and cold phases skipped), "
        "so that --reuse DIR can run night 2 again",
    )
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="run only night 2 again on a copy of the store kept by --keep DIR",
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:  # a child: one phase, its result as the last stdout line
        print(json.dumps(PHASES[args.phase](*args.urls)))
        return 0

    limit = args.memory_limit_gb
    if args.reuse:
        return rerun_nightly(Path(args.reuse), limit)
    if args.keep:
        return keep_and_run(Path(args.keep), args, limit)
    with throwaway_database(POSTGRES_URL) as erp_url, tempfile.TemporaryDirectory() as tmp:
        print(f"loading {args.series:,} series × {args.days} days ...", file=sys.stderr)
        built = build_erp(erp_url, args.series, args.days, args.seed)
        raw = run_child("raw", erp_url, limit_gb=limit)
        cold = run_child("cold", erp_url, limit_gb=limit)
        cache: dict[str, Any] = {}
        nightly: dict[str, Any] = {}
        new_lines = 0
        if not args.no_incremental:
            if args.store == "sqlite":
                store_ctx: Any = None
                store_url = f"sqlite:///{Path(tmp, 'store.db').as_posix()}"
            else:
                store_ctx = throwaway_database(POSTGRES_URL)
                store_url = store_ctx.__enter__()
            try:
                cache = run_child("cache", erp_url, store_url, limit_gb=limit)
                new_lines = add_new_day(erp_url, built["new_day"], built["next_line_no"])
                nightly = run_child("nightly", erp_url, store_url, limit_gb=limit)
            finally:
                if store_ctx is not None:
                    store_ctx.__exit__(None, None, None)

    rows = built["rows"]
    print()
    print(
        f"replenish full-run benchmark — {args.series:,} series × {args.days} days, "
        f"{rows.get('sales_order_lines', 0) / 1e6:.1f} M sales lines in PostgreSQL"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print("setup: " + ", ".join(f"{k} {v:.0f} s" for k, v in built["steps"].items()))

    _table("1. raw read (the I/O floor)", raw)
    if "failed" not in raw:
        print(f"  {raw['rows']:,} rows, {raw['mb']:,.0f} MB of CSV")
    cold_total = _table("2. cold full run (no Prefect)", cold)
    print(f"  {'whole':<{NAME}}{cold_total:>9.1f} s")
    if "failed" not in raw and "failed" not in cold:
        extract = cold["steps"]["extract (GenericErp.read_snapshot)"]
        ratio = extract / raw["steps"]["raw read (COPY + pyarrow parse)"]
        print(f"  extract / raw read: {ratio:.1f}× (target ≤ 2×: {_verdict(ratio <= 2)})")
        peak = cold["peak_mb"]
        print(f"  peak memory {peak:,.0f} MB (target ≤ 4,096 MB: {_verdict(peak <= 4096)})")
    if not args.no_incremental:
        _table("3a. night 1: first incremental read (cache build)", cache)
        total = _table(
            f"3b. night 2: incremental run ({new_lines:,} new lines), {args.store} store", nightly
        )
        print(f"  {'end to end':<{NAME}}{total:>9.1f} s (target ≤ 60 s: {_verdict(total <= 60)})")
        _where_the_time_goes(nightly, total)
    return 0


def _where_the_time_goes(result: dict[str, Any], total: float) -> None:
    """The steps of a phase by their share of its time, largest first."""
    if "failed" in result or total <= 0:
        return
    own = [(s, n) for n, s in result["steps"].items() if not n.startswith("of which")]
    shares = ", ".join(f"{n} {s / total:.0%}" for s, n in sorted(own, reverse=True))
    print(f"  where the time goes: {shares}")


def keep_and_run(keep: Path, args: argparse.Namespace, limit: float) -> int:
    """Build the ERP (kept), night 1's store (kept as a copy), then night 2."""
    keep.mkdir(parents=True, exist_ok=True)
    name = f"replenish_bench_keep_{args.series}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    erp_url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    built = build_erp(erp_url, args.series, args.days, args.seed)
    store = keep / "store.db"
    store.unlink(missing_ok=True)
    cache = run_child("cache", erp_url, f"sqlite:///{store.as_posix()}", limit_gb=limit)
    _table("3a. night 1: first incremental read (cache build)", cache)
    new_lines = add_new_day(erp_url, built["new_day"], built["next_line_no"])
    state = {"erp_url": erp_url, "series": args.series, "new_lines": new_lines}
    (keep / "state.json").write_text(json.dumps(state))
    return rerun_nightly(keep, limit)


def rerun_nightly(keep: Path, limit: float) -> int:
    """Night 2 on a fresh copy of night 1's store kept in ``keep``."""
    import shutil

    state = json.loads((keep / "state.json").read_text())
    night2 = keep / "store-night2.db"
    shutil.copyfile(keep / "store.db", night2)
    # the sealed copy of the cache's closed months goes with it (beside the file)
    sealed = Path(f"{keep / 'store.db'}.sealed")
    shutil.rmtree(f"{night2}.sealed", ignore_errors=True)
    if sealed.is_dir():
        shutil.copytree(sealed, f"{night2}.sealed")
    nightly = run_child(
        "nightly", state["erp_url"], f"sqlite:///{night2.as_posix()}", limit_gb=limit
    )
    total = _table(
        f"3b. night 2: incremental run ({state['new_lines']:,} new lines), "
        f"{state['series']:,} series, sqlite store",
        nightly,
    )
    print(f"  {'end to end':<{NAME}}{total:>9.1f} s (target ≤ 60 s: {_verdict(total <= 60)})")
    _where_the_time_goes(nightly, total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
