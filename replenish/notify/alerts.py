"""Alerts, the notifier interface, and the text/HTML renderings every channel shares.

An :class:`Alert` is one thing a person should look at (a SKU about to run out,
a dataset that failed validation, a failed run). A :class:`Notifier` delivers a
batch of alerts to one channel: Slack (:mod:`replenish.notify.slack`), email
(:mod:`replenish.notify.email`) or the run log (:class:`LogNotifier`).

Every channel lists the alerts grouped by severity, most severe first, keeping
the caller's order inside a group, and lists at most ``limit`` (50) of them;
the rest are counted ("… and 12 more: 10 warning, 2 info").
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from replenish.errors import NotifyError

if TYPE_CHECKING:
    from replenish.settings import Settings

__all__ = [
    "DEFAULT_LIMIT",
    "SEVERITIES",
    "Alert",
    "LogNotifier",
    "Notifier",
    "build_notifiers",
    "count_by_severity",
    "deduplicate",
    "format_value",
    "render_html",
    "render_text",
    "send_all",
    "sort_alerts",
    "summarize",
]

#: Known severities, most severe first.
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")

#: How many alerts a message lists before it only counts the rest.
DEFAULT_LIMIT = 50

_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}

DetailValue = str | float | int


@dataclass(frozen=True)
class Alert:
    """One thing a person should look at.

    ``kind`` names the rule that raised it (``stockout_risk``,
    ``below_safety_stock``, ``data_quality``, ``run_failed``, ...);
    ``severity`` is one of :data:`SEVERITIES`. ``details`` are the few numbers
    that explain it (``on_hand``, ``reorder_point``, ``days_of_cover``, ...);
    they are copied into a plain ``dict`` (treat it as read-only) so that an
    alert pickles, deep-copies and JSON-serialises (Prefect task results).
    """

    kind: str
    severity: str
    title: str
    message: str
    sku: str | None = None
    location_id: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(
                f"alert severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )
        if not self.kind:
            raise ValueError("alert kind must not be empty")
        object.__setattr__(self, "details", dict(self.details))

    @property
    def key(self) -> str:
        """Stable de-duplication key: ``kind|sku|location_id`` (empty parts for ``None``).

        The same condition on the same SKU at the same location has the same
        key from one run to the next, whatever its severity or wording.
        """
        return f"{self.kind}|{self.sku or ''}|{self.location_id or ''}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (the inverse of :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "sku": self.sku,
            "location_id": self.location_id,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            kind=data["kind"],
            severity=data["severity"],
            title=data["title"],
            message=data.get("message", ""),
            sku=data.get("sku"),
            location_id=data.get("location_id"),
            details=data.get("details") or {},
        )

    @property
    def rank(self) -> int:
        """0 for the most severe."""
        return _RANK[self.severity]

    @property
    def where(self) -> str:
        """``SKU-1 @ WH1``, ``SKU-1``, ``@ WH1`` or ``""``."""
        parts = []
        if self.sku:
            parts.append(self.sku)
        if self.location_id:
            parts.append(f"@ {self.location_id}")
        return " ".join(parts)


@runtime_checkable
class Notifier(Protocol):
    """Delivers a batch of alerts to one channel.

    ``send`` raises :class:`~replenish.errors.NotifyUnavailable` when the
    channel could not be reached (retry) and
    :class:`~replenish.errors.NotifyError` when it refused the message (do
    not). An empty batch sends nothing.
    """

    name: str

    def send(self, alerts: Sequence[Alert], *, heading: str) -> None: ...


# --------------------------------------------------------------------------- helpers


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Most severe first; the caller's order is kept inside a severity."""
    return sorted(alerts, key=lambda alert: alert.rank)


def count_by_severity(alerts: Iterable[Alert]) -> dict[str, int]:
    """``{"critical": 3, "warning": 5}``: non-zero counts only, most severe first."""
    counts = Counter(alert.severity for alert in alerts)
    return {severity: counts[severity] for severity in SEVERITIES if counts[severity]}


