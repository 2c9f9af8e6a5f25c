"""Backtest: replay the policy over the last weeks of the ERP's history."""

from __future__ import annotations

from datetime import date

from prefect import task

from replenish.backtest import BacktestConfig, BacktestResult, run_backtest
from replenish.policy.plan import PlanSettings
from replenish.sources import open_erp
from tasks.common import NO_CACHE_OPTIONS, retry_if_transient, settings


@task(
    name="backtest",
    retries=2,
    retry_delay_seconds=[60, 300],
    retry_condition_fn=retry_if_transient,
    timeout_seconds=4 * 3600,
    **NO_CACHE_OPTIONS,
)
def backtest(
    start: date,
    end: date,
    service_levels: dict[str, float],
    refit_every: int = 7,
    history_days: int = 730,
    seed: int = 0,
) -> BacktestResult:
    """Read the ERP (any profile) once, up to the evening of ``end``, and
    replay ``[start, end]`` with the plan's service levels
    (:func:`replenish.backtest.run_backtest`, docs/backtest.md)."""
    config = BacktestConfig(
        start=start,
        end=end,
        refit_every=refit_every,
        history_days=history_days,
        seed=seed,
        plan_settings=PlanSettings(service_levels=service_levels),
    )
    s = settings()
    erp = open_erp(s.erp(), profile=s.erp_profile)
    try:
        snapshot = erp.read_snapshot(config.end, history_days=config.read_days)
    finally:
        erp.engine.dispose()
    return run_backtest(snapshot, config)
