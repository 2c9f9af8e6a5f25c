"""The validation gate, with real Great Expectations (no mocks).

GX costs ~6 ms per expectation and run, ~0.7 s per snapshot whatever its size,
so most assertions share a few module-level gate runs: a clean snapshot, and
a "dirty" one with one bad row of each kind.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from replenish import model
from replenish.errors import DataQualityError
from replenish.quality import QUARANTINE_COLUMNS, SUMMARY_COLUMNS, GateResult, validate_snapshot
from replenish.quality.engine import get_engine
from replenish.quality.gate import cutoff_for
from replenish.quality.rules import DATASETS, dataset_rules

AS_OF = datetime(2024, 5, 1, 12, 0)  # cutoff: 2024-05-02 00:00
T = pd.Timestamp


def _frame(table: str, rows: list[dict[str, Any]], index: list[int] | None = None) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=list(model.CONTRACT[table]), index=index)
    return model.coerce(table, raw)


def _sale(order: str, line: int, sku: str, qty: Any = 1.0, at: Any = "2024-04-30 10:00") -> dict:
    return {
        "order_id": order,
        "line_no": line,
        "sku": sku,
        "location_id": "WH1",
        "channel": "web",
        "qty": qty,
        "ordered_at": at,
        "status": "shipped",
    }


def _stock(sku: str, loc: str, on_hand: Any = 10.0, at: Any = "2024-05-01 06:00") -> dict:
    return {"sku": sku, "location_id": loc, "on_hand": on_hand, "allocated": 0.0, "as_of": at}


def _tables(**extra: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows of a clean snapshot; ``extra`` rows are appended per table."""
    t: dict[str, list[dict[str, Any]]] = {
        "suppliers": [
            {
                "supplier_id": s,
                "name": f"Supplier {s}",
                "email": None,
                "currency": "EUR",
                "min_order_value": 100.0,
                "order_processing_days": 1.0,
                "transport_days": 3.0,
                "receiving_days": 1.0,
            }
            for s in ("S1", "S2")
        ],
        "products": [
            {
                "sku": "A",
                "name": "Alpha",
                "category": "x",
                "unit_cost": 2.0,
                "unit_price": 5.0,
                "active": True,
                "replenishment_mode": "stock",
                "service_level": None,
            },
            {
                "sku": "B",
                "name": "Beta",
                "category": "x",
                "unit_cost": 1.0,
                "unit_price": 3.0,
                "active": True,
                "replenishment_mode": "jit",
                "service_level": 0.95,
            },
            {
                "sku": "C",
                "name": None,
                "category": None,
                "unit_cost": None,
                "unit_price": None,
                "active": False,
                "replenishment_mode": "stock",
                "service_level": None,
            },
        ],
        "supplier_products": [
            {
                "sku": s,
                "supplier_id": sup,
                "supplier_sku": f"{sup}-{s}",
                "lead_time_days": 5.0,
                "moq": 0.0,
                "pack_size": 6.0,
                "unit_price": 2.0,
                "priority": 1,
            }
            for s, sup in (("A", "S1"), ("B", "S2"), ("C", "S1"))
        ],
        "stock_levels": [
            _stock("A", "WH1"),
            _stock("B", "WH1"),
            _stock("C", "WH1"),
            _stock("A", "WH2"),
            _stock("B", "WH2"),
        ],
        "purchase_orders": [
            {
                "po_id": "PO-1",
                "supplier_id": "S1",
                "location_id": "WH1",
                "status": "sent",
                "ordered_at": "2024-04-20",
                "expected_at": "2024-05-10",
            },  # expected in the future
            {
                "po_id": "PO-2",
                "supplier_id": "S2",
                "location_id": "WH1",
                "status": "received",
                "ordered_at": "2024-04-10",
                "expected_at": "2024-04-20",
            },
        ],
        "purchase_order_lines": [
            {
                "po_id": "PO-1",
                "line_no": 1,
                "sku": "A",
                "qty_ordered": 12.0,
                "qty_received": 0.0,
                "received_at": None,
            },
            {
                "po_id": "PO-2",
                "line_no": 1,
                "sku": "B",
                "qty_ordered": 6.0,
                "qty_received": 6.0,
                "received_at": "2024-04-19 09:00",
            },
        ],
        "sales_order_lines": [
            _sale("SO-1", 1, "A"),
            _sale("SO-1", 2, "B", 2.0),
            _sale("SO-8", 1, "A", 3.0, "2024-05-01 23:59"),
        ],
        "returns": [
            {
                "order_id": "SO-1",
                "sku": "A",
                "location_id": "WH1",
                "qty": 1.0,
                "returned_at": "2024-04-30 15:00",
                "restockable": "yes",
            },
        ],
        "stock_history": [
            {"sku": "A", "location_id": "WH1", "date": "2024-04-30", "on_hand": 11.0},
        ],
    }
    for table, rows in extra.items():
        t[table] = t[table] + rows
    return t


