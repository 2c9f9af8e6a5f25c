"""The per-SKU picture: what happened, what is expected, and why this order.

``sku_picture(...)`` draws one SKU × location as a PNG (matplotlib, Agg):

* top panel — daily units ordered over the last ``history_days`` days (bars;
  cancelled lines left out, as in the forecast), the days out of stock
  shaded (red: end-of-day on_hand <= 0 in ``stock_history``; orange: inferred
  from a zero-sales run too long to be chance, when the series has no stock
  history), and the forecast's daily path from ``as_of`` on;
* bottom panel — end-of-day stock on hand from ``stock_history`` (past), the
  projected available stock from ``as_of`` until a few days after the next
  delivery an order can get (:func:`project_stock`: without and with the
  proposed order), open purchase-order arrivals, and the plan's safety
  stock, reorder point, trigger level and order-up-to level as lines;
* a title naming the SKU, location, ABC×XYZ class, policy and the proposed
  order (quantity, value, supplier).

``sku_report_html(...)`` puts the pictures of several rows (by default the
``top_n`` proposed orders by value) on one self-contained HTML page, each
with the plan row's explanation (reason, safety-stock basis, rounding,
supplier choice, the numbers behind them), the PNGs embedded as base64 —
a single file a Prefect artifact can link to.

Same inputs, same bytes: the style is matplotlib's default whatever the
local matplotlibrc says, and the PNG carries no software/version metadata.
"""

from __future__ import annotations

import base64
import html
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import matplotlib as mpl
import matplotlib.style
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from replenish.forecast.demand import daily_demand
from replenish.forecast.result import Forecast
from replenish.model import OPEN_PO_STATUSES, ErpSnapshot
from replenish.policy.assemble import _normalised_in

__all__ = [
    "EXPLANATION_FIELDS",
    "PICTURE_SIZE",
    "project_stock",
    "sku_picture",
    "sku_report_html",
    "subset_snapshot",
    "top_orders",
]

FloatArray = npt.NDArray[np.float64]

#: Width, height (inches) and resolution of a picture: 1000 × 700 pixels.
PICTURE_SIZE: Final = (10.0, 7.0, 100)
#: Days projected after the next possible delivery arrives.
AFTER_DELIVERY_DAYS: Final = 7
#: Plan columns shown under each picture of the HTML report, with labels.
EXPLANATION_FIELDS: Final = (
    ("reason", "Decision"),
    ("order_qty", "Order quantity"),
    ("order_value", "Order value"),
    ("rounding", "Rounding"),
    ("raw_qty", "Raw quantity"),
    ("eoq", "EOQ"),
    ("supplier_id", "Supplier"),
    ("supplier_reason", "Why this supplier"),
    ("policy", "Policy"),
    ("mode_reason", "Mode"),
    ("demand_class", "Demand class"),
    ("method", "Forecast method"),
    ("demand_mean", "Demand per day"),
    ("demand_std", "σ demand per day"),
    ("lead_time_mean", "Lead time (days)"),
    ("lead_time_std", "σ lead time (days)"),
    ("lead_time_source", "Lead time from"),
    ("service_level", "Service target"),
    ("service_level_source", "Target from"),
    ("safety_stock", "Safety stock"),
    ("safety_stock_basis", "Safety stock basis"),
    ("reorder_point", "Reorder point"),
    ("trigger_level", "Trigger level"),
    ("order_up_to", "Order-up-to"),
    ("on_hand", "On hand"),
    ("allocated", "Allocated"),
    ("on_order", "On order"),
    ("inventory_position", "Inventory position"),
    ("days_of_cover", "Days of cover"),
)

_LOCK = threading.Lock()
_RC: Final[Any] = {"font.size": 9.0, "axes.titlesize": 10.0, "legend.fontsize": 8.0}
_DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------ projection


@dataclass(frozen=True)
class _Series:
    """Everything drawn for one SKU × location."""

    row: pd.Series
    history_dates: pd.DatetimeIndex
    sold: FloatArray
    censored: npt.NDArray[np.bool_]
    inferred: bool
    stock_dates: pd.DatetimeIndex
    stock: FloatArray
    projection: pd.DataFrame


