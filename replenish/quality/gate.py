"""The validation gate: Great Expectations suites over an :class:`ErpSnapshot`.

:func:`validate_snapshot` checks every dataset of a snapshot (the checks are
listed in :mod:`replenish.quality.rules`), in an order where a referenced table
is cleaned before the tables that reference it, and returns a
:class:`GateResult`:

* bad *rows* go to ``quarantine`` (one line per row and failed check, with a
  sentence naming the dataset, the row, the field and what was expected) and
  are left out of ``clean``; the rest flows on;
* *dataset* problems go to ``failures``. Blocking ones stop the run before
  any order is written (the flow alerts): the stock snapshot is empty, stale
  (newest clean ``as_of`` older than ``max_stock_age_days``) or more than
  ``max_rejected_fraction`` of its rows were rejected; ``products`` or
  ``suppliers`` are empty or fully rejected; a required table lacks contract
  columns; an expectation could not be evaluated. Non-blocking ones (for the
  alert digest only): more than ``max_rejected_fraction`` of the rows of a
  non-stock dataset rejected; the optional ``stock_history`` lacks columns.

The gate never raises for data problems: it reports.
:meth:`GateResult.raise_if_blocking` turns a blocking result into
:class:`~replenish.errors.DataQualityError` for callers that want that.

Dates: the contract's datetimes are naive UTC. "Not in the future" means
before the first instant after the as-of day: ``as_of`` itself when it is a
midnight (the tasks pass ``day_end(as_of)``), the next midnight otherwise.
An aware ``as_of`` is converted to naive UTC; a plain ``date`` means its whole day.

Row numbers in reasons are 1-based positions in the input frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from replenish import model
from replenish.errors import DataQualityError
from replenish.model import ErpSnapshot
from replenish.quality.engine import Outcome, get_engine
from replenish.quality.rules import (
    CUTOFF_PARAMETER,
    DATASETS,
    FRESH_AFTER_PARAMETER,
    REQUIRED_CONTENT,
    SNAPSHOT_SUITE,
    STOCK_DATASET,
    Rule,
    dataset_rules,
)

QUARANTINE_COLUMNS: Final = ("dataset", "row_key", "field", "expectation", "value", "reason")
SUMMARY_COLUMNS: Final = (
    "dataset",
    "rows",
    "rejected_rows",
    "expectations",
    "failed_expectations",
    "success",
)

#: Names of the gate's own dataset-level checks (not GX expectations).
CONTRACT_COLUMNS_CHECK: Final = "gate_contract_columns"
REJECTED_FRACTION_CHECK: Final = "gate_rejected_row_fraction"
USABLE_ROWS_CHECK: Final = "gate_usable_rows"

_TYPE_NAMES: Final = {
    "float64": "number",
    "Int64": "whole number",
    "boolean": "yes/no value",
    "string": "value",
    "datetime64[ns]": "date",
}


@dataclass(frozen=True)
class DatasetFailure:
    """A dataset-level failure."""

    dataset: str
    expectation: str
    detail: str
    blocking: bool


@dataclass
class GateResult:
    """What the gate found; see the module docstring."""

    clean: ErpSnapshot
    quarantine: pd.DataFrame
    failures: list[DatasetFailure]
    summary: pd.DataFrame
    #: suite name -> GX validation result as JSON (index lists and long value
    #: sets trimmed), enough to render GX Data Docs later
    gx_results: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        """True when a blocking failure means no order may be written."""
        return any(f.blocking for f in self.failures)

    @property
    def blocking_failures(self) -> list[DatasetFailure]:
        return [f for f in self.failures if f.blocking]

    def raise_if_blocking(self) -> None:
        """Raise :class:`DataQualityError` naming every blocking failure."""
        if self.blocking:
            raise DataQualityError(
                "validation gate blocked the run: "
                + "; ".join(f"{f.dataset}: {f.detail}" for f in self.blocking_failures)
            )


@dataclass
class _Context:
    cutoff: pd.Timestamp
    as_of: pd.Timestamp
    fresh_after: pd.Timestamp
    max_stock_age_days: float
    max_rejected_fraction: float
    #: referenced dataset -> key values of its clean rows / of all its rows
    valid_keys: dict[str, pd.Index] = field(default_factory=dict)
    present_keys: dict[str, pd.Index] = field(default_factory=dict)


@dataclass
class _Checked:
    clean: pd.DataFrame
    quarantine: list[pd.DataFrame]
    failures: list[DatasetFailure]
    rows: int
    rejected_rows: int
    expectations: int
    failed_expectations: int
    gx_results: dict[str, Any]


def validate_snapshot(
    snapshot: ErpSnapshot,
    as_of: datetime | date,
    *,
    max_stock_age_days: float = 2.0,
    max_rejected_fraction: float = 0.2,
) -> GateResult:
    """Validate every dataset of ``snapshot`` as of ``as_of``; never mutates it."""
    now = _utc_naive(as_of)
    ctx = _Context(
        cutoff=cutoff_for(as_of),
        as_of=now,
        fresh_after=now - pd.Timedelta(days=max_stock_age_days),
        max_stock_age_days=max_stock_age_days,
        max_rejected_fraction=max_rejected_fraction,
    )
    tables = snapshot.tables()
    if set(tables) != set(DATASETS):  # pragma: no cover - guards a contract change
        raise ValueError(f"the gate does not know datasets {set(tables) ^ set(DATASETS)}")

    checked: dict[str, _Checked] = {}
    for dataset in DATASETS:
        result = _check_dataset(dataset, tables[dataset], ctx)
        checked[dataset] = result
        if dataset in ("products", "suppliers", "purchase_orders"):
            key = model.KEYS[dataset][0]
            ctx.valid_keys[dataset] = _distinct(result.clean[key])
            raw = tables[dataset]
            ctx.present_keys[dataset] = (
                _distinct(raw[key]) if key in raw.columns else pd.Index([], dtype="string")
            )

    parts = [q for c in checked.values() for q in c.quarantine]
    quarantine = (pd.concat(parts, ignore_index=True) if parts else _empty_quarantine()).astype(
        "string"
    )
    summary = pd.DataFrame(
        [
            {
                "dataset": name,
                "rows": c.rows,
                "rejected_rows": c.rejected_rows,
                "expectations": c.expectations,
                "failed_expectations": c.failed_expectations,
                "success": c.failed_expectations == 0,
            }
            for name, c in checked.items()
        ],
        columns=list(SUMMARY_COLUMNS),
    )
    return GateResult(
        clean=ErpSnapshot(**{name: c.clean for name, c in checked.items()}),
        quarantine=quarantine,
        failures=[f for c in checked.values() for f in c.failures],
        summary=summary,
        gx_results={k: v for c in checked.values() for k, v in c.gx_results.items()},
    )


def _check_dataset(dataset: str, frame: pd.DataFrame, ctx: _Context) -> _Checked:
    rows = len(frame)
    missing = [c for c in model.CONTRACT[dataset] if c not in frame.columns]
    if missing and rows:
        required = dataset in model.REQUIRED_TABLES
        detail = (
            f"{dataset} lacks the contract column(s) {', '.join(missing)}: the source does not "
            f"provide the data contract, none of its {rows} rows can be used"
        )
        return _Checked(
            clean=model.empty_frame(dataset),
            quarantine=[],
            failures=[DatasetFailure(dataset, CONTRACT_COLUMNS_CHECK, detail, required)],
            rows=rows,
            rejected_rows=rows,
            expectations=1,
            failed_expectations=1,
            gx_results={},
        )

    work = _contract_frame(dataset, frame)
    positional = work.reset_index(drop=True)
    engine = get_engine()
    run = engine.run(dataset, positional, _parameters(dataset, positional, ctx))
    gx_results = {dataset: run.result}
    failures: list[DatasetFailure] = []
    quarantine: list[pd.DataFrame] = []
    rejected = np.zeros(rows, dtype=bool)
    failed = 0
    for outcome in run.outcomes:
        if outcome.error is not None:
            failed += 1
            failures.append(_error_failure(outcome))
        elif not outcome.success:
            failed += 1
            if outcome.rule.row_level:
                rejected[outcome.positions] = True
                quarantine.append(_quarantine_part(outcome, positional, ctx))
            else:
                failures.append(_dataset_failure(outcome, ctx))
    expectations = len(run.outcomes)

    clean = work[~rejected]
    rejected_rows = int(rejected.sum())

    if dataset == STOCK_DATASET and len(clean):
        snapshot_run = engine.run(
            SNAPSHOT_SUITE, clean.reset_index(drop=True), _parameters(SNAPSHOT_SUITE, clean, ctx)
        )
        gx_results[SNAPSHOT_SUITE] = snapshot_run.result
        expectations += len(snapshot_run.outcomes)
        for outcome in snapshot_run.outcomes:
            if outcome.error is not None:
                failed += 1
                failures.append(_error_failure(outcome))
            elif not outcome.success:
                failed += 1
                failures.append(_dataset_failure(outcome, ctx))

    # the gate's own policy checks
    expectations += 1
    fraction = rejected_rows / rows if rows else 0.0
    all_rejected = rows > 0 and rejected_rows == rows and dataset in REQUIRED_CONTENT
    if fraction > ctx.max_rejected_fraction and not (all_rejected and dataset != STOCK_DATASET):
        failed += 1
        stock = dataset == STOCK_DATASET
        consequence = (
            "stock positions cannot be trusted" if stock else "the rest flows on; check the source"
        )
        failures.append(
            DatasetFailure(
                dataset,
                REJECTED_FRACTION_CHECK,
                f"{rejected_rows} of {rows} {dataset} rows ({fraction:.0%}) were rejected, more "
                f"than the {ctx.max_rejected_fraction:.0%} allowed: {consequence}",
                blocking=stock,
            )
        )
    if dataset in REQUIRED_CONTENT and dataset != STOCK_DATASET:
        expectations += 1
        if all_rejected:
            failed += 1
            failures.append(
                DatasetFailure(
                    dataset,
                    USABLE_ROWS_CHECK,
                    f"all {rows} {dataset} rows were rejected: nothing is left to plan with",
                    blocking=True,
                )
            )

    return _Checked(
        clean=clean,
        quarantine=quarantine,
        failures=failures,
        rows=rows,
        rejected_rows=rejected_rows,
        expectations=expectations,
        failed_expectations=failed,
        gx_results=gx_results,
    )


def _parameters(suite: str, frame: pd.DataFrame, ctx: _Context) -> dict[str, Any]:
    params: dict[str, Any] = {
        CUTOFF_PARAMETER: ctx.cutoff,
        FRESH_AFTER_PARAMETER: ctx.fresh_after,
    }
    if suite == SNAPSHOT_SUITE:
        return params
    for rule in dataset_rules(suite):
        if rule.kind == "reference" and rule.parameter and rule.target:
            values = _distinct(frame[rule.columns[0]])
            valid = ctx.valid_keys.get(rule.target, pd.Index([], dtype="string"))
            params[rule.parameter] = [str(v) for v in values.difference(valid)]
    return params


# --- frames -------------------------------------------------------------------------------


def _contract_frame(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The contract columns of ``frame`` in contract order and dtypes, same index.

    A new frame (copy-on-write): the input is never modified."""
    contract = model.CONTRACT[dataset]
    if all(c in frame.columns and str(frame[c].dtype) == t for c, t in contract.items()):
        return frame[list(contract)]
    return model.coerce(dataset, frame)


