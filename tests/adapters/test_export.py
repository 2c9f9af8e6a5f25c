"""Per-order export for suppliers: CSV and XLSX files read back with the csv
module and openpyxl."""

from __future__ import annotations

import csv
import io
import time
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from replenish.orders.export import (
    CSV_COLUMNS,
    ExportError,
    export_orders,
)

AS_OF = date(2024, 5, 1)


def draft_lines() -> pd.DataFrame:
    """Two suppliers, three orders, as ``Store.orders`` returns them."""
    rows = [
        ("2024-05-01/SUP-A/WH1", "SUP-A", "WH1", 2, "B-2", "SA-2", 10.0, 12.0),
        ("2024-05-01/SUP-A/WH1", "SUP-A", "WH1", 1, "A-1", "SA-1", 120.0, 2.5),
        ("2024-05-01/SUP-A/WH2", "SUP-A", "WH2", 1, "A-1", "SA-1", 50.0, 2.5),
        ("2024-05-01/SUP-B/WH1", "SUP-B", "WH1", 1, "C-3", None, 4.0, 30.125),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "po_key", "supplier_id", "location_id", "line_no", "sku", "supplier_sku", "qty",
            "unit_price",
        ],
    )  # fmt: skip
    frame["as_of"] = AS_OF
    frame["status"] = "approved"
    frame["currency"] = "EUR"
    return frame


PLANS = pd.DataFrame(
    {
        "sku": ["A-1", "B-2", "C-3", "A-1"],
        "location_id": ["WH1", "WH1", "WH1", "WH2"],
        "lead_time_mean": [5.0, 4.2, 10.0, 7.0],
        "pack_size": [10.0, 1.0, 2.0, 10.0],
    }
)
PRODUCTS = pd.DataFrame({"sku": ["A-1", "B-2", "C-3"], "name": ["Anvil", "Bolt, M8", "Crate"]})
SUPPLIERS = pd.DataFrame(
    {"supplier_id": ["SUP-A", "SUP-B"], "name": ["Acme Supplies", "Bolt & Co"]}
)


def export(tmp_path: Path, *formats: str) -> dict[str, list[Path]]:
    result = export_orders(
        draft_lines(),
        tmp_path,
        formats=formats,
        plans=PLANS,
        products=PRODUCTS,
        suppliers=SUPPLIERS,
    )
    assert result.rejected == {}
    return result.files


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        return list(reader)


def test_csv_one_file_per_order_with_lines_and_total(tmp_path: Path) -> None:
    files = export(tmp_path, "csv")

    assert sorted(p.name for ps in files.values() for p in ps) == [
        "2024-05-01_SUP-A_WH1.csv",
        "2024-05-01_SUP-A_WH2.csv",
        "2024-05-01_SUP-B_WH1.csv",
    ]
    rows = read_csv(tmp_path / "2024-05-01_SUP-A_WH1.csv")
    lines, total = rows[:-1], rows[-1]
    assert [(r["line_no"], r["sku"], r["supplier_sku"], r["description"]) for r in lines] == [
        ("1", "A-1", "SA-1", "Anvil"),
        ("2", "B-2", "SA-2", "Bolt, M8"),
    ]
    assert [
        (r["qty"], r["pack_size"], r["packs"], r["unit_price"], r["line_value"]) for r in lines
    ] == [
        ("120", "10", "12", "2.50", "300.00"),
        ("10", "1", "10", "12.00", "120.00"),
    ]
    assert [r["expected_date"] for r in lines] == ["2024-05-06", "2024-05-06"]
    assert {r["supplier_name"] for r in rows} == {"Acme Supplies"}
    assert {r["order_date"] for r in rows} == {"2024-05-01"}
    assert (total["description"], total["sku"], total["line_no"]) == ("TOTAL", "", "")
    assert float(total["line_value"]) == sum(float(r["line_value"]) for r in lines) == 420.0

    other = read_csv(tmp_path / "2024-05-01_SUP-B_WH1.csv")
    assert other[0]["unit_price"] == "30.1250"  # more than cents: not rounded away
    assert other[0]["line_value"] == "120.50"
    assert other[0]["supplier_sku"] == ""
    assert other[-1]["line_value"] == "120.50"


def test_xlsx_sheet_per_supplier_order_reads_back(tmp_path: Path) -> None:
    files = export(tmp_path, "xlsx")
    assert len(files) == 3

    wb = openpyxl.load_workbook(tmp_path / "2024-05-01_SUP-A_WH1.xlsx")
    assert wb.sheetnames == ["Acme Supplies"]
    ws = wb["Acme Supplies"]
    values = [list(row) for row in ws.iter_rows(values_only=True)]
    heading = {row[0]: row[1] for row in values[1:7]}
    assert heading["Supplier"] == "SUP-A — Acme Supplies"
    assert heading["Deliver to"] == "WH1"
    assert heading["Order date"] == datetime(2024, 5, 1)
    assert heading["Reference"] == "2024-05-01/SUP-A/WH1"
    assert heading["Currency"] == "EUR"
    assert heading["Expected delivery"] == datetime(2024, 5, 6)
    header_at = next(i for i, row in enumerate(values) if row[0] == "Line")
    assert values[header_at][:10] == [
        "Line", "SKU", "Supplier SKU", "Description", "Qty", "Pack size", "Packs",
        "Unit price", "Line value", "Expected delivery",
    ]  # fmt: skip
    lines = values[header_at + 1 : -1]
    assert [row[:9] for row in lines] == [
        [1, "A-1", "SA-1", "Anvil", 120, 10, 12, 2.5, 300],
        [2, "B-2", "SA-2", "Bolt, M8", 10, 1, 10, 12, 120],
    ]
    assert [row[9] for row in lines] == [datetime(2024, 5, 6)] * 2
    total = values[-1]
    assert total[0] == "Total"
    assert total[8] == sum(row[8] for row in lines) == 420
    assert ws.cell(header_at + 2, 9).number_format == "#,##0.00"
    assert ws.freeze_panes == f"A{header_at + 2}"


