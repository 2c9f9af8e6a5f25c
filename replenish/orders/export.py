"""Draft purchase orders exported for suppliers: one file per order.

One order is one supplier × location × planning date, and it is what a buyer
sends to one supplier, so each order gets its own file, named
``<date>_<supplier>_<location>.csv`` or ``.xlsx`` (characters other than
letters, digits, ``.``, ``_`` and ``-`` become ``-``; should two orders end up
with one name, the second gets ``_<8 hex digits of its po_key>`` appended).

Both formats carry, per line: line number, our SKU, the supplier's SKU, the
description, quantity, pack size, packs, unit price, line value and the
expected delivery date, and the order's total:

* CSV (UTF-8, comma, RFC 4180 quoting): a header row, one row per line, then
  one **total row** whose ``description`` is ``TOTAL`` and whose
  ``line_value`` is the order's total (its ``line_no`` and ``sku`` are empty:
  a program reading the file skips it by the empty ``sku``). Numbers are
  plain (``12``, ``2.5``; money with two decimals), dates ISO ``YYYY-MM-DD``.
* XLSX (one sheet named after the supplier): the order's heading (supplier,
  deliver-to location, order date, reference = ``po_key``, currency, expected
  delivery), the table of lines with real numbers and dates (formatted), and
  a bold total row. Values, not formulas, so any reader sees the totals.

Output is deterministic: the same orders give byte-identical files (lines in
line-number order, fixed ZIP timestamps and workbook properties set to the
planning date), so a rerun can be compared or committed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from replenish.errors import ReplenishError
from replenish.orders.documents import OrderDocument, order_documents

__all__ = [
    "CSV_COLUMNS",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "export_orders",
    "order_filename",
    "write_csv",
    "write_xlsx",
]

#: Columns of the CSV file, in order.
CSV_COLUMNS = [
    "po_key",
    "order_date",
    "supplier_id",
    "supplier_name",
    "location_id",
    "currency",
    "line_no",
    "sku",
    "supplier_sku",
    "description",
    "qty",
    "pack_size",
    "packs",
    "unit_price",
    "line_value",
    "expected_date",
]
#: The table of the XLSX sheet: (heading, width).
_XLSX_TABLE = [
    ("Line", 6),
    ("SKU", 16),
    ("Supplier SKU", 16),
    ("Description", 40),
    ("Qty", 10),
    ("Pack size", 10),
    ("Packs", 8),
    ("Unit price", 12),
    ("Line value", 14),
    ("Expected delivery", 18),
]
_MONEY = "#,##0.00"
_QTY = "#,##0.###"
_DATE = "yyyy-mm-dd"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")


class ExportError(ReplenishError):
    """An order file could not be written (a folder that cannot be created, a
    disk error): names the file and the reason."""


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


@dataclass
class ExportResult:
    """What :func:`export_orders` wrote: per ``po_key`` the files, and the
    orders not exported with why."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [p for ps in self.files.values() for p in ps]

    def text(self) -> str:
        lines = [f"{len(self.paths)} file(s) for {len(self.files)} order(s)"]
        lines += [f"  {p}" for p in self.paths]
        lines += [f"  not exported: {k}: {why}" for k, why in sorted(self.rejected.items())]
        return "\n".join(lines)


def _plain(value: float | None, decimals: int | None = None) -> str:
    """``12`` not ``12.0``; money with exactly ``decimals`` decimals."""
    if value is None:
        return ""
    if decimals is not None:
        return f"{value:.{decimals}f}"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text


def order_filename(doc: OrderDocument, ext: str) -> str:
    """``<date>_<supplier>_<location>.<ext>``, filesystem-safe."""

    def safe(text: str) -> str:
        return _UNSAFE.sub("-", text).strip("-.") or "x"

    return f"{doc.as_of.isoformat()}_{safe(doc.supplier_id)}_{safe(doc.location_id)}.{ext}"


