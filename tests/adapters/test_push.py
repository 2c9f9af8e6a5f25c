"""Pushing approved drafts to Odoo (JSON-RPC) and ERPNext (REST), against the
local peers of tests/erp_peers.py that speak those protocols and keep state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from replenish.errors import ConfigurationError
from replenish.orders import build_drafts
from replenish.orders.push import (
    LOST_ANSWER,
    ErpNextSettings,
    OdooSettings,
    PushAuthError,
    PushFailed,
    PushReport,
    PushUnavailable,
    push_orders,
)
from replenish.store import Store
from tests.erp_peers import ErpNextPeer, Fault, OdooPeer
from tests.servers import closed_port

AS_OF = date(2024, 5, 1)
A_WH1 = "2024-05-01/SUP-A/WH1"
B_WH1 = "2024-05-01/SUP-B/WH1"
A_WH2 = "2024-05-01/SUP-A/WH2"


def draft_lines(status: str = "approved", **changes: float) -> pd.DataFrame:
    """Three approved drafts as ``Store.orders`` returns them; ``changes``
    override quantities by SKU of the first order (``A_1=...``)."""
    rows = [
        (A_WH1, "SUP-A", "WH1", 1, "A-1", "SA-1", 120.0, 2.5),
        (A_WH1, "SUP-A", "WH1", 2, "B-2", "SA-2", 10.0, 12.0),
        (B_WH1, "SUP-B", "WH1", 1, "C-3", None, 4.0, 30.0),
        (A_WH2, "SUP-A", "WH2", 1, "A-1", "SA-1", 50.0, 2.5),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "po_key", "supplier_id", "location_id", "line_no", "sku", "supplier_sku", "qty",
            "unit_price",
        ],
    )  # fmt: skip
    for sku, qty in changes.items():
        frame.loc[(frame["po_key"] == A_WH1) & (frame["sku"] == sku.replace("_", "-")), "qty"] = qty
    frame["as_of"] = AS_OF
    frame["status"] = status
    frame["currency"] = "EUR"
    frame["line_value"] = (frame["qty"] * frame["unit_price"]).round(2)
    return frame


PLANS = pd.DataFrame(
    {
        "sku": ["A-1", "B-2", "C-3", "A-1"],
        "location_id": ["WH1", "WH1", "WH1", "WH2"],
        "lead_time_mean": [5.0, 4.2, 10.0, 7.0],
        "pack_size": [10.0, 1.0, 2.0, 10.0],
    }
)
EXPECTED_DATES = {  # as_of + ceil(lead time)
    (A_WH1, "A-1"): "2024-05-06",
    (A_WH1, "B-2"): "2024-05-06",
    (B_WH1, "C-3"): "2024-05-11",
    (A_WH2, "A-1"): "2024-05-08",
}


def no_sleep(seconds: float) -> None:
    pass


# =========================================================================== Odoo


def odoo_peer(**kwargs: Any) -> OdooPeer:
    peer = OdooPeer(**kwargs)
    peer.add_partner("Acme Supplies", "SUP-A")
    peer.add_partner("Bolt & Co", "SUP-B")
    for sku in ("A-1", "B-2", "C-3"):
        peer.add_product(sku, f"Product {sku}")
    peer.add_warehouse("WH1", "Main")
    peer.add_warehouse("WH2", "North")
    return peer


@pytest.fixture
def odoo() -> Iterator[OdooPeer]:
    with odoo_peer() as peer:
        yield peer


def odoo_settings(peer: OdooPeer, **kwargs: Any) -> OdooSettings:
    values: dict[str, Any] = {
        "url": peer.url, "db": "odoo", "login": "buyer@example.com", "password": "api-key-1",
        "backoff": 0.01, "max_attempts": 3, "timeout": 5.0,
    }  # fmt: skip
    values.update(kwargs)
    return OdooSettings(**values)


def push_odoo(peer: OdooPeer, frame: pd.DataFrame | None = None, **kwargs: Any) -> PushReport:
    settings = kwargs.pop("settings", None) or odoo_settings(peer)
    return push_orders(
        "odoo",
        draft_lines() if frame is None else frame,
        settings=settings,
        plans=PLANS,
        sleep=no_sleep,
        **kwargs,
    )


def odoo_state(peer: OdooPeer) -> list[tuple[Any, ...]]:
    """The peer's orders and lines, without volatile fields."""
    return [
        (
            o["id"], o["name"], o["origin"], o["partner_id"], o["picking_type_id"], o["state"],
            tuple(
                (ln["product_id"], ln["product_qty"], ln["price_unit"], ln["date_planned"],
                 ln["name"])
                for ln in o["lines"]
            ),
        )
        for o in peer.orders()
    ]  # fmt: skip


