"""The demand cache: sales lines and returns per source, written in bulk.

What :class:`replenish.store.Store` uses to keep ``sales_cache`` and
``returns_cache`` (docs/incremental.md): which rows can be cached, how a
frame becomes rows, and the one bulk upsert per back end:

* SQLite: ``executemany`` into a temporary table, then one
  ``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE``;
* PostgreSQL (psycopg 3): ``COPY`` into a temporary table, then one
  ``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE``;
* MariaDB / MySQL: ``executemany`` into a temporary table (PyMySQL sends
  multi-row statements), then ``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE``.

The batch's keys already cached are counted on the temporary table (one join
on the primary key), so the caller keeps each source's row count without
counting the table (a full count of millions of rows, several a night).

Timestamps are written as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, the form
SQLAlchemy itself stores in SQLite (so range queries compare like with like)
and one every server parses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Connection, String, Table, bindparam, delete, select, update

from replenish import model
from replenish.errors import StoreError
from replenish.store.models import ReturnCacheLine, SalesCacheLine, SourceWatermark

#: The source name of the ERP's own sales lines and returns.
ERP_SOURCE: Final = "erp"

SALES_TABLE: Final[Table] = SalesCacheLine.__table__  # type: ignore[assignment]
RETURNS_TABLE: Final[Table] = ReturnCacheLine.__table__  # type: ignore[assignment]
WATERMARKS_TABLE: Final[Table] = SourceWatermark.__table__  # type: ignore[assignment]
#: contract table -> cache table
CACHE_TABLES: Final[dict[str, Table]] = {
    "sales_order_lines": SALES_TABLE,
    "returns": RETURNS_TABLE,
}
#: contract table -> the date column a read window and ``replace_from`` apply to
DATE_COLUMNS: Final[dict[str, str]] = {"sales_order_lines": "ordered_at", "returns": "returned_at"}
_CHUNK = 50_000


@dataclass(frozen=True)
class SourceState:
    """One row of ``source_watermarks`` (see :class:`replenish.store.models.SourceWatermark`)."""

    source: str
    watermark: datetime | None
    covered_from: datetime | None
    origin: str | None
    rows: int
    returns: int
    updated_at: datetime
    #: the gate's verdicts: fingerprint of its checks, the lines it validated
    verdict_rules: str | None = None
    verdicts_through: datetime | None = None
    verdicts_from: datetime | None = None
    #: the sealed columnar copy of its closed months (replenish/store/sealed.py)
    sealed_before: datetime | None = None
    seal_id: str | None = None


@dataclass
class IngestResult:
    """What one :meth:`Store.ingest` did, all in one transaction."""

    source: str
    #: sales lines and returns written (inserted or replaced)
    lines: int
    returns: int
    #: cached rows removed first (``replace_from`` or ``reset``)
    deleted_lines: int
    deleted_returns: int
    #: rows of the batch whose key came again later in it (the last one was kept)
    duplicates: int
    previous_watermark: datetime | None
    watermark: datetime | None
    #: what the source holds in the cache afterwards
    cached_lines: int
    cached_returns: int
    seconds: float
    #: the batch's ``loaded_at`` (taken once the source's rows are locked: one
    #: source's batches get increasing stamps in the order they commit)
    loaded_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def naive_utc(value: datetime | None) -> datetime | None:
    """``value`` as the store keeps timestamps: naive, in UTC when it was aware."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def key_columns(table: str) -> tuple[str, ...]:
    """The cache key of a contract table's rows, ``source`` aside."""
    return tuple(c.name for c in CACHE_TABLES[table].primary_key.columns if c.name != "source")


def uncacheable(table: str, frame: pd.DataFrame) -> pd.Series:
    """Why each row of a contract frame cannot be cached, or None when it can.

    A row needs every column of its cache key (``channel, order_id, line_no``
    for sales lines; ``order_id, sku, returned_at`` for returns) and strings
    that fit their columns (the sizes of ``replenish.model``).
    """
    reasons = pd.Series(None, index=frame.index, dtype=object)
    cache = CACHE_TABLES[table]
    keys = set(key_columns(table))
    for col in cache.columns:
        if col.name not in frame.columns:
            continue
        s = frame[col.name]
        if col.name in keys:
            missing = np.asarray(s.isna(), dtype=bool) & reasons.isna().to_numpy()
            if missing.any():
                reasons[missing] = (
                    f"{col.name} is missing (the cache key is {', '.join(sorted(keys))})"
                )
        limit = _length(col)
        if limit is None:
            continue
        too_long = _longer_than(s, limit) & reasons.isna().to_numpy()
        if too_long.any():
            text = s[too_long].astype("string")
            reasons[too_long] = text.map(
                lambda v, c=col.name, n=limit: (
                    f"{c} {v[:20]!r}... has {len(v)} characters, at most {n}"
                )
            )
    return reasons


