"""Which conditions deserve an alert, and how urgent each one is (docs/alerts.md).

Pure: plan rows and contract frames in, :class:`Alert` objects out. Sending
and de-duplication across runs happen elsewhere (the notifiers,
:mod:`replenish.notify.lifecycle`, the store).

Kinds and their severity rules (thresholds: :class:`AlertRules`):

=====================  =============================================================
``stockout_risk``      stock runs out before a delivery ordered now can arrive
                       (plan flag). critical if ≤ ``stockout_critical_days`` of
                       cover are left or the SKU is class A; warning otherwise.
``below_safety_stock`` available stock < safety stock, no stockout expected
                       before the next delivery. warning if available <
                       ``below_ss_warning_ratio`` · SS; info otherwise.
``overstock``          days of cover > ``overstock_days`` and the stock beyond
                       that cover is worth ≥ ``overstock_min_value``. warning
                       from ``overstock_warning_value``; info below.
``po_late``            a sent/confirmed purchase order with lines not received
                       more than ``po_late_grace_days`` after its expected date.
                       critical from ``po_late_critical_days`` late, or when one
                       of its SKUs is at stockout risk at its location; warning
                       otherwise.
``lead_time_drift``    a supplier's learned lead time (median over its SKUs
                       learned from receipts) differs from its declared one by
                       ≥ max(``lead_time_drift_days``, ``lead_time_drift_ratio``
                       · declared). critical when longer by ≥
                       ``lead_time_drift_critical_ratio`` · declared; warning
                       when longer; info when shorter.
``data_gate_stopped``  the validation gate stopped the run. critical.
``rows_quarantined``   input rows were rejected (and kept). warning.
``flow_failed``        a flow run failed (state hook). critical.
``flow_crashed``       a flow run crashed (infrastructure). critical.
=====================  =============================================================
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from replenish.errors import ConfigurationError
from replenish.model import ErpSnapshot
from replenish.notify.alerts import Alert, DetailValue, one_line
from replenish.notify.lifecycle import AlertScope
from replenish.policy.leadtime import declared_lead_times

__all__ = [
    "DEFAULT_RULES",
    "FLOW_KINDS",
    "GATE_KINDS",
    "KINDS",
    "SKU_KINDS",
    "SUPPLY_KINDS",
    "AlertRules",
    "flow_alert",
    "gate_scopes",
    "lead_time_drift_alerts",
    "overstock_alerts",
    "plan_alerts",
    "po_late_alerts",
    "quality_alerts",
    "run_alerts",
    "run_scopes",
]

#: Every kind with one line on what raises it (the CLI and the docs list them).
KINDS: dict[str, str] = {
    "stockout_risk": "stock runs out before a delivery ordered now can arrive",
    "below_safety_stock": "available stock below the safety stock",
    "overstock": "days of cover above the threshold, value tied up",
    "po_late": "a supplier purchase order is late against its expected date",
    "lead_time_drift": "a supplier's learned lead time differs from its declared one",
    "data_gate_stopped": "the validation gate stopped the run",
    "rows_quarantined": "input rows were rejected by the validation gate",
    "flow_failed": "a flow run failed",
    "flow_crashed": "a flow run crashed",
}
#: Kinds about one SKU at one location, evaluated by every plan.
SKU_KINDS = frozenset({"stockout_risk", "below_safety_stock", "overstock"})
#: Kinds about suppliers and their orders, evaluated by a run of every SKU.
SUPPLY_KINDS = frozenset({"po_late", "lead_time_drift"})
#: Kinds of the validation gate.
GATE_KINDS = frozenset({"data_gate_stopped", "rows_quarantined"})
#: Kinds of the flow state hooks (``ref`` is the flow's name).
FLOW_KINDS = frozenset({"flow_failed", "flow_crashed"})


@dataclass(frozen=True)
class AlertRules:
    """The thresholds of every alert rule (business settings: the flow takes
    overrides as its ``alert_rules`` parameter, a mapping of these names).

    Days are calendar days; values are in the products' cost currency.
    """

    #: stockout_risk is critical at or below this many days of cover
    stockout_critical_days: float = 3.0
    #: below_safety_stock is a warning when available < ratio · safety stock
    below_ss_warning_ratio: float = 0.5
    #: overstock: days of cover above this
    overstock_days: float = 180.0
    #: overstock: raised only when the excess stock is worth at least this
    overstock_min_value: float = 500.0
    #: overstock: a warning from this excess value (info below)
    overstock_warning_value: float = 5000.0
    #: po_late: days after the expected date before a PO counts as late
    po_late_grace_days: int = 0
    #: po_late: critical from this many days late
    po_late_critical_days: int = 7
    #: po_late: while still late, re-sent every this many more days late
    po_late_repeat_days: int = 7
    #: lead_time_drift: minimum drift in days ...
    lead_time_drift_days: float = 2.0
    #: ... and as a fraction of the declared lead time (the larger applies)
    lead_time_drift_ratio: float = 0.25
    #: lead_time_drift: critical when longer by this fraction of declared (1.0: twice as long)
    lead_time_drift_critical_ratio: float = 1.0
    #: worsening: a measure moving the bad way by this fraction of its announced value
    worse_ratio: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"alert rule {f.name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(
                    f"alert rule {f.name}: expected a finite number >= 0, got {value!r}"
                )
            if f.type == "int" and value != int(value):
                raise ConfigurationError(
                    f"alert rule {f.name}: expected a whole number of days, got {value!r}"
                )
            object.__setattr__(self, f.name, int(value) if f.type == "int" else float(value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> AlertRules:
        """Defaults overridden by ``values``; an unknown name is a
        :class:`~replenish.errors.ConfigurationError` listing the known ones."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown alert rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


