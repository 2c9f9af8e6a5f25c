"""Running the gate's suites through Great Expectations 1.x.

One ephemeral GX context per process, created lazily on first use and cached
(:func:`get_engine`): a pandas data source ``replenish``, and per suite one
dataframe asset, one whole-dataframe batch definition and one
:class:`~great_expectations.ExpectationSuite` (added to the context). Each run
is ``batch.validate(suite, ...)``: unlike ``ValidationDefinition.run`` it does
not keep every result in the context's in-memory results store, which would
grow for the life of a long-running worker; the gate returns the results as
JSON instead. Suites are static (see
:mod:`replenish.quality.rules`); what changes per run (the as-of cutoff, the
unknown reference values, the spike threshold k) is passed as expectation
parameters.

Failing rows come from GX itself: ``result_format`` ``COMPLETE`` with
``unexpected_index_list`` on a frame whose index is the default RangeIndex
(positions), with unexpected values and the index query switched off. Should a
GX version ever list fewer positions than it counts, the rule is reported as
not evaluated (blocking) instead of letting unlisted bad rows through.

Two ways to run a suite, chosen by the frame's size (:data:`TWO_PASS_BELOW`):

* a small frame in two passes: every expectation ``BOOLEAN_ONLY``, then each
  failed one alone in ``COMPLETE``. GX's fixed cost per expectation (building
  its metric graph) is most of what a small table costs, and ``BOOLEAN_ONLY``
  needs about half the metrics: a 20-row suite of 13 expectations takes
  0.03 s instead of 0.06 s. Passing expectations then carry no counts in the
  stored result (Data Docs show no observed value for them).
* a large frame in one ``COMPLETE`` pass: re-reading 1M rows for each failed
  expectation costs more than the index lists of the passing ones. Measured
  on 1M sales lines with ~1 % bad rows in five expectations: 0.6–0.9 s for
  the sales suite (two passes: 0.9–1.1 s).

Performance settings (each measured; the figures are in ``docs/data-quality.md``):

* GX fingerprints every pandas batch below 1 GB by hashing all its rows
  (``pandas_data_fingerprint`` in the batch markers): 1.3 s per 1M sales lines.
  The gate does not use the fingerprint, so :data:`DISABLE_GX_FINGERPRINT`
  sets GX's ``HASH_THRESHOLD`` to 0 (process-wide) when the engine is created.
* Progress bars are switched off in the context's variables; analytics are off
  unless ``GX_ANALYTICS_ENABLED`` says otherwise; GX's logger is set to
  WARNING unless the application configured it.
* GX's validation machinery is not documented as thread-safe, so runs are
  serialised by a lock (Prefect may run tasks in threads).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.quality.rules import Rule, suite_rules

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent import PandasDatasource
    from great_expectations.expectations import Expectation

#: Skip GX's per-batch hash of every row (unused by the gate, 1.3 s per 1M rows).
DISABLE_GX_FINGERPRINT: Final = True
#: How many failing row positions of each expectation the stored GX results keep.
STORED_INDEX_LIST: Final = 20
#: Longer ``value_set`` lists are cut to this many values in the stored results.
STORED_VALUE_SET: Final = 50

#: Frames with fewer rows are validated in two passes: every expectation
#: ``BOOLEAN_ONLY``, then each failed one alone in ``COMPLETE`` (GX's fixed
#: cost per expectation halves; on small frames it is all the cost). A large
#: frame is validated once in ``COMPLETE``: re-reading it for each failed
#: expectation would cost more than the single pass.
TWO_PASS_BELOW: Final = 50_000

_BOOLEAN_ONLY: Final = {"result_format": "BOOLEAN_ONLY"}
_RESULT_FORMAT: Final = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}

_ENGINE_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()
_ENGINE: Engine | None = None


@dataclass(frozen=True)
class Outcome:
    """What GX said about one rule."""

    rule: Rule
    expectation: str  # the GX expectation type, e.g. "expect_column_values_to_be_between"
    success: bool
    unexpected_count: int  # GX's count (0 for table-level expectations)
    positions: npt.NDArray[np.int64]  # failing row positions (map expectations)
    observed_value: Any
    error: str | None  # set when GX could not evaluate the expectation


@dataclass(frozen=True)
class SuiteRun:
    suite: str
    success: bool
    outcomes: tuple[Outcome, ...]  # in rule order
    result: dict[str, Any]  # the GX validation result, JSON-able (trimmed, see module doc)
    seconds: float


@dataclass(frozen=True)
class _Prepared:
    batch_definition: BatchDefinition[Any]
    suite: ExpectationSuite
    by_rule: dict[str, Expectation]  # rule id -> its expectation in the suite


class Engine:
    """The process's GX context and the gate's validation definitions."""

    def __init__(self) -> None:
        started = time.perf_counter()
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        gx_logger = logging.getLogger("great_expectations")
        if gx_logger.level == logging.NOTSET:
            gx_logger.setLevel(logging.WARNING)

        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        if DISABLE_GX_FINGERPRINT:
            from great_expectations.execution_engine import pandas_execution_engine

            if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
                pandas_execution_engine.HASH_THRESHOLD = 0

        self.context: AbstractDataContext = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        self._datasource: PandasDatasource = self.context.data_sources.add_pandas("replenish")
        self._prepared_suites: dict[str, _Prepared] = {}
        #: seconds spent importing GX and creating the context
        self.created_in = time.perf_counter() - started

    def _prepared(self, suite_name: str, rules: tuple[Rule, ...]) -> _Prepared:
        prepared = self._prepared_suites.get(suite_name)
        if prepared is None:
            import great_expectations as gx

            asset = self._datasource.add_dataframe_asset(suite_name)
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
            suite = self.context.suites.add(
                gx.ExpectationSuite(
                    name=f"replenish.{suite_name}",
                    expectations=[r.to_expectation() for r in rules],
                )
            )
            by_rule = {(e.meta or {})["rule"]: e for e in suite.expectations}
            prepared = _Prepared(batch_definition, suite, by_rule)
            self._prepared_suites[suite_name] = prepared
        return prepared

    def run(self, suite_name: str, frame: pd.DataFrame, parameters: dict[str, Any]) -> SuiteRun:
        """Validate ``frame`` (RangeIndex) against the suite ``suite_name``."""
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
            raise ValueError("the gate validates frames with a default RangeIndex only")
        rules = suite_rules(suite_name)
        needed = {r.parameter for r in rules if r.parameter}
        started = time.perf_counter()
        with _RUN_LOCK:
            prepared = self._prepared(suite_name, rules)
            batch = prepared.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            params = {k: v for k, v in parameters.items() if k in needed}
            two_pass = len(frame) < TWO_PASS_BELOW
            result = batch.validate(
                prepared.suite,
                result_format=_BOOLEAN_ONLY if two_pass else _RESULT_FORMAT,
                expectation_parameters=params,
            )
            if two_pass:  # the failing rows of the failed expectations only
                for i, er in enumerate(result.results):
                    if not er.success and er.expectation_config is not None:
                        expectation = prepared.by_rule[(er.expectation_config.meta or {})["rule"]]
                        result.results[i] = batch.validate(
                            expectation, result_format=_RESULT_FORMAT, expectation_parameters=params
                        )
        by_rule = {
            (r.expectation_config.meta or {}).get("rule"): r
            for r in result.results
            if r.expectation_config is not None
        }
        outcomes = []
        for rule in rules:
            er = by_rule[rule.id]
            res = er.result or {}
            error = _exception_message(er.exception_info)
            if (
                error is None
                and not er.success
                and rule.lists_rows
                and "unexpected_count" not in res
            ):
                error = "GX returned no result"
            index_list = res.get("unexpected_index_list") or []
            positions = np.asarray(index_list, dtype=np.int64)
            count = int(res.get("unexpected_count") or 0)
            if error is None and rule.lists_rows and not er.success and len(positions) != count:
                error = f"GX counted {count} unexpected rows but listed {len(positions)}"
            if len(index_list) > STORED_INDEX_LIST:
                res["unexpected_index_list"] = index_list[:STORED_INDEX_LIST]
                res["unexpected_index_list_truncated"] = True
            outcomes.append(
                Outcome(
                    rule=rule,
                    expectation=er.expectation_config.type if er.expectation_config else "",
                    success=bool(er.success),
                    unexpected_count=count,
                    positions=positions,
                    observed_value=res.get("observed_value"),
                    error=error,
                )
            )
        payload = _trim(result.to_json_dict())
        return SuiteRun(
            suite=suite_name,
            success=bool(result.success),
            outcomes=tuple(outcomes),
            result=payload,
            seconds=time.perf_counter() - started,
        )


def _exception_message(info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation.

    GX reports either one flat ``{"raised_exception": ..., "exception_message":
    ...}`` or, when a metric failed, ``{metric id: ExceptionInfo}``."""
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        return str(info.get("exception_message") or "unknown error")
    items = info.values() if isinstance(info, dict) else [info]
    messages = []
    for item in items:
        message = (
            item.get("exception_message")
            if isinstance(item, dict)
            else getattr(item, "exception_message", None)
        )
        messages.append(str(message or "unknown error"))
    return "; ".join(sorted(set(messages))) if messages else None


