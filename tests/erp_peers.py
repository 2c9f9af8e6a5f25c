"""Local ERP peers for the push tests: an Odoo JSON-RPC server and an ERPNext
(Frappe) REST server, each a thread in the test process on 127.0.0.1.

They speak the real wire formats and keep state:

* :class:`OdooPeer` answers ``POST /jsonrpc`` with JSON-RPC 2.0 envelopes
  (``{"jsonrpc": "2.0", "method": "call", "params": {"service", "method",
  "args"}, "id"}``): ``common.login``/``authenticate``/``version`` and
  ``object.execute_kw`` with ``search``, ``search_read``, ``search_count``,
  ``read``, ``create``, ``write``, ``unlink``, ``button_confirm``,
  ``button_cancel`` on ``res.partner``, ``product.product``,
  ``stock.warehouse``, ``stock.picking.type``, ``purchase.order`` and
  ``purchase.order.line``. Domains in Polish notation (``&``, ``|``, ``!``;
  ``=``, ``!=``, ``in``, ``not in``, ``<``, ``>``, ``<=``, ``>=``, ``like``,
  ``ilike``), inactive records hidden unless the domain names ``active``,
  many2one values read as ``[id, display_name]``, one2many commands 0, 1, 2,
  4, 5 and 6. It enforces what Odoo enforces that matters here: the login
  (AccessDenied), per-user access rights per model and operation
  (AccessError), required fields and existing many2one targets
  (ValidationError), datetime strings as ``YYYY-MM-DD HH:MM:SS``
  (ValueError), no deletion of lines of a confirmed order (UserError), no
  ``unlink`` of a purchase order that is not cancelled (UserError "In order
  to delete a purchase order, you must cancel it first.", as Odoo ≥ 14's
  ``_unlink_if_cancelled``), and every call is one transaction (an error
  rolls the whole call back).
  Errors are Odoo's JSON-RPC error object (``code`` 200, ``message`` "Odoo
  Server Error", ``data.name``/``data.message``).
* :class:`ErpNextPeer` answers ``/api/resource/<DocType>[/<name>]``
  (GET list with ``filters``/``fields``/``order_by``/``limit_page_length``
  as JSON in the query string, GET one, POST, PUT, DELETE) with Frappe's
  ``{"data": ...}`` envelope, for ``Supplier``, ``Item``, ``Warehouse`` and
  ``Purchase Order``. It checks ``Authorization: token key:secret`` (403
  otherwise), mandatory fields (MandatoryError), links (LinkValidationError),
  blocked suppliers and dates (ValidationError), submitted and cancelled
  documents (UpdateAfterSubmitError), write and delete permission
  (PermissionError), no deletion of a submitted document (ValidationError
  "Submitted Record cannot be deleted", as ``frappe.delete_doc``), each with
  Frappe's error body (``exc_type``, ``exception``, ``_server_messages``)
  and status (417, 404, 403); a deletion answers 202 ``{"data": "ok"}``
  (Frappe v15).

Both count HTTP requests from 1 and take ``faults={call number: Fault}``:
``Fault.http500()`` (answer 500 without doing anything), ``Fault.drop()``
(close the connection without an answer), ``Fault.drop_after()`` (do the
call, then close without answering: the client cannot know it happened),
``Fault.delay(seconds)`` (answer late: client timeouts; the call is done
after the delay, whether the client still waits or not), ``Fault.twice()``
(do the call twice and answer the second: a proxy that replayed the
request), and ``Fault.error(...)`` (answer the ERP's own error for that call). Every request
is logged in ``peer.calls`` (call number and what it was), so a test can find
the number of, say, the create in a clean run and break exactly that one;
``peer.wait_idle()`` returns once every request received is finished.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers import LOOPBACK

__all__ = ["Call", "ErpNextPeer", "Fault", "OdooPeer"]


@dataclass(frozen=True)
class Fault:
    """What goes wrong at one call (see the module docstring)."""

    kind: str
    seconds: float = 0.0
    status: int = 500
    name: str = ""
    message: str = ""

    @classmethod
    def http500(cls) -> Fault:
        return cls("http500")

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def drop_after(cls) -> Fault:
        return cls("drop_after")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def twice(cls) -> Fault:
        return cls("twice")

    @classmethod
    def error(cls, name: str, message: str, status: int = 417) -> Fault:
        """Odoo: a JSON-RPC error with ``data.name = name``; ERPNext: an
        answer with ``exc_type = name`` and HTTP ``status``."""
        return cls("error", status=status, name=name, message=message)


@dataclass(frozen=True)
class Call:
    number: int
    method: str  # HTTP method
    path: str
    what: str  # "common.login", "purchase.order.create", "POST Purchase Order", ...
    body: Any = None
    fault: str | None = None


class _Reply(Exception):
    """Internal: the HTTP answer of a request (status and JSON body)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = False
    peer: _Peer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def _handle(self) -> None:
        self.server.peer._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Peer:
    """Start/stop, request counting, fault injection, the call log."""

    def __init__(self, faults: dict[int, Fault] | None = None) -> None:
        self.faults: dict[int, Fault] = dict(faults or {})
        self.host = LOOPBACK
        self.port = 0
        self._calls: list[Call] = []
        self._lock = threading.RLock()
        self._busy = 0
        self._idle = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once every request received so far is finished (a call
        the client gave up on may still be executing), at most ``timeout``."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                raise TimeoutError(f"{type(self).__name__}: {self._busy} request(s) still running")

    def _serve(self, handler: _Handler) -> None:
        with self._idle:
            self._busy += 1
        try:
            self._serve_one(handler)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _serve_one(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            number = len(self._calls) + 1
            fault = self.faults.pop(number, None)
            what = self._describe(handler.command, handler.path, body)
            self._calls.append(
                Call(number, handler.command, handler.path, what, body, fault and fault.kind)
            )
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "http500":
            self._send(
                handler, 500, b"<html><body>500 Internal Server Error</body></html>", "text/html"
            )
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "error":
            status, answer = self._error_answer(fault, body)
        else:
            with self._lock:
                status, answer = self._dispatch(handler, body)
                if fault is not None and fault.kind == "twice":
                    status, answer = self._dispatch(handler, body)
        if fault is not None and fault.kind == "drop_after":
            handler.close_connection = True
            return
        self._send(handler, status, json.dumps(answer).encode(), "application/json")

    @staticmethod
    def _send(handler: _Handler, status: int, payload: bytes, content_type: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    # overridden by each peer
    def _describe(self, method: str, path: str, body: Any) -> str:
        return f"{method} {path}"

    def _dispatch(self, handler: _Handler, body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def _error_answer(self, fault: Fault, body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    # lifecycle
    def start(self) -> Self:
        server = _Server((LOOPBACK, 0), _Handler)
        server.peer = self
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
        server.shutdown()
        server.server_close()
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


# =========================================================================== Odoo


class _OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


def _odoo_error_body(request_id: Any, name: str, message: str, code: int = 200) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": code,
            "message": "Odoo Server Error",
            "data": {
                "name": name,
                "debug": f"Traceback (most recent call last):\n  ...\n{name}: {message}\n",
                "message": message,
                "arguments": [message],
                "context": {},
            },
        },
    }


_DT_FORMAT = "%Y-%m-%d %H:%M:%S"

#: model → field → type: char, int, float, bool, datetime, selection,
#: m2o:<model>, o2m:<model>:<inverse field>
_ODOO_MODELS: dict[str, dict[str, str]] = {
    "res.partner": {
        "name": "char", "ref": "char", "email": "char", "active": "bool", "is_company": "bool",
    },
    "product.product": {
        "default_code": "char", "name": "char", "active": "bool", "purchase_ok": "bool",
    },
    "stock.picking.type": {"name": "char", "code": "char", "warehouse_id": "m2o:stock.warehouse"},
    "stock.warehouse": {
        "name": "char", "code": "char", "in_type_id": "m2o:stock.picking.type", "active": "bool",
    },
    "purchase.order": {
        "name": "char", "partner_id": "m2o:res.partner", "origin": "char", "partner_ref": "char",
        "state": "selection", "picking_type_id": "m2o:stock.picking.type",
        "date_order": "datetime", "date_planned": "datetime",
        "order_line": "o2m:purchase.order.line:order_id", "amount_total": "float",
    },
    "purchase.order.line": {
        "order_id": "m2o:purchase.order", "product_id": "m2o:product.product", "name": "char",
        "product_qty": "float", "price_unit": "float", "date_planned": "datetime",
        "price_subtotal": "float", "state": "selection",
    },
}  # fmt: skip
_MODEL_LABELS = {
    "res.partner": "Contact",
    "product.product": "Product Variant",
    "stock.picking.type": "Operation Type",
    "stock.warehouse": "Warehouse",
    "purchase.order": "Purchase Order",
    "purchase.order.line": "Purchase Order Line",
}
_REQUIRED = {
    "purchase.order": ("partner_id", "picking_type_id"),
    "purchase.order.line": ("order_id", "name", "product_qty", "price_unit"),
}
_STATE_LABELS = {
    "draft": "RFQ",
    "sent": "RFQ Sent",
    "to approve": "To Approve",
    "purchase": "Purchase Order",
    "done": "Locked",
    "cancel": "Cancelled",
}
_OPS = ("read", "create", "write", "unlink")
_ARGS = {
    "search": ["domain", "offset", "limit", "order"],
    "search_read": ["domain", "fields", "offset", "limit", "order"],
    "search_count": ["domain"],
    "read": ["ids", "fields"],
    "create": ["vals"],
    "write": ["ids", "vals"],
    "unlink": ["ids"],
    "button_confirm": ["ids"],
    "button_cancel": ["ids"],
}


@dataclass
class OdooUser:
    login: str
    password: str
    #: model → allowed operations (missing model: all operations)
    rights: dict[str, set[str]] = field(default_factory=dict)


class OdooPeer(_Peer):
    """A stateful Odoo JSON-RPC endpoint (module docstring)."""

    def __init__(
        self,
        *,
        db: str = "odoo",
        login: str = "buyer@example.com",
        password: str = "api-key-1",
        faults: dict[int, Fault] | None = None,
    ) -> None:
        super().__init__(faults)
        self.db = db
        self.users: dict[int, OdooUser] = {2: OdooUser(login, password)}
        self.tables: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in _ODOO_MODELS}
        self._next_id: dict[str, int] = {m: 1 for m in _ODOO_MODELS}
        self._po_sequence = 0

    # ---- fixtures --------------------------------------------------------------------
    def _insert(self, model: str, values: dict[str, Any]) -> int:
        rid = self._next_id[model]
        self._next_id[model] += 1
        record = {f: None for f in _ODOO_MODELS[model]}
        record.update(values)
        record["id"] = rid
        if "active" in _ODOO_MODELS[model] and record.get("active") is None:
            record["active"] = True
        self.tables[model][rid] = record
        return rid

    def add_partner(self, name: str, ref: str | None = None, *, active: bool = True) -> int:
        with self._lock:
            return self._insert(
                "res.partner", {"name": name, "ref": ref, "active": active, "is_company": True}
            )

    def add_product(self, default_code: str, name: str, *, active: bool = True) -> int:
        with self._lock:
            return self._insert(
                "product.product",
                {"default_code": default_code, "name": name, "active": active, "purchase_ok": True},
            )

    def add_warehouse(self, code: str, name: str | None = None) -> tuple[int, int]:
        """A warehouse and its receipt operation type: (warehouse id, type id)."""
        with self._lock:
            wid = self._insert("stock.warehouse", {"code": code, "name": name or code})
            tid = self._insert(
                "stock.picking.type",
                {"name": f"{name or code}: Receipts", "code": "incoming", "warehouse_id": wid},
            )
            self.tables["stock.warehouse"][wid]["in_type_id"] = tid
            return wid, tid

    def add_user(self, login: str, password: str, rights: dict[str, set[str]]) -> int:
        with self._lock:
            uid = max(self.users) + 1
            self.users[uid] = OdooUser(login, password, rights)
            return uid

    def set_state(self, order_id: int, state: str) -> None:
        """What a buyer does in Odoo: confirm ('purchase'), cancel, lock ('done')."""
        with self._lock:
            self.tables["purchase.order"][order_id]["state"] = state

    def copy_order(self, order_id: int) -> int:
        """What a create executed a second time leaves (a request the ERP ran
        late, or twice): a new draft RFQ with the same origin and lines, its
        own id and name. Returns the new id."""
        with self._lock:
            source = self.tables["purchase.order"][order_id]
            values = {k: v for k, v in source.items() if k not in ("id", "name")}
            rid = self._insert("purchase.order", {**values, "state": "draft"})
            self._po_sequence += 1
            self.tables["purchase.order"][rid]["name"] = f"P{self._po_sequence:05d}"
            for line in [
                dict(ln)
                for ln in self.tables["purchase.order.line"].values()
                if ln["order_id"] == order_id
            ]:
                self._insert(
                    "purchase.order.line",
                    {k: v for k, v in line.items() if k != "id"} | {"order_id": rid},
                )
            return rid

    def orders(self) -> list[dict[str, Any]]:
        """Every purchase order with its lines (plain values), by id."""
        with self._lock:
            out = []
            for order in sorted(self.tables["purchase.order"].values(), key=lambda r: r["id"]):
                lines = [
                    dict(line)
                    for line in sorted(
                        self.tables["purchase.order.line"].values(), key=lambda r: r["id"]
                    )
                    if line["order_id"] == order["id"]
                ]
                out.append({**order, "lines": lines})
            return out

    # ---- protocol --------------------------------------------------------------------
    def _describe(self, method: str, path: str, body: Any) -> str:
        try:
            params = body["params"]
            if params["service"] == "object":
                return f"{params['args'][3]}.{params['args'][4]}"
            return f"{params['service']}.{params['method']}"
        except (KeyError, IndexError, TypeError):
            return f"{method} {path}"

    def _error_answer(self, fault: Fault, body: Any) -> tuple[int, Any]:
        request_id = body.get("id") if isinstance(body, dict) else None
        return 200, _odoo_error_body(request_id, fault.name, fault.message)

    def _dispatch(self, handler: _Handler, body: Any) -> tuple[int, Any]:
        if urlsplit(handler.path).path != "/jsonrpc":
            return 404, {"error": "not found"}
        if handler.command != "POST":
            return 405, {"error": "method not allowed"}
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or "params" not in body:
            return 200, {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32600, "message": "Invalid Request", "data": {}},
            }
        request_id = body.get("id")
        params = body["params"]
        snapshot = (copy.deepcopy(self.tables), dict(self._next_id), self._po_sequence)
        try:
            result = self._rpc(
                params.get("service"), params.get("method"), params.get("args") or []
            )
        except _OdooError as e:
            self.tables, self._next_id, self._po_sequence = snapshot  # the call's transaction
            return 200, _odoo_error_body(request_id, e.name, e.message)
        return 200, {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _rpc(self, service: str, method: str, args: list[Any]) -> Any:
        if service == "common":
            if method == "version":
                return {"server_version": "17.0", "server_version_info": [17, 0, 0, "final", 0, ""],
                        "server_serie": "17.0", "protocol_version": 1}  # fmt: skip
            if method in ("login", "authenticate"):
                db, login, password = args[0], args[1], args[2]
                if db != self.db:
                    raise _OdooError(
                        "psycopg2.OperationalError", f'FATAL:  database "{db}" does not exist'
                    )
                for uid, user in self.users.items():
                    if user.login == login and user.password == password:
                        return uid
                return False
            raise _OdooError("builtins.NameError", f"method {method!r} is not supported")
        if service != "object" or method not in ("execute_kw", "execute"):
            raise _OdooError("builtins.NameError", f"service {service!r} / {method!r} unknown")
        db, uid, password, model, name = args[:5]
        call_args = list(args[5]) if len(args) > 5 else []
        kwargs = dict(args[6]) if len(args) > 6 and isinstance(args[6], dict) else {}
        if db != self.db:
            raise _OdooError("psycopg2.OperationalError", f'FATAL:  database "{db}" does not exist')
        user = self.users.get(uid) if isinstance(uid, int) else None
        if user is None or user.password != password:
            raise _OdooError("odoo.exceptions.AccessDenied", "Access Denied")
        if model not in _ODOO_MODELS:
            raise _OdooError("builtins.KeyError", repr(model))
        if name not in _ARGS:
            raise _OdooError(
                "builtins.AttributeError",
                f"The method '{name}' does not exist on the model '{model}'",
            )
        names = _ARGS[name]
        if len(call_args) > len(names):
            raise _OdooError("builtins.TypeError", f"{name}() takes too many arguments")
        bound = dict(zip(names, call_args, strict=False)) | kwargs
        unknown = set(bound) - set(names) - {"context"}
        if unknown:
            raise _OdooError(
                "builtins.TypeError",
                f"{name}() got an unexpected keyword argument {sorted(unknown)[0]!r}",
            )
        op = {"search": "read", "search_read": "read", "search_count": "read", "read": "read",
              "create": "create", "write": "write", "unlink": "unlink",
              "button_confirm": "write", "button_cancel": "write"}[name]  # fmt: skip
        self._check_access(user, model, op)
        return getattr(self, f"_m_{name}")(
            model, **{k: v for k, v in bound.items() if k != "context"}
        )

    def _check_access(self, user: OdooUser, model: str, op: str) -> None:
        allowed = user.rights.get(model, set(_OPS))
        if op not in allowed:
            label = _MODEL_LABELS[model]
            raise _OdooError(
                "odoo.exceptions.AccessError",
                f"You are not allowed to {'access' if op == 'read' else op} '{label}' ({model}) "
                "records.\n\nThis operation is allowed for the following groups:\n"
                "\t- Purchase/User\n\nContact your administrator to request access if necessary.",
            )

    # ---- domains ---------------------------------------------------------------------
    def _field_value(self, model: str, record: dict[str, Any], fname: str) -> Any:
        if fname == "id":
            return record["id"]
        if fname not in _ODOO_MODELS[model]:
            raise _OdooError(
                "builtins.ValueError", f"Invalid field {model}.{fname} in leaf ('{fname}')"
            )
        return record.get(fname)

    def _leaf(self, model: str, record: dict[str, Any], leaf: list[Any]) -> bool:
        if not isinstance(leaf, list | tuple) or len(leaf) != 3:
            raise _OdooError("builtins.ValueError", f"Invalid leaf {leaf!r}")
        fname, op, value = leaf
        if "." in str(fname):
            raise _OdooError("builtins.ValueError", f"peer: dotted path {fname!r} not supported")
        have = self._field_value(model, record, fname)
        if op == "=":
            return bool(have == value or (value is False and have in (None, False, "")))
        if op == "!=":
            return not self._leaf(model, record, [fname, "=", value])
        if op in ("in", "not in"):
            if not isinstance(value, list | tuple):
                value = [value]
            inside = have in value or (False in value and have in (None, False))
            return inside if op == "in" else not inside
        if op in ("like", "ilike"):
            if have is None:
                return False
            a, b = str(have), str(value)
            return b.lower() in a.lower() if op == "ilike" else b in a
        if op in ("<", ">", "<=", ">="):
            if have is None:
                return False
            return bool({"<": have < value, ">": have > value, "<=": have <= value,
                         ">=": have >= value}[op])  # fmt: skip
        raise _OdooError("builtins.ValueError", f"Invalid leaf {leaf!r}: unknown operator {op!r}")

    def _match(self, model: str, record: dict[str, Any], domain: list[Any]) -> bool:
        items = list(domain)

        def parse() -> Callable[[], bool]:
            token = items.pop(0)
            if token == "&":
                a, b = parse(), parse()
                return lambda: a() and b()
            if token == "|":
                a, b = parse(), parse()
                return lambda: a() or b()
            if token == "!":
                a = parse()
                return lambda: not a()
            return lambda: self._leaf(model, record, token)

        terms = []
        while items:
            terms.append(parse())
        return all(t() for t in terms)

    def _search_ids(
        self, model: str, domain: list[Any], offset: int = 0, limit: int | None = None,
        order: str | None = None,
    ) -> list[int]:  # fmt: skip
        if not isinstance(domain, list):
            raise _OdooError("builtins.ValueError", f"Invalid domain {domain!r}")
        names_active = any(isinstance(t, list | tuple) and t and t[0] == "active" for t in domain)
        rows = [
            r
            for r in self.tables[model].values()
            if (names_active or "active" not in _ODOO_MODELS[model] or r.get("active"))
            and self._match(model, r, domain)
        ]
        key, reverse = "id", False
        if order:
            parts = str(order).split(",")[0].split()
            key = parts[0]
            reverse = len(parts) > 1 and parts[1].lower() == "desc"
        rows.sort(
            key=lambda r: (
                r.get(key) is None,
                r.get(key) or 0 if key == "id" else str(r.get(key) or ""),
            ),
            reverse=reverse,
        )
        ids = [r["id"] for r in rows][offset or 0 :]
        return ids[:limit] if limit else ids

    # ---- reading ---------------------------------------------------------------------
    def _display(self, model: str, rid: int) -> str:
        r = self.tables[model].get(rid) or {}
        if model == "product.product" and r.get("default_code"):
            return f"[{r['default_code']}] {r.get('name')}"
        return str(r.get("name") or f"{model},{rid}")

    def _read_record(self, model: str, rid: int, fields: list[str] | None) -> dict[str, Any]:
        record = self.tables[model][rid]
        wanted = fields or ["id", *_ODOO_MODELS[model]]
        out: dict[str, Any] = {"id": rid}
        for f in wanted:
            if f == "id":
                continue
            kind = _ODOO_MODELS[model].get(f)
            if kind is None:
                raise _OdooError("builtins.ValueError", f"Invalid field {f!r} on model {model!r}")
            value = self._computed(model, record, f)
            if kind.startswith("m2o:"):
                target = kind.split(":")[1]
                out[f] = [value, self._display(target, value)] if value else False
            elif kind.startswith("o2m:"):
                out[f] = value
            else:
                out[f] = False if value is None else value
        return out

    def _computed(self, model: str, record: dict[str, Any], f: str) -> Any:
        if model == "purchase.order":
            lines = [
                line for line in self.tables["purchase.order.line"].values()
                if line["order_id"] == record["id"]
            ]  # fmt: skip
            if f == "order_line":
                return sorted(line["id"] for line in lines)
            if f == "date_planned":
                dates = [line["date_planned"] for line in lines if line.get("date_planned")]
                return min(dates) if dates else record.get("date_planned")
            if f == "amount_total":
                return round(sum(line["product_qty"] * line["price_unit"] for line in lines), 2)
        if model == "purchase.order.line":
            if f == "price_subtotal":
                return round(record["product_qty"] * record["price_unit"], 2)
            if f == "state":
                return self.tables["purchase.order"][record["order_id"]]["state"]
        return record.get(f)

    def _m_search(self, model: str, domain: list[Any], offset: int = 0,
                  limit: int | None = None, order: str | None = None) -> list[int]:  # fmt: skip
        return self._search_ids(model, domain, offset, limit, order)

    def _m_search_count(self, model: str, domain: list[Any]) -> int:
        return len(self._search_ids(model, domain))

    def _m_search_read(
        self, model: str, domain: list[Any] | None = None, fields: list[str] | None = None,
        offset: int = 0, limit: int | None = None, order: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        ids = self._search_ids(model, domain or [], offset, limit, order)
        return [self._read_record(model, rid, fields) for rid in ids]

    def _m_read(
        self, model: str, ids: list[int] | int, fields: list[str] | None = None
    ) -> list[dict[str, Any]]:
        ids = [ids] if isinstance(ids, int) else list(ids)
        missing = [i for i in ids if i not in self.tables[model]]
        if missing:
            raise _OdooError(
                "odoo.exceptions.MissingError",
                "Record does not exist or has been deleted.\n"
                f"(Record: {model}({missing[0]},), User: 2)",
            )
        return [self._read_record(model, rid, fields) for rid in ids]

    # ---- writing ---------------------------------------------------------------------
    def _coerce(self, model: str, fname: str, value: Any) -> Any:
        kind = _ODOO_MODELS[model].get(fname)
        if kind is None:
            raise _OdooError("builtins.ValueError", f"Invalid field '{fname}' on model '{model}'")
        if value is False and kind != "bool":
            return None
        if kind == "datetime" and value is not None:
            text = str(value)
            try:
                parsed = datetime.strptime(
                    text if len(text) != 10 else text + " 00:00:00", _DT_FORMAT
                )
            except ValueError:
                raise _OdooError(
                    "builtins.ValueError",
                    f"time data {text!r} does not match format '{_DT_FORMAT}'",
                ) from None
            return parsed.strftime(_DT_FORMAT)
        if kind.startswith("m2o:") and value is not None:
            target = kind.split(":")[1]
            if not isinstance(value, int) or value not in self.tables[target]:
                raise _OdooError(
                    "odoo.exceptions.ValidationError",
                    "The operation cannot be completed: another model requires the record being "
                    f"deleted. If possible, archive it instead.\n\nModel: {_MODEL_LABELS[model]} "
                    f"({model})\nField: {fname}",
                )
        if kind == "float" and value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _OdooError("builtins.ValueError", f"could not convert {value!r} to float")
            return float(value)
        return value

    def _missing(self, model: str, record: dict[str, Any]) -> None:
        for fname in _REQUIRED.get(model, ()):
            if record.get(fname) in (None, False, ""):
                raise _OdooError(
                    "odoo.exceptions.ValidationError",
                    "The operation cannot be completed:\n- Create/update: a mandatory field is not "
                    "set.\n- Delete: another model requires the record being deleted. If possible, "
                    "archive it instead.\n\n"
                    f"Model: {_MODEL_LABELS[model]} ({model})\nField: {fname}",
                )

    def _create_one(self, model: str, vals: dict[str, Any]) -> int:
        if not isinstance(vals, dict):
            raise _OdooError("builtins.TypeError", f"create() expects a dict, got {vals!r}")
        commands = None
        plain: dict[str, Any] = {}
        for fname, value in vals.items():
            kind = _ODOO_MODELS[model].get(fname, "")
            if kind.startswith("o2m:"):
                commands = value
            elif model == "purchase.order" and fname in ("name", "amount_total"):
                continue
            else:
                plain[fname] = self._coerce(model, fname, value)
        if model == "purchase.order":
            plain.setdefault("state", "draft")
            plain.setdefault("date_order", datetime.now().strftime(_DT_FORMAT))
            if not plain.get("picking_type_id"):
                types = sorted(
                    t["id"] for t in self.tables["stock.picking.type"].values()
                    if t.get("code") == "incoming"
                )  # fmt: skip
                plain["picking_type_id"] = types[0] if types else None
        if model == "purchase.order.line":
            product = self.tables["product.product"].get(plain.get("product_id") or 0)
            if product is not None and not plain.get("name"):
                plain["name"] = self._display("product.product", product["id"])
            if not plain.get("date_planned") and plain.get("order_id"):
                plain["date_planned"] = self.tables["purchase.order"][plain["order_id"]][
                    "date_order"
                ]
            if plain.get("product_id") is None:
                raise _OdooError(
                    "odoo.exceptions.ValidationError",
                    "Missing required fields on accountable purchase order line.",
                )
        self._missing(model, plain)
        rid = self._insert(model, plain)
        if model == "purchase.order":
            self._po_sequence += 1
            self.tables[model][rid]["name"] = f"P{self._po_sequence:05d}"
            header_date = plain.pop("date_planned", None)
            if commands is not None:
                self._o2m(rid, commands)
            if header_date:  # the inverse of date_planned: every line gets it
                for line in self.tables["purchase.order.line"].values():
                    if line["order_id"] == rid:
                        line["date_planned"] = header_date
        return rid

    def _o2m(self, order_id: int, commands: Any) -> None:
        if not isinstance(commands, list):
            raise _OdooError("builtins.ValueError", f"Wrong value for order_line: {commands!r}")
        order = self.tables["purchase.order"][order_id]
        lines = self.tables["purchase.order.line"]

        def delete(line_id: int) -> None:
            if order["state"] in ("purchase", "done"):
                raise _OdooError(
                    "odoo.exceptions.UserError",
                    "Cannot delete a purchase order line which is in state "
                    f"“{_STATE_LABELS[order['state']]}”.",
                )
            lines.pop(line_id, None)

        for command in commands:
            if not isinstance(command, list | tuple) or not command:
                raise _OdooError("builtins.ValueError", f"Wrong command {command!r}")
            code = command[0]
            if code == 0:
                self._create_one("purchase.order.line", {**command[2], "order_id": order_id})
            elif code == 1:
                self._write_one("purchase.order.line", command[1], command[2])
            elif code == 2:
                delete(command[1])
            elif code == 4:
                lines[command[1]]["order_id"] = order_id
            elif code == 5:
                for line_id in [i for i, r in lines.items() if r["order_id"] == order_id]:
                    delete(line_id)
            elif code == 6:
                for line_id in [i for i, r in lines.items() if r["order_id"] == order_id]:
                    if line_id not in command[2]:
                        delete(line_id)
            else:
                raise _OdooError("builtins.ValueError", f"Unknown command {code!r}")

    def _write_one(self, model: str, rid: int, vals: dict[str, Any]) -> None:
        if rid not in self.tables[model]:
            raise _OdooError(
                "odoo.exceptions.MissingError",
                f"Record does not exist or has been deleted.\n(Record: {model}({rid},), User: 2)",
            )
        record = self.tables[model][rid]
        commands = None
        header_date = None
        for fname, value in vals.items():
            kind = _ODOO_MODELS[model].get(fname, "")
            if kind.startswith("o2m:"):
                commands = value
            elif model == "purchase.order" and fname == "date_planned":
                header_date = self._coerce(model, fname, value)
            else:
                record[fname] = self._coerce(model, fname, value)
        self._missing(model, record)
        if commands is not None:
            self._o2m(rid, commands)
        if header_date:
            for line in self.tables["purchase.order.line"].values():
                if line["order_id"] == rid:
                    line["date_planned"] = header_date

    def _m_create(self, model: str, vals: dict[str, Any] | list[dict[str, Any]]) -> int | list[int]:
        if isinstance(vals, list):
            return [self._create_one(model, v) for v in vals]
        return self._create_one(model, vals)

    def _m_write(self, model: str, ids: list[int] | int, vals: dict[str, Any]) -> bool:
        for rid in [ids] if isinstance(ids, int) else ids:
            self._write_one(model, rid, vals)
        return True

    def _m_unlink(self, model: str, ids: list[int] | int) -> bool:
        for rid in [ids] if isinstance(ids, int) else ids:
            if rid not in self.tables[model]:
                raise _OdooError(
                    "odoo.exceptions.MissingError",
                    "Record does not exist or has been deleted.\n"
                    f"(Record: {model}({rid},), User: 2)",
                )
            if model == "purchase.order":
                if self.tables[model][rid]["state"] != "cancel":
                    raise _OdooError(
                        "odoo.exceptions.UserError",
                        "In order to delete a purchase order, you must cancel it first.",
                    )
                self._o2m(rid, [[5, 0, 0]])
            self.tables[model].pop(rid, None)
        return True

    def _m_button_confirm(self, model: str, ids: list[int]) -> bool:
        for rid in ids:
            if self.tables[model][rid]["state"] in ("draft", "sent"):
                self.tables[model][rid]["state"] = "purchase"
        return True

    def _m_button_cancel(self, model: str, ids: list[int]) -> bool:
        for rid in ids:
            if rid not in self.tables[model]:
                raise _OdooError(
                    "odoo.exceptions.MissingError",
                    "Record does not exist or has been deleted.\n"
                    f"(Record: {model}({rid},), User: 2)",
                )
            self.tables[model][rid]["state"] = "cancel"
        return True


# =========================================================================== ERPNext


class _FrappeError(Exception):
    def __init__(self, status: int, exc_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.exc_type, self.message = status, exc_type, message


def _frappe_error_body(exc_type: str, message: str) -> dict[str, Any]:
    return {
        "exc_type": exc_type,
        "exception": f"frappe.exceptions.{exc_type}: {message}",
        "exc": json.dumps(
            [f"Traceback (most recent call last):\n  ...\nfrappe.exceptions.{exc_type}: {message}"]
        ),
        "_server_messages": json.dumps(
            [
                json.dumps(
                    {
                        "message": message,
                        "title": "Message",
                        "indicator": "red",
                        "raise_exception": 1,
                    }
                )
            ]
        ),
    }


_PO_FIELDS = {
    "name", "owner", "creation", "modified", "docstatus", "idx", "title", "naming_series",
    "supplier", "supplier_name", "order_confirmation_no", "order_confirmation_date",
    "transaction_date", "schedule_date", "company", "currency", "conversion_rate",
    "set_warehouse", "status", "total_qty", "total", "grand_total", "items", "doctype",
}  # fmt: skip
_POI_FIELDS = {
    "name", "idx", "item_code", "item_name", "qty", "rate", "amount", "schedule_date",
    "warehouse", "uom", "conversion_factor", "parent", "parentfield", "parenttype", "doctype",
    "received_qty",
}  # fmt: skip
_MASTER_FIELDS = {
    "Supplier": {"name", "supplier_name", "disabled", "on_hold", "default_currency", "creation"},
    "Item": {
        "name",
        "item_code",
        "item_name",
        "disabled",
        "is_stock_item",
        "stock_uom",
        "creation",
    },
    "Warehouse": {"name", "warehouse_name", "is_group", "company", "creation"},
}


class ErpNextPeer(_Peer):
    """A stateful Frappe/ERPNext REST endpoint (module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = "k3y",
        api_secret: str = "s3cret",
        company: str = "Demo Co",
        currency: str = "EUR",
        faults: dict[int, Fault] | None = None,
        can_write: bool = True,
        can_delete: bool = True,
    ) -> None:
        super().__init__(faults)
        self.api_key, self.api_secret = api_key, api_secret
        self.company, self.currency = company, currency
        self.can_write = can_write
        self.can_delete = can_delete
        self.docs: dict[str, dict[str, dict[str, Any]]] = {
            "Supplier": {}, "Item": {}, "Warehouse": {}, "Purchase Order": {},
        }  # fmt: skip
        self._series: dict[str, int] = {}
        self._clock = 0

    # ---- fixtures --------------------------------------------------------------------
    def _stamp(self) -> str:
        self._clock += 1
        return f"2024-01-01 00:00:{self._clock:02d}.{self._clock:06d}"

    def add_supplier(self, name: str, *, disabled: int = 0, on_hold: int = 0) -> None:
        with self._lock:
            self.docs["Supplier"][name] = {
                "name": name, "supplier_name": name, "disabled": disabled, "on_hold": on_hold,
                "default_currency": self.currency, "creation": self._stamp(),
            }  # fmt: skip

    def add_item(self, code: str, item_name: str | None = None, *, disabled: int = 0) -> None:
        with self._lock:
            self.docs["Item"][code] = {
                "name": code, "item_code": code, "item_name": item_name or code,
                "disabled": disabled, "is_stock_item": 1, "stock_uom": "Nos",
                "creation": self._stamp(),
            }  # fmt: skip

    def add_warehouse(self, name: str, *, is_group: int = 0) -> None:
        with self._lock:
            self.docs["Warehouse"][name] = {
                "name": name, "warehouse_name": name.split(" - ")[0], "is_group": is_group,
                "company": self.company, "creation": self._stamp(),
            }  # fmt: skip

    def submit(self, name: str) -> None:
        """What a buyer does in ERPNext: submit the draft (docstatus 1)."""
        with self._lock:
            doc = self.docs["Purchase Order"][name]
            doc.update(docstatus=1, status="To Receive and Bill")

    def cancel(self, name: str) -> None:
        with self._lock:
            doc = self.docs["Purchase Order"][name]
            doc.update(docstatus=2, status="Cancelled")

    def copy_order(self, name: str) -> str:
        """What a create executed a second time leaves (a request the ERP ran
        late, or twice): a new draft Purchase Order with the same fields and
        items, created now. Returns its name."""
        with self._lock:
            body = copy.deepcopy(self.docs["Purchase Order"][name])
            for f in ("name", "creation", "modified", "docstatus", "status"):
                body.pop(f, None)
            return str(self._insert_po(body)["name"])

    def orders(self) -> list[dict[str, Any]]:
        """Every Purchase Order (deep copies), in creation order."""
        with self._lock:
            return [
                copy.deepcopy(d)
                for d in sorted(self.docs["Purchase Order"].values(), key=lambda d: d["creation"])
            ]

    # ---- protocol --------------------------------------------------------------------
    def _describe(self, method: str, path: str, body: Any) -> str:
        parts = urlsplit(path).path.split("/")
        if len(parts) >= 4 and parts[1:3] == ["api", "resource"]:
            doctype = unquote(parts[3])
            return f"{method} {doctype}" + ("/" + unquote(parts[4]) if len(parts) > 4 else "")
        return f"{method} {path}"

    def _error_answer(self, fault: Fault, body: Any) -> tuple[int, Any]:
        return fault.status, _frappe_error_body(fault.name, fault.message)

    def _dispatch(self, handler: _Handler, body: Any) -> tuple[int, Any]:
        try:
            data = self._route(handler, body)
        except _FrappeError as e:
            return e.status, _frappe_error_body(e.exc_type, e.message)
        return (202 if handler.command == "DELETE" else 200), {"data": data}

    def _route(self, handler: _Handler, body: Any) -> Any:
        split = urlsplit(handler.path)
        parts = split.path.split("/")
        if len(parts) < 4 or parts[1:3] != ["api", "resource"] or len(parts) > 5:
            raise _FrappeError(404, "DoesNotExistError", f"Page {split.path} not found")
        if handler.headers.get("Authorization") != f"token {self.api_key}:{self.api_secret}":
            raise _FrappeError(403, "PermissionError", "Not permitted")
        doctype = unquote(parts[3])
        name = unquote(parts[4]) if len(parts) == 5 else None
        if doctype not in self.docs:
            raise _FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if isinstance(body, dict) and isinstance(body.get("data"), str):
            body = json.loads(body["data"])
        method = handler.command
        if method == "GET" and name is None:
            return self._list(doctype, query)
        if method == "GET":
            return copy.deepcopy(self._get(doctype, name))
        if doctype != "Purchase Order" or method not in ("POST", "PUT", "DELETE"):
            raise _FrappeError(403, "PermissionError", f"Not permitted: {method} {doctype}")
        if method == "DELETE":
            if name is None:
                raise _FrappeError(404, "DoesNotExistError", f"Page {split.path} not found")
            return self._delete_po(name)
        if not self.can_write:
            raise _FrappeError(403, "PermissionError", f"Insufficient Permission for {doctype}")
        if not isinstance(body, dict):
            raise _FrappeError(417, "ValidationError", "Request body must be a JSON object")
        if method == "POST":
            if name is not None:
                raise _FrappeError(404, "DoesNotExistError", f"Page {split.path} not found")
            return copy.deepcopy(self._insert_po(body))
        if name is None:
            raise _FrappeError(404, "DoesNotExistError", "Page not found")
        return copy.deepcopy(self._update_po(name, body))

    def _get(self, doctype: str, name: str | None) -> dict[str, Any]:
        doc = self.docs[doctype].get(name or "")
        if doc is None:
            raise _FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")
        return doc

    # ---- lists -----------------------------------------------------------------------
    def _fields_of(self, doctype: str) -> set[str]:
        return _PO_FIELDS if doctype == "Purchase Order" else _MASTER_FIELDS[doctype]

    def _list(self, doctype: str, query: dict[str, str]) -> list[dict[str, Any]]:
        def loads(key: str, default: Any) -> Any:
            if key not in query:
                return default
            try:
                return json.loads(query[key])
            except ValueError:
                raise _FrappeError(417, "ValidationError", f"{key}: invalid JSON") from None

        filters = loads("filters", [])
        fields = loads("fields", ["name"])
        known = self._fields_of(doctype)
        if isinstance(filters, dict):
            filters = [[k, *(v if isinstance(v, list) else ["=", v])] for k, v in filters.items()]
        conditions = []
        for f in filters:
            if len(f) == 4:
                f = f[1:]
            if len(f) != 3:
                raise _FrappeError(417, "ValidationError", f"Invalid filter: {f!r}")
            fname, op, value = f
            if fname not in known or fname == "items":
                raise _FrappeError(
                    500, "OperationalError",
                    f"(1054, \"Unknown column '{fname}' in 'where clause'\")",
                )  # fmt: skip
            conditions.append((fname, op, value))
        if fields != ["*"]:
            bad = [f for f in fields if f not in known or f == "items"]
            if bad:
                raise _FrappeError(417, "DataError", f"Field not permitted in query: {bad[0]}")

        def ok(doc: dict[str, Any]) -> bool:
            for fname, op, value in conditions:
                have = doc.get(fname)
                if op == "=" and have != value:
                    return False
                if op == "!=" and have == value:
                    return False
                if op == "in" and have not in (
                    value if isinstance(value, list) else str(value).split(",")
                ):
                    return False
                if op == "not in" and have in (value if isinstance(value, list) else [value]):
                    return False
                if op == "like" and str(value).strip("%") not in str(have or ""):
                    return False
                if op not in ("=", "!=", "in", "not in", "like"):
                    raise _FrappeError(417, "ValidationError", f"Operator {op!r} not supported")
            return True

        rows = [d for d in self.docs[doctype].values() if ok(d)]
        order = query.get("order_by", "creation desc").split()
        reverse = len(order) > 1 and order[1].lower() == "desc"
        rows.sort(key=lambda d: str(d.get(order[0]) or ""), reverse=reverse)
        start = int(query.get("limit_start", "0") or 0)
        length = int(query.get("limit_page_length", "20") or 0)
        rows = rows[start : start + length] if length else rows[start:]
        if fields == ["*"]:
            return [{k: v for k, v in d.items() if k != "items"} for d in rows]
        return [{f: d.get(f) for f in fields} for d in rows]

    # ---- Purchase Order --------------------------------------------------------------
    def _validate_po(self, doc: dict[str, Any]) -> None:
        missing = [f for f in ("supplier", "transaction_date", "company") if not doc.get(f)]
        if not doc.get("items"):
            missing.append("items")
        if missing:
            raise _FrappeError(
                417,
                "MandatoryError",
                f"[Purchase Order, {doc.get('name') or 'new-purchase-order-1'}]: "
                + ", ".join(missing),
            )
        supplier = self.docs["Supplier"].get(doc["supplier"])
        if supplier is None:
            raise _FrappeError(
                417, "LinkValidationError", f"Could not find Supplier: {doc['supplier']}"
            )
        if supplier.get("on_hold"):
            raise _FrappeError(
                417,
                "ValidationError",
                f"{doc['supplier']} is blocked so this transaction cannot proceed",
            )
        if doc.get("set_warehouse") and doc["set_warehouse"] not in self.docs["Warehouse"]:
            raise _FrappeError(
                417,
                "LinkValidationError",
                f"Could not find Set Target Warehouse: {doc['set_warehouse']}",
            )
        try:
            tx = date.fromisoformat(str(doc["transaction_date"]))
        except ValueError:
            raise _FrappeError(
                417,
                "ValidationError",
                f"Date {doc['transaction_date']} must be in format: yyyy-mm-dd",
            ) from None
        for i, item in enumerate(doc["items"], start=1):
            for f in ("item_code", "qty", "schedule_date"):
                if item.get(f) in (None, ""):
                    raise _FrappeError(
                        417, "MandatoryError", f"[Purchase Order Item, row {i}]: {f}"
                    )
            if item["item_code"] not in self.docs["Item"]:
                raise _FrappeError(
                    417,
                    "LinkValidationError",
                    f"Could not find Row #{i}: Item Code: {item['item_code']}",
                )
            warehouse = item.get("warehouse") or doc.get("set_warehouse")
            if not warehouse:
                raise _FrappeError(
                    417, "ValidationError",
                    f"Row #{i}: Warehouse is mandatory for stock Item {item['item_code']}",
                )  # fmt: skip
            if warehouse not in self.docs["Warehouse"]:
                raise _FrappeError(
                    417, "LinkValidationError", f"Could not find Row #{i}: Warehouse: {warehouse}"
                )
            try:
                needed = date.fromisoformat(str(item["schedule_date"]))
            except ValueError:
                raise _FrappeError(
                    417,
                    "ValidationError",
                    f"Date {item['schedule_date']} must be in format: yyyy-mm-dd",
                ) from None
            if needed < tx:
                raise _FrappeError(
                    417,
                    "ValidationError",
                    f"Row #{i}: Reqd by Date cannot be before Transaction Date",
                )
            if not isinstance(item["qty"], int | float) or item["qty"] <= 0:
                raise _FrappeError(
                    417, "ValidationError", f"Row #{i}: Quantity must be greater than zero"
                )

    def _fill(self, doc: dict[str, Any]) -> None:
        """What ERPNext sets on save: names of rows, fetched and computed fields."""
        supplier = self.docs["Supplier"][doc["supplier"]]
        doc["supplier_name"] = supplier["supplier_name"]
        doc.setdefault("currency", supplier.get("default_currency") or self.currency)
        doc.setdefault("conversion_rate", 1.0)
        if not doc.get("title"):
            doc["title"] = doc["supplier_name"]
        items = []
        for i, item in enumerate(doc["items"], start=1):
            row = {k: v for k, v in item.items() if k in _POI_FIELDS}
            row.setdefault("warehouse", doc.get("set_warehouse"))
            row["rate"] = round(float(row.get("rate") or 0.0), 2)
            row["qty"] = float(row["qty"])
            row["amount"] = round(row["qty"] * row["rate"], 2)
            row["item_name"] = self.docs["Item"][row["item_code"]]["item_name"]
            row.update(idx=i, parent=doc["name"], parentfield="items", parenttype="Purchase Order",
                       doctype="Purchase Order Item", name=f"{doc['name']}-row-{i}",
                       uom="Nos", conversion_factor=1.0, received_qty=0.0)  # fmt: skip
            items.append(row)
        doc["items"] = items
        doc["schedule_date"] = min(str(i["schedule_date"]) for i in items)
        doc["total_qty"] = sum(i["qty"] for i in items)
        doc["total"] = doc["grand_total"] = round(sum(i["amount"] for i in items), 2)
        doc["modified"] = self._stamp()

    def _insert_po(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in body.items() if k in _PO_FIELDS}
        doc["items"] = [dict(i) for i in body.get("items") or [] if isinstance(i, dict)]
        doc.setdefault("company", self.company)
        doc.setdefault("transaction_date", date.today().isoformat())
        docstatus = int(doc.get("docstatus") or 0)
        doc["name"] = ""
        self._validate_po(doc)
        year = str(doc["transaction_date"])[:4]
        self._series[year] = self._series.get(year, 0) + 1
        doc["name"] = f"PUR-ORD-{year}-{self._series[year]:05d}"
        doc.update(
            doctype="Purchase Order",
            naming_series="PUR-ORD-.YYYY.-",
            owner="api@example.com",
            creation=self._stamp(),
            docstatus=docstatus,
            status="Draft" if docstatus == 0 else "To Receive and Bill",
        )
        self._fill(doc)
        self.docs["Purchase Order"][doc["name"]] = doc
        return doc

    def _delete_po(self, name: str) -> str:
        """``frappe.delete_doc``: the document must exist, the user may
        delete, and it must not be submitted."""
        doc = self._get("Purchase Order", name)
        if not self.can_delete:
            raise _FrappeError(
                403, "PermissionError", f"User not allowed to delete Purchase Order: {name}"
            )
        if doc["docstatus"] == 1:
            raise _FrappeError(
                417,
                "ValidationError",
                f"Purchase Order {name}: Submitted Record cannot be deleted. You must "
                "<a href='https://docs.erpnext.com//docs/user/manual/en/setting-up/articles/"
                "delete-submitted-document' target='_blank'> Cancel </a> it first.",
            )
        del self.docs["Purchase Order"][name]
        return "ok"

    def _update_po(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._get("Purchase Order", name)
        if current["docstatus"] == 2:
            raise _FrappeError(417, "ValidationError", "Cannot edit cancelled document")
        changes = {
            k: v for k, v in body.items() if k in _PO_FIELDS and k not in ("name", "doctype")
        }
        if current["docstatus"] == 1:
            locked = [
                k for k in changes if k not in ("title", "schedule_date", "order_confirmation_no")
            ]
            if locked:
                raise _FrappeError(
                    417, "UpdateAfterSubmitError",
                    f"Not allowed to change {locked[0].replace('_', ' ').title()} after submission",
                )  # fmt: skip
        doc = copy.deepcopy(current)
        doc.update(changes)
        if "items" in changes:
            doc["items"] = [dict(i) for i in changes["items"] if isinstance(i, dict)]
        self._validate_po(doc)
        self._fill(doc)
        self.docs["Purchase Order"][name] = doc
        return doc
