"""Approved draft orders pushed to the ERP: Odoo (JSON-RPC) or ERPNext (REST).

Usage::

    from replenish.orders.push import push_orders

    report = push_orders("odoo", store.orders(run_id=run_id), plans=store.plans(run_id))
    print(report.text())          # per order: created / updated / unchanged / skipped / failed
    report.erp_ids()              # {po_key: the ERP's id}, to record in the store

Connection settings come from the environment (``REPLENISH_ODOO_*``,
``REPLENISH_ERPNEXT_*``, see docs/publishing.md) or an explicit
:class:`OdooSettings` / :class:`ErpNextSettings`.

Only orders whose ``status`` is in ``statuses`` (default: ``approved``) are
pushed; the others are listed in ``report.held``. An order whose lines are
invalid (a quantity that is not > 0, ...) is reported ``failed`` with the
line and the value, the others go on. Pushing is idempotent: each order
carries its ``po_key`` into the ERP and is looked up by it first, so a
rerun, a retry or a second trigger updates the ERP's draft instead of adding
one (the rules per target are in their module docstrings). A create left
without an answer is looked up again only after ``in_doubt_wait`` seconds,
and every push ends with a sweep that removes a second draft of a key from
the ERP (``report.duplicates``) or, when it cannot, fails that order naming
both ERP ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Literal

import httpx
import pandas as pd

from replenish.errors import ConfigurationError
from replenish.orders.documents import OrderDocument, order_documents
from replenish.orders.push.core import (
    LOST_ANSWER,
    MAX_IN_DOUBT_WAIT,
    Duplicate,
    ErpOrder,
    ErpRejected,
    OrderOutcome,
    OrderPusher,
    PushAuthError,
    PushError,
    PushFailed,
    PushReport,
    PushSettings,
    PushUnavailable,
)
from replenish.orders.push.erpnext import ErpNextPusher, ErpNextSettings, FrappeError
from replenish.orders.push.odoo import OdooFault, OdooPusher, OdooSettings

__all__ = [
    "LOST_ANSWER",
    "MAX_IN_DOUBT_WAIT",
    "PUSHABLE_STATUSES",
    "TARGETS",
    "Duplicate",
    "ErpNextPusher",
    "ErpNextSettings",
    "ErpOrder",
    "ErpRejected",
    "FrappeError",
    "OdooFault",
    "OdooPusher",
    "OdooSettings",
    "OrderDocument",
    "OrderOutcome",
    "OrderPusher",
    "PushAuthError",
    "PushError",
    "PushFailed",
    "PushReport",
    "PushSettings",
    "PushUnavailable",
    "make_pusher",
    "push_orders",
]

Target = Literal["odoo", "erpnext"]
TARGETS: tuple[Target, ...] = ("odoo", "erpnext")
#: Draft statuses that may be pushed by default (set by the approval step).
PUSHABLE_STATUSES: tuple[str, ...] = ("approved",)


def make_pusher(
    target: str,
    settings: PushSettings | None = None,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> OrderPusher:
    """The pusher of ``target`` (``odoo`` or ``erpnext``), configured by
    ``settings`` or, when None, from the environment.

    Raises:
        ConfigurationError: an unknown target, settings of another target, or
            a missing setting (named).
    """
    if target == "odoo":
        if settings is None:
            settings = OdooSettings()
        if not isinstance(settings, OdooSettings):
            raise ConfigurationError("push target odoo needs OdooSettings")
        return OdooPusher(settings, client=client, sleep=sleep)
    if target == "erpnext":
        if settings is None:
            settings = ErpNextSettings()
        if not isinstance(settings, ErpNextSettings):
            raise ConfigurationError("push target erpnext needs ErpNextSettings")
        return ErpNextPusher(settings, client=client, sleep=sleep)
    raise ConfigurationError(f"push target: expected one of {', '.join(TARGETS)}, got {target!r}")


def push_orders(
    target: str | OrderPusher,
    orders: pd.DataFrame,
    *,
    settings: PushSettings | None = None,
    plans: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    statuses: Collection[str] | None = PUSHABLE_STATUSES,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """Push the approved draft orders of ``orders`` to the ERP.

    Args:
        target: ``"odoo"``, ``"erpnext"``, or a ready :class:`OrderPusher`.
        orders: draft order lines as ``Store.orders`` returns them (one row
            per line, header fields repeated; an ``erp_id`` column, when the
            store records one, is used to find an order whose key was edited
            away in the ERP).
        settings: the target's connection settings (default: environment).
        plans: the run's plans, for expected delivery dates (``lead_time_mean``).
        products: the contract's products, for descriptions.
        statuses: draft statuses to push; None: every order.
        client: an ``httpx.Client`` to use (not closed here).
        sleep: how to wait between retries (tests pass a no-op).

    Returns:
        The :class:`PushReport`: per ``po_key`` what was done and the ERP's id.

    Raises:
        ConfigurationError: a setting is missing.
        PushAuthError: the ERP refused the credentials.
        PushUnavailable: the ERP stayed unreachable (``.report``: what was done).
        PushError: the ERP's answers are not its protocol.
    """
    frame = orders
    held: list[str] = []
    if statuses is not None and "status" in orders.columns and len(orders):
        pushable = orders["status"].astype("string").isin(list(statuses)).fillna(False)
        held = sorted(set(orders.loc[~pushable, "po_key"].astype(str)))
        frame = orders[pushable.to_numpy(dtype=bool)]
    documents, rejected = order_documents(frame, plans=plans, products=products)
    pusher = (
        make_pusher(target, settings, client=client, sleep=sleep)
        if isinstance(target, str)
        else target
    )

    def complete(report: PushReport) -> PushReport:
        report.held = held
        report.outcomes += [OrderOutcome(k, "failed", reason=why) for k, why in rejected.items()]
        report.outcomes.sort(key=lambda o: o.po_key)
        return report

    try:
        return complete(pusher.push(documents))
    except PushUnavailable as e:
        e.report = complete(e.report or PushReport(pusher.target))
        raise
