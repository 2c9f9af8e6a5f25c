"""Intraday sync: the sales channels into the demand cache, and the stock watch.

The channel step retries only transient faults (``SourceUnavailable``: the
shop unreachable, 5xx or 429 after the client's own retries); a refused
credential, a wrong URL or a bad configuration fails at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from prefect import get_run_logger, runtime, task
from prefect.exceptions import MissingContextError

from replenish.sources import open_erp
from replenish.sources.channels.sync import DEFAULT_CHANNEL_DIR, resolve_channel, sync_channel
from replenish.stockwatch import stock_watch
from replenish.store import Store
from tasks.common import NO_CACHE_OPTIONS, retry_if_transient, settings
from tasks.publish import open_store

#: Waits between the attempts of a channel sync (a shop's outage usually lasts minutes).
SYNC_RETRY_DELAYS: list[float] = [30, 120, 300]


def _store_ready() -> None:
    """Upgrade the store's schema once per process before the channel syncs
    run side by side (Store serialises migrations: replenish.store.migrate)."""
    Store(settings().store()).dispose()


@task(
    name="sync-channel",
    task_run_name="sync-{channel}",
    retries=len(SYNC_RETRY_DELAYS),
    retry_delay_seconds=SYNC_RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    **NO_CACHE_OPTIONS,
)
def sync_channel_task(
    channel: str, full_refresh: bool = False, channel_dir: str = str(DEFAULT_CHANNEL_DIR)
) -> dict[str, Any]:
    """Sync the channel configured in ``<channel_dir>/<channel>.yaml`` into the
    demand cache (:func:`replenish.sources.channels.sync.sync_channel`); the
    report as plain values. No task timeout: the channel's HTTP client times
    out every request itself (``timeout_seconds``), and a task in a worker
    thread could not be interrupted anyway."""
    config = resolve_channel(channel, channel_dir=channel_dir)
    flow_run_id = runtime.flow_run.id
    _store_ready()
    with open_store() as store:
        report = sync_channel(
            config,
            store,
            full_refresh=full_refresh,
            flow_run_id=str(flow_run_id) if flow_run_id else None,
        )
    _logger().info(report.summary())
    return report.as_dict()


@dataclass(frozen=True)
class StockCheck:
    """What :func:`check_stock` found.

    Attributes:
        as_of: the day of the check.
        positions: SKU × locations the ERP lists now.
        plan_run_id, plan_as_of: the nightly run compared with (None: none yet).
        watch: :func:`replenish.stockwatch.stock_watch` rows.
    """

    as_of: date
    positions: int
    plan_run_id: str | None
    plan_as_of: date | None
    watch: pd.DataFrame

    def counts(self) -> dict[str, Any]:
        by_status = self.watch["status"].value_counts().to_dict() if len(self.watch) else {}
        return {
            "positions": self.positions,
            "plan_run_id": self.plan_run_id,
            "plan_as_of": self.plan_as_of.isoformat() if self.plan_as_of else None,
            **{str(k): int(v) for k, v in by_status.items()},
        }


@task(
    name="check-stock",
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_if_transient,
    timeout_seconds=900,
    **NO_CACHE_OPTIONS,
)
def check_stock(as_of: date) -> StockCheck:
    """Read the ERP's stock levels now and compare them with the latest
    completed nightly plan (:mod:`replenish.stockwatch`)."""
    s = settings()
    erp = open_erp(s.erp(), profile=s.erp_profile)
    try:
        # the small tables and one day of sales: the stock is what is wanted
        stock = erp.read_snapshot(as_of, history_days=1).stock_levels
    finally:
        erp.engine.dispose()
    with open_store() as store:
        runs = store.runs(limit=100)
        completed = runs[runs["status"] == "completed"] if len(runs) else runs
        if completed.empty:
            _logger().warning(
                "no completed nightly run yet: the stock watch has no plan to compare"
            )
            return StockCheck(as_of, len(stock), None, None, stock_watch(pd.DataFrame(), stock))
        latest = completed.iloc[0]
        plans = store.plans(str(latest["run_id"]))
    watch = stock_watch(plans, stock)
    plan_as_of = pd.Timestamp(latest["as_of"]).date()
    check = StockCheck(as_of, len(stock), str(latest["run_id"]), plan_as_of, watch)
    if plan_as_of < as_of - timedelta(days=1):
        _logger().warning(
            "the latest completed plan is of %s: the stock watch compares with an old plan",
            plan_as_of,
        )
    _logger().info("stock watch against the plan of %s: %s", plan_as_of, check.counts())
    return check


def _logger() -> Any:
    """The run's logger; a plain one when called outside a run (``.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