def _plan_row(plans: pd.DataFrame, sku: str, location_id: str) -> pd.Series:
    hit = plans[
        (plans["sku"].astype("string") == sku)
        & (plans["location_id"].astype("string") == location_id)
    ]
    if hit.empty:
        raise ValueError(f"no plan row for sku {sku!r} at location {location_id!r}")
    return hit.iloc[0]


def _f(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _forecast_path(
    forecast: Forecast | None, sku: str, location_id: str, as_of: date, days: int, flat: float
) -> tuple[FloatArray, bool]:
    """Expected demand on as_of + 0..days−1 from the forecast's path (its last
    day extended beyond the horizon); ``flat`` every day when the series is
    not in the forecast. Returns the path and whether it came from the forecast."""
    if forecast is not None and len(forecast.frame):
        frame = forecast.frame
        hit = np.flatnonzero(
            (frame["sku"].astype("string") == sku).to_numpy(dtype=bool, na_value=False)
            & (frame["location_id"].astype("string") == location_id).to_numpy(
                dtype=bool, na_value=False
            )
        )
        if hit.size and forecast.horizon:
            path = forecast.path[hit[0]]
            offset = max((as_of - forecast.start).days, 0)
            idx = np.minimum(offset + np.arange(days), forecast.horizon - 1)
            out = np.asarray(path[idx], dtype=np.float64)
            if np.isfinite(out).all():
                return np.fmax(out, 0.0), True
    value = flat if math.isfinite(flat) else 0.0
    return np.full(days, max(value, 0.0)), False


def _open_arrivals(
    snapshot: ErpSnapshot, sku: str, location_id: str, as_of: date
) -> tuple[pd.DataFrame, float]:
    """Open PO quantities of the series by expected day (overdue: as_of), and
    the open quantity without an expected date (not projected)."""
    po = snapshot.purchase_orders
    po = po[
        _normalised_in(po["status"], OPEN_PO_STATUSES)
        & (po["location_id"].astype("string") == location_id).fillna(False).to_numpy(bool)
    ].drop_duplicates("po_id")
    lines = snapshot.purchase_order_lines
    lines = lines[(lines["sku"].astype("string") == sku).fillna(False).to_numpy(bool)]
    lines = lines.merge(po[["po_id", "expected_at"]], on="po_id", how="inner")
    remaining = np.fmax(
        pd.to_numeric(lines["qty_ordered"], errors="coerce").fillna(0.0)
        - pd.to_numeric(lines["qty_received"], errors="coerce").fillna(0.0),
        0.0,
    )
    today = pd.Timestamp(as_of).normalize()
    expected = lines["expected_at"].dt.normalize()
    known = expected.notna().to_numpy(bool)
    due = pd.DataFrame(
        {"date": expected[known].clip(lower=today), "qty": remaining[known].to_numpy()}
    )
    due = due[due["qty"] > 0]
    arrivals = due.groupby("date", as_index=False).agg(qty=("qty", "sum"))
    return arrivals, float(remaining[~known].sum())


def project_stock(
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    forecast: Forecast | None,
    sku: str,
    location_id: str,
    as_of: date,
) -> pd.DataFrame:
    """Projected available stock of one row, day by day, until
    :data:`AFTER_DELIVERY_DAYS` days after the next delivery an order can get.

    Day t = 0 is ``as_of``; stock at the end of day t::

        available_t = (on_hand − allocated) + Σ_{τ<=t} arrivals_τ − Σ_{τ<=t} demand_τ

    with ``arrivals`` the open purchase-order quantities (qty_ordered −
    qty_received, statuses draft/sent/confirmed) at their ``expected_at`` day
    (an overdue one on day 0; a line without expected_at is not projected, as
    in the plan's stockout_risk) and ``demand`` the forecast's daily path
    (the plan's demand_mean when the series has no forecast). The next
    delivery: an order placed today (proposed order, or any order today)
    arrives ⌈L⌉ days later, otherwise one placed on the supplier's next order
    day, ⌈days to it + L⌉ days later (L = lead_time_mean).
    ``with_order`` adds the proposed order_qty on its arrival day.

    Returns:
        Columns date, demand, arrivals, proposed, available, with_order;
        ``attrs``: ``delivery_day`` (t of the next delivery, or None when the
        lead time is unknown), ``unprojected_on_order`` (open quantity without
        expected_at), ``forecast_path`` (False: flat demand_mean).
    """
    row = _plan_row(plans, sku, location_id)
    today = pd.Timestamp(as_of).normalize()
    lead = _f(row.get("lead_time_mean"))
    qty = _f(row.get("order_qty"))
    order_qty = max(qty, 0.0) if math.isfinite(qty) else 0.0
    next_order = pd.to_datetime(pd.Series([row.get("next_order_date")]), errors="coerce").iloc[0]
    wait = 0 if order_qty > 0 or pd.isna(next_order) else max((next_order - today).days, 0)
    delivery = math.ceil(wait + lead) if math.isfinite(lead) else None
    arrivals, unprojected = _open_arrivals(snapshot, sku, location_id, as_of)
    last_arrival = int((arrivals["date"].max() - today).days) if len(arrivals) else 0
    days = max(delivery if delivery is not None else 0, last_arrival) + AFTER_DELIVERY_DAYS + 1
    dates = pd.date_range(today, periods=days, freq="D")
    demand, from_path = _forecast_path(
        forecast, sku, location_id, as_of, days, _f(row.get("demand_mean"))
    )
    arrive = np.zeros(days)
    if len(arrivals):
        at = (arrivals["date"] - today).dt.days.to_numpy(dtype=np.int64)
        np.add.at(arrive, at, arrivals["qty"].to_numpy(dtype=np.float64))
    proposed = np.zeros(days)
    if delivery is not None and order_qty > 0:
        proposed[min(delivery, days - 1)] = order_qty
    start = np.nan_to_num(_f(row.get("on_hand")) - np.nan_to_num(_f(row.get("allocated"))))
    available = start + np.cumsum(arrive) - np.cumsum(demand)
    out = pd.DataFrame(
        {
            "date": dates,
            "demand": demand,
            "arrivals": arrive,
            "proposed": proposed,
            "available": available,
            "with_order": available + np.cumsum(proposed),
        }
    )
    out.attrs.update(
        delivery_day=delivery, unprojected_on_order=unprojected, forecast_path=from_path
    )
    return out


def _series(
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    forecast: Forecast | None,
    sku: str,
    location_id: str,
    as_of: date,
    history_days: int,
) -> _Series:
    if history_days <= 0:
        raise ValueError(f"history_days must be > 0, got {history_days}")
    row = _plan_row(plans, sku, location_id)
    sales = snapshot.sales_order_lines
    mine = (sales["sku"].astype("string") == sku) & (
        sales["location_id"].astype("string") == location_id
    )
    sh = snapshot.stock_history
    sh_mine = sh[
        ((sh["sku"].astype("string") == sku) & (sh["location_id"].astype("string") == location_id))
        .fillna(False)
        .to_numpy(bool)
    ]
    hist = daily_demand(
        sales[mine.fillna(False).to_numpy(bool)], as_of, history_days, stock_history=sh_mine
    )
    if hist.n_series:
        sold, censored = hist.qty[0], hist.censored[0]
        inferred = bool(hist.inferred[0]) if hist.inferred is not None else False
    else:
        sold, censored, inferred = np.zeros(history_days), np.zeros(history_days, bool), False
    today = pd.Timestamp(as_of).normalize()
    dates = pd.to_datetime(sh_mine["date"], errors="coerce").dt.normalize()
    keep = ((dates >= today - history_days * _DAY) & (dates < today)).to_numpy(bool)
    stock = sh_mine.assign(date=dates)[keep].sort_values("date")
    return _Series(
        row=row,
        history_dates=hist.dates,
        sold=sold,
        censored=censored,
        inferred=inferred,
        stock_dates=pd.DatetimeIndex(stock["date"]),
        stock=pd.to_numeric(stock["on_hand"], errors="coerce").to_numpy(dtype=np.float64),
        projection=project_stock(snapshot, plans, forecast, sku, location_id, as_of),
    )


# ------------------------------------------------------------------ drawing


def _fmt(value: Any, digits: int = 1) -> str:
    v = _f(value)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else "∞"
    return f"{v:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{v:,.0f}"


def _title(row: pd.Series) -> str:
    cls = f"{row.get('abc_class') or '?'}{row.get('xyz_class') or ''}"
    qty = _f(row.get("order_qty"))
    if math.isfinite(qty) and qty > 0:
        order = (
            f"order {_fmt(qty, 0)} (value {_fmt(row.get('order_value'), 2)}) "
            f"from {row.get('supplier_id')}"
        )
    else:
        order = "no order proposed"
    return (
        f"{row['sku']} @ {row['location_id']}  ·  class {cls}  ·  {row.get('policy')}  ·  {order}"
    )


def _headroom(ax: Any, floor: float | None) -> None:
    """Raise the top of ``ax`` by 45 % of its data range: room for the legend."""
    low, high = ax.get_ylim()
    low = floor if floor is not None else low
    ax.set_ylim(low, high + 0.45 * max(high - low, 1.0))


def _draw(series: _Series, as_of: date, history_days: int) -> bytes:
    width, height, dpi = PICTURE_SIZE
    row, proj = series.row, series.projection
    today = pd.Timestamp(as_of).normalize()
    with _LOCK, mpl.style.context("default"), mpl.rc_context(_RC):
        # fixed margins (the picture's size is fixed): a constrained layout
        # costs an extra draw of the whole figure, half the picture's time
        fig = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(fig)
        margins = {"left": 0.065, "right": 0.99, "top": 0.955, "bottom": 0.05, "hspace": 0.06}
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1.0, 1.3), gridspec_kw=margins)
        fig.suptitle(_title(row), fontsize=11)

        # -- demand: history bars, stockout days, forecast path
        hd = series.history_dates.to_numpy()
        # one artist for all the days (bars are one patch a day)
        half = np.timedelta64(12, "h")
        top.stairs(
            series.sold, np.append(hd - half, hd[-1:] + half) if len(hd) else [0.0],
            fill=True, color="#9aa5b1", label="units ordered per day",
        )  # fmt: skip
        if series.censored.any():
            colour = "#f5a623" if series.inferred else "#d0021b"
            what = "out of stock (inferred)" if series.inferred else "out of stock"
            top.fill_between(
                hd,
                0,
                1,
                where=series.censored,
                step="mid",
                color=colour,
                alpha=0.25,
                transform=top.get_xaxis_transform(),
                label=what,
            )
        label = "forecast" if proj.attrs.get("forecast_path") else "forecast (flat mean)"
        top.plot(proj["date"], proj["demand"], color="#1f6fd1", lw=1.6, label=label)
        top.set_ylabel("units / day")
        _headroom(top, 0.0)
        top.axvline(today, color="black", lw=0.8)
        top.legend(loc="upper left", ncols=3)
        top.grid(axis="y", alpha=0.3)

        # -- stock: history, projection, policy lines
        if len(series.stock):
            bottom.step(
                series.stock_dates, series.stock, where="post", color="#4a4a4a", lw=1.2,
                label="on hand (end of day)",
            )  # fmt: skip
        if proj["proposed"].sum() > 0:
            bottom.plot(
                proj["date"], proj["with_order"], color="#1f6fd1", lw=1.6,
                label="projected with the proposed order",
            )  # fmt: skip
        bottom.plot(
            proj["date"], proj["available"], color="#d0021b", lw=1.3, ls="--",
            label="projected available, no new order",
        )  # fmt: skip
        arrivals = proj[proj["arrivals"] > 0]
        if len(arrivals):
            bottom.scatter(
                arrivals["date"], proj.loc[arrivals.index, "available"], marker="^", s=40,
                color="#417505", zorder=3, label="open PO arrival",
            )  # fmt: skip
        for col, colour, style, text in (
            ("safety_stock", "#f5a623", "-", "safety stock"),
            ("reorder_point", "#d0021b", "-.", "reorder point"),
            ("trigger_level", "#9013fe", ":", "trigger level"),
            ("order_up_to", "#417505", "--", "order-up-to"),
        ):
            value = _f(row.get(col))
            if col == "trigger_level" and math.isclose(value, _f(row.get("reorder_point"))):
                continue
            if math.isfinite(value):
                bottom.axhline(value, color=colour, ls=style, lw=1.0, label=f"{text} {_fmt(value)}")
        bottom.axvline(today, color="black", lw=0.8)
        delivery = proj.attrs.get("delivery_day")
        if delivery is not None and delivery < len(proj):
            bottom.axvline(
                proj["date"].iloc[delivery], color="#1f6fd1", lw=0.8, ls=":",
                label="next possible delivery",
            )  # fmt: skip
        bottom.axhline(0.0, color="black", lw=0.5)
        bottom.set_ylabel("units")
        _headroom(bottom, None)
        bottom.legend(loc="upper left", ncols=3)
        bottom.grid(axis="y", alpha=0.3)
        locator = AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        bottom.set_xlim(today - history_days * _DAY, proj["date"].iloc[-1] + _DAY)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def sku_picture(
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    forecast: Forecast | None,
    sku: str,
    location_id: str,
    as_of: date,
    *,
    history_days: int = 180,
) -> bytes:
    """The picture of one SKU × location as PNG bytes (1000 × 700 pixels).

    Args:
        snapshot: the run's ERP snapshot (sales, stock history, open POs).
        plans: build_plans output of the run; the row of (sku, location_id)
            gives the safety stock, reorder point, trigger, order-up-to, lead
            time, next order day and the proposed order.
        forecast: the run's forecast (its daily path is drawn); None, or a
            series it does not contain: the plan's demand_mean, flat.
        sku, location_id: the row to draw.
        as_of: the planning date.
        history_days: days of sales and stock history shown (> 0).

    Raises:
        ValueError: no plan row for (sku, location_id), or a bad history_days.
    """
    series = _series(snapshot, plans, forecast, sku, location_id, as_of, history_days)
    return _draw(series, as_of, history_days)


