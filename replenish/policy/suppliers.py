"""Which supplier a SKU is ordered from, and why.

A SKU may have several ``supplier_products`` rows. The choice, per SKU:

1. the best (lowest) ``priority`` — the buyer's decision comes first
   (1 = preferred; a missing priority ranks last);
2. among equal priority, the lowest landed cost per unit (the contract has
   no freight column: ``unit_price``);
3. then the shortest lead time (learned where receipts exist, else declared);
4. then the smallest supplier_id (deterministic).

``supplier_reason`` says which step decided: "only supplier",
"priority 1 (of 2)", "cheapest of equal priority 1: 3 vs 3.5", "shortest
lead time of equal priority and price: 4 vs 6 days", or "first by id of
equal priority, price and lead time".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.policy.text import TextArray, cat, fmt

__all__ = ["SUPPLIER_CHOICE_COLUMNS", "Ranking", "choose_suppliers", "rank_suppliers"]

SUPPLIER_CHOICE_COLUMNS = [
    "sku",
    "supplier_id",
    "supplier_sku",
    "moq",
    "pack_size",
    "unit_price",
    "n_suppliers",
    "supplier_reason",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Ranking(NamedTuple):
    """The supplier choice over candidate rows, per SKU (arrays indexed like
    the SKUs, ``-1`` where a SKU has no candidate / no runner-up)."""

    best: IntArray
    second: IntArray
    n_candidates: IntArray
    reason: TextArray


def rank_suppliers(
    sku: IntArray,
    n_skus: int,
    priority: FloatArray,
    price: FloatArray,
    lead_time: FloatArray,
    supplier_rank: IntArray,
) -> Ranking:
    """Rank candidate supplier rows per SKU (see the module docstring).

    Args:
        sku: SKU number (0 .. n_skus − 1) of each candidate row.
        n_skus: number of SKUs.
        priority, price, lead_time: per row; NaN ranks last.
        supplier_rank: per row, the supplier's position in id order (ties).
    """
    inf = np.inf
    p = np.nan_to_num(priority, nan=inf)
    c = np.nan_to_num(price, nan=inf)
    lt = np.nan_to_num(lead_time, nan=inf)
    order = np.lexsort((supplier_rank, lt, c, p, sku))
    s_sorted = sku[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = s_sorted[1:] != s_sorted[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, order.size))
    best = np.full(n_skus, -1, dtype=np.int64)
    second = np.full(n_skus, -1, dtype=np.int64)
    count = np.zeros(n_skus, dtype=np.int64)
    owners = s_sorted[starts]
    best[owners] = order[starts]
    count[owners] = counts
    has2 = counts > 1
    second[owners[has2]] = order[starts[has2] + 1]
    reason = np.full(n_skus, "", dtype=object)
    idx = np.flatnonzero(best >= 0)
    if idx.size:
        b, s2 = best[idx], second[idx]
        s2_ok = s2 >= 0
        s2c = np.where(s2_ok, s2, 0)

        def pair(values: FloatArray) -> tuple[FloatArray, FloatArray]:
            return values[b], np.where(s2_ok, values[s2c], inf)

        p1, p2 = pair(p)
        c1, c2 = pair(c)
        l1, l2 = pair(lt)
        reason[idx] = supplier_reason(count[idx], p1, p2, c1, c2, l1, l2)
    return Ranking(best=best, second=second, n_candidates=count, reason=reason)


def supplier_reason(
    n: IntArray,
    p1: FloatArray,
    p2: FloatArray,
    c1: FloatArray,
    c2: FloatArray,
    l1: FloatArray,
    l2: FloatArray,
) -> TextArray:
    """Which criterion decided between the best (1) and the runner-up (2);
    each sentence is built for its own SKUs only."""
    case = np.select([n == 1, p1 < p2, c1 < c2, l1 < l2], [0, 1, 2, 3], default=4)
    out = np.full(n.size, "first by id of equal priority, price and lead time", dtype=object)
    out[case == 0] = "only supplier"
    i = np.flatnonzero(case == 1)
    out[i] = cat("priority ", fmt(p1[i], 0), " (of ", fmt(n[i].astype(np.float64), 0), ")")
    i = np.flatnonzero(case == 2)
    out[i] = cat(
        "cheapest of equal priority ", fmt(p1[i], 0), ": ", fmt(c1[i], 2), " vs ", fmt(c2[i], 2)
    )
    i = np.flatnonzero(case == 3)
    out[i] = cat(
        "shortest lead time of equal priority and price: ", fmt(l1[i]), " vs ", fmt(l2[i]), " days"
    )
    return out


def _num(values: pd.Series) -> FloatArray:
    return np.asarray(
        pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
    )


def choose_suppliers(
    supplier_products: pd.DataFrame, lead_time: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One supplier per SKU (see the module docstring), as a frame.

    Args:
        supplier_products: contract rows (sku, supplier_id, supplier_sku,
            moq, pack_size, unit_price, priority); the first row of a
            duplicated (sku, supplier_id) counts.
        lead_time: optional columns sku, supplier_id, lead_time (days) used
            as the third criterion; pairs missing from it rank by the others.

    Returns:
        :data:`SUPPLIER_CHOICE_COLUMNS`, one row per SKU with a supplier,
        sorted by sku.
    """
    sp = supplier_products[
        supplier_products["sku"].notna() & supplier_products["supplier_id"].notna()
    ].drop_duplicates(["sku", "supplier_id"])
    sku = sp["sku"].astype("string")
    sup = sp["supplier_id"].astype("string")
    lt = np.full(len(sp), np.nan)
    if lead_time is not None and len(lead_time):
        table = lead_time.astype({"sku": "string", "supplier_id": "string"}).drop_duplicates(
            ["sku", "supplier_id"]
        )
        index = pd.MultiIndex.from_frame(table[["sku", "supplier_id"]])
        at = index.get_indexer(pd.MultiIndex.from_arrays([sku, sup]))
        lt = np.where(at >= 0, _num(table["lead_time"])[np.maximum(at, 0)], np.nan)
    sku_codes, skus = pd.factorize(sku, sort=True)
    sup_codes = pd.factorize(sup, sort=True)[0]
    ranking = rank_suppliers(
        sku_codes.astype(np.int64),
        len(skus),
        _num(sp["priority"]),
        _num(sp["unit_price"]),
        lt,
        sup_codes.astype(np.int64),
    )
    pick = ranking.best
    chosen = sp.iloc[pick]
    return pd.DataFrame(
        {
            "sku": pd.array(np.asarray(skus, dtype=object), dtype="string"),
            "supplier_id": chosen["supplier_id"].astype("string").to_numpy(),
            "supplier_sku": chosen["supplier_sku"].astype("string").to_numpy(),
            "moq": _num(chosen["moq"]),
            "pack_size": _num(chosen["pack_size"]),
            "unit_price": _num(chosen["unit_price"]),
            "n_suppliers": ranking.n_candidates,
            "supplier_reason": pd.array(ranking.reason.astype(str), dtype="string"),
        },
        columns=SUPPLIER_CHOICE_COLUMNS,
    )
