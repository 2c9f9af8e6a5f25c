"""What every sales-channel client shares: the batch it returns, the HTTP
request loop with its retry policy, and the assembly of orders into contract
frames.

Retry policy (:class:`HttpFetcher`), for every request of every channel:

* ``429`` — rate limited: wait ``Retry-After`` seconds (a float, as Shopify
  sends it, or an HTTP date; capped at ``max_retry_after_seconds``), retry;
* ``5xx``, timeouts (``httpx.Timeout`` on every call), refused or dropped
  connections — transient: wait ``backoff_seconds · 2^(n−1)`` (capped at
  ``max_backoff_seconds``), retry;
* at most ``max_retries`` retries per request, then
  :class:`~replenish.errors.SourceUnavailable` (a flow may retry it later);
* any other ``4xx``, or a redirect — permanent: :class:`ChannelRequestError`
  at once, with a message saying what to fix (the channel module words it).

Credentials travel in request headers only. They never appear in a log line,
an error message or a ``repr``; response excerpts quoted in errors are
scrubbed of them too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx
import pandas as pd

from replenish import model
from replenish.errors import ContractError, SourceError, SourceUnavailable
from replenish.sources.channels.config import ChannelConfig

__all__ = [
    "REJECTED_COLUMNS",
    "BatchBuilder",
    "ChannelBatch",
    "ChannelRequestError",
    "FetchCounts",
    "HttpFetcher",
    "OrderRecord",
    "SalesChannel",
    "UnidentifiedOrder",
    "parse_quantity",
    "parse_utc",
    "retry_after_seconds",
]

log = logging.getLogger("replenish.sources.channels")

#: Columns of :attr:`ChannelBatch.rejected`.
REJECTED_COLUMNS = ["channel", "order_id", "item_id", "field", "value", "reason"]
_USER_AGENT = "replenish (sales channel sync)"
_MAX_VALUE_CHARS = 200


class ChannelRequestError(SourceError):
    """Permanent: the channel refused the request (HTTP 4xx other than 429, or
    a redirect). Retrying cannot help: a credential, the shop URL, the API
    version or a permission must be fixed. ``status`` is the HTTP status (None
    for a redirect to another site)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------- result


@dataclass
class FetchCounts:
    """What one fetch did."""

    #: HTTP requests sent, retries included
    requests: int = 0
    #: requests repeated after a 429, a 5xx, a timeout or a dropped connection
    retries: int = 0
    #: pages of the order list read
    pages: int = 0
    #: distinct orders in the batch
    orders: int = 0
    #: order payloads dropped because a later version of the same order was read
    duplicates: int = 0
    lines: int = 0
    returns: int = 0
    rejected: int = 0
    #: pauses taken to stay under the API call limit (Shopify)
    throttle_waits: int = 0
    #: seconds spent waiting (Retry-After, backoff, pacing)
    waited_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ChannelBatch:
    """The orders one fetch read from one channel, as contract frames.

    * ``lines`` — ``sales_order_lines`` (:func:`replenish.model.coerce`),
      unique on ``(channel, order_id, line_no)``;
    * ``returns`` — ``returns`` (:func:`replenish.model.coerce`), unique on
      ``(order_id, sku, returned_at)``;
    * ``rejected`` — what was not imported and why (:data:`REJECTED_COLUMNS`);
    * ``high_watermark`` — the latest ``updated_at`` of the orders read (naive
      UTC), None when none were read: the next incremental fetch starts there;
    * ``order_ids`` — every order read (the latest version of each), also those
      whose lines were all rejected: a cache that *replaces* the rows of these
      orders drops lines removed from an order since the last sync.
    """

    channel: str
    kind: str
    since: datetime | None
    lines: pd.DataFrame
    returns: pd.DataFrame
    rejected: pd.DataFrame
    high_watermark: datetime | None
    counts: FetchCounts
    order_ids: tuple[str, ...] = ()


class SalesChannel(Protocol):
    """One connected shop: ``fetch(since)`` reads the orders updated since then."""

    @property
    def config(self) -> ChannelConfig: ...

    def fetch(self, since: datetime | None) -> ChannelBatch: ...


C = TypeVar("C", bound=ChannelConfig)


