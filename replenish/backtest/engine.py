"""The replay: run the real policy day by day over past sales, beside a baseline.

Usage::

    result = backtest_erp("sqlite:///shop.db", BacktestConfig(start, end))
    print(format_table(result))            # replenish.backtest.report

Each day t of [start, end], for every stock-replenished series (sku ×
location of an active ``'stock'`` product with a supplier):

1. **Plan** with only what was known on t: the forecast fitted on the sales
   before the last refit day (every ``refit_every`` days; in between its
   daily path is shifted to start on t), lead times learned from the ERP's
   receipts received before that refit day, and a snapshot assembled from the
   simulated state — ``stock_levels`` = simulated on hand (allocated 0),
   ``purchase_orders``/``purchase_order_lines`` = the simulated open orders
   plus the ERP's historical receipts known on t, products, suppliers and
   supplier_products as in the ERP. The real :func:`build_plans` decides.
2. **Order** every ``order_qty > 0``. Its lead time is drawn from the
   suppliers' receipt history (:mod:`replenish.backtest.supply`); it is on
   hand on the morning of t + L.
3. **Receive** the orders due on t (before the day's sales).
4. **Serve** the day's demand — the sales recorded in the ERP on t — from on
   hand; what cannot be served is lost (no backorders).

The baseline (:mod:`replenish.backtest.baseline`) is replayed in the same
loop with the same demand and the same lead-time draws: the k-th order of a
series gets the same lead time under both (common random numbers).

Initial stock, the same for both: the policy's mid-cycle stock position at
the start — its reorder level (ROP; S − d·R/2 under periodic review) plus
half its order quantity (the plan's ``cycle_qty``, else the EOQ rounded to
MOQ and pack) — from a plan computed on the start day, rounded up to whole
units, with nothing on order.

Assumptions (see docs/backtest.md): recorded sales are the demand (they are
censored by the shop's own past stock-outs, so demand is understated on
those days for both replays alike); returns are not replayed; ``'jit'``
series are not replayed (made to order: their service is a customer's wait,
not a stock-out); supplier minimum order values and order weekdays are
applied only as far as :func:`build_plans` applies them.

The per-day loop runs over days only: every step handles all series at once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.backtest.accuracy import AccuracyCollector
from replenish.backtest.baseline import MinMaxBaseline
from replenish.backtest.frontier import DEFAULT_SAFETY_DAYS, equal_service
from replenish.backtest.metrics import Trajectory, service_metrics
from replenish.backtest.supply import LeadTimeDraws, empirical_lead_times
from replenish.errors import ConfigurationError, ReplenishError
from replenish.forecast import daily_demand, forecast_demand
from replenish.forecast.demand import DemandHistory
from replenish.forecast.result import Forecast
from replenish.model import CANCELLED_SALES_STATUSES, ErpSnapshot, empty_frame
from replenish.policy import (
    DEFAULT_SETTINGS,
    PlanSettings,
    build_plans,
    learn_lead_times,
    round_order_qty,
)

__all__ = [
    "ABC_CLASSES",
    "BacktestConfig",
    "BacktestDataError",
    "BacktestResult",
    "backtest_erp",
    "run_backtest",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ABC_CLASSES = ("A", "B", "C")
_KEYS = ["sku", "location_id"]
_DAY = pd.Timedelta(days=1)


class BacktestDataError(ReplenishError):
    """The ERP has nothing to replay (no sales, no stock-replenished series)."""


@dataclass(frozen=True)
class BacktestConfig:
    """What to replay and how.

    Attributes:
        start, end: the first and last replayed day (inclusive).
        refit_every: days between forecast (and lead-time) refits.
        history_days: the forecast's history window (the nightly flow's
            default, 730); capped at the sales history the ERP has.
        review_days: the baseline's max = min + d · review_days.
        seed: seed of the lead-time draws.
        service_level: when set, the target cycle service level of every SKU
            (beats the ABC classes and ``products.service_level``).
        plan_settings: the policy's settings (service levels per class, order
            cost, holding cost, review period, ...).
        accuracy_horizon: days ahead scored from each refit origin.
        min_receipts: receipts needed to draw from a pair's or a supplier's
            own history (:mod:`replenish.backtest.supply`).
        min_history_days: days of sales needed before ``start``.
        frontier_safety_days: the grid of safety days s of the padded
            min/max rule replayed beside (min = d·(L + s)), to compare stock
            at equal service (:mod:`replenish.backtest.frontier`); empty:
            no frontier.
    """

    start: date
    end: date
    refit_every: int = 7
    history_days: int = 730
    review_days: float = 14.0
    seed: int = 0
    service_level: float | None = None
    plan_settings: PlanSettings = DEFAULT_SETTINGS
    accuracy_horizon: int = 7
    min_receipts: int = 3
    min_history_days: int = 28
    frontier_safety_days: tuple[float, ...] = DEFAULT_SAFETY_DAYS

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigurationError(
                f"backtest: end {self.end} is before start {self.start}: "
                "give a window of at least one day"
            )
        if self.refit_every < 1:
            raise ConfigurationError(
                f"backtest: refit every must be >= 1 day, got {self.refit_every}"
            )
        if self.min_history_days < 8:
            raise ConfigurationError("backtest: min_history_days must be >= 8")
        if self.history_days < self.min_history_days:
            raise ConfigurationError(
                f"backtest: history_days must be >= {self.min_history_days}, "
                f"got {self.history_days}"
            )
        grid = tuple(float(x) for x in self.frontier_safety_days)
        if any(not x >= 0 for x in grid) or list(grid) != sorted(set(grid)):
            raise ConfigurationError(
                "backtest: frontier safety days must be distinct, increasing and >= 0, "
                f"got {self.frontier_safety_days}"
            )
        if not self.review_days >= 0:
            raise ConfigurationError(f"backtest: review_days must be >= 0, got {self.review_days}")
        if self.service_level is not None and not 0 < self.service_level < 1:
            raise ConfigurationError(
                f"backtest: service level must be strictly between 0 and 1 (e.g. 0.95), "
                f"got {self.service_level}"
            )
        if self.accuracy_horizon < 1:
            raise ConfigurationError("backtest: accuracy_horizon must be >= 1")

    @property
    def days(self) -> int:
        """Days replayed."""
        return (self.end - self.start).days + 1

    @property
    def read_days(self) -> int:
        """Days of history to read from the ERP, ending on ``end``."""
        return self.days + self.history_days


@dataclass(frozen=True)
class BacktestResult:
    """The outcome of a backtest.

    Attributes:
        policy, baseline: service and stock metrics, overall and
            ``by_class`` (:func:`replenish.backtest.metrics.service_metrics`).
        forecast_accuracy: see :mod:`replenish.backtest.accuracy`.
        parameters: what was replayed and how (JSON-ready).
        series: one row per replayed series: its class, target, the start
            plan (demand_mean, lead_time_mean, safety_stock, reorder_point,
            eoq), initial stock, baseline min/max, true lead times, and per
            replay fill rate, average stock, orders and stockout days.
        orders: one row per order placed by either replay: replay ('policy'
            or 'baseline'), sku, location_id, placed (date), lead_time_days
            (drawn), arrival (date; after ``end`` when it did not arrive in
            the window), qty, position (stock position just before the
            order: on hand + on order).
    """

    policy: dict[str, Any]
    baseline: dict[str, Any]
    forecast_accuracy: dict[str, Any]
    parameters: dict[str, Any]
    series: pd.DataFrame = field(repr=False)
    orders: pd.DataFrame = field(repr=False)
    equal_service: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``replenish backtest --format json``)."""
        return {
            "policy": self.policy,
            "baseline": self.baseline,
            "equal_service": self.equal_service,
            "forecast_accuracy": self.forecast_accuracy,
            "parameters": self.parameters,
        }


