"""Draft purchase orders: grouping the planned lines per supplier × location,
and topping a draft up to the supplier's minimum order value.

Pure: plans in, (headers, lines) frames out; each line explains itself
(``explanation`` and ``details``: :mod:`replenish.orders.explain`). Storing
them idempotently is the store's job (``Store.publish_drafts``); approving
them :mod:`replenish.orders.approval`'s, pushing them to an ERP
:mod:`replenish.orders.push`'s, exporting them :mod:`replenish.orders.export`'s
(docs/publishing.md).

Usage::

    headers, lines = build_drafts(plans, suppliers, as_of)

or, step by step (a partial run merges the stored lines of the other SKUs
before the top-up and the headers)::

    lines = build_lines(plans, as_of)
    lines = merge_partial(stored_lines, lines, scope)
    lines, topups = top_up_to_minimum(lines, plans, suppliers)
    headers = build_headers(lines, suppliers, topups)

Minimum order value: a draft below its supplier's ``min_order_value`` is
topped up by whole packs, the most urgent line first (fewest days of cover
per day of lead time), each line at most up to its cap — ``max_eoq_multiple``
× its EOQ and an inventory position of ``max_days_of_cover`` days of demand,
whichever is lower — until the minimum is met. Lines planned just-in-time and
lines without demand are never topped up (no speculative stock). If the
lines cannot reach the minimum within their caps the draft is left as it
is, flagged ``below_minimum`` with the reason in ``minimum_note``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.orders.explain import EXPLAIN_COLUMNS, line_details, line_explanations
from replenish.policy.text import cat, fmt

__all__ = [
    "DEFAULT_TOP_UP",
    "EXPLAIN_COLUMNS",
    "HEADER_COLUMNS",
    "LINE_COLUMNS",
    "TOP_UP_COLUMNS",
    "TopUpSettings",
    "build_drafts",
    "build_headers",
    "build_lines",
    "merge_partial",
    "po_key",
    "top_up_to_minimum",
]

HEADER_COLUMNS = [
    "po_key",
    "supplier_id",
    "location_id",
    "currency",
    "line_count",
    "total_value",
    "min_order_value",
    "below_minimum",
    "topped_up",
    "topup_value",
    "minimum_note",
]
LINE_COLUMNS = [
    "po_key",
    "line_no",
    "supplier_id",
    "location_id",
    "sku",
    "supplier_sku",
    "qty",
    "unit_price",
    "line_value",
    "explanation",
    "details",
]
#: What :func:`top_up_to_minimum` reports per draft.
TOP_UP_COLUMNS = ["po_key", "topup_value", "minimum_note"]

FloatArray = npt.NDArray[np.float64]

#: Money below this is rounding noise (values are rounded to cents).
_CENT = 0.005


@dataclass(frozen=True)
class TopUpSettings:
    """Caps of the minimum-order-value top-up.

    Attributes:
        max_eoq_multiple: a topped-up line holds at most this many EOQs.
        max_days_of_cover: nor brings the inventory position beyond this many
            days of mean demand.
    """

    max_eoq_multiple: float = 2.0
    max_days_of_cover: float = 60.0

    def __post_init__(self) -> None:
        if not self.max_eoq_multiple >= 0:
            raise ValueError("max_eoq_multiple must be >= 0")
        if not self.max_days_of_cover >= 0:
            raise ValueError("max_days_of_cover must be >= 0")


DEFAULT_TOP_UP = TopUpSettings()


def po_key(as_of: date, supplier_id: str, location_id: str) -> str:
    """The idempotency key of a draft: one per supplier × location × planning date."""
    return f"{as_of.isoformat()}/{supplier_id}/{location_id}"


def _num(frame: pd.DataFrame, col: str) -> FloatArray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return np.asarray(
        pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
    )


def _text(frame: pd.DataFrame, col: str) -> npt.NDArray[np.object_]:
    if col not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return np.asarray(frame[col].astype("string").to_numpy(dtype=object, na_value=""), dtype=object)


def build_lines(plans: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Draft PO lines from the plan rows that have an order quantity.

    Lines get their ``po_key`` (supplier × location × ``as_of``), a value, an
    explanation and its figures (``details``, see :mod:`replenish.orders.explain`);
    they are numbered from 1 in SKU order within each order.
    """
    wanted = plans[(plans["order_qty"].fillna(0) > 0) & plans["supplier_id"].notna()]
    if wanted.empty:
        return pd.DataFrame(columns=LINE_COLUMNS)
    lines = wanted.copy()
    lines["po_key"] = cat(
        as_of.isoformat() + "/",
        _text(lines, "supplier_id"),
        "/",
        _text(lines, "location_id"),
    )
    lines["qty"] = lines["order_qty"].astype(float)
    lines["unit_price"] = lines["unit_price"].astype(float).fillna(0.0)
    lines["line_value"] = (lines["qty"] * lines["unit_price"]).round(2)
    lines["explanation"] = line_explanations(lines)
    lines["details"] = pd.Series(line_details(lines), index=lines.index, dtype=object)
    if "supplier_sku" not in lines:
        lines["supplier_sku"] = None
    return number_lines(lines)


