"""Extract: read the ERP snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from prefect import task

from replenish.model import ErpSnapshot
from replenish.sources import open_erp
from tasks.common import NO_CACHE_OPTIONS, retry_if_transient, settings


@task(
    name="extract-erp",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_if_transient,
    timeout_seconds=1800,
    **NO_CACHE_OPTIONS,
)
def extract_erp(as_of: date, skus: Sequence[str] | None, history_days: int) -> ErpSnapshot:
    """Products, suppliers, stock, open POs, receipts, sales and returns."""
    s = settings()
    erp = open_erp(s.erp(), profile=s.erp_profile)
    try:
        return erp.read_snapshot(as_of, history_days=history_days, skus=skus)
    finally:
        erp.engine.dispose()
