"""Per-run KPIs: how well the shop served its customers and how hard its stock worked.

``compute_kpis(snapshot, plans, as_of)`` measures the last ``window_days``
days before ``as_of`` (``as_of`` itself excluded: the day is not over) from
the ERP snapshot of the run and today's plans, and returns a :class:`Kpis`:
one overall table (``kpi, value, unit, definition, basis``), the same KPIs per
ABC class and per location, the supplier on-time table and the per-series
facts behind them. Pure: frames in, frames out; nothing is read or written.

Every KPI is a ratio of sums over series (SKU × location), so a breakdown
is the same formula over the series of a group (an ABC class, a location)
and adds up. The definitions (:data:`KPI_DEFINITIONS`, docs/kpis.md) in short,
W the window [as_of − window_days, as_of):

=========================  ==================================================
service_rate               units on due sales lines (ordered in W, more than
                           ``open_grace_days`` before as_of, not cancelled)
                           that left the status 'open' / units on due lines
fill_rate_estimated        units sold in W / (units sold + estimated lost
                           units on stockout days)
stockout_rate              stockout series-days / observed series-days
                           (stock SKUs; end-of-day on_hand <= 0 from
                           stock_history, else inferred zero-sales runs)
days_out_of_stock          stockout series-days / series observed
stockouts_now              stock rows with on_hand − allocated <= 0 and
                           demand > 0 at as_of
stock_value                Σ on_hand · unit_cost at as_of
stock_turns                (COGS in W · 365 / window_days) / average stock
                           value in W
days_of_cover              Σ available · unit_cost / Σ demand_mean · unit_cost
overstock_value            Σ max(0, available − overstock_days · demand_mean)
                           · unit_cost (unplanned stock: all of it)
overstock_share            overstock_value / stock_value
stock_age_days             value-weighted mean age of the units on hand,
                           FIFO over receipts and restockable returns
returns_rate               units returned in W / units sold in W
supplier_on_time_rate      receipts in W on or before their PO's expected
                           day / receipts in W with an expected day
rop_respected              PO lines expected in W without a stockout between
                           ordering and the expected day / (those lines +
                           stockout runs with no order on the way)
below_trigger_no_order     stock rows with inventory position < trigger level
                           and no order proposed today
=========================  ==================================================

Vectorised: grouped sums, integer-coded day matrices (series × W) and
``np.bincount``; no per-SKU Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.forecast.demand import daily_demand
from replenish.model import CANCELLED_SALES_STATUSES, OPEN_PO_STATUSES, ErpSnapshot
from replenish.policy.assemble import _normalised_in
from replenish.policy.leadtime import supplier_on_time
from replenish.policy.plan import POLICY_JIT

__all__ = [
    "KPI_DEFINITIONS",
    "KPI_NAMES",
    "NO_CLASS",
    "KpiDefinition",
    "Kpis",
    "compute_kpis",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DAYS_PER_YEAR: Final = 365.0
_DAY = pd.Timedelta(days=1)
#: ``abc_class`` of series that have no plan row (inactive or unknown SKUs
#: with stock or sales) or whose plan row has no class.
NO_CLASS: Final = "unclassified"
#: The sales-line status of a line not yet served (the contract's other
#: values are 'shipped' and the cancelled ones; any other status counts as
#: served, as ERP profiles map delivered/completed/closed to 'shipped').
OPEN_SALES_STATUS: Final = "open"
_KEYS = ["sku", "location_id"]
_SEP = "\x1f"
#: Plan columns the KPIs read.
PLAN_INPUTS: Final = (
    "sku",
    "location_id",
    "abc_class",
    "policy",
    "demand_mean",
    "on_hand",
    "allocated",
    "inventory_position",
    "trigger_level",
    "order_qty",
    "unit_price",
)


@dataclass(frozen=True)
class KpiDefinition:
    """One KPI: its name, unit (``ratio`` = 0..1) and definition with formula."""

    name: str
    unit: str
    definition: str


KPI_DEFINITIONS: Final = (
    KpiDefinition(
        "service_rate",
        "ratio",
        "Units on due sales lines that were served / units on due sales lines. Due: ordered "
        "in the window, more than open_grace_days before as_of, qty > 0, not cancelled. "
        "Served: status other than 'open' (the contract has no ship date: a line shipped "
        "late counts as served; demand lost while out of stock leaves no line, see "
        "fill_rate_estimated).",
    ),
    KpiDefinition(
        "fill_rate_estimated",
        "ratio",
        "Units sold / (units sold + estimated lost units), over the window. Lost units on a "
        "stockout day = max(0, r − units sold that day), r = the series' mean units per "
        "in-stock observed day of the window (the plan's demand_mean when it had none). "
        "Estimated: lost demand is never recorded.",
    ),
    KpiDefinition(
        "stockout_rate",
        "ratio",
        "Stockout series-days / observed series-days of the stock (non-jit) plan rows. A "
        "stockout day: end-of-day on_hand <= 0 in stock_history; for a series without stock "
        "history in the window, a day of a zero-sales run too long to be chance (inferred, "
        "see forecast.demand.infer_censored).",
    ),
    KpiDefinition(
        "days_out_of_stock",
        "days",
        "Stockout series-days / number of series observed (average days out of stock per "
        "SKU × location in the window).",
    ),
    KpiDefinition(
        "stockouts_now",
        "count",
        "Stock (non-jit) plan rows with on_hand − allocated <= 0 and demand_mean > 0 at as_of.",
    ),
    KpiDefinition(
        "stock_value",
        "currency",
        "Σ on_hand · unit_cost of stock_levels at as_of, every SKU (active or not).",
    ),
    KpiDefinition(
        "stock_turns",
        "per year",
        "Annualised cost of goods sold / average stock value: (Σ units of served sales lines "
        "ordered in the window · unit_cost) · 365 / window_days, divided by the mean over "
        "the window's days of Σ end-of-day on_hand · unit_cost (stock_history; a series "
        "without history counts with its on_hand at as_of).",
    ),
    KpiDefinition(
        "days_of_cover",
        "days",
        "Σ max(0, on_hand − allocated) · unit_cost / Σ demand_mean · unit_cost over the plan "
        "rows: how many days the available stock value lasts at the forecast rate (the "
        "per-series days of cover weighted by their daily demand value).",
    ),
    KpiDefinition(
        "overstock_value",
        "currency",
        "Σ max(0, on_hand − allocated − overstock_days · demand_mean) · unit_cost over the "
        "plan rows, plus all the available stock of series without a plan row (inactive or "
        "unknown SKUs).",
    ),
    KpiDefinition(
        "overstock_share",
        "ratio",
        "overstock_value / stock_value.",
    ),
    KpiDefinition(
        "stock_age_days",
        "days",
        "Mean age of the units on hand at as_of, weighted by value. FIFO: the units on hand "
        "are the last received (PO receipts at received_at, restockable returns at "
        "returned_at), newest first; units beyond every known receipt take the oldest "
        "receipt's age (a lower bound); series without any receipt are left out.",
    ),
    KpiDefinition(
        "returns_rate",
        "ratio",
        "Units returned in the window (returns.returned_at, qty > 0) / units sold in the "
        "window (sales lines not cancelled, qty > 0). Flows of the same window: returns of "
        "earlier sales count.",
    ),
    KpiDefinition(
        "supplier_on_time_rate",
        "ratio",
        "Receipts (PO lines with qty_received > 0) received in the window on or before their "
        "PO's expected_at day / receipts received in the window whose PO has an expected_at "
        "(policy.leadtime.supplier_on_time).",
    ),
    KpiDefinition(
        "rop_respected",
        "ratio",
        "Replenishment decisions taken in time / decisions. Decisions: each PO line (not "
        "cancelled) of a stock plan row expected in the window, and each run of stockout "
        "days with no order on the way (an order never placed). In time: a PO line whose "
        "series had no stockout from its order day to the day before its expected day "
        "(later stockouts are the supplier's lateness). Days outside the window are not seen.",
    ),
    KpiDefinition(
        "below_trigger_no_order",
        "count",
        "Stock (non-jit) plan rows whose inventory position is below the trigger level "
        "(reorder point / order-up-to / (R,s,Q) trigger) with no order proposed today: "
        "waiting for the supplier's next order day, no supplier, or missing data (the "
        "plan's reason says which).",
    ),
)
KPI_NAMES: Final = tuple(k.name for k in KPI_DEFINITIONS)
_UNITS: Final = {k.name: k.unit for k in KPI_DEFINITIONS}

#: The per-series facts (sums) the KPIs are computed from.
FACT_COLUMNS: Final = (
    "due_units",
    "served_units",
    "sold_units",
    "lost_units",
    "returned_units",
    "cogs",
    "stock_value",
    "avg_stock_value",
    "available_value",
    "demand_value",
    "overstock_value",
    "aged_value",
    "age_value_days",
    "stockout_days",
    "observed_days",
    "observed_series",
    "inferred_series",
    "stockout_now",
    "below_trigger_no_order",
    "po_lines_rated",
    "po_lines_in_time",
    "missed_orders",
    "history_series",
    "costless_series",
)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


# ------------------------------------------------------------------ result


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one run.

    Attributes:
        as_of: the planning date; the window is the ``window_days`` days before it.
        window_days: length of the window.
        overall: one row per KPI: ``kpi, value, unit, definition, basis``
            (``basis``: what this run's figure rests on, e.g. how many series
            had stock history and how many were inferred). ``value`` is NaN
            when there was nothing to measure.
        by_abc_class: one row per ABC class (``abc_class`` then one column per
            KPI); series without a class are in :data:`NO_CLASS`.
        by_location: one row per location (``location_id`` then the KPIs).
        by_supplier: ``supplier_id, receipts, on_time_rate`` over the window.
        per_series: the per-series facts (sku, location_id, abc_class,
            unit_cost, days_of_cover, stock_age_days, stockout_basis and the
            sums of :data:`FACT_COLUMNS`), for drill-down.
    """

    as_of: date
    window_days: int
    overall: pd.DataFrame
    by_abc_class: pd.DataFrame
    by_location: pd.DataFrame
    by_supplier: pd.DataFrame
    per_series: pd.DataFrame

    def value(self, kpi: str) -> float:
        """The overall value of ``kpi`` (NaN when not measurable)."""
        if kpi not in KPI_NAMES:
            raise KeyError(f"unknown KPI {kpi!r}; known: {', '.join(KPI_NAMES)}")
        row = self.overall.loc[self.overall["kpi"] == kpi, "value"]
        return float(row.iloc[0])

    def table_rows(self) -> list[dict[str, Any]]:
        """The overall table as JSON-ready records (for a Prefect table artifact)."""
        return [{str(k): _plain(v) for k, v in r.items()} for r in self.overall.to_dict("records")]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types (NaN → None)."""

        def groups(frame: pd.DataFrame, key: str) -> dict[str, dict[str, Any]]:
            return {
                str(r[key]): {k: _plain(r[k]) for k in KPI_NAMES} for r in frame.to_dict("records")
            }

        return {
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "overall": {r["kpi"]: _plain(r["value"]) for r in self.table_rows()},
            "units": dict(_UNITS),
            "basis": {r["kpi"]: r["basis"] for r in self.overall.to_dict("records") if r["basis"]},
            "by_abc_class": groups(self.by_abc_class, "abc_class"),
            "by_location": groups(self.by_location, "location_id"),
            "by_supplier": [
                {k: _plain(v) for k, v in r.items()} for r in self.by_supplier.to_dict("records")
            ],
        }

    def to_markdown(self) -> str:
        """The overall table and the ABC-class breakdown as Markdown."""
        start = pd.Timestamp(self.as_of) - pd.Timedelta(days=self.window_days)
        lines = [
            f"## KPIs {start.date().isoformat()} – "
            f"{(pd.Timestamp(self.as_of) - _DAY).date().isoformat()} "
            f"({self.window_days} days before {self.as_of.isoformat()})",
            "",
            "| KPI | value | unit | basis |",
            "|---|---:|---|---|",
        ]
        for r in self.overall.to_dict("records"):
            lines.append(
                f"| {r['kpi']} | {format_value(r['value'], r['unit'])} | {r['unit']} | "
                f"{r['basis']} |"
            )
        for title, frame, key in (
            ("Per ABC class", self.by_abc_class, "abc_class"),
            ("Per location", self.by_location, "location_id"),
        ):
            if frame.empty:
                continue
            lines += [
                "",
                f"### {title}",
                "",
                "| KPI | " + " | ".join(str(g) for g in frame[key]) + " |",
                "|---|" + "---:|" * len(frame),
            ]
            for kpi in KPI_NAMES:
                cells = [format_value(v, _UNITS[kpi]) for v in frame[kpi]]
                lines.append(f"| {kpi} | " + " | ".join(cells) + " |")
        lines += ["", "Definitions: docs/kpis.md."]
        return "\n".join(lines) + "\n"


def format_value(value: Any, unit: str) -> str:
    """A KPI value for people: ratios in %, counts whole, the rest one decimal."""
    v = _plain(value)
    if v is None:
        return "–"
    if unit == "ratio":
        return f"{100 * v:.1f} %"
    if unit == "count":
        return f"{v:,.0f}"
    if unit == "currency":
        return f"{v:,.2f}"
    return f"{v:,.1f}"


def _plain(value: Any) -> Any:
    """numpy / pandas scalars → Python; NaN, NA and ±inf → None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------ entry point


