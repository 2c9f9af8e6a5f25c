"""ERP profiles written as a YAML file of SQL queries: a new ERP without Python.

A profile file names, for every contract table, one ``SELECT`` whose result
columns are the contract's column names (aliases); see
``config/erp-profiles/dolibarr.yaml`` and docs/erp-profiles.md. Select it with
``REPLENISH_ERP_PROFILE=yaml:path/to/profile.yaml`` (or just the path, when it
ends in ``.yaml`` / ``.yml``)::

    erp = open_erp(url, profile="yaml:config/erp-profiles/dolibarr.yaml")
    snapshot = erp.read_snapshot(as_of)

Queries get their values only as bound parameters (never formatted into the
SQL): the read window (:data:`WINDOW_PARAMETERS`: ``:start``, ``:end``,
``:now``, ``:as_of``, ``:start_date``, ``:end_date``) and the constants of the
file's own ``parameters:`` section. The SKU filter and the read window are
applied to the rows read as well (in pandas), so a query that ignores them is
slower, never wrong. Rows then go through :func:`coerced_snapshot` like every
profile's, so the validation gate applies unchanged.

Errors: a bad file (not YAML, a missing query, an unknown key or parameter)
raises :class:`ConfigurationError` naming the file and the key, before any
connection is made; a query that fails or returns too few columns raises
:class:`ContractError` naming the file, the query and what was expected; an
unreachable server raises :class:`SourceUnavailable` (the extract task
retries it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import Connection, Date, DateTime, Engine, TextClause, bindparam, text
from sqlalchemy.types import Boolean, Float, Integer, String, TypeEngine

from replenish import model
from replenish.errors import ConfigurationError, ContractError, SourceUnavailable
from replenish.sources.csv_export import load_yaml_model
from replenish.sources.db import safe_url, translate_errors
from replenish.sources.fastread import FrameReader
from replenish.sources.generic import DEFAULT_HISTORY_DAYS, GenericErp, ReadWindow, coerced_snapshot

#: ``profile="yaml:PATH"`` selects the YAML profile in the file at PATH.
YAML_PREFIX: Final = "yaml:"

#: Bound parameters every query may use, with their SQL type (on PostgreSQL
#: the value is sent with a cast to it, so ``:end IS NULL`` works).
WINDOW_PARAMETERS: Final[Mapping[str, TypeEngine[Any]]] = {
    "start": DateTime(),  # as_of − history_days, midnight
    "end": DateTime(),  # the first instant after as_of in a replay; NULL when as_of is today
    "now": DateTime(),  # the read time (stock_levels.as_of)
    "as_of": Date(),  # the planning date
    "start_date": Date(),  # :start as a date, for DATE columns
    "end_date": Date(),  # :end as a date (NULL when :end is)
}

#: Contract tables whose query may be ``null`` (the ERP keeps no such data):
#: read as an empty table. Required tables must still be named in the file.
NULLABLE_TABLES: Final = ("returns", *model.OPTIONAL_TABLES)

ParameterValue = bool | int | float | str | datetime | date

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# a leading comment, then SELECT or WITH
_SELECT = re.compile(r"\A(?:\s*(?:--[^\n]*(?:\n|\Z)|/\*.*?\*/))*\s*(?:select|with)\b", re.I | re.S)
# :name::type, which SQLAlchemy does not read as a parameter (PostgreSQL casts)
_PG_CAST_ON_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)::")


def profile_path(profile: str) -> Path | None:
    """The YAML file named by an ERP profile setting, or None for a built-in
    profile name: ``yaml:PATH``, or any value ending in ``.yaml`` / ``.yml``."""
    if profile.startswith(YAML_PREFIX):
        raw = profile[len(YAML_PREFIX) :].strip()
        if not raw:
            raise ConfigurationError(
                f"ERP profile {profile!r}: expected yaml:PATH, the path of a YAML profile file"
            )
        return Path(raw).expanduser()
    if profile.lower().endswith((".yaml", ".yml")):
        return Path(profile).expanduser()
    return None


# --------------------------------------------------------------------- the file


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileQueries(_Config):
    """One SQL ``SELECT`` per contract table (DESIGN.md, the canonical data
    contract); ``null`` only where :data:`NULLABLE_TABLES` allows it."""

    suppliers: str
    products: str
    supplier_products: str
    stock_levels: str
    purchase_orders: str
    purchase_order_lines: str
    sales_order_lines: str
    returns: str | None
    stock_history: str | None = None
    promotions: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_tables(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in model.CONTRACT]
            if unknown:
                raise ValueError(
                    f"unknown table {unknown[0]!r}; the contract tables are "
                    f"{', '.join(model.CONTRACT)}"
                )
        return data

    @field_validator("*")
    @classmethod
    def _one_select(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        sql = value.strip().rstrip(";").rstrip()
        if not sql:
            hint = (
                " (or null: the ERP keeps no such data)"
                if info.field_name in NULLABLE_TABLES
                else ""
            )
            raise ValueError(f"empty query; expected a SELECT{hint}")
        if not _SELECT.match(sql):
            first = sql.split(None, 1)[0]
            raise ValueError(f"must be one SELECT (or WITH ... SELECT) statement, not {first!r}")
        cast = _PG_CAST_ON_PARAMETER.search(sql)
        if cast:
            raise ValueError(
                f"write CAST(:{cast[1]} AS type), not :{cast[1]}::type "
                "(a colon right after a parameter hides it)"
            )
        return sql

    def tables(self) -> dict[str, str | None]:
        """Contract table -> its query (None: read as an empty table)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class YamlProfile(_Config):
    """The content of a YAML profile file."""

    #: shown in messages and ``repr``; default: the file name without extension
    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str = ""
    #: constants the queries use as ``:name`` (a warehouse, a channel, a company id)
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    queries: ProfileQueries

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
        for key in value:
            if not _IDENTIFIER.fullmatch(key):
                raise ValueError(f"{key!r} is not a parameter name (letters, digits, _)")
            if key in WINDOW_PARAMETERS:
                raise ValueError(f"{key!r} is a built-in parameter; choose another name")
        return value

    @model_validator(mode="after")
    def _parameters_known(self) -> YamlProfile:
        known = {*WINDOW_PARAMETERS, *self.parameters}
        for table, sql in self.queries.tables().items():
            if sql is None:
                continue
            unknown = sorted(set(query_parameters(sql)) - known)
            if unknown:
                listed = ", ".join(f":{p}" for p in (*WINDOW_PARAMETERS, *self.parameters))
                raise ValueError(
                    f"queries.{table}: unknown parameter :{unknown[0]} "
                    f"(known: {listed}; add it under parameters:)"
                )
        return self


