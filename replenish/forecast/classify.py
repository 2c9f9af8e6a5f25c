"""Demand classification, all series at once: Syntetos–Boylan (which method)
and XYZ (how variable), plus the weekdays a series is never sold on."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.forecast.seasonality import closed_weekday_table

__all__ = [
    "ADI_CUTOFF",
    "CV2_CUTOFF",
    "DEMAND_CLASSES",
    "XYZ_CUTOFFS",
    "closed_weekdays",
    "sb_from_counts",
    "syntetos_boylan",
    "xyz_classes",
    "xyz_from_weeks",
]

#: Cut-offs of Syntetos, Boylan & Croston (2005).
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
DEMAND_CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "none")
_SB_LABELS = np.array(DEMAND_CLASSES, dtype=object)
_XYZ_LABELS = np.array(["X", "Y", "Z", None], dtype=object)
#: Upper bounds of the coefficient of variation of weekly demand for X and Y.
XYZ_CUTOFFS = (0.5, 1.0)


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
    size = np.where(valid & (q > 0), q, 0.0)
    adi, cv2, label = sb_from_counts(
        valid.sum(axis=1),
        np.count_nonzero(size, axis=1),
        size.sum(axis=1),
        np.einsum("ij,ij->i", size, size),
    )
    return pd.DataFrame({"adi": adi, "cv2": cv2, "demand_class": pd.array(label, dtype="string")})


def sb_from_counts(
    valid_days: npt.ArrayLike,
    demand_days: npt.ArrayLike,
    size_sum: npt.ArrayLike,
    size_squares: npt.ArrayLike,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.object_]]:
    """ADI, CV² and the Syntetos–Boylan class from per-series counts (see
    :func:`syntetos_boylan`): valid days, days with demand, and the sum and
    sum of squares of the non-zero demands."""
    n_valid = np.asarray(valid_days, dtype=np.float64)
    n_nz = np.asarray(demand_days, dtype=np.float64)
    s1 = np.asarray(size_sum, dtype=np.float64)
    s2 = np.asarray(size_squares, dtype=np.float64)
    has = n_nz > 0
    safe_n = np.where(has, n_nz, 1.0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = s1 / safe_n
        var = np.maximum(s2 / safe_n - mean**2, 0.0)
        adi = np.where(has, n_valid / safe_n, np.nan)
        cv2 = np.where(has, var / np.where(has, mean, 1.0) ** 2, np.nan)
    frequent = adi < ADI_CUTOFF
    steady = cv2 < CV2_CUTOFF
    code = np.where(~has, 4, np.where(frequent, np.where(steady, 0, 1), np.where(steady, 2, 3)))
    label: npt.NDArray[np.object_] = _SB_LABELS[code]
    return adi, cv2, label


def xyz_classes(
    qty: npt.NDArray[np.float64],
    valid: npt.NDArray[np.bool_] | None = None,
    cutoffs: tuple[float, float] = XYZ_CUTOFFS,
    min_days_per_week: int = 4,
) -> pd.DataFrame:
    """XYZ class of each series by the coefficient of variation of its WEEKLY demand.

    Weeks are the consecutive 7-day blocks ending on the last day of the
    history (a partial first block is dropped). A week's demand is
    ``7 × mean(demand over its valid days)``, so a censored or promotion day
    neither counts as zero nor inflates the week; weeks with fewer than
    ``min_days_per_week`` valid days are left out. Then::

        CV = std(weekly demand, ddof=1) / mean(weekly demand)
        X: CV ≤ 0.5      Y: 0.5 < CV ≤ 1.0      Z: CV > 1.0

    The cut-offs are the common practitioner convention for XYZ analysis
    (X < 0.5 ≤ Y ≤ 1.0 < Z on the coefficient of variation; e.g. the ABC–XYZ
    matrix of inventory segmentation); the literature also uses other
    thresholds and periods, hence the ``cutoffs`` argument. Weekly rather
    than daily demand, because the daily CV of any slow mover is > 1 and would
    put every item in Z. Trend and seasonality count as variability (the
    convention).

    Series with fewer than 2 usable weeks or no demand get CV NaN and class
    <NA> (variability unknown).

    Args:
        qty: n_series × n_days daily demand.
        valid: same shape, True on base days; None: all days.
        cutoffs: (X upper bound, Y upper bound).
        min_days_per_week: valid days a week needs to count.

    Returns:
        One row per series (RangeIndex): weekly_cv, xyz_class ('X'|'Y'|'Z'|<NA>).
    """
    q = np.asarray(qty, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError("qty must be a 2-D array (series × days)")
    v = np.ones(q.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if v.shape != q.shape:
        raise ValueError("valid must have the shape of qty")
    if not 0 < cutoffs[0] <= cutoffs[1]:
        raise ValueError("cutoffs must be 0 < x_max <= y_max")
    n, t_days = q.shape
    weeks = t_days // 7
    cut = t_days - 7 * weeks
    week_sum = np.where(v, q, 0.0)[:, cut:].reshape(n, weeks, 7).sum(axis=2)
    week_days = v[:, cut:].reshape(n, weeks, 7).sum(axis=2)
    cv, label = xyz_from_weeks(week_sum, week_days, cutoffs, min_days_per_week)
    xyz = pd.array(label, dtype="string")
    return pd.DataFrame({"weekly_cv": cv, "xyz_class": xyz})


def xyz_from_weeks(
    week_sum: npt.NDArray[np.float64],
    week_days: npt.ArrayLike,
    cutoffs: tuple[float, float] = XYZ_CUTOFFS,
    min_days_per_week: int = 4,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.object_]]:
    """Weekly CV and XYZ label (None where unknown) from per-week demand sums
    and valid-day counts (n_series × n_weeks); see :func:`xyz_classes`."""
    if not 0 < cutoffs[0] <= cutoffs[1]:
        raise ValueError("cutoffs must be 0 < x_max <= y_max")
    vw = np.asarray(week_days, dtype=np.float64)
    use = vw >= min_days_per_week
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rate = np.where(use, 7.0 * week_sum / np.maximum(vw, 1), 0.0)
        m = use.sum(axis=1)
        mean = rate.sum(axis=1) / np.maximum(m, 1)
        dev = np.where(use, rate - mean[:, None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / np.maximum(m - 1, 1))
        cv = np.where((m >= 2) & (mean > 0), std / np.where(mean > 0, mean, 1.0), np.nan)
    code = np.where(cv <= cutoffs[0], 0, np.where(cv <= cutoffs[1], 1, np.where(cv > 0, 2, 3)))
    label: npt.NDArray[np.object_] = _XYZ_LABELS[code]  # NaN CV: code 3, None
    return cv, label


def closed_weekdays(
    qty: npt.NDArray[np.float64],
    valid: npt.NDArray[np.bool_],
    weekday: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Days on which a series is evidently never sold (a B2B shop's weekend).

    A weekday is *closed* for a series when the series had no demand on any
    of its ≥ 8 valid occurrences while it had demand on at least half of its
    valid other days (:func:`replenish.forecast.seasonality.closed_weekday_table`;
    the chance of that by luck is < 0.5⁸ ≈ 0.4 %).

    Those days are structural zeros: they are not evidence of intermittence,
    so the Syntetos–Boylan classification leaves them out (a wholesaler
    selling 20 units every working day is *smooth*, not intermittent), and
    the weekday profile gives them an index of 0.

    Args:
        qty, valid: n_series × n_days.
        weekday: day of week (0..6) of each column.

    Returns:
        n_series × n_days, True on the days that fall on a closed weekday.
    """
    wd = np.asarray(weekday, dtype=np.int64)
    table = closed_weekday_table(
        np.asarray(qty, dtype=np.float64), np.asarray(valid, dtype=bool), wd
    )
    out: npt.NDArray[np.bool_] = table[:, wd]
    return out
