"""Service-level maths: the normal loss function, fill-rate safety factors,
newsvendor and (Q, R) worked examples from the textbooks, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from replenish.policy.formulas import (
    eoq,
    expected_shortage,
    fill_rate_for_safety_factor,
    k_for_fill_rate,
    newsvendor_quantity,
    normal_loss,
    protection_demand_std,
    reorder_point,
    safety_stock,
    z_for_service_level,
)


def test_normal_loss_table_values() -> None:
    """Standard normal loss G(k) = φ(k) − k(1 − Φ(k)), as tabulated in
    Silver, Pyke & Thomas (appendix B) and Nahmias (table A-4):
    G(0) = 0.3989, G(1) = 0.0833, G(2) = 0.0085; G(−k) = G(k) + k."""
    g = np.asarray(normal_loss([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(g, [0.3989, 0.0833, 0.0085], atol=5e-5)
    assert normal_loss(-1.5) == pytest.approx(normal_loss(1.5) + 1.5)
    assert isinstance(normal_loss(0.5), float)


def test_nahmias_harvey_specialty_shop_type1_and_type2_service() -> None:
    """Nahmias, *Production and Operations Analysis*, ch. 5, Harvey's
    Specialty Shop: mustard at $10 a jar, 20 % a year (h = 2), K = $50,
    λ = 200 jars a year, six-month lead time with demand N(100, 25²).
    EOQ = sqrt(2·200·50/2) = 100.
    Type 1 (cycle) service 98 %: z = 2.05, R = 100 + 25·2.05 ≈ 151.
    Type 2 (fill rate) 98 % with Q = 100: n(R) = (1 − β)Q = 2,
    L(z) = 2/25 = 0.08 → z ≈ 1.02, R = 100 + 25·1.02 ≈ 126."""
    q = eoq(200, 50, 2)
    assert q == pytest.approx(100.0)
    # one "period" = the six-month lead time: d = 100, σd = 25, L = 1
    z = z_for_service_level(0.98)
    assert z == pytest.approx(2.05, abs=0.01)
    assert reorder_point(100, 1, safety_stock(z, 100, 25, 1, 0)) == pytest.approx(151, abs=0.5)
    k = k_for_fill_rate(0.98, q, 25)
    assert normal_loss(k) == pytest.approx(0.08)
    assert k == pytest.approx(1.02, abs=0.005)
    assert reorder_point(100, 1, k * 25) == pytest.approx(126, abs=0.6)


def test_chopra_meindl_fill_rate_examples() -> None:
    """Chopra & Meindl, *Supply Chain Management*, ch. 12 (evaluating the
    fill rate of a safety inventory; safety inventory for a desired fill
    rate): weekly demand 2,500, σ 500, L = 2 weeks, Q = 10,000.
    ss = 1,000 → σL = 707.1, ESC = 25.13, fill rate 0.9975;
    a fill rate of 0.975 needs ss ≈ 67 units."""
    sigma = protection_demand_std(2500, 500, 2, 0)
    assert sigma == pytest.approx(707.1, abs=0.05)
    esc = expected_shortage(sigma, 1000 / sigma)
    assert esc == pytest.approx(25.13, abs=0.05)
    assert fill_rate_for_safety_factor(1000 / sigma, 10_000, sigma) == pytest.approx(
        0.9975, abs=1e-4
    )
    ss = k_for_fill_rate(0.975, 10_000, sigma) * sigma
    assert ss == pytest.approx(67, abs=1)


def test_snyder_shen_example_4_3_newsvendor() -> None:
    """Snyder & Shen, *Fundamentals of Supply Chain Theory*, 2nd ed.,
    Example 4.3: h = 0.18, p = 0.70, demand N(50, 8²) → S* = 56.60
    (critical ratio p / (p + h) = 0.795)."""
    assert newsvendor_quantity(50, 8, 0.70, 0.18) == pytest.approx(56.604, abs=1e-3)
    # the critical ratio is the cycle service level of the same trade-off
    ss = safety_stock(z_for_service_level(0.70 / 0.88), 50, 8, 1, 0)
    assert 50 + ss == pytest.approx(56.604, abs=1e-3)


def test_snyder_shen_example_5_5_eoq_plus_safety_stock() -> None:
    """Snyder & Shen, 2nd ed., Example 5.5 ((r, Q) by EOQ + SS): λ = 1,300 a
    year, σ 150 a year, L = 1/12 year, h = 0.225, p = 7.5, K = 8 →
    Q = 304.05, r = μL + z·σL = 190.34 with z = Φ⁻¹(p / (p + h))."""
    assert eoq(1300, 8, 0.225) == pytest.approx(304.05, abs=0.01)
    z = z_for_service_level(7.5 / 7.725)
    ss = safety_stock(z, 1300, 150, 1 / 12, 0)
    assert reorder_point(1300, 1 / 12, ss) == pytest.approx(190.34, abs=0.01)


def test_fill_rate_round_trip_and_edge_cases() -> None:
    """k solves σ·G(k) = (1 − β)·Q for every input; σ = 0 gives k = 0."""
    rng = np.random.default_rng(3)
    beta = rng.uniform(0.5, 0.9999, 2000)
    q = rng.uniform(1, 500, 2000)
    sigma = rng.uniform(0.5, 200, 2000)
    k = np.asarray(k_for_fill_rate(beta, q, sigma))
    target = np.clip((1 - beta) * q / sigma, normal_loss(8.0), None)
    np.testing.assert_allclose(np.asarray(normal_loss(k)), target, rtol=1e-8)
    assert k_for_fill_rate(0.99, 10, 0) == 0.0
    assert k_for_fill_rate(0.99, 0, 5) == pytest.approx(8.0)  # no order size: as safe as it gets
    assert math.isnan(k_for_fill_rate(0.99, np.nan, 5))
    with pytest.raises(ValueError, match="fill_rate"):
        k_for_fill_rate(1.0, 10, 5)
    with pytest.raises(ValueError, match="sigma"):
        k_for_fill_rate(0.9, 10, -1)


def test_safety_stock_grows_with_the_target_and_with_lead_time_spread() -> None:
    """Property: more service (cycle or fill rate) or a less reliable
    supplier (σL) never lowers the safety stock."""
    targets = np.array([0.80, 0.85, 0.90, 0.95, 0.98, 0.99, 0.995])
    sigma = protection_demand_std(20, 6, 5, 1.0)
    by_csl = np.asarray(z_for_service_level(targets)) * sigma
    by_fill = np.asarray(k_for_fill_rate(targets, 100, sigma)) * sigma
    assert np.all(np.diff(by_csl) > 0)
    assert np.all(np.diff(by_fill) > 0)
    sl = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    sigmas = np.asarray(protection_demand_std(20, 6, 5, sl))
    assert np.all(np.diff(sigmas) > 0)
    assert np.all(np.diff(np.asarray(k_for_fill_rate(0.98, 100, sigmas)) * sigmas) > 0)


def test_cycle_service_z_matches_the_normal_quantile() -> None:
    assert z_for_service_level(0.95) == pytest.approx(norm.ppf(0.95))
