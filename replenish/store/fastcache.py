"""Reading the demand cache of a SQLite store column-wise, through ADBC.

Python's ``sqlite3`` builds a tuple per row and an object per value: 5.6 M
cached sales lines take 15–27 s to fetch and 6–13 s more to turn into
columns on the project's machine. The ADBC SQLite driver
(``adbc-driver-sqlite``) steps through the same rows in C and hands over
Arrow columns: 6–9 s for the same read (docs/incremental.md, "Speed").

:func:`read_sqlite_frame` is used by :meth:`replenish.store.Store.cached_sales`
when the store is a SQLite *file* and the driver is installed; it returns
None whenever it cannot read exactly (driver missing, an in-memory or URI
database, a value the driver's type inference did not expect, any driver
error), and the caller then reads through ``sqlite3`` as before. The read is
its own connection: it sees committed rows, as every cache read does.

The driver infers each column's type from the first rows it steps through:
a column whose first rows are all NULL is taken as an integer and a later
text value fails the read. The cache's verdict column (NULL until the gate
has seen the line) is therefore read through ``COALESCE`` with a sentinel,
and a failed read falls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Select
from sqlalchemy.engine import make_url

from replenish import model
from replenish.store.cache import stamp

log = logging.getLogger(__name__)

#: Rows the driver looks at to infer a column's type (its default is 1024).
BATCH_ROWS: Final = 65_536
#: What a NULL verdict is read as (see the module docstring).
NO_VERDICT: Final = "\x00"


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL, or None (not SQLite, in memory,
    query parameters)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.query:
        return None
    if u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return str(Path(u.database))


def read_sqlite_frame(
    path: str,
    conn: Connection,
    stmt: Select[Any],
    table: str,
    lean: dict[str, str],
) -> pd.DataFrame | None:
    """The rows of ``stmt`` as a frame: contract dtypes for ``table``'s
    columns, text columns lean as ``lean`` says (column -> ``category`` or
    ``arrow``), ``source`` a categorical, ``verdict`` objects (None: no
    verdict). None when the fast path cannot read it (see the module doc)."""
    arrow = read_sqlite_arrow(path, conn, stmt)
    if arrow is None:
        return None
    try:
        return arrow_frame(arrow, table, lean)
    except Exception as e:  # any surprise: the exact, slower read
        log.info("demand cache read through sqlite3 (ADBC could not: %s)", str(e)[:200])
        return None


def read_sqlite_arrow(
    path: str,
    conn: Connection,
    stmt: Select[Any],
    convert: Callable[[pa.Table], pa.Table] | None = None,
) -> pa.Table | None:
    """The rows of ``stmt`` as the ADBC SQLite driver gives them (text
    timestamps), or None when it cannot read them (see the module doc).
    ``convert``: applied to each batch of rows as it is read (only the
    converted batches are held)."""
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        return None
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    order = compiled.positiontup or []
    params = tuple(stamp(v) if isinstance(v, datetime) else v for v in (values[k] for k in order))
    sql = str(compiled)
    try:
        with adbc.connect(path) as db, db.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
            cur.execute(sql, params or None)
            if convert is None:
                arrow: pa.Table = cur.fetch_arrow_table()
                return arrow
            reader = cur.fetch_record_batch()
            parts = [convert(pa.Table.from_batches([batch])) for batch in reader]
            if not parts:
                return convert(reader.schema.empty_table())
            return pa.concat_tables(parts)
    except Exception as e:  # any surprise: the exact, slower read
        log.info("demand cache read through sqlite3 (ADBC could not: %s)", str(e)[:200])
        return None


def arrow_frame(arrow: pa.Table, table: str, lean: dict[str, str]) -> pd.DataFrame | None:
    """Cache rows read as Arrow (the SQLite driver, a sealed file) as a frame
    of contract dtypes, as :func:`read_sqlite_frame` describes; None when a
    column is not of a type it expects."""
    contract = model.CONTRACT[table]
    out: dict[str, Any] = {}
    for name in arrow.column_names:
        col = arrow.column(name)
        dtype = contract.get(name)
        t = col.type
        all_null = col.null_count == len(col)
        if name == "verdict":  # a categorical: few distinct verdicts
            if not (pa.types.is_string(t) or _is_text_dictionary(t)):
                return None
            encoded = pc.dictionary_encode(col.combine_chunks())
            texts = encoded.dictionary.to_pylist()
            codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            verdicts = sorted_categorical(codes, texts)
            if NO_VERDICT in texts:
                verdicts = verdicts.remove_categories([NO_VERDICT])  # its rows: NaN
            out[name] = verdicts
        elif dtype == "float64":
            if not (pa.types.is_floating(t) or pa.types.is_integer(t) or all_null):
                return None
            out[name] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        elif dtype == "Int64":
            if not (pa.types.is_integer(t) or all_null):
                return None
            ints = pc.cast(col, pa.int64())
            out[name] = ints.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
        elif dtype == "boolean":
            if not (pa.types.is_integer(t) or all_null):
                return None
            flags = pc.cast(pc.cast(col, pa.int64()), pa.bool_())
            out[name] = flags.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get).array
        elif dtype is not None and dtype.startswith("datetime"):
            if all_null:
                out[name] = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
                continue
            if not (pa.types.is_string(t) or pa.types.is_timestamp(t)):
                return None
            stamps = pc.cast(col, pa.timestamp("us"))  # the cache's own text stamps
            out[name] = stamps.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
        elif dtype == "string" or name == "source":
            if all_null:
                col = pa.chunked_array([pa.nulls(len(col), pa.string())])
            elif not (pa.types.is_string(t) or _is_text_dictionary(t)):
                return None
            how = "category" if name == "source" else lean.get(name)
            out[name] = text_column(col, how)
        else:
            return None
    return pd.DataFrame(out, columns=arrow.column_names, copy=False)


def _is_text_dictionary(t: pa.DataType) -> bool:
    """Dictionary-encoded text (the sealed files' few-valued columns)."""
    return bool(pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))


