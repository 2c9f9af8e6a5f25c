"""The life of an alert across runs: open, worse, resolved (docs/alerts.md).

Pure decisions; the store (:meth:`replenish.store.Store.reconcile_alerts`)
keeps the state and applies them in one transaction.

* An alert is identified by its :attr:`~replenish.notify.alerts.Alert.key`
  (kind + SKU + location, or supplier / purchase order / flow). The first run
  that raises it opens it and announces it (``change="new"``).
* Later runs that raise it again say nothing unless it **worsened** since it
  was last announced: its severity went up, or its *measure* (one number per
  kind, :func:`worsening`) moved the bad way by at least
  ``max(min_change, min_ratio · |announced value|)``. Then it is re-announced
  (``change="worse"``) and the new severity and measure become the reference.
  An alert that improves stays quiet (and the reference stays: it must worsen
  past what people were told to be re-sent).
* A run that *evaluated* an open alert's kind (its :class:`AlertScope`) and
  did not raise it resolves it; the resolution is announced once
  (``change="resolved"``) if the alert had been announced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from replenish.notify.alerts import SEVERITIES, Alert, format_value

if TYPE_CHECKING:
    from replenish.notify.rules import AlertRules

__all__ = [
    "AlertChanges",
    "AlertScope",
    "Claim",
    "Worsening",
    "covered",
    "measure_of",
    "worsened",
    "worsening",
]


@dataclass(frozen=True)
class AlertScope:
    """What a run evaluated: the open alerts it covers and did not raise again
    are resolved.

    An open alert is covered when its kind is in ``kinds`` and, if ``skus`` is
    set, it has no SKU or its SKU is in ``skus`` (a run limited to some SKUs
    resolves nothing about the others), and, if ``refs`` is set, its ``ref``
    is in ``refs`` (the nightly flow resolves its own failures, not another
    flow's).
    """

    kinds: frozenset[str]
    skus: frozenset[str] | None = None
    refs: frozenset[str] | None = None

    def covers(self, kind: str, sku: str | None, ref: str | None) -> bool:
        if kind not in self.kinds:
            return False
        if self.skus is not None and sku is not None and sku not in self.skus:
            return False
        return self.refs is None or ref in self.refs


def covered(scopes: Iterable[AlertScope], kind: str, sku: str | None, ref: str | None) -> bool:
    """True if any of ``scopes`` covers an alert of ``kind``/``sku``/``ref``."""
    return any(scope.covers(kind, sku, ref) for scope in scopes)


@dataclass(frozen=True)
class Worsening:
    """When an open alert of one kind counts as worse: its ``measure`` (a key
    of its details) moved the bad way (up when ``higher_is_worse``) by at
    least ``max(min_change, min_ratio · |announced value|)``."""

    measure: str
    higher_is_worse: bool
    min_change: float
    min_ratio: float = 0.0

    def threshold(self, before: float) -> float:
        return max(self.min_change, self.min_ratio * abs(before))

    def moved(self, before: float | None, now: float | None) -> bool:
        if before is None or now is None:
            return False
        delta = now - before if self.higher_is_worse else before - now
        return delta > 0 and delta >= self.threshold(before) - 1e-9


def worsening(kind: str, rules: AlertRules) -> Worsening | None:
    """The worsening rule of ``kind`` (None: severity only). docs/alerts.md
    lists them; ``rules.worse_ratio`` is the relative part."""
    r = rules.worse_ratio
    table = {
        "stockout_risk": Worsening("days_of_cover", False, 1.0, r),
        "below_safety_stock": Worsening("days_of_cover", False, 1.0, r),
        "overstock": Worsening("excess_value", True, 0.0, r),
        "po_late": Worsening("days_late", True, float(rules.po_late_repeat_days)),
        "lead_time_drift": Worsening("abs_drift_days", True, 1.0, r),
        "data_gate_stopped": Worsening("failures", True, 1.0),
        "rows_quarantined": Worsening("rows", True, 1.0, r),
        "flow_failed": Worsening("failures", True, 1.0),
        "flow_crashed": Worsening("failures", True, 1.0),
    }
    return table.get(kind)


def measure_of(alert: Alert, rules: AlertRules) -> float | None:
    """The number the worsening of ``alert`` is judged on (None: none, or not
    finite)."""
    rule = worsening(alert.kind, rules)
    if rule is None:
        return None
    value = alert.details.get(rule.measure)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def worsened(
    previous_severity: str | None,
    previous_measure: float | None,
    alert: Alert,
    rules: AlertRules,
) -> str | None:
    """Why ``alert`` is worse than what was announced (``"severity warning →
    critical"``, ``"days_of_cover 6 → 2"``), or None if it is not."""
    reasons = []
    if previous_severity in _RANK and _RANK[alert.severity] < _RANK[previous_severity]:
        reasons.append(f"severity {previous_severity} → {alert.severity}")
    rule = worsening(alert.kind, rules)
    now = measure_of(alert, rules)
    if rule is not None and rule.moved(previous_measure, now):
        assert previous_measure is not None and now is not None
        reasons.append(f"{rule.measure} {format_value(previous_measure)} → {format_value(now)}")
    return "; ".join(reasons) or None


@dataclass(frozen=True)
class Claim:
    """One notice taken by a reconcile (the state row was updated as if it
    had been delivered), with what to restore if the delivery fails."""

    state_id: int
    event: str  # new, worse, resolved
    previous_severity: str | None = None
    previous_measure: float | None = None
    previous_notified_as_of: object = None  # date | None
    previous_notified_at: object = None  # datetime | None
    previous_count: int = 0


@dataclass
class AlertChanges:
    """What a reconcile found: the notices to send (``new``, ``worse``,
    ``resolved``) and the open alerts it kept quiet (``unchanged``)."""

    new: list[Alert] = field(default_factory=list)
    worse: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    unchanged: list[Alert] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def notices(self) -> list[Alert]:
        """What to send: the new and worse alerts, then the resolutions."""
        return [*self.new, *self.worse, *self.resolved]

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "worse": len(self.worse),
            "resolved": len(self.resolved),
            "unchanged": len(self.unchanged),
        }
