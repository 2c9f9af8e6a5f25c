"""The project's own database (SQLite file by default, PostgreSQL in production).

``Store(url)`` upgrades the schema with Alembic on first use and offers the few
operations the flow needs. Every write that must be all-or-nothing (a run's
plans, the set of draft orders of a planning date) happens in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from replenish.errors import StoreError
from replenish.notify.alerts import Alert
from replenish.sources.db import make_engine, safe_url, translate_errors
from replenish.store.models import (
    AlertRecord,
    DraftPurchaseOrder,
    DraftPurchaseOrderLine,
    Plan,
    QuarantinedRow,
    Run,
)

__all__ = ["PublishResult", "Store", "migrate"]

_PLAN_COLUMNS = [
    c.name for c in Plan.__table__.columns if c.name not in {"id", "run_id", "details"}
]
_CHUNK = 5_000
#: Store URLs already upgraded by this process: each task opens the store, the
#: schema check need not run every time.
_MIGRATED: set[str] = set()


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("replenish.store").joinpath("migrations"))
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the store at ``url`` to the newest schema (idempotent)."""
    engine = make_engine(url, what="store database")
    try:
        with (
            translate_errors("cannot migrate the store", url, StoreError, StoreError),
            engine.begin() as conn,
        ):
            cfg = _alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    return value


def _plain(value: Any) -> Any:
    value = _jsonable(value)
    return None if isinstance(value, str) and value in {"inf", "-inf"} else value


