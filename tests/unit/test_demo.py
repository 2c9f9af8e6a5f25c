"""The demo shop generator: contract, determinism, consistency and realism."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replenish import model
from replenish.demo import CATEGORIES, DEFECTS, SUPPLIERS, DemoShop, generate_demo, simulate_demo

AS_OF = dt.date(2026, 3, 18)
AS_OF_TS = pd.Timestamp(AS_OF)
DAYS = 730
KEY = ["sku", "location_id"]


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return simulate_demo(AS_OF)


@pytest.fixture(scope="module")
def clean() -> model.ErpSnapshot:
    return generate_demo(AS_OF, with_defects=False)


def _defect_orders(shop: DemoShop) -> set[str]:
    d = shop.truth.defects
    return {k.split("/")[0] for k in d.loc[d["table"] == "sales_order_lines", "key"]}


def _good_sales(shop: DemoShop) -> pd.DataFrame:
    sales = shop.snapshot.sales_order_lines
    return sales[~sales["order_id"].isin(_defect_orders(shop))]


def _matrix(frame: pd.DataFrame, date_col: str, value: str, shop: DemoShop) -> np.ndarray:
    """series × day matrix (rows in stock_levels order, columns = truth dates)."""
    index = pd.MultiIndex.from_frame(shop.snapshot.stock_levels[KEY])
    day = frame[date_col].dt.normalize()
    table = frame.assign(_day=day).pivot_table(
        index=KEY, columns="_day", values=value, aggfunc="sum", fill_value=0.0
    )
    table = table.reindex(index=index, columns=shop.truth.dates, fill_value=0.0)
    return table.fillna(0.0).to_numpy(dtype=float)


# --- contract and determinism ---------------------------------------------------


def test_every_table_follows_the_contract(shop: DemoShop) -> None:
    for name, frame in shop.snapshot.tables().items():
        assert list(frame.columns) == list(model.CONTRACT[name]), name
        assert {c: str(t) for c, t in frame.dtypes.items()} == model.CONTRACT[name], name
        assert len(frame) > 0, name
        assert not frame.duplicated(list(model.KEYS[name])).any(), f"duplicate key in {name}"
    # NOT NULL columns of the SQL tables are filled (the snapshot can be stored)
    for name, table in model.ERP_METADATA.tables.items():
        frame = shop.snapshot.tables()[name]
        for col in table.columns:
            if not col.nullable:
                assert frame[col.name].notna().all(), f"{name}.{col.name} has nulls"


def test_same_seed_gives_identical_frames_and_another_seed_differs() -> None:
    a = generate_demo(AS_OF, seed=3, n_skus=30, days=90)
    b = generate_demo(AS_OF, seed=3, n_skus=30, days=90)
    c = generate_demo(AS_OF, seed=4, n_skus=30, days=90)
    for name in model.CONTRACT:
        pd.testing.assert_frame_equal(a.tables()[name], b.tables()[name], obj=name)
    assert not a.sales_order_lines.equals(c.sales_order_lines)
    assert not a.stock_history.equals(c.stock_history)


def test_any_as_of_and_size() -> None:
    as_of = dt.date(2024, 2, 29)
    snap = generate_demo(as_of, seed=11, n_skus=25, days=60)
    assert len(snap.products) == 25
    assert snap.stock_history["date"].max() == pd.Timestamp(as_of) - pd.Timedelta(days=1)
    assert snap.stock_history["date"].min() == pd.Timestamp(as_of) - pd.Timedelta(days=60)
    assert (snap.stock_levels["as_of"] == pd.Timestamp(as_of)).all()
    with pytest.raises(ValueError):
        generate_demo(as_of, n_skus=5)


# --- master data ----------------------------------------------------------------


def test_master_data(shop: DemoShop) -> None:
    snap = shop.snapshot
    sup, prod, sp = snap.suppliers, snap.products, snap.supplier_products
    assert list(sup["supplier_id"]) == ["SUP-A", "SUP-B", "SUP-C", "SUP-D", "SUP-E"]
    assert (sup["currency"] == "EUR").all()
    declared = sup["order_processing_days"] + sup["transport_days"] + sup["receiving_days"]
    assert declared.iloc[0] < declared.iloc[1] < declared.iloc[3]  # fast domestic … overseas
    assert sup["min_order_value"].nunique() >= 3

    assert len(prod) == 200 and prod["sku"].is_unique
    assert prod["sku"].str.fullmatch(r"SKU-\d{4}").all()
    assert 4 <= prod["category"].nunique() <= 6
    assert (prod["unit_price"] > prod["unit_cost"]).all()
    assert (~prod["active"]).sum() == 2
    jit_share = (prod["replenishment_mode"] == "jit").mean()
    assert 0.03 <= jit_share <= 0.07
    assert set(prod["replenishment_mode"]) == {"stock", "jit"}
    overrides = prod["service_level"].dropna()
    assert 1 <= len(overrides) <= 10 and overrides.between(0.5, 1.0).all()

    clean_sp = sp[sp["supplier_id"].isin(sup["supplier_id"])]
    assert (clean_sp["moq"] % clean_sp["pack_size"] == 0).all()
    assert clean_sp["moq"].isin([1, 6, 12, 24, 50]).sum() > 0.5 * len(clean_sp)
    per_sku = clean_sp.groupby("sku")["priority"].agg(list)
    assert per_sku.map(lambda p: sorted(p)[0] == 1 and p.count(1) == 1).all()
    assert set(per_sku.index) == set(prod["sku"])
    second = clean_sp[clean_sp["priority"] == 2]
    assert 0.2 <= len(second) / len(prod) <= 0.4
    first = clean_sp[clean_sp["priority"] == 1].set_index("sku")["unit_price"]
    assert (second.set_index("sku")["unit_price"] > first.loc[second["sku"]]).all()
    assert set(clean_sp.loc[clean_sp["priority"] == 1, "supplier_id"]) == set(sup["supplier_id"])

    sl = snap.stock_levels
    assert set(sl["location_id"]) == {"WH1", "WH2"}
    volume = _good_sales(shop).groupby("location_id")["qty"].sum()
    assert volume["WH2"] < 0.8 * volume["WH1"]


# --- referential integrity and the deliberate defects -------------------------------


def test_referential_integrity_of_the_clean_demo(clean: model.ErpSnapshot) -> None:
    skus = set(clean.products["sku"])
    sups = set(clean.suppliers["supplier_id"])
    sales = clean.sales_order_lines
    assert set(sales["sku"]) <= skus
    assert (sales["qty"] > 0).all()
    assert (sales["ordered_at"] < AS_OF_TS).all()
    assert (sales["ordered_at"] >= AS_OF_TS - pd.Timedelta(days=DAYS)).all()
    assert set(sales["location_id"]) == {"WH1", "WH2"}
    assert set(clean.supplier_products["supplier_id"]) <= sups
    assert set(clean.supplier_products["sku"]) <= skus
    assert set(clean.purchase_orders["supplier_id"]) <= sups
    assert set(clean.purchase_order_lines["po_id"]) <= set(clean.purchase_orders["po_id"])
    assert set(clean.purchase_order_lines["sku"]) <= skus

    def pairs(frame: pd.DataFrame, a: str, b: str) -> set[tuple[str, str]]:
        return set(zip(frame[a], frame[b], strict=True))

    po_sup = clean.purchase_orders.set_index("po_id")["supplier_id"]
    lines = clean.purchase_order_lines.assign(supplier_id=lambda f: po_sup.loc[f["po_id"]].array)
    assert pairs(lines, "sku", "supplier_id") <= pairs(
        clean.supplier_products, "sku", "supplier_id"
    )
    sl_keys = pairs(clean.stock_levels, *KEY)
    assert pairs(sales, *KEY) <= sl_keys
    assert pairs(clean.stock_history, *KEY) == sl_keys

    # a return belongs to a shipped line of the same order, sku and location
    ret = clean.returns.merge(
        sales, on=["order_id", "sku", "location_id"], how="left", suffixes=("", "_sold")
    )
    assert len(ret) == len(clean.returns)
    assert (ret["status"] == "shipped").all()
    assert (ret["qty"] <= ret["qty_sold"]).all()
    delay = (ret["returned_at"].dt.normalize() - ret["ordered_at"].dt.normalize()).dt.days
    assert delay.between(3, 30).all()
    assert (ret["returned_at"] < AS_OF_TS).all()


def test_defects_are_exactly_the_documented_ones(shop: DemoShop, clean: model.ErpSnapshot) -> None:
    snap, truth = shop.snapshot, shop.truth
    assert sorted(truth.defects["defect"]) == sorted(DEFECTS)
    # every other table is identical with and without the defects
    for name in model.CONTRACT:
        if name not in {"sales_order_lines", "supplier_products"}:
            pd.testing.assert_frame_equal(snap.tables()[name], clean.tables()[name], obj=name)

    def extra(name: str) -> pd.DataFrame:
        keys = list(model.KEYS[name])
        merged = snap.tables()[name].merge(
            clean.tables()[name][keys], on=keys, how="left", indicator=True
        )
        assert len(merged) == len(clean.tables()[name]) + len(
            truth.defects[truth.defects["table"] == name]
        )
        return merged[merged["_merge"] == "left_only"].drop(columns="_merge")

    bad_sales = extra("sales_order_lines").set_index("order_id")
    by_name = dict(zip(truth.defects["defect"], truth.defects["key"], strict=True))
    skus = set(snap.products["sku"])

    neg = bad_sales.loc[by_name["negative_qty"].split("/")[0]]
    assert neg["qty"] < 0 and neg["sku"] in skus and neg["ordered_at"] < AS_OF_TS
    unknown = bad_sales.loc[by_name["unknown_sku"].split("/")[0]]
    assert unknown["sku"] not in skus and unknown["qty"] > 0
    future = bad_sales.loc[by_name["future_date"].split("/")[0]]
    assert future["ordered_at"] > AS_OF_TS and future["sku"] in skus and future["qty"] > 0

    bad_sp = extra("supplier_products")
    assert len(bad_sp) == 1
    assert bad_sp["supplier_id"].iloc[0] not in set(snap.suppliers["supplier_id"])
    assert bad_sp["sku"].iloc[0] in skus
    assert by_name["unknown_supplier"] == f"{bad_sp['sku'].iloc[0]}/{bad_sp['supplier_id'].iloc[0]}"


def test_demo_can_be_stored_in_the_generic_erp_tables(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    snap = generate_demo(AS_OF, n_skus=20, days=60)
    engine = create_engine(f"sqlite:///{tmp_path}/erp.db")
    try:
        model.ERP_METADATA.create_all(engine)
        with engine.begin() as conn:
            for name, frame in snap.tables().items():
                records = frame.astype(object).where(frame.notna(), None).to_dict("records")
                conn.execute(model.ERP_METADATA.tables[name].insert(), records)
    finally:
        engine.dispose()


# --- sales ------------------------------------------------------------------------


def test_sales_lines_orders_channels_and_statuses(shop: DemoShop) -> None:
    sales = _good_sales(shop)
    assert 50_000 <= len(shop.snapshot.sales_order_lines) <= 300_000
    assert sales["order_id"].str.fullmatch(r"SO-\d{6}").all()
    assert set(sales["channel"]) == {"web", "shopify", "woocommerce", "b2b"}
    # line numbers run 1..n in every order; one line per SKU per order
    n = sales.groupby("order_id")["line_no"].agg(["min", "max", "count"])
    assert (n["min"] == 1).all() and (n["max"] == n["count"]).all()
    assert not sales.duplicated(["order_id", "sku"]).any()
    assert (n["count"] > 1).mean() > 0.2
    # one status per order
    assert (sales.groupby("order_id")["status"].nunique() == 1).all()
    status = sales["status"].value_counts(normalize=True)
    assert 0.005 <= status["cancelled"] <= 0.03
    open_lines = sales[sales["status"] == "open"]
    assert len(open_lines) > 0
    assert (open_lines["ordered_at"] >= AS_OF_TS - pd.Timedelta(days=3)).all()
    # big quantities are b2b
    assert sales.loc[sales["qty"] >= 12, "channel"].eq("b2b").all()


def test_weekday_profile_of_the_categories(shop: DemoShop) -> None:
    items = shop.truth.items
    sales = _good_sales(shop)
    sales = sales[sales["status"] != "cancelled"].merge(items, on=KEY)
    fast = sales[sales["pattern"] == "fast"]
    weekend = fast["ordered_at"].dt.day_of_week >= 5
    daily = fast.assign(weekend=weekend).groupby(["category", "weekend"])["qty"].sum()
    ratio = (daily.xs(True, level="weekend") / 2) / (daily.xs(False, level="weekend") / 5)
    profiles = {c.name: c.weekday for c in CATEGORIES}
    for category, r in ratio.items():
        w = profiles[str(category)]
        designed = (sum(w[5:]) / 2) / (sum(w[:5]) / 5)
        assert r == pytest.approx(designed, rel=0.15), category
    assert ratio["Computer Accessories"] < 0.6  # B2B: quiet weekends
    assert ratio["Gifts & Decor"] > 1.1  # gifts: weekend shopping


def test_yearly_season_and_promotions_are_visible(shop: DemoShop) -> None:
    truth = shop.truth
    items = truth.items
    gifts = (items["category"] == "Gifts & Decor").to_numpy()
    sold = truth.sold[:, gifts].sum(axis=1)
    december = truth.dates.month == 12
    assert (
        sold[december].mean()
        > 1.8 * sold[(truth.dates.month >= 2) & (truth.dates.month <= 10)].mean()
    )

    past = truth.promotions[truth.promotions["end"] < truth.dates.max()]
    assert len(past) >= 2
    # two promotions are scheduled again after as-of, and the contract shows them
    future = truth.promotions[truth.promotions["start"] > truth.dates.max()]
    assert len(future) == 2 and set(future["sku"]) <= set(past["sku"])
    promos = shop.snapshot.promotions
    assert len(promos) == len(truth.promotions) and promos["location_id"].isna().all()
    ratios = []
    for promo in past.itertuples():
        cols = (items["sku"] == promo.sku).to_numpy()
        demand = truth.demand[:, cols].sum(axis=1)
        days = (truth.dates >= promo.start) & (truth.dates <= promo.end)
        week = pd.Timedelta(days=7)
        around = (truth.dates >= promo.start - week) & (truth.dates <= promo.end + week) & ~days
        ratios.append(demand[days].mean() / demand[around].mean())
    assert min(ratios) > 1.2  # a week of 2-3x uplift, through negative-binomial noise
    assert np.mean(ratios) > 1.7


def test_intermittent_skus_have_long_intervals_and_fast_ones_sell_daily(shop: DemoShop) -> None:
    sales = _good_sales(shop)
    sales = sales[sales["status"] != "cancelled"]
    demand_days = sales.assign(day=sales["ordered_at"].dt.normalize()).groupby(KEY)["day"].nunique()
    items = shop.truth.items.set_index(KEY)
    adi = DAYS / demand_days.reindex(items.index)
    slow = items["pattern"].isin(["slow", "jit"]) & adi.notna()
    assert slow.sum() > 50
    assert (adi[slow] > 1.32).all()
    assert adi[slow].median() > 4
    fast = items["pattern"] == "fast"
    assert (adi[fast] < 1.32).mean() >= 0.8
    assert adi[fast].median() < 1.1


# --- stock, censoring and purchase orders -------------------------------------------


def test_stock_history_balances_with_sales_receipts_and_returns(shop: DemoShop) -> None:
    snap = shop.snapshot
    sales = _good_sales(shop)
    shipped = _matrix(sales[sales["status"] == "shipped"], "ordered_at", "qty", shop)

    lines = snap.purchase_order_lines.merge(snap.purchase_orders, on="po_id").merge(
        snap.suppliers[["supplier_id", "receiving_days"]], on="supplier_id"
    )
    lines = lines[lines["received_at"].notna()]
    lines = lines.assign(
        available=lines["received_at"] + pd.to_timedelta(lines["receiving_days"], unit="D")
    )
    receipts = _matrix(lines, "available", "qty_received", shop)
    ret = snap.returns[snap.returns["restockable"].to_numpy(dtype=bool)]
    returns = _matrix(ret, "returned_at", "qty", shop)

    sh = snap.stock_history.sort_values([*KEY, "date"])
    on_hand = sh["on_hand"].to_numpy().reshape(len(snap.stock_levels), DAYS)
    assert (on_hand >= 0).all()
    start = on_hand[:, :-1] + receipts[:, 1:] + returns[:, 1:]
    np.testing.assert_array_equal(on_hand[:, 1:], start - shipped[:, 1:])
    # nothing ships that was not there: sales are censored by the available stock
    assert (shipped[:, 1:] <= start).all()

    # the snapshot stock is the last evening of the history
    last = sh.groupby(KEY)["on_hand"].last()
    sl = snap.stock_levels.set_index(KEY)
    pd.testing.assert_series_equal(sl["on_hand"], last.loc[sl.index], check_names=False)
    assert (snap.stock_levels["as_of"] == AS_OF_TS).all()
    open_qty = sales[sales["status"] == "open"].groupby(KEY)["qty"].sum()
    allocated = open_qty.reindex(sl.index, fill_value=0.0)
    pd.testing.assert_series_equal(sl["allocated"], allocated, check_names=False)
    over = sl[sl["allocated"] > sl["on_hand"]].join(shop.truth.items.set_index(KEY))
    assert 1 <= len(over) <= 3 and (over["pattern"] == "jit").all()  # uncovered jit orders


def test_stockouts_happen_and_censor_the_sales(shop: DemoShop) -> None:
    truth = shop.truth
    sh = shop.snapshot.stock_history.sort_values([*KEY, "date"])
    on_hand = sh["on_hand"].to_numpy().reshape(len(truth.items), DAYS).T  # days × series
    out = on_hand == 0
    assert out.sum() > 2_000
    quick = truth.items["pattern"].isin(["fast", "medium"]).to_numpy()
    assert out[:, quick].any(axis=0).mean() > 0.5
    assert (truth.sold <= truth.demand).all()
    lost = truth.demand - truth.sold
    assert lost[out].sum() > 1_000  # demand went unserved on stock-out days
    assert (lost[out] > 0).mean() > 0.3
    # with stock left in the evening (and no open orders yet), all demand was served
    settled = np.arange(DAYS) < DAYS - 3
    in_stock = (on_hand > 0) & settled[:, None]
    np.testing.assert_array_equal(truth.sold[in_stock], truth.demand[in_stock])
    # the sales lines say the same as the truth
    sales = _good_sales(shop)
    sold = _matrix(sales[sales["status"] != "cancelled"], "ordered_at", "qty", shop)
    np.testing.assert_array_equal(sold.T, truth.sold)


def test_purchase_order_history_and_open_orders(shop: DemoShop) -> None:
    snap = shop.snapshot
    po, pol = snap.purchase_orders, snap.purchase_order_lines
    assert po["po_id"].str.fullmatch(r"PO-\d{5}").all()
    assert set(po["status"]) <= {"sent", "confirmed", "received", "cancelled"}
    lines = pol.merge(po, on="po_id")
    received = lines[lines["status"] == "received"]
    assert received["received_at"].notna().all()
    assert (received["received_at"] > received["ordered_at"]).all()
    assert (received["received_at"] < AS_OF_TS).all()
    assert (received["qty_received"] <= received["qty_ordered"]).all()
    short = (received["qty_received"] < received["qty_ordered"]).mean()
    assert 0.01 < short < 0.1
    not_received = lines[lines["status"] != "received"]
    assert (not_received["qty_received"] == 0).all() and not_received["received_at"].isna().all()
    # lead times vary: mostly on time, some late, a few very late
    elapsed = (received["received_at"] - received["ordered_at"]).dt.total_seconds() / 86_400
    expected = (received["expected_at"] - received["ordered_at"]).dt.total_seconds() / 86_400
    late = elapsed - expected
    assert (late.abs() < 1).mean() > 0.5
    assert (late > 1).mean() > 0.1
    assert (late > 5).sum() > 20
    stats = received.assign(elapsed=elapsed).groupby("supplier_id")["elapsed"].agg(["mean", "std"])
    assert stats["mean"].idxmin() == "SUP-A" and stats["mean"].idxmax() == "SUP-D"
    assert (stats["std"] > 0.5).all()
    # enough receipts to learn a lead time per supplier × SKU for the fast movers
    fast = set(shop.truth.items.loc[shop.truth.items["pattern"] == "fast", "sku"])
    per_pair = received[received["sku"].isin(fast)].groupby(["sku", "supplier_id"]).size()
    assert (per_pair.groupby(level="sku").max() >= 5).all()

    open_po = po[po["status"].isin(["sent", "confirmed"])]
    assert set(open_po["supplier_id"]) == {s.supplier_id for s in SUPPLIERS}
    assert (open_po["expected_at"] < AS_OF_TS).any()  # one is late already
    assert (open_po["ordered_at"] < AS_OF_TS).all()
    assert (po.loc[po["status"] == "cancelled"].shape[0]) >= 1


def test_state_at_as_of_needs_orders_from_every_supplier(shop: DemoShop) -> None:
    snap = shop.snapshot
    sp = snap.supplier_products.merge(snap.suppliers, on="supplier_id")
    sp = sp[sp["priority"] == 1].assign(
        lead=lambda f: (
            f["order_processing_days"]
            + f["lead_time_days"]
            + f["transport_days"]
            + f["receiving_days"]
        )
    )
    po, pol = snap.purchase_orders, snap.purchase_order_lines
    open_lines = pol.merge(po[po["status"].isin(["sent", "confirmed"])], on="po_id")
    on_order = (
        open_lines.assign(q=open_lines["qty_ordered"] - open_lines["qty_received"])
        .groupby(KEY)["q"]
        .sum()
    )
    sales = _good_sales(shop)
    recent = sales[
        (sales["status"] != "cancelled") & (sales["ordered_at"] >= AS_OF_TS - pd.Timedelta(days=56))
    ]
    daily = recent.groupby(KEY)["qty"].sum() / 56
    st = snap.stock_levels.set_index(KEY)
    st = st.assign(
        on_order=on_order.reindex(st.index, fill_value=0.0),
        d=daily.reindex(st.index, fill_value=0.0),
    ).reset_index()
    st = st.merge(sp[["sku", "supplier_id", "lead"]], on="sku")
    st = st[st["d"] > 0]
    ip = st["on_hand"] - st["allocated"] + st["on_order"]
    rop = st["d"] * st["lead"]  # naive reorder point, no safety stock
    below = st[ip <= rop]
    assert set(below["supplier_id"]) == {s.supplier_id for s in SUPPLIERS}
    assert len(below) >= 8
    # some at stock-out risk: less available than the demand over the lead time
    at_risk = st[(st["on_hand"] - st["allocated"]) < rop]
    assert len(at_risk) >= 5
    # and a couple clearly overstocked (> 90 days of demand on hand)
    cover = st["on_hand"] / st["d"]
    assert (cover > 90).sum() >= 2