class HttpChannel(Generic[C]):
    """What every HTTP shop client holds: its configuration, an
    ``httpx.Client`` to reuse (not closed here; None: one per fetch), ``env``
    in place of ``os.environ`` for reading credentials, and ``sleep``, the
    pause function of retries and pacing."""

    def __init__(
        self,
        config: C,
        *,
        client: httpx.Client | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._client = client
        self._env = env
        self._sleep = sleep

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(name={c.name!r}, base_url={c.base_url!r})"


# -------------------------------------------------------------------- parsing


#: The contract's sku column (replenish.model: String(64)).
SKU_MAX = 64


def line_item(
    sku: str, sku_raw: object, quantity_raw: object, no_sku_reason: str
) -> float | tuple[str, object, str]:
    """The checks every shop applies to a line item: a SKU (``no_sku_reason``
    says why a missing one cannot be matched), at most :data:`SKU_MAX`
    characters, a positive quantity. The quantity, or ``(field, value,
    reason)`` to reject the line with."""
    if not sku:
        return ("sku", sku_raw, no_sku_reason)
    if len(sku) > SKU_MAX:
        return ("sku", sku, f"SKU longer than {SKU_MAX} characters")
    qty, problem = parse_quantity(quantity_raw)
    if qty is None or qty <= 0:
        return ("quantity", quantity_raw, problem or "quantity is not a positive number")
    return qty


def list_of(value: object) -> list[Any] | None:
    """A JSON array field: the list itself, [] when absent (null), None when
    it is something else (the caller rejects it with a reason)."""
    if value is None:
        return []
    return value if isinstance(value, list) else None


def parse_utc(value: object) -> datetime | None:
    """An ISO 8601 timestamp as a naive UTC ``datetime``; None if it cannot be
    read. Aware values (``2024-03-01T10:15:00-05:00``, ``...Z``) are converted
    to UTC; naive ones (WooCommerce's ``*_gmt`` fields) are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # 0001-01-01T00:00+05:00 has no UTC date
        return None
    return stamp


def to_naive_utc(value: datetime) -> datetime:
    """``value`` as naive UTC (naive input is taken as UTC already)."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_quantity(value: object) -> tuple[float | None, str | None]:
    """``(quantity, None)`` for a finite number, ``(None, reason)`` otherwise.
    Booleans are not numbers here; numeric strings are accepted."""
    if isinstance(value, bool) or value is None:
        return None, "quantity is missing" if value is None else "quantity is not a number"
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None, "quantity is not a number"
    else:
        return None, "quantity is not a number"
    if not math.isfinite(number):
        return None, "quantity is not a finite number"
    return number, None


def id_text(value: object) -> str | None:
    """An API id (integer or text) as text; None when missing or blank."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def show(value: object) -> str | None:
    """A payload value as short text for the rejected table."""
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


# ------------------------------------------------------------------- assembly


@dataclass
class OrderRecord:
    """One order, parsed: its contract lines and returns, and what was rejected.
    ``item_skus`` (line item id -> SKU) and ``has_refunds`` serve channels
    that read refunds separately (WooCommerce)."""

    order_id: str
    updated_at: datetime | None
    lines: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    item_skus: dict[str, str] = field(default_factory=dict)
    has_refunds: bool = False


@dataclass(frozen=True)
class UnidentifiedOrder:
    """An entry of an order list that is not an order with an id."""

    field: str
    value: object
    reason: str


def rejection(
    channel: str,
    order_id: str | None,
    item_id: object,
    field_name: str,
    value: object,
    reason: str,
) -> dict[str, Any]:
    return {
        "channel": channel,
        "order_id": order_id,
        "item_id": id_text(item_id),
        "field": field_name,
        "value": show(value),
        "reason": reason,
    }


class BatchBuilder:
    """Collects parsed orders; one order id keeps only its latest version.

    An order modified while a sync pages through the list can be read twice
    (Shopify's cursor meets it again at its new ``updated_at``; WooCommerce's
    page offsets shift). The version with the latest ``updated_at`` wins (the
    later one read on a tie), so the batch is unique on (channel, order_id,
    line_no) and its returns come from the same version of the order.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.orders: dict[str, OrderRecord] = {}
        self.loose_rejections: list[dict[str, Any]] = []
        self.duplicates = 0
        self.high_watermark: datetime | None = None

    def add(self, record: OrderRecord) -> bool:
        """Keep ``record`` unless a later version of the order is already kept.
        Returns whether it was kept."""
        if record.updated_at is not None and (
            self.high_watermark is None or record.updated_at > self.high_watermark
        ):
            self.high_watermark = record.updated_at
        previous = self.orders.get(record.order_id)
        if previous is not None:
            self.duplicates += 1
            if (
                previous.updated_at is not None
                and record.updated_at is not None
                and previous.updated_at > record.updated_at
            ):
                return False
        self.orders[record.order_id] = record
        return True

    def reject(self, entry: UnidentifiedOrder) -> None:
        """An entry of the order list that is not an identifiable order."""
        self.loose_rejections.append(
            rejection(self.channel, None, None, entry.field, entry.value, entry.reason)
        )

    def build(self, *, kind: str, since: datetime | None, counts: FetchCounts) -> ChannelBatch:
        lines: list[dict[str, Any]] = []
        returns: list[dict[str, Any]] = []
        rejected = list(self.loose_rejections)
        for record in self.orders.values():
            lines.extend(record.lines)
            for row in record.returns:  # a return's SKU comes from the refund: check it too
                sku = row.get("sku")
                if isinstance(sku, str) and len(sku) > SKU_MAX:
                    rejected.append(
                        rejection(
                            self.channel,
                            record.order_id,
                            None,
                            "returns.sku",
                            sku,
                            f"SKU longer than {SKU_MAX} characters",
                        )
                    )
                else:
                    returns.append(row)
            rejected.extend(record.rejected)
        returns_frame, collisions = _returns_frame(returns, self.channel)
        rejected.extend(collisions)
        lines_frame = _frame("sales_order_lines", lines)
        lines_frame = lines_frame.sort_values(
            ["ordered_at", "order_id", "line_no"], kind="stable"
        ).reset_index(drop=True)
        rejected_frame = pd.DataFrame(rejected, columns=REJECTED_COLUMNS).astype("string")
        counts.orders = len(self.orders)
        counts.duplicates = self.duplicates
        counts.lines = len(lines_frame)
        counts.returns = len(returns_frame)
        counts.rejected = len(rejected_frame)
        return ChannelBatch(
            channel=self.channel,
            kind=kind,
            since=since,
            lines=lines_frame,
            returns=returns_frame,
            rejected=rejected_frame,
            high_watermark=self.high_watermark,
            counts=counts,
            order_ids=tuple(self.orders),
        )


def _frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return model.empty_frame(table)
    return model.coerce(table, pd.DataFrame(rows))


def _returns_frame(
    rows: list[dict[str, Any]], channel: str
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Returns summed per (order_id, sku, location_id, returned_at, restockable).

    The contract keys a return on (order_id, sku, returned_at): two parts of
    one refund for the same SKU that differ in location or restockability
    cannot both be stored. The first (restockable first) is kept; the others
    are rejected with that reason, nothing is merged silently."""
    if not rows:
        return model.empty_frame("returns"), []
    frame = pd.DataFrame(rows)
    keys = ["order_id", "sku", "location_id", "returned_at", "restockable"]
    summed = (
        frame.groupby(keys, sort=False, dropna=False)["qty"]
        .sum()
        .reset_index()
        .sort_values(
            ["order_id", "returned_at", "sku", "restockable"],
            ascending=[
                True,
                True,
                True,
                False,
            ],
            kind="stable",
        )
    )
    clash = summed.duplicated(["order_id", "sku", "returned_at"], keep="first")
    collisions = [
        rejection(
            channel,
            str(row.order_id),
            None,
            "returned_at",
            f"{row.returned_at:%Y-%m-%d %H:%M:%S}",
            f"a second return of SKU {row.sku} ({row.qty:g} unit(s), location "
            f"{row.location_id}, restockable={row.restockable}) in the same refund: the "
            "returns contract holds one row per (order_id, sku, returned_at)",
        )
        for row in summed[clash].itertuples()
    ]
    kept = model.coerce("returns", summed[~clash]).reset_index(drop=True)
    return kept, collisions


# ----------------------------------------------------------------------- HTTP


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """``Retry-After`` as seconds: delta-seconds (Shopify sends a float such as
    ``2.0``) or an HTTP date; ``default`` when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else default
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def client_context(client: httpx.Client | None, config: ChannelConfig) -> Iterator[httpx.Client]:
    """``client`` as is (not closed here), or a new one closed on exit.
    Redirects are never followed: a credential header must not travel to
    another site."""
    if client is not None:
        yield client
        return
    with httpx.Client(
        timeout=httpx.Timeout(config.timeout_seconds),
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    ) as own:
        yield own


#: builds the message of a permanent refusal: (response, excerpt of its body)
Describe = Callable[[httpx.Response, str], str]


class HttpFetcher:
    """GET with the retry policy of the module docstring.

    ``describe`` words the message of a permanent refusal for the channel
    (e.g. a 401 names the environment variable of the token); ``secrets`` are
    scrubbed from every quoted response; ``after_response`` sees every
    response that is not retried (Shopify paces itself from it).
    """

    def __init__(
        self,
        client: httpx.Client,
        config: ChannelConfig,
        counts: FetchCounts,
        *,
        describe: Describe,
        secrets: Sequence[str],
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        after_response: Callable[[httpx.Response], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.config = config
        self.counts = counts
        self.describe = describe
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        self._headers.update(headers or {})
        self._auth = auth
        self._after = after_response
        self._sleep = sleep
        self.timeout = httpx.Timeout(config.timeout_seconds)
        self.prefix = f"{config.kind} channel {config.name!r}"

    def __repr__(self) -> str:
        return f"HttpFetcher({self.prefix}, credentials=***)"

    # ----------------------------------------------------------------- helpers

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def excerpt(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, LookupError):
            text = ""
        return self.redact(_one_line(text))[:300] or "(empty body)"

    @staticmethod
    def where(url: httpx.URL | str) -> str:
        """The URL without its query string, for messages."""
        u = httpx.URL(str(url))
        return str(u.copy_with(query=None, fragment=None))

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.counts.waited_seconds += seconds
            self._sleep(seconds)

    # -------------------------------------------------------------------- GET

    def get(self, url: str, params: Mapping[str, str | int] | None = None) -> httpx.Response:
        """The response of ``GET url`` (2xx), after the retries it needed."""
        config = self.config
        attempt = 0
        while True:
            attempt += 1
            self.counts.requests += 1
            backoff = min(config.backoff_seconds * 2 ** (attempt - 1), config.max_backoff_seconds)
            try:
                response = self.client.get(
                    url,
                    params=params,
                    headers=self._headers,
                    auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
            except httpx.TimeoutException as exc:
                problem = f"timed out after {config.timeout_seconds:g} s ({type(exc).__name__})"
                wait = backoff
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ChannelRequestError(
                    f"{self.prefix}: the URL {self.where(url)} is not usable "
                    f"({type(exc).__name__}); check base_url"
                ) from None
            except httpx.TransportError as exc:
                reason = self.redact(_one_line(str(exc)))[:200]
                problem = f"connection failed ({type(exc).__name__}: {reason})"
                wait = backoff
            else:
                status = response.status_code
                if 200 <= status < 300:
                    if self._after is not None:
                        self._after(response)
                    return response
                if status == 429:
                    wait = min(
                        retry_after_seconds(response, default=backoff),
                        config.max_retry_after_seconds,
                    )
                    problem = f"rate limited (HTTP 429, Retry-After {wait:g} s)"
                elif status >= 500:
                    problem = f"HTTP {status} {self.excerpt(response)}"
                    wait = backoff
                elif 300 <= status < 400:
                    target = response.headers.get("Location", "")
                    raise ChannelRequestError(
                        f"{self.prefix}: {self.where(response.request.url)} redirects "
                        f"(HTTP {status}) to {self.where(target) if target else '?'}; "
                        "redirects are not followed so that credentials stay with the "
                        "configured site: set base_url to the final address",
                        status=status,
                    )
                else:
                    raise ChannelRequestError(
                        self.describe(response, self.excerpt(response)), status=status
                    )
            if attempt > config.max_retries:
                raise SourceUnavailable(
                    f"{self.prefix}: {self.where(url)} unavailable after {attempt} "
                    f"attempt(s): {problem}"
                ) from None
            self.counts.retries += 1
            log.info(
                "%s: %s %s; retry %d of %d in %.2f s",
                self.prefix,
                self.where(url),
                problem,
                attempt,
                config.max_retries,
                wait,
            )
            self.wait(wait)

    def json(self, response: httpx.Response) -> Any:
        """The response body as JSON, or :class:`ContractError`."""
        try:
            return response.json()
        except ValueError:
            raise ContractError(
                f"{self.prefix}: {self.where(response.request.url)} answered HTTP "
                f"{response.status_code} with a body that is not JSON: {self.excerpt(response)}"
            ) from None
