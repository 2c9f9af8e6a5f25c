"""Discrete lead-time demand for intermittent and slow-moving items.

A normal distribution is a poor model of the demand of an item that sells a
few units a month: it puts probability on negative and fractional demand and
understates the right tail of lumpy demand. For those items the demand over
the protection interval (lead time, plus the review period under periodic
review) is modelled as a count:

* **Poisson(μ)** when the variance is (about) the mean, ``V <= μ·(1 + tol)``
  — demand from many independent customers buying one unit each;
* **negative binomial** fitted by the method of moments otherwise
  (over-dispersed, lumpy demand)::

      p = μ / V,  n = μ² / (V − μ)       (scipy's ``nbinom(n, p)``,
                                           mean n(1−p)/p = μ, var μ/p = V)

Sources: Silver, Pyke & Thomas, *Inventory and Production Management in
Supply Chains*, 4th ed. (slow-moving C items: Poisson and negative
binomial lead-time demand); Syntetos & Boylan (2021), *Intermittent Demand
Forecasting* (the negative binomial for lumpy demand).

Everything is vectorised over arrays of items: the reorder points are found
by walking up the probability mass function one unit at a time for all items
at once (the ratio of successive terms is simple for both families), or, for
items whose answer is far out, by integer bisection on the closed-form
distribution functions (``scipy.special.pdtr`` / ``betainc``) with brackets
from Cantelli's inequality (quantiles) and Scarf's bound (expected shortage).
Missing inputs (NaN) give NaN for that item only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = ["DiscreteDemand"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

#: The smallest expected shortage a fill-rate target can ask for (units per
#: cycle); keeps the bisection bracket finite when Q or 1 − β is 0.
_MIN_SHORTAGE = 1e-9
#: Items whose answer may lie beyond this many units are solved by bisection
#: instead of walking the pmf one unit at a time.
_WALK_LIMIT = 400
#: P(X = 0) below e^-700 underflows: those items are solved by bisection.
_LOG_TINY = -700.0
#: The walk sums the pmf term by term; asking for this much more than the
#: target keeps its answer on the safe side of the exact cdf's rounding.
_CDF_MARGIN = 1e-12


def _floats(value: Any, n: int) -> FloatArray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()


@dataclass(frozen=True)
class DiscreteDemand:
    """Demand over a protection interval of many items: Poisson or negative
    binomial per item.

    Attributes:
        mean: μ per item (units over the interval).
        variance: V per item.
        negbin: True where the item is negative binomial, False: Poisson.

    Build with :meth:`fit`. Items with μ <= 0 have no demand (X = 0).

    >>> d = DiscreteDemand.fit([6.0], [6.0])
    >>> d.kind().tolist(), d.quantile(0.8).tolist()
    (['poisson'], [8.0])
    """

    mean: FloatArray
    variance: FloatArray
    negbin: BoolArray
    #: scipy ``nbinom`` parameters per item (NaN for Poisson items)
    n: FloatArray
    p: FloatArray

    @classmethod
    def fit(cls, mean: Any, variance: Any, poisson_tolerance: float = 0.1) -> DiscreteDemand:
        """Choose Poisson or negative binomial per item by the moments.

        Args:
            mean: μ, expected demand over the interval (>= 0; NaN allowed).
            variance: V, its variance (>= 0; NaN allowed).
            poisson_tolerance: Poisson while V <= μ·(1 + tolerance); an
                under-dispersed item (V < μ) is Poisson too, which errs on the
                safe side (a wider distribution than the data show).
        """
        mu = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        var = _floats(variance, mu.size)
        if np.any(mu < 0):
            raise ValueError("mean must be >= 0 (NaN allowed)")
        if np.any(var < 0):
            raise ValueError("variance must be >= 0 (NaN allowed)")
        if not poisson_tolerance >= 0:
            raise ValueError("poisson_tolerance must be >= 0")
        negbin = np.asarray((mu > 0) & (var > mu * (1.0 + poisson_tolerance)), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(negbin, mu / var, np.nan)
            n = np.where(negbin, mu**2 / (var - mu), np.nan)
        return cls(mean=mu, variance=var, negbin=negbin, n=n, p=p)

    # ------------------------------------------------------------ parameters

    @property
    def size(self) -> int:
        return int(self.mean.size)

    def kind(self) -> npt.NDArray[np.str_]:
        """'poisson' or 'negbin' per item."""
        return np.where(self.negbin, "negbin", "poisson")

    def _valid(self) -> BoolArray:
        return np.asarray(~(np.isnan(self.mean) | np.isnan(self.variance)), dtype=bool)

    # --------------------------------------------------- distribution values

    def _cdf_at(self, s: FloatArray, idx: IntArray, shape_shift: float = 0.0) -> FloatArray:
        """P(X <= s) for items ``idx`` (s integer-valued); ``shape_shift`` = 1
        gives the negative binomial with n + 1 (used for the partial mean)."""
        mu = self.mean[idx]
        out = np.where(s >= 0, 1.0, 0.0)
        pos = (s >= 0) & (mu > 0)
        sp = np.where(pos, s, 0.0)
        nb = self.negbin[idx]
        with np.errstate(invalid="ignore"):
            pois = special.pdtr(sp, np.where(mu > 0, mu, 1.0))
            negb = special.betainc(
                np.where(nb, self.n[idx] + shape_shift, 1.0),
                sp + 1.0,
                np.where(nb, self.p[idx], 0.5),
            )
        return np.asarray(np.where(pos, np.where(nb, negb, pois), out), dtype=np.float64)

    def cdf(self, s: Any) -> FloatArray:
        """P(X <= s) per item (s rounded down to an integer)."""
        idx = np.arange(self.size)
        ss = np.floor(_floats(s, self.size))
        out = self._cdf_at(ss, idx)
        return np.where(self._valid() & ~np.isnan(ss), out, np.nan)

    def _shortage_at(self, s: FloatArray, idx: IntArray) -> FloatArray:
        """E[(X − s)⁺] for items ``idx``, integer s >= 0::

            E[(X − s)⁺] = μ · P(X' >= s) − s · P(X > s)

        where X' is X for Poisson and NB(n + 1, p) for the negative binomial,
        from x·pmf(x) = μ·pmf'(x − 1) (both families)."""
        mu = self.mean[idx]
        sf = 1.0 - self._cdf_at(s, idx)
        sf_prev = 1.0 - self._cdf_at(s - 1.0, idx, shape_shift=1.0)
        return np.asarray(np.maximum(mu * sf_prev - s * sf, 0.0), dtype=np.float64)

    def expected_shortage(self, s: Any) -> FloatArray:
        """Expected units short over the interval with s units available,
        E[(X − s)⁺], per item (s >= 0, rounded down to an integer).

        Poisson(6) with s = 8: 0.314 units (Σ_{x>8} (x − 8)·pmf(x)):

        >>> round(float(DiscreteDemand.fit([6.0], [6.0]).expected_shortage(8)[0]), 4)
        0.314
        """
        ss = np.floor(_floats(s, self.size))
        if np.any(ss < 0):
            raise ValueError("s must be >= 0")
        out = self._shortage_at(ss, np.arange(self.size))
        return np.where(self._valid() & ~np.isnan(ss), out, np.nan)

    # ------------------------------------------------------- reorder points

    def _log_p0(self) -> FloatArray:
        """log P(X = 0) per item (−μ for Poisson, n·log p for the NB)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                np.where(self.negbin, self.n * np.log(self.p), -self.mean), dtype=np.float64
            )

    def _walk(self, idx: IntArray, target: FloatArray, shortage: bool) -> FloatArray:
        """Walk s = 0, 1, 2, ... up the probability mass function of items
        ``idx`` (all with μ > 0 and P(X = 0) representable), stopping each
        item at the first s where P(X <= s) >= target (``shortage`` False) or
        E[(X − s)⁺] <= target (``shortage`` True). The pmf follows from the
        ratio of successive terms (Poisson: μ / s; NB: (s − 1 + n)(1 − p) / s);
        E[(X − s)⁺] = μ − s + Σ_{x<s} P(X <= x). One cheap numpy pass per
        unit of s over the items still walking (kept compact)."""
        out = np.full(idx.size, np.nan)
        nb = self.negbin[idx]
        mu = self.mean[idx]
        n = np.where(nb, self.n[idx], 0.0)
        q = np.where(nb, 1.0 - self.p[idx], 0.0)  # 1 − p
        pmf = np.exp(self._log_p0()[idx])
        cdf = pmf.copy()
        below = np.zeros(idx.size)  # Σ_{x<s} P(X <= x)
        tgt = target.copy()
        pos = np.arange(idx.size)
        s = 0
        while pos.size:
            done = (mu - s + below <= tgt) if shortage else (cdf >= tgt + _CDF_MARGIN)
            if done.any():
                out[pos[done]] = s
                keep = ~done
                pos, nb, mu, n, q = pos[keep], nb[keep], mu[keep], n[keep], q[keep]
                pmf, cdf, below, tgt = pmf[keep], cdf[keep], below[keep], tgt[keep]
            s += 1
            below += cdf
            pmf *= np.where(nb, (s - 1 + n) * q, mu) / s
            cdf += pmf
        return out

    def _smallest(
        self,
        hi: FloatArray,
        target: FloatArray,
        shortage: bool,
    ) -> FloatArray:
        """Smallest integer s >= 0 with P(X <= s) >= target (or, ``shortage``,
        E[(X − s)⁺] <= target) per item: the pmf walk where it is short and
        representable, integer bisection on [−1, hi] otherwise (``hi``
        satisfies the condition)."""
        # beyond 2^53 the integers are not all representable: the bisection's
        # midpoint would stop moving (such an item is NaN, reported per SKU)
        valid = self._valid() & np.isfinite(hi) & (hi < 2.0**53) & ~np.isnan(target)
        out = np.where(valid & (self.mean <= 0), 0.0, np.nan)
        todo = valid & (self.mean > 0)
        walk = todo & (hi <= _WALK_LIMIT) & (self._log_p0() > _LOG_TINY)
        idx = np.flatnonzero(walk)
        if idx.size:
            out[idx] = self._walk(idx, target[idx], shortage)
        rest = np.flatnonzero(todo & np.isnan(out))
        if rest.size == 0:
            return out

        def ok(s: FloatArray, at: IntArray) -> BoolArray:
            if shortage:
                return np.asarray(self._shortage_at(s, at) <= target[at], dtype=bool)
            return np.asarray(self._cdf_at(s, at) >= target[at], dtype=bool)

        lo = np.full(rest.size, -1.0)
        top = np.maximum(np.ceil(hi[rest]), 0.0)
        live = np.flatnonzero(top - lo > 1)
        while live.size:
            width = top[live] - lo[live]
            mid = np.floor((lo[live] + top[live]) / 2.0)
            good = ok(mid, rest[live])
            top[live] = np.where(good, mid, top[live])
            lo[live] = np.where(good, lo[live], mid)
            narrower = top[live] - lo[live]
            live = live[(narrower > 1) & (narrower < width)]  # stop where it no longer moves
        out[rest] = top
        return out

    def quantile(self, q: Any) -> FloatArray:
        """Smallest integer s >= 0 with P(X <= s) >= q, per item: the reorder
        point (or order-up-to level) of a cycle service level q.

        Bracket for the bisection fallback: Cantelli's inequality
        P(X − μ >= t·σ) <= 1 / (1 + t²) gives P(X <= μ + σ·sqrt(q / (1 − q)))
        >= q. Snyder & Shen, *Fundamentals of Supply Chain Theory*, 2nd ed.,
        Example 4.7 (Poisson(6) demand, h = 1, p = 4: critical ratio 0.8 →
        S* = 8):

        >>> DiscreteDemand.fit([6.0, 0.0], [6.0, 0.0]).quantile(0.8).tolist()
        [8.0, 0.0]
        """
        qq = _floats(q, self.size)
        if np.any((qq <= 0) | (qq >= 1)):
            raise ValueError("q must be strictly between 0 and 1")
        sd = np.sqrt(np.maximum(self.variance, self.mean))
        hi = self.mean + sd * np.sqrt(qq / (1.0 - qq)) + 1.0
        return self._smallest(hi, qq, shortage=False)

    def point_for_shortage(self, shortage: Any) -> FloatArray:
        """Smallest integer s >= 0 whose expected shortage E[(X − s)⁺] is at
        most ``shortage``, per item: the reorder point of a fill-rate target β
        with ``shortage = (1 − β)·Q`` (the discrete counterpart of
        σ·G(k) = (1 − β)·Q).

        Bracket for the bisection fallback: Scarf's bound
        E[(X − s)⁺] <= (sqrt(V + (s − μ)²) − (s − μ)) / 2 is <= T once
        s >= μ + (V − 4T²) / (4T).

        >>> DiscreteDemand.fit([6.0], [6.0]).point_for_shortage(0.32).tolist()
        [8.0]
        """
        target = np.maximum(_floats(shortage, self.size), _MIN_SHORTAGE)
        var = np.maximum(self.variance, self.mean)
        hi = self.mean + np.maximum((var - 4.0 * target**2) / (4.0 * target), 0.0) + 1.0
        return self._smallest(hi, target, shortage=True)
