"""Benchmark: the forecast and plan through prefect-dask's DaskTaskRunner with
1, 2 and 4 workers, beside the default thread pool.

The synthetic shop of ``benchmarks/forecast_plan.py`` (``--series`` SKU ×
location series × ``--days`` days) is forecast and planned by the nightly
flow's own step (``tasks.plan.forecast_and_plan``, in a small flow under a
temporary Prefect server): once on threads in one partition (the default
below 20,000 series, the reference), once on threads in ``--partitions``
partitions, then on a local Dask cluster of 1, 2 and 4 worker processes
(one thread each) with the same partitions. The sales lines' text columns
are categoricals, as in ``forecast_plan.py`` (``--text-columns``: Python
strings, as the extract reads them, several times heavier to send to the
workers). Every result is checked equal
to the reference. Timed: the step alone, the cluster started beforehand
(its start-up is printed apart); memory: the peak resident set of the flow's
process and of the largest worker.

Usage::

    python benchmarks/dask_scaling.py                    # 100,000 series
    python benchmarks/dask_scaling.py --series 20000 --workers 1 2

On a machine with fewer cores than workers the extra workers share the cores:
the figures say so rather than hide it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness
from prefect_dask import DaskTaskRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forecast_plan as shop_module
from forecast_plan import AS_OF, synthetic_demand, synthetic_snapshot

from replenish.policy.plan import PlanSettings
from tasks.plan import forecast_and_plan

#: The shop lives in an importable module's attribute, not in a flow
#: parameter nor in a global of this script: Prefect sends the flow (its
#: parameters, and a ``__main__`` function with the globals it uses, by value)
#: with every task it submits. The nightly flow extracts its data inside the
#: run and lives in a module, so it sends neither.
shop_module.SHOP = []


@flow(name="dask-scaling-benchmark", log_prints=False)
def step(days: int, partitions: int) -> tuple[pd.DataFrame, float]:
    """The nightly flow's forecast and plan step, timed inside the flow."""
    started = time.perf_counter()
    plans = forecast_and_plan(shop_module.SHOP[0], AS_OF, days, PlanSettings(), partitions)
    return plans, time.perf_counter() - started


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not
    inherited from the process a Dask worker was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


#: Task names of the step, longest prefix first.
_KINDS = ("plan-shared-inputs", "sku-values", "forecast", "plan")


def _task_seconds(state: Any) -> dict[str, float]:
    """Run time of the flow run's tasks, summed per kind (forecast, plan, ...)."""
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    out: dict[str, float] = {}
    for run in runs:
        kind = next((k for k in _KINDS if run.name.startswith(k)), run.name)
        out[kind] = out.get(kind, 0.0) + run.total_run_time.total_seconds()
    return out


def _run(runner: Any, days: int, partitions: int) -> tuple[pd.DataFrame, float, dict[str, float]]:
    state = step.with_options(task_runner=runner)(days, partitions, return_state=True)
    plans, seconds = state.result()
    return plans, seconds, _task_seconds(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--text-columns",
        action="store_true",
        help="sales text columns as strings, as the extract gives them (default: categoricals)",
    )
    args = parser.parse_args(argv)

    print("generating ...", file=sys.stderr, flush=True)
    qty, _ = synthetic_demand(args.series, args.days, args.seed)
    snapshot = synthetic_snapshot(qty, args.seed)
    del qty
    sales = snapshot.sales_order_lines
    if args.text_columns:  # the extract's dtypes: Python strings, heavy to pickle
        for col in ("order_id", "sku", "location_id", "channel", "status"):
            sales[col] = sales[col].astype("string")
    n_lines = len(sales)
    shop_module.SHOP.append(snapshot)

    rows: list[dict[str, Any]] = []
    with prefect_test_harness(server_startup_timeout=120):
        print("threads, 1 partition ...", file=sys.stderr, flush=True)
        reference, seconds, busy = _run(ThreadPoolTaskRunner(), args.days, 1)
        rows.append(
            {
                "runner": "threads",
                "partitions": 1,
                "seconds": seconds,
                "same": "reference",
                "busy": busy,
            }
        )
        print(f"threads, {args.partitions} partitions ...", file=sys.stderr, flush=True)
        plans, seconds, busy = _run(ThreadPoolTaskRunner(), args.days, args.partitions)
        same = "yes" if plans.equals(reference) else "NO"
        rows.append(
            {
                "runner": "threads",
                "partitions": args.partitions,
                "seconds": seconds,
                "same": same,
                "busy": busy,
            }
        )
        flow_peak = _peak_mb()
        for workers in args.workers:
            print(f"dask, {workers} workers ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                startup = time.perf_counter() - started
                runner = DaskTaskRunner(address=cluster.scheduler_address)
                plans, seconds, busy = _run(runner, args.days, args.partitions)
                with Client(cluster) as client:
                    peaks = client.run(_peak_mb)
            rows.append(
                {
                    "runner": f"dask {workers} worker{'s' if workers > 1 else ''}",
                    "partitions": args.partitions,
                    "seconds": seconds,
                    "same": "yes" if plans.equals(reference) else "NO",
                    "startup": startup,
                    "worker_mb": max(peaks.values()),
                    "busy": busy,
                }
            )

    print()
    print(
        f"replenish Dask scaling — {args.series:,} series × {args.days} days, "
        f"{n_lines / 1e6:.1f} M sales lines, {len(reference):,} plan rows"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    base = rows[0]["seconds"]
    header = f"{'runner':<16}{'partitions':>11}{'seconds':>9}{'speed-up':>10}"
    print(header + f"{'start-up s':>12}{'worker peak MB':>16}  same plans")
    print("-" * (len(header) + 40))
    for r in rows:
        startup = f"{r['startup']:.1f}" if "startup" in r else ""
        worker = f"{r['worker_mb']:,.0f}" if "worker_mb" in r else ""
        print(
            f"{r['runner']:<16}{r['partitions']:>11}{r['seconds']:>9.1f}"
            f"{base / r['seconds']:>9.2f}×{startup:>12}{worker:>16}  {r['same']}"
        )
    print(f"\nflow process peak resident memory: {flow_peak:,.0f} MB (threads runs included)")
    print("\ntask run time summed per kind (s): what the tasks themselves took; the rest of")
    print("a run's seconds is waiting, scheduling and moving the partitions' data")
    for r in rows:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["busy"].items()))
        print(f"  {r['runner']:<16}{r['partitions']:>3}: {parts}")
    return 0 if all(r["same"] != "NO" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