def test_odoo_push_creates_one_draft_rfq_per_order_with_its_lines(odoo: OdooPeer) -> None:
    report = push_odoo(odoo)

    assert report.created == [A_WH1, A_WH2, B_WH1]
    assert report.failed == report.skipped == report.held == []
    orders = {o["origin"]: o for o in odoo.orders()}
    assert sorted(orders) == [A_WH1, A_WH2, B_WH1]
    partners = {p["ref"]: p["id"] for p in odoo.tables["res.partner"].values()}
    products = {p["default_code"]: p["id"] for p in odoo.tables["product.product"].values()}
    receipts = {w["code"]: w["in_type_id"] for w in odoo.tables["stock.warehouse"].values()}
    wanted = draft_lines()
    for key, order in orders.items():
        mine = wanted[wanted["po_key"] == key]
        assert order["state"] == "draft"
        assert order["partner_id"] == partners[mine["supplier_id"].iloc[0]]
        assert order["picking_type_id"] == receipts[mine["location_id"].iloc[0]]
        got = sorted(
            (ln["product_id"], ln["product_qty"], ln["price_unit"], ln["date_planned"])
            for ln in order["lines"]
        )
        expected = sorted(
            (products[r.sku], r.qty, r.unit_price, f"{EXPECTED_DATES[(key, r.sku)]} 12:00:00")
            for r in mine.itertuples()
        )
        assert got == expected
        assert report.outcome(key).erp_id == str(order["id"])
        assert report.outcome(key).erp_name == order["name"]
    # the supplier's code names the line, as Odoo does for vendor products
    assert {ln["name"] for ln in orders[A_WH1]["lines"]} == {
        "[SA-1] Product A-1",
        "[SA-2] Product B-2",
    }
    # each order and its lines were created in one call
    creates = [c for c in odoo.calls if c.what == "purchase.order.create"]
    assert len(creates) == 3
    assert all(len(c.body["params"]["args"][5][0]["order_line"]) >= 1 for c in creates)
    assert report.erp_ids() == {o["origin"]: str(o["id"]) for o in odoo.orders()}


def test_odoo_second_push_creates_nothing_and_updates_changed_quantities(odoo: OdooPeer) -> None:
    first = push_odoo(odoo)
    before = odoo_state(odoo)

    again = push_odoo(odoo)
    assert again.unchanged == [A_WH1, A_WH2, B_WH1]
    assert odoo_state(odoo) == before
    assert again.erp_ids() == first.erp_ids()

    changed = draft_lines(A_1=140.0)
    changed = changed[~((changed["po_key"] == A_WH1) & (changed["sku"] == "B-2"))]
    report = push_odoo(odoo, changed)

    assert report.updated == [A_WH1]
    assert report.unchanged == [A_WH2, B_WH1]
    assert len(odoo.orders()) == 3  # nothing duplicated
    order = next(o for o in odoo.orders() if o["origin"] == A_WH1)
    assert [(ln["product_qty"], ln["price_unit"]) for ln in order["lines"]] == [(140.0, 2.5)]
    assert str(order["id"]) == first.outcome(A_WH1).erp_id


def test_odoo_confirmed_and_cancelled_orders_are_left_alone(odoo: OdooPeer) -> None:
    first = push_odoo(odoo)
    odoo.set_state(int(first.outcome(A_WH1).erp_id or 0), "purchase")
    odoo.set_state(int(first.outcome(B_WH1).erp_id or 0), "cancel")
    before = odoo_state(odoo)

    report = push_odoo(odoo, draft_lines(A_1=999.0))

    assert report.skipped == [A_WH1, B_WH1]
    assert "confirmed in ERP" in report.outcome(A_WH1).reason
    assert "'purchase'" in report.outcome(A_WH1).reason
    assert "cancelled in ERP" in report.outcome(B_WH1).reason
    assert report.unchanged == [A_WH2]
    assert odoo_state(odoo) == before


def test_odoo_rfq_found_by_its_recorded_id_when_its_origin_was_edited(odoo: OdooPeer) -> None:
    first = push_odoo(odoo)
    order_id = int(first.outcome(A_WH1).erp_id or 0)
    odoo.tables["purchase.order"][order_id]["origin"] = "edited by the buyer"
    frame = draft_lines(A_1=130.0)
    frame["erp_id"] = frame["po_key"].map(first.erp_ids())

    report = push_odoo(odoo, frame)

    assert report.outcome(A_WH1).action == "updated"
    assert report.outcome(A_WH1).erp_id == str(order_id)
    assert len(odoo.orders()) == 3


def _clean_odoo_run() -> tuple[list[tuple[Any, ...]], list[str]]:
    with odoo_peer() as peer:
        push_odoo(peer)
        return odoo_state(peer), [c.what for c in peer.calls]


@pytest.mark.parametrize("kind", ["http500", "drop", "drop_after"])
@pytest.mark.parametrize(
    "step", ["common.login", "purchase.order.search_read", "purchase.order.create"]
)
def test_odoo_transient_faults_are_retried_and_end_like_a_clean_run(kind: str, step: str) -> None:
    clean, calls = _clean_odoo_run()
    number = calls.index(step) + 1  # the first such call
    waits: list[float] = []
    with odoo_peer(faults={number: Fault(kind)}) as peer:
        report = push_orders(
            "odoo", draft_lines(), settings=odoo_settings(peer), plans=PLANS, sleep=waits.append
        )
        assert odoo_state(peer) == clean
        assert report.created == [A_WH1, A_WH2, B_WH1]
        # one retry, after the first backoff; a create left without an answer may
        # still be done by Odoo: its look-up waits in_doubt_wait (the timeout, 5 s)
        in_doubt = kind in ("drop", "drop_after") and step == "purchase.order.create"
        assert waits == ([5.0] if in_doubt else [0.01])
        assert peer.calls[number - 1].fault == kind
        lost = kind == "drop_after" and step == "purchase.order.create"
        assert report.outcome(A_WH1).reason == (LOST_ANSWER if lost else "")


