"""Per-SKU × location replenishment plans: every input, intermediate and the
proposed order quantity, with the reason a planner reads.

Two policies (DESIGN.md, "Hybrid just-in-time"):

* ``'stock'`` — continuous review (s, Q) with s = ROP = d·L + SS and Q = EOQ:
  when IP <= ROP order ``max(EOQ, ROP − IP)``, i.e. the EOQ, topped up to
  bring IP back to the reorder point when IP has fallen far below it (a big
  order backlog, a late run). With a review period R > 0 the policy becomes
  (R, s, S) (Silver, Pyke & Thomas, 4th ed., ch. 6): SS protects R + L, and when
  IP <= s the order brings IP up to S = d·(R + L) + SS.
* ``'jit'`` — no speculative stock: SS = ROP = 0, and only open customer
  demand not yet covered is ordered::

      raw = max(0, open_demand − on_hand − on_order)

  ``allocated`` is *not* subtracted: allocated units are physical stock
  already reserved for (a part of) those same open order lines, so they
  cover open demand; subtracting them from on_hand while keeping the lines
  in open_demand would count that demand twice. (Assumes allocations are
  made for sales order lines, the usual ERP meaning.)

Per-SKU degradation: a row whose inputs are missing or invalid gets
order_qty 0 and a reason naming the problem; the other rows are unaffected.
Everything is vectorised (merges + numpy); there is no per-SKU loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import OPEN_PO_STATUSES, REPLENISHMENT_MODES, ErpSnapshot
from replenish.policy.formulas import (
    abc_classes,
    eoq,
    inventory_position,
    order_up_to,
    reorder_point,
    round_order_qty,
    safety_stock,
    z_for_service_level,
)
from replenish.policy.leadtime import declared_lead_times

__all__ = ["DEFAULT_SETTINGS", "PLAN_COLUMNS", "PlanSettings", "build_plans"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DAYS_PER_YEAR = 365.0
_SECONDS_PER_DAY = 86_400.0

PLAN_COLUMNS = [
    "sku",
    "location_id",
    "supplier_id",
    "supplier_sku",
    "replenishment_mode",
    "demand_class",
    "method",
    "abc_class",
    "demand_mean",
    "demand_std",
    "lead_time_mean",
    "lead_time_std",
    "lead_time_source",
    "review_period",
    "service_level",
    "service_level_source",
    "z",
    "safety_stock",
    "reorder_point",
    "on_hand",
    "allocated",
    "on_order",
    "inventory_position",
    "open_demand",
    "annual_demand",
    "eoq",
    "raw_qty",
    "moq",
    "pack_size",
    "order_qty",
    "rounding",
    "unit_price",
    "order_value",
    "needs_order",
    "days_of_cover",
    "stockout_risk",
    "below_safety_stock",
    "reason",
]

_STRING_COLUMNS = [
    "sku",
    "location_id",
    "supplier_id",
    "supplier_sku",
    "replenishment_mode",
    "demand_class",
    "method",
    "abc_class",
    "lead_time_source",
    "service_level_source",
    "rounding",
    "reason",
]


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class PlanSettings:
    """Business settings of the plan (flow parameters; defaults here).

    Attributes:
        service_levels: cycle service level per ABC class ('A', 'B', 'C').
        service_level_overrides: per SKU; beats ``products.service_level``,
            which beats the ABC class.
        order_cost: K, fixed cost per order line (currency).
        holding_cost_rate: h = rate × unit cost, per unit per year.
        review_period_days: R; 0 = continuous review (order any night).
        abc_a_share, abc_b_share: cumulative value shares closing A and B.
    """

    service_levels: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"A": 0.98, "B": 0.95, "C": 0.90})
    )
    service_level_overrides: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    order_cost: float = 50.0
    holding_cost_rate: float = 0.25
    review_period_days: float = 0.0
    abc_a_share: float = 0.8
    abc_b_share: float = 0.95

    def __post_init__(self) -> None:
        missing = {"A", "B", "C"} - set(self.service_levels)
        if missing:
            raise ValueError(f"service_levels lacks classes {sorted(missing)}")
        for name, levels in (
            ("service_levels", self.service_levels),
            ("service_level_overrides", self.service_level_overrides),
        ):
            for key, value in levels.items():
                if not 0 < float(value) < 1:
                    raise ValueError(f"{name}[{key!r}] must be in (0, 1), got {value}")
            object.__setattr__(self, name, _frozen(levels))
        if not self.order_cost >= 0:
            raise ValueError("order_cost must be >= 0")
        if not self.holding_cost_rate > 0:
            raise ValueError("holding_cost_rate must be > 0")
        if not self.review_period_days >= 0:
            raise ValueError("review_period_days must be >= 0")
        if not 0 < self.abc_a_share <= self.abc_b_share <= 1:
            raise ValueError("need 0 < abc_a_share <= abc_b_share <= 1")


DEFAULT_SETTINGS = PlanSettings()


# --------------------------------------------------------------------- helpers


def _num(values: Any) -> FloatArray:
    """Float64 numpy array, anything unreadable as NaN."""
    return np.asarray(
        pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        ),
        dtype=np.float64,
    )


def _arr(x: Any) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


#: Text columns are built as numpy *object* arrays of Python str: element-wise
#: ``+`` on them runs in C over the pointers, much faster than fixed-width
#: unicode arrays for sentence-long strings.
TextArray = npt.NDArray[np.object_]


def _fmt(x: FloatArray) -> TextArray:
    """Numbers for humans, vectorised: one decimal, no trailing '.0',
    'n/a' for NaN, '∞' for infinity."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    tenths = np.rint(np.abs(np.where(finite, x, 0.0)) * 10.0).astype(np.int64)
    whole = (tenths // 10).astype(str).astype(object)
    frac = np.where(tenths % 10 > 0, "." + (tenths % 10).astype(str).astype(object), "")
    sign = np.where((x < 0) & (tenths > 0), "-", "").astype(object)
    special = np.where(np.isnan(x), "n/a", np.where(x > 0, "∞", "-∞")).astype(object)
    return np.asarray(np.where(finite, sign + whole + frac, special), dtype=object)


def _cat(*parts: Any) -> TextArray:
    """Element-wise string concatenation of text arrays and constants."""
    out = np.asarray(parts[0], dtype=object)
    for part in parts[1:]:
        out = out + np.asarray(part, dtype=object)
    return np.asarray(out, dtype=object)


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["sku", "location_id"]].astype("string")
    return out[out["sku"].notna() & out["location_id"].notna()]


