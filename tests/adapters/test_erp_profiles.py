"""The odoo and erpnext ERP profiles, each against its real database server
(PostgreSQL for Odoo, MariaDB for ERPNext), on a subset of the ERP's own
schema: the real table and column names, only the columns the profile reads."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from replenish import model
from replenish.errors import ContractError
from replenish.sources import open_erp
from replenish.sources.erpnext import ErpNextErp
from replenish.sources.odoo import OdooErp

AS_OF = date(2026, 11, 20)
REPLAY_NOW = datetime(2026, 11, 22, 12)  # as_of is in the past: a replay
TODAY_NOW = datetime(2026, 11, 20, 12)  # as_of is today


def _run(url: str, script: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            for stmt in script.split(";"):
                if stmt.strip():
                    c.execute(text(stmt))
    finally:
        engine.dispose()


def _rows(frame: pd.DataFrame, *cols: str) -> set[tuple[object, ...]]:
    return {tuple(r) for r in frame[list(cols)].itertuples(index=False)}


# --------------------------------------------------------------------- Odoo

ODOO_SCHEMA = """
CREATE TABLE product_category (id int PRIMARY KEY, name varchar NOT NULL);
CREATE TABLE product_template (id int PRIMARY KEY, name jsonb NOT NULL, list_price numeric,
    categ_id int, type varchar NOT NULL, active boolean);
CREATE TABLE product_product (id int PRIMARY KEY, default_code varchar,
    product_tmpl_id int NOT NULL, active boolean);
CREATE TABLE ir_property (id serial PRIMARY KEY, name varchar NOT NULL, res_id varchar,
    company_id int, fields_id int, value_float double precision, type varchar);
CREATE TABLE res_partner (id int PRIMARY KEY, name varchar, email varchar);
CREATE TABLE product_supplierinfo (id int PRIMARY KEY, partner_id int NOT NULL,
    product_tmpl_id int, product_id int, min_qty numeric NOT NULL, delay int NOT NULL,
    price numeric NOT NULL, sequence int, product_code varchar);
CREATE TABLE stock_location (id int PRIMARY KEY, complete_name varchar, parent_path varchar,
    usage varchar NOT NULL);
CREATE TABLE stock_warehouse (id int PRIMARY KEY, code varchar NOT NULL, lot_stock_id int);
CREATE TABLE stock_quant (id serial PRIMARY KEY, product_id int NOT NULL,
    location_id int NOT NULL, quantity numeric, reserved_quantity numeric NOT NULL);
CREATE TABLE stock_picking_type (id int PRIMARY KEY, warehouse_id int);
CREATE TABLE purchase_order (id int PRIMARY KEY, name varchar NOT NULL, partner_id int NOT NULL,
    state varchar, date_order timestamp NOT NULL, date_planned timestamp,
    picking_type_id int NOT NULL);
CREATE TABLE purchase_order_line (id int PRIMARY KEY, order_id int NOT NULL, product_id int,
    product_qty numeric NOT NULL, qty_received numeric, date_planned timestamp);
CREATE TABLE stock_move (id serial PRIMARY KEY, product_id int NOT NULL,
    purchase_line_id int, state varchar, date timestamp NOT NULL);
CREATE TABLE sale_order (id int PRIMARY KEY, name varchar NOT NULL, state varchar,
    date_order timestamp NOT NULL, warehouse_id int);
CREATE TABLE sale_order_line (id int PRIMARY KEY, order_id int NOT NULL, product_id int,
    product_uom_qty numeric NOT NULL, qty_delivered numeric)
"""

ODOO_ROWS = """
INSERT INTO product_category VALUES (1, 'Goods');
INSERT INTO product_template VALUES
    (10, '{"en_US": "Widget"}', 12.5, 1, 'product', true),
    (11, '{"en_US": "Gadget"}', 20, 1, 'consu', true),
    (12, '{"en_US": "Installation"}', 50, 1, 'service', true);
INSERT INTO product_product VALUES (100, 'W-1', 10, true), (101, 'G-2', 11, false),
    (102, 'SRV', 12, true), (103, NULL, 10, true);
