"""Column-wise reads of contract tables: every SQL read of an ERP profile.

For other modules (stable)::

    read_frame(conn: sqlalchemy.Connection, stmt: sqlalchemy.Executable,
               table: str | None = None) -> pd.DataFrame
    with FrameReader(conn) as reader:      # several reads, one extra connection
        frame = reader.read(stmt, table)
    lean_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame
    concat_frames(table: str, frames: Sequence[pd.DataFrame]) -> pd.DataFrame
    read_dtype(table: str, column: str) -> str   # "category" or CONTRACT's dtype

Frames read for ``sales_order_lines``, ``returns`` and ``stock_history``
hold their text columns lean (:data:`LEAN_COLUMNS`): joining them to frames
with plain ``string`` columns (the store's demand cache) needs
:func:`concat_frames`, as ``pd.concat`` turns categoricals with different
categories into Python objects.

The frame is *as read* (the statement's result columns and names, values in
their database types); pass it through ``model.coerce(table, frame,
copy=False)`` for the contract dtypes. ``table`` names the contract table the
rows are for: its text columns in :data:`LEAN_COLUMNS` then come back lean
(categoricals, Arrow-backed strings) on every back end; None reads without
that.

How a statement is read, per back end:

* **PostgreSQL** (``postgresql+psycopg``): the statement is compiled,
  its parameters bound client-side by psycopg (libpq's literal quoting:
  SKU filters and dates are user input, never concatenated), and the rows
  read by the ADBC PostgreSQL driver (``COPY (...) TO STDOUT (FORMAT
  binary)`` parsed in C++ into Arrow record batches, no Python object per
  row), then converted column by column. The read uses a second connection
  to the same server with the same parameters (psycopg's, password
  included), in autocommit: it sees committed rows only — right for an ERP,
  which this library never writes. A statement this path cannot read exactly
  (a column of a type it does not map, parameters that are not plain
  values, a driver error) is read again with ``pandas.read_sql`` (logged).
* **SQLite, MariaDB/MySQL** and other drivers: ``pandas.read_sql`` on
  ``conn``, then :func:`lean_frame`.

Values are the same as ``pandas.read_sql`` followed by ``model.coerce`` gives
(tests/adapters/test_fastread.py), with one difference: a PostgreSQL date or
timestamp outside pandas' range (before 1677, after 2262, ``infinity``) reads
as missing, so the validation gate rejects the row by name, where
``read_sql`` failed the whole read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Executable
from sqlalchemy.sql.elements import ClauseElement

from replenish import model

log = logging.getLogger(__name__)

Lean = Literal["category", "arrow"]

#: The text columns of the large tables and how they are held once read:
#: ``category`` for the few distinct values repeated on millions of lines
#: (a 1-, 2- or 4-byte code a row, categories sorted like strings),
#: ``arrow`` (pandas ``string[pyarrow]``: the bytes and an offset, no Python
#: object a row) for identifiers that are nearly unique. Other text columns
#: stay pandas ``string`` (Python objects): the small tables.
LEAN_COLUMNS: Final[Mapping[str, Mapping[str, Lean]]] = {
    "sales_order_lines": {
        "order_id": "arrow",
        "sku": "category",
        "location_id": "category",
        "channel": "category",
        "status": "category",
    },
    "returns": {"order_id": "arrow", "sku": "category", "location_id": "category"},
    "stock_history": {"sku": "category", "location_id": "category"},
}


def read_dtype(table: str, column: str) -> str:
    """``str(dtype)`` of a contract column once read and coerced: the
    contract's, or ``category`` for a lean categorical (Arrow-backed strings
    are ``string`` too)."""
    if LEAN_COLUMNS.get(table, {}).get(column) == "category":
        return "category"
    return model.CONTRACT[table][column]


#: Parameter values psycopg quotes client-side exactly as it would bind them.
_PLAIN = (str, int, float, bool, datetime, date, time, timedelta, Decimal, type(None))
# pandas' datetime64[ns] range, in microseconds and days since the epoch
_NS_MIN_US: Final = int(pd.Timestamp.min.value // 1000) + 1
_NS_MAX_US: Final = int(pd.Timestamp.max.value // 1000)
_NS_MIN_DAY: Final = -106_751
_NS_MAX_DAY: Final = 106_750


class _Unsupported(Exception):
    """The fast path cannot read this statement exactly: use ``read_sql``."""


def read_frame(conn: Connection, stmt: Executable, table: str | None = None) -> pd.DataFrame:
    """The rows of ``stmt`` as a frame (see the module docstring); one read."""
    with FrameReader(conn) as reader:
        return reader.read(stmt, table)


class FrameReader:
    """Reads statements on ``conn`` column-wise; for PostgreSQL it opens one
    ADBC connection on the first read and closes it on :meth:`close` (or at
    the end of a ``with`` block)."""

    def __init__(self, conn: Connection, *, fast: bool = True) -> None:
        self.conn = conn
        self._adbc: Any = None
        # None: not tried yet; False: not used by this reader (another driver,
        # ``fast=False`` to compare with the plain path, or it failed to connect)
        self._fast: bool | None = None if fast and _is_psycopg(conn) else False

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._adbc is not None:
            adbc, self._adbc = self._adbc, None
            try:
                adbc.close()
            except Exception:
                log.debug("closing the ADBC connection failed", exc_info=True)

    def read(self, stmt: Executable, table: str | None = None) -> pd.DataFrame:
        """The rows of ``stmt``; lean text columns when ``table`` is given."""
        # result columns are matched case-insensitively (a YAML profile's
        # query may return SKU on MariaDB); the caller lower-cases them
        lean = LEAN_COLUMNS.get(table or "", {})
        contract = model.CONTRACT.get(table or "", {})
        if self._fast is not False:
            try:
                return self._read_postgres(stmt, lean, contract)
            except _Unsupported as e:
                log.info("read with pandas.read_sql instead of ADBC: %s", e)
        frame = pd.read_sql(stmt, self.conn)  # type: ignore[call-overload]
        return lean_frame(table, frame) if table else frame

    # ------------------------------------------------------------ PostgreSQL

    def _connection(self) -> Any:
        if self._adbc is None:
            try:
                from adbc_driver_postgresql import dbapi
            except ImportError as e:  # pragma: no cover - a declared dependency
                self._fast = False
                raise _Unsupported(f"no ADBC PostgreSQL driver ({e})") from None
            raw = _psycopg(self.conn)
            params = dict(raw.info.get_parameters())
            password = raw.info.password
            if password:
                params["password"] = password
            params["client_encoding"] = "UTF8"  # Arrow strings are UTF-8
            from psycopg.conninfo import make_conninfo

            try:
                self._adbc = dbapi.connect(make_conninfo(**params), autocommit=True)
            except Exception as e:
                self._fast = False
                raise _Unsupported(f"cannot open the ADBC connection ({_first_line(e)})") from None
            self._fast = True
        return self._adbc

    def _read_postgres(
        self, stmt: Executable, lean: Mapping[str, Lean], contract: Mapping[str, str]
    ) -> pd.DataFrame:
        sql = self._literal_sql(stmt)
        adbc = self._connection()
        # a subquery on its own lines: a trailing "-- comment" cannot end it
        wrapped = f"SELECT * FROM (\n{sql}\n) AS replenish_read"
        try:
            with adbc.cursor() as cur:
                cur.execute(wrapped)
                reader = cur.fetch_record_batch()
                schema = reader.schema
                names = list(schema.names)
                if len(set(names)) != len(names):
                    raise _Unsupported(f"duplicate column names {names}")
                hows = [lean.get(name.lower()) for name in names]
                categories = {
                    i: _CategoryCodes()
                    for i, how in enumerate(hows)
                    if how == "category" and _is_text(schema.field(i).type)
                }
                chunks: list[list[pa.Array]] = [[] for _ in names]
                for batch in reader:
                    for i in range(len(names)):
                        if i in categories:
                            categories[i].add(batch.column(i))
                        else:
                            chunks[i].append(_own_copy(batch.column(i)))
                    del batch
        except _Unsupported:
            raise
        except Exception as e:
            self.close()  # the connection may be mid-COPY: open a new one next time
            raise _Unsupported(f"ADBC read failed ({_first_line(e)})") from None
        columns: dict[str, Any] = {}
        for i, name in enumerate(names):
            if i in categories:
                columns[name] = categories.pop(i).categorical()
                continue
            parts, chunks[i] = chunks[i], []
            arr = pa.chunked_array(parts, type=schema.field(i).type)
            del parts
            columns[name] = _to_pandas(arr, name, hows[i], contract.get(name.lower()))
        n = len(next(iter(columns.values()))) if columns else 0
        return pd.DataFrame(columns, index=pd.RangeIndex(n), copy=False)

    def _literal_sql(self, stmt: Executable) -> str:
        """``stmt`` as one SQL string, its parameters quoted by psycopg."""
        from psycopg import ClientCursor

        if not isinstance(stmt, ClauseElement):
            raise _Unsupported(f"not a SQLAlchemy statement: {type(stmt).__name__}")
        compiled = stmt.compile(
            dialect=self.conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = dict(compiled.construct_params() or {})
        processors: Mapping[str, Callable[[Any], Any]] = getattr(compiled, "_bind_processors", {})
        for key, value in params.items():
            if key in processors:
                value = params[key] = processors[key](value)
            if not isinstance(value, _PLAIN):
                raise _Unsupported(f"parameter {key} is a {type(value).__name__}")
        raw = _psycopg(self.conn)
        if raw.info.encoding != "utf-8":
            raise _Unsupported(f"client encoding {raw.info.encoding}")
        # always a dict, even empty: psycopg then reads '%%' as '%' like SQLAlchemy wrote it
        return ClientCursor(raw).mogrify(compiled.string, params)


def _is_psycopg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _psycopg(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a ``postgresql+psycopg`` connection."""
    raw = conn.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):  # pragma: no cover - checked by _is_psycopg
        raise _Unsupported(f"not a psycopg connection: {type(raw).__name__}")
    return raw


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# --------------------------------------------------------------------- Arrow -> pandas


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _own_copy(arr: pa.Array) -> pa.Array:
    """One batch's column in memory of its own. A batch imported from the
    driver is freed only when none of its columns is referenced any more:
    without the copy every batch would stay whole (the strings of its
    categorical columns too) until the end of the read."""
    return pa.concat_arrays([arr])