# ------------------------------------------------------------------ HTML report


def top_orders(plans: pd.DataFrame, n: int = 20) -> list[tuple[str, str]]:
    """The ``n`` (sku, location_id) with the largest proposed order value."""
    if plans.empty:
        return []
    value = pd.to_numeric(plans["order_value"], errors="coerce").fillna(0.0)
    qty = pd.to_numeric(plans["order_qty"], errors="coerce").fillna(0.0)
    picked = plans.assign(_v=value)[qty > 0].sort_values(
        ["_v", "sku", "location_id"], ascending=[False, True, True], kind="stable"
    )
    return [(str(r.sku), str(r.location_id)) for r in picked.head(n).itertuples(index=False)]


def subset_snapshot(snapshot: ErpSnapshot, skus: set[str]) -> ErpSnapshot:
    """The snapshot's rows of ``skus`` (one pass per table instead of one per picture)."""

    def only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["sku"].astype("string").isin(skus).fillna(False).to_numpy(bool)]

    lines = only(snapshot.purchase_order_lines)
    pos = snapshot.purchase_orders
    return ErpSnapshot(
        suppliers=snapshot.suppliers,
        products=only(snapshot.products),
        supplier_products=only(snapshot.supplier_products),
        stock_levels=only(snapshot.stock_levels),
        purchase_orders=pos[pos["po_id"].isin(lines["po_id"])],
        purchase_order_lines=lines,
        sales_order_lines=only(snapshot.sales_order_lines),
        returns=only(snapshot.returns),
        stock_history=only(snapshot.stock_history),
        promotions=only(snapshot.promotions),
    )


