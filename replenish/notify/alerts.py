"""Alerts, the notifier interface, and the text/HTML renderings every channel shares.

An :class:`Alert` is one thing a person should look at (a SKU about to run out,
a dataset that failed validation, a failed run). A :class:`Notifier` delivers a
batch of alerts to one channel: Slack (:mod:`replenish.notify.slack`), email
(:mod:`replenish.notify.email`) or the run log (:class:`LogNotifier`).

Every channel lists the alerts grouped by severity, most severe first, keeping
the caller's order inside a group, then the resolutions (``change ==
"resolved"``: a condition announced before that is gone), and lists at most
``limit`` (50) of them; the rest are counted ("… and 12 more: 10 warning, 2
info"). Alerts that worsened since they were last announced are marked
"worse" (docs/alerts.md, "De-duplication and resolution").
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
    "CHANGES",
    "DEFAULT_LIMIT",
    "RESOLVED",
    "SEVERITIES",
    "Alert",
    "LogNotifier",
    "Notifier",
    "build_notifiers",
    "count_by_group",
    "count_by_severity",
    "deduplicate",
    "format_value",
    "group_of",
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

#: The group label of resolution notices, listed after every severity.
RESOLVED = "resolved"

#: What an alert says about its condition, relative to what was announced
#: before: ``""`` (no history: a plain alert), ``"new"`` (first notice),
#: ``"worse"`` (re-sent because it worsened), ``"resolved"`` (it is gone).
CHANGES: tuple[str, ...] = ("", "new", "worse", RESOLVED)

#: Order of the groups in every rendering.
_GROUP_RANK = {**_RANK, RESOLVED: len(SEVERITIES)}

DetailValue = str | float | int


@dataclass(frozen=True)
class Alert:
    """One thing a person should look at.

    ``kind`` names the rule that raised it (``stockout_risk``,
    ``below_safety_stock``, ``overstock``, ``po_late``, ``lead_time_drift``,
    ``data_gate_stopped``, ``flow_failed``, ...: docs/alerts.md);
    ``severity`` is one of :data:`SEVERITIES`. What it is about: ``sku`` and
    ``location_id``, ``supplier_id``, and ``ref`` (another identifier: a
    purchase order id, a flow name). ``details`` are the few numbers that
    explain it (``on_hand``, ``reorder_point``, ``days_of_cover``, ...); they
    are copied into a plain ``dict`` (treat it as read-only) so that an alert
    pickles, deep-copies and JSON-serialises (Prefect task results).
    ``change`` is one of :data:`CHANGES` (set by the de-duplication).
    """

    kind: str
    severity: str
    title: str
    message: str
    sku: str | None = None
    location_id: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)
    supplier_id: str | None = None
    ref: str | None = None
    change: str = ""

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(
                f"alert severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )
        if not self.kind:
            raise ValueError("alert kind must not be empty")
        if self.change not in CHANGES:
            raise ValueError(
                f"alert change must be one of {', '.join(map(repr, CHANGES))}, got {self.change!r}"
            )
        object.__setattr__(self, "details", dict(self.details))

    @property
    def key(self) -> str:
        """Stable de-duplication key: ``kind|sku|location_id``, followed by
        ``|supplier_id|ref`` when either is set (empty parts for ``None``).

        The same condition on the same SKU at the same location (the same
        purchase order, the same supplier, the same flow) has the same key from
        one run to the next, whatever its severity, wording or ``change``.
        """
        key = f"{self.kind}|{self.sku or ''}|{self.location_id or ''}"
        if self.supplier_id or self.ref:
            key += f"|{self.supplier_id or ''}|{self.ref or ''}"
        return key

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
            "supplier_id": self.supplier_id,
            "ref": self.ref,
            "change": self.change,
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
            supplier_id=data.get("supplier_id"),
            ref=data.get("ref"),
            change=data.get("change") or "",
        )

    @property
    def rank(self) -> int:
        """0 for the most severe."""
        return _RANK[self.severity]

    @property
    def group(self) -> str:
        """The rendering group: ``"resolved"`` for a resolution, else the severity."""
        return RESOLVED if self.change == RESOLVED else self.severity

    @property
    def where(self) -> str:
        """``SKU-1 @ WH1``, ``SKU-1``, ``@ WH1``, ``supplier S1``, ``PO-7 · supplier
        S1 @ WH1`` or ``""``."""
        parts = []
        if self.sku:
            parts.append(self.sku)
        if self.ref and not self.sku and self.kind not in _REF_HIDDEN:
            parts.append(self.ref)
        if self.supplier_id:
            parts.append(f"{'· ' if parts else ''}supplier {self.supplier_id}")
        if self.location_id:
            parts.append(f"@ {self.location_id}")
        return " ".join(parts)


#: Kinds whose ``ref`` is only a de-duplication key (the flow name is in the title).
_REF_HIDDEN = frozenset({"flow_failed", "flow_crashed"})


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


def group_of(alert: Alert) -> str:
    """``"resolved"`` for a resolution notice, else the alert's severity."""
    return alert.group


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Most severe first, resolutions last; the caller's order is kept inside a group."""
    return sorted(alerts, key=lambda alert: _GROUP_RANK[alert.group])


