"""The canonical data contract (DESIGN.md, "The canonical data contract").

Two views of the same contract live here:

* ``ERP_METADATA`` — SQLAlchemy Core tables of the built-in *generic* ERP
  profile. The generic reader selects exactly these columns; the demo shop
  writes them; other profiles map their own tables onto them.
* ``CONTRACT`` — for every table, the column names and the pandas dtype the
  library works with once a table is extracted into a DataFrame.

Names here are the contract: keep them stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)

ERP_METADATA: Final = MetaData()

suppliers = Table(
    "suppliers",
    ERP_METADATA,
    Column("supplier_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("email", String(255)),
    Column("currency", String(3), nullable=False, default="EUR"),
    Column("min_order_value", Float, nullable=False, default=0.0),
    Column("order_processing_days", Float, nullable=False, default=0.0),
    Column("transport_days", Float, nullable=False, default=0.0),
    Column("receiving_days", Float, nullable=False, default=0.0),
    # optional (see OPTIONAL_COLUMNS): weekdays orders may be placed, as
    # "mon,thu" (NULL = any day), and the cost of placing one order (NULL =
    # the plan's default ordering cost)
    Column("order_days", String(32)),
    Column("order_cost", Float),
)

products = Table(
    "products",
    ERP_METADATA,
    Column("sku", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("category", String(128)),
    Column("unit_cost", Float),
    Column("unit_price", Float),
    Column("active", Boolean, nullable=False, default=True),
    Column("replenishment_mode", String(8), nullable=False, default="stock"),
    Column("service_level", Float),
)

supplier_products = Table(
    "supplier_products",
    ERP_METADATA,
    Column("sku", String(64), primary_key=True),
    Column("supplier_id", String(64), primary_key=True),
    Column("supplier_sku", String(64)),
    Column("lead_time_days", Float, nullable=False),
    Column("moq", Float, nullable=False, default=1.0),
    Column("pack_size", Float, nullable=False, default=1.0),
    Column("unit_price", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=1),
)

stock_levels = Table(
    "stock_levels",
    ERP_METADATA,
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("on_hand", Float, nullable=False),
    Column("allocated", Float, nullable=False, default=0.0),
    Column("as_of", DateTime, nullable=False),
)

purchase_orders = Table(
    "purchase_orders",
    ERP_METADATA,
    Column("po_id", String(64), primary_key=True),
    Column("supplier_id", String(64), nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ordered_at", DateTime, nullable=False),
    Column("expected_at", DateTime),
)

purchase_order_lines = Table(
    "purchase_order_lines",
    ERP_METADATA,
    Column("po_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("qty_ordered", Float, nullable=False),
    Column("qty_received", Float, nullable=False, default=0.0),
    Column("received_at", DateTime),
)

sales_order_lines = Table(
    "sales_order_lines",
    ERP_METADATA,
    Column("order_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("qty", Float, nullable=False),
    Column("ordered_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
)

returns = Table(
    "returns",
    ERP_METADATA,
    Column("order_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), nullable=False),
    Column("qty", Float, nullable=False),
    Column("returned_at", DateTime, primary_key=True),
    Column("restockable", Boolean, nullable=False, default=True),
)

stock_history = Table(
    "stock_history",
    ERP_METADATA,
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("on_hand", Float, nullable=False),
)

promotions = Table(
    "promotions",
    ERP_METADATA,
    Column("promo_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64)),  # NULL: every location
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),  # inclusive
    Column("kind", String(32)),
)

#: Tables a generic-profile ERP must have; the optional ones may be absent.
REQUIRED_TABLES: Final = (
    "suppliers",
    "products",
    "supplier_products",
    "stock_levels",
    "purchase_orders",
    "purchase_order_lines",
    "sales_order_lines",
    "returns",
)
OPTIONAL_TABLES: Final = ("stock_history", "promotions")
#: Columns an ERP may lack: they read as NULL.
OPTIONAL_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "suppliers": ("order_days", "order_cost"),
}
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Sales-line status values that are not demand.
CANCELLED_SALES_STATUSES: Final = frozenset({"cancelled", "canceled", "void"})
#: Purchase-order statuses whose unreceived quantity is on order.
OPEN_PO_STATUSES: Final = frozenset({"draft", "sent", "confirmed"})
REPLENISHMENT_MODES: Final = frozenset({"stock", "jit"})

_SQL_TO_PANDAS = {
    String: "string",
    Float: "float64",
    Integer: "Int64",
    Boolean: "boolean",
    DateTime: "datetime64[ns]",
    Date: "datetime64[ns]",
}


def _dtype(col: Column) -> str:
    for sql_type, pd_type in _SQL_TO_PANDAS.items():
        if isinstance(col.type, sql_type):
            return pd_type
    raise TypeError(f"no pandas dtype for {col.name}: {col.type!r}")  # pragma: no cover


#: table name -> {column name: pandas dtype}
CONTRACT: Final[dict[str, dict[str, str]]] = {
    t.name: {c.name: _dtype(c) for c in t.columns} for t in ERP_METADATA.sorted_tables
}

#: table name -> the columns that identify a row
KEYS: Final[dict[str, tuple[str, ...]]] = {
    t.name: tuple(c.name for c in t.primary_key.columns) for t in ERP_METADATA.sorted_tables
}
# What identifies a row once every source is merged: a sales line is unique per
# (channel, order_id, line_no) (DESIGN: channels are de-duplicated on that key),
# so two shops whose order numbers collide are not each other's duplicates.
ROW_KEYS: Final[dict[str, tuple[str, ...]]] = {
    **KEYS,
    "sales_order_lines": ("channel", "order_id", "line_no"),
}


def empty_frame(table: str) -> pd.DataFrame:
    """An empty DataFrame with the contract columns and dtypes of ``table``."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CONTRACT[table].items()})


