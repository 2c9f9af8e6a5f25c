"""Draft orders to Odoo as RFQs (``purchase.order`` in state ``draft``) over
Odoo's external JSON-RPC API.

Wire format (Odoo "External API"): ``POST <url>/jsonrpc`` with
``{"jsonrpc": "2.0", "method": "call", "params": {"service": ..., "method":
..., "args": [...]}, "id": n}``; the answer is ``{"jsonrpc": "2.0", "id": n,
"result": ...}`` or ``{"jsonrpc": "2.0", "id": n, "error": {"code": 200,
"message": "Odoo Server Error", "data": {"name":
"odoo.exceptions.AccessError", "message": ...}}}``.

* ``common.login(db, login, password)`` → the user id (``false``: refused);
  the password may be an API key (Odoo ≥ 14, recommended).
* ``object.execute_kw(db, uid, password, model, method, args, kwargs)`` for
  everything else: ``search_read`` to look up, ``create`` and ``write``.

Mapping (the read side, replenish/sources/odoo.py, reads these same fields):

* supplier → ``res.partner``: by ``ref`` (the partner's "Reference"), by
  ``name``, or by ``id`` (what the *odoo* ERP profile calls supplier_id) —
  ``REPLENISH_ODOO_PARTNER_MATCH``;
* SKU → ``product.product`` by ``default_code`` (the Internal Reference);
* location → the receipt operation type ``stock.warehouse.in_type_id`` of the
  warehouse whose ``code`` is the location (``REPLENISH_ODOO_MAP_WAREHOUSES``;
  off: Odoo's default operation type);
* the order: ``partner_id``, ``picking_type_id``, ``origin`` = our ``po_key``
  (the *Source Document*: it is not copied when an RFQ is duplicated), and
  ``order_line`` as ``(0, 0, {product_id, product_qty, price_unit, name,
  date_planned})`` commands, all in **one** ``create`` call: Odoo creates the
  order and its lines in one transaction, there is no half-created order.
  ``date_planned`` of a line is the expected delivery at 12:00 UTC (the same
  calendar day in every timezone from UTC−11 to UTC+11); the order's own
  ``date_planned`` is not sent: Odoo computes it as the earliest line date,
  and writing it would overwrite every line's date. ``partner_ref`` (the
  vendor's reference) is left to the buyer.

Idempotency: before creating, ``purchase.order`` is searched by ``origin =
po_key`` (and by the recorded id when the store passes one); of several, the
one kept is :func:`~replenish.orders.push.core.keeper`'s (confirmed before
sent before draft, then the lowest id):

* a ``draft`` or ``sent`` RFQ is brought in line with the draft: untouched if
  its lines are equal (``unchanged``), else its lines are replaced in one
  ``write`` (``[(5, 0, 0), (0, 0, {...}), ...]``) — ``updated``;
* ``to approve``, ``purchase`` or ``done``: confirmed in the ERP, the buyer
  owns it now — ``skipped``;
* only ``cancel``: the buyer cancelled it — ``skipped`` (not re-created);
* none: ``create``. A create without an answer that may have reached Odoo
  (timeout, dropped connection, 502/504) is looked up again only after
  ``in_doubt_wait`` seconds.

The push ends with a sweep: one ``search_read`` of ``origin in [keys]``;
a second RFQ of a key in state ``draft`` is removed — ``button_cancel`` then
``unlink`` (Odoo deletes only cancelled purchase orders), its state read
again just before; one in any other state is left and reported.

Quantities are sent in the product's unit of measure (the purchase UoM is
assumed to be the product's, as on the read side).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Literal

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
    SENT,
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

__all__ = ["OdooFault", "OdooPusher", "OdooRpc", "OdooSettings"]

#: purchase.order states an RFQ may still be changed in
DRAFT_STATES = ("draft", "sent")
#: states in which the buyer has confirmed the order in Odoo
CONFIRMED_STATES = ("to approve", "purchase", "done")
#: a line's expected delivery is sent at this hour, UTC
DELIVERY_TIME = "12:00:00"
_LOOKUP_CHUNK = 200


class OdooSettings(PushSettings):
    """Connection to Odoo's JSON-RPC API (``REPLENISH_ODOO_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="REPLENISH_ODOO_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    url: str | None = Field(None, description="Odoo base URL, e.g. https://odoo.example.com")
    db: str | None = Field(None, description="Odoo database name")
    login: str | None = Field(None, description="Odoo user login")
    password: SecretStr | None = Field(None, description="The user's password or API key")
    partner_match: Literal["ref", "name", "id"] = Field(
        "ref", description="res.partner field our supplier_id is matched to"
    )
    map_warehouses: bool = Field(
        True, description="Match location_id to stock.warehouse.code for the receipt type"
    )

    def require(self) -> tuple[str, str, str, str]:
        """(url, db, login, password), or ConfigurationError naming what is missing."""
        values = {
            "REPLENISH_ODOO_URL": self.url,
            "REPLENISH_ODOO_DB": self.db,
            "REPLENISH_ODOO_LOGIN": self.login,
            "REPLENISH_ODOO_PASSWORD": self.password.get_secret_value() if self.password else None,
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ConfigurationError(f"Odoo push: set {', '.join(missing)}")
        url, db, login, password = (str(v) for v in values.values())
        return url.rstrip("/"), db, login, password


class OdooFault(PushError):
    """Odoo answered a call with its JSON-RPC error object: ``name`` is the
    Python exception (``odoo.exceptions.AccessError``), ``message`` its text."""

    def __init__(self, name: str, message: str, code: int | None = None) -> None:
        self.name, self.message, self.code = name, message, code
        super().__init__(f"{name}: {message}")


def _fault(error: Any) -> OdooFault:
    if not isinstance(error, dict):
        return OdooFault("error", str(error))
    raw = error.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = str(data.get("name") or error.get("message") or "error")
    message = str(data.get("message") or error.get("message") or "").strip()
    code = error.get("code")
    return OdooFault(name, message.splitlines()[0] if message else name, code)


_AUTH_FAULTS = ("odoo.exceptions.AccessDenied", "odoo.http.SessionExpiredException")


class OdooRpc:
    """A small client of Odoo's ``/jsonrpc`` endpoint (one HTTP request per call)."""

    def __init__(
        self,
        settings: OdooSettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.url, self.db, self.login_name, self._password = settings.require()
        self._client = client
        self._sleep = sleep
        self._ids = itertools.count(1)
        self.uid: int | None = None

    def __repr__(self) -> str:
        return f"OdooRpc(url={self.url!r}, db={self.db!r}, login={self.login_name!r})"

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.settings.timeout, headers={"User-Agent": "replenish"}
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def call(self, service: str, method: str, *args: Any) -> Any:
        """One JSON-RPC call; raises :class:`Transient`, :class:`OdooFault` or
        :class:`PushError` (not Odoo's protocol)."""
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": list(args)},
            "id": next(self._ids),
        }
        what = f"Odoo {self.url}"
        response = attempt(
            self._http(),
            "POST",
            f"{self.url}/jsonrpc",
            what=what,
            json=payload,
            timeout=self.settings.timeout,
        )
        if response.status_code == 404:
            raise PushError(f"{what}: no /jsonrpc endpoint (HTTP 404): is this Odoo's URL?")
        if response.status_code >= 400:
            raise PushError(f"{what}: HTTP {response.status_code} {response.reason_phrase}")
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "?")
            raise PushError(f"{what}: the answer is not JSON-RPC (content-type {kind})") from None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise PushError(f"{what}: the answer is not a JSON-RPC response")
        if body.get("error") is not None:
            fault = _fault(body["error"])
            if fault.name in _AUTH_FAULTS:
                raise PushAuthError(
                    f"Odoo refused user {self.login_name!r} on database {self.db!r}: "
                    f"{fault.message}"
                )
            raise fault
        return body["result"]

    def login(self) -> int:
        """``common.login``; the uid, or :class:`PushAuthError`."""

        def step() -> Any:
            return self.call("common", "login", self.db, self.login_name, self._password)

        uid = with_retries(
            step,
            what=f"Odoo login at {self.url}",
            max_attempts=self.settings.max_attempts,
            backoff=self.settings.backoff,
            sleep=self._sleep,
        )
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise PushAuthError(
                f"Odoo refused the login of {self.login_name!r} on database {self.db!r}: "
                "wrong login, password or API key"
            )
        self.uid = uid
        return uid

    def execute(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``object.execute_kw`` (one attempt)."""
        if self.uid is None:
            self.login()
        return self.call(
            "object",
            "execute_kw",
            self.db,
            self.uid,
            self._password,
            model,
            method,
            list(args),
            kwargs,
        )

    def retried(self, what: str, step: Callable[[], Any]) -> Any:
        return with_retries(
            step,
            what=what,
            max_attempts=self.settings.max_attempts,
            backoff=self.settings.backoff,
            sleep=self._sleep,
        )


def _m2o_id(value: Any) -> int | None:
    """A many2one as search_read returns it: ``[id, "name"]`` or ``false``."""
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _erp_order(po_key: str, row: dict[str, Any]) -> ErpOrder:
    """A ``purchase.order`` row (id, name, state) as the sweep and the keeper see it."""
    state = str(row.get("state") or "")
    rank = (
        DRAFT if state == "draft"
        else SENT if state == "sent"
        else CANCELLED if state == "cancel"
        else CONFIRMED  # to approve, purchase, done, or a state of a custom module
    )  # fmt: skip
    return ErpOrder(
        po_key, str(row["id"]), str(row.get("name") or ""), f"state {state!r}", rank,
        (int(row["id"]),), state == "draft",
    )  # fmt: skip


def _odoo_datetime(day: date) -> str:
    return f"{day.isoformat()} {DELIVERY_TIME}"


class OdooPusher:
    """Pushes order documents to one Odoo database (module docstring)."""

    target = "odoo"

    def __init__(
        self,
        settings: OdooSettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.rpc = OdooRpc(settings, client=client, sleep=sleep)
        self._own_client = client is None
        #: what was sent per order: a retry that finds it done reports that action
        self._sent: dict[str, Action] = {}

    # ---- look-ups (one search_read per model and chunk) -----------------------------
    def _search_in(
        self, model: str, field: str, values: list[Any], fields: list[str]
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for part in chunks(values, _LOOKUP_CHUNK):

            def step(part: list[Any] = part) -> Any:
                return self.rpc.execute(
                    model, "search_read", [[field, "in", part]], fields=fields, order="id"
                )

            try:
                rows += self.rpc.retried(f"Odoo: look up {model}", step)
            except OdooFault as fault:
                raise PushError(f"Odoo: cannot look up {model} by {field}: {fault}") from None
        return rows

    def _partners(self, docs: Sequence[OrderDocument]) -> dict[str, int | str]:
        """supplier_id → partner id, or why not."""
        how = self.settings.partner_match
        wanted = sorted({d.supplier_id for d in docs})
        found: dict[str, int | str] = {}
        if how == "id":
            ids = {s: int(s) for s in wanted if s.isdigit()}
            for s in wanted:
                if s not in ids:
                    found[s] = f"supplier_id {s!r} is not an Odoo partner id (partner_match=id)"
            rows = self._search_in("res.partner", "id", sorted(set(ids.values())), ["id"])
            known = {int(r["id"]) for r in rows}
            for s, pid in ids.items():
                found[s] = pid if pid in known else f"no res.partner with id {pid} in Odoo"
            return found
        rows = self._search_in("res.partner", how, wanted, ["id", how])
        matches: dict[str, list[int]] = {}
        for r in rows:
            matches.setdefault(str(r.get(how)), []).append(int(r["id"]))
        for s in wanted:
            ids_found = matches.get(s, [])
            if len(ids_found) == 1:
                found[s] = ids_found[0]
            elif not ids_found:
                found[s] = f"no res.partner with {how} {s!r} in Odoo"
            else:
                found[s] = f"{len(ids_found)} res.partner records have {how} {s!r}: {ids_found}"
        return found

    def _products(self, docs: Sequence[OrderDocument]) -> dict[str, tuple[int, str] | str]:
        """SKU → (product id, product name), or why not."""
        wanted = sorted({line.sku for d in docs for line in d.lines})
        rows = self._search_in(
            "product.product", "default_code", wanted, ["id", "default_code", "name"]
        )
        matches: dict[str, list[tuple[int, str]]] = {}
        for r in rows:
            matches.setdefault(str(r.get("default_code")), []).append(
                (int(r["id"]), str(r.get("name") or ""))
            )
        found: dict[str, tuple[int, str] | str] = {}
        for sku in wanted:
            hits = matches.get(sku, [])
            if len(hits) == 1:
                found[sku] = hits[0]
            elif not hits:
                found[sku] = sku
            else:
                found[sku] = f"{sku} (ambiguous: product ids {[h[0] for h in hits]})"
        return found

    def _receipt_types(self, docs: Sequence[OrderDocument]) -> dict[str, int | str]:
        """location_id → the warehouse's receipt operation type id, or why not."""
        wanted = sorted({d.location_id for d in docs})
        rows = self._search_in("stock.warehouse", "code", wanted, ["id", "code", "in_type_id"])
        found: dict[str, int | str] = {}
        for loc in wanted:
            hits = [r for r in rows if str(r.get("code")) == loc]
            type_id = _m2o_id(hits[0].get("in_type_id")) if len(hits) == 1 else None
            if type_id is not None:
                found[loc] = type_id
            elif not hits:
                found[loc] = f"no stock.warehouse with code {loc!r} in Odoo"
            else:
                found[loc] = f"warehouse {loc!r} has no receipt operation type"
        return found

    # ---- one order ------------------------------------------------------------------
    def _lines(
        self, doc: OrderDocument, products: dict[str, tuple[int, str] | str]
    ) -> list[dict[str, Any]]:
        out = []
        for line in doc.lines:
            product = products[line.sku]
            assert isinstance(product, tuple)
            pid, product_name = product
            code = line.supplier_sku or line.sku
            vals: dict[str, Any] = {
                "product_id": pid,
                "product_qty": line.qty,
                "price_unit": line.unit_price,
                "name": f"[{code}] {line.description or product_name}".strip(),
            }
            if line.expected_date is not None:
                vals["date_planned"] = _odoo_datetime(line.expected_date)
            out.append(vals)
        return out

    @staticmethod
    def _same_lines(existing: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
        def key(product: Any, qty: Any, price: Any, planned: Any) -> tuple[Any, ...]:
            return (_m2o_id(product), round(float(qty), 6), round(float(price), 6), planned)

        def planned(vals: dict[str, Any], known: bool) -> Any:
            return str(vals.get("date_planned") or "")[:19] if known else None

        dated = any("date_planned" in w for w in wanted)
        have = sorted(
            key(r.get("product_id"), r.get("product_qty"), r.get("price_unit"), planned(r, dated))
            for r in existing
        )
        want = sorted(
            key(w["product_id"], w["product_qty"], w["price_unit"], planned(w, dated))
            for w in wanted
        )
        return have == want

    def _upsert(
        self, doc: OrderDocument, header: dict[str, Any], lines: list[dict[str, Any]]
    ) -> OrderOutcome:
        """Look the order up by origin, then create, update, or leave it."""
        rpc = self.rpc
        fields = ["id", "name", "state", "picking_type_id"]
        found = rpc.execute(
            "purchase.order",
            "search_read",
            [["origin", "=", doc.po_key]],
            fields=fields,
            order="id",
        )
        if not found and doc.erp_id and doc.erp_id.isdigit():
            found = rpc.execute(
                "purchase.order", "search_read", [["id", "=", int(doc.erp_id)]], fields=fields
            )
        n, total = len(doc.lines), doc.total
        kept = keeper(_erp_order(doc.po_key, r) for r in found)
        rows = {str(r["id"]): r for r in found}
        if kept is not None and kept.rank == CONFIRMED:
            r = rows[kept.erp_id]
            return OrderOutcome(
                doc.po_key, "skipped", str(r["id"]), str(r.get("name") or ""),
                f"confirmed in ERP ({r.get('name')}, state {r.get('state')!r})", n, total,
            )  # fmt: skip
        if kept is not None:
            r = rows[kept.erp_id]
            order_id = int(r["id"])
            existing = rpc.execute(
                "purchase.order.line",
                "search_read",
                [["order_id", "=", order_id]],
                fields=["product_id", "product_qty", "price_unit", "date_planned"],
            )
            same_type = "picking_type_id" not in header or header["picking_type_id"] == _m2o_id(
                r.get("picking_type_id")
            )
            name = str(r.get("name") or "")
            if self._same_lines(existing, lines) and same_type:
                if doc.po_key in self._sent:  # our request went through, its answer was lost
                    return OrderOutcome(
                        doc.po_key,
                        self._sent[doc.po_key],
                        str(order_id),
                        name,
                        LOST_ANSWER,
                        n,
                        total,
                    )
                return OrderOutcome(doc.po_key, "unchanged", str(order_id), name, "", n, total)
            vals = {k: v for k, v in header.items() if k in ("picking_type_id",)}
            vals["order_line"] = [[5, 0, 0]] + [[0, 0, line] for line in lines]
            self._sent[doc.po_key] = "updated"
            rpc.execute("purchase.order", "write", [order_id], vals)
            note = (
                "RFQ was already sent to the vendor: send it again"
                if r.get("state") == "sent"
                else ""
            )
            return OrderOutcome(doc.po_key, "updated", str(order_id), name, note, n, total)
        if found:  # cancelled only
            r = found[0]
            return OrderOutcome(
                doc.po_key, "skipped", str(r["id"]), str(r.get("name") or ""),
                f"cancelled in ERP ({r.get('name')}): not created again", n, total,
            )  # fmt: skip
        vals = dict(header)
        vals["order_line"] = [[0, 0, line] for line in lines]
        self._sent[doc.po_key] = "created"
        try:
            new_id = int(rpc.execute("purchase.order", "create", vals))
        except Transient as fault:
            if fault.in_doubt:  # Odoo may still create it: look again only after a while
                fault.at_least = self.settings.doubt_wait()
            raise
        read = rpc.execute("purchase.order", "read", [new_id], fields=["name"])
        name = str(read[0].get("name") or "") if read else ""
        return OrderOutcome(doc.po_key, "created", str(new_id), name, "", n, total)

    # ---- the closing sweep ----------------------------------------------------------
    def _find_orders(self, keys: list[str]) -> list[ErpOrder]:
        rows = self._search_in("purchase.order", "origin", keys, ["id", "name", "state", "origin"])
        return [_erp_order(str(r.get("origin")), r) for r in rows]

    def _remove(self, order: ErpOrder) -> tuple[bool, str]:
        """Cancel then delete a duplicate RFQ still in state ``draft`` (its
        state read again first: a buyer may have just confirmed it)."""
        rpc, oid = self.rpc, int(order.erp_id)
        cancelled = False

        def step() -> tuple[bool, str]:
            nonlocal cancelled
            rows = rpc.execute(
                "purchase.order", "search_read", [["id", "=", oid]], fields=["state"]
            )
            if not rows:  # gone: our unlink went through, its answer was lost
                return True, ""
            state = rows[0].get("state")
            if state == "draft":
                cancelled = True
                rpc.execute("purchase.order", "button_cancel", [oid])
            elif state == "cancel" and not cancelled:  # a buyer was quicker: leave it
                return True, "cancelled in the ERP meanwhile; not deleted"
            elif state != "cancel":
                return False, f"its state became {state!r} before it could be removed"
            try:
                rpc.execute("purchase.order", "unlink", [oid])
            except OdooFault as fault:
                return True, f"cancelled; Odoo refused to delete it: {fault}"
            return True, ""

        try:
            result: tuple[bool, str] = rpc.retried(
                f"Odoo: remove duplicate {order.erp_name or oid} of {order.po_key}", step
            )
        except OdooFault as fault:
            return False, f"Odoo refused to cancel it: {fault}"
        return result

    # ---- the push -------------------------------------------------------------------
    def push(self, documents: Sequence[OrderDocument]) -> PushReport:
        """Push every document; see the module docstring for what happens to each.

        Raises:
            PushAuthError: the login is refused.
            PushUnavailable: Odoo stayed unreachable (``report`` has what was done).
            PushError: Odoo's answers are not JSON-RPC, or a look-up is refused.
        """
        report = PushReport(self.target)
        self._sent = {}
        if not documents:
            return report
        try:
            self.rpc.login()
            partners = self._partners(documents)
            products = self._products(documents)
            types = self._receipt_types(documents) if self.settings.map_warehouses else {}
            for doc in documents:
                report.outcomes.append(self._push_one(doc, partners, products, types))
            # every order the ERP answered for (a failed one may not even be readable)
            reached = [o.po_key for o in report.outcomes if o.action != "failed"]
            report.add_duplicates(sweep(reached, self._find_orders, self._remove))
        except PushUnavailable as e:
            e.report = report
            raise
        finally:
            if self._own_client:
                self.rpc.close()
        return report

    def _push_one(
        self,
        doc: OrderDocument,
        partners: dict[str, int | str],
        products: dict[str, tuple[int, str] | str],
        types: dict[str, int | str],
    ) -> OrderOutcome:
        n, total = len(doc.lines), doc.total
        problems = []
        partner = partners[doc.supplier_id]
        if isinstance(partner, str):
            problems.append(f"unknown supplier: {partner}")
        unknown = [p for p in (products[line.sku] for line in doc.lines) if isinstance(p, str)]
        if unknown:
            problems.append(
                "unknown product(s) in Odoo (no product.product with that default_code): "
                + ", ".join(unknown)
            )
        picking = types.get(doc.location_id) if self.settings.map_warehouses else None
        if isinstance(picking, str):
            problems.append(f"unknown location: {picking}")
        if problems:
            return OrderOutcome(
                doc.po_key, "failed", reason="; ".join(problems), lines=n, total=total
            )
        header: dict[str, Any] = {"partner_id": partner, "origin": doc.po_key}
        if isinstance(picking, int):
            header["picking_type_id"] = picking
        lines = self._lines(doc, products)
        try:
            outcome: OrderOutcome = self.rpc.retried(
                f"Odoo: push order {doc.po_key}", lambda: self._upsert(doc, header, lines)
            )
        except OdooFault as fault:
            rejected = ErpRejected("Odoo", doc.po_key, fault.name, fault.message)
            return OrderOutcome(doc.po_key, "failed", reason=str(rejected), lines=n, total=total)
        return outcome
