"""The gate's expectation catalogue: what is checked, per dataset, declared once.

Every check is a :class:`Rule`. A rule knows the Great Expectations
expectation that evaluates it (:meth:`Rule.to_expectation`); the gate runs
those expectations through GX and takes the failing row positions from GX's
own ``unexpected_index_list``, so there is no second implementation of a check
that could drift from the GX one. ``docs/data-quality.md`` lists every rule
for users.

A rule's ``severity`` says what happens to a failing row: ``"reject"`` (the
row is quarantined and left out of the clean snapshot) or ``"warn"`` (the row
is kept and listed in ``GateResult.warnings``; GX severity ``warning``).

Row-level rules:

* ``not_null``   — key columns and every value the contract requires
  (``nullable=False`` in :data:`replenish.model.ERP_METADATA`), except
  descriptive labels (:data:`LABEL_COLUMNS`). After :func:`replenish.model.coerce`
  a value that is not a number/date/boolean is missing, so this also rejects
  ``qty = "abc"``.
* ``unique``     — the row key (:data:`replenish.model.ROW_KEYS`: the table key,
  sales lines per channel); every row of a duplicated key is rejected, since
  which one is right cannot be told.
* ``range``      — quantities, costs and durations ``>= 0`` (so negative stock,
  ``on_hand < 0``, is rejected); ``pack_size > 0`` and
  ``supplier_products.lead_time_days > 0`` (a lead time of 0 or less is an
  anomaly: nothing arrives the moment it is ordered); ``products.service_level``
  strictly between 0 and 1 (or empty).
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
  keys as ``value_set`` would cost GX seconds to copy and serialise. The
  ``location_id`` of purchase orders, sales, returns, stock history and
  promotions must be a location of the clean stock snapshot (``warn``: the
  contract has no locations table, so an unknown location may be a typo or a
  location that stocks nothing yet; its rows are kept and flagged).
* ``spike``      — demand spikes (:mod:`replenish.quality.anomalies`): a sales
  line whose quantity lies more than ``k`` standard deviations above the mean
  daily demand of its SKU × location. Evaluated in its own suite,
  :data:`SPIKE_SUITE`, on the lines that passed the other sales checks, as
  ``expect_column_values_to_be_between`` on the line's score
  (:data:`SPIKE_SCORE_COLUMN`) with ``max_value = k``.
* missing cost   — an *active* product without a ``unit_cost`` (empty or 0):
  ``warn`` (``not_null`` and ``range > 0`` with the GX row condition
  ``active == True``). Quarantining the product would also reject its stock,
  sales and supplier links and so silently stop ordering it; the plan values
  it at ``unit_price`` instead, and has no EOQ without either.

Dataset-level rules (a failure is reported in ``GateResult.failures``):

* ``min_rows``   — ``suppliers``, ``products`` and ``stock_levels`` must not be
  empty (blocking).
* ``fresh``      — every location's newest stock ``as_of`` (among clean rows) is
  at most ``max_stock_age_days`` old (blocking); it is its own small suite,
  :data:`SNAPSHOT_SUITE`, run on one row per location (``location_id``,
  newest ``as_of``), so GX names the stale locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from replenish import model

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

RuleKind = Literal[
    "not_null",
    "unique",
    "range",
    "not_future",
    "in_set",
    "reference",
    "spike",
    "min_rows",
    "fresh",
]
Severity = Literal["reject", "warn"]

#: Every purchase-order status the contract knows.
PO_STATUSES: Final = frozenset(model.OPEN_PO_STATUSES | {"received", "cancelled"})

#: Validation order: a referenced table is validated (and cleaned) before the
#: tables that reference it.
#: ``stock_levels`` comes before the tables whose ``location_id`` it vouches
#: for, ``promotions`` before the sales whose spikes it explains.
DATASETS: Final = (
    "suppliers",
    "products",
    "supplier_products",
    "stock_levels",
    "purchase_orders",
    "purchase_order_lines",
    "promotions",
    "sales_order_lines",
    "returns",
    "stock_history",
)

#: The stock snapshot: its row failures can block the run (see the gate).
STOCK_DATASET: Final = "stock_levels"
#: Tables without which nothing can be planned: empty (or fully rejected) blocks.
REQUIRED_CONTENT: Final = ("suppliers", "products", "stock_levels")
#: The GX suite of the dataset-level stock checks, run on one row per location
#: of the clean stock rows (``location_id``, newest ``as_of``).
SNAPSHOT_SUITE: Final = "stock_levels_snapshot"
#: The sales lines checked for demand spikes.
SALES_DATASET: Final = "sales_order_lines"
#: The GX suite of the demand-spike rule, run on the clean sales lines.
SPIKE_SUITE: Final = "sales_order_lines_spikes"
#: The column of the spike suite's frame GX checks: the line's quantity in
#: standard deviations above its series' mean daily demand (empty: not tested).
SPIKE_SCORE_COLUMN: Final = "qty_sigmas"
#: Pseudo-dataset of the location references: the locations of the clean stock rows.
LOCATIONS: Final = "locations"

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
    "supplier_products": ("moq", "unit_price"),
    "stock_levels": ("on_hand", "allocated"),
    "purchase_order_lines": ("qty_ordered", "qty_received"),
    "sales_order_lines": ("qty",),
    "returns": ("qty",),
    "stock_history": ("on_hand",),
}
_POSITIVE: Final[dict[str, tuple[str, ...]]] = {
    "supplier_products": ("lead_time_days", "pack_size"),
}
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
#: dataset -> its ``location_id`` is checked against the stock snapshot's locations (warn).
LOCATION_REFERENCES: Final = (
    "purchase_orders",
    "promotions",
    "sales_order_lines",
    "returns",
    "stock_history",
)
#: GX row condition (pandas) of the missing-cost warning.
ACTIVE_PRODUCTS: Final = "active == True"

_MISSING_COST: Final = (
    "an active product without a cost has no stock value and no EOQ: the plan values it at "
    "unit_price, and computes no EOQ without either; set its cost in the ERP"
)

#: Why a rule exists, where the generic wording does not say it: the GX
#: expectation's ``notes`` (shown in Data Docs) and the end of the reasons.
HINTS: Final[dict[str, str]] = {
    "stock_levels:range:on_hand": (
        "negative stock: a receipt, a return or a stock count is probably missing in the ERP"
    ),
    "stock_levels:range:allocated": "a negative allocation cannot be real",
    "supplier_products:range:lead_time_days": (
        "a lead time of 0 or less is an anomaly: nothing arrives the moment it is ordered; "
        "set the supplier's lead time for this SKU in the ERP"
    ),
    "products:not_null:unit_cost:warn": _MISSING_COST,
    "products:range:unit_cost:warn": _MISSING_COST,
    "sales_order_lines:spike:qty": (
        "a typing error, or a real bulk order: fix the line in the ERP, or release the "
        "order (gate setting spike_released_orders) or its channel (spike_exempt_channels)"
    ),
}

#: Expectation parameter: the first instant after the as-of day.
CUTOFF_PARAMETER: Final = "cutoff"
#: Expectation parameter: the oldest acceptable newest stock ``as_of``.
FRESH_AFTER_PARAMETER: Final = "fresh_after"
#: Expectation parameter: ``k``, the spike threshold in standard deviations.
SPIKE_K_PARAMETER: Final = "spike_k"


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
    severity: Severity = "reject"
    #: GX row condition (pandas ``DataFrame.query`` syntax): rows it selects are checked
    condition: str | None = None

    @property
    def id(self) -> str:
        """Stable identifier, stored in the GX expectation's ``meta["rule"]``."""
        base = f"{self.dataset}:{self.kind}:{'+'.join(self.columns)}"
        return base + ":warn" if self.severity == "warn" else base

    @property
    def field(self) -> str:
        """The column (or comma-joined key columns) the rule looks at."""
        return ",".join(self.columns)

    @property
    def row_level(self) -> bool:
        """True when a failure concerns rows (quarantined or flagged), not the dataset."""
        return self.kind not in ("min_rows", "fresh")

    @property
    def lists_rows(self) -> bool:
        """True when GX lists the failing rows (every map expectation)."""
        return self.kind != "min_rows"

    @property
    def hint(self) -> str:
        """Why the rule exists, where the generic wording does not say it ('' if none)."""
        return HINTS.get(self.id, "")

    @property
    def parameter(self) -> str | None:
        """The name of the run-time expectation parameter the rule uses, if any."""
        if self.kind == "not_future":
            return CUTOFF_PARAMETER
        if self.kind == "fresh":
            return FRESH_AFTER_PARAMETER
        if self.kind == "spike":
            return SPIKE_K_PARAMETER
        if self.kind == "reference":
            return f"unknown__{self.dataset}__{self.field}"
        return None

    def to_expectation(self) -> Expectation:
        """The GX expectation evaluating this rule (run-time values are
        ``{"$PARAMETER": ...}`` references, filled in by each validation run)."""
        import great_expectations as gx

        e = gx.expectations
        common: dict[str, Any] = {"meta": {"rule": self.id}}
        if self.severity == "warn":
            common["severity"] = "warning"
        if self.hint:
            common["notes"] = self.hint
        if self.condition:
            common["row_condition"] = self.condition
            common["condition_parser"] = "pandas"
        col = self.columns[0] if self.columns else ""
        param = {"$PARAMETER": self.parameter or ""}
        if self.kind == "not_null":
            return e.ExpectColumnValuesToNotBeNull(column=col, **common)
        if self.kind == "unique":
            if len(self.columns) == 1:
                return e.ExpectColumnValuesToBeUnique(column=col, **common)
            return e.ExpectCompoundColumnsToBeUnique(column_list=list(self.columns), **common)
        if self.kind == "range":
            return e.ExpectColumnValuesToBeBetween(
                column=col,
                min_value=self.low,
                max_value=self.high,
                strict_min=self.strict,
                strict_max=self.strict,
                **common,
            )
        if self.kind == "not_future":
            return e.ExpectColumnValuesToBeBetween(
                column=col, max_value=param, strict_max=True, **common
            )
        if self.kind == "in_set":
            return e.ExpectColumnValuesToBeInSet(column=col, value_set=list(self.values), **common)
        if self.kind == "reference":
            return e.ExpectColumnValuesToNotBeInSet(column=col, value_set=param, **common)
        if self.kind == "spike":
            return e.ExpectColumnValuesToBeBetween(
                column=SPIKE_SCORE_COLUMN, max_value=param, **common
            )
        if self.kind == "min_rows":
            return e.ExpectTableRowCountToBeBetween(min_value=1, **common)
        if self.kind == "fresh":
            return e.ExpectColumnValuesToBeBetween(column=col, min_value=param, **common)
        raise ValueError(f"unknown rule kind {self.kind!r}")  # pragma: no cover


