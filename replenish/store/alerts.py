"""Alert state across runs: the store side of :mod:`replenish.notify.lifecycle`.

Functions over an open transaction (``Connection``); :class:`~replenish.store.Store`
wraps them (``reconcile_alerts``, ``release_alerts``, ``record_alert_delivery``,
``alert_states``, ``open_alerts``). docs/alerts.md tells the story.

Claims: a reconcile updates each episode it announces *as if* the notice had
been delivered (``notified_*``, ``resolution_notified_at``), in the same
transaction that decided it. A second run reconciling at the same time waits
for that transaction (row locks on PostgreSQL and MariaDB, the database lock on
SQLite) and then finds the notice taken, so two runs never announce the same
thing. When delivery fails on every channel, :func:`release` puts the claims
back and the next run announces them again.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from replenish.batching import chunks
from replenish.notify.alerts import SEVERITIES, Alert, DetailValue, deduplicate
from replenish.notify.lifecycle import (
    AlertChanges,
    AlertScope,
    Claim,
    covered,
    measure_of,
    worsened,
)
from replenish.notify.rules import AlertRules
from replenish.store.models import AlertRecord, AlertState

__all__ = ["STATE_COLUMNS", "open_states", "reconcile", "record_delivery", "release", "states"]

_TITLE = 300  # alert_state.title, alerts.title
_REF = 128
_LOG_KEY = 300  # alerts.alert_key

#: The columns :func:`states` returns, in order.
STATE_COLUMNS = [
    "status_on_date",
    "severity",
    "kind",
    "sku",
    "location_id",
    "supplier_id",
    "ref",
    "title",
    "message",
    "opened_as_of",
    "last_as_of",
    "resolved_as_of",
    "notified_as_of",
    "notify_count",
    "channels",
    "details",
    "alert_key",
    "id",
]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: rows (or IN-list values) per statement: a store may hold 100,000 open
#: alerts, and PostgreSQL takes at most 65,535 parameters in one statement
_BATCH = 2000


def _update_rows(
    c: Connection,
    model: type[AlertState] | type[AlertRecord],
    rows: Sequence[tuple[Any, dict[str, Any]]],
) -> None:
    """``UPDATE <model's table> SET <values> WHERE id = <id>`` for each ``(id, values)``,
    as one executemany per set of columns (a statement per row took ~1.5 ms:
    minutes for the alerts of 100,000 series)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in rows:
        groups.setdefault(tuple(sorted(values)), []).append({**values, "b_id": row_id})
    stmt = update(model).where(model.id == bindparam("b_id"))
    for params in groups.values():
        for batch in chunks(params, _BATCH):
            c.execute(stmt, batch)


def _json(details: dict[str, DetailValue]) -> dict[str, Any]:
    """JSON-safe details: a non-finite number becomes its text ('inf', 'nan')."""
    out: dict[str, Any] = {}
    for name, value in details.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _current(
    alert: Alert, measure: float | None, as_of: date, run_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "severity": alert.severity,
        "title": _cut(alert.title, _TITLE),
        "message": alert.message,
        "details": _json(dict(alert.details)),
        "measure": measure,
        "last_as_of": as_of,
        "last_seen_at": now,
        "last_run_id": run_id,
    }


def _notified(
    alert: Alert, measure: float | None, as_of: date, now: datetime, count: int
) -> dict[str, Any]:
    return {
        "notified_severity": alert.severity,
        "notified_measure": measure,
        "notified_as_of": as_of,
        "notified_at": now,
        "notify_count": count,
    }


def _resolution_notice(row: Any, as_of: date) -> Alert:
    opened: date = row.opened_as_of
    days = (as_of - opened).days
    return Alert(
        kind=row.kind,
        severity=row.notified_severity or row.severity,
        title=_cut(f"Resolved: {row.title}", _TITLE),
        message=(
            f"No longer raised on {as_of.isoformat()}; open since {opened.isoformat()} "
            f"({days} day{'s' if days != 1 else ''}), last announced as "
            f"{row.notified_severity or row.severity}."
        ),
        sku=row.sku,
        location_id=row.location_id,
        supplier_id=row.supplier_id,
        ref=row.ref,
        details={"open_since": opened.isoformat(), "last_seen": row.last_as_of.isoformat()},
        change="resolved",
    )


