"""Shopify and WooCommerce channel clients against local servers speaking the
documented wire format (tests/channel_servers.py): pagination, increments,
rate limits, transient faults, permanent refusals, refunds, cancellations,
rejected lines and de-duplication."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from replenish import model
from replenish.errors import ConfigurationError, SourceUnavailable
from replenish.sources.channels import (
    REJECTED_COLUMNS,
    ChannelBatch,
    ChannelRequestError,
    ShopifyConfig,
    WooCommerceConfig,
    fetch,
    load_channel,
)
from replenish.sources.channels.base import BatchBuilder, FetchCounts, OrderRecord
from replenish.sources.channels.woocommerce import parse_order as parse_woo_order
from tests.channel_servers import (
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    Fault,
    ShopifyServer,
    WooCommerceServer,
    shopify_line,
    shopify_order,
    shopify_refund,
    woo_line,
    woo_order,
    woo_refund,
)

REPO = Path(__file__).parents[2]
T0 = datetime(2024, 3, 1, 9, 0, 0)  # naive UTC
SHOPIFY_ENV = {"SHOPIFY_ACCESS_TOKEN": SHOPIFY_TOKEN}
WOO_ENV = {"WOOCOMMERCE_CONSUMER_KEY": WOO_KEY, "WOOCOMMERCE_CONSUMER_SECRET": WOO_SECRET}
FAST = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "timeout_seconds": 2.0}


def shopify_config(server: ShopifyServer, **overrides: Any) -> ShopifyConfig:
    settings: dict[str, Any] = {
        "name": "shop_eu",
        "base_url": server.url,
        "api_version": server.api_version,
        "location_id": "WH1",
        "page_size": 3,
        "overlap_seconds": 0,
        **FAST,
    }
    settings.update(overrides)
    return ShopifyConfig(**settings)


def woo_config(server: WooCommerceServer, **overrides: Any) -> WooCommerceConfig:
    settings: dict[str, Any] = {
        "name": "woo_shop",
        "base_url": server.url,
        "location_id": "WH2",
        "page_size": 4,
        "overlap_seconds": 0,
        **FAST,
    }
    settings.update(overrides)
    return WooCommerceConfig(**settings)


def simple_shopify_orders(n: int) -> list[dict[str, Any]]:
    """Order i (1..n): one line SKU-i, qty i, created T0 + i h, updated T0 + i h + 5 min."""
    return [
        shopify_order(
            1000 + i,
            created_at=T0 + timedelta(hours=i),
            updated_at=T0 + timedelta(hours=i, minutes=5),
            lines=[shopify_line(5000 + i, f"SKU-{i}", i)],
        )
        for i in range(1, n + 1)
    ]


def simple_woo_orders(n: int) -> list[dict[str, Any]]:
    return [
        woo_order(
            200 + i,
            created_at=T0 + timedelta(hours=i),
            modified_at=T0 + timedelta(hours=i, minutes=5),
            status="completed",
            lines=[woo_line(700 + i, f"SKU-{i}", i)],
        )
        for i in range(1, n + 1)
    ]


def assert_contract(batch: ChannelBatch) -> None:
    assert list(batch.lines.columns) == list(model.CONTRACT["sales_order_lines"])
    assert batch.lines.dtypes.astype(str).to_dict() == model.CONTRACT["sales_order_lines"]
    assert list(batch.returns.columns) == list(model.CONTRACT["returns"])
    assert batch.returns.dtypes.astype(str).to_dict() == model.CONTRACT["returns"]
    assert list(batch.rejected.columns) == REJECTED_COLUMNS
    assert not batch.lines.duplicated(["channel", "order_id", "line_no"]).any()
    assert not batch.returns.duplicated(["order_id", "sku", "returned_at"]).any()
    assert batch.lines.notna().all().all()


def line(batch: ChannelBatch, order_id: str, line_no: int = 1) -> pd.Series:
    rows = batch.lines[(batch.lines["order_id"] == order_id) & (batch.lines["line_no"] == line_no)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ====================================================================== config


def test_the_example_configurations_load() -> None:
    shop = load_channel(REPO / "config/channels/shopify.example.yaml")
    woo = load_channel(REPO / "config/channels/woocommerce.example.yaml")
    assert isinstance(shop, ShopifyConfig) and shop.kind == "shopify"
    assert shop.base_url.startswith("https://") and shop.token_env == "SHOPIFY_ACCESS_TOKEN"
    assert isinstance(woo, WooCommerceConfig) and woo.kind == "woocommerce"
    assert woo.consumer_key_env == "WOOCOMMERCE_CONSUMER_KEY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: s\nkind: shopify\nbase_url: https://s.myshopify.com\napi_version: '2024-13'\n",
         "api_version"),
        ("name: s\nkind: magento\nbase_url: https://s.example.com\n", "kind"),
        ("name: s\nkind: woocommerce\nbase_url: http://shop.example.com\n",
         "base_url: must use https"),
        ("name: s\nkind: woocommerce\nbase_url: https://u:p@shop.example.com\n", "credentials"),
        ("name: this-name-is-far-too-long-for-a-channel\nkind: woocommerce\n"
         "base_url: https://shop.example.com\n", "name"),
        ("name: s\nkind: woocommerce\nbase_url: https://x.example.com\npage_size: 500\n",
         "page_size"),
    ],
)  # fmt: skip
def test_a_bad_configuration_names_the_file_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "channel.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_channel(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_credential_pasted_into_the_file_is_refused_without_being_echoed(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(
        "name: s\nkind: shopify\nbase_url: https://s.myshopify.com\napi_version: '2024-10'\n"
        f"token_env: {SHOPIFY_TOKEN}\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_channel(path)
    assert "token_env" in str(caught.value) and "NAME of an environment variable" in str(
        caught.value
    )
    assert SHOPIFY_TOKEN not in str(caught.value)


def test_an_unset_credential_variable_is_named() -> None:
    with ShopifyServer() as server:
        config = shopify_config(server, token_env="MY_SHOP_TOKEN")
        with pytest.raises(ConfigurationError, match="MY_SHOP_TOKEN is not set"):
            fetch(config, None, env={})
        assert server.requests == []


# ===================================================================== Shopify


def test_shopify_pages_through_the_link_header_and_reads_every_order_once() -> None:
    with ShopifyServer(simple_shopify_orders(8)) as server:
        batch = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
        requests = server.requests
    assert_contract(batch)
    assert sorted(batch.lines["order_id"]) == sorted(str(1000 + i) for i in range(1, 9))
    assert batch.counts.pages == 3 and batch.counts.requests == 3 and batch.counts.retries == 0
    assert batch.counts.orders == 8 and batch.counts.lines == 8
    first, *rest = requests
    assert first.query == {"status": ["any"], "limit": ["3"], "order": ["updated_at asc"]}
    # Shopify's rule: a page_info request carries no other filter (the server answers 400)
    assert all(set(r.query) == {"limit", "page_info"} for r in rest)
    assert [r.status for r in requests] == [200, 200, 200]
    assert all(r.headers["x-shopify-access-token"] == SHOPIFY_TOKEN for r in requests)
    # created_at is sent in the shop's zone (-05:00) and stored as naive UTC
    row = line(batch, "1003")
    assert row["ordered_at"] == T0 + timedelta(hours=3)
    assert (row["sku"], row["qty"], row["location_id"], row["channel"]) == (
        "SKU-3",
        3.0,
        "WH1",
        "shop_eu",
    )
    assert batch.high_watermark == T0 + timedelta(hours=8, minutes=5)


def test_shopify_increments_from_the_watermark() -> None:
    with ShopifyServer(simple_shopify_orders(6)) as server:
        first = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
        since = T0 + timedelta(hours=4, minutes=5)  # order 1004's updated_at (inclusive)
        second = fetch(shopify_config(server), since, env=SHOPIFY_ENV)
        nothing = fetch(
            shopify_config(server), first.high_watermark + timedelta(seconds=1), env=SHOPIFY_ENV
        )
        increment_request = server.requests[len(server.requests) - 2]
    assert sorted(second.lines["order_id"]) == ["1004", "1005", "1006"]
    assert increment_request.param("updated_at_min") == "2024-03-01T13:05:00+00:00"
    assert nothing.lines.empty and nothing.high_watermark is None
    # an aware since is converted to UTC; the overlap reaches back further
    with ShopifyServer(simple_shopify_orders(6)) as server:
        aware = datetime(2024, 3, 1, 15, 5, tzinfo=UTC).astimezone()
        overlapped = fetch(shopify_config(server, overlap_seconds=3600), aware, env=SHOPIFY_ENV)
    assert sorted(overlapped.lines["order_id"]) == ["1005", "1006"]


def test_shopify_429_waits_the_retry_after() -> None:
    with ShopifyServer(simple_shopify_orders(5)) as server:
        server.inject(2, Fault.rate_limited(retry_after=0.2))
        batch = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
        requests = server.requests
    assert [r.status for r in requests] == [200, 429, 200]
    assert requests[2].at - requests[1].at >= 0.2
    assert batch.counts.retries == 1 and batch.counts.waited_seconds >= 0.2
    assert sorted(batch.lines["order_id"]) == [str(1000 + i) for i in range(1, 6)]


def test_shopify_paces_itself_from_the_call_limit_header() -> None:
    orders = simple_shopify_orders(12)
    # a bucket of 4 calls draining 10 per second: 12 pages would overflow it
    with ShopifyServer(orders, bucket_size=4, leak_rate=10) as server:
        paced = fetch(
            shopify_config(server, page_size=1, call_limit_headroom=2, call_limit_leak_rate=10),
            None,
            env=SHOPIFY_ENV,
        )
        paced_statuses = [r.status for r in server.requests]
    assert 429 not in paced_statuses and paced.counts.throttle_waits > 0
    assert paced.counts.orders == 12
    with ShopifyServer(orders, bucket_size=4, leak_rate=10) as server:
        unpaced = fetch(
            shopify_config(server, page_size=1, call_limit_headroom=0), None, env=SHOPIFY_ENV
        )
        unpaced_statuses = [r.status for r in server.requests]
    # without pacing the bucket overflows: real 429s, honoured, nothing lost
    assert 429 in unpaced_statuses and unpaced.counts.retries == unpaced_statuses.count(429)
    assert unpaced.counts.throttle_waits == 0 and unpaced.counts.orders == 12


def test_shopify_retries_5xx_dropped_connections_and_timeouts() -> None:
    with ShopifyServer(simple_shopify_orders(4)) as server:
        server.inject(1, Fault.error(503))
        server.inject(2, Fault.drop())
        server.inject(4, Fault.slow(1.0))
        batch = fetch(shopify_config(server, timeout_seconds=0.25), None, env=SHOPIFY_ENV)
        statuses = [r.status for r in server.requests]
    assert statuses[:2] == [503, None]
    assert batch.counts.retries == 3 and batch.counts.requests == 5
    assert sorted(batch.lines["order_id"]) == ["1001", "1002", "1003", "1004"]


def test_shopify_gives_up_after_max_retries() -> None:
    with ShopifyServer(simple_shopify_orders(2)) as server:
        for n in range(1, 10):
            server.inject(n, Fault.error(500))
        with pytest.raises(SourceUnavailable) as caught:
            fetch(shopify_config(server, max_retries=2), None, env=SHOPIFY_ENV)
        assert len(server.requests) == 3
    message = str(caught.value)
    assert "after 3 attempt(s)" in message and "HTTP 500" in message and "shop_eu" in message


def test_shopify_401_is_permanent_and_names_the_variable_not_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "shpat_ffffffffffffffffffffffffffffffff"
    caplog.set_level(logging.DEBUG)
    with ShopifyServer(simple_shopify_orders(2)) as server:
        with pytest.raises(ChannelRequestError) as caught:
            fetch(shopify_config(server), None, env={"SHOPIFY_ACCESS_TOKEN": wrong})
        assert len(server.requests) == 1  # not retried
    error = caught.value
    assert error.status == 401
    assert "SHOPIFY_ACCESS_TOKEN" in str(error) and "refused" in str(error)
    assert wrong not in str(error) and wrong not in caplog.text


def test_shopify_404_points_at_the_url_and_the_api_version() -> None:
    with (
        ShopifyServer(simple_shopify_orders(1), api_version="2024-10") as server,
        pytest.raises(ChannelRequestError) as caught,
    ):
        fetch(shopify_config(server, api_version="2023-01"), None, env=SHOPIFY_ENV)
    assert caught.value.status == 404
    assert "api_version (2023-01" in str(caught.value) and "base_url" in str(caught.value)


def test_shopify_statuses_refunds_and_locations() -> None:
    orders = [
        # fulfilled from Shopify location 11 (mapped to WH-NORTH); one unit returned
        # to stock, one refunded without restock
        shopify_order(
            1,
            created_at=T0,
            updated_at=T0 + timedelta(days=3),
            fulfillment_status="fulfilled",
            lines=[shopify_line(11, "A", 3, fulfillment_status="fulfilled")],
            fulfillments=[
                {"id": 9, "status": "success", "location_id": 11, "line_items": [{"id": 11}]}
            ],
            refunds=[
                shopify_refund(
                    91,
                    created_at=T0 + timedelta(days=3),
                    lines=[
                        {
                            "line_item_id": 11,
                            "quantity": 1,
                            "restock_type": "return",
                            "location_id": 12,
                        },
                        {"line_item_id": 11, "quantity": 1, "restock_type": "no_restock"},
                    ],
                ),
            ],
        ),
        # cancelled order: every line cancelled, kept
        shopify_order(
            2,
            created_at=T0,
            cancelled_at=T0 + timedelta(hours=2),
            updated_at=T0 + timedelta(hours=2),
            financial_status="refunded",
            lines=[shopify_line(21, "A", 1), shopify_line(22, "B", 2)],
        ),
        # unfulfilled: open; one of 5 B removed before fulfilment; C removed entirely
        shopify_order(
            3,
            created_at=T0,
            updated_at=T0 + timedelta(hours=1),
            financial_status="partially_refunded",
            lines=[shopify_line(31, "B", 5), shopify_line(32, "C", 1)],
            refunds=[
                shopify_refund(
                    93,
                    created_at=T0 + timedelta(hours=1),
                    lines=[
                        {"line_item_id": 31, "quantity": 1, "restock_type": "cancel"},
                        {"line_item_id": 32, "quantity": 1, "restock_type": "cancel"},
                    ],
                )
            ],
        ),
        # partially fulfilled: the fulfilled line is shipped, the other open
        shopify_order(
            4,
            created_at=T0,
            fulfillment_status="partial",
            lines=[
                shopify_line(41, "A", 1, fulfillment_status="fulfilled"),
                shopify_line(42, "B", 1),
            ],
        ),
        # voided payment: cancelled
        shopify_order(
            5, created_at=T0, financial_status="voided", lines=[shopify_line(51, "A", 1)]
        ),
        # an API version without current_quantity: the cancel refund is subtracted
        shopify_order(
            6,
            created_at=T0,
            lines=[{k: v for k, v in shopify_line(61, "B", 5).items() if k != "current_quantity"}],
            refunds=[
                shopify_refund(
                    96,
                    created_at=T0 + timedelta(hours=1),
                    lines=[{"line_item_id": 61, "quantity": 2, "restock_type": "cancel"}],
                )
            ],
        ),
        # an order edit removed 2 of 3 units (no refund): current_quantity says so
        shopify_order(8, created_at=T0, lines=[dict(shopify_line(81, "C", 3), current_quantity=1)]),
    ]
    with ShopifyServer(orders) as server:
        config = shopify_config(server, locations={"11": "WH-NORTH", "12": "WH-SOUTH"})
        batch = fetch(config, None, env=SHOPIFY_ENV)
    assert_contract(batch)
    shipped = line(batch, "1")
    assert (shipped["status"], shipped["qty"], shipped["location_id"]) == (
        "shipped",
        3.0,
        "WH-NORTH",
    )
    assert set(batch.lines.loc[batch.lines["order_id"] == "2", "status"]) == {"cancelled"}
    assert batch.lines.loc[batch.lines["order_id"] == "2", "qty"].tolist() == [1.0, 2.0]
    assert (line(batch, "3", 1)["status"], line(batch, "3", 1)["qty"]) == ("open", 4.0)
    assert (line(batch, "3", 2)["status"], line(batch, "3", 2)["qty"]) == ("cancelled", 1.0)
    assert line(batch, "4", 1)["status"] == "shipped" and line(batch, "4", 2)["status"] == "open"
    assert line(batch, "5")["status"] == "cancelled"
    assert (line(batch, "6")["status"], line(batch, "6")["qty"]) == ("open", 3.0)
    assert (line(batch, "8")["status"], line(batch, "8")["qty"]) == ("open", 1.0)
    assert sorted(batch.order_ids) == ["1", "2", "3", "4", "5", "6", "8"]
    # returns: restock 'return' is restockable at its restock location; 'no_restock' is
    # not; 'cancel' removals are no returns (never shipped). Same SKU, same refund,
    # different restockability: one row per contract key, the other kept in rejected.
    returns = batch.returns
    assert len(returns) == 1
    ret = returns.iloc[0]
    assert (ret["order_id"], ret["sku"], ret["qty"], bool(ret["restockable"])) == (
        "1",
        "A",
        1.0,
        True,
    )
    assert ret["location_id"] == "WH-SOUTH" and ret["returned_at"] == T0 + timedelta(days=3)
    clash = batch.rejected[batch.rejected["field"] == "returned_at"]
    assert len(clash) == 1 and "restockable=False" in clash.iloc[0]["reason"]


def test_shopify_no_restock_refund_is_a_non_restockable_return() -> None:
    order = shopify_order(
        7,
        created_at=T0,
        fulfillment_status="fulfilled",
        lines=[shopify_line(71, "A", 2, fulfillment_status="fulfilled"), shopify_line(72, "B", 1)],
        refunds=[
            shopify_refund(97, created_at=T0 + timedelta(days=1), lines=[
                {"line_item_id": 71, "quantity": 2, "restock_type": "no_restock"}]),
            shopify_refund(98, created_at=T0 + timedelta(days=2), lines=[
                {"line_item_id": 72, "quantity": 1, "restock_type": "return"}]),
        ],
    )  # fmt: skip
    with ShopifyServer([order]) as server:
        batch = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
    returns = batch.returns.set_index("sku")
    assert returns.loc["A", "qty"] == 2.0 and not returns.loc["A", "restockable"]
    assert returns.loc["B", "qty"] == 1.0 and returns.loc["B", "restockable"]
    assert returns.loc["A", "location_id"] == "WH1"  # no mapping: the channel's location
    assert batch.rejected.empty


def test_shopify_bad_lines_are_rejected_with_their_reason_and_the_rest_flows() -> None:
    orders = [
        shopify_order(
            1,
            created_at=T0,
            lines=[
                shopify_line(11, "A", 2),
                shopify_line(12, None, 1, title="Tip"),
                shopify_line(13, "  ", 1),
                shopify_line(14, "B", "two"),
                shopify_line(15, "C", 0),
            ],
        ),
        shopify_order(2, created_at="yesterday", updated_at=T0, lines=[shopify_line(21, "A", 1)]),
    ]
    with ShopifyServer(orders) as server:
        batch = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
    assert batch.lines[["order_id", "line_no", "sku"]].values.tolist() == [["1", 1, "A"]]
    rejected = batch.rejected.set_index("item_id")
    assert rejected.loc["12", "field"] == "sku" and "no SKU" in rejected.loc["12", "reason"]
    assert rejected.loc["13", "field"] == "sku"
    assert rejected.loc["14", "field"] == "quantity" and rejected.loc["14", "value"] == "two"
    assert "not a number" in rejected.loc["14", "reason"]
    assert rejected.loc["15", "field"] == "quantity" and "positive" in rejected.loc["15", "reason"]
    assert (
        rejected.loc["21", "field"] == "created_at" and rejected.loc["21", "value"] == "yesterday"
    )
    assert set(batch.rejected["channel"]) == {"shop_eu"}
    assert batch.counts.rejected == 5


def test_shopify_an_order_updated_during_the_sync_is_kept_once_at_its_latest() -> None:
    orders = simple_shopify_orders(6)
    with ShopifyServer(orders) as server:
        # after page 1 (orders 1001-1003), order 1002 is fulfilled: its new updated_at
        # puts it after 1006, so the cursor meets it again on the last page
        server.after(
            1,
            lambda: server.update_order(
                1002,
                updated_at="2024-03-02T10:00:00+00:00",
                fulfillment_status="fulfilled",
            ),
        )
        batch = fetch(shopify_config(server), None, env=SHOPIFY_ENV)
    assert_contract(batch)
    assert batch.counts.duplicates == 1 and batch.counts.orders == 6
    assert sorted(batch.lines["order_id"]) == [str(1000 + i) for i in range(1, 7)]
    assert line(batch, "1002")["status"] == "shipped"
    assert batch.high_watermark == datetime(2024, 3, 2, 10, 0)


def test_shopify_does_not_send_the_token_to_another_host() -> None:
    with ShopifyServer(simple_shopify_orders(4)) as server, ShopifyServer() as other:
        original = server.handle

        def foreign_link(request: Any) -> Any:
            reply = original(request)
            if "Link" in reply.headers:
                reply.headers["Link"] = reply.headers["Link"].replace(server.url, other.url)
            return reply

        server.handle = foreign_link  # type: ignore[method-assign]
        with pytest.raises(Exception, match="next-page link points to"):
            fetch(shopify_config(server), None, env=SHOPIFY_ENV)
        assert other.requests == []


def test_a_shared_client_is_used_and_left_open() -> None:
    with ShopifyServer(simple_shopify_orders(2)) as server, httpx.Client() as client:
        batch = fetch(shopify_config(server), None, client=client, env=SHOPIFY_ENV)
        assert not client.is_closed
    assert batch.counts.orders == 2


# ================================================================= WooCommerce


def test_woocommerce_pages_with_x_wp_totalpages_and_reads_every_order_once() -> None:
    with WooCommerceServer(simple_woo_orders(10)) as server:
        batch = fetch(woo_config(server), None, env=WOO_ENV)
        requests = server.requests
    assert_contract(batch)
    assert sorted(batch.lines["order_id"], key=int) == [str(200 + i) for i in range(1, 11)]
    assert batch.counts.pages == 3 and batch.counts.requests == 3
    assert [r.param("page") for r in requests] == ["1", "2", "3"]
    assert all(
        (r.param("per_page"), r.param("orderby"), r.param("order"), r.param("dates_are_gmt"))
        == ("4", "modified", "desc", "true")
        for r in requests
    )
    assert all(r.headers["authorization"].startswith("Basic ") for r in requests)
    row = line(batch, "203")
    assert (row["sku"], row["qty"], row["status"], row["location_id"]) == (
        "SKU-3",
        3.0,
        "shipped",
        "WH2",
    )
    assert row["ordered_at"] == T0 + timedelta(hours=3)  # date_created_gmt, not site time
    assert batch.high_watermark == T0 + timedelta(hours=10, minutes=5)


def test_woocommerce_increments_with_modified_after() -> None:
    with WooCommerceServer(simple_woo_orders(6)) as server:
        since = T0 + timedelta(hours=4, minutes=5)  # order 204's modification (exclusive)
        batch = fetch(woo_config(server), since, env=WOO_ENV)
        request = server.requests[0]
    assert request.param("modified_after") == "2024-03-01T13:05:00"
    assert sorted(batch.lines["order_id"]) == ["205", "206"]


def test_woocommerce_statuses_and_custom_status_map() -> None:
    statuses = ["pending", "processing", "on-hold", "completed", "refunded", "cancelled",
                "failed", "trash", "shipped-partly"]  # fmt: skip
    orders = [
        woo_order(300 + n, created_at=T0, status=s, lines=[woo_line(800 + n, "A", 1)])
        for n, s in enumerate(statuses)
    ]
    with WooCommerceServer(orders) as server:
        batch = fetch(woo_config(server, page_size=100), None, env=WOO_ENV)
        mapped = fetch(
            woo_config(server, page_size=100, status_map={"shipped-partly": "shipped"}),
            None,
            env=WOO_ENV,
        )
    got = dict(zip(batch.lines["order_id"], batch.lines["status"], strict=True))
    assert got == {
        "300": "open",
        "301": "open",
        "302": "open",
        "303": "shipped",
        "304": "shipped",
        "305": "cancelled",
        "306": "cancelled",
    }  # fmt: skip  (trash is not listed by the API)
    unknown = batch.rejected[batch.rejected["order_id"] == "308"].iloc[0]
    assert unknown["field"] == "status" and unknown["value"] == "shipped-partly"
    assert "status_map" in unknown["reason"]
    assert line(mapped, "308")["status"] == "shipped" and mapped.rejected.empty


def test_woocommerce_refunds_become_returns() -> None:
    orders = [
        woo_order(
            401,
            created_at=T0,
            modified_at=T0 + timedelta(days=2),
            status="refunded",
            lines=[woo_line(901, "A", 2), woo_line(902, "B", 1)],
            refunds=[
                woo_refund(61, created_at=T0 + timedelta(days=1), lines=[
                    {"line_item_id": 901, "quantity": 1, "sku": "A"}]),
                # no SKU on the refund line: found through _refunded_item_id
                woo_refund(62, created_at=T0 + timedelta(days=2), lines=[
                    {"line_item_id": 901, "quantity": 1}, {"line_item_id": 902, "quantity": 1}]),
            ],
        ),
        woo_order(402, created_at=T0, status="completed", lines=[woo_line(903, "C", 1)]),
    ]  # fmt: skip
    with WooCommerceServer(orders) as server:
        batch = fetch(woo_config(server), None, env=WOO_ENV)
        refund_requests = [r for r in server.requests if r.path.endswith("/refunds")]
        not_restocked = fetch(woo_config(server, refunds_restock=False), None, env=WOO_ENV)
    assert_contract(batch)
    assert [r.path for r in refund_requests] == ["/wp-json/wc/v3/orders/401/refunds"]
    returns = batch.returns.sort_values(["returned_at", "sku"])
    assert returns[["order_id", "sku", "qty"]].values.tolist() == [
        ["401", "A", 1.0],
        ["401", "A", 1.0],
        ["401", "B", 1.0],
    ]
    assert (
        returns["returned_at"].tolist() == [T0 + timedelta(days=1)] + [T0 + timedelta(days=2)] * 2
    )
    assert returns["restockable"].all() and set(returns["location_id"]) == {"WH2"}
    assert not not_restocked.returns["restockable"].any()
    assert line(batch, "401", 1)["status"] == "shipped" and line(batch, "401", 1)["qty"] == 2.0


def test_woocommerce_missing_sku_is_rejected_or_replaced_by_the_product_id() -> None:
    orders = [
        woo_order(
            501,
            created_at=T0,
            lines=[woo_line(1, "A", 1), woo_line(2, "", 1, product_id=77), woo_line(3, "D", "x")],
        )
    ]
    with WooCommerceServer(orders) as server:
        strict = fetch(woo_config(server), None, env=WOO_ENV)
        lenient = fetch(woo_config(server, missing_sku="product_id"), None, env=WOO_ENV)
    assert strict.lines["sku"].tolist() == ["A"]
    reasons = strict.rejected.set_index("item_id")
    assert reasons.loc["2", "field"] == "sku" and "no SKU" in reasons.loc["2", "reason"]
    assert reasons.loc["3", "field"] == "quantity"
    assert lenient.lines["sku"].tolist() == ["A", "wc-77"]


def test_woocommerce_retries_429_and_5xx_and_then_gives_up() -> None:
    with WooCommerceServer(simple_woo_orders(6)) as server:
        server.inject(1, Fault.rate_limited(0.05))
        server.inject(3, Fault.error(502))
        server.inject(4, Fault.drop())
        batch = fetch(woo_config(server), None, env=WOO_ENV)
        statuses = [r.status for r in server.requests]
    assert statuses == [429, 200, 502, None, 200]
    assert batch.counts.retries == 3 and batch.counts.orders == 6
    with WooCommerceServer(simple_woo_orders(2)) as server:
        for n in range(1, 5):
            server.inject(n, Fault.slow(0.6))
        with pytest.raises(SourceUnavailable, match=r"timed out after 0\.2 s"):
            fetch(woo_config(server, timeout_seconds=0.2, max_retries=1), None, env=WOO_ENV)


def test_woocommerce_401_names_both_variables_and_no_secret() -> None:
    env = {"WOOCOMMERCE_CONSUMER_KEY": WOO_KEY, "WOOCOMMERCE_CONSUMER_SECRET": "cs_wrong_secret"}
    with WooCommerceServer(simple_woo_orders(1)) as server:
        with pytest.raises(ChannelRequestError) as caught:
            fetch(woo_config(server), None, env=env)
        assert len(server.requests) == 1
    message = str(caught.value)
    assert caught.value.status == 401 and "woocommerce_rest_cannot_view" in message
    assert "WOOCOMMERCE_CONSUMER_KEY" in message and "WOOCOMMERCE_CONSUMER_SECRET" in message
    assert WOO_KEY not in message and "cs_wrong_secret" not in message


def test_woocommerce_wrong_site_url_is_a_clear_404() -> None:
    with WooCommerceServer() as server:
        config = woo_config(server, base_url=server.url + "/shop")
        with pytest.raises(ChannelRequestError, match=r"rest_no_route.*check base_url"):
            fetch(config, None, env=WOO_ENV)


def test_woocommerce_an_order_modified_during_the_sync_is_never_lost() -> None:
    orders = simple_woo_orders(10)
    with WooCommerceServer(orders) as server:
        changed = woo_order(
            205,
            created_at=T0 + timedelta(hours=5),
            modified_at=T0 + timedelta(days=1),
            status="cancelled",
            lines=[woo_line(705, "SKU-5", 5)],
        )
        # after page 1 (newest first: 210..207), order 205 is cancelled: it jumps to
        # the front and the unread pages shift towards us
        server.after(1, lambda: server.put_order(changed))
        first = fetch(woo_config(server), None, env=WOO_ENV)
        second = fetch(woo_config(server), first.high_watermark, env=WOO_ENV)
    assert_contract(first)
    # order 207 is met twice: the last of page 1, then shifted onto page 2
    assert first.counts.duplicates == 1
    seen = set(first.lines["order_id"]) | set(second.lines["order_id"])
    assert seen == {str(200 + i) for i in range(1, 11)}
    assert second.lines["order_id"].tolist() == ["205"]
    assert line(second, "205")["status"] == "cancelled"


def test_dedup_keeps_the_latest_version_whatever_the_reading_order() -> None:
    def version(hours: int, status: str) -> dict[str, Any]:
        return woo_order(
            601,
            created_at=T0,
            modified_at=T0 + timedelta(hours=hours),
            status=status,
            lines=[woo_line(1, "A", 1)],
        )

    newer, older = version(2, "completed"), version(1, "processing")
    config = WooCommerceConfig(name="w", base_url="https://shop.example.com")
    builder = BatchBuilder("w")
    for raw in (newer, older):  # the older version read last must not win
        record = parse_woo_order(raw, config)
        assert isinstance(record, OrderRecord)
        builder.add(record)
    batch = builder.build(kind="woocommerce", since=None, counts=FetchCounts())
    assert batch.lines["status"].tolist() == ["shipped"] and batch.counts.duplicates == 1


def test_the_shopify_server_enforces_the_page_info_rule() -> None:
    """The double is as strict as Shopify: a client resending its filters with
    page_info would fail the pagination tests above."""
    with ShopifyServer(simple_shopify_orders(4)) as server:
        headers = {"X-Shopify-Access-Token": SHOPIFY_TOKEN}
        url = f"{server.url}/admin/api/{server.api_version}/orders.json"
        first = httpx.get(url, params={"status": "any", "limit": 2}, headers=headers)
        next_url = first.links["next"]["url"]
        mixed = httpx.get(next_url + "&status=any", headers=headers)
        plain = httpx.get(next_url, headers=headers)
    assert mixed.status_code == 400 and "page_info" in mixed.json()["errors"]
    assert plain.status_code == 200 and len(plain.json()["orders"]) == 2
