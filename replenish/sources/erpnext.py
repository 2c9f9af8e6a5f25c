"""The *erpnext* ERP profile: ERPNext's (Frappe) MariaDB tables mapped onto the
contract.

``ErpNextErp(url).read_snapshot(...)`` reads an ERPNext database (read-only;
``SELECT`` on the database is enough) and returns the canonical contract
frames, with the same window, replay and SKU-filter semantics as
:class:`~replenish.sources.generic.GenericErp`. Frappe names every table
``tab<DocType>``, spaces included (``tabPurchase Order Item``); SQLAlchemy
quotes them. The mapping and its assumptions are in docs/erp-profiles.md.

Errors: an unreachable server raises :class:`SourceUnavailable` (retry); a
missing ERPNext table or column raises :class:`ContractError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    MetaData,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)

from replenish import model
from replenish.sources.db import safe_url
from replenish.sources.generic import (
    DEFAULT_HISTORY_DAYS,
    GenericErp,
    ReadWindow,
    coerced_snapshot,
)
from replenish.sources.profile import (
    check_schema,
    date_col,
    float_col,
    int_col,
    rank_priority,
    str_col,
    table,
)

_MD = MetaData()


item = table(
    _MD,
    "tabItem",
    str_col("name"),
    str_col("item_name"),
    str_col("item_group"),
    float_col("valuation_rate"),
    float_col("standard_rate"),
    float_col("last_purchase_rate"),
    float_col("min_order_qty"),
    float_col("lead_time_days"),
    int_col("disabled"),
    int_col("is_stock_item"),
)
item_supplier = table(
    _MD,
    "tabItem Supplier",
    str_col("parent"),
    int_col("idx"),
    str_col("supplier"),
    str_col("supplier_part_no"),
)
supplier = table(
    _MD,
    "tabSupplier",
    str_col("name"),
    str_col("supplier_name"),
    str_col("email_id"),
    str_col("default_currency"),
)
bin_ = table(
    _MD,
    "tabBin",
    str_col("item_code"),
    str_col("warehouse"),
    float_col("actual_qty"),
    float_col("reserved_qty"),
)
purchase_order = table(
    _MD,
    "tabPurchase Order",
    str_col("name"),
    str_col("supplier"),
    date_col("transaction_date"),
    date_col("schedule_date"),
    str_col("status"),
    int_col("docstatus"),
    str_col("set_warehouse"),
)
purchase_order_item = table(
    _MD,
    "tabPurchase Order Item",
    str_col("name"),
    str_col("parent"),
    int_col("idx"),
    str_col("item_code"),
    float_col("qty"),
    float_col("received_qty"),
    str_col("warehouse"),
)
purchase_receipt = table(
    _MD, "tabPurchase Receipt", str_col("name"), date_col("posting_date"), int_col("docstatus")
)
purchase_receipt_item = table(
    _MD, "tabPurchase Receipt Item", str_col("parent"), str_col("purchase_order_item")
)
sales_order = table(
    _MD,
    "tabSales Order",
    str_col("name"),
    date_col("transaction_date"),
    str_col("status"),
    int_col("docstatus"),
)
sales_order_item = table(
    _MD,
    "tabSales Order Item",
    str_col("parent"),
    int_col("idx"),
    str_col("item_code"),
    float_col("qty"),
    float_col("delivered_qty"),
    str_col("warehouse"),
)

#: The ERPNext tables the profile reads, with the columns it needs.
REQUIRED: Mapping[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns) for t in _MD.sorted_tables
}
#: submitted Purchase Order statuses after which nothing more is expected
PO_DONE_STATUSES = ("To Bill", "Completed", "Delivered", "Closed")


class ErpNextErp(GenericErp):
    """Reads an ERPNext database (MariaDB; Frappe v14/v15 schema)."""

    name = "erpnext"
    #: suppliers.currency when tabSupplier.default_currency is empty
    currency = "EUR"
    #: sales_order_lines.channel of every ERPNext sale
    channel = "erpnext"

    def __repr__(self) -> str:
        return f"ErpNextErp({safe_url(self.url)!r})"

    def check_contract(self) -> dict[str, list[str]]:
        """Raise :class:`ContractError` if an ERPNext table or column the
        profile reads is missing; return the columns read per table."""
        with self._errors("cannot read the ERP database"):
            check_schema(self.engine, self.url, self.name, REQUIRED)
        return {name: list(cols) for name, cols in REQUIRED.items()}

    def read_snapshot(
        self,
        as_of: date,
        *,
        history_days: int = DEFAULT_HISTORY_DAYS,
        skus: Sequence[str] | None = None,
        now: datetime | None = None,
        sales_start: datetime | None = None,
    ) -> model.ErpSnapshot:
        """The contract frames known on the evening of ``as_of`` (see
        :meth:`GenericErp.read_snapshot` for the window, replay and
        ``sales_start`` rules).
        ERPNext's order dates are DATE columns: they compare with dates."""
        self.check_contract()
        window = ReadWindow.of(as_of, history_days, skus, now, sales_start=sales_start)
        now, sku_filter = window.now, window.skus
        start = window.start.date()
        end = window.end.date() if window.end is not None else None

        def skus_only(stmt: Select[Any], col: Any) -> Select[Any]:
            return stmt.where(col.in_(sku_filter)) if sku_filter is not None else stmt

        products = skus_only(
            select(
                item.c.name.label("sku"),
                item.c.item_name.label("name"),
                item.c.item_group.label("category"),
                item.c.valuation_rate.label("unit_cost"),
                item.c.standard_rate.label("unit_price"),
                (item.c.disabled == 0).label("active"),
                literal("stock").label("replenishment_mode"),
            ).where(item.c.is_stock_item == 1),
            item.c.name,
        )

        isup = item_supplier
        supplier_products = skus_only(
            select(
                isup.c.parent.label("sku"),
                isup.c.supplier.label("supplier_id"),
                isup.c.supplier_part_no.label("supplier_sku"),
                item.c.lead_time_days.label("lead_time_days"),
                func.coalesce(func.nullif(item.c.min_order_qty, 0), 1.0).label("moq"),
                literal(1.0).label("pack_size"),
                func.coalesce(
                    func.nullif(item.c.last_purchase_rate, 0), item.c.valuation_rate
                ).label("unit_price"),
                isup.c.idx.label("_idx"),
            )
            .select_from(isup)
            .join(item, item.c.name == isup.c.parent),
            isup.c.parent,
        )

        suppliers = select(
            supplier.c.name.label("supplier_id"),
            supplier.c.supplier_name.label("name"),
            supplier.c.email_id.label("email"),
            func.coalesce(
                func.nullif(supplier.c.default_currency, ""), literal(self.currency)
            ).label("currency"),
            literal(0.0).label("min_order_value"),
            literal(0.0).label("order_processing_days"),
            literal(0.0).label("transport_days"),
            literal(0.0).label("receiving_days"),
        )

        stock_levels = skus_only(
            select(
                bin_.c.item_code.label("sku"),
                bin_.c.warehouse.label("location_id"),
                bin_.c.actual_qty.label("on_hand"),
                func.coalesce(bin_.c.reserved_qty, 0.0).label("allocated"),
            ),
            bin_.c.item_code,
        )

        po, poi = purchase_order, purchase_order_item
        status = case(
            (po.c.docstatus == 0, literal("draft")),
            (po.c.docstatus == 2, literal("cancelled")),
            (po.c.status.in_(PO_DONE_STATUSES), literal("received")),
            else_=literal("confirmed"),
        )
        is_open = or_(
            po.c.docstatus == 0,
            and_(po.c.docstatus == 1, po.c.status.not_in(PO_DONE_STATUSES)),
        )
        recent_or_open = or_(po.c.transaction_date >= start, is_open)
        if end is not None:
            recent_or_open = and_(recent_or_open, po.c.transaction_date < end)
        first_warehouse = (
            select(poi.c.warehouse)
            .where(poi.c.parent == po.c.name)
            .order_by(poi.c.idx)
            .limit(1)
            .scalar_subquery()
        )
        purchase_orders = select(
            po.c.name.label("po_id"),
            po.c.supplier.label("supplier_id"),
            func.coalesce(func.nullif(po.c.set_warehouse, ""), first_warehouse).label(
                "location_id"
            ),
            status.label("status"),
            po.c.transaction_date.label("ordered_at"),
            po.c.schedule_date.label("expected_at"),
        ).where(recent_or_open)

        pr, pri = purchase_receipt, purchase_receipt_item
        received_at = (
            select(func.max(pr.c.posting_date))
            .select_from(pri)
            .join(pr, pr.c.name == pri.c.parent)
            .where(pri.c.purchase_order_item == poi.c.name, pr.c.docstatus == 1)
            .scalar_subquery()
        )
        purchase_order_lines = skus_only(
            select(
                poi.c.parent.label("po_id"),
                poi.c.idx.label("line_no"),
                poi.c.item_code.label("sku"),
                poi.c.qty.label("qty_ordered"),
                poi.c.received_qty.label("qty_received"),
                received_at.label("received_at"),
            )
            .select_from(poi)
            .join(po, po.c.name == poi.c.parent)
            .where(recent_or_open),
            poi.c.item_code,
        )

        so, soi = sales_order, sales_order_item
        sale_status = case(
            (or_(so.c.docstatus == 2, so.c.status == "Cancelled"), literal("cancelled")),
            (
                or_(soi.c.delivered_qty >= soi.c.qty, so.c.status.in_(["Completed", "Closed"])),
                literal("shipped"),
            ),
            else_=literal("open"),
        )
        sales = skus_only(
            select(
                so.c.name.label("order_id"),
                soi.c.idx.label("line_no"),
                soi.c.item_code.label("sku"),
                soi.c.warehouse.label("location_id"),
                literal(self.channel).label("channel"),
                soi.c.qty.label("qty"),
                so.c.transaction_date.label("ordered_at"),
                sale_status.label("status"),
            )
            .select_from(soi)
            .join(so, so.c.name == soi.c.parent)
            .where(
                so.c.docstatus.in_([1, 2]),
                so.c.transaction_date >= window.sales_from.date(),
            ),
            soi.c.item_code,
        )
        if end is not None:
            sales = sales.where(so.c.transaction_date < end)

        statements: dict[str, Select[Any]] = {
            "suppliers": suppliers,
            "products": products,
            "supplier_products": supplier_products,
            "stock_levels": stock_levels,
            "purchase_orders": purchase_orders,
            "purchase_order_lines": purchase_order_lines,
            "sales_order_lines": sales,
        }
        raw = self._read_frames(statements)
        raw["stock_levels"]["as_of"] = now
        raw["supplier_products"] = rank_priority(raw["supplier_products"], ["_idx"])
        return coerced_snapshot(raw)