def test_odoo_update_whose_answer_is_lost_is_not_repeated(odoo: OdooPeer) -> None:
    push_odoo(odoo)
    odoo.faults[len(odoo.calls) + 7] = Fault.drop_after()  # login, 3 look-ups, search, lines: write
    report = push_odoo(odoo, draft_lines(A_1=140.0))

    assert [c.what for c in odoo.calls if c.fault] == ["purchase.order.write"]
    assert report.updated == [A_WH1]
    assert report.outcome(A_WH1).reason == LOST_ANSWER
    assert [c.what for c in odoo.calls].count("purchase.order.write") == 1
    order = next(o for o in odoo.orders() if o["origin"] == A_WH1)
    assert sorted(ln["product_qty"] for ln in order["lines"]) == [10.0, 140.0]


def test_odoo_timeout_is_retried_and_a_late_create_is_found_not_repeated() -> None:
    clean, calls = _clean_odoo_run()
    number = calls.index("purchase.order.create") + 1
    # Odoo does the create 0.6 s after it was sent; the client gives up at 0.2 s
    # and, the create being in doubt, looks the order up again 1 s later
    with odoo_peer(faults={number: Fault.delay(0.6)}) as peer:
        settings = odoo_settings(peer, timeout=0.2, in_doubt_wait=1.0)
        report = push_orders(
            "odoo", draft_lines(), settings=settings, plans=PLANS, sleep=time.sleep
        )
        peer.wait_idle()
        assert report.created == [A_WH1, A_WH2, B_WH1]
        assert report.outcome(A_WH1).reason == LOST_ANSWER
        assert odoo_state(peer) == clean  # the late create is found, not repeated
        assert [c.what for c in peer.calls].count("purchase.order.create") == 3
        assert report.duplicates == []


def test_odoo_unavailable_after_bounded_attempts_keeps_the_partial_report() -> None:
    _, calls = _clean_odoo_run()
    second_order = [i for i, what in enumerate(calls, 1) if what == "purchase.order.search_read"][1]
    faults = {n: Fault.http500() for n in range(second_order, second_order + 3)}
    with odoo_peer(faults=faults) as peer:
        with pytest.raises(PushUnavailable, match=r"after 3 attempt\(s\).*HTTP 500") as caught:
            push_odoo(peer)
        assert caught.value.report is not None
        assert caught.value.report.created == [A_WH1]
        assert len(peer.orders()) == 1
        # the next run finishes the job without duplicating the first order
        report = push_odoo(peer)
        assert report.unchanged == [A_WH1]
        assert report.created == [A_WH2, B_WH1]
        assert len(peer.orders()) == 3


def test_odoo_unreachable_is_unavailable() -> None:
    settings = OdooSettings(
        url=f"http://127.0.0.1:{closed_port()}", db="odoo", login="x", password="y",
        backoff=0.0, max_attempts=2,
    )  # fmt: skip
    with pytest.raises(PushUnavailable, match=r"Odoo login.*2 attempt.*connection failed"):
        push_orders("odoo", draft_lines(), settings=settings, sleep=no_sleep)


def test_odoo_unknown_product_and_supplier_are_reported_the_others_pushed(odoo: OdooPeer) -> None:
    frame = draft_lines()
    frame.loc[frame["sku"] == "C-3", "sku"] = "Z-9"
    extra = frame[frame["po_key"] == A_WH2].assign(
        po_key="2024-05-01/SUP-X/WH2", supplier_id="SUP-X"
    )
    report = push_odoo(odoo, pd.concat([frame, extra], ignore_index=True))

    assert report.created == [A_WH1, A_WH2]
    assert report.failed == [B_WH1, "2024-05-01/SUP-X/WH2"]
    assert "unknown product(s) in Odoo" in report.outcome(B_WH1).reason
    assert "Z-9" in report.outcome(B_WH1).reason
    assert "no res.partner with ref 'SUP-X'" in report.outcome("2024-05-01/SUP-X/WH2").reason
    assert sorted(o["origin"] for o in odoo.orders()) == [A_WH1, A_WH2]
    with pytest.raises(PushFailed, match=r"2 order.*Z-9"):
        report.raise_on_failure()


def test_odoo_access_error_is_reported_per_order_with_odoo_message() -> None:
    with odoo_peer() as peer:
        peer.add_user("viewer", "pw", {"purchase.order": {"read"}})
        settings = odoo_settings(peer, login="viewer", password="pw")
        report = push_odoo(peer, settings=settings)

        assert report.failed == [A_WH1, A_WH2, B_WH1]
        reason = report.outcome(A_WH1).reason
        assert reason.startswith(f"Odoo rejected order {A_WH1}: odoo.exceptions.AccessError:")
        assert "You are not allowed to create 'Purchase Order' (purchase.order)" in reason
        assert peer.orders() == []


