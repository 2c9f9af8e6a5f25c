"""The nightly replenishment flow: extract → validate → forecast → plan → publish."""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated, Any, Literal

from prefect import flow, runtime
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import Field, ValidationError

from replenish.errors import ConfigurationError, DataQualityError
from replenish.notify.rules import AlertRules, gate_scopes, quality_alerts, run_alerts, run_scopes
from replenish.policy.plan import PlanSettings
from replenish.settings import Settings
from tasks.extract import extract_erp
from tasks.plan import choose_partitions, forecast_and_plan
from tasks.publish import (
    finish_run,
    notify_flow_state,
    publish_artifacts,
    publish_drafts,
    push_approved,
    run_approval,
    run_kpis,
    send_alerts,
    start_run,
    store_plans,
    store_quarantine,
    write_sku_report,
)
from tasks.validate import validate_data

DEFAULT_SERVICE_LEVELS = {"A": 0.98, "B": 0.95, "C": 0.90}
#: The flow's name: its failure alerts carry it (docs/alerts.md, "Flow failures").
FLOW_NAME = "nightly-replenishment"


def select_task_runner(settings: Settings | None = None) -> TaskRunner[Any]:
    """The task runner the forecast and plan tasks are submitted to
    (docs/operations.md), from ``REPLENISH_TASK_RUNNER`` and friends:

    * ``threads`` (default): a thread pool in the flow's own process;
    * ``dask`` with ``REPLENISH_DASK_ADDRESS``: prefect-dask's
      ``DaskTaskRunner`` on that existing cluster's scheduler;
    * ``dask`` without: a temporary local Dask cluster of
      ``REPLENISH_DASK_WORKERS`` workers (default one per CPU), one thread
      each, processes unless ``REPLENISH_DASK_PROCESSES=false``, its
      dashboard on a free loopback port.

    Read when this module is imported (so a deployment's worker honours its
    environment); ``nightly_replenishment.with_options(task_runner=...)``
    overrides it per call.

    Raises:
        ConfigurationError: a setting has an invalid value.
    """
    try:
        s = settings or Settings()
    except ValidationError as e:
        raise ConfigurationError(f"invalid REPLENISH_ setting: {e}") from None
    if s.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if s.dask_address:
            return DaskTaskRunner(address=s.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": s.dask_workers or os.cpu_count() or 1,
                "threads_per_worker": 1,
                "processes": s.dask_processes,
                "dashboard_address": "127.0.0.1:0",
            }
        )
    return ThreadPoolTaskRunner()