# ---------------------------------------------------------------- entry points


def backtest_erp(url: str, config: BacktestConfig) -> BacktestResult:
    """Read the ERP's history once (generic profile) and replay it.

    ``GenericErp(url).read_snapshot(end, history_days=config.read_days)``:
    everything known on the evening of ``end``, back to the start of the
    forecast's history window before ``start``.
    """
    from replenish.sources.db import safe_url
    from replenish.sources.generic import GenericErp

    erp = GenericErp(url)
    try:
        snapshot = erp.read_snapshot(config.end, history_days=config.read_days)
    finally:
        erp.engine.dispose()
    result = run_backtest(snapshot, config)
    return dataclasses.replace(result, parameters={"erp": safe_url(url), **result.parameters})


def run_backtest(snapshot: ErpSnapshot, config: BacktestConfig) -> BacktestResult:
    """Replay the policy and the baseline over ``[config.start, config.end]``
    on the history in ``snapshot`` (module docstring). Pure: reads nothing.

    Raises:
        ConfigurationError: the window is not covered by the sales history.
        BacktestDataError: no sales, or no stock-replenished series.
    """
    clock = time.perf_counter()
    return _Replay(snapshot, config).run(clock)


# -------------------------------------------------------------------- helpers


def _series_index(keys: pd.DataFrame, frame: pd.DataFrame) -> IntArray:
    """Position in ``keys`` (sku, location_id) of each row of ``frame``; -1 if absent."""
    target = pd.MultiIndex.from_arrays(
        [keys["sku"].astype("string"), keys["location_id"].astype("string")]
    )
    rows = pd.MultiIndex.from_arrays(
        [frame["sku"].astype("string"), frame["location_id"].astype("string")]
    )
    return np.asarray(target.get_indexer(rows), dtype=np.int64)