def query_parameters(sql: str) -> list[str]:
    """The ``:name`` bound parameters of ``sql``, as SQLAlchemy reads them."""
    return list(text(sql).compile().params)


def load_profile(path: str | Path) -> YamlProfile:
    """The validated profile in the YAML file at ``path``; a bad file raises
    :class:`ConfigurationError` naming the file and the first bad key."""
    return load_yaml_model(path, YamlProfile, "ERP profile")


# --------------------------------------------------------------------- reading


def _type_of(value: ParameterValue) -> TypeEngine[Any]:
    if isinstance(value, bool):
        return Boolean()
    if isinstance(value, int):
        return Integer()
    if isinstance(value, float):
        return Float()
    if isinstance(value, datetime):
        return DateTime()
    if isinstance(value, date):
        return Date()
    return String()


def window_values(window: ReadWindow, as_of: date) -> dict[str, Any]:
    """The values of :data:`WINDOW_PARAMETERS` for one read."""
    return {
        "start": window.start,
        "end": window.end,
        "now": window.now,
        "as_of": as_of,
        "start_date": window.start.date(),
        "end_date": window.end.date() if window.end is not None else None,
    }


class YamlErp(GenericErp):
    """Reads an ERP through the queries of a YAML profile file."""

    name = "yaml"

    def __init__(self, url: str, path: str | Path, *, engine: Engine | None = None) -> None:
        self.path = Path(path)
        # the file first: a bad profile is reported before any connection
        self.profile = load_profile(self.path)
        self.name = self.profile.name or self.path.stem
        super().__init__(url, engine=engine)

    def __repr__(self) -> str:
        return f"YamlErp({safe_url(self.url)!r}, {str(self.path)!r})"

    def _queries(self) -> dict[str, str]:
        return {name: sql for name, sql in self.profile.queries.tables().items() if sql is not None}

    def _statement(self, sql: str, values: Mapping[str, Any]) -> TextClause:
        types = {
            **WINDOW_PARAMETERS,
            **{k: _type_of(v) for k, v in self.profile.parameters.items()},
        }
        all_values = {**values, **self.profile.parameters}
        binds = [bindparam(p, all_values[p], type_=types[p]) for p in query_parameters(sql)]
        return text(sql).bindparams(*binds)

    @contextmanager
    def _query_errors(self, table: str) -> Iterator[None]:
        with translate_errors(
            f"ERP profile {self.path}: query {table!r} failed",
            self.url,
            SourceUnavailable,
            ContractError,
        ):
            yield

    def _columns(
        self, conn: Connection, table: str, sql: str, values: Mapping[str, Any]
    ) -> list[str]:
        """The contract columns the query returns; :class:`ContractError` if
        one is missing or returned twice. Runs it wrapped so that no row is read."""
        wrapped = f"SELECT * FROM (\n{sql}\n) AS replenish_check WHERE 1 = 0"
        with self._query_errors(table):
            result = conn.execute(self._statement(wrapped, values))
            keys = result.keys()  # the result's column names (it has no row)
            result.close()
        returned = [str(k).lower() for k in keys]
        expected = list(model.CONTRACT[table])
        may_lack = model.OPTIONAL_COLUMNS.get(table, ())
        missing = [c for c in expected if c not in returned and c not in may_lack]
        twice = sorted({c for c in returned if c in expected and returned.count(c) > 1})
        if missing or twice:
            what = (
                f"returns no column {', '.join(missing)}"
                if missing
                else f"returns column {', '.join(twice)} twice"
            )
            raise ContractError(
                f"ERP profile {self.path}: query {table!r} {what} "
                f"(expected the columns {', '.join(expected)}"
                + (f"; {', '.join(may_lack)} may be left out" if may_lack else "")
                + f"; it returns {', '.join(returned) or 'nothing'})"
            )
        return [c for c in expected if c in returned]

    def check_contract(self) -> dict[str, list[str]]:
        """Run every query of the profile without reading a row; raise
        :class:`ContractError` naming the query that fails or lacks a contract
        column; return the contract columns each query returns."""
        values = window_values(
            ReadWindow.of(date.today(), DEFAULT_HISTORY_DAYS, None, None), date.today()
        )
        with self._errors("cannot read the ERP database"), self.engine.connect() as conn:
            return {
                table: self._columns(conn, table, sql, values)
                for table, sql in self._queries().items()
            }

    def read_snapshot(
        self,
        as_of: date,
        *,
        history_days: int = DEFAULT_HISTORY_DAYS,
        skus: Sequence[str] | None = None,
        now: datetime | None = None,
        sales_start: datetime | None = None,
    ) -> model.ErpSnapshot:
        """The contract frames known on the evening of ``as_of``: every query
        run with the window's bound parameters, its contract columns checked
        first; then coerced (:func:`coerced_snapshot`) and cut to the window and
        the SKU filter (:func:`apply_window`). ``sales_start`` (incremental
        reads): sales lines and returns are kept from there on; the queries
        still see ``:start`` (a profile reads them whole and the cut is here)."""
        window = ReadWindow.of(as_of, history_days, skus, now, sales_start=sales_start)
        values = window_values(window, as_of)
        raw: dict[str, pd.DataFrame] = {}
        with (
            self._errors("cannot read the ERP database"),
            self.engine.connect() as conn,
            FrameReader(conn) as reader,
        ):
            for table, sql in self._queries().items():
                columns = self._columns(conn, table, sql, values)
                with self._query_errors(table):
                    frame = reader.read(self._statement(sql, values), table)
                frame.columns = [str(c).lower() for c in frame.columns]
                raw[table] = frame[columns]
        return apply_window(coerced_snapshot(raw), window)


