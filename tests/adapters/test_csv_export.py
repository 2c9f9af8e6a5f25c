"""The CSV channel import: hand-made exports written to disk, every rule with
its reason and row number, file variants (latin-1, semicolons, gzip), mapping
errors, and one run on the real shared Online Retail file."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from replenish import model
from replenish.errors import ConfigurationError, SourceError
from replenish.sources.csv_export import (
    REJECTED_COLUMNS,
    ExportMapping,
    load_mapping,
    read_export,
)

REPO = Path(__file__).parents[2]
MAPPING = REPO / "config" / "channels" / "online_retail.yaml"
SCENARIO = REPO / "config" / "scenarios" / "online_retail.yaml"
REAL_FILE = REPO.parent / "shared" / "data" / "online_retail_2010_2011.csv.gz"

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
# row numbers count the header as row 1: the first data row is row 2
ROWS = [
    "536365,85123A,WHITE HEART HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 2
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",  # 3
    "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.00,17850.0,United Kingdom",  # 4 non-product
    "C536379,85123a,WHITE HEART HOLDER,-2,2010-12-01 09:41:00,2.55,14527.0,EIRE",  # 5 cancelled
    "536380,22139,check,-10,2010-12-01 09:45:00,0,,United Kingdom",  # 6 adjustment
    "536381,22140,found,5,2010-12-01 09:50:00,0,,United Kingdom",  # 7 zero price
    "536382,22141,CHRISTMAS TREE,3,2011-07-01 10:00:00,1.45,,United Kingdom",  # 8 no customer
    "536382,22141,CHRISTMAS TREE,3,2011-07-01 10:00:00,1.45,,United Kingdom",  # 9 duplicate
    "536383,gift_0001_10,Gift Voucher £10.00,1,2010-12-01 10:05:00,8.33,,United Kingdom",  # 10
    "536384,22143,RED SPOT MUG,1,2010-13-45 10:00:00,1.00,12345.0,France",  # 11 bad date
    "536385,22144,BLUE SPOT MUG,abc,2010-12-01 10:10:00,1.00,12345.0,France",  # 12 bad qty
    "A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom",  # 13 non-product
]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding=encoding, newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding=encoding, newline="")
    return path


def _export(tmp_path: Path, name: str = "export.csv", rows: list[str] | None = None) -> Path:
    return _write(tmp_path / name, "\n".join([HEADER, *(ROWS if rows is None else rows)]) + "\n")


def _mapping(**changes: Any) -> ExportMapping:
    """The shipped Online Retail mapping with some sections changed."""
    data = load_mapping(MAPPING).model_dump()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return ExportMapping.model_validate(data)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return read_export(_export(tmp_path_factory.mktemp("csv")), load_mapping(MAPPING))


def test_lines_are_contract_rows_with_status(sample: Any) -> None:
    lines = sample.lines
    assert list(lines.columns) == list(model.CONTRACT["sales_order_lines"])
    assert {c: str(t) for c, t in lines.dtypes.items()} == model.CONTRACT["sales_order_lines"]
    got = lines[["order_id", "line_no", "sku", "qty", "status"]].astype(object)
    assert got.values.tolist() == [
        ["536365", 1, "85123A", 6.0, "shipped"],
        ["536365", 2, "71053", 6.0, "shipped"],
        # cancelled: kept, quantity positive, code upper-cased like its product
        ["C536379", 1, "85123A", 2.0, "cancelled"],
        ["536382", 1, "22141", 3.0, "shipped"],
    ]
    assert set(lines["channel"]) == {"online_retail"}
    assert set(lines["location_id"]) == {"UK"}


def test_line_numbers_count_every_row_of_the_order(sample: Any) -> None:
    """POST is line 3 of 536365: rejected, but the next line would be 4."""
    rejected = sample.rejected.set_index("row")
    assert rejected.loc[4, "value"] == "POST"
    assert sample.lines["line_no"].tolist() == [1, 2, 1, 1]


def test_dates_are_naive_utc(sample: Any) -> None:
    """Winter UK time is UTC; a July 10:00 in London is 09:00 UTC."""
    at = dict(zip(sample.lines["order_id"], sample.lines["ordered_at"], strict=False))
    assert at["536365"] == pd.Timestamp("2010-12-01 08:26:00")
    assert at["536382"] == pd.Timestamp("2011-07-01 09:00:00")


def test_extras_are_aligned(sample: Any) -> None:
    extras = sample.extras
    assert extras.index.equals(sample.lines.index)
    assert extras["row"].tolist() == [2, 3, 5, 8]
    assert extras["unit_price"].tolist() == [2.55, 3.39, 2.55, 1.45]
    # "17850.0" went through a float: the suffix is stripped
    assert extras["customer_id"].tolist()[:3] == ["17850", "17850", "14527"]
    assert pd.isna(extras["customer_id"].iloc[3])
    assert extras["description"].iloc[1] == "WHITE METAL LANTERN"
    assert extras["country"].tolist() == ["United Kingdom"] * 2 + ["EIRE", "United Kingdom"]


def test_every_rejected_row_has_its_reason(sample: Any) -> None:
    rejected = sample.rejected
    assert list(rejected.columns) == REJECTED_COLUMNS
    got = {
        row: (category, field, value) for row, category, field, value in
        rejected[["row", "category", "field", "value"]].itertuples(index=False)
    }  # fmt: skip
    assert got == {
        4: ("non_product", "sku", "POST"),
        6: ("adjustment", "qty", "-10"),
        7: ("zero_price", "unit_price", "0"),
        9: ("duplicate", "row", "536382 22141"),
        10: ("non_product", "sku", "gift_0001_10"),
        11: ("invalid", "ordered_at", "2010-13-45 10:00:00"),
        12: ("invalid", "qty", "abc"),
        13: ("non_product", "sku", "B"),
    }
    reason = dict(zip(rejected["row"], rejected["reason"], strict=True))
    assert "rules.non_product.codes" in reason[4]
    assert "gift_" in reason[10] and "pattern" in reason[10]
    assert "negative quantity without a cancellation marker" in reason[6]
    assert "zero unit price" in reason[7] and "free sample" in reason[7]
    assert reason[9] == "identical to an earlier line of the same order: row 8"
    assert "%Y-%m-%d %H:%M:%S" in reason[11]
    assert reason[12] == "quantity is not a number"


def test_report_counts_every_row_once(sample: Any) -> None:
    r = sample.report
    assert r.counts() == {
        "lines_read": 12,
        "imported": 4,
        "shipped": 3,
        "cancelled": 1,
        "rejected": 8,
        "invalid": 2,
        "non_product": 3,
        "adjustments": 1,
        "zero_price": 1,
        "duplicates": 1,
        "missing_customer": 1,
        "orders": 3,
        "skus": 3,
    }
    parts = ("shipped", "cancelled", "invalid", "non_product", "adjustments", "zero_price")
    assert sum(getattr(r, k) for k in parts) + r.duplicates == r.lines_read
    assert "cancelled" in r.text() and "12" in r.text()


def test_rules_can_be_switched_off(tmp_path: Path) -> None:
    mapping = _mapping(
        rules__adjustments__zero_price=False,
        rules__duplicates__identical_lines=False,
        rules__non_product__patterns=[],
    )
    result = read_export(_export(tmp_path), mapping)
    assert set(result.extras["row"]) == {2, 3, 5, 7, 8, 9, 10}
    assert result.report.zero_price == result.report.duplicates == 0


def test_negative_quantities_as_cancellations(tmp_path: Path) -> None:
    """An export without a cancellation marker: every negative line is a
    cancellation, none an adjustment."""
    mapping = _mapping(
        rules__cancellation__order_id_prefixes=[], rules__cancellation__negative_qty=True
    )
    result = read_export(_export(tmp_path), mapping)
    cancelled = result.lines[result.lines["status"] == "cancelled"]
    assert cancelled["order_id"].tolist() == ["C536379", "536380"]
    assert cancelled["qty"].tolist() == [2.0, 10.0]
    assert result.report.adjustments == 0


def test_line_numbers_from_a_column_and_duplicate_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "lines.csv",
        "order,line,sku,qty,date,status\n"
        "A1,1,X,2,2024-05-01T10:00:00,paid\n"
        "A1,2,Y,1,2024-05-01T10:00:00,paid\n"
        "A1,1,Z,5,2024-05-01T11:00:00,paid\n"  # same (order, line) as row 2
        "A2,x,X,1,2024-05-02T10:00:00,paid\n"  # not a line number
        "A3,1,X,4,2024-05-02T10:00:00,Refunded\n",  # cancelled by its status
    )
    mapping = ExportMapping.model_validate(
        {
            "channel": "shop",
            "location_id": "WH1",
            "columns": {
                "order_id": "order",
                "line_no": "line",
                "sku": "sku",
                "qty": "qty",
                "ordered_at": "date",
                "status": "status",
            },
            "rules": {"cancellation": {"status_values": ["refunded", "cancelled"]}},
        }
    )
    result = read_export(path, mapping)
    lines = result.lines
    assert lines[["order_id", "line_no", "sku", "status"]].astype(object).values.tolist() == [
        ["A1", 1, "X", "shipped"],
        ["A1", 2, "Y", "shipped"],
        ["A3", 1, "X", "cancelled"],
    ]
    rej = result.rejected.set_index("row")
    assert rej.loc[4, "category"] == "duplicate"
    assert rej.loc[4, "value"] == "A1/1"
    assert rej.loc[4, "reason"].endswith("row 2")
    assert rej.loc[5, ["category", "field"]].tolist() == ["invalid", "line_no"]
    assert result.report.missing_customer is None  # no customer column mapped
    assert result.extras["customer_id"].isna().all()


def test_latin1_semicolons_decimal_comma_sniffed(tmp_path: Path) -> None:
    """A Windows export: latin-1, ';' (sniffed), decimal comma, day-first dates."""
    text = (
        "Bestellung;Artikel;Bezeichnung;Menge;Datum;Preis\n"
        "1001;K-1;Café au lait Tasse;3;01.12.2024 09:30;2,50\n"
        "1001;K-2;Crème Brûlée Förmchen;1;01.12.2024 09:30;12,00\n"
    )
    path = _write(tmp_path / "export.csv", text, encoding="latin-1")
    data = {
        "channel": "marketplace",
        "file": {"encoding": "latin-1", "delimiter": None, "decimal": ","},
        "columns": {
            "order_id": "Bestellung",
            "sku": "Artikel",
            "qty": "Menge",
            "ordered_at": "Datum",
            "unit_price": "Preis",
            "description": "Bezeichnung",
        },
        "dates": {"format": "%d.%m.%Y %H:%M", "timezone": "Europe/Berlin"},
    }
    result = read_export(path, ExportMapping.model_validate(data))
    assert result.report.imported == 2 and result.report.rejected == 0
    assert result.extras["description"].tolist() == ["Café au lait Tasse", "Crème Brûlée Förmchen"]
    assert result.extras["unit_price"].tolist() == [2.5, 12.0]
    assert result.lines["ordered_at"].iloc[0] == pd.Timestamp("2024-12-01 08:30:00")
    assert set(result.lines["location_id"]) == {"default"}

    data["file"] = {"encoding": "utf-8", "delimiter": ";", "decimal": ","}
    with pytest.raises(ConfigurationError, match=r"cannot decode as utf-8 \(file.encoding"):
        read_export(path, ExportMapping.model_validate(data))


def test_gzip_reads_like_plain(tmp_path: Path, sample: Any) -> None:
    text = "\n".join([HEADER, *ROWS]) + "\n"
    gz = _write(tmp_path / "export.csv.gz", text)
    result = read_export(gz, load_mapping(MAPPING))
    pd.testing.assert_frame_equal(result.lines, sample.lines)
    pd.testing.assert_frame_equal(result.rejected, sample.rejected)
    assert result.report.counts() == sample.report.counts()


def test_utf8_bom_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.csv", "\n".join([HEADER, ROWS[0]]) + "\n", encoding="utf-8-sig")
    mapping = _mapping(file__encoding="utf-8-sig")
    assert read_export(path, mapping).report.imported == 1


def test_empty_export(tmp_path: Path) -> None:
    result = read_export(_export(tmp_path, rows=[]), load_mapping(MAPPING))
    assert result.lines.empty and result.rejected.empty
    assert result.report.lines_read == 0 and result.report.first_ordered_at is None


def test_mapping_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MAPPING.read_text().replace("ordered_at: InvoiceDate", "ordred_at: X"))
    with pytest.raises(ConfigurationError, match=r"bad\.yaml: columns\.ordered_at: Field required"):
        load_mapping(bad)
    bad.write_text("channel: shop\ncolumns: [1, 2\n")
    with pytest.raises(ConfigurationError, match=r"bad\.yaml: not valid YAML \(line 3\)"):
        load_mapping(bad)
    bad.write_text(
        "channel: shop\ncolumns: {order_id: a, sku: b, qty: c, ordered_at: d}\n"
        "rules: {non_product: {patterns: ['(']}}\n"
    )
    with pytest.raises(ConfigurationError, match=r"rules\.non_product\.patterns: bad regular"):
        load_mapping(bad)
    with pytest.raises(ConfigurationError, match="file not found"):
        load_mapping(tmp_path / "missing.yaml")


def test_missing_column_or_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "InvoiceNo,StockCode\n1,A\n")
    with pytest.raises(ConfigurationError, match=r"no column 'Quantity' \(columns\.qty in"):
        read_export(path, load_mapping(MAPPING))
    with pytest.raises(ConfigurationError, match="file not found"):
        read_export(tmp_path / "nope.csv", load_mapping(MAPPING))
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(SourceError, match="cannot read"):
        read_export(corrupt, load_mapping(MAPPING))


# ----------------------------------------------------------------------- CLI


def test_cli_import_and_write_an_erp(tmp_path: Path) -> None:
    """`replenish import-csv` prints the report, builds the shipped scenario
    around the sales and writes a generic-profile ERP that reads back."""
    from typer.testing import CliRunner

    from replenish.cli import app
    from replenish.sources.generic import GenericErp

    url = f"sqlite:///{tmp_path / 'erp.db'}"
    rejected = tmp_path / "rejected.csv"
    args = ["import-csv", "--file", str(_export(tmp_path)), "--mapping", str(MAPPING)]
    extra = ["--scenario", str(SCENARIO), "--erp", url, "--rejected", str(rejected)]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    assert re.search(r"lines read +12\n", result.output)
    assert re.search(r"zero price +1 ", result.output)
    assert f"replenish plan --erp {url} --as-of 2011-07-02" in result.output
    assert pd.read_csv(rejected)["row"].tolist() == [4, 6, 7, 9, 10, 11, 12, 13]
    erp = GenericErp(url)
    erp.check_contract()
    snap = erp.read_snapshot(date(2011, 7, 2), history_days=400, now=datetime(2011, 7, 2, 12))
    erp.engine.dispose()
    assert len(snap.sales_order_lines) == 4
    assert sorted(snap.products["sku"]) == ["22141", "71053", "85123A"]
    assert set(snap.stock_levels["location_id"]) == {"UK"}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLENISH_")}
    return subprocess.run(
        [sys.executable, "-m", "replenish.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    export = str(_export(tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_text(MAPPING.read_text().replace("qty: Quantity", "qty: Menge"))
    cases = [
        (["--mapping", str(MAPPING), "--erp", "sqlite:///x.db"], "--erp needs --scenario"),
        (["--mapping", str(bad)], "no column 'Menge' (columns.qty in the mapping)"),
        (["--mapping", str(tmp_path / "none.yaml")], "none.yaml: file not found"),
    ]
    for args, message in cases:
        result = _cli(tmp_path, "import-csv", "--file", export, *args)
        assert result.returncode == 2, result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0], result.stderr


# ----------------------------------------------------------------- real data

#: What the shipped mapping finds in the real file (docs/real-data.md).
REAL_COUNTS = {
    "lines_read": 541_909,
    "imported": 531_208,
    "shipped": 522_540,
    "cancelled": 8_668,
    "rejected": 10_701,
    "invalid": 0,
    "non_product": 2_946,
    "adjustments": 1_336,
    "zero_price": 1_162,
    "duplicates": 5_257,
    "missing_customer": 131_549,
    "orders": 23_195,
    "skus": 3_813,
}


@pytest.mark.slow
@pytest.mark.skipif(
    not REAL_FILE.is_file(),
    reason=f"the shared Online Retail file is not at {REAL_FILE} (../shared/data of the repo)",
)
def test_real_online_retail_file() -> None:
    """The documented figures, exactly (the import time is not asserted)."""
    result = read_export(REAL_FILE, load_mapping(MAPPING))
    assert result.report.counts() == REAL_COUNTS
    assert result.report.first_ordered_at == pd.Timestamp("2010-12-01 08:26:00")
    assert result.report.last_ordered_at == pd.Timestamp("2011-12-09 12:50:00")
    rejected = result.rejected
    by = rejected.groupby(["category", "field"]).size().to_dict()
    assert by == {
        ("adjustment", "qty"): 1_336,
        ("duplicate", "row"): 5_257,
        ("non_product", "sku"): 2_946,
        ("zero_price", "unit_price"): 1_162,
    }
    top = rejected[rejected["category"] == "non_product"]["value"].str.upper().value_counts()
    assert top.head(3).to_dict() == {"POST": 1_256, "DOT": 710, "M": 572}
    lines = result.lines
    assert not lines.duplicated(["channel", "order_id", "line_no"]).any()
    assert (lines["qty"] > 0).all()
    assert lines.loc[lines["status"] == "cancelled", "order_id"].str.startswith("C").all()
    assert (result.extras["unit_price"] > 0).all()
