"""The YAML profile: an ERP mapped by a file of SQL queries, no Python.

The example profile (config/erp-profiles/dolibarr.yaml) reads a subset of
Dolibarr's own schema — the real table and column names, only the columns the
queries read — built on the real PostgreSQL and MariaDB servers (Dolibarr
runs on both; the same queries serve both)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from replenish import model
from replenish.errors import ConfigurationError, ContractError, SourceUnavailable
from replenish.sources import open_erp
from replenish.sources.fastread import read_dtype
from replenish.sources.yaml_profile import (
    NULLABLE_TABLES,
    ProfileQueries,
    YamlErp,
    load_profile,
    profile_path,
)
from tests.servers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "erp-profiles" / "dolibarr.yaml"
AS_OF = date(2026, 11, 20)
REPLAY_NOW = datetime(2026, 11, 22, 12)  # as_of is in the past: a replay
TODAY_NOW = datetime(2026, 11, 20, 12)  # as_of is today

# Dolibarr's DDL (htdocs/install/mysql/tables/llx_*.sql, v20), the columns the
# profile reads plus a few it must ignore; {dt} is DATETIME on MariaDB,
# TIMESTAMP on PostgreSQL (Dolibarr's own pgsql conversion does the same).
DOLIBARR_SCHEMA = """
CREATE TABLE llx_entrepot (rowid integer PRIMARY KEY, ref varchar(255) NOT NULL,
    entity integer DEFAULT 1 NOT NULL, statut smallint DEFAULT 1);
CREATE TABLE llx_categorie (rowid integer PRIMARY KEY, entity integer DEFAULT 1 NOT NULL,
    label varchar(180) NOT NULL, type integer DEFAULT 1 NOT NULL);
CREATE TABLE llx_categorie_product (fk_categorie integer NOT NULL, fk_product integer NOT NULL);
CREATE TABLE llx_product (rowid integer PRIMARY KEY, ref varchar(128) NOT NULL,
    entity integer DEFAULT 1 NOT NULL, label varchar(255) NOT NULL,
    price double precision DEFAULT 0, cost_price double precision,
    pmp double precision DEFAULT 0 NOT NULL, tosell smallint DEFAULT 1,
    tobuy smallint DEFAULT 1, fk_product_type integer DEFAULT 0,
    stock real, fk_default_warehouse integer);
CREATE TABLE llx_societe (rowid integer PRIMARY KEY, nom varchar(128),
    entity integer DEFAULT 1 NOT NULL, email varchar(128), client smallint DEFAULT 0,
    fournisseur smallint DEFAULT 0, fk_currency varchar(3),
    supplier_order_min_amount double precision, multicurrency_code varchar(3));
CREATE TABLE llx_product_fournisseur_price (rowid integer PRIMARY KEY,
    entity integer DEFAULT 1 NOT NULL, fk_product integer, fk_soc integer,
    ref_fourn varchar(128), price double precision DEFAULT 0, quantity double precision,
    unitprice double precision DEFAULT 0, tva_tx double precision NOT NULL,
    delivery_time_days integer, packaging double precision DEFAULT 1);
CREATE TABLE llx_product_stock (rowid integer PRIMARY KEY, fk_product integer NOT NULL,
    fk_entrepot integer NOT NULL, reel real);
CREATE TABLE llx_commande_fournisseur (rowid integer PRIMARY KEY, ref varchar(180) NOT NULL,
    entity integer DEFAULT 1 NOT NULL, fk_soc integer NOT NULL, date_creation {dt},
    date_commande date, fk_statut smallint DEFAULT 0, source smallint NOT NULL,
    date_livraison date);
CREATE TABLE llx_commande_fournisseurdet (rowid integer PRIMARY KEY,
    fk_commande integer NOT NULL, fk_product integer, ref varchar(128),
    qty real, subprice double precision DEFAULT 0, product_type integer DEFAULT 0,
    rang integer DEFAULT 0);
CREATE TABLE llx_reception (rowid integer PRIMARY KEY, ref varchar(30) NOT NULL,
    entity integer DEFAULT 1 NOT NULL, fk_soc integer NOT NULL,
    date_reception {dt}, fk_statut smallint DEFAULT 0);
CREATE TABLE llx_receptiondet_batch (rowid integer PRIMARY KEY, fk_reception integer,
    fk_element integer, fk_elementdet integer,
    element_type varchar(50) DEFAULT 'supplier_order' NOT NULL, fk_product integer,
    qty float, fk_entrepot integer, datec {dt});