def test_totals_per_supplier_match_the_drafts(tmp_path: Path) -> None:
    files = export(tmp_path, "csv", "xlsx")
    frame = draft_lines()
    expected = (frame["qty"] * frame["unit_price"]).round(2).groupby(frame["po_key"]).sum()
    for key, paths in files.items():
        csv_path, xlsx_path = sorted(paths, key=lambda p: p.suffix)
        csv_total = float(read_csv(csv_path)[-1]["line_value"])
        rows = list(openpyxl.load_workbook(xlsx_path).active.iter_rows(values_only=True))
        assert csv_total == rows[-1][8] == pytest.approx(expected[key])


def test_output_is_byte_identical_on_a_rerun(tmp_path: Path) -> None:
    """Two runs more than ZIP's 2-second time resolution apart: an entry
    stamped with the clock (openpyxl adds each worksheet from a temporary
    file) made this fail only when the runs straddled a 2-second tick."""
    first = export(tmp_path / "a", "csv", "xlsx")
    time.sleep(2.1)
    second = export(tmp_path / "b", "csv", "xlsx")
    for key in first:
        for p1, p2 in zip(first[key], second[key], strict=True):
            assert p1.name == p2.name
            assert p1.read_bytes() == p2.read_bytes()


def test_invalid_order_is_reported_and_the_others_exported(tmp_path: Path) -> None:
    frame = draft_lines()
    frame.loc[frame["sku"] == "C-3", "qty"] = float("nan")
    result = export_orders(frame, tmp_path, formats=["csv"])

    assert sorted(result.files) == ["2024-05-01/SUP-A/WH1", "2024-05-01/SUP-A/WH2"]
    assert result.rejected == {
        "2024-05-01/SUP-B/WH1": "invalid draft: line 1 (SKU C-3): qty must be a number > 0, got nan"
    }
    assert not (tmp_path / "2024-05-01_SUP-B_WH1.csv").exists()
    assert "not exported: 2024-05-01/SUP-B/WH1" in result.text()


def test_without_plans_or_products_the_known_fields_are_still_written(tmp_path: Path) -> None:
    result = export_orders(draft_lines(), tmp_path, formats=["csv"])
    rows = read_csv(result.files["2024-05-01/SUP-A/WH1"][0])
    assert [
        (r["sku"], r["description"], r["pack_size"], r["expected_date"]) for r in rows[:-1]
    ] == [
        ("A-1", "", "", ""),
        ("B-2", "", "", ""),
    ]
    assert rows[-1]["line_value"] == "420.00"


def test_unsafe_names_are_cleaned_and_collisions_kept_apart(tmp_path: Path) -> None:
    frame = draft_lines()
    frame = frame[frame["po_key"] != "2024-05-01/SUP-B/WH1"].copy()
    frame["supplier_id"] = frame["supplier_id"].replace({"SUP-A": "A/B: C"})
    frame.loc[frame["location_id"] == "WH2", "location_id"] = "WH1?"
    frame.loc[frame["location_id"] == "WH1", "location_id"] = "WH1*"
    result = export_orders(frame, tmp_path, formats=["xlsx"])

    names = sorted(p.name for p in result.paths)
    assert names[0] == "2024-05-01_A-B-C_WH1.xlsx"
    assert names[1].startswith("2024-05-01_A-B-C_WH1_") and names[1].endswith(".xlsx")
    wb = openpyxl.load_workbook(result.paths[0])
    assert wb.sheetnames == ["A-B- C"]


def test_missing_column_and_unwritable_folder_are_clear(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="missing column\\(s\\) qty"):
        export_orders(draft_lines().drop(columns=["qty"]), tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the export folder"):
        export_orders(draft_lines(), blocker / "sub")
    with pytest.raises(ValueError, match="'pdf'"):
        export_orders(draft_lines(), tmp_path, formats=["pdf"])


def test_csv_writes_to_a_buffer_too() -> None:
    from replenish.orders.documents import order_documents
    from replenish.orders.export import write_csv

    docs, _ = order_documents(draft_lines())
    buffer = io.StringIO()
    write_csv(docs[0], buffer)
    assert buffer.getvalue().splitlines()[-1].endswith(",TOTAL,,,,,420.00,")
