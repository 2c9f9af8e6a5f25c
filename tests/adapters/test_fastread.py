"""The column-wise read path (replenish/sources/fastread.py) on SQLite,
PostgreSQL and MariaDB: the same values as ``pandas.read_sql`` + ``coerce``,
hostile text included, lean dtypes for the large tables."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, select, text

from replenish import model
from replenish.sources.fastread import (
    LEAN_COLUMNS,
    FrameReader,
    concat_frames,
    lean_frame,
    read_frame,
)
from replenish.sources.generic import GenericErp, write_snapshot
from replenish.sources.yaml_profile import YamlErp
from tests.factories import tiny_snapshot

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 12)
SALES = model.ERP_METADATA.tables["sales_order_lines"]
FALLBACK = "read with pandas.read_sql instead of ADBC"

#: text a CSV or a quoting bug would break, and the distinction between
#: '' and NULL (a blank order id is a missing key; a blank status is text)
HOSTILE = [
    ("SO-1", 'sku "quoted", with comma', "WH,1", "web", "shipped"),
    ("SO-2", "line\nbreak\r\nand tab\t", "WH1", "web", ""),
    ("SO-3", "unicode é€😀 中文", "WH1", "shop's", "shipped"),
    ("SO-4", "back\\slash \\N NULL", "WH1", "web", None),
    ("  ", "'; DROP TABLE sales_order_lines; --", "WH1", "web", "cancelled"),
    ("", "%s %(x)s {0} $1", "WH2", "", "shipped"),
    ("SO-7", "", "WH2", "web", "shipped"),
    ("SO-8", None, "WH2", "web", "shipped"),
]


def _hostile_lines() -> pd.DataFrame:
    rows = [
        {
            "order_id": o,
            "line_no": i + 1,
            "sku": s,
            "location_id": loc,
            "channel": ch,
            "qty": [1.5, 2.0, float("nan"), 12345.5, 0.25, -3.0, 7.0, 8.0][i],
            "ordered_at": datetime(2026, 11, 1 + i, 10, 30, 15),
            "status": st,
        }
        for i, (o, s, loc, ch, st) in enumerate(HOSTILE)
    ]
    return pd.DataFrame(rows)


def _write_hostile(url: str) -> None:
    """The generic profile's tables, the sales lines replaced by HOSTILE in a
    table without NOT NULL constraints (so that NULL can be told from '')."""
    write_snapshot(tiny_snapshot(AS_OF), url)
    loose = Table("sales_order_lines", MetaData(), *(Column(c.name, c.type) for c in SALES.c))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            SALES.drop(conn)
            loose.create(conn)
            frame = _hostile_lines()
            records = [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in frame.to_dict("records")
            ]
            conn.execute(loose.insert(), records)
    finally:
        engine.dispose()


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Lean text columns as plain pandas ``string``, to compare values."""
    lean = {
        c: frame[c].astype(object).astype("string")
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype | pd.StringDtype)
    }
    return frame.assign(**lean)


def _read(url: str, *, fast: bool, table: str = "sales_order_lines") -> pd.DataFrame:
    engine = create_engine(url)
    try:
        t = model.ERP_METADATA.tables[table]
        with engine.connect() as conn, FrameReader(conn, fast=fast) as reader:
            frame = reader.read(select(*t.c).order_by(*t.primary_key.columns), table)
        return model.coerce(table, frame, copy=False)
    finally:
        engine.dispose()


