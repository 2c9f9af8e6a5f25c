"""Local Shopify and WooCommerce servers for the channel tests.

Each is a threaded ``http.server`` on 127.0.0.1 (a free ephemeral port) that
holds a list of orders and serves them the way the real API does:

* :class:`ShopifyServer` — Admin REST API ``GET /admin/api/{version}/orders.json``:
  ``X-Shopify-Access-Token`` checked (401), unknown API version or path (404),
  ``status`` / ``updated_at_min`` (inclusive) / ``order`` / ``limit`` (≤ 250)
  filters, cursor pagination through the ``Link`` header (``rel="next"`` and
  ``rel="previous"``, an opaque ``page_info`` keyed on the sort order) with
  Shopify's rule that a ``page_info`` request carries no other filter (400),
  and a leaky-bucket call limit (``X-Shopify-Shop-Api-Call-Limit: used/size``,
  ``429`` with ``Retry-After`` in seconds when the bucket is full).
* :class:`WooCommerceServer` — WC REST API v3 ``GET /wp-json/wc/v3/orders``
  and ``/orders/{id}/refunds``: HTTP basic auth checked (401
  ``woocommerce_rest_cannot_view``), WordPress error bodies (``code``,
  ``message``, ``data.status``), ``page`` / ``per_page`` (≤ 100) pagination
  with ``X-WP-Total`` / ``X-WP-TotalPages`` and a ``Link`` header,
  ``modified_after`` (exclusive, GMT with ``dates_are_gmt=true``, site time
  otherwise), ``orderby`` / ``order``.

JSON shapes follow the public docs (Shopify "REST Admin API: Order",
"Refund", "Make paginated requests to the REST Admin API", "API rate limits";
WooCommerce REST API docs "Orders", "Refunds"). Error *texts* are ours where
the docs do not give them.

Every server records the requests it receives (:attr:`WireServer.requests`,
with the status it answered) and takes injected faults by request number
(:meth:`WireServer.inject`): ``Fault.rate_limited(0.05)`` (429 with
``Retry-After``), ``Fault.error(500)``, ``Fault.drop()`` (the connection is
closed without an answer) and ``Fault.slow(seconds)`` (the answer comes after
the client's timeout). :meth:`WireServer.after` runs an action once a request
has been answered (e.g. modify an order between two pages).

Order payloads are built with :func:`shopify_order` / :func:`shopify_line` /
:func:`shopify_refund` and :func:`woo_order` / :func:`woo_line` /
:func:`woo_refund`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.servers import LOOPBACK

__all__ = [
    "Fault",
    "ReceivedRequest",
    "ShopifyServer",
    "WireServer",
    "WooCommerceServer",
    "shopify_line",
    "shopify_order",
    "shopify_refund",
    "woo_line",
    "woo_order",
    "woo_refund",
]

JsonObject = dict[str, Any]


# ===================================================================== framework


@dataclass(frozen=True)
class Fault:
    """A fault to answer one request with (see :meth:`WireServer.inject`)."""

    kind: Literal["status", "drop", "slow"]
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: float = 0.05) -> Fault:
        """``429 Too Many Requests`` with ``Retry-After: <seconds>``."""
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def error(cls, status: int = 500) -> Fault:
        return cls("status", status=status)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally, but only after ``seconds``."""
        return cls("slow", delay=seconds)


