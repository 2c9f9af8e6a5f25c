"""Alert rules and their severities (docs/alerts.md, "Kinds and severities"),
and the worsening rules of the lifecycle. Pure: frames in, alerts out."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from replenish.errors import ConfigurationError
from replenish.model import ErpSnapshot, coerce
from replenish.notify import Alert
from replenish.notify.lifecycle import AlertScope, measure_of, worsened
from replenish.notify.rules import (
    KINDS,
    AlertRules,
    flow_alert,
    lead_time_drift_alerts,
    overstock_alerts,
    plan_alerts,
    po_late_alerts,
    run_alerts,
    run_scopes,
)
from replenish.policy.leadtime import declared_lead_times

AS_OF = date(2026, 11, 20)
RULES = AlertRules()


def plans(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "sku": ["A", "B", "C", "D"],
        "location_id": ["WH1"] * 4,
        "supplier_id": ["S1", "S1", "S2", None],
        "abc_class": ["B", "A", "C", "C"],
        "on_hand": [10.0, 10.0, 50.0, 0.0],
        "allocated": [0.0, 0.0, 0.0, 0.0],
        "on_order": [0.0] * 4,
        "safety_stock": [40.0, 40.0, 60.0, 5.0],
        "reorder_point": [90.0, 90.0, 100.0, 10.0],
        "demand_mean": [5.0, 1.0, 2.0, 1.0],
        "lead_time_mean": [10.0, 10.0, 10.0, 10.0],
        "order_qty": [100.0, 100.0, 0.0, 0.0],
        "days_of_cover": [2.0, 10.0, 25.0, 0.0],
        "stockout_risk": [True, True, False, True],
        "below_safety_stock": [True, True, True, True],
        "unit_price": [1.0, 1.0, 1.0, 1.0],
    }
    base.update(columns)
    return pd.DataFrame(base)


# =========================================================================== stock


def test_stockout_and_safety_stock_severities() -> None:
    alerts = {(a.kind, a.sku): a for a in plan_alerts(plans())}
    # A: 2 days of cover <= 3 → critical; B: 10 days but class A → critical;
    # D: nothing on the shelf → critical; C: no stockout, 50 < 60 SS but >= 30 → info
    assert alerts[("stockout_risk", "A")].severity == "critical"
    assert alerts[("stockout_risk", "B")].severity == "critical"
    assert alerts[("stockout_risk", "D")].severity == "critical"
    assert alerts[("below_safety_stock", "C")].severity == "info"
    assert ("below_safety_stock", "A") not in alerts  # the stockout says it
    b_class = plan_alerts(plans(abc_class=["B", "B", "C", "C"]))
    assert next(a for a in b_class if a.sku == "B").severity == "warning"
    low = plan_alerts(plans(on_hand=[10.0, 10.0, 20.0, 0.0]))
    assert next(a for a in low if a.sku == "C").severity == "warning"  # 20 < 0.5 * 60
    a = alerts[("stockout_risk", "A")]
    assert a.details["days_of_cover"] == 2.0 and a.details["proposed_order_qty"] == 100
    assert "from S1" in a.message
    # the threshold is a setting
    lax = plan_alerts(plans(abc_class=["B"] * 4), AlertRules(stockout_critical_days=1.0))
    assert next(x for x in lax if x.sku == "A").severity == "warning"


def test_overstock_value_and_severity() -> None:
    frame = plans(
        sku=["SLOW", "DEAD", "CHEAP", "OK"],
        stockout_risk=[False] * 4,
        below_safety_stock=[False] * 4,
        on_hand=[1000.0, 300.0, 1000.0, 100.0],
        allocated=[100.0, 0.0, 0.0, 0.0],
        demand_mean=[2.0, 0.0, 1.0, 1.0],
        unit_price=[20.0, 50.0, 0.1, 20.0],
        days_of_cover=[450.0, np.inf, 1000.0, 100.0],
    )
    found = {a.sku: a for a in overstock_alerts(frame, RULES, unit_costs={"SLOW": 10.0})}
    assert set(found) == {"SLOW", "DEAD"}  # CHEAP ties up 82 < 500; OK has 100 days
    slow = found["SLOW"]
    # available 900, 2/day: 900 - 2*180 = 540 units beyond 180 days, at the products' cost 10
    assert slow.details["excess_units"] == 540 and slow.details["excess_value"] == 5400
    assert slow.severity == "warning" and "tie up 5,400.00" in slow.message
    dead = found["DEAD"]  # no demand: everything is excess, at the supplier price 50
    assert dead.details["excess_value"] == 15000 and dead.title.endswith("no demand")
    assert [a.sku for a in overstock_alerts(frame)] == ["DEAD", "SLOW"]  # largest value first
    fewer = overstock_alerts(frame, AlertRules(overstock_warning_value=20000.0))
    assert {a.severity for a in fewer} == {"info"}
    assert overstock_alerts(frame, AlertRules(overstock_days=500.0)) == [
        a for a in overstock_alerts(frame, AlertRules(overstock_days=500.0)) if a.sku == "DEAD"
    ]


# =========================================================================== supply


def _pos() -> tuple[pd.DataFrame, pd.DataFrame]:
    po = pd.DataFrame(
        {
            "po_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "supplier_id": ["S1", "S1", "S2", "S2", "S3", "S3"],
            "location_id": ["WH1"] * 6,
            "status": ["sent", "confirmed", "sent", "received", "draft", "confirmed"],
            "ordered_at": [datetime(2026, 10, 1)] * 6,
            "expected_at": [
                datetime(2026, 11, 17, 15),  # 3 days late
                datetime(2026, 11, 10),  # 10 days late
                datetime(2026, 11, 19),  # 1 day late, all received
                datetime(2026, 11, 1),  # received
                datetime(2026, 11, 1),  # a draft is not expected
                datetime(2026, 11, 20),  # due today: not late
            ],
        }
    )
    lines = pd.DataFrame(
        {
            "po_id": ["P1", "P1", "P2", "P3", "P4", "P5", "P6"],
            "line_no": [1, 2, 1, 1, 1, 1, 1],
            "sku": ["A", "B", "C", "C", "A", "A", "A"],
            "qty_ordered": [10.0, 5.0, 8.0, 4.0, 1.0, 1.0, 1.0],
            "qty_received": [0.0, 5.0, 2.0, 4.0, 1.0, 0.0, 0.0],
            "received_at": [None] * 7,
        }
    )
    return coerce("purchase_orders", po), coerce("purchase_order_lines", lines)


def test_late_purchase_orders() -> None:
    po, lines = _pos()
    alerts = po_late_alerts(po, lines, AS_OF, RULES, unit_costs={"A": 2.0, "C": 5.0})
    assert [a.ref for a in alerts] == ["P2", "P1"]  # most late first
    p2, p1 = alerts
    assert p2.severity == "critical" and p2.details["days_late"] == 10  # >= 7 days
    assert p2.details["open_qty"] == 6 and p2.details["open_value"] == 30
    assert p1.severity == "warning" and p1.details == {
        "expected_at": "2026-11-17",
        "days_late": 3,
        "open_lines": 1,  # B arrived
        "open_qty": 10.0,
        "open_value": 20.0,
    }
    assert p1.key == "po_late||WH1|S1|P1" and p1.supplier_id == "S1"
    assert p1.title == "PO P1 from S1: 3 days late"
    # one of its SKUs about to run out makes it critical at once
    risky = po_late_alerts(po, lines, AS_OF, RULES, at_risk={("A", "WH1")})
    assert next(a for a in risky if a.ref == "P1").severity == "critical"
    assert "At stockout risk: A." in next(a for a in risky if a.ref == "P1").message
    # grace days
    assert [a.ref for a in po_late_alerts(po, lines, AS_OF, AlertRules(po_late_grace_days=3))] == [
        "P2"
    ]


def _suppliers() -> tuple[pd.DataFrame, pd.DataFrame]:
    suppliers = pd.DataFrame(
        {
            "supplier_id": ["S1", "S2", "S3"],
            "order_processing_days": [1, 1, 1],
            "transport_days": [2, 2, 2],
            "receiving_days": [1, 1, 1],
        }
    )
    sp = pd.DataFrame(
        {
            "sku": ["A", "B", "C", "D", "E"],
            "supplier_id": ["S1", "S1", "S2", "S3", "S3"],
            "lead_time_days": [6, 6, 16, 6, 6],  # declared total: 10, 10, 20, 10, 10
        }
    )
    return suppliers, sp


def test_lead_time_drift_per_supplier() -> None:
    suppliers, sp = _suppliers()
    declared = declared_lead_times(sp, suppliers)
    frame = pd.DataFrame(
        {
            "sku": ["A", "B", "B", "C", "D", "E"],
            "location_id": ["WH1", "WH1", "WH2", "WH1", "WH1", "WH1"],
            "supplier_id": ["S1", "S1", "S1", "S2", "S3", "S3"],
            "lead_time_mean": [21.0, 25.0, 25.0, 14.0, 11.0, 30.0],
            "lead_time_source": [
                "receipts",
                "supplier",
                "supplier",
                "receipts",
                "receipts",
                "declared",
            ],
        }
    )
    alerts = {a.supplier_id: a for a in lead_time_drift_alerts(frame, declared, RULES)}
    # S1: learned median 23 vs 10 declared: +13 days >= 10 (100%) → critical
    s1 = alerts["S1"]
    assert s1.severity == "critical" and s1.details["drift_days"] == 13.0
    assert s1.details["skus"] == 2 and s1.details["drift_pct"] == 130
    assert s1.key == "lead_time_drift|||S1|" and s1.title.startswith(
        "Supplier S1: lead time 23 days"
    )
    # S2: 14 vs 20: 6 days shorter, >= max(2, 25% of 20) → info
    assert alerts["S2"].severity == "info" and alerts["S2"].details["abs_drift_days"] == 6.0
    # S3: only D is learned (E is declared): +1 day < 2 → nothing
    assert "S3" not in alerts
    warn = {
        a.supplier_id: a
        for a in lead_time_drift_alerts(
            frame, declared, AlertRules(lead_time_drift_critical_ratio=2.0)
        )
    }
    assert warn["S1"].severity == "warning"


def test_run_alerts_and_scopes() -> None:
    po, lines = _pos()
    suppliers, sp = _suppliers()
    snapshot = ErpSnapshot(
        purchase_orders=po,
        purchase_order_lines=lines,
        suppliers=coerce("suppliers", suppliers),
        supplier_products=coerce("supplier_products", sp),
        products=coerce("products", pd.DataFrame({"sku": ["A"], "unit_cost": [2.0]})),
    )
    frame = plans(lead_time_source=["receipts", "declared", "receipts", "declared"])
    found = run_alerts(frame, snapshot, AS_OF, quarantined=4)
    assert {a.kind for a in found} == {
        "stockout_risk",
        "below_safety_stock",
        "po_late",
        "lead_time_drift",  # C from S2: learned 10 days vs 20 declared
        "rows_quarantined",
    }
    assert [a.supplier_id for a in found if a.kind == "lead_time_drift"] == ["S2"]
    # P1 carries A, at stockout risk at WH1 in the plans: critical although 3 days late
    assert next(a for a in found if a.ref == "P1").severity == "critical"
    partial = {a.kind for a in run_alerts(frame, snapshot, AS_OF, skus=["A"])}
    assert partial == {"stockout_risk", "below_safety_stock"}  # no supply alerts on a partial run
    full, some = run_scopes(None, "nightly"), run_scopes(["A"], "nightly")
    assert any(s.covers("po_late", None, "P1") for s in full)
    assert not any(s.covers("po_late", None, "P1") for s in some)
    assert any(s.covers("stockout_risk", "A", None) for s in some)
    assert not any(s.covers("stockout_risk", "B", None) for s in some)
    assert any(s.covers("flow_failed", None, "nightly") for s in full)
    assert not any(s.covers("flow_failed", None, "other-flow") for s in full)
    assert set(KINDS) >= {a.kind for a in run_alerts(frame, snapshot, AS_OF, quarantined=1)}


def test_flow_alert() -> None:
    a = flow_alert(
        "nightly",
        crashed=False,
        flow_run_id="f-1",
        flow_run_name="brave-fox",
        state_name="Failed",
        message="Flow run encountered an exception: ContractError: no table\nstock_levels",
        failures=3,
    )
    assert a.kind == "flow_failed" and a.severity == "critical" and a.ref == "nightly"
    assert a.title == "Flow nightly failed: run brave-fox (3 runs in a row)"
    assert "\n" not in a.message and a.where == ""
    assert a.key == "flow_failed||||nightly"


# =========================================================================== settings, worsening


def test_rules_from_a_mapping() -> None:
    rules = AlertRules.from_mapping({"overstock_days": 90, "po_late_grace_days": 2})
    assert rules.overstock_days == 90.0 and rules.po_late_grace_days == 2
    with pytest.raises(ConfigurationError, match=r"unknown alert rule.*overstok_days.*known:"):
        AlertRules.from_mapping({"overstok_days": 90})
    with pytest.raises(ConfigurationError, match="stockout_critical_days: expected a finite"):
        AlertRules.from_mapping({"stockout_critical_days": -1})
    with pytest.raises(ConfigurationError, match="po_late_grace_days: expected a whole"):
        AlertRules.from_mapping({"po_late_grace_days": 1.5})
    with pytest.raises(ConfigurationError, match="expected a number"):
        AlertRules.from_mapping({"worse_ratio": "half"})
    assert AlertRules.from_mapping(None) == AlertRules()


def _alert(kind: str, severity: str, **details: float) -> Alert:
    return Alert(kind=kind, severity=severity, title="t", message="m", details=details)


def test_worsening_rules() -> None:
    cover = _alert("stockout_risk", "warning", days_of_cover=6.0)
    assert measure_of(cover, RULES) == 6.0
    assert worsened("warning", 8.0, cover, RULES) is None  # 2 < max(1, 50% of 8)
    assert worsened("warning", 12.0, cover, RULES) == "days_of_cover 12 → 6"
    assert worsened("info", 6.0, cover, RULES) == "severity info → warning"
    assert worsened("critical", 1.0, cover, RULES) is None  # better on both counts
    late = _alert("po_late", "warning", days_late=9.0)
    assert worsened("warning", 3.0, late, RULES) is None  # 6 more days < 7
    assert worsened("warning", 2.0, late, RULES) == "days_late 2 → 9"
    value = _alert("overstock", "info", excess_value=1400.0)
    assert worsened("info", 1000.0, value, RULES) is None and worsened("info", 900.0, value, RULES)
    inf = _alert("stockout_risk", "warning", days_of_cover=float("inf"))
    assert measure_of(inf, RULES) is None and worsened("warning", 3.0, inf, RULES) is None
    assert measure_of(_alert("custom", "info", x=1.0), RULES) is None
    scope = AlertScope(frozenset({"stockout_risk"}), skus=frozenset({"A"}))
    assert scope.covers("stockout_risk", "A", None) and not scope.covers("stockout_risk", "B", None)
    assert scope.covers("stockout_risk", None, None) and not scope.covers("overstock", "A", None)
