"""One run's alerts, from rules to people: reconcile, send, record.

:func:`dispatch` is what the flow's ``send-alerts`` task and the flow state
hook call (docs/alerts.md):

1. :meth:`Store.reconcile_alerts <replenish.store.Store.reconcile_alerts>`
   compares the run's alerts with the open ones and claims the notices (new,
   worse, resolved): a rerun finds nothing to say;
2. the notices go to every channel, as one digest per channel or one message
   per notice (``digest``);
3. the channels that took them are recorded. If remote channels are
   configured and *none* took them, the claims are released and the next run
   announces them again (the run log alone does not count as delivered then).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from replenish.notify.alerts import Alert, LogNotifier, Notifier, send_all
from replenish.notify.lifecycle import AlertChanges, AlertScope
from replenish.notify.rules import AlertRules

if TYPE_CHECKING:
    from replenish.store import Store

__all__ = ["DeliveryReport", "dispatch"]


@dataclass
class DeliveryReport:
    """What one dispatch did: alerts raised, notices by change, messages per
    channel, channels that took them, failures by channel (the error text:
    no secret), and whether the notices were put back for the next run."""

    alerts: int = 0
    new: int = 0
    worse: int = 0
    resolved: int = 0
    unchanged: int = 0
    sent: int = 0
    digest: bool = True
    channels: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    released: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dispatch(
    store: Store,
    notifiers: Sequence[Notifier],
    as_of: date,
    run_id: str,
    alerts: Sequence[Alert],
    *,
    heading: str,
    scopes: Sequence[AlertScope] = (),
    rules: AlertRules | None = None,
    digest: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> DeliveryReport:
    """Reconcile ``alerts`` with the store, send the notices, record delivery.

    ``scopes``: what the run evaluated (its open alerts not raised again are
    resolved; :func:`replenish.notify.rules.run_scopes`). A failing channel
    does not stop the others; its error is in ``report.failed`` (and logged
    on ``logger``).
    """
    changes: AlertChanges = store.reconcile_alerts(
        as_of, run_id, alerts, scopes=scopes, rules=rules
    )
    report = DeliveryReport(
        alerts=len(alerts),
        new=len(changes.new),
        worse=len(changes.worse),
        resolved=len(changes.resolved),
        unchanged=len(changes.unchanged),
        digest=digest,
    )
    notices = changes.notices()
    if not notices:
        return report
    failures = send_all(notifiers, notices, heading=heading, digest=digest)
    report.sent = len(notices)
    report.failed = {name: str(error) for name, error in failures.items()}
    report.channels = [n.name for n in notifiers if n.name not in failures]
    if logger is not None:
        for name, error in report.failed.items():
            logger.error("alert channel %s failed: %s", name, error)
    remote = [n.name for n in notifiers if not isinstance(n, LogNotifier)]
    if remote and not any(name in report.channels for name in remote):
        store.release_alerts(changes)
        report.released = True
        if logger is not None:
            logger.error(
                "no alert channel took the %d notice(s): they will be sent again by the next run",
                len(notices),
            )
    else:
        store.record_alert_delivery(as_of, changes, report.channels)
    return report
