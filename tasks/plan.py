"""Forecast and plan: pure computation over the clean snapshot, whole or in
partitions of SKUs (docs/operations.md), with progress reporting."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed

from replenish.forecast import Forecast, forecast_demand
from replenish.forecast.demand import daily_demand
from replenish.model import ErpSnapshot
from replenish.partition import (
    FORECAST_TABLES,
    PLAN_TABLES,
    Partitioner,
    SharedPlanInputs,
    default_partitions,
    merge_plans,
    shared_plan_inputs,
)
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import PlanSettings, abc_by_sku, build_plans, sku_values
from tasks.common import NO_CACHE_OPTIONS

#: Key of the progress artifact of the forecast and plan step.
PROGRESS_KEY = "forecast-plan-progress"

#: ``listener(percent, label)``: told of each step of progress (the CLI's bar).
ProgressListener = Callable[[float, str], None]
_listeners: list[ProgressListener] = []


@task(name="forecast", **NO_CACHE_OPTIONS)
def forecast(snapshot: ErpSnapshot, as_of: date, history_days: int) -> Forecast:
    """Daily demand per SKU × location: per-series statistics and the expected
    demand of each of the next 120 days from ``as_of`` (weekday and yearly
    profile, trend, planned promotions; returns read for ``return_rate``)."""
    history = daily_demand(
        snapshot.sales_order_lines,
        as_of,
        history_days=history_days,
        stock_history=snapshot.stock_history,
        returns=snapshot.returns,
    )
    return forecast_demand(history, promotions=snapshot.promotions, as_of=as_of)


@task(name="plan", **NO_CACHE_OPTIONS)
def plan(
    snapshot: ErpSnapshot, demand: Forecast, as_of: date, plan_settings: PlanSettings
) -> pd.DataFrame:
    """Inventory position, lead time, safety stock, reorder point, quantities."""
    lead_times = learn_lead_times(
        snapshot.purchase_orders,
        snapshot.purchase_order_lines,
        snapshot.supplier_products,
        snapshot.suppliers,
    )
    return build_plans(snapshot, demand, lead_times, as_of, plan_settings)


@task(name="plan-shared-inputs", **NO_CACHE_OPTIONS)
def plan_shared_inputs(snapshot: ErpSnapshot) -> SharedPlanInputs:
    """Lead times and supplier on-time rates over all SKUs (pooled per
    supplier: computed once, before the partitions)."""
    return shared_plan_inputs(snapshot)


@task(name="sku-values", **NO_CACHE_OPTIONS)
def partition_values(
    snapshot: ErpSnapshot,
    demand: Forecast,
    shared: SharedPlanInputs,
    as_of: date,
    plan_settings: PlanSettings,
) -> pd.Series:
    """Annual value per SKU of one partition (the input of the ABC classes)."""
    return sku_values(snapshot, demand, _own(shared.lead_times, snapshot), as_of, plan_settings)


@task(name="plan-partition", **NO_CACHE_OPTIONS)
def plan_partition(
    snapshot: ErpSnapshot,
    demand: Forecast,
    shared: SharedPlanInputs,
    as_of: date,
    plan_settings: PlanSettings,
    sku_abc: pd.Series,
) -> pd.DataFrame:
    """The plans of one partition, with the ABC classes and on-time rates of all SKUs."""
    return build_plans(
        snapshot,
        demand,
        _own(shared.lead_times, snapshot),
        as_of,
        plan_settings,
        sku_abc=sku_abc,
        on_time=shared.on_time,
    )


def _own(lead_times: pd.DataFrame, snapshot: ErpSnapshot) -> pd.DataFrame:
    """The lead-time rows of the partition's SKUs."""
    return lead_times[lead_times["sku"].isin(snapshot.supplier_products["sku"])]


# -------------------------------------------------------------------- progress