CREATE TABLE llx_commande (rowid integer PRIMARY KEY, ref varchar(30) NOT NULL,
    entity integer DEFAULT 1 NOT NULL, fk_soc integer NOT NULL, date_creation {dt},
    date_commande date, fk_statut smallint DEFAULT 0, fk_warehouse integer);
CREATE TABLE llx_commandedet (rowid integer PRIMARY KEY, fk_commande integer NOT NULL,
    fk_product integer, qty real, product_type integer DEFAULT 0, rang integer DEFAULT 0)
"""

DOLIBARR_ROWS = """
INSERT INTO llx_entrepot (rowid, ref) VALUES (1, 'WH1'), (2, 'WH2');
INSERT INTO llx_categorie (rowid, label, type) VALUES (1, 'Hardware', 0), (2, 'Tools', 0);
INSERT INTO llx_categorie_product VALUES (2, 10), (1, 10);
INSERT INTO llx_product (rowid, ref, entity, label, price, cost_price, pmp, tobuy,
    fk_product_type, fk_default_warehouse) VALUES
    (10, 'W-1', 1, 'Widget', 12.5, 7.25, 7.0, 1, 0, 2),
    (11, 'G-2', 1, 'Gadget', 20, NULL, 11, 0, 0, NULL),
    (12, 'SRV', 1, 'Installation', 50, NULL, 0, 1, 1, NULL),
    (13, 'X-9', 2, 'Other company', 1, NULL, 0, 1, 0, NULL);
INSERT INTO llx_societe (rowid, nom, email, fournisseur, client, fk_currency,
    supplier_order_min_amount, multicurrency_code) VALUES
    (5, 'Acme', 'buy@acme.test', 1, 0, NULL, 100, 'USD'),
    (6, 'Bolt', NULL, 1, 0, NULL, NULL, NULL),
    (7, 'Customer Co', 'c@example.test', 0, 1, 'EUR', NULL, NULL);
INSERT INTO llx_product_fournisseur_price (rowid, fk_product, fk_soc, ref_fourn, quantity,
    unitprice, tva_tx, delivery_time_days, packaging) VALUES
    (1, 10, 5, 'AC-W1', 10, 6.5, 20, 7, 1),
    (2, 10, 5, 'AC-W1', 100, 6.0, 20, 7, 1),
    (3, 10, 6, NULL, 1, 7.0, 20, 14, 6),
    (4, 11, 6, 'BO-G2', 0, 10.0, 20, 3, NULL);
INSERT INTO llx_product_stock (rowid, fk_product, fk_entrepot, reel) VALUES
    (1, 10, 1, 15), (2, 10, 2, 7), (3, 11, 2, 4);
INSERT INTO llx_commande_fournisseur (rowid, ref, entity, fk_soc, fk_statut, source,
    date_creation, date_commande, date_livraison) VALUES
    (1, 'PO2611-0001', 1, 5, 4, 0, '2026-11-01 08:00:00', '2026-11-01', '2026-11-25'),
    (2, 'PO2610-0002', 1, 5, 5, 0, '2026-10-01 08:00:00', '2026-10-01', '2026-10-08'),
    (3, 'PO2611-0003', 1, 6, 0, 0, '2026-11-19 09:00:00', NULL, NULL),
    (4, 'PO2611-0004', 1, 6, 6, 0, '2026-11-10 09:00:00', '2026-11-10', NULL),
    (5, 'PO2611-0005', 1, 5, 3, 0, '2026-11-22 09:00:00', '2026-11-22', '2026-11-30'),
    (6, 'PO2001-0006', 1, 5, 5, 0, '2020-01-01 09:00:00', '2020-01-01', '2020-01-08'),
    (7, 'PO2611-0007', 2, 5, 3, 0, '2026-11-02 09:00:00', '2026-11-02', NULL),
    (8, 'PO2401-0008', 1, 6, 3, 0, '2024-01-05 09:00:00', '2024-01-05', '2024-02-01');
INSERT INTO llx_commande_fournisseurdet (rowid, fk_commande, fk_product, qty,
    product_type) VALUES
    (10, 1, 10, 100, 0), (11, 1, 11, 10, 0), (12, 1, NULL, 1, 1), (20, 2, 10, 50, 0),
    (30, 3, 11, 20, 0), (40, 4, 10, 5, 0), (50, 5, 10, 5, 0), (60, 6, 10, 1, 0),
    (70, 7, 10, 9, 0), (80, 8, 11, 3, 0);
