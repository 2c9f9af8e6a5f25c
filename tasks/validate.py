"""Validate: the Great Expectations gate."""

from __future__ import annotations

from datetime import date

from prefect import task

from replenish.model import ErpSnapshot
from replenish.quality import GateResult, validate_snapshot
from replenish.sources.generic import day_end
from tasks.common import NO_CACHE_OPTIONS


@task(name="validate", **NO_CACHE_OPTIONS)
def validate_data(snapshot: ErpSnapshot, as_of: date) -> GateResult:
    """Row failures go to quarantine; dataset failures make the result blocking."""
    return validate_snapshot(snapshot, day_end(as_of))