def test_odoo_error_on_one_order_does_not_stop_the_others() -> None:
    _, calls = _clean_odoo_run()
    second_create = [i for i, what in enumerate(calls, 1) if what == "purchase.order.create"][1]
    fault = Fault.error("odoo.exceptions.ValidationError", "The vendor is blocked")
    with odoo_peer(faults={second_create: fault}) as peer:
        report = push_odoo(peer)
        assert report.created == [A_WH1, B_WH1]
        assert report.failed == [A_WH2]
        assert "ValidationError: The vendor is blocked" in report.outcome(A_WH2).reason
        assert len(peer.calls) == len(calls) - 1  # refused at once: not retried


def test_odoo_wrong_password_is_an_auth_error_without_the_secret(odoo: OdooPeer) -> None:
    settings = odoo_settings(odoo, password="wrong-secret")
    with pytest.raises(PushAuthError, match=r"refused the login of 'buyer@example\.com'") as caught:
        push_odoo(odoo, settings=settings)
    assert "wrong-secret" not in str(caught.value)
    assert "wrong-secret" not in repr(settings)
    assert odoo.orders() == []


@pytest.mark.parametrize("match", ["name", "id"])
def test_odoo_partner_matched_by_name_or_id(odoo: OdooPeer, match: str) -> None:
    frame = draft_lines()
    names = {"SUP-A": "Acme Supplies", "SUP-B": "Bolt & Co"}
    ids = {"SUP-A": "1", "SUP-B": "2"}
    frame["supplier_id"] = frame["supplier_id"].map(names if match == "name" else ids)
    report = push_odoo(odoo, frame, settings=odoo_settings(odoo, partner_match=match))
    assert len(report.created) == 3
    assert {o["origin"]: o["partner_id"] for o in odoo.orders()} == {A_WH1: 1, A_WH2: 1, B_WH1: 2}


def test_only_approved_valid_drafts_are_pushed(odoo: OdooPeer) -> None:
    frame = draft_lines()
    frame.loc[frame["po_key"] == A_WH2, "status"] = "draft"
    frame.loc[(frame["po_key"] == B_WH1), "qty"] = 0.0
    report = push_odoo(odoo, frame)

    assert report.created == [A_WH1]
    assert report.held == [A_WH2]
    assert report.failed == [B_WH1]
    assert "line 1 (SKU C-3): qty must be a number > 0, got 0.0" in report.outcome(B_WH1).reason
    assert [o["origin"] for o in odoo.orders()] == [A_WH1]
    assert "held      2024-05-01/SUP-A/WH2: not approved" in report.text()


def test_drafts_from_the_store_push_as_they_are(odoo: OdooPeer, sqlite_url: str) -> None:
    plans = pd.DataFrame(
        {
            "sku": ["A-1", "B-2", "C-3"],
            "location_id": ["WH1", "WH1", "WH1"],
            "supplier_id": ["SUP-A", "SUP-A", "SUP-B"],
            "supplier_sku": ["SA-1", "SA-2", None],
            "order_qty": [120.0, 10.0, 4.0],
            "unit_price": [2.5, 12.0, 30.0],
            "lead_time_mean": [5.0, 4.2, 10.0],
            "reason": ["below ROP"] * 3,
        }
    )
    suppliers = pd.DataFrame(
        {"supplier_id": ["SUP-A", "SUP-B"], "currency": "EUR", "min_order_value": 0.0}
    )
    store = Store(sqlite_url)
    try:
        run_id = store.start_run(AS_OF, erp="sqlite://", parameters={})
        headers, lines = build_drafts(plans, suppliers, AS_OF)
        store.publish_drafts(AS_OF, run_id, headers, lines)
        frame = store.orders(run_id=run_id)
    finally:
        store.dispose()

    report = push_orders(
        "odoo", frame, settings=odoo_settings(odoo), plans=plans, statuses=None, sleep=no_sleep
    )
    assert report.created == [A_WH1, B_WH1]
    got = {
        o["origin"]: sorted((ln["product_qty"], ln["date_planned"]) for ln in o["lines"])
        for o in odoo.orders()
    }
    assert got == {
        A_WH1: [(10.0, "2024-05-06 12:00:00"), (120.0, "2024-05-06 12:00:00")],
        B_WH1: [(4.0, "2024-05-11 12:00:00")],
    }


