"""Promise 1, transient faults: when about 30 % of the calls to the ERP
database and to every HTTP peer fail (5xx, 429, timeouts, refused and
dropped connections, connections cut mid-answer), the run still completes
with exactly the data of a clean run; a fault that does not pass ends the run
clearly, alerts, and leaves no partial order.

The faults come from a seeded :class:`tests.faults.FaultPlan`: the same faults
hit the same calls on every run of the suite. The database faults are real
TCP faults, made by :class:`tests.faults.TcpFaultProxy` between the driver
and the real PostgreSQL / MariaDB server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect import flow
from sqlalchemy import create_engine, text

import flows.nightly
from flows.nightly import nightly_replenishment
from replenish.demo import generate_demo
from replenish.errors import ContractError, NotifyUnavailable, SourceUnavailable
from replenish.model import ErpSnapshot
from replenish.orders.push import ErpNextSettings, OdooSettings, push_orders
from replenish.sources.channels import ShopifyConfig, WooCommerceConfig, fetch
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tasks.common import retry_if_transient
from tasks.extract import extract_erp
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
from tests.erp_peers import ErpNextPeer, OdooPeer
from tests.erp_peers import Fault as erp_peers_fault
from tests.faults import HTTP_FAULTS, FaultPlan, TcpFaultProxy, inject_channel_faults
from tests.faults import peer_faults as make_peer_faults
from tests.reliability.workload import (
    build_workload,
    draft_state,
    integrity_violations,
    store_engine,
    write_run,
)
from tests.servers import HttpRecorder, SmtpRecorder

AS_OF = date(2026, 11, 20)
#: Seeds of the database faults. An extraction attempt reads the ERP through
#: one connection, so a run opens few: these seeds' plans (30 % of
#: connections) hit the first ones. PostgreSQL: connection 1 refused, 2
#: stalled then reset, 3 clean (three attempts). MariaDB: connection 1 cut
#: mid-answer, 2 slowed (two attempts).
PG_SEED = 69
MARIADB_SEED = 8


@pytest.fixture(scope="module")
def demo() -> ErpSnapshot:
    return generate_demo(AS_OF, seed=11, n_skus=20, days=150)


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpRecorder, HttpRecorder]]:
    with SmtpRecorder() as smtp, HttpRecorder() as slack:
        monkeypatch.setenv("REPLENISH_SLACK_WEBHOOK_URL", slack.url + "/services/T0/B0/token")
        monkeypatch.setenv("REPLENISH_SMTP_HOST", smtp.host)
        monkeypatch.setenv("REPLENISH_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("REPLENISH_ALERT_EMAIL_TO", '["buyer@shop.example"]')
        yield smtp, slack


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extract task as deployed (3 retries, transient faults only), minus
    the waits between attempts (2, 10, 30 s) that would only slow the suite."""
    monkeypatch.setattr(
        flows.nightly, "extract_erp", extract_erp.with_options(retry_delay_seconds=0)
    )


def run_nightly(
    monkeypatch: pytest.MonkeyPatch, erp: str, store: str, home: Path
) -> tuple[Any, str]:
    """One nightly run for AS_OF; (its state, its flow run id)."""
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    monkeypatch.setenv("REPLENISH_DB_URL", store)
    monkeypatch.setenv("REPLENISH_HOME", str(home))
    state = nightly_replenishment(as_of=AS_OF, return_state=True, report_top_n=0)
    return state, str(state.state_details.flow_run_id)