def _distinct(values: pd.Series) -> pd.Index:
    return pd.Index(values.dropna().unique())


def cutoff_for(as_of: datetime | date) -> pd.Timestamp:
    """The first instant after the as-of day, as naive UTC: event dates must be
    strictly before it. ``as_of`` itself when it is a midnight (``day_end``),
    else the next midnight; for a plain ``date``, the midnight after it."""
    return _utc_naive(as_of).ceil("D")


def _utc_naive(value: datetime | date) -> pd.Timestamp:
    if not isinstance(value, datetime):
        return pd.Timestamp(value) + pd.Timedelta(days=1)
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in QUARANTINE_COLUMNS})


# --- texts --------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value as a short string; missing values as ''."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.15g}"
    return str(value)


def _texts(series: pd.Series) -> list[str]:
    """:func:`_text` of every value, vectorised where the dtype allows."""
    if series.dtype == "float64":
        return ["" if v != v else f"{v:.15g}" for v in series.tolist()]
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return [_text(v) for v in series.tolist()]  # str(Timestamp): stable per value
    return series.astype("string").fillna("").tolist()


def _row_keys(dataset: str, rows: pd.DataFrame) -> list[str]:
    columns = model.KEYS[dataset]
    parts = [[f"{c}={v}" for v in _texts(rows[c])] for c in columns]
    return ["|".join(p) for p in zip(*parts, strict=True)]


