"""The project's own database (SQLite file by default, PostgreSQL in production).

``Store(url)`` upgrades the schema with Alembic on first use and offers the few
operations the flow needs. Every write that must be all-or-nothing (a run's
plans, the set of draft orders of a planning date, one source's batch of the
demand cache with its watermark) happens in one transaction.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from importlib import resources
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from replenish import model
from replenish.errors import StoreError
from replenish.notify.alerts import Alert
from replenish.notify.lifecycle import AlertChanges, AlertScope
from replenish.notify.rules import AlertRules
from replenish.sources.db import is_write_conflict, make_engine, safe_url, translate_errors
from replenish.sources.fastread import LEAN_COLUMNS, concat_frames, lean_frame, read_frame
from replenish.store import alerts as alert_state
from replenish.store import cache, drafts, fastcache, sealed
from replenish.store.cache import ERP_SOURCE, IngestResult, SourceState, naive_utc
from replenish.store.drafts import Decision, PublishResult, content_hash
from replenish.store.models import (
    AlertRecord,
    ApprovalDecision,
    DraftPurchaseOrder,
    DraftPurchaseOrderLine,
    Plan,
    QuarantinedRow,
    Run,
)

__all__ = [
    "ERP_SOURCE",
    "Decision",
    "IngestResult",
    "PublishResult",
    "SourceState",
    "Store",
    "content_hash",
    "migrate",
]

_PLAN_COLUMNS = [
    c.name for c in Plan.__table__.columns if c.name not in {"id", "run_id", "details"}
]
_CHUNK = 5_000
#: rows per executemany of the big per-run writes (plans, quarantine)
_BULK_CHUNK = 50_000
T = TypeVar("T")
#: Store URLs already upgraded by this process: each task opens the store, the
#: schema check need not run every time.
_MIGRATED: set[str] = set()
#: Alembic's migration context (``alembic.context``, ``alembic.op``) is a
#: process-wide global: two threads migrating at once use each other's
#: connection (seen: a segfault in SQLite while the flow's tasks and a test
#: thread opened a new store together). One migration at a time per process.
_MIGRATION_LOCK = threading.Lock()


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("replenish.store").joinpath("migrations"))
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the store at ``url`` to the newest schema (idempotent; one
    migration at a time in this process, see ``_MIGRATION_LOCK``)."""
    with _MIGRATION_LOCK:
        _migrate(url)


def _migrate(url: str) -> None:
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
    return None if isinstance(value, str) and value in _INFINITE else value


_INFINITE: Final = frozenset({"inf", "-inf"})
#: column types whose values go to every driver as they are (no bind processing)
_PLAIN_TYPES: Final = (String, Float, Integer)


