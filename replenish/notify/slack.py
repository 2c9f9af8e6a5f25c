"""Alerts to a Slack channel through an *incoming webhook*.

Wire format (Slack, "Sending messages using incoming webhooks"): one HTTP
``POST`` of JSON ``{"text": <fallback>, "blocks": [<Block Kit blocks>]}`` to
the webhook URL. Slack answers ``200`` with the body ``ok``. Errors are an
HTTP status with a short plain-text body:

* ``400 invalid_payload`` / ``no_text`` / ``too_many_attachments`` /
  ``user_not_found``, ``403 action_prohibited`` / ``invalid_token`` /
  ``team_disabled`` / ``posting_to_general_channel_denied``,
  ``404 channel_not_found`` / ``no_service`` / ``no_team``,
  ``410 channel_is_archived``: permanent → :class:`~replenish.errors.NotifyError`;
* ``429`` with ``Retry-After`` (seconds): rate limited (about one message per
  second per webhook) → wait, retry;
* ``5xx``, timeouts, connection errors: transient → bounded retries with a
  small exponential backoff, then :class:`~replenish.errors.NotifyUnavailable`.

Block Kit limits honoured: at most 50 blocks per message (a long batch is
split into several messages, "part 1/3"), section text ≤ 3000 characters,
header text ≤ 150 characters. Text in ``mrkdwn`` escapes ``&``, ``<`` and
``>`` as Slack requires, so a SKU named ``<A&B>`` cannot turn into a link or
a mention.

The webhook URL is a secret (anyone holding it can post to the channel): it
never appears in an error, a ``repr`` or a log line; this module also redacts
it from the request lines the ``httpx`` logger writes at INFO.

Transport: by default :class:`SlackWebhookNotifier` posts with ``httpx``. In
the flows it posts through ``prefect_slack``'s ``SlackWebhook`` block instead
(``block.get_client(sync_client=True)``, a ``slack_sdk`` ``WebhookClient``):
:func:`webhook_client_poster` adapts that client, so the payloads, retries
and error classification are the same whichever way the message leaves.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from replenish.errors import ConfigurationError, NotifyError, NotifyUnavailable
from replenish.notify.alerts import (
    RESOLVED,
    Alert,
    count_by_group,
    format_value,
    one_line,
    sort_alerts,
    summarize,
)

__all__ = [
    "MAX_BLOCKS",
    "MAX_SECTION_TEXT",
    "SlackPostFailed",
    "SlackReply",
    "SlackWebhookNotifier",
    "build_payloads",
    "webhook_client_poster",
]

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000
_MAX_MESSAGE_CHARS = 1500  # an alert's own message, before escaping

_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
    RESOLVED: ":white_check_mark:",
}

# header, summary section, divider, context: the blocks every message carries
_FIXED_BLOCKS = 4


# --------------------------------------------------------------------------- payloads


def _mrkdwn_escape(text: str) -> str:
    """Slack's three control characters (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in ``…`` when cut, never inside an
    ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def _code(text: str) -> str:
    return "`" + _mrkdwn_escape(one_line(text).replace("`", "'")) + "`"


def _alert_text(alert: Alert) -> str:
    emoji = _EMOJI.get(alert.group, ":white_circle:")
    label = f"*{alert.group.upper()}*"
    if alert.change == RESOLVED:
        label += f" (was {alert.severity})"
    elif alert.change == "worse":
        label += " · _worse_"
    lines = [f"{emoji} {label} · *{_mrkdwn_escape(one_line(alert.title))}*"]
    message = alert.message.strip()
    if message:
        if len(message) > _MAX_MESSAGE_CHARS:
            message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
        lines.append(_mrkdwn_escape(message))
    where = []
    if alert.sku:
        where.append(f"SKU {_code(alert.sku)}")
    if alert.location_id:
        where.append(f"location {_code(alert.location_id)}")
    if alert.supplier_id:
        where.append(f"supplier {_code(alert.supplier_id)}")
    if alert.ref and not alert.sku:
        where.append(f"ref {_code(alert.ref)}")
    where.append(f"kind {_code(alert.kind)}")
    lines.append(" · ".join(where))
    if alert.details:
        lines.append(
            " · ".join(
                f"{_mrkdwn_escape(name)}: *{_mrkdwn_escape(format_value(value))}*"
                for name, value in alert.details.items()
            )
        )
    return _cut("\n".join(lines), MAX_SECTION_TEXT)


def _chunks(alerts: Sequence[Alert], max_blocks: int) -> list[list[Alert]]:
    """Greedy split so that each message has at most ``max_blocks`` blocks:
    the fixed blocks, one section per alert, and a divider between severities."""
    budget = max(max_blocks - _FIXED_BLOCKS, 1)
    chunks: list[list[Alert]] = []
    current: list[Alert] = []
    used = 0
    for alert in sort_alerts(alerts):
        need = 1 + (1 if current and current[-1].group != alert.group else 0)
        if current and used + need > budget:
            chunks.append(current)
            current, used, need = [], 0, 1
        current.append(alert)
        used += need
    if current:
        chunks.append(current)
    return chunks