def test_hostile_text_reads_the_same_on_every_back_end(
    any_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Quotes, commas, newlines, backslashes, unicode, '' and NULL: the fast
    read gives what pandas.read_sql + coerce gives, and what was written."""
    _write_hostile(any_db_url)
    with caplog.at_level(logging.INFO, logger="replenish.sources.fastread"):
        fast = _read(any_db_url, fast=True)
    assert FALLBACK not in caplog.text  # PostgreSQL: read through ADBC
    plain = _read(any_db_url, fast=False)
    pd.testing.assert_frame_equal(fast, plain)

    want = model.coerce("sales_order_lines", _hostile_lines())
    got = _plain(fast).sort_values("line_no", ignore_index=True)
    pd.testing.assert_frame_equal(got, want.sort_values("line_no", ignore_index=True))
    by_line = got.set_index("line_no")
    assert by_line.loc[5, "order_id"] is pd.NA  # a blank key is missing
    assert by_line.loc[6, "order_id"] is pd.NA
    assert by_line.loc[2, "status"] == ""  # '' is text, not NULL
    assert by_line.loc[4, "status"] is pd.NA
    assert by_line.loc[7, "sku"] == "" and by_line.loc[8, "sku"] is pd.NA
    assert by_line.loc[6, "channel"] is pd.NA  # part of the row key: blank is missing
    assert by_line.loc[1, "ordered_at"] == pd.Timestamp("2026-11-01 10:30:15")


def test_lean_dtypes_on_every_back_end(any_db_url: str) -> None:
    """The large tables' text columns: sorted categoricals, Arrow-backed order ids."""
    _write_hostile(any_db_url)
    frame = _read(any_db_url, fast=True)
    for col, how in LEAN_COLUMNS["sales_order_lines"].items():
        dtype = frame[col].dtype
        if how == "category":
            assert isinstance(dtype, pd.CategoricalDtype), col
            cats = list(dtype.categories)
            assert cats == sorted(cats) and all(isinstance(c, str) for c in cats), col
        else:
            assert isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow", col
    # the small tables keep plain strings
    assert str(_read(any_db_url, fast=True, table="products")["sku"].dtype) == "string"


def test_sku_filter_with_quotes_is_bound_not_spliced(any_db_url: str) -> None:
    """SKU filters are user input: quotes, semicolons and backslashes select
    exactly those SKUs (psycopg quotes them on PostgreSQL), nothing else runs."""
    _write_hostile(any_db_url)
    erp = GenericErp(any_db_url)
    wanted = ["'; DROP TABLE sales_order_lines; --", "back\\slash \\N NULL", "nope') OR ('1'='1"]
    snap = erp.read_snapshot(AS_OF, now=NOW, skus=wanted, history_days=60)
    got = sorted(snap.sales_order_lines["sku"].astype(object))
    assert got == sorted(wanted[:2])
    everything = erp.read_snapshot(AS_OF, now=NOW, history_days=60)
    assert len(everything.sales_order_lines) == len(HOSTILE)  # the table is still there
    erp.engine.dispose()


def _pg_probe(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE probe (id int, n numeric, n2 numeric(10,3), r real, f float8,"
                " b bigint, bo boolean, d date, ts timestamp, tz timestamptz, j jsonb,"
                " u uuid, ch char(4), v varchar(20))"
            )
        )
        conn.execute(
            text(
                "INSERT INTO probe VALUES"
                " (1, 12.50, 2.125, 0.1, 'Infinity', 9007199254740993, true, '2024-02-29',"
                "  '2024-05-01 10:00:00.123456', '2024-05-01 10:00:00+02',"
                '  \'{"en_US": "Chair", "fr_FR": "Chaise"}\','
                "  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab', 'é'),"
                " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ''),"
                " (3, 'NaN', -1.000, 1.25, '-Infinity', -1, false, '1900-01-01',"
                "  '1890-01-01 00:00', '1890-01-01 00:00+00:53:28', 'null', NULL, 'x', NULL)"
            )
        )
    engine.dispose()


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Both paths' raw frames in one form: numbers as float, timestamps as
    naive UTC, the rest as Python objects with None for missing."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if col in {"n", "n2", "r", "f", "b", "id"}:
            out[col] = pd.to_numeric(s.astype(object), errors="coerce").astype("float64")
        elif col in {"d", "ts", "tz"}:
            ts = pd.to_datetime(s, utc=True, format="mixed")
            out[col] = ts.dt.tz_localize(None).astype("datetime64[ns]")
        elif col == "bo":
            out[col] = s.astype("boolean")
        else:
            out[col] = s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out)