def _snapshot(
    tables: dict[str, list[dict[str, Any]]], index: dict[str, list[int]] | None = None
) -> model.ErpSnapshot:
    index = index or {}
    return model.ErpSnapshot(
        **{name: _frame(name, rows, index.get(name)) for name, rows in tables.items()}
    )


def _copy(snapshot: model.ErpSnapshot) -> dict[str, pd.DataFrame]:
    return {name: frame.copy(deep=True) for name, frame in snapshot.tables().items()}


def _q(result: GateResult, dataset: str, **match: str) -> pd.DataFrame:
    q = result.quarantine
    sel = q["dataset"] == dataset
    for col, value in match.items():
        sel &= q[col] == value
    return q[sel]


# --- module-level gate runs --------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run() -> tuple[model.ErpSnapshot, GateResult]:
    snapshot = _snapshot(_tables())
    return snapshot, validate_snapshot(snapshot, AS_OF)


DIRTY = _tables(
    suppliers=[  # duplicated key: both rows out, and so are the links to S3
        {
            "supplier_id": "S3",
            "name": "x",
            "email": None,
            "currency": "EUR",
            "min_order_value": 0,
            "order_processing_days": 0,
            "transport_days": 1,
            "receiving_days": 0,
        },
        {
            "supplier_id": "S3",
            "name": "y",
            "email": None,
            "currency": "EUR",
            "min_order_value": 0,
            "order_processing_days": 0,
            "transport_days": 2,
            "receiving_days": 0,
        },
    ],
    products=[
        {
            "sku": "D",
            "name": "Delta",
            "category": "x",
            "unit_cost": 1.0,
            "unit_price": 2.0,
            "active": True,
            "replenishment_mode": "weekly",
            "service_level": None,
        },  # bad enum
        {
            "sku": "E",
            "name": "Echo",
            "category": "x",
            "unit_cost": 1.0,
            "unit_price": 2.0,
            "active": True,
            "replenishment_mode": "stock",
            "service_level": 1.5,
        },  # not in (0, 1)
    ],
    supplier_products=[
        {
            "sku": "A",
            "supplier_id": "S2",
            "supplier_sku": None,
            "lead_time_days": 5.0,
            "moq": 1.0,
            "pack_size": 0.0,
            "unit_price": 2.0,
            "priority": 2,
        },  # pack_size not > 0
        {
            "sku": "C",
            "supplier_id": "S3",
            "supplier_sku": None,
            "lead_time_days": 5.0,
            "moq": 1.0,
            "pack_size": 1.0,
            "unit_price": 2.0,
            "priority": 2,
        },  # S3 quarantined
    ],
    stock_levels=[_stock("C", "WH2", on_hand=-4.0)],  # 1 of 6 bad: under 20 %, not blocking
    purchase_orders=[
        {
            "po_id": "PO-3",
            "supplier_id": "S1",
            "location_id": "WH1",
            "status": "open",
            "ordered_at": "2024-04-28",
            "expected_at": None,
        },  # bad enum
    ],
    purchase_order_lines=[
        {
            "po_id": "PO-3",
            "line_no": 1,
            "sku": "A",
            "qty_ordered": 5.0,
            "qty_received": 0.0,
            "received_at": None,
        },  # its PO is quarantined
    ],
    sales_order_lines=[
        _sale("SO-2", 1, "A", -3.0),  # negative qty
        _sale("SO-3", 1, "ZZZ"),  # unknown SKU
        _sale("SO-4", 1, "A", 1.0, "2024-05-02 00:00"),  # future (first instant after the day)
        _sale("SO-5", 1, "A", 1.0),  # duplicated key (SO-5, 1) ...
        _sale("SO-5", 1, "B", 2.0),  # ... both out
        _sale("SO-6", 1, "A", "abc"),  # not a number
        _sale("SO-7", 1, "D", 1.0),  # its product is quarantined
    ],
    returns=[
        {
            "order_id": "SO-1",
            "sku": "B",
            "location_id": "WH1",
            "qty": 1.0,
            "returned_at": "2024-04-30 15:00",
            "restockable": "maybe",
        },  # not a boolean
    ],
)
#: a non-default index on the sales frame: the gate must not care
SALES_INDEX = [100 + 10 * i for i in range(len(DIRTY["sales_order_lines"]))]


