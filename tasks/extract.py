"""Extract: read the ERP snapshot, incrementally (docs/incremental.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from replenish.model import ErpSnapshot
from replenish.quality.engine import warm_up
from replenish.sources import open_erp
from replenish.sources.incremental import read_incremental
from tasks.common import NO_CACHE_OPTIONS, retry_if_transient, settings
from tasks.publish import open_store


@task(
    name="extract-erp",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_if_transient,
    timeout_seconds=1800,
    **NO_CACHE_OPTIONS,
)
def extract_erp(
    as_of: date, skus: Sequence[str] | None, history_days: int, full_refresh: bool = False
) -> ErpSnapshot:
    """Products, suppliers, stock, open POs, receipts, sales and returns.

    Sales and returns come from the store's demand cache where it can serve
    them: the ERP's are read from the last watermark minus a week only, and
    the cached sales-channel rows join them. ``full_refresh`` rebuilds the
    ERP's cache from the whole history window.
    """
    warm_up()  # GX's import and context, while the databases are read
    s = settings()
    erp = open_erp(s.erp(), profile=s.erp_profile)
    try:
        # an unreachable ERP or a missing table fails here, before the store is touched
        erp.check_contract()
        with open_store() as store:
            snapshot, report = read_incremental(
                erp,
                store,
                as_of,
                history_days,
                skus,
                full_refresh=full_refresh,
            )
        _logger().info(report.summary())
        return snapshot
    finally:
        erp.engine.dispose()


def _logger() -> Any:
    """The run's logger; a plain one when called outside a run (``extract_erp.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