# ------------------------------------------------------------------ the inputs


def _products(products: pd.DataFrame) -> pd.DataFrame:
    p = products.drop_duplicates("sku", keep="last")
    mode = p["replenishment_mode"].astype("string").str.strip().str.lower().fillna("stock")
    active = p["active"].astype("boolean").fillna(True).astype(bool)
    out = pd.DataFrame(
        {
            "sku": p["sku"].astype("string").to_numpy(),
            "replenishment_mode": mode.to_numpy(),
            "unit_cost": _num(p["unit_cost"]),
            "product_service_level": _num(p["service_level"]),
        }
    )
    keep = active.to_numpy(dtype=bool) & out["sku"].notna().to_numpy()
    return out[keep]


def _stock(stock_levels: pd.DataFrame) -> pd.DataFrame:
    """on_hand and allocated per sku × location (the last row of a duplicate)."""
    sl = stock_levels[stock_levels["sku"].notna() & stock_levels["location_id"].notna()]
    out = pd.DataFrame(
        {
            "sku": sl["sku"].astype("string").to_numpy(),
            "location_id": sl["location_id"].astype("string").to_numpy(),
            "on_hand": _num(sl["on_hand"]),
            "allocated": _num(sl["allocated"]),
            "_stock_row": True,
        }
    )
    return out.drop_duplicates(["sku", "location_id"], keep="last")


def _preferred_suppliers(supplier_products: pd.DataFrame) -> pd.DataFrame:
    """Priority 1 (lowest number) supplier per SKU; ties go to the cheaper,
    then to the smaller supplier_id (deterministic)."""
    sp = supplier_products[
        supplier_products["sku"].notna() & supplier_products["supplier_id"].notna()
    ]
    sp = sp.assign(
        _prio=_num(sp["priority"]),
        _price=_num(sp["unit_price"]),
    )
    sp = sp.assign(_prio=sp["_prio"].fillna(np.inf), _price_key=sp["_price"].fillna(np.inf))
    sp = sp.sort_values(["sku", "_prio", "_price_key", "supplier_id"], kind="stable")
    sp = sp.drop_duplicates("sku", keep="first")
    return pd.DataFrame(
        {
            "sku": sp["sku"].astype("string"),
            "supplier_id": sp["supplier_id"].astype("string"),
            "supplier_sku": sp["supplier_sku"].astype("string"),
            "moq": _num(sp["moq"]),
            "pack_size": _num(sp["pack_size"]),
            "unit_price": _num(sp["unit_price"]),
        }
    )