class _CategoryCodes:
    """A text column encoded batch by batch against one growing list of
    distinct values: 4 bytes a row while reading, the few distinct strings
    once, then a categorical with sorted categories and the smallest codes."""

    def __init__(self) -> None:
        self.values: pa.Array | None = None
        self.codes: list[npt.NDArray[np.int32]] = []

    def add(self, arr: pa.Array) -> None:
        encoded = pc.dictionary_encode(arr)
        batch_values = encoded.dictionary
        if self.values is None:
            self.values = batch_values.slice(0, 0)
        # the batch's distinct values -> their place in self.values (new ones appended)
        where = pc.fill_null(pc.index_in(batch_values, value_set=self.values), -1)
        place = np.array(where.to_numpy(zero_copy_only=False), dtype=np.int32)
        new = np.flatnonzero(place < 0)
        if len(new):
            place[new] = len(self.values) + np.arange(len(new), dtype=np.int32)
            self.values = pa.concat_arrays([self.values, batch_values.take(pa.array(new))])
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        codes = place[indices]
        codes[indices < 0] = -1
        self.codes.append(codes)

    def categorical(self) -> pd.Categorical:
        names = [] if self.values is None else self.values.to_pylist()
        order = sorted(range(len(names)), key=names.__getitem__)
        rank = np.empty(len(names) + 1, dtype=np.int64)
        rank[order] = np.arange(len(names))
        rank[-1] = -1  # code -1 (missing) indexes the last slot
        codes = np.concatenate(self.codes) if self.codes else np.empty(0, dtype=np.int32)
        self.codes = []
        small = np.int8 if len(names) < 2**7 else np.int16 if len(names) < 2**15 else np.int32
        sorted_names = pd.Index([names[i] for i in order], dtype=object)
        return pd.Categorical.from_codes(
            rank[codes].astype(small), categories=sorted_names, validate=False
        )