def text_column(col: pa.ChunkedArray | pa.Array, how: str | None) -> Any:
    """Arrow strings as pandas ``string``, Arrow-backed strings (``arrow``) or a
    categorical with sorted categories (``category``, as an ERP read gives)."""
    if how == "arrow" and isinstance(col, pa.ChunkedArray) and pa.types.is_string(col.type):
        return pd.arrays.ArrowStringArray(col)  # its chunks as they are: no copy
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if _is_text_dictionary(arr.type) and how != "category":
        arr = pc.cast(arr, pa.string())
    if how is None:
        return pd.array(arr.to_pylist(), dtype="string")
    if how == "arrow":
        return pd.arrays.ArrowStringArray(pa.chunked_array([arr]))
    encoded = pc.dictionary_encode(arr)
    return sorted_categorical(
        encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False),
        encoded.dictionary.to_pylist(),
    )


def sorted_categorical(codes: np.ndarray[Any, Any], categories: Sequence[Any]) -> pd.Categorical:
    """A categorical from ``codes`` (-1: missing; every other code a valid
    index into ``categories``) with its categories in string order: one pass
    over the codes, into the smallest integer type."""
    n = len(categories)
    small = np.int8 if n < 2**7 else np.int16 if n < 2**15 else np.int32
    order = np.argsort(np.asarray(categories, dtype=object), kind="stable") if n else np.zeros(0)
    order = order.astype(np.int64)
    codes = np.asarray(codes)
    ranked: npt.NDArray[np.integer[Any]]
    if np.array_equal(order, np.arange(n)):
        ranked = codes.astype(small, copy=False)
    else:
        rank = np.empty(n + 1, dtype=small)
        rank[order] = np.arange(n)
        rank[n] = -1  # code -1 (missing) takes the last slot
        ranked = rank[codes]
    return pd.Categorical.from_codes(
        ranked, categories=pd.Index([categories[i] for i in order], dtype=object), validate=False
    )
