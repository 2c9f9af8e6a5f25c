"""The intraday sync: sales channels into the demand cache (flow, task, CLI),
the nightly snapshot that then includes them, and the stock watch.

The channels are the local Shopify and WooCommerce servers of
tests/channel_servers.py (documented wire format); the store and the ERP are
real SQLite databases; the flows run under the session's Prefect server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import flows.sync
from flows.nightly import nightly_replenishment
from flows.sync import intraday_sync
from replenish import model
from replenish.cli import app
from replenish.demo import generate_demo
from replenish.sources.channels.sync import quarantine_rows, removed_lines
from replenish.sources.generic import GenericErp, write_snapshot
from replenish.stockwatch import STOCK_WATCH_COLUMNS, stock_watch
from replenish.store import Store
from tasks.sync import sync_channel_task
from tests.channel_servers import (
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    Fault,
    ShopifyServer,
    WooCommerceServer,
    shopify_line,
    shopify_order,
    woo_line,
    woo_order,
)

NOW = datetime.now().replace(microsecond=0)
T0 = NOW - timedelta(days=2)  # naive UTC (the machine runs on UTC; only order matters)
FAST = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "timeout_seconds": 5.0}


def write_channel(directory: Path, name: str, settings: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "overlap_seconds": 0, **FAST, **settings}))
    return path


def shopify_file(directory: str | Path, name: str, server: ShopifyServer, **extra: Any) -> Path:
    settings = {"kind": "shopify", "base_url": server.url, "api_version": server.api_version}
    return write_channel(Path(directory), name, {**settings, **extra})


def woo_file(directory: str | Path, name: str, server: WooCommerceServer, **extra: Any) -> Path:
    return write_channel(
        Path(directory), name, {"kind": "woocommerce", "base_url": server.url, **extra}
    )


def shop_orders(first: int, n: int, start: datetime = T0) -> list[dict[str, Any]]:
    """Shopify orders first..first+n-1: two lines each (SKU-a-i, SKU-b-i), 1 h apart."""
    return [
        shopify_order(
            i,
            created_at=start + timedelta(hours=i - first),
            updated_at=start + timedelta(hours=i - first, minutes=5),
            lines=[shopify_line(10 * i + 1, f"SKU-a-{i}", 1), shopify_line(10 * i + 2, "B", 2)],
        )
        for i in range(first, first + n)
    ]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials of both local shops and a fresh SQLite store."""
    store = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    monkeypatch.setenv("REPLENISH_DB_URL", store)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", SHOPIFY_TOKEN)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_KEY", WOO_KEY)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", WOO_SECRET)
    return {"store": store, "channels": str(tmp_path / "channels")}


@pytest.fixture
def shops() -> Iterator[tuple[ShopifyServer, WooCommerceServer]]:
    with ShopifyServer() as shop, WooCommerceServer() as woo:
        yield shop, woo


def cached(store: Store, source: str) -> pd.DataFrame:
    lines = store.cached_sales(None, sources=[source])
    return lines.sort_values(["order_id", "line_no"], ignore_index=True)


