"""The min/max rule padded to the policy's service: stock at equal service.

The baseline of the issue (min = d·L, max = min + d·review_days) carries no
safety stock, so it holds less stock than any policy with a service target —
and pays for it in service (about half its replenishment cycles run out). The
comparison that tells whether the policy *uses* its stock well is the one at
equal service: how much stock does the same min/max rule need to reach the
service the policy reached? Merchants get there by padding the minimum with
"safety days" of demand::

    min_s = d · (L + s),   max_s = min_s + d · review_days

The replay runs this rule for a grid of s (the *frontier*: service and stock
of the padded rule as s grows, on the same demand and the same lead-time
draws), and for every scope (all series, each ABC class) and each service
measure (cycle service level, fill rate) interpolates the stock value the
padded rule needs at the policy's achieved service:

* the frontier's points are ordered by s; service is made non-decreasing
  along s (a running maximum: one more safety day never buys less service,
  apart from noise), and the stock value at the policy's service is read by
  linear interpolation between the two neighbouring points;
* when the policy's service is above everything the grid reaches, the padded
  rule's stock is reported as ``None`` with ``beyond_grid: true`` (the
  policy reached a service the rule did not reach with the largest s).

``stock_saving`` = 1 − policy stock value / padded rule's stock value: the
share of stock the policy saves at equal service (negative: it holds more).

This is the "efficient frontier" comparison of inventory policies (service
against stock): Silver, Pyke & Thomas (2017), *Inventory and Production
Management in Supply Chains*, 4th ed., §7.4 (exchange curves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_SAFETY_DAYS", "SERVICE_MEASURES", "equal_service"]

DEFAULT_SAFETY_DAYS: tuple[float, ...] = (0, 2, 4, 7, 10, 14, 21, 28, 42, 60, 90, 120)
SERVICE_MEASURES: tuple[str, ...] = ("cycle_service_level", "fill_rate")


def _stock_at(service: Sequence[float | None], stock: Sequence[float], target: float) -> Any:
    """Stock value of the frontier at ``target`` service (module docstring):
    ``(stock, safety_index, beyond_grid)``, the index fractional."""
    pts = [(i, s, v) for i, (s, v) in enumerate(zip(service, stock, strict=True)) if s is not None]
    if not pts:
        return None, None, False
    idx = np.array([p[0] for p in pts], dtype=np.float64)
    svc = np.maximum.accumulate(np.array([p[1] for p in pts], dtype=np.float64))
    val = np.array([p[2] for p in pts], dtype=np.float64)
    if target > svc[-1] + 1e-12:
        return None, None, True
    if target <= svc[0]:
        return float(val[0]), float(idx[0]), False
    j = int(np.searchsorted(svc, target, side="left"))
    lo, hi = j - 1, j
    span = svc[hi] - svc[lo]
    w = 0.0 if span <= 0 else (target - svc[lo]) / span
    return (
        float(val[lo] + w * (val[hi] - val[lo])),
        float(idx[lo] + w * (idx[hi] - idx[lo])),
        False,
    )


def _match(policy: dict[str, Any], frontier: list[dict[str, Any]], days: Sequence[float]) -> Any:
    out: dict[str, Any] = {}
    stock = [float(f["avg_stock_value"] or 0.0) for f in frontier]
    for measure in SERVICE_MEASURES:
        target = policy.get(measure)
        entry: dict[str, Any] = {
            "policy": target,
            "policy_stock_value": policy.get("avg_stock_value"),
            "baseline_safety_days": None,
            "baseline_stock_value": None,
            "stock_saving": None,
            "beyond_grid": False,
        }
        if target is not None:
            value, where, beyond = _stock_at([f[measure] for f in frontier], stock, float(target))
            entry["beyond_grid"] = beyond
            if value is not None and where is not None:
                lo = int(np.floor(where))
                hi = min(lo + 1, len(days) - 1)
                safety = days[lo] + (where - lo) * (days[hi] - days[lo])
                entry["baseline_safety_days"] = float(safety)
                entry["baseline_stock_value"] = value
                mine = policy.get("avg_stock_value")
                if mine is not None and value > 0:
                    entry["stock_saving"] = 1.0 - float(mine) / value
        out[measure] = entry
    return out


def equal_service(
    policy: dict[str, Any],
    frontier: Sequence[dict[str, Any]],
    safety_days: Sequence[float],
    classes: Sequence[str],
) -> dict[str, Any]:
    """Match the policy's service on the padded min/max frontier.

    Args:
        policy: the policy's metrics (``service_metrics`` output).
        frontier: the padded rule's metrics, one per entry of ``safety_days``
            (increasing).
        safety_days: the grid s.
        classes: the ``by_class`` labels.

    Returns:
        ``{"safety_days": [...], "frontier": [{safety_days, cycle_service_level,
        fill_rate, avg_stock_value, orders, by_class: {...}}], "overall":
        {measure: match}, "by_class": {label: {measure: match}}}`` where a match
        is ``{policy, policy_stock_value, baseline_safety_days,
        baseline_stock_value, stock_saving, beyond_grid}``.
    """
    if list(safety_days) != sorted(safety_days) or len(frontier) != len(safety_days):
        raise ValueError("safety_days must be increasing, one frontier point each")
    keys = ("cycle_service_level", "fill_rate", "avg_stock_value", "orders")
    points = [
        {
            "safety_days": float(s),
            **{k: f.get(k) for k in keys},
            "by_class": {c: {k: f["by_class"][c].get(k) for k in keys} for c in classes},
        }
        for s, f in zip(safety_days, frontier, strict=True)
    ]
    frontier = list(frontier)
    return {
        "safety_days": [float(s) for s in safety_days],
        "frontier": points,
        "overall": _match(policy, frontier, safety_days),
        "by_class": {
            c: _match(policy["by_class"][c], [f["by_class"][c] for f in frontier], safety_days)
            for c in classes
        },
    }
