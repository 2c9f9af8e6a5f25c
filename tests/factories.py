"""Tiny, hand-written contract data for tests whose numbers must be checkable by eye."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from replenish import model


def tiny_snapshot(as_of: date) -> model.ErpSnapshot:
    """Two suppliers, three SKUs, one location, 60 days of sales.

    * ``A-1`` sells 10/day, 25 on hand, supplier S1 (5 days) → far below its
      reorder point: must be ordered.
    * ``B-2`` sells 1/day, 500 on hand → no order.
    * ``C-3`` is a 'jit' item with one open customer order of 4 and no stock.
    """
    d0 = datetime.combine(as_of, datetime.min.time())
    days = [d0 - timedelta(days=i) for i in range(60, 0, -1)]
    sales = []
    for n, day in enumerate(days, start=1):
        sales.append(
            {
                "order_id": f"SO-{n}",
                "line_no": 1,
                "sku": "A-1",
                "location_id": "WH1",
                "channel": "web",
                "qty": 10.0,
                "ordered_at": day + timedelta(hours=10),
                "status": "shipped",
            }
        )
        sales.append(
            {
                "order_id": f"SO-{n}",
                "line_no": 2,
                "sku": "B-2",
                "location_id": "WH1",
                "channel": "web",
                "qty": 1.0,
                "ordered_at": day + timedelta(hours=10),
                "status": "shipped",
            }
        )
    sales.append(
        {
            "order_id": "SO-OPEN",
            "line_no": 1,
            "sku": "C-3",
            "location_id": "WH1",
            "channel": "b2b",
            "qty": 4.0,
            "ordered_at": d0 - timedelta(hours=5),
            "status": "open",
        }
    )
    frames = {
        "suppliers": pd.DataFrame(
            [
                {
                    "supplier_id": "S1",
                    "name": "Fast Ltd",
                    "email": "orders@fast.example",
                    "currency": "EUR",
                    "min_order_value": 0.0,
                    "order_processing_days": 1.0,
                    "transport_days": 2.0,
                    "receiving_days": 0.0,
                },
                {
                    "supplier_id": "S2",
                    "name": "Slow GmbH",
                    "email": "po@slow.example",
                    "currency": "EUR",
                    "min_order_value": 100.0,
                    "order_processing_days": 1.0,
                    "transport_days": 10.0,
                    "receiving_days": 1.0,
                },
            ]
        ),
        "products": pd.DataFrame(
            [
                {
                    "sku": "A-1",
                    "name": "Mug <blue>",
                    "category": "kitchen",
                    "unit_cost": 2.0,
                    "unit_price": 5.0,
                    "active": True,
                    "replenishment_mode": "stock",
                    "service_level": None,
                },
                {
                    "sku": "B-2",
                    "name": "Lamp",
                    "category": "home",
                    "unit_cost": 20.0,
                    "unit_price": 45.0,
                    "active": True,
                    "replenishment_mode": "stock",
                    "service_level": 0.99,
                },
                {
                    "sku": "C-3",
                    "name": "Custom sign",
                    "category": "home",
                    "unit_cost": 30.0,
                    "unit_price": 80.0,
                    "active": True,
                    "replenishment_mode": "jit",
                    "service_level": None,
                },
            ]
        ),
        "supplier_products": pd.DataFrame(
            [
                {
                    "sku": "A-1",
                    "supplier_id": "S1",
                    "supplier_sku": "F-A1",
                    "lead_time_days": 2.0,
                    "moq": 24.0,
                    "pack_size": 12.0,
                    "unit_price": 2.0,
                    "priority": 1,
                },
                {
                    "sku": "B-2",
                    "supplier_id": "S2",
                    "supplier_sku": "S-B2",
                    "lead_time_days": 5.0,
                    "moq": 1.0,
                    "pack_size": 1.0,
                    "unit_price": 20.0,
                    "priority": 1,
                },
                {
                    "sku": "C-3",
                    "supplier_id": "S2",
                    "supplier_sku": "S-C3",
                    "lead_time_days": 5.0,
                    "moq": 1.0,
                    "pack_size": 1.0,
                    "unit_price": 30.0,
                    "priority": 1,
                },
            ]
        ),
        "stock_levels": pd.DataFrame(
            [
                {
                    "sku": "A-1",
                    "location_id": "WH1",
                    "on_hand": 25.0,
                    "allocated": 0.0,
                    "as_of": d0,
                },
                {
                    "sku": "B-2",
                    "location_id": "WH1",
                    "on_hand": 500.0,
                    "allocated": 0.0,
                    "as_of": d0,
                },
                {"sku": "C-3", "location_id": "WH1", "on_hand": 0.0, "allocated": 0.0, "as_of": d0},
            ]
        ),
        "purchase_orders": pd.DataFrame(
            [
                {
                    "po_id": "PO-1",
                    "supplier_id": "S1",
                    "location_id": "WH1",
                    "status": "received",
                    "ordered_at": d0 - timedelta(days=40),
                    "expected_at": d0 - timedelta(days=35),
                },
                {
                    "po_id": "PO-2",
                    "supplier_id": "S2",
                    "location_id": "WH1",
                    "status": "confirmed",
                    "ordered_at": d0 - timedelta(days=3),
                    "expected_at": d0 + timedelta(days=14),
                },
            ]
        ),
        "purchase_order_lines": pd.DataFrame(
            [
                {
                    "po_id": "PO-1",
                    "line_no": 1,
                    "sku": "A-1",
                    "qty_ordered": 120.0,
                    "qty_received": 120.0,
                    "received_at": d0 - timedelta(days=35),
                },
                {
                    "po_id": "PO-2",
                    "line_no": 1,
                    "sku": "B-2",
                    "qty_ordered": 10.0,
                    "qty_received": 0.0,
                    "received_at": None,
                },
            ]
        ),
        "sales_order_lines": pd.DataFrame(sales),
        "returns": pd.DataFrame(
            [
                {
                    "order_id": "SO-3",
                    "sku": "A-1",
                    "location_id": "WH1",
                    "qty": 1.0,
                    "returned_at": d0 - timedelta(days=20),
                    "restockable": True,
                },
            ]
        ),
    }
    return model.ErpSnapshot(**{k: model.coerce(k, v) for k, v in frames.items()})


CACHE_LINE_COLUMNS = [
    "order_id",
    "line_no",
    "sku",
    "location_id",
    "channel",
    "qty",
    "ordered_at",
    "status",
]


def cache_lines(
    *rows: tuple[str, int, str, float, datetime | None, str | None], channel: str = "web"
) -> pd.DataFrame:
    """Sales lines (order_id, line_no, sku, qty, ordered_at, status) at WH1,
    for the demand cache's tests."""
    return pd.DataFrame(
        [
            {
                "order_id": o,
                "line_no": n,
                "sku": sku,
                "location_id": "WH1",
                "channel": channel,
                "qty": qty,
                "ordered_at": at,
                "status": status,
            }
            for o, n, sku, qty, at, status in rows
        ],
        columns=CACHE_LINE_COLUMNS,
    )
