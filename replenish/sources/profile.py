"""What the ERP profiles other than the generic one share: column helpers for
their schema subsets, the schema check that names what is missing, and the
supplier ranking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Column, Date, Engine, Float, Integer, MetaData, String, Table, inspect

from replenish.errors import ContractError
from replenish.sources.db import safe_url


def table(metadata: MetaData, name: str, *cols: Column[Any]) -> Table:
    return Table(name, metadata, *cols)


def int_col(name: str) -> Column[Any]:
    return Column(name, Integer)


def str_col(name: str) -> Column[Any]:
    return Column(name, String)


def float_col(name: str) -> Column[Any]:
    return Column(name, Float)


def date_col(name: str) -> Column[Any]:
    return Column(name, Date)


def check_schema(
    engine: Engine, url: str, profile: str, required: Mapping[str, tuple[str, ...]]
) -> dict[str, set[str]]:
    """Raise :class:`ContractError` naming the first missing ERP table or
    column of ``required``; return the columns of every table in the database
    (so a profile can look for optional ones)."""
    insp = inspect(engine)
    present = set(insp.get_table_names())
    for name in required:
        if name not in present:
            raise ContractError(
                f"ERP database {safe_url(url)}: table {name!r} is missing "
                f"(the {profile} profile reads {', '.join(required)})"
            )
    found: dict[str, set[str]] = {}
    for name in present:
        found[name] = {c["name"] for c in insp.get_columns(name)}
    for name, cols in required.items():
        missing = [c for c in cols if c not in found[name]]
        if missing:
            raise ContractError(
                f"ERP database {safe_url(url)}: table {name!r} has no column "
                f"{missing[0]!r} (the {profile} profile reads {', '.join(cols)})"
            )
    return found


def rank_priority(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per (sku, supplier_id), the first by ``order``; ``priority``
    1..n per SKU in that order (1 = preferred)."""
    frame = frame.sort_values(["sku", *order], kind="stable")
    frame = frame.drop_duplicates(["sku", "supplier_id"]).copy()
    frame["priority"] = frame.groupby("sku").cumcount() + 1
    return frame.reset_index(drop=True)