def compute_kpis(
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    as_of: date,
    *,
    window_days: int = 90,
    overstock_days: float = 90.0,
    open_grace_days: int = 3,
    stock_history: pd.DataFrame | None = None,
) -> Kpis:
    """The run's KPIs over the ``window_days`` days before ``as_of``.

    Args:
        snapshot: the (validated) ERP snapshot of the run.
        plans: :func:`replenish.policy.plan.build_plans` output for ``as_of``
            (the columns of :data:`PLAN_INPUTS` are read).
        as_of: the planning date, excluded from the window.
        window_days: days measured (> 0).
        overstock_days: stock beyond this many days of forecast demand is
            overstock (> 0).
        open_grace_days: sales lines ordered in the last this many days are
            not yet due (normal dispatch time; >= 0).
        stock_history: end-of-day on_hand (``stock_history`` contract
            columns) to use instead of ``snapshot.stock_history``, e.g. built
            from the stock of past runs when the ERP keeps none.

    Returns:
        A :class:`Kpis`.

    Raises:
        ValueError: a bad argument, or ``plans`` without a column the KPIs read.
    """
    if window_days <= 0:
        raise ValueError(f"window_days must be > 0, got {window_days}")
    if not overstock_days > 0:
        raise ValueError(f"overstock_days must be > 0, got {overstock_days}")
    if open_grace_days < 0:
        raise ValueError(f"open_grace_days must be >= 0, got {open_grace_days}")
    missing = [c for c in PLAN_INPUTS if c not in plans.columns]
    if missing:
        raise ValueError(
            f"plans lacks the column(s) {', '.join(missing)} (expected build_plans output)"
        )
    history = snapshot.stock_history if stock_history is None else stock_history
    missing = [c for c in ("sku", "location_id", "date", "on_hand") if c not in history.columns]
    if missing:
        raise ValueError(f"stock_history lacks the column(s) {', '.join(missing)}")

    end = pd.Timestamp(as_of).normalize()
    window = _Window(end - pd.Timedelta(days=window_days), end, window_days)
    cost = _unit_costs(snapshot)
    plan = _plan_rows(plans)
    sku_class = plan.drop_duplicates("sku").set_index("sku")["abc_class"]

    history = _history_in_window(history, window)
    sales = snapshot.sales_order_lines
    sales = sales[window.contains(_dates(sales["ordered_at"])).fillna(False).to_numpy(bool)]
    matrix = _StockoutMatrix.build(plan, history, sales, as_of, window)
    parts = [
        _sales_facts(sales, window, open_grace_days),
        _returns_facts(snapshot.returns, window),
        _stock_facts(snapshot.stock_levels, plan, cost, overstock_days),
        _age_facts(snapshot, cost, window),
        matrix.facts(plan, snapshot, window),
        _history_value(history, cost),
    ]
    facts = _combine(parts, cost, sku_class)
    on_time = _on_time(
        snapshot,
        window,
        {
            "all": lambda lines: pd.Series("all", index=lines.index, dtype="string"),
            "location_id": lambda lines: lines["location_id"].astype("string"),
            "abc_class": lambda lines: lines["sku"].astype("string").map(sku_class),
        },
    )
    on_time_all = on_time["all"]
    on_time_cls = on_time["abc_class"]
    on_time_loc = on_time["location_id"]

    sums_all = facts[list(FACT_COLUMNS)].sum().to_frame("all").T
    overall_values = _kpi_frame(sums_all, window_days, on_time_all)
    by_class = _breakdown(facts, "abc_class", window_days, on_time_cls)
    by_location = _breakdown(facts, "location_id", window_days, on_time_loc)
    overall = pd.DataFrame(
        {
            "kpi": list(KPI_NAMES),
            "value": [float(overall_values[k].iloc[0]) for k in KPI_NAMES],
            "unit": [k.unit for k in KPI_DEFINITIONS],
            "definition": [k.definition for k in KPI_DEFINITIONS],
            "basis": [_basis(k, sums_all.iloc[0], on_time_all, overstock_days) for k in KPI_NAMES],
        }
    )
    return Kpis(
        as_of=as_of,
        window_days=window_days,
        overall=overall,
        by_abc_class=by_class,
        by_location=by_location,
        by_supplier=_supplier_table(snapshot, window),
        per_series=_per_series(facts, matrix),
    )