@contextmanager
def progress_listener(listener: ProgressListener) -> Iterator[None]:
    """Tell ``listener`` of the forecast and plan's progress while inside
    (the flow runs in this process: the CLI's progress bar)."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class Progress:
    """Progress of the forecast and plan step, as a Prefect progress artifact
    (key :data:`PROGRESS_KEY`, 0–100 %) and for the local listeners.

    A failure to write the artifact is logged, never raised: progress is not
    worth failing a run for."""

    def __init__(self, total: int, what: str) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.what = what
        self._artifact: Any = None
        try:
            self._artifact = create_progress_artifact(
                0.0, key=PROGRESS_KEY, description=f"{what}: starting"
            )
        except Exception as e:  # the API hiccuped: carry on without the artifact
            get_run_logger().warning("progress artifact not created: %s", e)
        self._tell("starting")

    def advance(self, label: str) -> None:
        """One more unit done (a partition's forecast, values or plan)."""
        self.done = min(self.done + 1, self.total)
        description = f"{self.what}: {label} ({self.done}/{self.total})"
        if self._artifact is not None:
            try:
                update_progress_artifact(self._artifact, self.percent, description=description)
            except Exception as e:
                get_run_logger().warning("progress artifact not updated: %s", e)
        self._tell(label)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total

    def _tell(self, label: str) -> None:
        for listener in list(_listeners):
            listener(self.percent, label)


# ------------------------------------------------------------- orchestration


def runner_workers() -> int | None:
    """Workers of the running flow's Dask cluster; None on another task
    runner (threads share one process: partitions would not run apart)."""
    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    if type(runner).__name__ != "DaskTaskRunner":
        return None
    try:
        return max(len(runner.client.scheduler_info().get("workers", {})), 1)  # type: ignore[union-attr]
    except Exception:  # the scheduler did not answer: plan as for one worker
        return 1


def choose_partitions(snapshot: ErpSnapshot, partitions: int | None) -> int:
    """``partitions`` when given (>= 1); else 1 on threads (they share one
    process: partitions add work without adding cores or saving memory), and
    on Dask :func:`replenish.partition.default_partitions` of the stock rows
    (the series count known before the forecast) and the cluster's workers."""
    if partitions is not None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        return partitions
    workers = runner_workers()
    if workers is None:
        return 1
    n_series = max(len(snapshot.stock_levels), len(snapshot.products))
    return default_partitions(n_series, workers)


def forecast_and_plan(
    snapshot: ErpSnapshot,
    as_of: date,
    history_days: int,
    plan_settings: PlanSettings,
    partitions: int,
) -> pd.DataFrame:
    """Forecast and plan every SKU × location of ``snapshot`` on the flow's
    task runner; called inside a flow.

    With one partition: the ``forecast`` then the ``plan`` task. With ``n``:
    lead times and on-time rates over all SKUs (``plan-shared-inputs``),
    then per partition ``forecast`` → ``sku-values``; the ABC classes of
    the union; per partition ``plan-partition``; the merged plans — equal to
    the one-partition result (:mod:`replenish.partition`). Each finished
    task advances the progress artifact.
    """
    if partitions == 1:
        progress = Progress(2, "forecast and plan")
        demand = forecast.submit(snapshot, as_of, history_days)
        demand.wait()
        progress.advance("forecast done")
        plans = plan.submit(snapshot, _value(demand), as_of, plan_settings).result()
        progress.advance("plan done")
        return plans

    splitter = Partitioner.for_snapshot(snapshot, partitions)
    forecast_slices = splitter.split_snapshot(snapshot, FORECAST_TABLES)
    plan_slices = splitter.split_snapshot(snapshot, PLAN_TABLES)
    n = partitions
    progress = Progress(3 * n + 1, f"forecast and plan in {n} partitions")
    purchasing = ErpSnapshot(  # what the shared inputs read: not the sales
        suppliers=snapshot.suppliers,
        supplier_products=snapshot.supplier_products,
        purchase_orders=snapshot.purchase_orders,
        purchase_order_lines=snapshot.purchase_order_lines,
    )
    shared = plan_shared_inputs.submit(purchasing)
    demands = [
        forecast.with_options(task_run_name=f"forecast-{k + 1}-of-{n}").submit(
            part, as_of, history_days
        )
        for k, part in enumerate(forecast_slices)
    ]
    values = [
        partition_values.with_options(task_run_name=f"sku-values-{k + 1}-of-{n}").submit(
            part, _value(demands[k]), _value(shared), as_of, plan_settings
        )
        for k, part in enumerate(plan_slices)
    ]
    labels = {id(shared): "lead times and on-time rates"}
    labels |= {id(f): f"forecast {k + 1}/{n}" for k, f in enumerate(demands)}
    labels |= {id(f): f"ABC values {k + 1}/{n}" for k, f in enumerate(values)}
    _follow([shared, *demands, *values], labels, progress)

    sku_abc = abc_by_sku(pd.concat([v.result() for v in values]), plan_settings)
    abc_part = splitter.of(pd.Series(sku_abc.index, dtype=object))
    planned = [
        plan_partition.with_options(task_run_name=f"plan-{k + 1}-of-{n}").submit(
            part, _value(demands[k]), _value(shared), as_of, plan_settings, sku_abc[abc_part == k]
        )
        for k, part in enumerate(plan_slices)
    ]
    _follow(planned, {id(f): f"plan {k + 1}/{n}" for k, f in enumerate(planned)}, progress)
    return merge_plans([f.result() for f in planned])


def _value(future: PrefectFuture[Any]) -> Any:
    """A future passed where a task expects its value: the task runner
    resolves it when the task starts (on Dask, worker to worker, without a
    trip through the flow's process)."""
    return future


def _follow(
    futures: Sequence[PrefectFuture[Any]], labels: dict[int, str], progress: Progress
) -> None:
    """Advance ``progress`` as each future finishes; raise the first failure."""
    for future in as_completed(list(futures)):
        future.result()
        progress.advance(labels.get(id(future), "done"))
