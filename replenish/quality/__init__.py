"""Quality gate: Great Expectations suites over the ERP snapshot, quarantine of bad rows.

``validate_snapshot`` returns a :class:`GateResult`: the clean snapshot, the
quarantined rows with their reasons, the rows kept with a warning,
dataset-level failures (blocking ones stop the run before ordering) and a
per-dataset summary; :class:`GateSettings` holds its thresholds. The checks
are declared in :mod:`replenish.quality.rules`; GX runs them
(:mod:`replenish.quality.engine`); demand spikes are scored in
:mod:`replenish.quality.anomalies`. ``build_data_docs`` renders a result as a
GX Data Docs site (:mod:`replenish.quality.docs`). Importing this package
does not import Great Expectations: the first validation does.
"""

from replenish.quality.docs import build_data_docs
from replenish.quality.gate import (
    QUARANTINE_COLUMNS,
    SUMMARY_COLUMNS,
    DatasetFailure,
    GateResult,
    GateSettings,
    validate_snapshot,
)
from replenish.quality.rules import PO_STATUSES, Rule, dataset_rules

__all__ = [
    "PO_STATUSES",
    "QUARANTINE_COLUMNS",
    "SUMMARY_COLUMNS",
    "DatasetFailure",
    "GateResult",
    "GateSettings",
    "Rule",
    "build_data_docs",
    "dataset_rules",
    "validate_snapshot",
]