def build_payloads(
    alerts: Sequence[Alert], *, heading: str, max_blocks: int = MAX_BLOCKS
) -> list[dict[str, Any]]:
    """The JSON bodies to post, one per Slack message (empty for no alerts).

    Each message: a ``header`` (the heading), a ``section`` with the batch's
    counts, a ``divider``, one ``section`` per alert (most severe first,
    resolutions last, a ``divider`` between groups) and a ``context`` footer;
    ``text`` is the notification fallback.
    """
    chunks = _chunks(alerts, max_blocks)
    total = len(chunks)
    summary = summarize(alerts)
    summary_md = " · ".join(
        f"{_EMOJI.get(severity, '')} *{count} {severity}*"
        for severity, count in count_by_group(alerts).items()
    )
    payloads: list[dict[str, Any]] = []
    first = 1
    for number, chunk in enumerate(chunks, start=1):
        part = f" (part {number}/{total})" if total > 1 else ""
        header = _cut(one_line(heading), MAX_HEADER_TEXT - len(part)) + part
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(summary_md or "no alerts", MAX_SECTION_TEXT),
                },
            },
            {"type": "divider"},
        ]
        previous: str | None = None
        for alert in chunk:
            if previous is not None and alert.group != previous:
                blocks.append({"type": "divider"})
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": _alert_text(alert)}}
            )
            previous = alert.group
        last = first + len(chunk) - 1
        footer = f"replenish · alerts {first}–{last} of {len(alerts)}"
        if total > 1:
            footer += f" · message {number} of {total}"
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _cut(footer, MAX_CONTEXT_TEXT)}],
            }
        )
        first = last + 1
        payloads.append(
            {
                "text": _mrkdwn_escape(f"{one_line(heading)}: {summary}{part}"),
                "blocks": blocks,
            }
        )
    return payloads


# --------------------------------------------------------------------------- redaction


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in the records of one logger with ``***``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


_HTTPX_REDACTOR = _RedactSecrets()
logging.getLogger("httpx").addFilter(_HTTPX_REDACTOR)
_SDK_REDACTOR = _RedactSecrets()
logging.getLogger("replenish.notify.slack_sdk").addFilter(_SDK_REDACTOR)


# --------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class SlackReply:
    """What the webhook answered: the HTTP status, headers and body text."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


class SlackPostFailed(Exception):
    """The POST got no HTTP answer. ``problem`` is safe to show (no URL);
    ``transient``: worth a retry (a refused connection, a timeout), or not
    (an unusable URL)."""

    def __init__(self, problem: str, *, transient: bool = True) -> None:
        super().__init__(problem)
        self.problem = problem
        self.transient = transient


class SlackPoster(Protocol):
    """POST one JSON payload to the webhook within ``timeout`` seconds.

    Returns the answer whatever its status; raises :class:`SlackPostFailed`
    when there is none."""

    def __call__(self, payload: dict[str, Any], timeout: float) -> SlackReply: ...


class _WebhookClient(Protocol):
    """The part of ``slack_sdk.webhook.WebhookClient`` the poster uses."""

    url: str
    timeout: int
    logger: logging.Logger
    retry_handlers: list[Any]

    def send(self, *, text: str | None = ..., blocks: Sequence[Any] | None = ...) -> Any: ...


#: ``slack_sdk`` logs the request URL at DEBUG and INFO (a retry) and the
#: error at ERROR: its webhook clients log here instead, WARNING and up only,
#: secrets redacted.
_SDK_LOGGER = logging.getLogger("replenish.notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.WARNING)


def webhook_client_poster(client: _WebhookClient) -> SlackPoster:
    """A :class:`SlackPoster` over a ``slack_sdk`` ``WebhookClient`` — the one
    ``prefect_slack.SlackWebhook.get_client(sync_client=True)`` returns.

    The client's own retry handlers are removed (the notifier retries, with
    the same bounds as over ``httpx``) and its logger replaced by a quiet one
    that redacts the URL. Its ``send(text=..., blocks=...)`` posts the Block
    Kit payload; ``urllib`` errors become :class:`SlackPostFailed`.
    """
    client.retry_handlers = []
    client.logger = _SDK_LOGGER
    _SDK_REDACTOR.add(client.url)
    _HTTPX_REDACTOR.add(client.url)

    def post(payload: dict[str, Any], timeout: float) -> SlackReply:
        client.timeout = max(1, math.ceil(timeout))
        try:
            response = client.send(text=payload.get("text"), blocks=payload.get("blocks"))
        except TimeoutError as exc:
            raise SlackPostFailed(f"timed out after {timeout:g} s ({type(exc).__name__})") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise SlackPostFailed(f"timed out after {timeout:g} s (URLError)") from None
            text = _HTTPX_REDACTOR.redact(one_line(str(reason)))[:200]
            raise SlackPostFailed(f"connection failed (URLError: {text})") from None
        except ValueError as exc:  # urllib: "unknown url type"
            raise SlackPostFailed(
                f"Slack webhook URL is not usable ({type(exc).__name__})", transient=False
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SlackPostFailed(f"connection failed ({reason})") from None
        headers = {str(k): str(v) for k, v in (getattr(response, "headers", None) or {}).items()}
        return SlackReply(int(response.status_code), str(response.body or ""), headers)

    return post


# --------------------------------------------------------------------------- notifier


def _retry_after(response: SlackReply, default: float) -> float:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date)."""
    value = response.header("Retry-After").strip()
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _body_excerpt(response: SlackReply) -> str:
    return one_line(response.body)[:200] or "(empty body)"