DEFAULT_RULES = AlertRules()


# --------------------------------------------------------------------------- helpers


def _num(v: object, digits: int = 1) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return round(f, digits) if math.isfinite(f) else f


def _col(frame: pd.DataFrame, name: str, default: object = np.nan) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index)


def _flag(frame: pd.DataFrame, name: str) -> pd.Series:
    return _col(frame, name, False).astype("boolean").fillna(False).astype(bool)


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(_col(frame, name), errors="coerce").to_numpy(dtype=np.float64)


def _unit_costs(products: pd.DataFrame | None) -> dict[str, float]:
    """sku → unit cost, for products with a positive cost."""
    if products is None or products.empty or "unit_cost" not in products.columns:
        return {}
    cost = pd.to_numeric(products["unit_cost"], errors="coerce")
    ok = cost.notna() & (cost > 0)
    return dict(zip(products.loc[ok, "sku"].astype(str), cost[ok].astype(float), strict=True))


def _money(value: float) -> str:
    return f"{value:,.2f}"


# --------------------------------------------------------------------------- plans


def plan_alerts(
    plans: pd.DataFrame,
    rules: AlertRules = DEFAULT_RULES,
    *,
    unit_costs: Mapping[str, float] | None = None,
) -> list[Alert]:
    """Stock alerts of the plan rows, most urgent first: ``stockout_risk``,
    ``below_safety_stock`` (a row at stockout risk raises only that one), then
    :func:`overstock_alerts`.

    ``days_of_cover`` = (on_hand − allocated) / daily demand (the plan's).
    """
    alerts: list[Alert] = []
    if plans.empty:
        return alerts
    risky = plans[_flag(plans, "stockout_risk") | _flag(plans, "below_safety_stock")]
    risky = risky.sort_values("days_of_cover", kind="stable")
    for r in risky.to_dict("records"):
        stockout = bool(r.get("stockout_risk"))
        cover = _num(r.get("days_of_cover"))
        lead = _num(r.get("lead_time_mean"))
        details: dict[str, DetailValue] = {
            "on_hand": _num(r.get("on_hand")),
            "allocated": _num(r.get("allocated")),
            "on_order": _num(r.get("on_order")),
            "safety_stock": _num(r.get("safety_stock")),
            "reorder_point": _num(r.get("reorder_point")),
            "demand_per_day": _num(r.get("demand_mean"), 2),
            "days_of_cover": cover,
            "lead_time_days": lead,
            "proposed_order_qty": _num(r.get("order_qty"), 0),
        }
        sku, loc = str(r["sku"]), str(r["location_id"])
        supplier = r.get("supplier_id")
        supplier = str(supplier) if isinstance(supplier, str) and supplier else None
        available = float(details["on_hand"]) - float(details["allocated"])
        if stockout:
            abc = str(r.get("abc_class") or "")
            critical = (
                (math.isfinite(cover) and cover <= rules.stockout_critical_days)
                or available <= 0
                or abc == "A"
            )
            alerts.append(
                Alert(
                    kind="stockout_risk",
                    severity="critical" if critical else "warning",
                    title=f"{sku} @ {loc}: stockout before the next delivery",
                    message=(
                        f"{cover:g} days of cover against a lead time of {lead:g} days; "
                        f"proposed order {details['proposed_order_qty']:g} "
                        f"from {supplier or 'no supplier'}."
                    ),
                    sku=sku,
                    location_id=loc,
                    details={**details, **({"abc_class": abc} if abc else {})},
                )
            )
        else:
            ss = float(details["safety_stock"])
            warning = math.isfinite(ss) and available < rules.below_ss_warning_ratio * ss
            alerts.append(
                Alert(
                    kind="below_safety_stock",
                    severity="warning" if warning else "info",
                    title=f"{sku} @ {loc}: below safety stock",
                    message=f"available {available:g} < safety stock {ss:g}.",
                    sku=sku,
                    location_id=loc,
                    details=details,
                )
            )
    return alerts + overstock_alerts(plans, rules, unit_costs=unit_costs)


