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
* **refused for one order** — the ERP answers with an error for that order
  (a validation error, a missing record, a permission on that document): the
  order is reported ``failed`` with the ERP's message, the other orders go on.
* **refused for all** — wrong credentials or no access at all:
  :class:`PushAuthError`, nothing more is tried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import httpx
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings

from replenish.errors import ReplenishError
from replenish.orders.documents import OrderDocument

__all__ = [
    "ACTIONS",
    "LOST_ANSWER",
    "Action",
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
    "with_retries",
]

T = TypeVar("T")

Action = Literal["created", "updated", "unchanged", "skipped", "failed"]
ACTIONS: tuple[Action, ...] = ("created", "updated", "unchanged", "skipped", "failed")
#: The reason of an order whose create or update went through but whose
#: answer was lost (the retry finds the ERP already equal to the draft).
LOST_ANSWER = "the ERP's answer was lost; found done on retry"
#: The longest wait between two attempts, whatever a ``Retry-After`` asks.
MAX_WAIT = 30.0


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
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(
        self, problem: str, wait: float | None = None, erp_error: tuple[str, str] | None = None
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait
        self.erp_error = erp_error


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
            sleep(min(max(wait, 0.0), MAX_WAIT))
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

    Raises:
        PushError: the URL itself is unusable (no retry can help).
    """
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as e:
        raise Transient(f"{what}: timed out ({type(e).__name__})") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
        raise PushError(f"{what}: the URL is not usable ({e})") from None
    except httpx.TransportError as e:
        raise Transient(f"{what}: connection failed ({type(e).__name__}: {e})") from None
    if response.status_code == 429:
        raise Transient(f"{what}: rate limited (HTTP 429)", _retry_after(response))
    if response.status_code >= 500:
        erp_error = explain(response) if explain is not None else None
        detail = f": {erp_error[0]}: {erp_error[1]}" if erp_error else ""
        raise Transient(
            f"{what}: HTTP {response.status_code} {response.reason_phrase}{detail}",
            erp_error=erp_error,
        )
    return response


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
    because their status is not pushable (not approved yet)."""

    target: str
    outcomes: list[OrderOutcome] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

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

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {action: len(self.keys(action)) for action in ACTIONS}
        counts["held"] = len(self.held)
        return counts

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
        head = f"push to {self.target}: " + ", ".join(
            f"{n} {name}" for name, n in counts.items() if n
        )
        if not any(counts.values()):
            head += "nothing to push"
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


def chunks(values: Iterable[T], size: int) -> list[list[T]]:
    """``values`` in lists of at most ``size`` (sorted input stays sorted)."""
    items = list(values)
    return [items[i : i + size] for i in range(0, len(items), size)]
