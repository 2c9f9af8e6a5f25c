"""Promise 4, hostile input: whatever the ERP tables or the sales channels
send — wrong types, NaN and infinities, huge numbers, empty and unicode SKUs,
duplicate keys, future dates, negative stock, missing or extra columns,
SQL-looking strings, truncated JSON — nothing raises an unhandled exception
(a clear ``ReplenishError`` subclass where the whole input is unusable),
every bad row is quarantined with its reason, and every valid SKU is still
planned.

Datasets go through the same steps as the nightly flow: the validation gate
(``validate_snapshot``), then forecast and plan on the clean snapshot (as
``tasks/plan.py``), then the draft orders. Channel payloads go through the
Shopify / WooCommerce parsers, and through the clients against the local
servers of ``tests/channel_servers.py``, into the store.

Fuzzing is property-based (hypothesis) with a fixed seed (``derandomize``):
``REPLENISH_FUZZ_EXAMPLES`` (default 10 for datasets, 150 for payloads)
sets the number of examples for a deeper run.

The bugs found are pinned by the ``xfail(strict=True)`` tests at the end of
each part (their reason says what breaks and where); the fuzz strategies
leave those shapes out until they are fixed (:data:`KNOWN_BAD_PAYLOAD_KEYS`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replenish import model
from replenish.errors import ContractError
from replenish.forecast import forecast_demand
from replenish.forecast.demand import daily_demand
from replenish.orders import build_drafts
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import PlanSettings, build_plans
from replenish.quality import GateResult, validate_snapshot
from replenish.sources.channels import (
    SALES_STATUSES,
    ShopifyConfig,
    WooCommerceConfig,
    fetch,
)
from replenish.sources.channels import shopify as shopify_module
from replenish.sources.channels import woocommerce as woo_module
from replenish.sources.channels.base import OrderRecord, UnidentifiedOrder
from replenish.sources.generic import day_end
from replenish.store import Store
from tests.channel_servers import (
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    ShopifyServer,
    WooCommerceServer,
    shopify_line,
    shopify_order,
    shopify_refund,
    woo_line,
    woo_order,
    woo_refund,
)
from tests.servers import HttpRecorder

# Hypothesis warns when the global ``random`` state moves while it draws an
# example. The strategies here draw from hypothesis only (derandomized); what
# moves it is a background thread of another test's Prefect client in this
# process (a retry jitter), seen once in CI as a flaky "failure" of the first
# example that passed on replay. The warning says nothing about this module.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

AS_OF = date(2026, 11, 20)
D0 = datetime.combine(AS_OF, datetime.min.time())
FUTURE = D0 + timedelta(days=400)
N_SKUS = 30
N_SUPPLIERS = 6
LOCATIONS = ("WH1", "WH2")
DATASET_EXAMPLES = int(os.environ.get("REPLENISH_FUZZ_EXAMPLES", "10"))
PAYLOAD_EXAMPLES = int(os.environ.get("REPLENISH_FUZZ_EXAMPLES", "150"))

# =========================================================================== datasets


def base_frames() -> dict[str, pd.DataFrame]:
    """A small, valid ERP: 30 SKUs at two warehouses, six suppliers, 90 days
    of sales, received and open purchase orders, returns. Plain object
    columns, as a driver hands them over before coercion."""
    rng = np.random.default_rng(0)
    skus = [f"S-{i:02d}" for i in range(N_SKUS)]
    suppliers = pd.DataFrame(
        [
            {
                "supplier_id": f"V{j}", "name": f"Vendor {j}", "email": None, "currency": "EUR",
                "min_order_value": 0.0, "order_processing_days": 1.0, "transport_days": 2.0 + j,
                "receiving_days": 0.0, "order_days": None, "order_cost": None,
            }
            for j in range(N_SUPPLIERS)
        ]
    )  # fmt: skip
    products = pd.DataFrame(
        [
            {
                "sku": s, "name": f"Product {s}", "category": "c", "unit_cost": 2.0 + i % 7,
                "unit_price": 5.0 + i % 7, "active": True, "replenishment_mode": "stock",
                "service_level": None,
            }
            for i, s in enumerate(skus)
        ]
    )  # fmt: skip
    links = pd.DataFrame(
        [
            {
                "sku": s, "supplier_id": f"V{i % N_SUPPLIERS}", "supplier_sku": f"X-{s}",
                "lead_time_days": 4.0, "moq": 1.0, "pack_size": 1.0, "unit_price": 2.0 + i % 7,
                "priority": 1,
            }
            for i, s in enumerate(skus)
        ]
    )  # fmt: skip
    stock = pd.DataFrame(
        [
            {"sku": s, "location_id": loc, "on_hand": float(i % 9), "allocated": 0.0, "as_of": D0}
            for i, s in enumerate(skus)
            for loc in LOCATIONS
        ]
    )
    rows, n = [], 0
    for day in range(90, 0, -1):
        when = D0 - timedelta(days=day) + timedelta(hours=10)
        for i, s in enumerate(skus):
            for loc in LOCATIONS:
                qty = int(rng.poisson(1 + i % 5))
                if qty:
                    n += 1
                    rows.append(
                        {
                            "order_id": f"O{n}", "line_no": 1, "sku": s, "location_id": loc,
                            "channel": "web", "qty": float(qty), "ordered_at": when,
                            "status": "shipped",
                        }
                    )  # fmt: skip
    sales = pd.DataFrame(rows)
    orders = pd.DataFrame(
        [
            {
                "po_id": f"PO-{k}", "supplier_id": f"V{k % N_SUPPLIERS}",
                "location_id": LOCATIONS[k % 2], "status": "received" if k % 3 else "confirmed",
                "ordered_at": D0 - timedelta(days=30 + k), "expected_at": D0 - timedelta(days=25),
            }
            for k in range(1, 9)
        ]
    )  # fmt: skip
    po_lines = pd.DataFrame(
        [
            {
                "po_id": f"PO-{k}", "line_no": n, "sku": f"S-{(k + N_SUPPLIERS * n) % N_SKUS:02d}",
                "qty_ordered": 10.0, "qty_received": 10.0 if k % 3 else 0.0,
                "received_at": D0 - timedelta(days=26 - k) if k % 3 else None,
            }
            for k in range(1, 9)
            for n in (1, 2)
        ]
    )  # fmt: skip
    returns = pd.DataFrame(
        [
            {"order_id": sales.loc[k, "order_id"], "sku": sales.loc[k, "sku"],
             "location_id": sales.loc[k, "location_id"], "qty": 1.0,
             "returned_at": D0 - timedelta(days=10), "restockable": True}
            for k in range(0, 80, 10)
        ]
    )  # fmt: skip
    frames = {
        "suppliers": suppliers,
        "products": products,
        "supplier_products": links,
        "stock_levels": stock,
        "purchase_orders": orders,
        "purchase_order_lines": po_lines,
        "sales_order_lines": sales,
        "returns": returns,
    }
    return {name: frame.astype(object) for name, frame in frames.items()}


@dataclass
class Outcome:
    gate: GateResult
    plans: pd.DataFrame | None
    headers: pd.DataFrame | None
    lines: pd.DataFrame | None


def run_pipeline(frames: dict[str, pd.DataFrame]) -> Outcome:
    """What the nightly flow does with an extracted snapshot, up to the drafts."""
    gate = validate_snapshot(model.ErpSnapshot(**frames), day_end(AS_OF))
    if gate.blocking:  # the flow stops here with DataQualityError
        return Outcome(gate, None, None, None)
    clean = gate.clean
    history = daily_demand(
        clean.sales_order_lines,
        AS_OF,
        history_days=120,
        stock_history=clean.stock_history,
        returns=clean.returns,
    )
    demand = forecast_demand(history, promotions=clean.promotions, as_of=AS_OF)
    lead_times = learn_lead_times(
        clean.purchase_orders, clean.purchase_order_lines, clean.supplier_products, clean.suppliers
    )
    plans = build_plans(clean, demand, lead_times, AS_OF, PlanSettings())
    headers, lines = build_drafts(plans, clean.suppliers, AS_OF)
    return Outcome(gate, plans, headers, lines)


_BASELINE: dict[str, Outcome] = {}


def baseline() -> Outcome:
    if "b" not in _BASELINE:
        _BASELINE["b"] = run_pipeline(base_frames())
    return _BASELINE["b"]


_ROW = re.compile(r"^(\w+) row (\d+) ")


def quarantined_rows(gate: GateResult) -> set[tuple[str, int]]:
    """(dataset, 0-based input position) of every quarantined row, from the
    reasons ("<dataset> row <n> (...)": n is the 1-based input position)."""
    out = set()
    for reason in gate.quarantine["reason"].astype(str):
        m = _ROW.match(reason)
        assert m is not None, f"a quarantine reason without its row: {reason!r}"
        out.add((m.group(1), int(m.group(2)) - 1))
    return out


#: Bad values per (dataset, column): each must cost its row, with a reason.
BAD_VALUES: dict[tuple[str, str], list[Any]] = {
    ("suppliers", "transport_days"): [-1.0, "far", None],
    ("suppliers", "currency"): [None],
    ("products", "unit_price"): [-5.0],
    ("products", "replenishment_mode"): ["sometimes", None],
    ("products", "service_level"): [1.5, 0.0],
    ("products", "active"): [None, "maybe"],
    ("supplier_products", "lead_time_days"): [0.0, -2.0, None, "soon"],
    ("supplier_products", "pack_size"): [0.0, -6.0],
    ("supplier_products", "moq"): [-1.0, float("-inf")],
    ("supplier_products", "supplier_id"): ["V-NOPE"],
    ("stock_levels", "on_hand"): [-3.0, "lots", None, float("nan")],
    ("stock_levels", "allocated"): [-1.0],
    ("stock_levels", "as_of"): [FUTURE, "yesterday-ish", None],
    ("stock_levels", "sku"): ["GHOST-404", None],
    ("purchase_orders", "status"): ["lost", None],
    ("purchase_orders", "ordered_at"): [FUTURE, "garbage"],
    ("purchase_order_lines", "qty_ordered"): [-4.0, "ten"],
    ("purchase_order_lines", "po_id"): ["PO-GHOST"],
    ("sales_order_lines", "qty"): [-2.0, "two", None, 1e6, float("nan")],
    ("sales_order_lines", "ordered_at"): [FUTURE, "31/02/2026", None],
    ("sales_order_lines", "sku"): ["GHOST-404", None, "'; DROP TABLE products; --"],
    ("returns", "qty"): [-1.0, "one"],
    ("returns", "returned_at"): [FUTURE],
}
#: Names a SKU may have and still be a SKU: planned under that name.
ODD_SKUS = [
    "Ünïcødé-☃-Ω",
    "商品-42",
    "x'; DROP TABLE plans; --",
    'Robert"); DELETE FROM draft_purchase_orders; --',
    "%s %(sku)s {sku} ?",
    "a" * 64,
    "with space and\ttab",
    "0",
]


@dataclass(frozen=True)
class Mutation:
    kind: str  # bad, duplicate, rename, extra_column, retype, drop_column
    dataset: str
    column: str = ""
    row: int = 0
    value: Any = None


class Applied:
    """Mutations applied to the base frames, and what they must lead to."""

    def __init__(self) -> None:
        self.frames = base_frames()
        self.used: set[tuple[str, int]] = set()
        self.expected: set[tuple[str, int]] = set()  # rows that must be quarantined
        self.tainted: set[str] = set()  # SKUs a bad product/stock row may leave unplanned
        self.renamed: dict[str, str] = {}
        self.blocking: list[tuple[str, str]] = []  # missing (dataset, column): must stop
        self.changes_data = False  # anything that may change the plans

    def apply(self, m: Mutation) -> None:
        frame = self.frames[m.dataset]
        if m.kind in ("bad", "retype", "drop_column") and m.column not in frame.columns:
            return  # dropped by an earlier mutation
        if m.kind in ("bad", "duplicate"):
            row = m.row % len(frame)
            if (m.dataset, row) in self.used:
                return
            original = frame.iloc[row]
            self.used.add((m.dataset, row))
            self.changes_data = True
            if m.kind == "bad":
                frame.iat[row, int(frame.columns.get_loc(m.column))] = m.value  # type: ignore[arg-type]
                self.expected.add((m.dataset, row))
            else:
                frame.loc[len(frame)] = original.to_numpy()
                self.expected |= {(m.dataset, row), (m.dataset, len(frame) - 1)}
                self.used.add((m.dataset, len(frame) - 1))
            if m.dataset in ("products", "stock_levels") and isinstance(original["sku"], str):
                self.tainted.add(original["sku"])
        elif m.kind == "rename":
            old = f"S-{m.row % N_SKUS:02d}"
            if old in self.renamed or m.value in self.renamed.values() or old in self.tainted:
                return
            self.renamed[old] = m.value
            for name, f in self.frames.items():
                if "sku" in f.columns:
                    f["sku"] = f["sku"].where(f["sku"] != old, m.value)
                    self.frames[name] = f
        elif m.kind == "extra_column":
            frame[m.column] = m.value
        elif m.kind == "retype":  # the column as text, as a CSV or a loose driver gives it
            frame[m.column] = frame[m.column].map(lambda v: None if v is None else str(v))
        elif m.kind == "drop_column":
            # the gate refuses a table without a contract column (even one the
            # ERP readers may fill with NULL: they always hand it over)
            self.frames[m.dataset] = frame.drop(columns=[m.column])
            self.blocking.append((m.dataset, m.column))

    def expected_blocking(self) -> list[str]:
        """Blocking failures these mutations must cause: missing columns, and
        more than 20 % of the stock rows rejected (directly, or because their
        product was)."""
        out = [f"{d} lacks {c}" for d, c in self.blocking]
        stock = self.frames["stock_levels"]
        if "sku" in stock.columns:
            products = self.frames["products"]
            gone = {str(products.iloc[r]["sku"]) for d, r in self.expected if d == "products"}
            rejected = {r for d, r in self.expected if d == "stock_levels"}
            rejected |= set(np.flatnonzero(stock["sku"].isin(gone).to_numpy(dtype=bool)))
            if len(rejected) / len(stock) > 0.2:
                out.append("more than 20 % of the stock rows rejected")
        for dataset in ("suppliers", "products"):
            rows = {r for d, r in self.expected if d == dataset}
            if len(rows) == len(self.frames[dataset]):
                out.append(f"every {dataset} row rejected")
        return out


def check(applied: Applied) -> None:
    """The promise for one mutated ERP (see the module docstring)."""
    out = run_pipeline(applied.frames)
    gate = out.gate
    # every quarantined row says which row, which check, why
    assert (gate.quarantine["reason"].str.len() > 20).all()
    assert gate.quarantine[["dataset", "expectation"]].notna().all().all()
    # every bad row is quarantined (or its whole dataset refused: a missing column)
    refused = {dataset for dataset, _ in applied.blocking}
    missing = {(d, r) for d, r in applied.expected if d not in refused} - quarantined_rows(gate)
    assert not missing, f"bad rows not quarantined: {sorted(missing)}"

    blocking = applied.expected_blocking()
    if blocking:
        assert gate.blocking, f"expected the gate to stop the run: {blocking}"
        details = " ".join(f.detail for f in gate.blocking_failures)
        for dataset, column in applied.blocking:  # named, so a person can fix it
            assert dataset in details and column in details, (dataset, column, details)
        return
    assert not gate.blocking, [f.detail for f in gate.blocking_failures]
    assert out.plans is not None and out.lines is not None

    # every valid SKU × location is still planned (under its new name if renamed)
    base = baseline().plans
    assert base is not None
    planned = set(zip(out.plans["sku"], out.plans["location_id"], strict=True))
    for sku, loc in zip(base["sku"], base["location_id"], strict=True):
        if sku in applied.tainted or applied.renamed.get(sku) in applied.tainted:
            continue
        assert (applied.renamed.get(sku, sku), loc) in planned, (sku, loc)
    # nothing absurd is ordered
    qty = out.plans["order_qty"].astype(float)
    assert np.isfinite(qty).all() and (qty >= 0).all()
    assert np.isfinite(out.lines["qty"].astype(float)).all()
    assert (out.lines["qty"].astype(float) <= 1e7).all()
    # mutations that change no value change no plan
    if not applied.changes_data:
        back = {new: old for old, new in applied.renamed.items()}
        got = out.plans.assign(sku=out.plans["sku"].map(lambda s: back.get(s, s)))
        cols = ["sku", "location_id", "order_qty", "safety_stock", "reorder_point"]
        pd.testing.assert_frame_equal(
            got[cols].sort_values(cols[:2]).reset_index(drop=True),
            base[cols].sort_values(cols[:2]).reset_index(drop=True),
            check_dtype=False,
        )


def test_every_kind_of_bad_value_is_quarantined_and_the_rest_is_planned() -> None:
    """The whole catalogue at once, each bad value in a row of its own."""
    applied = Applied()
    row = 0
    for (dataset, column), values in BAD_VALUES.items():
        for value in values:
            row += 1
            applied.apply(Mutation("bad", dataset, column, row * 7, value))
    for dataset in ("products", "sales_order_lines", "supplier_products"):
        row += 1
        applied.apply(Mutation("duplicate", dataset, row=row * 11))
    assert len(applied.expected) > 50
    check(applied)


def _mutations() -> st.SearchStrategy[Mutation]:
    bad = st.sampled_from(sorted(BAD_VALUES)).flatmap(
        lambda dc: st.builds(
            Mutation,
            st.just("bad"),
            st.just(dc[0]),
            st.just(dc[1]),
            st.integers(0, 10_000),
            st.sampled_from(BAD_VALUES[dc]),
        )
    )
    datasets = st.sampled_from(sorted(base_frames()))
    duplicate = st.builds(
        Mutation, st.just("duplicate"), datasets, st.just(""), st.integers(0, 999)
    )
    rename = st.builds(
        Mutation,
        st.just("rename"),
        st.just("products"),
        st.just("sku"),
        st.integers(0, N_SKUS - 1),
        st.sampled_from(ODD_SKUS)
        | st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=64).filter(
            lambda s: s == s.strip() and s not in base_frames()["products"]["sku"].tolist()
        ),
    )
    extra = st.builds(
        Mutation,
        st.just("extra_column"),
        datasets,
        st.sampled_from(["note", "qty ", "SKU", "'; DROP TABLE x; --"]),
        st.just(0),
        st.sampled_from([None, "x", 1e308, float("nan")]),
    )
    typed = [(d, c) for d, cols in model.CONTRACT.items() if d in base_frames() for c in cols]
    retype = st.sampled_from(typed).map(lambda dc: Mutation("retype", dc[0], dc[1]))
    drop = st.sampled_from(typed).map(lambda dc: Mutation("drop_column", dc[0], dc[1]))
    return st.one_of(bad, bad, bad, duplicate, rename, rename, extra, retype, drop)


@settings(
    max_examples=DATASET_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_mutations(), min_size=1, max_size=6))
def test_fuzzed_erp_data_is_quarantined_row_by_row_and_valid_skus_are_planned(
    mutations: list[Mutation],
) -> None:
    applied = Applied()
    for m in mutations:
        if m.kind == "drop_column" and m.dataset in ("stock_history", "promotions"):
            continue
        applied.apply(m)
    check(applied)


def test_valid_but_odd_input_changes_nothing() -> None:
    """Unicode and SQL-looking SKUs, numbers and dates as text, extra
    columns: every plan is the clean run's, under the SKU's own name."""
    applied = Applied()
    for i, name in enumerate(ODD_SKUS):
        applied.apply(Mutation("rename", "products", "sku", i, name))
    for dataset, column in (
        ("stock_levels", "on_hand"),
        ("sales_order_lines", "qty"),
        ("sales_order_lines", "ordered_at"),
        ("products", "active"),
        ("supplier_products", "pack_size"),
    ):
        applied.apply(Mutation("retype", dataset, column))
    applied.apply(Mutation("extra_column", "products", "'; DROP TABLE x; --", value="x"))
    assert not applied.changes_data
    check(applied)


# ------------------------------------------------------------------- known bugs


def test_infinite_numbers_are_quarantined() -> None:
    applied = Applied()
    targets = [
        ("stock_levels", "on_hand"),
        ("sales_order_lines", "qty"),
        ("returns", "qty"),
        ("supplier_products", "lead_time_days"),
        ("supplier_products", "moq"),
        ("suppliers", "min_order_value"),
        ("purchase_order_lines", "qty_ordered"),
    ]
    for i, (dataset, column) in enumerate(targets):
        applied.apply(Mutation("bad", dataset, column, i, float("inf")))
    check(applied)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # as in production: numpy only warns
@pytest.mark.parametrize(
    ("dataset", "column"), [("stock_levels", "on_hand"), ("supplier_products", "moq")]
)
def test_absurdly_large_numbers_do_not_crash_the_plan(dataset: str, column: str) -> None:
    applied = Applied()
    applied.apply(Mutation("bad", dataset, column, 0, 1e300))
    out = run_pipeline(applied.frames)
    assert out.plans is not None


@pytest.mark.timeout(15)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_absurd_lead_time_does_not_hang_the_plan() -> None:
    applied = Applied()
    applied.apply(Mutation("bad", "supplier_products", "lead_time_days", 0, 1e300))
    out = run_pipeline(applied.frames)
    assert out.plans is not None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # as in production: numpy only warns
def test_integers_beyond_range_are_quarantined_not_a_crash() -> None:
    applied = Applied()
    applied.apply(Mutation("bad", "supplier_products", "priority", 0, 1e30))
    applied.apply(Mutation("bad", "sales_order_lines", "line_no", 0, float("inf")))
    check(applied)


def test_a_blank_sku_is_quarantined() -> None:
    applied = Applied()
    applied.apply(Mutation("rename", "products", "sku", 3, "  "))
    applied.expected |= {("products", 3)}
    applied.tainted.add("S-03")
    applied.changes_data = True  # the product is out: its rows are no longer planned
    check(applied)


# ==================================================================== channel payloads

SHOP = ShopifyConfig(name="shop", base_url="http://127.0.0.1:1", api_version="2024-10")
WOO = WooCommerceConfig(name="woo", base_url="http://127.0.0.1:1")
T0 = datetime(2026, 11, 1, 9, 0)

#: Payload keys whose non-list values crash the parsers (the bugs pinned
#: below): the fuzzers leave them out until those are fixed.
KNOWN_BAD_PAYLOAD_KEYS: frozenset[str] = frozenset()  # all fixed

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.sampled_from(
        [
            "",
            " ",
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00+02:00",
            "2026-13-45T99:99:99Z",
            "not a date",
            "1e309",
            "NaN",
            "-3",
            "x" * 200,
            "'; DROP TABLE sales_cache; --",
        ]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _shopify_base(order_id: int) -> dict[str, Any]:
    created = T0 + timedelta(hours=order_id)
    return shopify_order(
        order_id,
        created_at=created,
        lines=[shopify_line(order_id * 10 + k, f"SKU-{k}", k) for k in (1, 2, 3)],
        refunds=[
            shopify_refund(
                order_id,
                created_at=created + timedelta(days=1),
                lines=[
                    {"line_item_id": order_id * 10 + 1, "quantity": 1, "restock_type": "return"}
                ],
            )
        ],
        fulfillment_status="fulfilled",
    )


def _woo_base(order_id: int) -> dict[str, Any]:
    created = T0 + timedelta(hours=order_id)
    return woo_order(
        order_id,
        created_at=created,
        status="completed",
        lines=[woo_line(order_id * 10 + k, f"SKU-{k}", k) for k in (1, 2, 3)],
        refunds=[woo_refund(order_id, created_at=created + timedelta(days=1),
                            lines=[{"line_item_id": order_id * 10 + 1, "quantity": 1}])],
    )  # fmt: skip


@st.composite
def hostile_order(draw: st.DrawFn, base: Callable[[int], dict[str, Any]]) -> Any:
    """A valid order with some of its fields (top level or in a line item)
    replaced by hostile JSON, or something that is not an order at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    order = base(draw(st.integers(1, 10**6)))
    for _ in range(draw(st.integers(1, 4))):
        line_level = draw(st.booleans())
        if line_level and isinstance(order.get("line_items"), list) and order["line_items"]:
            item = draw(st.sampled_from(order["line_items"]))
            key = draw(st.sampled_from([*sorted(item), "extra"]))
            item[key] = draw(json_values)
        else:
            key = draw(st.sampled_from(sorted(k for k in order if not k.startswith("_"))))
            value = draw(json_values)
            if key in KNOWN_BAD_PAYLOAD_KEYS and not isinstance(value, list | type(None)):
                value = [value]
            order[key] = value
    return order


