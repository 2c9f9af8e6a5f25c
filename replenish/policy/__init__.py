"""Inventory policy: safety stock, reorder point, order-up-to, EOQ, order
rounding, learned lead times and the per-SKU replenishment plan.

Usage::

    lead_times = learn_lead_times(snapshot.purchase_orders, snapshot.purchase_order_lines,
                                  snapshot.supplier_products, snapshot.suppliers)
    plans = build_plans(snapshot, forecast, lead_times, as_of, PlanSettings())
"""

from replenish.policy.formulas import (
    abc_classes,
    eoq,
    inventory_position,
    order_up_to,
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
from replenish.policy.plan import DEFAULT_SETTINGS, PLAN_COLUMNS, PlanSettings, build_plans

__all__ = [
    "DEFAULT_SETTINGS",
    "LEAD_TIME_COLUMNS",
    "PLAN_COLUMNS",
    "PlanSettings",
    "abc_classes",
    "build_plans",
    "declared_lead_times",
    "eoq",
    "inventory_position",
    "learn_lead_times",
    "order_up_to",
    "reorder_point",
    "round_order_qty",
    "safety_stock",
    "supplier_on_time",
    "z_for_service_level",
]