def _bulk_insert(c: Connection, table: Table, records: list[dict[str, Any]]) -> None:
    """Insert ``records`` (dicts with the same keys) into ``table`` in bulk,
    storing what SQLAlchemy's ``insert(table)`` stores: JSON columns as
    ``json.dumps`` text (psycopg's ``Json`` does the same), other values as
    given. PostgreSQL (psycopg): one ``COPY``; SQLite, MariaDB: ``executemany``
    of plain tuples in large batches. Tables with other column types, or other
    drivers, go through SQLAlchemy."""
    if not records:
        return
    names = list(records[0])
    types = [table.c[n].type for n in names]
    json_at = [i for i, t in enumerate(types) if isinstance(t, JSON)]
    plain = all(isinstance(t, (JSON, *_PLAIN_TYPES)) for t in types)
    backend, driver = c.dialect.name, c.dialect.driver
    if not plain or (backend, driver) not in {
        ("sqlite", "pysqlite"),
        ("postgresql", "psycopg"),
        ("mysql", "pymysql"),
        ("mariadb", "pymysql"),
    }:
        for i in range(0, len(records), _BULK_CHUNK):
            c.execute(insert(table), records[i : i + _BULK_CHUNK])
        return
    rows: list[Any] = [tuple(r[n] for n in names) for r in records]
    if json_at:
        dumps = json.dumps
        for i, row in enumerate(rows):
            row = list(row)
            for j in json_at:
                if row[j] is not None:
                    row[j] = dumps(row[j])
            rows[i] = tuple(row)
    q = c.dialect.identifier_preparer.quote
    cols = ", ".join(q(n) for n in names)
    if backend == "postgresql":
        raw = c.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {q(table.name)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    mark = "?" if c.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {q(table.name)} ({cols}) VALUES ({', '.join([mark] * len(names))})"
    for i in range(0, len(rows), _BULK_CHUNK):
        c.exec_driver_sql(sql, rows[i : i + _BULK_CHUNK])


def _jsonable_column(s: pd.Series) -> list[Any]:
    """``[_jsonable(v) for v in s]`` for the values ``DataFrame.to_dict`` gives,
    a column at a time: plain floats, ints and bools from numpy columns
    (non-finite floats as ``_jsonable`` says), per value otherwise."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        arr = s.to_numpy()
        out = arr.tolist()
        bad = ~np.isfinite(arr)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                out[i] = _jsonable(out[i])
        return list(out)
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return list(s.to_numpy().tolist())
    if pd.api.types.is_object_dtype(dtype) or isinstance(
        dtype, pd.CategoricalDtype | pd.StringDtype
    ):
        arr = s.astype(object).to_numpy()
        if pd.api.types.infer_dtype(arr, skipna=True) in {"string", "empty"}:
            out = arr.tolist()  # text and missing values (None, NaN, NA: None)
            missing = pd.isna(arr)
            if missing.any():
                for i in np.flatnonzero(missing).tolist():
                    out[i] = None
            return list(out)
    return [_jsonable(v) for v in s]


class Store:
    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        if upgrade and url not in _MIGRATED:
            with _MIGRATION_LOCK:
                if url not in _MIGRATED:
                    _migrate(url)
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

    def _tx_retrying_conflicts(self, what: str, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, run again (3 attempts in all) when the
        transaction lost a race with a concurrent one — a key inserted first,
        a deadlock, a serialization failure
        (:func:`~replenish.sources.db.is_write_conflict`): the next attempt
        sees what the other committed."""
        for attempt in (1, 2, 3):
            try:
                with self._tx(what) as c:
                    return work(c)
            except StoreError as e:
                if attempt == 3 or e.__cause__ is None or not is_write_conflict(e.__cause__):
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

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
        """The latest runs, newest first (without their KPIs: :meth:`kpis`)."""
        cols = [c for c in Run.__table__.columns if c.name != "kpis"]
        with self._tx("cannot read runs") as c:
            stmt = select(*cols).order_by(Run.started_at.desc()).limit(limit)
            return pd.DataFrame(c.execute(stmt).mappings().all(), columns=[c.name for c in cols])

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
        whole row so the planner sees every input and intermediate.

        Built a column at a time (:func:`_jsonable_column`): the values are
        the ones :func:`_jsonable` gives per value, 50,000 plans in about a
        second instead of ten."""
        n = len(plans)
        names = [str(k) for k in plans.columns]
        values = [_jsonable_column(plans.iloc[:, i]) for i in range(plans.shape[1])]
        by_name = dict(zip(names, values, strict=True))
        details = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        if not names:
            details = [{} for _ in range(n)]
        columns: dict[str, list[Any]] = {}
        for c in _PLAN_COLUMNS:
            col = by_name.get(c, [None] * n)
            plain = [None if v in _INFINITE else v for v in col] if c in by_name else col
            if c in {"order_qty", "order_value"}:
                plain = [v or 0.0 for v in plain]
            columns[c] = plain
        records = [
            {**dict(zip(_PLAN_COLUMNS, row, strict=True)), "run_id": run_id, "details": d}
            for row, d in zip(zip(*columns.values(), strict=True), details, strict=True)
        ]
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
            _bulk_insert(c, table.__table__, records)  # type: ignore[arg-type]
        return len(records)

    def quarantine(self, run_id: str) -> pd.DataFrame:
        with self._tx("cannot read quarantine") as c:
            stmt = select(QuarantinedRow.__table__).where(QuarantinedRow.run_id == run_id)
            return pd.DataFrame(c.execute(stmt).mappings().all())

    # ---- draft purchase orders (docs/publishing.md) ---------------------------------
    def publish_drafts(
        self,
        as_of: date,
        run_id: str,
        headers: pd.DataFrame,
        lines: pd.DataFrame,
        *,
        covered: Iterable[tuple[str, str]] | None = None,
    ) -> PublishResult:
        """Make the stored drafts of ``as_of`` equal to ``headers``/``lines``.

        Idempotent: a draft whose content is unchanged is not touched; a
        changed one still in status 'draft' has its lines replaced; drafts of
        the date no longer proposed are removed while still drafts; drafts
        that moved on (approved, rejected) are never modified. Each line keeps
        its explanation and figures (``details``) and its ``planned_qty``.

        ``covered``: the (sku, location_id) pairs the plan of ``as_of`` looked
        at. Unapproved drafts of EARLIER dates are superseded when the plan
        covered all their lines (status 'superseded', ``superseded_by`` the
        draft of ``as_of`` for the same supplier × location, or the date when
        the plan orders none of it), or lose only the covered lines (a
        partial run). None: nothing is superseded.

        All in one transaction: no half-written order. If a concurrent run
        inserted the same ``po_key`` first, the primary key rejects the second
        insert and the whole publish is retried once, finding the drafts
        already there.
        """
        pairs = {(str(s), str(loc)) for s, loc in covered} if covered is not None else None
        return self._tx_retrying_conflicts(
            "cannot store draft orders",
            lambda c: drafts.publish(c, as_of, run_id, headers, lines, pairs),
        )

    def _as_of_of(self, c: Connection, run_id: str | None, as_of: date | None) -> date | None:
        if as_of is None and run_id is not None:
            found = c.execute(select(Run.as_of).where(Run.run_id == run_id)).scalar()
            if found is None:
                raise StoreError(f"no run {run_id!r} in the store {safe_url(self.url)}")
            return found
        return as_of

    def orders(
        self,
        *,
        as_of: date | None = None,
        run_id: str | None = None,
        statuses: Sequence[str] | None = None,
        po_keys: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Draft PO lines with their header fields, for one planning date (or
        the date of ``run_id``; neither: every date), optionally only orders
        in ``statuses`` or with these ``po_keys``. ``planned_qty`` is what the
        plan proposed, ``qty`` what is ordered (they differ after an
        approver's change); ``details`` the figures behind ``explanation``."""
        h, ln = DraftPurchaseOrder, DraftPurchaseOrderLine
        with self._tx("cannot read draft orders") as c:
            as_of = self._as_of_of(c, run_id, as_of)
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
                    ln.planned_qty,
                    h.decided_by,
                    h.decided_at,
                    h.erp_target,
                    h.erp_id,
                    h.erp_name,
                    h.push_action,
                    h.pushed_at,
                    ln.details,
                )
                .join(h, h.po_key == ln.po_key)
                .order_by(ln.po_key, ln.line_no)
            )
            if as_of is not None:
                stmt = stmt.where(h.as_of == as_of)
            if statuses is not None:
                stmt = stmt.where(h.status.in_(list(statuses)))
            if po_keys is not None:
                stmt = stmt.where(h.po_key.in_(list(po_keys)))
            return pd.DataFrame(
                c.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys())
            )

    def drafts(
        self,
        *,
        as_of: date | None = None,
        run_id: str | None = None,
        statuses: Sequence[str] | None = None,
        po_keys: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Draft order headers (one row per order, every column of
        ``draft_purchase_orders``) of one planning date (or the date of
        ``run_id``; neither: every date), sorted by ``po_key``."""
        t = DraftPurchaseOrder.__table__
        with self._tx("cannot read draft orders") as c:
            as_of = self._as_of_of(c, run_id, as_of)
            stmt = select(t).order_by(t.c.po_key)
            if as_of is not None:
                stmt = stmt.where(t.c.as_of == as_of)
            if statuses is not None:
                stmt = stmt.where(t.c.status.in_(list(statuses)))
            if po_keys is not None:
                stmt = stmt.where(t.c.po_key.in_(list(po_keys)))
            return pd.DataFrame(
                c.execute(stmt).mappings().all(), columns=[col.name for col in t.columns]
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

    def decide(
        self,
        po_key: str,
        decision: str,
        decided_by: str,
        *,
        via: str = "cli",
        run_id: str | None = None,
        quantities: Mapping[str, float] | None = None,
        note: str | None = None,
    ) -> Decision:
        """Approve or reject the draft ``po_key``: ``decision`` is 'approved'
        or 'rejected', ``decided_by`` who (``auto`` for the automatic approval
        below the threshold), ``via`` through what ('prefect-ui', 'cli',
        'auto'). ``quantities`` (approval only) changes line quantities by
        SKU, 0 takes the line out; the order's value, line count and minimum
        flag follow. The decision is kept on the draft and in the decision
        log (:meth:`decisions`), in one transaction, with the draft locked so
        two approvers cannot both decide.

        A decision is taken once: deciding an order that is no longer a
        draft raises :class:`StoreError` naming who decided it and when —
        except the very same decision by the same person, which is a no-op
        (``recorded`` False), so a retried step records nothing twice.

        Raises:
            StoreError: unknown order or SKU, a quantity that is not a number
                >= 0, every quantity 0 (reject instead), an order already
                decided or superseded, no name.
        """
        with self._tx(f"cannot record the decision on order {po_key}") as c:
            return drafts.decide(
                c,
                po_key,
                decision,
                decided_by,
                via=via,
                run_id=run_id,
                quantities=quantities,
                note=note,
                now=datetime.now(),
            )

    def decisions(
        self, *, as_of: date | None = None, po_keys: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The decision log: one row per decision (po_key, run_id, decision,
        decided_by, decided_at, via, total_value, changes, note), oldest first."""
        d, h = ApprovalDecision.__table__, DraftPurchaseOrder.__table__
        with self._tx("cannot read approval decisions") as c:
            stmt = select(d).order_by(d.c.decided_at, d.c.id)
            if as_of is not None:
                stmt = stmt.where(d.c.po_key.in_(select(h.c.po_key).where(h.c.as_of == as_of)))
            if po_keys is not None:
                stmt = stmt.where(d.c.po_key.in_(list(po_keys)))
            return pd.DataFrame(
                c.execute(stmt).mappings().all(), columns=[col.name for col in d.columns]
            )

    def record_push(self, outcomes: pd.DataFrame) -> int:
        """Record on each draft what a push did (``PushReport.to_frame()``):
        target, action, the ERP's id and reference, the reason, and when.
        Returns the number of drafts updated."""
        if outcomes.empty:
            return 0
        with self._tx("cannot record the push") as c:
            return drafts.record_push(c, outcomes, datetime.now())

    # ---- KPIs of a run (docs/kpis.md) ----------------------------------------------
    def save_kpis(self, run_id: str, kpis: Mapping[str, Any]) -> None:
        """Keep a run's KPIs (``Kpis.to_dict()``) so that reading them later
        (``replenish kpis``) needs no recomputation."""
        with self._tx("cannot store the KPIs") as c:
            done = c.execute(
                update(Run).where(Run.run_id == run_id).values(kpis=drafts.jsonable(dict(kpis)))
            ).rowcount
        if not done:
            raise StoreError(f"no run {run_id!r} in the store {safe_url(self.url)}")

    def kpis(self, run_id: str) -> dict[str, Any] | None:
        """The KPIs stored for ``run_id`` (None: the run computed none)."""
        with self._tx("cannot read the KPIs") as c:
            row = c.execute(select(Run.kpis).where(Run.run_id == run_id)).first()
        if row is None:
            raise StoreError(f"no run {run_id!r} in the store {safe_url(self.url)}")
        return dict(row[0]) if row[0] is not None else None

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
        """The alerts raised on ``as_of`` (one row per key, as last raised that
        day; ``sent_at``/``channels`` when announced that day)."""
        with self._tx("cannot read alerts") as c:
            stmt = select(AlertRecord.__table__).where(AlertRecord.as_of == as_of)
            return pd.DataFrame(c.execute(stmt).mappings().all())

    # ---- alert lifecycle across runs (docs/alerts.md; replenish/store/alerts.py) ------
    def reconcile_alerts(
        self,
        as_of: date,
        run_id: str,
        alerts: Sequence[Alert],
        *,
        scopes: Sequence[AlertScope] = (),
        rules: AlertRules | None = None,
    ) -> AlertChanges:
        """Compare a run's alerts with the open ones and claim what to announce:
        new alerts, alerts that worsened, and resolutions of the open alerts
        that ``scopes`` cover and the run did not raise again. One
        transaction; run again (up to 3 times) when it lost a race with a
        concurrent run: the same alert opened first, or a deadlock
        (:func:`~replenish.sources.db.is_write_conflict`). Send ``changes.notices()``, then call
        :meth:`record_alert_delivery` (or :meth:`release_alerts` if no channel
        took them)."""
        checked = rules or AlertRules()
        return self._tx_retrying_conflicts(
            "cannot store alerts",
            lambda c: alert_state.reconcile(
                c, as_of, run_id, alerts, scopes, checked, datetime.now()
            ),
        )

    def release_alerts(self, changes: AlertChanges) -> None:
        """Put back the notices of ``changes`` (delivery failed everywhere): the
        next reconcile announces them again."""
        if changes.claims:
            with self._tx("cannot store alerts") as c:
                alert_state.release(c, changes)

    def record_alert_delivery(
        self, as_of: date, changes: AlertChanges, channels: Sequence[str]
    ) -> None:
        """Note the channels that took the notices of ``changes``."""
        if changes.claims:
            with self._tx("cannot store alerts") as c:
                alert_state.record_delivery(c, as_of, changes, channels, datetime.now())

    def alert_states(self, as_of: date | None = None, *, status: str = "all") -> pd.DataFrame:
        """Alert episodes open on ``as_of`` and/or resolved on it (``status``
        'open', 'resolved', 'all'); without a date, those open now and every
        resolved one. Columns: :data:`replenish.store.alerts.STATE_COLUMNS`."""
        with self._tx("cannot read alerts") as c:
            return alert_state.states(c, as_of, status)

    def open_alerts(self, kinds: Iterable[str] | None = None) -> pd.DataFrame:
        """The open alert episodes (of ``kinds``), oldest first."""
        with self._tx("cannot read alerts") as c:
            return alert_state.open_states(c, None if kinds is None else set(kinds))

    # ---- demand cache (docs/incremental.md) --------------------------------------------
    def source_state(self, source: str) -> SourceState | None:
        """The watermark row of ``source``, or None if it was never ingested."""
        wm = cache.WATERMARKS_TABLE
        with self._tx("cannot read the demand cache") as c:
            row = c.execute(select(wm).where(wm.c.source == source)).mappings().first()
        return SourceState(**row) if row is not None else None

    def watermark(self, source: str) -> datetime | None:
        """How far ``source`` is known: the watermark of its last ingest (None: never)."""
        state = self.source_state(source)
        return state.watermark if state is not None else None

    def sources(self) -> pd.DataFrame:
        """One row per cached source: source, watermark, covered_from, origin,
        rows (sales lines), returns, updated_at."""
        wm = cache.WATERMARKS_TABLE
        with self._tx("cannot read the demand cache") as c:
            rows = c.execute(select(wm).order_by(wm.c.source)).mappings().all()
        return pd.DataFrame(rows, columns=[col.name for col in wm.columns])

    def ingest(
        self,
        source: str,
        lines: pd.DataFrame,
        returns: pd.DataFrame,
        watermark: datetime | None,
        *,
        replace_from: datetime | None = None,
        reset: bool = False,
        origin: str | None = None,
    ) -> IngestResult:
        """Cache a batch of ``source``'s sales lines and returns, and advance its
        watermark, in ONE transaction: a crash leaves the old state or the new,
        never rows without their watermark or the reverse.

        ``lines``/``returns``: frames with the ``sales_order_lines`` / ``returns``
        contract columns. A row whose key (source, channel, order_id, line_no),
        resp. (source, order_id, sku, returned_at), is cached already replaces
        it; a key repeated in the batch keeps its last row. A row without its
        key or with a string longer than the contract's column is refused with
        a :class:`StoreError` naming it (:func:`replenish.store.cache.uncacheable`
        tells them apart beforehand).

        ``replace_from``: first delete the source's cached lines ordered from
        then on (and undated ones) and returns returned from then on — the batch
        is everything the source has since then, so edits and deletions there
        are caught. ``reset``: first delete all of the source's rows (a full
        refresh); the watermark is then set even if it moves back.
        ``watermark`` never moves back otherwise (None keeps it). ``covered_from``
        (the cache holds the source's rows from then on) is set to
        ``replace_from`` on the first ingest and on a reset. ``origin``: what the
        rows were read from (kept when None). Timestamps are naive UTC; aware
        ones are converted.
        """
        started = time.perf_counter()
        _check_source(source)
        watermark, replace_from = naive_utc(watermark), naive_utc(replace_from)
        lines, dup_lines = cache.prepare("sales_order_lines", source, lines)
        returns, dup_returns = cache.prepare("returns", source, returns)
        sales, rets, wm = cache.SALES_TABLE, cache.RETURNS_TABLE, cache.WATERMARKS_TABLE
        with self._tx(f"cannot cache the sales of source {source!r}") as c:
            if c.dialect.name == "sqlite":  # the indexes of a large batch stay in memory
                c.exec_driver_sql("PRAGMA cache_size = -262144")
            old = _locked_state(c, source)
            # stamped once the source is locked: one source's batches get
            # increasing stamps in the order they commit (the gate's verdicts
            # rely on it, docs/incremental.md)
            loaded_at = datetime.now()
            ret_cols, ret_rows = cache.rows_of("returns", source, returns, loaded_at)
            deleted_lines = deleted_returns = 0
            to_write, unchanged, changed = lines, 0, 0
            if reset:
                deleted_lines = c.execute(delete(sales).where(sales.c.source == source)).rowcount
                deleted_returns = c.execute(delete(rets).where(rets.c.source == source)).rowcount
            elif replace_from is not None:
                if old is not None:  # the re-read window: only what changed is written
                    diff = cache.diff_window(c, source, lines, replace_from, loaded_at)
                    to_write, deleted_lines, changed = diff.write, diff.window, diff.changed
                    unchanged = len(lines) - len(to_write)
                deleted_returns = c.execute(
                    delete(rets).where(rets.c.source == source, rets.c.returned_at >= replace_from)
                ).rowcount
            new_keys = reset or old is None  # nothing of the source is cached
            line_cols, line_rows = cache.rows_of("sales_order_lines", source, to_write, loaded_at)
            n_line_rows, replaced_lines = cache.upsert(
                c, "sales_order_lines", line_cols, line_rows, new_keys=new_keys
            )
            # the window's lines the batch kept as they were, or changed, are not
            # "replaced" (they are counted among the window's deleted lines)
            n_line_rows += unchanged
            replaced_lines -= changed
            n_ret_rows, replaced_returns = cache.upsert(
                c, "returns", ret_cols, ret_rows, new_keys=new_keys
            )
            # the sealed copy of older lines is void if this touched one of them
            if reset or replaced_lines:  # a replaced line may be of any date
                _unseal(c, source, None)
            else:
                dated = lines["ordered_at"].min() if len(lines) else pd.NaT
                since = [d for d in (replace_from, dated) if d is not None and not pd.isna(d)]
                if since:
                    _unseal(c, source, min(pd.Timestamp(d).to_pydatetime() for d in since))
            # the source's rows: kept from what was deleted and written, not
            # counted (a count of the table reads every cached row's index entry)
            before_lines = 0 if old is None else int(old["rows"] or 0)
            before_returns = 0 if old is None else int(old["returns"] or 0)
            n_lines = before_lines - deleted_lines + n_line_rows - replaced_lines
            n_returns = before_returns - deleted_returns + n_ret_rows - replaced_returns
            previous = old["watermark"] if old is not None else None
            if reset or previous is None:
                new_watermark = watermark
            elif watermark is None:
                new_watermark = previous
            else:  # never backwards
                new_watermark = max(previous, watermark)
            first = reset or old is None
            values = {
                "watermark": new_watermark,
                "covered_from": replace_from if first or old is None else old["covered_from"],
                "origin": origin if origin is not None or old is None else old["origin"],
                "rows": int(n_lines),
                "returns": int(n_returns),
                "updated_at": loaded_at,
            }
            if old is None:
                c.execute(insert(wm).values(source=source, **values))
            else:
                c.execute(update(wm).where(wm.c.source == source).values(**values))
            if c.dialect.name == "postgresql" and n_line_rows > 10_000:
                # fresh statistics: a wide read of the cache then scans instead of
                # walking the date index row by row
                c.exec_driver_sql("ANALYZE sales_cache")
        return IngestResult(
            source=source,
            lines=n_line_rows,
            returns=n_ret_rows,
            deleted_lines=deleted_lines,
            deleted_returns=deleted_returns,
            duplicates=dup_lines + dup_returns,
            previous_watermark=previous,
            watermark=new_watermark,
            cached_lines=int(n_lines),
            cached_returns=int(n_returns),
            seconds=time.perf_counter() - started,
            loaded_at=loaded_at,
        )

    def cached_sales(
        self,
        start: datetime | None,
        end: datetime | None = None,
        skus: Sequence[str] | None = None,
        *,
        sources: Sequence[str] | None = None,
        with_source: bool = False,
        with_verdicts: bool = False,
        lean: bool = False,
        left_out_from: Mapping[str, datetime] | None = None,
    ) -> pd.DataFrame:
        """Cached sales lines ordered in [start, end), as ``sales_order_lines``
        contract frame: the union of ``sources`` (default: every source; a
        channel's line is distinct from an ERP line with the same ids).

        ``end`` None: no upper bound, and undated lines (a date the source had
        but that could not be read) are included, as a direct read of the
        source would show them to the validation gate. ``skus``: only these.
        ``with_source``: a first column ``source`` says where each row is from.
        Row order is unspecified. Without ``sources`` (or ``skus``) the read is
        a table scan, the fastest way to read most of the cache.
        ``with_verdicts``: a last column ``verdict`` (None/NaN, '' or the
        failed checks; a categorical when ``lean``) is the gate's cached
        row-level verdict (docs/data-quality.md). ``lean``: the text columns of
        :data:`replenish.sources.fastread.LEAN_COLUMNS` as an ERP read gives
        them (categoricals, Arrow-backed strings), ``source`` a categorical;
        built a column at a time (on PostgreSQL read through
        :func:`replenish.sources.fastread.read_frame`). ``left_out_from``:
        source -> date: that source's lines ordered from then on, and its
        undated ones, are left out (the nightly read's re-read week, which it
        has in memory already). A lean read with sources takes the ERP's
        closed months from their sealed copy when there is a valid one
        (replenish/store/sealed.py).
        """
        return self._cached(
            "sales_order_lines",
            start,
            end,
            skus,
            sources,
            with_source,
            with_verdicts=with_verdicts,
            lean=lean,
            left_out_from=left_out_from,
        )

    def cached_returns(
        self,
        start: datetime | None,
        end: datetime | None = None,
        skus: Sequence[str] | None = None,
        *,
        sources: Sequence[str] | None = None,
        with_source: bool = False,
        lean: bool = False,
        left_out_from: Mapping[str, datetime] | None = None,
    ) -> pd.DataFrame:
        """Cached returns returned in [start, end), as ``returns`` contract frame
        (see :meth:`cached_sales`)."""
        return self._cached(
            "returns",
            start,
            end,
            skus,
            sources,
            with_source,
            lean=lean,
            left_out_from=left_out_from,
        )

    def _cached(
        self,
        table: str,
        start: datetime | None,
        end: datetime | None,
        skus: Sequence[str] | None,
        sources: Sequence[str] | None,
        with_source: bool,
        *,
        with_verdicts: bool = False,
        lean: bool = False,
        left_out_from: Mapping[str, datetime] | None = None,
        use_sealed: bool = True,
    ) -> pd.DataFrame:
        t = cache.CACHE_TABLES[table]
        columns = list(model.CONTRACT[table])
        passed: dict[str, tuple[datetime, datetime]] = {}
        if with_source:
            columns.insert(0, "source")
        if with_verdicts:
            columns.append("verdict")
            passed = self._passed(sources)
        if (sources is not None and not sources) or (skus is not None and not skus):
            empty = _contract_frame(table, pd.DataFrame(columns=columns), with_source)
            if lean:
                empty = lean_frame(table, empty)
                if with_source:
                    empty["source"] = empty["source"].astype("category")
            if with_verdicts:
                empty["verdict"] = np.array([], dtype=object)
            return empty
        date_col = t.c[cache.DATE_COLUMNS[table]]
        sqlite = self.engine.dialect.name == "sqlite"
        # the ERP's closed months from its sealed copy, when it has a valid one
        sealed_part = None
        if (
            use_sealed
            and table == "sales_order_lines"
            and lean
            and with_source
            and skus is None
            and (sources is None or ERP_SOURCE in sources)
        ):
            bounds = [naive_utc(end), naive_utc((left_out_from or {}).get(ERP_SOURCE))]
            until = min((b for b in bounds if b is not None), default=None)
            sealed_part = self._sealed_part(
                ERP_SOURCE, naive_utc(start), until, passed, with_verdicts, lean
            )
        # most of the cache: a table scan; the rest of a sealed copy: the index
        term = _unindexed(date_col) if sqlite and sealed_part is None else date_col
        conds: list[ColumnElement[bool]] = []
        if start is not None:
            conds.append(term >= naive_utc(start))
        if end is not None:
            conds.append(term < naive_utc(end))
        elif conds:
            conds = [or_(conds[0], date_col.is_(None))]
        if sources is not None:
            conds.append(t.c.source.in_(list(dict.fromkeys(sources))))
        for source, since in (left_out_from or {}).items():
            conds.append(or_(t.c.source != source, term < naive_utc(since)))
        base = select(
            *(
                _verdict_column(t, passed, fastcache.NO_VERDICT if sqlite and lean else None)
                if c == "verdict"
                else t.c[c]
                for c in columns
            )
        ).where(*conds)
        wanted = list(dict.fromkeys(skus)) if skus is not None else None
        statements = (
            [base]
            if wanted is None
            else [
                base.where(t.c.sku.in_(wanted[i : i + 5000])) for i in range(0, len(wanted), 5000)
            ]
        )
        if sealed_part is not None:  # per source, each through the (source, date) index
            others = [str(x) for x in self.sources()["source"] if x != ERP_SOURCE]
            if sources is not None:
                others = [x for x in others if x in sources]
            # each a range of the (source, date) index (an OR would make SQLite
            # walk all of the source's entries)
            statements = [
                base.where(t.c.source == ERP_SOURCE, date_col >= sealed_part[2]),
                base.where(t.c.source == ERP_SOURCE, date_col < sealed_part[3]),
                base.where(t.c.source == ERP_SOURCE, date_col.is_(None)),
            ]
            if others:
                statements.append(base.where(t.c.source.in_(others)))
        frames = []
        sqlite_file = fastcache.sqlite_file(self.url) if lean and sqlite else None
        with self._tx("cannot read the demand cache") as c:
            fast = lean and c.dialect.name == "postgresql" and c.dialect.driver == "psycopg"
            for stmt in statements:
                if fast:  # COPY ... (FORMAT binary) through ADBC: Arrow columns
                    frame = read_frame(c, stmt, table)
                    if len(frame):
                        frames.append(frame)
                    continue
                if sqlite_file is not None:  # SQLite through ADBC: Arrow columns
                    arrow = fastcache.read_sqlite_frame(
                        sqlite_file, c, stmt, table, dict(LEAN_COLUMNS.get(table, {}))
                    )
                    if arrow is not None:
                        if len(arrow):
                            frames.append(arrow)
                        continue
                # the driver's own rows: no Row object and no value processing
                # per row (timestamps come as text from SQLite), then one
                # column at a time
                rows = c.execute(stmt).cursor.fetchall()
                if rows:
                    frame = _columns_frame(table, columns, rows, lean=lean)
                    if with_verdicts and sqlite and lean:
                        none = frame["verdict"] == fastcache.NO_VERDICT
                        frame.loc[none, "verdict"] = None
                    frames.append(frame)
                del rows
        if sealed_part is not None:
            state = self.source_state(ERP_SOURCE)
            if state is None or state.seal_id != sealed_part[1]:  # voided meanwhile
                return self._cached(
                    table,
                    start,
                    end,
                    skus,
                    sources,
                    with_source,
                    with_verdicts=with_verdicts,
                    lean=lean,
                    left_out_from=left_out_from,
                    use_sealed=False,
                )
            if len(sealed_part[0]):
                if with_verdicts:  # the copy's verdicts are a categorical: the table's too
                    for part in frames:
                        v = part["verdict"]
                        if not isinstance(v.dtype, pd.CategoricalDtype):
                            part["verdict"] = pd.Categorical(v.astype(object).where(v.notna()))
                frames.append(sealed_part[0])
        if not frames:
            return self._cached(
                table, start, end, [], None, with_source, with_verdicts=with_verdicts, lean=lean
            )  # the empty frame
        frame = frames[0] if len(frames) == 1 else concat_frames(table, frames)
        out = _contract_frame(table, frame, with_source, lean=lean)
        if with_verdicts:
            verdict = frame["verdict"]
            if isinstance(verdict.dtype, pd.CategoricalDtype):
                out["verdict"] = verdict.array  # few distinct values; NaN: none yet
            elif lean:  # as lean on every back end, with or without a sealed copy
                out["verdict"] = pd.Categorical(verdict.astype(object).where(verdict.notna()))
            else:
                text = verdict.astype(object).to_numpy()
                text[pd.isna(text)] = None
                out["verdict"] = text
        return out

    def record_verdicts(
        self,
        source: str,
        rejected: pd.DataFrame,
        *,
        through: datetime,
        validated_from: datetime,
        rules: str,
    ) -> int:
        """Keep the validation gate's row-level verdicts of ``source``'s cached
        sales lines (docs/incremental.md), in one transaction.

        The caller validated every line of the source without a verdict that
        was stamped (``loaded_at``) up to ``through`` and ordered from
        ``validated_from`` on; ``rejected`` (``channel, order_id, line_no,
        verdict``, and best ``ordered_at``: a verdict on a line of the sealed
        copy voids the copy, and without the dates any verdict does) are
        those that failed a check: they keep their failed
        checks, the others pass, which the source's ``verdicts_through`` and
        ``verdicts_from`` record without writing a line. A line stamped later
        was cached after the validated read and is left alone. ``rules``: the
        fingerprint of the checks; verdicts taken with other checks are
        dropped first. Returns the lines given a failed check.
        """
        _check_source(source)
        through = naive_utc(through) or through
        validated_from = naive_utc(validated_from) or validated_from
        sales, wm = cache.SALES_TABLE, cache.WATERMARKS_TABLE
        with self._tx(f"cannot store the verdicts of source {source!r}") as c:
            old = (
                c.execute(select(wm).where(wm.c.source == source).with_for_update())
                .mappings()
                .first()
            )
            if old is None:
                return 0  # the source was reset since
            if old["verdict_rules"] not in (None, rules):  # taken with other checks
                c.execute(
                    update(sales)
                    .where(sales.c.source == source, sales.c.verdict.is_not(None))
                    .values(verdict=None)
                )
                _unseal(c, source, None)
            n = 0
            if len(rejected):
                stmt = (
                    update(sales)
                    .where(
                        sales.c.source == source,
                        sales.c.verdict.is_(None),
                        sales.c.loaded_at <= through,
                        sales.c.channel == bindparam("k_channel"),
                        sales.c.order_id == bindparam("k_order_id"),
                        sales.c.line_no == bindparam("k_line_no"),
                    )
                    .values(verdict=bindparam("k_verdict"))
                )
                params = [
                    {"k_channel": ch, "k_order_id": o, "k_line_no": int(ln), "k_verdict": v}
                    for ch, o, ln, v in zip(
                        rejected["channel"].tolist(),
                        rejected["order_id"].tolist(),
                        rejected["line_no"].tolist(),
                        rejected["verdict"].tolist(),
                        strict=True,
                    )
                ]
                # a verdict on a line of the sealed copy voids it (the caller
                # gives the lines' dates; without them, assume the worst)
                if "ordered_at" not in rejected:
                    _unseal(c, source, None)
                elif rejected["ordered_at"].notna().any():
                    _unseal(c, source, pd.Timestamp(rejected["ordered_at"].min()).to_pydatetime())
                for i in range(0, len(params), _CHUNK):
                    n += c.execute(stmt, params[i : i + _CHUNK]).rowcount or 0
            before = old["verdicts_through"] if old["verdict_rules"] == rules else None
            c.execute(
                update(wm)
                .where(wm.c.source == source)
                .values(
                    verdict_rules=rules,
                    verdicts_through=through if before is None else max(before, through),
                    verdicts_from=validated_from,
                )
            )
        return int(n)

    def _passed(self, sources: Sequence[str] | None) -> dict[str, tuple[datetime, datetime]]:
        """Per source: (verdicts_through, verdicts_from) — its lines stamped up
        to the first and ordered from the second on were validated."""
        wm = cache.WATERMARKS_TABLE
        with self._tx("cannot read the demand cache") as c:
            rows = c.execute(
                select(wm.c.source, wm.c.verdicts_through, wm.c.verdicts_from).where(
                    wm.c.verdicts_through.is_not(None), wm.c.verdicts_from.is_not(None)
                )
            ).all()
        wanted = None if sources is None else set(sources)
        return {str(r[0]): (r[1], r[2]) for r in rows if wanted is None or str(r[0]) in wanted}

    def seal(self, source: str, before: datetime) -> int | None:
        """Bring ``source``'s sealed copy (replenish/store/sealed.py) up to
        the lines ordered before ``before`` (a month start, rounded down to
        one): the months it lacks are read from the table and written, or,
        when there is no valid copy, every month. Returns the lines written,
        0 when the copy was up to date, None when there is no copy (no place
        for the files, the source not cached, a write voided it meanwhile)."""
        root = sealed.sealed_root(self.url)
        if root is None:
            return None
        before = datetime(before.year, before.month, 1)
        files = sealed.SealedFiles(root, source)
        wm, sales = cache.WATERMARKS_TABLE, cache.SALES_TABLE
        with self._tx(f"cannot seal the cache of source {source!r}") as c:
            old = _locked_state(c, source)
            if old is None:
                return None
            seal_id, sealed_before = old["seal_id"], old["sealed_before"]
            valid = seal_id is not None and not seal_id.startswith(sealed.PENDING)
            first = self._sealed_first(files, seal_id) if valid else None
            if valid and first is not None and sealed_before is not None:
                if not files.has(seal_id, sealed.month_starts(first, sealed_before)):
                    valid = False  # a file lost: a new copy
                elif sealed_before >= before:
                    return 0
            if not (valid and first is not None and sealed_before is not None):
                seal_id, sealed_before = sealed.new_seal_id(), None
                oldest = c.execute(
                    select(func.min(sales.c.ordered_at)).where(sales.c.source == source)
                ).scalar()
                if oldest is None:
                    return None
                first = max(_as_datetime(oldest), old["covered_from"] or datetime.min)
            todo = sealed.month_starts(sealed_before or first, before)
            if not todo:
                return 0
            c.execute(
                update(wm)
                .where(wm.c.source == source)
                .values(seal_id=f"{sealed.PENDING}{seal_id}", sealed_before=before)
            )
        written = 0
        if len(todo) > 2:  # a first copy: one scan of the table, split by month
            lines = self._raw_lines(source, todo[0], before, scan=True)
            when = lines.column("ordered_at")
            for month in todo:
                lo = pa.scalar(month, pa.timestamp("us"))
                hi = pa.scalar(sealed.next_month(month), pa.timestamp("us"))
                part = lines.filter(pc.and_(pc.greater_equal(when, lo), pc.less(when, hi)))
                files.write(seal_id, month, part)
                written += part.num_rows
            del lines, when
        else:  # a month or two more: through the date index
            for month in todo:
                part = self._raw_lines(source, month, sealed.next_month(month))
                files.write(seal_id, month, part)
                written += part.num_rows
        with self._tx(f"cannot seal the cache of source {source!r}") as c:
            done = c.execute(
                update(wm)
                .where(wm.c.source == source, wm.c.seal_id == f"{sealed.PENDING}{seal_id}")
                .values(seal_id=seal_id)
            ).rowcount
        if not done:  # a write touched a sealed line meanwhile: the copy is void
            files.drop_others(None)
            return None
        files.drop_others(seal_id)
        if old["covered_from"] is not None:
            files.drop_before(seal_id, old["covered_from"])
        return written

    @staticmethod
    def _sealed_first(files: sealed.SealedFiles, seal_id: str) -> datetime | None:
        """The first month of a sealed copy (its oldest file), or None."""
        stems = sorted(f.stem for f in files.folder(seal_id).glob("*.arrow"))
        return datetime.strptime(stems[0], "%Y-%m") if stems else None

    def _raw_lines(
        self, source: str, start: datetime, end: datetime | None, *, scan: bool = False
    ) -> pa.Table:
        """``source``'s cached sales lines ordered in [start, end) as stored
        (raw verdict, ``loaded_at``), in the sealed files' schema. ``scan``:
        most of the table: a table scan (SQLite: read and encoded batch by
        batch, so only the encoded lines are held), not the date index."""
        t = cache.SALES_TABLE
        path = fastcache.sqlite_file(self.url)
        term = _unindexed(t.c.ordered_at) if scan and path is not None else t.c.ordered_at
        conds = [t.c.source == source, term >= start]
        if end is not None:
            conds.append(term < end)
        cols = [
            # the SQLite driver infers a column's type from its first rows, which
            # may all be NULL: a sentinel instead (PostgreSQL refuses NUL in text)
            func.coalesce(t.c.verdict, fastcache.NO_VERDICT).label("verdict")
            if name == "verdict" and path is not None
            else t.c[name]
            for name in sealed.RAW_COLUMNS
        ]
        stmt = select(*cols).where(*conds)
        with self._tx("cannot read the demand cache") as c:
            arrow = None
            if path is not None:
                arrow = fastcache.read_sqlite_arrow(path, c, stmt, convert=sealed.normalise)
            if arrow is None:
                frame = read_frame(c, stmt)
                for name in ("ordered_at", "loaded_at"):
                    frame[name] = pd.to_datetime(frame[name])
                for name in ("sku", "location_id", "status", "channel", "order_id", "verdict"):
                    frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
                arrow = sealed.normalise(pa.Table.from_pandas(frame, preserve_index=False))
        return arrow  # normalised batch by batch (SQLite) or whole (above)

    def _sealed_part(
        self,
        source: str,
        start: datetime | None,
        until: datetime | None,
        passed: dict[str, tuple[datetime, datetime]],
        with_verdicts: bool,
        lean: bool,
    ) -> tuple[pd.DataFrame, str, datetime, datetime] | None:
        """``source``'s sealed lines ordered from ``start`` (to ``until``) as
        :meth:`_cached` frames them, with the seal id, ``sealed_before`` and
        where the copy's part starts (the table's part is the source's lines
        ordered before it or from ``sealed_before`` on, and undated ones);
        None without a valid, complete copy."""
        root = sealed.sealed_root(self.url)
        state = self.source_state(source) if root is not None else None
        if root is None or state is None or state.seal_id is None:
            return None
        seal_id, sealed_before = state.seal_id, state.sealed_before
        if seal_id.startswith(sealed.PENDING) or sealed_before is None:
            return None
        files = sealed.SealedFiles(root, source)
        first = self._sealed_first(files, seal_id)
        if first is None:
            return None
        since = max(d for d in (start, state.covered_from, first) if d is not None)
        cap = sealed_before if until is None else min(until, sealed_before)
        months = [
            m for m in sealed.month_starts(first, cap) if m >= datetime(since.year, since.month, 1)
        ]
        arrow = files.read(seal_id, months, since, cap)
        if arrow is None:
            return None
        n = arrow.num_rows
        columns: dict[str, Any] = {
            "source": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([source])
            )
        }
        for name in model.CONTRACT["sales_order_lines"]:
            columns[name] = arrow.column(name)
        if with_verdicts:  # as _verdict_column says, from the raw verdict
            verdict = arrow.column("verdict").cast(pa.string())
            through_since = passed.get(source)
            if through_since is not None:
                through, validated_from = through_since
                ok = pc.and_(
                    pc.less_equal(
                        arrow.column("loaded_at"), pa.scalar(through, pa.timestamp("us"))
                    ),
                    pc.greater_equal(
                        arrow.column("ordered_at"), pa.scalar(validated_from, pa.timestamp("us"))
                    ),
                )
                fill = pc.if_else(ok, "", fastcache.NO_VERDICT)
            else:
                fill = pa.repeat(pa.scalar(fastcache.NO_VERDICT, pa.string()), n)
            columns["verdict"] = pc.coalesce(verdict, fill)
        frame = fastcache.arrow_frame(
            pa.table(columns),
            "sales_order_lines",
            dict(LEAN_COLUMNS["sales_order_lines"]) if lean else {},
        )
        if frame is None:
            return None
        return frame, seal_id, sealed_before, since

    def reset_source(self, source: str) -> None:
        """Forget ``source``: its cached rows and its watermark (a full refresh
        then reads everything again)."""
        with self._tx(f"cannot reset the cache of source {source!r}") as c:
            for t in (cache.SALES_TABLE, cache.RETURNS_TABLE, cache.WATERMARKS_TABLE):
                c.execute(delete(t).where(t.c.source == source))

    def prune(self, source: str, before: datetime) -> int:
        """Drop ``source``'s cached rows dated before ``before`` (a history no
        run reads any more); the cache then covers the source from ``before``
        on. Returns the rows deleted."""
        before = naive_utc(before) or before
        sales, rets, wm = cache.SALES_TABLE, cache.RETURNS_TABLE, cache.WATERMARKS_TABLE
        with self._tx(f"cannot prune the cache of source {source!r}") as c:
            old = (
                c.execute(select(wm).where(wm.c.source == source).with_for_update())
                .mappings()
                .first()
            )
            if old is None:
                return 0
            n = c.execute(
                delete(sales).where(sales.c.source == source, sales.c.ordered_at < before)
            ).rowcount
            n_returns = c.execute(
                delete(rets).where(rets.c.source == source, rets.c.returned_at < before)
            ).rowcount
            covered = old["covered_from"]
            c.execute(
                update(wm)
                .where(wm.c.source == source)
                .values(
                    covered_from=before if covered is None else max(covered, before),
                    rows=max(int(old["rows"] or 0) - n, 0),
                    returns=max(int(old["returns"] or 0) - n_returns, 0),
                )
            )
        return int(n + n_returns)


