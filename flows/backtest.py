"""The weekly backtest and parameter review (docs/deployment.md).

Replays the policy over the last ``days`` days (docs/backtest.md), publishes
the report and the per-class figures as artifacts, and reviews each ABC
class's service level: achieved against target, with the change to make
(:mod:`replenish.backtest.review`).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from replenish.backtest import ABC_CLASSES, BacktestResult, format_table
from replenish.backtest.review import review_markdown, review_service_levels, suggested_levels
from tasks.backtest import backtest

DEFAULT_SERVICE_LEVELS = {"A": 0.98, "B": 0.95, "C": 0.90}
_CLASS_FIGURES = (
    "series",
    "cycles",
    "target_service_level",
    "cycle_service_level",
    "fill_rate",
    "stockout_days",
    "avg_stock_units",
    "avg_stock_value",
    "orders",
    "total_cost",
)


@flow(name="weekly-backtest", log_prints=True)
def weekly_backtest(
    days: Annotated[int, Field(ge=7, le=366)] = 56,
    end: date | None = None,
    service_levels: dict[str, float] | None = None,
    refit_every: Annotated[int, Field(ge=1, le=28)] = 7,
    history_days: Annotated[int, Field(ge=28)] = 730,
    tolerance: Annotated[float, Field(ge=0, lt=0.5)] = 0.02,
    min_cycles: Annotated[int, Field(ge=1)] = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Backtest the last weeks and review the service level of each ABC class.

    Args:
        days: days replayed, the last one being `end`.
        end: last replayed day (default: yesterday, the last complete day).
        service_levels: the cycle service levels per ABC class the plans use,
            e.g. {"A": 0.98}: give the nightly deployment's values; classes
            left out keep their default (A 0.98, B 0.95, C 0.90).
        refit_every: days between forecast refits in the replay.
        history_days: days of sales history behind each forecast (as nightly).
        tolerance: a gap between achieved and target service below this is
            never acted on (e.g. 0.02 = 2 points).
        min_cycles: replenishment cycles a class needs before it is judged.
        seed: seed of the lead-time draws of the replay.
    """
    end = end or date.today() - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    levels = {**DEFAULT_SERVICE_LEVELS, **(service_levels or {})}
    result = backtest(start, end, levels, refit_every, history_days, seed)
    review = review_service_levels(result, levels, tolerance=tolerance, min_cycles=min_cycles)
    create_markdown_artifact(
        key="backtest-review",
        markdown=(
            f"# Backtest and parameter review {start} → {end}\n\n"
            "## Service levels per ABC class\n\n"
            f"{review_markdown(review)}\n\n"
            "## The backtest\n\n"
            f"```text\n{format_table(result)}\n```\n"
        ),
        description=f"Backtest {start} → {end} and the service-level review",
    )
    create_table_artifact(
        key="backtest-by-class",
        table=class_figures(result),
        description=f"Policy and min/max baseline per ABC class, {start} → {end}",
    )
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "series": result.parameters.get("series"),
        "cycle_service_level": result.policy["cycle_service_level"],
        "fill_rate": result.policy["fill_rate"],
        "review": review.astype(object).where(review.notna(), None).to_dict("records"),
        "service_levels": levels,
        "suggested_service_levels": suggested_levels(review),
    }


def class_figures(result: BacktestResult) -> list[dict[str, Any]]:
    """One row per ABC class and replay (policy, min/max), rounded."""
    rows: list[dict[str, Any]] = []
    for cls in ABC_CLASSES:
        for replay, metrics in (("policy", result.policy), ("min/max", result.baseline)):
            block = metrics["by_class"][cls]
            row: dict[str, Any] = {"class": cls, "replay": replay}
            for key in _CLASS_FIGURES:
                value = block.get(key)
                row[key] = round(value, 4) if isinstance(value, float) else value
            rows.append(row)
    return rows


if __name__ == "__main__":
    weekly_backtest()
