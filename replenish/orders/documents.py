"""Draft purchase orders as documents: one header with its lines, ready to be
pushed to an ERP or exported for a supplier.

The store keeps draft orders as a flat frame of lines (``Store.orders``: one
row per line with the header fields repeated). Pushing and exporting both
need the same thing: per ``po_key`` the supplier, the location, the planning
date and the lines with what a buyer reads on an order — supplier SKU,
description, quantity, pack size, unit price, line value and the expected
delivery date. :func:`order_documents` builds that once for both.

Where the line frame lacks a field it is taken from the optional frames:

* ``description``: ``products.name`` (joined on ``sku``);
* ``pack_size``: ``plans.pack_size`` (joined on ``sku × location_id``);
* ``expected_date``: the order date plus the lead time, rounded up to whole
  days — ``as_of + ceil(L)`` with ``L = plans.lead_time_mean`` (days:
  order processing + supplier + transport + receiving, DESIGN.md "The
  maths"); a ``lead_time_days`` column on the lines is used first;
* ``supplier_name``: ``suppliers.name`` (joined on ``supplier_id``).

A line whose quantity is not a positive number or whose unit price is not a
number >= 0 makes its whole order invalid: the order is returned in
``rejected`` with the line, the field and the value, and the other orders
flow on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from replenish.errors import ContractError

__all__ = [
    "REQUIRED_COLUMNS",
    "OrderDocument",
    "OrderLine",
    "order_documents",
]

#: What the line frame must have (``Store.orders`` provides all of them).
REQUIRED_COLUMNS = ("po_key", "supplier_id", "location_id", "sku", "qty", "unit_price")


@dataclass(frozen=True)
class OrderLine:
    """One line of a draft order, as a buyer reads it."""

    line_no: int
    sku: str
    qty: float
    unit_price: float
    supplier_sku: str | None = None
    description: str | None = None
    pack_size: float | None = None
    expected_date: date | None = None
    explanation: str | None = None

    @property
    def line_value(self) -> float:
        """qty × unit price, rounded to cents."""
        return round(self.qty * self.unit_price, 2)

    @property
    def packs(self) -> float | None:
        """qty / pack size (whole packs when the quantity was rounded to packs)."""
        if self.pack_size is None or self.pack_size <= 0:
            return None
        return self.qty / self.pack_size


@dataclass(frozen=True)
class OrderDocument:
    """One draft purchase order: supplier × location × planning date."""

    po_key: str
    as_of: date
    supplier_id: str
    location_id: str
    lines: tuple[OrderLine, ...]
    currency: str | None = None
    status: str | None = None
    supplier_name: str | None = None
    #: the ERP's id of this order when the store recorded one (a previous push)
    erp_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Σ line values, rounded to cents."""
        return round(sum(line.line_value for line in self.lines), 2)

    @property
    def expected_date(self) -> date | None:
        """The earliest expected delivery of the lines (None if none is known)."""
        known = [line.expected_date for line in self.lines if line.expected_date is not None]
        return min(known) if known else None


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _day(value: Any) -> date | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(stamp) else stamp.date()


def _key_date(po_key: str) -> date | None:
    """The planning date at the front of a ``po_key`` ('2024-05-01/S1/WH1')."""
    try:
        return date.fromisoformat(po_key.split("/", 1)[0])
    except ValueError:
        return None


def _lookup(frame: pd.DataFrame | None, keys: list[str], col: str) -> dict[Any, Any]:
    """``{key tuple (or key): value}`` of ``col`` from ``frame``, last row wins."""
    if frame is None or frame.empty or col not in frame.columns:
        return {}
    if any(k not in frame.columns for k in keys):
        return {}
    sub = frame[[*keys, col]].dropna(subset=[col])
    sub = sub.astype({k: str for k in keys})
    if len(keys) == 1:
        return dict(zip(sub[keys[0]], sub[col], strict=True))
    return {tuple(row[:-1]): row[-1] for row in sub.itertuples(index=False, name=None)}