@dataclass
class ReceivedRequest:
    number: int  # 1-based, in arrival order
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() on arrival
    status: int | None = None  # answered; None: dropped (or not answered yet)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    body: Any  # JSON-able
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined on server_close()
    block_on_close = True
    allow_reuse_address = False
    wire: WireServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection

    def do_GET(self) -> None:
        wire = self.server.wire
        split = urlsplit(self.path)
        request = wire._arrive(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        fault = wire.faults.get(request.number)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            wire._run_after(request.number)
            return
        if fault is not None and fault.kind == "slow":
            wire._stopping.wait(fault.delay)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            reply = Reply(fault.status, wire.fault_body(fault.status), headers)
        else:
            reply = wire.handle(request)
        request.status = reply.status
        wire._run_after(request.number)
        payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WireServer:
    """Base of the channel servers: lifecycle, request log, faults, actions."""

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.faults: dict[int, Fault] = {}
        self._after: dict[int, list[Callable[[], None]]] = {}
        self._requests: list[ReceivedRequest] = []
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self._requests)

    def inject(self, request_number: int, fault: Fault) -> None:
        """Answer the ``request_number``-th request (1-based, all paths) with ``fault``."""
        with self.lock:
            self.faults[request_number] = fault

    def after(self, request_number: int, action: Callable[[], None]) -> None:
        """Run ``action`` once the ``request_number``-th request is answered
        (before the next one is read)."""
        with self.lock:
            self._after.setdefault(request_number, []).append(action)

    # ------------------------------------------------------------- to override

    def handle(self, request: ReceivedRequest) -> Reply:
        raise NotImplementedError

    def fault_body(self, status: int) -> Any:
        return {"errors": f"injected fault {status}"}

    # ---------------------------------------------------------------- internal

    def _arrive(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
    ) -> ReceivedRequest:
        with self.lock:
            request = ReceivedRequest(
                number=len(self._requests) + 1,
                method=method,
                path=path,
                query=query,
                headers=headers,
                at=time.monotonic(),
            )
            self._requests.append(request)
            return request

    def _run_after(self, number: int) -> None:
        with self.lock:
            actions = self._after.pop(number, [])
            for action in actions:
                action()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        server = _Server((LOOPBACK, 0), _Handler)
        server.wire = self
        self.port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()  # wakes slow answers up
        server.shutdown()
        server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _iso(value: datetime | str | None, offset_hours: float) -> str | None:
    """``value`` (naive = UTC) as ISO 8601 in the zone ``offset_hours`` (Shopify style)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    zone = timezone(timedelta(hours=offset_hours))
    return value.astimezone(zone).isoformat(timespec="seconds")


def _parse(value: str) -> datetime:
    """An ISO 8601 timestamp as an aware datetime (naive = UTC)."""
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


# ======================================================================= Shopify

SHOPIFY_TOKEN = "shpat_0123456789abcdef0123456789abcdef"


def shopify_line(
    line_id: int,
    sku: str | None,
    quantity: Any,
    *,
    fulfillment_status: str | None = None,
    price: str = "10.00",
    title: str | None = None,
) -> JsonObject:
    """A ``line_items[]`` entry of a Shopify order."""
    return {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "variant_id": line_id * 10 + 1,
        "product_id": line_id * 10 + 2,
        "title": title or f"Product {sku}",
        "name": title or f"Product {sku}",
        "sku": sku,
        "vendor": "Test Vendor",
        "quantity": quantity,
        "current_quantity": quantity,
        "fulfillable_quantity": 0 if fulfillment_status == "fulfilled" else quantity,
        "fulfillment_status": fulfillment_status,
        "fulfillment_service": "manual",
        "requires_shipping": True,
        "gift_card": False,
        "taxable": True,
        "price": price,
        "total_discount": "0.00",
        "grams": 200,
        "properties": [],
        "tax_lines": [],
        "discount_allocations": [],
        "duties": [],
    }


def shopify_refund(
    refund_id: int,
    *,
    created_at: datetime | str,
    lines: Sequence[Mapping[str, Any]],
    order_id: int | None = None,
    utc_offset_hours: float = -5,
) -> JsonObject:
    """A ``refunds[]`` entry: ``lines`` are dicts with ``line_item_id``,
    ``quantity``, ``restock_type`` and optionally ``location_id``, ``sku``
    (the embedded ``line_item``'s SKU)."""
    stamp = _iso(created_at, utc_offset_hours)
    refund_lines = []
    for n, line in enumerate(lines, start=1):
        refund_lines.append(
            {
                "id": refund_id * 100 + n,
                "line_item_id": line["line_item_id"],
                "quantity": line["quantity"],
                "restock_type": line.get("restock_type", "return"),
                "location_id": line.get("location_id"),
                "subtotal": 10.0,
                "total_tax": 0.0,
                "line_item": {"id": line["line_item_id"], "sku": line.get("sku")},
            }
        )
    return {
        "id": refund_id,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "order_id": order_id,
        "created_at": stamp,
        "processed_at": stamp,
        "note": None,
        "restock": any(line.get("restock_type") == "return" for line in lines),
        "user_id": None,
        "refund_line_items": refund_lines,
        "transactions": [],
        "order_adjustments": [],
    }


def shopify_order(
    order_id: int,
    *,
    created_at: datetime | str,
    updated_at: datetime | str | None = None,
    lines: Sequence[JsonObject],
    cancelled_at: datetime | str | None = None,
    closed_at: datetime | str | None = None,
    financial_status: str = "paid",
    fulfillment_status: str | None = None,
    refunds: Sequence[JsonObject] = (),
    fulfillments: Sequence[JsonObject] = (),
    location_id: int | None = None,
    utc_offset_hours: float = -5,
) -> JsonObject:
    """A Shopify order as ``GET orders.json`` returns it (timestamps in the
    shop's zone, ``utc_offset_hours``; naive datetimes given here are UTC)."""
    created = _iso(created_at, utc_offset_hours)
    items = [copy.deepcopy(line) for line in lines]
    # current_quantity: the quantity minus the units removed by refunds of type 'cancel'
    for item in items:
        removed = sum(
            rli["quantity"]
            for refund in refunds
            for rli in refund["refund_line_items"]
            if rli["line_item_id"] == item["id"] and rli["restock_type"] == "cancel"
        )
        if isinstance(item.get("current_quantity"), int) and removed:
            item["current_quantity"] = max(item["current_quantity"] - removed, 0)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{1000 + order_id % 100000}",
        "order_number": 1000 + order_id % 100000,
        "email": f"customer{order_id}@example.com",
        "created_at": created,
        "updated_at": _iso(updated_at, utc_offset_hours) or created,
        "processed_at": created,
        "cancelled_at": _iso(cancelled_at, utc_offset_hours),
        "cancel_reason": "customer" if cancelled_at else None,
        "closed_at": _iso(closed_at, utc_offset_hours),
        "currency": "EUR",
        "financial_status": financial_status,
        "fulfillment_status": fulfillment_status,
        "location_id": location_id,
        "source_name": "web",
        "test": False,
        "total_price": "10.00",
        "line_items": items,
        "refunds": [dict(refund, order_id=order_id) for refund in refunds],
        "fulfillments": list(fulfillments),
        "shipping_lines": [],
        "tags": "",
    }


