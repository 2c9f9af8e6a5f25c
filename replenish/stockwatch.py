"""Intraday stock watch: what the day's sales did to the night's plan.

The nightly plan computed, per SKU × location, the stock available at night
(``available`` = on hand − allocated), the safety stock SS and the reorder
point ROP (docs/policy.md). During the day the ERP's stock moves. Each hourly
sync reads the ERP's ``stock_levels`` again and :func:`stock_watch` compares:

* ``available_now`` = on_hand_now − allocated_now (the ERP now);
* ``position_now``  = available_now + on_order (on order as in the plan: a
  purchase order placed or received during the day is not seen until the
  next nightly run, so a receipt shows as higher stock and hides nothing);
* a row is **reported when it crossed a threshold since the plan**, most
  severe first:

  ========================  ===================================================
  ``stocked_out``           available_now ≤ 0 < available at night
  ``below_safety_stock``    available_now < SS ≤ available at night
  ``below_reorder_point``   position_now < ROP ≤ position at night (the next
                            nightly run will order it; rerun the nightly
                            deployment now to order today)
  ========================  ===================================================

``hours_of_cover`` = available_now / (demand_mean / 24), the plan's daily
demand (None without demand). Nothing is written to the store: the flow
publishes the table as a Prefect artifact (key ``intraday-stock``), so the
history of the day's checks stays in Prefect.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["STOCK_WATCH_COLUMNS", "WATCH_STATUSES", "stock_watch"]

#: Reported statuses, most severe first.
WATCH_STATUSES: Final = ("stocked_out", "below_safety_stock", "below_reorder_point")

STOCK_WATCH_COLUMNS: Final = [
    "sku",
    "location_id",
    "status",
    "available_plan",
    "available_now",
    "sold_since_plan",
    "on_order",
    "safety_stock",
    "reorder_point",
    "demand_mean",
    "hours_of_cover",
    "supplier_id",
]
_KEYS = ["sku", "location_id"]


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def stock_watch(plans: pd.DataFrame, stock_levels: pd.DataFrame) -> pd.DataFrame:
    """The SKU × locations whose stock crossed zero, SS or ROP since ``plans``
    were made (module docstring), most severe first, then by hours of cover.

    Args:
        plans: the nightly run's plans (``Store.plans``): sku, location_id,
            on_hand, allocated, on_order, safety_stock, reorder_point,
            demand_mean (supplier_id if present).
        stock_levels: the ERP's ``stock_levels`` now (contract frame); a
            SKU × location the ERP lists twice is summed.

    Returns:
        :data:`STOCK_WATCH_COLUMNS`; empty when nothing crossed a threshold.
        SKU × locations missing from either side are not compared.
    """
    if plans.empty or stock_levels.empty:
        return pd.DataFrame(columns=STOCK_WATCH_COLUMNS)
    now = stock_levels.assign(
        on_hand=_num(stock_levels, "on_hand").fillna(0.0),
        allocated=_num(stock_levels, "allocated").fillna(0.0),
    )
    now = now.assign(
        sku=now["sku"].astype("string"), location_id=now["location_id"].astype("string")
    )
    now = now.groupby(_KEYS, as_index=False)[["on_hand", "allocated"]].sum()
    plan = plans.assign(
        sku=plans["sku"].astype("string"), location_id=plans["location_id"].astype("string")
    )
    merged = plan.merge(now, on=_KEYS, how="inner", suffixes=("_plan", "_now"))
    if merged.empty:
        return pd.DataFrame(columns=STOCK_WATCH_COLUMNS)
    available_plan = _num(merged, "on_hand_plan").fillna(0.0) - _num(
        merged, "allocated_plan"
    ).fillna(0.0)
    available_now = merged["on_hand_now"] - merged["allocated_now"]
    on_order = _num(merged, "on_order").fillna(0.0)
    ss = _num(merged, "safety_stock")
    rop = _num(merged, "reorder_point")
    demand = _num(merged, "demand_mean")

    # NaN thresholds compare False: a row without SS or ROP is not reported for it
    conditions = [
        (available_now <= 0) & (available_plan > 0),
        (available_now < ss) & (available_plan >= ss),
        (available_now + on_order < rop) & (available_plan + on_order >= rop),
    ]
    status = np.select(conditions, list(WATCH_STATUSES), default="")
    hourly = demand / 24.0
    cover = (available_now.clip(lower=0) / hourly).where(hourly > 0)
    out = pd.DataFrame(
        {
            "sku": merged["sku"],
            "location_id": merged["location_id"],
            "status": status,
            "available_plan": available_plan,
            "available_now": available_now,
            "sold_since_plan": available_plan - available_now,
            "on_order": on_order,
            "safety_stock": ss,
            "reorder_point": rop,
            "demand_mean": demand,
            "hours_of_cover": cover,
            "supplier_id": merged["supplier_id"]
            if "supplier_id" in merged.columns
            else pd.Series(pd.NA, index=merged.index, dtype="string"),
        }
    )
    out = out[out["status"] != ""]
    rank = out["status"].map({s: i for i, s in enumerate(WATCH_STATUSES)})
    out = out.assign(_rank=rank).sort_values(
        ["_rank", "hours_of_cover", "sku", "location_id"], na_position="last", kind="stable"
    )
    return out.drop(columns="_rank").reset_index(drop=True)[STOCK_WATCH_COLUMNS]