def _longer_than(s: pd.Series, limit: int) -> npt.NDArray[np.bool_]:
    """Which values of a text column have more than ``limit`` characters,
    without a Python string a row for the lean columns: a categorical's
    categories are measured once, Arrow strings in Arrow."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = pd.Index(s.cat.categories).astype("string")
        long_cat = np.asarray((cats.str.len() > limit).fillna(False), dtype=bool)
        if not long_cat.any():
            return np.zeros(len(s), dtype=bool)
        codes = np.asarray(s.cat.codes)
        return (codes >= 0) & long_cat[np.maximum(codes, 0)]
    if getattr(s.dtype, "storage", None) == "pyarrow":
        arr = pa.chunked_array(s.array._pa_array)
        lengths = pc.fill_null(pc.greater(pc.utf8_length(arr), limit), False)
        return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=bool)
    text = s.astype("string")
    return np.asarray((text.str.len() > limit).fillna(False), dtype=bool)


def _length(col: Column[Any]) -> int | None:
    return col.type.length if isinstance(col.type, String) else None


def prepare(table: str, source: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The contract frame coerced, checked and de-duplicated on its cache key
    (the last row of a key wins); raise :class:`StoreError` naming the first
    row that cannot be cached. Returns (frame, duplicates dropped)."""
    frame = model.coerce(table, frame, copy=False)  # only read from here on
    reasons = uncacheable(table, frame)
    bad = reasons.dropna()
    if len(bad):
        label = "sales line" if table == "sales_order_lines" else "return"
        row = frame.loc[bad.index[0]]
        keys = ", ".join(f"{k}={row[k]!r}" for k in key_columns(table))
        raise StoreError(
            f"cannot cache {len(bad)} {label}(s) of source {source!r}: row {bad.index[0]} "
            f"({keys}): {bad.iloc[0]}"
        )
    repeated = np.asarray(frame.duplicated(list(key_columns(table)), keep="last"), dtype=bool)
    if not repeated.any():  # the usual case: no copy of a batch of millions of rows
        return frame, 0
    return frame[~repeated], int(repeated.sum())


def _values(s: pd.Series) -> list[Any]:
    """A column as plain Python values for a driver: None for missing,
    timestamps as text."""
    if pd.api.types.is_datetime64_any_dtype(s):
        text = np.datetime_as_string(s.to_numpy(dtype="datetime64[us]"), unit="us").tolist()
        return [None if v == "NaT" else f"{v[:10]} {v[11:]}" for v in text]
    if s.dtype == "float64":
        arr = s.to_numpy()
        out = arr.astype(object)
        out[np.isnan(arr)] = None
        return list(out.tolist())
    return list(s.astype(object).where(s.notna(), None).tolist())