def test_postgres_types_read_like_psycopg(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """numeric, real, bigint, boolean, date, timestamp(tz), jsonb, uuid, char:
    the ADBC read gives what psycopg gives (jsonb parsed, timestamptz in UTC)."""
    _pg_probe(postgres_url)
    engine = create_engine(postgres_url)
    query = text("SELECT * FROM probe ORDER BY id")
    with engine.connect() as conn:
        with caplog.at_level(logging.INFO, logger="replenish.sources.fastread"):
            fast = read_frame(conn, query)
        assert FALLBACK not in caplog.text
        plain = pd.read_sql(query, conn)
    engine.dispose()
    pd.testing.assert_frame_equal(_comparable(fast), _comparable(plain))
    assert fast.loc[0, "r"] == 0.1  # a real as PostgreSQL prints it
    assert fast.loc[0, "j"] == {"en_US": "Chair", "fr_FR": "Chaise"}
    assert fast.loc[0, "tz"] == pd.Timestamp("2024-05-01 08:00:00", tz="UTC")
    # numeric into a contract text column keeps its digits, like str(Decimal)
    with engine.connect() as conn:
        as_text = read_frame(
            conn, text("SELECT n AS supplier_id FROM probe ORDER BY id"), "suppliers"
        )
    engine.dispose()
    assert as_text["supplier_id"].tolist()[0] == "12.50"


def test_postgres_out_of_range_dates_read_as_missing(postgres_url: str) -> None:
    """infinity and years pandas cannot hold are missing (the gate names the
    row), where psycopg fails the whole read."""
    engine = create_engine(postgres_url)
    query = text(
        "SELECT * FROM (VALUES (1, 'infinity'::date, '3000-01-01'::timestamp,"
        " '-infinity'::timestamptz), (2, '2024-01-01', '2024-01-01 12:00', NULL))"
        " AS v(id, d, ts, tz) ORDER BY id"
    )
    with engine.connect() as conn:
        frame = read_frame(conn, query)
    engine.dispose()
    assert frame["d"].isna().tolist() == [True, False]
    assert frame["ts"].isna().tolist() == [True, False]
    assert frame["tz"].isna().all()
    assert frame.loc[1, "ts"] == pd.Timestamp("2024-01-01 12:00")


def test_postgres_unmapped_type_falls_back_to_read_sql(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A column type the fast path does not map (interval) is read by
    pandas.read_sql instead: same result, logged."""
    engine = create_engine(postgres_url)
    query = text("SELECT 1 AS id, interval '1 day' AS span, 'x' AS sku")
    with engine.connect() as conn:
        with caplog.at_level(logging.INFO, logger="replenish.sources.fastread"):
            frame = read_frame(conn, query, "stock_history")
        plain = pd.read_sql(query, conn)
    engine.dispose()
    assert FALLBACK in caplog.text and "span" in caplog.text
    assert frame["span"].tolist() == plain["span"].tolist()
    assert isinstance(frame["sku"].dtype, pd.CategoricalDtype)  # lean all the same


def test_yaml_query_with_comment_and_percent_on_postgres(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A profile query ending in a comment, with a literal % and bound
    parameters, reads through ADBC and equals the generic read."""
    write_snapshot(tiny_snapshot(AS_OF), postgres_url)
    queries = {
        name: f"SELECT {', '.join(cols)} FROM {name}"
        for name, cols in model.CONTRACT.items()
        if name in model.REQUIRED_TABLES
    }
    queries["sales_order_lines"] = (
        "SELECT order_id, line_no, sku, location_id, channel, qty, ordered_at, status\n"
        "FROM sales_order_lines\n"
        "WHERE sku LIKE '%-%' AND ordered_at >= :start  -- the window's start\n"
        "  AND (CAST(:end AS timestamp) IS NULL OR ordered_at < :end) -- and its end"
    )
    profile = tmp_path / "p.yaml"
    body = "\n".join(
        f"  {name}: |\n" + "\n".join(f"    {line}" for line in sql.splitlines())
        for name, sql in queries.items()
    )
    profile.write_text(f"name: probe\nqueries:\n{body}\n", encoding="utf-8")
    erp = YamlErp(postgres_url, profile)
    with caplog.at_level(logging.INFO, logger="replenish.sources.fastread"):
        got = erp.read_snapshot(AS_OF, now=NOW).sales_order_lines
    assert FALLBACK not in caplog.text
    want = GenericErp(postgres_url).read_snapshot(AS_OF, now=NOW).sales_order_lines
    assert len(got) == len(want) > 0
    keys = ["order_id", "line_no"]
    pd.testing.assert_frame_equal(
        _plain(got).sort_values(keys, ignore_index=True),
        _plain(want).sort_values(keys, ignore_index=True),
    )
    erp.engine.dispose()


# ------------------------------------------------------------------ coerce and lean frames


def test_coerce_keeps_lean_columns_lean_and_drops_blank_keys() -> None:
    """A categorical stays a categorical (its blank key categories removed),
    Arrow strings stay Arrow strings; coerce(copy=False) shares the columns
    already in contract form instead of copying them."""
    raw = pd.DataFrame(
        {
            "order_id": pd.array(["A", "  ", "\u3000", None, "B"], dtype="string[pyarrow]"),
            "line_no": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
            "sku": pd.Categorical(["x", "y", "x", None, " "]),
            "location_id": pd.Categorical(["W", "W", "W", "W", "W"]),
            "channel": pd.Categorical(["web", " ", "web", "web", "web"]),
            "qty": [1.0, 2.0, np.inf, 4.0, 5.0],
            "ordered_at": pd.to_datetime(["2026-11-01"] * 5),
            "status": pd.Categorical(["ok", "", "ok", "ok", "ok"]),
        }
    )
    out = model.coerce("sales_order_lines", raw, copy=False)
    assert isinstance(out["sku"].dtype, pd.CategoricalDtype)
    assert out["sku"].tolist()[4] == " "  # not a row key of a sales line
    assert out["channel"].isna().tolist() == [False, True, False, False, False]  # a key
    assert out["order_id"].dtype.storage == "pyarrow"
    assert out["order_id"].isna().tolist() == [False, True, True, True, False]
    assert out["status"].tolist()[1] == ""
    assert np.isnan(out["qty"].iloc[2])
    assert np.shares_memory(out["ordered_at"].to_numpy(), raw["ordered_at"].to_numpy())
    copied = model.coerce("sales_order_lines", raw)
    assert not np.shares_memory(copied["ordered_at"].to_numpy(), raw["ordered_at"].to_numpy())
    pd.testing.assert_frame_equal(out, copied)
    # the same values as the plain-string path
    plain = model.coerce(
        "sales_order_lines", raw.astype({c: object for c in LEAN_COLUMNS["sales_order_lines"]})
    )
    pd.testing.assert_frame_equal(_plain(out), plain)


def test_coerce_numbers_as_categories_become_strings() -> None:
    frame = pd.DataFrame({"sku": pd.Categorical([12, 3, None]), "location_id": ["W", "W", "W"]})
    out = model.coerce("stock_history", frame)
    assert out["sku"].astype(object).tolist()[:2] == ["12", "3"]
    assert out["sku"].isna().tolist() == [False, False, True]


def test_coerce_out_of_range_datetime64_is_missing() -> None:
    frame = pd.DataFrame(
        {"as_of": np.array(["2024-01-01T00:00", "3000-01-01T00:00"], dtype="datetime64[us]")}
    )
    out = model.coerce("stock_levels", frame)
    assert out["as_of"].dtype == "datetime64[ns]"
    assert out["as_of"].isna().tolist() == [False, True]


def test_lean_frame_and_concat_keep_categoricals() -> None:
    """Plain string parts (the cache) and lean parts (a read) join without
    falling back to Python objects; categories end up sorted."""
    lean = lean_frame(
        "sales_order_lines",
        pd.DataFrame({"order_id": ["1", "2"], "sku": ["b", "a"], "qty": [1.0, 2.0]}),
    )
    assert isinstance(lean["sku"].dtype, pd.CategoricalDtype)
    assert lean["order_id"].dtype.storage == "pyarrow"
    cache = pd.DataFrame(
        {
            "order_id": pd.array(["3", None], dtype="string"),
            "sku": pd.array(["c", None], dtype="string"),
            "qty": [3.0, 4.0],
        }
    )
    both = concat_frames("sales_order_lines", [lean, cache])
    assert list(both["sku"].cat.categories) == ["a", "b", "c"]
    assert both["sku"].astype(object).tolist()[:3] == ["b", "a", "c"]
    assert both["sku"].isna().tolist() == [False, False, False, True]
    assert both["order_id"].dtype.storage == "pyarrow"
    # a column of numbers is left for coerce to turn into strings
    numbers = lean_frame("returns", pd.DataFrame({"sku": [1, 2]}))
    assert numbers["sku"].dtype == "int64"


def test_empty_and_many_batch_reads_keep_lean_dtypes(postgres_url: str) -> None:
    """No row: the lean dtypes all the same; many batches (ADBC's are a few MB):
    one categorical whose codes match the values read row by row."""
    write_snapshot(tiny_snapshot(AS_OF), postgres_url)
    engine = create_engine(postgres_url)
    many = text(
        "SELECT 'SO' || i AS order_id, 'SKU-' || (i % 997) AS sku,"
        " CASE WHEN i % 5 = 0 THEN NULL ELSE 'WH' || (i % 3) END AS location_id"
        " FROM generate_series(1, 300000) AS i ORDER BY i"
    )
    with engine.connect() as conn, FrameReader(conn) as reader:
        empty = reader.read(select(*SALES.c).where(SALES.c.qty < 0).limit(0), "sales_order_lines")
        frame = reader.read(many, "sales_order_lines")
        plain = pd.read_sql(many, conn)
    engine.dispose()
    assert len(empty) == 0 and isinstance(empty["sku"].dtype, pd.CategoricalDtype)
    assert isinstance(frame["sku"].dtype, pd.CategoricalDtype)
    assert len(frame["sku"].cat.categories) == 997
    assert frame["sku"].astype(object).tolist() == plain["sku"].tolist()
    assert frame["location_id"].isna().sum() == 60000
    assert frame["location_id"].astype(object).where(
        frame["location_id"].notna(), None
    ).tolist() == (plain["location_id"].tolist())
    assert frame["order_id"].tolist() == plain["order_id"].tolist()
