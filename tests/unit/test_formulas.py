"""Policy formulas: textbook worked examples, properties, input validation."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable

import numpy as np
import pytest

from replenish.policy import formulas
from replenish.policy.formulas import (
    abc_classes,
    eoq,
    inventory_position,
    order_up_to,
    reorder_point,
    round_order_qty,
    safety_stock,
    z_for_service_level,
)


def test_docstring_examples() -> None:
    """Every formula's doctest (the worked examples) passes."""
    result = doctest.testmod(formulas)
    assert result.attempted >= 8
    assert result.failed == 0


def test_chopra_meindl_lead_time_uncertainty() -> None:
    """Chopra & Meindl, *Supply Chain Management*, ch. 12, impact of supply
    uncertainty on safety inventory: D = 2,500/day, σD = 500, L = 7 days,
    sL = 7 days, CSL = 0.90 → σ of demand during the lead time
    sqrt(7·500² + 2500²·7²) ≈ 17,550 and safety inventory
    NORMSINV(0.9) × 17,550 ≈ 22,491."""
    z = z_for_service_level(0.90)
    sigma_l = safety_stock(1.0, 2500, 500, 7, 7)
    assert sigma_l == pytest.approx(17_550, abs=1)
    assert safety_stock(z, 2500, 500, 7, 7) == pytest.approx(22_491, abs=1)


def test_safety_stock_without_lead_time_uncertainty() -> None:
    """σL = 0 reduces to z · σd · sqrt(L)."""
    assert safety_stock(1.645, 20, 6, 9, 0) == pytest.approx(1.645 * 6 * 3)


def test_safety_stock_review_period_adds_to_lead_time() -> None:
    """Periodic review protects R + L: z · σd · sqrt(L + R) when σL = 0."""
    assert safety_stock(2.0, 10, 3, 5, 0, review_period=4) == pytest.approx(2 * 3 * 3)


def test_design_worked_check_reorder_point() -> None:
    """DESIGN.md worked check: d = 100/day, L = 5 days, SS = 300 → ROP = 800."""
    assert reorder_point(100, 5, 300) == 800


def test_order_up_to_level() -> None:
    """S = d·(R + L) + SS: 100·(7 + 5) + 300 = 1,500."""
    assert order_up_to(100, 5, 7, 300) == 1500


def test_design_worked_check_eoq() -> None:
    """DESIGN.md worked check (Harris 1913): D = 10,000/yr, K = 50, h = 2 → 707.1."""
    assert eoq(10_000, 50, 2) == pytest.approx(707.1, abs=0.05)


def test_inventory_position() -> None:
    assert inventory_position(120, 20, 50) == 150
    assert inventory_position(0, 10, 0) == -10


def test_safety_stock_grows_with_service_level_and_lead_time_std() -> None:
    csl = np.array([0.80, 0.90, 0.95, 0.98, 0.995])
    ss_by_csl = np.asarray(safety_stock(z_for_service_level(csl), 50, 10, 6, 1.5))
    assert np.all(np.diff(ss_by_csl) > 0)
    ss_by_sl = np.asarray(safety_stock(1.645, 50, 10, 6, np.array([0, 0.5, 1, 2, 5])))
    assert np.all(np.diff(ss_by_sl) > 0)


def test_formulas_are_scalar_friendly_and_vectorised() -> None:
    assert isinstance(safety_stock(1.0, 1, 1, 1, 0), float)
    out = reorder_point(np.array([1.0, 2.0]), 3, np.array([0.5, 0.5]))
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [3.5, 6.5]