def _aligned(index: IntArray, values: npt.NDArray[Any], n: int, fill: Any) -> npt.NDArray[Any]:
    """Rows of ``values`` placed at ``index`` (-1: dropped) in an n-row array."""
    out = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
    found = index >= 0
    out[index[found]] = values[found]
    return out


def _num(values: Any) -> FloatArray:
    return np.asarray(
        pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        ),
        dtype=np.float64,
    )


def _frame_of(fc: Any) -> pd.DataFrame:
    return fc.frame if isinstance(fc, Forecast) else fc


def _shifted(fc: Any, offset: int, day: date) -> Any:
    """The forecast of a refit ``offset`` days ago, as seen on ``day``: its
    path shifted to start on ``day`` (a frame without path is unchanged)."""
    if offset == 0 or not isinstance(fc, Forecast) or fc.path.shape[1] == 0:
        return fc
    skip = min(offset, fc.path.shape[1] - 1)
    return dataclasses.replace(fc, path=fc.path[:, skip:], start=day)


def _daily_path(fc: Any, horizon: int) -> tuple[pd.DataFrame, FloatArray]:
    """Our forecast of the next ``horizon`` days per row of the frame."""
    frame = _frame_of(fc)
    if isinstance(fc, Forecast) and fc.path.shape[1] > 0:
        path = np.asarray(fc.path[:, :horizon], dtype=np.float64)
        if path.shape[1] < horizon:
            pad = np.repeat(path[:, -1:], horizon - path.shape[1], axis=1)
            path = np.concatenate([path, pad], axis=1)
    else:
        mean = _num(frame["demand_mean"])
        path = np.repeat(mean[:, None], horizon, axis=1)
    return frame, path