def attempts(flow_run_id: str, task_name: str) -> int:
    """How many times the flow run ran the task (1 = no retry)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> int:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return max(r.run_count for r in runs if r.name.startswith(task_name))

    return asyncio.run(read())


def outcome(store_url: str, run_id: str) -> dict[str, Any]:
    """What a run left: its plans, quarantined rows and the drafts of the date."""
    store = Store(store_url)
    try:
        plans = store.plans(run_id).sort_values(["sku", "location_id"]).reset_index(drop=True)
        quarantine = store.quarantine(run_id).drop(columns=["id", "run_id"])
        quarantine = quarantine.sort_values(list(quarantine.columns)).reset_index(drop=True)
    finally:
        store.dispose()
    engine = store_engine(store_url)
    try:
        return {
            "plans": plans,
            "quarantine": quarantine,
            "drafts": draft_state(engine, AS_OF),
            "broken": integrity_violations(engine),
        }
    finally:
        engine.dispose()


def assert_same_outcome(faulty: dict[str, Any], clean: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(faulty["plans"], clean["plans"])
    pd.testing.assert_frame_equal(faulty["quarantine"], clean["quarantine"])
    assert faulty["drafts"] == clean["drafts"]
    assert faulty["drafts"][0], "the run ordered nothing: the comparison proves little"
    assert faulty["broken"] == clean["broken"] == []


# ===================================================================== the ERP


@pytest.mark.flow
@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server", "quick_retries")
def test_erp_database_faults_are_retried_and_the_run_equals_a_clean_run(
    postgres_url: str, demo: ErpSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_snapshot(demo, postgres_url)
    clean_store = f"sqlite:///{(tmp_path / 'clean.db').as_posix()}"
    faulty_store = f"sqlite:///{(tmp_path / 'faulty.db').as_posix()}"

    state, _ = run_nightly(monkeypatch, postgres_url, clean_store, tmp_path)
    clean = state.result()
    with TcpFaultProxy.for_url(postgres_url, FaultPlan(0.3, seed=PG_SEED)) as proxy:
        state, flow_run_id = run_nightly(
            monkeypatch, proxy.url(postgres_url), faulty_store, tmp_path
        )
        faulty = state.result()
        stats = proxy.stats

    # the faults happened and cost attempts...
    assert stats.broken >= 2, stats
    assert attempts(flow_run_id, "extract-erp") == 3
    # ...and the run read and wrote exactly what the clean run did
    assert faulty["rows_read"] == clean["rows_read"]
    assert faulty["drafts"]["created"] == clean["drafts"]["created"] > 0
    assert_same_outcome(
        outcome(faulty_store, faulty["run_id"]), outcome(clean_store, clean["run_id"])
    )


@pytest.mark.mariadb
@pytest.mark.usefixtures("prefect_server")
def test_mariadb_faults_are_retried_and_the_snapshot_equals_a_clean_one(
    mariadb_url: str, demo: ErpSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extract task on its own (retries as deployed, without the waits)
    against MariaDB through the faulty proxy: the snapshot is the clean one."""
    write_snapshot(demo, mariadb_url)
    extract = extract_erp.with_options(retry_delay_seconds=0)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path))

    @flow
    def extract_only() -> ErpSnapshot:
        result: ErpSnapshot = extract(AS_OF, None, 150)
        return result

    def snapshot(erp: str, store: str) -> ErpSnapshot:
        monkeypatch.setenv("REPLENISH_ERP_URL", erp)
        monkeypatch.setenv("REPLENISH_DB_URL", f"sqlite:///{(tmp_path / store).as_posix()}")
        return extract_only()

    clean = snapshot(mariadb_url, "clean.db")
    with TcpFaultProxy.for_url(mariadb_url, FaultPlan(0.3, seed=MARIADB_SEED)) as proxy:
        faulty = snapshot(proxy.url(mariadb_url), "faulty.db")
    assert proxy.stats.broken >= 1, proxy.stats
    for name, frame in clean.tables().items():
        got = getattr(faulty, name)
        key = list(frame.columns)
        pd.testing.assert_frame_equal(
            got.sort_values(key).reset_index(drop=True),
            frame.sort_values(key).reset_index(drop=True),
            obj=name,
        )
    assert len(clean.sales_order_lines) > 1000


@pytest.mark.flow
@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server", "quick_retries")
def test_a_lasting_erp_outage_ends_the_run_clearly_alerts_and_keeps_the_drafts(
    postgres_url: str,
    demo: ErpSnapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    peers: tuple[SmtpRecorder, HttpRecorder],
) -> None:
    smtp, slack = peers
    write_snapshot(demo, postgres_url)
    store_url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    Store(store_url).dispose()
    write_run(store_url, build_workload())  # an earlier run's drafts of the same date
    engine = store_engine(store_url)
    drafts = draft_state(engine, AS_OF)
    assert drafts[0]
    with TcpFaultProxy.for_url(postgres_url) as proxy:
        proxy.go_down()  # the ERP's server is gone, and stays gone
        state, flow_run_id = run_nightly(monkeypatch, proxy.url(postgres_url), store_url, tmp_path)
        refused = proxy.stats.faults["refuse"]

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SourceUnavailable)
    assert "cannot read the ERP database" in str(error)
    assert attempts(flow_run_id, "extract-erp") == 4  # 1 + 3 retries, then it gives up
    assert refused >= 4
    # the run is recorded as failed, with the reason
    store = Store(store_url)
    runs = store.runs(5)
    run = runs[runs["status"] != "completed"].iloc[0]
    store.dispose()
    assert run["status"] == "failed" and "cannot read the ERP database" in run["message"]
    # no partial order: the drafts of the date are the previous run's, whole
    assert draft_state(engine, AS_OF) == drafts and integrity_violations(engine) == []
    engine.dispose()
    # people are told, on every channel
    assert smtp.messages and slack.requests
    told = str(smtp.messages[-1]["Subject"]) + smtp.messages[-1].get_body().get_content()
    assert "fail" in told.lower()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "quick_retries")
