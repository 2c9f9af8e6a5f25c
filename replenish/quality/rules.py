"""The gate's expectation catalogue: what is checked, per dataset, declared once.

Every check is a :class:`Rule`. A rule knows the Great Expectations
expectation that evaluates it (:meth:`Rule.to_expectation`); the gate runs
those expectations through GX and takes the failing row positions from GX's
own ``unexpected_index_list``, so there is no second implementation of a check
that could drift from the GX one.

Row-level rules (a failing row is quarantined, the rest flows on):

* ``not_null``   — key columns and every value the contract requires
  (``nullable=False`` in :data:`replenish.model.ERP_METADATA`), except
  descriptive labels (:data:`LABEL_COLUMNS`). After :func:`replenish.model.coerce`
  a value that is not a number/date/boolean is missing, so this also rejects
  ``qty = "abc"``.
* ``unique``     — the table key (:data:`replenish.model.KEYS`); every row of a
  duplicated key is rejected, since which one is right cannot be told.
* ``range``      — quantities, costs and durations ``>= 0``; ``pack_size > 0``;
  ``products.service_level`` strictly between 0 and 1 (or empty).
* ``not_future`` — event dates before the end of the as-of day (``as_of`` of a
  stock row, ``ordered_at``, ``received_at``, ``returned_at``,
  ``stock_history.date``). ``expected_at`` may lie in the future.
* ``in_set``     — ``products.replenishment_mode`` and ``purchase_orders.status``.
* ``reference``  — a SKU / supplier / PO must exist among the *clean* rows of the
  referenced table, so a quarantined product also rejects its sales, stock,
  returns, supplier links and PO lines. GX evaluates it as
  ``expect_column_values_to_not_be_in_set`` against the referencing values that
  are absent from the clean referenced table (computed per run and passed as
  an expectation parameter): that set is small, where the full list of valid
  keys as ``value_set`` would cost GX seconds to copy and serialise.

Dataset-level rules (a failure is reported in ``GateResult.failures``):

* ``min_rows``   — ``suppliers``, ``products`` and ``stock_levels`` must not be
  empty (blocking).
* ``fresh``      — the newest stock ``as_of`` (among clean rows) is at most
  ``max_stock_age_days`` old (blocking); it is its own small suite,
  :data:`SNAPSHOT_SUITE`, run on the clean stock rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from replenish import model

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

RuleKind = Literal[
    "not_null", "unique", "range", "not_future", "in_set", "reference", "min_rows", "fresh"
]

#: Every purchase-order status the contract knows.
PO_STATUSES: Final = frozenset(model.OPEN_PO_STATUSES | {"received", "cancelled"})

#: Validation order: a referenced table is validated (and cleaned) before the
#: tables that reference it.
DATASETS: Final = (
    "suppliers",
    "products",
    "supplier_products",
    "purchase_orders",
    "purchase_order_lines",
    "stock_levels",
    "sales_order_lines",
    "returns",
    "stock_history",
    "promotions",
)

#: The stock snapshot: its row failures can block the run (see the gate).
STOCK_DATASET: Final = "stock_levels"
#: Tables without which nothing can be planned: empty (or fully rejected) blocks.
REQUIRED_CONTENT: Final = ("suppliers", "products", "stock_levels")
#: The GX suite of the dataset-level stock checks, run on the clean stock rows.
SNAPSHOT_SUITE: Final = "stock_levels_snapshot"

#: Contract columns that are NOT NULL in the ERP but only describe: a missing
#: name does not change a quantity, so it does not cost the row.
LABEL_COLUMNS: Final = frozenset({("suppliers", "name"), ("products", "name")})

_NON_NEGATIVE: Final[dict[str, tuple[str, ...]]] = {
    "suppliers": (
        "min_order_value",
        "order_processing_days",
        "transport_days",
        "receiving_days",
        "order_cost",
    ),
    "products": ("unit_cost", "unit_price"),
    "supplier_products": ("lead_time_days", "moq", "unit_price"),
    "stock_levels": ("on_hand", "allocated"),
    "purchase_order_lines": ("qty_ordered", "qty_received"),
    "sales_order_lines": ("qty",),
    "returns": ("qty",),
    "stock_history": ("on_hand",),
}
_POSITIVE: Final[dict[str, tuple[str, ...]]] = {"supplier_products": ("pack_size",)}
_OPEN_UNIT_INTERVAL: Final[dict[str, tuple[str, ...]]] = {"products": ("service_level",)}
_NOT_FUTURE: Final[dict[str, tuple[str, ...]]] = {
    "stock_levels": ("as_of",),
    "purchase_orders": ("ordered_at",),
    "purchase_order_lines": ("received_at",),
    "sales_order_lines": ("ordered_at",),
    "returns": ("returned_at",),
    "stock_history": ("date",),
}
_ENUMS: Final[dict[str, tuple[tuple[str, frozenset[str]], ...]]] = {
    "products": (("replenishment_mode", model.REPLENISHMENT_MODES),),
    "purchase_orders": (("status", PO_STATUSES),),
}
#: dataset -> (column, referenced dataset); the referenced column has the same
#: name and is the referenced table's key.
REFERENCES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "supplier_products": (("sku", "products"), ("supplier_id", "suppliers")),
    "purchase_orders": (("supplier_id", "suppliers"),),
    "purchase_order_lines": (("po_id", "purchase_orders"), ("sku", "products")),
    "stock_levels": (("sku", "products"),),
    "sales_order_lines": (("sku", "products"),),
    "returns": (("sku", "products"),),
    "stock_history": (("sku", "products"),),
    "promotions": (("sku", "products"),),
}

#: Expectation parameter: the first instant after the as-of day.
CUTOFF_PARAMETER: Final = "cutoff"
#: Expectation parameter: the oldest acceptable newest stock ``as_of``.
FRESH_AFTER_PARAMETER: Final = "fresh_after"


@dataclass(frozen=True)
class Rule:
    """One check of one dataset, evaluated by one GX expectation."""

    dataset: str
    kind: RuleKind
    columns: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    strict: bool = False
    values: tuple[str, ...] = ()
    target: str | None = None

    @property
    def id(self) -> str:
        """Stable identifier, stored in the GX expectation's ``meta["rule"]``."""
        return f"{self.dataset}:{self.kind}:{'+'.join(self.columns)}"

    @property
    def field(self) -> str:
        """The column (or comma-joined key columns) the rule looks at."""
        return ",".join(self.columns)

    @property
    def row_level(self) -> bool:
        return self.kind not in ("min_rows", "fresh")

    @property
    def parameter(self) -> str | None:
        """The name of the run-time expectation parameter the rule uses, if any."""
        if self.kind == "not_future":
            return CUTOFF_PARAMETER
        if self.kind == "fresh":
            return FRESH_AFTER_PARAMETER
        if self.kind == "reference":
            return f"unknown__{self.dataset}__{self.field}"
        return None

    def to_expectation(self) -> Expectation:
        """The GX expectation evaluating this rule (run-time values are
        ``{"$PARAMETER": ...}`` references, filled in by each validation run)."""
        import great_expectations as gx

        e = gx.expectations
        meta = {"rule": self.id}
        col = self.columns[0] if self.columns else ""
        param = {"$PARAMETER": self.parameter or ""}
        if self.kind == "not_null":
            return e.ExpectColumnValuesToNotBeNull(column=col, meta=meta)
        if self.kind == "unique":
            if len(self.columns) == 1:
                return e.ExpectColumnValuesToBeUnique(column=col, meta=meta)
            return e.ExpectCompoundColumnsToBeUnique(column_list=list(self.columns), meta=meta)
        if self.kind == "range":
            return e.ExpectColumnValuesToBeBetween(
                column=col,
                min_value=self.low,
                max_value=self.high,
                strict_min=self.strict,
                strict_max=self.strict,
                meta=meta,
            )
        if self.kind == "not_future":
            return e.ExpectColumnValuesToBeBetween(
                column=col, max_value=param, strict_max=True, meta=meta
            )
        if self.kind == "in_set":
            return e.ExpectColumnValuesToBeInSet(column=col, value_set=list(self.values), meta=meta)
        if self.kind == "reference":
            return e.ExpectColumnValuesToNotBeInSet(column=col, value_set=param, meta=meta)
        if self.kind == "min_rows":
            return e.ExpectTableRowCountToBeBetween(min_value=1, meta=meta)
        if self.kind == "fresh":
            return e.ExpectColumnMaxToBeBetween(column=col, min_value=param, meta=meta)
        raise ValueError(f"unknown rule kind {self.kind!r}")  # pragma: no cover