def order_documents(
    orders: pd.DataFrame,
    *,
    plans: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    suppliers: pd.DataFrame | None = None,
) -> tuple[list[OrderDocument], dict[str, str]]:
    """Group draft order lines into :class:`OrderDocument` s.

    Args:
        orders: draft lines, as ``Store.orders`` returns them (at least
            :data:`REQUIRED_COLUMNS`; ``as_of``, ``status``, ``currency``,
            ``line_no``, ``supplier_sku``, ``explanation``, ``description``,
            ``pack_size``, ``expected_date``, ``lead_time_days`` and
            ``erp_id`` are used when present).
        plans: the run's plan rows (``sku, location_id, pack_size,
            lead_time_mean``), for pack sizes and expected dates.
        products: the contract's products (``sku, name``), for descriptions.
        suppliers: the contract's suppliers (``supplier_id, name``).

    Returns:
        ``(documents, rejected)``: the valid orders sorted by ``po_key``, lines
        by line number; ``rejected`` maps the ``po_key`` of each invalid order
        to why (line, field, value).

    Raises:
        ContractError: a required column is missing from ``orders``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in orders.columns]
    if missing:
        raise ContractError(
            f"draft order lines: missing column(s) {', '.join(missing)} "
            f"(expected at least {', '.join(REQUIRED_COLUMNS)})"
        )
    names = _lookup(products, ["sku"], "name")
    supplier_names = _lookup(suppliers, ["supplier_id"], "name")
    pack_sizes = _lookup(plans, ["sku", "location_id"], "pack_size")
    lead_times = _lookup(plans, ["sku", "location_id"], "lead_time_mean")

    documents: list[OrderDocument] = []
    rejected: dict[str, str] = {}
    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()} for row in orders.to_dict("records")
    ]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = _text(row.get("po_key"))
        if key is None:
            raise ContractError("draft order lines: a line has no po_key")
        by_key.setdefault(key, []).append(row)

    for key in sorted(by_key):
        group = by_key[key]
        first = group[0]
        as_of = _day(first.get("as_of")) or _key_date(key)
        supplier_id = _text(first.get("supplier_id"))
        location_id = _text(first.get("location_id"))
        problems: list[str] = []
        if as_of is None:
            problems.append(f"no planning date (as_of) and none in the po_key {key!r}")
        if supplier_id is None:
            problems.append("no supplier_id")
        if location_id is None:
            problems.append("no location_id")
        lines: list[OrderLine] = []
        ordered = sorted(
            enumerate(group),
            key=lambda item: (_number(item[1].get("line_no")) or float("inf"), item[0]),
        )
        for position, (_, row) in enumerate(ordered, start=1):
            sku = _text(row.get("sku"))
            line_no = int(_number(row.get("line_no")) or position)
            where = f"line {line_no}" + (f" (SKU {sku})" if sku else "")
            qty = _number(row.get("qty"))
            price = _number(row.get("unit_price"))
            if sku is None:
                problems.append(f"{where}: no sku")
            if qty is None or qty <= 0:
                problems.append(f"{where}: qty must be a number > 0, got {row.get('qty')!r}")
            if price is None or price < 0:
                problems.append(
                    f"{where}: unit_price must be a number >= 0, got {row.get('unit_price')!r}"
                )
            if problems or sku is None or qty is None or price is None:
                continue
            pair = (sku, str(location_id))
            description = _text(row.get("description")) or _text(names.get(sku))
            pack = _number(row.get("pack_size"))
            if pack is None:
                pack = _number(pack_sizes.get(pair))
            expected = _day(row.get("expected_date"))
            if expected is None and as_of is not None:
                lead = _number(row.get("lead_time_days"))
                if lead is None:
                    lead = _number(lead_times.get(pair))
                if lead is not None and lead >= 0:
                    expected = as_of + timedelta(days=math.ceil(lead - 1e-9))
            lines.append(
                OrderLine(
                    line_no=line_no,
                    sku=sku,
                    qty=qty,
                    unit_price=price,
                    supplier_sku=_text(row.get("supplier_sku")),
                    description=description,
                    pack_size=pack if pack is not None and pack > 0 else None,
                    expected_date=expected,
                    explanation=_text(row.get("explanation")),
                )
            )
        skus = [line.sku for line in lines]
        duplicated = sorted({s for s in skus if skus.count(s) > 1})
        if duplicated:
            problems.append(f"SKU(s) on more than one line: {', '.join(duplicated)}")
        if problems or as_of is None or supplier_id is None or location_id is None:
            rejected[key] = "invalid draft: " + "; ".join(problems)
            continue
        documents.append(
            OrderDocument(
                po_key=key,
                as_of=as_of,
                supplier_id=supplier_id,
                location_id=location_id,
                lines=tuple(lines),
                currency=_text(first.get("currency")),
                status=_text(first.get("status")),
                supplier_name=_text(first.get("supplier_name"))
                or _text(supplier_names.get(supplier_id)),
                erp_id=_text(first.get("erp_id")),
            )
        )
    return documents, rejected
