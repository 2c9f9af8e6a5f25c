"""Draft orders people can trust, in the store (SQLite and PostgreSQL): each
line explains itself, unapproved drafts of earlier dates are superseded,
decisions are recorded once with who and when, push outcomes are kept,
concurrent publishers and approvers never duplicate anything."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from replenish.errors import StoreError
from replenish.orders import EXPLAIN_COLUMNS, build_drafts, build_headers, merge_partial
from replenish.orders.approval import (
    ApprovalForm,
    OrderDecision,
    apply_form,
    auto_approve,
    route,
)
from replenish.store import Store, _alembic_config

DAY1 = date(2026, 11, 19)
DAY2 = date(2026, 11, 20)
SUPPLIERS = pd.DataFrame(
    {"supplier_id": ["S1", "S2"], "currency": ["EUR", "EUR"], "min_order_value": [0.0, 0.0]}
)


def _plans(qty: dict[str, float] | None = None) -> pd.DataFrame:
    """Plan rows with every figure a buyer checks: A-1 and B-2 from S1 at
    WH1, C-3 from S2 at WH1, D-4 (no supplier) at WH2."""
    qty = {"A-1": 24.0, "B-2": 10.0, "C-3": 3.0, "D-4": 10.0, **(qty or {})}
    return pd.DataFrame(
        {
            "sku": ["A-1", "B-2", "C-3", "D-4"],
            "location_id": ["WH1", "WH1", "WH1", "WH2"],
            "supplier_id": ["S1", "S1", "S2", None],
            "supplier_sku": ["F-A1", "F-B2", "S-C3", None],
            "supplier_reason": ["priority 1 (of 2)", "only supplier", "cheapest", None],
            "n_suppliers": [2, 1, 3, 0],
            "supplier_on_time_rate": [0.9, None, 0.75, None],
            "order_qty": [qty["A-1"], qty["B-2"], qty["C-3"], qty["D-4"]],
            "unit_price": [2.0, 20.0, 30.0, 1.0],
            "reason": ["IP below ROP.", "IP below ROP", "open customer orders", "no supplier"],
            "policy": ["continuous (s,Q)", "continuous (s,Q)", "jit", "continuous (s,Q)"],
            "on_hand": [30.0, 5.0, 0.0, 0.0],
            "allocated": [8.0, 1.0, 0.0, 0.0],
            "on_order": [3.0, 0.0, 0.0, 0.0],
            "inventory_position": [25.0, 4.0, 0.0, 0.0],
            "demand_mean": [10.0, 1.5, 0.1, 1.0],
            "demand_std": [3.0, 0.5, 0.3, 1.0],
            "demand_class": ["smooth", "smooth", "lumpy", "smooth"],
            "method": ["ses_weekday", "ses", "croston_sba", "ses"],
            "abc_class": ["A", "B", "C", "C"],
            "xyz_class": ["X", "Y", "Z", "Z"],
            "lead_time_mean": [4.0, 6.0, 10.0, 2.0],
            "lead_time_std": [1.0, 0.5, None, 0.0],
            "lead_time_source": ["receipts", "declared", "declared", "declared"],
            "target_type": ["cycle", "cycle", "cycle", "cycle"],
            "service_level": [0.98, 0.95, 0.9, 0.9],
            "service_level_source": ["class", "product", "class", "class"],
            "safety_stock": [17.7, 2.1, 0.0, 1.0],
            "safety_stock_basis": ["z 2.05 × σ 8.6", "z 1.64 × σ 1.3", "jit", "z"],
            "reorder_point": [57.7, 11.1, 0.0, 3.0],
            "order_up_to": [67.7, 12.6, float("nan"), 5.0],
            "raw_qty": [22.6, 8.6, 3.0, 10.0],
            "eoq": [22.6, 8.6, float("nan"), 10.0],
            "moq": [12.0, 1.0, 1.0, 1.0],
            "pack_size": [12.0, 5.0, 1.0, 1.0],
            "rounding": ["raw 22.6 → pack 12: 24", "raw 8.6 → pack 5: 10", "", ""],
        }
    )


def _publish(store: Store, day: date, plans: pd.DataFrame, run: str = "run-1") -> object:
    headers, lines = build_drafts(plans, SUPPLIERS, day)
    covered = zip(plans["sku"], plans["location_id"], strict=True)
    return store.publish_drafts(day, run, headers, lines, covered=covered)


def _key(day: date, supplier: str) -> str:
    return f"{day.isoformat()}/{supplier}/WH1"


def test_each_line_carries_its_explanation_and_figures(store_url: str) -> None:
    """Inventory position breakdown, forecast, lead time, service target,
    safety stock, reorder point, raw quantity, rounding, why this supplier:
    in words and as numbers, as stored."""
    store = Store(store_url)
    _publish(store, DAY2, _plans())
    lines = store.orders(as_of=DAY2).set_index("sku")
    text = lines.loc["A-1", "explanation"]
    for part in (
        "IP below ROP; IP 25 = on hand 30 − allocated 8 + on order 3",
        "forecast 10/day ± 3 (smooth, ses_weekday, class AX)",
        "lead time 4 ± 1 days (receipts)",
        "service target 98% cycle (class)",
        "SS 17.7 (z 2.05 × σ 8.6)",
        "ROP 57.7",
        "S 67.7",
        "raw qty 22.6, EOQ 22.6, MOQ 12, pack 12",
        "rounding: raw 22.6 → pack 12: 24",
        "supplier S1: priority 1 (of 2), on time 90%",
    ):
        assert part in text, (part, text)
    # a figure the plan does not know is left out, never printed as nan
    assert "nan" not in lines.loc["C-3", "explanation"]
    assert "supplier S2: cheapest, on time 75%" in lines.loc["C-3", "explanation"]
    details = lines.loc["A-1", "details"]
    assert list(details) == [c for c in EXPLAIN_COLUMNS if c in _plans().columns]
    assert details["inventory_position"] == 25.0 and details["on_order"] == 3.0
    assert details["service_level"] == 0.98 and details["supplier_reason"] == "priority 1 (of 2)"
    assert lines.loc["C-3", "details"]["eoq"] is None
    assert (lines["planned_qty"] == lines["qty"]).all()
    store.dispose()


def test_earlier_unapproved_drafts_are_superseded(store_url: str) -> None:
    """Yesterday's drafts nobody approved are not on order anywhere: today's
    plan, which covers their SKUs, replaces them instead of adding to them.
    Decided drafts are never touched."""
    store = Store(store_url)
    _publish(store, DAY1, _plans())
    store.decide(_key(DAY1, "S2"), "approved", "Petra")

    result = _publish(store, DAY2, _plans({"A-1": 36.0}), run="run-2")
    assert result.superseded == [_key(DAY1, "S1")]  # type: ignore[attr-defined]
    old = store.drafts(as_of=DAY1).set_index("po_key")
    assert old.loc[_key(DAY1, "S1"), "status"] == "superseded"
    assert old.loc[_key(DAY1, "S1"), "superseded_by"] == _key(DAY2, "S1")
    assert old.loc[_key(DAY1, "S2"), "status"] == "approved"  # a decision stands
    # the record is kept: the superseded draft still has its lines
    assert store.count_drafts(DAY1) == (2, 3)

    again = _publish(store, DAY2, _plans({"A-1": 36.0}), run="run-3")
    assert again.superseded == [] and again.created == []  # type: ignore[attr-defined]
    assert store.count_drafts(DAY2) == (2, 3)
    with pytest.raises(StoreError, match="superseded by 2026-11-20/S1/WH1"):
        store.decide(_key(DAY1, "S1"), "approved", "Petra")
    store.dispose()


def test_a_partial_plan_takes_out_only_the_lines_it_covered(store_url: str) -> None:
    store = Store(store_url)
    _publish(store, DAY1, _plans())
    only_a = _plans().query("sku == 'A-1'")
    headers, lines = build_drafts(only_a, SUPPLIERS, DAY2)
    result = store.publish_drafts(DAY2, "run-2", headers, lines, covered=[("A-1", "WH1")])
    assert result.superseded == [] and result.trimmed == [f"{_key(DAY1, 'S1')} A-1"]
    old = store.orders(as_of=DAY1).set_index("po_key")
    kept = old.loc[[_key(DAY1, "S1")]]
    assert kept["sku"].tolist() == ["B-2"] and kept["line_no"].tolist() == [1]
    head = store.drafts(as_of=DAY1).set_index("po_key").loc[_key(DAY1, "S1")]
    assert head["status"] == "draft" and head["line_count"] == 1
    assert head["total_value"] == 200.0  # 10 × 20, A-1's 48 is gone
    store.dispose()


def test_decisions_are_recorded_once_with_who_and_when(store_url: str) -> None:
    store = Store(store_url)
    _publish(store, DAY2, _plans())
    s1, s2 = _key(DAY2, "S1"), _key(DAY2, "S2")

    d = store.decide(s1, "approved", "Petra", via="prefect-ui", quantities={"A-1": 36, "B-2": 10})
    assert d.changes == {"A-1": [24.0, 36.0]} and d.total_value == 272.0  # 36·2 + 10·20
    lines = store.orders(as_of=DAY2).set_index("sku")
    assert lines.loc["A-1", "qty"] == 36 and lines.loc["A-1", "planned_qty"] == 24
    assert lines.loc["A-1", "line_value"] == 72 and lines.loc["A-1", "decided_by"] == "Petra"
    head = store.drafts(as_of=DAY2).set_index("po_key").loc[s1]
    assert head["status"] == "approved" and head["total_value"] == 272.0
    assert head["decided_at"] is not None

    # the same decision again (a retried step) records nothing; another one is refused
    assert not store.decide(s1, "approved", "Petra").recorded
    with pytest.raises(StoreError, match="already approved \\(by Petra at"):
        store.decide(s1, "rejected", "Quentin")
    store.decide(s2, "rejected", "Quentin", note="supplier on strike")
    log = store.decisions(as_of=DAY2)
    assert log[["po_key", "decision", "decided_by", "via"]].values.tolist() == [
        [s1, "approved", "Petra", "prefect-ui"],
        [s2, "rejected", "Quentin", "cli"],
    ]
    assert log.iloc[0]["changes"] == {"A-1": [24.0, 36.0]}

    # a rerun of the same date leaves decided drafts alone
    result = _publish(store, DAY2, _plans({"A-1": 48.0}), run="run-2")
    assert sorted(result.kept) == [s1, s2]  # type: ignore[attr-defined]
    assert store.orders(as_of=DAY2).set_index("sku").loc["A-1", "qty"] == 36
    store.dispose()


def test_bad_decisions_are_refused_and_name_the_problem(store_url: str) -> None:
    store = Store(store_url)
    _publish(store, DAY2, _plans())
    s1 = _key(DAY2, "S1")
    with pytest.raises(StoreError, match="has no line for SKU 'Z-9' \\(its lines: A-1, B-2\\)"):
        store.decide(s1, "approved", "Petra", quantities={"Z-9": 1})
    with pytest.raises(StoreError, match="SKU A-1: the quantity must be a number >= 0, got -1"):
        store.decide(s1, "approved", "Petra", quantities={"A-1": -1})
    with pytest.raises(StoreError, match="every quantity is 0: reject the order instead"):
        store.decide(s1, "approved", "Petra", quantities={"A-1": 0, "B-2": 0})
    with pytest.raises(StoreError, match="say who decides"):
        store.decide(s1, "approved", "  ")
    with pytest.raises(StoreError, match="no draft order 'nope'"):
        store.decide("nope", "approved", "Petra")
    assert store.drafts(as_of=DAY2).set_index("po_key").loc[s1, "status"] == "draft"
    # 0 takes a line out; the order follows
    d = store.decide(s1, "approved", "Petra", quantities={"B-2": 0})
    assert d.total_value == 48.0
    assert store.orders(po_keys=[s1])["sku"].tolist() == ["A-1"]
    store.dispose()


def test_routing_and_the_approval_form(store_url: str) -> None:
    """Above the threshold: a person decides through the form (approve with a
    change, reject, hold, a bad entry reported); at or below: auto."""
    store = Store(store_url)
    _publish(store, DAY2, _plans())  # S1/WH1 248, S2/WH1 90
    s1, s2 = _key(DAY2, "S1"), _key(DAY2, "S2")
    headers = store.drafts(as_of=DAY2)
    assert route(headers, 100.0, True).needs_approval == [s1]
    assert route(headers, 100.0, True).auto == [s2]
    assert route(headers, 100.0, False).left == [s2]
    assert route(headers, None, False).left == [s1, s2]
    assert route(headers, 0.0, True).needs_approval == [s1, s2]

    auto_approve(store, [s2], "run-1")
    form = ApprovalForm(
        approver="Petra",
        orders=[
            OrderDecision(po_key=s1, quantities={"A-1": 12.0, "B-2": 10.0}),
            OrderDecision(po_key="2026-11-20/S9/WH1", decision="reject"),
        ],
        note="half of A-1 is enough",
    )
    outcome = apply_form(store, form, [s1], run_id="run-1")
    assert outcome.approved == [s1] and outcome.adjusted == [s1]
    assert outcome.failed == {"2026-11-20/S9/WH1": "not waiting for approval in this run"}
    heads = store.drafts(as_of=DAY2).set_index("po_key")
    assert heads.loc[s2, "decided_by"] == "auto" and heads.loc[s1, "decided_by"] == "Petra"
    assert heads.loc[s1, "decision_note"] == "half of A-1 is enough"
    assert store.decisions(po_keys=[s2]).iloc[0]["via"] == "auto"

    # a form whose entry the store refuses: that order stays a draft, reported
    _publish(store, DAY1, _plans(), run="run-0")
    d1 = _key(DAY1, "S1")
    bad = ApprovalForm(approver="Petra", orders=[OrderDecision(po_key=d1, quantities={"X": 1})])
    outcome = apply_form(store, bad, [d1, _key(DAY1, "S2")], run_id="run-0")
    assert "no line for SKU 'X'" in outcome.failed[d1] and outcome.held == [_key(DAY1, "S2")]
    store.dispose()


def test_push_outcomes_are_kept_on_the_draft(store_url: str) -> None:
    store = Store(store_url)
    _publish(store, DAY2, _plans())
    s1, s2 = _key(DAY2, "S1"), _key(DAY2, "S2")
    columns = ["po_key", "target", "action", "erp_id", "erp_name", "reason"]
    store.record_push(
        pd.DataFrame(
            [[s1, "odoo", "created", "7", "P00007", ""], [s2, "odoo", "failed", None, None, "no"]],
            columns=columns,
        )
    )
    # a later failed push keeps the ERP's id of the earlier one
    store.record_push(
        pd.DataFrame([[s1, "odoo", "failed", None, None, "HTTP 503"]], columns=columns)
    )
    heads = store.drafts(as_of=DAY2).set_index("po_key")
    fields = ["erp_target", "erp_id", "erp_name", "push_action", "push_message"]
    assert heads.loc[s1, fields].tolist() == ["odoo", "7", "P00007", "failed", "HTTP 503"]
    assert heads.loc[s1, "pushed_at"] is not None and pd.isna(heads.loc[s2, "pushed_at"])
    assert store.orders(po_keys=[s1])["erp_id"].tolist() == ["7", "7"]
    store.dispose()


def test_kpis_are_kept_with_the_run(store_url: str) -> None:
    store = Store(store_url)
    run_id = store.start_run(DAY2, erp="sqlite://", parameters={})
    assert store.kpis(run_id) is None
    store.save_kpis(run_id, {"overall": {"service_rate": 0.97, "stock_turns": float("nan")}})
    assert store.kpis(run_id) == {"overall": {"service_rate": 0.97, "stock_turns": None}}
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.save_kpis("nope", {})
    store.dispose()


def test_concurrent_publishers_and_approvers_on_postgres(postgres_url: str) -> None:
    """Two runs publishing the same date at once (each superseding the day
    before), then two approvers deciding the same order at once: one set of
    drafts, one superseded set, exactly one decision."""
    store = Store(postgres_url)
    _publish(store, DAY1, _plans())
    plans = _plans({"A-1": 36.0})
    headers, lines = build_drafts(plans, SUPPLIERS, DAY2)
    covered = list(zip(plans["sku"], plans["location_id"], strict=True))

    def together(work: list[object]) -> list[BaseException]:
        barrier = threading.Barrier(len(work))
        errors: list[BaseException] = []

        def run(fn: object) -> None:
            barrier.wait()
            try:
                fn()  # type: ignore[operator]
            except BaseException as e:  # collected and asserted by the caller
                errors.append(e)

        threads = [threading.Thread(target=run, args=(fn,)) for fn in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    publishers = [Store(postgres_url, upgrade=False) for _ in range(2)]
    errors = together(
        [
            lambda s=s, i=i: s.publish_drafts(DAY2, f"run-{i}", headers, lines, covered=covered)
            for i, s in enumerate(publishers)
        ]
    )
    assert errors == []
    assert store.count_drafts(DAY2) == (2, 3)
    assert store.drafts(as_of=DAY1)["status"].tolist() == ["superseded", "superseded"]

    key = _key(DAY2, "S1")
    errors = together(
        [
            lambda s=s, who=who: s.decide(key, "approved", who, quantities={"A-1": 48})
            for s, who in zip(publishers, ("Petra", "Quentin"), strict=True)
        ]
    )
    assert len(errors) == 1 and "already approved" in str(errors[0])
    assert len(store.decisions(po_keys=[key])) == 1
    assert store.orders(po_keys=[key]).set_index("sku").loc["A-1", "qty"] == 48
    for s in publishers:
        s.dispose()
    store.dispose()


def test_partial_run_keeps_the_figures_of_other_lines(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    _publish(store, DAY2, _plans())
    only_c = _plans().query("sku == 'C-3'").assign(order_qty=6.0)
    _, new = build_drafts(only_c, SUPPLIERS, DAY2)
    lines = merge_partial(store.orders(as_of=DAY2), new, {"C-3"})
    store.publish_drafts(DAY2, "run-2", build_headers(lines, SUPPLIERS), lines)
    got = store.orders(as_of=DAY2).set_index("sku")
    assert got.loc["C-3", "qty"] == 6 and got.loc["A-1", "details"]["on_hand"] == 30.0
    store.dispose()


def test_migration_0004_downgrades_and_upgrades(sqlite_url: str) -> None:
    Store(sqlite_url).dispose()
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        cfg = _alembic_config(sqlite_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert "approval_decisions" not in inspect(engine).get_table_names()
    cols = {c["name"] for c in inspect(engine).get_columns("draft_purchase_orders")}
    assert "erp_id" not in cols
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert "approval_decisions" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_superseded_day_is_not_the_plans_day(store_url: str) -> None:
    """Drafts of a LATER date are never superseded by an earlier plan (a
    backfill of a past day)."""
    store = Store(store_url)
    _publish(store, DAY2, _plans())
    result = _publish(store, DAY2 - timedelta(days=3), _plans(), run="run-old")
    assert result.superseded == []  # type: ignore[attr-defined]
    assert set(store.drafts(as_of=DAY2)["status"]) == {"draft"}
    store.dispose()