def _first_sale_day(sales: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    status = sales["status"].astype("string").str.strip().str.lower()
    counted = ~status.isin(CANCELLED_SALES_STATUSES).fillna(False).to_numpy(dtype=bool)
    qty = pd.to_numeric(sales["qty"], errors="coerce")
    stamps = sales["ordered_at"][counted & (qty > 0).fillna(False).to_numpy(dtype=bool)]
    stamps = stamps.dropna()
    if stamps.empty:
        return None
    return stamps.min().normalize(), stamps.max().normalize()


# -------------------------------------------------------------------- the replay


@dataclass
class _Pipeline:
    """Orders placed by one replay (parallel arrays, one entry per order)."""

    series: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    qty: FloatArray = field(default_factory=lambda: np.zeros(0))
    placed: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    arrival: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    expected: FloatArray = field(default_factory=lambda: np.zeros(0))
    position: FloatArray = field(default_factory=lambda: np.zeros(0))

    def add(
        self,
        series: IntArray,
        qty: FloatArray,
        day: int,
        lead: IntArray,
        expected: FloatArray,
        position: FloatArray,
    ) -> None:
        self.series = np.concatenate([self.series, series])
        self.qty = np.concatenate([self.qty, qty])
        self.placed = np.concatenate([self.placed, np.full(len(series), day, np.int64)])
        self.arrival = np.concatenate([self.arrival, day + lead])
        self.expected = np.concatenate([self.expected, day + expected])
        self.position = np.concatenate([self.position, position])


class _Replay:
    """Prepared inputs and state of one backtest (see the module docstring)."""

    def __init__(self, snapshot: ErpSnapshot, config: BacktestConfig) -> None:
        self.snap = snapshot
        self.config = config
        self.settings = config.plan_settings
        self.start = pd.Timestamp(config.start)
        self.n_days = config.days
        span = _first_sale_day(snapshot.sales_order_lines)
        if span is None:
            raise BacktestDataError("backtest: the ERP has no sales to replay")
        self.first_day, last_day = span
        before = (self.start - self.first_day).days
        if before < config.min_history_days:
            raise ConfigurationError(
                f"backtest: start {config.start} leaves {max(before, 0)} days of sales history "
                f"(the first sale is on {self.first_day.date()}); the forecast needs at least "
                f"{config.min_history_days}: start on "
                f"{(self.first_day + config.min_history_days * _DAY).date()} or later"
            )
        if last_day < pd.Timestamp(config.end):
            raise ConfigurationError(
                f"backtest: end {config.end} is after the last recorded sale "
                f"({last_day.date()}): end on or before it"
            )
        self._prepare_history()

    # -- data known on a day

    def _prepare_history(self) -> None:
        snap = self.snap
        pol = snap.purchase_order_lines
        pol = pol[pol["received_at"].notna() & (_num(pol["qty_received"]) > 0)]
        self.hist_lines = pol.sort_values("received_at", kind="stable", ignore_index=True)
        received_po = self.hist_lines["po_id"].unique()
        po = snap.purchase_orders
        po = po[po["po_id"].isin(received_po).to_numpy() & po["ordered_at"].notna().to_numpy()]
        # history: received, never on order in the replay (only simulated orders are)
        self.hist_po = po.assign(status=pd.array(["received"] * len(po), dtype="string"))
        self.hist_po = self.hist_po.sort_values("ordered_at", kind="stable", ignore_index=True)
        self._received_at = self.hist_lines["received_at"].to_numpy(dtype="datetime64[ns]")
        self._ordered_at = self.hist_po["ordered_at"].to_numpy(dtype="datetime64[ns]")
        self.empty_sales = empty_frame("sales_order_lines")
        self.empty_returns = empty_frame("returns")
        self.empty_stock_history = empty_frame("stock_history")

    def _known_receipts(self, day: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The ERP's purchase orders and received lines known on ``day``."""
        cut = day.to_datetime64().astype("datetime64[ns]")
        n_lines = int(np.searchsorted(self._received_at, cut, side="left"))
        n_po = int(np.searchsorted(self._ordered_at, cut, side="left"))
        return self.hist_po.iloc[:n_po], self.hist_lines.iloc[:n_lines]

    def _history(self, day: pd.Timestamp) -> DemandHistory:
        days = min(self.config.history_days, (day - self.first_day).days)
        return daily_demand(
            self.snap.sales_order_lines,
            day.date(),
            history_days=days,
            stock_history=self.snap.stock_history,
        )

    def _snapshot(
        self, day: pd.Timestamp, keys: pd.DataFrame, on_hand: FloatArray, pipe: _Pipeline | None
    ) -> ErpSnapshot:
        """The ERP as the policy would see it on ``day`` in the simulated world."""
        stock = pd.DataFrame(
            {
                "sku": keys["sku"].to_numpy(),
                "location_id": keys["location_id"].to_numpy(),
                "on_hand": on_hand,
                "allocated": np.zeros(len(keys)),
                "as_of": np.full(len(keys), day.to_datetime64(), dtype="datetime64[ns]"),
            }
        ).astype({"sku": "string", "location_id": "string"})
        hist_po, hist_lines = self._known_receipts(day)
        po, lines = hist_po, hist_lines
        if pipe is not None:
            k = (day - self.start).days
            open_ = np.flatnonzero(pipe.arrival >= k)
            if open_.size:
                sim_po, sim_lines = self._open_orders(pipe, open_, keys)
                po = pd.concat([hist_po, sim_po], ignore_index=True)
                lines = pd.concat([hist_lines, sim_lines], ignore_index=True)
        return ErpSnapshot(
            suppliers=self.snap.suppliers,
            products=self.snap.products,
            supplier_products=self.snap.supplier_products,
            stock_levels=stock,
            purchase_orders=po,
            purchase_order_lines=lines,
            # the replay serves or loses each day's demand on the day: no
            # customer order is ever open (and the forecast reads the sales
            # history itself, through daily_demand)
            sales_order_lines=self.empty_sales,
            returns=self.empty_returns,
            stock_history=self.empty_stock_history,
            promotions=self.snap.promotions,
        )

    def _open_orders(
        self, pipe: _Pipeline, idx: IntArray, keys: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The simulated open orders as ERP purchase orders, one line each."""
        series = pipe.series[idx]
        po_id = ("BT-" + pd.Series(idx).astype(str).str.zfill(6)).astype("string").array
        start = self.start.to_datetime64()
        ordered = start + (pipe.placed[idx] * 86_400).astype("timedelta64[s]")
        expected = start + np.rint(pipe.expected[idx] * 86_400).astype(np.int64).astype(
            "timedelta64[s]"
        )
        po = pd.DataFrame(
            {
                "po_id": po_id,
                "supplier_id": pd.array(self.supplier[series], dtype="string"),
                "location_id": keys["location_id"].to_numpy()[series],
                "status": pd.array(["sent"] * len(idx), dtype="string"),
                "ordered_at": ordered.astype("datetime64[ns]"),
                "expected_at": expected.astype("datetime64[ns]"),
            }
        ).astype({"location_id": "string"})
        lines = pd.DataFrame(
            {
                "po_id": po_id,
                "line_no": pd.array(np.ones(len(idx), dtype=np.int64), dtype="Int64"),
                "sku": keys["sku"].to_numpy()[series],
                "qty_ordered": pipe.qty[idx],
                "qty_received": np.zeros(len(idx)),
                "received_at": np.full(len(idx), np.datetime64("NaT"), dtype="datetime64[ns]"),
            }
        ).astype({"sku": "string"})
        return po[list(self.hist_po.columns)], lines[list(self.hist_lines.columns)]

    # -- the run

    def _plan_settings(self, skus: pd.Series) -> PlanSettings:
        level = self.config.service_level
        if level is None:
            return self.settings
        return dataclasses.replace(
            self.settings,
            service_levels=dict.fromkeys(ABC_CLASSES, level),
            service_level_overrides=dict.fromkeys(skus.astype(str).unique(), level),
        )

    def _refit(self, day: pd.Timestamp) -> tuple[DemandHistory, Any, pd.DataFrame]:
        history = self._history(day)
        fc: Any = forecast_demand(history, promotions=self.snap.promotions, as_of=day.date())
        po, lines = self._known_receipts(day)
        lead_times = learn_lead_times(
            po,
            lines,
            self.snap.supplier_products,
            self.snap.suppliers,
            min_receipts=self.config.min_receipts,
        )
        return history, fc, lead_times

    def _candidates(self, window: DemandHistory, start_history: DemandHistory) -> pd.DataFrame:
        """Every sku × location with stock or sales around the window."""
        stock = self.snap.stock_levels[_KEYS].astype("string").dropna()
        keys = pd.concat(
            [
                stock,
                window.keys[_KEYS].astype("string"),
                start_history.keys[_KEYS].astype("string"),
            ],
            ignore_index=True,
        )
        return keys.drop_duplicates().sort_values(_KEYS, ignore_index=True)

    def _select_series(
        self, plans0: pd.DataFrame, candidates: pd.DataFrame
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        """The start plan's rows that are replayed (active 'stock' products
        with a supplier), and how many candidates were left out and why."""
        in_candidates = _series_index(candidates, plans0) >= 0
        mode = plans0["replenishment_mode"].astype("string").fillna("")
        has_supplier = plans0["supplier_id"].notna().to_numpy()
        stocked = (mode == "stock").to_numpy(dtype=bool) & has_supplier & in_candidates
        excluded = {
            "jit": int(((mode == "jit").to_numpy(dtype=bool) & in_candidates).sum()),
            "no_supplier": int((~has_supplier & in_candidates).sum()),
            "inactive_or_unknown_product": int(len(candidates) - in_candidates.sum()),
        }
        p0 = plans0[stocked].reset_index(drop=True)
        if p0.empty:
            raise BacktestDataError(
                "backtest: no series to replay (no active 'stock' product with a supplier)"
            )
        return p0, excluded

    def _unit_cost(self, keys: pd.DataFrame, p0: pd.DataFrame) -> FloatArray:
        """products.unit_cost, the preferred supplier's price where unknown."""
        products = self.snap.products.drop_duplicates("sku", keep="last")
        cost_map = dict(zip(products["sku"].astype(str), _num(products["unit_cost"]), strict=True))
        cost = np.array([cost_map.get(s, np.nan) for s in keys["sku"].astype(str)])
        return np.where(np.isfinite(cost) & (cost > 0), cost, _num(p0["unit_price"]))

    def run(self, clock: float) -> BacktestResult:
        cfg = self.config
        n_days = self.n_days
        window = daily_demand(
            self.snap.sales_order_lines,
            (self.start + n_days * _DAY).date(),
            history_days=n_days,
            stock_history=self.snap.stock_history,
        )

        # -- day 0: fit, then plan from empty shelves: the series and their start parameters
        history, fc, lead_times = self._refit(self.start)
        candidates = self._candidates(window, history)
        settings = self._plan_settings(candidates["sku"])
        empty = self._snapshot(self.start, candidates, np.zeros(len(candidates)), None)
        p0, excluded = self._select_series(
            build_plans(empty, fc, lead_times, self.start.date(), settings), candidates
        )
        keys = p0[_KEYS].astype("string").reset_index(drop=True)
        n = len(keys)
        self.supplier = p0["supplier_id"].astype(str).to_numpy()
        win_idx = _series_index(keys, window.keys)
        demand = _aligned(win_idx, window.qty, n, 0.0)
        censored = _aligned(win_idx, window.censored, n, False)
        moq, pack = _num(p0["moq"]), _num(p0["pack_size"])
        initial = _initial_stock(p0, moq, pack)

        # -- the baseline (static from here on) and the suppliers' true lead times
        start_demand = _aligned(_series_index(keys, history.keys), history.qty, n, 0.0)
        baseline = MinMaxBaseline.from_history(
            start_demand.mean(axis=1) if history.n_days else np.zeros(n),
            _num(p0["lead_time_mean"]),
            moq,
            pack,
            cfg.review_days,
        )
        padded = [
            MinMaxBaseline.from_history(
                start_demand.mean(axis=1) if history.n_days else np.zeros(n),
                _num(p0["lead_time_mean"]),
                moq,
                pack,
                cfg.review_days,
                safety_days=s,
            )
            for s in cfg.frontier_safety_days
        ]
        truth = empirical_lead_times(
            self.snap, keys["sku"].to_numpy(), self.supplier, cfg.min_receipts
        )
        # the j-th order of series i gets the lead time of uniforms[i, j] in both replays
        uniforms = np.random.default_rng(cfg.seed).random((n, n_days + 1))

        # -- day by day
        accuracy = AccuracyCollector(horizon=cfg.accuracy_horizon)
        pol = _Sim(n, n_days, initial)
        base = _Sim(n, n_days, initial)
        pads = [_Sim(n, n_days, initial) for _ in padded]
        fit_day = 0
        mismatch_days = 0
        for k in range(n_days):
            day = self.start + k * _DAY
            if k % cfg.refit_every == 0:
                if k:
                    history, fc, lead_times = self._refit(day)
                fit_day = k
                self._record_origin(accuracy, k, keys, history, fc)
            # 1. plan and order
            snap = self._snapshot(day, keys, pol.on_hand, pol.pipe)
            forecast = _shifted(fc, k - fit_day, day.date())
            plans = build_plans(snap, forecast, lead_times, day.date(), settings)
            p_idx = _series_index(keys, plans)
            qty = _aligned(p_idx, _num(plans["order_qty"]), n, 0.0)
            lt_plan = _aligned(p_idx, _num(plans["lead_time_mean"]), n, np.nan)
            mismatch_days += _state_mismatch(plans, p_idx, pol)
            pol.order(k, np.nan_to_num(qty), truth, uniforms, np.nan_to_num(lt_plan))
            base.order(k, baseline.order_qty(base.on_hand + base.on_order), truth, uniforms)
            for rule, sim in zip(padded, pads, strict=True):
                sim.order(k, rule.order_qty(sim.on_hand + sim.on_order), truth, uniforms)
            # 2. receive, 3. serve
            for sim in (pol, base, *pads):
                sim.receive_and_serve(k, demand[:, k])

        unit_cost = self._unit_cost(keys, p0)
        order_cost = np.full(n, float(settings.order_cost))
        if "order_cost" in p0:  # the supplier's K, where the plan knows it
            known = _num(p0["order_cost"])
            order_cost = np.where(np.isfinite(known), known, order_cost)
        abc = p0["abc_class"].astype("string").fillna("C").to_numpy(dtype=object)

        def metrics(sim: _Sim) -> dict[str, Any]:
            return service_metrics(
                sim.trajectory(demand),
                unit_cost,
                _num(p0["service_level"]),
                abc,
                ABC_CLASSES,
                order_cost=order_cost,
                holding_rate=float(settings.holding_cost_rate),
            )

        results = {"policy": metrics(pol), "baseline": metrics(base)}
        matched = (
            equal_service(
                results["policy"],
                [metrics(sim) for sim in pads],
                cfg.frontier_safety_days,
                ABC_CLASSES,
            )
            if pads
            else None
        )
        fc_accuracy = accuracy.summary(demand, censored)
        elapsed = time.perf_counter() - clock
        return BacktestResult(
            policy=results["policy"],
            baseline=results["baseline"],
            forecast_accuracy=fc_accuracy,
            parameters={
                **self._parameters(settings, n, excluded, truth, elapsed),
                "planner_state_mismatch_days": mismatch_days,
            },
            series=self._series_frame(
                keys, p0, initial, baseline, truth, unit_cost, pol, base, demand
            ),
            orders=self._orders_frame(keys, pol, base),
            equal_service=matched,
        )

    def _orders_frame(self, keys: pd.DataFrame, pol: _Sim, base: _Sim) -> pd.DataFrame:
        parts = []
        for name, sim in (("policy", pol), ("baseline", base)):
            p = sim.pipe
            parts.append(
                pd.DataFrame(
                    {
                        "replay": name,
                        "sku": keys["sku"].to_numpy()[p.series],
                        "location_id": keys["location_id"].to_numpy()[p.series],
                        "placed": self.start + pd.to_timedelta(p.placed, unit="D"),
                        "lead_time_days": p.arrival - p.placed,
                        "arrival": self.start + pd.to_timedelta(p.arrival, unit="D"),
                        "qty": p.qty,
                        "position": p.position,
                    }
                )
            )
        nonempty = [p for p in parts if len(p)] or parts[:1]
        out = pd.concat(nonempty, ignore_index=True)
        return out.astype({"replay": "string", "sku": "string", "location_id": "string"})

    def _record_origin(
        self,
        accuracy: AccuracyCollector,
        k: int,
        keys: pd.DataFrame,
        history: DemandHistory,
        fc: Any,
    ) -> None:
        n = len(keys)
        frame, path = _daily_path(fc, accuracy.horizon)
        f_idx = _series_index(keys, frame)
        ours = _aligned(f_idx, path, n, 0.0)
        cls = _aligned(
            f_idx,
            frame["demand_class"].astype("string").fillna("none").to_numpy(dtype=object),
            n,
            "none",
        )
        train = _aligned(_series_index(keys, history.keys), history.qty, n, 0.0)
        accuracy.add_origin(k, train, ours, cls)

    def _parameters(
        self,
        settings: PlanSettings,
        n: int,
        excluded: dict[str, int],
        truth: LeadTimeDraws,
        elapsed: float,
    ) -> dict[str, Any]:
        cfg = self.config
        sources, counts = np.unique(truth.source.astype(str), return_counts=True)
        return {
            "start": cfg.start.isoformat(),
            "end": cfg.end.isoformat(),
            "days": cfg.days,
            "series": n,
            "excluded_series": excluded,
            "refit_every": cfg.refit_every,
            "history_days": cfg.history_days,
            "service_level": cfg.service_level,
            "service_levels": dict(settings.service_levels),
            "review_period_days": float(settings.review_period_days),
            "baseline": {
                "rule": "min/max: min = d·L, max = min + d·review_days, static",
                "review_days": cfg.review_days,
            },
            "initial_stock": "reorder level + Q/2 (ROP, or S − d·R/2 under periodic review)",
            "lead_time_draws": dict(zip(sources.tolist(), counts.tolist(), strict=True)),
            "seed": cfg.seed,
            "runtime_seconds": round(elapsed, 2),
        }

    def _series_frame(
        self,
        keys: pd.DataFrame,
        p0: pd.DataFrame,
        initial: FloatArray,
        baseline: MinMaxBaseline,
        truth: LeadTimeDraws,
        unit_cost: FloatArray,
        pol: _Sim,
        base: _Sim,
        demand: FloatArray,
    ) -> pd.DataFrame:
        total = demand.sum(axis=1)
        out = keys.assign(
            supplier_id=pd.array(self.supplier, dtype="string"),
            abc_class=p0["abc_class"].astype("string").to_numpy(),
            demand_class=p0["demand_class"].astype("string").to_numpy(),
            service_level=_num(p0["service_level"]),
            unit_cost=unit_cost,
            demand_mean=_num(p0["demand_mean"]),
            lead_time_mean=_num(p0["lead_time_mean"]),
            safety_stock=_num(p0["safety_stock"]),
            reorder_point=_num(p0["reorder_point"]),
            eoq=_num(p0["eoq"]),
            initial_stock=initial,
            baseline_min=baseline.minimum,
            baseline_max=baseline.maximum,
            lead_time_draws=truth.source.astype(str),
            lead_time_true_mean=truth.mean(),
            demand_units=total,
        )
        for name, sim in (("policy", pol), ("baseline", base)):
            served = total - sim.lost.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                fill = np.where(total > 0, served / total, np.nan)
            out[f"{name}_fill_rate"] = fill
            out[f"{name}_avg_stock"] = sim.stock.mean(axis=1)
            out[f"{name}_orders"] = sim.n_orders
            out[f"{name}_stockout_days"] = (sim.lost > 1e-9).sum(axis=1)
        return out


def _state_mismatch(plans: pd.DataFrame, p_idx: IntArray, sim: _Sim) -> int:
    """1 if the plan read an on-hand or on-order figure other than the
    simulated one for a replayed series (a self-check of the snapshot the
    replay assembles: the planner must see the simulated world), else 0."""
    n = len(sim.on_hand)
    planned = _aligned(p_idx, np.ones(len(p_idx), dtype=bool), n, False)
    for column, truth in (("on_hand", sim.on_hand), ("on_order", sim.on_order)):
        if column in plans:
            seen = _aligned(p_idx, _num(plans[column]), n, np.nan)
            if np.any(planned & ~np.isclose(seen, truth, rtol=0.0, atol=1e-6)):
                return 1
    return 0


def _initial_stock(p0: pd.DataFrame, moq: FloatArray, pack: FloatArray) -> FloatArray:
    """The policy's mid-cycle stock position at the start, in whole units:
    its reorder level plus half its order quantity.

    Reorder level: ROP under continuous review; under periodic review (a
    review period R > 0) S − d·R/2, the average position when an order day
    comes (d·R = μ_{R+L} − μ_L, else demand_mean × R). Order quantity: the
    plan's ``cycle_qty``, else the EOQ rounded to MOQ and pack.
    """
    n = len(p0)

    def col(name: str) -> FloatArray | None:
        return _num(p0[name]) if name in p0 else None

    rop = _num(p0["reorder_point"])
    review_col = col("review_period")
    review = np.zeros(n) if review_col is None else np.nan_to_num(review_col)
    mu_x, mu_l = col("protection_demand_mean"), col("lead_time_demand")
    if mu_x is not None and mu_l is not None:
        d_r = np.maximum(np.nan_to_num(mu_x - mu_l), 0.0)
    else:
        d_r = np.nan_to_num(_num(p0["demand_mean"])) * review
    s_level = col("order_up_to")
    if s_level is None:
        s_level = rop + d_r
    level = np.where(review > 0, s_level - d_r / 2.0, rop)
    q = col("cycle_qty")
    if q is None:
        eoq_qty = np.nan_to_num(_num(p0["eoq"]))
        q = np.asarray(
            round_order_qty(eoq_qty, np.where(np.isfinite(moq), moq, 0.0), pack), dtype=np.float64
        )
    start = np.nan_to_num(level + np.nan_to_num(q) / 2.0)
    return np.asarray(np.ceil(np.maximum(start, 0.0) - 1e-9), dtype=np.float64)


class _Sim:
    """The state of one replay: stock, pipeline, trajectory (all series)."""

    def __init__(self, n: int, n_days: int, initial: FloatArray) -> None:
        self.on_hand = initial.astype(np.float64).copy()
        self.on_order = np.zeros(n)
        self.arrivals = np.zeros((n, n_days))
        self.stock = np.zeros((n, n_days))
        self.lost = np.zeros((n, n_days))
        self.n_orders = np.zeros(n, dtype=np.int64)
        self.pipe = _Pipeline()

    def order(
        self,
        k: int,
        qty: FloatArray,
        truth: LeadTimeDraws,
        uniforms: FloatArray,
        expected_lead: FloatArray | None = None,
    ) -> None:
        """Place ``qty`` (> 0) on day k; the j-th order of series i arrives
        after the lead time drawn with ``uniforms[i, j]``. ``expected_lead``:
        the lead time the planner expects (the open order's expected_at)."""
        idx = np.flatnonzero(qty > 0)
        if idx.size == 0:
            return
        lead = truth.draw(idx, uniforms[idx, self.n_orders[idx]])
        position = self.on_hand[idx] + self.on_order[idx]
        self.n_orders[idx] += 1
        self.on_order[idx] += qty[idx]
        arrive = k + lead
        inside = arrive < self.arrivals.shape[1]
        np.add.at(self.arrivals, (idx[inside], arrive[inside]), qty[idx][inside])
        expected = lead.astype(np.float64) if expected_lead is None else expected_lead[idx]
        self.pipe.add(idx, qty[idx], k, lead, expected, position)

    def receive_and_serve(self, k: int, demand: FloatArray) -> None:
        got = self.arrivals[:, k]
        self.on_hand += got
        self.on_order -= got
        served = np.minimum(self.on_hand, demand)
        self.on_hand -= served
        self.lost[:, k] = demand - served
        self.stock[:, k] = self.on_hand

    def trajectory(self, demand: FloatArray) -> Trajectory:
        return Trajectory(
            on_hand=self.stock,
            demand=demand,
            lost=self.lost,
            received=self.arrivals,
            orders=self.n_orders,
        )
