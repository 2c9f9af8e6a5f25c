"""The nightly replenishment flow: extract → validate → forecast → plan → publish."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from replenish.errors import DataQualityError
from replenish.notify.rules import plan_alerts, quality_alerts
from replenish.policy.plan import PlanSettings
from replenish.report import run_summary_markdown
from tasks.extract import extract_erp
from tasks.plan import forecast, plan
from tasks.publish import (
    finish_run,
    publish_drafts,
    send_alerts,
    start_run,
    store_plans,
    store_quarantine,
)
from tasks.validate import validate_data

DEFAULT_SERVICE_LEVELS = {"A": 0.98, "B": 0.95, "C": 0.90}


@flow(name="nightly-replenishment", log_prints=True)
def nightly_replenishment(
    as_of: date | None = None,
    skus: list[str] | None = None,
    dry_run: bool = False,
    service_levels: dict[str, float] | None = None,
    sku_service_levels: dict[str, float] | None = None,
    history_days: int = 730,
    full_refresh: bool = False,
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
    """
    as_of = as_of or date.today()
    levels = {**DEFAULT_SERVICE_LEVELS, **(service_levels or {})}
    parameters = {
        "as_of": as_of.isoformat(),
        "skus": skus,
        "dry_run": dry_run,
        "service_levels": levels,
        "sku_service_levels": sku_service_levels or {},
        "history_days": history_days,
        "full_refresh": full_refresh,
    }
    flow_run_id = runtime.flow_run.id
    run_id = start_run(as_of, parameters, dry_run, str(flow_run_id) if flow_run_id else None)
    counts: dict[str, Any] = {}
    heading = f"replenish {as_of.isoformat()}" + (" (dry run)" if dry_run else "")
    try:
        snapshot = extract_erp(as_of, skus, history_days, full_refresh)
        counts["rows_read"] = snapshot.row_counts()

        gate = validate_data(snapshot, as_of)
        counts["quarantined"] = store_quarantine(run_id, gate.quarantine)
        if gate.blocking:
            blocking = [f"{f.dataset}: {f.detail}" for f in gate.failures if f.blocking]
            message = "; ".join(blocking)
            if not dry_run:
                send_alerts(run_id, as_of, quality_alerts(blocking, 0), heading)
            finish_run(run_id, "blocked", counts, message)
            raise DataQualityError(f"validation gate stopped the run, no order written: {message}")

        demand = forecast(gate.clean, as_of, history_days)
        settings = PlanSettings(
            service_levels=levels, service_level_overrides=sku_service_levels or {}
        )
        plans = plan(gate.clean, demand, as_of, settings)
        counts["plans"] = store_plans(run_id, plans)
        counts["order_lines"] = int((plans["order_qty"] > 0).sum())
        alerts = plan_alerts(plans) + quality_alerts([], counts["quarantined"])
        counts["alerts"] = len(alerts)

        if not dry_run:
            published = publish_drafts(run_id, as_of, plans, gate.clean, skus)
            counts["drafts"] = published.counts()
            counts["delivery"] = send_alerts(run_id, as_of, alerts, heading)
        finish_run(run_id, "completed", counts, None)
    except DataQualityError:
        raise
    except Exception as e:
        finish_run(run_id, "failed", counts, f"{type(e).__name__}: {e}")
        raise

    summary = {"run_id": run_id, "as_of": as_of.isoformat(), "dry_run": dry_run, **counts}
    create_markdown_artifact(
        key="replenishment-summary",
        markdown=run_summary_markdown(summary, plans, alerts),
        description=f"Replenishment run {run_id} for {as_of.isoformat()}",
    )
    return summary


if __name__ == "__main__":
    nightly_replenishment()