def reconcile(
    c: Connection,
    as_of: date,
    run_id: str,
    alerts: Sequence[Alert],
    scopes: Sequence[AlertScope],
    rules: AlertRules,
    now: datetime,
) -> AlertChanges:
    """Compare a run's ``alerts`` with the open episodes and claim the notices.

    * a key with no open episode opens one: ``new``;
    * an open episode never announced (its delivery failed): ``new`` again;
    * an announced one that :func:`~replenish.notify.lifecycle.worsened`:
      ``worse`` (the message says why); otherwise ``unchanged`` (quiet);
    * an open episode covered by ``scopes`` and not raised: resolved, and
      announced (``resolved``) if it had been announced;
    * an episode resolved earlier whose resolution notice failed: ``resolved``.

    The run's alerts are also logged per date (table ``alerts``).
    """
    changes = AlertChanges()
    current = {alert.key: alert for alert in deduplicate(alerts)}
    kinds = {alert.kind for alert in current.values()}
    kinds |= {kind for scope in scopes for kind in scope.kinds}
    st = AlertState
    open_rows = {
        row.alert_key: row
        for row in c.execute(
            select(st.__table__)
            .where(st.status == "open", st.kind.in_(sorted(kinds)))
            .order_by(st.id)
            .with_for_update()
        )
    }
    pending = list(
        c.execute(
            select(st.__table__)
            .where(
                st.status == "resolved",
                st.notified_at.is_not(None),
                st.resolution_notified_at.is_(None),
            )
            .order_by(st.id)
            .with_for_update()
        )
    )
    # decided row by row, written in bulk: the new episodes in one insert,
    # the updates as one executemany per set of columns
    fresh: list[dict[str, Any]] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    claims: list[Claim | str] = []  # in order; a str: the key of a new episode
    for key, alert in current.items():
        measure = measure_of(alert, rules)
        row = open_rows.get(key)
        if row is None:
            fresh.append(
                {
                    "alert_key": key,
                    "open_key": key,
                    "status": "open",
                    "kind": alert.kind,
                    "sku": alert.sku,
                    "location_id": alert.location_id,
                    "supplier_id": alert.supplier_id,
                    "ref": _cut(alert.ref, _REF) if alert.ref else None,
                    "opened_as_of": as_of,
                    "opened_at": now,
                    "opened_run_id": run_id,
                    **_current(alert, measure, as_of, run_id, now),
                    **_notified(alert, measure, as_of, now, 1),
                }
            )
            claims.append(key)
            changes.new.append(replace(alert, change="new"))
            continue
        values = _current(alert, measure, as_of, run_id, now)
        if row.notified_at is None:
            values |= _notified(alert, measure, as_of, now, row.notify_count + 1)
            claims.append(Claim(row.id, "new", previous_count=row.notify_count))
            changes.new.append(replace(alert, change="new"))
        else:
            why = worsened(row.notified_severity, row.notified_measure, alert, rules)
            if why is None:
                changes.unchanged.append(alert)
            else:
                values |= _notified(alert, measure, as_of, now, row.notify_count + 1)
                claims.append(
                    Claim(
                        row.id,
                        "worse",
                        previous_severity=row.notified_severity,
                        previous_measure=row.notified_measure,
                        previous_notified_as_of=row.notified_as_of,
                        previous_notified_at=row.notified_at,
                        previous_count=row.notify_count,
                    )
                )
                since = row.notified_as_of.isoformat() if row.notified_as_of else "before"
                changes.worse.append(
                    replace(
                        alert,
                        change="worse",
                        message=f"Worse since the notice of {since}: {why}.\n{alert.message}",
                    )
                )
        updates.append((row.id, values))
    for key, row in open_rows.items():
        if key in current or not covered(scopes, row.kind, row.sku, row.ref):
            continue
        values = {
            "status": "resolved",
            "open_key": None,
            "resolved_as_of": as_of,
            "resolved_at": now,
            "resolved_run_id": run_id,
        }
        if row.notified_at is not None:
            values["resolution_notified_at"] = now
            claims.append(Claim(row.id, "resolved"))
            changes.resolved.append(_resolution_notice(row, as_of))
        updates.append((row.id, values))
    for row in pending:
        updates.append((row.id, {"resolution_notified_at": now}))
        if row.alert_key in current:
            continue  # raised again: the new episode says it all
        claims.append(Claim(row.id, "resolved"))
        changes.resolved.append(_resolution_notice(row, row.resolved_as_of or as_of))
    _update_rows(c, AlertState, updates)
    ids: dict[str, int] = {}
    if fresh:
        for batch in chunks(fresh, _BATCH):
            c.execute(insert(st), batch)
        # open_key is unique among open episodes: the open one of a new key
        # opened by this run is the row just inserted
        ids = {
            key: int(row_id)
            for key, row_id in c.execute(
                select(st.open_key, st.id).where(st.status == "open", st.opened_run_id == run_id)
            )
            if key is not None
        }
    changes.claims = [Claim(ids[cl], "new") if isinstance(cl, str) else cl for cl in claims]
    _log_per_date(c, as_of, run_id, list(current.values()), now)
    return changes