# ------------------------------------------------------------------ inputs


class _Window(NamedTuple):
    start: pd.Timestamp
    end: pd.Timestamp
    days: int

    def contains(self, stamps: pd.Series) -> pd.Series:
        return (stamps >= self.start) & (stamps < self.end)


def _num(values: Any) -> FloatArray:
    return np.asarray(
        pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        ),
        dtype=np.float64,
    )


def _dates(values: pd.Series) -> pd.Series:
    """Timestamps (NaT where unreadable), parsed only when not datetime already."""
    if pd.api.types.is_datetime64_dtype(values):
        return values
    return pd.to_datetime(values, errors="coerce", format="mixed")


def _history_in_window(history: pd.DataFrame, window: _Window) -> pd.DataFrame:
    """Stock-history rows of the window with a readable date and on_hand."""
    dates = _dates(history["date"]).dt.normalize()
    on_hand = _num(history["on_hand"])
    ok = window.contains(dates).fillna(False).to_numpy(bool) & np.isfinite(on_hand)
    return pd.DataFrame(
        {
            "sku": history["sku"].astype("string")[ok],
            "location_id": history["location_id"].astype("string")[ok],
            "date": dates[ok],
            "on_hand": on_hand[ok],
        }
    ).dropna(subset=_KEYS)