def _as_datetime(value: Any) -> datetime:
    """A timestamp a driver returned (SQLite: maybe text) as a naive datetime."""
    return pd.Timestamp(value).to_pydatetime()


def _locked_state(c: Connection, source: str) -> Any:
    """``source``'s row of ``source_watermarks`` (None: not cached), locked
    for the rest of the transaction: its row lock, and on SQLite, which has
    none, the database's write lock taken now rather than at the first write."""
    wm = cache.WATERMARKS_TABLE
    if c.dialect.name == "sqlite":
        c.execute(update(wm).where(wm.c.source == source).values(source=wm.c.source))
    return c.execute(select(wm).where(wm.c.source == source).with_for_update()).mappings().first()


def _unseal(c: Connection, source: str, since: datetime | None) -> None:
    """Void ``source``'s sealed copy (replenish/store/sealed.py) when a write
    in this transaction may have touched a line ordered from ``since`` on
    that the copy holds (None: any line)."""
    wm = cache.WATERMARKS_TABLE
    stmt = update(wm).where(wm.c.source == source, wm.c.seal_id.is_not(None))
    if since is not None:
        stmt = stmt.where(wm.c.sealed_before > naive_utc(since))
    c.execute(stmt.values(seal_id=None, sealed_before=None))


def _verdict_column(
    t: Any, passed: dict[str, tuple[datetime, datetime]], missing: str | None
) -> ColumnElement[Any]:
    """The gate's verdict of a cached line: its failed checks, '' for a line
    the gate validated without failure (see :meth:`Store.record_verdicts`),
    else NULL (or ``missing``: the ADBC read infers a column's type from its
    first rows, which may all be NULL)."""
    whens: list[tuple[ColumnElement[bool], Any]] = [(t.c.verdict.is_not(None), t.c.verdict)]
    for source, (through, since) in passed.items():
        whens.append(
            (
                (t.c.source == source) & (t.c.loaded_at <= through) & (t.c.ordered_at >= since),
                literal(""),
            )
        )
    return case(*whens, else_=literal(missing) if missing is not None else null()).label("verdict")


