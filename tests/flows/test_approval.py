"""Approval in Prefect and the push of approved orders, end to end: the
nightly flow on a demo shop pauses for the orders above the threshold under
a real Prefect server, the test answers the typed form the way the UI does
(``resume_flow_run`` with the run input), the decisions land in the store
and the approved orders in a local Odoo peer (tests/erp_peers.py) — and a
second run the same day adds nothing twice, in the store or in Odoo."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input

from flows.nightly import nightly_replenishment
from replenish.demo import generate_demo
from replenish.model import ErpSnapshot
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tests.erp_peers import OdooPeer

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)
THRESHOLD = 2000.0


@pytest.fixture(scope="module")
def demo_snapshot() -> ErpSnapshot:
    return generate_demo(AS_OF, seed=11, n_skus=24, days=200)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_snapshot: ErpSnapshot) -> str:
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    db = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    write_snapshot(demo_snapshot, erp)
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path / "home"))
    return db


@pytest.fixture
def odoo(monkeypatch: pytest.MonkeyPatch, demo_snapshot: ErpSnapshot) -> Iterator[OdooPeer]:
    """An Odoo that knows the demo's suppliers (by Reference), products (by
    Internal Reference) and warehouses."""
    with OdooPeer() as peer:
        for s in demo_snapshot.suppliers.itertuples():
            peer.add_partner(str(s.name), str(s.supplier_id))
        for p in demo_snapshot.products.itertuples():
            peer.add_product(str(p.sku), str(p.name))
        for wh in sorted(set(demo_snapshot.stock_levels["location_id"])):
            peer.add_warehouse(str(wh))
        for name, value in {
            "URL": peer.url, "DB": "odoo", "LOGIN": "buyer@example.com",
            "PASSWORD": "api-key-1", "MAX_ATTEMPTS": "2", "BACKOFF": "0.01", "TIMEOUT": "5",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"REPLENISH_ODOO_{name}", value)
        yield peer


class FlowInThread:
    """The flow run in a thread (it blocks while paused), with the Prefect
    settings of the test session."""

    def __init__(self, **parameters: Any) -> None:
        self.state: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run, parameters), daemon=True
        )
        self.thread.start()

    def _run(self, parameters: dict[str, Any]) -> None:
        try:
            self.state = nightly_replenishment(**parameters, return_state=True)
        except BaseException as e:  # reported by the test
            self.error = e

    def result(self, timeout: float = 180) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the flow run did not finish"
        assert self.error is None, self.error
        return self.state.result()  # type: ignore[no-any-return]


def wait_until_paused(db: str, timeout: float = 120) -> UUID:
    """The flow run id of the store's running run, once Prefect shows it Paused."""
    deadline = time.monotonic() + timeout
    flow_run_id = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if flow_run_id is None:
                store = Store(db)
                runs = store.runs(1)
                store.dispose()
                if len(runs) and runs.iloc[0]["flow_run_id"]:
                    flow_run_id = UUID(runs.iloc[0]["flow_run_id"])
            if flow_run_id is not None:
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.is_paused():
                    return flow_run_id
                assert state is None or not state.is_final(), state
            time.sleep(0.5)
    raise AssertionError(f"no paused flow run within {timeout} s")


