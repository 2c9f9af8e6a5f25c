"""The project's own database: runs, per-SKU plans, draft purchase orders,
alerts and quarantined rows (DESIGN.md, "Outputs"), and the demand cache: the
sales lines and returns of every source (the ERP, the sales channels) with a
watermark per source, so that a nightly run reads only what changed
(docs/incremental.md).

Schema changes go through Alembic migrations in ``replenish/store/migrations``;
these models are what the migrations must produce (a test checks it).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Run(Base):
    """One execution of the nightly plan (or of a dry run)."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    as_of: Mapped[date] = mapped_column(Date, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))  # running, completed, blocked, failed
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    erp: Mapped[str] = mapped_column(String(512))  # URL with the password hidden
    parameters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    kpis: Mapped[dict[str, object] | None] = mapped_column(JSON)  # Kpis.to_dict() of the run


class Plan(Base):
    """One SKU×location of one run: the quantity and everything behind it."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("run_id", "sku", "location_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    supplier_id: Mapped[str | None] = mapped_column(String(64))
    demand_mean: Mapped[float | None] = mapped_column(Float)
    demand_std: Mapped[float | None] = mapped_column(Float)
    lead_time_mean: Mapped[float | None] = mapped_column(Float)
    lead_time_std: Mapped[float | None] = mapped_column(Float)
    service_level: Mapped[float | None] = mapped_column(Float)
    safety_stock: Mapped[float | None] = mapped_column(Float)
    reorder_point: Mapped[float | None] = mapped_column(Float)
    inventory_position: Mapped[float | None] = mapped_column(Float)
    order_qty: Mapped[float] = mapped_column(Float, default=0.0)
    order_value: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class DraftPurchaseOrder(Base):
    """A draft supplier order, one per supplier × location × planning date.

    ``po_key`` is the idempotency key: a rerun for the same as-of date finds
    the existing draft instead of creating a second one; the primary key
    makes two concurrent runs collide instead of both inserting.
    """

    __tablename__ = "draft_purchase_orders"

    po_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    supplier_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    currency: Mapped[str | None] = mapped_column(String(3))
    line_count: Mapped[int] = mapped_column(Integer)
    total_value: Mapped[float] = mapped_column(Float)
    min_order_value: Mapped[float] = mapped_column(Float, default=0.0)
    below_minimum: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_run_id: Mapped[str] = mapped_column(String(36))
    updated_run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # approval (docs/publishing.md, "Approval"): the latest decision; every
    # decision is also in ``approval_decisions``
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    # an unapproved draft replaced by a later plan of the same supplier × location
    superseded_by: Mapped[str | None] = mapped_column(String(200))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the latest push to an ERP: the ERP's id and reference of the order, what
    # the push did (created, updated, unchanged, skipped, failed) and why
    erp_target: Mapped[str | None] = mapped_column(String(16))
    erp_id: Mapped[str | None] = mapped_column(String(64))
    erp_name: Mapped[str | None] = mapped_column(String(100))
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime)
    push_action: Mapped[str | None] = mapped_column(String(16))
    push_message: Mapped[str | None] = mapped_column(Text)


class DraftPurchaseOrderLine(Base):
    """One line of a draft: ``qty`` is what will be ordered, ``planned_qty``
    what the plan proposed (they differ when an approver adjusted the line);
    ``explanation`` says why in words, ``details`` holds the plan's figures
    behind it (inventory position, forecast, lead time, service target, safety
    stock, reorder point, raw quantity, rounding, supplier choice)."""

    __tablename__ = "draft_purchase_order_lines"

    po_key: Mapped[str] = mapped_column(
        ForeignKey("draft_purchase_orders.po_key", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer)
    supplier_sku: Mapped[str | None] = mapped_column(String(64))
    qty: Mapped[float] = mapped_column(Float)
    unit_price: Mapped[float] = mapped_column(Float)
    line_value: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(Text)
    planned_qty: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, object] | None] = mapped_column(JSON)


class ApprovalDecision(Base):
    """One decision on a draft order: who, when, through what (``via``: the
    Prefect UI form, the CLI, or ``auto`` below the approval threshold), and
    the quantities changed (``changes``: ``{sku: [planned, approved]}``)."""

    __tablename__ = "approval_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    po_key: Mapped[str] = mapped_column(
        ForeignKey("draft_purchase_orders.po_key", ondelete="CASCADE")
    )
    run_id: Mapped[str | None] = mapped_column(String(36))
    decision: Mapped[str] = mapped_column(String(16))  # approved, rejected
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    via: Mapped[str] = mapped_column(String(16))  # prefect-ui, cli, auto
    total_value: Mapped[float] = mapped_column(Float)  # after the changes
    changes: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class AlertRecord(Base):
    """An alert of one planning date; sent once, whatever the reruns."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("as_of", "alert_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(Date)
    alert_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    sku: Mapped[str | None] = mapped_column(String(64))
    location_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    first_run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    channels: Mapped[str | None] = mapped_column(String(200))


