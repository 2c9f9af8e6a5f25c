"""Supplier order days: the review period and the next day an order can go out.

``suppliers.order_days`` lists the weekdays a supplier takes orders, e.g.
``"mon,thu"`` (NULL: any day). A supplier with order days is planned by
periodic review: its review period R is the mean gap between two order days,
7 / (order days per week) — Mon & Thu have gaps of 3 and 4 days, R = 3.5 —
and orders go out on those days only (Silver, Pyke & Thomas, *Inventory and
Production Management in Supply Chains*, 4th ed., ch. 6: the (R, S) system;
R set by the supplier's schedule rather than chosen).

Tokens are case-insensitive; full names ("Monday") and three-letter
abbreviations are read, separated by commas, semicolons, slashes or spaces.
A text with no readable weekday is reported and treated as "any day".
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd

from replenish.model import WEEKDAYS

__all__ = ["CALENDAR_COLUMNS", "parse_order_days", "supplier_calendar"]

CALENDAR_COLUMNS = [
    "supplier_id",
    "order_days",
    "order_days_problem",
    "review_period",
    "next_order_date",
    "next_order_label",
    "days_to_next_order",
    "order_day_today",
]

_SPLIT = re.compile(r"[\s,;/|+]+")
_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_order_days(text: object) -> tuple[int, ...] | None:
    """Weekday numbers (0 = Monday) of an ``order_days`` text; None when the
    text is missing or blank (any day); an empty tuple when it has no
    readable weekday.

    >>> parse_order_days("mon,thu"), parse_order_days("Friday; Tue"), parse_order_days(None)
    ((0, 3), (1, 4), None)
    >>> parse_order_days("someday")
    ()
    """
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return None
    raw = str(text).strip().lower()
    if not raw:
        return None
    days = {WEEKDAYS.index(tok[:3]) for tok in _SPLIT.split(raw) if tok[:3] in WEEKDAYS}
    return tuple(sorted(days))


def supplier_calendar(suppliers: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Per supplier: its order days, review period and next order date.

    Args:
        suppliers: contract suppliers (``order_days`` may be absent: any day).
        as_of: the planning date (an order day counts as today's).

    Returns:
        Columns :data:`CALENDAR_COLUMNS`: ``order_days`` normalised
        ("Mon, Thu"; <NA> = any day), ``order_days_problem`` (the unreadable
        text, else <NA>), ``review_period`` (7 / days per week; NaN = any
        day), ``next_order_date`` (the first order day on or after ``as_of``;
        ``as_of`` for any day), ``next_order_label`` ("Thu 26-11"; "today"
        for any day), ``days_to_next_order`` (0 = today),
        ``order_day_today``. One row per distinct supplier_id.
    """
    sup = suppliers[suppliers["supplier_id"].notna()].drop_duplicates("supplier_id")
    texts = sup["order_days"] if "order_days" in sup.columns else pd.Series(pd.NA, index=sup.index)
    today = as_of.weekday()
    rows: list[tuple[object, ...]] = []
    for supplier_id, text in zip(sup["supplier_id"].astype(str), texts, strict=True):
        days = parse_order_days(text)
        problem = str(text) if days == () else None
        if not days:
            rows.append((supplier_id, None, problem, np.nan, as_of, "today", 0, True))
            continue
        wait = min((d - today) % 7 for d in days)
        next_day = as_of + timedelta(days=wait)
        rows.append(
            (
                supplier_id,
                ", ".join(_LABELS[d] for d in days),
                None,
                7.0 / len(days),
                next_day,
                f"{_LABELS[next_day.weekday()]} {next_day:%d-%m}",
                wait,
                wait == 0,
            )
        )
    out = pd.DataFrame(rows, columns=CALENDAR_COLUMNS)
    return out.astype(
        {
            "supplier_id": "string",
            "order_days": "string",
            "order_days_problem": "string",
            "review_period": "float64",
            "next_order_date": "datetime64[ns]",
            "next_order_label": "string",
            "days_to_next_order": "int64",
            "order_day_today": "bool",
        }
    )