INSERT INTO ir_property (name, res_id, company_id, value_float, type) VALUES
    ('standard_price', 'product.product,100', 1, 7.25, 'float'),
    ('standard_price', 'product.product,100', 2, 99, 'float'),
    ('standard_price', 'product.product,101', NULL, 11, 'float');
INSERT INTO res_partner VALUES (5, 'Acme', 'buy@acme.test'), (6, 'Bolt', NULL),
    (7, 'A customer', 'c@x.test');
INSERT INTO product_supplierinfo VALUES
    (1, 5, 10, NULL, 10, 7, 6.5, 1, 'AC-W1'),
    (2, 6, 10, NULL, 1, 14, 6.0, 5, NULL),
    (3, 5, 10, NULL, 50, 7, 6.0, 1, 'AC-W1'),
    (4, 6, 11, 101, 5, 3, 10, 1, 'BO-G2');
INSERT INTO stock_location VALUES
    (1, 'Physical Locations', '1/', 'view'), (2, 'WH1', '1/2/', 'view'),
    (3, 'WH1/Stock', '1/2/3/', 'internal'), (4, 'WH1/Stock/Shelf 1', '1/2/3/4/', 'internal'),
    (5, 'WH2/Stock', '1/5/', 'internal'), (6, 'Partners/Customers', '6/', 'customer'),
    (50, 'Other/Stock', '1/50/', 'internal');
INSERT INTO stock_warehouse VALUES (1, 'WH1', 3), (2, 'WH2', 5);
INSERT INTO stock_quant (product_id, location_id, quantity, reserved_quantity) VALUES
    (100, 3, 10, 2), (100, 4, 5, 1), (100, 5, 7, 0), (100, 6, 3, 0), (100, 50, 1000, 0),
    (101, 5, 4, 4);
INSERT INTO stock_picking_type VALUES (1, 1), (2, 2);
INSERT INTO purchase_order VALUES
    (1, 'P00001', 5, 'purchase', '2026-11-01 09:00', '2026-11-25 00:00', 1),
    (2, 'P00002', 5, 'done', '2026-10-01 09:00', '2026-10-08 00:00', 1),
    (3, 'P00003', 6, 'draft', '2026-11-19 09:00', '2026-12-01 00:00', 2),
    (4, 'P00004', 6, 'cancel', '2026-11-10 09:00', NULL, 2),
    (5, 'P00005', 5, 'purchase', '2026-11-22 09:00', '2026-11-30 00:00', 1),
    (6, 'P00006', 5, 'done', '2020-01-01 09:00', '2020-01-08 00:00', 1);
INSERT INTO purchase_order_line VALUES
    (10, 1, 100, 100, 40, NULL), (11, 1, 101, 10, 0, NULL), (20, 2, 100, 50, 50, NULL),
    (30, 3, 101, 20, 0, NULL), (40, 4, 100, 5, 0, NULL), (50, 5, 100, 5, 0, NULL),
    (60, 6, 100, 1, 1, NULL), (12, 1, NULL, 0, 0, NULL);
INSERT INTO stock_move (product_id, purchase_line_id, state, date) VALUES
    (100, 10, 'done', '2026-11-10 09:00'), (100, 10, 'done', '2026-11-12 15:00'),
    (100, 10, 'assigned', '2026-11-25 00:00'), (100, 20, 'done', '2026-10-07 10:00'),
    (100, 20, 'cancel', '2026-10-09 10:00');
INSERT INTO sale_order VALUES
    (1, 'S00001', 'sale', '2026-11-18 10:00', 1), (2, 'S00002', 'sale', '2026-11-19 11:00', 2),
    (3, 'S00003', 'cancel', '2026-11-15 10:00', 1), (4, 'S00004', 'draft', '2026-11-19 10:00', 1),
    (5, 'S00005', 'sale', '2024-01-01 10:00', 1), (6, 'S00006', 'sale', '2026-11-21 08:00', 1);
INSERT INTO sale_order_line VALUES
    (1, 1, 100, 3, 3), (2, 1, 101, 2, 0), (3, 2, 100, 5, 2), (4, 3, 100, 1, 0),
    (5, 4, 100, 9, 0), (6, 5, 100, 1, 1), (7, 6, 100, 2, 0), (8, 1, NULL, 0, 0)
