"""The validation gate: Great Expectations suites over an :class:`ErpSnapshot`.

:func:`validate_snapshot` checks every dataset of a snapshot (the checks are
listed in :mod:`replenish.quality.rules`, for users in ``docs/data-quality.md``),
in an order where a referenced table is cleaned before the tables that
reference it, and returns a :class:`GateResult`:

* bad *rows* go to ``quarantine`` (one line per row and failed check, with a
  sentence naming the dataset, the row, the field, the value and what was
  expected) and are left out of ``clean``; the rest flows on;
* *suspicious* rows (``warn`` rules: an active product without a cost, a
  location the stock snapshot does not know) go to ``warnings`` with the same
  columns and stay in ``clean``;
* *dataset* problems go to ``failures``. Blocking ones stop the run before
  any order is written (the flow alerts): the stock snapshot is empty, stale
  (the newest clean ``as_of`` of a location older than ``max_stock_age_days``)
  or more than ``max_rejected_fraction`` of its rows were rejected;
  ``products`` or ``suppliers`` are empty or fully rejected; a required table
  lacks contract columns; an expectation could not be evaluated. Non-blocking
  ones (for the alert digest only): more than ``max_rejected_fraction`` of the
  rows of a non-stock dataset rejected; the optional ``stock_history`` lacks
  columns.

The thresholds are a :class:`GateSettings`. The gate never raises for data
problems: it reports. :meth:`GateResult.raise_if_blocking` turns a blocking
result into :class:`~replenish.errors.DataQualityError` for callers that want
that. :func:`replenish.quality.build_data_docs` renders a result as a GX Data
Docs site.

Dates: the contract's datetimes are naive UTC. "Not in the future" means
before the first instant after the as-of day: ``as_of`` itself when it is a
midnight (the tasks pass ``day_end(as_of)``), the next midnight otherwise.
An aware ``as_of`` is converted to naive UTC; a plain ``date`` means its whole day.

Row numbers in reasons are 1-based positions in the input frame.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish import model
from replenish.errors import ConfigurationError, DataQualityError
from replenish.model import ErpSnapshot
from replenish.quality.anomalies import SpikeScores, spike_scores
from replenish.quality.engine import STORED_INDEX_LIST, Outcome, get_engine
from replenish.quality.rules import (
    CUTOFF_PARAMETER,
    DATASETS,
    FRESH_AFTER_PARAMETER,
    LOCATIONS,
    REQUIRED_CONTENT,
    SALES_DATASET,
    SNAPSHOT_SUITE,
    SPIKE_K_PARAMETER,
    SPIKE_SCORE_COLUMN,
    SPIKE_SUITE,
    STOCK_DATASET,
    Rule,
    dataset_rules,
    suite_rules,
)
from replenish.quality.verdicts import (
    KnownVerdicts,
    NewVerdicts,
    cached_rules,
    duplicate_candidates,
    rules_fingerprint,
    short_id,
    usable_codes,
)

#: Columns of ``GateResult.quarantine`` and ``GateResult.warnings``: the store
#: keeps the first six; ``rule`` (e.g. ``sales_order_lines:spike:qty``) tells
#: apart two checks that use the same GX expectation on the same field.
QUARANTINE_COLUMNS: Final = (
    "dataset",
    "row_key",
    "field",
    "expectation",
    "value",
    "reason",
    "rule",
)
SUMMARY_COLUMNS: Final = (
    "dataset",
    "rows",
    "validated_rows",
    "rejected_rows",
    "flagged_rows",
    "expectations",
    "failed_expectations",
    "success",
    "seconds",
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
class GateSettings:
    """The gate's thresholds (business settings: the flow passes them).

    Attributes:
        max_stock_age_days: a location whose newest clean stock ``as_of`` is
            older than this many days before the validation instant blocks the
            run (stale snapshot).
        max_rejected_fraction: more rejected rows than this share of a dataset
            is a dataset failure (blocking for ``stock_levels``).
        spike_k: a sales line more than ``k`` standard deviations above the
            mean daily demand of its SKU × location is a demand spike
            (quarantined). 6 flags no line of the demo shop and about 0.3 % of
            the lines of a real wholesaler's export (its bulk orders).
        spike_min_days: a SKU × location needs at least this many other days
            with sales before its lines are checked for spikes.
        spike_exempt_channels: channels whose lines are never spikes (e.g.
            ``{"b2b"}`` where bulk orders are the business); case-insensitive.
        spike_released_orders: order ids a planner has confirmed as real
            demand: their lines are not checked for spikes.
    """

    max_stock_age_days: float = 2.0
    max_rejected_fraction: float = 0.2
    spike_k: float = 6.0
    spike_min_days: int = 20
    spike_exempt_channels: frozenset[str] = frozenset()
    spike_released_orders: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        checks = (
            ("max_stock_age_days", self.max_stock_age_days > 0, "a number of days > 0"),
            (
                "max_rejected_fraction",
                0 <= self.max_rejected_fraction <= 1,
                "a fraction from 0 to 1",
            ),
            ("spike_k", self.spike_k > 0, "a number of standard deviations > 0"),
            ("spike_min_days", self.spike_min_days >= 2, "a whole number of days >= 2"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigurationError(
                    f"gate setting {name}: expected {expected}, got {getattr(self, name)!r}"
                )
        for name in ("spike_exempt_channels", "spike_released_orders"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ConfigurationError(
                    f"gate setting {name}: expected a list of names, got {value!r}"
                )
            object.__setattr__(self, name, frozenset(str(v) for v in value))


@dataclass(frozen=True)
class DatasetFailure:
    """A dataset-level failure."""

    dataset: str
    expectation: str
    detail: str
    blocking: bool


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in QUARANTINE_COLUMNS})


@dataclass
class GateResult:
    """What the gate found; see the module docstring."""

    clean: ErpSnapshot
    quarantine: pd.DataFrame
    failures: list[DatasetFailure]
    summary: pd.DataFrame
    #: suite name -> GX validation result as JSON (index lists and long value
    #: sets trimmed), what :func:`replenish.quality.build_data_docs` renders
    gx_results: dict[str, Any] = field(default_factory=dict)
    #: rows kept but flagged by ``warn`` rules (same columns as ``quarantine``)
    warnings: pd.DataFrame = field(default_factory=_empty_rows)
    #: the validation instant (naive UTC) and the thresholds used
    as_of: pd.Timestamp | None = None
    settings: GateSettings = field(default_factory=GateSettings)
    #: the index page of the run's Data Docs, once built (the validate task does)
    data_docs: Path | None = None
    #: the row-level verdicts taken tonight of the sales lines that had no
    #: cached one (None without ``known`` verdicts): what the validate task
    #: writes back to the demand cache
    new_verdicts: NewVerdicts | None = None

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
    settings: GateSettings
    #: referenced dataset -> key values of its clean rows / of all its rows
    valid_keys: dict[str, pd.Index] = field(default_factory=dict)
    present_keys: dict[str, pd.Index] = field(default_factory=dict)
    #: the clean promotions (spikes on their days are expected)
    promotions: pd.DataFrame | None = None


@dataclass
class _Checked:
    clean: pd.DataFrame
    quarantine: list[pd.DataFrame]
    warnings: list[pd.DataFrame]
    failures: list[DatasetFailure]
    rows: int
    rejected_rows: int
    flagged_rows: int
    expectations: int
    failed_expectations: int
    gx_results: dict[str, Any]
    seconds: float = 0.0
    #: rows the dataset's GX suite was run on (fewer than ``rows`` when cached
    #: verdicts stood for the others)
    validated_rows: int = 0
    new_verdicts: NewVerdicts | None = None


def validate_snapshot(
    snapshot: ErpSnapshot,
    as_of: datetime | date,
    settings: GateSettings | None = None,
    *,
    known: KnownVerdicts | None = None,
) -> GateResult:
    """Validate every dataset of ``snapshot`` as of ``as_of``; never mutates it.

    Args:
        snapshot: the extracted contract frames.
        as_of: the validation instant (the validate task passes
            ``day_end(as_of)``, the first instant after the planning day).
        settings: thresholds; ``GateSettings()`` by default.
        known: the cached verdicts of ``snapshot.sales_order_lines`` (an
            incremental read's, :mod:`replenish.quality.verdicts`): the
            row-level expectations then run only on the lines without a
            usable verdict and on those the cross-row checks concern; the
            result is the one a validation of every line gives (the GX
            results of the sales suite cover the lines validated).
            Ignored unless built for that very frame.
    """
    settings = settings or GateSettings()
    now = _utc_naive(as_of)
    ctx = _Context(
        cutoff=cutoff_for(as_of),
        as_of=now,
        fresh_after=now - pd.Timedelta(days=settings.max_stock_age_days),
        settings=settings,
    )
    tables = snapshot.tables()
    if set(tables) != set(DATASETS):  # pragma: no cover - guards a contract change
        raise ValueError(f"the gate does not know datasets {set(tables) ^ set(DATASETS)}")

    get_engine()  # created once per process: not part of the first dataset's time
    checked: dict[str, _Checked] = {}
    for dataset in DATASETS:
        started = time.perf_counter()
        result = _check_dataset(dataset, tables[dataset], ctx, known)
        result.seconds = time.perf_counter() - started
        checked[dataset] = result
        if dataset in ("products", "suppliers", "purchase_orders"):
            key = model.KEYS[dataset][0]
            ctx.valid_keys[dataset] = _distinct(result.clean[key])
            raw = tables[dataset]
            ctx.present_keys[dataset] = (
                _distinct(raw[key]) if key in raw.columns else pd.Index([], dtype="string")
            )
        elif dataset == STOCK_DATASET:
            ctx.valid_keys[LOCATIONS] = _distinct(result.clean["location_id"])
        elif dataset == "promotions":
            ctx.promotions = result.clean

    summary = pd.DataFrame(
        [
            {
                "dataset": name,
                "rows": c.rows,
                "validated_rows": c.validated_rows,
                "rejected_rows": c.rejected_rows,
                "flagged_rows": c.flagged_rows,
                "expectations": c.expectations,
                "failed_expectations": c.failed_expectations,
                "success": c.failed_expectations == 0,
                "seconds": c.seconds,
            }
            for name, c in checked.items()
        ],
        columns=list(SUMMARY_COLUMNS),
    )
    return GateResult(
        clean=ErpSnapshot(**{name: c.clean for name, c in checked.items()}),
        quarantine=_concat([q for c in checked.values() for q in c.quarantine]),
        failures=[f for c in checked.values() for f in c.failures],
        summary=summary,
        gx_results={k: v for c in checked.values() for k, v in c.gx_results.items()},
        warnings=_concat([w for c in checked.values() for w in c.warnings]),
        as_of=now,
        settings=settings,
        new_verdicts=next((c.new_verdicts for c in checked.values() if c.new_verdicts), None),
    )


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return (pd.concat(parts, ignore_index=True) if parts else _empty_rows()).astype("string")


def _check_dataset(
    dataset: str, frame: pd.DataFrame, ctx: _Context, known: KnownVerdicts | None = None
) -> _Checked:
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
            warnings=[],
            failures=[DatasetFailure(dataset, CONTRACT_COLUMNS_CHECK, detail, required)],
            rows=rows,
            rejected_rows=rows,
            flagged_rows=0,
            expectations=1,
            failed_expectations=1,
            gx_results={},
        )

    work = _contract_frame(dataset, frame)
    positional = _positional(work)
    gx_frame = _gx_view(positional)
    rules = dataset_rules(dataset)
    out = _Checked(
        clean=work,
        quarantine=[],
        warnings=[],
        failures=[],
        rows=rows,
        rejected_rows=0,
        flagged_rows=0,
        expectations=len(rules),
        failed_expectations=0,
        gx_results={},
    )
    rejected = np.zeros(rows, dtype=bool)
    flagged: list[Outcome] = []
    usable = known is not None and known.dataset == dataset and known.applies_to(frame)
    codes: npt.NDArray[np.int64] | None = None
    failed_by_code: dict[int, tuple[str, ...]] = {}
    selected: npt.NDArray[np.int64] | None = None  # positions GX validates (None: all)
    if usable:
        assert known is not None
        codes, failed_by_code = usable_codes(known, positional["ordered_at"], ctx.cutoff)
        select = (codes < 0) | _cross_row_rows(dataset, gx_frame, ctx, known.groups)
        selected = np.flatnonzero(select)
    out.validated_rows = rows if selected is None else len(selected)
    outcomes: dict[str, Outcome] = {}
    # An empty table passes every row-level expectation: GX is not asked
    # (~6 ms per expectation); dataset-level rules (min_rows) always run.
    if out.validated_rows or not all(r.row_level for r in rules):
        result, found_outcomes = _run_suite(dataset, gx_frame, selected, ctx)
        if selected is not None:
            result.setdefault("meta", {})["replenish_cached_verdicts"] = {
                "rows": rows,
                "validated_rows": len(selected),
                "rows_with_cached_verdict": rows - len(selected),
            }
        out.gx_results[dataset] = result
        outcomes.update(found_outcomes)
    if usable and codes is not None and selected is not None:
        _add_cached_failures(dataset, codes, failed_by_code, selected, rows, outcomes)

    for rule in rules:
        found = outcomes.get(rule.id)
        if found is None:
            continue
        outcome = found
        if outcome.error is not None:
            out.failed_expectations += 1
            out.failures.append(_error_failure(outcome))
        elif not outcome.success:
            out.failed_expectations += 1
            if not outcome.rule.row_level:
                out.failures.append(_dataset_failure(outcome, ctx))
            elif outcome.rule.severity == "warn":
                flagged.append(outcome)
            else:
                rejected[outcome.positions] = True
                part = positional.iloc[outcome.positions]
                out.quarantine.append(_rows_part(outcome, part, outcome.positions, ctx))
    if usable and known is not None and codes is not None:
        out.new_verdicts = _new_verdicts(dataset, known, selected, outcomes, rows)

    if dataset == STOCK_DATASET:
        _check_freshness(positional[~rejected], ctx, out)
    if dataset == SALES_DATASET and rows:
        _check_spikes(positional, gx_frame, rejected, ctx, out)

    for outcome in flagged:  # rows that are rejected anyway are not flagged too
        keep = outcome.positions[~rejected[outcome.positions]]
        if len(keep):
            part = positional.iloc[keep]
            out.warnings.append(_rows_part(outcome, part, keep, ctx))
    flagged_positions = [o.positions for o in flagged]
    if flagged_positions:
        any_flag = np.zeros(rows, dtype=bool)
        for p in flagged_positions:
            any_flag[p] = True
        out.flagged_rows = int((any_flag & ~rejected).sum())

    # the input's own frame when every row passed (the gate only reads it)
    out.clean = work[~rejected] if rejected.any() else work
    out.rejected_rows = int(rejected.sum())
    _check_policy(dataset, ctx, out)
    return out


def _check_freshness(clean: pd.DataFrame, ctx: _Context, out: _Checked) -> None:
    """Every location's newest clean stock ``as_of`` must be recent (blocking)."""
    if clean.empty:
        return
    newest = clean.groupby("location_id", sort=True, observed=True)["as_of"].max().reset_index()
    newest["location_id"] = newest["location_id"].astype("string")
    run = get_engine().run(SNAPSHOT_SUITE, newest, _parameters(SNAPSHOT_SUITE, newest, ctx))
    out.gx_results[SNAPSHOT_SUITE] = run.result
    out.expectations += len(run.outcomes)
    for outcome in run.outcomes:
        if outcome.error is not None:
            out.failed_expectations += 1
            out.failures.append(_error_failure(outcome))
        elif not outcome.success:
            out.failed_expectations += 1
            stale = newest.iloc[outcome.positions]
            places = ", ".join(
                f"{loc} (newest as_of {_text(at)})"
                for loc, at in zip(stale["location_id"], stale["as_of"], strict=True)
            )
            what = "location" if len(stale) == 1 else f"{len(stale)} of {len(newest)} locations"
            out.failures.append(
                DatasetFailure(
                    STOCK_DATASET,
                    outcome.expectation,
                    f"stock snapshot is stale at {what}: {places}; expected on or after "
                    f"{ctx.fresh_after} (at most {_text(float(ctx.settings.max_stock_age_days))} "
                    f"days before {ctx.as_of}): its stock positions cannot be trusted",
                    blocking=True,
                )
            )


def _check_spikes(
    positional: pd.DataFrame,
    gx_frame: pd.DataFrame,
    rejected: npt.NDArray[np.bool_],
    ctx: _Context,
    out: _Checked,
) -> None:
    """Demand spikes among the sales lines that passed the other checks
    (:mod:`replenish.quality.anomalies`); GX checks the scores against k."""
    s = ctx.settings

    def score(stats_from: float | None) -> SpikeScores:
        return spike_scores(
            gx_frame,
            ctx.promotions,
            min_days=s.spike_min_days,
            exempt_channels=s.spike_exempt_channels,
            released_orders=s.spike_released_orders,
            include=~rejected,
            stats_from=stats_from,
        )

    # the mean, std and days of the lines scored k or more only: what the
    # reasons of the spikes quote (three arrays of the frame's length else)
    scores = score(float(s.spike_k))
    # one column of the scored lines only (an unscored line, NaN, is not
    # checked anyway): GX copies the frame it filters, once per expectation
    scored = np.flatnonzero(~np.isnan(scores.score))
    frame = pd.DataFrame({SPIKE_SCORE_COLUMN: scores.score[scored]})
    result, outcomes = _run_suite(SPIKE_SUITE, frame, None, ctx)
    del frame
    out.gx_results[SPIKE_SUITE] = result
    out.expectations += len(outcomes)
    for outcome in outcomes.values():
        if outcome.error is not None:
            out.failed_expectations += 1
            out.failures.append(_error_failure(outcome))
        elif not outcome.success:
            out.failed_expectations += 1
            p = scored[outcome.positions]
            try:
                mean, std, days = scores.stats(p)
            except KeyError:  # pragma: no cover - GX flagged a line scored below k
                mean, std, days = score(None).stats(p)
            rejected[p] = True
            extra = {"score": scores.score[p], "mean": mean, "std": std, "days": days}
            out.quarantine.append(_rows_part(outcome, positional.iloc[p], p, ctx, extra=extra))


def _check_policy(dataset: str, ctx: _Context, out: _Checked) -> None:
    """The gate's own dataset-level checks: the share of rejected rows, usable rows."""
    rows, rejected_rows = out.rows, out.rejected_rows
    limit = ctx.settings.max_rejected_fraction
    out.expectations += 1
    fraction = rejected_rows / rows if rows else 0.0
    all_rejected = rows > 0 and rejected_rows == rows and dataset in REQUIRED_CONTENT
    if fraction > limit and not (all_rejected and dataset != STOCK_DATASET):
        out.failed_expectations += 1
        stock = dataset == STOCK_DATASET
        consequence = (
            "stock positions cannot be trusted" if stock else "the rest flows on; check the source"
        )
        out.failures.append(
            DatasetFailure(
                dataset,
                REJECTED_FRACTION_CHECK,
                f"{rejected_rows} of {rows} {dataset} rows ({fraction:.0%}) were rejected, more "
                f"than the {limit:.0%} allowed: {consequence}",
                blocking=stock,
            )
        )
    if dataset in REQUIRED_CONTENT and dataset != STOCK_DATASET:
        out.expectations += 1
        if all_rejected:
            out.failed_expectations += 1
            out.failures.append(
                DatasetFailure(
                    dataset,
                    USABLE_ROWS_CHECK,
                    f"all {rows} {dataset} rows were rejected: nothing is left to plan with",
                    blocking=True,
                )
            )


def _subset(frame: pd.DataFrame, positions: npt.NDArray[np.int64]) -> pd.DataFrame:
    """The rows at ``positions`` with a default RangeIndex (all of ``frame`` when
    they are all of it)."""
    if len(positions) == len(frame):
        return frame
    return frame.iloc[positions].reset_index(drop=True)


#: A suite of only row-level expectations given more rows than this is run in
#: chunks of about this many rows (GX holds several frame-sized temporaries
#: while it validates: ~150 bytes a sales line; 28 M lines in one pass took
#: ~4 GB). The rows of a row key share a chunk, so the uniqueness expectation
#: judges every pair that could collide; the verdicts are those of one pass.
GX_CHUNK_ROWS = 2_000_000


def _run_suite(
    suite: str,
    frame: pd.DataFrame,
    selected: npt.NDArray[np.int64] | None,
    ctx: _Context,
) -> tuple[dict[str, Any], dict[str, Outcome]]:
    """GX's result and the outcome of each rule of ``suite`` on the rows of
    ``frame`` at ``selected`` (None: every row); outcome positions are
    positions in ``frame``. In chunks of :data:`GX_CHUNK_ROWS` rows when there
    are more and every rule is row-level (:func:`_merge_results`)."""
    rows = len(frame) if selected is None else len(selected)
    rules = suite_rules(suite)
    engine = get_engine()
    if rows <= GX_CHUNK_ROWS or not all(r.row_level for r in rules):
        evaluated = frame if selected is None else _subset(frame, selected)
        run = engine.run(suite, evaluated, _parameters(suite, frame, ctx, selected))
        del evaluated
        outcomes = {}
        for outcome in run.outcomes:
            if selected is not None and len(outcome.positions):
                outcome = replace(outcome, positions=selected[outcome.positions])
            outcomes[outcome.rule.id] = outcome
        return run.result, outcomes

    params = _parameters(suite, frame, ctx, selected)  # over every row: as one pass
    runs: list[tuple[npt.NDArray[np.int64], Any]] = []  # (positions in the validated rows, run)
    for part in _chunks(suite, frame, selected, -(-rows // GX_CHUNK_ROWS)):
        at = part if selected is None else selected[part]
        chunk = frame.take(at)
        chunk.index = pd.RangeIndex(len(at))
        runs.append((part, engine.run(suite, chunk, params)))
        del chunk, at
    outcomes = {}
    for i, rule in enumerate(rules):
        found = [run.outcomes[i] for _, run in runs]
        # positions among the validated rows (GX's own in one pass), ascending
        where = np.sort(
            np.concatenate([part[o.positions] for (part, _), o in zip(runs, found, strict=True)])
        ).astype(np.int64)
        errors = sorted({o.error for o in found if o.error is not None})
        outcomes[rule.id] = Outcome(
            rule=rule,
            expectation=found[0].expectation,
            success=all(o.success for o in found),
            unexpected_count=sum(o.unexpected_count for o in found),
            positions=where if selected is None else selected[where],
            observed_value=None,
            error="; ".join(errors) if errors else None,
        )
        if errors:
            outcomes[rule.id] = replace(outcomes[rule.id], positions=np.zeros(0, np.int64))
    sizes = [len(part) for part, _ in runs]
    merged = _merge_results([run.result for _, run in runs], sizes, outcomes, selected)
    return merged, outcomes


def _chunks(
    suite: str, frame: pd.DataFrame, selected: npt.NDArray[np.int64] | None, count: int
) -> list[npt.NDArray[np.int64]]:
    """``count`` sets of positions among the validated rows (ascending), of
    about the same size. With a uniqueness rule, rows are placed by a hash of
    their key values (a function of the values: equal keys, same chunk);
    else in contiguous ranges."""
    rows = len(frame) if selected is None else len(selected)
    key = next((r.columns for r in suite_rules(suite) if r.kind == "unique"), None)
    if key is None:
        bounds = np.linspace(0, rows, count + 1).astype(np.int64)
        return [np.arange(lo, hi, dtype=np.int64) for lo, hi in itertools.pairwise(bounds)]
    codes = [_key_codes(frame[c]) for c in key]  # a function of the values
    place = np.zeros(rows, dtype=np.int16)
    step = max(GX_CHUNK_ROWS, 1)
    for lo in range(0, rows, step):
        at = slice(lo, lo + step) if selected is None else selected[lo : lo + step]
        mixed = np.zeros(len(place[lo : lo + step]), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for c in codes:
                mixed = (mixed ^ c(at)) * np.uint64(0x9E3779B97F4A7C15)
            mixed ^= mixed >> np.uint64(29)
        place[lo : lo + step] = mixed % np.uint64(count)
    del codes
    return [np.flatnonzero(place == c).astype(np.int64) for c in range(count)]


def _key_codes(values: pd.Series) -> Callable[[Any], npt.NDArray[np.uint64]]:
    """A reader of one integer per row (by positions or a slice), equal for
    equal values, missing values included."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = np.asarray(values.cat.codes)
        return lambda at: cat[at].astype(np.int64).astype(np.uint64)
    if pd.api.types.is_integer_dtype(values.dtype):
        missing = np.iinfo(np.int64).min
        return lambda at: np.asarray(
            values.iloc[at].to_numpy(dtype=np.int64, na_value=missing)
        ).astype(np.uint64)
    codes = np.asarray(pd.factorize(values)[0]).astype(np.int64)
    return lambda at: codes[at].astype(np.uint64)


def _merge_results(
    payloads: list[dict[str, Any]],
    sizes: list[int],
    outcomes: dict[str, Outcome],
    selected: npt.NDArray[np.int64] | None,
) -> dict[str, Any]:
    """One GX validation result from those of the chunks: per expectation,
    success when every chunk succeeded, counts summed and percentages taken
    over every row, the first failing positions among the validated rows;
    the statistics recounted. Only ``meta.batch_markers`` (the first chunk's
    load time) and ``meta.replenish_chunks`` (the chunks' sizes) tell."""
    merged = {k: v for k, v in payloads[0].items() if k != "results"}
    merged["meta"] = dict(merged.get("meta") or {})
    merged["meta"]["replenish_chunks"] = {
        "chunks": len(payloads),
        "rows": sum(sizes),
        "chunk_rows": sizes,
    }
    results = []
    for i, er in enumerate(payloads[0].get("results", [])):
        parts = [p["results"][i] for p in payloads]
        out = dict(er)
        out["success"] = all(bool(x.get("success")) for x in parts)
        raised = [x for x in parts if (x.get("exception_info") or {}).get("raised_exception")]
        if raised:
            out["exception_info"] = raised[0].get("exception_info")
        rule_id = ((er.get("expectation_config") or {}).get("meta") or {}).get("rule")
        res = [x.get("result") or {} for x in parts]
        combined: dict[str, Any] = {}
        if all("element_count" in r for r in res):
            for name in ("element_count", "unexpected_count", "missing_count"):
                if all(name in r for r in res):
                    combined[name] = sum(int(r[name] or 0) for r in res)
            total = combined["element_count"]
            bad = combined.get("unexpected_count", 0)
            present = total - combined.get("missing_count", 0)
            if "missing_count" in combined:
                combined["missing_percent"] = _percent(combined["missing_count"], total)
                combined["unexpected_percent"] = _percent(bad, present)
                combined["unexpected_percent_total"] = _percent(bad, total)
                combined["unexpected_percent_nonmissing"] = _percent(bad, present)
            else:
                combined["unexpected_percent"] = _percent(bad, total)
        elif any("unexpected_count" in r for r in res):
            # small chunks validated BOOLEAN_ONLY first (engine.TWO_PASS_BELOW): a
            # chunk that passed has no counts (0 unexpected); the row counts and
            # percentages of the others would be partial, so they are left out
            combined["unexpected_count"] = sum(int(r.get("unexpected_count") or 0) for r in res)
            res = [{k: v for k, v in r.items() if k not in _COUNTS} for r in res]
        outcome = outcomes.get(rule_id) if rule_id else None
        if outcome is not None and any("unexpected_index_list" in r for r in res):
            where = outcome.positions
            if selected is not None and len(where):
                where = np.searchsorted(selected, where)
            combined["unexpected_index_list"] = where[:STORED_INDEX_LIST].tolist()
            if len(where) > STORED_INDEX_LIST:
                combined["unexpected_index_list_truncated"] = True
        out["result"] = {**next((r for r in res if r), {}), **combined}
        results.append(out)
    merged["results"] = results
    merged["success"] = all(r["success"] for r in results)
    evaluated = len(results)
    ok = sum(1 for r in results if r["success"])
    merged["statistics"] = {
        **(merged.get("statistics") or {}),
        "evaluated_expectations": evaluated,
        "successful_expectations": ok,
        "unsuccessful_expectations": evaluated - ok,
        "success_percent": _percent(ok, evaluated),
    }
    return merged


#: GX result entries that are row counts or shares of them.
_COUNTS: Final = frozenset(
    {
        "element_count",
        "missing_count",
        "missing_percent",
        "unexpected_percent",
        "unexpected_percent_total",
        "unexpected_percent_nonmissing",
    }
)


def _percent(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


def _cross_row_rows(
    dataset: str, frame: pd.DataFrame, ctx: _Context, groups: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Rows whose outcome may depend on other rows or tables tonight, whatever
    their cached verdict: a reference to a value absent from the clean
    referenced table (e.g. a SKU of a product quarantined tonight), a key
    that may be duplicated. GX validates them with the new rows."""
    out = np.zeros(len(frame), dtype=bool)
    for rule in dataset_rules(dataset):
        if rule.kind == "reference" and rule.target:
            valid = ctx.valid_keys.get(rule.target, pd.Index([], dtype="string"))
            if rule.target == LOCATIONS and valid.empty:
                continue  # not checked (see _parameters)
            column = frame[rule.columns[0]]
            unknown = _distinct(column).difference(valid)
            if len(unknown):
                out |= np.asarray(column.isin(unknown), dtype=bool)
        elif rule.kind == "unique":
            out |= duplicate_candidates(frame, rule.columns, groups)
    return out


@cache
def _expectation_type(rule: Rule) -> str:
    return str(rule.to_expectation().expectation_type)


def _add_cached_failures(
    dataset: str,
    codes: npt.NDArray[np.int64],
    failed_by_code: dict[int, tuple[str, ...]],
    selected: npt.NDArray[np.int64],
    rows: int,
    outcomes: dict[str, Outcome],
) -> None:
    """Merge the cached failures of the rows GX did not validate into the
    outcomes of their rules (positions in input order)."""
    not_validated = np.ones(rows, dtype=bool)
    not_validated[selected] = False
    extra: dict[str, list[npt.NDArray[np.int64]]] = {}
    for code, ids in failed_by_code.items():
        if not ids:
            continue
        where = np.flatnonzero((codes == code) & not_validated)
        if len(where):
            for rule_id in ids:
                extra.setdefault(f"{dataset}:{rule_id}", []).append(where)
    if not extra:
        return
    by_id = {r.id: r for r in dataset_rules(dataset)}
    for rule_id, parts in extra.items():
        rule = by_id[rule_id]
        found = outcomes.get(rule_id)
        if found is not None and found.error is not None:
            continue  # not evaluated: reported as such
        positions = np.concatenate(
            [found.positions, *parts] if found is not None else parts
        ).astype(np.int64)
        positions.sort()
        outcomes[rule_id] = Outcome(
            rule=rule,
            expectation=found.expectation if found is not None else _expectation_type(rule),
            success=False,
            unexpected_count=len(positions),
            positions=positions,
            observed_value=None,
            error=None,
        )


def _new_verdicts(
    dataset: str,
    known: KnownVerdicts,
    selected: npt.NDArray[np.int64] | None,
    outcomes: dict[str, Outcome],
    rows: int,
) -> NewVerdicts:
    """The cached-kind verdicts of the validated rows that had none."""
    validated = np.zeros(rows, dtype=bool)
    if selected is None:
        validated[:] = True
    else:
        validated[selected] = True
    positions = np.flatnonzero(validated & (known.codes < 0))
    failed: dict[int, list[str]] = {}
    for rule in cached_rules(dataset):
        outcome = outcomes.get(rule.id)
        if outcome is None or outcome.success or outcome.error is not None:
            continue
        for p in outcome.positions.tolist():
            failed.setdefault(p, []).append(short_id(rule))
    verdicts = np.full(len(positions), "", dtype=object)
    if failed:
        where = np.flatnonzero(np.isin(positions, np.fromiter(failed, dtype=np.int64)))
        verdicts[where] = [" ".join(failed[p]) for p in positions[where].tolist()]
    return NewVerdicts(positions, verdicts, rules_fingerprint(dataset))


def _parameters(
    suite: str,
    frame: pd.DataFrame,
    ctx: _Context,
    positions: npt.NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """The suite's expectation parameters for the rows of ``frame`` at
    ``positions`` (None: every row)."""
    params: dict[str, Any] = {
        CUTOFF_PARAMETER: ctx.cutoff,
        FRESH_AFTER_PARAMETER: ctx.fresh_after,
        SPIKE_K_PARAMETER: float(ctx.settings.spike_k),
    }
    if suite in (SNAPSHOT_SUITE, SPIKE_SUITE):
        return params
    for rule in dataset_rules(suite):
        if rule.kind == "reference" and rule.parameter and rule.target:
            valid = ctx.valid_keys.get(rule.target, pd.Index([], dtype="string"))
            if rule.target == LOCATIONS and valid.empty:
                # no valid stock row: the run is blocked anyway, and flagging
                # every row of every table would bury that message
                params[rule.parameter] = []
                continue
            column = frame[rule.columns[0]]
            values = _distinct(column if positions is None else column.iloc[positions])
            params[rule.parameter] = [str(v) for v in values.difference(valid)]
    return params


# --- frames -------------------------------------------------------------------------------


def _contract_frame(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The contract columns of ``frame`` in contract order and dtypes, same index.

    ``frame`` itself when it is exactly that (it is only read), else a new
    frame: the input is never modified."""
    contract = model.CONTRACT[dataset]
    if list(frame.columns) == list(contract) and all(
        _contract_dtype(frame[c].dtype, t) for c, t in contract.items()
    ):
        return frame
    if all(c in frame.columns and _contract_dtype(frame[c].dtype, t) for c, t in contract.items()):
        return frame[list(contract)]
    return model.coerce(dataset, frame)


def _contract_dtype(dtype: Any, contract: str) -> bool:
    """Whether a column of ``dtype`` is in its contract form: the contract's
    dtype, or for text a lean one as a large read gives (a categorical;
    Arrow-backed strings are ``string`` too)."""
    if str(dtype) == contract:
        return True
    return contract == "string" and isinstance(dtype, pd.CategoricalDtype)


def _positional(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the default RangeIndex GX's row positions refer to."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    return frame.reset_index(drop=True)


#: Frames from this many rows are given to GX with :data:`CATEGORICAL_COLUMNS`
#: as categoricals (measured on 1M sales lines: 0.1 s to convert, 0.3-0.5 s
#: saved: GX hashes or scans a string column once per expectation and metric,
#: a categorical's integer codes cost almost nothing).
LARGE_FRAME: Final = 50_000
#: Repetitive string columns worth converting (few distinct values, many checks).
CATEGORICAL_COLUMNS: Final = ("sku", "location_id", "status")


def _gx_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame GX validates: ``frame`` itself, or for a large frame a new one
    with the repetitive string columns as categoricals (same values and
    missing values, same positions)."""
    if len(frame) < LARGE_FRAME:
        return frame
    convert = {
        c: frame[c].astype("category")
        for c in CATEGORICAL_COLUMNS
        if c in frame.columns and str(frame[c].dtype) == "string"
    }
    return frame.assign(**convert) if convert else frame


def _distinct(values: pd.Series) -> pd.Index:
    """The distinct non-missing values (a categorical's: its categories in use,
    found from its codes without hashing the column)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and len(values) >= LARGE_FRAME:
        codes = np.asarray(values.cat.codes)
        used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
        return pd.Index(np.asarray(values.cat.categories)[used])
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


def _rows_part(
    outcome: Outcome,
    rows: pd.DataFrame,
    positions: npt.NDArray[np.int64],
    ctx: _Context,
    extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Quarantine/warning lines for the failing ``rows`` (at input ``positions``)."""
    rule = outcome.rule
    keys = _row_keys(rule.dataset, rows)
    values = keys if len(rule.columns) > 1 else _texts(rows[rule.columns[0]])
    bodies = _reason_bodies(rule, rows, keys, values, ctx, extra or {})
    tail = f" ({rule.hint})" if rule.hint else ""
    if rule.severity == "warn":
        tail += "; the row is kept"
    reasons = [
        f"{rule.dataset} row {p + 1} ({k}): {b}{tail}."
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
            "rule": [rule.id] * n,
        }
    )


def _reason_bodies(
    rule: Rule,
    rows: pd.DataFrame,
    keys: list[str],
    values: list[str],
    ctx: _Context,
    extra: dict[str, Any],
) -> list[str]:
    f = rule.field
    if rule.kind == "not_null":
        kind = _TYPE_NAMES.get(model.CONTRACT[rule.dataset][f], "value")
        article = "an" if kind[0] in "aeiou" else "a"
        scope = " for an active product" if rule.condition else " (required)"
        return [f"{f} is empty or not a valid {kind}; expected {article} {kind}{scope}"] * len(keys)
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
        scope = " for an active product" if rule.condition else ""
        return [f"{f} = {v}; expected {expected}{scope}" for v in values]
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
    if rule.kind == "reference" and rule.target == LOCATIONS:
        return [
            f"{f} = '{v}' has no row in the stock snapshot (stock_levels); expected a location "
            "of a valid stock_levels row: its quantities count at no stocked location"
            for v in values
        ]
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
    if rule.kind == "spike":
        k_sigma = ctx.settings.spike_k
        skus = _texts(rows["sku"])
        locs = _texts(rows["location_id"])
        dates = _texts(rows["ordered_at"])
        return [
            f"{f} = {v} on {day[:10]} is a demand spike: {score:.1f} standard deviations above "
            f"the mean daily demand of {sku} at {loc} ({mean:.4g} a day, standard deviation "
            f"{std:.4g}, over {n} other days with sales); expected at most "
            f"{_text(float(k_sigma))} (qty <= {mean + k_sigma * std:.4g})"
            for v, day, sku, loc, score, mean, std, n in zip(
                values,
                dates,
                skus,
                locs,
                extra["score"].tolist(),
                extra["mean"].tolist(),
                extra["std"].tolist(),
                extra["days"].tolist(),
                strict=True,
            )
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
    else:  # pragma: no cover - every dataset-level rule of a dataset suite is listed above
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
    "GateSettings",
    "validate_snapshot",
]