def stamp(value: datetime) -> str:
    """A timestamp in the text form the cache is written with."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def rows_of(
    table: str, source: str, frame: pd.DataFrame, loaded_at: datetime, chunk: int | None = None
) -> tuple[list[str], Iterator[list[tuple[Any, ...]]]]:
    """(cache columns, the rows in chunks of ``chunk``) for a prepared
    contract frame. The rows are made one chunk at a time as they are
    written: Python tuples of a whole batch (28 M lines at 100,000 series)
    would take ~10 GB."""
    columns = [c.name for c in CACHE_TABLES[table].columns]
    size = chunk or _CHUNK

    def chunks() -> Iterator[list[tuple[Any, ...]]]:
        for start in range(0, len(frame), size):
            part = frame.iloc[start : start + size]
            n = len(part)
            values: list[list[Any]] = []
            for name in columns:
                if name == "source":
                    values.append([source] * n)
                elif name == "loaded_at":
                    values.append([stamp(loaded_at)] * n)
                elif name == "verdict":  # a new or replaced line has failed nothing yet
                    values.append([None] * n)
                else:
                    values.append(_values(part[name]))
            yield list(zip(*values, strict=True))

    return columns, chunks()


def upsert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    chunks: Iterable[Sequence[tuple[Any, ...]]],
    *,
    new_keys: bool = False,
) -> tuple[int, int]:
    """Insert the rows of ``chunks`` (lists of rows, as :func:`rows_of` makes
    them) into the cache table of ``table``; a row whose key is there already
    replaces it. ``new_keys``: the caller knows no row's key is cached (the
    source's rows were all deleted first): a plain bulk insert. In the
    caller's transaction. Returns (rows written, rows that replaced a cached
    one): the caller keeps the source's row counts from them instead of
    counting the table.

    Upserted through a temporary table (``replenish_cache_in``, dropped
    again): the batch is bulk-inserted there chunk by chunk, its keys already
    cached are counted with one join on the primary key, and one
    ``INSERT ... SELECT`` upserts it (PostgreSQL: ``COPY`` into the temporary
    table)."""
    cache = CACHE_TABLES[table]
    q = conn.dialect.identifier_preparer.quote
    name = q(cache.name)
    cols = ", ".join(q(c) for c in columns)
    key = [c.name for c in cache.primary_key.columns]
    sets = [q(c) for c in columns if c not in key]
    on_key = ", ".join(q(c) for c in key)
    backend = conn.dialect.name
    if backend not in {"sqlite", "postgresql", "mysql", "mariadb"}:
        raise StoreError(
            "the demand cache supports SQLite, PostgreSQL and MariaDB/MySQL stores, "
            f"not {backend!r}"
        )
    it = iter(chunks)
    first = next((c for c in it if len(c)), None)
    if first is None:
        return 0, 0
    todo = itertools.chain([first], it)
    if backend == "postgresql" and conn.dialect.driver == "psycopg":
        return _copy(conn, name, cols, todo, None if new_keys else (key, sets))
    marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(columns))
    written = 0
    if new_keys:
        sql = f"INSERT INTO {name} ({cols}) VALUES ({marks})"
        for rows in todo:
            conn.exec_driver_sql(sql, list(rows))
            written += len(rows)
        return written, 0
    tmp = "replenish_cache_in"
    conn.exec_driver_sql(f"DROP {'TEMPORARY ' if backend != 'sqlite' else ''}TABLE IF EXISTS {tmp}")
    if backend == "sqlite":
        conn.exec_driver_sql(f"CREATE TEMP TABLE {tmp} AS SELECT {cols} FROM {name} WHERE 0")
    else:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {tmp} LIKE {name}")
    insert_tmp = f"INSERT INTO {tmp} ({cols}) VALUES ({marks})"
    for rows in todo:
        conn.exec_driver_sql(insert_tmp, list(rows))
        written += len(rows)
    replaced = _replaced(conn, tmp, name, key)
    if backend == "sqlite":  # WHERE true: the parser's upsert-after-SELECT rule
        updates = ", ".join(f"{c} = excluded.{c}" for c in sets)
        conn.exec_driver_sql(
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {tmp} WHERE true "
            f"ON CONFLICT ({on_key}) DO UPDATE SET {updates}"
        )
    else:
        updates = ", ".join(f"{c} = VALUES({c})" for c in sets)
        conn.exec_driver_sql(
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {tmp} "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )
    conn.exec_driver_sql(f"DROP {'TEMPORARY ' if backend != 'sqlite' else ''}TABLE {tmp}")
    return written, replaced


def _replaced(conn: Connection, tmp: str, name: str, key: Sequence[str]) -> int:
    """How many rows of the temporary table ``tmp`` have a key cached in ``name``."""
    q = conn.dialect.identifier_preparer.quote
    on = " AND ".join(f"c.{q(k)} = t.{q(k)}" for k in key)
    found = conn.exec_driver_sql(f"SELECT count(*) FROM {tmp} t JOIN {name} c ON {on}").scalar()
    return int(found or 0)


def _copy(
    conn: Connection,
    name: str,
    cols: str,
    chunks: Iterable[Sequence[tuple[Any, ...]]],
    upsert_on: tuple[list[str], list[str]] | None,
) -> tuple[int, int]:
    """PostgreSQL: COPY the rows into the table, or, to upsert them, into a
    temporary table (dropped at commit) and from there in one
    ``INSERT ... ON CONFLICT DO UPDATE``. Returns (rows written, rows that
    replaced a cached one)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    written = 0
    with raw.cursor() as cur:
        target = name
        if upsert_on is not None:
            target = "replenish_cache_in"
            cur.execute(f"DROP TABLE IF EXISTS {target}")
            cur.execute(f"CREATE TEMPORARY TABLE {target} (LIKE {name}) ON COMMIT DROP")
        with cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
            for rows in chunks:
                for row in rows:
                    copy.write_row(row)
                written += len(rows)
        if upsert_on is None:
            return written, 0
        key, sets = upsert_on
        replaced = _replaced(conn, target, name, key)
        updates = ", ".join(f"{c} = excluded.{c}" for c in sets)
        on_key = ", ".join(conn.dialect.identifier_preparer.quote(k) for k in key)
        cur.execute(
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {target} "
            f"ON CONFLICT ({on_key}) DO UPDATE SET {updates}"
        )
        cur.execute(f"DROP TABLE {target}")
    return written, replaced


