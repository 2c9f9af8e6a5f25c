"""Shopify: orders through the Admin REST API.

Wire format (Shopify, "REST Admin API: Order", "Make paginated requests to
the REST Admin API", "Shopify API rate limits"):

* ``GET {base_url}/admin/api/{api_version}/orders.json?status=any&limit=250
  &order=updated_at asc[&updated_at_min=ISO]`` with the header
  ``X-Shopify-Access-Token``. ``updated_at_min`` is inclusive.
* Pagination by cursor only: the next page is the URL in the ``Link`` header
  with ``rel="next"`` (``...?limit=250&page_info=...``), requested exactly as
  given — a request with ``page_info`` may carry no other filter (Shopify
  answers 400). The cursor is keyed on the sort order, so an order updated
  while we page is met again further on: the later version wins
  (:class:`~replenish.sources.channels.base.BatchBuilder`).
* Rate limits: a leaky bucket per app and store. Every response carries
  ``X-Shopify-Shop-Api-Call-Limit: used/size``; when fewer than
  ``call_limit_headroom`` calls are left we pause
  ``(headroom − left) / call_limit_leak_rate`` seconds before the next call.
  A ``429`` carries ``Retry-After`` (seconds, a float) and is honoured.
* Only the last 60 days of orders are visible without the ``read_all_orders``
  scope.

Mapping onto the contract (one ``sales_order_lines`` row per line item):

* ``order_id`` = the order's ``id`` as text (not its ``name`` "#1001");
  ``line_no`` = position of the line item in ``line_items`` (1-based; Shopify
  never reorders them); ``sku`` = ``line_items[].sku``; ``ordered_at`` =
  ``created_at`` in naive UTC;
* ``qty`` = ``current_quantity`` (the quantity minus the units removed
  before fulfilment, by a refund with ``restock_type`` ``cancel`` or an order
  edit: never shipped, not demand); on API versions without it, ``quantity``
  minus the units refunded with ``restock_type`` ``cancel``;
* ``status``: ``cancelled`` when the order has ``cancelled_at``, its payment
  was ``voided``, its ``fulfillment_status`` is ``restocked`` or every unit of
  the line was cancelled; else ``shipped`` when the line (or the whole order)
  is ``fulfilled``; else ``open`` (unfulfilled or partially fulfilled);
* ``location_id``: the location of the fulfilment that shipped the line, else
  the order's ``location_id`` (POS), mapped through ``locations``; else the
  channel's ``location_id``;
* ``returns``: every ``refunds[].refund_line_items[]`` whose ``restock_type``
  is not ``cancel``: ``qty`` = ``quantity``, ``returned_at`` = the refund's
  ``created_at``, ``restockable`` = ``restock_type`` in (``return``,
  ``legacy_restock``) — ``no_restock`` is refunded but not back in stock;
  ``location_id`` = the refund line's ``location_id`` when mapped, else the
  line's.

Rejected (with the reason): a line item without SKU (custom items, tips), a
quantity that is not a positive number, an order whose ``created_at`` cannot
be read, a refund line whose line item or SKU is unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from replenish.errors import ContractError
from replenish.sources.channels.base import (
    BatchBuilder,
    ChannelBatch,
    FetchCounts,
    HttpChannel,
    HttpFetcher,
    OrderRecord,
    UnidentifiedOrder,
    client_context,
    id_text,
    line_item,
    list_of,
    log,
    parse_quantity,
    parse_utc,
    rejection,
    to_naive_utc,
)
from replenish.sources.channels.config import ShopifyConfig, read_secret

__all__ = ["ShopifyChannel", "parse_order"]

_RESTOCKABLE = frozenset({"return", "legacy_restock"})


class ShopifyChannel(HttpChannel[ShopifyConfig]):
    """One Shopify store (:class:`HttpChannel`: client, env, sleep)."""

    @property
    def orders_url(self) -> str:
        c = self.config
        return f"{c.base_url}/admin/api/{c.api_version}/orders.json"

    def fetch(self, since: datetime | None) -> ChannelBatch:
        """The orders updated at or after ``since − overlap_seconds`` (every
        order when ``since`` is None), as a :class:`ChannelBatch`."""
        config = self.config
        token = read_secret(config, config.token_env, self._env)
        counts = FetchCounts()
        builder = BatchBuilder(config.name)
        first: dict[str, str | int] = {
            "status": "any",
            "limit": config.page_size,
            "order": "updated_at asc",
        }
        if since is not None:
            start = to_naive_utc(since) - timedelta(seconds=config.overlap_seconds)
            first["updated_at_min"] = start.isoformat(timespec="seconds") + "+00:00"
        params: dict[str, str | int] | None = first
        with client_context(self._client, config) as client:
            http: HttpFetcher

            def pace(response: httpx.Response) -> None:
                self._pace(response, http)

            http = HttpFetcher(
                client,
                config,
                counts,
                describe=self._describe,
                secrets=[token],
                headers={"X-Shopify-Access-Token": token},
                after_response=pace,
                sleep=self._sleep,
            )
            url: str | None = self.orders_url
            while url is not None:
                response = http.get(url, params)
                counts.pages += 1
                orders = _orders_of(http.json(response), http, response)
                for raw in orders:
                    record = parse_order(raw, config)
                    if isinstance(record, UnidentifiedOrder):
                        builder.reject(record)
                    else:
                        builder.add(record)
                url, params = self._next_page(response, http), None
        batch = builder.build(kind=config.kind, since=since, counts=counts)
        log.info(
            "%s channel %r: %d orders, %d lines, %d returns, %d rejected in %d page(s), "
            "%d request(s), %d retr(y/ies)",
            config.kind,
            config.name,
            counts.orders,
            counts.lines,
            counts.returns,
            counts.rejected,
            counts.pages,
            counts.requests,
            counts.retries,
        )
        return batch

    # ---------------------------------------------------------------- helpers

    def _next_page(self, response: httpx.Response, http: HttpFetcher) -> str | None:
        link = response.links.get("next")
        if not link or not link.get("url"):
            return None
        url = link["url"]
        base = httpx.URL(self.config.base_url)
        target = httpx.URL(url)
        if not target.is_absolute_url:
            target = base.join(url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            # the token must not travel to another host
            raise ContractError(
                f"{http.prefix}: the next-page link points to {http.where(target)}, "
                f"not to {self.config.base_url}; set base_url to the shop's "
                "https://{shop}.myshopify.com address"
            )
        if "page_info" not in target.params:
            raise ContractError(
                f"{http.prefix}: the next-page link of {http.where(response.request.url)} "
                "has no page_info parameter"
            )
        return str(target)

    def _pace(self, response: httpx.Response, http: HttpFetcher) -> None:
        """Pause when the API call bucket is nearly full (module docstring)."""
        headroom = self.config.call_limit_headroom
        header = response.headers.get("X-Shopify-Shop-Api-Call-Limit", "")
        used_text, _, size_text = header.partition("/")
        try:
            used, size = int(used_text), int(size_text)
        except ValueError:
            return
        left = size - used
        if headroom <= 0 or left >= headroom:
            return
        wait = (headroom - left) / self.config.call_limit_leak_rate
        http.counts.throttle_waits += 1
        log.debug("%s: call limit %s, pausing %.2f s", http.prefix, header, wait)
        http.wait(wait)

    def _describe(self, response: httpx.Response, body: str) -> str:
        c = self.config
        status = response.status_code
        where = HttpFetcher.where(response.request.url)
        prefix = f"shopify channel {c.name!r}: HTTP {status} from {where}"
        if status == 401:
            return (
                f"{prefix}: the access token in environment variable {c.token_env} was "
                "refused; set it to a valid Admin API access token of this store"
            )
        if status == 403:
            return (
                f"{prefix}: the access token in {c.token_env} lacks a permission; the app "
                "needs the read_orders scope (and read_all_orders for orders older than "
                f"60 days): {body}"
            )
        if status == 404:
            return (
                f"{prefix}: not found; check base_url ({c.base_url}: the shop's "
                f"https://{{shop}}.myshopify.com address) and api_version ({c.api_version}: "
                "a version Shopify still supports)"
            )
        if status == 402:
            return f"{prefix}: the shop is frozen (payment required): {body}"
        if status == 423:
            return f"{prefix}: the shop is locked: {body}"
        return f"{prefix}: {body}"


def _orders_of(payload: Any, http: HttpFetcher, response: httpx.Response) -> list[Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("orders"), list):
        raise ContractError(
            f"{http.prefix}: {http.where(response.request.url)} did not answer "
            "an object with an 'orders' list"
        )
    orders: list[Any] = payload["orders"]
    return orders


# --------------------------------------------------------------------- orders


def _mapped(locations: Mapping[str, str], value: object) -> str | None:
    key = id_text(value)
    return locations.get(key) if key is not None else None


def parse_order(raw: Any, config: ShopifyConfig) -> OrderRecord | UnidentifiedOrder:
    """One entry of the ``orders`` list as an :class:`OrderRecord` (or an
    :class:`UnidentifiedOrder` when it has no id)."""
    channel = config.name
    if not isinstance(raw, dict):
        return UnidentifiedOrder("order", raw, "order is not a JSON object")
    order_id = id_text(raw.get("id"))
    if order_id is None:
        return UnidentifiedOrder("id", raw.get("id"), "order has no id")
    created = parse_utc(raw.get("created_at"))
    updated = parse_utc(raw.get("updated_at")) or created
    record = OrderRecord(order_id=order_id, updated_at=updated)

    def reject(item_id: object, field_name: str, value: object, reason: str) -> None:
        record.rejected.append(rejection(channel, order_id, item_id, field_name, value, reason))

    items = raw.get("line_items")
    if not isinstance(items, list):
        reject(None, "line_items", items, "order has no line_items list")
        return record

    cancelled_order = (
        raw.get("cancelled_at") not in (None, "")
        or raw.get("financial_status") == "voided"
        or raw.get("fulfillment_status") == "restocked"
    )
    order_fulfilled = raw.get("fulfillment_status") == "fulfilled"
    locations = config.locations
    order_location = _mapped(locations, raw.get("location_id"))
    shipped_from: dict[str, str] = {}
    fulfillments = list_of(raw.get("fulfillments"))
    if fulfillments is None:
        reject(None, "fulfillments", raw.get("fulfillments"), "fulfillments is not a list")
    for fulfillment in fulfillments or []:
        if not isinstance(fulfillment, dict) or fulfillment.get("status") in (
            "cancelled",
            "error",
            "failure",
        ):
            continue
        where = _mapped(locations, fulfillment.get("location_id"))
        for item in list_of(fulfillment.get("line_items")) or []:
            item_id = id_text(item.get("id")) if isinstance(item, dict) else None
            if where is not None and item_id is not None:
                shipped_from.setdefault(item_id, where)

    # refunds: units cancelled before fulfilment reduce the line; the rest are returns
    cancelled_units: dict[str, float] = defaultdict(float)
    refund_lines: list[tuple[datetime | None, object, dict[str, Any]]] = []
    refunds = list_of(raw.get("refunds"))
    if refunds is None:
        reject(None, "refunds", raw.get("refunds"), "refunds is not a list")
    for refund in refunds or []:
        if not isinstance(refund, dict):
            reject(None, "refunds", refund, "refund is not a JSON object")
            continue
        refunded_at = parse_utc(refund.get("created_at"))
        refund_lines_raw = list_of(refund.get("refund_line_items"))
        if refund_lines_raw is None:
            reject(None, "refund_line_items", refund.get("refund_line_items"), "not a list")
        for rli in refund_lines_raw or []:
            if not isinstance(rli, dict):
                reject(None, "refund_line_items", rli, "refund line is not a JSON object")
                continue
            restock_type = str(rli.get("restock_type") or "").lower()
            if not restock_type and rli.get("restock") is True:  # before 2019-04
                restock_type = "legacy_restock"
            if restock_type == "cancel":
                qty, problem = parse_quantity(rli.get("quantity"))
                line_item_id = id_text(rli.get("line_item_id"))
                if line_item_id is None:
                    reject(rli.get("id"), "line_item_id", None, "refund line has no line_item_id")
                elif qty is None or qty < 0:
                    reject(
                        rli.get("id"),
                        "quantity",
                        rli.get("quantity"),
                        problem or "refunded quantity is negative",
                    )
                else:
                    cancelled_units[line_item_id] += qty
                continue
            refund_lines.append((refunded_at, refund.get("created_at"), rli))

    line_sku: dict[str, tuple[str, str]] = {}
    for line_no, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            reject(None, "line_items", item, f"line item {line_no} is not a JSON object")
            continue
        item_id = item.get("id")
        key = id_text(item_id)
        location = (
            (shipped_from.get(key) if key is not None else None)
            or order_location
            or config.location_id
        )
        sku_raw = item.get("sku")
        sku = sku_raw.strip() if isinstance(sku_raw, str) else ""
        if sku and key is not None:
            line_sku[key] = (sku, location)
        if created is None:
            reject(
                item_id,
                "created_at",
                raw.get("created_at"),
                "order created_at is not an ISO 8601 timestamp",
            )
            continue
        checked = line_item(
            sku,
            sku_raw,
            item.get("quantity"),
            "line item has no SKU (a custom item, a tip or a variant without SKU): "
            "it cannot be matched to a product",
        )
        if isinstance(checked, tuple):
            reject(item_id, *checked)
            continue
        qty = checked
        if cancelled_order:
            status = "cancelled"
        elif item.get("fulfillment_status") == "fulfilled" or order_fulfilled:
            status = "shipped"
        else:
            status = "open"
        current, _ = parse_quantity(item.get("current_quantity"))
        if current is not None and 0 <= current <= qty:
            left = current  # quantity minus units removed (refund-cancels, order edits)
        else:  # API versions without current_quantity
            left = qty - (cancelled_units.get(key, 0.0) if key is not None else 0.0)
        if left <= 0:
            status = "cancelled"  # every unit removed before fulfilment
        else:
            qty = left
        record.lines.append(
            {
                "order_id": order_id,
                "line_no": line_no,
                "sku": sku,
                "location_id": location,
                "channel": channel,
                "qty": qty,
                "ordered_at": created,
                "status": status,
            }
        )

    for refunded_at, refunded_raw, rli in refund_lines:
        rli_id = rli.get("id")
        line_item_id = id_text(rli.get("line_item_id"))
        known = line_sku.get(line_item_id) if line_item_id is not None else None
        embedded = rli.get("line_item")
        return_sku: str | None = known[0] if known else None
        if return_sku is None and isinstance(embedded, dict):
            embedded_sku = embedded.get("sku")
            if isinstance(embedded_sku, str):
                return_sku = embedded_sku.strip() or None
        if return_sku is None:
            reject(
                rli_id,
                "line_item_id",
                rli.get("line_item_id"),
                "refund line of a line item that is unknown or has no SKU",
            )
            continue
        if refunded_at is None:
            reject(rli_id, "refunds.created_at", refunded_raw, "refund created_at is not ISO 8601")
            continue
        qty, problem = parse_quantity(rli.get("quantity"))
        if qty is None or qty < 0:
            reject(
                rli_id,
                "quantity",
                rli.get("quantity"),
                problem or "refunded quantity is negative",
            )
            continue
        if qty == 0:
            continue  # money only, no goods moved
        restock_type = str(rli.get("restock_type") or "").lower()
        if not restock_type and rli.get("restock") is True:
            restock_type = "legacy_restock"
        location = (
            _mapped(locations, rli.get("location_id"))
            or (known[1] if known else None)
            or order_location
            or config.location_id
        )
        record.returns.append(
            {
                "order_id": order_id,
                "sku": return_sku,
                "location_id": location,
                "qty": qty,
                "returned_at": refunded_at,
                "restockable": restock_type in _RESTOCKABLE,
            }
        )
    return record
