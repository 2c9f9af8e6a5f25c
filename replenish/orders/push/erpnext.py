"""Draft orders to ERPNext as draft ``Purchase Order`` s (``docstatus`` 0)
over Frappe's REST API.

Wire format (Frappe "REST API", v1 paths, ERPNext v14/v15):

* auth: every request carries ``Authorization: token <api_key>:<api_secret>``
  (the API key and secret of an ERPNext user with the *Purchase User* role);
* ``GET /api/resource/<DocType>?filters=[[field, op, value]]&fields=[...]
  &limit_page_length=0`` lists documents → ``{"data": [{...}, ...]}``;
* ``GET /api/resource/<DocType>/<name>`` → ``{"data": {doc}}``;
* ``POST /api/resource/Purchase Order`` with the document as JSON →
  ``{"data": {doc}}`` (the name assigned, e.g. ``PUR-ORD-2024-00001``);
* ``PUT /api/resource/Purchase Order/<name>`` with the fields to change;
  a child table sent (``items``) replaces the document's rows;
* ``DELETE /api/resource/Purchase Order/<name>`` → HTTP 202 and ``{"data":
  "ok"}`` (v15; v14: ``{"message": "ok"}``); Frappe refuses to delete a
  submitted document (417 ``ValidationError`` "Submitted Record cannot be
  deleted");
* errors: an HTTP status and ``{"exc_type": "LinkValidationError",
  "exception": "...", "_server_messages": "[\\"{\\\\\\"message\\\\\\": ...}\\"]"}``
  — ``_server_messages`` is a JSON list of JSON-encoded messages. 417:
  validation (a missing link, a mandatory field, a rule), 404: no such
  document, 409: duplicate, 403: no permission (401/403 on the first look-up:
  the token is wrong), 5xx: a server fault (retried).

Mapping (the read side, replenish/sources/erpnext.py, reads the same names):
``supplier`` = our supplier_id (``tabSupplier.name``), ``items[].item_code``
= our SKU (``tabItem.name``), ``set_warehouse`` and ``items[].warehouse`` =
our location_id (a Warehouse name), ``items[].qty``, ``items[].rate`` (unit
price), ``items[].schedule_date`` = the line's expected delivery (ERPNext
requires one: when the lead time is unknown the planning date is sent),
``schedule_date`` (*Required By*) = the earliest of them,
``transaction_date`` = the planning date, ``company`` when
``REPLENISH_ERPNEXT_COMPANY`` is set (else the user's default company).

Idempotency key: the standard field ``title`` of Purchase Order (by
default; ``REPLENISH_ERPNEXT_KEY_FIELD``) holds our ``po_key``. ``title``
exists on every Purchase Order (Data, mandatory, default
``{supplier_name}``), is hidden in the form (a buyer does not overwrite it),
is ``no_copy`` (a duplicated or amended order does not inherit the key) and
``allow_on_submit``; since ERPNext v14 the list shows ``supplier_name`` as
the title, so nothing visible changes. ``order_confirmation_no`` exists too
but is where the buyer types the supplier's confirmation number once the
order is submitted, and it is copied on amendment: set
``REPLENISH_ERPNEXT_KEY_FIELD`` to it (or to a custom field such as
``replenish_po_key``) only knowing that. Before creating, Purchase Orders
with ``<key field> = po_key`` are listed (and the recorded name, when the
store passes one, is read):

* ``docstatus`` 0 (draft): its items are replaced by a ``PUT`` if they
  differ — ``updated`` — else ``unchanged``;
* ``docstatus`` 1 (submitted): the buyer owns it — ``skipped``;
* only ``docstatus`` 2 (cancelled): ``skipped`` (not created again);
* none: ``POST`` with ``docstatus`` 0 — ``created``. A ``POST`` without an
  answer that may have reached ERPNext (timeout, dropped connection,
  502/504) is looked up again only after ``in_doubt_wait`` seconds.

Of several, the one kept is :func:`~replenish.orders.push.core.keeper`'s
(submitted before draft, then the earliest ``creation``). The push ends with
a sweep: one list of ``<key field> in [keys]``; a second Purchase Order of a
key with ``docstatus`` 0 is deleted (``DELETE``), a submitted one is left and
reported.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from replenish.batching import chunks
from replenish.errors import ConfigurationError
from replenish.orders.documents import OrderDocument
from replenish.orders.push.core import (
    CANCELLED,
    CONFIRMED,
    DRAFT,
    LOST_ANSWER,
    Action,
    ErpOrder,
    ErpRejected,
    OrderOutcome,
    PushAuthError,
    PushError,
    PushReport,
    PushSettings,
    PushUnavailable,
    Transient,
    attempt,
    keeper,
    sweep,
    with_retries,
)

__all__ = ["ErpNextPusher", "ErpNextSettings", "FrappeError", "FrappeRest"]

DOCTYPE = "Purchase Order"
_LOOKUP_CHUNK = 100
_TAGS = re.compile(r"<[^>]+>")
_FIELDNAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ErpNextSettings(PushSettings):
    """Connection to ERPNext's REST API (``REPLENISH_ERPNEXT_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="REPLENISH_ERPNEXT_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    url: str | None = Field(None, description="ERPNext site URL, e.g. https://erp.example.com")
    api_key: SecretStr | None = Field(None, description="API key of the ERPNext user")
    api_secret: SecretStr | None = Field(None, description="API secret of the ERPNext user")
    key_field: str = Field("title", description="Purchase Order field holding our po_key")
    company: str | None = Field(None, description="Company of the orders (default: the user's)")
    set_warehouse: bool = Field(True, description="Send location_id as the target warehouse")

    def require(self) -> tuple[str, str]:
        """(url, 'token key:secret'), or ConfigurationError naming what is missing."""
        key = self.api_key.get_secret_value() if self.api_key else None
        secret = self.api_secret.get_secret_value() if self.api_secret else None
        values = {
            "REPLENISH_ERPNEXT_URL": self.url,
            "REPLENISH_ERPNEXT_API_KEY": key,
            "REPLENISH_ERPNEXT_API_SECRET": secret,
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ConfigurationError(f"ERPNext push: set {', '.join(missing)}")
        if not _FIELDNAME.match(self.key_field):
            raise ConfigurationError(
                f"REPLENISH_ERPNEXT_KEY_FIELD: expected a field name such as 'title', "
                f"got {self.key_field!r}"
            )
        return str(self.url).rstrip("/"), f"token {key}:{secret}"


class FrappeError(PushError):
    """ERPNext answered with an error: ``status`` (HTTP), ``kind``
    (``exc_type``: LinkValidationError, MandatoryError, ...) and ``message``
    (from ``_server_messages`` or ``exception``)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status, self.kind, self.message = status, kind, message
        super().__init__(f"HTTP {status} {kind}: {message}")


def _clean(text: str) -> str:
    return " ".join(_TAGS.sub("", text).split())


def _frappe_error(response: httpx.Response) -> tuple[str, str]:
    """(exc_type, message) of a Frappe error answer (any body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = _clean(response.text)[:300]
        return response.reason_phrase or "error", text or "(empty body)"
    kind = str(body.get("exc_type") or "")
    messages: list[str] = []
    raw = body.get("_server_messages")
    if isinstance(raw, str):
        try:
            items = json.loads(raw)
        except ValueError:
            items = [raw]
        for item in items if isinstance(items, list) else [items]:
            parsed: Any
            try:
                parsed = json.loads(item) if isinstance(item, str) else item
            except ValueError:
                parsed = item
            message = parsed.get("message") if isinstance(parsed, dict) else parsed
            if message:
                messages.append(_clean(str(message)))
    if not messages and body.get("exception"):
        exception = str(body["exception"])
        messages.append(_clean(exception.split(":", 1)[-1] if ":" in exception else exception))
        if not kind:
            kind = exception.split(":", 1)[0].rsplit(".", 1)[-1]
    if not messages and body.get("message"):
        messages.append(_clean(str(body["message"])))
    return kind or response.reason_phrase or "error", "; ".join(messages) or "(no message)"


def _server_error(response: httpx.Response) -> tuple[str, str] | None:
    """Frappe's own error in a 5xx answer (it names an ``exc_type``), else None
    (a proxy's page, an empty body)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not body.get("exc_type"):
        return None
    return _frappe_error(response)


class FrappeRest:
    """A small client of Frappe's ``/api/resource`` endpoints (one HTTP request
    per call, no retry here: the caller retries whole steps)."""

    def __init__(
        self,
        settings: ErpNextSettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.url, self._auth = settings.require()
        self._client = client
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FrappeRest(url={self.url!r})"

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.settings.timeout, headers={"User-Agent": "replenish"}
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def request(
        self,
        method: str,
        doctype: str,
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One call; the ``data`` of the answer (of a ``DELETE``: ``"ok"``,
        from ``data`` or, ERPNext v14, ``message``). Raises
        :class:`Transient` (5xx, 429, no answer), :class:`FrappeError` (4xx)
        or :class:`PushError` (not Frappe's protocol)."""
        path = f"/api/resource/{quote(doctype)}"
        if name is not None:
            path += "/" + quote(name, safe="")
        what = f"ERPNext {self.url}"
        query = {
            k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in (params or {}).items()
        }
        response = attempt(
            self._http(),
            method,
            self.url + path,
            what=what,
            explain=_server_error,
            params=query or None,
            json=body,
            headers={"Authorization": self._auth, "Accept": "application/json"},
            timeout=self.settings.timeout,
        )
        if response.status_code >= 400:
            kind, message = _frappe_error(response)
            raise FrappeError(response.status_code, kind, message)
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "?")
            raise PushError(
                f"{what}: the answer to {method} {path} is not JSON (content-type {kind}): "
                "is this the ERPNext site URL?"
            ) from None
        if method == "DELETE" and isinstance(data, dict) and "message" in data:
            return data.get("data", data["message"])
        if not isinstance(data, dict) or "data" not in data:
            raise PushError(f"{what}: the answer to {method} {path} has no 'data'")
        return data["data"]


