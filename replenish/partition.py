"""Split per-SKU work into partitions, and merge the partitions' results.

A nightly run's forecast and plan are per series (SKU × location), so a large
shop can be cut into ``n`` partitions of SKUs, each forecast and planned on
its own (a thread, a process, a Dask worker), and the results put back
together. docs/operations.md tells how to configure it; this module is the
pure part: which SKU goes where, the slices of the snapshot each partition
needs, and the merge.

Assignment (:class:`Partitioner`): partition = CRC-32 of the SKU's UTF-8
text mod ``n`` — stable across runs, processes, machines and Python versions
(unlike ``hash()``), and every row of a SKU (all its locations) lands in the
same partition. One exception: every SKU named in the ``promotions`` table
goes to partition 0, because a SKU without promotion history of its own gets
the uplift *pooled* over all promoted SKUs
(:func:`replenish.forecast.promotions.learn_uplift`), which is only the
same when all of them are forecast together.

What is not per SKU, and how the partitioned result stays identical to the
unpartitioned one (tests/unit/test_partition.py asserts frame equality):

* ABC classes rank a SKU's annual value among *all* SKUs: each partition
  computes :func:`replenish.policy.plan.sku_values`, the union gives
  :func:`replenish.policy.plan.abc_by_sku`, and each partition's
  ``build_plans`` receives it (``sku_abc``).
* Lead times are pooled per supplier over its SKUs when a SKU has too few
  receipts (:func:`replenish.policy.leadtime.learn_lead_times`), and the
  supplier's on-time rate counts all its receipts: both are computed once on
  the whole snapshot (:func:`shared_plan_inputs`) and handed to the
  partitions.
* The supplier minimum-order-value top-up groups order lines per supplier
  across SKUs: it runs at publication, on the merged plans.

Slices are small on purpose (a Dask worker receives them pickled): a forecast
slice holds only the tables the forecast reads, a plan slice only those the
plan reads, its sales lines reduced to the open ones
(:data:`FORECAST_TABLES`, :data:`PLAN_TABLES`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.forecast.result import Forecast
from replenish.model import ErpSnapshot, empty_frame
from replenish.policy.assemble import _normalised_in
from replenish.policy.leadtime import learn_lead_times, supplier_on_time

__all__ = [
    "FORECAST_TABLES",
    "MIN_SERIES_TO_PARTITION",
    "PLAN_TABLES",
    "SERIES_PER_PARTITION",
    "Partitioner",
    "SharedPlanInputs",
    "default_partitions",
    "merge_forecasts",
    "merge_plans",
    "shared_plan_inputs",
]

IntArray = npt.NDArray[np.int64]

#: Below this many series a run is not split (the split costs more than it saves).
MIN_SERIES_TO_PARTITION = 20_000
#: Series per partition aimed at by :func:`default_partitions`.
SERIES_PER_PARTITION = 50_000

#: Tables the forecast reads (tasks.plan.forecast): sales, stock-outs, returns, promotions.
FORECAST_TABLES = ("sales_order_lines", "stock_history", "returns", "promotions")
#: Tables the plan reads (replenish.policy.assemble); sales lines: the open ones only.
PLAN_TABLES = (
    "suppliers",
    "products",
    "supplier_products",
    "stock_levels",
    "purchase_orders",
    "purchase_order_lines",
    "sales_order_lines",
)


def default_partitions(n_series: int, workers: int = 1) -> int:
    """Partitions for ``n_series`` series: 1 below :data:`MIN_SERIES_TO_PARTITION`,
    else ``ceil(n_series / SERIES_PER_PARTITION)`` and at least ``workers``
    (one partition per Dask worker, so none sits idle)."""
    if n_series < MIN_SERIES_TO_PARTITION:
        return 1
    return max(int(workers), math.ceil(n_series / SERIES_PER_PARTITION), 1)


def _crc32_partition(text: str, n: int) -> int:
    return zlib.crc32(text.encode("utf-8")) % n


@dataclass(frozen=True)
class Partitioner:
    """Which partition each SKU belongs to.

    Attributes:
        n: number of partitions (>= 1).
        together: SKUs kept together in partition 0 (the promoted ones, see
            the module docstring).
    """

    n: int
    together: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"partitions must be an integer >= 1, got {self.n!r}")

    @classmethod
    def for_snapshot(cls, snapshot: ErpSnapshot, n: int) -> Partitioner:
        """The partitioner of a run: ``n`` partitions, the SKUs of
        ``snapshot.promotions`` together."""
        promoted = snapshot.promotions["sku"].dropna()
        return cls(n, frozenset(str(s) for s in pd.unique(promoted)))

    def partition(self, sku: str) -> int:
        """The partition of one SKU."""
        return 0 if sku in self.together else _crc32_partition(sku, self.n)

    def of(self, skus: pd.Series) -> IntArray:
        """The partition of each value of a SKU column (a missing SKU: 0).

        Hashes the distinct values only (a sales history repeats each SKU
        thousands of times)."""
        return self._of(skus).astype(np.int64)

    def _of(self, skus: pd.Series) -> npt.NDArray[np.signedinteger[Any]]:
        """:meth:`of` in the smallest integer type that holds ``n`` (one or
        two bytes a row for a long sales history; a categorical column's own
        codes are read, not copied)."""
        if isinstance(skus.dtype, pd.CategoricalDtype):
            codes = np.asarray(skus.cat.codes.to_numpy())
            uniques = np.asarray(skus.cat.categories, dtype=object)
        else:
            codes, found = pd.factorize(skus)
            uniques = np.asarray(found, dtype=object)
        small = np.int8 if self.n <= 127 else np.int16 if self.n <= 32767 else np.int64
        per_code = np.zeros(len(uniques) + 1, dtype=small)  # code -1 (missing): the last, 0
        per_code[:-1] = np.fromiter(
            (self.partition(str(u)) for u in uniques), dtype=np.int64, count=len(uniques)
        )
        return np.asarray(per_code[codes])

    def split(self, frame: pd.DataFrame) -> list[pd.DataFrame]:
        """``frame`` (with a ``sku`` column) cut into ``n`` frames; row order
        within each partition is kept (so "the last row of a key wins" reads
        the same), the index is reset."""
        if self.n == 1:
            return [frame.reset_index(drop=True)]
        part = self._of(frame["sku"])
        return [frame.take(np.flatnonzero(part == k)).reset_index(drop=True) for k in range(self.n)]

    def split_snapshot(
        self, snapshot: ErpSnapshot, tables: Collection[str] | None = None
    ) -> list[ErpSnapshot]:
        """One snapshot per partition.

        Tables with a ``sku`` column are split; ``purchase_orders`` keeps the
        orders that a partition's ``purchase_order_lines`` refer to; other
        tables (``suppliers``) are whole in every partition. Tables not in
        ``tables`` (default: all) are left empty. ``sales_order_lines`` of a
        slice that leaves out the forecast's tables (a :data:`PLAN_TABLES`
        slice) keep only the open lines, all the plan reads of them.
        """
        wanted = set(snapshot.tables()) if tables is None else set(tables)
        unknown = wanted - set(snapshot.tables())
        if unknown:
            raise ValueError(f"unknown snapshot tables: {sorted(unknown)}")
        plan_only = "sales_order_lines" in wanted and not wanted & {
            "stock_history",
            "returns",
            "promotions",
        }
        parts: list[dict[str, pd.DataFrame]] = [{} for _ in range(self.n)]
        for name, frame in snapshot.tables().items():
            if name not in wanted:
                for p in parts:
                    p[name] = empty_frame(name)
                continue
            if name == "sales_order_lines" and plan_only:
                frame = frame[_normalised_in(frame["status"], {"open"})]
            if "sku" in frame.columns:
                for p, piece in zip(parts, self.split(frame), strict=True):
                    p[name] = piece
            elif name != "purchase_orders":
                for p in parts:
                    p[name] = frame
        if "purchase_orders" in wanted:
            po = snapshot.purchase_orders
            for p in parts:
                lines = p.get("purchase_order_lines")
                if lines is None:  # no lines asked for: every order
                    p["purchase_orders"] = po
                else:
                    keep = po["po_id"].isin(pd.unique(lines["po_id"].dropna()))
                    p["purchase_orders"] = po[keep.to_numpy()].reset_index(drop=True)
        return [ErpSnapshot(**p) for p in parts]


class SharedPlanInputs(NamedTuple):
    """The plan inputs computed over all SKUs at once (module docstring).

    Attributes:
        lead_times: :func:`~replenish.policy.leadtime.learn_lead_times`.
        on_time: :func:`~replenish.policy.leadtime.supplier_on_time`.
    """

    lead_times: pd.DataFrame
    on_time: pd.DataFrame


def shared_plan_inputs(snapshot: ErpSnapshot) -> SharedPlanInputs:
    """Lead times and supplier on-time rates over the whole snapshot."""
    lead_times = learn_lead_times(
        snapshot.purchase_orders,
        snapshot.purchase_order_lines,
        snapshot.supplier_products,
        snapshot.suppliers,
    )
    on_time = supplier_on_time(snapshot.purchase_orders, snapshot.purchase_order_lines)
    return SharedPlanInputs(lead_times, on_time)


def _key_order(frame: pd.DataFrame) -> IntArray:
    """Positions sorting ``frame`` by sku, then location_id (as text, stable)."""
    sku = frame["sku"].astype("string").to_numpy(dtype=object, na_value="")
    loc = frame["location_id"].astype("string").to_numpy(dtype=object, na_value="")
    return np.asarray(np.lexsort((loc, sku)), dtype=np.int64)


def merge_plans(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' plans as one frame sorted by sku, location_id (what
    :func:`~replenish.policy.plan.build_plans` returns for all SKUs at once)."""
    if not parts:
        raise ValueError("merge_plans needs at least one partition's plans")
    filled = [p for p in parts if len(p)] or [parts[0]]
    merged = pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0]
    return merged.take(_key_order(merged)).reset_index(drop=True)


def merge_forecasts(parts: Sequence[Forecast]) -> Forecast:
    """The partitions' forecasts as one, rows sorted by sku, location_id (the
    order of :func:`~replenish.forecast.forecast_demand` on all series).

    Raises:
        ValueError: the forecasts start on different days or have different
            horizons.
    """
    if not parts:
        raise ValueError("merge_forecasts needs at least one partition's forecast")
    starts = {p.start for p in parts}
    horizons = {p.path.shape[1] for p in parts}
    if len(starts) > 1 or len(horizons) > 1:
        raise ValueError(
            f"partition forecasts differ: starts {sorted(starts)}, horizons {sorted(horizons)}"
        )
    filled = [p for p in parts if len(p.frame)] or [parts[0]]
    frame = pd.concat([p.frame for p in filled], ignore_index=True)
    path = np.concatenate([p.path for p in filled], axis=0)
    order = _key_order(frame)
    return Forecast(
        frame=frame.take(order).reset_index(drop=True), path=path[order], start=parts[0].start
    )