def test_a_permanent_source_fault_is_not_retried(
    demo: ErpSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing table is not cured by waiting: one attempt, a clear error."""
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(demo, erp)
    engine = create_engine(erp)
    with engine.begin() as c:
        c.execute(text("DROP TABLE returns"))
    engine.dispose()
    state, flow_run_id = run_nightly(
        monkeypatch, erp, f"sqlite:///{(tmp_path / 'store.db').as_posix()}", tmp_path
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ContractError) and "'returns' is missing" in str(error)
    assert attempts(flow_run_id, "extract-erp") == 1


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (SourceUnavailable("ERP at x: connection refused"), True),
        (NotifyUnavailable("Slack: HTTP 503"), True),
        (ContractError("table 'returns' is missing"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_transient_faults_are_retried(error: Exception, retried: bool) -> None:
    class State:
        def result(self) -> None:
            raise error

    assert retry_if_transient(None, None, State()) is retried


# ================================================================ sales channels

T0 = datetime(2026, 11, 1, 9, 0)


def shopify_orders(n: int) -> list[dict[str, Any]]:
    orders = []
    for i in range(1, n + 1):
        created = T0 + timedelta(hours=7 * i)
        lines = [
            shopify_line(i * 10 + k, f"SKU-{(i + k) % 7:04d}", 1 + (i * k) % 4) for k in (1, 2)
        ]
        refunds = []
        if i % 5 == 0:
            refunds = [
                shopify_refund(
                    i,
                    created_at=created + timedelta(days=2),
                    lines=[{"line_item_id": i * 10 + 1, "quantity": 1, "restock_type": "return"}],
                )
            ]
        orders.append(
            shopify_order(
                1000 + i,
                created_at=created,
                updated_at=created + timedelta(hours=1),
                lines=lines,
                refunds=refunds,
                fulfillment_status="fulfilled" if i % 3 else None,
                cancelled_at=created + timedelta(hours=2) if i % 11 == 0 else None,
            )
        )
    return orders


def woo_orders(n: int) -> list[dict[str, Any]]:
    orders = []
    for i in range(1, n + 1):
        created = T0 + timedelta(hours=5 * i)
        refunds = []
        if i % 4 == 0:
            refunds = [
                woo_refund(
                    i,
                    created_at=created + timedelta(days=1),
                    lines=[{"line_item_id": i * 10, "quantity": 1}],
                )
            ]
        orders.append(
            woo_order(
                2000 + i,
                created_at=created,
                modified_at=created + timedelta(hours=1),
                status="completed" if i % 3 else "processing",
                lines=[woo_line(i * 10, f"SKU-{i % 5:04d}", 1 + i % 3)],
                refunds=refunds,
            )
        )
    return orders


CHANNEL_SETTINGS = {
    "location_id": "WH1",
    "overlap_seconds": 0,
    "backoff_seconds": 0.001,
    "max_backoff_seconds": 0.01,
    "max_retry_after_seconds": 0.05,
    "timeout_seconds": 0.3,
    "max_retries": 10,
}


@pytest.mark.parametrize("kind", ["shopify", "woocommerce"])
def test_channel_faults_are_retried_and_the_cache_equals_a_clean_one(
    kind: str, tmp_path: Path
) -> None:
    if kind == "shopify":
        server: ShopifyServer | WooCommerceServer = ShopifyServer(shopify_orders(30))
        env = {"SHOPIFY_ACCESS_TOKEN": SHOPIFY_TOKEN}

        def config(url: str) -> ShopifyConfig | WooCommerceConfig:
            return ShopifyConfig(
                name="shop",
                base_url=url,
                api_version=server.api_version,  # type: ignore[union-attr]
                page_size=3,
                call_limit_headroom=0,
                **CHANNEL_SETTINGS,
            )
    else:
        server = WooCommerceServer(woo_orders(30))
        env = {"WOOCOMMERCE_CONSUMER_KEY": WOO_KEY, "WOOCOMMERCE_CONSUMER_SECRET": WOO_SECRET}

        def config(url: str) -> ShopifyConfig | WooCommerceConfig:
            return WooCommerceConfig(name="woo", base_url=url, page_size=4, **CHANNEL_SETTINGS)

    with server:
        clean = fetch(config(server.url), None, env=env)
        used = len(server.requests)
    faulty_server = (
        ShopifyServer(shopify_orders(30))
        if kind == "shopify"
        else WooCommerceServer(woo_orders(30))
    )
    with faulty_server:
        plan = FaultPlan(0.3, seed=2, kinds=HTTP_FAULTS)
        faults = inject_channel_faults(faulty_server, plan, 4 * used, timeout_seconds=0.3)
        faulty = fetch(config(faulty_server.url), None, env=env)
        statuses = [r.status for r in faulty_server.requests]

    assert any(n <= len(statuses) for n in faults), "no fault hit a request"
    assert (
        faulty.counts.retries >= 3
        and statuses.count(None) + sum(s is not None and s >= 429 for s in statuses) >= 3
    )
    assert len(clean.lines) > 20
    for name in ("lines", "returns", "rejected"):
        pd.testing.assert_frame_equal(getattr(faulty, name), getattr(clean, name), obj=name)
    assert faulty.high_watermark == clean.high_watermark
    # cached in a store, the two runs leave the same demand
    cached = []
    for batch, db in ((clean, "clean.db"), (faulty, "faulty.db")):
        store = Store(f"sqlite:///{(tmp_path / db).as_posix()}")
        store.ingest(batch.channel, batch.lines, batch.returns, batch.high_watermark)
        cached.append(
            store.cached_sales(None).sort_values(["order_id", "line_no"]).reset_index(drop=True)
        )
        store.dispose()
    pd.testing.assert_frame_equal(cached[1], cached[0])


# ==================================================================== ERP push


def _odoo(
    peer: OdooPeer, skus: list[str], suppliers: list[str], timeout: float, **more: Any
) -> OdooSettings:
    for supplier in suppliers:
        peer.add_partner(f"Supplier {supplier}", supplier)
    for sku in skus:
        peer.add_product(sku, f"Product {sku}")
    peer.add_warehouse("WH1", "Main")
    peer.add_warehouse("WH2", "North")
    return OdooSettings(
        url=peer.url, db="odoo", login="buyer@example.com", password="api-key-1",
        backoff=0.0, max_attempts=10, timeout=timeout, **more,
    )  # fmt: skip


def _erpnext(
    peer: ErpNextPeer, skus: list[str], suppliers: list[str], timeout: float, **more: Any
) -> ErpNextSettings:
    for supplier in suppliers:
        peer.add_supplier(supplier)
    for sku in skus:
        peer.add_item(sku, f"Product {sku}")
    peer.add_warehouse("WH1")
    peer.add_warehouse("WH2")
    return ErpNextSettings(
        url=peer.url, api_key="k3y", api_secret="s3cret", backoff=0.0, max_attempts=10,
        timeout=timeout, **more,
    )  # fmt: skip


def _state(peer: OdooPeer | ErpNextPeer) -> list[tuple[Any, ...]]:
    if isinstance(peer, OdooPeer):
        return sorted(
            (
                o["origin"], o["partner_id"], o["picking_type_id"], o["state"],
                tuple(sorted((ln["product_id"], ln["product_qty"], ln["price_unit"])
                             for ln in o["lines"])),
            )
            for o in peer.orders()
        )  # fmt: skip
    return sorted(
        (
            d["title"], d["supplier"], d["docstatus"], d["set_warehouse"],
            tuple(sorted((i["item_code"], i["qty"], i["rate"]) for i in d["items"])),
        )
        for d in peer.orders()
    )  # fmt: skip


Drafts = tuple[pd.DataFrame, list[str], list[str]]


@pytest.fixture(scope="module")
def drafts(tmp_path_factory: pytest.TempPathFactory) -> Drafts:
    """The demo workload's drafts as ``Store.orders`` gives them to a push."""
    url = f"sqlite:///{(tmp_path_factory.mktemp('push') / 'store.db').as_posix()}"
    wl = build_workload()
    Store(url).dispose()
    write_run(url, wl)
    store = Store(url)
    orders = store.orders(as_of=wl.as_of)
    store.dispose()
    return orders, sorted(set(orders["sku"])), sorted(set(orders["supplier_id"]))


def _peer(target: str, faults: dict[int, Any]) -> OdooPeer | ErpNextPeer:
    return OdooPeer(faults=faults) if target == "odoo" else ErpNextPeer(faults=faults)


def _settings(
    peer: OdooPeer | ErpNextPeer, drafts: Drafts, timeout: float, **more: Any
) -> OdooSettings | ErpNextSettings:
    _, skus, suppliers = drafts
    if isinstance(peer, OdooPeer):
        return _odoo(peer, skus, suppliers, timeout, **more)
    return _erpnext(peer, skus, suppliers, timeout, **more)


def push_with(
    drafts: Drafts,
    target: str,
    faults: dict[int, Any],
    timeout: float = 0.3,
    *,
    sleep: Callable[[float], None] | None = None,
    **settings: Any,
) -> tuple[list[tuple[Any, ...]], Any, list[Any]]:
    """Push the drafts to a fresh peer with ``faults`` (``settings``: more
    connection settings; ``sleep``: how the pusher waits, by default not at
    all); the peer's orders are read once it has finished every call it
    received (a call the client gave up on may still be executing)."""
    with _peer(target, faults) as peer:
        report = push_orders(
            target,
            drafts[0],
            settings=_settings(peer, drafts, timeout, **settings),
            statuses=None,
            sleep=sleep or no_wait,
        )
    return _state(peer), report, peer.calls


@pytest.mark.parametrize("target", ["odoo", "erpnext"])
def test_push_faults_are_retried_and_the_erp_holds_exactly_the_clean_orders(
    target: str, drafts: Drafts
) -> None:
    orders = drafts[0]
    clean_state, clean_report, calls = push_with(drafts, target, {})
    plan = FaultPlan(0.3, seed=3, kinds=("http500", "drop", "drop_after"))
    faulty_state, report, faulty_calls = push_with(
        drafts, target, make_peer_faults(plan, 4 * len(calls), delay_seconds=0.0)
    )

    assert len(clean_state) == orders["po_key"].nunique() > 3
    assert sum(c.fault is not None for c in faulty_calls) >= 3
    assert any(c.fault == "drop_after" for c in faulty_calls)  # done, but the answer was lost
    # every order once, with exactly its lines: nothing ordered twice, nothing lost
    assert faulty_state == clean_state
    assert report.failed == [] and sorted(report.created) == sorted(clean_report.created)


@pytest.mark.parametrize("target", ["odoo", "erpnext"])
def test_a_create_the_erp_finishes_after_the_client_gave_up_is_not_ordered_twice(
    target: str, drafts: Drafts
) -> None:
    """The ERP executes a create 0.8 s after it was sent; the client gives up
    at 0.3 s. The create is in doubt: the look-up waits ``in_doubt_wait``
    (here 1 s, the time this ERP may still take) and finds it."""
    _, _, calls = push_with(drafts, target, {})
    create = "purchase.order.create" if target == "odoo" else "POST Purchase Order"
    number = [c.what for c in calls].index(create) + 1
    state, report, _ = push_with(
        drafts,
        target,
        {number: erp_peers_fault.delay(0.8)},
        timeout=0.3,
        in_doubt_wait=1.0,
        sleep=time.sleep,
    )

    keys = [row[0] for row in state]
    assert report.failed == []
    assert len(keys) == len(set(keys)), "a draft order exists twice in the ERP"


@pytest.mark.parametrize("target", ["odoo", "erpnext"])
def test_a_create_the_erp_finishes_later_still_is_removed_and_reported(
    target: str, drafts: Drafts
) -> None:
    """The same late create, but the pusher does not wait for it
    (``in_doubt_wait=0``): the order is created again, then the ERP runs the
    late create too. The push's closing sweep removes the duplicate if it is
    there by then, else the next push does; either way exactly one removal is
    reported and the ERP ends with each order once, as a clean push leaves it."""
    clean, _, calls = push_with(drafts, target, {})
    create = "purchase.order.create" if target == "odoo" else "POST Purchase Order"
    number = [c.what for c in calls].index(create) + 1
    with _peer(target, {number: erp_peers_fault.delay(0.8)}) as peer:
        settings = _settings(peer, drafts, 0.3, in_doubt_wait=0.0)
        first = push_orders(target, drafts[0], settings=settings, statuses=None, sleep=no_wait)
        peer.wait_idle()  # the late create is done now
        second = push_orders(target, drafts[0], settings=settings, statuses=None, sleep=no_wait)
        state = _state(peer)

    assert first.failed == second.failed == []
    removed = first.removed_duplicates + second.removed_duplicates
    assert len(removed) == 1 and first.counts()["created"] == len(clean)
    assert state == clean


def no_wait(seconds: float) -> None:
    pass