def overstock_alerts(
    plans: pd.DataFrame,
    rules: AlertRules = DEFAULT_RULES,
    *,
    unit_costs: Mapping[str, float] | None = None,
) -> list[Alert]:
    """``overstock``: more days of cover than ``rules.overstock_days``, worth it.

    With available stock A = on_hand − allocated, daily demand d and unit cost
    c (``unit_costs`` by SKU — the products' ``unit_cost`` — else the plan's
    supplier ``unit_price``)::

        days_of_cover = A / d                    (∞ when d = 0)
        excess_units  = A − d · overstock_days   (all of A when d = 0)
        excess_value  = excess_units · c         (the value tied up)

    Raised when days_of_cover > overstock_days and excess_value ≥
    ``overstock_min_value`` (a SKU without a known cost is not valued and not
    raised). Open purchase orders are not counted: the alert is about stock on
    the shelf. Largest excess value first.
    """
    if plans.empty:
        return []
    on_hand, allocated = _floats(plans, "on_hand"), _floats(plans, "allocated")
    available = on_hand - np.nan_to_num(allocated)
    d = _floats(plans, "demand_mean")
    costs = unit_costs or {}
    sku_cost = plans["sku"].astype(str).map(costs).to_numpy(dtype=np.float64, na_value=np.nan)
    price = _floats(plans, "unit_price")
    cost = np.where(np.isfinite(sku_cost), sku_cost, np.where(price > 0, price, np.nan))
    horizon = rules.overstock_days
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(d > 0, available / d, np.inf)
        excess = np.where(d > 0, available - d * horizon, available)
    value = excess * cost
    hit = (
        np.isfinite(d)
        & (d >= 0)
        & (available > 0)
        & (cover > horizon)
        & np.isfinite(value)
        & (value >= rules.overstock_min_value)
    )
    rows = np.flatnonzero(hit)
    rows = rows[np.argsort(-value[rows], kind="stable")]
    alerts = []
    for i in rows:
        sku, loc = str(plans["sku"].iloc[i]), str(plans["location_id"].iloc[i])
        days = float(cover[i])
        cover_text = f"{days:,.0f} days of cover" if math.isfinite(days) else "no demand"
        alerts.append(
            Alert(
                kind="overstock",
                severity="warning" if value[i] >= rules.overstock_warning_value else "info",
                title=f"{sku} @ {loc}: overstock, {cover_text}",
                message=(
                    f"{excess[i]:,.0f} units beyond {horizon:g} days of demand tie up "
                    f"{_money(float(value[i]))}; stock on hand is worth "
                    f"{_money(float(available[i] * cost[i]))}."
                ),
                sku=sku,
                location_id=loc,
                details={
                    "on_hand": _num(on_hand[i]),
                    "allocated": _num(allocated[i]),
                    "demand_per_day": _num(d[i], 2),
                    "days_of_cover": _num(days),
                    "excess_units": _num(excess[i]),
                    "unit_cost": _num(cost[i], 2),
                    "excess_value": _num(value[i], 2),
                },
            )
        )
    return alerts


