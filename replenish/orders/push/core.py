"""What every ERP push shares: the errors, the per-order report, the retry
loop and the connection settings' common part.

Fault rules (the same for every target):

* **transient** — connection refused or dropped, timeout, HTTP 5xx, HTTP
  429: the step is retried up to ``max_attempts`` times (first try included)
  waiting ``backoff · 2^(n−1)`` seconds (429: its ``Retry-After``, capped at
  30 s); when they are used up :class:`PushUnavailable` is raised, carrying
  the report of the orders already handled (a later push redoes nothing
  twice: pushing is idempotent). A retried step always starts by looking the
  order up again, so a create whose answer was lost is found, not repeated.
* **in doubt** — a create that got no answer although it may have reached
  the ERP (read timeout, connection dropped after sending, HTTP 502/504 from
  a gateway): the ERP may still be executing it. The look-up is retried only
  after ``in_doubt_wait`` seconds (default: the request timeout), so a late
  create is found rather than made again.
* **duplicates** — every push ends with a *sweep*: the pushed keys are
  searched again and, where a key has more than one live order (a create the
  ERP executed after the sweep's look-up, a request a proxy replayed, an
  earlier push's leftover), the order to keep is chosen (:func:`keeper`: the
  one the buyer went furthest with, then the oldest) and the others are
  deleted if they are still plain drafts; one that cannot be deleted
  (confirmed, sent, or the ERP refuses) turns its order's outcome into
  ``failed``, naming the key and both ERP ids. What was removed is in
  :attr:`PushReport.duplicates`.
* **refused for one order** — the ERP answers with an error for that order
  (a validation error, a missing record, a permission on that document): the
  order is reported ``failed`` with the ERP's message, the other orders go on.
* **refused for all** — wrong credentials or no access at all:
  :class:`PushAuthError`, nothing more is tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

import httpx
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings

from replenish.errors import ReplenishError
from replenish.orders.documents import OrderDocument

__all__ = [
    "ACTIONS",
    "CANCELLED",
    "CONFIRMED",
    "DRAFT",
    "LOST_ANSWER",
    "MAX_IN_DOUBT_WAIT",
    "SENT",
    "Action",
    "Duplicate",
    "ErpOrder",
    "ErpRejected",
    "OrderOutcome",
    "OrderPusher",
    "PushAuthError",
    "PushError",
    "PushFailed",
    "PushReport",
    "PushSettings",
    "PushUnavailable",
    "Transient",
    "attempt",
    "keeper",
    "sweep",
    "with_retries",
]

logger = logging.getLogger("replenish.orders.push")

T = TypeVar("T")

Action = Literal["created", "updated", "unchanged", "skipped", "failed"]
ACTIONS: tuple[Action, ...] = ("created", "updated", "unchanged", "skipped", "failed")
#: The reason of an order whose create or update went through but whose
#: answer was lost (the retry finds the ERP already equal to the draft).
LOST_ANSWER = "the ERP's answer was lost; found done on retry"
#: The longest wait between two attempts, whatever a ``Retry-After`` asks.
MAX_WAIT = 30.0
#: The longest wait after a create in doubt (``in_doubt_wait``), whatever is set.
MAX_IN_DOUBT_WAIT = 600.0


# --------------------------------------------------------------------------- errors


class PushError(ReplenishError):
    """Pushing draft orders to an ERP failed for good (misconfiguration, an
    answer that is not the ERP's protocol)."""


class PushAuthError(PushError):
    """The ERP refused our credentials or gives us no access: nothing can be
    pushed until the configuration is fixed."""


class PushUnavailable(PushError):
    """Transient: the ERP could not be reached, timed out or answered 5xx/429
    on every attempt. Retry later (pushing is idempotent); ``report`` holds
    what was done before the ERP went away; ``erp_error`` is set when the
    last answer was the ERP's own error (kind, message) rather than silence
    or a proxy's page."""

    def __init__(
        self,
        message: str,
        report: PushReport | None = None,
        erp_error: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.report = report
        self.erp_error = erp_error


class ErpRejected(PushError):
    """The ERP refused one order: ``kind`` is its error class (Odoo's
    ``odoo.exceptions.AccessError``, ERPNext's ``LinkValidationError``),
    ``message`` its text."""

    def __init__(self, target: str, po_key: str, kind: str, message: str) -> None:
        self.target, self.po_key, self.kind, self.message = target, po_key, kind, message
        super().__init__(f"{target} rejected order {po_key}: {kind}: {message}")


class PushFailed(PushError):
    """Raised by :meth:`PushReport.raise_on_failure`: some orders were not
    pushed (each one named with its reason)."""


class Transient(Exception):
    """Internal: one attempt failed in a way worth retrying. ``in_doubt``: the
    request may have reached the ERP and may still be executed (no answer
    after sending it); ``at_least``: wait at least that long before the next
    attempt (set by a pusher when a create is in doubt)."""

    def __init__(
        self,
        problem: str,
        wait: float | None = None,
        erp_error: tuple[str, str] | None = None,
        *,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait
        self.erp_error = erp_error
        self.in_doubt = in_doubt
        self.at_least = 0.0


def with_retries(
    step: Callable[[], T],
    *,
    what: str,
    max_attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``step`` until it does not raise :class:`Transient`, at most
    ``max_attempts`` times, waiting ``backoff · 2^(n−1)`` seconds (or what the
    fault asks, capped at :data:`MAX_WAIT`) in between.

    Raises:
        PushUnavailable: every attempt failed transiently (names ``what`` and
            the last problem).
    """
    attempts = max(1, max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Transient as fault:
            if attempt == attempts:
                raise PushUnavailable(
                    f"{what}: still unavailable after {attempt} attempt(s): {fault.problem}",
                    erp_error=fault.erp_error,
                ) from None
            wait = fault.wait if fault.wait is not None else backoff * 2 ** (attempt - 1)
            wait = min(max(wait, 0.0), MAX_WAIT)
            sleep(max(wait, min(fault.at_least, MAX_IN_DOUBT_WAIT)))
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def attempt(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    explain: Callable[[httpx.Response], tuple[str, str] | None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP request; transport faults, 5xx and 429 raise :class:`Transient`,
    any other answer is returned for the caller to read. ``explain`` reads the
    ERP's own error (kind, message) out of a 5xx answer, if it is one.

    A fault after the request may have been sent — a read or write timeout, a
    connection dropped or reset once open, a gateway's 502 or 504 — is
    ``in_doubt``: the ERP may have done, or may still do, what was asked. A
    connection that could not be opened (refused, connect timeout) and the
    ERP's own 500/503/429 are not.

    Raises:
        PushError: the URL itself is unusable (no retry can help).
    """
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as e:
        sent = not isinstance(e, httpx.ConnectTimeout | httpx.PoolTimeout)
        raise Transient(f"{what}: timed out ({type(e).__name__})", in_doubt=sent) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
        raise PushError(f"{what}: the URL is not usable ({e})") from None
    except httpx.TransportError as e:
        sent = not isinstance(e, httpx.ConnectError | httpx.ProxyError)
        raise Transient(
            f"{what}: connection failed ({type(e).__name__}: {e})", in_doubt=sent
        ) from None
    if response.status_code == 429:
        raise Transient(f"{what}: rate limited (HTTP 429)", _retry_after(response))
    if response.status_code >= 500:
        erp_error = explain(response) if explain is not None else None
        detail = f": {erp_error[0]}: {erp_error[1]}" if erp_error else ""
        raise Transient(
            f"{what}: HTTP {response.status_code} {response.reason_phrase}{detail}",
            erp_error=erp_error,
            in_doubt=response.status_code in (502, 504),
        )
    return response


# --------------------------------------------------------------------------- duplicates

#: :attr:`ErpOrder.rank`: how far the buyer went with an order
CONFIRMED, SENT, DRAFT, CANCELLED = 0, 1, 2, 3


@dataclass(frozen=True)
class ErpOrder:
    """One order of the ERP carrying a ``po_key``, as a look-up sees it.

    ``state`` is the ERP's word for it (Odoo: ``draft``, ``purchase``, ...;
    ERPNext: ``docstatus 0``, ...); ``rank`` how far the buyer went with it
    (:data:`CONFIRMED` confirmed or submitted, :data:`SENT` sent to the
    vendor, :data:`DRAFT`, :data:`CANCELLED`); ``age`` sorts the oldest first
    (Odoo: the id; ERPNext: ``creation``, then the name); ``removable``: a
    plain draft the sweep may delete.
    """

    po_key: str
    erp_id: str
    erp_name: str
    state: str
    rank: int
    age: tuple[Any, ...]
    removable: bool

    @property
    def live(self) -> bool:
        return self.rank < CANCELLED


def keeper(orders: Iterable[ErpOrder]) -> ErpOrder | None:
    """The order of a key to keep when the ERP holds several: the one the
    buyer went furthest with (confirmed, then sent, then draft), then the
    oldest. None when none is live (all cancelled, or none at all). The push
    updates this one and the sweep removes the others."""
    live = [o for o in orders if o.live]
    return min(live, key=lambda o: (o.rank, o.age)) if live else None


@dataclass(frozen=True)
class Duplicate:
    """A second live ERP order for one ``po_key`` found by the sweep:
    ``removed`` (deleted from the ERP, or at least cancelled: then ``reason``
    says so) or not, and then ``reason`` why not. ``kept_id``/``kept_name``:
    the order kept for the key."""

    po_key: str
    erp_id: str
    erp_name: str
    state: str
    kept_id: str
    kept_name: str
    removed: bool
    reason: str = ""

    def text(self) -> str:
        """``removed duplicate P00005 (id 5, state 'draft'), kept P00004 (id 4)``
        or ``ordered twice in the ERP: ... not removed: why``."""
        kept = _label(self.kept_name, self.kept_id)
        dup = _label(self.erp_name, self.erp_id, self.state)
        if self.removed:
            note = f" ({self.reason})" if self.reason else ""
            return f"removed duplicate {dup}{note}, kept {kept}"
        name = self.erp_name or self.erp_id
        return f"ordered twice in the ERP: {kept} and {dup}; {name} not removed: {self.reason}"


def _label(name: str, erp_id: str, *more: str) -> str:
    """``P00005 (id 5, state 'draft')``; ``PUR-ORD-2024-00005 (docstatus 0)``."""
    details = ([] if name in ("", erp_id) else [f"id {erp_id}"]) + list(more)
    return f"{name or erp_id}" + (f" ({', '.join(details)})" if details else "")


def sweep(
    keys: Iterable[str],
    find: Callable[[list[str]], list[ErpOrder]],
    remove: Callable[[ErpOrder], tuple[bool, str]],
) -> list[Duplicate]:
    """The end of every push: ``find`` the ERP orders of ``keys`` again and,
    per key with more than one live order, keep :func:`keeper`'s and
    ``remove`` each other one that is ``removable`` (``remove`` returns
    whether it is gone, and a note or why not). A duplicate that is not
    removable, or that ``remove`` could not delete, is returned with
    ``removed=False``."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    by_key: dict[str, list[ErpOrder]] = {}
    for order in find(wanted):
        by_key.setdefault(order.po_key, []).append(order)
    out: list[Duplicate] = []
    for key in sorted(by_key):
        kept = keeper(by_key[key])
        if kept is None:
            continue
        extra = sorted((o for o in by_key[key] if o.live and o != kept), key=lambda o: o.age)
        for order in extra:
            gone, why = (
                remove(order) if order.removable else (False, "only a plain draft is removed")
            )
            out.append(
                Duplicate(
                    key, order.erp_id, order.erp_name, order.state, kept.erp_id,
                    kept.erp_name, gone, why,
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class OrderOutcome:
    """What the push did with one order.

    ``erp_id`` is the ERP's key of the order (Odoo: the ``purchase.order`` id;
    ERPNext: the document name), ``erp_name`` its human reference (Odoo:
    ``P00042``; ERPNext: the name again).
    """

    po_key: str
    action: Action
    erp_id: str | None = None
    erp_name: str | None = None
    reason: str = ""
    lines: int = 0
    total: float = 0.0


@dataclass
class PushReport:
    """Per order, what a push did; ``held`` lists the orders not pushed
    because their status is not pushable (not approved yet); ``duplicates``
    the second ERP orders of a key the closing sweep found (removed, or not
    and why: then that order's outcome is ``failed``)."""

    target: str
    outcomes: list[OrderOutcome] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def keys(self, action: Action) -> list[str]:
        return [o.po_key for o in self.outcomes if o.action == action]

    @property
    def created(self) -> list[str]:
        return self.keys("created")

    @property
    def updated(self) -> list[str]:
        return self.keys("updated")

    @property
    def unchanged(self) -> list[str]:
        return self.keys("unchanged")

    @property
    def skipped(self) -> list[str]:
        return self.keys("skipped")

    @property
    def failed(self) -> list[str]:
        return self.keys("failed")

    def outcome(self, po_key: str) -> OrderOutcome:
        for o in self.outcomes:
            if o.po_key == po_key:
                return o
        raise KeyError(po_key)

    @property
    def removed_duplicates(self) -> list[Duplicate]:
        return [d for d in self.duplicates if d.removed]

    @property
    def unresolved_duplicates(self) -> list[Duplicate]:
        return [d for d in self.duplicates if not d.removed]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {action: len(self.keys(action)) for action in ACTIONS}
        counts["held"] = len(self.held)
        counts["duplicates_removed"] = len(self.removed_duplicates)
        return counts

    def add_duplicates(self, duplicates: Sequence[Duplicate]) -> None:
        """Record what the sweep found: each in :attr:`duplicates`, logged; an
        outcome that named a removed order names the kept one; an order with a
        duplicate that could not be removed becomes ``failed`` (its reason
        names the key and both ERP ids)."""
        self.duplicates += duplicates
        for dup in duplicates:
            if dup.removed:
                logger.warning("push to %s: %s: %s", self.target, dup.po_key, dup.text())
            else:
                logger.error("push to %s: %s: %s", self.target, dup.po_key, dup.text())
            for i, o in enumerate(self.outcomes):
                if o.po_key != dup.po_key:
                    continue
                reason = "; ".join(r for r in (o.reason, dup.text()) if r)
                if dup.removed:
                    ids = (dup.kept_id, dup.kept_name) if o.erp_id == dup.erp_id else None
                    erp_id, erp_name = ids or (o.erp_id, o.erp_name)
                    self.outcomes[i] = replace(o, erp_id=erp_id, erp_name=erp_name, reason=reason)
                else:
                    was = f"{o.reason}; " if o.action == "failed" else f"{o.action}, but "
                    self.outcomes[i] = replace(
                        o, action="failed", reason=f"{was}{dup.text()}: resolve it in the ERP"
                    )

    def erp_ids(self) -> dict[str, str]:
        """``{po_key: erp_id}`` of every order that exists in the ERP."""
        return {o.po_key: o.erp_id for o in self.outcomes if o.erp_id is not None}

    def to_frame(self) -> pd.DataFrame:
        columns = ["po_key", "target", "action", "erp_id", "erp_name", "lines", "total", "reason"]
        rows = [
            {
                "po_key": o.po_key,
                "target": self.target,
                "action": o.action,
                "erp_id": o.erp_id,
                "erp_name": o.erp_name,
                "lines": o.lines,
                "total": o.total,
                "reason": o.reason,
            }
            for o in self.outcomes
        ]
        return pd.DataFrame(rows, columns=columns)

    def text(self) -> str:
        counts = self.counts()
        removed = counts.pop("duplicates_removed")
        head = f"push to {self.target}: " + ", ".join(
            f"{n} {name}" for name, n in counts.items() if n
        )
        if not any(counts.values()):
            head += "nothing to push"
        if removed:
            head += f", {removed} duplicate(s) removed"
        lines = [head]
        for o in self.outcomes:
            ref = f" → {o.erp_name or o.erp_id}" if (o.erp_name or o.erp_id) else ""
            why = f": {o.reason}" if o.reason else ""
            lines.append(f"  {o.action:<9} {o.po_key}{ref}{why}")
        lines += [f"  held      {key}: not approved" for key in self.held]
        return "\n".join(lines)

    def raise_on_failure(self) -> None:
        """Raise :class:`PushFailed` naming every failed order, if any."""
        failed = [o for o in self.outcomes if o.action == "failed"]
        if failed:
            detail = "; ".join(f"{o.po_key}: {o.reason}" for o in failed)
            raise PushFailed(f"{len(failed)} order(s) not pushed to {self.target}: {detail}")


class OrderPusher(Protocol):
    """One ERP target: pushes order documents, returns what it did."""

    target: str

    def push(self, documents: Sequence[OrderDocument]) -> PushReport: ...


# --------------------------------------------------------------------------- settings


class PushSettings(BaseSettings):
    """What every target's connection settings share (each target class sets
    its ``REPLENISH_<TARGET>_`` prefix; priority: keyword arguments, the
    environment, a ``.env`` file, these defaults)."""

    timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request")
    max_attempts: int = Field(4, ge=1, description="Tries per step, the first included")
    backoff: float = Field(1.0, ge=0, description="First wait between tries, doubled each time")
    in_doubt_wait: float | None = Field(
        None,
        ge=0,
        le=MAX_IN_DOUBT_WAIT,
        description="Seconds to wait after a create got no answer (it may still be executed) "
        "before looking the order up again; default: the timeout",
    )

    def doubt_wait(self) -> float:
        """Seconds to wait after a create in doubt: ``in_doubt_wait``, by
        default the request timeout (at most :data:`MAX_IN_DOUBT_WAIT`)."""
        wait = self.timeout if self.in_doubt_wait is None else self.in_doubt_wait
        return min(wait, MAX_IN_DOUBT_WAIT)
