"""Backtest: replay the replenishment policy over past sales, beside a baseline.

Usage::

    from replenish.backtest import BacktestConfig, backtest_erp, format_table

    result = backtest_erp(url, BacktestConfig(start=date(2026, 5, 1), end=date(2026, 10, 27)))
    print(format_table(result))
    json.dumps(result.to_dict())

=============================  ================================================
module                         what
=============================  ================================================
:mod:`.engine`                 the day-by-day replay (:func:`run_backtest`)
:mod:`.supply`                 lead times drawn from the receipt history
:mod:`.baseline`               the static min/max rule merchants set in Odoo
:mod:`.metrics`                cycle service level, fill rate, stock, orders
:mod:`.accuracy`               MASE and bias beside statsforecast baselines
:mod:`.report`                 the JSON document and the text table
=============================  ================================================

See docs/backtest.md for the exact definitions and the demo shop's figures.
"""

from replenish.backtest.engine import (
    ABC_CLASSES,
    BacktestConfig,
    BacktestDataError,
    BacktestResult,
    backtest_erp,
    run_backtest,
)
from replenish.backtest.metrics import METRIC_KEYS
from replenish.backtest.report import format_table, to_json

__all__ = [
    "ABC_CLASSES",
    "METRIC_KEYS",
    "BacktestConfig",
    "BacktestDataError",
    "BacktestResult",
    "backtest_erp",
    "format_table",
    "run_backtest",
    "to_json",
]