def _log_per_date(
    c: Connection, as_of: date, run_id: str, alerts: Sequence[Alert], now: datetime
) -> None:
    """The ``alerts`` table: each key raised on ``as_of`` once, as last raised
    (a key longer than its column, 300 characters, is only in ``alert_state``)."""
    alerts = [alert for alert in alerts if len(alert.key) <= _LOG_KEY]
    if not alerts:
        return
    ar = AlertRecord
    # every key logged on the date (no IN list of 100,000 keys), by id
    known = dict(c.execute(select(ar.alert_key, ar.id).where(ar.as_of == as_of)).tuples().all())
    fresh = []
    again: list[tuple[int, dict[str, Any]]] = []
    for alert in alerts:
        values = {
            "kind": alert.kind,
            "severity": alert.severity,
            "sku": alert.sku,
            "location_id": alert.location_id,
            "title": _cut(alert.title, _TITLE),
            "message": alert.message,
            "details": _json(dict(alert.details)),
        }
        if alert.key in known:
            again.append((known[alert.key], values))
        else:
            fresh.append(
                {
                    **values,
                    "as_of": as_of,
                    "alert_key": alert.key,
                    "first_run_id": run_id,
                    "created_at": now,
                }
            )
    _update_rows(c, AlertRecord, again)
    for batch in chunks(fresh, _BATCH):
        c.execute(insert(ar), batch)


def release(c: Connection, changes: AlertChanges) -> None:
    """Undo the claims of ``changes`` (no channel took the notices): the next
    reconcile announces them again."""
    undo: list[tuple[int, dict[str, Any]]] = []
    for claim in changes.claims:
        if claim.event == "resolved":
            values: dict[str, Any] = {"resolution_notified_at": None}
        elif claim.event == "new":
            values = {
                "notified_severity": None,
                "notified_measure": None,
                "notified_as_of": None,
                "notified_at": None,
                "notify_count": claim.previous_count,
            }
        else:
            values = {
                "notified_severity": claim.previous_severity,
                "notified_measure": claim.previous_measure,
                "notified_as_of": claim.previous_notified_as_of,
                "notified_at": claim.previous_notified_at,
                "notify_count": claim.previous_count,
            }
        undo.append((claim.state_id, values))
    _update_rows(c, AlertState, undo)


def record_delivery(
    c: Connection, as_of: date, changes: AlertChanges, channels: Sequence[str], now: datetime
) -> None:
    """Note which channels took the notices (episodes, and the per-date log)."""
    text = ",".join(channels)[:200] or None
    ids = [claim.state_id for claim in changes.claims]
    for batch in chunks(ids, _BATCH):
        c.execute(update(AlertState).where(AlertState.id.in_(batch)).values(channels=text))
    keys = [alert.key for alert in (*changes.new, *changes.worse)]
    for part in chunks(keys, _BATCH):
        c.execute(
            update(AlertRecord)
            .where(AlertRecord.as_of == as_of, AlertRecord.alert_key.in_(part))
            .values(sent_at=now, channels=text)
        )


_SEVERITY_ORDER = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def states(c: Connection, as_of: date | None, status: str) -> pd.DataFrame:
    """Alert episodes: with ``as_of``, those open on that date (opened on or
    before it, not resolved by then) and those resolved on it; without, those
    open now and (``status`` 'resolved'/'all') every resolved one. ``status``:
    'open', 'resolved' or 'all'. Most severe first."""
    if status not in {"open", "resolved", "all"}:
        raise ValueError(f"status must be open, resolved or all, got {status!r}")
    st = AlertState
    if as_of is None:
        open_cond = st.status == "open"
        resolved_cond = st.status == "resolved"
    else:
        open_cond = and_(
            st.opened_as_of <= as_of,
            or_(st.resolved_as_of.is_(None), st.resolved_as_of > as_of),
        )
        resolved_cond = st.resolved_as_of == as_of
    conds = {"open": [open_cond], "resolved": [resolved_cond], "all": [open_cond, resolved_cond]}
    rows = c.execute(select(st.__table__).where(or_(*conds[status])).order_by(st.id)).all()
    records = []
    for row in rows:
        if as_of is None:
            on_date = row.status
        else:
            on_date = "resolved" if row.resolved_as_of == as_of else "open"
        records.append(
            {
                "status_on_date": on_date,
                **{name: getattr(row, name) for name in STATE_COLUMNS if name != "status_on_date"},
            }
        )
    frame = pd.DataFrame(records, columns=STATE_COLUMNS)
    if frame.empty:
        return frame
    order = frame["severity"].map(_SEVERITY_ORDER).fillna(len(SEVERITIES))
    frame = frame.assign(_status=frame["status_on_date"].ne("open"), _rank=order)
    frame = frame.sort_values(["_status", "_rank", "kind", "alert_key"], kind="stable")
    return frame.drop(columns=["_status", "_rank"]).reset_index(drop=True)


def open_states(c: Connection, kinds: Collection[str] | None) -> pd.DataFrame:
    """The open episodes (of ``kinds``), oldest first, every column."""
    st = AlertState
    stmt = select(st.__table__).where(st.status == "open").order_by(st.id)
    if kinds is not None:
        stmt = stmt.where(st.kind.in_(sorted(kinds)))
    rows = c.execute(stmt).mappings().all()
    return pd.DataFrame(rows, columns=[col.name for col in st.__table__.columns])