# --------------------------------------------------------------------------- supply


def po_late_alerts(
    purchase_orders: pd.DataFrame,
    purchase_order_lines: pd.DataFrame,
    as_of: date,
    rules: AlertRules = DEFAULT_RULES,
    *,
    at_risk: Collection[tuple[str, str]] = (),
    unit_costs: Mapping[str, float] | None = None,
) -> list[Alert]:
    """``po_late``: open purchase orders past their expected date, most late first.

    A PO counts when its status is 'sent' or 'confirmed', it has an
    ``expected_at``, at least one line is not fully received (qty_received <
    qty_ordered), and ``days_late = as_of − expected date`` (calendar days) >
    ``po_late_grace_days``. ``at_risk``: (sku, location_id) pairs at stockout
    risk; a late PO carrying one of them is critical whatever its delay.
    """
    if purchase_orders.empty or purchase_order_lines.empty:
        return []
    po = purchase_orders[
        purchase_orders["status"].astype("string").str.lower().isin(["sent", "confirmed"])
        & purchase_orders["expected_at"].notna()
    ]
    if po.empty:
        return []
    expected = pd.to_datetime(po["expected_at"]).dt.normalize()
    days_late = (pd.Timestamp(as_of) - expected).dt.days
    po = po.assign(_expected=expected, _days_late=days_late)
    po = po[po["_days_late"] > rules.po_late_grace_days]
    if po.empty:
        return []
    lines = purchase_order_lines[purchase_order_lines["po_id"].isin(po["po_id"])]
    ordered = pd.to_numeric(lines["qty_ordered"], errors="coerce").fillna(0.0)
    received = pd.to_numeric(lines["qty_received"], errors="coerce").fillna(0.0)
    open_qty = (ordered - received).clip(lower=0.0)
    lines = lines.assign(_open=open_qty)[open_qty > 0]
    costs = unit_costs or {}
    lines = lines.assign(_value=lines["_open"] * lines["sku"].astype(str).map(costs))
    risk = set(at_risk)
    alerts = []
    by_po = dict(tuple(lines.groupby("po_id", sort=False)))
    for r in po.sort_values(["_days_late", "po_id"], ascending=[False, True]).to_dict("records"):
        mine = by_po.get(r["po_id"])
        if mine is None or mine.empty:
            continue  # everything arrived: the status is only behind
        po_id, supplier = str(r["po_id"]), str(r["supplier_id"])
        loc = str(r["location_id"]) if pd.notna(r.get("location_id")) else None
        late = int(r["_days_late"])
        skus = list(dict.fromkeys(mine["sku"].astype(str)))
        risky = [s for s in skus if loc is not None and (s, loc) in risk]
        critical = late >= rules.po_late_critical_days or bool(risky)
        value = float(mine["_value"].sum(min_count=1)) if mine["_value"].notna().any() else None
        expected_day = r["_expected"].date().isoformat()
        message = (
            f"expected {expected_day}; {len(mine)} line(s), {mine['_open'].sum():g} units "
            f"not received ({', '.join(skus[:5])}{' …' if len(skus) > 5 else ''})."
        )
        if risky:
            message += f" At stockout risk: {', '.join(risky[:5])}."
        details: dict[str, DetailValue] = {
            "expected_at": expected_day,
            "days_late": late,
            "open_lines": len(mine),
            "open_qty": _num(mine["_open"].sum()),
        }
        if value is not None:
            details["open_value"] = _num(value, 2)
        if risky:
            details["skus_at_risk"] = len(risky)
        alerts.append(
            Alert(
                kind="po_late",
                severity="critical" if critical else "warning",
                title=f"PO {po_id} from {supplier}: {late} day{'s' if late != 1 else ''} late",
                message=message,
                location_id=loc,
                supplier_id=supplier,
                ref=po_id,
                details=details,
            )
        )
    return alerts