INSERT INTO llx_reception (rowid, ref, fk_soc, fk_statut, date_reception) VALUES
    (1, 'RCP1', 5, 1, '2026-11-10 09:00:00'), (2, 'RCP2', 5, 2, '2026-11-12 15:00:00'),
    (3, 'RCP3', 5, 0, '2026-11-15 10:00:00');
INSERT INTO llx_receptiondet_batch (rowid, fk_reception, fk_element, fk_elementdet,
    element_type, fk_product, qty, fk_entrepot, datec) VALUES
    (1, 1, 1, 10, 'supplier_order', 10, 30, 1, '2026-11-10 09:05:00'),
    (2, 2, 1, 10, 'supplier_order', 10, 10, 1, '2026-11-12 15:05:00'),
    (3, 3, 1, 10, 'supplier_order', 10, 5, 1, '2026-11-15 10:05:00'),
    (4, NULL, 2, 20, 'supplier_order', 10, 50, 2, '2026-10-07 10:00:00'),
    (5, NULL, 9, 10, 'mrp_production', 10, 99, 2, '2026-11-11 10:00:00');
INSERT INTO llx_commande (rowid, ref, entity, fk_soc, fk_statut, date_creation,
    date_commande, fk_warehouse) VALUES
    (1, 'CO2611-0001', 1, 7, 3, '2026-11-18 10:00:00', '2026-11-18', 1),
    (2, 'CO2611-0002', 1, 7, 1, '2026-11-19 11:00:00', '2026-11-19', NULL),
    (3, 'CO2611-0003', 1, 7, -1, '2026-11-15 10:00:00', '2026-11-15', 1),
    (4, 'CO2611-0004', 1, 7, 0, '2026-11-19 10:00:00', NULL, 1),
    (5, 'CO2401-0005', 1, 7, 3, '2024-01-01 10:00:00', '2024-01-01', 1),
    (6, 'CO2611-0006', 1, 7, 1, '2026-11-21 08:00:00', '2026-11-21', 1),
    (7, 'CO2611-0007', 2, 7, 1, '2026-11-19 10:00:00', '2026-11-19', 1);
INSERT INTO llx_commandedet (rowid, fk_commande, fk_product, qty, product_type) VALUES
    (1, 1, 10, 3, 0), (2, 1, 11, 2, 0), (3, 2, 10, 5, 0), (10, 2, 11, 1, 0),
    (4, 3, 10, 1, 0), (5, 4, 10, 9, 0), (6, 5, 10, 1, 0), (7, 6, 10, 2, 0),
    (8, 1, NULL, 1, 1), (9, 7, 10, 4, 0)
"""


def _run(url: str, script: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            for stmt in script.split(";"):
                if stmt.strip():
                    c.execute(text(stmt))
    finally:
        engine.dispose()


def _dolibarr(url: str) -> str:
    dt = "timestamp" if make_url(url).get_backend_name() == "postgresql" else "datetime"
    _run(url, DOLIBARR_SCHEMA.format(dt=dt) + ";" + DOLIBARR_ROWS)
    return url


@pytest.fixture(params=["postgresql", "mariadb"])
def dolibarr_url(request: pytest.FixtureRequest) -> str:
    """The Dolibarr schema subset with its rows, on PostgreSQL and on MariaDB."""
    fixture = "postgres_url" if request.param == "postgresql" else "mariadb_url"
    return _dolibarr(request.getfixturevalue(fixture))


@pytest.fixture
def dolibarr_pg(postgres_url: str) -> str:
    return _dolibarr(postgres_url)


def _rows(frame: pd.DataFrame, *cols: str) -> set[tuple[object, ...]]:
    return {tuple(r) for r in frame[list(cols)].itertuples(index=False)}


def _variant(tmp_path: Path, edit: dict[str, object], name: str = "variant.yaml") -> Path:
    """A copy of the example profile with ``edit`` applied (dotted keys)."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        if value is None and last != "returns":
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading


