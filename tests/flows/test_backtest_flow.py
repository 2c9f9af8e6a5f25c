"""The weekly backtest and parameter review: the review's rules on made-up
figures, and the flow on the demo shop under the session's Prefect server."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from scipy.stats import norm

from flows.backtest import weekly_backtest
from replenish.backtest import ABC_CLASSES, BacktestResult
from replenish.backtest.review import review_markdown, review_service_levels, suggested_levels
from replenish.demo import generate_demo
from replenish.errors import ConfigurationError
from replenish.sources.generic import write_snapshot


def block(target: float | None, achieved: float | None, cycles: int) -> dict[str, Any]:
    return {
        "series": 10,
        "cycles": cycles,
        "target_service_level": target,
        "cycle_service_level": achieved,
        "fill_rate": 0.99,
        "avg_stock_value": 1000.0,
    }


def result_of(by_class: dict[str, dict[str, Any]]) -> BacktestResult:
    metrics = {"by_class": by_class}
    return BacktestResult(
        policy=metrics,
        baseline=metrics,
        forecast_accuracy={},
        parameters={},
        series=pd.DataFrame(),
        orders=pd.DataFrame(),
    )


def test_review_raises_short_classes_lowers_over_ones_and_keeps_the_rest() -> None:
    result = result_of(
        {
            "A": block(0.98, 0.90, 200),  # short by 8 points over 200 cycles
            "B": block(0.95, 0.995, 400),  # over by 4.5 points
            "C": block(0.90, 0.89, 300),  # within the band
        }
    )
    current = {"A": 0.98, "B": 0.95, "C": 0.90}
    review = review_service_levels(result, current).set_index("abc_class")
    assert review.loc["A", "verdict"] == "raise" and review.loc["B", "verdict"] == "lower"
    assert review.loc["C", "verdict"] == "keep" and review.loc["C", "suggested_level"] == 0.90
    # z shifted by the measured gap: Φ(Φ⁻¹(.98) + Φ⁻¹(.98) − Φ⁻¹(.90)), capped at 0.995
    want_a = min(norm.cdf(2 * norm.ppf(0.98) - norm.ppf(0.90)), 0.995)
    assert review.loc["A", "suggested_level"] == pytest.approx(round(want_a / 0.005) * 0.005)
    assert review.loc["A", "ss_factor"] > 1 > review.loc["B", "ss_factor"]
    assert review.loc["B", "suggested_level"] < 0.95
    assert "raise service_levels.A 0.98" in review.loc["A", "advice"]
    levels = suggested_levels(review.reset_index())
    assert levels["C"] == 0.90 and levels["A"] > 0.98
    text = review_markdown(review.reset_index())
    assert "**raise**" in text and "service_levels: {" in text


def test_review_does_not_judge_few_cycles_or_noise() -> None:
    # 5 points short, but over 30 cycles the standard error is 4 points: noise
    result = result_of(
        {
            "A": block(0.95, 0.90, 30),
            "B": block(0.95, 0.50, 5),  # far off, but 5 cycles say little
            "C": block(None, None, 0),
        }
    )
    review = review_service_levels(result, {"A": 0.95, "B": 0.95, "C": 0.9})
    assert review["verdict"].tolist() == ["keep", "too few cycles", "too few cycles"]
    assert (review["suggested_level"] == review["current_level"]).all()
    assert "No change suggested." in review_markdown(review)
    with pytest.raises(ConfigurationError, match="tolerance"):
        review_service_levels(result, {}, tolerance=0.7)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_weekly_backtest_publishes_the_review_and_the_class_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = date.today()
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(generate_demo(today, seed=11, n_skus=20, days=110), erp)
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)

    out = weekly_backtest(days=21, min_cycles=3, service_levels={"A": 0.97})

    assert out["end"] == (today - timedelta(days=1)).isoformat()
    assert out["start"] == (today - timedelta(days=21)).isoformat()
    assert out["service_levels"] == {"A": 0.97, "B": 0.95, "C": 0.90}
    assert [r["abc_class"] for r in out["review"]] == list(ABC_CLASSES)
    assert out["series"] > 15 and 0 < out["cycle_service_level"] <= 1
    for row in out["review"]:
        assert row["verdict"] in {"keep", "raise", "lower", "too few cycles"}
        if row["verdict"] in {"raise", "lower"}:
            assert out["suggested_service_levels"][row["abc_class"]] == row["suggested_level"]
    json.dumps(out)  # a plain result: it is stored by Prefect

    async def artifacts() -> dict[str, Any]:
        async with get_client() as client:
            found = {}
            for key in ("backtest-review", "backtest-by-class"):
                rows = await client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                    sort="CREATED_DESC",
                    limit=1,
                )
                found[key] = rows[0].data
            return found

    found = asyncio.run(artifacts())
    review = found["backtest-review"]
    assert "Service levels per ABC class" in review and "Backtest" in review
    assert "| A |" in review and "cycle service level" in review
    table = found["backtest-by-class"]
    table = json.loads(table) if isinstance(table, str) else table
    assert [(r["class"], r["replay"]) for r in table] == [
        (c, r) for c in ABC_CLASSES for r in ("policy", "min/max")
    ]
    policy = [r for r in table if r["replay"] == "policy"]
    assert sum(r["series"] for r in policy) == out["series"]
    for r in table:  # a class with complete cycles has a target and an achieved level
        assert (r["cycles"] > 0) == (r["cycle_service_level"] is not None), r
        assert r["cycles"] == 0 or r["target_service_level"] is not None, r