def _quarantine_part(outcome: Outcome, frame: pd.DataFrame, ctx: _Context) -> pd.DataFrame:
    rule = outcome.rule
    positions = outcome.positions
    rows = frame.iloc[positions]
    keys = _row_keys(rule.dataset, rows)
    values = keys if len(rule.columns) > 1 else _texts(rows[rule.columns[0]])
    bodies = _reason_bodies(rule, keys, values, ctx)
    reasons = [
        f"{rule.dataset} row {p + 1} ({k}): {b}."
        for p, k, b in zip(positions.tolist(), keys, bodies, strict=True)
    ]
    n = len(positions)
    return pd.DataFrame(
        {
            "dataset": [rule.dataset] * n,
            "row_key": keys,
            "field": [rule.field] * n,
            "expectation": [outcome.expectation] * n,
            "value": values,
            "reason": reasons,
        }
    )


def _reason_bodies(rule: Rule, keys: list[str], values: list[str], ctx: _Context) -> list[str]:
    f = rule.field
    if rule.kind == "not_null":
        kind = _TYPE_NAMES.get(model.CONTRACT[rule.dataset][f], "value")
        article = "an" if kind[0] in "aeiou" else "a"
        return [f"{f} is empty or not a valid {kind}; expected {article} {kind} (required)"] * len(
            keys
        )
    if rule.kind == "unique":
        counts: dict[str, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        return [
            f"{counts[k]} rows share the key ({f}); expected each key once (every row of a "
            "duplicated key is quarantined: which one is right cannot be told)"
            for k in keys
        ]
    if rule.kind == "range":
        expected = _range_text(rule)
        return [f"{f} = {v}; expected {expected}" for v in values]
    if rule.kind == "not_future":
        day = (ctx.cutoff - pd.Timedelta(days=1)).date().isoformat()
        return [
            f"{f} = {v} is in the future; expected a date before {ctx.cutoff} "
            f"(the end of the as-of day {day}, UTC)"
            for v in values
        ]
    if rule.kind == "in_set":
        allowed = ", ".join(f"'{x}'" for x in rule.values)
        return [f"{f} = '{v}' is not allowed; expected one of {allowed}" for v in values]
    if rule.kind == "reference" and rule.target:
        present = ctx.present_keys.get(rule.target, pd.Index([]))
        known = {v for v in set(values) if v in present}
        return [
            (
                f"{f} = '{v}' refers to a {rule.target} row that was itself quarantined; "
                f"expected a {f} of a valid {rule.target} row"
                if v in known
                else f"{f} = '{v}' does not exist in {rule.target}; expected a {f} of a "
                f"valid {rule.target} row"
            )
            for v in values
        ]
    return [f"{f} = {v} failed {rule.kind}" for v in values]  # pragma: no cover


def _range_text(rule: Rule) -> str:
    low = _text(rule.low) if rule.low is not None else None
    high = _text(rule.high) if rule.high is not None else None
    if high is None:
        return f"a number {'>' if rule.strict else '>='} {low}"
    if low is None:  # pragma: no cover - no such rule today
        return f"a number {'<' if rule.strict else '<='} {high}"
    if rule.strict:
        return f"a number strictly between {low} and {high}, or empty"
    return f"a number from {low} to {high}, or empty"  # pragma: no cover


def _dataset_failure(outcome: Outcome, ctx: _Context) -> DatasetFailure:
    rule = outcome.rule
    if rule.kind == "min_rows":
        detail = f"{rule.dataset} is empty: the source returned no rows"
    elif rule.kind == "fresh":
        detail = (
            f"stock snapshot is stale: its newest as_of is {_text(outcome.observed_value)}, "
            f"older than {_text(float(ctx.max_stock_age_days))} days before {ctx.as_of} "
            f"(expected on or after {ctx.fresh_after})"
        )
    else:  # pragma: no cover - every dataset-level rule kind is listed above
        detail = f"{rule.field} failed {outcome.expectation}"
    return DatasetFailure(rule.dataset, outcome.expectation, detail, blocking=True)


def _error_failure(outcome: Outcome) -> DatasetFailure:
    rule = outcome.rule
    return DatasetFailure(
        rule.dataset,
        outcome.expectation,
        f"{outcome.expectation} on {rule.field or 'the table'} could not be evaluated "
        f"({outcome.error}): the dataset is unchecked",
        blocking=True,
    )


__all__ = [
    "QUARANTINE_COLUMNS",
    "SUMMARY_COLUMNS",
    "DatasetFailure",
    "GateResult",
    "validate_snapshot",
]