def test_settings_come_from_the_environment(
    odoo: OdooPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLENISH_ODOO_URL", odoo.url)
    monkeypatch.setenv("REPLENISH_ODOO_DB", "odoo")
    monkeypatch.setenv("REPLENISH_ODOO_LOGIN", "buyer@example.com")
    monkeypatch.setenv("REPLENISH_ODOO_PASSWORD", "api-key-1")
    report = push_orders("odoo", draft_lines(), sleep=no_sleep)
    assert len(report.created) == 3

    monkeypatch.delenv("REPLENISH_ODOO_PASSWORD")
    monkeypatch.delenv("REPLENISH_ODOO_DB")
    with pytest.raises(ConfigurationError, match="set REPLENISH_ODOO_DB, REPLENISH_ODOO_PASSWORD"):
        push_orders("odoo", draft_lines())
    with pytest.raises(ConfigurationError, match="expected one of odoo, erpnext"):
        push_orders("sap", draft_lines())


# =========================================================================== ERPNext


def erpnext_peer(**kwargs: Any) -> ErpNextPeer:
    peer = ErpNextPeer(**kwargs)
    for supplier in ("SUP-A", "SUP-B"):
        peer.add_supplier(supplier)
    for sku in ("A-1", "B-2", "C-3"):
        peer.add_item(sku, f"Product {sku}")
    peer.add_warehouse("WH1")
    peer.add_warehouse("WH2")
    return peer


@pytest.fixture
def erpnext() -> Iterator[ErpNextPeer]:
    with erpnext_peer() as peer:
        yield peer


def erpnext_settings(peer: ErpNextPeer, **kwargs: Any) -> ErpNextSettings:
    values: dict[str, Any] = {
        "url": peer.url, "api_key": "k3y", "api_secret": "s3cret",
        "backoff": 0.01, "max_attempts": 3, "timeout": 5.0,
    }  # fmt: skip
    values.update(kwargs)
    return ErpNextSettings(**values)


def push_erpnext(peer: ErpNextPeer, frame: pd.DataFrame | None = None, **kwargs: Any) -> PushReport:
    settings = kwargs.pop("settings", None) or erpnext_settings(peer)
    return push_orders(
        "erpnext",
        draft_lines() if frame is None else frame,
        settings=settings,
        plans=PLANS,
        sleep=no_sleep,
        **kwargs,
    )


def erpnext_state(peer: ErpNextPeer, key_field: str = "title") -> list[tuple[Any, ...]]:
    return [
        (
            d["name"], d[key_field], d["supplier"], d["docstatus"], d["set_warehouse"],
            d["transaction_date"], d["schedule_date"],
            tuple(
                (i["item_code"], i["qty"], i["rate"], i["schedule_date"], i["warehouse"])
                for i in d["items"]
            ),
        )
        for d in peer.orders()
    ]  # fmt: skip


def test_erpnext_push_creates_draft_purchase_orders_with_their_items(erpnext: ErpNextPeer) -> None:
    report = push_erpnext(erpnext)

    assert report.created == [A_WH1, A_WH2, B_WH1]
    docs = {d["title"]: d for d in erpnext.orders()}
    wanted = draft_lines()
    for key, doc in docs.items():
        mine = wanted[wanted["po_key"] == key]
        assert doc["docstatus"] == 0
        assert doc["status"] == "Draft"
        assert doc["supplier"] == mine["supplier_id"].iloc[0]
        assert doc["set_warehouse"] == mine["location_id"].iloc[0]
        assert doc["transaction_date"] == "2024-05-01"
        items = sorted(
            (i["item_code"], i["qty"], i["rate"], i["schedule_date"], i["warehouse"])
            for i in doc["items"]
        )
        assert items == sorted(
            (r.sku, r.qty, r.unit_price, EXPECTED_DATES[(key, r.sku)], r.location_id)
            for r in mine.itertuples()
        )
        assert doc["schedule_date"] == min(i[3] for i in items)
        assert report.outcome(key).erp_id == doc["name"]
    assert docs[A_WH1]["grand_total"] == 420.0
    assert all(c.body["docstatus"] == 0 for c in erpnext.calls if c.method == "POST")


@pytest.mark.parametrize("key_field", ["title", "order_confirmation_no"])
def test_erpnext_second_push_creates_nothing_and_updates_changed_quantities(key_field: str) -> None:
    with erpnext_peer() as peer:
        settings = erpnext_settings(peer, key_field=key_field)
        first = push_erpnext(peer, settings=settings)
        before = erpnext_state(peer, key_field)
        calls = len(peer.calls)

        again = push_erpnext(peer, settings=settings)
        assert again.unchanged == [A_WH1, A_WH2, B_WH1]
        assert erpnext_state(peer, key_field) == before
        assert [c.method for c in peer.calls[calls:]] == ["GET"] * (len(peer.calls) - calls)

        report = push_erpnext(peer, draft_lines(B_2=25.0), settings=settings)
        assert report.updated == [A_WH1]
        assert report.unchanged == [A_WH2, B_WH1]
        assert len(peer.orders()) == 3
        doc = next(d for d in peer.orders() if d[key_field] == A_WH1)
        assert doc["name"] == first.outcome(A_WH1).erp_id
        assert [(i["item_code"], i["qty"]) for i in doc["items"]] == [("A-1", 120.0), ("B-2", 25.0)]
        assert doc["grand_total"] == 600.0


def test_erpnext_submitted_and_cancelled_orders_are_left_alone(erpnext: ErpNextPeer) -> None:
    first = push_erpnext(erpnext)
    erpnext.submit(first.outcome(A_WH1).erp_id or "")
    erpnext.cancel(first.outcome(B_WH1).erp_id or "")
    before = erpnext_state(erpnext)

    report = push_erpnext(erpnext, draft_lines(A_1=999.0))

    assert report.skipped == [A_WH1, B_WH1]
    assert "submitted in ERP" in report.outcome(A_WH1).reason
    assert "cancelled in ERP" in report.outcome(B_WH1).reason
    assert report.unchanged == [A_WH2]
    assert erpnext_state(erpnext) == before


def _clean_erpnext_run() -> tuple[list[tuple[Any, ...]], list[str]]:
    with erpnext_peer() as peer:
        push_erpnext(peer)
        return erpnext_state(peer), [c.what for c in peer.calls]


@pytest.mark.parametrize("kind", ["http500", "drop", "drop_after"])
@pytest.mark.parametrize("step", ["GET Supplier", "POST Purchase Order"])
def test_erpnext_transient_faults_are_retried_and_end_like_a_clean_run(
    kind: str, step: str
) -> None:
    clean, calls = _clean_erpnext_run()
    number = calls.index(step) + 1
    waits: list[float] = []
    with erpnext_peer(faults={number: Fault(kind)}) as peer:
        report = push_orders(
            "erpnext",
            draft_lines(),
            settings=erpnext_settings(peer),
            plans=PLANS,
            sleep=waits.append,
        )
        assert erpnext_state(peer) == clean
        assert report.created == [A_WH1, A_WH2, B_WH1]
        in_doubt = kind in ("drop", "drop_after") and step == "POST Purchase Order"
        assert waits == ([5.0] if in_doubt else [0.01])


def test_erpnext_update_whose_answer_is_lost_is_not_repeated(erpnext: ErpNextPeer) -> None:
    push_erpnext(erpnext)
    erpnext.faults[len(erpnext.calls) + 6] = Fault.drop_after()  # 3 look-ups, list, GET: PUT
    report = push_erpnext(erpnext, draft_lines(A_1=140.0))

    assert [c.what for c in erpnext.calls if c.fault] == [
        f"PUT Purchase Order/{report.outcome(A_WH1).erp_id}"
    ]
    assert report.updated == [A_WH1]
    assert report.outcome(A_WH1).reason == LOST_ANSWER
    assert [c.method for c in erpnext.calls].count("PUT") == 1
    doc = next(d for d in erpnext.orders() if d["title"] == A_WH1)
    assert [i["qty"] for i in doc["items"]] == [140.0, 10.0]


def test_erpnext_blocked_supplier_is_reported_with_erpnext_message(erpnext: ErpNextPeer) -> None:
    erpnext.add_supplier("SUP-B", on_hold=1)
    report = push_erpnext(erpnext)

    assert report.created == [A_WH1, A_WH2]
    assert report.failed == [B_WH1]
    assert report.outcome(B_WH1).reason == (
        f"ERPNext rejected order {B_WH1}: HTTP 417 ValidationError: "
        "SUP-B is blocked so this transaction cannot proceed"
    )


def test_erpnext_unknown_item_supplier_and_warehouse_are_reported(erpnext: ErpNextPeer) -> None:
    frame = draft_lines()
    frame.loc[frame["sku"] == "C-3", "sku"] = "Z-9"
    frame.loc[frame["po_key"] == A_WH2, "location_id"] = "WH9"
    extra = frame[frame["po_key"] == A_WH1].assign(
        po_key="2024-05-01/SUP-X/WH1", supplier_id="SUP-X"
    )
    report = push_erpnext(erpnext, pd.concat([frame, extra], ignore_index=True))

    assert report.created == [A_WH1]
    assert (
        "unknown item(s) in ERPNext (no Item with that code): Z-9" in report.outcome(B_WH1).reason
    )
    assert "no Warehouse 'WH9'" in report.outcome(A_WH2).reason
    assert "no Supplier 'SUP-X'" in report.outcome("2024-05-01/SUP-X/WH1").reason
    assert [d["title"] for d in erpnext.orders()] == [A_WH1]


def test_erpnext_bad_token_is_an_auth_error(erpnext: ErpNextPeer) -> None:
    settings = erpnext_settings(erpnext, api_secret="not-it")
    with pytest.raises(PushAuthError, match="HTTP 403 PermissionError: Not permitted") as caught:
        push_erpnext(erpnext, settings=settings)
    assert "not-it" not in str(caught.value)
    assert erpnext.orders() == []


def test_erpnext_permission_error_is_reported_per_order() -> None:
    with erpnext_peer(can_write=False) as peer:
        report = push_erpnext(peer)
        assert report.failed == [A_WH1, A_WH2, B_WH1]
        assert "HTTP 403 PermissionError: Insufficient Permission for Purchase Order" in (
            report.outcome(A_WH1).reason
        )


def test_erpnext_server_exception_fails_that_order_after_retries() -> None:
    _, calls = _clean_erpnext_run()
    post = calls.index("POST Purchase Order") + 1  # the first order's create
    # the first order's whole step fails three times (list, then POST each time)
    faults = {
        n: Fault.error("TypeError", "unsupported operand type(s)", status=500)
        for n in (post, post + 2, post + 4)
    }
    with erpnext_peer(faults=faults) as peer:
        report = push_erpnext(peer)
        assert report.failed == [A_WH1]
        assert report.outcome(A_WH1).reason == (
            f"ERPNext rejected order {A_WH1}: server error TypeError: unsupported operand type(s)"
        )
        assert report.created == [A_WH2, B_WH1]


def test_erpnext_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "API_KEY", "API_SECRET"):
        monkeypatch.delenv(f"REPLENISH_ERPNEXT_{name}", raising=False)
    monkeypatch.setenv("REPLENISH_ERPNEXT_URL", "http://127.0.0.1:1")
    with pytest.raises(
        ConfigurationError, match="set REPLENISH_ERPNEXT_API_KEY, REPLENISH_ERPNEXT_API_SECRET"
    ):
        push_orders("erpnext", draft_lines())
    with pytest.raises(ConfigurationError, match="KEY_FIELD"):
        push_orders(
            "erpnext",
            draft_lines(),
            settings=ErpNextSettings(url="http://x", api_key="a", api_secret="b", key_field="a b"),
        )


