"""Which plan rows deserve an alert, and how urgent each one is.

Pure: plan rows in, :class:`Alert` objects out. Sending and de-duplication
happen elsewhere (notifiers, the store).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from replenish.notify.alerts import Alert


def _num(v: object, digits: int = 1) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return round(f, digits) if math.isfinite(f) else f


def plan_alerts(plans: pd.DataFrame) -> list[Alert]:
    """Alerts for SKUs at risk, most urgent first.

    * ``stockout_risk`` (critical): available stock plus what arrives in time
      will not cover demand until a delivery ordered today can arrive.
    * ``below_safety_stock`` (warning): available stock is already below the
      safety stock, but no stockout is expected before the next delivery.
    """
    alerts: list[Alert] = []
    if plans.empty:
        return alerts
    risky = plans[
        plans["stockout_risk"].astype("boolean").fillna(False).astype(bool)
        | plans["below_safety_stock"].astype("boolean").fillna(False).astype(bool)
    ]
    risky = risky.sort_values("days_of_cover", kind="stable")
    for r in risky.to_dict("records"):
        stockout = bool(r.get("stockout_risk"))
        cover = _num(r.get("days_of_cover"))
        lead = _num(r.get("lead_time_mean"))
        details = {
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
        if stockout:
            alerts.append(
                Alert(
                    kind="stockout_risk",
                    severity="critical",
                    title=f"{sku} @ {loc}: stockout before the next delivery",
                    message=(
                        f"{cover:g} days of cover against a lead time of {lead:g} days; "
                        f"proposed order {details['proposed_order_qty']:g} "
                        f"from {r.get('supplier_id') or 'no supplier'}."
                    ),
                    sku=sku,
                    location_id=loc,
                    details=details,
                )
            )
        else:
            alerts.append(
                Alert(
                    kind="below_safety_stock",
                    severity="warning",
                    title=f"{sku} @ {loc}: below safety stock",
                    message=(
                        f"available {details['on_hand'] - details['allocated']:g} "
                        f"< safety stock {details['safety_stock']:g}."
                    ),
                    sku=sku,
                    location_id=loc,
                    details=details,
                )
            )
    return alerts


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