def coerce(table: str, frame: pd.DataFrame, *, copy: bool = True) -> pd.DataFrame:
    """Return a copy of ``frame`` with the contract columns of ``table`` in
    contract order and dtypes (timestamps as naive UTC). Values that cannot
    be converted become missing
    (NaN/NaT/<NA>), so the validation gate can reject them row by row instead
    of the whole table failing to load — and so do ±inf, integers beyond
    2⁵³ and blank keys (a SKU of ``"  "`` identifies nothing).

    A text column stays as lean as it comes: a categorical of strings stays a
    categorical (its blank key categories removed), Arrow-backed strings stay
    Arrow-backed (``replenish.sources.fastread`` reads the large tables so);
    anything else becomes pandas ``string``.

    ``copy=False``: a column already in its contract form is taken as it is,
    not copied (the result shares its memory with ``frame``): for a frame
    the caller owns and drops, such as one just read from a database.
    """
    out: dict[str, pd.Series] = {}
    for col, dtype in CONTRACT[table].items():
        s = frame[col] if col in frame.columns else pd.Series(pd.NA, index=frame.index)
        if dtype == "float64":
            n = pd.to_numeric(s, errors="coerce")
            if n.dtype != "float64" or copy:
                n = n.astype("float64")
            finite = np.isfinite(n.to_numpy())
            out[col] = n if finite.all() else n.where(finite)  # ±inf is not a quantity: missing
        elif dtype == "Int64":
            if str(s.dtype) == "Int64" and bool((s.abs() < 2**53).fillna(True).all()):
                out[col] = s.copy() if copy else s
                continue
            n = pd.to_numeric(s, errors="coerce").astype("float64")
            out[col] = n.where(n.abs() < 2**53).round().astype("Int64")  # beyond: missing
        elif dtype == "boolean":
            out[col] = _to_bool(s)
        elif dtype.startswith("datetime"):
            out[col] = _to_utc_naive(s, copy=copy)
        else:
            out[col] = _to_text(s, blank_is_missing=col in ROW_KEYS[table], copy=copy)
    return pd.DataFrame(out, index=frame.index, copy=copy)