def _open_purchase_lines(snapshot: ErpSnapshot) -> pd.DataFrame:
    po = snapshot.purchase_orders
    status = po["status"].astype("string").str.strip().str.lower()
    po = po[status.isin(OPEN_PO_STATUSES).fillna(False).to_numpy(dtype=bool)]
    lines = snapshot.purchase_order_lines[["po_id", "sku", "qty_ordered", "qty_received"]]
    lines = lines.merge(
        po[["po_id", "location_id", "expected_at"]].drop_duplicates("po_id"), on="po_id"
    )
    remaining = np.maximum(
        _num(lines["qty_ordered"]) - np.nan_to_num(_num(lines["qty_received"])), 0
    )
    return pd.DataFrame(
        {
            "sku": lines["sku"].astype("string").to_numpy(),
            "location_id": lines["location_id"].astype("string").to_numpy(),
            "remaining": remaining,
            "expected_at": pd.to_datetime(lines["expected_at"]).to_numpy(),
        }
    )


def _open_demand(sales: pd.DataFrame) -> pd.DataFrame:
    status = sales["status"].astype("string").str.strip().str.lower()
    is_open = (status == "open").fillna(False).to_numpy(dtype=bool)
    lines = sales[
        is_open & sales["sku"].notna().to_numpy() & sales["location_id"].notna().to_numpy()
    ]
    frame = pd.DataFrame(
        {
            "sku": lines["sku"].astype("string").to_numpy(),
            "location_id": lines["location_id"].astype("string").to_numpy(),
            "open_demand": np.maximum(np.nan_to_num(_num(lines["qty"])), 0.0),
        }
    )
    return frame.groupby(["sku", "location_id"], as_index=False).agg(
        open_demand=("open_demand", "sum")
    )


# -------------------------------------------------------------------- the plan