def _to_pandas(arr: pa.ChunkedArray, name: str, lean: Lean | None, contract: str | None) -> Any:
    """One column as pandas values like ``read_sql`` + ``coerce`` would give."""
    t = arr.type
    if _is_text(t):
        if lean == "arrow":
            return pd.arrays.ArrowStringArray(arr)
        return arr.to_pandas().to_numpy()
    if pa.types.is_boolean(t):
        return arr.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get).array
    if pa.types.is_integer(t):
        ints = pc.cast(arr, pa.int64())
        return ints.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
    if pa.types.is_float64(t):
        return arr.to_numpy()
    if pa.types.is_floating(t):
        # a real as PostgreSQL prints it (0.1, not 0.10000000149)
        return pc.cast(pc.cast(arr, pa.string()), pa.float64()).to_numpy()
    if pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()).to_numpy()
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return _timestamps(arr)
    if isinstance(t, pa.BaseExtensionType):
        return _extension(arr, name, contract)
    raise _Unsupported(f"column {name!r} has type {t}")


def _sorted_categories(cat: pd.Categorical) -> pd.Categorical:
    """``cat`` with its categories in string order (as ``astype('category')``
    gives them, so sorting and grouping order the same on every back end)."""
    cats = cat.categories
    ordered = sorted(cats)
    if list(cats) == ordered:
        return cat
    return cat.reorder_categories(pd.Index(ordered, dtype=object))