def lead_time_drift_alerts(
    plans: pd.DataFrame, declared: pd.DataFrame, rules: AlertRules = DEFAULT_RULES
) -> list[Alert]:
    """``lead_time_drift``: per supplier, learned against declared lead time.

    Drift is measured against the **declared** lead time (``declared`` as
    :func:`replenish.policy.leadtime.declared_lead_times` returns it: order
    processing + supplier + transport + receiving days), over the SKUs planned
    with this supplier whose lead time was learned from receipts
    (``lead_time_source`` 'receipts' or 'supplier'; a declared value cannot
    drift from itself)::

        learned  = median over the supplier's SKUs of the plan's lead_time_mean
        declared = median of their declared lead times
        drift    = median of (learned − declared) per SKU

    Raised when |drift| ≥ max(``lead_time_drift_days``,
    ``lead_time_drift_ratio`` · declared). Largest |drift| first.
    """
    need = {"sku", "supplier_id", "lead_time_mean", "lead_time_source"}
    if plans.empty or not need <= set(plans.columns) or declared.empty:
        return []
    pairs = plans.loc[
        plans["supplier_id"].notna()
        & plans["lead_time_source"].astype("string").isin(["receipts", "supplier"]),
        ["sku", "supplier_id", "lead_time_mean"],
    ].drop_duplicates(["sku", "supplier_id"])
    pairs = pairs.astype({"sku": str, "supplier_id": str}).merge(
        declared[["sku", "supplier_id", "declared_lead_time"]].astype(
            {"sku": str, "supplier_id": str}
        ),
        on=["sku", "supplier_id"],
        how="inner",
    )
    pairs["lead_time_mean"] = pd.to_numeric(pairs["lead_time_mean"], errors="coerce")
    pairs = pairs.dropna(subset=["lead_time_mean", "declared_lead_time"])
    if pairs.empty:
        return []
    pairs = pairs.assign(drift=pairs["lead_time_mean"] - pairs["declared_lead_time"])
    found = []
    for supplier, group in pairs.groupby("supplier_id", sort=True):
        learned = float(group["lead_time_mean"].median())
        dec = float(group["declared_lead_time"].median())
        drift = float(group["drift"].median())
        if abs(drift) < max(rules.lead_time_drift_days, rules.lead_time_drift_ratio * dec):
            continue
        worst = group.iloc[int(np.argmax(group["drift"].abs().to_numpy()))]
        if drift > 0 and dec > 0 and drift >= rules.lead_time_drift_critical_ratio * dec:
            severity = "critical"
        else:
            severity = "warning" if drift > 0 else "info"
        pct = drift / dec if dec > 0 else float("nan")
        pct_text = f", {pct:+.0%}" if math.isfinite(pct) else ""
        found.append(
            (
                abs(drift),
                Alert(
                    kind="lead_time_drift",
                    severity=severity,
                    title=(
                        f"Supplier {supplier}: lead time {learned:g} days learned vs "
                        f"{dec:g} declared ({drift:+g} days{pct_text})"
                    ),
                    message=(
                        f"Median over {len(group)} SKU(s) learned from receipts; the plan "
                        f"uses the learned value. Largest: {worst['sku']} "
                        f"({float(worst['lead_time_mean']):g} vs "
                        f"{float(worst['declared_lead_time']):g} days). "
                        + (
                            "Deliveries take longer than declared: update the supplier's "
                            "lead time in the ERP."
                            if drift > 0
                            else "Deliveries arrive sooner than declared."
                        )
                    ),
                    supplier_id=str(supplier),
                    details={
                        "declared_days": _num(dec),
                        "learned_days": _num(learned),
                        "drift_days": _num(drift),
                        "abs_drift_days": _num(abs(drift)),
                        "drift_pct": _num(pct * 100, 0),
                        "skus": len(group),
                    },
                ),
            )
        )
    found.sort(key=lambda item: -item[0])
    return [alert for _, alert in found]


# --------------------------------------------------------------------------- gate, flows


