"""The write workload of the crash and concurrency tests and of
``benchmarks/crash_stress.py``: what one nightly run writes to the store (its
plans, then its set of draft orders), the store's draft orders read back as
comparable values, and the invariants a crash or a race must never break.

The workload is the demo shop planned by the library (forecast and plan, as
``tasks/plan.py`` does); ``old`` drafts are those of an earlier run of the
same date that planned differently, so that a rerun updates, removes and
creates drafts (the longest transaction) instead of only inserting.

The ``*_worker`` functions are the bodies of child processes
(:func:`process_context`): they report their progress through a pipe as
markers, which lets a test kill them at a chosen point.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, delete, func, select
from sqlalchemy.engine import make_url

from replenish.demo import generate_demo
from replenish.forecast import forecast_demand
from replenish.forecast.demand import daily_demand
from replenish.orders import build_drafts
from replenish.policy.leadtime import learn_lead_times
from replenish.policy.plan import PlanSettings, build_plans
from replenish.store import Store
from replenish.store.models import DraftPurchaseOrder, DraftPurchaseOrderLine, Plan, Run

AS_OF = date(2026, 11, 20)
HEADER_FIELDS = (
    "po_key",
    "as_of",
    "supplier_id",
    "location_id",
    "status",
    "line_count",
    "total_value",
    "content_hash",
)
LINE_FIELDS = ("po_key", "sku", "line_no", "qty", "unit_price", "line_value")

#: A store's draft orders of one date: (headers, lines), each sorted tuples
#: of :data:`HEADER_FIELDS` / :data:`LINE_FIELDS` (run ids and timestamps left out).
DraftState = tuple[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...]]


@dataclass(frozen=True)
class Workload:
    as_of: date
    plans: pd.DataFrame
    headers: pd.DataFrame
    lines: pd.DataFrame
    old_headers: pd.DataFrame
    old_lines: pd.DataFrame
    alt_headers: pd.DataFrame
    alt_lines: pd.DataFrame
    suppliers: pd.DataFrame

    def half(self, part: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The drafts of a plan that orders every other ordered SKU of each
        supplier × location (``part`` 0: the first, third, ...; 1: the
        second, fourth, ...): the two halves want disjoint lines in the same
        orders."""
        plans = self.plans.copy()
        ordered = plans[plans["order_qty"].fillna(0) > 0].sort_values(
            ["supplier_id", "location_id", "sku"]
        )
        position = ordered.groupby(["supplier_id", "location_id"]).cumcount()
        plans.loc[position.index[position % 2 != part], "order_qty"] = 0.0
        return build_drafts(plans, self.suppliers, self.as_of)


@cache
def build_workload(n_skus: int = 120, days: int = 240, seed: int = 7) -> Workload:
    """The demo shop's plans and drafts for :data:`AS_OF`; those of an
    earlier, different plan of the same date (``old``: every other ordered
    quantity doubled, every fifth ordered SKU not ordered); and those of a
    third plan of the date (``alt``: every third quantity tripled, other SKUs
    not ordered), so that two runs racing over the old drafts want different
    lines in the same orders."""
    snap = generate_demo(AS_OF, seed=seed, n_skus=n_skus, days=days, with_defects=False)
    history = daily_demand(
        snap.sales_order_lines,
        AS_OF,
        history_days=days,
        stock_history=snap.stock_history,
        returns=snap.returns,
    )
    demand = forecast_demand(history, promotions=snap.promotions, as_of=AS_OF)
    lead_times = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    plans = build_plans(snap, demand, lead_times, AS_OF, PlanSettings())
    headers, lines = build_drafts(plans, snap.suppliers, AS_OF)

    old = plans.copy()
    ordered = old.index[old["order_qty"].fillna(0) > 0]
    old.loc[ordered[::2], "order_qty"] = old.loc[ordered[::2], "order_qty"] * 2
    old.loc[ordered[1::5], "order_qty"] = 0.0
    old_headers, old_lines = build_drafts(old, snap.suppliers, AS_OF)
    alt = plans.copy()
    alt.loc[ordered[::3], "order_qty"] = alt.loc[ordered[::3], "order_qty"] * 3
    alt.loc[ordered[2::4], "order_qty"] = 0.0
    alt_headers, alt_lines = build_drafts(alt, snap.suppliers, AS_OF)
    return Workload(
        AS_OF,
        plans,
        headers,
        lines,
        old_headers,
        old_lines,
        alt_headers,
        alt_lines,
        snap.suppliers,
    )


# ------------------------------------------------------------------ reading back


def store_engine(url: str) -> Engine:
    """A plain engine on the store (no migration, no retry: just reads)."""
    kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    return create_engine(url, **kwargs)


def draft_state(engine: Engine, as_of: date) -> DraftState:
    h, ln = DraftPurchaseOrder.__table__, DraftPurchaseOrderLine.__table__
    with engine.connect() as c:
        headers = c.execute(
            select(*(h.c[f] for f in HEADER_FIELDS)).where(h.c.as_of == as_of)
        ).all()
        lines = c.execute(
            select(*(ln.c[f] for f in LINE_FIELDS))
            .join(h, h.c.po_key == ln.c.po_key)
            .where(h.c.as_of == as_of)
        ).all()
    return (
        tuple(sorted(tuple(_rounded(v) for v in r) for r in headers)),
        tuple(sorted(tuple(_rounded(v) for v in r) for r in lines)),
    )