"""


@pytest.fixture
def odoo_url(postgres_url: str) -> str:
    _run(postgres_url, ODOO_SCHEMA + ";" + ODOO_ROWS)
    return postgres_url


def test_odoo_profile_maps_onto_the_contract(odoo_url: str) -> None:
    erp = open_erp(odoo_url, profile="odoo")
    assert isinstance(erp, OdooErp)
    snap = erp.read_snapshot(AS_OF, history_days=365, now=REPLAY_NOW)
    for name, frame in snap.tables().items():
        assert list(frame.columns) == list(model.CONTRACT[name]), name

    p = snap.products.set_index("sku")
    assert set(p.index) == {"W-1", "G-2"}  # no service, no product without a code
    assert p.loc["W-1", "name"] == "Widget" and p.loc["W-1", "category"] == "Goods"
    assert p.loc["W-1", "unit_cost"] == 7.25  # company 1's standard_price
    assert p.loc["G-2", "unit_cost"] == 11.0  # the company-less default
    assert p.loc["W-1", "unit_price"] == 12.5
    assert bool(p.loc["W-1", "active"]) and not bool(p.loc["G-2", "active"])

    assert _rows(snap.suppliers, "supplier_id", "name", "email", "currency") == {
        ("5", "Acme", "buy@acme.test", "EUR"),
        ("6", "Bolt", pd.NA, "EUR"),
    }
    assert (snap.suppliers["order_processing_days"] == 0).all()
    assert _rows(
        snap.supplier_products,
        "sku",
        "supplier_id",
        "supplier_sku",
        "lead_time_days",
        "moq",
        "unit_price",
        "priority",
    ) == {
        ("W-1", "5", "AC-W1", 7.0, 10.0, 6.5, 1),  # the lower break of the two Acme rows
        ("W-1", "6", pd.NA, 14.0, 1.0, 6.0, 2),
        ("G-2", "6", "BO-G2", 3.0, 5.0, 10.0, 1),
    }

    assert _rows(snap.stock_levels, "sku", "location_id", "on_hand", "allocated") == {
        ("W-1", "WH1", 15.0, 3.0),  # WH1/Stock and its child shelf
        ("W-1", "WH2", 7.0, 0.0),
        ("G-2", "WH2", 4.0, 4.0),
    }
    assert (snap.stock_levels["as_of"] == REPLAY_NOW).all()

    assert _rows(snap.purchase_orders, "po_id", "supplier_id", "location_id", "status") == {
        ("P00001", "5", "WH1", "confirmed"),
        ("P00002", "5", "WH1", "received"),
        ("P00003", "6", "WH2", "draft"),
        ("P00004", "6", "WH2", "cancelled"),
    }  # P00005 is after the replayed day, P00006 before the window
    lines = snap.purchase_order_lines.set_index("line_no")
    assert set(lines.index) == {10, 11, 20, 30, 40}
    assert lines.loc[10, "received_at"] == datetime(2026, 11, 12, 15)  # the last done move
    assert lines.loc[20, "received_at"] == datetime(2026, 10, 7, 10)
    assert pd.isna(lines.loc[11, "received_at"])
    assert (lines.loc[10, "qty_ordered"], lines.loc[10, "qty_received"]) == (100.0, 40.0)

    assert _rows(
        snap.sales_order_lines, "order_id", "line_no", "sku", "location_id", "qty", "status"
    ) == {
        ("S00001", 1, "W-1", "WH1", 3.0, "shipped"),
        ("S00001", 2, "G-2", "WH1", 2.0, "open"),
        ("S00002", 3, "W-1", "WH2", 5.0, "open"),
        ("S00003", 4, "W-1", "WH1", 1.0, "cancelled"),
    }  # no quotation, nothing before the window, nothing after the replayed day
    assert (snap.sales_order_lines["channel"] == "odoo").all()
    assert snap.returns.empty and snap.stock_history.empty


def test_odoo_today_reads_future_stamps_and_filters_skus(odoo_url: str) -> None:
    erp = OdooErp(odoo_url)
    today = erp.read_snapshot(AS_OF, history_days=365, now=TODAY_NOW)
    assert "S00006" in set(today.sales_order_lines["order_id"])  # for the gate to reject
    assert "P00005" in set(today.purchase_orders["po_id"])
    snap = erp.read_snapshot(AS_OF, skus=["G-2", "x' OR '1'='1"], now=TODAY_NOW)
    for name in ("products", "supplier_products", "stock_levels", "sales_order_lines"):
        assert set(getattr(snap, name)["sku"]) == {"G-2"}, name
    assert set(snap.purchase_order_lines["sku"]) == {"G-2"}


def test_odoo_18_reads_unit_cost_from_jsonb(odoo_url: str) -> None:
    _run(
        odoo_url,
        """DROP TABLE ir_property;
        ALTER TABLE product_product ADD COLUMN standard_price jsonb;
        UPDATE product_product SET standard_price = '{"1": 8.5, "2": 9}' WHERE id = 100""",
    )
    snap = OdooErp(odoo_url).read_snapshot(AS_OF, now=TODAY_NOW)
    costs = snap.products.set_index("sku")["unit_cost"]
    assert costs["W-1"] == 8.5 and pd.isna(costs["G-2"])


def test_odoo_missing_table_and_column_are_named(odoo_url: str) -> None:
    _run(odoo_url, "ALTER TABLE purchase_order_line DROP COLUMN qty_received")
    with pytest.raises(ContractError, match="'purchase_order_line' has no column 'qty_received'"):
        OdooErp(odoo_url).check_contract()
    _run(odoo_url, "DROP TABLE stock_move")
    with pytest.raises(ContractError, match="table 'stock_move' is missing"):
        OdooErp(odoo_url).read_snapshot(AS_OF)


# ------------------------------------------------------------------ ERPNext

ERPNEXT_SCHEMA = """
CREATE TABLE `tabItem` (name varchar(140) PRIMARY KEY, item_code varchar(140),
    item_name varchar(140), item_group varchar(140), valuation_rate decimal(21,9),
    standard_rate decimal(21,9), last_purchase_rate decimal(21,9), min_order_qty decimal(21,9),
    lead_time_days int, safety_stock decimal(21,9), disabled int(1) NOT NULL DEFAULT 0,
    is_stock_item int(1) NOT NULL DEFAULT 1);
