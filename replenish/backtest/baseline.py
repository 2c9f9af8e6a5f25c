"""The baseline: a static min/max rule, as merchants set reordering rules in Odoo.

For each series, set once at the start of the backtest and never refit::

    d   = mean daily demand over the sales history known at the start
          (recorded sales, every day of the forecast's history window)
    L   = the lead time the policy learned at the start (lead_time_mean)
    min = d · L
    max = min + d · review_days                      (review_days: default 14)

Every day, when the stock position (on hand + on order) is at or below
``min``, order ``max − position``, rounded like the policy's orders (MOQ, then
up to a multiple of the pack size: :func:`replenish.policy.round_order_qty`).
This is Odoo's "min/max" reordering rule (Inventory › Replenishment), with the
minimum a lead time's average demand and the maximum that plus two weeks —
the rule of thumb most merchants start from: no safety stock, no forecast,
no service target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replenish.policy import round_order_qty

__all__ = ["MinMaxBaseline"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MinMaxBaseline:
    """Static min/max levels of every series (arrays of n_series).

    Attributes:
        minimum, maximum: the reorder level and the order-up-to level (units).
        moq, pack_size: the preferred supplier's terms, for rounding.
    """

    minimum: FloatArray
    maximum: FloatArray
    moq: FloatArray
    pack_size: FloatArray

    @classmethod
    def from_history(
        cls,
        mean_daily_demand: npt.ArrayLike,
        lead_time: npt.ArrayLike,
        moq: npt.ArrayLike,
        pack_size: npt.ArrayLike,
        review_days: float = 14.0,
        safety_days: float = 0.0,
    ) -> MinMaxBaseline:
        """min = d · (L + safety_days) and max = min + d · review_days (module
        docstring; ``safety_days`` 0 is the issue's rule, more is the padded
        rule of :mod:`replenish.backtest.frontier`). A missing d or L gives
        NaN levels: that series never orders."""
        if not review_days >= 0:
            raise ValueError("review_days must be >= 0")
        d = np.asarray(mean_daily_demand, dtype=np.float64)
        lt = np.asarray(lead_time, dtype=np.float64)
        if not safety_days >= 0:
            raise ValueError("safety_days must be >= 0")
        minimum = d * (lt + safety_days)
        return cls(
            minimum=minimum,
            maximum=minimum + d * review_days,
            moq=np.asarray(moq, dtype=np.float64),
            pack_size=np.asarray(pack_size, dtype=np.float64),
        )

    def order_qty(self, position: npt.ArrayLike) -> FloatArray:
        """Order quantity of each series for the stock position given:
        ``max − position`` rounded (MOQ, pack) when position <= min, else 0."""
        ip = np.asarray(position, dtype=np.float64)
        trigger = ip <= self.minimum  # False where min is NaN
        raw = np.where(trigger, self.maximum - ip, 0.0)
        raw = np.where(np.isfinite(raw), raw, 0.0)
        moq = np.where(np.isfinite(self.moq) & (self.moq > 0), self.moq, 0.0)
        return np.asarray(round_order_qty(raw, moq, self.pack_size), dtype=np.float64)