def check_record(record: OrderRecord | UnidentifiedOrder, raw: Any) -> None:
    """A parsed order: its lines are valid contract lines; no line item
    vanished without a line or a rejection."""
    if isinstance(record, UnidentifiedOrder):
        assert record.reason
        return
    assert isinstance(record, OrderRecord)
    for line in record.lines:
        assert isinstance(line["sku"], str) and 0 < len(line["sku"].strip()) <= 64
        assert isinstance(line["qty"], float) and math.isfinite(line["qty"]) and line["qty"] > 0
        assert isinstance(line["ordered_at"], datetime)
        assert line["status"] in SALES_STATUSES
    for r in record.returns:
        assert math.isfinite(r["qty"]) and r["qty"] > 0
    for rej in record.rejected:
        assert rej["reason"] and rej["field"]
    items = raw.get("line_items") if isinstance(raw, dict) else None
    if isinstance(items, list):
        assert len(record.lines) + len(record.rejected) >= len(items)


fuzz = settings(
    max_examples=PAYLOAD_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@fuzz
@given(hostile_order(_shopify_base))
def test_fuzzed_shopify_orders_parse_into_lines_or_reasons(raw: Any) -> None:
    check_record(shopify_module.parse_order(raw, SHOP), raw)


@fuzz
@given(hostile_order(_woo_base))
def test_fuzzed_woocommerce_orders_parse_into_lines_or_reasons(raw: Any) -> None:
    record = woo_module.parse_order(raw, WOO)
    check_record(record, raw)


@fuzz
@given(st.lists(json_values, max_size=4))
def test_fuzzed_woocommerce_refunds_parse_into_returns_or_reasons(refunds: list[Any]) -> None:
    for refund in refunds:
        if isinstance(refund, dict) and not isinstance(refund.get("line_items"), list):
            refund["line_items"] = []  # pinned below
    returns, rejected = woo_module.parse_refunds(refunds, "7", {"71": "SKU-1"}, WOO)
    assert all(math.isfinite(r["qty"]) and r["qty"] > 0 for r in returns)
    assert all(r["reason"] for r in rejected)


def _hostile_orders(base: Callable[[int], dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Twenty orders, every other one damaged in a fixed way."""
    orders = []
    damages: list[Callable[[dict[str, Any]], None]] = [
        lambda o: o["line_items"][0].update(quantity=float("nan")),
        lambda o: o["line_items"][1].update(quantity="1e309"),
        lambda o: o["line_items"][0].update(sku="'; DROP TABLE sales_cache; --"),
        lambda o: o["line_items"][2].update(sku="Ünïcødé-☃"),
        lambda o: o["line_items"][1].update(sku=""),
        lambda o: o["line_items"][1].update(sku="y" * 90),
        lambda o: o.update(line_items="not a list"),
        lambda o: o["line_items"].append(["not", "an", "item"]),
        lambda o: o["line_items"][0].update(quantity=-5),
        lambda o: o["line_items"][2].update(quantity=10**30),
    ]
    for i in range(1, 21):
        order = base(seed + i)
        if i % 2 == 0:
            damages[(i // 2) % len(damages)](order)
        orders.append(order)
    return orders


@pytest.mark.parametrize("kind", ["shopify", "woocommerce"])
def test_hostile_orders_from_a_channel_server_are_cached_or_rejected(
    kind: str, tmp_path: Path
) -> None:
    """Through the real client and server, into the store: valid lines are
    cached, every bad one is in ``rejected`` with its reason."""
    fast = {"backoff_seconds": 0.001, "timeout_seconds": 2.0, "location_id": "WH1"}
    if kind == "shopify":
        server: ShopifyServer | WooCommerceServer = ShopifyServer(
            _hostile_orders(_shopify_base, 100)
        )
        env = {"SHOPIFY_ACCESS_TOKEN": SHOPIFY_TOKEN}
    else:
        server = WooCommerceServer(_hostile_orders(_woo_base, 100))
        env = {"WOOCOMMERCE_CONSUMER_KEY": WOO_KEY, "WOOCOMMERCE_CONSUMER_SECRET": WOO_SECRET}
    with server:
        config: ShopifyConfig | WooCommerceConfig = (
            ShopifyConfig(
                name="shop", base_url=server.url, api_version="2024-10", page_size=7, **fast
            )
            if kind == "shopify"
            else WooCommerceConfig(name="woo", base_url=server.url, page_size=7, **fast)
        )
        batch = fetch(config, None, env=env)
    assert batch.counts.orders == 20
    assert len(batch.lines) >= 40 and len(batch.rejected) >= 7
    assert batch.rejected["reason"].notna().all()
    assert "'; DROP TABLE sales_cache; --" in set(batch.lines["sku"])
    store = Store(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    result = store.ingest(batch.channel, batch.lines, batch.returns, batch.high_watermark)
    cached = store.cached_sales(None)
    store.dispose()
    assert result.lines == len(batch.lines) == len(cached)
    assert "Ünïcødé-☃" in set(cached["sku"])


@pytest.mark.parametrize("body", ['{"orders": [{"id": 1, "line_items": [', "<html>oops", ""])
def test_a_truncated_or_non_json_answer_is_a_clear_contract_error(body: str) -> None:
    with HttpRecorder(
        default=(200, {"Content-Type": "application/json"}, body),
    ) as server:
        config = ShopifyConfig(
            name="shop", base_url=server.url, api_version="2024-10", backoff_seconds=0.0
        )
        with pytest.raises(ContractError, match=r"shop.*not JSON|not answer an object"):
            fetch(config, None, env={"SHOPIFY_ACCESS_TOKEN": SHOPIFY_TOKEN})


# ------------------------------------------------------------------- known bugs


@pytest.mark.parametrize("key", ["refunds", "fulfillments", "refund_line_items"])
def test_shopify_a_non_list_where_a_list_belongs_is_rejected(key: str) -> None:
    raw = _shopify_base(1)
    if key == "refund_line_items":
        raw["refunds"][0]["refund_line_items"] = 2
    else:
        raw[key] = 7
    check_record(shopify_module.parse_order(raw, SHOP), raw)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_a_timestamp_at_the_edge_of_the_calendar_is_rejected(stamp: str) -> None:
    raw = _shopify_base(1)
    raw["created_at"] = stamp
    check_record(shopify_module.parse_order(raw, SHOP), raw)


@pytest.mark.parametrize("where", ["line_items", "meta_data"])
def test_woocommerce_a_non_list_in_a_refund_is_rejected(where: str) -> None:
    refund: dict[str, Any] = {"id": 1, "date_created_gmt": "2026-11-02T10:00:00"}
    refund["line_items"] = (
        4 if where == "line_items" else [{"id": 1, "quantity": -1, "meta_data": 9}]
    )
    returns, rejected = woo_module.parse_refunds([refund], "7", {}, WOO)
    assert rejected and not returns


def test_woocommerce_an_order_id_of_unicode_digits_does_not_break_the_fetch() -> None:
    order = {k: v for k, v in _woo_base(3).items() if not k.startswith("_")}
    order["id"] = "²"
    listing = (
        200,
        {"Content-Type": "application/json", "X-WP-TotalPages": "1"},
        json.dumps([order]),
    )
    with HttpRecorder(
        [listing], default=(200, {"Content-Type": "application/json"}, "[]")
    ) as server:
        config = WooCommerceConfig(name="woo", base_url=server.url, backoff_seconds=0.0)
        batch = fetch(config, None, env={"WOOCOMMERCE_CONSUMER_KEY": WOO_KEY,
                                         "WOOCOMMERCE_CONSUMER_SECRET": WOO_SECRET})  # fmt: skip
    assert batch.counts.orders == 1


def test_a_return_with_an_overlong_sku_is_rejected_not_the_whole_batch(tmp_path: Path) -> None:
    order = _shopify_base(5)
    refund_line = order["refunds"][0]["refund_line_items"][0]
    refund_line["line_item_id"] = 999  # not a line of the order: the embedded SKU is used
    refund_line["line_item"] = {"id": 999, "sku": "z" * 80}
    with ShopifyServer([order]) as server:
        config = ShopifyConfig(name="shop", base_url=server.url, api_version="2024-10")
        batch = fetch(config, None, env={"SHOPIFY_ACCESS_TOKEN": SHOPIFY_TOKEN})
    store = Store(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    try:
        store.ingest(batch.channel, batch.lines, batch.returns, batch.high_watermark)
    finally:
        store.dispose()
