"""The *odoo* ERP profile: Odoo's own PostgreSQL tables mapped onto the contract.

``OdooErp(url).read_snapshot(...)`` reads an Odoo database (read-only; a user
with ``SELECT`` on the tables below is enough) and returns the canonical
contract frames, with the same window, replay and SKU-filter semantics as
:class:`~replenish.sources.generic.GenericErp`. The mapping and its
assumptions are in docs/erp-profiles.md.

Errors: an unreachable server raises :class:`SourceUnavailable` (retry); a
missing Odoo table or column raises :class:`ContractError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    MetaData,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

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
    float_col,
    int_col,
    rank_priority,
    str_col,
    table,
)

_MD = MetaData()


product_product = table(
    _MD,
    "product_product",
    int_col("id"),
    str_col("default_code"),
    int_col("product_tmpl_id"),
    Column("active", Boolean),
    # unit cost, Odoo >= 18: company-dependent fields are jsonb {"<company id>": value}
    Column("standard_price", JSONB),
)
product_template = table(
    _MD,
    "product_template",
    int_col("id"),
    str_col("name"),
    float_col("list_price"),
    int_col("categ_id"),
    str_col("type"),
    Column("active", Boolean),
)
product_category = table(_MD, "product_category", int_col("id"), str_col("name"))
res_partner = table(_MD, "res_partner", int_col("id"), str_col("name"), str_col("email"))
product_supplierinfo = table(
    _MD,
    "product_supplierinfo",
    int_col("id"),
    int_col("partner_id"),
    int_col("product_tmpl_id"),
    int_col("product_id"),
    float_col("min_qty"),
    int_col("delay"),
    float_col("price"),
    int_col("sequence"),
    str_col("product_code"),
)
stock_warehouse = table(
    _MD, "stock_warehouse", int_col("id"), str_col("code"), int_col("lot_stock_id")
)
stock_location = table(
    _MD, "stock_location", int_col("id"), str_col("parent_path"), str_col("usage")
)
stock_quant = table(
    _MD,
    "stock_quant",
    int_col("product_id"),
    int_col("location_id"),
    float_col("quantity"),
    float_col("reserved_quantity"),
)
stock_picking_type = table(_MD, "stock_picking_type", int_col("id"), int_col("warehouse_id"))
purchase_order = table(
    _MD,
    "purchase_order",
    int_col("id"),
    str_col("name"),
    int_col("partner_id"),
    str_col("state"),
    Column("date_order", DateTime),
    Column("date_planned", DateTime),
    int_col("picking_type_id"),
)
purchase_order_line = table(
    _MD,
    "purchase_order_line",
    int_col("id"),
    int_col("order_id"),
    int_col("product_id"),
    float_col("product_qty"),
    float_col("qty_received"),
)
stock_move = table(
    _MD,
    "stock_move",
    int_col("product_id"),
    int_col("purchase_line_id"),
    str_col("state"),
    Column("date", DateTime),
)
sale_order = table(
    _MD,
    "sale_order",
    int_col("id"),
    str_col("name"),
    str_col("state"),
    Column("date_order", DateTime),
    int_col("warehouse_id"),
)
sale_order_line = table(
    _MD,
    "sale_order_line",
    int_col("id"),
    int_col("order_id"),
    int_col("product_id"),
    float_col("product_uom_qty"),
    float_col("qty_delivered"),
)
# unit cost, Odoo <= 17: the company-dependent standard_price lives in ir_property
ir_property = table(
    _MD,
    "ir_property",
    str_col("name"),
    str_col("res_id"),
    int_col("company_id"),
    float_col("value_float"),
)

#: The Odoo tables the profile reads, with the columns it needs.
_OPTIONAL = {("product_product", "standard_price")}
REQUIRED: Mapping[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if (t.name, c.name) not in _OPTIONAL)
    for t in _MD.sorted_tables
    if t.name != "ir_property"
}

#: Odoo purchase_order.state -> contract purchase_orders.status
PO_STATUS: Mapping[str, str] = {
    "draft": "draft",
    "to approve": "draft",  # waiting for internal approval, not yet sent
    "sent": "sent",
    "purchase": "confirmed",
    "done": "received",  # locked: nothing more is expected
    "cancel": "cancelled",
}
#: sale_order.state values that are orders (quotations 'draft'/'sent' are not demand)
SALE_CONFIRMED = ("sale", "done")


class OdooErp(GenericErp):
    """Reads an Odoo database (PostgreSQL; tested against the Odoo 16/17 schema,
    unit cost from Odoo 18's jsonb column too)."""

    name = "odoo"
    #: the company whose unit cost (company-dependent standard_price) is read
    company_id = 1
    #: Odoo keeps no purchase currency per vendor outside company properties
    currency = "EUR"
    #: sales_order_lines.channel of every Odoo sale
    channel = "odoo"
    #: the language of product names (Odoo >= 16 stores them as jsonb per language)
    lang = "en_US"

    def __repr__(self) -> str:
        return f"OdooErp({safe_url(self.url)!r})"

    def check_contract(self) -> dict[str, list[str]]:
        """Raise :class:`ContractError` if an Odoo table or column the profile
        reads is missing; return the columns read per Odoo table."""
        with self._errors("cannot read the ERP database"):
            check_schema(self.engine, self.url, self.name, REQUIRED)
        return {name: list(cols) for name, cols in REQUIRED.items()}

    def _translated(self, value: Any) -> Any:
        """A translated field's value in :attr:`lang` (else en_US, else any)."""
        if not isinstance(value, dict):
            return value
        for key in (self.lang, "en_US"):
            if value.get(key):
                return value[key]
        return next(iter(value.values()), None)

    def _unit_cost(self, columns: dict[str, set[str]]) -> Any:
        pp = product_product
        if "standard_price" in columns["product_product"]:  # Odoo >= 18: jsonb per company
            by_company = pp.c.standard_price.op("->>")(literal(str(self.company_id)))
            return cast(by_company, Float)
        if "ir_property" in columns:  # Odoo <= 17
            ip = ir_property
            return (
                select(ip.c.value_float)
                .where(
                    ip.c.name == "standard_price",
                    ip.c.res_id == literal("product.product,") + cast(pp.c.id, String),
                    or_(ip.c.company_id == self.company_id, ip.c.company_id.is_(None)),
                )
                .order_by(ip.c.company_id.is_(None))
                .limit(1)
                .scalar_subquery()
            )
        return null()

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
        ``sales_start`` rules)."""
        with self._errors("cannot read the ERP database"):
            columns = check_schema(self.engine, self.url, self.name, REQUIRED)
        window = ReadWindow.of(as_of, history_days, skus, now, sales_start=sales_start)
        start, end, now, sku_filter = window.start, window.end, window.now, window.skus

        pp, pt = product_product, product_template
        sku = pp.c.default_code

        def skus_only(stmt: Select[Any]) -> Select[Any]:
            stmt = stmt.where(sku.is_not(None))
            return stmt.where(sku.in_(sku_filter)) if sku_filter is not None else stmt

        categ = product_category
        products = skus_only(
            select(
                sku.label("sku"),
                pt.c.name.label("name"),
                categ.c.name.label("category"),
                self._unit_cost(columns).label("unit_cost"),
                pt.c.list_price.label("unit_price"),
                and_(pp.c.active, pt.c.active).label("active"),
                literal("stock").label("replenishment_mode"),
            )
            .select_from(pp)
            .join(pt, pt.c.id == pp.c.product_tmpl_id)
            .outerjoin(categ, categ.c.id == pt.c.categ_id)
            .where(pt.c.type.in_(["product", "consu"]))
        )

        si = product_supplierinfo
        supplier_products = skus_only(
            select(
                sku.label("sku"),
                cast(si.c.partner_id, String).label("supplier_id"),
                si.c.product_code.label("supplier_sku"),
                si.c.delay.label("lead_time_days"),
                si.c.min_qty.label("moq"),
                literal(1.0).label("pack_size"),
                si.c.price.label("unit_price"),
                si.c.sequence.label("sequence"),
                si.c.min_qty.label("_min_qty"),
                si.c.id.label("_id"),
            )
            .select_from(si)
            .join(
                pp,
                and_(
                    pp.c.product_tmpl_id == si.c.product_tmpl_id,
                    or_(si.c.product_id.is_(None), si.c.product_id == pp.c.id),
                ),
            )
        )

        po, pol = purchase_order, purchase_order_line
        suppliers = select(
            cast(res_partner.c.id, String).label("supplier_id"),
            res_partner.c.name.label("name"),
            res_partner.c.email.label("email"),
            literal(self.currency).label("currency"),
            literal(0.0).label("min_order_value"),
            literal(0.0).label("order_processing_days"),
            literal(0.0).label("transport_days"),
            literal(0.0).label("receiving_days"),
        ).where(
            or_(
                res_partner.c.id.in_(select(si.c.partner_id)),
                res_partner.c.id.in_(select(po.c.partner_id)),
            )
        )

        wh, lot, loc, q = (
            stock_warehouse,
            stock_location.alias("lot"),
            stock_location.alias("loc"),
            stock_quant,
        )
        stock_levels = skus_only(
            select(
                sku.label("sku"),
                wh.c.code.label("location_id"),
                func.coalesce(func.sum(q.c.quantity), 0.0).label("on_hand"),
                func.coalesce(func.sum(q.c.reserved_quantity), 0.0).label("allocated"),
            )
            .select_from(q)
            .join(pp, pp.c.id == q.c.product_id)
            .join(loc, loc.c.id == q.c.location_id)
            .join(lot, loc.c.parent_path.like(lot.c.parent_path + literal("%")))
            .join(wh, wh.c.lot_stock_id == lot.c.id)
            .where(loc.c.usage == "internal")
        ).group_by(sku, wh.c.code)

        pick_type, po_wh = stock_picking_type, stock_warehouse.alias("po_wh")
        status = case(
            *((po.c.state == k, literal(v)) for k, v in PO_STATUS.items()), else_=po.c.state
        )
        open_states = [k for k, v in PO_STATUS.items() if v in model.OPEN_PO_STATUSES]
        recent_or_open = or_(po.c.date_order >= start, po.c.state.in_(open_states))
        if end is not None:
            recent_or_open = and_(recent_or_open, po.c.date_order < end)
        purchase_orders = (
            select(
                po.c.name.label("po_id"),
                cast(po.c.partner_id, String).label("supplier_id"),
                po_wh.c.code.label("location_id"),
                status.label("status"),
                po.c.date_order.label("ordered_at"),
                po.c.date_planned.label("expected_at"),
            )
            .select_from(po)
            .outerjoin(pick_type, pick_type.c.id == po.c.picking_type_id)
            .outerjoin(po_wh, po_wh.c.id == pick_type.c.warehouse_id)
            .where(recent_or_open)
        )
        received_at = (
            select(func.max(stock_move.c.date))
            .where(stock_move.c.purchase_line_id == pol.c.id, stock_move.c.state == "done")
            .scalar_subquery()
        )
        purchase_order_lines = skus_only(
            select(
                po.c.name.label("po_id"),
                pol.c.id.label("line_no"),
                sku.label("sku"),
                pol.c.product_qty.label("qty_ordered"),
                pol.c.qty_received.label("qty_received"),
                received_at.label("received_at"),
            )
            .select_from(pol)
            .join(po, po.c.id == pol.c.order_id)
            .join(pp, pp.c.id == pol.c.product_id)
            .where(recent_or_open)
        )

        so, sol, so_wh = sale_order, sale_order_line, stock_warehouse.alias("so_wh")
        sale_status = case(
            (so.c.state == "cancel", literal("cancelled")),
            (sol.c.qty_delivered >= sol.c.product_uom_qty, literal("shipped")),
            else_=literal("open"),
        )
        sales = skus_only(
            select(
                so.c.name.label("order_id"),
                sol.c.id.label("line_no"),
                sku.label("sku"),
                so_wh.c.code.label("location_id"),
                literal(self.channel).label("channel"),
                sol.c.product_uom_qty.label("qty"),
                so.c.date_order.label("ordered_at"),
                sale_status.label("status"),
            )
            .select_from(sol)
            .join(so, so.c.id == sol.c.order_id)
            .join(pp, pp.c.id == sol.c.product_id)
            .outerjoin(so_wh, so_wh.c.id == so.c.warehouse_id)
            .where(
                so.c.state.in_([*SALE_CONFIRMED, "cancel"]), so.c.date_order >= window.sales_from
            )
        )
        if end is not None:
            sales = sales.where(so.c.date_order < end)

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
        raw["products"]["name"] = raw["products"]["name"].map(self._translated)
        raw["supplier_products"] = rank_priority(
            raw["supplier_products"], ["sequence", "_min_qty", "_id"]
        )
        return coerced_snapshot(raw)
