"""Parameter review: did each ABC class get the service it was set to get?

The weekly backtest replays the policy over the last weeks
(:func:`replenish.backtest.run_backtest`). Per ABC class it measured the
cycle service level achieved (CSL, share of replenishment cycles without a
stock-out) and the target the plans aimed at (the cycle-weighted mean of the
series' targets). :func:`review_service_levels` turns the gap into advice:

* **too few cycles** (< ``min_cycles``): nothing to judge — keep;
* **within noise**: |achieved − target| ≤ max(``tolerance``, 2·se), with
  se = sqrt(t·(1 − t) / n) the standard error of a share t over n cycles
  (binomial) — keep;
* **short** (achieved below): the safety stock of the class is too small for
  the demand and lead-time variability it met (or the forecast is biased
  low): raise the class's service level;
* **over** (achieved above): the class holds more safety stock than its
  target needs: lower the level to free stock.

The suggested level shifts the class's safety factor by the gap the replay
measured, in z units (z = Φ⁻¹(level), SS = z·σ — DESIGN.md, "The maths"):

    z_new = Φ⁻¹(current) + (Φ⁻¹(target) − Φ⁻¹(achieved))

clipped to [``floor``, ``ceiling``] and rounded to 0.005; since SS is linear
in z, the safety stock of the class scales by about z_new / z_current
(``ss_factor``). It is a first-order correction, not an optimisation: apply
it, let a few weeks pass, and review again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import pandas as pd
from scipy.stats import norm

from replenish.backtest.engine import ABC_CLASSES, BacktestResult
from replenish.errors import ConfigurationError

__all__ = ["REVIEW_COLUMNS", "review_markdown", "review_service_levels", "suggested_levels"]

REVIEW_COLUMNS: Final = [
    "abc_class",
    "series",
    "cycles",
    "target",
    "achieved",
    "gap",
    "fill_rate",
    "avg_stock_value",
    "baseline_achieved",
    "baseline_stock_value",
    "verdict",
    "current_level",
    "suggested_level",
    "ss_factor",
    "advice",
]
_EDGE = 0.001  # Φ⁻¹ of 0 or 1 is infinite: shares are clipped to [0.001, 0.999]


def _z(p: float) -> float:
    return float(norm.ppf(min(max(p, _EDGE), 1 - _EDGE)))


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def review_service_levels(
    result: BacktestResult,
    current: Mapping[str, float],
    *,
    tolerance: float = 0.02,
    min_cycles: int = 20,
    floor: float = 0.80,
    ceiling: float = 0.995,
) -> pd.DataFrame:
    """One row per ABC class: achieved against target, and the advice (module
    docstring).

    Args:
        result: the backtest (its ``policy`` and ``baseline`` by class).
        current: the class service levels the plans use now, e.g. the
            nightly deployment's ``service_levels`` ({"A": 0.98, ...}).
        tolerance: a gap smaller than this is never acted on.
        min_cycles: fewer replenishment cycles than this: not judged.
        floor, ceiling: bounds of a suggested level.

    Returns:
        :data:`REVIEW_COLUMNS`; ``verdict`` is one of ``keep``, ``raise``,
        ``lower``, ``too few cycles``; ``suggested_level`` equals
        ``current_level`` unless the verdict is raise or lower.
    """
    if not 0 <= tolerance < 0.5:
        raise ConfigurationError(f"review tolerance must be in [0, 0.5), got {tolerance}")
    if not 0 < floor <= ceiling < 1:
        raise ConfigurationError(
            f"review bounds must be 0 < floor <= ceiling < 1, got {floor} and {ceiling}"
        )
    rows: list[dict[str, Any]] = []
    for cls in ABC_CLASSES:
        pol = result.policy["by_class"][cls]
        base = result.baseline["by_class"][cls]
        target, achieved = pol["target_service_level"], pol["cycle_service_level"]
        cycles = int(pol["cycles"])
        level = float(current.get(cls, float("nan")))
        row: dict[str, Any] = {
            "abc_class": cls,
            "series": int(pol["series"]),
            "cycles": cycles,
            "target": target,
            "achieved": achieved,
            "gap": achieved - target if achieved is not None and target is not None else None,
            "fill_rate": pol["fill_rate"],
            "avg_stock_value": pol["avg_stock_value"],
            "baseline_achieved": base["cycle_service_level"],
            "baseline_stock_value": base["avg_stock_value"],
            "current_level": level,
            "suggested_level": level,
            "ss_factor": 1.0,
        }
        if achieved is None or target is None or cycles < min_cycles:
            row["verdict"] = "too few cycles"
            row["advice"] = (
                f"{cycles} replenishment cycles in the window (at least {min_cycles} "
                "needed to judge): keep the level; review a longer window"
            )
            rows.append(row)
            continue
        se = math.sqrt(max(target * (1 - target), 0.0) / cycles)
        band = max(tolerance, 2 * se)
        gap = achieved - target
        if abs(gap) <= band or not math.isfinite(level):
            row["verdict"] = "keep"
            row["advice"] = (
                f"achieved {_pct(achieved)} against {_pct(target)} over {cycles} cycles "
                f"(within ±{_pct(band)}): keep"
                + ("" if math.isfinite(level) else " (no current level given for the class)")
            )
            rows.append(row)
            continue
        z_now = _z(level)
        z_new = z_now + (_z(target) - _z(achieved))
        suggested = min(max(round(float(norm.cdf(z_new)) / 0.005) * 0.005, floor), ceiling)
        suggested = round(suggested, 3)
        factor = _z(suggested) / z_now if z_now > 0 else float("nan")
        row["suggested_level"] = suggested
        row["ss_factor"] = factor
        if gap < 0:
            row["verdict"] = "raise" if suggested > level else "keep"
            row["advice"] = (
                f"short: {_pct(achieved)} achieved against {_pct(target)} over {cycles} "
                "cycles: the safety stock is too small for the variability met (or the "
                f"forecast runs low); raise service_levels.{cls} {level:g} → {suggested:g} "
                f"(safety stock ×{factor:.2f})"
            )
            if suggested <= level:
                row["advice"] += "; already at the ceiling: check lead times and the forecast bias"
        else:
            row["verdict"] = "lower" if suggested < level else "keep"
            row["advice"] = (
                f"over: {_pct(achieved)} achieved against {_pct(target)} over {cycles} "
                f"cycles: more safety stock than the target needs; lower service_levels.{cls} "
                f"{level:g} → {suggested:g} (safety stock ×{factor:.2f})"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS)


def suggested_levels(review: pd.DataFrame) -> dict[str, float]:
    """The ``service_levels`` parameter the review suggests (every class)."""
    out: dict[str, float] = {}
    for r in review.to_dict("records"):
        level = float(r["suggested_level"])
        if math.isfinite(level):
            out[str(r["abc_class"])] = level
    return out


def _num(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def review_markdown(review: pd.DataFrame) -> str:
    """The review as a markdown table with its advice and the parameter to set."""

    def money(x: Any) -> str:
        v = _num(x)
        return "n/a" if v is None or not math.isfinite(v) else f"{v:,.0f}"

    lines = [
        "| class | series | cycles | target | achieved | fill rate | avg stock value "
        "| min/max achieved | min/max stock value | verdict | level now | suggested |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    records = review.to_dict("records")
    for r in records:
        lines.append(
            f"| {r['abc_class']} | {r['series']} | {r['cycles']} | {_pct(_num(r['target']))} | "
            f"{_pct(_num(r['achieved']))} | {_pct(_num(r['fill_rate']))} | "
            f"{money(r['avg_stock_value'])} | {_pct(_num(r['baseline_achieved']))} | "
            f"{money(r['baseline_stock_value'])} | **{r['verdict']}** | "
            f"{r['current_level']:g} | {r['suggested_level']:g} |"
        )
    lines.append("")
    lines += [f"- **{r['abc_class']}**: {r['advice']}" for r in records]
    lines.append("")
    if review["verdict"].isin(["raise", "lower"]).any():
        levels = ", ".join(f'"{k}": {v:g}' for k, v in suggested_levels(review).items())
        lines += [
            "To apply it, set the nightly deployment's parameter (prefect.yaml or the Prefect UI):",
            "",
            "```yaml",
            f"service_levels: {{{levels}}}",
            "```",
        ]
    else:
        lines.append("No change suggested.")
    return "\n".join(lines)