@flow(
    name=FLOW_NAME,
    log_prints=True,
    task_runner=select_task_runner(),
    # a critical alert when a run fails or crashes (docs/alerts.md, "Flow failures")
    on_failure=[notify_flow_state],
    on_crashed=[notify_flow_state],
)
def nightly_replenishment(
    as_of: date | None = None,
    skus: list[str] | None = None,
    dry_run: bool = False,
    service_levels: dict[str, float] | None = None,
    sku_service_levels: dict[str, float] | None = None,
    history_days: int = 730,
    full_refresh: bool = False,
    approval_threshold: float | None = None,
    auto_approve_below: bool = False,
    approval_timeout: int = 3600,
    push_target: Literal["none", "odoo", "erpnext"] = "none",
    report_top_n: int = 10,
    partitions: Annotated[int, Field(ge=1)] | None = None,
    alert_digest: bool = True,
    alert_rules: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Plan replenishment for one day and publish draft supplier orders and alerts.

    Args:
        as_of: planning date (default: today); sales known by its evening count.
        skus: plan only these SKUs (default: all active SKUs); the draft lines
            of other SKUs are left as they are.
        dry_run: compute and record plans, but write no draft order and send
            no alert.
        service_levels: cycle service level per ABC class, e.g. {"A": 0.99};
            classes left out keep their default (A 0.98, B 0.95, C 0.90).
        sku_service_levels: per-SKU cycle service level, beats everything else.
        history_days: days of sales history read for the forecast.
        full_refresh: rebuild the demand cache from the ERP's whole sales
            history instead of reading what changed since the last run (use it
            after old orders were edited in the ERP; docs/incremental.md).
        approval_threshold: draft orders worth more than this wait for a person:
            the run pauses with an approval form in the Prefect UI (approve,
            reject or hold each order, adjust quantities); None: no order waits
            (docs/publishing.md, "Approval").
        auto_approve_below: approve the orders at or below the threshold
            automatically (recorded as ``auto``); otherwise they stay drafts.
        approval_timeout: seconds the run waits for the approval form; then the
            waiting orders stay drafts (approve later with ``replenish approve``)
            and the run goes on.
        push_target: push the approved orders to this ERP as draft RFQs / purchase
            orders: ``odoo``, ``erpnext`` or ``none`` (docs/publishing.md).
        report_top_n: the per-SKU report shows the pictures of this many of the
            largest proposed orders (0: no report; docs/kpis.md).
        partitions: split the forecast and plan into this many partitions of
            SKUs, run in parallel on the task runner (default: 1 on threads;
            on Dask 1 below 20,000 series, else one per 50,000 series and at
            least one per worker; docs/operations.md). The plans are the same
            whatever the number.
        alert_digest: one alert message per channel and run grouping every
            new, worse and resolved alert; false: one message per alert
            (docs/alerts.md).
        alert_rules: alert thresholds overriding the defaults by name, e.g.
            {"overstock_days": 120, "po_late_critical_days": 5}
            (docs/alerts.md, "Kinds and severities").
    """
    as_of = as_of or date.today()
    rules = AlertRules.from_mapping(alert_rules)
    levels = {**DEFAULT_SERVICE_LEVELS, **(service_levels or {})}
    parameters = {
        "as_of": as_of.isoformat(),
        "skus": skus,
        "dry_run": dry_run,
        "service_levels": levels,
        "sku_service_levels": sku_service_levels or {},
        "history_days": history_days,
        "full_refresh": full_refresh,
        "approval_threshold": approval_threshold,
        "auto_approve_below": auto_approve_below,
        "approval_timeout": approval_timeout,
        "push_target": push_target,
        "report_top_n": report_top_n,
        "partitions": partitions,
        "alert_digest": alert_digest,
        "alert_rules": rules.to_dict(),
    }
    flow_run_id = runtime.flow_run.id
    run_id = start_run(as_of, parameters, dry_run, str(flow_run_id) if flow_run_id else None)
    counts: dict[str, Any] = {}
    heading = f"replenish {as_of.isoformat()}" + (" (dry run)" if dry_run else "")
    try:
        snapshot = extract_erp(as_of, skus, history_days, full_refresh)
        counts["rows_read"] = snapshot.row_counts()

        gate = validate_data(snapshot, as_of, run_id=run_id)
        # only the gate's clean snapshot is read from here on: the raw frames
        # (the sales lines: ~0.9 GB at 100,000 series) are not kept for the run
        del snapshot
        counts["quarantined"] = store_quarantine(run_id, gate.quarantine)
        if gate.blocking:
            blocking = [f"{f.dataset}: {f.detail}" for f in gate.failures if f.blocking]
            message = "; ".join(blocking)
            if not dry_run:
                send_alerts(
                    run_id,
                    as_of,
                    quality_alerts(blocking, 0),
                    heading,
                    gate_scopes(),
                    alert_digest,
                    rules,
                )
            finish_run(run_id, "blocked", counts, message)
            raise DataQualityError(f"validation gate stopped the run, no order written: {message}")

        settings = PlanSettings(
            service_levels=levels, service_level_overrides=sku_service_levels or {}
        )
        counts["partitions"] = choose_partitions(gate.clean, partitions)
        plans = forecast_and_plan(gate.clean, as_of, history_days, settings, counts["partitions"])
        counts["plans"] = store_plans(run_id, plans)
        counts["order_lines"] = int((plans["order_qty"] > 0).sum())
        alerts = run_alerts(
            plans, gate.clean, as_of, quarantined=counts["quarantined"], rules=rules, skus=skus
        )
        counts["alerts"] = len(alerts)

        if not dry_run:
            published = publish_drafts(run_id, as_of, plans, gate.clean, skus)
            counts["drafts"] = published.counts()
            counts["delivery"] = send_alerts(
                run_id, as_of, alerts, heading, run_scopes(skus, FLOW_NAME), alert_digest, rules
            )
            approval = run_approval(
                run_id, as_of, approval_threshold, auto_approve_below, approval_timeout
            )
            counts["approval"] = approval.counts()
            if push_target != "none":
                counts["push"] = push_approved(run_id, as_of, push_target)
        kpis = run_kpis(run_id, gate.clean, plans, as_of)
        report = write_sku_report(run_id, gate.clean, plans, as_of, history_days, report_top_n)
        finish_run(run_id, "completed", counts, None)
    except DataQualityError:
        raise
    except Exception as e:
        finish_run(run_id, "failed", counts, f"{type(e).__name__}: {e}")
        raise

    summary = {"run_id": run_id, "as_of": as_of.isoformat(), "dry_run": dry_run, **counts}
    publish_artifacts(run_id, as_of, summary, plans, alerts, kpis, gate.data_docs, report)
    return summary


if __name__ == "__main__":
    nightly_replenishment()
