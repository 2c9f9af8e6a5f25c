"""The backtest on a known demand distribution, on the demo shop, and from the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson
from typer.testing import CliRunner

from replenish.backtest import BacktestConfig, BacktestResult, run_backtest
from replenish.cli import app
from replenish.demo import generate_demo
from replenish.errors import ConfigurationError
from replenish.policy import PlanSettings
from replenish.sources.generic import write_snapshot
from tests.unit.test_backtest import FIRST_DAY, synthetic_shop

pytestmark = pytest.mark.slow

# ------------------------------------------------- a known demand distribution

N_SKUS = 600
HISTORY_DAYS = 200
WINDOW_DAYS = 60
LEAD_TIME = 5
TARGET = 0.90
RATES = np.linspace(1.0, 8.0, N_SKUS)  # Poisson demand per day of P000 … P599


@pytest.fixture(scope="module")
def poisson_replay() -> BacktestResult:
    """600 SKUs with Poisson daily demand (1 to 8 a day), one supplier whose
    every delivery took exactly 5 days, 200 days of history, a 60-day replay
    with a 90 % cycle-service target. A small order cost (K = 3) keeps the
    order quantities short (7 to 21 days of demand) so that the replay sees
    some 2 500 complete replenishment cycles, and still longer than the lead
    time, so that one order at a time is under way. (Many SKUs over a short
    window: the replay's cost is per day, not per SKU.)"""
    rng = np.random.default_rng(20240601)
    demand = rng.poisson(RATES[:, None], (N_SKUS, HISTORY_DAYS + WINDOW_DAYS)).astype(float)
    snap = synthetic_shop(demand, lead_time=LEAD_TIME, service_level=TARGET)
    start = FIRST_DAY + timedelta(days=HISTORY_DAYS)
    config = BacktestConfig(
        start=start,
        end=start + timedelta(days=WINDOW_DAYS - 1),
        plan_settings=PlanSettings(order_cost=3.0),
    )
    return run_backtest(snap, config)


def test_measured_cycle_service_is_the_probability_of_the_orders(
    poisson_replay: BacktestResult,
) -> None:
    """The backtest measures what probability says it should. With one order
    under way at a time, a cycle ends without a lost sale exactly when the
    demand of the L days after the order is at most the stock position at
    the order: P = Poisson_cdf(position; λ·L) with the SKU's true λ. The
    measured cycle service level must match the mean of those probabilities
    within three standard errors (√Σp(1−p) / n, about 0.9 points here)."""
    result = poisson_replay
    orders = result.orders[result.orders["replay"] == "policy"].sort_values(["sku", "placed"])
    orders = orders[orders["arrival"] <= pd.Timestamp(result.parameters["end"])]
    previous_arrival = orders.groupby("sku")["arrival"].shift()
    closing = orders[previous_arrival.notna() & (previous_arrival <= orders["placed"])]
    assert len(closing) >= 0.99 * result.policy["cycles"]  # one order under way at a time
    rate = closing["sku"].str[1:].astype(int).map(dict(enumerate(RATES)))
    p = poisson.cdf(closing["position"], rate * closing["lead_time_days"])
    se = np.sqrt((p * (1 - p)).sum()) / len(p)
    assert result.policy["cycles"] > 2_000
    assert abs(result.policy["cycle_service_level"] - p.mean()) <= 3 * se


def test_policy_meets_its_target_cycle_service_level(poisson_replay: BacktestResult) -> None:
    """On Poisson demand with a certain lead time the policy should reach
    its cycle service target within ±2 points (~2 500 cycles: one standard
    error is ~0.6 points at 90 %)."""
    policy = poisson_replay.policy
    assert policy["target_service_level"] == pytest.approx(TARGET)
    assert abs(policy["cycle_service_level"] - TARGET) <= 0.02


# ------------------------------------------------------------------ the demo shop

DEMO_AS_OF = date(2026, 11, 21)


@pytest.fixture(scope="module")
def demo_replay() -> BacktestResult:
    """The demo shop at a small size (60 SKUs, 400 days), its last 100 days."""
    snap = generate_demo(DEMO_AS_OF, seed=7, n_skus=60, days=400)
    end = DEMO_AS_OF - timedelta(days=1)
    return run_backtest(snap, BacktestConfig(start=end - timedelta(days=99), end=end))


def test_policy_serves_better_than_min_max_on_the_demo_shop(demo_replay: BacktestResult) -> None:
    """What the policy buys over the merchants' static min/max on the demo
    shop: a clearly higher fill rate and cycle service level and far fewer
    stock-out days, overall and in class A (where most demand is)."""
    assert demo_replay.parameters["planner_state_mismatch_days"] == 0
    policy, baseline = demo_replay.policy, demo_replay.baseline
    assert policy["fill_rate"] >= baseline["fill_rate"] + 0.03
    assert policy["cycle_service_level"] >= baseline["cycle_service_level"] + 0.2
    assert policy["stockout_days"] < baseline["stockout_days"] / 2
    a_pol, a_base = policy["by_class"]["A"], baseline["by_class"]["A"]
    assert a_pol["fill_rate"] >= a_base["fill_rate"] + 0.03
    assert a_pol["stockout_days"] < a_base["stockout_days"] / 2


def test_policy_holds_less_stock_than_min_max_at_equal_fill_rate(
    demo_replay: BacktestResult,
) -> None:
    """At equal service the comparison is fair: the min/max padded with
    safety days until it reaches the policy's fill rate (frontier.py) needs
    more stock value than the policy holds. The padded rule's own points must
    bracket the policy's service (not read off beyond the grid)."""
    matched = demo_replay.equal_service
    assert matched is not None
    fill = matched["overall"]["fill_rate"]
    assert not fill["beyond_grid"]
    assert fill["baseline_safety_days"] > 0
    assert fill["policy_stock_value"] == pytest.approx(demo_replay.policy["avg_stock_value"])
    assert fill["policy_stock_value"] < fill["baseline_stock_value"]
    # the frontier itself: more safety days, more stock and (weakly) more service
    points = matched["frontier"]
    values = [p["avg_stock_value"] for p in points]
    assert values == sorted(values)
    assert points[0]["fill_rate"] == pytest.approx(demo_replay.baseline["fill_rate"])
    assert points[-1]["fill_rate"] > points[0]["fill_rate"]


@pytest.mark.xfail(
    strict=True,
    reason=(
        "open finding: the issue's min/max (min = d·L) carries no safety stock "
        "and reaches a 45 % cycle service; the policy, at its ~93 % target, "
        "holds 57.5 k against its 35.9 k (fill 99.1 % vs 91.7 %). At equal "
        "fill rate it holds less (test above); below this baseline's stock "
        "at a service close to target it does not"
    ),
)
def test_policy_holds_less_stock_than_min_max_on_the_demo_shop(
    demo_replay: BacktestResult,
) -> None:
    """The claim to prove: less stock value than the min/max baseline at a
    comparable or better fill rate."""
    policy, baseline = demo_replay.policy, demo_replay.baseline
    assert policy["fill_rate"] >= baseline["fill_rate"] - 0.005
    assert policy["avg_stock_value"] < baseline["avg_stock_value"]


# ------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def small_erp(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("erp")) / "erp.db"
    url = f"sqlite:///{path.as_posix()}"
    write_snapshot(generate_demo(DEMO_AS_OF, seed=5, n_skus=20, days=120), url)
    return url


def test_cli_backtest_prints_json_and_table(small_erp: str) -> None:
    runner = CliRunner()
    window = ["--start", "2026-11-11", "--end", "2026-11-20", "--erp", small_erp]
    out = runner.invoke(app, ["backtest", *window, "--format", "json", "--refit-every", "5"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc) == {"policy", "baseline", "equal_service", "forecast_accuracy", "parameters"}
    assert doc["parameters"]["days"] == 10 and doc["parameters"]["refit_every"] == 5
    assert doc["forecast_accuracy"]["origins"] == 2
    assert doc["parameters"]["erp"].endswith("erp.db")
    assert 0 < doc["policy"]["fill_rate"] <= 1

    short = ["--start", "2026-11-18", "--end", "2026-11-20", "--erp", small_erp]
    table = runner.invoke(app, ["backtest", *short, "--service-level", "0.9"])
    assert table.exit_code == 0, table.output
    assert "every SKU 90.0%" in table.output and "min/max" in table.output


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-20", "2026-11-06", "is before start"),
        ("2026/11/06", "2026-11-20", "--start: expected a date as YYYY-MM-DD"),
        ("2026-11-06", "2026-12-31", "after the last recorded sale"),
        ("2026-07-25", "2026-08-01", "days of sales history"),
    ],
)
def test_cli_backtest_bad_range_is_a_configuration_error(
    small_erp: str, start: str, end: str, message: str
) -> None:
    """The command raises ConfigurationError, which ``replenish`` (cli.main)
    prints as one line with exit code 2."""
    out = CliRunner().invoke(app, ["backtest", "--start", start, "--end", end, "--erp", small_erp])
    assert isinstance(out.exception, ConfigurationError)
    assert message in str(out.exception)