def test_dolibarr_profile_maps_onto_the_contract(dolibarr_url: str) -> None:
    erp = open_erp(dolibarr_url, profile=f"yaml:{EXAMPLE}")
    assert isinstance(erp, YamlErp) and erp.name == "dolibarr"
    snap = erp.read_snapshot(AS_OF, history_days=365, now=REPLAY_NOW)
    for name, frame in snap.tables().items():
        assert list(frame.columns) == list(model.CONTRACT[name]), name
        for col in model.CONTRACT[name]:
            assert str(frame[col].dtype) == read_dtype(name, col), (name, col)

    assert _rows(snap.products, "sku", "name", "category", "unit_cost", "unit_price", "active") == {
        ("W-1", "Widget", "Hardware", 7.25, 12.5, True),  # first category by label
        ("G-2", "Gadget", pd.NA, 11.0, 20.0, False),  # no cost price: pmp; not to buy
    }  # no service, nothing of company 2
    assert set(snap.products["replenishment_mode"]) == {"stock"}
    assert snap.products["service_level"].isna().all()

    assert _rows(snap.suppliers, "supplier_id", "name", "email", "currency", "min_order_value") == {
        ("5", "Acme", "buy@acme.test", "USD", 100.0),
        ("6", "Bolt", pd.NA, "EUR", 0.0),  # the profile's currency parameter
    }
    assert (snap.suppliers[["order_processing_days", "transport_days"]] == 0).all().all()
    assert _rows(
        snap.supplier_products,
        "sku",
        "supplier_id",
        "supplier_sku",
        "lead_time_days",
        "moq",
        "pack_size",
        "unit_price",
        "priority",
    ) == {
        ("W-1", "5", "AC-W1", 7.0, 10.0, 1.0, 6.5, 1),  # the smallest of Acme's two breaks
        ("W-1", "6", pd.NA, 14.0, 1.0, 6.0, 7.0, 2),
        ("G-2", "6", "BO-G2", 3.0, 1.0, 1.0, 10.0, 1),  # quantity 0 -> MOQ 1
    }

    assert _rows(snap.stock_levels, "sku", "location_id", "on_hand", "allocated") == {
        ("W-1", "WH1", 15.0, 0.0),
        ("W-1", "WH2", 7.0, 0.0),
        ("G-2", "WH2", 4.0, 0.0),
    }
    assert (snap.stock_levels["as_of"] == REPLAY_NOW).all()  # :now

    assert _rows(
        snap.purchase_orders, "po_id", "supplier_id", "location_id", "status", "ordered_at"
    ) == {
        ("PO2611-0001", "5", "WH1", "confirmed", datetime(2026, 11, 1)),  # received in WH1
        ("PO2610-0002", "5", "WH2", "received", datetime(2026, 10, 1)),
        ("PO2611-0003", "6", "WH1", "draft", datetime(2026, 11, 19, 9)),  # not yet ordered
        ("PO2611-0004", "6", "WH1", "cancelled", datetime(2026, 11, 10)),
        ("PO2401-0008", "6", "WH1", "sent", datetime(2024, 1, 5)),  # old but still open
    }  # not PO5 (after the replayed day), PO6 (before the window), PO7 (company 2)
    po = snap.purchase_orders.set_index("po_id")
    assert po.loc["PO2611-0001", "expected_at"] == datetime(2026, 11, 25)
    assert pd.isna(po.loc["PO2611-0003", "expected_at"])

    lines = snap.purchase_order_lines.set_index("line_no")
    assert set(lines.index) == {10, 11, 20, 30, 40, 80}  # no service line
    assert (lines.loc[10, "po_id"], lines.loc[10, "sku"]) == ("PO2611-0001", "W-1")
    assert (lines.loc[10, "qty_ordered"], lines.loc[10, "qty_received"]) == (100.0, 40.0)
    assert lines.loc[10, "received_at"] == datetime(2026, 11, 12, 15)  # not the draft receipt
    assert (lines.loc[20, "qty_received"], lines.loc[20, "received_at"]) == (
        50.0,
        datetime(2026, 10, 7, 10),  # dispatched without a reception: its own date
    )
    assert lines.loc[11, "qty_received"] == 0 and pd.isna(lines.loc[11, "received_at"])

    assert _rows(
        snap.sales_order_lines,
        "order_id",
        "line_no",
        "sku",
        "location_id",
        "channel",
        "qty",
        "ordered_at",
        "status",
    ) == {
        ("CO2611-0001", 1, "W-1", "WH1", "dolibarr", 3.0, datetime(2026, 11, 18), "shipped"),
        ("CO2611-0001", 2, "G-2", "WH1", "dolibarr", 2.0, datetime(2026, 11, 18), "shipped"),
        ("CO2611-0002", 3, "W-1", "WH2", "dolibarr", 5.0, datetime(2026, 11, 19), "open"),
        ("CO2611-0002", 10, "G-2", "WH1", "dolibarr", 1.0, datetime(2026, 11, 19), "open"),
        ("CO2611-0003", 4, "W-1", "WH1", "dolibarr", 1.0, datetime(2026, 11, 15), "cancelled"),
    }  # order 2 has no warehouse: W-1's default (WH2), G-2 has none: default_location
    assert snap.returns.empty and snap.stock_history.empty and snap.promotions.empty