def _columns_frame(
    table: str, columns: list[str], rows: Sequence[Any], *, lean: bool = False
) -> pd.DataFrame:
    """The driver's rows as a frame of contract dtypes, built a column at a
    time (no object per row; the cache holds coerced values only, so none
    needs :func:`replenish.model.coerce`'s checks). ``lean``: text columns as
    :data:`~replenish.sources.fastread.LEAN_COLUMNS` says, ``source`` a
    categorical."""
    contract = model.CONTRACT[table]
    how = LEAN_COLUMNS.get(table, {}) if lean else {}
    out: dict[str, Any] = {}
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        dtype = contract.get(name)
        if dtype == "float64":
            out[name] = np.array(values, dtype=np.float64)  # None: NaN
        elif dtype == "Int64":
            out[name] = pd.array(values, dtype="Int64")
        elif dtype == "boolean":
            out[name] = pd.array(values, dtype="boolean")  # SQLite: 0/1
        elif dtype is not None and dtype.startswith("datetime"):
            # SQLite: the cache's own text stamps; other servers: datetimes
            out[name] = np.array(values, dtype="datetime64[us]").astype("datetime64[ns]")
        elif dtype == "string" or name == "source":
            lean_as = "category" if lean and name == "source" else how.get(name)
            out[name] = _text_column(values, lean_as)
        else:  # the verdict
            out[name] = np.array(values, dtype=object)
    return pd.DataFrame(out, columns=columns, copy=False)


