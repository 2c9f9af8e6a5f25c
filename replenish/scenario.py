"""A purchasing scenario around real sales: what a sales export lacks.

A channel export (:mod:`replenish.sources.csv_export`) has only sales. To
plan or backtest replenishment on it, the ERP side must be invented:
suppliers, lead times, costs, pack sizes, initial stock and a receipt history.
A :class:`Scenario` (YAML, e.g. ``config/scenarios/online_retail.yaml``, every
assumption commented there) says how; :func:`build_snapshot` builds a
contract :class:`~replenish.model.ErpSnapshot` from the imported lines.
Pure and deterministic: the same lines, scenario (seed included) and
``as_of`` give identical frames.

What is built (one location, ``scenario.location_id``):

* **sales_order_lines** — the imported lines ordered before ``as_of``
  (00:00): the ERP as it stood at the start of the planning day.
* **products** — one per SKU of those lines: ``name`` = the most frequent
  description (ties: the alphabetically first), ``category`` = the first rule
  of ``categories`` with a keyword in the name (keywords are whole words of
  the upper-cased name, an optional plural "S"/"ES" allowed), else
  ``default_category``; ``unit_price`` = the median positive unit price of
  the SKU's shipped lines (else of its cancelled lines, else the median of
  its category, else of the catalogue); ``unit_cost`` = ``unit_price × cost_ratio``; mode 'stock';
  ``active`` unless ``inactive_after_days`` is set and the SKU has not sold
  for that long.
* **suppliers** — as declared in ``suppliers``.
* **supplier_products** — each SKU's category names its supplier in
  ``assignment`` (else ``default_supplier``): priority 1 at ``unit_cost``;
  an optional ``second_source``: priority 2 at ``unit_cost × (1 +
  second_source_premium)``. ``lead_time_days`` = the supplier's own mean
  days; ``pack_size`` from the first band of ``pack_sizes`` whose
  ``max_price`` exceeds the unit price; ``moq`` = pack_size × the supplier's
  ``moq_packs``.
* **purchase_orders / purchase_order_lines** — a synthetic periodic-review
  history, so that lead times can be learned. From ``receipts.start``
  (default: the first sale + ``receipts.lookback_days``) to ``as_of``, each
  supplier is ordered from every ``review_days`` days, on its first order day
  on or after the due date, at ``receipts.order_hour``:00. A PO holds every
  preferred SKU of the supplier that sold in the ``lookback_days`` before,
  for ``ceil(mean daily demand × review_days)`` units rounded up to the pack
  size and at least the MOQ (orders are not topped up to the minimum order
  value: the history only teaches lead times). All lines of a PO arrive
  together, ``round(order_processing_days + transport_days + X)`` days after
  the order, X ~ Gamma with the supplier's lead-time mean and std (its own
  days; a right-skewed delay, never negative); ``receiving_days`` later the
  goods are on the shelf (the convention of :mod:`replenish.policy.leadtime`,
  so the learned lead time matches the declared one on average). A PO whose
  goods reached the dock before ``as_of`` is 'received' in full; a later one
  is still open at ``as_of`` ('confirmed' when ordered two days or more
  before, else 'sent') with ``expected_at`` = order + processing + mean +
  transport days.
* **stock_levels** — at ``as_of`` 00:00: ``on_hand = round(cover_days × mean
  daily shipped demand of the last window_days × f)``, f ~ Uniform(spread)
  per SKU, so that some SKUs sit below their reorder point and others above
  (a SKU not sold in the window starts at 0); ``allocated`` = 0 (every line
  of the export is shipped or cancelled).
* **returns, stock_history, promotions** — empty (the export has none; the
  cancelled lines are not returned to stock: they are kept as 'cancelled'
  sales lines).

Random streams are seeded by ``(seed, name)`` — one per supplier, one for
stock — so adding a supplier does not change another supplier's history.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from replenish import model
from replenish.errors import ConfigurationError
from replenish.sources.csv_export import load_yaml_model

__all__ = [
    "Assignment",
    "CategoryRule",
    "LeadTime",
    "PackBand",
    "ReceiptHistory",
    "Scenario",
    "StockRule",
    "SupplierSpec",
    "build_snapshot",
    "load_scenario",
]

FloatArray = npt.NDArray[np.float64]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_SECOND_SOURCE_PRIORITY: Final = 2


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeadTime(_Config):
    """The supplier's own days (from order confirmation to dispatch), in days."""

    mean: float = Field(ge=0)
    std: float = Field(default=0.0, ge=0)