def summarize(alerts: Iterable[Alert]) -> str:
    """``"3 critical, 5 warning"``, or ``"no alerts"``."""
    counts = count_by_severity(alerts)
    if not counts:
        return "no alerts"
    return ", ".join(f"{count} {severity}" for severity, count in counts.items())


def deduplicate(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per :attr:`Alert.key`: the most severe, the first seen on a tie.

    The survivors keep the position of the first alert seen with their key.
    """
    best: dict[str, Alert] = {}
    for alert in alerts:
        kept = best.get(alert.key)
        if kept is None or alert.rank < kept.rank:
            best[alert.key] = alert
    return list(best.values())


def format_value(value: DetailValue) -> str:
    """Numbers as people read them: ``3``, ``12.5``, ``0.33`` (two decimals at most)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def one_line(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space."""
    return " ".join(text.split())


def _split(alerts: Sequence[Alert], limit: int) -> tuple[list[Alert], list[Alert]]:
    ordered = sort_alerts(alerts)
    limit = max(limit, 0)
    return ordered[:limit], ordered[limit:]


def _groups(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    """Consecutive runs of one severity (the input is sorted)."""
    groups: list[tuple[str, list[Alert]]] = []
    for alert in alerts:
        if groups and groups[-1][0] == alert.severity:
            groups[-1][1].append(alert)
        else:
            groups.append((alert.severity, [alert]))
    return groups


def more_line(omitted: Sequence[Alert]) -> str:
    """``"… and 12 more: 10 warning, 2 info"`` (plain text, not escaped)."""
    return f"… and {len(omitted)} more: {summarize(omitted)}"


# --------------------------------------------------------------------------- renderings


def render_text(alerts: Sequence[Alert], heading: str, *, limit: int = DEFAULT_LIMIT) -> str:
    """A plain-text digest: the heading and counts, then one block per alert,
    grouped by severity (most severe first), at most ``limit`` alerts listed."""
    shown, omitted = _split(alerts, limit)
    lines = [one_line(heading), f"{summarize(alerts)} ({len(alerts)} alerts)"]
    for severity, group in _groups(shown):
        total = sum(1 for alert in alerts if alert.severity == severity)
        lines += ["", f"{severity.upper()} ({total})"]
        for alert in group:
            title = one_line(alert.title)
            where = f" — {alert.where}" if alert.where else ""
            lines.append(f"- [{alert.kind}] {title}{where}")
            if alert.message:
                lines.extend(f"  {line}" for line in alert.message.strip().splitlines())
            if alert.details:
                lines.append(
                    "  "
                    + ", ".join(f"{name}={format_value(v)}" for name, v in alert.details.items())
                )
    if omitted:
        lines += ["", more_line(omitted)]
    return "\n".join(lines) + "\n"


_COLOURS = {"critical": "#b00020", "warning": "#b36b00", "info": "#1f5fa8"}


def render_html(alerts: Sequence[Alert], heading: str, *, limit: int = DEFAULT_LIMIT) -> str:
    """The same digest as :func:`render_text` as a small HTML document.

    Every piece of alert text is HTML-escaped (SKU names and messages may
    contain ``<``, ``&`` or quotes).
    """
    esc = html.escape
    shown, omitted = _split(alerts, limit)
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>',
        esc(one_line(heading)),
        "</title></head>",
        '<body style="font-family: sans-serif; font-size: 14px;">',
        f"<h2>{esc(one_line(heading))}</h2>",
        f"<p><strong>{esc(summarize(alerts))}</strong> ({len(alerts)} alerts)</p>",
    ]
    for severity, group in _groups(shown):
        total = sum(1 for alert in alerts if alert.severity == severity)
        colour = _COLOURS.get(severity, "#333333")
        out.append(f'<h3 style="color: {colour};">{esc(severity.upper())} ({total})</h3>')
        out.append("<ul>")
        for alert in group:
            item = [f"<li><strong>{esc(one_line(alert.title))}</strong>"]
            if alert.where:
                item.append(f" — <code>{esc(alert.where)}</code>")
            item.append(f' <span style="color: #666666;">[{esc(alert.kind)}]</span>')
            if alert.message:
                item.append("<br>" + esc(alert.message.strip()).replace("\n", "<br>"))
            if alert.details:
                cells = ", ".join(
                    f"{esc(name)}: <strong>{esc(format_value(value))}</strong>"
                    for name, value in alert.details.items()
                )
                item.append(f'<br><span style="color: #444444;">{cells}</span>')
            item.append("</li>")
            out.append("".join(item))
        out.append("</ul>")
    if omitted:
        out.append(f"<p><em>{esc(more_line(omitted))}</em></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- log channel

_LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


class LogNotifier:
    """Writes each alert to a logger (in a flow: the Prefect run logger).

    Levels: critical → ERROR, warning → WARNING, info → INFO. At most
    ``limit`` alerts are logged one per line (most severe first); the rest
    are counted in one last line. Never raises for a delivery problem.
    """

    name = "log"

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[Any], *, limit: int = 200
    ) -> None:
        self.logger = logger
        self.limit = limit

    def send(self, alerts: Sequence[Alert], *, heading: str) -> None:
        if not alerts:
            return
        shown, omitted = _split(alerts, self.limit)
        heading = one_line(heading)
        for alert in shown:
            where = f" ({alert.where})" if alert.where else ""
            details = ", ".join(f"{k}={format_value(v)}" for k, v in alert.details.items())
            self.logger.log(
                _LEVELS.get(alert.severity, logging.WARNING),
                "%s: %s alert [%s] %s%s: %s%s",
                heading,
                alert.severity,
                alert.kind,
                one_line(alert.title),
                where,
                one_line(alert.message),
                f" [{details}]" if details else "",
            )
        if omitted:
            worst = _LEVELS.get(omitted[0].severity, logging.WARNING)
            self.logger.log(worst, "%s: %s (not logged one by one)", heading, more_line(omitted))

    def __repr__(self) -> str:
        return f"LogNotifier({getattr(self.logger, 'name', self.logger)!r})"


# --------------------------------------------------------------------------- wiring


def build_notifiers(
    settings: Settings, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> list[Notifier]:
    """The channels the settings configure, the log first (it cannot fail, so
    the alerts are on record even when a remote channel is down), then Slack
    when ``slack_webhook_url`` is set, then email when ``smtp_host`` and
    ``alert_email_to`` are both set. A half-configured email channel is
    skipped with a warning naming the missing setting (never a secret).
    """
    from replenish.notify.email import EmailNotifier
    from replenish.notify.slack import SlackWebhookNotifier

    notifiers: list[Notifier] = [LogNotifier(logger)]
    if settings.slack_webhook_url is not None:
        url = settings.slack_webhook_url.get_secret_value().strip()
        if url:
            notifiers.append(SlackWebhookNotifier(url))
    if settings.smtp_host and settings.alert_email_to:
        password = settings.smtp_password
        notifiers.append(
            EmailNotifier(
                settings.smtp_host,
                settings.smtp_port,
                settings.alert_email_from,
                list(settings.alert_email_to),
                username=settings.smtp_username or None,
                password=password.get_secret_value() if password is not None else None,
                starttls=settings.smtp_starttls,
                timeout=settings.smtp_timeout,
            )
        )
    elif settings.smtp_host:
        logger.warning(
            "email alerts are off: REPLENISH_SMTP_HOST is set but REPLENISH_ALERT_EMAIL_TO is empty"
        )
    elif settings.alert_email_to:
        logger.warning(
            "email alerts are off: REPLENISH_ALERT_EMAIL_TO is set but REPLENISH_SMTP_HOST is not"
        )
    return notifiers


def send_all(
    notifiers: Iterable[Notifier], alerts: Sequence[Alert], *, heading: str
) -> dict[str, NotifyError]:
    """Send to every channel, even when one fails; return the failures by
    channel name (empty when all succeeded). The caller decides whether a
    failure fails the run (a :class:`~replenish.errors.NotifyUnavailable` is
    worth a retry of that channel alone)."""
    failures: dict[str, NotifyError] = {}
    for notifier in notifiers:
        try:
            notifier.send(alerts, heading=heading)
        except NotifyError as error:
            failures[notifier.name] = error
    return failures