class AlertState(Base):
    """One episode of an alert across runs (docs/alerts.md, "De-duplication").

    Opened by the first run that raises the alert's key, kept open (and
    quiet) while later runs raise it again, re-announced when it worsens,
    resolved by the first run that evaluates its kind without raising it.
    ``open_key`` is the key while the episode is open and NULL once resolved:
    its unique constraint allows one open episode per key (NULLs are distinct
    on every back end), so two concurrent runs cannot both open it.
    ``notified_*`` is what people were last told (the reference for
    worsening); ``measure`` is the kind's worsening number now.
    """

    __tablename__ = "alert_state"
    __table_args__ = (UniqueConstraint("open_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_key: Mapped[str] = mapped_column(String(400))
    open_key: Mapped[str | None] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(16))  # open, resolved
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    sku: Mapped[str | None] = mapped_column(String(64))
    location_id: Mapped[str | None] = mapped_column(String(64))
    supplier_id: Mapped[str | None] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    measure: Mapped[float | None] = mapped_column(Double)
    opened_as_of: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    opened_run_id: Mapped[str] = mapped_column(String(36))
    last_as_of: Mapped[date] = mapped_column(Date)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    last_run_id: Mapped[str] = mapped_column(String(36))
    notified_severity: Mapped[str | None] = mapped_column(String(16))
    notified_measure: Mapped[float | None] = mapped_column(Double)
    notified_as_of: Mapped[date | None] = mapped_column(Date)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    notify_count: Mapped[int] = mapped_column(Integer, default=0)
    channels: Mapped[str | None] = mapped_column(String(200))
    resolved_as_of: Mapped[date | None] = mapped_column(Date)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_run_id: Mapped[str | None] = mapped_column(String(36))
    resolution_notified_at: Mapped[datetime | None] = mapped_column(DateTime)


class QuarantinedRow(Base):
    """An input row the validation gate rejected, with why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    dataset: Mapped[str] = mapped_column(String(64))
    row_key: Mapped[str] = mapped_column(String(500))
    field: Mapped[str | None] = mapped_column(String(64))
    expectation: Mapped[str] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


#: A timestamp to the microsecond on every back end (MariaDB's DATETIME
#: drops the fraction unless asked): a cached row reads back as it was read.
PreciseDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class SourceWatermark(Base):
    """How far the demand cache of one source is known (docs/incremental.md).

    ``watermark``: the instant of the last complete read; the next read of the
    source starts from it (for the ERP, minus the re-read overlap).
    ``covered_from``: the cache holds every row of the source dated from this
    instant on (NULL: as far back as the source goes). ``origin``: what the
    rows were read from (the ERP's profile and URL without password): another
    origin makes the next run rebuild the cache instead of mixing two ERPs.
    """

    __tablename__ = "source_watermarks"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    covered_from: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    origin: Mapped[str | None] = mapped_column(String(512))
    rows: Mapped[int] = mapped_column(Integer, default=0)  # cached sales lines
    returns: Mapped[int] = mapped_column(Integer, default=0)  # cached returns
    updated_at: Mapped[datetime] = mapped_column(PreciseDateTime)
    #: the gate's verdicts (migration 0005): the fingerprint of its row-level
    #: checks, and which lines it validated: stamped up to ``verdicts_through``
    #: and ordered from ``verdicts_from`` on (docs/incremental.md)
    verdict_rules: Mapped[str | None] = mapped_column(String(64))
    verdicts_through: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    verdicts_from: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    #: the columnar copy of the source's closed months (migration 0006,
    #: replenish/store/sealed.py): it holds the lines ordered before
    #: ``sealed_before``; ``seal_id`` names its files (NULL: no valid copy)
    sealed_before: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    seal_id: Mapped[str | None] = mapped_column(String(64))


class SalesCacheLine(Base):
    """A ``sales_order_lines`` row of one source (contract columns and sizes of
    ``replenish.model.sales_order_lines``); ``source`` is 'erp' or a channel's
    name, so a channel's order line is distinct from an ERP line."""

    __tablename__ = "sales_cache"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sku: Mapped[str | None] = mapped_column(String(64))
    location_id: Mapped[str | None] = mapped_column(String(64))
    qty: Mapped[float | None] = mapped_column(Double)
    # NULL: a date the source had but that could not be read (the gate rejects it)
    ordered_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    status: Mapped[str | None] = mapped_column(String(16))
    loaded_at: Mapped[datetime] = mapped_column(PreciseDateTime)
    #: the row-level checks the line failed when the gate validated it
    #: (migration 0005; NULL: none, or not validated yet, see SourceWatermark)
    verdict: Mapped[str | None] = mapped_column(String(512))


class ReturnCacheLine(Base):
    """A ``returns`` row of one source (contract columns of ``replenish.model.returns``)."""

    __tablename__ = "returns_cache"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    returned_at: Mapped[datetime] = mapped_column(PreciseDateTime, primary_key=True)
    location_id: Mapped[str | None] = mapped_column(String(64))
    qty: Mapped[float | None] = mapped_column(Double)
    restockable: Mapped[bool | None] = mapped_column(Boolean)
    loaded_at: Mapped[datetime] = mapped_column(PreciseDateTime)


Index("ix_plans_run_id", Plan.run_id)
Index("ix_approval_decisions_po_key", ApprovalDecision.po_key)
Index("ix_quarantine_run_id", QuarantinedRow.run_id)
# the lifecycle reads open episodes per kind, the CLI a date's episodes per key
Index("ix_alert_state_status_kind", AlertState.status, AlertState.kind)
Index("ix_alert_state_alert_key", AlertState.alert_key)
# range reads and the re-read window's delete are per source and date
Index("ix_sales_cache_source_ordered_at", SalesCacheLine.source, SalesCacheLine.ordered_at)
Index("ix_sales_cache_sku", SalesCacheLine.sku)
Index("ix_returns_cache_source_returned_at", ReturnCacheLine.source, ReturnCacheLine.returned_at)
Index("ix_returns_cache_sku", ReturnCacheLine.sku)
