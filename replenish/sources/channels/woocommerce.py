"""WooCommerce: orders through the WC REST API v3.

Wire format (WooCommerce REST API docs, "Orders", "Refunds"; WordPress REST
API "Pagination"):

* ``GET {base_url}/wp-json/wc/v3/orders?per_page=100&page=N&orderby=modified
  &order=desc&dates_are_gmt=true[&modified_after=ISO]`` with HTTP basic
  authentication (consumer key : consumer secret; WooCommerce accepts it over
  HTTPS only). ``modified_after`` needs WooCommerce ≥ 5.8 (older versions
  ignore it and every sync reads every order: correct, only slower).
* Pagination by page number: ``X-WP-Total`` (orders) and ``X-WP-TotalPages``
  (pages) on every response; pages are read until the last one.
* Refunds: an order lists only summaries (``refunds: [{id, reason, total}]``);
  the refunded items come from ``GET /wp-json/wc/v3/orders/{id}/refunds``,
  whose ``line_items`` have *negative* quantities and point to the order's
  line through the ``_refunded_item_id`` meta entry.

Why ``order=desc``: page offsets shift when the list changes during a sync.
Newest first, an order modified meanwhile jumps to page 1 (already read), so
the pages we still have to read shift *towards* us: an order may be read twice
(the latest version wins) but none is skipped; the modified order itself has a
``date_modified_gmt`` later than this batch's watermark, so the next
incremental sync reads it. Oldest first, the same change would shift an
unread order onto a page already read and lose it for good.

Mapping onto the contract (one ``sales_order_lines`` row per line item):

* ``order_id`` = ``id`` as text; ``line_no`` = position in ``line_items``
  (1-based); ``sku`` = ``line_items[].sku``; ``qty`` = ``quantity``;
  ``ordered_at`` = ``date_created_gmt``; the batch watermark is the latest
  ``date_modified_gmt``; ``location_id`` = the channel's ``location_id``
  (WooCommerce has no stock locations);
* ``status`` from the order status: ``pending``, ``processing``, ``on-hold``
  → ``open``; ``completed`` → ``shipped``; ``refunded`` → ``shipped`` (the
  refund becomes returns); ``cancelled``, ``failed``, ``trash``,
  ``checkout-draft`` → ``cancelled``; ``status_map`` in the configuration
  adds custom statuses or overrides these; an unknown status rejects the
  order's lines (it is not guessed);
* ``returns``: each refund line item with a non-zero quantity: ``qty`` =
  −``quantity``, ``returned_at`` = the refund's ``date_created_gmt``,
  ``restockable`` = ``refunds_restock``, ``sku`` = the refund line's SKU (or
  the refunded line's).

Rejected (with the reason): a line item without SKU (unless ``missing_sku:
product_id``), a quantity that is not a positive number, an order whose
``date_created_gmt`` cannot be read, an unknown order status, a refund line
whose SKU is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from replenish.errors import ContractError
from replenish.sources.channels.base import (
    BatchBuilder,
    ChannelBatch,
    ChannelRequestError,
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
from replenish.sources.channels.config import WooCommerceConfig, read_secret

__all__ = ["DEFAULT_STATUS_MAP", "WooCommerceChannel", "parse_order", "parse_refunds"]

#: WooCommerce order status -> contract sales_order_lines.status
DEFAULT_STATUS_MAP: dict[str, str] = {
    "pending": "open",
    "processing": "open",
    "on-hold": "open",
    "completed": "shipped",
    "refunded": "shipped",
    "cancelled": "cancelled",
    "failed": "cancelled",
    "trash": "cancelled",
    "checkout-draft": "cancelled",
}
_API = "/wp-json/wc/v3"
_REFUNDS_PER_PAGE = 100


class WooCommerceChannel(HttpChannel[WooCommerceConfig]):
    """One WooCommerce shop (:class:`HttpChannel`: client, env, sleep)."""

    @property
    def api_url(self) -> str:
        return self.config.base_url + _API

    def fetch(self, since: datetime | None) -> ChannelBatch:
        """The orders modified after ``since − overlap_seconds`` (every order
        when ``since`` is None), with their refunds, as a :class:`ChannelBatch`."""
        config = self.config
        key = read_secret(config, config.consumer_key_env, self._env)
        secret = read_secret(config, config.consumer_secret_env, self._env)
        counts = FetchCounts()
        builder = BatchBuilder(config.name)
        base_params: dict[str, str | int] = {
            "per_page": config.page_size,
            "orderby": "modified",
            "order": "desc",
            "dates_are_gmt": "true",
        }
        if since is not None:
            start = to_naive_utc(since) - timedelta(seconds=config.overlap_seconds)
            base_params["modified_after"] = start.isoformat(timespec="seconds")
        with client_context(self._client, config) as client:
            http = HttpFetcher(
                client,
                config,
                counts,
                describe=self._describe,
                secrets=[key, secret],
                auth=httpx.BasicAuth(key, secret),
                sleep=self._sleep,
            )
            page = 1
            while True:
                response = http.get(f"{self.api_url}/orders", {**base_params, "page": page})
                counts.pages += 1
                orders = _list_of(http.json(response), http, response)
                for raw in orders:
                    record = parse_order(raw, config)
                    if isinstance(record, UnidentifiedOrder):
                        builder.reject(record)
                    else:
                        builder.add(record)
                total_pages = _int_header(response, "X-WP-TotalPages")
                if not orders:
                    break
                if total_pages is not None:
                    if page >= total_pages:
                        break
                elif len(orders) < config.page_size:
                    break
                page += 1
            refunded = [r for r in builder.orders.values() if r.has_refunds]
            for record in sorted(refunded, key=lambda r: _numeric_first(r.order_id)):
                refunds = self._refunds(http, record)
                if refunds is None:
                    continue
                returns, rejected = parse_refunds(
                    refunds, record.order_id, record.item_skus, config
                )
                record.returns.extend(returns)
                record.rejected.extend(rejected)
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

    def _refunds(self, http: HttpFetcher, record: OrderRecord) -> list[Any] | None:
        """Every refund of the order (all pages); None if the order vanished."""
        order_id = record.order_id
        url = f"{self.api_url}/orders/{order_id}/refunds"
        refunds: list[Any] = []
        page = 1
        while True:
            try:
                response = http.get(url, {"per_page": _REFUNDS_PER_PAGE, "page": page})
            except ChannelRequestError as error:
                if error.status != 404:
                    raise
                record.rejected.append(
                    rejection(
                        self.config.name,
                        order_id,
                        None,
                        "refunds",
                        None,
                        "the order was deleted during the sync: its refunds were not read",
                    )
                )
                return None
            batch = _list_of(http.json(response), http, response)
            refunds.extend(batch)
            total_pages = _int_header(response, "X-WP-TotalPages")
            if not batch or (
                page >= total_pages if total_pages is not None else len(batch) < _REFUNDS_PER_PAGE
            ):
                return refunds
            page += 1

    def _describe(self, response: httpx.Response, body: str) -> str:
        c = self.config
        status = response.status_code
        where = HttpFetcher.where(response.request.url)
        code = _error_code(response)
        prefix = f"woocommerce channel {c.name!r}: HTTP {status}{code} from {where}"
        if status == 401:
            return (
                f"{prefix}: the REST API key in environment variables {c.consumer_key_env} / "
                f"{c.consumer_secret_env} was refused; check that the key exists, has Read "
                "access, and that the web server passes the Authorization header on"
            )
        if status == 403:
            return (
                f"{prefix}: the REST API key in {c.consumer_key_env} may not read orders "
                "(it needs Read or Read/Write permission)"
            )
        if status == 404:
            return (
                f"{prefix}: the WooCommerce REST API v3 was not found; check base_url "
                f"({c.base_url}: the WordPress site address), that WooCommerce is active "
                "and that permalinks are not set to 'Plain'"
            )
        return f"{prefix}: {body}"


def _error_code(response: httpx.Response) -> str:
    """`` (rest_no_route)``: the WordPress error code of a JSON error body."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    code = payload.get("code") if isinstance(payload, dict) else None
    return f" ({code})" if isinstance(code, str) and code.isidentifier() else ""


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, "").strip())
    except ValueError:
        return None