@dataclass
class WindowDiff:
    """What a re-read batch changes among a source's cached lines of the
    re-read window (:func:`diff_window`)."""

    #: the batch's lines to write: new, or changed since they were cached
    write: pd.DataFrame
    #: cached lines of the window (all replaced or removed, as the batch says)
    window: int
    #: of those, lines the batch no longer has (deleted)
    removed: int
    #: of those, lines the batch changed (written again)
    changed: int


_DATA = ("sku", "location_id", "qty", "ordered_at", "status")


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Keys and data of sales lines in one comparable form: text as Python
    strings (None: missing), quantities as floats, dates in microseconds as
    the cache keeps them (-1: none)."""
    out = {}
    for name in ("channel", "order_id", "sku", "location_id", "status"):
        s = frame[name]
        out[name] = s.astype(object).where(s.notna(), None).to_numpy()
    out["line_no"] = pd.to_numeric(frame["line_no"]).astype("int64").to_numpy()
    out["qty"] = pd.to_numeric(frame["qty"]).astype("float64").to_numpy()
    when = pd.to_datetime(frame["ordered_at"]).to_numpy(dtype="datetime64[ns]")
    us = when.astype("datetime64[us]").astype(np.int64)
    out["ordered_at"] = np.where(np.isnat(when), -1, us)
    return pd.DataFrame(out)


def diff_window(
    conn: Connection, source: str, lines: pd.DataFrame, since: datetime, loaded_at: datetime
) -> WindowDiff:
    """Compare a batch that holds everything ``source`` has from ``since`` on
    (and its undated lines) with the cached lines of that window, in the
    caller's transaction: delete the cached lines the batch no longer has,
    stamp the window's other lines ``loaded_at`` with no verdict (as if
    written again: the validation gate sees them anew), and return the batch's
    lines that still need writing (new or changed). The re-read week of a
    nightly run is mostly unchanged: rewriting it whole (a delete and an
    insert of every line, with their index entries) took 20+ s at 100,000
    series."""
    t = SALES_TABLE
    # two ranges of the (source, date) index: with an OR, SQLite walks every
    # index entry of the source (28 M at 100,000 series) instead
    parts = (t.c.ordered_at >= since, t.c.ordered_at.is_(None))
    names = ["channel", "order_id", "line_no", *_DATA]
    found = [
        _window_frame(conn, select(*(t.c[n] for n in names)).where(t.c.source == source, part))
        for part in parts
    ]
    keys = list(key_columns("sales_order_lines"))
    batch = _canonical(lines)
    cached = pd.concat([_canonical(f[names]) for f in found], ignore_index=True)
    merged = batch.reset_index().merge(
        cached, on=keys, how="outer", suffixes=("", "_cached"), indicator=True
    )
    both = (merged["_merge"] == "both").to_numpy()
    same = both.copy()
    for name in _DATA:
        a, b = merged[name], merged[f"{name}_cached"]
        same &= ((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)
    gone = merged.loc[(merged["_merge"] == "right_only").to_numpy(), keys]
    for part in parts:
        conn.execute(
            update(t).where(t.c.source == source, part).values(loaded_at=loaded_at, verdict=None)
        )
    if len(gone):
        stmt = delete(t).where(
            t.c.source == source,
            t.c.channel == bindparam("k_channel"),
            t.c.order_id == bindparam("k_order_id"),
            t.c.line_no == bindparam("k_line_no"),
        )
        params = [
            {"k_channel": ch, "k_order_id": o, "k_line_no": int(n)}
            for ch, o, n in zip(gone["channel"], gone["order_id"], gone["line_no"], strict=True)
        ]
        for i in range(0, len(params), _CHUNK):
            conn.execute(stmt, params[i : i + _CHUNK])
    from_batch = ~(merged["_merge"] == "right_only").to_numpy()
    write = np.ones(len(lines), dtype=bool)
    positions = merged["index"].to_numpy()[from_batch & same].astype(np.int64)
    write[positions] = False
    return WindowDiff(
        write=lines[write] if not write.all() else lines,
        window=len(cached),
        removed=len(gone),
        changed=int((both & ~same).sum()),
    )


def _window_frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    """The cached lines of ``stmt``, read column-wise where the store allows
    (a SQLite file through ADBC, PostgreSQL through binary COPY): the write
    transaction has not touched them yet, so the committed rows those reads
    see are the ones it compares."""
    from replenish.sources.fastread import read_frame
    from replenish.store import fastcache

    path = fastcache.sqlite_file(conn.engine.url.render_as_string(hide_password=False))
    if path is not None:
        frame = fastcache.read_sqlite_frame(path, conn, stmt, "sales_order_lines", {})
        if frame is not None:
            return frame
    return read_frame(conn, stmt)