def build_plans(
    snapshot: ErpSnapshot,
    forecast: pd.DataFrame,
    lead_times: pd.DataFrame,
    as_of: date,
    settings: PlanSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """One replenishment plan row per active SKU × location.

    Rows: every sku × location with a forecast row or a stock row, for
    products that exist and are active. Inputs:

    * ``forecast`` — :func:`replenish.forecast.forecast_demand` output
      (a stock row without forecast has demand 0, class 'none');
    * ``lead_times`` — :func:`replenish.policy.leadtime.learn_lead_times`
      output (a missing pair falls back to the declared lead time, σL = 0);
    * the supplier: priority 1 in ``supplier_products`` (ties: cheaper).

    Maths (formulas in :mod:`replenish.policy.formulas`)::

        IP  = on_hand − allocated + on_order       (open PO lines at the location)
        SS  = z · sqrt((L + R)·σd² + d²·σL²),  z = Φ⁻¹(service level)
        ROP = d·L + SS,  S = d·(R + L) + SS,  EOQ = sqrt(2·D·K/h), D = 365·d,
        h   = holding_cost_rate × unit cost (products.unit_cost, else the
              supplier price; unknown: EOQ NaN and the shortfall is ordered)

    ``'stock'`` and ``'jit'`` rules: see the module docstring. ABC classes
    use annual value 365·d·unit cost per SKU summed over locations. Service
    level priority: settings override > products.service_level (if in
    (0, 1)) > ABC class.

    Flags: ``stockout_risk`` — stock SKUs: on_hand − allocated + (on order
    with expected_at on or before as_of + L) < d·L, i.e. stock runs out before
    an order placed today can arrive (a PO without expected_at is not counted
    on); jit SKUs: open demand exceeds on_hand + on order due within L
    (customers wait longer than the lead time), since a jit SKU holds no stock
    by design. ``below_safety_stock`` — on_hand − allocated < SS.
    ``days_of_cover`` — (on_hand − allocated) / d, ∞ when d = 0.

    Returns:
        A new frame with :data:`PLAN_COLUMNS`, sorted by sku, location_id.
    """
    as_of_ts = pd.Timestamp(as_of).normalize()
    R = float(settings.review_period_days)

    # -- universe: forecast ∪ stock rows, active products only
    stock = _stock(snapshot.stock_levels)
    fc_cols = ["demand_class", "method", "demand_mean", "demand_std"]
    fc = _key_frame(forecast).join(forecast[fc_cols])
    fc = fc.drop_duplicates(["sku", "location_id"], keep="last").assign(_fc_row=True)
    rows = fc.merge(stock, on=["sku", "location_id"], how="outer")
    rows = rows.merge(_products(snapshot.products), on="sku", how="inner")
    rows = rows.merge(_preferred_suppliers(snapshot.supplier_products), on="sku", how="left")

    # -- lead times: learned, else declared
    lt = lead_times[["sku", "supplier_id", "lead_time_mean", "lead_time_std", "lead_time_source"]]
    lt = lt.astype({"sku": "string", "supplier_id": "string"}).drop_duplicates(
        ["sku", "supplier_id"]
    )
    rows = rows.merge(lt, on=["sku", "supplier_id"], how="left")
    dec = declared_lead_times(snapshot.supplier_products, snapshot.suppliers).astype(
        {"sku": "string", "supplier_id": "string"}
    )
    rows = rows.merge(
        dec[["sku", "supplier_id", "declared_lead_time"]], on=["sku", "supplier_id"], how="left"
    )
    rows = rows.sort_values(["sku", "location_id"], ignore_index=True)
    n = len(rows)

    has_supplier = rows["supplier_id"].notna().to_numpy()
    no_lt_row = rows["lead_time_source"].isna().to_numpy() & has_supplier
    L = np.where(no_lt_row, _num(rows["declared_lead_time"]), _num(rows["lead_time_mean"]))
    sL = np.where(no_lt_row, 0.0, _num(rows["lead_time_std"]))
    lt_source = rows["lead_time_source"].astype("string").mask(no_lt_row, "declared")
    lt_source = lt_source.mask(~has_supplier, pd.NA)

    has_fc = rows["_fc_row"].notna().to_numpy()
    d = np.where(has_fc, _num(rows["demand_mean"]), 0.0)
    sd = np.where(has_fc, _num(rows["demand_std"]), 0.0)
    demand_class = rows["demand_class"].astype("string").fillna("none")
    method = rows["method"].astype("string").fillna("none")

    has_stock = rows["_stock_row"].notna().to_numpy()
    on_hand = np.where(has_stock, _num(rows["on_hand"]), 0.0)
    allocated = np.where(has_stock, _num(rows["allocated"]), 0.0)
    mode = rows["replenishment_mode"].astype("string").to_numpy(dtype=object, na_value="stock")
    is_jit = mode == "jit"
    bad_mode = ~np.isin(mode, list(REPLENISHMENT_MODES))

    # -- open purchase orders and open customer demand
    keys = rows[["sku", "location_id"]]
    po = _open_purchase_lines(snapshot).merge(
        keys.assign(_L=L), on=["sku", "location_id"], how="inner"
    )
    days_to_due = (
        (pd.to_datetime(po["expected_at"]) - as_of_ts).dt.total_seconds() / _SECONDS_PER_DAY
    ).to_numpy(dtype=np.float64, na_value=np.nan)
    po = po.assign(
        _due=np.where(days_to_due <= po["_L"].to_numpy(dtype=np.float64), po["remaining"], 0.0),
        _missing=np.isnan(po["remaining"].to_numpy(dtype=np.float64)),
    )
    po_agg = po.groupby(["sku", "location_id"], as_index=False).agg(
        on_order=("remaining", "sum"), on_order_due=("_due", "sum"), _po_missing=("_missing", "any")
    )
    od = _open_demand(snapshot.sales_order_lines)
    extra = keys.merge(po_agg, on=["sku", "location_id"], how="left").merge(
        od, on=["sku", "location_id"], how="left"
    )
    on_order = np.nan_to_num(_num(extra["on_order"]))
    on_order_due = np.nan_to_num(_num(extra["on_order_due"]))
    po_missing = extra["_po_missing"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    open_demand = np.nan_to_num(_num(extra["open_demand"]))

    # -- data problems (per row; the row degrades, the others do not)
    bad_demand = np.isnan(d) | np.isnan(sd) | (d < 0) | (sd < 0)
    bad_lt = has_supplier & (np.isnan(L) | np.isnan(sL) | (L < 0) | (sL < 0))
    bad_stock = np.isnan(on_hand) | np.isnan(allocated) | (allocated < 0)
    moq = _num(rows["moq"])
    pack = _num(rows["pack_size"])
    unit_price = _num(rows["unit_price"])
    bad_moq = has_supplier & (moq < 0)
    d = np.where(bad_demand, np.nan, d)
    sd = np.where(bad_demand, np.nan, sd)
    L = np.where(bad_lt | ~has_supplier, np.nan, L)
    sL = np.where(bad_lt | ~has_supplier, np.nan, sL)
    on_hand = np.where(bad_stock, np.nan, on_hand)
    allocated = np.where(bad_stock, np.nan, allocated)
    on_order = np.where(po_missing, np.nan, on_order)

    # -- ABC on annual value per SKU, then the service level
    unit_cost = _num(rows["unit_cost"])
    unit_cost = np.where(np.isnan(unit_cost) | (unit_cost <= 0), unit_price, unit_cost)
    annual_demand = d * DAYS_PER_YEAR
    value = pd.Series(np.nan_to_num(annual_demand * unit_cost), index=rows.index)
    sku_value = value.groupby(rows["sku"]).sum()
    sku_abc = pd.Series(
        abc_classes(sku_value.to_numpy(), settings.abc_a_share, settings.abc_b_share),
        index=sku_value.index,
    )
    abc = rows["sku"].map(sku_abc).astype("string")

    override = _num(rows["sku"].map(dict(settings.service_level_overrides)))
    product_sl = _num(rows["product_service_level"])
    product_sl = np.where((product_sl > 0) & (product_sl < 1), product_sl, np.nan)
    abc_sl = _num(abc.map(dict(settings.service_levels)))
    service_level = np.where(
        ~np.isnan(override), override, np.where(~np.isnan(product_sl), product_sl, abc_sl)
    )
    sl_source = np.where(
        ~np.isnan(override), "sku_override", np.where(~np.isnan(product_sl), "product", "abc")
    )
    z = _arr(z_for_service_level(service_level))

    # -- the policy
    ss_stock = _arr(safety_stock(z, d, sd, L, sL, R))
    ss = np.where(is_jit, 0.0, ss_stock)
    rop = np.where(is_jit, 0.0, _arr(reorder_point(d, L, ss_stock)))
    s_level = _arr(order_up_to(d, L, R, ss_stock))
    ip = _arr(inventory_position(on_hand, allocated, on_order))
    h = settings.holding_cost_rate * unit_cost
    h = np.where(h > 0, h, np.nan)
    q_eoq = _arr(eoq(annual_demand, settings.order_cost, h))

    shortfall = rop - ip
    trigger_stock = ip <= rop
    raw_stock = (s_level - ip) if R > 0 else np.fmax(q_eoq, shortfall)
    raw_stock = np.where(trigger_stock, raw_stock, 0.0)
    uncovered = open_demand - on_hand - on_order
    raw_jit = np.maximum(uncovered, 0.0)
    raw = np.where(is_jit, raw_jit, raw_stock)
    # NaN where an input of the decision is unknown: never order on a guess.
    # A jit order needs neither d nor L (nor a supplier to know it is needed).
    unknown = bad_stock | po_missing | bad_mode | (~is_jit & (bad_demand | bad_lt | ~has_supplier))
    raw = np.where(unknown, np.nan, raw)
    needs_order = raw > 0

    can_order = has_supplier & ~bad_moq & needs_order
    rounded = _arr(
        round_order_qty(np.where(can_order, raw, 0.0), np.where(bad_moq, 0.0, moq), pack)
    )
    order_qty = np.where(can_order, rounded, 0.0)
    order_value = np.where(order_qty > 0, order_qty * unit_price, 0.0)

    free = on_hand - allocated
    with np.errstate(divide="ignore", invalid="ignore"):
        days_of_cover = np.where(d == 0, np.inf, free / np.where(d == 0, 1.0, d))
    lt_demand = d * L
    risk_stock = (free + on_order_due) < lt_demand
    risk_jit = (open_demand - on_hand - on_order_due) > 0
    stockout_risk = np.where(is_jit, risk_jit, risk_stock)
    below_ss = free < ss

    # -- explanations
    rounding = _rounding_text(can_order, raw, moq, pack, order_qty)
    reason = _reasons(
        is_jit=is_jit,
        periodic=R > 0,
        has_supplier=has_supplier,
        problems=_problems(
            n,
            bad_demand=bad_demand & ~is_jit,
            bad_lt=bad_lt & ~is_jit,
            bad_stock=bad_stock,
            po_missing=po_missing,
            bad_mode=bad_mode,
            bad_moq=bad_moq,
            mode=mode,
        ),
        needs_order=needs_order,
        trigger=trigger_stock,
        values={
            "ip": ip,
            "rop": rop,
            "s_level": s_level,
            "d": d,
            "L": L,
            "ss": ss,
            "eoq": q_eoq,
            "shortfall": shortfall,
            "raw": raw,
            "order_qty": order_qty,
            "open_demand": open_demand,
            "on_hand": on_hand,
            "on_order": on_order,
        },
    )

    out = pd.DataFrame(
        {
            "sku": rows["sku"].to_numpy(),
            "location_id": rows["location_id"].to_numpy(),
            "supplier_id": rows["supplier_id"].to_numpy(),
            "supplier_sku": rows["supplier_sku"].to_numpy(),
            "replenishment_mode": mode,
            "demand_class": demand_class.to_numpy(),
            "method": method.to_numpy(),
            "abc_class": abc.to_numpy(),
            "demand_mean": d,
            "demand_std": sd,
            "lead_time_mean": L,
            "lead_time_std": sL,
            "lead_time_source": lt_source.to_numpy(),
            "review_period": np.full(n, R),
            "service_level": service_level,
            "service_level_source": sl_source,
            "z": z,
            "safety_stock": ss,
            "reorder_point": rop,
            "on_hand": on_hand,
            "allocated": allocated,
            "on_order": on_order,
            "inventory_position": ip,
            "open_demand": open_demand,
            "annual_demand": annual_demand,
            "eoq": q_eoq,
            "raw_qty": raw,
            "moq": moq,
            "pack_size": pack,
            "order_qty": order_qty,
            "rounding": rounding,
            "unit_price": unit_price,
            "order_value": order_value,
            "needs_order": needs_order,
            "days_of_cover": days_of_cover,
            "stockout_risk": stockout_risk.astype(bool),
            "below_safety_stock": below_ss.astype(bool),
            "reason": reason,
        },
        columns=PLAN_COLUMNS,
    )
    return out.astype({c: "string" for c in _STRING_COLUMNS})


def _rounding_text(
    can_order: BoolArray, raw: FloatArray, moq: FloatArray, pack: FloatArray, qty: FloatArray
) -> TextArray:
    """'raw 37.2 → MOQ 48 → pack 12: 48' for rows that order (the MOQ step
    only when it binds); '' for the others."""
    out = np.full(len(can_order), "", dtype=object)
    idx = np.flatnonzero(can_order)
    if idx.size == 0:
        return out
    raw, moq, pack, qty = raw[idx], moq[idx], pack[idx], qty[idx]
    moq_binds = np.nan_to_num(moq) > raw
    eff_pack = np.where(np.isnan(pack) | (pack <= 0), 1.0, pack)
    out[idx] = _cat(
        "raw ",
        _fmt(raw),
        np.where(moq_binds, _cat(" → MOQ ", _fmt(moq)), ""),
        " → pack ",
        _fmt(eff_pack),
        ": ",
        _fmt(qty),
    )
    return out


def _problems(
    n: int,
    *,
    bad_demand: BoolArray,
    bad_lt: BoolArray,
    bad_stock: BoolArray,
    po_missing: BoolArray,
    bad_mode: BoolArray,
    bad_moq: BoolArray,
    mode: npt.NDArray[Any],
) -> TextArray:
    """'; '-separated list of what is wrong with each row ('' when nothing)."""
    msgs: list[tuple[BoolArray, Any]] = [
        (bad_mode, _cat("unknown replenishment_mode '", mode.astype(str), "'")),
        (bad_demand, "demand forecast missing (e.g. out of stock on every day of the history)"),
        (bad_lt, "lead time missing or negative"),
        (bad_stock, "stock level missing or allocated negative"),
        (po_missing, "an open purchase-order line has no quantity"),
        (bad_moq, "supplier MOQ negative"),
    ]
    out = np.full(n, "", dtype=object)
    for flag, msg in msgs:
        piece = np.where(flag, msg, "").astype(object)
        sep = np.where(flag & (out != ""), "; ", "").astype(object)
        out = _cat(out, sep, piece)
    return out


class _V(NamedTuple):
    """A number in a reason template: the name of an entry of ``values``."""

    name: str


_POSITION = ("Inventory position ", _V("ip"), " is at or below the reorder point ", _V("rop"))
_STOCK_TERMS = (" (d ", _V("d"), "/day × L ", _V("L"), " days + SS ", _V("ss"), "): order ")
_JIT_STOCK = (" on hand ", _V("on_hand"), " + on order ", _V("on_order"))
_ROUNDED = (", rounded to ", _V("order_qty"), ".")

#: (case name, reason template); the first matching case wins (see _reasons).
_REASON_TEMPLATES: dict[str, tuple[str | _V, ...]] = {
    "problem": ("Not planned: ", _V("problems"), "."),
    "no_supplier_needed": (
        "No supplier: nothing ordered although ", _V("raw"), " units are needed.",
    ),
    "no_supplier": ("No supplier: planned for information only, nothing to order.",),
    "jit_order": (
        "Just-in-time: open customer demand ", _V("open_demand"), " exceeds", *_JIT_STOCK,
        ": order the uncovered ", _V("raw"), *_ROUNDED,
    ),
    "jit_covered": (
        "Just-in-time: open customer demand ", _V("open_demand"), " is covered by", *_JIT_STOCK,
        ": nothing to order.",
    ),
    "jit_idle": ("Just-in-time: no open customer demand: nothing to order.",),
    "stock_order_up_to": (
        *_POSITION, ": order up to S = ", _V("s_level"), ", i.e. ", _V("raw"), *_ROUNDED,
    ),
    "stock_order_no_eoq": (
        *_POSITION, *_STOCK_TERMS, "the shortfall ", _V("shortfall"),
        " (EOQ unknown: no unit cost)", *_ROUNDED,
    ),
    "stock_order": (
        *_POSITION, *_STOCK_TERMS, "max(EOQ ", _V("eoq"), ", ROP − IP ", _V("shortfall"),
        ") = ", _V("raw"), *_ROUNDED,
    ),
    "stock_no_demand": (
        "No demand expected and inventory position ", _V("ip"), " covers the reorder point ",
        _V("rop"), ": nothing to order.",
    ),
    "stock_idle": (
        "Inventory position ", _V("ip"), " is above the reorder point ", _V("rop"),
        ": nothing to order.",
    ),
}  # fmt: skip


def _reasons(
    *,
    is_jit: BoolArray,
    periodic: bool,
    has_supplier: BoolArray,
    problems: TextArray,
    needs_order: BoolArray,
    trigger: BoolArray,
    values: Mapping[str, FloatArray],
) -> TextArray:
    """One sentence per row: why this quantity, or why nothing.

    Each row falls in the first matching case of :data:`_REASON_TEMPLATES`;
    each case then formats only its own rows (a few numpy passes per case,
    no per-row loop).
    """
    conditions = {
        "problem": problems != "",
        "no_supplier_needed": ~has_supplier & needs_order,
        "no_supplier": ~has_supplier,
        "jit_order": is_jit & needs_order,
        "jit_covered": is_jit & (values["open_demand"] > 0),
        "jit_idle": is_jit,
        "stock_order_up_to": needs_order & periodic,
        "stock_order_no_eoq": needs_order & np.isnan(values["eoq"]),
        "stock_order": needs_order,
        "stock_no_demand": trigger,
        "stock_idle": np.ones(len(is_jit), dtype=bool),
    }
    names = list(_REASON_TEMPLATES)
    case = np.select([conditions[name] for name in names], list(range(len(names))))
    reason = np.full(len(is_jit), "", dtype=object)
    for k, name in enumerate(names):
        idx = np.flatnonzero(case == k)
        if idx.size == 0:
            continue
        parts = [
            part
            if not isinstance(part, _V)
            else problems[idx]
            if part.name == "problems"
            else _fmt(values[part.name][idx])
            for part in _REASON_TEMPLATES[name]
        ]
        reason[idx] = _cat(*parts)
    return reason