def _trim(payload: dict[str, Any]) -> dict[str, Any]:
    """Cut long ``value_set`` lists in a JSON validation result (in place)."""
    for er in payload.get("results", []):
        kwargs = (er.get("expectation_config") or {}).get("kwargs") or {}
        values = kwargs.get("value_set")
        if isinstance(values, list) and len(values) > STORED_VALUE_SET:
            kwargs["value_set"] = values[:STORED_VALUE_SET]
            kwargs["value_set_size"] = len(values)
    return payload


def get_engine() -> Engine:
    """The process's GX engine, created on first use."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = Engine()
    return _ENGINE


def warm_up() -> threading.Thread:
    """Create the process's GX engine in a background thread, now.

    Importing Great Expectations and creating its context takes ~5 s of
    Python; the nightly extract task calls this first, so that they overlap
    the extraction's database reads instead of starting the validation. A
    failure is left to the gate: it creates the engine again and reports the
    error there. Returns the (daemon) thread."""
    thread = threading.Thread(target=_warm, name="replenish-gx-warm-up", daemon=True)
    thread.start()
    return thread


def _warm() -> None:
    try:
        get_engine()
    except Exception:  # the gate's own get_engine() raises it where it is reported
        logging.getLogger(__name__).debug("GX warm-up failed", exc_info=True)


def gx_lock() -> threading.Lock:
    """The lock every use of GX in the process holds (validations, Data Docs)."""
    return _RUN_LOCK


def gx_context() -> AbstractDataContext:
    """The GX context the gate validates with (e.g. to build Data Docs)."""
    return get_engine().context
