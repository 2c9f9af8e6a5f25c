"""Service and stock metrics of a replay, per group of series and overall.

Definitions (all over the backtest window, every series of the group):

``cycle_service_level``
    Share of *replenishment cycles* without any lost demand. A cycle of a
    series runs from the morning an order arrives to the day before the next
    arrival (two orders arriving on the same morning are one arrival). Only
    complete cycles count: the days before a series' first arrival (served
    from the initial stock) and after its last arrival (the cycle is not over)
    are left out. This is the textbook CSL, the probability of no stock-out
    per replenishment cycle (Silver, Pyke & Thomas, 4th ed., §6.7; Chopra &
    Meindl ch. 12), the quantity the policy's z = Φ⁻¹(CSL) targets.
``target_service_level``
    The targets of the series (build_plans' ``service_level`` at the start),
    averaged with each series weighted by its number of cycles in this replay:
    what ``cycle_service_level`` should be compared with.
``fill_rate``
    Units served / units demanded (the β service level).
``stockout_days``
    Series-days on which some demand was lost (summed over series).
``avg_stock_units``, ``avg_stock_value``
    End-of-day units on hand summed over the series, averaged over the days;
    the value at ``products.unit_cost`` (the supplier's price where unknown).
``orders``
    Purchase-order lines placed in the window (one per series and order).
``holding_cost``, ``ordering_cost``, ``total_cost``
    What the policy's own cost model says the replay cost over the window:
    Σ end-of-day stock value × holding_cost_rate / 365, and K per PO line
    placed (the plan's ``order_cost`` of the series, else the settings'
    ``order_cost``) — the trade-off EOQ makes: fewer orders, more stock.

Also reported: ``series``, ``cycles``, ``demand_units``, ``lost_units``.
A ratio with nothing to divide by (no cycle, no demand) is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["METRIC_KEYS", "Trajectory", "cycle_counts", "service_metrics"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The keys of every metrics block, in report order.
METRIC_KEYS = (
    "cycle_service_level",
    "target_service_level",
    "fill_rate",
    "stockout_days",
    "avg_stock_units",
    "avg_stock_value",
    "orders",
    "holding_cost",
    "ordering_cost",
    "total_cost",
    "series",
    "cycles",
    "demand_units",
    "lost_units",
)

_EPS = 1e-9
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class Trajectory:
    """What one replay did, day by day (arrays n_series × n_days).

    Attributes:
        on_hand: end-of-day stock.
        demand: units demanded.
        lost: units demanded but not served (lost sales).
        received: units that arrived that morning.
        orders: per series, purchase-order lines placed in the window.
    """

    on_hand: FloatArray
    demand: FloatArray
    lost: FloatArray
    received: FloatArray
    orders: IntArray


def cycle_counts(received: FloatArray, lost: FloatArray) -> tuple[IntArray, IntArray]:
    """Complete replenishment cycles of each series and how many of them had
    no lost demand (see the module docstring for the definition).

    Vectorised: arrivals in row-major order, consecutive arrivals of the same
    row delimit a cycle, its lost demand is a difference of prefix sums.

    >>> received = np.array([[5.0, 0, 0, 5, 0, 5]])
    >>> lost = np.array([[0.0, 0, 1, 0, 0, 0]])
    >>> [c.tolist() for c in cycle_counts(received, lost)]
    [[2], [1]]
    """
    n = received.shape[0]
    rows, cols = np.nonzero(received > _EPS)
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(lost, axis=1)], axis=1)
    same = rows[1:] == rows[:-1]
    r = rows[1:][same]
    lost_in_cycle = prefix[r, cols[1:][same]] - prefix[r, cols[:-1][same]]
    cycles = np.bincount(r, minlength=n).astype(np.int64)
    good = np.bincount(r, weights=(lost_in_cycle <= _EPS).astype(np.float64), minlength=n)
    return cycles, good.astype(np.int64)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > _EPS else None


def _block(
    t: Trajectory,
    mask: npt.NDArray[np.bool_],
    unit_cost: FloatArray,
    target: FloatArray,
    cycles: IntArray,
    good: IntArray,
    costs: tuple[FloatArray, float],
) -> dict[str, Any]:
    demand = float(t.demand[mask].sum())
    lost = float(t.lost[mask].sum())
    n_cycles = int(cycles[mask].sum())
    has_target = mask & np.isfinite(target)
    weight = cycles[has_target].astype(np.float64)
    stock = t.on_hand[mask]
    n_days = stock.shape[1]
    cost = np.nan_to_num(unit_cost[mask])
    order_cost, holding_rate = costs
    stock_value_days = float((stock * cost[:, None]).sum())
    holding = stock_value_days * holding_rate / DAYS_PER_YEAR
    ordering = float((np.nan_to_num(order_cost[mask]) * t.orders[mask]).sum())
    return {
        "cycle_service_level": _ratio(float(good[mask].sum()), n_cycles),
        "target_service_level": _ratio(float((target[has_target] * weight).sum()), weight.sum()),
        "fill_rate": _ratio(demand - lost, demand),
        "stockout_days": int(np.count_nonzero(t.lost[mask] > _EPS)),
        "avg_stock_units": float(stock.sum() / n_days) if n_days else 0.0,
        "avg_stock_value": stock_value_days / n_days if n_days else 0.0,
        "orders": int(t.orders[mask].sum()),
        "holding_cost": holding,
        "ordering_cost": ordering,
        "total_cost": holding + ordering,
        "series": int(mask.sum()),
        "cycles": n_cycles,
        "demand_units": demand,
        "lost_units": lost,
    }


def service_metrics(
    t: Trajectory,
    unit_cost: npt.ArrayLike,
    target: npt.ArrayLike,
    group: npt.ArrayLike,
    groups: tuple[str, ...] = ("A", "B", "C"),
    *,
    order_cost: npt.ArrayLike = 0.0,
    holding_rate: float = 0.0,
) -> dict[str, Any]:
    """The metrics of the module docstring, overall and per group.

    Args:
        t: the replay's trajectory.
        unit_cost: per series, for the stock value.
        target: per series, its target cycle service level (NaN: none).
        group: per series, its group label (e.g. ABC class).
        groups: the labels reported under ``by_class`` (always all of them,
            an empty group with zero counts and ``None`` ratios).
        order_cost: per series (or one number), K per PO line.
        holding_rate: holding cost per year as a share of unit cost.

    Returns:
        ``{METRIC_KEYS..., "by_class": {label: {METRIC_KEYS...}}}``.
    """
    cost = np.asarray(unit_cost, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    labels = np.asarray(group, dtype=object)
    costs = (np.broadcast_to(np.asarray(order_cost, dtype=np.float64), cost.shape), holding_rate)
    cycles, good = cycle_counts(t.received, t.lost)
    everything = np.ones(len(labels), dtype=bool)
    out = _block(t, everything, cost, tgt, cycles, good, costs)
    out["by_class"] = {g: _block(t, labels == g, cost, tgt, cycles, good, costs) for g in groups}
    return out
