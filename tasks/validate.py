"""Validate: the Great Expectations gate, and the run's Data Docs."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task

from replenish.model import ErpSnapshot
from replenish.quality import GateResult, GateSettings, build_data_docs, validate_snapshot
from replenish.sources.generic import day_end
from tasks.common import NO_CACHE_OPTIONS, settings

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

    With a ``run_id``, the run's Data Docs are written to
    ``<REPLENISH_HOME>/data-docs/<run_id>/`` and ``result.data_docs`` is the
    path of their ``index.html`` (None when they could not be written: that
    is logged and does not stop the run).
    """
    result = validate_snapshot(snapshot, day_end(as_of), gate_settings)
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
