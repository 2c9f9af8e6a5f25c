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
k      safety factor for a fill-rate target         ``k``
β      fill rate (fraction of demand met from stock) ``fill_rate``
G(k)   standard normal loss function                :func:`normal_loss`
σX     σ of demand over the protection interval     ``sigma``
Q      order quantity (units per replenishment)     ``order_qty``
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
from scipy import special

FloatArray = npt.NDArray[np.float64]
#: What the formulas return: a float for scalar input, an array otherwise.
FloatOrArray = float | FloatArray

#: Tolerance when rounding up to a pack multiple, so that 36.000000001 units in
#: packs of 12 stays 36 rather than becoming 48 through floating-point noise.
_PACK_TOLERANCE = 1e-9

__all__ = [
    "abc_classes",
    "cumulative_error_factor",
    "eoq",
    "expected_shortage",
    "fill_rate_for_safety_factor",
    "inventory_position",
    "k_for_fill_rate",
    "newsvendor_quantity",
    "normal_loss",
    "order_up_to",
    "protection_demand_std",
    "reorder_point",
    "round_order_qty",
    "safety_stock",
    "z_for_service_level",
]

#: Newton iterations of :func:`k_for_fill_rate` at most (each a few numpy
#: passes over the items not yet converged; convergence is monotone, and
#: quadratic near the root: ~6 for usual targets, ~35 for k near 8).
_NEWTON_ITERATIONS = 60
#: Safety factors beyond this are not distinguishable in practice
#: (G(8) ≈ 5e-17); the solver stays within [-_K_MAX, _K_MAX].
_K_MAX = 8.0


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
    return _out(np.asarray(special.ndtri(p), dtype=np.float64))


def _phi(k: FloatArray) -> FloatArray:
    """Standard normal density φ(k)."""
    return np.asarray(np.exp(-0.5 * k * k) / np.sqrt(2.0 * np.pi), dtype=np.float64)


def normal_loss(k: Any) -> FloatOrArray:
    """Standard normal (first-order) loss function::

        G(k) = E[(Z − k)⁺] = φ(k) − k · (1 − Φ(k))

    the expected amount by which a standard normal variable exceeds k.
    σX · G(k) is the expected shortage per replenishment cycle when the
    reorder point is μX + k·σX. Source: Silver, Pyke & Thomas, *Inventory and
    Production Management in Supply Chains*, 4th ed. (tables of G_u(k));
    Nahmias, *Production and Operations Analysis*, ch. 5 (L(z)). Table values
    G(0) = 0.3989, G(1) = 0.0833, G(2) = 0.0085:

    >>> np.round(normal_loss([0.0, 1.0, 2.0]), 4).tolist()
    [0.3989, 0.0833, 0.0085]
    """
    kk = _as_float("k", k)
    return _out(_phi(kk) - kk * special.ndtr(-kk))