CREATE TABLE `tabItem Supplier` (name varchar(140) PRIMARY KEY, parent varchar(140),
    parenttype varchar(140), idx int, supplier varchar(140), supplier_part_no varchar(140));
CREATE TABLE `tabItem Reorder` (name varchar(140) PRIMARY KEY, parent varchar(140),
    warehouse varchar(140), warehouse_reorder_level decimal(21,9),
    warehouse_reorder_qty decimal(21,9));
CREATE TABLE `tabSupplier` (name varchar(140) PRIMARY KEY, supplier_name varchar(140),
    email_id varchar(140), default_currency varchar(140), disabled int(1) DEFAULT 0);
CREATE TABLE `tabWarehouse` (name varchar(140) PRIMARY KEY, is_group int(1) DEFAULT 0);
CREATE TABLE `tabBin` (name varchar(140) PRIMARY KEY, item_code varchar(140),
    warehouse varchar(140), actual_qty decimal(21,9), reserved_qty decimal(21,9),
    ordered_qty decimal(21,9), projected_qty decimal(21,9));
CREATE TABLE `tabPurchase Order` (name varchar(140) PRIMARY KEY, supplier varchar(140),
    transaction_date date, schedule_date date, status varchar(140), docstatus int(1),
    set_warehouse varchar(140));
CREATE TABLE `tabPurchase Order Item` (name varchar(140) PRIMARY KEY, parent varchar(140),
    idx int, item_code varchar(140), qty decimal(21,9), received_qty decimal(21,9),
    warehouse varchar(140), schedule_date date);
CREATE TABLE `tabPurchase Receipt` (name varchar(140) PRIMARY KEY, posting_date date,
    docstatus int(1));