def _unit_costs(snapshot: ErpSnapshot) -> pd.Series:
    """Unit cost per SKU: ``products.unit_cost`` when > 0, else the price of
    its best-priority (then cheapest) supplier, as the plan does."""
    prod = snapshot.products[["sku", "unit_cost"]].dropna(subset=["sku"])
    own = pd.Series(_num(prod["unit_cost"]), index=prod["sku"].astype("string"))
    own = own[own > 0]
    own = own[~own.index.duplicated()]
    sp = snapshot.supplier_products[["sku", "priority", "unit_price"]].dropna(subset=["sku"])
    sp = sp.assign(price=_num(sp["unit_price"]), rank=_num(sp["priority"]))
    sp = sp[sp["price"] > 0].sort_values(["sku", "rank", "price"], kind="stable")
    fallback = (
        pd.Series(sp["price"].to_numpy(), index=sp["sku"].astype("string")).groupby(level=0).first()
    )
    out = own.combine_first(fallback)
    out.index.name = "sku"
    return out.rename("unit_cost")


def _plan_rows(plans: pd.DataFrame) -> pd.DataFrame:
    """The plan columns the KPIs read, typed, one row per key."""
    p = plans[list(PLAN_INPUTS)].dropna(subset=_KEYS).drop_duplicates(_KEYS)
    out = pd.DataFrame(
        {
            "sku": p["sku"].astype("string"),
            "location_id": p["location_id"].astype("string"),
            "abc_class": p["abc_class"].astype("string").fillna(NO_CLASS),
            "stock": (p["policy"].astype("string") != POLICY_JIT).fillna(True).to_numpy(bool),
        }
    )
    for col in ("demand_mean", "on_hand", "allocated", "inventory_position", "trigger_level"):
        out[col] = _num(p[col])
    out["order_qty"] = np.nan_to_num(_num(p["order_qty"]))
    return out.sort_values(_KEYS, ignore_index=True)


def _cost_of(cost: pd.Series, index: pd.Index) -> FloatArray:
    """Unit cost of the ``sku`` level of a (sku, location_id) index; NaN when unknown."""
    skus = index.get_level_values("sku")
    return np.asarray(cost.reindex(skus).to_numpy(dtype=np.float64, na_value=np.nan))


def _keyed(frame: pd.DataFrame, columns: Mapping[str, Any]) -> pd.DataFrame:
    """Sum ``columns`` (name → values aligned with ``frame``) per sku × location."""
    data = pd.DataFrame(
        {
            "sku": frame["sku"].astype("string"),
            "location_id": frame["location_id"].astype("string"),
            **{k: np.asarray(v, dtype=np.float64) for k, v in columns.items()},
        }
    ).dropna(subset=_KEYS)
    return data.groupby(_KEYS, observed=True, sort=False)[list(columns)].sum()


# ------------------------------------------------------------------ facts


def _sales_facts(sales: pd.DataFrame, window: _Window, grace: int) -> pd.DataFrame:
    """due_units, served_units, sold_units and cogs units per series.

    Counted: lines ordered in the window, qty > 0, status not cancelled
    (the same lines as :func:`replenish.forecast.demand.daily_demand`)."""
    ordered = _dates(sales["ordered_at"])
    in_window = window.contains(ordered).fillna(False).to_numpy(bool)
    sales, ordered = sales[in_window], ordered[in_window]
    qty = _num(sales["qty"])
    with np.errstate(invalid="ignore"):
        ok = ~_normalised_in(sales["status"], CANCELLED_SALES_STATUSES) & (qty > 0)
    due = ok & (ordered < window.end - pd.Timedelta(days=grace)).to_numpy(bool)
    served = ~_normalised_in(sales["status"], {OPEN_SALES_STATUS})
    q = np.where(ok, qty, 0.0)
    lines = sales[ok]
    return _keyed(
        lines,
        {
            "sold_units": q[ok],
            "due_units": np.where(due, q, 0.0)[ok],
            "served_units": np.where(due & served, q, 0.0)[ok],
            "cogs_units": np.where(served, q, 0.0)[ok],
        },
    )


def _returns_facts(returns: pd.DataFrame, window: _Window) -> pd.DataFrame:
    qty = _num(returns["qty"])
    with np.errstate(invalid="ignore"):
        ok = window.contains(returns["returned_at"]).fillna(False).to_numpy(bool) & (qty > 0)
    return _keyed(returns[ok], {"returned_units": qty[ok]})