# ================================================== duplicates: the closing sweep
#
# The same checks against both peers: a second ERP order of one po_key (a create
# the ERP ran twice, or late) is removed when it is a plain draft, the older or
# confirmed one kept; one that cannot be removed fails its order, naming both ids.

TARGETS = ["odoo", "erpnext"]
CREATE = {"odoo": "purchase.order.create", "erpnext": "POST Purchase Order"}


def make_peer(target: str, **kwargs: Any) -> OdooPeer | ErpNextPeer:
    return odoo_peer(**kwargs) if target == "odoo" else erpnext_peer(**kwargs)


def push_to(peer: OdooPeer | ErpNextPeer, **kwargs: Any) -> PushReport:
    if isinstance(peer, OdooPeer):
        return push_odoo(peer, **kwargs)
    return push_erpnext(peer, **kwargs)


def erp_orders(peer: OdooPeer | ErpNextPeer) -> list[tuple[str, str, str]]:
    """(po_key, ERP id, state) of every order the peer holds, oldest first."""
    if isinstance(peer, OdooPeer):
        return [(o["origin"], str(o["id"]), o["state"]) for o in peer.orders()]
    return [(d["title"], d["name"], f"docstatus {d['docstatus']}") for d in peer.orders()]


def contents(peer: OdooPeer | ErpNextPeer) -> list[tuple[Any, ...]]:
    """Per order its key and lines, without the ERP's ids."""
    if isinstance(peer, OdooPeer):
        return sorted(
            (o["origin"], tuple(sorted((ln["product_id"], ln["product_qty"]) for ln in o["lines"])))
            for o in peer.orders()
        )
    return sorted(
        (d["title"], tuple(sorted((i["item_code"], i["qty"]) for i in d["items"])))
        for d in peer.orders()
    )


