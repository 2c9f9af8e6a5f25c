"""The generic ERP profile read and written on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from replenish import model
from replenish.errors import ConfigurationError, ContractError, SourceUnavailable
from replenish.sources import open_erp
from replenish.sources.fastread import LEAN_COLUMNS
from replenish.sources.generic import GenericErp, write_snapshot
from tests.factories import tiny_snapshot

AS_OF = date(2026, 11, 20)


def _sorted(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    keys = list(model.KEYS[table])
    return frame.sort_values(keys).reset_index(drop=True)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its lean text columns (categoricals, Arrow strings) as
    plain pandas ``string``, to compare values."""
    lean = {
        c: frame[c].astype(object).astype("string")
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype | pd.StringDtype)
    }
    return frame.assign(**lean)


def test_round_trip_every_table(any_db_url: str) -> None:
    """What is written in the contract comes back identical, on every back end;
    the large tables' text columns held lean (the same dtypes on every back end)."""
    snap = tiny_snapshot(AS_OF)
    counts = write_snapshot(snap, any_db_url)
    assert counts["sales_order_lines"] == 121
    back = GenericErp(any_db_url).read_snapshot(AS_OF, now=datetime(2026, 11, 20, 12))
    for name in model.REQUIRED_TABLES:
        got, want = _sorted(getattr(back, name), name), _sorted(getattr(snap, name), name)
        assert list(got.columns) == list(model.CONTRACT[name]), name
        for col, how in LEAN_COLUMNS.get(name, {}).items():
            expected = "category" if how == "category" else "string"
            assert str(got[col].dtype) == expected, (name, col)
            if how == "arrow":
                assert got[col].dtype.storage == "pyarrow", (name, col)
        pd.testing.assert_frame_equal(_plain(got), want, check_dtype=True, obj=name)


def test_replay_reads_only_what_was_known(sqlite_url: str) -> None:
    """A past as-of date reads no sales line after it; the history window applies."""
    write_snapshot(tiny_snapshot(AS_OF), sqlite_url)
    erp = GenericErp(sqlite_url)
    past = AS_OF - timedelta(days=10)
    snap = erp.read_snapshot(past, history_days=20, now=datetime(2026, 11, 20, 12))
    sold = snap.sales_order_lines["ordered_at"]
    assert sold.max() < datetime.combine(past + timedelta(days=1), datetime.min.time())
    assert sold.min() >= datetime.combine(past - timedelta(days=20), datetime.min.time())
    assert set(snap.sales_order_lines["sku"]) == {"A-1", "B-2"}


def test_sku_filter_is_parameterised(sqlite_url: str) -> None:
    write_snapshot(tiny_snapshot(AS_OF), sqlite_url)
    erp = GenericErp(sqlite_url)
    snap = erp.read_snapshot(AS_OF, skus=["B-2", "x' OR '1'='1"], now=datetime(2026, 11, 21))
    assert set(snap.products["sku"]) == {"B-2"}
    assert set(snap.sales_order_lines["sku"]) == {"B-2"}


def test_missing_table_is_named(sqlite_url: str) -> None:
    write_snapshot(tiny_snapshot(AS_OF), sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as c:
        c.execute(text("DROP TABLE returns"))
    engine.dispose()
    with pytest.raises(ContractError, match="table 'returns' is missing"):
        GenericErp(sqlite_url).read_snapshot(AS_OF)


def test_missing_column_is_named(postgres_url: str) -> None:
    write_snapshot(tiny_snapshot(AS_OF), postgres_url)
    engine = create_engine(postgres_url)
    with engine.begin() as c:
        c.execute(text("ALTER TABLE products DROP COLUMN unit_cost"))
    engine.dispose()
    with pytest.raises(ContractError, match="table 'products' has no column 'unit_cost'"):
        GenericErp(postgres_url).read_snapshot(AS_OF)


def test_unreachable_server_is_transient_and_hides_password() -> None:
    erp = open_erp("postgresql+psycopg://u:s3cret@127.0.0.1:1/erp")
    with pytest.raises(SourceUnavailable) as info:
        erp.read_snapshot(AS_OF)
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_missing_sqlite_file_and_bad_url_are_configuration_errors(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match="SQLite file not found"):
        open_erp("sqlite:////nonexistent/dir/erp.db")
    with pytest.raises(ConfigurationError, match="not a database URL"):
        open_erp("definitely not a url")
    with pytest.raises(ConfigurationError, match="unknown ERP profile 'sap'"):
        open_erp("sqlite://", profile="sap")


def test_stock_history_window_includes_its_first_day(any_db_url: str) -> None:
    """A DATE column is compared with dates (SQLite compares text: a datetime
    bound would drop the first day)."""
    from replenish.demo import generate_demo

    as_of = date(2026, 5, 10)
    snap = generate_demo(as_of, seed=5, n_skus=20, days=90)
    write_snapshot(snap, any_db_url)
    back = GenericErp(any_db_url).read_snapshot(
        as_of, history_days=90, now=datetime(2026, 5, 10, 12)
    )
    first = pd.Timestamp(as_of - timedelta(days=90))
    want = snap.stock_history[snap.stock_history["date"] >= first]
    assert len(back.stock_history) == len(want)
    assert back.stock_history["date"].min() == first


def test_optional_columns_and_tables_may_be_absent(any_db_url: str) -> None:
    """An ERP from before order_days/order_cost and promotions still reads: the
    optional columns come back as NULL, the optional tables as empty frames."""
    write_snapshot(tiny_snapshot(AS_OF), any_db_url)
    engine = create_engine(any_db_url)
    with engine.begin() as c:
        c.execute(text("ALTER TABLE suppliers DROP COLUMN order_days"))
        c.execute(text("ALTER TABLE suppliers DROP COLUMN order_cost"))
        c.execute(text("DROP TABLE promotions"))
        c.execute(text("DROP TABLE stock_history"))
    engine.dispose()
    snap = GenericErp(any_db_url).read_snapshot(AS_OF, now=datetime(2026, 11, 20, 12))
    assert list(snap.suppliers.columns) == list(model.CONTRACT["suppliers"])
    assert snap.suppliers["order_days"].isna().all() and len(snap.suppliers) == 2
    assert snap.promotions.empty and snap.stock_history.empty


def test_replay_reads_no_po_line_without_its_header(sqlite_url: str) -> None:
    """A PO placed after a past as-of date is unknown then: neither its
    header nor its lines are read."""
    write_snapshot(tiny_snapshot(AS_OF), sqlite_url)
    past = AS_OF - timedelta(days=10)  # PO-2 was ordered 3 days before AS_OF
    snap = GenericErp(sqlite_url).read_snapshot(past, now=datetime(2026, 11, 20, 12))
    assert set(snap.purchase_orders["po_id"]) == {"PO-1"}
    assert set(snap.purchase_order_lines["po_id"]) == {"PO-1"}
