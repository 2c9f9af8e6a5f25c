"""Draft purchase orders in the store: publishing a plan's drafts, superseding
unapproved drafts of earlier dates, approval decisions and push records
(docs/publishing.md).

Each function works inside a transaction the caller opened
(:meth:`replenish.store.Store._tx`), so a publish, a decision or a push
record is all or nothing.

Statuses of a draft order:

* ``draft`` — proposed by a plan, not decided; a rerun of the same planning
  date may replace its lines, a later date's plan supersedes it;
* ``approved`` — decided (by a person, or ``auto`` below the approval
  threshold); never modified by a plan again; what a push sends;
* ``rejected`` — decided against; kept for the record, never pushed;
* ``superseded`` — an unapproved draft of an earlier date whose SKUs a later
  plan covered (that plan proposes what is still needed, counting what the
  ERP has on order; the old draft is not on order anywhere, so ordering both
  would order twice); kept for the record with ``superseded_by``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert, select, update

from replenish.errors import StoreError
from replenish.orders.explain import JsonReady
from replenish.store.models import ApprovalDecision, DraftPurchaseOrder, DraftPurchaseOrderLine

__all__ = [
    "DECISIONS",
    "STATUSES",
    "Decision",
    "PublishResult",
    "content_hash",
    "decide",
    "publish",
    "record_push",
]

STATUSES: Final = ("draft", "approved", "rejected", "superseded")
DECISIONS: Final = ("approved", "rejected")
DecisionKind = Literal["approved", "rejected"]
#: Money below this is rounding noise (values are rounded to cents).
_CENT = 0.005
_LINE_COLUMNS = [
    "po_key",
    "sku",
    "line_no",
    "supplier_sku",
    "qty",
    "unit_price",
    "line_value",
    "explanation",
]
_H: Final[Table] = DraftPurchaseOrder.__table__  # type: ignore[assignment]
_L: Final[Table] = DraftPurchaseOrderLine.__table__  # type: ignore[assignment]
_D: Final[Table] = ApprovalDecision.__table__  # type: ignore[assignment]


def jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """A scalar for a column: numpy → Python, NaN/NA → None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class PublishResult:
    """What publishing the drafts of one planning date did, per ``po_key``.

    ``superseded``: unapproved drafts of earlier dates that the plan replaced
    as a whole; ``trimmed``: earlier drafts that lost only the lines of the
    SKUs the (partial) plan covered, as ``"po_key sku"``.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # no longer drafts: left as they are
    superseded: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def content_hash(lines: pd.DataFrame) -> str:
    """A digest of what a draft orders (sku, qty, unit price), order-insensitive."""
    qty = lines["qty"].astype(float).round(6)
    price = lines["unit_price"].astype(float).round(6)
    rows = sorted(zip(lines["sku"].astype(str), qty.tolist(), price.tolist(), strict=True))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _line_records(po_lines: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for r in po_lines.to_dict("records"):
        rec = {k: _plain(r.get(k)) for k in _LINE_COLUMNS}
        rec["planned_qty"] = rec["qty"]
        details = r.get("details")
        if isinstance(details, JsonReady):  # plain values already (line_details)
            rec["details"] = details
        else:
            rec["details"] = jsonable(details) if isinstance(details, dict) else None
        records.append(rec)
    return records


def publish(
    c: Connection,
    as_of: date,
    run_id: str,
    headers: pd.DataFrame,
    lines: pd.DataFrame,
    covered: set[tuple[str, str]] | None,
) -> PublishResult:
    """Make the stored drafts of ``as_of`` equal to ``headers``/``lines`` and
    supersede what ``covered`` replaces (see ``Store.publish_drafts``)."""
    now = datetime.now()
    result = PublishResult()
    existing = {
        r["po_key"]: r
        for r in c.execute(select(_H).where(_H.c.as_of == as_of).with_for_update()).mappings()
    }
    by_key = dict(tuple(lines.groupby("po_key", sort=False))) if len(lines) else {}
    for h in headers.to_dict("records"):
        key = h["po_key"]
        po_lines = by_key[key]
        digest = content_hash(po_lines)
        old = existing.pop(key, None)
        if old is not None and old["status"] != "draft":
            result.kept.append(key)
            continue
        if old is not None and old["content_hash"] == digest:
            result.unchanged.append(key)
            continue
        values = {
            "as_of": as_of,
            "supplier_id": h["supplier_id"],
            "location_id": h["location_id"],
            "currency": _plain(h.get("currency")),
            "line_count": len(po_lines),
            "total_value": float(h["total_value"]),
            "min_order_value": float(_plain(h.get("min_order_value")) or 0.0),
            "below_minimum": bool(h.get("below_minimum", False)),
            "content_hash": digest,
            "updated_run_id": run_id,
            "updated_at": now,
        }
        if old is None:
            c.execute(
                insert(_H).values(
                    po_key=key, status="draft", created_run_id=run_id, created_at=now, **values
                )
            )
            result.created.append(key)
        else:
            c.execute(delete(_L).where(_L.c.po_key == key))
            c.execute(update(_H).where(_H.c.po_key == key).values(**values))
            result.updated.append(key)
        c.execute(insert(_L), _line_records(po_lines))
    for key, old in existing.items():
        if old["status"] == "draft":
            c.execute(delete(_L).where(_L.c.po_key == key))
            c.execute(delete(_H).where(_H.c.po_key == key))
            result.removed.append(key)
        else:
            result.kept.append(key)
    if covered:
        today = {
            (str(h["supplier_id"]), str(h["location_id"])): h["po_key"]
            for h in headers.to_dict("records")
        }
        _supersede(c, as_of, run_id, covered, today, now, result)
    return result


def _supersede(
    c: Connection,
    as_of: date,
    run_id: str,
    covered: set[tuple[str, str]],
    today: Mapping[tuple[str, str], str],
    now: datetime,
    result: PublishResult,
) -> None:
    """Unapproved drafts of dates before ``as_of`` whose SKU × location the
    plan covered: superseded as a whole when it covered all their lines,
    else only those lines are taken out (module docstring)."""
    older = {
        r["po_key"]: r
        for r in c.execute(
            select(_H).where(_H.c.as_of < as_of, _H.c.status == "draft").with_for_update()
        ).mappings()
    }
    if not older:
        return
    rows = c.execute(select(_L.c.po_key, _L.c.sku).where(_L.c.po_key.in_(list(older)))).mappings()
    skus: dict[str, list[str]] = {}
    for r in rows:
        skus.setdefault(r["po_key"], []).append(r["sku"])
    for key in sorted(older):
        head = older[key]
        location = str(head["location_id"])
        mine = skus.get(key, [])
        hit = [s for s in mine if (s, location) in covered]
        if not hit:
            continue
        if len(hit) == len(mine):
            by = today.get((str(head["supplier_id"]), location), as_of.isoformat())
            c.execute(
                update(_H)
                .where(_H.c.po_key == key)
                .values(
                    status="superseded",
                    superseded_by=by,
                    superseded_at=now,
                    updated_run_id=run_id,
                    updated_at=now,
                )
            )
            result.superseded.append(key)
            continue
        c.execute(delete(_L).where(_L.c.po_key == key, _L.c.sku.in_(hit)))
        _refresh_header(c, key, run_id, now)
        result.trimmed += [f"{key} {s}" for s in sorted(hit)]


def _refresh_header(c: Connection, key: str, run_id: str | None, now: datetime) -> float:
    """Renumber the lines of ``key`` and recompute its count, value, hash and
    minimum flag from them; returns the new total value."""
    rows = c.execute(
        select(_L.c.sku, _L.c.qty, _L.c.unit_price, _L.c.line_value, _L.c.line_no)
        .where(_L.c.po_key == key)
        .order_by(_L.c.line_no, _L.c.sku)
    ).mappings()
    frame = pd.DataFrame(list(rows), columns=["sku", "qty", "unit_price", "line_value", "line_no"])
    for n, sku in enumerate(frame["sku"], start=1):
        c.execute(update(_L).where(_L.c.po_key == key, _L.c.sku == sku).values(line_no=n))
    total = round(float(frame["line_value"].astype(float).sum()), 2)
    minimum = c.execute(select(_H.c.min_order_value).where(_H.c.po_key == key)).scalar_one()
    values: dict[str, Any] = {
        "line_count": len(frame),
        "total_value": total,
        "below_minimum": total < float(minimum or 0.0) - _CENT,
        "content_hash": content_hash(frame),
        "updated_at": now,
    }
    if run_id is not None:
        values["updated_run_id"] = run_id
    c.execute(update(_H).where(_H.c.po_key == key).values(**values))
    return total


@dataclass(frozen=True)
class Decision:
    """One recorded decision on a draft order.

    ``changes``: ``{sku: [planned qty, approved qty]}`` of the lines the
    approver changed (0: the line was taken out). ``recorded``: False when
    the same decision by the same person was already recorded (a retried
    step), nothing was written then.
    """

    po_key: str
    decision: str
    decided_by: str
    decided_at: datetime
    via: str
    total_value: float
    changes: dict[str, list[float]]
    recorded: bool = True


def _check_quantities(
    key: str, lines: dict[str, Mapping[str, Any]], quantities: Mapping[str, float]
) -> dict[str, float]:
    wanted: dict[str, float] = {}
    for sku, value in quantities.items():
        if sku not in lines:
            raise StoreError(
                f"order {key} has no line for SKU {sku!r} (its lines: {', '.join(sorted(lines))})"
            )
        try:
            qty = float(value)
        except (TypeError, ValueError):
            raise StoreError(
                f"order {key}, SKU {sku}: the quantity must be a number >= 0, got {value!r}"
            ) from None
        if not math.isfinite(qty) or qty < 0:
            raise StoreError(
                f"order {key}, SKU {sku}: the quantity must be a number >= 0, got {value!r}"
            )
        wanted[sku] = qty
    return wanted


def decide(
    c: Connection,
    key: str,
    decision: str,
    decided_by: str,
    *,
    via: str,
    run_id: str | None,
    quantities: Mapping[str, float] | None,
    note: str | None,
    now: datetime,
) -> Decision:
    """Record ``decision`` on the draft ``key`` (see ``Store.decide``)."""
    if decision not in DECISIONS:
        raise StoreError(f"a decision is one of {', '.join(DECISIONS)}, got {decision!r}")
    who = (decided_by or "").strip()
    if not who or len(who) > 100:
        raise StoreError(
            f"order {key}: say who decides (a name of 1 to 100 characters), got {decided_by!r}"
        )
    if quantities and decision != "approved":
        raise StoreError(f"order {key}: quantities can be changed only when approving")
    head = c.execute(select(_H).where(_H.c.po_key == key).with_for_update()).mappings().first()
    if head is None:
        raise StoreError(f"no draft order {key!r} in the store")
    status = head["status"]
    if status != "draft":
        if status == decision and head["decided_by"] == who:
            return Decision(
                key, decision, who, head["decided_at"], via, float(head["total_value"]), {}, False
            )
        if status == "superseded":
            raise StoreError(
                f"order {key} was superseded by {head['superseded_by']} on "
                f"{head['superseded_at']:%Y-%m-%d %H:%M}: decide on the newer draft instead"
            )
        raise StoreError(
            f"order {key} is already {status} (by {head['decided_by']} at "
            f"{head['decided_at']:%Y-%m-%d %H:%M}); a decision is taken once"
        )
    lines: dict[str, Mapping[str, Any]] = {
        str(r["sku"]): dict(r) for r in c.execute(select(_L).where(_L.c.po_key == key)).mappings()
    }
    changes: dict[str, list[float]] = {}
    for sku, qty in _check_quantities(key, lines, quantities or {}).items():
        old = float(lines[sku]["qty"])
        if abs(qty - old) < 1e-9:
            continue
        changes[sku] = [old, qty]
    if all(changes.get(sku, [0.0, 1.0])[1] == 0 for sku in lines):
        raise StoreError(f"order {key}: every quantity is 0: reject the order instead")
    for sku, (_, qty) in changes.items():
        if qty == 0:
            c.execute(delete(_L).where(_L.c.po_key == key, _L.c.sku == sku))
        else:
            price = float(lines[sku]["unit_price"])
            c.execute(
                update(_L)
                .where(_L.c.po_key == key, _L.c.sku == sku)
                .values(qty=qty, line_value=round(qty * price, 2))
            )
    total = _refresh_header(c, key, run_id, now) if changes else float(head["total_value"])
    c.execute(
        update(_H)
        .where(_H.c.po_key == key)
        .values(status=decision, decided_by=who, decided_at=now, decision_note=note)
    )
    c.execute(
        insert(_D).values(
            po_key=key,
            run_id=run_id,
            decision=decision,
            decided_by=who,
            decided_at=now,
            via=via,
            total_value=total,
            changes=changes,
            note=note,
        )
    )
    return Decision(key, decision, who, now, via, total, changes)


def record_push(c: Connection, outcomes: pd.DataFrame, now: datetime) -> int:
    """Write what a push did on each order's draft: ``outcomes`` is
    ``PushReport.to_frame()`` (po_key, target, action, erp_id, erp_name,
    reason). The ERP's id and reference are kept from an earlier push when
    this one did not give them (a failed push); ``pushed_at`` is when the
    ERP last held the order as we sent it (created, updated, unchanged)."""
    n = 0
    for r in outcomes.to_dict("records"):
        action = str(r["action"])
        values: dict[str, Any] = {
            "erp_target": _plain(r.get("target")),
            "push_action": action,
            "push_message": _plain(r.get("reason")) or None,
        }
        for col in ("erp_id", "erp_name"):
            value = _plain(r.get(col))
            if value is not None:
                values[col] = str(value)
        if action in ("created", "updated", "unchanged"):
            values["pushed_at"] = now
        n += c.execute(update(_H).where(_H.c.po_key == str(r["po_key"])).values(**values)).rowcount
    return n