def _required_columns(dataset: str) -> tuple[str, ...]:
    table = model.ERP_METADATA.tables[dataset]
    keys = model.KEYS[dataset]
    others = tuple(
        c.name
        for c in table.columns
        if not c.nullable and c.name not in keys and (dataset, c.name) not in LABEL_COLUMNS
    )
    return keys + others


def dataset_rules(dataset: str) -> tuple[Rule, ...]:
    """The rules of ``dataset``'s GX suite, in evaluation order."""
    rules = [Rule(dataset, "not_null", (c,)) for c in _required_columns(dataset)]
    rules.append(Rule(dataset, "unique", model.KEYS[dataset]))
    rules += [Rule(dataset, "range", (c,), low=0.0) for c in _NON_NEGATIVE.get(dataset, ())]
    rules += [
        Rule(dataset, "range", (c,), low=0.0, strict=True) for c in _POSITIVE.get(dataset, ())
    ]
    rules += [
        Rule(dataset, "range", (c,), low=0.0, high=1.0, strict=True)
        for c in _OPEN_UNIT_INTERVAL.get(dataset, ())
    ]
    rules += [Rule(dataset, "not_future", (c,)) for c in _NOT_FUTURE.get(dataset, ())]
    rules += [
        Rule(dataset, "in_set", (c,), values=tuple(sorted(values)))
        for c, values in _ENUMS.get(dataset, ())
    ]
    rules += [
        Rule(dataset, "reference", (c,), target=target) for c, target in REFERENCES.get(dataset, ())
    ]
    if dataset in REQUIRED_CONTENT:
        rules.append(Rule(dataset, "min_rows"))
    return tuple(rules)


def snapshot_rules() -> tuple[Rule, ...]:
    """The dataset-level stock checks run on the clean stock rows."""
    return (Rule(STOCK_DATASET, "fresh", ("as_of",)),)


def suite_rules(suite: str) -> tuple[Rule, ...]:
    """The rules of the GX suite named ``suite`` (a dataset or :data:`SNAPSHOT_SUITE`)."""
    return snapshot_rules() if suite == SNAPSHOT_SUITE else dataset_rules(suite)
