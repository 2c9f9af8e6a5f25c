"""The equal-service comparison (replenish.backtest.frontier), by hand.

A frontier of four padded min/max rules, s = 0, 2, 4, 7 safety days, whose
replays reached these services at these stock values::

    s        0      2      4      7
    CSL     0.50   0.80   0.90   0.95
    fill    0.90   0.95   0.98   0.99
    stock   100    150    200    300

A policy at CSL 0.85 with 140 of stock: the padded rule reaches 0.85 halfway
between s = 2 and s = 4, i.e. s = 3 and stock 150 + ½·(200 − 150) = 175, so
the policy saves 1 − 140/175 = 20 % at equal cycle service.
"""

from __future__ import annotations

from typing import Any

import pytest

from replenish.backtest.frontier import equal_service

DAYS = (0.0, 2.0, 4.0, 7.0)


def _metrics(csl: float | None, fill: float | None, stock: float) -> dict[str, Any]:
    flat = {"cycle_service_level": csl, "fill_rate": fill, "avg_stock_value": stock, "orders": 1}
    return {**flat, "by_class": {"A": dict(flat)}}


def _frontier(csl: list[float]) -> list[dict[str, Any]]:
    return [
        _metrics(c, f, v)
        for c, f, v in zip(csl, [0.90, 0.95, 0.98, 0.99], [100.0, 150.0, 200.0, 300.0], strict=True)
    ]


def test_interpolates_the_stock_at_the_policys_service() -> None:
    out = equal_service(_metrics(0.85, 0.965, 140.0), _frontier([0.5, 0.8, 0.9, 0.95]), DAYS, "A")
    csl = out["overall"]["cycle_service_level"]
    assert csl["baseline_safety_days"] == pytest.approx(3.0)
    assert csl["baseline_stock_value"] == pytest.approx(175.0)
    assert csl["stock_saving"] == pytest.approx(0.2)
    assert csl["beyond_grid"] is False
    # fill 0.965: halfway between 0.95 (s 2, 150) and 0.98 (s 4, 200)
    fill = out["overall"]["fill_rate"]
    assert fill["baseline_safety_days"] == pytest.approx(3.0)
    assert fill["baseline_stock_value"] == pytest.approx(175.0)
    assert out["by_class"]["A"]["cycle_service_level"]["baseline_stock_value"] == pytest.approx(
        175.0
    )
    assert [p["safety_days"] for p in out["frontier"]] == list(DAYS)


def test_service_is_made_monotone_along_the_safety_days() -> None:
    """A noisy dip (0.82 then 0.80) never makes more padding look worse: the
    running maximum reads 0.82, 0.82, so 0.85 lies between s = 4 (0.82) and
    s = 7 (0.95): 3/13 of the way, stock 200 + 3/13·100."""
    out = equal_service(_metrics(0.85, 0.9, 140.0), _frontier([0.5, 0.82, 0.80, 0.95]), DAYS, "A")
    csl = out["overall"]["cycle_service_level"]
    assert csl["baseline_stock_value"] == pytest.approx(200.0 + 3 / 13 * 100.0)
    assert csl["baseline_safety_days"] == pytest.approx(4.0 + 3 / 13 * 3.0)


def test_beyond_the_grid_and_below_it() -> None:
    high = equal_service(_metrics(0.97, 0.9, 140.0), _frontier([0.5, 0.8, 0.9, 0.95]), DAYS, "A")
    assert high["overall"]["cycle_service_level"]["beyond_grid"] is True
    assert high["overall"]["cycle_service_level"]["baseline_stock_value"] is None
    low = equal_service(_metrics(0.4, 0.9, 140.0), _frontier([0.5, 0.8, 0.9, 0.95]), DAYS, "A")
    assert low["overall"]["cycle_service_level"]["baseline_stock_value"] == pytest.approx(100.0)
    assert low["overall"]["cycle_service_level"]["baseline_safety_days"] == pytest.approx(0.0)
    none = equal_service(_metrics(None, None, 140.0), _frontier([0.5, 0.8, 0.9, 0.95]), DAYS, "A")
    assert none["overall"]["fill_rate"]["baseline_stock_value"] is None


def test_grid_must_be_increasing() -> None:
    with pytest.raises(ValueError, match="increasing"):
        equal_service(_metrics(0.85, 0.9, 1.0), _frontier([0.5, 0.8, 0.9, 0.95]), (0, 4, 2, 7), "A")
