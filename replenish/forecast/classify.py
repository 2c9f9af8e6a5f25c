"""Syntetos–Boylan demand classification, all series at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["ADI_CUTOFF", "CV2_CUTOFF", "DEMAND_CLASSES", "syntetos_boylan"]

#: Cut-offs of Syntetos, Boylan & Croston (2005).
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
DEMAND_CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "none")


def syntetos_boylan(
    qty: npt.NDArray[np.float64], censored: npt.NDArray[np.bool_] | None = None
) -> pd.DataFrame:
    """Classify each series (row) as smooth, erratic, intermittent or lumpy.

    Over the uncensored days of each row (censored days are not evidence of
    zero demand, so they are left out of both counts)::

        ADI = uncensored days / days with demand > 0   (average inter-demand interval)
        CV² = Var(sizes) / Mean(sizes)²                (sizes = non-zero demands, ddof=0)

    =================  ==============  ==============
    class              ADI < 1.32      ADI >= 1.32
    =================  ==============  ==============
    CV² < 0.49         smooth          intermittent
    CV² >= 0.49        erratic         lumpy
    =================  ==============  ==============

    A series with no demand on any uncensored day (including a series whose
    every day is censored) is 'none', with ADI and CV² NaN. A single non-zero
    demand has CV² = 0.

    Source: Syntetos, Boylan & Croston (2005), "On the categorization of
    demand patterns", JORS 56(5):495–503.

    Args:
        qty: n_series × n_days demand.
        censored: same shape, True where the day is censored; None: none.

    Returns:
        One row per input row (RangeIndex, same order): adi, cv2,
        demand_class.
    """
    q = np.asarray(qty, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError("qty must be a 2-D array (series × days)")
    if censored is None:
        valid = np.ones(q.shape, dtype=bool)
    else:
        if censored.shape != q.shape:
            raise ValueError("censored must have the shape of qty")
        valid = ~censored
    n_valid = valid.sum(axis=1)
    size = np.where(valid & (q > 0), q, 0.0)
    n_nz = np.count_nonzero(size, axis=1)
    s1 = size.sum(axis=1)
    s2 = np.einsum("ij,ij->i", size, size)
    has = n_nz > 0
    safe_n = np.where(has, n_nz, 1)
    mean = s1 / safe_n
    var = np.maximum(s2 / safe_n - mean**2, 0.0)
    adi = np.where(has, n_valid / safe_n, np.nan)
    cv2 = np.where(has, var / np.where(has, mean, 1.0) ** 2, np.nan)
    frequent = adi < ADI_CUTOFF
    steady = cv2 < CV2_CUTOFF
    demand_class = np.select(
        [~has, frequent & steady, frequent, steady],
        ["none", "smooth", "erratic", "intermittent"],
        default="lumpy",
    )
    return pd.DataFrame(
        {"adi": adi, "cv2": cv2, "demand_class": pd.array(demand_class, dtype="string")}
    )