def test_today_reads_future_stamps_and_the_sku_filter_is_safe(dolibarr_url: str) -> None:
    erp = open_erp(dolibarr_url, profile=str(EXAMPLE))  # a path ending in .yaml
    today = erp.read_snapshot(AS_OF, history_days=365, now=TODAY_NOW)
    assert "CO2611-0006" in set(today.sales_order_lines["order_id"])  # for the gate to reject
    assert "PO2611-0005" in set(today.purchase_orders["po_id"])
    assert 50 in set(today.purchase_order_lines["line_no"])

    snap = erp.read_snapshot(AS_OF, skus=["G-2", "x' OR '1'='1"], now=TODAY_NOW)
    for name in ("products", "supplier_products", "stock_levels", "sales_order_lines"):
        assert set(getattr(snap, name)["sku"]) == {"G-2"}, name
    assert set(snap.purchase_order_lines["sku"]) == {"G-2"}
    assert len(snap.suppliers) == 2  # tables without a sku are not filtered


def test_the_window_is_enforced_even_when_a_query_ignores_it(
    dolibarr_pg: str, tmp_path: Path
) -> None:
    """Queries without the window conditions read more, never something else:
    the same rows as the example's, for a replay and for today."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    cuts = {
        "sales_order_lines": "  AND COALESCE(c.date_commande",
        "purchase_orders": "  AND (COALESCE(cf.date_commande",
        "purchase_order_lines": "  AND (COALESCE(cf.date_commande",
    }
    for table, window_starts in cuts.items():
        sql = data["queries"][table]
        data["queries"][table] = sql[: sql.index(window_starts)]
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump(data), encoding="utf-8")

    keys = {
        "sales_order_lines": ["order_id", "line_no"],
        "purchase_orders": ["po_id"],
        "purchase_order_lines": ["po_id", "line_no"],
    }
    for now in (REPLAY_NOW, TODAY_NOW):
        strict = YamlErp(dolibarr_pg, EXAMPLE).read_snapshot(AS_OF, history_days=365, now=now)
        snap = YamlErp(dolibarr_pg, loose).read_snapshot(AS_OF, history_days=365, now=now)
        for name, key in keys.items():
            got = getattr(snap, name).sort_values(key).reset_index(drop=True)
            want = getattr(strict, name).sort_values(key).reset_index(drop=True)
            pd.testing.assert_frame_equal(got, want, obj=f"{name} at {now}")
    assert len(strict.sales_order_lines) == 6  # today: the future order for the gate too


def test_optional_tables_and_own_parameters(dolibarr_pg: str, tmp_path: Path) -> None:
    _run(
        dolibarr_pg,
        """CREATE TABLE eod_stock (fk_product integer, fk_entrepot integer, day date,
            qty real);
        INSERT INTO eod_stock VALUES (10, 1, '2026-11-18', 0), (10, 1, '2026-11-19', 12),
            (10, 1, '2025-01-01', 3), (10, 1, '2026-11-21', 9)""",
    )
    path = _variant(
        tmp_path,
        {
            "parameters.channel": "shop-eu",
            "queries.stock_history": """
                -- a table a nightly job fills with end-of-day stock
                SELECT p.ref AS sku, e.ref AS location_id, h.day AS date, h.qty AS on_hand
                FROM eod_stock h
                JOIN llx_product p ON p.rowid = h.fk_product
                JOIN llx_entrepot e ON e.rowid = h.fk_entrepot
                WHERE h.day >= :start_date AND (:end_date IS NULL OR h.day < :end_date);
            """,
        },
    )
    erp = YamlErp(dolibarr_pg, path)
    assert "stock_history" in erp.check_contract()
    snap = erp.read_snapshot(AS_OF, history_days=365, now=REPLAY_NOW)
    assert _rows(snap.stock_history, "sku", "location_id", "date", "on_hand") == {
        ("W-1", "WH1", datetime(2026, 11, 18), 0.0),
        ("W-1", "WH1", datetime(2026, 11, 19), 12.0),
    }
    assert set(snap.sales_order_lines["channel"]) == {"shop-eu"}


# ------------------------------------------------------------------ the nightly path


def test_the_nightly_steps_run_on_the_yaml_profile(
    dolibarr_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REPLENISH_ERP_PROFILE=yaml:PATH selects the profile the nightly flow's
    extract uses; the gate, the forecast and the plan accept its snapshot."""
    from flows.nightly import DEFAULT_SERVICE_LEVELS
    from replenish.policy.plan import PlanSettings
    from tasks.extract import extract_erp
    from tasks.plan import forecast, plan
    from tasks.validate import validate_data

    monkeypatch.setenv("REPLENISH_ERP_URL", dolibarr_url)
    monkeypatch.setenv("REPLENISH_ERP_PROFILE", f"yaml:{EXAMPLE}")
    extracted = extract_erp.fn(AS_OF, ["W-1"], 365)
    assert set(extracted.products["sku"]) == {"W-1"}
    assert set(extracted.stock_levels["location_id"]) == {"WH1", "WH2"}

    snap = YamlErp(dolibarr_url, EXAMPLE).read_snapshot(AS_OF, history_days=365, now=TODAY_NOW)
    gate = validate_data.fn(snap, AS_OF)
    assert not gate.blocking, gate.failures
    # read today, the rows stamped after the as-of day are the only ones rejected
    assert _rows(gate.quarantine, "dataset", "row_key", "field") == {
        ("purchase_orders", "po_id=PO2611-0005", "ordered_at"),
        ("purchase_order_lines", "po_id=PO2611-0005|line_no=50", "po_id"),
        ("sales_order_lines", "order_id=CO2611-0006|line_no=7", "ordered_at"),
    }
    demand = forecast.fn(gate.clean, AS_OF, 365)
    plans = plan.fn(gate.clean, demand, AS_OF, PlanSettings(service_levels=DEFAULT_SERVICE_LEVELS))
    w1 = plans[plans["sku"] == "W-1"].set_index("location_id")
    assert set(w1.index) == {"WH1", "WH2"}  # G-2 is not bought: not planned
    # IP = on_hand − allocated + open PO quantity: WH1 15 + (100 − 40) of PO2611-0001
    assert w1.loc["WH1", "on_order"] == 60.0 and w1.loc["WH1", "inventory_position"] == 75.0
    assert w1.loc["WH2", "inventory_position"] == 7.0
    assert w1.loc["WH1", "supplier_id"] == "5"  # priority 1


