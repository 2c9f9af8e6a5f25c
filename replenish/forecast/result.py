"""What a forecast hands to the policy: per-series statistics and a daily path.

The policy needs the expected demand over the protection interval (lead time
plus review period), which is not ``d · (L + R)`` when the season turns or a
promotion is planned inside it. So a forecast carries, beside its per-series
frame, the expected demand of each of the next ``horizon`` days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True)
class Forecast:
    """Demand forecast of many series at once.

    Attributes:
        frame: one row per series (``sku``, ``location_id``, ``demand_mean``,
            ``demand_std`` per day, class, method, ...; see
            ``replenish.forecast.FORECAST_COLUMNS``).
        path: float64 array ``(len(frame), horizon)``: expected demand on
            ``start``, ``start + 1 day``, ... with weekday and yearly profile,
            trend and planned promotions applied. Row ``i`` belongs to
            ``frame.iloc[i]``. NaN where a series could not be forecast.
        start: the first day of ``path`` (the planning date).
    """

    frame: pd.DataFrame
    path: npt.NDArray[np.float64]
    start: date

    def __post_init__(self) -> None:
        if self.path.ndim != 2 or self.path.shape[0] != len(self.frame):
            raise ValueError(
                f"path must be (len(frame), horizon) = ({len(self.frame)}, h), "
                f"got {self.path.shape}"
            )

    @property
    def horizon(self) -> int:
        return int(self.path.shape[1])

    @classmethod
    def flat(cls, frame: pd.DataFrame, start: date, horizon: int = 120) -> Forecast:
        """A forecast whose path is ``demand_mean`` every day (no profile)."""
        mean = pd.to_numeric(frame["demand_mean"], errors="coerce").to_numpy(dtype=float)
        return cls(frame=frame, path=np.repeat(mean[:, None], horizon, axis=1), start=start)

    def interval_demand(
        self, days: npt.ArrayLike, offset: npt.ArrayLike = 0.0
    ) -> npt.NDArray[np.float64]:
        """Expected demand of each series over ``[offset, offset + days)`` days
        from ``start``, fractional days pro rata; beyond the horizon the last
        day's expectation is extended.

        ``days`` and ``offset`` broadcast against the series (scalars or arrays
        of ``len(frame)``).
        """
        n, h = self.path.shape
        lo = np.broadcast_to(np.asarray(offset, dtype=float), (n,))
        hi = lo + np.broadcast_to(np.asarray(days, dtype=float), (n,))
        path = np.where(np.isfinite(self.path), self.path, np.nan)
        cum = np.concatenate([np.zeros((n, 1)), np.cumsum(np.nan_to_num(path), axis=1)], axis=1)
        last = path[:, -1] if h else np.zeros(n)

        def upto(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            x = np.clip(x, 0.0, None)
            within = np.minimum(x, h)
            k = np.floor(within).astype(int)
            k_next = np.minimum(k, h - 1)
            frac = within - k
            part = cum[np.arange(n), k] + np.where(k < h, frac * path[np.arange(n), k_next], 0.0)
            return part + np.maximum(x - h, 0.0) * last

        out = upto(hi) - upto(lo)
        bad = ~np.isfinite(path).all(axis=1)
        return np.where(bad, np.nan, out)
