"""Explanations of a plan row, vectorised: the rounding steps, how the
safety stock was set, what is wrong with a row, and the reason sentence.

Each reason is the first matching case of :data:`REASON_TEMPLATES`; a
template is text with named values (:class:`V`), numbers formatted for
humans. Each case formats only its own rows: a few numpy passes per case,
no per-row loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from replenish.policy.text import TextArray, cat, fmt, pct

__all__ = ["REASON_TEMPLATES", "V", "problems", "reasons", "rounding_text", "safety_stock_basis"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def rounding_text(
    can_order: BoolArray, raw: FloatArray, moq: FloatArray, pack: FloatArray, qty: FloatArray
) -> TextArray:
    """'raw 37.2 → MOQ 48 → pack 12: 48' for rows that order (the MOQ step
    only when it binds); '' for the others."""
    out = np.full(len(can_order), "", dtype=object)
    idx = np.flatnonzero(can_order)
    if idx.size == 0:
        return out
    raw, moq, pack, qty = raw[idx], moq[idx], pack[idx], qty[idx]
    moq_binds = np.nan_to_num(moq) > raw
    eff_pack = np.where(np.isnan(pack) | (pack <= 0), 1.0, pack)
    out[idx] = cat(
        "raw ",
        fmt(raw),
        np.where(moq_binds, cat(" → MOQ ", fmt(moq)), ""),
        " → pack ",
        fmt(eff_pack),
        ": ",
        fmt(qty),
    )
    return out


def safety_stock_basis(
    *,
    ltd: TextArray,
    is_jit: BoolArray,
    fill_rate: bool,
    known: BoolArray,
    z: FloatArray,
    sigma: FloatArray,
    mu: FloatArray,
    target: FloatArray,
    s: FloatArray,
    esc: FloatArray,
    cycle_qty: FloatArray,
    csl_hat: FloatArray,
    T: FloatArray,
) -> TextArray:
    """How the safety stock was set, one phrase per row ('' when unknown):

    * normal, cycle service: "z 1.64 (cycle service 95%) × σ 10.77 over 4 days"
    * normal, fill rate: "k 1.02 for fill rate 98%: σ 25 over 182 days
      × G(k) = (1 − 98%) × Q 100"
    * discrete, cycle service: "Poisson(μ 2.3) over 11 days: P(demand <= 5)
      = 97.1% >= 95%"
    * discrete, fill rate: "negative binomial(μ 2.3, σ 2.8) over 11 days:
      expected shortage 0.41 <= (1 − 98%) × Q 24"
    """
    out = np.full(len(ltd), "", dtype=object)
    out[is_jit] = "none: just-in-time"

    def over(i: npt.NDArray[np.intp]) -> TextArray:
        return cat(" over ", fmt(T[i]), " days")

    i = np.flatnonzero(known & (ltd == "normal"))
    if i.size and fill_rate:
        out[i] = cat(
            "k ", fmt(z[i], 2), " for fill rate ", pct(target[i]), ": σ ", fmt(sigma[i], 2),
            over(i), " × G(k) = (1 − ", pct(target[i]), ") × Q ", fmt(cycle_qty[i]),
        )  # fmt: skip
    elif i.size:
        out[i] = cat(
            "z ", fmt(z[i], 2), " (cycle service ", pct(target[i]), ") × σ ", fmt(sigma[i], 2),
            over(i),
        )  # fmt: skip
    for kind in ("poisson", "negbin"):
        i = np.flatnonzero(known & (ltd == kind))
        if i.size == 0:
            continue
        if kind == "poisson":
            dist = cat("Poisson(μ ", fmt(mu[i], 2), ")", over(i))
        else:
            dist = cat(
                "negative binomial(μ ", fmt(mu[i], 2), ", σ ", fmt(sigma[i], 2), ")", over(i)
            )
        if fill_rate:
            out[i] = cat(
                dist, ": expected shortage ", fmt(esc[i], 2), " <= (1 − ", pct(target[i]),
                ") × Q ", fmt(cycle_qty[i]),
            )  # fmt: skip
        else:
            out[i] = cat(
                dist, ": P(demand <= ", fmt(s[i], 0), ") = ", pct(csl_hat[i]), " >= ",
                pct(target[i]),
            )  # fmt: skip
    return out


def problems(
    n: int,
    *,
    bad_demand: BoolArray,
    bad_lt: BoolArray,
    bad_stock: BoolArray,
    po_missing: BoolArray,
    bad_mode: BoolArray,
    bad_moq: BoolArray,
    mode: npt.NDArray[Any],
) -> TextArray:
    """'; '-separated list of what is wrong with each row ('' when nothing)."""
    msgs: list[tuple[BoolArray, Any]] = [
        (bad_mode, cat("unknown replenishment_mode '", mode.astype(str), "'")),
        (bad_demand, "demand forecast missing (e.g. out of stock on every day of the history)"),
        (bad_lt, "lead time missing or negative"),
        (bad_stock, "stock level missing or allocated negative"),
        (po_missing, "an open purchase-order line has no quantity"),
        (bad_moq, "supplier MOQ negative"),
    ]
    out = np.full(n, "", dtype=object)
    for flag, msg in msgs:
        if not flag.any():
            continue
        piece = np.where(flag, msg, "").astype(object)
        sep = np.where(flag & (out != ""), "; ", "").astype(object)
        out = cat(out, sep, piece)
    return out


class V(NamedTuple):
    """A value in a reason template: the name of an entry of ``values``
    (numbers are formatted, text is used as it is)."""

    name: str


_POSITION = ("Inventory position ", V("ip"), " is at or below the reorder point ", V("rop"))
_LT_TERMS = (" (demand ", V("mu_L"), " over L ", V("L"), " days + SS ", V("ss"), "): order ")
_S_TERMS = (
    "S = ", V("s_level"), " (demand ", V("mu_RL"), " over R + L ", V("T"), " days + SS ",
    V("ss"), ")",
)  # fmt: skip
_TRIGGER_TERMS = (
    "the trigger level s = ", V("trigger"), " (demand ", V("mu_L"), " over L ", V("L"),
    " days + undershoot ", V("undershoot"), " + safety ", V("trigger_ss"),
    "; orders last longer than a review)",
)  # fmt: skip
_UP_TO = (": order ", V("qty_rule"), " (S = ", V("s_level"), ")")
_JIT_STOCK = (" on hand ", V("on_hand"), " + on order ", V("on_order"))
_ROUNDED = (", rounded to ", V("order_qty"), ".")
_NEXT = (
    "available ", V("available"), " + due ", V("due_next"), " against the expected demand ",
    V("mu_next"), " until an order placed then can arrive (", V("h_next"), " days)",
)  # fmt: skip

#: (case name, reason template); the first matching case wins (see _reasons).
REASON_TEMPLATES: dict[str, tuple[str | V, ...]] = {
    "problem": ("Not planned: ", V("problems"), "."),
    "no_supplier_needed": (
        "No supplier: nothing ordered although ", V("raw"), " units are needed.",
    ),
    "no_supplier": ("No supplier: planned for information only, nothing to order.",),
    "jit_order": (
        "Just-in-time: open customer demand ", V("open_demand"), " exceeds", *_JIT_STOCK,
        ": order the uncovered ", V("raw"), *_ROUNDED,
    ),
    "jit_wait": (
        "Just-in-time: open customer demand ", V("open_demand"), " exceeds", *_JIT_STOCK,
        " by ", V("uncovered"), ": to be ordered on the next order day ", V("next_label"), ".",
    ),
    "jit_covered": (
        "Just-in-time: open customer demand ", V("open_demand"), " is covered by", *_JIT_STOCK,
        ": nothing to order.",
    ),
    "jit_idle": ("Just-in-time: no open customer demand: nothing to order.",),
    "periodic_emergency_rsq": (
        "Not an order day (next order day ", V("next_label"), "), but a stockout is expected: ",
        *_NEXT, "; so today: inventory position ", V("ip"), " is below ", *_TRIGGER_TERMS,
        *_UP_TO, *_ROUNDED,
    ),
    "periodic_emergency": (
        "Not an order day (next order day ", V("next_label"), "), but a stockout is expected: ",
        *_NEXT, "; so today: inventory position ", V("ip"), " is below ", *_S_TERMS, ": order ",
        V("qty_rule"), *_ROUNDED,
    ),
    "periodic_late_rsq": (
        "Not an order day (next order day ", V("next_label"), "): a stockout is expected (",
        *_NEXT, "), but the inventory position ", V("ip"),
        " already reaches the trigger level s = ", V("trigger"),
        " (open orders arriving late): nothing more to order.",
    ),
    "periodic_late": (
        "Not an order day (next order day ", V("next_label"), "): a stockout is expected (",
        *_NEXT, "), but the inventory position ", V("ip"), " already reaches S = ",
        V("s_level"), " (open orders arriving late): nothing more to order.",
    ),
    "periodic_wait": (
        "Next order day ", V("next_label"), ": nothing ordered today; ", *_NEXT, ".",
    ),
    "periodic_order_rsq": (
        "Review (", V("review"), "): inventory position ", V("ip"), " is below ",
        *_TRIGGER_TERMS, *_UP_TO, *_ROUNDED,
    ),
    "periodic_order": (
        "Review (", V("review"), "): inventory position ", V("ip"),
        " is below the order-up-to level ", *_S_TERMS, ": order ", V("qty_rule"), *_ROUNDED,
    ),
    "periodic_idle_rsq": (
        "Review (", V("review"), "): inventory position ", V("ip"),
        " is at or above the trigger level s = ", V("trigger"),
        " (orders last longer than a review): nothing to order.",
    ),
    "periodic_idle": (
        "Review (", V("review"), "): inventory position ", V("ip"),
        " is at or above the order-up-to level S = ", V("s_level"), ": nothing to order.",
    ),
    "stock_order_no_eoq": (
        *_POSITION, *_LT_TERMS, "the shortfall ", V("shortfall"),
        " (EOQ unknown: no unit cost)", *_ROUNDED,
    ),
    "stock_order": (
        *_POSITION, *_LT_TERMS, "max(EOQ ", V("eoq"), ", ROP − IP ", V("shortfall"),
        ") = ", V("raw"), *_ROUNDED,
    ),
    "stock_no_demand": (
        "No demand expected and inventory position ", V("ip"), " covers the reorder point ",
        V("rop"), ": nothing to order.",
    ),
    "stock_idle": (
        "Inventory position ", V("ip"), " is above the reorder point ", V("rop"),
        ": nothing to order.",
    ),
}  # fmt: skip


def reasons(
    conditions: Mapping[str, BoolArray], values: Mapping[str, FloatArray | TextArray]
) -> TextArray:
    """One sentence per row: why this quantity, or why nothing.

    Each row falls in the first case of :data:`REASON_TEMPLATES` whose
    condition holds; each case then formats only its own rows (a few numpy
    passes per case, no per-row loop).
    """
    names = list(REASON_TEMPLATES)
    n = len(next(iter(conditions.values())))
    case = np.select([conditions[name] for name in names], list(range(len(names))), -1)
    reason = np.full(n, "", dtype=object)
    for k, name in enumerate(names):
        idx = np.flatnonzero(case == k)
        if idx.size == 0:
            continue
        parts: list[Any] = []
        for part in REASON_TEMPLATES[name]:
            if not isinstance(part, V):
                parts.append(part)
                continue
            value = values[part.name][idx]
            parts.append(value if value.dtype == object else fmt(value))
        reason[idx] = cat(*parts)
    return reason