def _stock_facts(
    stock_levels: pd.DataFrame, plan: pd.DataFrame, cost: pd.Series, overstock_days: float
) -> pd.DataFrame:
    """Stock at as_of per series: value, available value, demand value,
    overstock, stockout now and below-trigger flags."""
    levels = _keyed(
        stock_levels,
        {
            "on_hand_now": np.nan_to_num(_num(stock_levels["on_hand"])),
            "allocated_now": np.nan_to_num(_num(stock_levels["allocated"])),
        },
    )
    p = plan.set_index(_KEYS)
    c = _cost_of(cost, p.index)
    d = p["demand_mean"].to_numpy()
    available = np.fmax(np.nan_to_num(p["on_hand"].to_numpy() - p["allocated"].to_numpy()), 0.0)
    known_d = np.isfinite(d)
    with np.errstate(invalid="ignore"):
        excess = np.where(known_d, np.fmax(available - overstock_days * np.fmax(d, 0.0), 0.0), 0.0)
        stock = p["stock"].to_numpy()
        planned = pd.DataFrame(
            {
                "available_value": np.where(known_d, available * np.nan_to_num(c), 0.0),
                "demand_value": np.where(known_d, np.fmax(d, 0.0) * np.nan_to_num(c), 0.0),
                "overstock_value": excess * np.nan_to_num(c),
                "stockout_now": (stock & (available <= 0) & (d > 0)).astype(np.float64),
                "below_trigger_no_order": (
                    stock
                    & (p["inventory_position"].to_numpy() < p["trigger_level"].to_numpy())
                    & (p["order_qty"].to_numpy() <= 0)
                ).astype(np.float64),
                "planned": 1.0,
            },
            index=p.index,
        )
    out = levels.join(planned, how="outer")
    # stock without a plan row (inactive or unknown SKU): all of it is overstock
    unplanned = out["planned"].isna().to_numpy()
    c_all = np.nan_to_num(_cost_of(cost, out.index))
    on_hand = out["on_hand_now"].fillna(0.0).to_numpy(dtype=np.float64)
    free = np.fmax(on_hand - out["allocated_now"].fillna(0.0).to_numpy(dtype=np.float64), 0.0)
    out["overstock_value"] = np.where(
        unplanned, free * c_all, out["overstock_value"].fillna(0.0).to_numpy(dtype=np.float64)
    )
    out["stock_value"] = np.fmax(on_hand, 0.0) * c_all
    return out.drop(columns=["planned", "allocated_now"])


def _age_facts(snapshot: ErpSnapshot, cost: pd.Series, window: _Window) -> pd.DataFrame:
    """FIFO age of the units on hand: Σ units · age and Σ units aged, per series.

    Layers are PO receipts (qty_received at received_at, at the PO's
    location) and restockable returns (at returned_at) before ``as_of``.
    Newest first, a layer supplies ``clip(on_hand − newer layers, 0, qty)``
    units; units beyond every layer get the oldest layer's age."""
    pol = snapshot.purchase_order_lines
    pos = snapshot.purchase_orders[["po_id", "location_id"]].drop_duplicates("po_id")
    rec = pol[["po_id", "sku", "qty_received", "received_at"]].merge(pos, on="po_id", how="inner")
    ret = snapshot.returns
    restock = ret["restockable"].astype("boolean").fillna(True).to_numpy(bool)
    layers = pd.concat(
        [
            pd.DataFrame(
                {
                    "sku": rec["sku"].astype("string"),
                    "location_id": rec["location_id"].astype("string"),
                    "qty": _num(rec["qty_received"]),
                    "at": rec["received_at"],
                }
            ),
            pd.DataFrame(
                {
                    "sku": ret["sku"].astype("string")[restock],
                    "location_id": ret["location_id"].astype("string")[restock],
                    "qty": _num(ret["qty"])[restock],
                    "at": ret["returned_at"][restock],
                }
            ),
        ],
        ignore_index=True,
    )
    with np.errstate(invalid="ignore"):
        keep = (layers["qty"] > 0) & layers["at"].notna() & (layers["at"] < window.end)
    layers = layers[keep.to_numpy(bool)].dropna(subset=_KEYS)
    levels = _keyed(snapshot.stock_levels, {"on_hand": _num(snapshot.stock_levels["on_hand"])})
    layers = layers.merge(levels.reset_index(), on=_KEYS, how="inner")
    layers = layers[layers["on_hand"] > 0].sort_values(
        [*_KEYS, "at"], ascending=[True, True, False], kind="stable"
    )
    newer = layers.groupby(_KEYS, observed=True, sort=False)["qty"].cumsum() - layers["qty"]
    used = np.clip(layers["on_hand"] - newer, 0.0, layers["qty"])
    age = (window.end - layers["at"]).dt.total_seconds() / _DAY.total_seconds()
    layers = layers.assign(used=used, age_units=used * age, age=age)
    g = layers.groupby(_KEYS, observed=True, sort=False)
    out = g.agg(
        used=("used", "sum"),
        age_units=("age_units", "sum"),
        oldest=("age", "max"),
        oh=("on_hand", "first"),
    )
    rest = np.fmax(out["oh"] - out["used"], 0.0)
    units = out["used"] + rest
    age_units = out["age_units"] + rest * out["oldest"]
    c = _cost_of(cost, out.index)
    c = np.nan_to_num(c)
    return pd.DataFrame({"aged_value": units * c, "age_value_days": age_units * c}, index=out.index)


def _history_value(history: pd.DataFrame, cost: pd.Series) -> pd.DataFrame:
    """Mean end-of-day stock value over the window per series with stock
    history (``history``: :func:`_history_in_window` rows)."""
    data = history.assign(on_hand=np.fmax(history["on_hand"].to_numpy(), 0.0))
    mean = data.groupby(_KEYS, observed=True, sort=False)["on_hand"].mean()
    c = _cost_of(cost, mean.index)
    return pd.DataFrame(
        {"history_stock_value": mean.to_numpy() * np.nan_to_num(c), "history_series": 1.0},
        index=mean.index,
    )