# ------------------------------------------------------------------ errors


def test_a_missing_contract_column_is_named_with_the_file_and_query(
    dolibarr_url: str, tmp_path: Path
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["queries"]["stock_levels"] = data["queries"]["stock_levels"].replace(
        "ps.reel AS on_hand", "ps.reel AS qty"
    )
    path = tmp_path / "no-on-hand.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ContractError) as err:
        YamlErp(dolibarr_url, path).read_snapshot(AS_OF)
    msg = str(err.value)
    assert f"ERP profile {path}: query 'stock_levels' returns no column on_hand" in msg
    assert "expected the columns sku, location_id, on_hand, allocated, as_of" in msg
    assert "it returns sku, location_id, qty, allocated, as_of" in msg


def test_optional_contract_columns_may_be_left_out(dolibarr_pg: str) -> None:
    checked = YamlErp(dolibarr_pg, EXAMPLE).check_contract()
    assert checked["suppliers"][-1] == "receiving_days"  # no order_days, order_cost
    assert set(checked) == set(model.REQUIRED_TABLES) - {"returns"}


def test_bad_sql_names_the_query_and_hides_the_password(postgres_url: str, tmp_path: Path) -> None:
    _run(postgres_url, DOLIBARR_SCHEMA.format(dt="timestamp"))
    url = make_url(postgres_url).set(password="s3cret").render_as_string(hide_password=False)
    path = _variant(
        tmp_path, {"queries.products": "SELECT p.ref AS sku FROM llx_produit p"}, "typo.yaml"
    )
    with pytest.raises(ContractError) as err:
        YamlErp(url, path).check_contract()
    msg = str(err.value)
    assert msg.startswith(f"ERP profile {path}: query 'products' failed at ")
    assert 'relation "llx_produit" does not exist' in msg
    assert "s3cret" not in msg and "***" in msg


def test_bad_sql_on_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    _run(mariadb_url, DOLIBARR_SCHEMA.format(dt="datetime"))
    path = _variant(tmp_path, {"queries.returns": "SELECT order_id FROM nowhere WHERE"})
    with pytest.raises(ContractError, match=r"query 'returns' failed at mysql\+pymysql://"):
        YamlErp(mariadb_url, path).read_snapshot(AS_OF)


def test_an_unreachable_server_is_transient(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/test"
    with pytest.raises(SourceUnavailable) as err:
        YamlErp(url, EXAMPLE).read_snapshot(AS_OF)
    assert "s3cret" not in str(err.value) and "cannot read the ERP database" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            {"queries.products": "SELECT * FROM llx_product WHERE ref = :reference"},
            "queries.products: unknown parameter :reference (known: :start, :end, :now, "
            ":as_of, :start_date, :end_date, :entity, :channel, :currency, "
            ":default_location; add it under parameters:)",
        ),
        (
            {"queries.sales_order_lines": "SELECT * FROM llx_commande WHERE x > :start::date"},
            "queries.sales_order_lines: write CAST(:start AS type), not :start::type",
        ),
        ({"queries.products": "DELETE FROM llx_product"}, "must be one SELECT"),
        ({"queries.products": None}, "queries.products: Field required"),
        ({"queries.products": "  ;"}, "queries.products: empty query"),
        ({"queries.stock_levels": None}, "queries.stock_levels: Field required"),
        ({"queries.product": "SELECT 1"}, "queries: unknown table 'product'"),
        ({"parameters.start": "x"}, "parameters: 'start' is a built-in parameter"),
        ({"parameters.entity": [1, 2]}, "parameters.entity"),
        ({"querys": {}}, "querys: Extra inputs are not permitted"),
    ],
)
def test_a_bad_profile_file_is_named_before_connecting(
    tmp_path: Path, edit: dict[str, object], expected: str
) -> None:
    path = _variant(tmp_path, edit)
    with pytest.raises(ConfigurationError) as err:
        # the server does not exist: the file is checked first
        YamlErp(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x", path)
    assert str(err.value).startswith(f"ERP profile {path}: ")
    assert expected in str(err.value)


def test_not_yaml_and_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("queries:\n  products: 'SELECT\n bad: [", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"ERP profile .*bad.yaml: not valid YAML \(line"):
        load_profile(bad)
    with pytest.raises(ConfigurationError, match=r"ERP profile .*missing.yaml: file not found"):
        open_erp("sqlite:///x.db", profile=f"yaml:{tmp_path / 'missing.yaml'}")


def test_returns_may_be_null_but_not_left_out(tmp_path: Path) -> None:
    assert load_profile(EXAMPLE).queries.returns is None
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    del data["queries"]["returns"]
    path = tmp_path / "no-returns.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"queries.returns: Field required"):
        load_profile(path)


def test_profile_selection() -> None:
    assert profile_path("yaml:~/erp.yaml") == Path("~/erp.yaml").expanduser()
    assert profile_path("profiles/shop.YML") == Path("profiles/shop.YML")
    assert profile_path("odoo") is None
    with pytest.raises(ConfigurationError, match="expected yaml:PATH"):
        profile_path("yaml:")
    with pytest.raises(ConfigurationError, match=r"known profiles: .*yaml:PATH"):
        open_erp("sqlite:///x.db", profile="dolibarr")


def test_the_queries_cover_the_contract() -> None:
    """A table added to the contract must be added to the YAML profile too."""
    assert list(ProfileQueries.model_fields) == list(model.REQUIRED_TABLES) + list(
        model.OPTIONAL_TABLES
    )
    assert set(NULLABLE_TABLES) <= set(model.CONTRACT)


def test_the_documented_example_is_the_tested_one() -> None:
    """docs/erp-profiles.md shows config/erp-profiles/dolibarr.yaml as it is."""
    docs = (EXAMPLE.parents[2] / "docs" / "erp-profiles.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", docs, re.S)
    shown = [yaml.safe_load(b) for b in blocks if b.startswith("name: dolibarr")]
    assert shown == [yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))]