def write_csv(doc: OrderDocument, target: Path | io.StringIO) -> None:
    """One order as CSV: the lines, then the total row (module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    head = [
        doc.po_key,
        doc.as_of.isoformat(),
        doc.supplier_id,
        doc.supplier_name or "",
        doc.location_id,
        doc.currency or "",
    ]
    for line in doc.lines:
        writer.writerow(
            [
                *head,
                line.line_no,
                line.sku,
                line.supplier_sku or "",
                line.description or "",
                _plain(line.qty),
                _plain(line.pack_size),
                _plain(line.packs),
                _plain(line.unit_price, 2 if round(line.unit_price, 2) == line.unit_price else 4),
                _plain(line.line_value, 2),
                line.expected_date.isoformat() if line.expected_date else "",
            ]
        )
    writer.writerow([*head, "", "", "", "TOTAL", "", "", "", "", _plain(doc.total, 2), ""])
    text = buffer.getvalue()
    if isinstance(target, io.StringIO):
        target.write(text)
    else:
        target.write_bytes(text.encode("utf-8"))


def _sheet_title(doc: OrderDocument) -> str:
    title = _SHEET_UNSAFE.sub("-", doc.supplier_name or doc.supplier_id).strip("'") or "Order"
    return title[:31]


def _workbook(doc: OrderDocument) -> Workbook:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = _sheet_title(doc)
    bold = Font(bold=True)
    ws.append(["Purchase order"])
    ws["A1"].font = Font(bold=True, size=14)
    supplier = doc.supplier_id + (f" — {doc.supplier_name}" if doc.supplier_name else "")
    heading: list[tuple[str, Any]] = [
        ("Supplier", supplier),
        ("Deliver to", doc.location_id),
        ("Order date", doc.as_of),
        ("Reference", doc.po_key),
        ("Currency", doc.currency or ""),
        ("Expected delivery", doc.expected_date or ""),
    ]
    for label, value in heading:
        ws.append([label, value])
        row = ws.max_row
        ws.cell(row, 1).font = bold
        if isinstance(value, date):
            ws.cell(row, 2).number_format = _DATE
            ws.cell(row, 2).alignment = Alignment(horizontal="left")
    ws.append([])
    ws.append([name for name, _ in _XLSX_TABLE])
    header_row = ws.max_row
    fill = PatternFill("solid", fgColor="DDDDDD")
    for col in range(1, len(_XLSX_TABLE) + 1):
        cell = ws.cell(header_row, col)
        cell.font = bold
        cell.fill = fill
    for line in doc.lines:
        ws.append(
            [
                line.line_no,
                line.sku,
                line.supplier_sku or "",
                line.description or "",
                line.qty,
                line.pack_size,
                line.packs,
                line.unit_price,
                line.line_value,
                line.expected_date,
            ]
        )
        row = ws.max_row
        for col in (5, 6, 7):
            ws.cell(row, col).number_format = _QTY
        for col in (8, 9):
            ws.cell(row, col).number_format = _MONEY
        ws.cell(row, 10).number_format = _DATE
    ws.append(["Total", None, None, None, None, None, None, None, doc.total, None])
    total_row = ws.max_row
    ws.cell(total_row, 1).font = bold
    ws.cell(total_row, 9).font = bold
    ws.cell(total_row, 9).number_format = _MONEY
    for col, (_, width) in enumerate(_XLSX_TABLE, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = ws.cell(header_row + 1, 1)
    stamp = datetime.combine(doc.as_of, datetime.min.time())
    wb.properties.creator = "replenish"
    wb.properties.title = f"Purchase order {doc.po_key}"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    return wb


class _FixedTimeZip(zipfile.ZipFile):
    """A ZipFile whose entries all carry one fixed timestamp (reproducible bytes)."""

    def writestr(
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: Any,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if isinstance(zinfo_or_arcname, str):
            info = zipfile.ZipInfo(zinfo_or_arcname, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zinfo_or_arcname = info
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(
        self,
        filename: Any,
        arcname: Any = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        # openpyxl writes each worksheet to a temporary file and adds it with
        # write(), which would stamp the entry with the file's mtime: two runs
        # a second apart then differed in that entry's header.
        name = arcname if arcname is not None else Path(filename).name
        self.writestr(str(name), Path(filename).read_bytes(), compress_type, compresslevel)


def write_xlsx(doc: OrderDocument, target: Path | io.BytesIO) -> None:
    """One order as an XLSX workbook (module docstring), byte-reproducible."""
    buffer = io.BytesIO()
    archive = _FixedTimeZip(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    ExcelWriter(_workbook(doc), archive).save()  # save() closes the archive
    data = buffer.getvalue()
    if isinstance(target, io.BytesIO):
        target.write(data)
    else:
        target.write_bytes(data)


def export_orders(
    orders: pd.DataFrame,
    out_dir: str | Path,
    *,
    formats: Iterable[ExportFormat | str] = (ExportFormat.xlsx,),
    plans: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    suppliers: pd.DataFrame | None = None,
) -> ExportResult:
    """Write one file per order and format into ``out_dir`` (created if needed;
    files of the same name are replaced).

    Args:
        orders: draft order lines (``Store.orders``); see
            :func:`~replenish.orders.documents.order_documents` for the
            columns and how ``plans``/``products``/``suppliers`` fill in
            pack sizes, expected dates, descriptions and supplier names.
        out_dir: the folder.
        formats: ``"csv"``, ``"xlsx"`` or both.

    Returns:
        The files written per ``po_key`` and the orders rejected with why (an
        invalid line: its order is not exported, the others are).

    Raises:
        ExportError: the folder or a file cannot be written.
        ValueError: an unknown format.
    """
    kinds = [ExportFormat(f) for f in formats]
    docs, rejected = order_documents(orders, plans=plans, products=products, suppliers=suppliers)
    result = ExportResult(rejected=dict(rejected))
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the export folder {folder}: {e.strerror or e}") from e
    used: set[str] = set()
    for doc in docs:
        for kind in kinds:
            name = order_filename(doc, kind.value)
            if name in used:
                digest = hashlib.sha256(doc.po_key.encode()).hexdigest()[:8]
                name = f"{name.rsplit('.', 1)[0]}_{digest}.{kind.value}"
            used.add(name)
            path = folder / name
            try:
                if kind is ExportFormat.csv:
                    write_csv(doc, path)
                else:
                    write_xlsx(doc, path)
            except OSError as e:
                raise ExportError(
                    f"cannot write {path} (order {doc.po_key}): {e.strerror or e}"
                ) from e
            result.files.setdefault(doc.po_key, []).append(path)
    return result