def _combine(parts: list[pd.DataFrame], cost: pd.Series, sku_class: pd.Series) -> pd.DataFrame:
    """Outer-join the per-series parts; derive cogs and the average stock value."""
    facts = pd.concat(parts, axis=1, join="outer").sort_index()
    facts = facts.fillna({c: 0.0 for c in facts.columns if c != "stockout_basis"})
    sku = facts.index.get_level_values("sku")
    c = _cost_of(cost, facts.index)
    facts["unit_cost"] = c
    facts["costless_series"] = (~np.isfinite(c)).astype(np.float64)
    c0 = np.nan_to_num(c)
    facts["cogs"] = facts["cogs_units"] * c0
    has_history = facts["history_series"] > 0
    facts["avg_stock_value"] = np.where(
        has_history, facts["history_stock_value"], facts["stock_value"]
    )
    facts["abc_class"] = (
        pd.Series(sku, index=facts.index).map(sku_class).astype("string").fillna(NO_CLASS)
    )
    for col in FACT_COLUMNS:
        if col not in facts:
            facts[col] = 0.0
    return facts.reset_index()


# ------------------------------------------------------------------ stockouts


@dataclass
class _StockoutMatrix:
    """Stockout days of the stock (non-jit) plan rows over the window.

    ``out[i, d]``: series i was out of stock at the end of window day d;
    ``observed[i, d]``: that day is known (a stock_history row, or the series
    is inferred from its sales and then every day is known); ``sold[i, d]``:
    units sold (daily_demand's counted lines); ``inferred[i]``: the series'
    days come from zero-sales runs, not stock history."""

    keys: pd.DataFrame
    out: BoolArray
    observed: BoolArray
    sold: FloatArray
    inferred: BoolArray
    sku_index: pd.Index
    loc_index: pd.Index
    pairs: IntArray

    @classmethod
    def build(
        cls,
        plan: pd.DataFrame,
        history: pd.DataFrame,
        sales: pd.DataFrame,
        as_of: date,
        window: _Window,
    ) -> _StockoutMatrix:
        keys = plan.loc[plan["stock"], _KEYS].reset_index(drop=True)
        sku_index = pd.Index(pd.unique(keys["sku"].to_numpy(dtype=object)))
        loc_index = pd.Index(pd.unique(keys["location_id"].to_numpy(dtype=object)))
        n_loc = max(len(loc_index), 1)
        pairs = sku_index.get_indexer(keys["sku"]) * n_loc + loc_index.get_indexer(
            keys["location_id"]
        )
        order = np.argsort(pairs, kind="stable")
        keys, pairs = keys.iloc[order].reset_index(drop=True), pairs[order]
        n, w = len(keys), window.days
        m = cls(
            keys=keys,
            out=np.zeros((n, w), dtype=bool),
            observed=np.zeros((n, w), dtype=bool),
            sold=np.zeros((n, w)),
            inferred=np.zeros(n, dtype=bool),
            sku_index=sku_index,
            loc_index=loc_index,
            pairs=pairs.astype(np.int64),
        )
        if n == 0:
            return m
        row = m.rows(history["sku"], history["location_id"])
        day = ((history["date"] - window.start) / _DAY).to_numpy(dtype=np.float64)
        on_hand = history["on_hand"].to_numpy(dtype=np.float64)
        ok = row >= 0
        r, d = row[ok], day[ok].astype(np.int64)
        m.observed[r, d] = True
        m.out[r, d] = on_hand[ok] <= 0
        covered = m.observed.any(axis=1)

        demand = daily_demand(sales, as_of, w, history, infer_stockouts=True)
        hrow = m.rows(demand.keys["sku"], demand.keys["location_id"])
        has = hrow >= 0
        m.sold[hrow[has]] = demand.qty[has]
        infer = has & ~np.append(covered, False)[hrow]
        m.observed[hrow[infer]] = True
        m.out[hrow[infer]] = demand.censored[infer]
        m.inferred[hrow[infer]] = True
        return m

    def rows(self, skus: pd.Series, locations: pd.Series) -> IntArray:
        """Matrix row of each (sku, location); -1 when not a stock plan row."""
        s = self.sku_index.get_indexer(pd.Index(skus.astype("string").to_numpy(dtype=object)))
        lo = self.loc_index.get_indexer(pd.Index(locations.astype("string").to_numpy(dtype=object)))
        pair = s.astype(np.int64) * max(len(self.loc_index), 1) + lo
        at = np.minimum(np.searchsorted(self.pairs, pair), max(len(self.pairs) - 1, 0))
        hit = (s >= 0) & (lo >= 0) & (len(self.pairs) > 0)
        hit &= self.pairs[at] == pair if len(self.pairs) else False
        return np.where(hit, at, -1).astype(np.int64)

    def facts(self, plan: pd.DataFrame, snapshot: ErpSnapshot, window: _Window) -> pd.DataFrame:
        """Per-series stockout, lost-sales and ROP-respected sums."""
        out = self.out & self.observed
        instock = self.observed & ~self.out
        in_days = instock.sum(axis=1)
        d_plan = (
            plan.set_index(_KEYS)["demand_mean"]
            .reindex(pd.MultiIndex.from_frame(self.keys))
            .to_numpy(dtype=np.float64)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(
                in_days > 0,
                (self.sold * instock).sum(axis=1) / np.maximum(in_days, 1),
                np.nan_to_num(d_plan),
            )
        lost = (np.fmax(rate[:, None] - self.sold, 0.0) * out).sum(axis=1)
        rated, in_time, missed = self._rop(snapshot, window, out)
        observed_days = self.observed.sum(axis=1)
        frame = pd.DataFrame(
            {
                "sku": self.keys["sku"],
                "location_id": self.keys["location_id"],
                "stockout_days": out.sum(axis=1).astype(np.float64),
                "observed_days": observed_days.astype(np.float64),
                "observed_series": (observed_days > 0).astype(np.float64),
                "inferred_series": (self.inferred & (observed_days > 0)).astype(np.float64),
                "lost_units": lost,
                "po_lines_rated": rated,
                "po_lines_in_time": in_time,
                "missed_orders": missed,
                "stockout_basis": np.where(
                    observed_days == 0,
                    "none",
                    np.where(self.inferred, "inferred", "stock_history"),
                ),
            }
        )
        return frame.set_index(_KEYS)

    def _rop(
        self, snapshot: ErpSnapshot, window: _Window, out: BoolArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """PO lines rated / in time and missed orders per series (see rop_respected)."""
        n, w = out.shape
        zeros = np.zeros(n)
        if n == 0:
            return zeros, zeros, zeros
        po = snapshot.purchase_orders[
            ["po_id", "location_id", "status", "ordered_at", "expected_at"]
        ].drop_duplicates("po_id")
        po = po[~_normalised_in(po["status"], {"cancelled"})]
        lines = snapshot.purchase_order_lines[["po_id", "sku", "qty_received", "received_at"]]
        lines = lines.merge(po, on="po_id", how="inner")
        row = self.rows(lines["sku"], lines["location_id"])
        lines, row = lines[row >= 0], row[row >= 0]

        def day(col: str) -> FloatArray:
            stamps = lines[col].dt.normalize()
            return ((stamps - window.start) / _DAY).to_numpy(dtype=np.float64, na_value=np.nan)

        ordered, expected, received = day("ordered_at"), day("expected_at"), day("received_at")
        is_open = _normalised_in(lines["status"], OPEN_PO_STATUSES)
        got = (_num(lines["qty_received"]) > 0) & np.isfinite(received)

        # -- each PO line expected in the window: a stockout in [ordered, expected)?
        cum_out = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(out, axis=1)], axis=1)
        cum_obs = np.concatenate(
            [np.zeros((n, 1), np.int64), np.cumsum(self.observed, axis=1)], axis=1
        )
        with np.errstate(invalid="ignore"):
            judged = np.isfinite(ordered) & (expected > 0) & (expected <= w) & (expected > ordered)
        r = row[judged]
        e = expected[judged].astype(np.int64)
        a = np.clip(ordered[judged], 0, w).astype(np.int64)
        seen = (cum_obs[r, e] - cum_obs[r, a]) > 0
        clean = (cum_out[r, e] - cum_out[r, a]) == 0
        rated = np.bincount(r[seen], minlength=n).astype(np.float64)
        in_time = np.bincount(r[seen & clean], minlength=n).astype(np.float64)

        # -- stockout days with no order on the way: from its order day to
        # its receipt (an open PO: still on the way; otherwise its expected day)
        stop = np.where(got, received, np.where(is_open, float(w), expected))
        with np.errstate(invalid="ignore"):
            on_way = np.isfinite(ordered) & np.isfinite(stop) & (stop > 0) & (ordered < w)
        lo = np.clip(ordered[on_way], 0, w).astype(np.int64)
        hi = np.clip(stop[on_way], 0, w).astype(np.int64)
        ok = hi > lo
        mark = np.zeros((n, w + 1), dtype=np.int64)
        np.add.at(mark, (row[on_way][ok], lo[ok]), 1)
        np.add.at(mark, (row[on_way][ok], hi[ok]), -1)
        covered = np.cumsum(mark, axis=1)[:, :w] > 0
        missed_day = out & ~covered
        starts = missed_day & ~np.concatenate([np.zeros((n, 1), bool), missed_day[:, :-1]], axis=1)
        missed = starts.sum(axis=1).astype(np.float64)
        return rated, in_time, missed