_CURSOR_ALLOWED = {"page_info", "limit", "fields"}
_SORT_FIELDS = {"updated_at", "created_at", "id"}


class ShopifyServer(WireServer):
    """A Shopify store's Admin REST API (orders only; see the module docstring).

    ``bucket_size`` / ``leak_rate``: the leaky bucket of the call limit (40
    and 2/s on standard plans).
    """

    def __init__(
        self,
        orders: Iterable[JsonObject] = (),
        *,
        token: str = SHOPIFY_TOKEN,
        api_version: str = "2024-10",
        bucket_size: int = 40,
        leak_rate: float = 2.0,
        utc_offset_hours: float = -5,
    ) -> None:
        super().__init__()
        self.token = token
        self.api_version = api_version
        self.bucket_size = bucket_size
        self.leak_rate = leak_rate
        self.utc_offset_hours = utc_offset_hours
        self._orders: dict[int, JsonObject] = {}
        self._bucket = 0.0
        self._bucket_at = time.monotonic()
        for order in orders:
            self.put_order(order)

    def put_order(self, order: JsonObject) -> None:
        """Add the order, or replace the one with the same id."""
        with self.lock:
            self._orders[int(order["id"])] = copy.deepcopy(order)

    def update_order(self, order_id: int, **changes: Any) -> None:
        """Change fields of a stored order (give ``updated_at`` too)."""
        with self.lock:
            self._orders[order_id].update(copy.deepcopy(changes))

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {
                "errors": "Exceeded 2 calls per second for api client. "
                "Reduce request rates to resume uninterrupted service."
            }
        return {"errors": "Internal Server Error"} if status >= 500 else {"errors": str(status)}

    # ------------------------------------------------------------------ handle

    def handle(self, request: ReceivedRequest) -> Reply:
        match = re.fullmatch(r"/admin/api/([^/]+)/orders\.json", request.path)
        if request.method != "GET" or match is None or match.group(1) != self.api_version:
            return Reply(404, {"errors": "Not Found"})
        if request.headers.get("x-shopify-access-token") != self.token:
            return Reply(
                401,
                {
                    "errors": "[API] Invalid API key or access token "
                    "(unrecognized login or wrong password)"
                },
            )
        limit_header, retry_after = self._take_call()
        if retry_after is not None:
            return Reply(
                429,
                self.fault_body(429),
                {
                    "Retry-After": f"{retry_after:.3f}",
                    "X-Shopify-Shop-Api-Call-Limit": limit_header,
                },
            )
        headers = {
            "X-Shopify-Shop-Api-Call-Limit": limit_header,
            "X-Shopify-API-Version": self.api_version,
        }
        try:
            orders, link = self._page(request)
        except _BadRequest as bad:
            return Reply(400, {"errors": bad.errors}, headers)
        if link:
            headers["Link"] = link
        return Reply(200, {"orders": orders}, headers)

    def _take_call(self) -> tuple[str, float | None]:
        """Leak the bucket, then add this call (or say how long to wait)."""
        with self.lock:
            now = time.monotonic()
            self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.leak_rate)
            self._bucket_at = now
            if self._bucket + 1 > self.bucket_size:
                wait = (self._bucket + 1 - self.bucket_size) / self.leak_rate
                return f"{self.bucket_size}/{self.bucket_size}", wait
            self._bucket += 1
            return f"{math.ceil(self._bucket)}/{self.bucket_size}", None

    def _page(self, request: ReceivedRequest) -> tuple[list[JsonObject], str]:
        limit = _int_param(request, "limit", 50)
        if not 1 <= limit <= 250:
            raise _BadRequest({"limit": "must be between 1 and 250"})
        page_info = request.param("page_info")
        if page_info is not None:
            extra = sorted(set(request.query) - _CURSOR_ALLOWED)
            if extra:
                raise _BadRequest(
                    {"page_info": f"cannot be combined with other parameters: {', '.join(extra)}"}
                )
            cursor = _decode_cursor(page_info)
        else:
            order = request.param("order") or "created_at desc"
            parts = order.split()
            if len(parts) != 2 or parts[0] not in _SORT_FIELDS or parts[1] not in ("asc", "desc"):
                raise _BadRequest({"order": f"invalid sort order {order!r}"})
            minimum = request.param("updated_at_min")
            if minimum is not None:
                try:
                    _parse(minimum)
                except ValueError:
                    raise _BadRequest({"updated_at_min": "invalid date"}) from None
            cursor = {
                "field": parts[0],
                "dir": parts[1],
                "status": request.param("status") or "open",
                "updated_at_min": minimum,
                "rel": "first",
            }
        with self.lock:
            selected = [o for o in self._orders.values() if self._matches(o, cursor)]
        key = _sort_key(cursor["field"])
        selected.sort(key=key, reverse=cursor["dir"] == "desc")
        keys = [key(o) for o in selected]
        if cursor["rel"] == "next":
            at = _after_position(keys, _cursor_key(cursor), cursor["dir"] == "desc")
            page = selected[at : at + limit]
            start = at
        elif cursor["rel"] == "previous":
            # the entries strictly before the cursor (the first of the page after it)
            end = sum(1 for k in keys if _before(k, _cursor_key(cursor), cursor["dir"] == "desc"))
            start = max(0, end - limit)
            page = selected[start:end]
        else:
            start = 0
            page = selected[:limit]
        links = []
        if page and start > 0:
            links.append(self._link(limit, cursor, page[0], "previous"))
        if page and start + len(page) < len(selected):
            links.append(self._link(limit, cursor, page[-1], "next"))
        return [copy.deepcopy(o) for o in page], ", ".join(links)

    def _matches(self, order: JsonObject, cursor: Mapping[str, Any]) -> bool:
        status = cursor["status"]
        if status == "open" and (order.get("cancelled_at") or order.get("closed_at")):
            return False
        if status == "closed" and not order.get("closed_at"):
            return False
        if status == "cancelled" and not order.get("cancelled_at"):
            return False
        minimum = cursor.get("updated_at_min")
        return not (minimum and _parse(order["updated_at"]) < _parse(minimum))

    def _link(self, limit: int, cursor: Mapping[str, Any], order: JsonObject, rel: str) -> str:
        value = order[cursor["field"]]
        token = _encode_cursor(
            {**cursor, "rel": rel, "last_value": value, "last_id": int(order["id"])}
        )
        query = urlencode({"limit": limit, "page_info": token})
        url = f"{self.url}/admin/api/{self.api_version}/orders.json?{query}"
        return f'<{url}>; rel="{rel}"'