@pytest.fixture(scope="module")
def dirty_run() -> tuple[model.ErpSnapshot, dict[str, pd.DataFrame], GateResult]:
    snapshot = _snapshot(DIRTY, {"sales_order_lines": SALES_INDEX})
    before = _copy(snapshot)
    return snapshot, before, validate_snapshot(snapshot, AS_OF)


# --- clean snapshot ----------------------------------------------------------------------


def test_clean_snapshot_passes_untouched(clean_run: tuple[model.ErpSnapshot, GateResult]) -> None:
    snapshot, result = clean_run
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert result.quarantine.empty
    assert result.failures == []
    assert not result.blocking
    result.raise_if_blocking()
    for name, frame in snapshot.tables().items():
        pd.testing.assert_frame_equal(getattr(result.clean, name), frame)
        # nothing rejected: the input's own frame, not a copy (memory at scale)
        assert getattr(result.clean, name) is frame
    s = result.summary
    assert list(s.columns) == list(SUMMARY_COLUMNS)
    assert list(s["dataset"]) == list(DATASETS)
    assert s["success"].all() and (s["rejected_rows"] == 0).all()
    assert (s["failed_expectations"] == 0).all()
    assert s.set_index("dataset")["rows"].to_dict() == snapshot.row_counts()


def test_gx_results_are_json_and_cover_every_suite(
    clean_run: tuple[model.ErpSnapshot, GateResult],
) -> None:
    _, result = clean_run
    # promotions is empty: an empty table passes its row checks without asking GX
    assert set(result.gx_results) == {
        *(set(DATASETS) - {"promotions"}),
        "stock_levels_snapshot",
        "sales_order_lines_spikes",
    }
    json.dumps(result.gx_results)
    sales = result.gx_results["sales_order_lines"]
    assert sales["success"] is True
    assert len(sales["results"]) == len(dataset_rules("sales_order_lines"))
    counted = result.summary.set_index("dataset")["expectations"]
    # GX expectations + the spike check + the gate's rejected-fraction check
    assert counted["sales_order_lines"] == len(dataset_rules("sales_order_lines")) + 2
    assert counted["promotions"] == len(dataset_rules("promotions")) + 1
    assert result.warnings.empty and list(result.warnings.columns) == list(QUARANTINE_COLUMNS)


# --- one bad row of each kind ------------------------------------------------------------


