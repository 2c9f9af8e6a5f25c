"""Alerts to people: Slack (incoming webhook), email (SMTP) and the run log.

Build the channels from the settings with :func:`build_notifiers`, then call
``notifier.send(alerts, heading=...)`` on each (or :func:`send_all`). Which
conditions raise alerts: :mod:`replenish.notify.rules`; their life across
runs (new, worse, resolved): :mod:`replenish.notify.lifecycle` and
:func:`replenish.notify.dispatch.dispatch` (docs/alerts.md). Every
channel raises :class:`~replenish.errors.NotifyUnavailable` for a transient
fault and :class:`~replenish.errors.NotifyError` for a permanent one.
"""

from replenish.notify.alerts import (
    RESOLVED,
    SEVERITIES,
    Alert,
    LogNotifier,
    Notifier,
    build_notifiers,
    count_by_group,
    count_by_severity,
    deduplicate,
    render_html,
    render_text,
    send_all,
    sort_alerts,
    summarize,
)
from replenish.notify.email import EmailNotifier
from replenish.notify.slack import SlackWebhookNotifier, build_payloads, webhook_client_poster

__all__ = [
    "RESOLVED",
    "SEVERITIES",
    "Alert",
    "EmailNotifier",
    "LogNotifier",
    "Notifier",
    "SlackWebhookNotifier",
    "build_notifiers",
    "build_payloads",
    "count_by_group",
    "count_by_severity",
    "deduplicate",
    "render_html",
    "render_text",
    "send_all",
    "sort_alerts",
    "summarize",
    "webhook_client_poster",
]