def _required_columns(dataset: str) -> tuple[str, ...]:
    table = model.ERP_METADATA.tables[dataset]
    keys = model.ROW_KEYS[dataset]
    others = tuple(
        c.name
        for c in table.columns
        if not c.nullable and c.name not in keys and (dataset, c.name) not in LABEL_COLUMNS
    )
    return keys + others


def dataset_rules(dataset: str) -> tuple[Rule, ...]:
    """The rules of ``dataset``'s GX suite, in evaluation order."""
    rules = [Rule(dataset, "not_null", (c,)) for c in _required_columns(dataset)]
    rules.append(Rule(dataset, "unique", model.ROW_KEYS[dataset]))
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
    if dataset in LOCATION_REFERENCES:
        rules.append(
            Rule(dataset, "reference", ("location_id",), target=LOCATIONS, severity="warn")
        )
    if dataset == "products":
        rules += [
            Rule(dataset, "not_null", ("unit_cost",), severity="warn", condition=ACTIVE_PRODUCTS),
            Rule(
                dataset,
                "range",
                ("unit_cost",),
                low=0.0,
                strict=True,
                severity="warn",
                condition=ACTIVE_PRODUCTS,
            ),
        ]
    if dataset in REQUIRED_CONTENT:
        rules.append(Rule(dataset, "min_rows"))
    return tuple(rules)


