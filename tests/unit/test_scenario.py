"""The purchasing scenario around real sales: deterministic, valid against the
contract (and the validation gate), with lead times that can be learned."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from replenish import model
from replenish.errors import ConfigurationError
from replenish.policy.leadtime import learn_lead_times
from replenish.quality import validate_snapshot
from replenish.scenario import Scenario, build_snapshot, load_scenario
from replenish.sources.generic import day_end

REPO = Path(__file__).parents[2]
SHIPPED = REPO / "config" / "scenarios" / "online_retail.yaml"
AS_OF = date(2011, 6, 1)
START = datetime(2011, 1, 3)
DAYS = (AS_OF - START.date()).days

SCENARIO: dict[str, Any] = {
    "seed": 7,
    "location_id": "UK",
    "cost_ratio": 0.5,
    "categories": [
        {"category": "Christmas", "keywords": ["CHRISTMAS", "BAUBLE"]},
        {"category": "Kitchen", "keywords": ["MUG", "TEA TOWEL"]},
    ],
    "default_category": "Gifts",
    "suppliers": [
        {
            "supplier_id": "NEAR",
            "name": "Near Ltd",
            "order_processing_days": 1,
            "lead_time_days": {"mean": 2, "std": 1},
            "transport_days": 1,
            "receiving_days": 1,
            "order_days": ["mon", "thu"],
            "review_days": 7,
        },
        {
            "supplier_id": "FAR",
            "name": "Far Co",
            "order_processing_days": 2,
            "lead_time_days": {"mean": 20, "std": 5},
            "transport_days": 10,
            "receiving_days": 2,
            "order_days": ["wed"],
            "review_days": 14,
            "moq_packs": 3,
        },
    ],
    "assignment": [{"category": "Christmas", "supplier": "FAR", "second_source": "NEAR"}],
    "default_supplier": "NEAR",
    "second_source_premium": 0.2,
    "pack_sizes": [
        {"max_price": 1.0, "pack_size": 12},
        {"max_price": 5.0, "pack_size": 6},
        {"max_price": None, "pack_size": 1},
    ],
    "receipts": {"lookback_days": 14},
    "stock": {"cover_days": 10, "window_days": 14, "spread": [0.5, 1.5]},
}

#: sku -> (description, unit price, units per sale, sells every n days)
ITEMS = {
    "XM-1": ("CHRISTMAS BAUBLES RED", 0.85, 12, 1),
    "MUG-1": ("SPOTTY MUG", 2.10, 6, 2),
    "MUG-2": ("STRIPED MUGS", 2.50, 2, 3),
    "TT-1": ("TEA TOWEL BLUE", 3.25, 1, 5),
    "GI-1": ("WOODEN TOY TRAIN", 12.00, 1, 4),
    "GI-2": ("RUBBER DUCK", 0.00, 1, 60),  # only zero prices seen
}


def _sales() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, extras = [], []
    order = 0
    for d in range(DAYS + 20):  # 20 days past AS_OF: not history
        day = START + timedelta(days=d, hours=11)
        for sku, (desc, price, qty, every) in ITEMS.items():
            if d % every:
                continue
            order += 1
            rows.append(
                {
                    "order_id": f"O{order}",
                    "line_no": 1,
                    "sku": sku,
                    "location_id": "UK",
                    "channel": "csv",
                    "qty": float(qty),
                    "ordered_at": day,
                    "status": "cancelled" if order % 97 == 0 else "shipped",
                }
            )
            extras.append({"unit_price": price, "description": desc})
    lines = model.coerce("sales_order_lines", pd.DataFrame(rows))
    return lines, pd.DataFrame(extras).astype({"description": "string"})


@pytest.fixture(scope="module")
def snapshot() -> model.ErpSnapshot:
    lines, extras = _sales()
    return build_snapshot(lines, extras, Scenario.model_validate(SCENARIO), AS_OF)


def test_deterministic_for_a_seed(snapshot: model.ErpSnapshot) -> None:
    lines, extras = _sales()
    again = build_snapshot(lines, extras, Scenario.model_validate(SCENARIO), AS_OF)
    for name, frame in snapshot.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(again, name), obj=name)
    other = build_snapshot(lines, extras, Scenario.model_validate({**SCENARIO, "seed": 8}), AS_OF)
    assert not other.purchase_order_lines["received_at"].equals(
        snapshot.purchase_order_lines["received_at"]
    )
    pd.testing.assert_frame_equal(other.products, snapshot.products)


def test_contract_frames(snapshot: model.ErpSnapshot) -> None:
    for name, frame in snapshot.tables().items():
        assert {c: str(t) for c, t in frame.dtypes.items()} == model.CONTRACT[name], name
    assert snapshot.returns.empty and snapshot.stock_history.empty


def test_passes_the_validation_gate(snapshot: model.ErpSnapshot) -> None:
    result = validate_snapshot(snapshot, AS_OF)
    assert result.quarantine.empty, result.quarantine.head().to_string()
    assert not result.failures


def test_sales_before_as_of_only(snapshot: model.ErpSnapshot) -> None:
    sales = snapshot.sales_order_lines
    assert sales["ordered_at"].max() < pd.Timestamp(AS_OF)
    assert sales["ordered_at"].min() == pd.Timestamp(START + timedelta(hours=11))
    assert (sales["ordered_at"] < day_end(AS_OF)).all()


def test_products(snapshot: model.ErpSnapshot) -> None:
    p = snapshot.products.set_index("sku")
    assert p.loc["XM-1", "category"] == "Christmas"
    assert p.loc["MUG-2", "category"] == "Kitchen"  # plural of MUG
    assert p.loc["TT-1", "category"] == "Kitchen"  # two-word keyword
    assert p.loc["GI-1", "category"] == "Gifts"
    assert p.loc["MUG-1", "name"] == "SPOTTY MUG"
    assert p.loc["MUG-1", "unit_price"] == pytest.approx(2.10)
    assert p.loc["MUG-1", "unit_cost"] == pytest.approx(1.05)
    # no positive price seen: the median of its category (Gifts: 12.00)
    assert p.loc["GI-2", "unit_price"] == pytest.approx(12.0)
    assert p["active"].all() and (p["replenishment_mode"] == "stock").all()


def test_supplier_assignment_packs_and_moq(snapshot: model.ErpSnapshot) -> None:
    sp = snapshot.supplier_products
    pref = sp[sp["priority"] == 1].set_index("sku")
    assert pref.loc["XM-1", "supplier_id"] == "FAR"
    assert pref.loc["MUG-1", "supplier_id"] == "NEAR"
    assert pref.loc["XM-1", ["pack_size", "moq"]].tolist() == [12.0, 36.0]  # 3 packs at FAR
    assert pref.loc["MUG-1", ["pack_size", "moq"]].tolist() == [6.0, 6.0]
    assert pref.loc["GI-1", ["pack_size", "moq"]].tolist() == [1.0, 1.0]
    assert pref.loc["XM-1", "lead_time_days"] == 20.0
    second = sp[sp["priority"] == 2]
    assert second[["sku", "supplier_id"]].values.tolist() == [["XM-1", "NEAR"]]
    assert second["unit_price"].iloc[0] == pytest.approx(pref.loc["XM-1", "unit_price"] * 1.2)
    sup = snapshot.suppliers.set_index("supplier_id")
    assert sup.loc["NEAR", "order_days"] == "mon,thu"


def test_purchase_history(snapshot: model.ErpSnapshot) -> None:
    po, pol = snapshot.purchase_orders, snapshot.purchase_order_lines
    assert po["po_id"].is_unique
    weekday = po.set_index("supplier_id")["ordered_at"].dt.day_of_week
    assert set(weekday.loc["NEAR"]) <= {0, 3} and set(weekday.loc["FAR"]) == {2}
    assert po["ordered_at"].min() >= pd.Timestamp(START + timedelta(days=14))
    received = po[po["status"] == "received"]
    open_ = po[po["status"] != "received"]
    assert len(received) > 20 and len(open_) >= 1  # FAR's last orders are still under way
    assert set(open_["status"]) <= model.OPEN_PO_STATUSES
    merged = pol.merge(po, on="po_id")
    got = merged[merged["status"] == "received"]
    assert (got["qty_received"] == got["qty_ordered"]).all()
    assert (got["received_at"] < pd.Timestamp(AS_OF)).all()
    assert merged.loc[merged["status"] != "received", "received_at"].isna().all()
    # quantities honour pack size and MOQ
    sp = snapshot.supplier_products[snapshot.supplier_products["priority"] == 1]
    q = pol.merge(sp, on="sku")
    assert ((q["qty_ordered"] % q["pack_size"]) == 0).all()
    assert (q["qty_ordered"] >= q["moq"]).all()


def test_lead_times_are_learnable(snapshot: model.ErpSnapshot) -> None:
    """Receipts teach each SKU a lead time near its supplier's declared one
    (NEAR: 1 + 2 + 1 + 1 = 5 days; FAR: 2 + 20 + 10 + 2 = 34 days)."""
    lt = learn_lead_times(
        snapshot.purchase_orders,
        snapshot.purchase_order_lines,
        snapshot.supplier_products,
        snapshot.suppliers,
    )
    pref = lt.merge(
        snapshot.supplier_products[snapshot.supplier_products["priority"] == 1][
            ["sku", "supplier_id"]
        ]
    ).set_index("sku")
    assert pref.loc["MUG-1", "lead_time_source"] == "receipts"
    assert pref.loc["MUG-1", "n_receipts"] >= 15
    assert pref.loc["MUG-1", "declared_lead_time"] == 5.0
    assert pref.loc["MUG-1", "lead_time_mean"] == pytest.approx(5.0, abs=0.6)
    assert 0.3 < pref.loc["MUG-1", "lead_time_std"] < 2.0
    assert pref.loc["XM-1", "lead_time_source"] == "receipts"
    assert pref.loc["XM-1", "declared_lead_time"] == 34.0
    assert pref.loc["XM-1", "lead_time_mean"] == pytest.approx(34.0, abs=6.0)


def test_stock_rule(snapshot: model.ErpSnapshot) -> None:
    """on_hand = round(10 days × mean daily demand of the last 14 days × f),
    f in [0.5, 1.5]."""
    st = snapshot.stock_levels.set_index("sku")
    assert set(st["location_id"]) == {"UK"}
    assert (st["as_of"] == pd.Timestamp(AS_OF)).all()
    assert (st["allocated"] == 0).all()
    sales = snapshot.sales_order_lines
    recent = sales[
        (sales["status"] == "shipped")
        & (sales["ordered_at"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=14))
    ]
    daily = recent.groupby("sku")["qty"].sum() / 14
    for sku, d in daily.items():
        assert 0.5 * 10 * d - 0.5 <= st.loc[sku, "on_hand"] <= 1.5 * 10 * d + 0.5, sku
    assert st.loc["GI-2", "on_hand"] == 0.0  # no sale in the window


def test_inactive_after(snapshot: model.ErpSnapshot) -> None:
    lines, extras = _sales()
    snap = build_snapshot(
        lines, extras, Scenario.model_validate({**SCENARIO, "inactive_after_days": 20}), AS_OF
    )
    active = snap.products.set_index("sku")["active"]
    assert not active["GI-2"]  # sells every 60 days: last sale 29 days before AS_OF
    assert active.drop("GI-2").all()


def test_bad_inputs() -> None:
    lines, extras = _sales()
    scenario = Scenario.model_validate(SCENARIO)
    with pytest.raises(ConfigurationError, match="no sales line before"):
        build_snapshot(lines, extras, scenario, date(2010, 1, 1))
    other = lines.assign(location_id="WH9")
    with pytest.raises(ConfigurationError, match="location 'WH9'"):
        build_snapshot(other, extras, scenario, AS_OF)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default_supplier": "NOPE"}, "default_supplier: unknown supplier 'NOPE'"),
        (
            {"assignment": [{"category": "Christmas", "supplier": "ZZ"}]},
            r"assignment\[0\]\.supplier: unknown supplier 'ZZ'",
        ),
        (
            {"assignment": [{"category": "Toys", "supplier": "FAR"}]},
            r"assignment\[0\]\.category: unknown category 'Toys'",
        ),
        ({"pack_sizes": [{"max_price": 2, "pack_size": 6}]}, "pack_sizes: only the last band"),
        ({"cost_ratio": 0}, "cost_ratio: Input should be greater than 0"),
        ({"suppliers": [{"supplier_id": "X"}]}, r"suppliers\[0\]\.name: Field required"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_scenario_errors_name_the_file_and_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    import yaml

    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, **change}))
    with pytest.raises(ConfigurationError, match=rf"scenario .*scenario\.yaml: {message}"):
        load_scenario(path)


def test_shipped_scenario_loads() -> None:
    scenario = load_scenario(SHIPPED)
    assert len(scenario.suppliers) == 5
    assert {a.supplier for a in scenario.assignment} <= {s.supplier_id for s in scenario.suppliers}
    assert np.isclose(scenario.cost_ratio, 0.45)