# ======================================================================= flow


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_two_syncs_second_incremental_nothing_duplicated_edits_replace_lines(
    env: dict[str, str], shops: tuple[ShopifyServer, WooCommerceServer]
) -> None:
    shop, woo = shops
    for order in shop_orders(1001, 5):
        shop.put_order(order)
    woo.put_order(
        woo_order(
            501,
            created_at=T0,
            modified_at=T0 + timedelta(minutes=1),
            lines=[woo_line(1, "A", 1), woo_line(2, "B", 2), woo_line(3, "C", 3)],
        )
    )
    woo.put_order(woo_order(502, created_at=T0, status="completed", lines=[woo_line(4, "A", 5)]))
    shopify_file(env["channels"], "shop_eu", shop, location_id="WH1", page_size=2)
    woo_file(env["channels"], "woo_fr", woo, location_id="WH2", page_size=2)
    names = ["shop_eu", "woo_fr"]

    first = intraday_sync(channels=names, stock=False, channel_dir=env["channels"])
    store = Store(env["store"])
    assert first["channels"]["shop_eu"]["lines"] == 10 and first["channels"]["woo_fr"]["lines"] == 4
    assert first["channels"]["shop_eu"]["since"] is None  # the first sync reads everything
    shop_wm = store.watermark("shop_eu")
    assert shop_wm == T0 + timedelta(hours=4, minutes=5)  # the latest updated_at
    assert store.watermark("woo_fr") == T0 + timedelta(minutes=1)
    n_shop_requests, n_woo_requests = len(shop.requests), len(woo.requests)

    # between the syncs: two new Shopify orders and one edited (quantity); the
    # WooCommerce order 501 loses its line B (C moves up to position 2) and a
    # new order has a line without SKU
    for order in shop_orders(1006, 2, start=T0 + timedelta(hours=10)):
        shop.put_order(order)
    shop.put_order(
        shopify_order(
            1002,
            created_at=T0 + timedelta(hours=1),
            updated_at=T0 + timedelta(hours=12, minutes=5),
            lines=[shopify_line(10021, "SKU-a-1002", 1), shopify_line(10022, "B", 7)],
        )
    )
    woo.put_order(
        woo_order(
            501,
            created_at=T0,
            modified_at=T0 + timedelta(hours=1),
            lines=[woo_line(1, "A", 1), woo_line(3, "C", 3)],
        )
    )
    woo.put_order(
        woo_order(
            503,
            created_at=T0 + timedelta(hours=2),
            lines=[woo_line(5, "D", 1), woo_line(6, None, 1)],
        )
    )

    second = intraday_sync(channels=names, stock=False, channel_dir=env["channels"])

    # incremental: asked from the watermark, read only what changed
    shop_second = shop.requests[n_shop_requests:]
    asked = datetime.fromisoformat(shop_second[0].param("updated_at_min") or "")
    assert asked.astimezone(UTC).replace(tzinfo=None) == shop_wm
    assert woo.requests[n_woo_requests].param("modified_after") is not None
    s2, w2 = second["channels"]["shop_eu"], second["channels"]["woo_fr"]
    # 1006, 1007, the edited 1002, and 1005 again: updated_at_min is inclusive
    assert s2["orders"] == 4 and s2["lines"] == 8
    assert w2["orders"] == 2 and w2["removed_lines"] == 1 and w2["rejected"] == 1

    # the Shopify cache: 7 orders x 2 lines, each once, the edit applied
    lines = cached(store, "shop_eu")
    assert len(lines) == 14
    assert not lines.duplicated(["channel", "order_id", "line_no"]).any()
    assert set(lines["order_id"]) == {str(i) for i in range(1001, 1008)}
    qty = lines.set_index(["order_id", "line_no"])["qty"]
    assert qty[("1002", 2)] == 7 and qty[("1003", 2)] == 2
    assert set(lines["channel"]) == {"shop_eu"} and set(lines["location_id"]) == {"WH1"}
    assert store.watermark("shop_eu") == T0 + timedelta(hours=12, minutes=5)

    # the WooCommerce cache: order 501 replaced (line 3 cancelled), 503 added
    woo_lines = cached(store, "woo_fr")
    got = [(r.order_id, r.line_no, r.sku, r.qty, r.status) for r in woo_lines.itertuples()]
    assert got == [
        ("501", 1, "A", 1.0, "open"),
        ("501", 2, "C", 3.0, "open"),
        ("501", 3, "C", 3.0, "cancelled"),
        ("502", 1, "A", 5.0, "shipped"),
        ("503", 1, "D", 1.0, "open"),
    ]
    assert store.watermark("woo_fr") == T0 + timedelta(hours=2)

    # the line without SKU is in the quarantine of the sync's run
    run_id = w2["run_id"]
    quarantined = store.quarantine(run_id)
    assert len(quarantined) == 1
    row = quarantined.iloc[0]
    assert row["dataset"] == "woocommerce:woo_fr" and row["field"] == "sku"
    assert "order_id=503" in row["row_key"] and "SKU" in row["reason"]
    run = store.runs(5).set_index("run_id").loc[run_id]
    assert run["status"] == "synced" and run["counts"]["rejected"] == 1
    sources = store.sources().set_index("source")
    assert sources.loc["shop_eu", "rows"] == 14 and sources.loc["woo_fr", "rows"] == 5
    store.dispose()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_transient_fault_is_retried_a_refused_credential_is_not(
    env: dict[str, str],
    shops: tuple[ShopifyServer, WooCommerceServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, woo = shops
    for order in shop_orders(1001, 2):
        shop.put_order(order)
    woo.put_order(woo_order(501, created_at=T0, lines=[woo_line(1, "A", 1)]))
    # no retry inside the client: the 503 reaches the task, which retries
    shopify_file(env["channels"], "shop_eu", shop, max_retries=0)
    woo_file(env["channels"], "woo_fr", woo, consumer_secret_env="WOO_WRONG")
    monkeypatch.setenv("WOO_WRONG", "cs_wrong_secret")
    shop.inject(1, Fault.error(503))
    monkeypatch.setattr(
        flows.sync, "sync_channel_task", sync_channel_task.with_options(retry_delay_seconds=0)
    )

    state = intraday_sync(
        channels=["shop_eu", "woo_fr"], stock=False, channel_dir=env["channels"], return_state=True
    )

    assert state.is_failed()
    assert "woo_fr" in str(state.message) or "woo_fr" in str(state.result(raise_on_failure=False))
    # the 503 was retried by the task (two attempts), the shop synced
    assert [r.status for r in shop.requests] == [503, 200]
    store = Store(env["store"])
    assert len(cached(store, "shop_eu")) == 4
    # the refused credential was asked once: a retry cannot fix it
    assert [r.status for r in woo.requests] == [401]
    assert store.watermark("woo_fr") is None
    store.dispose()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_nightly_snapshot_includes_the_channel_and_the_stock_watch_sees_the_day(
    tmp_path: Path,
    env: dict[str, str],
    shops: tuple[ShopifyServer, WooCommerceServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, _ = shops
    today = date.today()
    demo = generate_demo(today, seed=4, n_skus=20, days=120)
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(demo, erp)
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    skus = demo.products["sku"].astype(str).tolist()[:3]
    yesterday = datetime.combine(today - timedelta(days=1), datetime.min.time())
    for i, sku in enumerate(skus):
        shop.put_order(
            shopify_order(
                7000 + i,
                created_at=yesterday + timedelta(hours=10 + i),
                lines=[shopify_line(70_000 + i, sku, 4 + i)],
            )
        )
    location = str(demo.stock_levels["location_id"].iloc[0])
    shopify_file(env["channels"], "shop_eu", shop, location_id=location)

    synced = intraday_sync(channels=["shop_eu"], stock=True, channel_dir=env["channels"])
    assert synced["channels"]["shop_eu"]["lines"] == 3
    assert synced["stock"]["plan_run_id"] is None  # no nightly run yet: nothing to compare

    summary = nightly_replenishment(dry_run=True, report_top_n=0)
    direct = GenericErp(erp).read_snapshot(today, history_days=730).sales_order_lines
    assert summary["rows_read"]["sales_order_lines"] == len(direct) + 3

    # during the day: one SKU sells out in the ERP
    store = Store(env["store"])
    plans = store.plans(summary["run_id"])
    available = plans["on_hand"].astype(float) - plans["allocated"].astype(float)
    target = plans[available > 0].iloc[0]
    engine = create_engine(erp)
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE stock_levels SET on_hand = 0, allocated = 0 "
                "WHERE sku = :sku AND location_id = :loc"
            ),
            {"sku": target["sku"], "loc": target["location_id"]},
        )
    engine.dispose()
    later = intraday_sync(channels=[], stock=True, channel_dir=env["channels"])
    assert later["stock"]["plan_run_id"] == summary["run_id"]
    assert later["stock"]["stocked_out"] >= 1

    async def latest_table() -> Any:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["intraday-stock"])),
                limit=1,
                sort="CREATED_DESC",
            )
            return found[0].data

    rows = asyncio.run(latest_table())
    rows = yaml.safe_load(rows) if isinstance(rows, str) else rows
    key = (target["sku"], target["location_id"])
    hit = [r for r in rows if (r["sku"], r["location_id"]) == key]
    assert hit and hit[0]["status"] == "stocked_out" and hit[0]["available_now"] == 0
    store.dispose()