class SlackWebhookNotifier:
    """Posts alerts to one Slack incoming webhook.

    ``max_attempts`` bounds the POSTs per message (first try included);
    transient failures wait ``backoff · 2^(n−1)`` seconds, a 429 waits its
    ``Retry-After`` capped at ``max_retry_after``. ``client`` (not closed
    here) lets a caller share a connection pool or set transports; by default
    each :meth:`send` opens and closes its own client with ``timeout``.
    ``poster`` replaces ``httpx`` altogether (:func:`webhook_client_poster`:
    ``prefect_slack``'s client); ``url`` is then only checked and redacted.
    """

    name = "slack"

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        poster: SlackPoster | None = None,
    ) -> None:
        url = url.strip()
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            # never echo the value: it is a secret
            raise ConfigurationError("the Slack webhook URL must be an http(s) URL with a host")
        self._url = url
        self._client = client
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = max(0.0, backoff)
        self.max_retry_after = max(0.0, max_retry_after)
        self._sleep = sleep
        self._poster = poster
        _HTTPX_REDACTOR.add(url)
        path = parsed.raw_path.decode("ascii", "replace")
        if len(path) > 8:
            _HTTPX_REDACTOR.add(path)

    def __repr__(self) -> str:
        return "SlackWebhookNotifier(url='***')"

    def send(self, alerts: Sequence[Alert], *, heading: str) -> None:
        """Post the alerts, split into as many messages as Slack's limits need.

        Messages go out in order; if one fails for good the later ones are not
        sent and the error says how many went out.
        """
        payloads = build_payloads(alerts, heading=heading)
        if not payloads:
            return
        with self._poster_context() as post:
            for number, payload in enumerate(payloads, start=1):
                try:
                    self._post(post, payload)
                except NotifyError as error:
                    if number == 1:
                        raise
                    raise type(error)(
                        f"{error} (message {number} of {len(payloads)}; "
                        f"{number - 1} already posted)"
                    ) from None

    @contextlib.contextmanager
    def _poster_context(self) -> Iterator[SlackPoster]:
        if self._poster is not None:
            yield self._poster
            return
        if self._client is not None:
            yield self._httpx_poster(self._client)
            return
        with httpx.Client(timeout=self.timeout, headers={"User-Agent": "replenish"}) as client:
            yield self._httpx_poster(client)

    def _httpx_poster(self, client: httpx.Client) -> SlackPoster:
        def post(payload: dict[str, Any], timeout: float) -> SlackReply:
            try:
                response = client.post(self._url, json=payload, timeout=timeout)
            except httpx.TimeoutException as exc:
                raise SlackPostFailed(
                    f"timed out after {timeout:g} s ({type(exc).__name__})"
                ) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise SlackPostFailed(
                    f"Slack webhook URL is not usable ({type(exc).__name__})", transient=False
                ) from None
            except httpx.TransportError as exc:
                reason = _HTTPX_REDACTOR.redact(one_line(str(exc)))[:200]
                raise SlackPostFailed(
                    f"connection failed ({type(exc).__name__}: {reason})"
                ) from None
            except httpx.HTTPError as exc:
                raise SlackPostFailed(
                    f"Slack webhook request failed ({type(exc).__name__})", transient=False
                ) from None
            try:
                body = response.text
            except (UnicodeDecodeError, LookupError):
                body = ""
            return SlackReply(response.status_code, body, dict(response.headers))

        return post

    def _post(self, post: SlackPoster, payload: dict[str, Any]) -> None:
        attempt = 0
        while True:
            attempt += 1
            wait = self.backoff * 2 ** (attempt - 1)
            try:
                response = post(payload, self.timeout)
            except SlackPostFailed as exc:
                if not exc.transient:
                    raise NotifyError(exc.problem) from None
                problem = exc.problem
            else:
                status = response.status
                if 200 <= status < 300:
                    return
                body = _HTTPX_REDACTOR.redact(_body_excerpt(response))
                if status == 429:
                    wait = min(_retry_after(response, default=1.0), self.max_retry_after)
                    problem = f"rate limited (HTTP 429 {body})"
                elif status >= 500:
                    problem = f"HTTP {status} {body}"
                else:
                    raise NotifyError(f"Slack rejected the message: HTTP {status} {body}")
            if attempt >= self.max_attempts:
                raise NotifyUnavailable(
                    f"Slack webhook unavailable after {attempt} attempt(s): {problem}"
                ) from None
            self._sleep(wait)