def _to_utc_naive(s: pd.Series, *, copy: bool) -> pd.Series:
    """Timestamps as naive UTC datetime64[ns]: naive ones are taken as UTC,
    aware ones converted; what cannot be parsed or held (before 1677, after
    2262) is missing."""
    if str(s.dtype) == "datetime64[ns]":
        return s.copy() if copy else s
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        lo, hi = pd.Timestamp.min, pd.Timestamp.max
        s = s.where((s >= lo) & (s <= hi))
        return s.astype("datetime64[ns]")
    ts: pd.Series = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    return ts.dt.tz_localize(None).astype("datetime64[ns]")


def _to_text(s: pd.Series, *, blank_is_missing: bool, copy: bool) -> pd.Series:
    """Strings, as lean as they come (see :func:`coerce`); a blank key
    (``"  "`` identifies nothing) is missing when ``blank_is_missing``."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.infer_dtype(cats) not in {"string", "empty"}:  # numbers as SKUs
            as_text = pd.Index(cats).astype("string")
            if as_text.has_duplicates:  # 1 and "1": no longer distinct
                return _to_text(s.astype(object), blank_is_missing=blank_is_missing, copy=copy)
            s = s.cat.rename_categories(pd.Index(as_text.to_numpy(dtype=object), dtype=object))
            cats = s.cat.categories
        if blank_is_missing:
            blank_cats = [c for c in cats if c.strip() == ""]
            if blank_cats:
                return s.cat.remove_categories(blank_cats)
        return s.copy() if copy else s
    text = s if isinstance(s.dtype, pd.StringDtype) else s.astype("string")
    if blank_is_missing:
        blank = _blank(text)
        if blank.any():
            return text.mask(blank)
    return text.copy() if copy and text is s else text


def _blank(text: pd.Series) -> npt.NDArray[np.bool_]:
    """Which strings are empty or whitespace only (Python's ``str.strip``)."""
    if getattr(text.dtype, "storage", None) == "pyarrow":
        # few candidates by a vectorised test, then Python's own answer on them
        arr = pa.chunked_array(text.array._pa_array)
        maybe = pc.fill_null(pc.match_substring_regex(arr, _MAYBE_BLANK), False)
        hits = np.asarray(maybe.to_numpy(zero_copy_only=False), dtype=bool)
        where = np.flatnonzero(hits)
        if len(where):
            values = text.iloc[where].to_numpy(dtype=object)
            hits[where] = [v.strip() == "" for v in values]
        return hits
    stripped = text.str.strip() == ""
    return np.asarray(stripped.fillna(False), dtype=bool)


#: Every character Python's ``str.strip`` removes, as an RE2 class (a superset:
#: candidates are checked with ``str.strip``).
_MAYBE_BLANK: Final = r"^[\s\x0b\x1c-\x1f\x85\p{Z}]*$"


def _to_bool(s: pd.Series) -> pd.Series:
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.astype("boolean")
    mapping = {
        "true": True,
        "1": True,
        "yes": True,
        "t": True,
        "false": False,
        "0": False,
        "no": False,
        "f": False,
    }
    return s.map(lambda v: mapping.get(str(v).strip().lower()) if pd.notna(v) else None).astype(
        "boolean"
    )


@dataclass
class ErpSnapshot:
    """Everything extracted from the ERP for one run, as contract frames."""

    suppliers: pd.DataFrame = field(default_factory=lambda: empty_frame("suppliers"))
    products: pd.DataFrame = field(default_factory=lambda: empty_frame("products"))
    supplier_products: pd.DataFrame = field(
        default_factory=lambda: empty_frame("supplier_products")
    )
    stock_levels: pd.DataFrame = field(default_factory=lambda: empty_frame("stock_levels"))
    purchase_orders: pd.DataFrame = field(default_factory=lambda: empty_frame("purchase_orders"))
    purchase_order_lines: pd.DataFrame = field(
        default_factory=lambda: empty_frame("purchase_order_lines")
    )
    sales_order_lines: pd.DataFrame = field(
        default_factory=lambda: empty_frame("sales_order_lines")
    )
    returns: pd.DataFrame = field(default_factory=lambda: empty_frame("returns"))
    stock_history: pd.DataFrame = field(default_factory=lambda: empty_frame("stock_history"))
    promotions: pd.DataFrame = field(default_factory=lambda: empty_frame("promotions"))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables().items()}
