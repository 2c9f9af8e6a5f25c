"""The built-in *generic* ERP profile: the canonical contract tables as they are.

``GenericErp(url).read_snapshot(...)`` reads the tables of DESIGN.md from any
SQLAlchemy database (SQLite, PostgreSQL, MariaDB/MySQL) column-wise into
contract frames; ``write_snapshot`` writes a snapshot into such a database
(used by the demo shop and by tests that build ERPs on real servers).

Errors: an unreachable server raises :class:`SourceUnavailable` (retry); a
missing table or column raises :class:`ContractError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Date, DateTime, Engine, Select, Table, inspect, select

from replenish import model
from replenish.errors import ContractError, SourceUnavailable
from replenish.sources.db import make_engine, safe_url, translate_errors
from replenish.sources.fastread import FrameReader, lean_frame

#: Sales history read by default: two years, enough for a yearly profile.
DEFAULT_HISTORY_DAYS = 730
_INSERT_CHUNK = 20_000


def day_end(as_of: date) -> datetime:
    """The first instant after ``as_of``: rows strictly before it are known on
    the evening of ``as_of``."""
    return datetime.combine(as_of + timedelta(days=1), time.min)


@dataclass(frozen=True)
class ReadWindow:
    """What a read for ``as_of`` may see, the same for every ERP profile.

    Rows from ``start`` (``as_of − history_days``); when ``as_of`` is in the
    past (a replay) only rows before ``end``, the end of the as-of day: they
    were not known then. When it is today, ``end`` is None and rows stamped
    in the future are read, so that the validation gate can reject them by
    name instead of silently dropping them. ``skus``: the SKU filter, or None.

    ``sales_start`` (optional): read ``sales_order_lines`` and ``returns`` only
    from this later instant on (the other tables still from ``start``), for an
    incremental read whose older sales are cached (docs/incremental.md);
    :attr:`sales_from` is the bound every profile applies to them.
    """

    start: datetime
    end: datetime | None
    now: datetime
    skus: list[str] | None
    sales_start: datetime | None = None

    @classmethod
    def of(
        cls,
        as_of: date,
        history_days: int,
        skus: Sequence[str] | None,
        now: datetime | None,
        *,
        sales_start: datetime | None = None,
    ) -> ReadWindow:
        now = now or datetime.now()
        cutoff = day_end(as_of)
        return cls(
            start=datetime.combine(as_of - timedelta(days=history_days), time.min),
            end=cutoff if cutoff <= now else None,
            now=now,
            skus=list(dict.fromkeys(skus)) if skus else None,
            sales_start=sales_start,
        )

    @property
    def sales_from(self) -> datetime:
        """Where sales lines and returns are read from: ``start``, or the later
        ``sales_start``."""
        if self.sales_start is None:
            return self.start
        return max(self.start, self.sales_start)


def coerced_snapshot(raw: dict[str, pd.DataFrame]) -> model.ErpSnapshot:
    """A snapshot of the frames read, each coerced to its contract table.

    ``raw`` is consumed (emptied as it goes): each frame read is released as
    soon as its contract frame is made, which shares the columns that were
    already in contract form (the large tables' memory is not held twice).
    A contract table not in ``raw`` is empty, its text columns as lean as a
    read one's (:func:`~replenish.sources.fastread.lean_frame`)."""
    frames: dict[str, pd.DataFrame] = {}
    for name in list(raw):
        frames[name] = model.coerce(name, raw.pop(name), copy=False)
    for name in model.CONTRACT:  # a table not read: empty, with the same dtypes
        if name not in frames:
            frames[name] = lean_frame(name, model.empty_frame(name))
    return model.ErpSnapshot(**frames)


class GenericErp:
    """Reads the canonical tables from a database in the generic profile."""

    name = "generic"

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url, what="ERP database", must_exist=True)

    def __repr__(self) -> str:
        return f"GenericErp({safe_url(self.url)!r})"

    def _errors(self, what: str) -> Any:
        return translate_errors(what, self.url, SourceUnavailable, ContractError)

    def check_contract(self) -> dict[str, list[str]]:
        """Raise :class:`ContractError` if a required table or column is
        missing; return the contract columns present in each table that is
        there (optional tables and columns may be absent)."""
        with self._errors("cannot read the ERP database"):
            insp = inspect(self.engine)
            present = set(insp.get_table_names())
            for name in model.REQUIRED_TABLES:
                if name not in present:
                    raise ContractError(
                        f"ERP database {safe_url(self.url)}: table {name!r} is missing "
                        f"(the generic profile needs {', '.join(model.REQUIRED_TABLES)})"
                    )
            optional = [n for n in model.OPTIONAL_TABLES if n in present]
            found: dict[str, list[str]] = {}
            for name in (*model.REQUIRED_TABLES, *optional):
                cols = {c["name"] for c in insp.get_columns(name)}
                may_lack = model.OPTIONAL_COLUMNS.get(name, ())
                missing = [c for c in model.CONTRACT[name] if c not in cols and c not in may_lack]
                found[name] = [c for c in model.CONTRACT[name] if c in cols]
                if missing:
                    raise ContractError(
                        f"ERP database {safe_url(self.url)}: table {name!r} has no column "
                        f"{missing[0]!r} (expected {', '.join(model.CONTRACT[name])})"
                    )
        return found

    def read_snapshot(
        self,
        as_of: date,
        *,
        history_days: int = DEFAULT_HISTORY_DAYS,
        skus: Sequence[str] | None = None,
        now: datetime | None = None,
        sales_start: datetime | None = None,
    ) -> model.ErpSnapshot:
        """Everything the nightly plan needs, known on the evening of ``as_of``
        (sales, returns and stock history within :class:`ReadWindow`; sales and
        returns from ``sales_start`` when it is later than the window's start)."""
        present = self.check_contract()
        window = ReadWindow.of(as_of, history_days, skus, now, sales_start=sales_start)
        start, end, sku_filter = window.start, window.end, window.skus
        t = model.ERP_METADATA.tables

        def q(table: Table, date_col: str | None = None, since: datetime = start) -> Select[Any]:
            stmt = select(*(table.c[c] for c in present[table.name]))
            if sku_filter is not None and "sku" in table.c:
                stmt = stmt.where(table.c.sku.in_(sku_filter))
            if date_col is not None:
                col = table.c[date_col]
                # compare a DATE column with dates: SQLite compares them as text,
                # and "2024-05-10" < "2024-05-10 00:00:00"
                as_date = isinstance(col.type, Date) and not isinstance(col.type, DateTime)
                stmt = stmt.where(col >= (since.date() if as_date else since))
                if end is not None:
                    stmt = stmt.where(col < (end.date() if as_date else end))
            return stmt

        po, pol = t["purchase_orders"], t["purchase_order_lines"]
        known_po = (po.c.ordered_at >= start) | po.c.status.in_(sorted(model.OPEN_PO_STATUSES))
        if end is not None:  # a replay: POs placed later were not known, nor their lines
            known_po = known_po & (po.c.ordered_at < end)
        po_stmt = q(po).where(known_po)
        pol_stmt = q(pol).where(pol.c.po_id.in_(select(po.c.po_id).where(known_po)))

        statements: dict[str, Select[Any]] = {
            "suppliers": q(t["suppliers"]),
            "products": q(t["products"]),
            "supplier_products": q(t["supplier_products"]),
            "stock_levels": q(t["stock_levels"]),
            "purchase_orders": po_stmt,
            "purchase_order_lines": pol_stmt,
            "sales_order_lines": q(t["sales_order_lines"], "ordered_at", window.sales_from),
            "returns": q(t["returns"], "returned_at", window.sales_from),
        }
        if "stock_history" in present:
            statements["stock_history"] = q(t["stock_history"], "date")
        if "promotions" in present:  # past promotions teach uplift, future ones apply it
            statements["promotions"] = q(t["promotions"]).where(
                t["promotions"].c.end_date >= start.date()
            )

        return coerced_snapshot(self._read_frames(statements))

    def _read_frames(self, statements: dict[str, Select[Any]]) -> dict[str, pd.DataFrame]:
        """Run every statement on one connection; the frames as read, column-wise
        (:mod:`replenish.sources.fastread`: on PostgreSQL through ADBC)."""
        with (
            self._errors("cannot read the ERP database"),
            self.engine.connect() as conn,
            FrameReader(conn) as reader,
        ):
            return {name: reader.read(stmt, name) for name, stmt in statements.items()}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, missing values as None."""
    cols: dict[str, list[Any]] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            values = [None if v is pd.NaT else v.to_pydatetime() for v in s]
        else:
            arr = s.astype(object).to_numpy()
            values = [
                None if (v is pd.NA or (isinstance(v, float) and np.isnan(v))) else v for v in arr
            ]
            values = [v.item() if isinstance(v, np.generic) else v for v in values]
        cols[col] = values
    return [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def write_snapshot(
    snapshot: model.ErpSnapshot, url: str, *, replace: bool = True
) -> dict[str, int]:
    """Create the generic-profile tables in ``url`` and write ``snapshot``.

    ``replace`` drops the contract tables first. Returns rows written per table.
    """
    engine = make_engine(url, what="ERP database")
    counts: dict[str, int] = {}
    try:
        with translate_errors(
            "cannot write the ERP database", url, SourceUnavailable, ContractError
        ):
            if replace:
                model.ERP_METADATA.drop_all(engine)
            model.ERP_METADATA.create_all(engine)
            with engine.begin() as conn:
                for name, frame in snapshot.tables().items():
                    table = model.ERP_METADATA.tables[name]
                    rows = _records(frame[list(model.CONTRACT[name])])
                    for i in range(0, len(rows), _INSERT_CHUNK):
                        conn.execute(table.insert(), rows[i : i + _INSERT_CHUNK])
                    counts[name] = len(rows)
    finally:
        engine.dispose()
    return counts