def _list_of(payload: Any, http: HttpFetcher, response: httpx.Response) -> list[Any]:
    if not isinstance(payload, list):
        raise ContractError(
            f"{http.prefix}: {http.where(response.request.url)} did not answer a JSON list"
        )
    return payload


def _numeric_first(order_id: str) -> tuple[int, str]:
    # isdecimal, not isdigit: "²" is a digit that int() refuses
    return (int(order_id), "") if order_id.isascii() and order_id.isdecimal() else (0, order_id)


# --------------------------------------------------------------------- orders


def _line_sku(item: dict[str, Any], config: WooCommerceConfig) -> str:
    raw = item.get("sku")
    sku = raw.strip() if isinstance(raw, str) else ""
    if sku or config.missing_sku == "reject":
        return sku
    product = id_text(item.get("variation_id"))
    if product in (None, "0"):
        product = id_text(item.get("product_id"))
    return f"wc-{product}" if product not in (None, "0") else ""


def parse_order(raw: Any, config: WooCommerceConfig) -> OrderRecord | UnidentifiedOrder:
    """One entry of the order list as an :class:`OrderRecord` (with its line
    item id -> SKU map and whether it lists refunds), or an
    :class:`UnidentifiedOrder` when it has no id."""
    channel = config.name
    if not isinstance(raw, dict):
        return UnidentifiedOrder("order", raw, "order is not a JSON object")
    order_id = id_text(raw.get("id"))
    if order_id is None:
        return UnidentifiedOrder("id", raw.get("id"), "order has no id")
    created = parse_utc(raw.get("date_created_gmt"))
    updated = parse_utc(raw.get("date_modified_gmt")) or created
    record = OrderRecord(
        order_id=order_id, updated_at=updated, has_refunds=bool(raw.get("refunds"))
    )
    items_sku = record.item_skus

    def reject(item_id: object, field_name: str, value: object, reason: str) -> None:
        record.rejected.append(rejection(channel, order_id, item_id, field_name, value, reason))

    items = raw.get("line_items")
    if not isinstance(items, list):
        reject(None, "line_items", items, "order has no line_items list")
        return record
    status_raw = raw.get("status")
    status = (
        config.status_map.get(status_raw) or DEFAULT_STATUS_MAP.get(status_raw)
        if isinstance(status_raw, str)
        else None
    )
    for line_no, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            reject(None, "line_items", item, f"line item {line_no} is not a JSON object")
            continue
        item_id = item.get("id")
        sku = _line_sku(item, config)
        key = id_text(item_id)
        if sku and key is not None:
            items_sku[key] = sku
        if created is None:
            reject(
                item_id,
                "date_created_gmt",
                raw.get("date_created_gmt"),
                "order date_created_gmt is not an ISO 8601 timestamp",
            )
            continue
        if status is None:
            reject(
                item_id,
                "status",
                status_raw,
                "unknown order status: map it to open, shipped or cancelled in the "
                "channel's status_map",
            )
            continue
        checked = line_item(
            sku,
            item.get("sku"),
            item.get("quantity"),
            "line item has no SKU: it cannot be matched to a product "
            "(set missing_sku: product_id to use 'wc-{product id}')",
        )
        if isinstance(checked, tuple):
            reject(item_id, *checked)
            continue
        qty = checked
        record.lines.append(
            {
                "order_id": order_id,
                "line_no": line_no,
                "sku": sku,
                "location_id": config.location_id,
                "channel": channel,
                "qty": qty,
                "ordered_at": created,
                "status": status,
            }
        )
    return record