def removed_ids(peer: OdooPeer | ErpNextPeer) -> list[str]:
    """The ERP ids the push asked the ERP to delete, in order."""
    if isinstance(peer, OdooPeer):
        return [
            str(c.body["params"]["args"][5][0][0])
            for c in peer.calls
            if c.what == "purchase.order.unlink"
        ]
    return [c.what.split("/", 1)[1] for c in peer.calls if c.method == "DELETE"]


def confirm(peer: OdooPeer | ErpNextPeer, erp_id: str) -> None:
    if isinstance(peer, OdooPeer):
        peer.set_state(int(erp_id), "purchase")
    else:
        peer.submit(erp_id)


def copy_order(peer: OdooPeer | ErpNextPeer, erp_id: str) -> str:
    if isinstance(peer, OdooPeer):
        return str(peer.copy_order(int(erp_id)))
    return peer.copy_order(erp_id)


def age(target: str, erp_id: str) -> tuple[int, str]:
    return (int(erp_id), "") if target == "odoo" else (0, erp_id)


@pytest.mark.parametrize("target", TARGETS)
def test_the_sweep_removes_the_younger_draft_duplicate_only(target: str) -> None:
    with make_peer(target) as peer:
        push_to(peer)
        clean, calls = contents(peer), [c.what for c in peer.calls]
    number = calls.index(CREATE[target]) + 1
    # the ERP runs the first create twice (a proxy replayed it) and answers the second
    with make_peer(target, faults={number: Fault.twice()}) as peer:
        report = push_to(peer)

        assert report.created == [A_WH1, A_WH2, B_WH1] and report.failed == []
        [dup] = report.duplicates
        assert (dup.po_key, dup.removed) == (A_WH1, True)
        assert age(target, dup.kept_id) < age(target, dup.erp_id)  # the older one is kept
        assert removed_ids(peer) == [dup.erp_id]  # nothing else was deleted
        # the ERP holds each order once, as a clean push leaves it, all drafts
        assert contents(peer) == clean
        held = erp_orders(peer)
        assert sorted(key for key, _, _ in held) == [A_WH1, A_WH2, B_WH1]
        assert {state for _, _, state in held} == {"draft" if target == "odoo" else "docstatus 0"}
        # the report names the order kept, not the removed one it was answered
        assert (A_WH1, dup.kept_id) in {(k, i) for k, i, _ in held}
        assert report.outcome(A_WH1).erp_id == dup.kept_id
        assert "removed duplicate" in report.outcome(A_WH1).reason
        assert report.counts()["duplicates_removed"] == 1
        assert "3 created, 1 duplicate(s) removed" in report.text()
        if target == "odoo":  # Odoo deletes only cancelled orders: cancel, then unlink
            assert [c.what for c in peer.calls][-2:] == [
                "purchase.order.button_cancel",
                "purchase.order.unlink",
            ]