# ------------------------------------------------------------------ suppliers


def _received_in_window(snapshot: ErpSnapshot, window: _Window) -> pd.DataFrame:
    lines = snapshot.purchase_order_lines
    return lines[window.contains(lines["received_at"]).fillna(False).to_numpy(bool)]


def _on_time(
    snapshot: ErpSnapshot,
    window: _Window,
    dimensions: Mapping[str, Callable[[pd.DataFrame], pd.Series]],
) -> dict[str, pd.DataFrame]:
    """On-time receipts per group of each dimension, by :func:`supplier_on_time` itself.

    Receipts in the window of POs with an ``expected_at``; each dimension
    maps a receipt line (with its PO's ``location_id``) to its group. Every
    line is copied once per dimension and its PO relabelled ``(po_id,
    dimension, group)`` with ``dimension␟group`` as its supplier, so one call
    of the one on-time rule of policy/leadtime.py counts every group.

    Returns:
        dimension → frame indexed by group: ``rated`` (receipts with an
        expected date), ``on_time``.
    """
    pos = snapshot.purchase_orders.drop_duplicates("po_id")
    pos = pos[pos["expected_at"].notna()]
    lines = _received_in_window(snapshot, window)
    lines = lines.merge(pos[["po_id", "location_id"]], on="po_id", how="inner")
    empty = pd.DataFrame({"rated": [], "on_time": []}, dtype="float64")
    if lines.empty:
        return {dim: empty for dim in dimensions}
    tagged_lines, headers = [], []
    header = pos[["po_id", "status", "ordered_at", "expected_at"]]
    for dim, group_of in dimensions.items():
        label = dim + _SEP + group_of(lines).astype("string").fillna(NO_CLASS)
        tagged = lines.assign(po_id=lines["po_id"].astype("string") + _SEP + label)
        tagged_lines.append(tagged)
        pairs = pd.DataFrame({"tag": tagged["po_id"], "po_id": lines["po_id"], "label": label})
        pairs = pairs.drop_duplicates("tag").merge(header, on="po_id", how="inner")
        headers.append(
            pairs.drop(columns="po_id").rename(columns={"tag": "po_id", "label": "supplier_id"})
        )
    res = supplier_on_time(pd.concat(headers), pd.concat(tagged_lines))
    split = res["supplier_id"].str.split(_SEP, n=1, expand=True)
    rated = res["receipts"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            "dim": split[0],
            "group": split[1],
            "rated": rated,
            "on_time": np.round(res["on_time_rate"].fillna(0.0).to_numpy() * rated),
        }
    )
    return {
        dim: frame[frame["dim"] == dim].set_index("group")[["rated", "on_time"]]
        for dim in dimensions
    }