def _erp_order(po_key: str, row: dict[str, Any]) -> ErpOrder:
    """A Purchase Order row (name, docstatus, status, creation) as the sweep
    and the keeper see it."""
    docstatus = int(row.get("docstatus") or 0)
    rank = DRAFT if docstatus == 0 else CONFIRMED if docstatus == 1 else CANCELLED
    status = f", {row['status']}" if row.get("status") else ""
    name = str(row.get("name"))
    return ErpOrder(
        po_key, name, name, f"docstatus {docstatus}{status}", rank,
        (str(row.get("creation") or ""), name), docstatus == 0,
    )  # fmt: skip


class ErpNextPusher:
    """Pushes order documents to one ERPNext site (module docstring)."""

    target = "erpnext"

    def __init__(
        self,
        settings: ErpNextSettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.rest = FrappeRest(settings, client=client, sleep=sleep)
        self._sleep = sleep
        self._own_client = client is None
        #: what was sent per order: a retry that finds it done reports that action
        self._sent: dict[str, Action] = {}

    def _retried(self, what: str, step: Callable[[], Any]) -> Any:
        return with_retries(
            step,
            what=what,
            max_attempts=self.settings.max_attempts,
            backoff=self.settings.backoff,
            sleep=self._sleep,
        )

    # ---- look-ups ------------------------------------------------------------------
    def _existing(
        self, doctype: str, names: list[str], fields: list[str]
    ) -> dict[str, dict[str, Any]]:
        """``{name: row}`` of the ``doctype`` records among ``names``."""
        out: dict[str, dict[str, Any]] = {}
        for part in chunks(sorted(set(names)), _LOOKUP_CHUNK):

            def step(part: list[str] = part) -> Any:
                return self.rest.request(
                    "GET",
                    doctype,
                    params={
                        "filters": [["name", "in", part]],
                        "fields": fields,
                        "limit_page_length": 0,
                    },
                )

            try:
                rows = self._retried(f"ERPNext: look up {doctype}", step)
            except FrappeError as e:
                if e.status in (401, 403):
                    raise PushAuthError(
                        f"ERPNext {self.rest.url} refused the API key (HTTP {e.status} {e.kind}: "
                        f"{e.message}): check REPLENISH_ERPNEXT_API_KEY/_API_SECRET and that "
                        f"the user may read {doctype}"
                    ) from None
                raise PushError(f"ERPNext: cannot look up {doctype}: {e}") from None
            for row in rows:
                out[str(row.get("name"))] = row
        return out

    # ---- one order -----------------------------------------------------------------
    def _items(self, doc: OrderDocument) -> list[dict[str, Any]]:
        items = []
        for line in doc.lines:
            item: dict[str, Any] = {
                "item_code": line.sku,
                "qty": line.qty,
                "rate": line.unit_price,
                "schedule_date": (line.expected_date or doc.as_of).isoformat(),
            }
            if self.settings.set_warehouse:
                item["warehouse"] = doc.location_id
            items.append(item)
        return items

    @staticmethod
    def _item_keys(items: list[dict[str, Any]], warehouse: bool) -> list[tuple[Any, ...]]:
        return sorted(
            (
                str(i.get("item_code")),
                round(float(i.get("qty") or 0), 6),
                round(float(i.get("rate") or 0), 2),
                str(i.get("schedule_date") or "")[:10],
                str(i.get("warehouse") or "") if warehouse else "",
            )
            for i in items
        )

    def _upsert(self, doc: OrderDocument, body: dict[str, Any]) -> OrderOutcome:
        rest, key_field = self.rest, self.settings.key_field
        n, total = len(doc.lines), doc.total
        found = rest.request(
            "GET",
            DOCTYPE,
            params={
                "filters": [[key_field, "=", doc.po_key]],
                "fields": ["name", "docstatus", "status", "creation"],
                "order_by": "creation asc",
                "limit_page_length": 0,
            },
        )
        if not found and doc.erp_id:
            try:
                found = [rest.request("GET", DOCTYPE, doc.erp_id)]
            except FrappeError as e:
                if e.status != 404:
                    raise
        kept = keeper(_erp_order(doc.po_key, r) for r in found)
        rows = {str(r["name"]): r for r in found}
        if kept is not None and kept.rank == CONFIRMED:
            name = kept.erp_id
            status = rows[name].get("status") or "submitted"
            return OrderOutcome(
                doc.po_key, "skipped", name, name,
                f"submitted in ERP ({name}, status {status!r})", n, total,
            )  # fmt: skip
        if kept is not None:
            name = kept.erp_id
            current = rest.request("GET", DOCTYPE, name)
            warehouse = self.settings.set_warehouse
            same = self._item_keys(current.get("items") or [], warehouse) == self._item_keys(
                body["items"], warehouse
            )
            if warehouse:
                same = same and current.get("set_warehouse") == body.get("set_warehouse")
            if same:
                if doc.po_key in self._sent:  # our request went through, its answer was lost
                    return OrderOutcome(
                        doc.po_key, self._sent[doc.po_key], name, name, LOST_ANSWER, n, total
                    )
                return OrderOutcome(doc.po_key, "unchanged", name, name, "", n, total)
            changes: dict[str, Any] = {
                k: body[k] for k in ("schedule_date", "set_warehouse", "items") if k in body
            }
            self._sent[doc.po_key] = "updated"
            rest.request("PUT", DOCTYPE, name, body=changes)
            return OrderOutcome(doc.po_key, "updated", name, name, "", n, total)
        if found:  # cancelled only
            name = str(found[0]["name"])
            return OrderOutcome(
                doc.po_key, "skipped", name, name,
                f"cancelled in ERP ({name}): not created again", n, total,
            )  # fmt: skip
        self._sent[doc.po_key] = "created"
        try:
            created = rest.request("POST", DOCTYPE, body=body)
        except Transient as fault:
            if fault.in_doubt:  # ERPNext may still create it: look again only after a while
                fault.at_least = self.settings.doubt_wait()
            raise
        name = str(created.get("name"))
        return OrderOutcome(doc.po_key, "created", name, name, "", n, total)

    def _body(self, doc: OrderDocument) -> dict[str, Any]:
        items = self._items(doc)
        body: dict[str, Any] = {
            "supplier": doc.supplier_id,
            "transaction_date": doc.as_of.isoformat(),
            "schedule_date": min(i["schedule_date"] for i in items),
            self.settings.key_field: doc.po_key,
            "docstatus": 0,
            "items": items,
        }
        if self.settings.set_warehouse:
            body["set_warehouse"] = doc.location_id
        if self.settings.company:
            body["company"] = self.settings.company
        return body

    # ---- the closing sweep ---------------------------------------------------------
    def _find_orders(self, keys: list[str]) -> list[ErpOrder]:
        key_field = self.settings.key_field
        out: list[ErpOrder] = []
        for part in chunks(keys, _LOOKUP_CHUNK):

            def step(part: list[str] = part) -> Any:
                return self.rest.request(
                    "GET",
                    DOCTYPE,
                    params={
                        "filters": [[key_field, "in", part]],
                        "fields": ["name", "docstatus", "status", "creation", key_field],
                        "order_by": "creation asc",
                        "limit_page_length": 0,
                    },
                )

            try:
                rows = self._retried(f"ERPNext: look up {DOCTYPE} again", step)
            except FrappeError as e:
                raise PushError(f"ERPNext: cannot look up {DOCTYPE} by {key_field}: {e}") from None
            out += [_erp_order(str(r.get(key_field)), r) for r in rows]
        return out

    def _remove(self, order: ErpOrder) -> tuple[bool, str]:
        """Delete a duplicate draft Purchase Order (ERPNext itself refuses a
        submitted one)."""

        def step() -> tuple[bool, str]:
            try:
                self.rest.request("DELETE", DOCTYPE, order.erp_id)
            except FrappeError as e:
                if e.status != 404:  # 404: gone (our delete's answer was lost)
                    raise
            return True, ""

        try:
            result: tuple[bool, str] = self._retried(
                f"ERPNext: remove duplicate {order.erp_id} of {order.po_key}", step
            )
        except FrappeError as e:
            return False, f"ERPNext refused to delete it: HTTP {e.status} {e.kind}: {e.message}"
        except PushUnavailable as e:
            if e.erp_error is None:
                raise
            return False, f"ERPNext failed to delete it: server error {': '.join(e.erp_error)}"
        return result

    # ---- the push ------------------------------------------------------------------
    def push(self, documents: Sequence[OrderDocument]) -> PushReport:
        """Push every document; see the module docstring for what happens to each.

        Raises:
            PushAuthError: the API key is refused.
            PushUnavailable: ERPNext stayed unreachable (``report`` has what was done).
            PushError: ERPNext's answers are not its protocol, or a look-up is refused.
        """
        report = PushReport(self.target)
        self._sent = {}
        if not documents:
            return report
        try:
            suppliers = self._existing(
                "Supplier", [d.supplier_id for d in documents], ["name", "disabled"]
            )
            items = self._existing(
                "Item", [line.sku for d in documents for line in d.lines], ["name", "disabled"]
            )
            warehouses = (
                self._existing(
                    "Warehouse", [d.location_id for d in documents], ["name", "is_group"]
                )
                if self.settings.set_warehouse
                else {}
            )
            for doc in documents:
                report.outcomes.append(self._push_one(doc, suppliers, items, warehouses))
            # every order the ERP answered for (a failed one may not even be readable)
            reached = [o.po_key for o in report.outcomes if o.action != "failed"]
            report.add_duplicates(sweep(reached, self._find_orders, self._remove))
        except PushUnavailable as e:
            e.report = report
            raise
        finally:
            if self._own_client:
                self.rest.close()
        return report

    def _push_one(
        self,
        doc: OrderDocument,
        suppliers: dict[str, dict[str, Any]],
        items: dict[str, dict[str, Any]],
        warehouses: dict[str, dict[str, Any]],
    ) -> OrderOutcome:
        n, total = len(doc.lines), doc.total
        problems = []
        supplier = suppliers.get(doc.supplier_id)
        if supplier is None:
            problems.append(f"unknown supplier: no Supplier {doc.supplier_id!r} in ERPNext")
        elif int(supplier.get("disabled") or 0):
            problems.append(f"Supplier {doc.supplier_id!r} is disabled in ERPNext")
        unknown = [line.sku for line in doc.lines if line.sku not in items]
        if unknown:
            problems.append(
                "unknown item(s) in ERPNext (no Item with that code): " + ", ".join(unknown)
            )
        disabled = [
            line.sku for line in doc.lines
            if line.sku in items and int(items[line.sku].get("disabled") or 0)
        ]  # fmt: skip
        if disabled:
            problems.append("item(s) disabled in ERPNext: " + ", ".join(disabled))
        if self.settings.set_warehouse:
            warehouse = warehouses.get(doc.location_id)
            if warehouse is None:
                problems.append(f"unknown location: no Warehouse {doc.location_id!r} in ERPNext")
            elif int(warehouse.get("is_group") or 0):
                problems.append(
                    f"Warehouse {doc.location_id!r} is a group warehouse: orders need a leaf one"
                )
        if problems:
            return OrderOutcome(
                doc.po_key, "failed", reason="; ".join(problems), lines=n, total=total
            )
        body = self._body(doc)

        try:
            outcome: OrderOutcome = self._retried(
                f"ERPNext: push order {doc.po_key}", lambda: self._upsert(doc, body)
            )
        except FrappeError as e:
            if e.status == 401:
                raise PushAuthError(
                    f"ERPNext {self.rest.url} refused the API key while pushing {doc.po_key}: "
                    f"{e.kind}: {e.message}"
                ) from None
            rejected = ErpRejected("ERPNext", doc.po_key, f"HTTP {e.status} {e.kind}", e.message)
            return OrderOutcome(doc.po_key, "failed", reason=str(rejected), lines=n, total=total)
        except PushUnavailable as e:
            if e.erp_error is None:
                raise
            kind, message = e.erp_error
            rejected = ErpRejected("ERPNext", doc.po_key, f"server error {kind}", message)
            return OrderOutcome(doc.po_key, "failed", reason=str(rejected), lines=n, total=total)
        return outcome