def _refunded_item_id(line: dict[str, Any]) -> str | None:
    for meta in list_of(line.get("meta_data")) or []:
        if isinstance(meta, dict) and meta.get("key") == "_refunded_item_id":
            return id_text(meta.get("value"))
    return None


def parse_refunds(
    refunds: list[Any], order_id: str, items_sku: Mapping[str, str], config: WooCommerceConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The returns rows and rejections of the refunds of one order."""
    channel = config.name
    returns: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []

    def reject(item_id: object, field_name: str, value: object, reason: str) -> None:
        rejected.append(rejection(channel, order_id, item_id, field_name, value, reason))

    for refund in refunds:
        if not isinstance(refund, dict):
            reject(None, "refunds", refund, "refund is not a JSON object")
            continue
        refunded_at = parse_utc(refund.get("date_created_gmt"))
        lines = list_of(refund.get("line_items"))
        if lines is None:
            reject(None, "refunds.line_items", refund.get("line_items"), "not a list")
        for line in lines or []:
            if not isinstance(line, dict):
                reject(None, "refunds.line_items", line, "refund line is not a JSON object")
                continue
            line_id = line.get("id")
            qty, problem = parse_quantity(line.get("quantity"))
            if qty is None:
                reject(line_id, "quantity", line.get("quantity"), problem or "not a number")
                continue
            if qty == 0:
                continue  # money only, no goods moved
            sku = _line_sku(line, config)
            if not sku:
                original = _refunded_item_id(line)
                sku = items_sku.get(original, "") if original is not None else ""
            if not sku:
                reject(
                    line_id,
                    "sku",
                    line.get("sku"),
                    "refund line of an item without SKU: the returned product is unknown",
                )
                continue
            if refunded_at is None:
                reject(
                    line_id,
                    "refunds.date_created_gmt",
                    refund.get("date_created_gmt"),
                    "refund date_created_gmt is not an ISO 8601 timestamp",
                )
                continue
            returns.append(
                {
                    "order_id": order_id,
                    "sku": sku,
                    "location_id": config.location_id,
                    "qty": abs(qty),
                    "returned_at": refunded_at,
                    "restockable": config.refunds_restock,
                }
            )
    return returns, rejected