def _timestamps(arr: pa.ChunkedArray) -> Any:
    """Dates and timestamps as datetime64[ns] (aware ones in UTC); values
    pandas cannot hold (before 1677, after 2262, infinity) as missing."""
    t = arr.type
    if pa.types.is_date(t):
        days = pc.cast(arr, pa.date32()).cast(pa.int32())
        out_of_range = pc.or_(pc.less(days, _NS_MIN_DAY), pc.greater(days, _NS_MAX_DAY))
        arr = pc.if_else(out_of_range, pa.scalar(None, pa.date32()), pc.cast(arr, pa.date32()))
        arr = pc.cast(arr, pa.timestamp("s"))
        t = arr.type
    us = pc.cast(arr, pa.timestamp("us", t.tz))
    ticks = us.cast(pa.int64())
    out_of_range = pc.or_(pc.less(ticks, _NS_MIN_US), pc.greater(ticks, _NS_MAX_US))
    if pc.any(out_of_range).as_py():
        us = pc.if_else(out_of_range, pa.scalar(None, us.type), us)
    ns = pc.cast(us, pa.timestamp("ns", t.tz))
    return ns.to_pandas().array


def _extension(arr: pa.ChunkedArray, name: str, contract: str | None) -> Any:
    """PostgreSQL types ADBC returns as Arrow extension types: numeric (text),
    json/jsonb (parsed, like psycopg), uuid (uuid.UUID, like psycopg)."""
    t = arr.type
    ext = getattr(t, "extension_name", "")
    storage = pa.chunked_array([c.storage for c in arr.chunks], type=t.storage_type)
    type_name = getattr(t, "type_name", "")
    if ext == "arrow.opaque" and type_name == "numeric":
        if contract == "string":  # the digits as written: 12.50, like str(Decimal)
            return storage.to_pandas().to_numpy()
        return pc.cast(storage, pa.float64()).to_numpy()
    if ext == "arrow.json":
        values = storage.to_pylist()
        return np.array([None if v is None else json.loads(v) for v in values] or [], dtype=object)
    if ext == "arrow.uuid":
        return np.array(arr.to_pylist(), dtype=object)
    raise _Unsupported(f"column {name!r} has type {t}")


# --------------------------------------------------------------------- lean frames


def lean_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the text columns of :data:`LEAN_COLUMNS` for ``table``
    held lean (a new frame; ``frame`` is not modified). A column that is not
    all text (an ERP query returning numbers as SKUs) is left as it is:
    ``model.coerce`` turns it into strings."""
    lean = LEAN_COLUMNS.get(table, {})
    convert: dict[str, Any] = {}
    for col in frame.columns:
        how = lean.get(str(col).lower())
        if how is None:
            continue
        s = frame[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            if how == "category" and pd.api.types.infer_dtype(s.cat.categories) == "string":
                convert[col] = _sorted_categories(s.array)
            continue
        if isinstance(s.dtype, pd.StringDtype):
            if how == "arrow" and s.dtype.storage != "pyarrow":
                convert[col] = s.astype("string[pyarrow]")
            elif how == "category":
                convert[col] = pd.Categorical(s.astype(object).where(s.notna(), None))
            continue
        if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) not in {
            "string",
            "empty",
        }:
            continue
        if how == "category":
            convert[col] = pd.Categorical(s)
        else:
            convert[col] = s.astype("string[pyarrow]")
    return frame.assign(**convert) if convert else frame


def concat_frames(table: str, frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)`` that keeps ``table``'s lean
    columns lean: the categoricals' categories are united (sorted, as a read
    gives them) and plain strings joined to them, instead of pandas falling
    back to Python objects for categoricals whose categories differ."""
    parts = [lean_frame(table, f) for f in frames]
    if not parts:
        return pd.DataFrame()
    for col in parts[0].columns:
        dtypes = [p[col].dtype for p in parts if col in p.columns]
        cats = [d.categories for d in dtypes if isinstance(d, pd.CategoricalDtype)]
        if len(cats) != len(dtypes):
            continue
        union = sorted({c for names in cats for c in names})
        wanted = pd.CategoricalDtype(pd.Index(union, dtype=object))
        parts = [
            p.assign(**{col: p[col].cat.set_categories(wanted.categories)})
            if col in p.columns and p[col].dtype != wanted
            else p
            for p in parts
        ]
    return pd.concat(parts, ignore_index=True)
