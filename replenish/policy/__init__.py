"""Inventory policy: safety stock (cycle service, fill rate, discrete demand),
reorder point, order-up-to, EOQ, order rounding, supplier choice and order
days, learned lead times and the per-SKU replenishment plan.

Usage::

    lead_times = learn_lead_times(snapshot.purchase_orders, snapshot.purchase_order_lines,
                                  snapshot.supplier_products, snapshot.suppliers)
    plans = build_plans(snapshot, forecast, lead_times, as_of, PlanSettings())

docs/policy.md explains every policy, formula, setting and plan column.
"""

from replenish.policy.calendar import parse_order_days, supplier_calendar
from replenish.policy.discrete import DiscreteDemand
from replenish.policy.formulas import (
    abc_classes,
    eoq,
    expected_shortage,
    fill_rate_for_safety_factor,
    inventory_position,
    k_for_fill_rate,
    newsvendor_quantity,
    normal_loss,
    order_up_to,
    protection_demand_std,
    reorder_point,
    round_order_qty,
    safety_stock,
    z_for_service_level,
)
from replenish.policy.leadtime import (
    LEAD_TIME_COLUMNS,
    declared_lead_times,
    learn_lead_times,
    supplier_on_time,
)
from replenish.policy.plan import (
    DEFAULT_SETTINGS,
    PLAN_COLUMNS,
    POLICY_CONTINUOUS,
    POLICY_JIT,
    POLICY_PERIODIC,
    PlanSettings,
    build_plans,
)
from replenish.policy.suppliers import choose_suppliers
from replenish.policy.targets import cell_targets, suggest_mode

__all__ = [
    "DEFAULT_SETTINGS",
    "LEAD_TIME_COLUMNS",
    "PLAN_COLUMNS",
    "POLICY_CONTINUOUS",
    "POLICY_JIT",
    "POLICY_PERIODIC",
    "DiscreteDemand",
    "PlanSettings",
    "abc_classes",
    "build_plans",
    "cell_targets",
    "choose_suppliers",
    "declared_lead_times",
    "eoq",
    "expected_shortage",
    "fill_rate_for_safety_factor",
    "inventory_position",
    "k_for_fill_rate",
    "learn_lead_times",
    "newsvendor_quantity",
    "normal_loss",
    "order_up_to",
    "parse_order_days",
    "protection_demand_std",
    "reorder_point",
    "round_order_qty",
    "safety_stock",
    "suggest_mode",
    "supplier_calendar",
    "supplier_on_time",
    "z_for_service_level",
]