def _cell(value: Any, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        if column.endswith("_value"):
            return f"{float(value):,.2f}"
        if column == "service_level":
            return f"{100 * float(value):.1f} %"
        return _fmt(value, 2)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


_HOW_TO_READ = (
    "Each picture: on top, the units ordered per day (grey bars; shaded: days out of "
    "stock, orange when inferred from a run of days without sales) and the forecast (blue "
    "line) from the planning day on; below, the stock on hand at the end of each day, then "
    "the projected available stock (on hand − allocated + open purchase orders on their "
    "expected day − forecast demand) without a new order (red, dashed) and with the "
    "proposed order arriving after the lead time (blue), against the safety stock, "
    "reorder point, trigger and order-up-to levels. The table under it is the plan's "
    "explanation of the decision."
)
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1b1b}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2.5rem;border-top:1px solid #ddd;
padding-top:1rem}table{border-collapse:collapse;font-size:.85rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right}img{max-width:100%;height:auto}
"""


def sku_report_html(
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    forecast: Forecast | None,
    as_of: date,
    *,
    series: Sequence[tuple[str, str]] | None = None,
    top_n: int = 20,
    history_days: int = 180,
    title: str | None = None,
) -> str:
    """A self-contained HTML page: the picture and explanation of several rows.

    Args:
        snapshot, plans, forecast, as_of, history_days: as :func:`sku_picture`.
        series: the (sku, location_id) to show, in order; default the
            ``top_n`` proposed orders by value (:func:`top_orders`).
        top_n: how many rows by default.
        title: the page heading (default "Replenishment <as_of>: ...").

    Returns:
        The HTML text (UTF-8; no external resource).
    """
    chosen = list(series) if series is not None else top_orders(plans, top_n)
    heading = title or (
        f"Replenishment {as_of.isoformat()}: "
        + (f"top {len(chosen)} proposed orders by value" if series is None else "selected SKUs")
    )
    sub = subset_snapshot(snapshot, {s for s, _ in chosen})
    names = pd.Series(
        snapshot.products["name"].to_numpy(dtype=object),
        index=snapshot.products["sku"].astype("string").to_numpy(dtype=object),
    )
    names = names[~names.index.duplicated()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
    ]
    if not chosen:
        parts.append("<p>No SKU to show: no order proposed.</p></body></html>")
        return "\n".join(parts)
    parts.append(f"<p>{html.escape(_HOW_TO_READ)}</p>")
    parts.append("<table><tr><th>SKU</th><th>location</th><th>order qty</th>"
                 "<th>order value</th><th>supplier</th></tr>")  # fmt: skip
    rows = []
    for sku, loc in chosen:
        row = _plan_row(plans, sku, loc)
        anchor = html.escape(f"{sku}@{loc}", quote=True)
        rows.append((sku, loc, row, anchor))
        parts.append(
            f'<tr><td><a href="#{anchor}">{html.escape(sku)}</a></td><td>{html.escape(loc)}</td>'
            f'<td class="num">{_cell(row.get("order_qty"))}</td>'
            f'<td class="num">{_cell(row.get("order_value"), "order_value")}</td>'
            f"<td>{html.escape(_cell(row.get('supplier_id')))}</td></tr>"
        )
    parts.append("</table>")
    for sku, loc, row, anchor in rows:
        png = sku_picture(sub, plans, forecast, sku, loc, as_of, history_days=history_days)
        name = names.get(sku)
        label = f"{sku} @ {loc}" + (f" — {name}" if isinstance(name, str) else "")
        parts.append(f'<section id="{anchor}"><h2>{html.escape(label)}</h2>')
        width, height, dpi = PICTURE_SIZE
        parts.append(
            f'<img alt="{html.escape(f"{sku} at {loc}", quote=True)}" '
            f'width="{int(width * dpi)}" height="{int(height * dpi)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        )
        parts.append("<table>")
        for col, text in EXPLANATION_FIELDS:
            if col not in row.index:
                continue
            value = _cell(row[col], col)
            css = ' class="num"' if isinstance(row[col], int | float | np.number) else ""
            parts.append(f"<tr><th>{html.escape(text)}</th><td{css}>{html.escape(value)}</td></tr>")
        parts.append("</table></section>")
    parts.append("</body></html>")
    return "\n".join(parts)