# ======================================================================== CLI


def test_cli_sync_and_sources(
    tmp_path: Path,
    env: dict[str, str],
    shops: tuple[ShopifyServer, WooCommerceServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, _ = shops
    for order in shop_orders(1001, 3):
        shop.put_order(order)
    monkeypatch.chdir(tmp_path)
    shopify_file(tmp_path / "config" / "channels", "shop_eu", shop)
    runner = CliRunner()
    db = ["--db", env["store"]]

    first = runner.invoke(app, ["sync", "--channel", "shop_eu", *db])
    assert first.exit_code == 0, first.output
    assert "shopify channel 'shop_eu'" in first.output and "3 orders read: 6 lines" in first.output
    again = runner.invoke(app, ["sync", "--config", "config/channels/shop_eu.yaml", *db])
    assert again.exit_code == 0, again.output
    assert "changes since" in again.output and "cache 6 lines" in again.output

    listed = runner.invoke(app, ["sources", *db, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = yaml.safe_load(listed.output)
    assert [(r["source"], r["rows"]) for r in rows] == [("shop_eu", 6)]
    assert rows[0]["origin"] == f"shopify {shop.url}"

    full = runner.invoke(app, ["sync", "--channel", "shop_eu", "--full-refresh", *db])
    assert full.exit_code == 0 and "full refresh" in full.output and "cache 6 lines" in full.output


def test_cli_sync_errors_are_one_line(
    tmp_path: Path,
    env: dict[str, str],
    shops: tuple[ShopifyServer, WooCommerceServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from replenish.cli import main

    shop, _ = shops
    monkeypatch.chdir(tmp_path)
    shopify_file(tmp_path / "config" / "channels", "shop_eu", shop, token_env="OTHER_TOKEN")
    monkeypatch.setenv("OTHER_TOKEN", "shpat_wrong")

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr("sys.argv", ["replenish", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return int(exited.value.code or 0), err

    code, err = run("sync", "--channel", "nope", "--db", env["store"])
    assert code == 2
    assert "no file config/channels/nope.yaml (channels configured there: shop_eu)" in err
    code, err = run("sync", "--channel", "shop_eu", "--db", env["store"])
    assert code == 1 and "401" in err and "OTHER_TOKEN" in err and "shpat_wrong" not in err
    assert [r.status for r in shop.requests] == [401]
    code, err = run("sync", "--db", env["store"])
    assert code == 2 and "--channel NAME" in err
    store = Store(env["store"])
    assert store.watermark("shop_eu") is None and store.sources().empty
    store.dispose()


# ====================================================================== units


def test_removed_lines_cancels_only_lines_the_reread_orders_lost() -> None:
    from replenish.sources.channels.base import ChannelBatch, FetchCounts

    def frame(rows: list[tuple[str, int, str, str]], channel: str = "woo") -> pd.DataFrame:
        return model.coerce(
            "sales_order_lines",
            pd.DataFrame(
                [
                    {
                        "order_id": o,
                        "line_no": n,
                        "sku": s,
                        "location_id": "WH",
                        "channel": channel,
                        "qty": 1.0,
                        "ordered_at": T0,
                        "status": st,
                    }
                    for o, n, s, st in rows
                ]
            ),
        )

    cached_rows = frame(
        [
            ("1", 1, "A", "open"),
            ("1", 2, "B", "open"),
            ("1", 3, "C", "open"),
            ("2", 1, "A", "open"),
            ("3", 1, "X", "open"),
            ("3", 2, "Y", "cancelled"),
        ]
    )
    batch = ChannelBatch(
        channel="woo",
        kind="woocommerce",
        since=T0,
        lines=frame([("1", 1, "A", "open"), ("1", 2, "C", "open")]),
        returns=model.empty_frame("returns"),
        rejected=pd.DataFrame(),
        high_watermark=T0,
        counts=FetchCounts(),
        order_ids=("1", "3"),  # order 3's lines were all rejected this time
    )
    out = removed_lines(cached_rows, batch)
    assert list(zip(out["order_id"], out["line_no"], out["sku"], out["status"], strict=True)) == [
        ("1", 3, "C", "cancelled"),
        ("3", 1, "X", "cancelled"),
    ]
    assert list(out.columns) == list(model.CONTRACT["sales_order_lines"])
    assert quarantine_rows(batch).empty


def test_stock_watch_reports_thresholds_crossed_since_the_plan() -> None:
    plans = pd.DataFrame(
        {
            "sku": ["A", "B", "C", "D", "E"],
            "location_id": "WH",
            "on_hand": [10.0, 30.0, 60.0, 5.0, 0.0],
            "allocated": [0.0, 0.0, 0.0, 0.0, 0.0],
            "on_order": [0.0, 0.0, 0.0, 0.0, 0.0],
            "safety_stock": [5.0, 20.0, 20.0, 10.0, 5.0],
            "reorder_point": [8.0, 25.0, 50.0, 12.0, 8.0],
            "demand_mean": [24.0, 12.0, 0.0, 1.0, 1.0],
            "supplier_id": "S1",
        }
    )
    now = pd.DataFrame(
        {
            "sku": ["A", "B", "C", "D", "E", "Z"],
            "location_id": "WH",
            "on_hand": [0.0, 15.0, 45.0, 4.0, 0.0, 0.0],
            "allocated": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    watch = stock_watch(plans, now)
    assert list(watch.columns) == STOCK_WATCH_COLUMNS
    # A ran out; B fell below SS; C below ROP; D and E were below already; Z is unplanned
    assert list(zip(watch["sku"], watch["status"], strict=True)) == [
        ("A", "stocked_out"),
        ("B", "below_safety_stock"),
        ("C", "below_reorder_point"),
    ]
    b = watch.set_index("sku").loc["B"]
    assert b["sold_since_plan"] == 15 and b["hours_of_cover"] == pytest.approx(30.0)
    assert stock_watch(pd.DataFrame(), now).empty
