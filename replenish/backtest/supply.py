"""How the simulated suppliers deliver: lead times drawn from the receipt history.

The replay needs the *true* lead time of every order it places. Nobody knows
it in advance, so it is drawn from what the suppliers actually did: the
receipts in the ERP (the whole history read, including receipts after the
replayed day — the policy itself only learns from receipts before it, see
:mod:`replenish.backtest.engine`).

The lead time of a receipt, in whole days, is the number of days from the day
the order was placed to the first day its goods can be sold::

    L_obs = (day of received_at − day of ordered_at) + receiving_days

(goods are at the dock on ``received_at`` and on the shelf ``receiving_days``
later, the convention of :mod:`replenish.policy.leadtime`). An order placed on
day t with a drawn lead time of L is on hand on the morning of day t + L.

The distribution of each series (sku × location, its preferred supplier),
first match wins:

1. ``'receipts'`` — at least ``min_receipts`` receipts of that supplier × SKU
   (all locations): their L_obs, each equally likely (the empirical
   distribution, outliers included: late deliveries are part of the truth);
2. ``'supplier'`` — else, at least ``min_receipts`` receipts of the supplier
   over all its SKUs: the SKU's declared lead time (rounded) plus each of the
   supplier's deviations ``L_obs − declared``, floored at 0;
3. ``'declared'`` — else the declared lead time, rounded, always.

Draws use inverse-transform sampling from uniforms the caller provides, so
two replays fed the same uniforms (the policy and the baseline) get the same
lead time for their k-th order of a series: common random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import ErpSnapshot
from replenish.policy.leadtime import declared_lead_times

__all__ = ["LeadTimeDraws", "empirical_lead_times"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LeadTimeDraws:
    """The empirical lead-time distribution of every series, ragged.

    Attributes:
        values: sorted whole-day lead times of all series, concatenated.
        offsets: ``values[offsets[i]:offsets[i + 1]]`` belong to series i.
        source: per series, 'receipts', 'supplier' or 'declared'.
    """

    values: IntArray
    offsets: IntArray
    source: npt.NDArray[np.object_]

    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    def draw(self, series: IntArray, u: FloatArray) -> IntArray:
        """Lead time in days for each ``series[j]``, by inverse transform of
        the uniform ``u[j]`` in [0, 1)."""
        lo = self.offsets[series]
        size = self.offsets[series + 1] - lo
        k = np.minimum(np.floor(u * size).astype(np.int64), size - 1)
        return np.asarray(self.values[lo + k], dtype=np.int64)

    def mean(self) -> FloatArray:
        """Mean lead time of each series' distribution (days)."""
        sums = np.add.reduceat(self.values.astype(np.float64), self.offsets[:-1])
        return np.asarray(sums / np.diff(self.offsets), dtype=np.float64)


def _observed(snapshot: ErpSnapshot) -> pd.DataFrame:
    """sku, supplier_id, observed whole-day lead time of every received line."""
    lines = snapshot.purchase_order_lines
    lines = lines[lines["received_at"].notna() & (lines["qty_received"] > 0)]
    pos = snapshot.purchase_orders[["po_id", "supplier_id", "ordered_at"]].drop_duplicates("po_id")
    rec = lines[["po_id", "sku", "received_at"]].merge(pos, on="po_id", how="inner")
    rec = rec[rec["sku"].notna() & rec["supplier_id"].notna() & rec["ordered_at"].notna()]
    receiving = snapshot.suppliers[["supplier_id", "receiving_days"]].drop_duplicates("supplier_id")
    rec = rec.merge(receiving, on="supplier_id", how="left")
    dock = (rec["received_at"].dt.normalize() - rec["ordered_at"].dt.normalize()).dt.days
    days = dock.to_numpy(dtype=np.float64) + np.rint(
        rec["receiving_days"].astype("float64").fillna(0.0).to_numpy()
    )
    out = pd.DataFrame(
        {
            "sku": rec["sku"].astype("string").to_numpy(),
            "supplier_id": rec["supplier_id"].astype("string").to_numpy(),
            "days": days,
        }
    )
    return out[dock.to_numpy() >= 0]  # received before ordered: bad data


def empirical_lead_times(
    snapshot: ErpSnapshot,
    sku: npt.ArrayLike,
    supplier_id: npt.ArrayLike,
    min_receipts: int = 3,
) -> LeadTimeDraws:
    """The lead-time distribution of each series (see the module docstring).

    Args:
        snapshot: the ERP history (receipts, suppliers, supplier_products).
        sku, supplier_id: per series, its SKU and the supplier it orders from.
        min_receipts: receipts needed to use a pair's or a supplier's history.

    Returns:
        A :class:`LeadTimeDraws` with one distribution per series, in order.
        A series without any usable figure (no receipt, no declared lead time)
        gets a lead time of 0 days; the policy does not order it anyway.
    """
    if min_receipts < 1:
        raise ValueError("min_receipts must be >= 1")
    skus = pd.Series(np.asarray(sku, dtype=object), dtype="string")
    sups = pd.Series(np.asarray(supplier_id, dtype=object), dtype="string")
    n = len(skus)
    rec = _observed(snapshot)
    declared = declared_lead_times(snapshot.supplier_products, snapshot.suppliers)
    declared = declared.astype({"sku": "string", "supplier_id": "string"})
    dec_map = {
        (s, p): v
        for s, p, v in zip(
            declared["sku"], declared["supplier_id"], declared["declared_lead_time"], strict=True
        )
    }
    rec_declared = np.array(
        [dec_map.get((s, p), np.nan) for s, p in zip(rec["sku"], rec["supplier_id"], strict=True)],
        dtype=np.float64,
    )
    rec = rec.assign(deviation=rec["days"].to_numpy() - np.rint(rec_declared))

    by_pair = {key: np.sort(g.to_numpy()) for key, g in rec.groupby(["sku", "supplier_id"])["days"]}
    by_supplier = {
        key: np.sort(g.dropna().to_numpy()) for key, g in rec.groupby("supplier_id")["deviation"]
    }

    pools: list[IntArray] = []
    source = np.empty(n, dtype=object)
    for i in range(n):
        s, p = skus.iloc[i], sups.iloc[i]
        pair = by_pair.get((s, p), np.zeros(0))
        dev = by_supplier.get(p, np.zeros(0)) if pd.notna(p) else np.zeros(0)
        dec = dec_map.get((s, p), np.nan)
        if len(pair) >= min_receipts:
            pool, source[i] = pair, "receipts"
        elif len(dev) >= min_receipts and np.isfinite(dec):
            pool, source[i] = np.sort(np.maximum(np.rint(dec) + dev, 0.0)), "supplier"
        else:
            pool = np.array([np.rint(dec) if np.isfinite(dec) else 0.0])
            source[i] = "declared"
        pools.append(pool.astype(np.int64))
    sizes = np.array([len(x) for x in pools], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    values = np.concatenate(pools) if pools else np.zeros(0, dtype=np.int64)
    return LeadTimeDraws(values=values.astype(np.int64), offsets=offsets, source=source)
