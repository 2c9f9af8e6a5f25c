"""The nightly flow end to end, under a real Prefect server, on the demo shop.

Alerts go to a real SMTP server (aiosmtpd) and a Slack-speaking HTTP recorder
on loopback; the ERP and the store are real databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from flows.nightly import nightly_replenishment
from replenish.demo import generate_demo
from replenish.errors import DataQualityError
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tests.servers import HttpRecorder, SmtpRecorder

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def demo_snapshot():  # type: ignore[no-untyped-def]
    return generate_demo(AS_OF, seed=11, n_skus=60, days=400)


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpRecorder, HttpRecorder]]:
    with SmtpRecorder() as smtp, HttpRecorder() as slack:
        monkeypatch.setenv("REPLENISH_SLACK_WEBHOOK_URL", slack.url + "/services/T000/B000/XXX")
        monkeypatch.setenv("REPLENISH_SMTP_HOST", smtp.host)
        monkeypatch.setenv("REPLENISH_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("REPLENISH_ALERT_EMAIL_TO", '["buyer@shop.example"]')
        yield smtp, slack


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_snapshot) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    db = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    write_snapshot(demo_snapshot, erp)
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    return erp, db


def test_demo_run_orders_alerts_and_quarantine(shop, peers, demo_snapshot) -> None:  # type: ignore[no-untyped-def]
    smtp, slack = peers
    summary = nightly_replenishment(as_of=AS_OF, report_top_n=0)
    store = Store(shop[1])

    run = store.runs(1).iloc[0]
    assert run["status"] == "completed" and run["run_id"] == summary["run_id"]

    # every active, valid SKU x location is planned
    plans = store.plans(summary["run_id"])
    active = set(demo_snapshot.products.loc[demo_snapshot.products["active"].fillna(False), "sku"])
    stocked = demo_snapshot.stock_levels[demo_snapshot.stock_levels["sku"].isin(active)]
    assert set(zip(plans["sku"], plans["location_id"], strict=True)) >= set(
        zip(stocked["sku"], stocked["location_id"], strict=True)
    )

    # draft orders for several suppliers, quantities respecting pack and MOQ
    orders = store.orders(as_of=AS_OF)
    assert orders["supplier_id"].nunique() >= 3
    sp = demo_snapshot.supplier_products.set_index(["sku", "supplier_id"])
    for r in orders.itertuples():
        pack, moq = sp.loc[(r.sku, r.supplier_id), ["pack_size", "moq"]]
        assert r.qty >= moq and r.qty % pack == 0, r
    assert (orders["line_value"] - orders["qty"] * orders["unit_price"]).abs().max() < 0.01

    # the demo's deliberate defects are quarantined with a reason; nothing else stopped
    quarantined = store.quarantine(summary["run_id"])
    assert len(quarantined) >= 3
    assert quarantined["reason"].str.len().min() > 10
    assert summary["quarantined"] == len(quarantined)

    # alerts reached both real peers
    assert summary["alerts"] > 0
    assert len(smtp.messages) == 1
    assert "[replenish]" in smtp.messages[0]["Subject"]
    assert len(slack.requests) >= 1
    assert any("stockout" in str(req.json).lower() for req in slack.requests)
    store.dispose()


def test_rerun_same_date_changes_nothing(shop, peers) -> None:  # type: ignore[no-untyped-def]
    smtp, slack = peers
    nightly_replenishment(as_of=AS_OF, report_top_n=0)
    store = Store(shop[1])
    orders_first = store.orders(as_of=AS_OF)
    n_mail, n_slack = len(smtp.messages), len(slack.requests)

    second = nightly_replenishment(as_of=AS_OF, report_top_n=0)
    assert second["drafts"]["created"] == 0 and second["drafts"]["updated"] == 0
    pd.testing.assert_frame_equal(store.orders(as_of=AS_OF), orders_first)
    assert len(smtp.messages) == n_mail and len(slack.requests) == n_slack  # nothing re-sent
    assert len(store.runs(10)) == 2
    store.dispose()


def test_dry_run_writes_no_order_and_sends_nothing(shop, peers) -> None:  # type: ignore[no-untyped-def]
    smtp, slack = peers
    summary = nightly_replenishment(as_of=AS_OF, dry_run=True, report_top_n=0)
    store = Store(shop[1])
    assert store.count_drafts(AS_OF) == (0, 0)
    assert len(store.plans(summary["run_id"])) > 0
    assert smtp.messages == [] and slack.requests == []
    store.dispose()


def test_service_level_override_raises_safety_stock(shop) -> None:  # type: ignore[no-untyped-def]
    base = nightly_replenishment(as_of=AS_OF, dry_run=True, report_top_n=0)
    high = nightly_replenishment(
        as_of=AS_OF,
        dry_run=True,
        service_levels={"A": 0.999, "B": 0.999, "C": 0.999},
        report_top_n=0,
    )
    store = Store(shop[1])
    a = store.plans(base["run_id"]).set_index(["sku", "location_id"])
    b = store.plans(high["run_id"]).set_index(["sku", "location_id"])
    moving = a["demand_std"] > 0
    assert (b.loc[moving, "safety_stock"] >= a.loc[moving, "safety_stock"]).all()
    assert (b.loc[moving, "safety_stock"] > a.loc[moving, "safety_stock"]).mean() > 0.9
    store.dispose()


def test_bad_stock_snapshot_stops_before_any_order(shop, peers) -> None:  # type: ignore[no-untyped-def]
    smtp, _ = peers
    engine = create_engine(shop[0])
    with engine.begin() as c:  # a snapshot a week old is stale
        c.execute(
            text("UPDATE stock_levels SET as_of = :t"),
            {"t": datetime.combine(AS_OF - timedelta(days=7), datetime.min.time())},
        )
    engine.dispose()
    with pytest.raises(DataQualityError, match="no order written"):
        nightly_replenishment(as_of=AS_OF, report_top_n=0)
    store = Store(shop[1])
    assert store.count_drafts(AS_OF) == (0, 0)
    assert store.runs(1).iloc[0]["status"] == "blocked"
    assert len(smtp.messages) == 1 and "critical" in smtp.messages[0]["Subject"]
    store.dispose()


def test_flow_run_is_recorded_in_prefect(shop) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = nightly_replenishment(as_of=AS_OF, dry_run=True, return_state=True, report_top_n=0)
    summary = state.result()
    store = Store(shop[1])
    flow_run_id = store.runs(1).iloc[0]["flow_run_id"]
    store.dispose()

    async def read() -> tuple[str, list[str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            arts = await client.read_artifacts()
            return runs[0].state_name or "", [a.key or "" for a in arts]

    state_name, artifact_keys = asyncio.run(read())
    assert state_name == "Completed"
    assert "replenishment-summary" in artifact_keys
    assert summary["dry_run"] is True