def snapshot_rules() -> tuple[Rule, ...]:
    """The dataset-level stock checks, run on one row per location of the clean stock."""
    return (Rule(STOCK_DATASET, "fresh", ("as_of",)),)


def spike_rules() -> tuple[Rule, ...]:
    """The demand-spike check, run on the clean sales lines and their scores."""
    return (Rule(SALES_DATASET, "spike", ("qty",)),)


#: Suites that are not one dataset's own.
_EXTRA_SUITES: Final = {SNAPSHOT_SUITE: snapshot_rules, SPIKE_SUITE: spike_rules}


def suite_rules(suite: str) -> tuple[Rule, ...]:
    """The rules of the GX suite named ``suite`` (a dataset, :data:`SNAPSHOT_SUITE`
    or :data:`SPIKE_SUITE`)."""
    extra = _EXTRA_SUITES.get(suite)
    return extra() if extra else dataset_rules(suite)


def all_rules() -> tuple[Rule, ...]:
    """Every rule of every suite, in validation order (for documentation)."""
    out: list[Rule] = []
    for dataset in DATASETS:
        out += dataset_rules(dataset)
        if dataset == STOCK_DATASET:
            out += snapshot_rules()
        if dataset == SALES_DATASET:
            out += spike_rules()
    return tuple(out)
