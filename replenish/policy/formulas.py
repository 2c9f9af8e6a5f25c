"""Inventory-policy formulas: pure, numpy-vectorised, scalar-friendly.

Every function accepts scalars or arrays (broadcast together) and returns a
Python ``float`` for all-scalar input, a numpy array otherwise. Inputs are
validated first; a ``ValueError`` names the offending argument. Missing values
(NaN) are *not* errors: they propagate to NaN in the output, so one SKU with a
missing input never stops a batch of 100,000 (the caller reports it).

Symbols follow the textbooks cited in each docstring:

=====  ==========================================  ==================
d      mean demand per day                          ``demand_mean``
σd     standard deviation of daily demand           ``demand_std``
L      mean lead time (days)                        ``lead_time_mean``
σL     standard deviation of the lead time (days)   ``lead_time_std``
R      review period (days)                         ``review_period``
z      safety factor Φ⁻¹(CSL)                       ``z``
SS     safety stock                                 ``safety_stock``
D      annual demand                                ``annual_demand``
K      fixed cost per order                         ``order_cost``
h      holding cost per unit per year               ``holding_cost``
=====  ==========================================  ==================
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

FloatArray = npt.NDArray[np.float64]
#: What the formulas return: a float for scalar input, an array otherwise.
FloatOrArray = float | FloatArray

#: Tolerance when rounding up to a pack multiple, so that 36.000000001 units in
#: packs of 12 stays 36 rather than becoming 48 through floating-point noise.
_PACK_TOLERANCE = 1e-9

__all__ = [
    "abc_classes",
    "eoq",
    "inventory_position",
    "order_up_to",
    "reorder_point",
    "round_order_qty",
    "safety_stock",
    "z_for_service_level",
]


def _as_float(name: str, value: Any) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {value!r}") from exc
    return arr


def _non_negative(name: str, arr: FloatArray) -> None:
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (NaN allowed), got a value of {np.nanmin(arr)}")


def _out(arr: FloatArray) -> FloatOrArray:
    return float(arr) if arr.ndim == 0 else arr


def inventory_position(on_hand: Any, allocated: Any, on_order: Any) -> FloatOrArray:
    """Inventory position IP = on_hand − allocated + on_order.

    ``allocated`` is stock physically present but reserved for customer
    orders; ``on_order`` is the open (ordered, not yet received) purchase
    quantity. IP is the stock a reorder decision can count on
    (Silver, Pyke & Thomas, *Inventory and Production Management in Supply
    Chains*, 4th ed., ch. 6). IP may be negative (backorders).

    >>> inventory_position(on_hand=120, allocated=20, on_order=50)
    150.0
    """
    oh = _as_float("on_hand", on_hand)
    al = _as_float("allocated", allocated)
    oo = _as_float("on_order", on_order)
    _non_negative("allocated", al)
    _non_negative("on_order", oo)
    return _out(oh - al + oo)


def z_for_service_level(csl: Any) -> FloatOrArray:
    """Safety factor z = Φ⁻¹(CSL), the standard normal quantile of the cycle
    service level (probability of no stockout in a replenishment cycle).

    Source: Chopra & Meindl, *Supply Chain Management*, ch. 12
    (Excel: ``NORMSINV(CSL)``).

    >>> round(z_for_service_level(0.90), 4)
    1.2816
    """
    p = _as_float("csl", csl)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("csl must be strictly between 0 and 1 (e.g. 0.95)")
    return _out(np.asarray(norm.ppf(p), dtype=np.float64))


def safety_stock(
    z: Any,
    demand_mean: Any,
    demand_std: Any,
    lead_time_mean: Any,
    lead_time_std: Any,
    review_period: Any = 0.0,
) -> FloatOrArray:
    """Safety stock under demand and lead-time uncertainty::

        SS = z · sqrt((L + R) · σd² + d² · σL²)

    with d, σd per day and L, σL, R in days (symbols in the module docstring).
    The square root is σ of demand during the protection interval L + R
    (continuous review: R = 0). With σL = 0 it reduces to z · σd · sqrt(L + R).

    Source: Chopra & Meindl, *Supply Chain Management*, ch. 12, "Impact of
    supply uncertainty on safety inventory" (σ_L = sqrt(L·σD² + D²·sL²)).
    Worked example: D = 2,500/day, σD = 500, L = 7, sL = 7, CSL = 0.90 gives
    σ_L ≈ 17,550 and safety inventory ≈ 22,491:

    >>> z = z_for_service_level(0.90)
    >>> round(safety_stock(z, 2500, 500, 7, 7))
    22491
    """
    zz = _as_float("z", z)
    d = _as_float("demand_mean", demand_mean)
    sd = _as_float("demand_std", demand_std)
    lt = _as_float("lead_time_mean", lead_time_mean)
    slt = _as_float("lead_time_std", lead_time_std)
    r = _as_float("review_period", review_period)
    for name, arr in (
        ("demand_mean", d),
        ("demand_std", sd),
        ("lead_time_mean", lt),
        ("lead_time_std", slt),
        ("review_period", r),
    ):
        _non_negative(name, arr)
    return _out(zz * np.sqrt((lt + r) * sd**2 + d**2 * slt**2))


def reorder_point(demand_mean: Any, lead_time_mean: Any, safety_stock: Any) -> FloatOrArray:
    """Reorder point ROP = d · L + SS (continuous review): order when the
    inventory position falls to ROP.

    Source: Chopra & Meindl, *Supply Chain Management*, ch. 12 (ROP = D_L + ss).
    DESIGN.md worked check: d = 100/day, L = 5 days, SS = 300:

    >>> reorder_point(100, 5, 300)
    800.0
    """
    d = _as_float("demand_mean", demand_mean)
    lt = _as_float("lead_time_mean", lead_time_mean)
    ss = _as_float("safety_stock", safety_stock)
    _non_negative("demand_mean", d)
    _non_negative("lead_time_mean", lt)
    return _out(d * lt + ss)


def order_up_to(
    demand_mean: Any, lead_time_mean: Any, review_period: Any, safety_stock: Any
) -> FloatOrArray:
    """Order-up-to level S = d · (R + L) + SS (periodic review every R days):
    at each review order S − IP.

    Source: Silver, Pyke & Thomas, *Inventory and Production Management in
    Supply Chains*, 4th ed., ch. 6 (the (R, S) system); Chopra & Meindl ch. 12.

    >>> order_up_to(100, 5, 7, 300)
    1500.0
    """
    d = _as_float("demand_mean", demand_mean)
    lt = _as_float("lead_time_mean", lead_time_mean)
    r = _as_float("review_period", review_period)
    ss = _as_float("safety_stock", safety_stock)
    _non_negative("demand_mean", d)
    _non_negative("lead_time_mean", lt)
    _non_negative("review_period", r)
    return _out(d * (r + lt) + ss)


def eoq(annual_demand: Any, order_cost: Any, holding_cost: Any) -> FloatOrArray:
    """Economic order quantity Q* = sqrt(2 · D · K / h).

    D: demand per year, K: fixed cost per order, h: holding cost per unit per
    year. Source: Harris (1913), "How many parts to make at once";
    Chopra & Meindl ch. 11. DESIGN.md worked check: D = 10,000, K = 50, h = 2:

    >>> round(eoq(10_000, 50, 2), 1)
    707.1
    """
    dd = _as_float("annual_demand", annual_demand)
    k = _as_float("order_cost", order_cost)
    h = _as_float("holding_cost", holding_cost)
    _non_negative("annual_demand", dd)
    _non_negative("order_cost", k)
    if np.any(h <= 0):
        raise ValueError("holding_cost must be > 0 (NaN allowed)")
    return _out(np.sqrt(2.0 * dd * k / h))


def round_order_qty(raw_qty: Any, moq: Any, pack_size: Any) -> FloatOrArray:
    """Round a raw order quantity to what the supplier accepts::

        q = 0                                   if raw <= 0
        q = ceil(max(raw, MOQ) / pack) · pack   otherwise

    MOQ is the minimum order quantity (NaN or 0: no minimum); ``pack_size``
    <= 0 or NaN is treated as 1 (no pack constraint) — fractional packs such
    as 0.5 kg are honoured. Properties for raw > 0: q is a multiple of pack,
    q >= MOQ, q >= raw, and q < raw + pack when raw >= MOQ. A NaN raw quantity
    gives NaN. Source: DESIGN.md ("round up to a multiple"); Silver, Pyke &
    Thomas, 4th ed. (order quantities in whole packs).

    >>> round_order_qty(37.2, 48, 12)
    48.0
    >>> round_order_qty([0, 50, 3], 48, 12).tolist()
    [0.0, 60.0, 48.0]
    """
    raw = _as_float("raw_qty", raw_qty)
    m = _as_float("moq", moq)
    p = _as_float("pack_size", pack_size)
    _non_negative("moq", m)
    m = np.where(np.isnan(m), 0.0, m)
    p = np.where(np.isnan(p) | (p <= 0), 1.0, p)
    base = np.maximum(raw, m)
    packs = np.ceil(base / p - _PACK_TOLERANCE)
    q = np.where(raw > 0, packs * p, np.where(np.isnan(raw), np.nan, 0.0))
    return _out(np.asarray(q, dtype=np.float64))


def abc_classes(
    annual_value: Any, a_share: float = 0.8, b_share: float = 0.95
) -> npt.NDArray[np.str_]:
    """ABC (Pareto) classes by share of annual consumption value.

    Items are sorted by value, descending; an item is 'A' while the cumulative
    share of the items *before* it is below ``a_share`` (so the item that
    crosses 80 % is still 'A' — a single item holding 90 % of the value is
    'A'), 'B' while it is below ``b_share``, 'C' after. Items with zero or
    missing value are always 'C'. Ties keep input order (stable sort).
    Source: Silver, Pyke & Thomas, 4th ed. (ABC classification, Pareto analysis).

    >>> abc_classes([10, 700, 0, 150, 100, 40]).tolist()
    ['C', 'A', 'C', 'A', 'B', 'C']
    """
    v = _as_float("annual_value", annual_value)
    if v.ndim != 1:
        v = v.reshape(-1)
    _non_negative("annual_value", v)
    if not 0 < a_share <= 1:
        raise ValueError("a_share must be in (0, 1]")
    if not a_share <= b_share <= 1:
        raise ValueError("b_share must be in [a_share, 1]")
    v = np.where(np.isnan(v), 0.0, v)
    out = np.full(v.shape, "C", dtype="<U1")
    total = v.sum()
    if total <= 0:
        return out
    order = np.argsort(-v, kind="stable")
    share_before = (np.cumsum(v[order]) - v[order]) / total
    sorted_cls = np.where(share_before < a_share, "A", np.where(share_before < b_share, "B", "C"))
    sorted_cls = np.where(v[order] > 0, sorted_cls, "C")
    out[order] = sorted_cls
    return out