class SupplierSpec(_Config):
    supplier_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    email: str | None = None
    currency: str = Field(default="GBP", min_length=3, max_length=3)
    min_order_value: float = Field(default=0.0, ge=0)
    order_processing_days: float = Field(default=0.0, ge=0)
    transport_days: float = Field(default=0.0, ge=0)
    receiving_days: float = Field(default=0.0, ge=0)
    lead_time_days: LeadTime
    #: weekdays on which orders may be placed (empty: any day)
    order_days: list[Weekday] = Field(default_factory=list)
    order_cost: float | None = Field(default=None, ge=0)
    #: days between two orders in the synthetic history
    review_days: int = Field(default=7, ge=1)
    #: MOQ in packs
    moq_packs: int = Field(default=1, ge=1)


class CategoryRule(_Config):
    category: str = Field(min_length=1, max_length=128)
    keywords: list[str] = Field(min_length=1)


class Assignment(_Config):
    category: str
    supplier: str
    second_source: str | None = None


class PackBand(_Config):
    #: the band holds unit prices strictly below this (null: no upper bound)
    max_price: float | None = Field(default=None, gt=0)
    pack_size: int = Field(ge=1)


class ReceiptHistory(_Config):
    #: days of past demand an order is sized on
    lookback_days: int = Field(default=28, ge=1)
    #: first possible order day (default: the first sale + lookback_days)
    start: date | None = None
    order_hour: int = Field(default=10, ge=0, le=23)


class StockRule(_Config):
    cover_days: float = Field(default=14.0, ge=0)
    window_days: int = Field(default=28, ge=1)
    spread: tuple[float, float] = (0.5, 1.5)

    @model_validator(mode="after")
    def _ordered(self) -> StockRule:
        low, high = self.spread
        if not 0 <= low <= high:
            raise ValueError(f"stock.spread: need 0 <= low <= high, got {list(self.spread)}")
        return self