def k_for_fill_rate(fill_rate: Any, order_qty: Any, sigma: Any) -> FloatOrArray:
    """Safety factor k for a fill-rate target β (fraction of demand met from
    stock), solving::

        σX · G(k) = (1 − β) · Q

    with G the standard normal loss function (:func:`normal_loss`), σX the
    standard deviation of demand over the protection interval and Q the
    quantity replenished per cycle. Safety stock is then k · σX. This is the
    usual approximation that ignores shortages carried over from the previous
    cycle. Solved for all inputs at once by Newton's method on the convex,
    decreasing G (started left of the root, so the iterates rise monotonically
    to it); k is kept within [−8, 8]. σX = 0 gives k = 0 (no uncertainty, no
    safety stock whatever k); k may be negative when (1 − β)·Q > 0.3989·σX —
    callers decide whether to allow a negative safety stock.

    Source: Silver, Pyke & Thomas, 4th ed., ch. 6 (the B2/P2 fill-rate
    criterion, G_u(k) = Q(1 − P2)/σL); Nahmias, *Production and Operations
    Analysis*, ch. 5 (Type 2 service: n(R) = (1 − β)Q, L(z) = n(R)/σ).
    Nahmias's Harvey's Specialty Shop example: Q = 100, σ = 25, β = 0.98 →
    L(z) = 0.08 → z ≈ 1.02, R = 100 + 25·1.02 ≈ 126:

    >>> round(k_for_fill_rate(0.98, 100, 25), 2)
    1.02
    """
    beta = _as_float("fill_rate", fill_rate)
    q = _as_float("order_qty", order_qty)
    sd = _as_float("sigma", sigma)
    if np.any((beta <= 0) | (beta >= 1)):
        raise ValueError("fill_rate must be strictly between 0 and 1 (e.g. 0.98)")
    _non_negative("order_qty", q)
    _non_negative("sigma", sd)
    beta, q, sd = np.broadcast_arrays(beta, q, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.asarray((1.0 - beta) * q / sd, dtype=np.float64)
    g_max = float(_phi(np.asarray(_K_MAX)) - _K_MAX * special.ndtr(-_K_MAX))
    x = np.clip(x, g_max, None)  # NaN stays NaN; x = +inf (σ = 0) handled below
    xs = x.reshape(-1)
    k = np.where(np.isfinite(xs), -np.minimum(xs, _K_MAX), np.nan)
    live = np.flatnonzero(np.isfinite(xs))
    for _ in range(_NEWTON_ITERATIONS):
        if live.size == 0:
            break
        kl = k[live]
        tail = special.ndtr(-kl)
        step = (_phi(kl) - kl * tail - xs[live]) / np.maximum(tail, 1e-300)
        k[live] = np.minimum(kl + step, _K_MAX)
        live = live[(np.abs(step) > 1e-12) & (k[live] < _K_MAX)]
    k = np.where(sd == 0, 0.0, k.reshape(x.shape))
    return _out(np.asarray(k, dtype=np.float64))


def expected_shortage(sigma: Any, k: Any) -> FloatOrArray:
    """Expected shortage per replenishment cycle (ESC) with normal demand
    over the protection interval and safety factor k: ESC = σX · G(k).

    Source: Chopra & Meindl, *Supply Chain Management*, ch. 12
    (ESC = −ss·[1 − F_S(ss/σL)] + σL·f_S(ss/σL), which is σL·G(ss/σL)).
    Their fill-rate example: weekly demand 2,500, σ 500, L = 2 weeks,
    ss = 1,000 → σL = 707.1, ESC ≈ 25.1 units:

    >>> round(expected_shortage(500 * 2**0.5, 1000 / (500 * 2**0.5)), 1)
    25.1
    """
    sd = _as_float("sigma", sigma)
    kk = _as_float("k", k)
    _non_negative("sigma", sd)
    return _out(sd * (_phi(kk) - kk * special.ndtr(-kk)))


def fill_rate_for_safety_factor(k: Any, order_qty: Any, sigma: Any) -> FloatOrArray:
    """Fill rate β = 1 − σX·G(k) / Q achieved by safety factor k with Q units
    replenished per cycle (the approximation of :func:`k_for_fill_rate`;
    floored at 0). Q = 0 gives NaN.

    Source: Chopra & Meindl, ch. 12 (fill rate = 1 − ESC / Q): with
    Q = 10,000 and ESC ≈ 25.1 the fill rate is 0.9975:

    >>> round(fill_rate_for_safety_factor(1000 / 707.107, 10_000, 707.107), 4)
    0.9975
    """
    q = _as_float("order_qty", order_qty)
    _non_negative("order_qty", q)
    esc = _as_float("esc", expected_shortage(sigma, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(q > 0, 1.0 - esc / np.where(q > 0, q, 1.0), np.nan)
    return _out(np.asarray(np.maximum(beta, 0.0), dtype=np.float64))


def newsvendor_quantity(
    demand_mean: Any, demand_std: Any, underage_cost: Any, overage_cost: Any
) -> FloatOrArray:
    """Newsvendor (single-period) quantity for normal demand::

        Q* = μ + σ · Φ⁻¹(cu / (cu + co))

    cu: cost of one unit short (lost margin, goodwill), co: cost of one unit
    left over. The critical ratio cu / (cu + co) is the cycle service level
    the costs imply; a (R, S) or (s, Q) policy with that CSL is the same
    trade-off over its protection interval. Source: Snyder & Shen,
    *Fundamentals of Supply Chain Theory*, 2nd ed., Example 4.3
    (h = 0.18, p = 0.70, demand N(50, 8²) → S* = 56.60); Nahmias ch. 5.

    >>> round(newsvendor_quantity(50, 8, 0.70, 0.18), 2)
    56.6
    """
    mu = _as_float("demand_mean", demand_mean)
    sd = _as_float("demand_std", demand_std)
    cu = _as_float("underage_cost", underage_cost)
    co = _as_float("overage_cost", overage_cost)
    _non_negative("demand_std", sd)
    if np.any(cu <= 0):
        raise ValueError("underage_cost must be > 0")
    if np.any(co <= 0):
        raise ValueError("overage_cost must be > 0")
    return _out(mu + sd * special.ndtri(cu / (cu + co)))


def protection_demand_std(
    demand_mean: Any,
    demand_std: Any,
    lead_time_mean: Any,
    lead_time_std: Any,
    review_period: Any = 0.0,
) -> FloatOrArray:
    """Standard deviation of demand over the protection interval L + R::

        σX = sqrt((L + R) · σd² + d² · σL²)

    (independent daily demands; the lead time's own variability adds
    d²·σL², the review period is fixed). d, σd per day; L, σL, R in days.
    Source: Chopra & Meindl, *Supply Chain Management*, ch. 12
    (σ_L = sqrt(L·σD² + D²·sL²)); Silver, Pyke & Thomas, 4th ed., ch. 6
    (R + L for periodic review).

    >>> round(protection_demand_std(2500, 500, 7, 7))
    17550
    """
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
    return _out(np.sqrt((lt + r) * sd**2 + d**2 * slt**2))


def cumulative_error_factor(horizon: Any, alpha: Any) -> FloatOrArray:
    """Variance of the error of a smoothed forecast *summed over* ``horizon``
    days, relative to ``horizon`` independent daily errors.

    Demand d_t = μ + ε_t (independent, variance σ²) forecast by simple
    exponential smoothing with constant α: the level estimate's error has
    variance α/(2 − α)·σ² and is the same on every day of the horizon, so::

        Var(Σ_{j=1..h} (d_{t+j} − ŷ_t)) = h·σ² + h²·α/(2 − α)·σ²
        factor                          = 1 + h·α/(2 − α)

    (Brown, *Statistical Forecasting for Inventory Control*, 1959: the
    variance of the smoothed level; Silver, Pyke & Thomas, *Inventory and
    Production Management in Supply Chains*, 4th ed., 2017, §4.8 on the
    forecast error over the lead time.) α = 0 gives 1 (a known mean);
    h <= 0 gives 1. Where the level itself wanders (ETS(A,N,N)) the factor
    is larger still: this is the conservative lower bound for a smoothed
    forecast.

    Worked example: α = 0.1, h = 10: α/(2 − α) = 0.0526, factor
    1 + 10·0.0526 = 1.526 (σX larger by sqrt(1.526) ≈ 1.24).

    >>> round(cumulative_error_factor(10, 0.1), 3)
    1.526
    """
    h = _as_float("horizon", horizon)
    a = _as_float("alpha", alpha)
    _non_negative("alpha", a)
    if np.any(a > 1):
        raise ValueError("alpha must be in [0, 1]")
    factor = 1.0 + np.fmax(h, 0.0) * a / (2.0 - a)
    return _out(np.where(np.isnan(h) | np.isnan(a), np.nan, factor))


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
    sigma = _as_float(
        "sigma",
        protection_demand_std(
            demand_mean, demand_std, lead_time_mean, lead_time_std, review_period
        ),
    )
    return _out(zz * sigma)


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
