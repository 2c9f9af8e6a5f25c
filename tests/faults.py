"""Fault injection for the reliability tests (docs/reliability.md).

* :class:`FaultPlan` — which call (connection, request) of a run fails and how,
  drawn from a seed: the same seed gives the same faults at the same calls, so
  a faulty run is reproducible.
* :class:`TcpFaultProxy` — a TCP proxy on 127.0.0.1 in front of a real
  database server (PostgreSQL, MariaDB). Each client connection is numbered;
  the plan decides whether it is *refused* (reset at once), *stalled* (held,
  then reset: a timeout that ends in a dropped connection), *cut* mid-stream
  (reset after a seeded number of bytes of the server's answer: a query dies
  half-way through its result) or *slowed* (every answer delayed: no error).
  :meth:`TcpFaultProxy.go_down` makes every later connection fail (an outage
  that does not end). :meth:`TcpFaultProxy.url` points a SQLAlchemy URL at
  the proxy.
* :func:`channel_faults` / :func:`inject_channel_faults` — the same plan as
  ``tests.channel_servers.Fault`` objects (5xx, 429, dropped connection, an
  answer slower than the client's timeout) for the Shopify / WooCommerce
  servers; :func:`peer_faults` for the Odoo / ERPNext push peers of
  ``tests.erp_peers`` (5xx, dropped, answer lost after the call was done,
  late answer).

Nothing here listens or connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from sqlalchemy.engine import make_url

from tests import channel_servers, erp_peers
from tests.servers import LOOPBACK

__all__ = [
    "DB_FAULTS",
    "FaultPlan",
    "TcpFaultProxy",
    "channel_faults",
    "inject_channel_faults",
    "peer_faults",
]

#: What a database connection can suffer (see the module docstring).
DB_FAULTS: tuple[str, ...] = ("refuse", "stall", "cut", "slow")
#: What an HTTP request to a sales channel can suffer.
HTTP_FAULTS: tuple[str, ...] = ("500", "502", "503", "429", "drop", "timeout")
#: What a call to an ERP push peer can suffer.
PEER_FAULTS: tuple[str, ...] = ("http500", "drop", "drop_after", "delay")


@dataclass(frozen=True)
class FaultPlan:
    """Call ``n`` (1-based) fails with probability ``rate``, with a kind drawn
    from ``kinds``; the draw depends only on (``seed``, ``n``)."""

    rate: float = 0.3
    seed: int = 0
    kinds: Sequence[str] = DB_FAULTS

    def rng(self, n: int) -> random.Random:
        return random.Random(self.seed * 1_000_003 + n)

    def decide(self, n: int) -> str | None:
        rng = self.rng(n)
        if rng.random() >= self.rate:
            return None
        return rng.choice(list(self.kinds))

    def schedule(self, count: int) -> dict[int, str]:
        """The faults of calls 1..``count``: {call number: kind}."""
        out = {}
        for n in range(1, count + 1):
            kind = self.decide(n)
            if kind is not None:
                out[n] = kind
        return out


# ================================================================= TCP proxy


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class ProxyStats:
    connections: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    #: connections whose fault actually broke them (a cut after more bytes
    #: than the session moved breaks nothing)
    broken: int = 0


class TcpFaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_host:target_port``.

    ``plan`` decides per connection (see the module docstring);
    ``cut_bytes`` the range of answer bytes a *cut* connection forwards before
    it is reset; ``stall_seconds`` how long a *stalled* one is held;
    ``slow_seconds`` the delay a *slow* one adds to every answer chunk.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        plan: FaultPlan | None = None,
        *,
        cut_bytes: tuple[int, int] = (200, 60_000),
        stall_seconds: float = 0.3,
        slow_seconds: float = 0.02,
    ) -> None:
        self.target = (target_host, target_port)
        self.plan = plan or FaultPlan(rate=0.0)
        self.cut_bytes = cut_bytes
        self.stall_seconds = stall_seconds
        self.slow_seconds = slow_seconds
        self.stats = ProxyStats()
        self.host = LOOPBACK
        self.port = 0
        self._down = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._open: set[socket.socket] = set()

    @classmethod
    def for_url(cls, url: str, plan: FaultPlan | None = None, **kwargs: object) -> TcpFaultProxy:
        """A proxy in front of the server of the SQLAlchemy ``url``."""
        parsed = make_url(url)
        default = 5432 if parsed.get_backend_name() == "postgresql" else 3306
        return cls(parsed.host or LOOPBACK, parsed.port or default, plan, **kwargs)  # type: ignore[arg-type]

    def url(self, url: str) -> str:
        """``url`` (user, password, database kept) pointed at this proxy."""
        parsed = make_url(url).set(host=self.host, port=self.port)
        return parsed.render_as_string(hide_password=False)

    def go_down(self) -> None:
        """From now on every connection is reset at once (a lasting outage)."""
        with self._lock:
            self._down = True

    def come_back(self) -> None:
        with self._lock:
            self._down = False

    # ----------------------------------------------------------------- serving

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.stats.connections += 1
                number = self.stats.connections
                kind = "refuse" if self._down else self.plan.decide(number)
                if kind is not None:
                    self.stats.faults[kind] += 1
                self._open.add(client)
            worker = threading.Thread(target=self._serve, args=(client, number, kind), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _serve(self, client: socket.socket, number: int, kind: str | None) -> None:
        upstream: socket.socket | None = None
        try:
            if kind == "refuse":
                self._broke()
                return
            if kind == "stall":
                self._stopping.wait(self.stall_seconds)
                self._broke()
                return
            upstream = socket.create_connection(self.target, timeout=5)
            with self._lock:
                self._open.add(upstream)
            limit = None
            if kind == "cut":
                lo, hi = self.cut_bytes
                limit = self.plan.rng(number).randint(lo, hi)
            self._pump(client, upstream, limit, self.slow_seconds if kind == "slow" else 0.0)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    _reset(sock)
                    with self._lock:
                        self._open.discard(sock)

    def _broke(self) -> None:
        with self._lock:
            self.stats.broken += 1

    def _pump(
        self, client: socket.socket, upstream: socket.socket, limit: int | None, delay: float
    ) -> None:
        """Copy bytes both ways until one side closes; reset both sides once
        ``limit`` bytes of the server's answer were forwarded."""
        sent = 0
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            while not self._stopping.is_set():
                for key, _ in sel.select(timeout=0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is upstream:
                        if delay:
                            time.sleep(delay)
                        if limit is not None and sent + len(data) >= limit:
                            dst.sendall(data[: max(limit - sent, 0)])
                            self._broke()
                            return
                        sent += len(data)
                    dst.sendall(data)

    # --------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"TcpFaultProxy:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _reset(sock)
        for worker in self._workers:
            worker.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ====================================================================== HTTP


def channel_faults(
    plan: FaultPlan, count: int, *, timeout_seconds: float
) -> dict[int, channel_servers.Fault]:
    """The plan's faults for requests 1..``count`` to a channel server
    (``plan.kinds`` from :data:`HTTP_FAULTS`); a *timeout* answers
    ``timeout_seconds`` + 0.2 s late."""
    out: dict[int, channel_servers.Fault] = {}
    for n, kind in plan.schedule(count).items():
        if kind == "429":
            out[n] = channel_servers.Fault.rate_limited(0.01)
        elif kind == "drop":
            out[n] = channel_servers.Fault.drop()
        elif kind == "timeout":
            out[n] = channel_servers.Fault.slow(timeout_seconds + 0.2)
        else:
            out[n] = channel_servers.Fault.error(int(kind))
    return out


def inject_channel_faults(
    server: channel_servers.WireServer,
    plan: FaultPlan,
    count: int = 400,
    *,
    timeout_seconds: float,
) -> dict[int, channel_servers.Fault]:
    """Inject :func:`channel_faults` into ``server``; returns them."""
    faults = channel_faults(plan, count, timeout_seconds=timeout_seconds)
    for n, fault in faults.items():
        server.inject(n, fault)
    return faults


def peer_faults(
    plan: FaultPlan, count: int = 400, *, delay_seconds: float
) -> dict[int, erp_peers.Fault]:
    """The plan's faults (``plan.kinds`` from :data:`PEER_FAULTS`) for calls
    1..``count`` to an ERP push peer; a *delay* answers ``delay_seconds`` late."""
    out: dict[int, erp_peers.Fault] = {}
    for n, kind in plan.schedule(count).items():
        if kind == "http500":
            out[n] = erp_peers.Fault.http500()
        elif kind == "drop":
            out[n] = erp_peers.Fault.drop()
        elif kind == "drop_after":
            out[n] = erp_peers.Fault.drop_after()
        else:
            out[n] = erp_peers.Fault.delay(delay_seconds)
    return out
