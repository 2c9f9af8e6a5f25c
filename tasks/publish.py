"""Record and publish: the run, plans, quarantine, draft orders and alerts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import pandas as pd
from prefect import get_run_logger, task

from replenish.errors import NotifyError
from replenish.model import ErpSnapshot
from replenish.notify import Alert, build_notifiers
from replenish.orders import build_headers, build_lines, merge_partial, top_up_to_minimum
from replenish.store import PublishResult, Store
from tasks.common import NO_CACHE_OPTIONS, settings


@contextmanager
def open_store() -> Iterator[Store]:
    """The store of the settings, disposed of when the step is done."""
    store = Store(settings().store())
    try:
        yield store
    finally:
        store.dispose()


@task(name="start-run", **NO_CACHE_OPTIONS)
def start_run(
    as_of: date, parameters: dict[str, Any], dry_run: bool, flow_run_id: str | None
) -> str:
    with open_store() as store:
        return store.start_run(
            as_of,
            erp=settings().erp(),
            parameters=parameters,
            dry_run=dry_run,
            flow_run_id=flow_run_id,
        )


@task(name="finish-run", **NO_CACHE_OPTIONS)
def finish_run(run_id: str, status: str, counts: dict[str, Any], message: str | None) -> None:
    with open_store() as store:
        store.finish_run(run_id, status, counts=counts, message=message)


@task(name="store-quarantine", **NO_CACHE_OPTIONS)
def store_quarantine(run_id: str, quarantine: pd.DataFrame) -> int:
    with open_store() as store:
        return store.save_quarantine(run_id, quarantine)


@task(name="store-plans", **NO_CACHE_OPTIONS)
def store_plans(run_id: str, plans: pd.DataFrame) -> int:
    with open_store() as store:
        return store.save_plans(run_id, plans)


@task(name="publish-drafts", **NO_CACHE_OPTIONS)
def publish_drafts(
    run_id: str,
    as_of: date,
    plans: pd.DataFrame,
    snapshot: ErpSnapshot,
    skus: Sequence[str] | None = None,
) -> PublishResult:
    """Draft POs per supplier × location, stored idempotently for ``as_of``.

    A run limited to ``skus`` replaces the draft lines of those SKUs only and
    keeps the other lines of the same drafts. A draft below its supplier's
    minimum order value is topped up, most urgent line first, within caps.
    """
    lines = build_lines(plans, as_of)
    with open_store() as store:
        if skus:
            lines = merge_partial(store.orders(as_of=as_of), lines, set(skus))
        lines, topups = top_up_to_minimum(lines, plans, snapshot.suppliers)
        headers = build_headers(lines, snapshot.suppliers, topups)
        return store.publish_drafts(as_of, run_id, headers, lines)


@task(name="send-alerts", **NO_CACHE_OPTIONS)
def send_alerts(run_id: str, as_of: date, alerts: Sequence[Alert], heading: str) -> dict[str, Any]:
    """Send the alerts of ``as_of`` not sent before, on every configured channel.

    A channel that fails is reported in the result (and the log) without
    stopping the others; alerts are marked sent with the channels that took
    them, so a rerun of the same date does not send them again.
    """
    logger = get_run_logger()
    with open_store() as store:
        fresh = store.record_alerts(as_of, run_id, alerts)
        if not fresh:
            return {"alerts": len(alerts), "sent": 0, "channels": [], "failed": {}}
        delivered: list[str] = []
        failed: dict[str, str] = {}
        for notifier in build_notifiers(settings(), logger):
            try:
                notifier.send(fresh, heading=heading)
                delivered.append(notifier.name)
            except NotifyError as e:  # also NotifyUnavailable, after its own retries
                failed[notifier.name] = str(e)
                logger.error("alert channel %s failed: %s", notifier.name, e)
        store.mark_alerts_sent(as_of, fresh, ",".join(delivered))
        return {"alerts": len(alerts), "sent": len(fresh), "channels": delivered, "failed": failed}
