"""Forecast accuracy over the backtest window, beside two standard baselines.

At every refit origin (day r, the forecast fitted on the sales before r) the
forecasts of days r, r+1, …, r+h−1 (h = 7 by default, truncated at the end of
the window) are compared with the recorded sales of those days:

* ``replenish`` — our forecast: its daily path (``Forecast.path``), or the
  flat ``demand_mean`` when the forecast carries no path;
* ``seasonal_naive_7`` — statsforecast ``SeasonalNaive(season_length=7)``:
  the same weekday last week;
* ``croston_sba`` — statsforecast ``CrostonSBA()`` (α = 0.1).

The baselines see the same series, the same origins and the same training
window (the forecast's history window, raw recorded sales: they know nothing
of censoring). statsforecast is optional: without it only ``replenish`` is
scored and a note says so.

Days whose recorded sales are censored (the ERP's stock history says the item
was out of stock at the end of the day) are left out of the scores: their
sales understate demand.

Scores, per model, overall and per demand class (the Syntetos–Boylan class
our forecast gave the series at that origin):

``mase``
    Mean absolute scaled error (Hyndman & Koehler 2006, IJF 22(4)): for each
    series and origin, the mean absolute error over the scored days divided
    by the in-sample MAE of the seasonal naive-7 forecast on the training
    window (mean |y_t − y_{t−7}|); then averaged over series × origins.
    Series × origins whose scale is 0 (no demand change in the training
    window, e.g. never sold) are left out. Below 1: better than last week's
    sales were in-sample.
``bias``
    Σ (forecast − actual) / Σ actual over the scored days: +0.10 means the
    forecast was 10 % too high on average.
``n``, ``n_mase``
    Series × origins scored, and those of them with a non-zero scale (the
    ones ``mase`` averages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MODELS", "AccuracyCollector", "statsforecast_available"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

OURS = "replenish"
SEASONAL_NAIVE = "seasonal_naive_7"
CROSTON = "croston_sba"
MODELS = (OURS, SEASONAL_NAIVE, CROSTON)
_SEASON = 7


def statsforecast_available() -> bool:
    """True when statsforecast can be imported (an optional dependency)."""
    try:
        import statsforecast.models  # noqa: F401
    except ImportError:
        return False
    return True


def _baseline_forecasts(train: FloatArray, h: int) -> dict[str, FloatArray]:
    """statsforecast's SeasonalNaive(7) and CrostonSBA, one series at a time
    (their models are per-series functions). A series never sold gets 0."""
    from statsforecast.models import CrostonSBA, SeasonalNaive

    n = train.shape[0]
    naive = SeasonalNaive(season_length=_SEASON)
    croston = CrostonSBA()
    out = {SEASONAL_NAIVE: np.zeros((n, h)), CROSTON: np.zeros((n, h))}
    for i in np.flatnonzero(train.sum(axis=1) > 0):
        y = train[i]
        out[SEASONAL_NAIVE][i] = naive.forecast(y=y, h=h)["mean"]
        out[CROSTON][i] = croston.forecast(y=y, h=h)["mean"]
    return out


def seasonal_naive_scale(train: FloatArray) -> FloatArray:
    """In-sample MAE of the seasonal naive-7 forecast, per row:
    mean |y_t − y_{t−7}| over the training window (NaN if shorter than 8 days).

    >>> seasonal_naive_scale(np.array([[1.0, 0, 0, 0, 0, 0, 0, 3, 0]])).tolist()
    [1.0]
    """
    if train.shape[1] <= _SEASON:
        return np.full(train.shape[0], np.nan)
    return np.asarray(np.abs(train[:, _SEASON:] - train[:, :-_SEASON]).mean(axis=1))


@dataclass
class _Origin:
    day: int
    scale: FloatArray
    demand_class: npt.NDArray[np.object_]
    forecasts: dict[str, FloatArray]


@dataclass
class AccuracyCollector:
    """Collects the forecasts of each refit origin; :meth:`summary` scores them.

    Baselines are computed when an origin is added, so the training windows
    need not be kept.
    """

    horizon: int = 7
    baselines: bool = field(default_factory=statsforecast_available)
    origins: list[_Origin] = field(default_factory=list)

    def add_origin(
        self,
        day: int,
        train: FloatArray,
        ours: FloatArray,
        demand_class: npt.ArrayLike,
    ) -> None:
        """Record origin ``day`` (an index into the window's days).

        Args:
            train: n_series × n_train recorded daily sales before the origin.
            ours: n_series × horizon, our forecast of days day … day+h−1.
            demand_class: per series, its class at this origin.
        """
        forecasts = {OURS: np.asarray(ours, dtype=np.float64)[:, : self.horizon]}
        if self.baselines:
            forecasts.update(_baseline_forecasts(train, self.horizon))
        self.origins.append(
            _Origin(
                day=day,
                scale=seasonal_naive_scale(train),
                demand_class=np.asarray(demand_class, dtype=object),
                forecasts=forecasts,
            )
        )

    def summary(self, demand: FloatArray, censored: BoolArray) -> dict[str, Any]:
        """Scores of every model, overall and per demand class (module docstring).

        Args:
            demand: n_series × n_days recorded sales of the window.
            censored: same shape, True where the day's sales are censored.
        """
        models = MODELS if self.baselines else (OURS,)
        n_days = demand.shape[1]
        rows: dict[str, list[FloatArray]] = {k: [] for k in ("act", "cnt", "scale", "ok")}
        per_model: dict[str, dict[str, list[FloatArray]]] = {
            m: {"abs": [], "err": []} for m in models
        }
        classes: list[npt.NDArray[np.object_]] = []
        for o in self.origins:
            hi = min(o.day + self.horizon, n_days)
            if hi <= o.day:
                continue
            act = demand[:, o.day : hi]
            valid = ~censored[:, o.day : hi]
            fc = {m: o.forecasts[m][:, : hi - o.day] for m in models}
            # the same series × origins for every model: all must have a forecast
            ok = np.all([np.isfinite(f).all(axis=1) for f in fc.values()], axis=0)
            for m in models:
                e = np.where(valid, np.nan_to_num(fc[m]) - act, 0.0)
                per_model[m]["abs"].append(np.abs(e).sum(axis=1))
                per_model[m]["err"].append(e.sum(axis=1))
            rows["act"].append(np.where(valid, act, 0.0).sum(axis=1))
            rows["cnt"].append(valid.sum(axis=1).astype(np.float64))
            rows["scale"].append(o.scale)
            rows["ok"].append(ok.astype(np.float64))
            classes.append(o.demand_class)
        out: dict[str, Any] = {
            "horizon_days": self.horizon,
            "origins": len(self.origins),
            "models": list(models),
        }
        if not self.baselines:
            out["note"] = (
                "statsforecast is not installed: the seasonal naive and Croston-SBA "
                "baselines were skipped (pip install statsforecast)"
            )
        if not classes:
            empty = np.zeros(0)
            out["overall"] = {m: _score(empty, empty, empty, empty, empty) for m in models}
            out["by_demand_class"] = {}
            return out
        act = np.concatenate(rows["act"])
        cnt = np.concatenate(rows["cnt"])
        scale = np.concatenate(rows["scale"])
        ok = np.concatenate(rows["ok"]) > 0
        label = np.concatenate(classes)
        absd = {m: np.concatenate(per_model[m]["abs"]) for m in models}
        errd = {m: np.concatenate(per_model[m]["err"]) for m in models}

        def scores(mask: BoolArray) -> dict[str, dict[str, Any]]:
            keep = mask & ok & (cnt > 0)
            return {
                m: _score(absd[m][keep], errd[m][keep], act[keep], cnt[keep], scale[keep])
                for m in models
            }

        out["overall"] = scores(np.ones(len(act), dtype=bool))
        out["by_demand_class"] = {
            str(c): scores(label == c) for c in sorted({str(x) for x in label})
        }
        return out


def _score(
    abs_sum: FloatArray,
    err_sum: FloatArray,
    act_sum: FloatArray,
    cnt: FloatArray,
    scale: FloatArray,
) -> dict[str, Any]:
    """MASE over the rows with a positive scale, bias over all rows."""
    scaled = scale > 0
    mase = (abs_sum[scaled] / cnt[scaled]) / scale[scaled]
    total = float(act_sum.sum())
    return {
        "mase": float(mase.mean()) if mase.size else None,
        "bias": float(err_sum.sum()) / total if total > 0 else None,
        "n": len(abs_sum),
        "n_mase": int(scaled.sum()),
    }