class _BadRequest(Exception):
    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors


def _int_param(request: ReceivedRequest, name: str, default: int) -> int:
    value = request.param(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest({name: "expected an integer"}) from None


def _encode_cursor(cursor: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _BadRequest({"page_info": "Invalid value."}) from None
    if not isinstance(cursor, dict) or cursor.get("rel") not in ("next", "previous"):
        raise _BadRequest({"page_info": "Invalid value."})
    return cursor


def _sort_key(field_name: str) -> Callable[[JsonObject], tuple[Any, int]]:
    if field_name == "id":
        return lambda o: (int(o["id"]), int(o["id"]))
    return lambda o: (_parse(o[field_name]), int(o["id"]))


def _cursor_key(cursor: Mapping[str, Any]) -> tuple[Any, int]:
    value = cursor["last_value"]
    return (int(value) if cursor["field"] == "id" else _parse(value), int(cursor["last_id"]))


def _before(key: tuple[Any, int], pivot: tuple[Any, int], descending: bool) -> bool:
    return key > pivot if descending else key < pivot


def _after_position(keys: list[tuple[Any, int]], pivot: tuple[Any, int], descending: bool) -> int:
    """Index of the first key strictly after ``pivot`` in the sort order."""
    for n, key in enumerate(keys):
        if (key < pivot) if descending else (key > pivot):
            return n
    return len(keys)


# =================================================================== WooCommerce

WOO_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
WOO_SECRET = "cs_0123456789abcdef0123456789abcdef01234567"


def woo_line(
    line_id: int,
    sku: str | None,
    quantity: Any,
    *,
    product_id: int | None = None,
    variation_id: int = 0,
    price: float = 10.0,
) -> JsonObject:
    """A ``line_items[]`` entry of a WooCommerce order."""
    return {
        "id": line_id,
        "name": f"Product {sku}",
        "product_id": product_id if product_id is not None else line_id * 10,
        "variation_id": variation_id,
        "quantity": quantity,
        "tax_class": "",
        "subtotal": f"{price:.2f}",
        "subtotal_tax": "0.00",
        "total": f"{price:.2f}",
        "total_tax": "0.00",
        "taxes": [],
        "meta_data": [],
        "sku": sku if sku is not None else "",
        "price": price,
    }


def woo_refund(
    refund_id: int,
    *,
    created_at: datetime,
    lines: Sequence[Mapping[str, Any]],
    utc_offset_hours: float = 2,
    reason: str = "",
) -> JsonObject:
    """A refund as ``GET /orders/{id}/refunds`` returns it: ``lines`` are dicts
    with ``line_item_id`` (the refunded order line), ``quantity`` (positive
    here, sent negative as WooCommerce does) and optionally ``sku``."""
    items = []
    for n, line in enumerate(lines, start=1):
        qty = line["quantity"]
        items.append(
            {
                "id": refund_id * 100 + n,
                "name": "Refunded product",
                "product_id": 0,
                "variation_id": 0,
                "quantity": -qty if isinstance(qty, int | float) else qty,
                "tax_class": "",
                "subtotal": "-10.00",
                "subtotal_tax": "0.00",
                "total": "-10.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [
                    {
                        "id": refund_id * 1000 + n,
                        "key": "_refunded_item_id",
                        "value": str(line["line_item_id"]),
                    }
                ],
                "sku": line.get("sku", ""),
                "price": -10,
            }
        )
    gmt = created_at.replace(tzinfo=None)
    return {
        "id": refund_id,
        "date_created": (gmt + timedelta(hours=utc_offset_hours)).isoformat(timespec="seconds"),
        "date_created_gmt": gmt.isoformat(timespec="seconds"),
        "amount": f"{10.0 * len(lines):.2f}",
        "reason": reason,
        "refunded_by": 1,
        "refunded_payment": False,
        "meta_data": [],
        "line_items": items,
        "shipping_lines": [],
        "tax_lines": [],
        "fee_lines": [],
    }


def woo_order(
    order_id: int,
    *,
    created_at: datetime,
    modified_at: datetime | None = None,
    status: str = "processing",
    lines: Sequence[JsonObject],
    refunds: Sequence[JsonObject] = (),
    utc_offset_hours: float = 2,
) -> JsonObject:
    """A WooCommerce order as ``GET /orders`` returns it (naive datetimes
    given here are GMT). The full refunds ride along under the private key
    ``_refunds``: the server serves them at ``/orders/{id}/refunds`` and
    lists only their summaries on the order, as WooCommerce does."""
    modified = modified_at or created_at
    shift = timedelta(hours=utc_offset_hours)

    def stamp(value: datetime) -> str:
        return value.replace(tzinfo=None).isoformat(timespec="seconds")

    return {
        "id": order_id,
        "parent_id": 0,
        "number": str(order_id),
        "order_key": f"wc_order_{order_id}",
        "created_via": "checkout",
        "version": "8.5.2",
        "status": status,
        "currency": "EUR",
        "date_created": stamp(created_at + shift),
        "date_created_gmt": stamp(created_at),
        "date_modified": stamp(modified + shift),
        "date_modified_gmt": stamp(modified),
        "discount_total": "0.00",
        "shipping_total": "0.00",
        "total": "10.00",
        "customer_id": 0,
        "billing": {"first_name": "Test", "email": f"c{order_id}@example.com"},
        "shipping": {"first_name": "Test"},
        "payment_method": "bacs",
        "date_paid_gmt": stamp(created_at),
        "date_completed_gmt": stamp(modified) if status == "completed" else None,
        "meta_data": [],
        "line_items": [copy.deepcopy(line) for line in lines],
        "tax_lines": [],
        "shipping_lines": [],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [
            {"id": r["id"], "reason": r.get("reason", ""), "total": f"-{r['amount']}"}
            for r in refunds
        ],
        "_refunds": [copy.deepcopy(r) for r in refunds],
    }


_WC_ORDERBY = {"date", "id", "include", "title", "slug", "modified"}


class WooCommerceServer(WireServer):
    """A WooCommerce shop's REST API v3 (orders and refunds; see the module
    docstring). ``utc_offset_hours`` is the site's time zone."""

    def __init__(
        self,
        orders: Iterable[JsonObject] = (),
        *,
        consumer_key: str = WOO_KEY,
        consumer_secret: str = WOO_SECRET,
        utc_offset_hours: float = 2,
    ) -> None:
        super().__init__()
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.utc_offset_hours = utc_offset_hours
        self._orders: dict[int, JsonObject] = {}
        self._refunds: dict[int, list[JsonObject]] = {}
        for order in orders:
            self.put_order(order)

    def put_order(self, order: JsonObject) -> None:
        """Add the order (built by :func:`woo_order`), or replace the one with the same id."""
        order = copy.deepcopy(order)
        refunds = order.pop("_refunds", [])
        with self.lock:
            self._orders[int(order["id"])] = order
            self._refunds[int(order["id"])] = refunds

    def delete_order(self, order_id: int) -> None:
        with self.lock:
            self._orders.pop(order_id, None)
            self._refunds.pop(order_id, None)

    def fault_body(self, status: int) -> Any:
        return _wp_error("injected_fault", f"Injected fault {status}.", status)

    # ------------------------------------------------------------------ handle

    def handle(self, request: ReceivedRequest) -> Reply:
        orders = request.path in ("/wp-json/wc/v3/orders", "/wp-json/wc/v3/orders/")
        refunds = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)/refunds/?", request.path)
        if request.method != "GET" or not (orders or refunds):
            return Reply(
                404,
                _wp_error(
                    "rest_no_route", "No route was found matching the URL and request method.", 404
                ),
            )
        if not self._authorised(request):
            return Reply(
                401,
                _wp_error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401),
            )
        try:
            page = _int_param(request, "page", 1)
            per_page = _int_param(request, "per_page", 10)
        except _BadRequest as bad:
            name = next(iter(bad.errors))
            return Reply(400, _invalid_param(name, f"{name} is not of type integer."))
        if not 1 <= per_page <= 100:
            return Reply(
                400,
                _invalid_param(
                    "per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)"
                ),
            )
        if page < 1:
            return Reply(400, _invalid_param("page", "page must be greater than or equal to 1"))
        if refunds is not None:
            order_id = int(refunds.group(1))
            with self.lock:
                if order_id not in self._orders:
                    return Reply(
                        404, _wp_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
                    )
                items = sorted(
                    self._refunds.get(order_id, []),
                    key=lambda r: (r["date_created_gmt"], r["id"]),
                    reverse=True,
                )
        else:
            try:
                items = self._select(request)
            except _BadRequest as bad:
                name, message = next(iter(bad.errors.items()))
                return Reply(400, _invalid_param(name, message))
        total = len(items)
        total_pages = math.ceil(total / per_page)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
        links = []
        query = {k: v[0] for k, v in request.query.items()}
        if page > 1:
            prev_query = urlencode({**query, "page": min(page - 1, max(total_pages, 1))})
            links.append(f'<{self.url}{request.path}?{prev_query}>; rel="prev"')
        if page < total_pages:
            links.append(
                f'<{self.url}{request.path}?{urlencode({**query, "page": page + 1})}>; rel="next"'
            )
        if links:
            headers["Link"] = ", ".join(links)
        return Reply(200, [copy.deepcopy(o) for o in chunk], headers)

    def _authorised(self, request: ReceivedRequest) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == (self.consumer_key, self.consumer_secret)

    def _select(self, request: ReceivedRequest) -> list[JsonObject]:
        orderby = request.param("orderby") or "date"
        if orderby not in _WC_ORDERBY:
            raise _BadRequest(
                {"orderby": f"orderby is not one of {', '.join(sorted(_WC_ORDERBY))}."}
            )
        direction = request.param("order") or "desc"
        if direction not in ("asc", "desc"):
            raise _BadRequest({"order": "order is not one of asc, desc."})
        gmt = (request.param("dates_are_gmt") or "false").lower() in ("1", "true")
        modified_after = request.param("modified_after")
        after: datetime | None = None
        if modified_after is not None:
            try:
                after = datetime.fromisoformat(modified_after).replace(tzinfo=None)
            except ValueError:
                raise _BadRequest({"modified_after": "Invalid date."}) from None
        status = request.param("status") or "any"
        with self.lock:
            orders = list(self._orders.values())
        selected = []
        for order in orders:
            if status == "any" and order["status"] == "trash":
                continue
            if status != "any" and order["status"] not in status.split(","):
                continue
            if after is not None:
                stamp = order["date_modified_gmt" if gmt else "date_modified"]
                if not datetime.fromisoformat(stamp) > after:
                    continue
            selected.append(order)
        field_name = {
            "date": "date_created_gmt",
            "modified": "date_modified_gmt",
        }.get(orderby)
        if field_name is None:
            selected.sort(key=lambda o: int(o["id"]), reverse=direction == "desc")
        else:
            selected.sort(key=lambda o: (o[field_name], int(o["id"])), reverse=direction == "desc")
        return selected


def _wp_error(code: str, message: str, status: int) -> JsonObject:
    return {"code": code, "message": message, "data": {"status": status}}


def _invalid_param(name: str, message: str) -> JsonObject:
    return {
        "code": "rest_invalid_param",
        "message": f"Invalid parameter(s): {name}",
        "data": {"status": 400, "params": {name: message}},
    }