CREATE TABLE `tabPurchase Receipt Item` (name varchar(140) PRIMARY KEY, parent varchar(140),
    item_code varchar(140), qty decimal(21,9), purchase_order varchar(140),
    purchase_order_item varchar(140));
CREATE TABLE `tabSales Order` (name varchar(140) PRIMARY KEY, transaction_date date,
    status varchar(140), docstatus int(1));
CREATE TABLE `tabSales Order Item` (name varchar(140) PRIMARY KEY, parent varchar(140),
    idx int, item_code varchar(140), qty decimal(21,9), delivered_qty decimal(21,9),
    warehouse varchar(140))
"""

ERPNEXT_ROWS = """
INSERT INTO `tabItem` (name, item_code, item_name, item_group, valuation_rate, standard_rate,
    last_purchase_rate, min_order_qty, lead_time_days, disabled, is_stock_item) VALUES
    ('W-1', 'W-1', 'Widget', 'Products', 7.25, 12.5, 6.5, 10, 7, 0, 1),
    ('G-2', 'G-2', 'Gadget', 'Products', 11, 20, 0, 0, 3, 1, 1),
    ('SRV', 'SRV', 'Installation', 'Services', 0, 50, 0, 0, 0, 0, 0);
INSERT INTO `tabItem Supplier` VALUES ('is1', 'W-1', 'Item', 1, 'Acme', 'AC-W1'),
    ('is2', 'W-1', 'Item', 2, 'Bolt', NULL), ('is3', 'G-2', 'Item', 1, 'Bolt', 'BO-G2');
INSERT INTO `tabSupplier` VALUES ('Acme', 'Acme Ltd', 'buy@acme.test', 'USD', 0),
    ('Bolt', 'Bolt GmbH', NULL, NULL, 0);
INSERT INTO `tabWarehouse` VALUES ('Stores - AC', 0), ('Remote - AC', 0);
INSERT INTO `tabBin` VALUES ('b1', 'W-1', 'Stores - AC', 15, 3, 60, 72),
    ('b2', 'W-1', 'Remote - AC', 7, 0, 0, 7), ('b3', 'G-2', 'Remote - AC', 4, 4, 30, 30);
INSERT INTO `tabPurchase Order` VALUES
    ('PUR-ORD-0001', 'Acme', '2026-11-01', '2026-11-25', 'To Receive and Bill', 1, 'Stores - AC'),
    ('PUR-ORD-0002', 'Acme', '2026-10-01', '2026-10-08', 'Completed', 1, NULL),
    ('PUR-ORD-0003', 'Bolt', '2026-11-19', '2026-12-01', 'Draft', 0, 'Remote - AC'),
    ('PUR-ORD-0004', 'Bolt', '2026-11-10', '2026-11-20', 'Cancelled', 2, 'Remote - AC'),
    ('PUR-ORD-0005', 'Acme', '2026-11-22', '2026-11-30', 'To Receive', 1, 'Stores - AC'),
    ('PUR-ORD-0006', 'Acme', '2020-01-01', '2020-01-08', 'Completed', 1, 'Stores - AC');
INSERT INTO `tabPurchase Order Item` VALUES
    ('poi1', 'PUR-ORD-0001', 1, 'W-1', 100, 40, 'Stores - AC', NULL),
    ('poi2', 'PUR-ORD-0001', 2, 'G-2', 10, 0, 'Stores - AC', NULL),
    ('poi3', 'PUR-ORD-0002', 1, 'W-1', 50, 50, 'Remote - AC', NULL),
    ('poi4', 'PUR-ORD-0003', 1, 'G-2', 20, 0, 'Remote - AC', NULL),
    ('poi5', 'PUR-ORD-0004', 1, 'W-1', 5, 0, 'Remote - AC', NULL),
    ('poi6', 'PUR-ORD-0005', 1, 'W-1', 5, 0, 'Stores - AC', NULL),
    ('poi7', 'PUR-ORD-0006', 1, 'W-1', 1, 1, 'Stores - AC', NULL);
