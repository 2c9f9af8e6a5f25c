"""Validate: the Great Expectations gate, and the run's Data Docs."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from replenish.errors import StoreError
from replenish.model import ErpSnapshot
from replenish.quality import GateResult, GateSettings, build_data_docs, validate_snapshot
from replenish.quality.verdicts import SnapshotWithVerdicts, known_verdicts_of
from replenish.sources.generic import day_end
from replenish.sources.incremental import save_verdicts
from tasks.common import NO_CACHE_OPTIONS, settings
from tasks.publish import open_store

#: Folder of every run's Data Docs, under the settings' home (REPLENISH_HOME).
DATA_DOCS_FOLDER = "data-docs"


@task(name="validate", **NO_CACHE_OPTIONS)
def validate_data(
    snapshot: ErpSnapshot,
    as_of: date,
    run_id: str | None = None,
    gate_settings: GateSettings | None = None,
) -> GateResult:
    """Row failures go to quarantine; dataset failures make the result blocking.

    A snapshot read through the demand cache carries the cached verdicts of
    its sales lines: the row-level expectations then run only on the lines
    without one (docs/data-quality.md), and the verdicts taken tonight are
    written back to the cache (a failure to write them is logged: the next
    run validates those lines again).

    With a ``run_id``, the run's Data Docs are written to
    ``<REPLENISH_HOME>/data-docs/<run_id>/`` and ``result.data_docs`` is the
    path of their ``index.html`` (None when they could not be written: that
    is logged and does not stop the run).
    """
    known = known_verdicts_of(snapshot)
    result = validate_snapshot(snapshot, day_end(as_of), gate_settings, known=known)
    if known is not None and known.writable and result.new_verdicts is not None:
        try:
            with open_store() as store:
                saved = save_verdicts(store, known, result.new_verdicts)
            _logger().info(
                "validated %s of %s sales lines (%s with a cached verdict); %s verdicts cached",
                f"{_validated(result):,}",
                f"{len(snapshot.sales_order_lines):,}",
                f"{known.known:,}",
                f"{saved:,}",
            )
        except StoreError as e:  # the verdicts save time, never a reason to stop
            _logger().warning("the gate's verdicts could not be cached: %s", e)
        # done with: a row-by-row array or three of the snapshot's size
        result.new_verdicts = None
        if isinstance(snapshot, SnapshotWithVerdicts):
            snapshot.known_verdicts = None
    if run_id is not None:
        directory = settings().home / DATA_DOCS_FOLDER
        try:
            result.data_docs = build_data_docs(result, directory, run_id)
        except Exception as e:  # the docs are a report: never a reason to stop ordering
            get_run_logger().warning(
                "Data Docs of run %s could not be written to %s: %s: %s",
                run_id,
                directory,
                type(e).__name__,
                e,
            )
    return result


def _validated(result: GateResult) -> int:
    rows = result.summary.loc[result.summary["dataset"] == "sales_order_lines", "validated_rows"]
    return int(rows.iloc[0]) if len(rows) else 0


def _logger() -> Any:
    """The run's logger; a plain one when called outside a run (``validate_data.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
