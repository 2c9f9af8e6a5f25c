"""Sales channels read over HTTP: Shopify (Admin REST API) and WooCommerce
(WC REST API v3), normalised onto the contract's ``sales_order_lines`` and
``returns`` (docs/channels.md).

    config = load_channel("config/channels/shopify.yaml")
    batch = fetch(config, since=store.watermark(config.name))
    store.ingest(config.name, batch.lines, batch.returns, batch.high_watermark)

:func:`fetch` reads every order updated since ``since`` (all of them when
None) and returns a :class:`ChannelBatch`; it raises
:class:`~replenish.errors.ConfigurationError` (a credential variable is not
set), :class:`ChannelRequestError` (permanent: a refused credential, a wrong
URL or API version), :class:`~replenish.errors.SourceUnavailable`
(transient: retries exhausted; try again later) or
:class:`~replenish.errors.ContractError` (the answer is not the documented
format). The marketplace / generic CSV export channel is
:mod:`replenish.sources.csv_export` (``replenish import-csv``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime

import httpx

from replenish.sources.channels.base import (
    REJECTED_COLUMNS,
    ChannelBatch,
    ChannelRequestError,
    FetchCounts,
    SalesChannel,
)
from replenish.sources.channels.config import (
    SALES_STATUSES,
    ChannelConfig,
    ShopifyConfig,
    WooCommerceConfig,
    load_channel,
)
from replenish.sources.channels.shopify import ShopifyChannel
from replenish.sources.channels.woocommerce import WooCommerceChannel

__all__ = [
    "REJECTED_COLUMNS",
    "SALES_STATUSES",
    "ChannelBatch",
    "ChannelConfig",
    "ChannelRequestError",
    "FetchCounts",
    "SalesChannel",
    "ShopifyChannel",
    "ShopifyConfig",
    "WooCommerceChannel",
    "WooCommerceConfig",
    "fetch",
    "load_channel",
    "open_channel",
]


def open_channel(
    config: ShopifyConfig | WooCommerceConfig,
    *,
    client: httpx.Client | None = None,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ShopifyChannel | WooCommerceChannel:
    """The client of the channel described by ``config``."""
    if isinstance(config, ShopifyConfig):
        return ShopifyChannel(config, client=client, env=env, sleep=sleep)
    return WooCommerceChannel(config, client=client, env=env, sleep=sleep)


def fetch(
    config: ShopifyConfig | WooCommerceConfig,
    since: datetime | None,
    *,
    client: httpx.Client | None = None,
    env: Mapping[str, str] | None = None,
) -> ChannelBatch:
    """Read the orders of the channel updated since ``since`` (naive = UTC;
    None: every order) as a :class:`ChannelBatch`.

    ``client``: an ``httpx.Client`` to use (not closed here; timeouts are set
    per request from the configuration); by default one is opened and closed.
    ``env``: where the credentials' environment variables are read
    (``os.environ`` by default).
    """
    return open_channel(config, client=client, env=env).fetch(since)