INSERT INTO `tabPurchase Receipt` VALUES ('PR-1', '2026-11-10', 1), ('PR-2', '2026-11-12', 1),
    ('PR-3', '2026-11-15', 2), ('PR-4', '2026-10-07', 1);
INSERT INTO `tabPurchase Receipt Item` VALUES
    ('pri1', 'PR-1', 'W-1', 30, 'PUR-ORD-0001', 'poi1'),
    ('pri2', 'PR-2', 'W-1', 10, 'PUR-ORD-0001', 'poi1'),
    ('pri3', 'PR-3', 'W-1', 5, 'PUR-ORD-0001', 'poi1'),
    ('pri4', 'PR-4', 'W-1', 50, 'PUR-ORD-0002', 'poi3');
INSERT INTO `tabSales Order` VALUES ('SAL-ORD-1', '2026-11-18', 'To Deliver and Bill', 1),
    ('SAL-ORD-2', '2026-11-19', 'To Deliver and Bill', 1),
    ('SAL-ORD-3', '2026-11-15', 'Cancelled', 2),
    ('SAL-ORD-4', '2026-11-19', 'Draft', 0), ('SAL-ORD-5', '2024-01-01', 'Completed', 1),
    ('SAL-ORD-6', '2026-11-21', 'To Deliver and Bill', 1);
INSERT INTO `tabSales Order Item` VALUES
    ('soi1', 'SAL-ORD-1', 1, 'W-1', 3, 3, 'Stores - AC'),
    ('soi2', 'SAL-ORD-1', 2, 'G-2', 2, 0, 'Stores - AC'),
    ('soi3', 'SAL-ORD-2', 1, 'W-1', 5, 2, 'Remote - AC'),
    ('soi4', 'SAL-ORD-3', 1, 'W-1', 1, 0, 'Stores - AC'),
    ('soi5', 'SAL-ORD-4', 1, 'W-1', 9, 0, 'Stores - AC'),
    ('soi6', 'SAL-ORD-5', 1, 'W-1', 1, 1, 'Stores - AC'),
    ('soi7', 'SAL-ORD-6', 1, 'W-1', 2, 0, 'Stores - AC')