def _text_column(values: Sequence[Any], lean_as: str | None) -> Any:
    """Python strings (and None) as pandas ``string``, a categorical with
    sorted categories (as an ERP read gives them), or Arrow-backed strings."""
    if lean_as is None:
        return pd.array(values, dtype="string")
    return fastcache.text_column(pa.array(values, type=pa.string()), lean_as)


def _contract_form(table: str, frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has the contract columns of ``table`` in their
    contract dtypes, a text column possibly lean (categorical, Arrow)."""
    for c, t in model.CONTRACT[table].items():
        if c not in frame.columns:
            return False
        dtype = frame[c].dtype
        if str(dtype) == t:
            continue
        if t == "string" and isinstance(dtype, pd.CategoricalDtype):
            continue
        return False
    return True


def _contract_frame(
    table: str, frame: pd.DataFrame, with_source: bool, *, lean: bool = False
) -> pd.DataFrame:
    contract = model.CONTRACT[table]
    if _contract_form(table, frame):
        out = frame[list(contract)]
    else:
        out = model.coerce(table, frame)
        if lean:
            out = lean_frame(table, out)
    if with_source:
        source = frame["source"]
        if lean and not isinstance(source.dtype, pd.CategoricalDtype):
            source = source.astype("category")
        elif not lean:
            source = source.astype("string")
        out.insert(0, "source", source.array)
    return out


def _check_source(source: str) -> None:
    limit = 32  # source_watermarks.source
    if not source or not isinstance(source, str) or len(source) > limit:
        raise StoreError(f"a cache source is a name of 1 to {limit} characters, got {source!r}")


def _unindexed(col: Column[Any]) -> ColumnElement[Any]:
    """``+col``: the same value, but SQLite will not walk an index for it
    (https://sqlite.org/optoverview.html, "Disqualifying WHERE clause terms
    using unary-+"). A read of most of the cache is several times faster as a
    table scan than row by row through the date index."""
    return UnaryExpression(col, operator=custom_op("+"), type_=col.type)
