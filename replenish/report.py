"""What a planner reads first after a run, as text (CLI) or Markdown (Prefect
artifact): the summary, the table of draft orders, the KPIs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from replenish.notify.alerts import Alert

if TYPE_CHECKING:
    from replenish.kpis import Kpis

#: Keys of the Prefect artifacts of a run (the latest of each key is shown
#: under Artifacts in the UI; each run's own are on its page).
SUMMARY_KEY: Final = "replenishment-summary"
DRAFTS_KEY: Final = "draft-orders"
KPIS_KEY: Final = "kpis"
DATA_DOCS_KEY: Final = "data-docs"
SKU_REPORT_KEY: Final = "sku-report"

#: Columns of the draft-orders table artifact, in order.
DRAFT_TABLE_COLUMNS = [
    "po_key",
    "supplier_id",
    "location_id",
    "lines",
    "value",
    "currency",
    "below_minimum",
    "status",
    "decided_by",
    "decided_at",
    "push",
    "erp_ref",
    "note",
]

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


def _plain_cell(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat(sep=" ", timespec="seconds")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def draft_table_rows(headers: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-ready record per draft order (``Store.drafts``), for the
    draft-orders table artifact: value, status, who decided, what the push
    did and the ERP's reference (:data:`DRAFT_TABLE_COLUMNS`)."""
    rows = []
    for h in headers.sort_values("po_key").to_dict("records"):
        note = h.get("push_message") or ""
        if h.get("status") == "superseded":
            note = f"superseded by {h.get('superseded_by')}"
        rows.append(
            {
                "po_key": h["po_key"],
                "supplier_id": h["supplier_id"],
                "location_id": h["location_id"],
                "lines": _plain_cell(h.get("line_count")),
                "value": round(float(h["total_value"]), 2),
                "currency": _plain_cell(h.get("currency")),
                "below_minimum": bool(h.get("below_minimum")),
                "status": h["status"],
                "decided_by": _plain_cell(h.get("decided_by")),
                "decided_at": _plain_cell(h.get("decided_at")),
                "push": _plain_cell(h.get("push_action")),
                "erp_ref": _plain_cell(h.get("erp_name")) or _plain_cell(h.get("erp_id")),
                "note": note,
            }
        )
    return rows


def _approval_lines(summary: Mapping[str, Any]) -> list[str]:
    approval = summary.get("approval") or {}
    push = summary.get("push") or {}
    out = []
    if approval:
        if approval.get("timed_out"):
            out.append(
                f"Approval: **timed out**, {approval.get('held', 0)} order(s) left as drafts "
                "(decide with `replenish approve`)."
            )
        else:
            who = f" by {approval['approver']}" if approval.get("approver") else ""
            out.append(
                f"Approval{who}: {approval.get('approved', 0)} approved "
                f"({approval.get('adjusted', 0)} adjusted), "
                f"{approval.get('auto_approved', 0)} auto-approved, "
                f"{approval.get('rejected', 0)} rejected, {approval.get('held', 0)} held"
                + (f", {len(approval['failed'])} not decided" if approval.get("failed") else "")
                + "."
            )
    if push:
        done = ", ".join(
            f"{push[k]} {k}"
            for k in ("created", "updated", "unchanged", "skipped", "failed", "held")
            if push.get(k)
        )
        if push.get("duplicates_removed"):
            done += f" ({push['duplicates_removed']} duplicate(s) in the ERP removed)"
        out.append(f"Push to {push.get('target')}: {done or 'nothing to push'}.")
    return out


def run_summary_markdown(
    summary: Mapping[str, Any],
    plans: pd.DataFrame,
    alerts: Sequence[Alert],
    lines: pd.DataFrame | None = None,
    *,
    headers: pd.DataFrame | None = None,
    links: Mapping[str, Path | None] | None = None,
    kpis: Kpis | None = None,
) -> str:
    """The run's Markdown artifact: counts, approval and push, orders per
    supplier, SKUs at risk, the headline KPIs and the links to the Data
    Docs and the per-SKU report (``links``: ``data_docs``, ``sku_report``)."""
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
    for line in _approval_lines(summary):
        parts += [line, ""]
    found = {k: v for k, v in (links or {}).items() if v is not None}
    if found:
        names = {
            "data_docs": "Data Docs (validation of the input)",
            "sku_report": "Per-SKU pictures",
        }
        parts += ["## Links", ""]
        parts += [f"- [{names.get(k, k)}]({Path(v).resolve().as_uri()})" for k, v in found.items()]
        parts.append("")
    if lines is not None:
        by_po = orders_by_supplier(lines)
        if headers is not None and not by_po.empty:
            status = headers.set_index("po_key")["status"]
            by_po = by_po.assign(status=by_po["po_key"].map(status))
        parts += ["## Draft orders per supplier", "", _table(by_po)]
    parts += ["## Most at risk", "", _table(at_risk(plans))]
    if kpis is not None:
        parts += ["", kpis.to_markdown()]
    return "\n".join(parts)


def _kpi_value(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "ratio":
        return f"{100 * float(value):.1f} %"
    if unit == "count":
        return f"{float(value):,.0f}"
    return f"{float(value):,.1f}"


def kpi_rows(kpis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The overall KPIs of a stored ``Kpis.to_dict()``: kpi, value, unit, basis."""
    units = kpis.get("units") or {}
    basis = kpis.get("basis") or {}
    return [
        {"kpi": k, "value": v, "unit": units.get(k, ""), "basis": basis.get(k, "")}
        for k, v in (kpis.get("overall") or {}).items()
    ]


def kpis_text(kpis: Mapping[str, Any], run_id: str, fmt: str = "table") -> str:
    """A stored ``Kpis.to_dict()`` for people: ``table`` (aligned text),
    ``markdown`` (the overall table and the ABC classes) or ``json``."""
    if fmt == "json":
        return json.dumps({"run_id": run_id, **kpis}, indent=2)
    rows = kpi_rows(kpis)
    title = f"KPIs of run {run_id}: {kpis.get('window_days')} days before {kpis.get('as_of')}"
    if fmt == "markdown":
        out = [f"## {title}", "", "| KPI | value | unit | basis |", "|---|---:|---|---|"]
        out += [
            f"| {r['kpi']} | {_kpi_value(r['value'], r['unit'])} | {r['unit']} | {r['basis']} |"
            for r in rows
        ]
        classes = kpis.get("by_abc_class") or {}
        if classes:
            names = list(next(iter(classes.values())))
            out += ["", "### Per ABC class", "", "| class | " + " | ".join(names) + " |"]
            out.append("|---|" + "---:|" * len(names))
            units = kpis.get("units") or {}
            for cls, values in classes.items():
                cells = [_kpi_value(values.get(n), units.get(n, "")) for n in names]
                out.append(f"| {cls} | " + " | ".join(cells) + " |")
        return "\n".join(out) + "\n"
    width = max((len(r["kpi"]) for r in rows), default=10)
    out = [title]
    for r in rows:
        value = _kpi_value(r["value"], r["unit"])
        out.append(f"  {r['kpi']:<{width}}  {value:>14}  {r['unit']:<9} {r['basis']}")
    return "\n".join(out)


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
