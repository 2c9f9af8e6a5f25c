"""Quality gate: Great Expectations suites over the ERP snapshot, quarantine of bad rows.

``validate_snapshot`` returns a :class:`GateResult`: the clean snapshot, the
quarantined rows with their reasons, dataset-level failures (blocking ones stop
the run before ordering) and a per-dataset summary. The checks are declared in
:mod:`replenish.quality.rules`; GX runs them (:mod:`replenish.quality.engine`).
Importing this package does not import Great Expectations: the first
validation does.
"""

from replenish.quality.gate import (
    QUARANTINE_COLUMNS,
    SUMMARY_COLUMNS,
    DatasetFailure,
    GateResult,
    validate_snapshot,
)
from replenish.quality.rules import PO_STATUSES, Rule, dataset_rules

__all__ = [
    "PO_STATUSES",
    "QUARANTINE_COLUMNS",
    "SUMMARY_COLUMNS",
    "DatasetFailure",
    "GateResult",
    "Rule",
    "dataset_rules",
    "validate_snapshot",
]