def test_nan_propagates_without_raising() -> None:
    """One SKU with a missing input must not stop the batch."""
    out = np.asarray(safety_stock(1.0, np.array([10.0, np.nan]), 2.0, 4.0, 0.0))
    assert out[0] == pytest.approx(4.0)
    assert math.isnan(out[1])


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: z_for_service_level(1.0), "csl"),
        (lambda: z_for_service_level(0.0), "csl"),
        (lambda: safety_stock(1.0, -1, 1, 1, 1), "demand_mean"),
        (lambda: safety_stock(1.0, 1, -1, 1, 1), "demand_std"),
        (lambda: safety_stock(1.0, 1, 1, -1, 1), "lead_time_mean"),
        (lambda: safety_stock(1.0, 1, 1, 1, -1), "lead_time_std"),
        (lambda: safety_stock(1.0, 1, 1, 1, 1, review_period=-1), "review_period"),
        (lambda: reorder_point(1, -5, 0), "lead_time_mean"),
        (lambda: eoq(100, 50, 0), "holding_cost"),
        (lambda: eoq(-1, 50, 1), "annual_demand"),
        (lambda: round_order_qty(10, -1, 1), "moq"),
        (lambda: inventory_position(1, -1, 0), "allocated"),
        (lambda: abc_classes([1, -2]), "annual_value"),
        (lambda: safety_stock("x", 1, 1, 1, 1), "z"),
    ],
)
def test_invalid_inputs_name_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()


def test_round_order_qty_worked_cases() -> None:
    assert round_order_qty(37.2, 48, 12) == 48
    assert round_order_qty(50, 48, 12) == 60
    assert round_order_qty(0, 48, 12) == 0
    assert round_order_qty(-5, 48, 12) == 0
    assert round_order_qty(36.000000001, 0, 12) == 36  # float noise is not a new pack
    assert round_order_qty(7, 0, 0) == 7  # pack <= 0 treated as 1
    assert round_order_qty(7.2, np.nan, np.nan) == 8
    assert round_order_qty(1.1, 0, 0.5) == 1.5  # fractional packs
    assert math.isnan(round_order_qty(np.nan, 1, 1))


def test_round_order_qty_properties() -> None:
    """For random raw > 0: multiple of pack, >= MOQ, >= raw, < raw + pack
    when raw >= MOQ."""
    rng = np.random.default_rng(7)
    raw = rng.uniform(0.01, 1000, 20_000)
    moq = rng.choice([0, 1, 10, 48, 250], raw.size).astype(float)
    pack = rng.choice([1, 6, 12, 24, 100], raw.size).astype(float)
    q = np.asarray(round_order_qty(raw, moq, pack))
    assert np.allclose(q / pack, np.round(q / pack))
    assert np.all(q >= moq)
    assert np.all(q >= raw - 1e-9)
    above = raw >= moq
    assert np.all(q[above] < raw[above] + pack[above])


def test_abc_classes() -> None:
    """Sorted by value: 700 (A, share before 0), 150 (A, before 70 %),
    100 (B, before 85 %), 40 (C, before 95 %), 10 (C); zero → C."""
    assert abc_classes([10, 700, 0, 150, 100, 40]).tolist() == ["C", "A", "C", "A", "B", "C"]
    assert abc_classes([0, 0]).tolist() == ["C", "C"]
    assert abc_classes([90, 10]).tolist() == ["A", "B"]
    assert abc_classes([np.nan, 5]).tolist() == ["C", "A"]
    assert abc_classes([]).tolist() == []


def test_cumulative_error_factor_sums_the_correlated_errors() -> None:
    """Demand μ + ε, forecast by SES with α: the h-day sum of the errors has
    variance h·σ² + h²·α/(2 − α)·σ² (the level's error is common to every
    day). Checked by simulation: smooth i.i.d. demand, then compare the next
    h days' total with h times the level."""
    from replenish.policy.formulas import cumulative_error_factor

    assert cumulative_error_factor(10, 0.1) == pytest.approx(1 + 10 * 0.1 / 1.9)
    assert cumulative_error_factor(0, 0.1) == 1.0
    assert cumulative_error_factor(7, 0.0) == 1.0
    rng = np.random.default_rng(5)
    a, h, burn, n = 0.1, 10, 200, 20_000
    d = rng.standard_normal((n, burn + h))
    level = np.zeros(n)
    for t in range(burn):
        level += a * (d[:, t] - level)
    total_error = d[:, burn:].sum(axis=1) - h * level
    assert total_error.var() / h == pytest.approx(cumulative_error_factor(h, a), rel=0.05)
    with pytest.raises(ValueError, match="alpha"):
        cumulative_error_factor(5, -0.1)
    with pytest.raises(ValueError, match="alpha"):
        cumulative_error_factor(5, 1.5)