class Scenario(_Config):
    """The invented purchasing side (see the module docstring)."""

    seed: int = 0
    location_id: str = Field(default="UK", min_length=1, max_length=64)
    cost_ratio: float = Field(gt=0, le=1)
    inactive_after_days: int | None = Field(default=None, ge=1)
    categories: list[CategoryRule] = Field(default_factory=list)
    default_category: str = Field(default="Other", min_length=1, max_length=128)
    suppliers: list[SupplierSpec] = Field(min_length=1)
    assignment: list[Assignment] = Field(default_factory=list)
    default_supplier: str
    second_source_premium: float = Field(default=0.15, ge=0)
    pack_sizes: list[PackBand] = Field(default_factory=lambda: [PackBand(pack_size=1)])
    receipts: ReceiptHistory = Field(default_factory=ReceiptHistory)
    stock: StockRule = Field(default_factory=StockRule)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        ids = [s.supplier_id for s in self.suppliers]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"suppliers: supplier_id {dup[0]!r} is declared twice")
        known = set(ids)
        if self.default_supplier not in known:
            raise ValueError(
                f"default_supplier: unknown supplier {self.default_supplier!r} "
                f"(suppliers: {', '.join(ids)})"
            )
        categories = {r.category for r in self.categories} | {self.default_category}
        seen: set[str] = set()
        for i, a in enumerate(self.assignment):
            for key, value in (("supplier", a.supplier), ("second_source", a.second_source)):
                if value is not None and value not in known:
                    raise ValueError(
                        f"assignment[{i}].{key}: unknown supplier {value!r} "
                        f"(suppliers: {', '.join(ids)})"
                    )
            if a.second_source == a.supplier:
                raise ValueError(f"assignment[{i}].second_source: same as its supplier")
            if a.category not in categories:
                raise ValueError(
                    f"assignment[{i}].category: unknown category {a.category!r} "
                    f"(categories: {', '.join(sorted(categories))})"
                )
            if a.category in seen:
                raise ValueError(f"assignment[{i}].category: {a.category!r} is assigned twice")
            seen.add(a.category)
        if not self.pack_sizes:
            raise ValueError("pack_sizes: needs at least one band")
        bounds = [b.max_price for b in self.pack_sizes]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("pack_sizes: only the last band has no max_price, and it must")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(set(finite)):
            raise ValueError("pack_sizes: max_price must increase from band to band")
        return self


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in the YAML file at ``path`` (errors name the file and key)."""
    return load_yaml_model(path, Scenario, "scenario")


# ---------------------------------------------------------------------------


def _rng(seed: int, name: str) -> np.random.Generator:
    """A random stream of its own per ``name`` (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _categorise(names: pd.Series, scenario: Scenario) -> npt.NDArray[np.object_]:
    """First category rule with a keyword (whole word, optional plural) in the name."""
    upper = names.fillna("").astype(str).str.upper()
    out = np.full(len(names), scenario.default_category, dtype=object)
    for rule in reversed(scenario.categories):  # the first matching rule wins
        words = "|".join(re.escape(k.strip().upper()) for k in rule.keywords)
        hit = upper.str.contains(rf"\b(?:{words})(?:S|ES)?\b", regex=True).to_numpy(bool)
        out[hit] = rule.category
    return out


def _names(lines: pd.DataFrame, desc: pd.Series) -> pd.Series:
    """Most frequent description per SKU (ties: alphabetically first)."""
    d = pd.DataFrame({"sku": lines["sku"].astype(str), "desc": desc})
    d = d[d["desc"].notna() & (d["desc"] != "")]
    counts = d.groupby(["sku", "desc"], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["sku", "n", "desc"], ascending=[True, False, True])
    return counts.drop_duplicates("sku").set_index("sku")["desc"]


def _prices(lines: pd.DataFrame, price: pd.Series) -> pd.Series:
    """Median positive price per SKU: shipped lines, else cancelled ones."""
    d = pd.DataFrame(
        {
            "sku": lines["sku"].astype(str),
            "shipped": (lines["status"] == "shipped").to_numpy(bool),
            "price": price.to_numpy(dtype=np.float64),
        }
    )
    d = d[d["price"] > 0]
    shipped = d[d["shipped"]].groupby("sku")["price"].median()
    other = d[~d["shipped"]].groupby("sku")["price"].median()
    return shipped.combine_first(other)


def _pack_sizes(price: FloatArray, bands: list[PackBand]) -> npt.NDArray[np.int64]:
    out = np.full(len(price), bands[-1].pack_size, dtype=np.int64)
    for band in reversed(bands[:-1]):
        assert band.max_price is not None
        out[price < band.max_price] = band.pack_size
    return out


def _daily(lines: pd.DataFrame, skus: pd.Index, start: date, days: int) -> npt.NDArray[np.float64]:
    """Shipped units per SKU (rows, in ``skus`` order) and day from ``start``."""
    shipped = lines[lines["status"] == "shipped"]
    day = (shipped["ordered_at"] - pd.Timestamp(start)).dt.days.to_numpy(dtype=np.int64)
    row = skus.get_indexer(pd.Index(shipped["sku"].astype(str)))
    ok = (day >= 0) & (day < days) & (row >= 0)
    out = np.zeros(len(skus) * days, dtype=np.float64)
    np.add.at(out, row[ok] * days + day[ok], shipped["qty"].to_numpy(dtype=np.float64)[ok])
    return out.reshape(len(skus), days)


def _order_dates(start: date, end: date, spec: SupplierSpec) -> list[date]:
    """Order days of ``spec`` in [start, end): every review_days, moved to the
    next allowed weekday."""
    allowed = {model.WEEKDAYS.index(d) for d in spec.order_days} or set(range(7))
    out: list[date] = []
    due = start
    while True:
        day = due
        while day.weekday() not in allowed:
            day += timedelta(days=1)
        if day >= end:
            return out
        out.append(day)
        due = day + timedelta(days=spec.review_days)


def _gamma(rng: np.random.Generator, lead: LeadTime, n: int) -> FloatArray:
    if lead.std <= 0 or lead.mean <= 0:
        return np.full(n, lead.mean)
    shape = (lead.mean / lead.std) ** 2
    return rng.gamma(shape, lead.std**2 / lead.mean, size=n)


@dataclass(frozen=True)
class _Catalogue:
    """Per-SKU arrays, in ``skus`` order."""

    skus: pd.Index
    price: FloatArray
    cost: FloatArray
    pack: npt.NDArray[np.int64]
    primary: npt.NDArray[np.object_]  # preferred supplier_id
    second: npt.NDArray[np.object_]  # second source supplier_id or None


def build_snapshot(
    lines: pd.DataFrame, extras: pd.DataFrame, scenario: Scenario, as_of: date
) -> model.ErpSnapshot:
    """A generic-profile ERP snapshot: the real sales and an invented
    purchasing side (see the module docstring for every rule).

    Args:
        lines: contract ``sales_order_lines`` (``ExportImport.lines``).
        extras: aligned on ``lines``: ``unit_price`` and ``description``
            (``ExportImport.extras``).
        scenario: suppliers, costs, packs, history and stock rules.
        as_of: the planning day: sales before it (00:00) are history, stock
            is counted at that instant.

    Raises:
        ConfigurationError: no sales line before ``as_of``, or lines at
            another location than ``scenario.location_id``.
    """
    if not lines.index.equals(extras.index):
        raise ValueError("extras must be aligned on lines (same index)")
    cutoff = pd.Timestamp(datetime.combine(as_of, time.min))
    before = (lines["ordered_at"] < cutoff).to_numpy(bool)
    sales = model.coerce("sales_order_lines", lines[before]).reset_index(drop=True)
    ext = extras[before].reset_index(drop=True)
    if sales.empty:
        raise ConfigurationError(f"no sales line before {as_of}: nothing to build a scenario on")
    other = sorted(set(sales["location_id"].dropna().astype(str)) - {scenario.location_id})
    if other or sales["location_id"].isna().any():
        raise ConfigurationError(
            f"the sales lines are at location {other[0] if other else None!r}, the scenario "
            f"stocks {scenario.location_id!r} only: set location_id alike in the mapping and "
            "the scenario"
        )
    products, cat = _products(sales, ext, scenario, cutoff)
    suppliers, supplier_products = _supplier_frames(cat, scenario)

    first_day = sales["ordered_at"].min().date()
    n_days = (as_of - first_day).days
    # cum[i, t]: units of SKU i shipped from first_day up to (excluding) day t
    daily = _daily(sales, cat.skus, first_day, n_days)
    cum = np.concatenate([np.zeros((len(cat.skus), 1)), np.cumsum(daily, axis=1)], axis=1)
    purchase_orders, purchase_order_lines = _purchase_history(cat, cum, first_day, as_of, scenario)
    frames = {
        "suppliers": suppliers,
        "products": products,
        "supplier_products": supplier_products,
        "stock_levels": _stock_levels(cat, cum, cutoff, scenario),
        "purchase_orders": purchase_orders,
        "purchase_order_lines": purchase_order_lines,
        "sales_order_lines": sales,
    }
    return model.ErpSnapshot(
        **{name: model.coerce(name, f.reset_index(drop=True)) for name, f in frames.items()}
    )


def _products(
    sales: pd.DataFrame, ext: pd.DataFrame, scenario: Scenario, cutoff: pd.Timestamp
) -> tuple[pd.DataFrame, _Catalogue]:
    skus = pd.Index(sorted(sales["sku"].astype(str).unique()), name="sku")
    names = _names(sales, ext["description"]).reindex(skus)
    names = names.fillna(pd.Series(skus, index=skus))
    category = _categorise(names, scenario)
    price = _prices(sales, ext["unit_price"]).reindex(skus).to_numpy(dtype=np.float64)
    # no positive price at all: the category's median, else the catalogue's, else 1
    cat_median = pd.Series(price).groupby(category).transform("median").to_numpy(np.float64)
    price = np.where(np.isnan(price), cat_median, price)
    overall = float(np.nanmedian(price)) if np.isfinite(price).any() else 1.0
    price = np.where(np.isnan(price), overall, price)
    cost = np.round(price * scenario.cost_ratio, 4)
    active = np.ones(len(skus), dtype=bool)
    if scenario.inactive_after_days is not None:
        shipped = sales[sales["status"] == "shipped"]
        last_sale = shipped.groupby(shipped["sku"].astype(str))["ordered_at"].max()
        since = cutoff - pd.Timedelta(days=scenario.inactive_after_days)
        active = (last_sale.reindex(skus) >= since).to_numpy(dtype=bool)
    products = pd.DataFrame(
        {
            "sku": skus,
            "name": names.to_numpy(dtype=object),
            "category": category,
            "unit_cost": cost,
            "unit_price": price,
            "active": active,
            "replenishment_mode": "stock",
            "service_level": np.nan,
        }
    )
    by_cat = {a.category: a for a in scenario.assignment}
    primary = np.array(
        [by_cat[c].supplier if c in by_cat else scenario.default_supplier for c in category],
        dtype=object,
    )
    second = np.array(
        [by_cat[c].second_source if c in by_cat else None for c in category], dtype=object
    )
    pack = _pack_sizes(price, scenario.pack_sizes)
    return products, _Catalogue(skus, price, cost, pack, primary, second)


def _supplier_frames(cat: _Catalogue, scenario: Scenario) -> tuple[pd.DataFrame, pd.DataFrame]:
    specs = {s.supplier_id: s for s in scenario.suppliers}
    suppliers = pd.DataFrame(
        [
            {
                **s.model_dump(
                    include={
                        "supplier_id",
                        "name",
                        "email",
                        "currency",
                        "min_order_value",
                        "order_processing_days",
                        "transport_days",
                        "receiving_days",
                        "order_cost",
                    }
                ),
                "order_days": ",".join(s.order_days) or None,
            }
            for s in scenario.suppliers
        ]
    )
    sec = np.flatnonzero(np.array([s is not None for s in cat.second], dtype=bool))
    sku = np.concatenate([cat.skus.to_numpy(dtype=object), cat.skus.to_numpy(dtype=object)[sec]])
    sup = np.concatenate([cat.primary, cat.second[sec]])
    pack = np.concatenate([cat.pack, cat.pack[sec]])
    premium = 1 + scenario.second_source_premium
    supplier_products = pd.DataFrame(
        {
            "sku": sku,
            "supplier_id": sup,
            "supplier_sku": [f"{s}-{k}" for s, k in zip(sup, sku, strict=True)],
            "lead_time_days": [specs[s].lead_time_days.mean for s in sup],
            "moq": pack * np.array([specs[s].moq_packs for s in sup], dtype=np.int64),
            "pack_size": pack,
            "unit_price": np.concatenate([cat.cost, np.round(cat.cost[sec] * premium, 4)]),
            "priority": np.concatenate(
                [np.ones(len(cat.skus), np.int64), np.full(len(sec), _SECOND_SOURCE_PRIORITY)]
            ),
        }
    ).sort_values(["sku", "priority"], kind="stable")
    return suppliers, supplier_products


def _purchase_history(
    cat: _Catalogue,
    cum: FloatArray,
    first_day: date,
    as_of: date,
    scenario: Scenario,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic periodic-review POs (see the module docstring)."""
    cutoff = datetime.combine(as_of, time.min)
    lookback = scenario.receipts.lookback_days
    start = scenario.receipts.start or first_day + timedelta(days=lookback)
    headers: list[dict[str, object]] = []
    po_of_line: list[npt.NDArray[np.object_]] = []
    line_no: list[npt.NDArray[np.int64]] = []
    line_sku: list[npt.NDArray[np.int64]] = []
    line_qty: list[FloatArray] = []
    line_arrival: list[npt.NDArray[np.datetime64]] = []
    for spec in scenario.suppliers:
        rows = np.flatnonzero(cat.primary == spec.supplier_id)
        dates = _order_dates(start, as_of, spec)
        if not len(rows) or not dates:
            continue
        delay = _gamma(
            _rng(scenario.seed, f"supplier:{spec.supplier_id}"), spec.lead_time_days, len(dates)
        )
        declared_to_dock = (
            spec.order_processing_days + spec.lead_time_days.mean + spec.transport_days
        )
        pack = cat.pack[rows]
        moq = pack * spec.moq_packs
        for day, x in zip(dates, delay, strict=True):
            t = (day - first_day).days
            window = min(lookback, t)
            if window <= 0:
                continue
            recent = cum[rows, t] - cum[rows, t - window]
            has = recent > 0
            if not has.any():
                continue
            qty = np.ceil(recent[has] / window * spec.review_days)
            qty = np.maximum(np.ceil(qty / pack[has]) * pack[has], moq[has])
            ordered = datetime.combine(day, time(scenario.receipts.order_hour))
            arrived = ordered + timedelta(
                days=round(spec.order_processing_days + spec.transport_days + float(x))
            )
            if arrived < cutoff:
                status = "received"
            elif ordered <= cutoff - timedelta(days=2):
                status = "confirmed"
            else:
                status = "sent"
            po_id = f"PO-{spec.supplier_id}-{day:%Y%m%d}"
            headers.append(
                {
                    "po_id": po_id,
                    "supplier_id": spec.supplier_id,
                    "location_id": scenario.location_id,
                    "status": status,
                    "ordered_at": ordered,
                    "expected_at": ordered + timedelta(days=round(declared_to_dock)),
                }
            )
            n = int(has.sum())
            po_of_line.append(np.full(n, po_id, dtype=object))
            line_no.append(np.arange(1, n + 1, dtype=np.int64))
            line_sku.append(rows[has])
            line_qty.append(qty)
            stamp = np.datetime64(arrived, "ns") if status == "received" else np.datetime64("NaT")
            line_arrival.append(np.full(n, stamp, dtype="datetime64[ns]"))
    if not headers:
        return model.empty_frame("purchase_orders"), model.empty_frame("purchase_order_lines")
    received_at = np.concatenate(line_arrival)
    qty_ordered = np.concatenate(line_qty)
    lines = pd.DataFrame(
        {
            "po_id": np.concatenate(po_of_line),
            "line_no": np.concatenate(line_no),
            "sku": cat.skus.to_numpy(dtype=object)[np.concatenate(line_sku)],
            "qty_ordered": qty_ordered,
            "qty_received": np.where(np.isnat(received_at), 0.0, qty_ordered),
            "received_at": received_at,
        }
    )
    return pd.DataFrame(headers), lines


def _stock_levels(
    cat: _Catalogue, cum: FloatArray, cutoff: pd.Timestamp, scenario: Scenario
) -> pd.DataFrame:
    """on_hand = round(cover_days × recent mean daily demand × f), f ~ U(spread)."""
    rule = scenario.stock
    window = min(rule.window_days, cum.shape[1] - 1)  # >= 1: a sale before as_of exists
    recent = (cum[:, -1] - cum[:, -1 - window]) / window
    factor = _rng(scenario.seed, "stock").uniform(*rule.spread, size=len(cat.skus))
    return pd.DataFrame(
        {
            "sku": cat.skus,
            "location_id": scenario.location_id,
            "on_hand": np.round(rule.cover_days * recent * factor),
            "allocated": 0.0,
            "as_of": cutoff,
        }
    )
