"""Demand classification and forecasting, all series at once.

Usage::

    history = daily_demand(snapshot.sales_order_lines, as_of, 730, snapshot.stock_history)
    forecast = forecast_demand(history)

Each Syntetos–Boylan class gets a fitting method (DESIGN.md):

==================  ===============  ============================================
demand_class        method           function
==================  ===============  ============================================
smooth, erratic     ``ses_weekday``  :func:`methods.ses_weekday`
intermittent, lumpy ``croston_sba``  :func:`methods.croston_sba`
none                ``none``         0 units/day (NaN when every day is censored)
==================  ===============  ============================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from replenish.forecast.classify import syntetos_boylan
from replenish.forecast.demand import DemandHistory, daily_demand
from replenish.forecast.methods import croston_sba, ses_weekday

__all__ = ["FORECAST_COLUMNS", "DemandHistory", "daily_demand", "forecast_demand"]

FORECAST_COLUMNS = [
    "sku",
    "location_id",
    "demand_class",
    "method",
    "adi",
    "cv2",
    "demand_mean",
    "demand_std",
    "n_days",
    "nonzero_days",
    "censored_days",
]

#: Series processed per block: bounds the temporaries of the methods
#: (block × days × 8 bytes each) without a per-series loop.
_BLOCK = 8192

_SES_CLASSES = ("smooth", "erratic")
_CROSTON_CLASSES = ("intermittent", "lumpy")


def forecast_demand(history: DemandHistory, alpha: float = 0.1) -> pd.DataFrame:
    """Classify every series and forecast its mean daily demand.

    Censored days (``history.censored``) are masked out of the classification
    and of both methods: demand not seen while out of stock does not teach
    the forecast that nobody wanted the item.

    Args:
        history: output of :func:`daily_demand`.
        alpha: smoothing parameter of both methods.

    Returns:
        One row per series, in ``history.keys`` order: sku, location_id,
        demand_class, method ('ses_weekday' | 'croston_sba' | 'none'), adi,
        cv2, demand_mean (units/day), demand_std (units/day: std of daily
        forecast errors), n_days (days in the window), nonzero_days (uncensored
        days with demand), censored_days. For class 'none' demand_mean and
        demand_std are 0, or NaN when every day was censored (demand unknown).
    """
    qty = history.qty
    censored = history.censored
    n_series, n_days = qty.shape
    weekday = history.dates.day_of_week.to_numpy() if len(history.dates) == n_days else None

    classes: list[pd.DataFrame] = []
    mean = np.zeros(n_series)
    std = np.zeros(n_series)
    method = np.full(n_series, "none", dtype=object)
    nonzero = np.zeros(n_series, dtype=np.int64)
    for lo in range(0, n_series, _BLOCK):
        hi = min(lo + _BLOCK, n_series)
        q = qty[lo:hi]
        valid = ~censored[lo:hi]
        cls = syntetos_boylan(q, censored[lo:hi])
        classes.append(cls)
        nonzero[lo:hi] = np.count_nonzero(valid & (q > 0), axis=1)
        label = cls["demand_class"].to_numpy(dtype=object)
        ses_rows = np.flatnonzero(np.isin(label, _SES_CLASSES))
        if ses_rows.size:
            res = ses_weekday(q[ses_rows], valid[ses_rows], alpha=alpha, weekday=weekday)
            mean[lo + ses_rows], std[lo + ses_rows] = res.mean, res.std
            method[lo + ses_rows] = "ses_weekday"
        cro_rows = np.flatnonzero(np.isin(label, _CROSTON_CLASSES))
        if cro_rows.size:
            res = croston_sba(q[cro_rows], valid[cro_rows], alpha=alpha)
            mean[lo + cro_rows], std[lo + cro_rows] = res.mean, res.std
            method[lo + cro_rows] = "croston_sba"
        unknown = np.flatnonzero(valid.sum(axis=1) == 0)
        mean[lo + unknown] = np.nan
        std[lo + unknown] = np.nan

    cls_all = (
        pd.concat(classes, ignore_index=True)
        if classes
        else syntetos_boylan(np.zeros((0, n_days)), np.zeros((0, n_days), dtype=bool))
    )
    return pd.DataFrame(
        {
            "sku": history.keys["sku"].astype("string").to_numpy(),
            "location_id": history.keys["location_id"].astype("string").to_numpy(),
            "demand_class": cls_all["demand_class"].to_numpy(),
            "method": pd.array(method, dtype="string"),
            "adi": cls_all["adi"].to_numpy(),
            "cv2": cls_all["cv2"].to_numpy(),
            "demand_mean": mean,
            "demand_std": std,
            "n_days": np.full(n_series, n_days, dtype=np.int64),
            "nonzero_days": nonzero,
            "censored_days": censored.sum(axis=1).astype(np.int64),
        }
    ).astype({"sku": "string", "location_id": "string", "demand_class": "string"})