def _supplier_table(snapshot: ErpSnapshot, window: _Window) -> pd.DataFrame:
    lines = _received_in_window(snapshot, window)
    return supplier_on_time(snapshot.purchase_orders, lines)


# ------------------------------------------------------------------ KPIs from sums


def _kpi_frame(sums: pd.DataFrame, window_days: int, on_time: pd.DataFrame) -> pd.DataFrame:
    """KPI values of each row of group sums (vectorised over the groups)."""

    def div(num: pd.Series | FloatArray, den: pd.Series | FloatArray) -> FloatArray:
        n = np.asarray(num, dtype=np.float64)
        d = np.asarray(den, dtype=np.float64)
        return np.divide(n, d, out=np.full(n.shape, np.nan), where=d > 0)

    s = sums
    rated = on_time["rated"].reindex(s.index).to_numpy(dtype=np.float64, na_value=0.0)
    ontime = on_time["on_time"].reindex(s.index).to_numpy(dtype=np.float64, na_value=0.0)
    values = {
        "service_rate": div(s["served_units"], s["due_units"]),
        "fill_rate_estimated": div(s["sold_units"], s["sold_units"] + s["lost_units"]),
        "stockout_rate": div(s["stockout_days"], s["observed_days"]),
        "days_out_of_stock": div(s["stockout_days"], s["observed_series"]),
        "stockouts_now": s["stockout_now"].to_numpy(dtype=np.float64),
        "stock_value": s["stock_value"].to_numpy(dtype=np.float64),
        "stock_turns": div(s["cogs"] * DAYS_PER_YEAR / window_days, s["avg_stock_value"]),
        "days_of_cover": div(s["available_value"], s["demand_value"]),
        "overstock_value": s["overstock_value"].to_numpy(dtype=np.float64),
        "overstock_share": div(s["overstock_value"], s["stock_value"]),
        "stock_age_days": div(s["age_value_days"], s["aged_value"]),
        "returns_rate": div(s["returned_units"], s["sold_units"]),
        "supplier_on_time_rate": div(ontime, rated),
        "rop_respected": div(s["po_lines_in_time"], s["po_lines_rated"] + s["missed_orders"]),
        "below_trigger_no_order": s["below_trigger_no_order"].to_numpy(dtype=np.float64),
    }
    return pd.DataFrame(values, index=s.index)[list(KPI_NAMES)]


def _breakdown(
    facts: pd.DataFrame, key: str, window_days: int, on_time: pd.DataFrame
) -> pd.DataFrame:
    sums = facts.groupby(key, observed=True, sort=True)[list(FACT_COLUMNS)].sum()
    out = _kpi_frame(sums, window_days, on_time)
    out.index = out.index.astype("string")
    out.index.name = key
    return out.reset_index()


def _basis(kpi: str, s: pd.Series, on_time: pd.DataFrame, overstock_days: float) -> str:
    """What this run's figure rests on, in a few words."""
    observed = int(s["observed_series"])
    inferred = int(s["inferred_series"])
    stockout_note = (
        f"{observed - inferred} series from stock_history, {inferred} inferred from zero-sales runs"
        if observed
        else "no stock history and no sales to infer from"
    )
    costless = int(s["costless_series"])
    cost_note = f"; {costless} series without unit cost left out" if costless else ""
    rated = float(on_time["rated"].sum()) if len(on_time) else 0.0
    notes = {
        "service_rate": f"{s['due_units']:,.0f} units due",
        "fill_rate_estimated": f"{s['lost_units']:,.1f} lost units estimated; " + stockout_note,
        "stockout_rate": stockout_note,
        "days_out_of_stock": stockout_note,
        "stock_turns": (
            f"{int(s['history_series'])} series averaged over stock_history, the rest at "
            "their current stock" + cost_note
        ),
        "stock_value": cost_note.lstrip("; "),
        "days_of_cover": cost_note.lstrip("; "),
        "overstock_value": f"threshold {overstock_days:g} days of demand" + cost_note,
        "overstock_share": f"threshold {overstock_days:g} days of demand",
        "stock_age_days": (
            f"{100 * _ratio(s['aged_value'], s['stock_value']):.0f} % of stock value aged "
            "(series with receipts)"
            if s["stock_value"] > 0
            else ""
        ),
        "returns_rate": f"{s['returned_units']:,.0f} of {s['sold_units']:,.0f} units",
        "supplier_on_time_rate": f"{rated:,.0f} receipts with an expected date",
        "rop_respected": (
            f"{s['po_lines_rated']:,.0f} PO lines, {s['missed_orders']:,.0f} stockouts with "
            "no order on the way; " + stockout_note
        ),
    }
    return notes.get(kpi, "")


def _per_series(facts: pd.DataFrame, matrix: _StockoutMatrix) -> pd.DataFrame:
    f = facts
    with np.errstate(invalid="ignore", divide="ignore"):
        age = np.divide(
            f["age_value_days"].to_numpy(dtype=np.float64),
            f["aged_value"].to_numpy(dtype=np.float64),
            out=np.full(len(f), np.nan),
            where=f["aged_value"].to_numpy(dtype=np.float64) > 0,
        )
        cover = np.divide(
            f["available_value"].to_numpy(dtype=np.float64),
            f["demand_value"].to_numpy(dtype=np.float64),
            out=np.full(len(f), np.nan),
            where=f["demand_value"].to_numpy(dtype=np.float64) > 0,
        )
    basis = f["stockout_basis"] if "stockout_basis" in f else pd.Series("none", index=f.index)
    out = pd.DataFrame(
        {
            "sku": f["sku"].astype("string"),
            "location_id": f["location_id"].astype("string"),
            "abc_class": f["abc_class"].astype("string"),
            "unit_cost": f["unit_cost"],
            "days_of_cover": cover,
            "stock_age_days": age,
            "stockout_basis": basis.astype("string").fillna("none"),
        }
    )
    for col in FACT_COLUMNS:
        out[col] = f[col].to_numpy(dtype=np.float64)
    return out
