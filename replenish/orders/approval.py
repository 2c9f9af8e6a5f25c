"""Approval of draft orders: which orders need a person, the form they fill
in, and recording what they decided (docs/publishing.md, "Approval").

Rule (flow parameters ``approval_threshold`` and ``auto_approve_below``):

* an order whose value is **above** ``approval_threshold`` waits for a
  person: the run pauses in Prefect with a form (:class:`ApprovalForm`) —
  approve, reject or hold each order, change line quantities, sign with a
  name; ``replenish approve`` does the same from a shell;
* an order at or below it is approved automatically (``decided_by`` =
  ``auto``) when ``auto_approve_below`` is set, and left a draft otherwise;
* ``approval_threshold`` None: no order waits (all count as below).

Only orders still in status ``draft`` take part; approved, rejected and
superseded ones are left as they are. Nothing here imports Prefect: the flow
wraps :class:`ApprovalForm` into a Prefect ``RunInput``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from replenish.errors import ConfigurationError, StoreError
from replenish.store import Decision, Store

__all__ = [
    "AUTO",
    "ApprovalForm",
    "ApprovalOutcome",
    "OrderDecision",
    "Routing",
    "apply_form",
    "approval_markdown",
    "auto_approve",
    "initial_decisions",
    "parse_quantities",
    "route",
]

#: ``decided_by`` and ``via`` of an automatic approval.
AUTO = "auto"
#: Lines listed per order in the form's description (the rest: ``replenish orders``).
MAX_LINES_SHOWN = 40


class OrderDecision(BaseModel):
    """The decision on one order in the approval form."""

    po_key: str = Field(description="The order: planning date/supplier/location")
    decision: Literal["approve", "reject", "hold"] = Field(
        "approve",
        description="approve: order it; reject: do not order; hold: leave it a draft for later",
    )
    quantities: dict[str, float] = Field(
        default_factory=dict,
        description="Quantity per SKU, prefilled with the plan's: change one to adjust the "
        "line, 0 takes the line out",
    )


class ApprovalForm(BaseModel):
    """What an approver submits: a name and one decision per order."""

    approver: str = Field(
        description="Your name: it is recorded with every decision", min_length=1, max_length=100
    )
    orders: list[OrderDecision] = Field(
        default_factory=list, description="One entry per order waiting for approval"
    )
    note: str = Field("", description="Optional: why (kept with the decisions)")


@dataclass(frozen=True)
class Routing:
    """Which draft orders of a date need a person, which are approved
    automatically, which stay drafts (``po_key`` lists)."""

    needs_approval: list[str] = field(default_factory=list)
    auto: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def route(headers: pd.DataFrame, threshold: float | None, auto_approve_below: bool) -> Routing:
    """Split the ``draft`` orders of ``headers`` (``Store.drafts``: po_key,
    status, total_value) by the rule of the module docstring."""
    if threshold is not None and not (isinstance(threshold, int | float) and threshold >= 0):
        raise ConfigurationError(f"approval_threshold must be a number >= 0, got {threshold!r}")
    if headers.empty:
        return Routing()
    drafts = headers[headers["status"] == "draft"].sort_values("po_key")
    value = pd.to_numeric(drafts["total_value"], errors="coerce").fillna(math.inf)
    above = value > threshold if threshold is not None else pd.Series(False, index=drafts.index)
    keys = drafts["po_key"].astype(str)
    below = keys[~above].tolist()
    return Routing(
        needs_approval=keys[above].tolist(),
        auto=below if auto_approve_below else [],
        left=[] if auto_approve_below else below,
    )


def auto_approve(store: Store, keys: Sequence[str], run_id: str | None) -> list[Decision]:
    """Approve ``keys`` as ``auto`` (below the threshold)."""
    note = "at or below the approval threshold"
    return [store.decide(key, "approved", AUTO, via=AUTO, run_id=run_id, note=note) for key in keys]


def initial_decisions(lines: pd.DataFrame, keys: Sequence[str]) -> list[OrderDecision]:
    """The form's prefilled entries: approve each order of ``keys`` with the
    quantities of its lines (``Store.orders`` frame)."""
    out = []
    for key in keys:
        mine = lines[lines["po_key"] == key].sort_values("line_no")
        qty = {str(s): float(q) for s, q in zip(mine["sku"], mine["qty"], strict=True)}
        out.append(OrderDecision(po_key=key, quantities=qty))
    return out


def _cell(value: Any, fmt: str = "{:,.2f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int | float):
        return fmt.format(value)
    return str(value).replace("|", "/").replace("\n", " ")


def approval_markdown(
    headers: pd.DataFrame, lines: pd.DataFrame, keys: Sequence[str], threshold: float | None
) -> str:
    """The description shown above the approval form: per order its value
    and lines with the figures behind each quantity."""
    parts = [
        f"**{len(keys)} draft order(s) above the approval threshold "
        f"{_cell(threshold)} wait for a decision.**",
        "",
        "For each order choose *approve*, *reject* or *hold* (leave it a draft: decide "
        "later with `replenish approve`). To adjust a line change its quantity (0 takes the "
        "line out). Sign with your name.",
        "",
    ]
    by_key = headers.set_index("po_key")
    for key in keys:
        h = {str(k): v for k, v in by_key.loc[key].to_dict().items()}
        mine = lines[lines["po_key"] == key].sort_values("line_no")
        parts += [
            f"### {key}",
            "",
            f"{h['supplier_id']} → {h['location_id']}: {int(h['line_count'])} line(s), "
            f"value **{_cell(float(h['total_value']))} {h.get('currency') or ''}**"
            + (" (below the supplier minimum)" if bool(h.get("below_minimum")) else ""),
            "",
            "| SKU | qty | unit price | value | IP | ROP | SS | d/day | L days | why |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in mine.head(MAX_LINES_SHOWN).to_dict("records"):
            raw = r.get("details")
            d: dict[str, Any] = raw if isinstance(raw, dict) else {}
            why = str(d.get("reason") or r.get("explanation") or "")
            why = why if len(why) <= 160 else why[:157] + "…"
            parts.append(
                "| "
                + " | ".join(
                    [
                        _cell(r["sku"]),
                        _cell(float(r["qty"]), "{:,.0f}"),
                        _cell(float(r["unit_price"])),
                        _cell(float(r["line_value"])),
                        _cell(d.get("inventory_position"), "{:,.0f}"),
                        _cell(d.get("reorder_point"), "{:,.1f}"),
                        _cell(d.get("safety_stock"), "{:,.1f}"),
                        _cell(d.get("demand_mean"), "{:,.1f}"),
                        _cell(d.get("lead_time_mean"), "{:,.1f}"),
                        _cell(why),
                    ]
                )
                + " |"
            )
        if len(mine) > MAX_LINES_SHOWN:
            parts.append(
                f"\n… and {len(mine) - MAX_LINES_SHOWN} more line(s): `replenish orders` shows all."
            )
        parts.append("")
    return "\n".join(parts)


@dataclass
class ApprovalOutcome:
    """What an approval step did, per ``po_key``.

    ``held``: left drafts on purpose (decision *hold*, or left out of the
    form); ``failed``: not decided because the entry was invalid (unknown
    SKU, negative quantity, ...), with why; ``timed_out``: nobody answered
    before the timeout, every waiting order stays a draft.
    """

    approver: str | None = None
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    auto: list[str] = field(default_factory=list)
    timed_out: bool = False

    def counts(self) -> dict[str, Any]:
        return {
            "approver": self.approver,
            "approved": len(self.approved),
            "auto_approved": len(self.auto),
            "rejected": len(self.rejected),
            "adjusted": len(self.adjusted),
            "held": len(self.held),
            "failed": dict(self.failed),
            "timed_out": self.timed_out,
        }

    def text(self) -> str:
        if self.timed_out:
            return (
                f"approval timed out: {len(self.held)} order(s) left as drafts "
                f"({', '.join(self.held)}); decide with `replenish approve`"
            )
        parts = [
            f"{len(x)} {name}"
            for name, x in (
                ("approved", self.approved),
                ("auto-approved", self.auto),
                ("rejected", self.rejected),
                ("held", self.held),
                ("failed", self.failed),
            )
            if x
        ]
        who = f" by {self.approver}" if self.approver else ""
        return f"approval{who}: " + (", ".join(parts) or "nothing to decide")


def apply_form(
    store: Store,
    form: ApprovalForm,
    waiting: Sequence[str],
    *,
    run_id: str | None,
    via: str = "prefect-ui",
) -> ApprovalOutcome:
    """Record the decisions of ``form`` on the orders ``waiting`` for them.

    An order of ``waiting`` missing from the form, or marked *hold*, stays a
    draft; an entry for an order not waiting is ignored (it is reported in
    ``failed``); an entry the store refuses (unknown SKU, a quantity that is
    not >= 0, the order decided meanwhile) is reported in ``failed`` and the
    other orders are still decided.
    """
    outcome = ApprovalOutcome(approver=form.approver.strip())
    entries: dict[str, OrderDecision] = {}
    for entry in form.orders:
        if entry.po_key not in waiting:
            outcome.failed[entry.po_key] = "not waiting for approval in this run"
            continue
        entries[entry.po_key] = entry
    note = form.note.strip() or None
    for key in waiting:
        found = entries.get(key)
        if found is None or found.decision == "hold":
            outcome.held.append(key)
            continue
        try:
            if found.decision == "approve":
                decision = store.decide(
                    key,
                    "approved",
                    form.approver,
                    via=via,
                    run_id=run_id,
                    quantities=found.quantities,
                    note=note,
                )
                outcome.approved.append(key)
                if decision.changes:
                    outcome.adjusted.append(key)
            else:
                store.decide(key, "rejected", form.approver, via=via, run_id=run_id, note=note)
                outcome.rejected.append(key)
        except StoreError as e:
            outcome.failed[key] = str(e)
    return outcome


def parse_quantities(values: Sequence[str] | None) -> dict[str, float]:
    """``["SKU-1=12", "SKU-2=0"]`` → ``{"SKU-1": 12.0, "SKU-2": 0.0}``.

    Raises:
        ConfigurationError: an entry is not ``SKU=number`` or repeats a SKU.
    """
    out: dict[str, float] = {}
    for value in values or []:
        sku, sep, qty = value.partition("=")
        sku = sku.strip()
        try:
            number = float(qty)
        except ValueError:
            number = math.nan
        if not sep or not sku or not math.isfinite(number):
            raise ConfigurationError(
                f"--qty: expected SKU=QUANTITY (e.g. SKU-0042=120), got {value!r}"
            )
        if sku in out:
            raise ConfigurationError(f"--qty: SKU {sku} given twice")
        out[sku] = number
    return out