def count_by_severity(alerts: Iterable[Alert]) -> dict[str, int]:
    """``{"critical": 3, "warning": 5}``: non-zero counts only, most severe first
    (resolution notices counted under their last severity)."""
    counts = Counter(alert.severity for alert in alerts)
    return {severity: counts[severity] for severity in SEVERITIES if counts[severity]}


def count_by_group(alerts: Iterable[Alert]) -> dict[str, int]:
    """``{"critical": 3, "resolved": 2}``: non-zero counts per rendering group,
    most severe first, resolutions last."""
    counts = Counter(alert.group for alert in alerts)
    return {group: counts[group] for group in _GROUP_RANK if counts[group]}


def summarize(alerts: Iterable[Alert]) -> str:
    """``"3 critical, 5 warning, 2 resolved"``, or ``"no alerts"``."""
    counts = count_by_group(alerts)
    if not counts:
        return "no alerts"
    return ", ".join(f"{count} {group}" for group, count in counts.items())


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
    """Consecutive runs of one group (the input is sorted)."""
    groups: list[tuple[str, list[Alert]]] = []
    for alert in alerts:
        if groups and groups[-1][0] == alert.group:
            groups[-1][1].append(alert)
        else:
            groups.append((alert.group, [alert]))
    return groups


def change_label(alert: Alert) -> str:
    """``"worse"`` for a re-sent alert, ``""`` otherwise (new ones are the rule,
    resolutions have their own group)."""
    return "worse" if alert.change == "worse" else ""


def more_line(omitted: Sequence[Alert]) -> str:
    """``"… and 12 more: 10 warning, 2 info"`` (plain text, not escaped)."""
    return f"… and {len(omitted)} more: {summarize(omitted)}"


# --------------------------------------------------------------------------- renderings


def render_text(alerts: Sequence[Alert], heading: str, *, limit: int = DEFAULT_LIMIT) -> str:
    """A plain-text digest: the heading and counts, then one block per alert,
    grouped by severity (most severe first), at most ``limit`` alerts listed."""
    shown, omitted = _split(alerts, limit)
    lines = [one_line(heading), f"{summarize(alerts)} ({len(alerts)} alerts)"]
    for label, group in _groups(shown):
        total = sum(1 for alert in alerts if alert.group == label)
        lines += ["", f"{label.upper()} ({total})"]
        for alert in group:
            title = one_line(alert.title)
            where = f" — {alert.where}" if alert.where else ""
            marks = f"[{alert.kind}]"
            if change_label(alert):
                marks += f" [{change_label(alert)}]"
            lines.append(f"- {marks} {title}{where}")
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


_COLOURS = {"critical": "#b00020", "warning": "#b36b00", "info": "#1f5fa8", RESOLVED: "#1b7a3a"}


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
    for label, group in _groups(shown):
        total = sum(1 for alert in alerts if alert.group == label)
        colour = _COLOURS.get(label, "#333333")
        out.append(f'<h3 style="color: {colour};">{esc(label.upper())} ({total})</h3>')
        out.append("<ul>")
        for alert in group:
            item = [f"<li><strong>{esc(one_line(alert.title))}</strong>"]
            if change_label(alert):
                item.append(
                    f' <span style="color: {_COLOURS["critical"]};">'
                    f"[{esc(change_label(alert))}]</span>"
                )
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

    Levels: critical → ERROR, warning → WARNING, info and resolutions →
    INFO. At most
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
            if alert.change == RESOLVED:
                level, label = logging.INFO, f"resolved {alert.severity}"
            else:
                level = _LEVELS.get(alert.severity, logging.WARNING)
                label = alert.severity + (" (worse)" if alert.change == "worse" else "")
            self.logger.log(
                level,
                "%s: %s alert [%s] %s%s: %s%s",
                heading,
                label,
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

    (The flows build theirs from Prefect blocks first: ``tasks.publish.alert_channels``.)
    """
    from replenish.notify.channels import email_from_settings, slack_url
    from replenish.notify.slack import SlackWebhookNotifier

    notifiers: list[Notifier] = [LogNotifier(logger)]
    url = slack_url(settings)
    if url:
        notifiers.append(SlackWebhookNotifier(url))
    email = email_from_settings(settings, logger)
    if email is not None:
        notifiers.append(email)
    return notifiers


def send_all(
    notifiers: Iterable[Notifier],
    alerts: Sequence[Alert],
    *,
    heading: str,
    digest: bool = True,
) -> dict[str, NotifyError]:
    """Send to every channel, even when one fails; return the failures by
    channel name (empty when all succeeded). The caller decides whether a
    failure fails the run (a :class:`~replenish.errors.NotifyUnavailable` is
    worth a retry of that channel alone).

    ``digest`` (default): one message per channel grouping every alert (Slack
    splits it into parts past its 50-block limit). ``digest=False``: one
    message per alert, most severe first; a channel that fails on one alert
    is not tried with the rest (its failure says how many went out).
    """
    failures: dict[str, NotifyError] = {}
    batches = [list(alerts)] if digest else [[alert] for alert in sort_alerts(alerts)]
    for notifier in notifiers:
        for number, batch in enumerate(batches, start=1):
            try:
                notifier.send(batch, heading=heading)
            except NotifyError as error:
                if not digest and len(batches) > 1:
                    error = type(error)(
                        f"{error} (alert {number} of {len(batches)}; {number - 1} already sent)"
                    )
                failures[notifier.name] = error
                break
    return failures