def number_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines sorted by order and SKU, numbered from 1 within each order."""
    out = lines.sort_values(["po_key", "sku"]).copy()
    out["line_no"] = out.groupby("po_key").cumcount() + 1
    return out[LINE_COLUMNS].reset_index(drop=True)


def _minimums(suppliers: pd.DataFrame) -> pd.DataFrame:
    sup = suppliers[["supplier_id", "currency", "min_order_value"]].drop_duplicates("supplier_id")
    return sup.assign(
        min_order_value=pd.to_numeric(sup["min_order_value"], errors="coerce")
        .astype(float)
        .fillna(0.0)
    )


def _totals(lines: pd.DataFrame, suppliers: pd.DataFrame) -> pd.DataFrame:
    headers = lines.groupby(["po_key", "supplier_id", "location_id"], as_index=False).agg(
        line_count=("sku", "size"), total_value=("line_value", "sum")
    )
    headers = headers.merge(_minimums(suppliers), on="supplier_id", how="left")
    headers["min_order_value"] = headers["min_order_value"].astype(float).fillna(0.0)
    headers["total_value"] = headers["total_value"].astype(float).round(2)
    return headers


def top_up_to_minimum(
    lines: pd.DataFrame,
    plans: pd.DataFrame,
    suppliers: pd.DataFrame,
    settings: TopUpSettings = DEFAULT_TOP_UP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top drafts below their supplier's minimum order value up, most urgent
    line first, by whole packs within each line's cap (module docstring).

    Args:
        lines: draft lines (:data:`LINE_COLUMNS`).
        plans: the plan rows behind them (joined on sku × location_id):
            demand_mean, inventory_position, eoq, pack_size, days_of_cover,
            lead_time_mean, policy; a line without its plan row (a stored
            line of another SKU in a partial run) counts in the total but is
            not topped up.
        suppliers: ``supplier_id, min_order_value``.
        settings: the caps.

    Returns:
        ``(lines, topups)``: the lines with topped-up quantities, values and
        explanations; per draft below its minimum, :data:`TOP_UP_COLUMNS`
        (the value added, and what happened in words).
    """
    if lines.empty:
        return lines, pd.DataFrame(columns=TOP_UP_COLUMNS)
    heads = _totals(lines, suppliers)
    gap = heads["min_order_value"] - heads["total_value"]
    below = heads[gap > _CENT].assign(gap=gap[gap > _CENT])
    if below.empty:
        return lines, pd.DataFrame(columns=TOP_UP_COLUMNS)

    keep_cols = [
        c
        for c in (
            "sku",
            "location_id",
            "demand_mean",
            "inventory_position",
            "eoq",
            "pack_size",
            "days_of_cover",
            "lead_time_mean",
            "policy",
            "replenishment_mode",
        )
        if c in plans.columns
    ]
    plan = plans[keep_cols].drop_duplicates(["sku", "location_id"], keep="last")
    cand = lines.reset_index(drop=True).reset_index(names="_line")
    cand = cand[cand["po_key"].isin(below["po_key"])]
    cand = cand.merge(plan, on=["sku", "location_id"], how="left").merge(
        below[["po_key", "gap"]], on="po_key"
    )
    cover = _num(cand, "days_of_cover")
    lead = _num(cand, "lead_time_mean")
    urgency = np.where(np.isnan(cover), np.inf, cover) / np.where(
        np.isfinite(lead) & (lead > 1.0), lead, 1.0
    )
    cand = cand.assign(_urgency=urgency).sort_values(["po_key", "_urgency", "sku"], kind="stable")

    # room per line, in whole packs, under both caps
    qty = _num(cand, "qty")
    price = _num(cand, "unit_price")
    d = _num(cand, "demand_mean")
    ip = _num(cand, "inventory_position")
    q_eoq = _num(cand, "eoq")
    pack = _num(cand, "pack_size")
    pack = np.where(np.isfinite(pack) & (pack > 0), pack, 1.0)
    jit = (_text(cand, "policy") == "jit") | (_text(cand, "replenishment_mode") == "jit")
    cap_eoq = np.where(np.isfinite(q_eoq), settings.max_eoq_multiple * q_eoq, np.inf)
    cap_cover = np.where(
        np.isfinite(d) & (d > 0) & np.isfinite(ip),
        settings.max_days_of_cover * d - ip,  # IP + line qty <= days of cover · d
        -np.inf,
    )
    room = np.maximum(np.minimum(cap_eoq, cap_cover) - qty, 0.0)
    room = np.where(jit | ~(price > 0), 0.0, room)
    room_packs = np.floor(room / pack + 1e-9)
    pack_value = pack * np.where(price > 0, price, 0.0)
    cand = cand.assign(_cap_value=room_packs * pack_value)

    # most urgent first: each line covers what the lines before it left open
    by_po = cand.groupby("po_key", sort=False)
    capacity = by_po["_cap_value"].transform("sum").to_numpy(dtype=np.float64)
    before = by_po["_cap_value"].cumsum().to_numpy(dtype=np.float64) - cand["_cap_value"].to_numpy(
        dtype=np.float64
    )
    gap_arr = cand["gap"].to_numpy(dtype=np.float64)
    feasible = capacity >= gap_arr - _CENT
    still = np.maximum(gap_arr - before, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(
            pack_value > 0, np.ceil(still / np.where(pack_value > 0, pack_value, 1.0) - 1e-9), 0.0
        )
    packs = np.where(feasible, np.minimum(room_packs, need), 0.0)
    added = packs * pack

    out = lines.reset_index(drop=True).copy()
    line_idx = cand["_line"].to_numpy(dtype=np.int64)
    hit = added > 0
    min_value = below.set_index("po_key")["min_order_value"]
    cand_min = cand["po_key"].map(min_value).to_numpy(dtype=np.float64)
    if hit.any():
        rows = line_idx[hit]
        new_qty = out.loc[rows, "qty"].to_numpy(dtype=np.float64) + added[hit]
        out.loc[rows, "qty"] = new_qty
        out.loc[rows, "line_value"] = np.round(
            new_qty * out.loc[rows, "unit_price"].to_numpy(np.float64), 2
        )
        note = cat(
            "; topped up +",
            fmt(added[hit]),
            " (",
            fmt(packs[hit], 0),
            " pack",
            np.where(packs[hit] == 1, "", "s").astype(object),
            ", most urgent first) to reach the supplier minimum order value ",
            fmt(cand_min[hit], 2),
        )
        out.loc[rows, "explanation"] = cat(_text(out.loc[rows], "explanation"), note)

    cand = cand.assign(_added_value=added * price)
    per_po = cand.groupby("po_key", sort=False).agg(
        topup_value=("_added_value", "sum"), capacity=("_cap_value", "sum")
    )
    summary = below.merge(per_po, left_on="po_key", right_index=True, how="left")
    topup_value = np.round(np.nan_to_num(summary["topup_value"].to_numpy(np.float64)), 2)
    capacity_po = np.nan_to_num(summary["capacity"].to_numpy(np.float64))
    mins_po = summary["min_order_value"].to_numpy(np.float64)
    gap_po = summary["gap"].to_numpy(np.float64)
    caps = cat(
        "(", fmt(np.full(len(summary), settings.max_eoq_multiple)), "× EOQ, ",
        fmt(np.full(len(summary), settings.max_days_of_cover)), " days of cover)",
    )  # fmt: skip
    reached = topup_value > 0
    note = np.where(
        reached,
        cat("topped up ", fmt(topup_value, 2), ", most urgent lines first, to reach the minimum ",
            fmt(mins_po, 2)),
        cat("below the supplier minimum ", fmt(mins_po, 2), " by ", fmt(gap_po, 2),
            ": the lines can add only ", fmt(capacity_po, 2), " within their caps ", caps,
            ", so nothing was topped up"),
    )  # fmt: skip
    topups = pd.DataFrame(
        {"po_key": summary["po_key"].to_numpy(), "topup_value": topup_value, "minimum_note": note}
    )
    return out[LINE_COLUMNS], topups


def build_headers(
    lines: pd.DataFrame, suppliers: pd.DataFrame, topups: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One header per draft order: line count, value, and whether the value is
    below the supplier's minimum order value; ``topups`` (from
    :func:`top_up_to_minimum`) adds what the top-up did."""
    if lines.empty:
        return pd.DataFrame(columns=HEADER_COLUMNS)
    headers = _totals(lines, suppliers)
    headers["below_minimum"] = headers["total_value"] < headers["min_order_value"] - _CENT
    if topups is not None and len(topups):
        headers = headers.merge(topups[TOP_UP_COLUMNS], on="po_key", how="left")
    else:
        headers["topup_value"] = 0.0
        headers["minimum_note"] = None
    headers["topup_value"] = headers["topup_value"].astype(float).fillna(0.0)
    headers["topped_up"] = headers["topup_value"] > 0
    default_note = cat(
        "below the supplier minimum ",
        fmt(headers["min_order_value"].to_numpy(np.float64), 2),
        " (not topped up)",
    )
    note = headers["minimum_note"].astype("object").to_numpy()
    headers["minimum_note"] = np.where(
        pd.isna(note), np.where(headers["below_minimum"], default_note, ""), note
    )
    return headers[HEADER_COLUMNS]


def build_drafts(
    plans: pd.DataFrame,
    suppliers: pd.DataFrame,
    as_of: date,
    top_up: TopUpSettings | None = DEFAULT_TOP_UP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group the plan rows with an order quantity into draft purchase orders,
    topped up to the supplier minimum order value where the caps allow.

    Args:
        plans: per SKU×location plan rows (``sku, location_id, supplier_id,
            supplier_sku, order_qty, unit_price, reason, ...``).
        suppliers: the contract's suppliers (``currency, min_order_value``).
        as_of: the planning date; part of every ``po_key``.
        top_up: the top-up caps; None: no top-up (flag only).

    Returns:
        ``(headers, lines)``.
    """
    lines = build_lines(plans, as_of)
    topups: pd.DataFrame | None = None
    if top_up is not None:
        lines, topups = top_up_to_minimum(lines, plans, suppliers, top_up)
    return build_headers(lines, suppliers, topups), lines


def merge_partial(existing: pd.DataFrame, new_lines: pd.DataFrame, scope: set[str]) -> pd.DataFrame:
    """Lines of a run planned for the SKUs in ``scope`` only: the existing
    draft lines of the other SKUs are kept, those of ``scope`` replaced."""
    kept = existing[~existing["sku"].isin(scope)]
    if "status" in kept.columns:  # drafts that moved on are not the run's to change
        kept = kept[kept["status"] == "draft"]
    # stored lines written before the figures were kept have no ``details``
    frames = [f.reindex(columns=LINE_COLUMNS) for f in (kept, new_lines) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=LINE_COLUMNS)
    return number_lines(pd.concat(frames, ignore_index=True))