def _rounded(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def integrity_violations(engine: Engine) -> list[str]:
    """What no crash or race may ever leave: a draft whose stored lines are
    not the lines its header counts and sums (a half-written order), lines
    without their header, a header without lines."""
    h, ln = DraftPurchaseOrder.__table__, DraftPurchaseOrderLine.__table__
    out = []
    with engine.connect() as c:
        headers = {
            r.po_key: r for r in c.execute(select(h.c.po_key, h.c.line_count, h.c.total_value))
        }
        sums = {
            r.po_key: r
            for r in c.execute(
                select(
                    ln.c.po_key,
                    func.count().label("n"),
                    func.sum(ln.c.line_value).label("value"),
                ).group_by(ln.c.po_key)
            )
        }
    for key, head in headers.items():
        got = sums.get(key)
        if got is None:
            out.append(f"draft {key}: a header without lines")
        elif got.n != head.line_count:
            out.append(f"draft {key}: header counts {head.line_count} lines, {got.n} stored")
        elif abs(float(got.value) - float(head.total_value)) > 0.01 * max(got.n, 1):
            out.append(f"draft {key}: header total {head.total_value}, lines sum to {got.value}")
    out += [f"lines of {key} without their header" for key in sums.keys() - headers.keys()]
    return out


def plan_counts(engine: Engine) -> dict[str, int]:
    """Plan rows stored per run id."""
    with engine.connect() as c:
        rows = c.execute(select(Plan.run_id, func.count()).group_by(Plan.run_id)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def clear_date(engine: Engine, as_of: date) -> None:
    """Forget every run, plan and draft of ``as_of`` (a trial's fresh start)."""
    h, ln = DraftPurchaseOrder, DraftPurchaseOrderLine
    with engine.begin() as c:
        keys = select(h.po_key).where(h.as_of == as_of).scalar_subquery()
        c.execute(delete(ln).where(ln.po_key.in_(keys)))
        c.execute(delete(h).where(h.as_of == as_of))
        runs = select(Run.run_id).where(Run.as_of == as_of).scalar_subquery()
        c.execute(delete(Plan).where(Plan.run_id.in_(runs)))
        c.execute(delete(Run).where(Run.as_of == as_of))


# ------------------------------------------------------------------ the writers


def write_run(
    store_url: str,
    workload: Workload,
    marker: Callable[[str], None] = lambda m: None,
    *,
    old: bool = False,
    per_draft: bool = False,
) -> str:
    """What the nightly flow writes for one run, in its order: the run, its
    plans (one transaction), its drafts (one transaction), the run's end.
    ``old``: publish the earlier plan's drafts instead. ``per_draft``: a
    deliberately broken writer that publishes the set one more draft at a
    time, one transaction each, marker ``draft-<n>`` after each (what the
    crash checks must catch)."""
    store = Store(store_url, upgrade=False)
    try:
        marker("ready")
        run_id = store.start_run(
            workload.as_of, erp="sqlite:///erp.db", parameters={"old": old}, dry_run=False
        )
        marker("plans-begin")
        store.save_plans(run_id, workload.plans)
        marker("plans-end")
        headers, lines = (
            (workload.old_headers, workload.old_lines)
            if old
            else (workload.headers, workload.lines)
        )
        marker("publish-begin")
        if per_draft:
            for n in range(1, len(headers) + 1):
                part = headers.iloc[:n]
                part_lines = lines[lines["po_key"].isin(part["po_key"])]
                store.publish_drafts(workload.as_of, run_id, part, part_lines)
                marker(f"draft-{n}")
        else:
            store.publish_drafts(workload.as_of, run_id, headers, lines)
        marker("publish-end")
        store.finish_run(run_id, "completed", counts={})
        marker("done")
        return run_id
    finally:
        store.dispose()


def run_worker(
    conn: Connection, store_url: str, workload: Workload, per_draft: bool = False
) -> None:
    """Child process: :func:`write_run`, each step reported on ``conn``."""
    write_run(store_url, workload, conn.send, per_draft=per_draft)


def publish_worker(
    conn: Connection, store_url: str, as_of: date, headers: pd.DataFrame, lines: pd.DataFrame
) -> None:
    """Child process: publish one set of drafts; report ``("ok", counts)`` or
    ``("error", message)``."""
    store = Store(store_url, upgrade=False)
    try:
        conn.send("ready")
        run_id = store.start_run(as_of, erp="sqlite:///erp.db", parameters={}, dry_run=False)
        try:
            result = store.publish_drafts(as_of, run_id, headers, lines)
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        else:
            conn.send(("ok", result.counts()))
    finally:
        store.dispose()


def process_context() -> ForkServerContext:
    """Child processes forked from a server that has imported this module (and
    so pandas, SQLAlchemy and the store) once: a child starts in milliseconds
    instead of seconds, and is still a process of its own that ``kill -9``
    ends."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.reliability.workload"])
    return ctx


def with_application_name(url: str, name: str) -> str:
    """A PostgreSQL URL whose sessions show ``name`` in ``pg_stat_activity``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )
