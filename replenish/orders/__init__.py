"""Draft purchase orders: grouping the planned lines per supplier × location.

Pure: plans in, (headers, lines) frames out. Storing them idempotently is the
store's job (``Store.publish_drafts``); pushing them to an ERP comes later.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

HEADER_COLUMNS = [
    "po_key",
    "supplier_id",
    "location_id",
    "currency",
    "line_count",
    "total_value",
    "min_order_value",
    "below_minimum",
]
LINE_COLUMNS = [
    "po_key",
    "line_no",
    "supplier_id",
    "location_id",
    "sku",
    "supplier_sku",
    "qty",
    "unit_price",
    "line_value",
    "explanation",
]


def po_key(as_of: date, supplier_id: str, location_id: str) -> str:
    """The idempotency key of a draft: one per supplier × location × planning date."""
    return f"{as_of.isoformat()}/{supplier_id}/{location_id}"


def _explanation(row: pd.Series) -> str:
    parts = [str(row.get("reason") or "")]
    for label, col in (
        ("IP", "inventory_position"),
        ("ROP", "reorder_point"),
        ("SS", "safety_stock"),
        ("d/day", "demand_mean"),
        ("L days", "lead_time_mean"),
    ):
        v = row.get(col)
        if v is not None and pd.notna(v):
            parts.append(f"{label} {float(v):.1f}")
    if row.get("rounding"):
        parts.append(f"rounding: {row['rounding']}")
    return "; ".join(p for p in parts if p)


def build_lines(plans: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Draft PO lines from the plan rows that have an order quantity.

    Lines get their ``po_key`` (supplier × location × ``as_of``), a value and
    an explanation; they are numbered from 1 in SKU order within each order.
    """
    wanted = plans[(plans["order_qty"].fillna(0) > 0) & plans["supplier_id"].notna()]
    if wanted.empty:
        return pd.DataFrame(columns=LINE_COLUMNS)
    lines = wanted.copy()
    lines["po_key"] = [
        po_key(as_of, s, loc)
        for s, loc in zip(lines["supplier_id"], lines["location_id"], strict=True)
    ]
    lines["qty"] = lines["order_qty"].astype(float)
    lines["unit_price"] = lines["unit_price"].astype(float).fillna(0.0)
    lines["line_value"] = (lines["qty"] * lines["unit_price"]).round(2)
    lines["explanation"] = lines.apply(_explanation, axis=1)
    if "supplier_sku" not in lines:
        lines["supplier_sku"] = None
    return number_lines(lines)


def number_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines sorted by order and SKU, numbered from 1 within each order."""
    out = lines.sort_values(["po_key", "sku"]).copy()
    out["line_no"] = out.groupby("po_key").cumcount() + 1
    return out[LINE_COLUMNS].reset_index(drop=True)


def build_headers(lines: pd.DataFrame, suppliers: pd.DataFrame) -> pd.DataFrame:
    """One header per draft order: line count, value, and whether the value is
    below the supplier's minimum order value (flagged, not topped up yet)."""
    if lines.empty:
        return pd.DataFrame(columns=HEADER_COLUMNS)
    headers = lines.groupby(["po_key", "supplier_id", "location_id"], as_index=False).agg(
        line_count=("sku", "size"), total_value=("line_value", "sum")
    )
    sup = suppliers[["supplier_id", "currency", "min_order_value"]].drop_duplicates("supplier_id")
    headers = headers.merge(sup, on="supplier_id", how="left")
    headers["min_order_value"] = headers["min_order_value"].astype(float).fillna(0.0)
    headers["total_value"] = headers["total_value"].astype(float).round(2)
    headers["below_minimum"] = headers["total_value"] < headers["min_order_value"]
    return headers[HEADER_COLUMNS]


def build_drafts(
    plans: pd.DataFrame, suppliers: pd.DataFrame, as_of: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group the plan rows with an order quantity into draft purchase orders.

    Args:
        plans: per SKU×location plan rows (``sku, location_id, supplier_id,
            supplier_sku, order_qty, unit_price, reason, ...``).
        suppliers: the contract's suppliers (``currency, min_order_value``).
        as_of: the planning date; part of every ``po_key``.

    Returns:
        ``(headers, lines)``.
    """
    lines = build_lines(plans, as_of)
    return build_headers(lines, suppliers), lines


def merge_partial(existing: pd.DataFrame, new_lines: pd.DataFrame, scope: set[str]) -> pd.DataFrame:
    """Lines of a run planned for the SKUs in ``scope`` only: the existing
    draft lines of the other SKUs are kept, those of ``scope`` replaced."""
    kept = existing[~existing["sku"].isin(scope)]
    if "status" in kept.columns:  # drafts that moved on are not the run's to change
        kept = kept[kept["status"] == "draft"]
    frames = [f[LINE_COLUMNS] for f in (kept, new_lines) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=LINE_COLUMNS)
    return number_lines(pd.concat(frames, ignore_index=True))
