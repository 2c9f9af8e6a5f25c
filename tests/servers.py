"""Real servers on loopback for the tests: an SMTP sink and a scripted HTTP server.

Both listen on 127.0.0.1 on a free ephemeral port, run in a background thread,
record what they receive, and are context managers that stop cleanly (the
thread is joined, the socket closed)::

    with SmtpRecorder() as smtp:
        notifier = EmailNotifier(smtp.host, smtp.port, ...)
        ...
        assert smtp.messages[0].message["Subject"] == ...

    with HttpRecorder(responses=[(429, {"Retry-After": "1"}, "rate_limited")]) as http:
        httpx.post(http.url + "/hook", json={...})
        assert http.requests[0].json == {...}

Nothing here ever binds or connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOOPBACK = "127.0.0.1"

# aiosmtpd logs this about its own use of a deprecated attribute on every AUTH
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)

__all__ = [
    "LOOPBACK",
    "HttpRecorder",
    "ReceivedMail",
    "RecordedRequest",
    "Response",
    "SmtpRecorder",
    "closed_port",
    "free_port",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (connections are refused at once)."""
    return free_port()


# =========================================================================== SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server received it: the envelope, the parsed
    :class:`~email.message.EmailMessage`, the raw bytes.

    It reads like the message itself too: ``mail["Subject"]``,
    ``mail.get_body(("html",))`` and any other ``EmailMessage`` method are
    forwarded to :attr:`message`.
    """

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    login: str | None = None  # the authenticated user, if any

    def __getitem__(self, header: str) -> Any:
        return self.message[header]

    def __contains__(self, header: str) -> bool:
        return header in self.message

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "message":
            raise AttributeError(name)
        return getattr(self.message, name)


class _Handler:
    def __init__(self, recorder: SmtpRecorder) -> None:
        self.recorder = recorder

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.recorder.refuse.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.recorder.data_reply is not None:
            return self.recorder.data_reply
        raw = envelope.original_content or (
            envelope.content
            if isinstance(envelope.content, bytes)
            else str(envelope.content or "").encode()
        )
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.recorder._record(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                raw=raw,
                login=login.decode() if isinstance(login, bytes) else login,
            )
        )
        return "250 Message accepted for delivery"


class SmtpRecorder:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it accepts.

    ``credentials=(user, password)`` turns on ``AUTH PLAIN/LOGIN`` (allowed
    without TLS, loopback only; the user is recorded in
    :attr:`ReceivedMail.login`); ``refuse`` maps
    recipient addresses to the reply sent to their ``RCPT TO`` (e.g.
    ``{"x@example.com": "550 5.1.1 no such user"}``); ``data_reply``, when set,
    answers every ``DATA`` with it instead of accepting the message.
    """

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        refuse: Mapping[str, str] | None = None,
        data_reply: str | None = None,
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.credentials = credentials
        self.refuse = {address.lower(): reply for address, reply in (refuse or {}).items()}
        self.data_reply = data_reply
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # ----------------------------------------------------------------- results

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        """The messages once at least ``count`` have arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.01)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    # ----------------------------------------------------------------- lifecycle

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        user, password = self.credentials
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> Self:
        if self._controller is not None:
            raise RuntimeError("SmtpRecorder already started")
        options: dict[str, Any] = {}
        if self.credentials is not None:
            # AUTH offered without TLS: loopback only. (Making it mandatory
            # too would make aiosmtpd warn, and warnings are errors here.)
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        last_error: Exception | None = None
        for _ in range(5):  # the free port may be taken between probe and bind
            port = free_port()
            controller = Controller(
                _Handler(self),
                hostname=LOOPBACK,
                port=port,
                server_hostname="smtp.test",
                ready_timeout=5.0,
                **options,
            )
            try:
                controller.start()
            except OSError as error:
                last_error = error
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                if not controller.loop.is_closed():
                    controller.loop.close()
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"could not start the SMTP recorder: {last_error}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            if not controller.loop.is_closed():
                controller.loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# =========================================================================== HTTP


@dataclass(frozen=True)
class Response:
    """A scripted answer; ``delay`` seconds pass before it is sent (to provoke
    client timeouts)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b"ok"
    delay: float = 0.0

    @classmethod
    def of(cls, value: Response | tuple[Any, ...]) -> Response:
        if isinstance(value, Response):
            return value
        return cls(*value)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # the parsed body, or None when it is not JSON

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined on server_close()
    block_on_close = True
    allow_reuse_address = False
    recorder: HttpRecorder


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.0"  # one request per connection: simple and leak-free

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed: Any = jsonlib.loads(body) if body else None
        except ValueError:
            parsed = None
        recorder = self.server.recorder
        recorder._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                json=parsed,
            )
        )
        answer = recorder._next_response()
        if answer.delay:
            time.sleep(answer.delay)
        payload = answer.body.encode() if isinstance(answer.body, str) else answer.body
        try:
            self.send_response(answer.status)
            headers = {name.lower(): value for name, value in answer.headers.items()}
            headers.setdefault("content-type", "text/plain; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpRecorder:
    """A threaded ``http.server`` on 127.0.0.1 that records every request and
    answers from ``responses`` — ``(status, headers, body[, delay])`` tuples or
    :class:`Response` — in order, then with ``default`` (``200 ok``)."""

    def __init__(
        self,
        responses: Iterable[Response | tuple[Any, ...]] = (),
        *,
        default: Response | tuple[Any, ...] = (200, {}, b"ok"),
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._responses = [Response.of(r) for r in responses]
        self.default = Response.of(default)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def add_responses(self, *responses: Response | tuple[Any, ...]) -> None:
        with self._lock:
            self._responses.extend(Response.of(r) for r in responses)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_response(self) -> Response:
        with self._lock:
            return self._responses.pop(0) if self._responses else self.default

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("HttpRecorder already started")
        server = _HttpServer((LOOPBACK, 0), _HttpHandler)
        server.recorder = self
        self.port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"HttpRecorder:{self.port}",
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