def _only(rows: pd.DataFrame) -> pd.Series:
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_negative_quantity(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    row = _only(_q(r, "sales_order_lines", row_key="order_id=SO-2|line_no=1"))
    assert row["field"] == "qty"
    assert row["expectation"] == "expect_column_values_to_be_between"
    assert row["value"] == "-3"
    assert row["reason"] == (
        "sales_order_lines row 4 (order_id=SO-2|line_no=1): qty = -3; expected a number >= 0."
    )


def test_nan_required_value(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    row = _only(_q(r, "sales_order_lines", row_key="order_id=SO-6|line_no=1"))
    assert (row["field"], row["expectation"], row["value"]) == (
        "qty",
        "expect_column_values_to_not_be_null",
        "",
    )
    assert "qty is empty or not a valid number; expected a number (required)" in row["reason"]
    ret = _only(_q(r, "returns"))
    assert ret["field"] == "restockable"
    assert ret["row_key"] == "order_id=SO-1|sku=B|returned_at=2024-04-30 15:00:00"
    assert "not a valid yes/no value" in ret["reason"]
    # nullable numbers may be missing; labels (names) may be missing
    assert _q(r, "products", row_key="sku=C").empty


def test_unknown_sku(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    row = _only(_q(r, "sales_order_lines", row_key="order_id=SO-3|line_no=1"))
    assert (row["field"], row["expectation"], row["value"]) == (
        "sku",
        "expect_column_values_to_not_be_in_set",
        "ZZZ",
    )
    assert "sku = 'ZZZ' does not exist in products" in row["reason"]


def test_reference_to_a_quarantined_row(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    product = _only(_q(r, "products", row_key="sku=D"))
    assert (product["field"], product["expectation"], product["value"]) == (
        "replenishment_mode",
        "expect_column_values_to_be_in_set",
        "weekly",
    )
    assert "expected one of 'jit', 'stock'" in product["reason"]
    sale = _only(_q(r, "sales_order_lines", row_key="order_id=SO-7|line_no=1"))
    assert "sku = 'D' refers to a products row that was itself quarantined" in sale["reason"]
    po = _only(_q(r, "purchase_orders"))
    assert (po["row_key"], po["field"], po["value"]) == ("po_id=PO-3", "status", "open")
    line = _only(_q(r, "purchase_order_lines"))
    assert line["field"] == "po_id" and "itself quarantined" in line["reason"]
    link = _only(_q(r, "supplier_products", row_key="sku=C|supplier_id=S3"))
    assert link["field"] == "supplier_id"


def test_future_date(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    row = _only(_q(r, "sales_order_lines", row_key="order_id=SO-4|line_no=1"))
    assert (row["field"], row["value"]) == ("ordered_at", "2024-05-02 00:00:00")
    assert "is in the future" in row["reason"] and "2024-05-01" in row["reason"]
    # the last minute of the as-of day is fine, and so is a PO expected later
    assert "SO-8" in set(r.clean.sales_order_lines["order_id"])
    assert "PO-1" in set(r.clean.purchase_orders["po_id"])


def test_duplicate_keys(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    rows = _q(r, "sales_order_lines", row_key="order_id=SO-5|line_no=1")
    assert len(rows) == 2
    assert set(rows["field"]) == {"channel,order_id,line_no"}
    assert set(rows["expectation"]) == {"expect_compound_columns_to_be_unique"}
    assert all("2 rows share the key (channel,order_id,line_no)" in x for x in rows["reason"])
    sup = _q(r, "suppliers", row_key="supplier_id=S3")
    assert len(sup) == 2 and set(sup["expectation"]) == {"expect_column_values_to_be_unique"}


def test_the_same_order_number_in_two_channels_is_not_a_duplicate(
    clean_run: tuple[model.ErpSnapshot, GateResult],
) -> None:
    """Sales lines are unique per (channel, order_id, line_no) (DESIGN): two
    shops whose order numbers collide both flow; the same line twice in one
    channel is still a duplicate."""
    snapshot = copy.deepcopy(clean_run[0])
    sales = snapshot.sales_order_lines
    first = sales.iloc[[0]]
    other_shop = first.assign(channel="woocommerce-eu")
    snapshot.sales_order_lines = pd.concat([sales, other_shop], ignore_index=True)
    result = validate_snapshot(snapshot, AS_OF)
    assert len(result.clean.sales_order_lines) == len(sales) + 1
    assert result.quarantine[result.quarantine["dataset"] == "sales_order_lines"].empty
    snapshot.sales_order_lines = pd.concat([sales, first], ignore_index=True)
    result = validate_snapshot(snapshot, AS_OF)
    assert len(result.clean.sales_order_lines) == len(sales) - 1
    assert len(result.quarantine[result.quarantine["dataset"] == "sales_order_lines"]) == 2


def test_ranges(dirty_run: tuple[Any, Any, GateResult]) -> None:
    r = dirty_run[2]
    sl = _only(_q(r, "products", row_key="sku=E"))
    assert (sl["field"], sl["value"]) == ("service_level", "1.5")
    assert "strictly between 0 and 1, or empty" in sl["reason"]
    pack = _only(_q(r, "supplier_products", row_key="sku=A|supplier_id=S2"))
    assert (pack["field"], pack["value"]) == ("pack_size", "0")
    assert "expected a number > 0" in pack["reason"]
    stock = _only(_q(r, "stock_levels"))
    assert (stock["row_key"], stock["field"]) == ("sku=C|location_id=WH2", "on_hand")


def test_dirty_rows_leave_the_rest_flowing(dirty_run: tuple[Any, Any, GateResult]) -> None:
    _, _, r = dirty_run
    sales = r.clean.sales_order_lines
    assert sorted(zip(sales["order_id"], sales["line_no"], strict=True)) == [
        ("SO-1", 1),
        ("SO-1", 2),
        ("SO-8", 1),
    ]
    # the original index labels survive
    assert list(sales.index) == [SALES_INDEX[0], SALES_INDEX[1], SALES_INDEX[2]]
    assert set(r.clean.products["sku"]) == {"A", "B", "C"}
    assert set(r.clean.suppliers["supplier_id"]) == {"S1", "S2"}
    assert len(r.clean.stock_levels) == 5
    assert len(r.clean.returns) == 1
    # row failures never block: 1 of 6 stock rows (<= 20 %) and the others
    assert not r.blocking
    assert r.failures and all(not f.blocking for f in r.failures)
    assert {f.expectation for f in r.failures} == {"gate_rejected_row_fraction"}
    s = r.summary.set_index("dataset")
    assert s.loc["sales_order_lines", "rejected_rows"] == 7
    assert s.loc["stock_levels", "rejected_rows"] == 1
    assert not s.loc["sales_order_lines", "success"]
    assert s.loc["stock_history", "success"]


def test_gx_counts_match_the_quarantine(dirty_run: tuple[Any, Any, GateResult]) -> None:
    """GX's own unexpected_count per expectation == the rows quarantined for it."""
    r = dirty_run[2]
    checked = 0
    for dataset in DATASETS:
        if dataset not in r.gx_results:  # an empty table
            assert r.summary.set_index("dataset").loc[dataset, "rows"] == 0
            continue
        for er in r.gx_results[dataset]["results"]:
            rule_id = er["expectation_config"]["meta"]["rule"]
            rule = next(x for x in dataset_rules(dataset) if x.id == rule_id)
            if not rule.row_level:
                continue
            rows = _q(r, dataset, rule=rule_id)
            assert (rows["expectation"] == er["expectation_config"]["type"]).all()
            # passing expectations are evaluated BOOLEAN_ONLY: no count
            assert er["result"].get("unexpected_count", 0) == len(rows), rule_id
            assert er["success"] == rows.empty
            checked += len(rows)
    assert checked == len(r.quarantine)
    assert r.warnings.empty
    assert checked == r.summary["rejected_rows"].sum()  # each bad row fails one check here


def test_inputs_are_not_mutated(dirty_run: tuple[model.ErpSnapshot, Any, GateResult]) -> None:
    snapshot, before, _ = dirty_run
    for name, frame in snapshot.tables().items():
        pd.testing.assert_frame_equal(frame, before[name])


# --- dataset-level (blocking) failures ---------------------------------------------------


def _blocking(result: GateResult) -> dict[tuple[str, str], str]:
    return {(f.dataset, f.expectation): f.detail for f in result.failures if f.blocking}


def test_stale_stock_snapshot_blocks() -> None:
    tables = _tables()
    tables["stock_levels"] = [_stock("A", "WH1", at="2024-04-28 06:00")]
    result = validate_snapshot(_snapshot(tables), AS_OF)
    assert result.blocking
    blocking = _blocking(result)
    assert list(blocking) == [("stock_levels", "expect_column_values_to_be_between")]
    detail = blocking[("stock_levels", "expect_column_values_to_be_between")]
    assert detail.startswith("stock snapshot is stale at location: WH1 (newest as_of 2024-04-28")
    assert "expected on or after 2024-04-29 12:00:00" in detail
    with pytest.raises(DataQualityError, match="stale"):
        result.raise_if_blocking()
    assert result.quarantine.empty  # a stale snapshot is not a row problem


def test_empty_stock_snapshot_blocks() -> None:
    tables = _tables()
    tables["stock_levels"] = []
    result = validate_snapshot(_snapshot(tables), AS_OF)
    assert list(_blocking(result)) == [("stock_levels", "expect_table_row_count_to_be_between")]


def test_more_than_a_fifth_of_bad_stock_rows_blocks() -> None:
    tables = _tables()
    tables["stock_levels"][0]["on_hand"] = -1.0
    tables["stock_levels"][1]["as_of"] = "2024-06-01"  # 2 of 5 rows: 40 %
    result = validate_snapshot(_snapshot(tables), AS_OF)
    blocking = _blocking(result)
    assert list(blocking) == [("stock_levels", "gate_rejected_row_fraction")]
    assert (
        "2 of 5 stock_levels rows (40%)" in blocking[("stock_levels", "gate_rejected_row_fraction")]
    )
    assert len(_q(result, "stock_levels")) == 2
    assert len(result.clean.stock_levels) == 3


def test_missing_products_block_and_everything_referencing_them_is_rejected() -> None:
    tables = _tables()
    tables["products"] = []
    result = validate_snapshot(_snapshot(tables), AS_OF)
    blocking = _blocking(result)
    assert ("products", "expect_table_row_count_to_be_between") in blocking
    assert ("stock_levels", "gate_rejected_row_fraction") in blocking
    assert result.clean.sales_order_lines.empty
    assert set(_q(result, "sales_order_lines")["expectation"]) == {
        "expect_column_values_to_not_be_in_set"
    }


def test_missing_contract_column_blocks() -> None:
    snapshot = _snapshot(_tables())
    snapshot.purchase_orders = snapshot.purchase_orders.drop(columns=["status"])
    snapshot.stock_history = snapshot.stock_history.drop(columns=["on_hand"])
    result = validate_snapshot(snapshot, AS_OF)
    failures = {(f.dataset, f.expectation): f for f in result.failures}
    po = failures[("purchase_orders", "gate_contract_columns")]
    assert po.blocking and "status" in po.detail
    assert not failures[("stock_history", "gate_contract_columns")].blocking  # optional table
    assert result.clean.purchase_orders.empty
    assert list(result.clean.purchase_orders.columns) == list(model.CONTRACT["purchase_orders"])
    # lines of now-unknown POs are quarantined as such
    assert set(_q(result, "purchase_order_lines")["field"]) == {"po_id"}


# --- at scale ----------------------------------------------------------------------------


def test_row_positions_at_scale() -> None:
    """20 000 sales lines, a few % bad at random positions of several kinds."""
    rng = np.random.default_rng(7)
    n = 20_000
    qty = rng.integers(1, 5, n).astype(float)
    sku = np.where(rng.random(n) < 0.5, "A", "B").astype(object)
    at = np.full(n, T("2024-04-30 10:00"))
    kind = rng.choice(4, n, p=[0.94, 0.02, 0.02, 0.02])
    qty[kind == 1] = -1.0
    sku[kind == 2] = "NOPE"
    at[kind == 3] = T("2024-05-05")
    frame = model.coerce(
        "sales_order_lines",
        pd.DataFrame(
            {
                "order_id": [f"SO-{i}" for i in range(n)],
                "line_no": 1,
                "sku": sku,
                "location_id": "WH1",
                "channel": "web",
                "qty": qty,
                "ordered_at": at,
                "status": "shipped",
            }
        ),
    )
    snapshot = _snapshot(_tables())
    snapshot.sales_order_lines = frame
    result = validate_snapshot(snapshot, AS_OF)
    q = _q(result, "sales_order_lines")
    expected = {f"order_id=SO-{i}|line_no=1" for i in np.flatnonzero(kind > 0)}
    assert set(q["row_key"]) == expected and len(q) == len(expected)
    by_field = q.groupby("field").size().to_dict()
    assert by_field == {
        "qty": (kind == 1).sum(),
        "sku": (kind == 2).sum(),
        "ordered_at": (kind == 3).sum(),
    }
    assert len(result.clean.sales_order_lines) == n - len(expected)
    assert not result.blocking  # sales rows never block


# --- pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "cutoff"),
    [
        (datetime(2024, 5, 1, 12, 0), T("2024-05-02")),
        (datetime(2024, 5, 2, 0, 0), T("2024-05-02")),  # day_end(2024-05-01)
        (date(2024, 5, 1), T("2024-05-02")),
        (datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2))), T("2024-05-03")),
    ],
)
def test_cutoff(as_of: datetime | date, cutoff: pd.Timestamp) -> None:
    assert cutoff_for(as_of) == cutoff


def test_every_dataset_has_a_keyed_suite() -> None:
    assert set(DATASETS) == set(model.ErpSnapshot().tables())
    for dataset in DATASETS:
        rules = dataset_rules(dataset)
        assert len({r.id for r in rules}) == len(rules)
        assert any(r.kind == "unique" and r.columns == model.ROW_KEYS[dataset] for r in rules)
        assert copy.deepcopy(rules) == rules


def test_an_expectation_gx_cannot_evaluate_is_an_error_not_a_pass() -> None:
    frame = _frame("returns", _tables()["returns"]).drop(columns=["qty"])
    params = {
        "cutoff": T("2024-05-02"),
        "unknown__returns__sku": [],
        "unknown__returns__location_id": [],
    }
    run = get_engine().run("returns", frame.reset_index(drop=True), params)
    errors = {o.rule.id: o.error for o in run.outcomes if o.error}
    assert set(errors) == {"returns:not_null:qty", "returns:range:qty"}
    assert 'column "qty"' in errors["returns:not_null:qty"]
    assert "does not exist" in errors["returns:not_null:qty"]


def test_the_warm_up_creates_the_engine_the_gate_then_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from replenish.quality import engine

    monkeypatch.setattr(engine, "_ENGINE", None)
    engine.warm_up().join(timeout=120)
    warmed = engine._ENGINE
    assert warmed is not None and warmed.created_in > 0
    assert engine.get_engine() is warmed  # created once, in the background


def test_a_failed_warm_up_leaves_the_error_to_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    from replenish.quality import engine

    def broken() -> None:
        raise RuntimeError("no GX here")

    monkeypatch.setattr(engine, "_ENGINE", None)
    monkeypatch.setattr(engine, "Engine", broken)
    thread = engine.warm_up()
    thread.join(timeout=30)
    assert not thread.is_alive() and engine._ENGINE is None
    with pytest.raises(RuntimeError, match="no GX here"):
        engine.get_engine()