@dataclass
class PublishResult:
    """What publishing the drafts of one planning date did, per ``po_key``."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # no longer drafts: left as they are

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def content_hash(lines: pd.DataFrame) -> str:
    """A digest of what a draft orders (sku, qty, unit price), order-insensitive."""
    qty = lines["qty"].astype(float).round(6)
    price = lines["unit_price"].astype(float).round(6)
    rows = sorted(zip(lines["sku"].astype(str), qty.tolist(), price.tolist(), strict=True))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


class Store:
    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        if upgrade and url not in _MIGRATED:
            migrate(url)
            _MIGRATED.add(url)
        self.engine = make_engine(url, what="store database")

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)!r})"

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        with translate_errors(what, self.url, StoreError, StoreError), self.engine.begin() as c:
            yield c

    # ---- runs --------------------------------------------------------------------------
    def start_run(
        self,
        as_of: date,
        *,
        erp: str,
        parameters: dict[str, Any],
        dry_run: bool = False,
        flow_run_id: str | None = None,
    ) -> str:
        run_id = str(uuid.uuid4())
        with self._tx("cannot record the run") as c:
            c.execute(
                insert(Run).values(
                    run_id=run_id,
                    flow_run_id=flow_run_id,
                    as_of=as_of,
                    started_at=datetime.now(),
                    status="running",
                    dry_run=dry_run,
                    erp=safe_url(erp),
                    parameters={k: _jsonable(v) for k, v in parameters.items()},
                    counts={},
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        counts: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        with self._tx("cannot record the run") as c:
            c.execute(
                update(Run)
                .where(Run.run_id == run_id)
                .values(
                    status=status,
                    finished_at=datetime.now(),
                    counts={k: _jsonable(v) for k, v in (counts or {}).items()},
                    message=message,
                )
            )

    def runs(self, limit: int = 20) -> pd.DataFrame:
        with self._tx("cannot read runs") as c:
            stmt = select(Run).order_by(Run.started_at.desc()).limit(limit)
            return pd.DataFrame(c.execute(stmt).mappings().all())

    def resolve_run(self, run_id: str | None) -> str:
        """``run_id`` itself if it exists, else (None) the newest finished run."""
        with self._tx("cannot read runs") as c:
            if run_id is not None:
                found = c.execute(select(Run.run_id).where(Run.run_id == run_id)).scalar()
                if found is None:
                    raise StoreError(f"no run {run_id!r} in the store {safe_url(self.url)}")
                return str(found)
            latest = c.execute(
                select(Run.run_id)
                .where(Run.status.in_(["completed", "blocked"]))
                .order_by(Run.started_at.desc())
                .limit(1)
            ).scalar()
        if latest is None:
            raise StoreError(
                f"no finished run in the store {safe_url(self.url)}: run `replenish plan` first"
            )
        return str(latest)

    # ---- plans and quarantine ----------------------------------------------------------
    def save_plans(self, run_id: str, plans: pd.DataFrame) -> int:
        """Store every plan row of a run, all or nothing; ``details`` keeps the
        whole row so the planner sees every input and intermediate."""
        records = []
        for row in plans.to_dict("records"):
            rec = {c: _plain(row.get(c)) for c in _PLAN_COLUMNS}
            rec["order_qty"] = rec["order_qty"] or 0.0
            rec["order_value"] = rec["order_value"] or 0.0
            rec["run_id"] = run_id
            rec["details"] = {k: _jsonable(v) for k, v in row.items()}
            records.append(rec)
        return self._replace_run_rows(Plan, run_id, records, "cannot store the plans")

    def plans(self, run_id: str) -> pd.DataFrame:
        with self._tx("cannot read plans") as c:
            rows = (
                c.execute(
                    select(Plan.details)
                    .where(Plan.run_id == run_id)
                    .order_by(Plan.sku, Plan.location_id)
                )
                .scalars()
                .all()
            )
        return pd.DataFrame(list(rows))

    def save_quarantine(self, run_id: str, rows: pd.DataFrame) -> int:
        cols = ["dataset", "row_key", "field", "expectation", "value", "reason"]
        records = [
            {**{c: _plain(r.get(c)) for c in cols}, "run_id": run_id}
            for r in rows.to_dict("records")
        ]
        return self._replace_run_rows(
            QuarantinedRow, run_id, records, "cannot store quarantined rows"
        )

    def _replace_run_rows(
        self,
        table: type[Plan] | type[QuarantinedRow],
        run_id: str,
        records: list[dict[str, Any]],
        what: str,
    ) -> int:
        """Replace a run's rows of ``table`` by ``records``, in one transaction."""
        with self._tx(what) as c:
            c.execute(delete(table).where(table.run_id == run_id))
            for i in range(0, len(records), _CHUNK):
                c.execute(insert(table), records[i : i + _CHUNK])
        return len(records)

    def quarantine(self, run_id: str) -> pd.DataFrame:
        with self._tx("cannot read quarantine") as c:
            stmt = select(QuarantinedRow.__table__).where(QuarantinedRow.run_id == run_id)
            return pd.DataFrame(c.execute(stmt).mappings().all())

    # ---- draft purchase orders ---------------------------------------------------------
    def publish_drafts(
        self, as_of: date, run_id: str, headers: pd.DataFrame, lines: pd.DataFrame
    ) -> PublishResult:
        """Make the stored drafts of ``as_of`` equal to ``headers``/``lines``.

        Idempotent: a draft whose content is unchanged is not touched; a
        changed one still in status 'draft' has its lines replaced; drafts of
        the date no longer proposed are removed while still drafts; drafts
        that moved on (approved, sent) are never modified. All in one
        transaction: no half-written order. If a concurrent run inserted the
        same ``po_key`` first, the primary key rejects the second insert and
        the whole publish is retried once, finding the drafts already there.
        """
        for attempt in (1, 2):
            try:
                with self._tx("cannot store draft orders") as c:
                    return self._publish(c, as_of, run_id, headers, lines)
            except StoreError as e:
                if attempt == 2 or not isinstance(e.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _publish(
        self,
        c: Connection,
        as_of: date,
        run_id: str,
        headers: pd.DataFrame,
        lines: pd.DataFrame,
    ) -> PublishResult:
        now = datetime.now()
        result = PublishResult()
        existing = {
            r["po_key"]: r
            for r in c.execute(
                select(DraftPurchaseOrder.__table__).where(DraftPurchaseOrder.as_of == as_of)
            ).mappings()
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
                    insert(DraftPurchaseOrder).values(
                        po_key=key, status="draft", created_run_id=run_id, created_at=now, **values
                    )
                )
                result.created.append(key)
            else:
                c.execute(
                    delete(DraftPurchaseOrderLine).where(DraftPurchaseOrderLine.po_key == key)
                )
                c.execute(
                    update(DraftPurchaseOrder)
                    .where(DraftPurchaseOrder.po_key == key)
                    .values(**values)
                )
                result.updated.append(key)
            line_cols = [
                "po_key",
                "sku",
                "line_no",
                "supplier_sku",
                "qty",
                "unit_price",
                "line_value",
                "explanation",
            ]
            c.execute(
                insert(DraftPurchaseOrderLine),
                [{k: _plain(r.get(k)) for k in line_cols} for r in po_lines.to_dict("records")],
            )
        for key, old in existing.items():
            if old["status"] == "draft":
                c.execute(
                    delete(DraftPurchaseOrderLine).where(DraftPurchaseOrderLine.po_key == key)
                )
                c.execute(delete(DraftPurchaseOrder).where(DraftPurchaseOrder.po_key == key))
                result.removed.append(key)
            else:
                result.kept.append(key)
        return result

    def orders(self, *, as_of: date | None = None, run_id: str | None = None) -> pd.DataFrame:
        """Draft PO lines with their header fields, for one planning date (or
        the date of ``run_id``)."""
        h, ln = DraftPurchaseOrder, DraftPurchaseOrderLine
        with self._tx("cannot read draft orders") as c:
            if as_of is None and run_id is not None:
                as_of = c.execute(select(Run.as_of).where(Run.run_id == run_id)).scalar()
            stmt = (
                select(
                    ln.po_key,
                    h.as_of,
                    h.supplier_id,
                    h.location_id,
                    h.status,
                    h.currency,
                    ln.line_no,
                    ln.sku,
                    ln.supplier_sku,
                    ln.qty,
                    ln.unit_price,
                    ln.line_value,
                    h.total_value.label("po_value"),
                    h.below_minimum,
                    ln.explanation,
                )
                .join(h, h.po_key == ln.po_key)
                .order_by(ln.po_key, ln.line_no)
            )
            if as_of is not None:
                stmt = stmt.where(h.as_of == as_of)
            return pd.DataFrame(
                c.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys())
            )

    def count_drafts(self, as_of: date) -> tuple[int, int]:
        """(draft orders, draft lines) stored for ``as_of``."""
        h, ln = DraftPurchaseOrder, DraftPurchaseOrderLine
        with self._tx("cannot read draft orders") as c:
            n_h = c.execute(select(func.count()).select_from(h).where(h.as_of == as_of)).scalar()
            n_l = c.execute(
                select(func.count())
                .select_from(ln)
                .join(h, h.po_key == ln.po_key)
                .where(h.as_of == as_of)
            ).scalar()
        return int(n_h or 0), int(n_l or 0)

    # ---- alerts ------------------------------------------------------------------------
    def record_alerts(self, as_of: date, run_id: str, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts of ``as_of``; return those not sent before (a
        rerun of the same date sends nothing twice)."""
        now = datetime.now()
        with self._tx("cannot store alerts") as c:
            sent = set(
                c.execute(
                    select(AlertRecord.alert_key).where(
                        AlertRecord.as_of == as_of, AlertRecord.sent_at.is_not(None)
                    )
                ).scalars()
            )
            known = set(
                c.execute(select(AlertRecord.alert_key).where(AlertRecord.as_of == as_of)).scalars()
            )
            new = [a for a in alerts if a.key not in known]
            if new:
                c.execute(
                    insert(AlertRecord),
                    [
                        {
                            "as_of": as_of,
                            "alert_key": a.key,
                            "kind": a.kind,
                            "severity": a.severity,
                            "sku": a.sku,
                            "location_id": a.location_id,
                            "title": a.title,
                            "message": a.message,
                            "details": {k: _jsonable(v) for k, v in a.details.items()},
                            "first_run_id": run_id,
                            "created_at": now,
                        }
                        for a in new
                    ],
                )
        return [a for a in alerts if a.key not in sent]

    def mark_alerts_sent(self, as_of: date, alerts: Sequence[Alert], channels: str) -> None:
        if not alerts:
            return
        with self._tx("cannot store alerts") as c:
            c.execute(
                update(AlertRecord)
                .where(
                    AlertRecord.as_of == as_of, AlertRecord.alert_key.in_([a.key for a in alerts])
                )
                .values(sent_at=datetime.now(), channels=channels)
            )

    def alerts(self, as_of: date) -> pd.DataFrame:
        with self._tx("cannot read alerts") as c:
            stmt = select(AlertRecord.__table__).where(AlertRecord.as_of == as_of)
            return pd.DataFrame(c.execute(stmt).mappings().all())