"""


@pytest.fixture
def erpnext_url(mariadb_url: str) -> str:
    _run(mariadb_url, ERPNEXT_SCHEMA + ";" + ERPNEXT_ROWS)
    return mariadb_url


def test_erpnext_profile_maps_onto_the_contract(erpnext_url: str) -> None:
    erp = open_erp(erpnext_url, profile="erpnext")
    assert isinstance(erp, ErpNextErp)
    snap = erp.read_snapshot(AS_OF, history_days=365, now=REPLAY_NOW)
    for name, frame in snap.tables().items():
        assert list(frame.columns) == list(model.CONTRACT[name]), name

    p = snap.products.set_index("sku")
    assert set(p.index) == {"W-1", "G-2"}  # stock items only
    assert (p.loc["W-1", "name"], p.loc["W-1", "category"]) == ("Widget", "Products")
    assert (p.loc["W-1", "unit_cost"], p.loc["W-1", "unit_price"]) == (7.25, 12.5)
    assert bool(p.loc["W-1", "active"]) and not bool(p.loc["G-2", "active"])

    assert _rows(snap.suppliers, "supplier_id", "name", "email", "currency") == {
        ("Acme", "Acme Ltd", "buy@acme.test", "USD"),
        ("Bolt", "Bolt GmbH", pd.NA, "EUR"),
    }
    assert _rows(
        snap.supplier_products,
        "sku",
        "supplier_id",
        "supplier_sku",
        "lead_time_days",
        "moq",
        "unit_price",
        "priority",
    ) == {
        ("W-1", "Acme", "AC-W1", 7.0, 10.0, 6.5, 1),
        ("W-1", "Bolt", pd.NA, 7.0, 10.0, 6.5, 2),
        ("G-2", "Bolt", "BO-G2", 3.0, 1.0, 11.0, 1),  # no MOQ: 1; no purchase rate: valuation
    }

    assert _rows(snap.stock_levels, "sku", "location_id", "on_hand", "allocated") == {
        ("W-1", "Stores - AC", 15.0, 3.0),
        ("W-1", "Remote - AC", 7.0, 0.0),
        ("G-2", "Remote - AC", 4.0, 4.0),
    }

    assert _rows(snap.purchase_orders, "po_id", "supplier_id", "location_id", "status") == {
        ("PUR-ORD-0001", "Acme", "Stores - AC", "confirmed"),
        ("PUR-ORD-0002", "Acme", "Remote - AC", "received"),  # no set_warehouse: first item's
        ("PUR-ORD-0003", "Bolt", "Remote - AC", "draft"),
        ("PUR-ORD-0004", "Bolt", "Remote - AC", "cancelled"),
    }
    po = snap.purchase_orders.set_index("po_id")
    assert po.loc["PUR-ORD-0001", "ordered_at"] == datetime(2026, 11, 1)
    assert po.loc["PUR-ORD-0001", "expected_at"] == datetime(2026, 11, 25)
    lines = snap.purchase_order_lines.set_index(["po_id", "line_no"])
    assert len(lines) == 5
    assert lines.loc[("PUR-ORD-0001", 1), "received_at"] == datetime(2026, 11, 12)
    assert lines.loc[("PUR-ORD-0002", 1), "received_at"] == datetime(2026, 10, 7)
    assert pd.isna(lines.loc[("PUR-ORD-0001", 2), "received_at"])
    assert tuple(lines.loc[("PUR-ORD-0001", 1), ["qty_ordered", "qty_received"]]) == (100, 40)

    assert _rows(
        snap.sales_order_lines, "order_id", "line_no", "sku", "location_id", "qty", "status"
    ) == {
        ("SAL-ORD-1", 1, "W-1", "Stores - AC", 3.0, "shipped"),
        ("SAL-ORD-1", 2, "G-2", "Stores - AC", 2.0, "open"),
        ("SAL-ORD-2", 1, "W-1", "Remote - AC", 5.0, "open"),
        ("SAL-ORD-3", 1, "W-1", "Stores - AC", 1.0, "cancelled"),
    }
    assert (snap.sales_order_lines["channel"] == "erpnext").all()


def test_erpnext_today_reads_future_stamps_and_filters_skus(erpnext_url: str) -> None:
    erp = ErpNextErp(erpnext_url)
    today = erp.read_snapshot(AS_OF, history_days=365, now=TODAY_NOW)
    assert "SAL-ORD-6" in set(today.sales_order_lines["order_id"])
    assert "PUR-ORD-0005" in set(today.purchase_orders["po_id"])
    snap = erp.read_snapshot(AS_OF, skus=["G-2", "x' OR '1'='1"], now=TODAY_NOW)
    for name in ("products", "supplier_products", "stock_levels", "sales_order_lines"):
        assert set(getattr(snap, name)["sku"]) == {"G-2"}, name
    assert set(snap.purchase_order_lines["sku"]) == {"G-2"}


def test_erpnext_missing_table_and_column_are_named(erpnext_url: str) -> None:
    _run(erpnext_url, "ALTER TABLE `tabBin` DROP COLUMN reserved_qty")
    with pytest.raises(ContractError, match="'tabBin' has no column 'reserved_qty'"):
        ErpNextErp(erpnext_url).check_contract()
    _run(erpnext_url, "DROP TABLE `tabPurchase Receipt Item`")
    with pytest.raises(ContractError, match="table 'tabPurchase Receipt Item' is missing"):
        ErpNextErp(erpnext_url).read_snapshot(AS_OF)


def test_nightly_extract_task_reads_the_odoo_profile(
    odoo_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REPLENISH_ERP_PROFILE selects the profile the nightly flow's extract uses."""
    from tasks.extract import extract_erp

    monkeypatch.setenv("REPLENISH_DB_URL", f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    monkeypatch.setenv("REPLENISH_ERP_URL", odoo_url)
    monkeypatch.setenv("REPLENISH_ERP_PROFILE", "odoo")
    snap = extract_erp.fn(AS_OF, ["W-1"], 365)
    assert set(snap.products["sku"]) == {"W-1"}
    assert set(snap.stock_levels["location_id"]) == {"WH1", "WH2"}
