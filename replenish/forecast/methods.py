"""Forecasting methods: small recursions over 2-D arrays, all series at once.

Rows are series, columns are days. Each method is a *kernel*: its state is a
few vectors (one value per series) and :meth:`update` advances every series by
one day, so the methods loop over *time* only. ``valid`` marks the days that
are evidence (False on censored and promotion days: the item was out of
stock, or demand was inflated on purpose). On an invalid day the state carries
over (a damped trend keeps being damped) and no error is recorded.

Two ways to run a kernel:

* the functions :func:`ses`, :func:`holt_damped`, :func:`croston_sba` and
  :func:`tsb` run one over a whole series × days array and return a
  :class:`Fit` (the state before every day): simple, for tests and small data;
* :mod:`replenish.forecast.engine` steps several kernels side by side over a
  block of series, scoring their one-step forecasts as it goes (no
  series × days temporaries: fast at 100 000 series).

Level methods (:class:`SES`, :class:`HoltDamped`) work on demand already
divided by its seasonal profile (:mod:`replenish.forecast.seasonality`); the
intermittent ones (:class:`CrostonSBA`, :class:`TSB`) on demand that is zero
on most days.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "BETA",
    "INIT_DAYS",
    "PHI_PER_DAY",
    "SES",
    "TSB",
    "CrostonSBA",
    "Fit",
    "HoltDamped",
    "Kernel",
    "croston_sba",
    "damped_steps",
    "holt_damped",
    "initial_level",
    "recent_mean",
    "residual_rmse",
    "ses",
    "tsb",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Days used to initialise a level (the first four weeks with valid days).
INIT_DAYS = 28
#: Damping of the trend per day: 0.9 per week (0.9 ** (1/7) ≈ 0.985), so the
#: trend adds at most φ/(1 − φ) ≈ 66 days of the current slope.
PHI_PER_DAY = 0.9 ** (1.0 / 7.0)
#: Smoothing of the trend (β of Holt's method): slow, daily data are noisy.
BETA = 0.005


def damped_steps(phi: float, steps: int) -> FloatArray:
    """Cumulative damping φ + φ² + … + φ^h for h = 1 … steps."""
    return np.cumsum(phi ** np.arange(1, steps + 1, dtype=np.float64))


def _check_alpha(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1]")


class Kernel(Protocol):
    """One forecasting method, stepping all series by one day at a time."""

    phi: float

    def forecast(self) -> FloatArray:
        """Forecast of the coming day (n_series; 0 where :meth:`scored` is
        False). A view of the state: do not modify."""
        ...

    def scored(self) -> BoolArray | None:
        """Series that have a forecast (None: all)."""
        ...

    def update(self, y: FloatArray, valid: BoolArray, demand: BoolArray | None = None) -> None:
        """Take in one day: ``y`` its demand, ``valid`` whether it is evidence,
        ``demand`` (optional, precomputed) ``valid & (y > 0)``."""
        ...

    def state(self) -> tuple[FloatArray, FloatArray | None]:
        """Copies of (level, trend or None): the forecast h days ahead is
        ``level + (φ + … + φ^h) · trend``."""
        ...


class SES:
    """Simple exponential smoothing of the level (error-correction form)::

        ℓ_t = ℓ_{t−1} + α · (x_t − ℓ_{t−1})     on a valid day; unchanged otherwise

    forecast of any later day: ℓ (flat; the caller multiplies by the seasonal
    profile). Source: Hyndman & Athanasopoulos, *Forecasting: Principles and
    Practice* (FPP3), §8.1.
    """

    phi = 1.0

    def __init__(self, level: FloatArray, alpha: float = 0.1) -> None:
        _check_alpha("alpha", alpha)
        self.alpha = alpha
        self.level = np.array(level, dtype=np.float64)
        self._e = np.empty_like(self.level)

    def forecast(self) -> FloatArray:
        return self.level

    def scored(self) -> BoolArray | None:
        return None

    def update(self, y: FloatArray, valid: BoolArray, demand: BoolArray | None = None) -> None:
        e = self._e
        np.subtract(y, self.level, out=e)
        np.multiply(e, valid, out=e)
        e *= self.alpha
        self.level += e

    def state(self) -> tuple[FloatArray, FloatArray | None]:
        return self.level.copy(), None


class HoltDamped:
    """Holt's linear method with a damped trend (error-correction form)::

        e_t = x_t − (ℓ_{t−1} + φ·b_{t−1})
        ℓ_t = ℓ_{t−1} + φ·b_{t−1} + α·e_t
        b_t = φ·b_{t−1} + α·β·e_t

    On an invalid day e_t = 0 (the state follows its own forecast). h-step
    forecast: ℓ_T + (φ + … + φ^h)·b_T; b_0 = 0. Defaults: φ = 0.9 per week
    (:data:`PHI_PER_DAY`), β = :data:`BETA`.

    Source: Gardner & McKenzie (1985), "Forecasting trends in time series",
    Management Science 31(10):1237–1246; FPP3 §8.2 (damped trend methods).
    """

    def __init__(
        self,
        level: FloatArray,
        alpha: float = 0.1,
        beta: float = BETA,
        phi: float = PHI_PER_DAY,
    ) -> None:
        _check_alpha("alpha", alpha)
        _check_alpha("beta", beta)
        _check_alpha("phi", phi)
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.level = np.array(level, dtype=np.float64)
        self.trend = np.zeros_like(self.level)
        self._f = np.empty_like(self.level)
        self._e = np.empty_like(self.level)

    def forecast(self) -> FloatArray:
        np.multiply(self.trend, self.phi, out=self._f)
        self._f += self.level
        return self._f

    def scored(self) -> BoolArray | None:
        return None

    def update(self, y: FloatArray, valid: BoolArray, demand: BoolArray | None = None) -> None:
        e = self._e
        self.trend *= self.phi
        self.level += self.trend
        np.subtract(y, self.level, out=e)
        np.multiply(e, valid, out=e)
        e *= self.alpha
        self.level += e
        e *= self.beta
        self.trend += e

    def state(self) -> tuple[FloatArray, FloatArray | None]:
        return self.level.copy(), self.trend.copy()


class CrostonSBA:
    """Croston's method with the Syntetos–Boylan bias correction (SBA).

    Over the valid days only (censored days are removed from the time axis):
    z is the smoothed size of non-zero demands, p the smoothed interval (in
    valid days) between them, q the valid days since the previous demand. At
    a day with demand y_t > 0::

        z ← z + α · (y_t − z),   p ← p + α · (q − p)

    initialised at the first demand with z = y (its size) and p = its position
    (1-based count of valid days up to it), as in statsforecast's Croston.
    Forecast of mean daily demand::

        f = (1 − α/2) · z / p

    With α = 0.1 this is statsforecast's ``CrostonSBA`` (which fixes α = 0.1
    and the factor 0.95), a cited golden value of the tests. No forecast
    exists before the first demand.

    Sources: Croston (1972), "Forecasting and stock control for intermittent
    demands", ORQ 23(3):289–303; Syntetos & Boylan (2005), "The accuracy of
    intermittent demand estimates", IJF 21(2):303–314.
    """

    phi = 1.0

    def __init__(self, n: int, alpha: float = 0.1) -> None:
        _check_alpha("alpha", alpha)
        self.alpha = alpha
        self.bias = 1.0 - alpha / 2.0
        self.z = np.zeros(n)
        self.p = np.ones(n)
        self.since = np.zeros(n)
        self.gain = np.ones(n)  # 1 until the first demand (initialisation), then α
        self.started = np.zeros(n, dtype=bool)
        self._f = np.zeros(n)
        self._d = np.empty(n, dtype=bool)
        self._g = np.empty(n)
        self._t = np.empty(n)

    def forecast(self) -> FloatArray:
        np.divide(self.z, self.p, out=self._f)
        self._f *= self.bias
        return self._f

    def scored(self) -> BoolArray | None:
        return self.started

    def update(self, y: FloatArray, valid: BoolArray, demand: BoolArray | None = None) -> None:
        g, tmp = self._g, self._t
        if demand is None:
            d = self._d
            np.greater(y, 0.0, out=d)
            d &= valid
        else:
            d = demand
        self.since += valid
        np.multiply(self.gain, d, out=g)
        np.subtract(y, self.z, out=tmp)
        tmp *= g
        self.z += tmp
        np.subtract(self.since, self.p, out=tmp)
        tmp *= g
        self.p += tmp
        np.copyto(self.since, 0.0, where=d)
        np.copyto(self.gain, self.alpha, where=d)
        self.started |= d

    def state(self) -> tuple[FloatArray, FloatArray | None]:
        return self.forecast().copy(), None


class TSB:
    """Teunter–Syntetos–Babai (TSB): smoothed demand probability × size.

    Over the valid days, with d_t = 1 if y_t > 0 else 0::

        p ← p + α_p · (d_t − p)                   every valid day
        z ← z + α_d · (y_t − z)                   only when y_t > 0
        f = p · z                                 forecast of mean daily demand

    p starts at d of the first valid day and z at the first demand size (as
    statsforecast's ``TSB``). Unlike Croston, p decays on every day without
    demand, so the forecast of an item that stopped selling goes to 0
    (obsolescence) instead of staying at its last level.

    Worked example (α_d = α_p = 0.5, y = [3, 0, 0, 2, 0])::

        p: 1 → 0.5 → 0.25 → 0.625 → 0.3125
        z: 3 ──────────────→ 2.5
        f = 0.3125 · 2.5 = 0.78125   (statsforecast TSB(0.5, 0.5): 0.78125)

    Source: Teunter, Syntetos & Babai (2011), "Intermittent demand: linking
    forecasting to inventory obsolescence", EJOR 214(3):606–615.
    """

    phi = 1.0

    def __init__(self, n: int, alpha_d: float = 0.1, alpha_p: float = 0.1) -> None:
        _check_alpha("alpha_d", alpha_d)
        _check_alpha("alpha_p", alpha_p)
        self.alpha_d, self.alpha_p = alpha_d, alpha_p
        self.p = np.zeros(n)
        self.z = np.zeros(n)
        self.gain_p = np.ones(n)  # 1 on the first valid day (initialisation), then α_p
        self.gain_d = np.ones(n)  # 1 on the first demand, then α_d
        self.started = np.zeros(n, dtype=bool)
        self._f = np.zeros(n)
        self._d = np.empty(n, dtype=bool)
        self._g = np.empty(n)
        self._t = np.empty(n)

    def forecast(self) -> FloatArray:
        np.multiply(self.p, self.z, out=self._f)
        return self._f

    def scored(self) -> BoolArray | None:
        return self.started

    def update(self, y: FloatArray, valid: BoolArray, demand: BoolArray | None = None) -> None:
        g, tmp = self._g, self._t
        if demand is None:
            d = self._d
            np.greater(y, 0.0, out=d)
            d &= valid
        else:
            d = demand
        np.multiply(self.gain_p, valid, out=g)
        np.subtract(d, self.p, out=tmp)
        tmp *= g
        self.p += tmp
        np.copyto(self.gain_p, self.alpha_p, where=valid)
        np.multiply(self.gain_d, d, out=g)
        np.subtract(y, self.z, out=tmp)
        tmp *= g
        self.z += tmp
        np.copyto(self.gain_d, self.alpha_d, where=d)
        self.started |= d

    def state(self) -> tuple[FloatArray, FloatArray | None]:
        return self.forecast().copy(), None


# ---------------------------------------------------------------- whole-array API


class Fit(NamedTuple):
    """The state path of a method, per series.

    Attributes:
        level: n_series × (n_days + 1). Column t is the forecast (units/day,
            deseasonalised for the level methods) known *before* day t;
            column n_days the one after the last day. NaN while the method
            has no forecast (Croston and TSB before the first demand, a
            level method on a series without a valid day).
        trend: same shape, the additive trend per day (Holt), or None.
        phi: damping of the trend per day (1.0 when there is no trend).
    """

    level: FloatArray
    trend: FloatArray | None = None
    phi: float = 1.0

    def ahead(self, col: int, steps: int, skip: int = 0) -> FloatArray:
        """Forecasts made before day ``col`` for the days ``col + skip`` …
        ``col + skip + steps − 1`` (n_series × steps)::

            ŷ_{h} = ℓ + (φ + φ² + … + φ^h) · b,   h = skip + 1 … skip + steps
        """
        lvl = self.level[:, col][:, None]
        if self.trend is None:
            return np.repeat(lvl, steps, axis=1)
        k = damped_steps(self.phi, skip + steps)[skip:]
        out: FloatArray = lvl + self.trend[:, col][:, None] * k[None, :]
        return out

    def one_step(self) -> FloatArray:
        """The one-step-ahead forecast of every day (n_series × n_days)."""
        lvl = self.level[:, :-1]
        if self.trend is None:
            return lvl
        out: FloatArray = lvl + self.phi * self.trend[:, :-1]
        return out


def _check(qty: FloatArray, valid: BoolArray) -> tuple[FloatArray, BoolArray]:
    q = np.asarray(qty, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if q.ndim != 2:
        raise ValueError("qty must be a 2-D array (series × days)")
    if v.shape != q.shape:
        raise ValueError("valid must have the shape of qty")
    return q, v


def _run(kernel: Kernel, q: FloatArray, v: BoolArray) -> Fit:
    """Step ``kernel`` through every day; record its state before each day."""
    n, t_days = q.shape
    yt = np.ascontiguousarray(np.where(v, q, 0.0).T)
    vt = np.ascontiguousarray(v.T)
    level = np.empty((t_days + 1, n))
    trend = None if kernel.state()[1] is None else np.empty((t_days + 1, n))

    def record(t: int) -> None:
        lvl, tr = kernel.state()
        scored = kernel.scored()
        level[t] = lvl if scored is None else np.where(scored, lvl, np.nan)
        if trend is not None and tr is not None:
            trend[t] = tr

    for t in range(t_days):
        record(t)
        kernel.update(yt[t], vt[t])
    record(t_days)
    return Fit(level=level.T, trend=None if trend is None else trend.T, phi=kernel.phi)


def initial_level(x: FloatArray, valid: BoolArray, init_days: int = INIT_DAYS) -> FloatArray:
    """Mean of the first ``init_days`` valid days of each row (NaN without one)."""
    q, v = _check(x, valid)
    head = v & (np.cumsum(v, axis=1) <= init_days)
    n_head = head.sum(axis=1)
    total = np.where(head, q, 0.0).sum(axis=1)
    out: FloatArray = np.full(q.shape[0], np.nan)
    np.divide(total, n_head, out=out, where=n_head > 0)
    return out


def ses(x: FloatArray, valid: BoolArray, alpha: float = 0.1, init_days: int = INIT_DAYS) -> Fit:
    """:class:`SES` over whole rows; ℓ_0 = mean of the first ``init_days``
    valid days (NaN for a row without a valid day)."""
    q, v = _check(x, valid)
    return _run(SES(initial_level(q, v, init_days), alpha), q, v)


def holt_damped(
    x: FloatArray,
    valid: BoolArray,
    alpha: float = 0.1,
    beta: float = BETA,
    phi: float = PHI_PER_DAY,
    init_days: int = INIT_DAYS,
) -> Fit:
    """:class:`HoltDamped` over whole rows; ℓ_0 as in :func:`ses`, b_0 = 0."""
    q, v = _check(x, valid)
    kernel = HoltDamped(initial_level(q, v, init_days), alpha, beta, phi)
    return _run(kernel, q, v)


def croston_sba(qty: FloatArray, valid: BoolArray, alpha: float = 0.1) -> Fit:
    """:class:`CrostonSBA` over whole rows (NaN before a row's first demand)."""
    q, v = _check(qty, valid)
    return _run(CrostonSBA(q.shape[0], alpha), q, v)


def tsb(qty: FloatArray, valid: BoolArray, alpha_d: float = 0.1, alpha_p: float = 0.1) -> Fit:
    """:class:`TSB` over whole rows (NaN before a row's first demand)."""
    q, v = _check(qty, valid)
    return _run(TSB(q.shape[0], alpha_d, alpha_p), q, v)


def residual_rmse(y: FloatArray, valid: BoolArray, fitted: FloatArray) -> FloatArray:
    """Root mean square one-step-ahead error per series, in units/day::

        σ = sqrt(mean_t (y_t − ŷ_t)²)   over valid days with a forecast

    NaN where no such day exists.
    """
    scored = valid & np.isfinite(fitted)
    err = np.where(scored, y - np.where(scored, fitted, 0.0), 0.0)
    n = scored.sum(axis=1)
    out: FloatArray = np.full(y.shape[0], np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        np.sqrt(np.einsum("ij,ij->i", err, err) / np.maximum(n, 1), out=out, where=n > 0)
    return out


def recent_mean(qty: FloatArray, valid: BoolArray, days: int = 56) -> tuple[FloatArray, FloatArray]:
    """Fallback forecast: mean and std of the valid days among the last
    ``days`` (all valid days when none is recent); NaN without a valid day.

    Returns:
        (mean, std) in units/day; std is the population std (computed on
        values scaled by their maximum, so a huge series does not overflow).
    """
    q, v = _check(qty, valid)
    v = v & np.isfinite(q)
    recent = v & (np.arange(q.shape[1]) >= q.shape[1] - days)[None, :]
    use = np.where(recent.any(axis=1)[:, None], recent, v)
    n = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = np.where(use, q, 0.0)
        top = np.abs(x).max(axis=1, initial=0.0)
        scale = np.where(top > 0, top, 1.0)[:, None]
        xs = x / scale
        mean_s = xs.sum(axis=1) / np.maximum(n, 1)
        dev = np.where(use, xs - mean_s[:, None], 0.0)
        std_s = np.sqrt((dev * dev).sum(axis=1) / np.maximum(n, 1))
        mean = np.where(n > 0, mean_s * scale[:, 0], np.nan)
        std = np.where(n > 0, std_s * scale[:, 0], np.nan)
    return mean, std
