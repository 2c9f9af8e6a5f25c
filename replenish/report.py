"""What a planner reads first after a run, as text (CLI) or Markdown (Prefect artifact)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from replenish.notify.alerts import Alert

AT_RISK_COLUMNS = [
    "sku",
    "location_id",
    "days_of_cover",
    "lead_time_mean",
    "on_hand",
    "safety_stock",
    "reorder_point",
    "order_qty",
    "supplier_id",
]


def orders_by_supplier(lines: pd.DataFrame) -> pd.DataFrame:
    """Draft orders summed per order: supplier, location, lines, value."""
    if lines.empty:
        return pd.DataFrame(columns=["po_key", "supplier_id", "location_id", "lines", "value"])
    return (
        lines.groupby(["po_key", "supplier_id", "location_id"], as_index=False)
        .agg(lines=("sku", "size"), value=("line_value", "sum"))
        .sort_values("value", ascending=False, kind="stable")
    )


def at_risk(plans: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` SKU×locations with a stockout risk and the fewest days of cover."""
    if plans.empty or "stockout_risk" not in plans:
        return pd.DataFrame(columns=AT_RISK_COLUMNS)
    risky = plans[plans["stockout_risk"].astype("boolean").fillna(False).astype(bool)]
    cols = [c for c in AT_RISK_COLUMNS if c in risky]
    return risky.sort_values("days_of_cover", kind="stable")[cols].head(n)


def _table(frame: pd.DataFrame, floatfmt: str = "{:,.1f}") -> str:
    if frame.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = []
    for rec in frame.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in rec]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows]) + "\n"


def _severity_counts(alerts: Sequence[Alert]) -> str:
    counts: dict[str, int] = {}
    for a in alerts:
        counts[a.severity] = counts.get(a.severity, 0) + 1
    return ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items())) or "none"


def run_summary_markdown(
    summary: Mapping[str, Any],
    plans: pd.DataFrame,
    alerts: Sequence[Alert],
    lines: pd.DataFrame | None = None,
) -> str:
    """The run's Markdown artifact: counts, orders per supplier, SKUs at risk."""
    drafts = summary.get("drafts") or {}
    parts = [
        f"# Replenishment {summary.get('as_of')}"
        + (" (dry run)" if summary.get("dry_run") else ""),
        "",
        f"Run `{summary.get('run_id')}`: {summary.get('plans', 0)} SKU×locations planned, "
        f"{summary.get('order_lines', 0)} need an order, "
        f"{summary.get('quarantined', 0)} input rows quarantined.",
        "",
        "Drafts: " + (", ".join(f"{k} {v}" for k, v in drafts.items()) or "not written (dry run)"),
        "",
        f"Alerts: {_severity_counts(alerts)}",
        "",
    ]
    if lines is not None:
        parts += ["## Draft orders per supplier", "", _table(orders_by_supplier(lines))]
    parts += ["## Most at risk", "", _table(at_risk(plans))]
    return "\n".join(parts)


def text_summary(
    summary: Mapping[str, Any],
    lines: pd.DataFrame,
    plans: pd.DataFrame,
    alerts: Sequence[Alert],
    store: str,
) -> str:
    """The CLI's closing summary, read top to bottom by a planner."""
    out = [f"Replenishment plan for {summary.get('as_of')}  (run {summary.get('run_id')})"]
    if summary.get("dry_run"):
        out.append("DRY RUN: plans recorded, no draft order written, no alert sent.")
    out.append(
        f"  {summary.get('plans', 0)} SKU×locations planned, "
        f"{summary.get('order_lines', 0)} need an order, "
        f"{summary.get('quarantined', 0)} input rows quarantined"
    )
    out.append("")
    by_supplier = orders_by_supplier(lines)
    out.append(f"Draft orders: {len(by_supplier)}")
    for r in by_supplier.itertuples(index=False):
        out.append(
            f"  {r.supplier_id:<10} {r.location_id:<6} {r.lines:>4} lines  {r.value:>12,.2f}"
        )
    out.append("")
    out.append(f"Alerts: {_severity_counts(alerts)}")
    risky = at_risk(plans, 10)
    if not risky.empty:
        out.append("")
        out.append("Most at risk (days of cover < lead time):")
        for risk in risky.to_dict("records"):
            out.append(
                f"  {risk['sku']:<12} {risk['location_id']:<6} "
                f"cover {risk['days_of_cover']:6.1f} d"
                f"  lead time {risk['lead_time_mean']:5.1f} d  order {risk['order_qty']:g}"
            )
    out.append("")
    out.append("Details:")
    out.append(f"  replenish plans  --db {store} --format csv   # every SKU, every number")
    out.append(f"  replenish orders --db {store} --format csv   # draft PO lines")
    out.append(f"  replenish quarantine --db {store}            # rejected input rows")
    return "\n".join(out)
