"""The per-SKU picture: the projection by hand, the PNG (valid, sized,
deterministic, reacting to the plan) and the HTML report."""

from __future__ import annotations

import base64
import re
import struct
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from replenish.charts import (
    PICTURE_SIZE,
    project_stock,
    sku_picture,
    sku_report_html,
    top_orders,
)
from replenish.demo import generate_demo
from replenish.forecast import Forecast, daily_demand, forecast_demand
from replenish.model import ErpSnapshot, coerce
from replenish.policy import build_plans, learn_lead_times

AS_OF = date(2024, 3, 1)
T0 = datetime(2024, 3, 1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    return coerce(table, pd.DataFrame(rows))


def _snapshot() -> ErpSnapshot:
    """SKU A at W1: 2 units a day for 30 days, stock history with two days
    out of stock. Open POs at W1: P1 20 expected in 3 days, P2 5 overdue
    (expected 2 days ago), P3 7 without an expected date; P4 at W2 (not ours)."""
    days = [T0 - timedelta(days=i) for i in range(30, 0, -1)]
    sales = _frame(
        "sales_order_lines",
        [
            {"order_id": f"O{i}", "line_no": 1, "sku": "A", "location_id": "W1",
             "channel": "web", "qty": 2, "ordered_at": d + timedelta(hours=9),
             "status": "shipped"}
            for i, d in enumerate(days)
        ],
    )  # fmt: skip
    history = _frame(
        "stock_history",
        [
            {"sku": "A", "location_id": "W1", "date": d, "on_hand": 0.0 if i in (10, 11) else 20.0}
            for i, d in enumerate(days)
        ],
    )
    pos = _frame(
        "purchase_orders",
        [
            {"po_id": po, "supplier_id": "S1", "location_id": loc, "status": "confirmed",
             "ordered_at": T0 - timedelta(days=10), "expected_at": exp}
            for po, loc, exp in (
                ("P1", "W1", T0 + timedelta(days=3)),
                ("P2", "W1", T0 - timedelta(days=2)),
                ("P3", "W1", None),
                ("P4", "W2", T0 + timedelta(days=1)),
            )
        ],
    )  # fmt: skip
    lines = _frame(
        "purchase_order_lines",
        [
            {"po_id": po, "line_no": 1, "sku": "A", "qty_ordered": q, "qty_received": 0}
            for po, q in (("P1", 20), ("P2", 5), ("P3", 7), ("P4", 50))
        ],
    )
    products = _frame(
        "products",
        [
            {"sku": "A", "name": "Mug <Deluxe> & Co", "unit_cost": 2.0, "active": True},
            {"sku": "B", "name": "Bowl", "unit_cost": 3.0, "active": True},
        ],
    )
    return ErpSnapshot(
        products=products,
        sales_order_lines=sales,
        stock_history=history,
        purchase_orders=pos,
        purchase_order_lines=lines,
    )


def _plans(**changes: Any) -> pd.DataFrame:
    """A: on hand 10, allocated 2, d = 2, L = 4, order 12 proposed today.
    B: no data at all, no order."""
    a = {
        "sku": "A", "location_id": "W1", "abc_class": "A", "xyz_class": "X",
        "policy": "continuous (s,Q)", "supplier_id": "S1", "demand_mean": 2.0,
        "lead_time_mean": 4.0, "next_order_date": pd.Timestamp(AS_OF), "on_hand": 10.0,
        "allocated": 2.0, "on_order": 32.0, "inventory_position": 40.0, "safety_stock": 6.0,
        "reorder_point": 14.0, "trigger_level": 14.0, "order_up_to": np.nan,
        "order_qty": 12.0, "order_value": 24.0, "reason": "IP below ROP <order>",
    }  # fmt: skip
    b = {
        **a, "sku": "B", "abc_class": "C", "order_qty": 0.0, "order_value": 0.0,
        "next_order_date": pd.Timestamp(AS_OF) + pd.Timedelta(days=2),
        "on_hand": 0.0, "allocated": 0.0, "demand_mean": 0.5,
    }  # fmt: skip
    a.update(changes)
    return pd.DataFrame([a, b])


def _forecast() -> Forecast:
    frame = pd.DataFrame({"sku": ["A"], "location_id": ["W1"], "demand_mean": [2.0]})
    return Forecast.flat(frame, AS_OF, horizon=60)


def test_projection_by_hand() -> None:
    """available_t = (10 − 2) + 5 (overdue P2, day 0) + 20·[t >= 3] (P1) − 2·(t + 1);
    the proposed 12 arrives on day ⌈L⌉ = 4; P3 (no date) and P4 (other
    location) are not projected. Horizon: delivery day 4 + 7 days + day 0."""
    proj = project_stock(_snapshot(), _plans(), _forecast(), "A", "W1", AS_OF)
    t = np.arange(12)
    expected = 8 + 5 + 20 * (t >= 3) - 2 * (t + 1)
    assert len(proj) == 12
    np.testing.assert_allclose(proj["available"], expected)
    np.testing.assert_allclose(proj["with_order"], expected + 12 * (t >= 4))
    assert proj["date"].iloc[0] == pd.Timestamp(AS_OF)
    assert proj.attrs["delivery_day"] == 4
    assert proj.attrs["unprojected_on_order"] == 7.0
    assert proj.attrs["forecast_path"] is True


def test_projection_waits_for_the_next_order_day_and_follows_the_path() -> None:
    """No order today and next order day in 2 days: delivery on ⌈2 + 4⌉ = 6.
    The forecast's path (day k: k units, starting a day before as_of) is
    read from as_of on: 1, 2, 3, ..."""
    frame = pd.DataFrame({"sku": ["A"], "location_id": ["W1"], "demand_mean": [2.0]})
    path = np.arange(30, dtype=float)[None, :]
    fc = Forecast(frame=frame, path=path, start=AS_OF - timedelta(days=1))
    plans = _plans(order_qty=0.0, next_order_date=pd.Timestamp(AS_OF) + pd.Timedelta(days=2))
    proj = project_stock(_snapshot(), plans, fc, "A", "W1", AS_OF)
    assert proj.attrs["delivery_day"] == 6
    assert proj["proposed"].sum() == 0
    np.testing.assert_allclose(proj["demand"].to_numpy()[:5], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(proj["with_order"], proj["available"])


def test_projection_without_forecast_uses_the_plan_mean() -> None:
    proj = project_stock(_snapshot(), _plans(demand_mean=3.0), None, "A", "W1", AS_OF)
    assert proj.attrs["forecast_path"] is False
    assert (proj["demand"] == 3.0).all()


def test_picture_is_a_png_of_the_expected_size() -> None:
    png = sku_picture(_snapshot(), _plans(), _forecast(), "A", "W1", AS_OF, history_days=60)
    width, height, dpi = PICTURE_SIZE
    assert _png_size(png) == (int(width * dpi), int(height * dpi))
    assert png.rstrip().endswith(b"IEND\xaeB`\x82")
    assert b"matplotlib" not in png  # no software / version metadata


def test_picture_is_deterministic_and_follows_the_plan() -> None:
    snap = _snapshot()
    first = sku_picture(snap, _plans(), _forecast(), "A", "W1", AS_OF)
    again = sku_picture(snap, _plans(), _forecast(), "A", "W1", AS_OF)
    assert first == again
    other_ss = sku_picture(snap, _plans(safety_stock=9.0), _forecast(), "A", "W1", AS_OF)
    no_order = sku_picture(snap, _plans(order_qty=0.0), _forecast(), "A", "W1", AS_OF)
    assert len({first, other_ss, no_order}) == 3


def test_picture_of_a_row_without_any_data() -> None:
    png = sku_picture(_snapshot(), _plans(), None, "B", "W1", AS_OF)
    assert _png_size(png) == (1000, 700)


def test_picture_errors_name_the_row() -> None:
    with pytest.raises(ValueError, match="no plan row for sku 'Z' at location 'W1'"):
        sku_picture(_snapshot(), _plans(), _forecast(), "Z", "W1", AS_OF)
    with pytest.raises(ValueError, match="history_days must be > 0"):
        sku_picture(_snapshot(), _plans(), _forecast(), "A", "W1", AS_OF, history_days=0)


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_html_holds_pictures_and_explanations() -> None:
    page = sku_report_html(
        _snapshot(), _plans(), _forecast(), AS_OF, series=[("A", "W1"), ("B", "W1")]
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = _images(page)
    assert len(images) == 2
    assert all(_png_size(img) == (1000, 700) for img in images)
    assert 'id="A@W1"' in page and 'id="B@W1"' in page
    assert "Mug &lt;Deluxe&gt; &amp; Co" in page  # names are escaped
    assert "IP below ROP &lt;order&gt;" in page  # so are the explanations
    assert '<th>Reorder point</th><td class="num">14</td>' in page
    assert 'src="http' not in page and "<script" not in page  # self-contained
    # deterministic page
    again = sku_report_html(
        _snapshot(), _plans(), _forecast(), AS_OF, series=[("A", "W1"), ("B", "W1")]
    )
    assert page == again


def test_report_defaults_to_the_top_orders() -> None:
    plans = _plans()
    assert top_orders(plans, 5) == [("A", "W1")]  # B orders nothing
    page = sku_report_html(_snapshot(), plans, _forecast(), AS_OF)
    assert len(_images(page)) == 1
    assert "top 1 proposed orders by value" in page
    empty = sku_report_html(_snapshot(), _plans(order_qty=0.0), _forecast(), AS_OF)
    assert "No SKU to show" in empty and not _images(empty)


def test_demo_top_orders_report() -> None:
    """On the demo shop: the three largest orders by value, each pictured
    from its real sales, stock history, open POs and forecast."""
    as_of = date(2024, 6, 3)
    snap = generate_demo(as_of, n_skus=20, days=200)
    history = daily_demand(
        snap.sales_order_lines, as_of, 200, snap.stock_history, returns=snap.returns
    )
    forecast = forecast_demand(history, promotions=snap.promotions, as_of=as_of)
    lead_times = learn_lead_times(
        snap.purchase_orders, snap.purchase_order_lines, snap.supplier_products, snap.suppliers
    )
    plans = build_plans(snap, forecast, lead_times, as_of)
    top = top_orders(plans, 3)
    values = [
        float(plans.loc[(plans["sku"] == s) & (plans["location_id"] == loc), "order_value"].iloc[0])
        for s, loc in top
    ]
    assert len(top) == 3 and values == sorted(values, reverse=True) and values[-1] > 0
    page = sku_report_html(snap, plans, forecast, as_of, top_n=3)
    assert len(_images(page)) == 3
    for sku, loc in top:
        assert f'id="{sku}@{loc}"' in page
