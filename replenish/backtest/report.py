"""The backtest as a JSON document and as a text table for people."""

from __future__ import annotations

import json
import math
from typing import Any

from replenish.backtest.accuracy import CROSTON, OURS, SEASONAL_NAIVE
from replenish.backtest.engine import ABC_CLASSES, BacktestResult

__all__ = ["format_table", "to_json"]

_MODEL_NAMES = {
    OURS: "replenish",
    SEASONAL_NAIVE: "seasonal naive (7)",
    CROSTON: "Croston SBA",
}
_CLASS_ORDER = ("smooth", "erratic", "intermittent", "lumpy", "none")


def _rounded(value: Any) -> Any:
    """Floats to 4 decimals (NaN/inf to None), recursively."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


def to_json(result: BacktestResult, indent: int | None = 2) -> str:
    """``result.to_dict()`` as JSON, floats rounded to 4 decimals."""
    return json.dumps(_rounded(result.to_dict()), indent=indent, ensure_ascii=False)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _int(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _signed_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("cycle service level", "cycle_service_level", _pct),
    ("  target", "target_service_level", _pct),
    ("fill rate", "fill_rate", _pct),
    ("stockout days", "stockout_days", _int),
    ("avg stock (units)", "avg_stock_units", _int),
    ("avg stock value", "avg_stock_value", _money),
    ("PO lines placed", "orders", _int),
    ("holding + ordering cost", "total_cost", _money),
    ("replenishment cycles", "cycles", _int),
)


def _service_table(result: BacktestResult) -> list[str]:
    width = 24
    col = 16
    lines = [f"{'':<{width}}{'policy':>{col}}{'min/max':>{col}}"]
    blocks: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("All series", result.policy, result.baseline)
    ]
    blocks += [
        (f"Class {c}", result.policy["by_class"][c], result.baseline["by_class"][c])
        for c in ABC_CLASSES
    ]
    for title, pol, base in blocks:
        lines.append(
            f"{title} ({pol['series']} series, {_int(pol['demand_units'])} units demanded)"
        )
        for label, key, fmt in _ROWS:
            lines.append(f"  {label:<{width - 2}}{fmt(pol[key]):>{col}}{fmt(base[key]):>{col}}")
    return lines


def _accuracy_table(acc: dict[str, Any]) -> list[str]:
    lines = [
        f"Forecast accuracy: days 1–{acc['horizon_days']} ahead from {acc['origins']} refit "
        "origins (censored days left out)"
    ]
    if acc.get("note"):
        lines.append(f"  note: {acc['note']}")
    by_class = acc.get("by_demand_class", {})
    classes = [c for c in _CLASS_ORDER if c in by_class] + sorted(
        c for c in by_class if c not in _CLASS_ORDER
    )
    columns: list[tuple[str, dict[str, Any]]] = [("all", acc.get("overall", {}))]
    columns += [(c, by_class[c]) for c in classes]
    width, col = 22, 14
    for title, key, fmt in (("MASE", "mase", _num), ("bias", "bias", _signed_pct)):
        lines.append(f"  {title:<{width - 2}}" + "".join(f"{c:>{col}}" for c, _ in columns))
        for model in acc["models"]:
            cells = "".join(
                f"{fmt(scores.get(model, {}).get(key)):>{col}}" for _, scores in columns
            )
            lines.append(f"    {_MODEL_NAMES.get(model, model):<{width - 4}}{cells}")
    n_cells = "".join(f"{_int(scores.get(OURS, {}).get('n')):>{col}}" for _, scores in columns)
    lines.append(f"  {'series × origins':<{width - 2}}{n_cells}")
    return lines


def _equal_service_table(matched: dict[str, Any] | None) -> list[str]:
    if not matched:
        return []
    grid = ", ".join(f"{s:g}" for s in matched["safety_days"])
    lines = [
        f"Stock at equal service: min/max padded with s safety days (min = d·(L + s)), s in {grid}",
        f"{'':<24}{'service':>10}{'s':>8}{'min/max':>14}{'policy':>14}{'saving':>9}",
    ]
    scopes = [("All series", matched["overall"])]
    scopes += [(f"Class {c}", m) for c, m in matched["by_class"].items()]
    names = {"cycle_service_level": "cycle service", "fill_rate": "fill rate"}
    for title, by_measure in scopes:
        lines.append(title)
        for measure, m in by_measure.items():
            if m["beyond_grid"]:
                s_txt, base_txt, save_txt = f">{matched['safety_days'][-1]:g}", "not reached", "–"
            elif m["baseline_safety_days"] is None:
                s_txt, base_txt, save_txt = "–", "n/a", "–"
            else:
                s_txt = f"{m['baseline_safety_days']:.1f}"
                base_txt = _money(m["baseline_stock_value"])
                save_txt = _signed_pct(m["stock_saving"])
            lines.append(
                f"  {names[measure]:<22}{_pct(m['policy']):>10}{s_txt:>8}"
                f"{base_txt:>14}{_money(m['policy_stock_value']):>14}{save_txt:>9}"
            )
    lines.append(
        "  (s: safety days the min/max needs to reach the policy's service; saving: "
        "1 − policy stock / its stock)"
    )
    return lines


def format_table(result: BacktestResult) -> str:
    """A readable side-by-side report of the policy and the baseline."""
    p = result.parameters
    excluded = p.get("excluded_series", {})
    levels = p.get("service_levels", {})
    target = (
        f"every SKU {_pct(p['service_level'])}"
        if p.get("service_level") is not None
        else "ABC "
        + ", ".join(f"{k} {_pct(v)}" for k, v in levels.items())
        + " (product overrides apply)"
    )
    head = [
        f"Backtest {p['start']} → {p['end']} ({p['days']} days), {p['series']} series"
        + (f", {excluded.get('jit', 0)} 'jit' series not replayed" if excluded.get("jit") else ""),
        f"  policy:   replenish build_plans, forecast refit every {p['refit_every']} days; "
        f"targets {target}",
        f"  baseline: static min/max (min = d·L, max = min + d·"
        f"{p['baseline']['review_days']:g} days)",
        f"  initial stock: {p['initial_stock']}; lead times drawn from receipts "
        f"(seed {p['seed']}); {p['runtime_seconds']:.1f} s",
        "",
    ]
    return "\n".join(
        [
            *head,
            *_service_table(result),
            "",
            *_equal_service_table(result.equal_service),
            "",
            *_accuracy_table(result.forecast_accuracy),
        ]
    )