def quality_alerts(blocking: Sequence[str], quarantined: int) -> list[Alert]:
    """Alerts of the validation gate.

    * ``data_gate_stopped`` (critical): the run stopped before ordering; one
      alert listing every blocking dataset failure (``blocking``).
    * ``rows_quarantined`` (warning): input rows were rejected and kept.
    """
    alerts = []
    if blocking:
        alerts.append(
            Alert(
                kind="data_gate_stopped",
                severity="critical",
                title="Validation gate stopped the run: no order written",
                message="; ".join(blocking),
                details={"failures": len(blocking)},
            )
        )
    if quarantined:
        alerts.append(
            Alert(
                kind="rows_quarantined",
                severity="warning",
                title=f"{quarantined} input rows quarantined",
                message="Rejected rows were kept with their reason; "
                "`replenish quarantine` lists them.",
                details={"rows": quarantined},
            )
        )
    return alerts


def flow_alert(
    flow_name: str,
    *,
    crashed: bool,
    flow_run_id: str,
    flow_run_name: str,
    state_name: str,
    message: str,
    failures: int = 1,
) -> Alert:
    """``flow_failed`` / ``flow_crashed`` (critical) for a flow run that ended
    badly; ``ref`` is the flow's name (one open alert per flow, resolved by
    its next completed run), ``failures`` the failed runs in a row."""
    what = "crashed" if crashed else "failed"
    in_a_row = f" ({failures} runs in a row)" if failures > 1 else ""
    return Alert(
        kind="flow_crashed" if crashed else "flow_failed",
        severity="critical",
        title=f"Flow {flow_name} {what}: run {flow_run_name}{in_a_row}",
        message=one_line(message)[:1000] or f"The flow run ended {state_name}.",
        ref=flow_name,
        details={
            "flow_run_id": flow_run_id,
            "flow_run": flow_run_name,
            "state": state_name,
            "failures": failures,
        },
    )


# --------------------------------------------------------------------------- one run


def run_alerts(
    plans: pd.DataFrame,
    snapshot: ErpSnapshot,
    as_of: date,
    *,
    quarantined: int = 0,
    rules: AlertRules = DEFAULT_RULES,
    skus: Sequence[str] | None = None,
) -> list[Alert]:
    """Every alert of a completed run: the stock alerts of the plans, late
    purchase orders and lead-time drift (only when every SKU was planned:
    ``skus`` None), and quarantined rows."""
    costs = _unit_costs(snapshot.products)
    alerts = plan_alerts(plans, rules, unit_costs=costs)
    if not skus:
        risk: set[tuple[str, str]] = set()
        if not plans.empty and "stockout_risk" in plans.columns:
            flagged = plans[_flag(plans, "stockout_risk")]
            risk = set(
                zip(flagged["sku"].astype(str), flagged["location_id"].astype(str), strict=True)
            )
        alerts += po_late_alerts(
            snapshot.purchase_orders,
            snapshot.purchase_order_lines,
            as_of,
            rules,
            at_risk=risk,
            unit_costs=costs,
        )
        declared = declared_lead_times(snapshot.supplier_products, snapshot.suppliers)
        alerts += lead_time_drift_alerts(plans, declared, rules)
    alerts += quality_alerts([], quarantined)
    return alerts


def run_scopes(skus: Sequence[str] | None, flow_name: str | None = None) -> list[AlertScope]:
    """What a completed run evaluated (its open alerts not raised again are
    resolved): the stock kinds (of ``skus`` only, when given); with every SKU
    planned, also the supply kinds and the gate; and the failures of
    ``flow_name`` (it completed)."""
    scopes = [AlertScope(SKU_KINDS, skus=frozenset(skus) if skus else None)]
    if not skus:
        scopes.append(AlertScope(SUPPLY_KINDS | GATE_KINDS))
    if flow_name:
        scopes.append(AlertScope(FLOW_KINDS, refs=frozenset({flow_name})))
    return scopes


def gate_scopes() -> list[AlertScope]:
    """What a run stopped by the gate evaluated: the gate stop itself (it stays
    open); nothing else is resolved."""
    return [AlertScope(frozenset({"data_gate_stopped"}))]
