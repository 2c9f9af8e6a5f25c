"""Discrete lead-time demand: Poisson / negative binomial reorder points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import nbinom, poisson

from replenish.policy.discrete import DiscreteDemand


def test_snyder_shen_example_4_7_poisson_newsvendor() -> None:
    """Snyder & Shen, *Fundamentals of Supply Chain Theory*, 2nd ed.,
    Example 4.7: Poisson(6) demand, h = 1, p = 4 → critical ratio
    p / (p + h) = 0.8 → S* = 8 (the smallest S with F(S) >= 0.8)."""
    dist = DiscreteDemand.fit([6.0], [6.0])
    assert dist.kind().tolist() == ["poisson"]
    assert dist.quantile(4 / 5).tolist() == [8.0]
    assert poisson.cdf(7, 6) < 0.8 <= poisson.cdf(8, 6)


def test_poisson_reorder_point_reaches_the_target_and_is_the_smallest() -> None:
    """Property: for Poisson lead-time demand the achieved P(LTD <= ROP) is
    at least the target, and one unit less would miss it."""
    rng = np.random.default_rng(11)
    mean = rng.uniform(0.01, 60, 5000)
    target = rng.uniform(0.5, 0.999, 5000)
    rop = DiscreteDemand.fit(mean, mean).quantile(target)
    assert np.all(poisson.cdf(rop, mean) >= target)
    assert np.all(poisson.cdf(rop - 1, mean) < target)


def test_negative_binomial_by_moments() -> None:
    """Over-dispersed demand (V > μ·1.1) is negative binomial with
    p = μ/V, n = μ²/(V − μ): its mean and variance are the moments given,
    and its reorder point is scipy's quantile."""
    mean = np.array([2.0, 0.3, 15.0, 40.0])
    var = np.array([9.0, 1.2, 60.0, 43.5])
    dist = DiscreteDemand.fit(mean, var)
    assert dist.kind().tolist() == ["negbin", "negbin", "negbin", "poisson"]
    nb = dist.negbin
    np.testing.assert_allclose(nbinom.mean(dist.n[nb], dist.p[nb]), mean[nb])
    np.testing.assert_allclose(nbinom.var(dist.n[nb], dist.p[nb]), var[nb])
    q = dist.quantile(0.95)
    np.testing.assert_array_equal(q[nb], nbinom.ppf(0.95, dist.n[nb], dist.p[nb]))
    assert np.all(dist.cdf(q) >= 0.95)


def test_expected_shortage_matches_the_sum_over_the_distribution() -> None:
    """E[(X − s)⁺] = Σ_{x>s} (x − s)·P(X = x), for both families."""
    dist = DiscreteDemand.fit([3.0, 3.0, 0.5], [3.0, 12.0, 4.0])
    x = np.arange(0, 2000)
    for s in (0, 1, 4, 11):
        got = dist.expected_shortage(s)
        for i in range(3):
            pmf = nbinom.pmf(x, dist.n[i], dist.p[i]) if dist.negbin[i] else poisson.pmf(x, 3.0)
            assert got[i] == pytest.approx(np.sum(np.maximum(x - s, 0) * pmf), abs=1e-9)


def test_fill_rate_point_is_the_smallest_with_the_shortage_allowed() -> None:
    """Property: the reorder point for an allowed shortage T has
    E[(X − s)⁺] <= T, and s − 1 does not."""
    rng = np.random.default_rng(5)
    mean = rng.uniform(0.05, 40, 3000)
    var = mean * rng.uniform(0.8, 8, 3000)
    allowed = rng.uniform(0.01, 3, 3000)
    dist = DiscreteDemand.fit(mean, var)
    s = dist.point_for_shortage(allowed)
    assert np.all(dist.expected_shortage(s) <= allowed + 1e-9)
    prev = s > 0
    assert np.all(dist.expected_shortage(np.maximum(s - 1, 0))[prev] > allowed[prev])


def test_far_quantiles_are_found_by_bisection_too() -> None:
    """Large means (beyond the pmf walk) give the same quantiles as scipy."""
    mean = np.array([900.0, 2500.0, 5000.0])
    var = np.array([900.0, 40_000.0, 5000.0 * 30])
    dist = DiscreteDemand.fit(mean, var)
    q = dist.quantile(0.97)
    ref = np.where(dist.negbin, nbinom.ppf(0.97, dist.n, dist.p), poisson.ppf(0.97, mean))
    np.testing.assert_array_equal(q, ref)
    s = dist.point_for_shortage(2.0)
    assert np.all(dist.expected_shortage(s) <= 2.0)
    assert np.all(dist.expected_shortage(s - 1) > 2.0)


def test_no_demand_and_missing_inputs() -> None:
    dist = DiscreteDemand.fit([0.0, np.nan, 2.0], [0.0, 1.0, np.nan])
    q = dist.quantile(0.99)
    assert q[0] == 0 and math.isnan(q[1]) and math.isnan(q[2])
    assert dist.expected_shortage([0, 0, 0])[0] == 0.0
    with pytest.raises(ValueError, match="mean"):
        DiscreteDemand.fit([-1.0], [1.0])
    with pytest.raises(ValueError, match="q must be"):
        dist.quantile(1.0)