def apply_window(snapshot: model.ErpSnapshot, window: ReadWindow) -> model.ErpSnapshot:
    """``snapshot`` cut to what the generic profile would read in ``window``.

    Sales from ``start`` (``ordered_at``), returns (``returned_at``), stock
    history (``date``); in a replay (``end`` set) nothing stamped at or after
    ``end``; purchase orders placed from ``start`` or still open (draft, sent,
    confirmed), and before ``end``, and only the lines of the purchase orders
    kept; promotions ending on or after ``start``; with a SKU
    filter, only those SKUs in every table with a ``sku`` column. Rows whose
    date is missing are kept for the validation gate to reject by name.
    """
    start, end = pd.Timestamp(window.start), window.end
    tables = snapshot.tables()
    pos = tables["purchase_orders"]

    def dated(
        frame: pd.DataFrame, col: str, *, lower: bool = True, since: pd.Timestamp = start
    ) -> pd.Series:
        stamp = frame[col]
        keep = pd.Series(True, index=frame.index)
        if lower:
            keep &= ~(stamp < since)
        if end is not None:
            keep &= ~(stamp >= pd.Timestamp(end))
        return keep

    masks: dict[str, pd.Series] = {
        "sales_order_lines": dated(
            tables["sales_order_lines"], "ordered_at", since=pd.Timestamp(window.sales_from)
        ),
        "returns": dated(tables["returns"], "returned_at", since=pd.Timestamp(window.sales_from)),
        "stock_history": dated(tables["stock_history"], "date"),
        "purchase_orders": dated(pos, "ordered_at", lower=False)
        & (~(pos["ordered_at"] < start) | pos["status"].isin(model.OPEN_PO_STATUSES)),
        "promotions": ~(tables["promotions"]["end_date"] < start.normalize()),
    }
    if window.skus is not None:
        wanted = set(window.skus)
        for name, frame in tables.items():
            if "sku" in frame.columns:
                in_filter = frame["sku"].isin(wanted)
                masks[name] = masks.get(name, pd.Series(True, index=frame.index)) & in_filter
    cut = {name: tables[name][mask].reset_index(drop=True) for name, mask in masks.items()}
    known = set(cut["purchase_orders"]["po_id"].dropna())
    lines = cut.get("purchase_order_lines", tables["purchase_order_lines"])
    cut["purchase_order_lines"] = lines[lines["po_id"].isin(known)].reset_index(drop=True)
    return replace(snapshot, **cut)