def test_large_orders_pause_for_approval_then_approved_orders_reach_odoo(
    shop: str, odoo: OdooPeer
) -> None:
    params = {
        "as_of": AS_OF,
        "approval_threshold": THRESHOLD,
        "auto_approve_below": True,
        "push_target": "odoo",
        "report_top_n": 0,
    }
    run = FlowInThread(**params)
    flow_run_id = wait_until_paused(shop)

    store = Store(shop)
    drafts = store.drafts(as_of=AS_OF).set_index("po_key")
    waiting = sorted(drafts.index[drafts["total_value"] > THRESHOLD])
    below = sorted(drafts.index[drafts["total_value"] <= THRESHOLD])
    assert len(waiting) >= 2 and below, drafts["total_value"]
    # while paused: the small ones are approved as 'auto', the large ones wait
    assert set(drafts.loc[below, "decided_by"]) == {"auto"}
    assert set(drafts.loc[waiting, "status"]) == {"draft"}

    # the form the UI shows: typed schema, the orders' lines in the description
    with get_client(sync_client=True) as client:
        paused = client.read_flow_run(flow_run_id).state
    assert paused is not None and paused.state_details.run_input_keyset is not None
    keys = paused.state_details.run_input_keyset
    schema = read_flow_run_input(keys["schema"], flow_run_id)
    description = read_flow_run_input(keys["description"], flow_run_id)
    assert {"approver", "orders", "note"} <= set(schema["properties"])
    assert schema["required"] == ["approver"]
    prefilled = {o["po_key"]: o for o in schema["properties"]["orders"]["default"]}
    assert sorted(prefilled) == waiting
    lines = store.orders(as_of=AS_OF)
    for key in waiting:
        assert f"### {key}" in description
        mine = lines[lines["po_key"] == key]
        assert prefilled[key]["quantities"] == dict(zip(mine["sku"], mine["qty"], strict=True))

    # the approver's answer: approve the first with a line changed, reject the second
    first, second, *rest = waiting
    sku = next(iter(prefilled[first]["quantities"]))
    planned = prefilled[first]["quantities"][sku]
    answer = {
        "approver": "Petra Buyer",
        "note": "checked against the promo calendar",
        "orders": [
            {
                **prefilled[first],
                "quantities": {**prefilled[first]["quantities"], sku: planned + 7},
            },
            {**prefilled[second], "decision": "reject"},
            *[prefilled[k] for k in rest],
        ],
    }
    resume_flow_run(flow_run_id, run_input=answer)
    summary = run.result()

    assert summary["approval"]["approver"] == "Petra Buyer"
    assert summary["approval"]["approved"] == len(waiting) - 1
    assert summary["approval"]["rejected"] == 1 and summary["approval"]["adjusted"] == 1
    assert summary["approval"]["auto_approved"] == len(below)
    heads = store.drafts(as_of=AS_OF).set_index("po_key")
    assert heads.loc[first, "decided_by"] == "Petra Buyer"
    assert heads.loc[first, "decision_note"] == "checked against the promo calendar"
    assert heads.loc[second, "status"] == "rejected"
    log = store.decisions(as_of=AS_OF).set_index("po_key")
    assert log.loc[first, "via"] == "prefect-ui"
    assert log.loc[first, "changes"] == {sku: [planned, planned + 7]}
    adjusted = store.orders(po_keys=[first]).set_index("sku")
    assert adjusted.loc[sku, "qty"] == planned + 7 and adjusted.loc[sku, "planned_qty"] == planned

    # the approved orders are draft RFQs in Odoo, the rejected one is not
    approved = sorted(set(below) | set(waiting) - {second})
    in_odoo = {o["origin"]: o for o in odoo.orders()}
    assert sorted(in_odoo) == approved
    assert all(o["state"] == "draft" for o in in_odoo.values())
    odoo_qty = {line["product_id"]: line["product_qty"] for line in in_odoo[first]["lines"]}
    assert planned + 7 in odoo_qty.values()
    assert summary["push"]["created"] == len(approved)
    heads = store.drafts(as_of=AS_OF).set_index("po_key")
    for key in approved:
        assert heads.loc[key, "erp_id"] == str(in_odoo[key]["id"])
        assert heads.loc[key, "push_action"] == "created"

    # a second run the same day: nothing waits, nothing is added twice
    orders_before = store.orders(as_of=AS_OF).drop(columns=["push_action", "pushed_at"])
    decisions_before = len(store.decisions(as_of=AS_OF))
    calls_before = len(odoo.calls)
    second_run = FlowInThread(**params).result()
    assert second_run["drafts"]["created"] == 0 and second_run["drafts"]["updated"] == 0
    assert second_run["approval"]["approved"] == 0 and second_run["approval"]["auto_approved"] == 0
    assert second_run["push"]["unchanged"] == len(approved) and second_run["push"]["created"] == 0
    assert sorted(o["origin"] for o in odoo.orders()) == approved
    assert not any(c.what.endswith((".create", ".write")) for c in odoo.calls[calls_before:])
    assert len(store.decisions(as_of=AS_OF)) == decisions_before
    after = store.orders(as_of=AS_OF).drop(columns=["push_action", "pushed_at"])
    assert after.equals(orders_before)
    store.dispose()


def test_an_unanswered_approval_leaves_the_orders_drafts(shop: str) -> None:
    """Nobody answers within approval_timeout: the waiting orders stay
    drafts (not approved), the run completes and says so."""
    run = FlowInThread(
        as_of=AS_OF, approval_threshold=THRESHOLD, approval_timeout=3, report_top_n=0
    )
    flow_run_id = wait_until_paused(shop)
    summary = run.result()
    assert summary["approval"]["timed_out"] is True
    store = Store(shop)
    heads = store.drafts(as_of=AS_OF)
    waiting = heads[heads["total_value"] > THRESHOLD]
    assert summary["approval"]["held"] == len(waiting) > 0
    assert set(heads["status"]) == {"draft"}  # below the threshold: no auto-approval asked
    assert store.decisions(as_of=AS_OF).empty
    assert store.runs(1).iloc[0]["status"] == "completed"
    store.dispose()
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    assert state is not None and state.is_completed()


def test_the_push_is_retried_only_when_the_erp_is_unavailable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ERP answering 500 (PushUnavailable) gets the task's 3 retries; an
    ERP refusing the credentials (PushAuthError) is not asked again."""
    from prefect import flow

    from replenish.orders import build_drafts
    from replenish.orders.push import PushAuthError, PushUnavailable
    from tasks.publish import push_approved
    from tests.adapters.test_drafts import SUPPLIERS, _plans
    from tests.erp_peers import Fault

    store = Store(sqlite_url)
    run_id = store.start_run(AS_OF, erp="sqlite://", parameters={})
    store.publish_drafts(AS_OF, run_id, *build_drafts(_plans(), SUPPLIERS, AS_OF))
    store.decide(f"{AS_OF.isoformat()}/S1/WH1", "approved", "Petra")
    store.dispose()
    monkeypatch.setenv("REPLENISH_DB_URL", sqlite_url)
    push = push_approved.with_options(retry_delay_seconds=[0.0, 0.0, 0.0])

    @flow
    def push_once() -> BaseException | None:
        state = push(run_id, AS_OF, "odoo", return_state=True)
        error = state.result(raise_on_failure=False)
        return error if isinstance(error, BaseException) else None

    def configure(peer: OdooPeer, password: str) -> None:
        for name, value in {
            "URL": peer.url, "DB": "odoo", "LOGIN": "buyer@example.com", "PASSWORD": password,
            "MAX_ATTEMPTS": "1", "TIMEOUT": "5",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"REPLENISH_ODOO_{name}", value)

    with OdooPeer(faults={n: Fault.http500() for n in range(1, 20)}) as peer:
        configure(peer, "api-key-1")
        assert isinstance(push_once(), PushUnavailable)
        assert [c.what for c in peer.calls] == ["common.login"] * 4  # 1 try + 3 retries
    with OdooPeer() as peer:
        configure(peer, "wrong-key")
        assert isinstance(push_once(), PushAuthError)
        assert [c.what for c in peer.calls] == ["common.login"]