@pytest.mark.parametrize("target", TARGETS)
def test_a_confirmed_duplicate_is_never_deleted_but_reported(target: str) -> None:
    with make_peer(target) as peer:
        first = push_to(peer)
        a = first.outcome(A_WH1).erp_id or ""
        b = first.outcome(B_WH1).erp_id or ""
        a_copy = copy_order(peer, a)  # a late create, which the buyer then confirmed
        confirm(peer, a_copy)
        b_copy = copy_order(peer, b)  # both copies confirmed: ordered twice for real
        confirm(peer, b)
        confirm(peer, b_copy)
        confirmed_before = {(k, i, s) for k, i, s in erp_orders(peer) if i in (a_copy, b, b_copy)}

        report = push_to(peer)

        # nothing confirmed is touched; A's plain draft goes, the buyer has the copy
        assert confirmed_before <= set(erp_orders(peer))
        assert removed_ids(peer) == [a]
        assert report.outcome(A_WH1).action == "skipped"
        assert report.outcome(A_WH1).erp_id == a_copy
        # B is in the ERP twice and cannot be fixed here: its order fails, naming both
        assert report.failed == [B_WH1]
        reason = report.outcome(B_WH1).reason
        assert b in reason and b_copy in reason and "resolve it in the ERP" in reason
        assert [(d.po_key, d.erp_id, d.removed) for d in report.duplicates] == [
            (A_WH1, a, True),
            (B_WH1, b_copy, False),
        ]
        assert report.unresolved_duplicates[0].kept_id == b
        with pytest.raises(PushFailed, match=rf"{B_WH1}: skipped, but ordered twice in the ERP"):
            report.raise_on_failure()


@pytest.mark.parametrize("target", TARGETS)
def test_the_next_push_removes_a_duplicate_an_earlier_push_left(target: str) -> None:
    with make_peer(target) as peer:
        first = push_to(peer)
        a = first.outcome(A_WH1).erp_id or ""
        clean = contents(peer)
        late = copy_order(peer, a)  # the ERP ran a timed-out create after that push ended

        report = push_to(peer)

        assert report.unchanged == [A_WH1, A_WH2, B_WH1]
        assert report.erp_ids() == first.erp_ids()
        assert [
            (d.po_key, d.erp_id, d.kept_id, d.kept_name, d.removed) for d in report.duplicates
        ] == [(A_WH1, late, a, first.outcome(A_WH1).erp_name, True)]
        assert removed_ids(peer) == [late]
        assert contents(peer) == clean
        assert push_to(peer).duplicates == []  # nothing left to clean


@pytest.mark.parametrize("target", TARGETS)
def test_a_duplicate_the_erp_refuses_to_delete_fails_its_order_or_is_cancelled(
    target: str,
) -> None:
    refuse = {"can_delete": False} if target == "erpnext" else {}
    with make_peer(target, **refuse) as peer:
        settings = None
        if isinstance(peer, OdooPeer):  # may cancel (write) but not delete purchase orders
            peer.add_user("clerk", "pw", {"purchase.order": {"read", "create", "write"}})
            settings = odoo_settings(peer, login="clerk", password="pw")
        first = push_to(peer, settings=settings)
        a = first.outcome(A_WH1).erp_id or ""
        late = copy_order(peer, a)

        report = push_to(peer, settings=settings)

        [dup] = report.duplicates
        if target == "odoo":  # cancelled: no longer an order, only not deleted
            assert dup.removed and "cancelled; Odoo refused to delete it" in dup.reason
            assert "AccessError" in dup.reason
            assert (A_WH1, late, "cancel") in erp_orders(peer)
            assert report.failed == []
        else:
            assert not dup.removed
            assert report.failed == [A_WH1]
            reason = report.outcome(A_WH1).reason
            assert f"ordered twice in the ERP: {a} and {late} (docstatus 0, Draft)" in reason
            assert "User not allowed to delete Purchase Order" in reason
            assert (A_WH1, late, "docstatus 0") in erp_orders(peer)


def test_erpnext_refuses_to_delete_a_submitted_order_as_frappe_does(erpnext: ErpNextPeer) -> None:
    """The peer's DELETE answers as Frappe's: 202 for a draft, 417 for a submitted one."""
    import httpx

    first = push_erpnext(erpnext)
    a, b = first.outcome(A_WH1).erp_id or "", first.outcome(B_WH1).erp_id or ""
    erpnext.submit(b)
    auth = {"Authorization": "token k3y:s3cret"}
    with httpx.Client(base_url=erpnext.url, headers=auth) as client:
        done = client.delete(f"/api/resource/Purchase Order/{a}")
        refused = client.delete(f"/api/resource/Purchase Order/{b}")
    assert (done.status_code, done.json()) == (202, {"data": "ok"})
    assert refused.status_code == 417
    assert refused.json()["exc_type"] == "ValidationError"
    assert "Submitted Record cannot be deleted" in refused.json()["exception"]
    assert sorted(key for key, _, _ in erp_orders(erpnext)) == [A_WH2, B_WH1]


def test_the_wait_after_a_create_in_doubt_is_configured_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = {"url": "http://x", "db": "d", "login": "l", "password": "p"}
    assert OdooSettings(**base, timeout=7.0).doubt_wait() == 7.0  # default: the timeout
    assert OdooSettings(**base, timeout=900.0).doubt_wait() == 600.0
    monkeypatch.setenv("REPLENISH_ERPNEXT_IN_DOUBT_WAIT", "120")
    assert ErpNextSettings().doubt_wait() == 120.0
    with pytest.raises(ValidationError, match="in_doubt_wait"):
        OdooSettings(**base, in_doubt_wait=601)
