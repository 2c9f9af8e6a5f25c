"""The gate's anomaly rules, per-location freshness, settings and Data Docs.

Real Great Expectations throughout; a few module-level gate runs share one
snapshot with one anomaly of each kind (see ``ANOMALIES``).
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from replenish import model
from replenish.errors import ConfigurationError
from replenish.quality import (
    QUARANTINE_COLUMNS,
    GateResult,
    GateSettings,
    build_data_docs,
    dataset_rules,
    validate_snapshot,
)
from replenish.quality.anomalies import spike_scores
from replenish.quality.rules import all_rules
from tests.unit.test_quality import AS_OF, _q, _sale, _snapshot, _stock, _tables

DAY0 = date(2024, 3, 20)  # 40 days of history: 2024-03-20 .. 2024-04-28
PATTERN = (8.0, 10.0, 12.0, 9.0, 11.0)  # mean 10; σ' ≈ 1.6 < sqrt(10): the floor applies


def _history(sku: str, loc: str, days: int = 40) -> list[dict[str, Any]]:
    return [
        {
            **_sale(f"H-{sku}-{loc}-{d}", 1, sku, PATTERN[d % 5], f"{DAY0 + timedelta(d)} 11:00"),
            "location_id": loc,
        }
        for d in range(days)
    ]


def _line(order: str, sku: str, loc: str, qty: float, day: str, channel: str = "web") -> dict:
    return {**_sale(order, 1, sku, qty, f"{day} 15:00"), "location_id": loc, "channel": channel}


def _product(sku: str, cost: Any, active: bool = True) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": sku,
        "category": "x",
        "unit_cost": cost,
        "unit_price": 9.0,
        "active": active,
        "replenishment_mode": "stock",
        "service_level": None,
    }


def _link(sku: str, supplier: str, lead: float) -> dict[str, Any]:
    return {
        "sku": sku,
        "supplier_id": supplier,
        "supplier_sku": None,
        "lead_time_days": lead,
        "moq": 1.0,
        "pack_size": 1.0,
        "unit_price": 2.0,
        "priority": 2,
    }


def _anomalies() -> dict[str, list[dict[str, Any]]]:
    t = _tables(
        products=[
            _product("F", None),  # active, no cost: flagged, kept
            _product("G", 0.0),  # active, cost 0: flagged, kept
            _product("H", None, active=False),  # inactive: nothing to say
            _product("I", -1.0),  # negative: rejected (not also flagged)
        ],
        supplier_products=[_link("B", "S1", 0.0), _link("C", "S2", -2.0)],  # lead time <= 0
        purchase_orders=[
            {
                "po_id": "PO-9",
                "supplier_id": "S1",
                "location_id": "WH9",  # no stock row there: flagged, kept
                "status": "sent",
                "ordered_at": "2024-04-28",
                "expected_at": None,
            }
        ],
        sales_order_lines=[
            *_history("A", "WH1"),
            _line("SO-SPIKE", "A", "WH1", 5000.0, "2024-04-29"),  # a typo: quarantined
            *_history("C", "WH1"),
            _line("SO-25", "C", "WH1", 25.0, "2024-04-27"),  # 4.7 σ: kept (k = 6)
            *_history("A", "WH2"),
            _line("SO-BULK", "A", "WH2", 400.0, "2024-04-27", channel="b2b"),  # bulk order
            *_history("B", "WH2"),
            _line("SO-PROMO", "B", "WH2", 300.0, "2024-04-25"),  # a promotion day: kept
            *_history("B", "WH1", days=5),
            _line("SO-NEW", "B", "WH1", 300.0, "2024-04-29"),  # 6 days of history: kept
            {**_line("SO-CXL", "A", "WH1", 9000.0, "2024-04-26"), "status": "Cancelled"},
        ],
        returns=[
            {
                "order_id": "SO-1",
                "sku": "A",
                "location_id": "WH 1",  # a typo'd location: flagged, kept
                "qty": 1.0,
                "returned_at": "2024-04-30 16:00",
                "restockable": True,
            }
        ],
    )
    t["stock_levels"][3]["on_hand"] = -5.0  # A at WH2: negative stock
    t["promotions"] = [
        {
            "promo_id": "P1",
            "sku": "B",
            "location_id": None,  # every location
            "start_date": "2024-04-25",
            "end_date": "2024-04-26",
            "kind": "promotion",
        }
    ]
    return t


ANOMALIES = _anomalies()


@pytest.fixture(scope="module")
def snapshot() -> model.ErpSnapshot:
    return _snapshot(ANOMALIES)


@pytest.fixture(scope="module")
def default_run(snapshot: model.ErpSnapshot) -> GateResult:
    return validate_snapshot(snapshot, AS_OF)


def _orders(result: GateResult, rule: str) -> set[str]:
    rows = result.quarantine[result.quarantine["rule"] == rule]
    return {k.split("|")[0].removeprefix("order_id=") for k in rows["row_key"]}


SPIKE = "sales_order_lines:spike:qty"


# --- demand spikes -----------------------------------------------------------------------


def test_a_spike_is_quarantined_with_its_reason(default_run: GateResult) -> None:
    r = default_run
    assert _orders(r, SPIKE) == {"SO-SPIKE", "SO-BULK"}
    row = r.quarantine[r.quarantine["row_key"] == "order_id=SO-SPIKE|line_no=1"].iloc[0]
    assert (row["dataset"], row["field"], row["value"], row["expectation"]) == (
        "sales_order_lines",
        "qty",
        "5000",
        "expect_column_values_to_be_between",
    )
    # the other 42 days with sales: 40 of history, 2024-04-30 (1) and 2024-05-01 (3)
    others = np.array([PATTERN[d % 5] for d in range(40)] + [1.0, 3.0])
    mean = others.mean()
    std = np.sqrt(mean)  # the Poisson floor: larger than the sample σ'
    assert others.std(ddof=1) < std
    z = (5000 - mean) / std
    assert row["reason"] == (
        "sales_order_lines row 44 (order_id=SO-SPIKE|line_no=1): qty = 5000 on 2024-04-29 is a "
        f"demand spike: {z:.1f} standard deviations above the mean daily demand of A at WH1 "
        f"({mean:.4g} a day, standard deviation {std:.4g}, over 42 other days with sales); "
        f"expected at most 6 (qty <= {mean + 6 * std:.4g}) (a typing error, or a real bulk "
        "order: fix the line in the ERP, or release the order (gate setting "
        "spike_released_orders) or its channel (spike_exempt_channels))."
    )


def test_valid_demand_still_flows(default_run: GateResult, snapshot: model.ErpSnapshot) -> None:
    clean = default_run.clean.sales_order_lines
    kept = set(clean["order_id"])
    assert {"SO-25", "SO-PROMO", "SO-NEW", "SO-CXL"} <= kept  # cancelled: not demand, kept
    assert not kept & {"SO-SPIKE", "SO-BULK"}
    assert len(clean) == len(snapshot.sales_order_lines) - 2
    s = default_run.summary.set_index("dataset")
    assert s.loc["sales_order_lines", "rejected_rows"] == 2
    assert not default_run.blocking


def test_spike_settings_exempt_release_k_and_history(snapshot: model.ErpSnapshot) -> None:
    exempt = validate_snapshot(snapshot, AS_OF, GateSettings(spike_exempt_channels=["B2B "]))
    assert _orders(exempt, SPIKE) == {"SO-SPIKE"}

    strict = validate_snapshot(
        snapshot,
        AS_OF,
        GateSettings(spike_k=2.0, spike_min_days=2, spike_released_orders={"SO-SPIKE"}),
    )
    # k = 2 catches the 4.7 σ line; 5 days are history enough with min_days = 2
    assert _orders(strict, SPIKE) == {"SO-BULK", "SO-25", "SO-NEW"}
    c = strict.quarantine[strict.quarantine["row_key"] == "order_id=SO-25|line_no=1"]
    assert c["reason"].str.contains(" 4.7 standard deviations above").all()
    reason = strict.quarantine.loc[strict.quarantine["rule"] == SPIKE, "reason"]
    assert reason.str.contains("expected at most 2 ").all()
    gx = strict.gx_results["sales_order_lines_spikes"]["results"][0]
    assert gx["expectation_config"]["kwargs"]["max_value"] == 2.0  # k, a run-time parameter
    assert gx["result"]["unexpected_count"] == 3


def test_spike_scores_formula() -> None:
    """Leave-one-day-out mean and sample σ over days with demand, Poisson floor."""
    rows = [
        ("A", "2024-01-01", 2.0, "shipped"),
        ("A", "2024-01-02", 4.0, "shipped"),
        ("A", "2024-01-03", 6.0, "shipped"),
        ("A", "2024-01-04", 20.0, "shipped"),  # others 2, 4, 6: μ' 4, σ' 2 → z = 8
        ("A", "2024-01-05", 50.0, "CANCELLED"),  # not demand: no score, not in the stats
        ("B", "2024-01-01", 5.0, "shipped"),
        ("B", "2024-01-02", 5.0, "shipped"),
        ("B", "2024-01-03", 5.0, "shipped"),
        ("B", "2024-01-04", 3.0, "open"),  # same day as the next line: D = 7
        ("B", "2024-01-04", 4.0, "shipped"),
    ]
    sales = model.coerce(
        "sales_order_lines",
        pd.DataFrame(
            [
                _sale(f"O{i}", 1, sku, qty, day) | {"status": st}
                for i, (sku, day, qty, st) in enumerate(rows)
            ]
        ),
    )
    s = spike_scores(sales, min_days=2)
    assert s.score[3] == pytest.approx(8.0)
    assert (s.mean[3], s.std[3], s.days[3]) == (pytest.approx(4.0), pytest.approx(2.0), 3)
    others = np.array([4.0, 6.0, 20.0])  # for the line of day 1
    assert s.score[0] == pytest.approx((2 - others.mean()) / others.std(ddof=1))
    assert np.isnan(s.score[4]) and s.days[4] == 0
    # B, day 1: others 5, 5, 7 (the open and the shipped line of day 4 add up)
    b_others = np.array([5.0, 5.0, 7.0])
    floor = np.sqrt(b_others.mean())  # > the sample σ' 1.15: the Poisson floor applies
    assert s.score[5] == pytest.approx((5 - b_others.mean()) / floor)
    # B, day 4: the other days all sold 5 (σ' = 0): σ = sqrt(5); both lines of the day scored
    assert s.std[8] == pytest.approx(np.sqrt(5.0))
    assert s.score[8] == pytest.approx((3 - 5) / np.sqrt(5))
    assert s.score[9] == pytest.approx((4 - 5) / np.sqrt(5))
    # too little history: not scored, but still counted for the others
    assert np.isnan(spike_scores(sales, min_days=4).score[3])


# --- the other anomalies -----------------------------------------------------------------


def test_negative_stock_is_quarantined(default_run: GateResult) -> None:
    row = _q(default_run, "stock_levels").iloc[0]
    assert len(_q(default_run, "stock_levels")) == 1
    assert (row["row_key"], row["field"], row["value"]) == (
        "sku=A|location_id=WH2",
        "on_hand",
        "-5",
    )
    assert row["reason"] == (
        "stock_levels row 4 (sku=A|location_id=WH2): on_hand = -5; expected a number >= 0 "
        "(negative stock: a receipt, a return or a stock count is probably missing in the ERP)."
    )
    assert len(default_run.clean.stock_levels) == 4


def test_lead_time_of_zero_or_less_is_quarantined(default_run: GateResult) -> None:
    rows = _q(default_run, "supplier_products", field="lead_time_days")
    assert set(zip(rows["row_key"], rows["value"], strict=True)) == {
        ("sku=B|supplier_id=S1", "0"),
        ("sku=C|supplier_id=S2", "-2"),
    }
    assert (
        rows["reason"]
        .str.contains(
            "lead_time_days = -?[02]; expected a number > 0 \\(a lead time of 0 or less is an "
            "anomaly"
        )
        .all()
    )
    kept = default_run.clean.supplier_products
    assert set(zip(kept["sku"], kept["supplier_id"], strict=True)) == {
        ("A", "S1"),
        ("B", "S2"),
        ("C", "S1"),
    }


def test_missing_cost_of_an_active_product_is_flagged_and_kept(default_run: GateResult) -> None:
    w = default_run.warnings
    cost = w[w["field"] == "unit_cost"]
    assert set(zip(cost["row_key"], cost["expectation"], cost["value"], strict=True)) == {
        ("sku=F", "expect_column_values_to_not_be_null", ""),
        ("sku=G", "expect_column_values_to_be_between", "0"),
    }
    assert cost["reason"].str.contains("for an active product").all()
    assert cost["reason"].str.endswith("; the row is kept.").all()
    assert {"F", "G", "H"} <= set(default_run.clean.products["sku"])
    # a negative cost is rejected, not also flagged
    assert _q(default_run, "products", row_key="sku=I")["field"].tolist() == ["unit_cost"]
    assert "sku=I" not in set(w["row_key"])
    assert default_run.summary.set_index("dataset").loc["products", "flagged_rows"] == 2


def test_an_unknown_location_is_flagged_and_kept(default_run: GateResult) -> None:
    w = default_run.warnings[default_run.warnings["field"] == "location_id"]
    assert set(zip(w["dataset"], w["value"], strict=True)) == {
        ("purchase_orders", "WH9"),
        ("returns", "WH 1"),
    }
    assert w["reason"].str.contains("has no row in the stock snapshot").all()
    assert "PO-9" in set(default_run.clean.purchase_orders["po_id"])
    assert len(default_run.clean.returns) == 2


def test_gx_counts_match_quarantine_and_warnings(default_run: GateResult) -> None:
    r = default_run
    rows = pd.concat([r.quarantine, r.warnings], ignore_index=True)
    seen = 0
    for suite, payload in r.gx_results.items():
        for er in payload["results"]:
            rule = er["expectation_config"]["meta"]["rule"]
            if rule.endswith(":fresh:as_of") or rule.endswith(":min_rows:"):
                continue
            mine = rows[rows["rule"] == rule]
            n = len(mine)
            also_rejected = 0
            if rule.endswith(":warn"):  # a rejected row is not flagged as well
                assert er["expectation_config"]["severity"] == "warning"
                also_rejected = er["result"].get("unexpected_count", 0) - n
                assert also_rejected == 0 or rule == "products:range:unit_cost:warn"
            assert er["result"].get("unexpected_count", 0) == n + also_rejected, (suite, rule)
            seen += n
    assert seen == len(rows)
    assert list(r.warnings.columns) == list(QUARANTINE_COLUMNS)


# --- freshness ---------------------------------------------------------------------------


def test_one_stale_location_blocks_the_run() -> None:
    tables = _tables()
    for row in tables["stock_levels"]:
        if row["location_id"] == "WH2":
            row["as_of"] = "2024-04-20 06:00"
    result = validate_snapshot(_snapshot(tables), AS_OF)
    blocking = result.blocking_failures
    assert len(blocking) == 1
    assert blocking[0].expectation == "expect_column_values_to_be_between"
    assert blocking[0].detail.startswith(
        "stock snapshot is stale at location: WH2 (newest as_of 2024-04-20 06:00:00); "
        "expected on or after 2024-04-29 12:00:00"
    )
    assert result.quarantine.empty

    fresh = validate_snapshot(
        _snapshot(tables), AS_OF, GateSettings(max_stock_age_days=14)
    )  # a weekly stock count
    assert not fresh.blocking


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spike_k": 0}, "gate setting spike_k: expected a number of standard deviations > 0"),
        ({"spike_min_days": 1}, "gate setting spike_min_days: expected a whole number"),
        ({"max_stock_age_days": -1}, "gate setting max_stock_age_days"),
        ({"max_rejected_fraction": 1.5}, "gate setting max_rejected_fraction"),
        ({"spike_exempt_channels": "b2b"}, "gate setting spike_exempt_channels: expected a list"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GateSettings(**kwargs)


def test_every_rule_has_one_id_and_the_new_rules_exist() -> None:
    ids = [r.id for r in all_rules()]
    assert len(ids) == len(set(ids))
    assert {
        "stock_levels:range:on_hand",
        "supplier_products:range:lead_time_days",
        "products:not_null:unit_cost:warn",
        "products:range:unit_cost:warn",
        "sales_order_lines:reference:location_id:warn",
        SPIKE,
        "stock_levels:fresh:as_of",
    } <= set(ids)
    lead = next(
        r
        for r in dataset_rules("supplier_products")
        if r.field == "lead_time_days" and r.kind == "range"
    )
    assert (lead.low, lead.strict) == (0.0, True)


# --- Data Docs ---------------------------------------------------------------------------


def test_data_docs_of_a_run(default_run: GateResult, tmp_path: Path) -> None:
    started = time.perf_counter()
    index = build_data_docs(default_run, tmp_path / "data-docs", "run-1")
    assert time.perf_counter() - started < 3.0
    assert index == (tmp_path / "data-docs" / "run-1" / "index.html").resolve()
    page = index.read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.split("gx/index.html")[0]
    assert "Passed with 6 quarantined row(s), 4 flagged row(s)" in page
    for text in (
        SPIKE,
        "expect_column_values_to_be_between",
        "is a demand spike",
        "order_id=SO-SPIKE|line_no=1",
        "negative stock",
        "products:not_null:unit_cost:warn",
        "spike_k",
    ):
        assert text in page, text
    # GX's own site, one validation page per suite run, linked from the index
    gx_pages = {p.stem: p for p in (index.parent / "gx" / "validations").rglob("*.html")}
    assert set(gx_pages) == set(default_run.gx_results)
    spikes = gx_pages["sales_order_lines_spikes"].read_text(encoding="utf-8")
    assert "qty_sigmas" in spikes and "run-1" in spikes
    assert gx_pages["sales_order_lines_spikes"].relative_to(index.parent).as_posix() in page
    assert (index.parent / "gx" / "index.html").is_file()

    again = build_data_docs(default_run, tmp_path / "data-docs", "run-1")  # replaces
    assert again == index and index.is_file()


def test_data_docs_of_a_blocked_run(tmp_path: Path) -> None:
    tables = _tables()
    tables["stock_levels"] = [_stock("A", "WH1", at="2024-04-01 06:00")]
    result = validate_snapshot(_snapshot(tables), AS_OF)
    page = build_data_docs(result, tmp_path, "blocked-run").read_text(encoding="utf-8")
    assert "Blocked: the run stopped before ordering (1 blocking failure(s))" in page
    assert "stock snapshot is stale at location: WH1" in page
    assert "expect_column_values_to_be_between" in page


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", "a b"])
def test_data_docs_refuse_a_run_id_that_is_not_a_folder_name(
    default_run: GateResult, tmp_path: Path, run_id: str
) -> None:
    with pytest.raises(ValueError, match="run_id"):
        build_data_docs(default_run, tmp_path, run_id)


def test_the_validate_task_builds_the_docs(
    snapshot: model.ErpSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.validate import validate_data

    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path))
    result = validate_data.fn(snapshot, date(2024, 5, 1), run_id="abc-123")
    assert result.data_docs == (tmp_path / "data-docs" / "abc-123" / "index.html").resolve()
    assert result.data_docs.is_file()
    assert _orders(result, SPIKE) == {"SO-SPIKE", "SO-BULK"}
    no_docs = validate_data.fn(
        snapshot, date(2024, 5, 1), gate_settings=GateSettings(spike_exempt_channels={"b2b"})
    )
    assert no_docs.data_docs is None and _orders(no_docs, SPIKE) == {"SO-SPIKE"}
    json.dumps(result.gx_results)
