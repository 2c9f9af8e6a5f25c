"""The demo shop: a deterministic, realistic ERP snapshot to try replenish on.

``generate_demo(as_of)`` returns a :class:`replenish.model.ErpSnapshot` of a
made-up web shop selling gifts, homeware, textiles and phone / computer
accessories from two warehouses, with two years of history ending the day
before ``as_of``. Everything is drawn from one seed (same seed and arguments →
identical frames) by vectorised numpy; nothing is read or written.
``simulate_demo`` returns the same snapshot together with the hidden truth
(uncensored demand, item roles, the deliberate defects) for tests and
benchmarks.

What is in it (default size: ``n_skus=200``, ``days=730``):

* **suppliers** — five, with clearly different terms (declared lead time =
  order processing + supplier's own + transport + receiving days):

  ======  ==================================  =====  ==========  =========
  id      name                                MOV    lead time   order day
  ======  ==================================  =====  ==========  =========
  SUP-A   Nordhaus Home Supply (domestic)       250  3–5 days    Mon–Fri
  SUP-B   Voltix Distribution (EU)              500  7–9 days    Mon, Thu
  SUP-C   Atelier Terre & Co (EU artisan)         0  12–14 days  Tue
  SUP-D   Shenzhen Brightway (overseas)        1000  21–23 days  Wed
  SUP-E   Tecelagem Lusa (EU textiles)          250  9–11 days   Thu
  ======  ==================================  =====  ==========  =========

  Deliveries are mostly on time, some a few days late, a few very late
  (outliers), overseas the least reliable; a few lines are delivered short.
* **products** — ``n_skus`` SKUs ``SKU-0001``… in five categories (Home &
  Kitchen, Gifts & Decor, Phone Accessories, Computer Accessories, Textiles),
  unit_price > unit_cost. Demand patterns: ~15 % fast movers (5–40/day at
  WH1, negative binomial), ~40 % medium (0.5–5/day), ~40 % slow intermittent
  movers (mean < 0.3/day, lumpy order sizes) and ~5 % ``'jit'`` custom items
  (personalised, made to order, slow). Two SKUs are inactive (discontinued
  months ago, dead stock left); a few carry a ``service_level`` override.
* **supplier_products** — one preferred supplier (priority 1) per SKU, ~30 %
  with a dearer second source (priority 2); MOQ a multiple of the pack size.
* **locations** — ``WH1`` (main) and ``WH2`` (smaller: 25–60 % of WH1's
  volume); a few slow SKUs are stocked at WH1 only.
* **sales_order_lines** — two years of daily demand with a weekday profile
  per category (weekend peak for gifts/homeware, weekend dip for computer
  accessories: :data:`CATEGORIES`), yearly seasonality (Q4 gifts peak, Black
  Friday, back to school, winter textiles), trends on ~35 % of the fast and
  medium SKUs, and one-week promotions (2–3× uplift) on a handful of SKUs.
  Lines are grouped into orders ``SO-000001``… (one line per SKU per order)
  on the channels web, shopify, woocommerce and b2b (large quantities are
  b2b). Status: ``'shipped'``; ~1 % ``'cancelled'``; most of yesterday's
  orders and some of the two days before are still ``'open'``. Demand that
  finds no stock is lost: on a stock-out day (~4 % of series × days) the
  lines are cut to what was available (censored sales). A couple of
  ``'jit'`` SKUs have an open order that their stock does not cover.
* **returns** — ~2 % of shipped lines come back 3–30 days later, mostly
  restockable (restockable returns go back on hand).
* **purchase_orders / purchase_order_lines** — the shop's own (s, nQ)
  replenishment, one PO per supplier × location × order day, honouring MOQ,
  pack size and minimum order value. History is ``'received'`` (lead times
  to learn per supplier × SKU), ~1 % ``'cancelled'``; the POs still under way
  at ``as_of`` are ``'sent'``/``'confirmed'`` (every supplier has at least
  one; at least one is already past its ``expected_at``).
* **stock_history / stock_levels** — the day-by-day simulation: end-of-day
  on-hand per SKU × location × date, exactly consistent with shipped sales,
  receipts and restockable returns; ``stock_levels`` is the last day's stock
  stamped ``as_of`` 00:00 with ``allocated`` = open sales lines. At ``as_of``
  several SKUs of every supplier are at or below their reorder point (some
  at stock-out risk) and two are clearly overstocked. (Guaranteed in
  practice at the default size; a shop of a few dozen SKUs and a few months
  may miss some of these features.)

Size and speed at the default size: ~180 000 sales lines, ~1 900 POs,
280 000 stock-history rows; under a second on one core.

Stock conventions: goods received (``received_at``, at the dock) become
on-hand stock ``receiving_days`` later (see
:mod:`replenish.policy.leadtime`); receipts and restockable returns are
available from the morning of their day, before that day's sales; shipped and
open sales lines consume stock on the day they were ordered (open lines stay
on hand as ``allocated`` until they ship).

Deliberate defects (``with_defects=True``; :data:`DEFECTS`), for the
validation gate to quarantine — all in ``sales_order_lines`` and
``supplier_products``, never in ``stock_levels``, and storable in the SQL
tables of :mod:`replenish.model`. They touch no stock figure:

* ``negative_qty`` — a shipped sales line with qty −2;
* ``unknown_sku`` — a shipped sales line for ``SKU-0000`` (not in products);
* ``future_date`` — an open sales line ordered two days after ``as_of``;
* ``unknown_supplier`` — a supplier_products row for ``SUP-Z`` (not in
  suppliers).

The defect rows are appended last and drawn from their own random stream:
every other row is identical with and without them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish import model

__all__ = [
    "CATEGORIES",
    "DEFECTS",
    "LOCATIONS",
    "SUPPLIERS",
    "DemoCategory",
    "DemoShop",
    "DemoSupplier",
    "DemoTruth",
    "generate_demo",
    "simulate_demo",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

LOCATIONS: Final = ("WH1", "WH2")
CHANNELS: Final = ("web", "shopify", "woocommerce", "b2b")
_CHANNEL_P: Final = (0.45, 0.30, 0.19, 0.06)
#: Demand patterns of the demo SKUs (``DemoTruth.items["pattern"]``).
PATTERNS: Final = ("fast", "medium", "slow", "jit")


@dataclass(frozen=True)
class DemoSupplier:
    """A demo supplier: contract columns plus how it behaves in the simulation."""

    supplier_id: str
    name: str
    email: str
    min_order_value: float
    order_processing_days: int
    transport_days: int
    receiving_days: int
    #: the supplier's own days (supplier_products.lead_time_days), ± per SKU
    base_lead_time: int
    #: weekdays (0 = Monday) on which the shop orders from this supplier
    order_weekdays: tuple[int, ...]
    sku_prefix: str
    #: delivery delay distribution: P(1 day early), P(a few days late) with
    #: the maximum delay, P(very late) with its range of days
    p_early: float
    p_late: float
    late_max: int
    p_outlier: float
    outlier_days: tuple[int, int]
    #: cost of placing one order (EOQ's K), in EUR
    order_cost: float = 50.0


SUPPLIERS: Final = (
    DemoSupplier("SUP-A", "Nordhaus Home Supply GmbH", "orders@nordhaus-home.example",
                 250.0, 1, 1, 0, 1, (0, 1, 2, 3, 4), "NH", 0.05, 0.12, 2, 0.02, (4, 8),
                 order_cost=30.0),
    DemoSupplier("SUP-B", "Voltix Distribution B.V.", "purchasing@voltix.example",
                 500.0, 1, 3, 1, 2, (0, 3), "VX", 0.08, 0.18, 3, 0.04, (5, 10), order_cost=60.0),
    DemoSupplier("SUP-C", "Atelier Terre & Co", "commandes@atelier-terre.example",
                 0.0, 2, 4, 1, 5, (1,), "AT", 0.05, 0.28, 4, 0.05, (6, 14), order_cost=45.0),
    DemoSupplier("SUP-D", "Shenzhen Brightway Electronics Ltd", "sales@brightway-sz.example",
                 1000.0, 2, 10, 1, 8, (2,), "BW", 0.10, 0.30, 6, 0.08, (8, 25), order_cost=150.0),
    DemoSupplier("SUP-E", "Tecelagem Lusa Lda", "encomendas@tecelagem-lusa.example",
                 250.0, 1, 5, 0, 3, (3,), "TL", 0.08, 0.15, 3, 0.04, (5, 12), order_cost=75.0),
)  # fmt: skip


@dataclass(frozen=True)
class DemoCategory:
    """A demo product category: who supplies it and how its demand moves."""

    name: str
    #: (main supplier, other supplier) indices into SUPPLIERS
    suppliers: tuple[int, int]
    main_share: float
    #: multiplicative weekday profile, Monday first (normalised to mean 1)
    weekday: tuple[float, float, float, float, float, float, float]
    #: yearly season: 'q4', 'mild_q4', 'tech', 'b2b' or 'winter'
    season: str
    cost_range: tuple[float, float]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    share: float
    jit_allowed: bool = False


CATEGORIES: Final = (
    DemoCategory(
        "Home & Kitchen", (0, 2), 0.7, (1.0, 0.95, 0.95, 0.95, 1.0, 1.1, 1.3), "mild_q4",
        (2.0, 25.0),
        ("Stoneware", "Bamboo", "Enamel", "Glass", "Oak", "Stainless", "Speckled", "Matte",
         "Nordic", "Classic"),
        ("Mug", "Teapot", "Cutting Board", "Spice Jar Set", "Salad Bowl", "Coffee Grinder",
         "Utensil Holder", "Cake Tin", "Water Bottle", "Lunch Box", "Coaster Set", "Pasta Bowl"),
        0.24, jit_allowed=True,
    ),
    DemoCategory(
        "Gifts & Decor", (2, 4), 0.6, (0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.2), "q4",
        (3.0, 40.0),
        ("Botanical", "Golden", "Rustic", "Minimal", "Vintage", "Marble", "Linen", "Festive",
         "Terracotta", "Velvet"),
        ("Scented Candle", "Photo Frame", "Vase", "Wall Clock", "Greeting Card Set", "Gift Box",
         "Table Lamp", "Ornament", "Reed Diffuser", "Plant Pot", "Mirror", "Jewellery Box"),
        0.22, jit_allowed=True,
    ),
    DemoCategory(
        "Phone Accessories", (1, 3), 0.6, (1.15, 1.1, 1.05, 1.05, 1.0, 0.8, 0.85), "tech",
        (1.5, 20.0),
        ("Slim", "Rugged", "Clear", "Braided", "Magnetic", "Fast", "Compact", "Pro", "Eco",
         "Matte"),
        ("Phone Case", "Screen Protector", "USB-C Cable 1m", "USB-C Cable 2m",
         "Wall Charger 20W", "Car Mount", "Power Bank 10000mAh", "Wireless Charger", "Earbuds",
         "Phone Grip", "Lightning Cable", "Camera Lens Kit"),
        0.20,
    ),
    DemoCategory(
        "Computer Accessories", (3, 1), 0.6, (1.25, 1.2, 1.2, 1.15, 1.05, 0.55, 0.6), "b2b",
        (3.0, 60.0),
        ("Ergonomic", "Silent", "Compact", "Aluminium", "4K", "Travel", "Office", "Gaming",
         "Ultra", "Basic"),
        ("Wireless Mouse", "Keyboard", "USB Hub", "Laptop Stand", "HDMI Cable", "Webcam",
         "Mouse Pad", "Docking Station", "Headset", "SSD Enclosure", "Monitor Arm",
         "Ethernet Cable"),
        0.16,
    ),
    DemoCategory(
        "Textiles", (4, 0), 0.7, (0.95, 0.95, 0.95, 1.0, 1.05, 1.1, 1.0), "winter",
        (4.0, 35.0),
        ("Cotton", "Wool", "Linen", "Knitted", "Striped", "Chunky", "Organic", "Waffle",
         "Jacquard", "Fleece"),
        ("Throw Blanket", "Cushion Cover", "Bath Towel", "Apron", "Table Runner",
         "Bed Sheet Set", "Scarf", "Oven Mitt", "Rug", "Napkin Set", "Hand Towel", "Pillowcase"),
        0.18,
    ),
)  # fmt: skip

#: The deliberate defects added by ``with_defects=True``: name -> (table, what).
DEFECTS: Final[dict[str, tuple[str, str]]] = {
    "negative_qty": ("sales_order_lines", "shipped sales line with qty -2"),
    "unknown_sku": ("sales_order_lines", "sales line for SKU-0000, which is not in products"),
    "future_date": ("sales_order_lines", "open sales line ordered 2 days after as_of"),
    "unknown_supplier": ("supplier_products", "row for SUP-Z, which is not in suppliers"),
}

_UNKNOWN_SKU: Final = "SKU-0000"
_UNKNOWN_SUPPLIER: Final = "SUP-Z"

# Simulation constants.
_PAD = 120  # days simulated past the horizon for expected demand and late arrivals
_P_CANCEL_LINE = 0.012
_P_RETURN = 0.02
_P_RESTOCKABLE = 0.88
_P_SECOND_SOURCE = 0.15
_P_CANCEL_PO = 0.01
_P_SHORT_DELIVERY = 0.04
_P_NEW_ORDER = 0.55  # chance a shuffled line starts a new customer order
_OPEN_P = (0.08, 0.35, 0.85)  # P(order still open) for as_of-3, as_of-2, as_of-1
_OVERSTOCK_DAYS = 150  # days of demand in the one-off excessive order
_ENDGAME_DAYS = 60  # last days in which the 'reorder due' SKUs are run down


@dataclass(frozen=True)
class DemoTruth:
    """What the snapshot does not say: the generator's hidden state.

    Attributes:
        items: one row per sku × location series, in the column order of the
            matrices: sku, location_id, category, pattern ('fast', 'medium',
            'slow', 'jit'), supplier_id (preferred), base_mean (expected
            demand per day at ``as_of`` before weekday/season effects),
            trend (log growth per year), role ('normal', 'reorder_due' — run
            down so that a reorder is due at ``as_of`` —, 'overstock',
            'discontinued', 'jit').
        promotions: sku, start, end (inclusive dates), uplift.
        dates: the simulated days (``as_of - days`` … ``as_of - 1``).
        expected: days × series expected demand (units/day).
        demand: days × series drawn demand before censoring and without
            cancelled lines (what would have shipped with unlimited stock).
        sold: days × series units shipped or allocated (censored demand).
        defects: table, key, defect (a name of :data:`DEFECTS`), one row per
            deliberate defect row.
    """

    items: pd.DataFrame
    promotions: pd.DataFrame
    dates: pd.DatetimeIndex
    expected: FloatArray
    demand: IntArray
    sold: IntArray
    defects: pd.DataFrame


@dataclass(frozen=True)
class DemoShop:
    """A demo snapshot and the truth behind it."""

    snapshot: model.ErpSnapshot
    truth: DemoTruth


def generate_demo(
    as_of: dt.date,
    *,
    seed: int = 7,
    n_skus: int = 200,
    days: int = 730,
    with_defects: bool = True,
) -> model.ErpSnapshot:
    """The demo shop's ERP snapshot on the evening before ``as_of``.

    Pure and deterministic: the same arguments give identical frames. The
    frames are contract frames (:func:`replenish.model.coerce`). See the module
    docstring for what is inside and which defects ``with_defects`` adds.

    Args:
        as_of: the planning day; history ends the day before.
        seed: random seed.
        n_skus: number of SKUs (>= 20).
        days: days of history (>= 60).
        with_defects: add the deliberate bad rows of :data:`DEFECTS`.
    """
    return simulate_demo(
        as_of, seed=seed, n_skus=n_skus, days=days, with_defects=with_defects
    ).snapshot


# ---------------------------------------------------------------------------
# catalogue


@dataclass
class _Catalogue:
    """Per-SKU arrays (index = SKU number - 1) and per-series arrays."""

    sku_ids: npt.NDArray[np.str_]
    names: list[str]
    category: IntArray
    pattern: IntArray  # index into PATTERNS
    unit_cost: FloatArray
    unit_price: FloatArray
    active: BoolArray
    service_level: FloatArray  # NaN = no override
    pref_sup: IntArray
    sec_sup: IntArray  # -1 = none
    lead_pref: IntArray  # supplier_products.lead_time_days
    lead_sec: IntArray
    moq: IntArray
    pack: IntArray
    moq_sec: IntArray
    price_pref: FloatArray
    price_sec: FloatArray
    trend: FloatArray
    only_wh1: BoolArray
    # series (sku × location)
    item_sku: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    item_loc: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))


def _largest_remainder(n: int, weights: FloatArray) -> IntArray:
    raw = n * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> FloatArray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _catalogue(rng: np.random.Generator, n: int) -> _Catalogue:
    n_cat = len(CATEGORIES)
    counts = _largest_remainder(n, np.array([c.share for c in CATEGORIES]))
    category = rng.permutation(np.repeat(np.arange(n_cat), counts)).astype(np.int64)

    pattern = np.full(n, 2, np.int64)  # slow
    for c in range(n_cat):
        idx = np.flatnonzero(category == c)  # random order: category is permuted
        m = len(idx)
        n_fast = max(1, round(0.15 * m))
        n_med = max(1, round(0.40 * m))
        pattern[idx[:n_fast]] = 0
        pattern[idx[n_fast : n_fast + n_med]] = 1
    jit_ok = np.array([CATEGORIES[c].jit_allowed for c in range(n_cat)])[category]
    slow_jit_ok = np.flatnonzero((pattern == 2) & jit_ok)
    n_jit = min(len(slow_jit_ok), max(1, round(0.05 * n)))
    pattern[rng.choice(slow_jit_ok, n_jit, replace=False)] = 3

    # names
    names: list[str] = [""] * n
    for c, cat in enumerate(CATEGORIES):
        idx = np.flatnonzero(category == c)
        combos = [(a, b) for a in cat.adjectives for b in cat.nouns]
        picks = rng.permutation(len(combos))
        for j, i in enumerate(idx):
            adj, noun = combos[int(picks[j % len(combos)])]
            suffix = f" v{j // len(combos) + 1}" if j >= len(combos) else ""
            if pattern[i] == 3:
                names[i] = f"Personalised {adj} {noun}{suffix}"
            else:
                names[i] = f"{adj} {noun}{suffix}"

    lo = np.array([c.cost_range[0] for c in CATEGORIES])[category]
    hi = np.array([c.cost_range[1] for c in CATEGORIES])[category]
    unit_cost = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 2)
    unit_cost = np.where(pattern == 3, np.round(unit_cost * 1.6, 2), unit_cost)
    markup = rng.uniform(1.7, 2.8, n)
    unit_price = np.floor(unit_cost * markup) + 0.99

    # two discontinued SKUs among the slow / medium ones
    active = np.ones(n, bool)
    cand = np.flatnonzero((pattern == 1) | (pattern == 2))
    active[rng.choice(cand, 2, replace=False)] = False

    service_level = np.full(n, np.nan)
    n_sl = max(2, round(0.02 * n))
    quick = np.flatnonzero(((pattern == 0) | (pattern == 1)) & active)
    sl_idx = rng.choice(quick, n_sl, replace=False)
    service_level[sl_idx] = np.resize(np.array([0.99, 0.98, 0.995, 0.9]), n_sl)

    # suppliers
    main = np.array([c.suppliers[0] for c in CATEGORIES])[category]
    other = np.array([c.suppliers[1] for c in CATEGORIES])[category]
    share = np.array([c.main_share for c in CATEGORIES])[category]
    use_main = rng.random(n) < share
    pref_sup = np.where(use_main, main, other).astype(np.int64)
    alt = np.where(use_main, other, main).astype(np.int64)
    has_sec = (rng.random(n) < 0.30) & (pattern != 3)
    sec_sup = np.where(has_sec, alt, -1).astype(np.int64)
    base_lt = np.array([s.base_lead_time for s in SUPPLIERS])
    lead_pref = base_lt[pref_sup] + rng.integers(0, 3, n)
    lead_sec = np.where(has_sec, base_lt[alt] + rng.integers(1, 4, n), 0).astype(np.int64)

    # pack sizes and MOQs (MOQ a multiple of the pack)
    fast_opts = np.array([(6, 12), (12, 24), (12, 48), (24, 24), (10, 50), (24, 96)])
    med_opts = np.array([(1, 1), (1, 6), (6, 6), (6, 12), (12, 12), (1, 12)])
    slow_opts = np.array([(1, 1), (1, 1), (1, 2), (6, 6)])
    pm = np.ones((n, 2), np.int64)
    pm[pattern == 0] = fast_opts[rng.integers(0, len(fast_opts), int((pattern == 0).sum()))]
    pm[pattern == 1] = med_opts[rng.integers(0, len(med_opts), int((pattern == 1).sum()))]
    pm[pattern == 2] = slow_opts[rng.integers(0, len(slow_opts), int((pattern == 2).sum()))]
    pack, moq = pm[:, 0].copy(), pm[:, 1].copy()
    moq_sec = pack.copy()  # the second source sells single packs

    price_pref = unit_cost.copy()
    price_sec = np.where(has_sec, np.round(unit_cost * rng.uniform(1.05, 1.15, n), 2), np.nan)

    trend = np.zeros(n)
    quick_all = np.flatnonzero(pattern <= 1)
    trending = quick_all[rng.random(len(quick_all)) < 0.35]
    trend[trending] = rng.choice([-1.0, 1.0, 1.0], len(trending)) * rng.uniform(
        0.1, 0.5, len(trending)
    )

    only_wh1 = (pattern == 3) | ((pattern == 2) & (rng.random(n) < 0.1))

    sku_ids = np.array([f"SKU-{i + 1:04d}" for i in range(n)])
    item_sku = np.concatenate([np.arange(n), np.flatnonzero(~only_wh1)]).astype(np.int64)
    item_loc = np.concatenate([np.zeros(n, np.int64), np.ones(int((~only_wh1).sum()), np.int64)])
    order = np.lexsort((item_loc, item_sku))
    return _Catalogue(
        sku_ids=sku_ids,
        names=names,
        category=category,
        pattern=pattern,
        unit_cost=unit_cost,
        unit_price=unit_price,
        active=active,
        service_level=service_level,
        pref_sup=pref_sup,
        sec_sup=sec_sup,
        lead_pref=lead_pref.astype(np.int64),
        lead_sec=lead_sec,
        moq=moq,
        pack=pack,
        moq_sec=moq_sec,
        price_pref=price_pref,
        price_sec=price_sec,
        trend=trend,
        only_wh1=only_wh1,
        item_sku=item_sku[order],
        item_loc=item_loc[order],
    )


# ---------------------------------------------------------------------------
# demand


def _bump(doy: FloatArray, centre: float, width: float) -> FloatArray:
    d = np.abs(doy - centre)
    d = np.minimum(d, 365.25 - d)
    return np.exp(-0.5 * (d / width) ** 2)


def _season(kind: str, doy: FloatArray) -> FloatArray:
    """Yearly seasonal factor by day of year, normalised to mean 1 over a year."""

    def raw(x: FloatArray) -> FloatArray:
        if kind == "q4":  # Christmas, Valentine's day, Mother's day
            return 1 + 1.5 * _bump(x, 345, 18) + 0.4 * _bump(x, 41, 5) + 0.3 * _bump(x, 130, 5)
        if kind == "mild_q4":
            return 1 + 0.5 * _bump(x, 340, 25)
        if kind == "tech":  # Black Friday, Christmas, September phone launches
            return 1 + 0.8 * _bump(x, 332, 5) + 0.3 * _bump(x, 352, 10) + 0.25 * _bump(x, 262, 12)
        if kind == "b2b":  # back to school, Black Friday, summer lull, Christmas closure
            return (
                1
                + 0.45 * _bump(x, 245, 14)
                + 0.5 * _bump(x, 332, 5)
                - 0.3 * _bump(x, 215, 20)
                - 0.35 * _bump(x, 361, 5)
            )
        if kind == "winter":
            return 1 + 0.45 * np.cos(2 * np.pi * (x - 15) / 365.25)
        raise ValueError(kind)  # pragma: no cover

    return raw(doy) / float(np.mean(raw(np.arange(1, 366, dtype=np.float64))))


@dataclass
class _Demand:
    expected: FloatArray  # (days + _PAD) × series
    demand: IntArray  # days × series, drawn (before cancellations and censoring)
    base_mean: FloatArray
    smooth: BoolArray
    k: FloatArray  # negative binomial shape (smooth series)
    disp: FloatArray  # E[size²] / E[size] (intermittent series)
    line_mean: FloatArray  # mean units per sales line
    end_day: IntArray  # first day without demand (discontinued), else days + _PAD
    promotions: pd.DataFrame


def _demand(rng: np.random.Generator, cat: _Catalogue, start: np.datetime64, days: int) -> _Demand:
    n = len(cat.sku_ids)
    sku, loc = cat.item_sku, cat.item_loc
    m = len(sku)
    horizon = days + _PAD
    pat = cat.pattern[sku]
    smooth = pat <= 1

    # per SKU levels, then the WH2 share
    lvl_fast = _log_uniform(rng, 5.0, 40.0, n)
    lvl_med = _log_uniform(rng, 0.5, 5.0, n)
    p_slow = _log_uniform(rng, 0.03, 0.2, n)
    lumpy = rng.random(n) < 0.3
    size_slow = np.where(lumpy, rng.uniform(4.0, 10.0, n), rng.uniform(1.2, 3.0, n))
    p_slow = np.minimum(p_slow, 0.28 / size_slow)
    p_jit = _log_uniform(rng, 0.03, 0.1, n)
    size_jit = rng.uniform(1.0, 2.0, n)
    wh2_share = _log_uniform(rng, 0.25, 0.6, n)
    k_sku = np.where(cat.pattern == 0, rng.uniform(4.0, 15.0, n), rng.uniform(2.0, 8.0, n))
    line_sku = np.where(cat.pattern == 0, rng.uniform(3.0, 6.0, n), rng.uniform(1.2, 2.5, n))

    share = np.where(loc == 1, wh2_share[sku], 1.0)
    size_mean = np.where(pat == 3, size_jit[sku], size_slow[sku])
    p_occ = np.where(pat == 3, p_jit[sku], p_slow[sku]) * share
    level = np.select([pat == 0, pat == 1], [lvl_fast[sku], lvl_med[sku]], 0.0) * share
    base_mean = np.where(smooth, level, p_occ * size_mean)
    is_lumpy = lumpy[sku] & (pat == 2)
    mu = size_mean - 1.0
    size_var = np.where(is_lumpy, mu + mu**2 / 2.0, mu)
    disp = (size_var + size_mean**2) / size_mean

    # multiplicative profile: weekday × season × trend × promotion; zero once discontinued
    dates = start + np.arange(horizon).astype("timedelta64[D]")
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    doy = pd.DatetimeIndex(dates).day_of_year.to_numpy(dtype=np.float64)
    ccat = cat.category[sku]
    wd = np.array([np.array(c.weekday) / np.mean(c.weekday) for c in CATEGORIES])
    seas = np.stack([_season(c.season, doy) for c in CATEGORIES], axis=1)  # horizon × n_cat
    t_rel = (np.arange(horizon) - days)[:, None] / 365.25
    mult = wd[ccat][:, weekday].T * seas[:, ccat] * np.exp(cat.trend[sku][None, :] * t_rel)

    promos: list[tuple[int, int, float]] = []
    quick = np.flatnonzero((cat.pattern == 0) & cat.active)
    n_promo = min(len(quick), max(2, round(0.03 * n)))
    for s in rng.choice(quick, n_promo, replace=False):
        t0 = int(rng.integers(7, max(8, days - 14)))
        promos.append((int(s), t0, float(np.round(rng.uniform(2.0, 3.0), 2))))
    # two of them are scheduled again just after as-of: the plan must apply
    # the uplift it learned from their past promotion
    promos += [(s, days + 3, up) for s, _, up in promos[:2]]
    promo_mult = np.ones((horizon, m))
    for s, t0, up in promos:
        promo_mult[t0 : t0 + 7, sku == s] = up
    mult *= promo_mult

    end_day = np.full(m, horizon, np.int64)
    for s in np.flatnonzero(~cat.active):
        lo, hi = min(90, days // 3), max(min(240, days // 2), min(90, days // 3) + 1)
        end_day[sku == s] = days - int(rng.integers(lo, hi))
    alive = np.arange(horizon)[:, None] < end_day[None, :]
    mult *= alive

    p_t = np.minimum(p_occ[None, :] * mult, 0.95)
    expected = np.where(smooth[None, :], level[None, :] * mult, p_t * size_mean[None, :])

    # draws (all series drawn the same way, so the streams do not depend on the mix)
    gam = rng.gamma(np.broadcast_to(k_sku[sku], (days, m)), 1.0 / k_sku[sku])
    d_smooth = rng.poisson(expected[:days] * gam)
    occ = rng.random((days, m)) < p_t[:days]
    glump = np.where(is_lumpy[None, :], rng.gamma(2.0, 0.5, (days, m)), 1.0)
    d_int = occ * (1 + rng.poisson(mu[None, :] * glump))
    demand = np.where(smooth[None, :], d_smooth, d_int).astype(np.int64)

    promotions = pd.DataFrame(
        {
            "sku": pd.array([str(cat.sku_ids[s]) for s, _, _ in promos], dtype="string"),
            "start": pd.to_datetime([dates[t0] for _, t0, _ in promos]),
            "end": pd.to_datetime([dates[t0 + 6] for _, t0, _ in promos]),
            "uplift": [up for _, _, up in promos],
        }
    )
    return _Demand(
        expected=expected,
        demand=demand,
        base_mean=base_mean,
        smooth=smooth,
        k=k_sku[sku],
        disp=disp,
        line_mean=np.where(smooth, line_sku[sku], 20.0),
        end_day=end_day,
        promotions=promotions,
    )


# ---------------------------------------------------------------------------
# sales lines (before censoring)


@dataclass
class _Lines:
    t: IntArray
    item: IntArray
    qty: IntArray
    cancelled: BoolArray
    ret: BoolArray
    ret_delay: IntArray
    ret_restock: BoolArray
    ret_frac: FloatArray
    day_lo: IntArray  # lines of day t are [day_lo[t], day_lo[t + 1])


def _lines(rng: np.random.Generator, dem: _Demand, days: int) -> _Lines:
    """Split each series × day's demand into customer lines of random sizes."""
    t_idx, i_idx = np.nonzero(dem.demand)  # row-major: sorted by day, then series
    dq = dem.demand[t_idx, i_idx]
    n_lines = 1 + rng.binomial(dq - 1, np.minimum(1.0, 1.0 / dem.line_mean[i_idx]))
    gid = np.repeat(np.arange(len(dq)), n_lines)
    w = rng.exponential(1.0, len(gid))
    share = dq[gid] * w / np.bincount(gid, w)[gid]
    q = np.floor(share).astype(np.int64)
    rem = dq - np.bincount(gid, q, minlength=len(dq)).astype(np.int64)
    first = np.cumsum(n_lines) - n_lines
    q[first] += rem
    keep = q > 0
    t = t_idx[gid][keep]
    n = int(keep.sum())
    return _Lines(
        t=t,
        item=i_idx[gid][keep],
        qty=q[keep],
        cancelled=rng.random(n) < _P_CANCEL_LINE,
        ret=rng.random(n) < _P_RETURN,
        ret_delay=rng.integers(3, 31, n),
        ret_restock=rng.random(n) < _P_RESTOCKABLE,
        ret_frac=np.where(rng.random(n) < 0.75, 1.0, rng.uniform(0.3, 0.9, n)),
        day_lo=np.searchsorted(t, np.arange(days + 1)).astype(np.int64),
    )


# ---------------------------------------------------------------------------
# day-by-day inventory simulation

_ROLES: Final = ("normal", "reorder_due", "overstock", "discontinued", "jit")
_NORMAL, _REORDER_DUE, _OVERSTOCK, _DISCONTINUED, _JIT = range(5)


@dataclass
class _PurchaseOrders:
    """Purchase orders placed by the simulation (one list entry per PO)."""

    sup: list[int] = field(default_factory=list)
    loc: list[int] = field(default_factory=list)
    day: list[int] = field(default_factory=list)
    minute: list[int] = field(default_factory=list)  # time of day the PO was sent
    lead: list[int] = field(default_factory=list)  # declared lead time incl. receiving
    avail: list[int] = field(default_factory=list)  # day on hand (>= days: still open)
    cancelled: list[bool] = field(default_factory=list)
    line_po: list[IntArray] = field(default_factory=list)
    line_item: list[IntArray] = field(default_factory=list)
    line_qty: list[IntArray] = field(default_factory=list)
    line_recv: list[IntArray] = field(default_factory=list)

    def add(
        self,
        sup: int,
        loc: int,
        day: int,
        minute: int,
        lead: int,
        avail: int,
        cancelled: bool,
        items: IntArray,
        qty: IntArray,
        received: IntArray,
    ) -> None:
        self.line_po.append(np.full(len(items), len(self.sup), np.int64))
        self.line_item.append(items)
        self.line_qty.append(qty)
        self.line_recv.append(received)
        self.sup.append(sup)
        self.loc.append(loc)
        self.day.append(day)
        self.minute.append(minute)
        self.lead.append(lead)
        self.avail.append(avail)
        self.cancelled.append(cancelled)


@dataclass
class _Sim:
    """What the simulation produced."""

    hist: IntArray  # days × series, end-of-day available stock (open lines deducted)
    served: IntArray  # per sales line, units shipped or allocated
    pos: _PurchaseOrders
    r_line: IntArray  # returns: sales line, day, qty, restockable
    r_day: IntArray
    r_qty: IntArray
    r_restock: BoolArray
    role: IntArray  # per series, index into _ROLES


class _Simulator:
    """The shop's own replenishment and sales, one day at a time, all series at once.

    Each morning receipts and restockable returns go on hand; on a supplier's
    order days every series it supplies is reviewed with an (s, nQ) policy —
    s = expected demand over lead time + review period + z·σ·√(L + R), Q =
    ``cover`` days of demand rounded up to the pack, at least the MOQ — and
    the orders of a day are grouped into one PO per supplier × location,
    topped up to the supplier's minimum order value. The day's sales lines are
    then served in turn until the stock runs out (the rest is lost).

    Roles shape the state at ``as_of``: 'reorder due' series stop following
    the policy ``_ENDGAME_DAYS`` before the end and are run down to a small
    fraction of their lead-time demand; 'overstock' series get one order of
    ``_OVERSTOCK_DAYS`` days of demand some weeks before the end; 'jit' items
    keep one or two units; 'discontinued' ones stop selling and ordering.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        cat: _Catalogue,
        dem: _Demand,
        lines: _Lines,
        start: np.datetime64,
        days: int,
    ) -> None:
        self.rng, self.dem, self.lines, self.days = rng, dem, lines, days
        sku, loc = cat.item_sku, cat.item_loc
        m = len(sku)
        self.m, self.loc = m, loc
        self.horizon = days + _PAD
        pat = cat.pattern[sku]
        sup_fix = np.array(
            [s.order_processing_days + s.transport_days + s.receiving_days for s in SUPPLIERS]
        )
        self.sup_recv = np.array([s.receiving_days for s in SUPPLIERS])
        self.review = np.zeros((len(SUPPLIERS), 7), bool)
        for j, s in enumerate(SUPPLIERS):
            self.review[j, list(s.order_weekdays)] = True
        period = np.array([int(np.ceil(7 / len(s.order_weekdays))) for s in SUPPLIERS])

        self.pref, self.sec = cat.pref_sup[sku], cat.sec_sup[sku]
        self.lead = sup_fix[self.pref] + cat.lead_pref[sku]  # declared total lead time
        self.lead2 = np.where(
            self.sec >= 0, sup_fix[np.maximum(self.sec, 0)] + cat.lead_sec[sku], 0
        )
        self.lr = self.lead + period[self.pref]
        self.moq, self.pack, self.moq2 = cat.moq[sku], cat.pack[sku], cat.moq_sec[sku]
        self.price, self.price2 = cat.price_pref[sku], cat.price_sec[sku]
        self.z = rng.uniform(0.2, 1.8, m)
        self.cover = np.select(
            [pat == 0, pat == 1],
            [rng.uniform(7, 21, m), rng.uniform(14, 45, m)],
            rng.uniform(60, 150, m),
        )
        self.cum = np.vstack([np.zeros((1, m)), np.cumsum(dem.expected, axis=0)])

        # roles: per supplier a few 'reorder due' series, two overstocked ones
        role = np.zeros(m, np.int64)
        role[pat == 3] = _JIT
        role[dem.end_day < self.horizon] = _DISCONTINUED
        self.d_end = (self.cum[days] - self.cum[max(0, days - 28)]) / min(28, days)
        for j in range(len(SUPPLIERS)):
            mine = (role == _NORMAL) & (self.pref == j)
            quick = np.flatnonzero(mine & (pat <= 1) & (self.d_end > 0.3))
            other = np.flatnonzero(mine & (pat > 1) & (self.d_end > 0.05))
            chosen = rng.permutation(quick)[: max(3, round(0.12 * len(quick)))]
            if len(chosen) < 3:  # a small shop: top up with slower series
                chosen = np.concatenate([chosen, rng.permutation(other)[: 3 - len(chosen)]])
            role[chosen] = _REORDER_DUE
        over = np.flatnonzero((role == _NORMAL) & (pat == 1) & (loc == 0))
        role[rng.choice(over, min(2, len(over)), replace=False)] = _OVERSTOCK
        self.role = role
        self.tau = rng.uniform(0.3, 0.8, m) * self.d_end * self.lead  # target IP at as_of
        self.t_over = np.where(role == _OVERSTOCK, np.maximum(1, days - 50 - self.lead), -1)
        self.endgame = days - min(_ENDGAME_DAYS, days // 2)

        # initial state: somewhere in an order cycle
        ar = np.arange(m)
        w0 = self._window(0, self.lr, ar)
        var0 = self._variance(w0 / self.lr, ar)
        q0 = np.maximum(
            self.moq, np.ceil(self._window(0, 28, ar) / 28 * self.cover / self.pack) * self.pack
        )
        self.on_hand = np.ceil(w0 + self.z * np.sqrt(var0 * self.lr) + rng.random(m) * q0).astype(
            np.int64
        )
        self.on_hand[role == _JIT] = 2
        self.on_order = np.zeros(m, np.int64)
        self.due = np.zeros((self.horizon + 60, m), np.int64)  # ordered qty by arrival day
        self.recv = np.zeros((self.horizon + 60, m), np.int64)  # received qty by arrival day
        self.ret_in = np.zeros((self.horizon + 60, m), np.int64)  # restockable returns
        self.hist = np.zeros((days, m), np.int64)
        self.served = np.zeros(len(lines.qty), np.int64)
        self.sell_qty = np.where(lines.cancelled, 0, lines.qty)
        self.weekday0 = int((start.astype(np.int64) + 3) % 7)
        self.pos = _PurchaseOrders()
        self.late_open_done = False
        self.returns: list[tuple[IntArray, IntArray, IntArray, BoolArray]] = []

    def _window(self, t: int, w: IntArray | int, idx: IntArray) -> FloatArray:
        """Expected demand of series ``idx`` over days [t, t + w)."""
        end = np.minimum(t + np.asarray(w), self.horizon)
        return np.asarray(self.cum[end, idx] - self.cum[t, idx], dtype=np.float64)

    def _variance(self, dbar: FloatArray, idx: IntArray) -> FloatArray:
        """Daily demand variance: negative binomial, or compound Bernoulli."""
        dem = self.dem
        var = np.where(
            dem.smooth[idx], dbar * (1 + dbar / dem.k[idx]), dbar * dem.disp[idx] - dbar**2
        )
        return np.asarray(np.maximum(var, 0.0), dtype=np.float64)

    def run(self) -> _Sim:
        for t in range(self.days):
            self.on_hand += self.recv[t] + self.ret_in[t]
            self.on_order -= self.due[t]
            qty, use_sec = self._order_quantities(t)
            if (qty > 0).any():
                self._place(t, qty, use_sec)
            self._sell(t)
            self.hist[t] = self.on_hand
        self._ensure_open_po()
        parts: list[list[IntArray]] = [[np.zeros(0, np.int64)] for _ in range(3)]
        restock: list[BoolArray] = [np.zeros(0, bool)]
        for r_line, r_day, r_qty, r_restock in self.returns:
            parts[0].append(r_line)
            parts[1].append(r_day)
            parts[2].append(r_qty)
            restock.append(r_restock)
        return _Sim(
            hist=self.hist,
            served=self.served,
            pos=self.pos,
            r_line=np.concatenate(parts[0]),
            r_day=np.concatenate(parts[1]),
            r_qty=np.concatenate(parts[2]),
            r_restock=np.concatenate(restock),
            role=self.role,
        )

    def _order_quantities(self, t: int) -> tuple[IntArray, BoolArray]:
        """Units to order today per series, and whether from the second source."""
        m, role, rng, days = self.m, self.role, self.rng, self.days
        qty = np.zeros(m, np.int64)
        use_sec = np.zeros(m, bool)
        rev = self.review[self.pref, (self.weekday0 + t) % 7] & (t < self.dem.end_day)
        ip = self.on_hand + self.on_order

        # (s, nQ) policy
        idx = np.flatnonzero(rev & ((role != _REORDER_DUE) | (t < self.endgame)) & (role != _JIT))
        if len(idx):
            lr = self.lr[idx]
            w = self._window(t, lr, idx)
            s = w + self.z[idx] * np.sqrt(self._variance(w / lr, idx) * lr)
            d28 = self._window(t, 28, idx) / 28
            pack = self.pack[idx]
            q = np.maximum(self.moq[idx], np.ceil(d28 * self.cover[idx] / pack) * pack)
            trig = ip[idx] < s
            nq = np.maximum(1, np.ceil((s - ip[idx]) / q))
            qty[idx] = np.where(trig, nq * q, 0).astype(np.int64)
            use_sec[idx] = trig & (self.sec[idx] >= 0) & (rng.random(len(idx)) < _P_SECOND_SOURCE)
        # 'reorder due' endgame: order up to tau + demand until as_of, no further
        idx = np.flatnonzero(rev & (role == _REORDER_DUE) & (t >= self.endgame))
        if len(idx):
            horizon = np.minimum(self.lr[idx] + 7, days - t)
            w = self._window(t, horizon, idx)
            # aim half a σ low: demand short of the forecast leaves the IP above tau
            sigma = np.sqrt(self._variance(w / horizon, idx) * horizon)
            target = self.tau[idx] + w - 0.5 * sigma
            q = np.floor((target - ip[idx]) / self.pack[idx]) * self.pack[idx]
            qty[idx] = np.where(q >= self.moq[idx], q, 0).astype(np.int64)
        # made to order: keep one or two units
        idx = np.flatnonzero(rev & (role == _JIT))
        if len(idx):
            qty[idx] = np.where(ip[idx] < 2, np.maximum(self.moq[idx], 2 - ip[idx]), 0)
        # one excessive order
        idx = np.flatnonzero(self.t_over == t)
        if len(idx):
            pack = self.pack[idx]
            qty[idx] += (np.ceil(self.d_end[idx] * _OVERSTOCK_DAYS / pack) * pack).astype(np.int64)
            use_sec[idx] = False
        # the second source sells single packs
        pack = self.pack[use_sec]
        qty[use_sec] = np.maximum(self.moq2[use_sec], np.ceil(qty[use_sec] / pack) * pack)
        return qty, use_sec

    def _delay(self, supplier: DemoSupplier) -> int:
        """Days a delivery is late (negative: early)."""
        u = self.rng.random()
        if u < supplier.p_early:
            return -1
        if u < supplier.p_early + supplier.p_late:
            return int(self.rng.integers(1, supplier.late_max + 1))
        if u < supplier.p_early + supplier.p_late + supplier.p_outlier:
            lo, hi = supplier.outlier_days
            return int(self.rng.integers(lo, hi + 1))
        return 0

    def _place(self, t: int, qty: IntArray, use_sec: BoolArray) -> None:
        """One PO per supplier × location for today's order quantities."""
        rng, days, pack = self.rng, self.days, self.pack
        ordered = np.flatnonzero(qty > 0)
        sup = np.where(use_sec[ordered], self.sec[ordered], self.pref[ordered])
        key = sup * len(LOCATIONS) + self.loc[ordered]
        for kk in np.unique(key):
            its = ordered[key == kk]
            j = int(kk) // len(LOCATIONS)
            supplier = SUPPLIERS[j]
            po_lead = int(np.where(use_sec[its], self.lead2[its], self.lead[its]).max())
            line_price = np.where(use_sec[its], self.price2[its], self.price[its])
            lq = qty[its].copy()
            value = float((lq * line_price).sum())
            # never top up a made-to-order item or one being run down
            stockable = (self.role[its] != _JIT) & (self.role[its] != _REORDER_DUE)
            if value < supplier.min_order_value and stockable.any():
                top = int(np.argmax(np.where(stockable, line_price * pack[its], -1.0)))
                unit = line_price[top] * pack[its][top]
                lq[top] += int(np.ceil((supplier.min_order_value - value) / unit)) * pack[its][top]
            recv_days = int(self.sup_recv[j])
            avail = t + max(recv_days + 1, po_lead + self._delay(supplier))
            dock_expected = t + po_lead - recv_days
            if not self.late_open_done and days - 7 <= dock_expected <= days - 1:
                avail = days + recv_days + int(rng.integers(1, 8))  # late and still open
                self.late_open_done = True
            cancelled = (avail < days) and rng.random() < _P_CANCEL_PO
            short = (rng.random(len(its)) < _P_SHORT_DELIVERY) & (lq > pack[its])
            got = np.where(
                short, np.floor(lq * rng.uniform(0.4, 0.9, len(its)) / pack[its]) * pack[its], lq
            ).astype(np.int64)
            if cancelled:
                got[:] = 0
            else:
                self.on_order[its] += lq
                self.due[avail, its] += lq
                self.recv[avail, its] += got
            minute = int(rng.integers(9 * 60, 11 * 60))
            self.pos.add(j, int(kk) % len(LOCATIONS), t, minute, po_lead, int(avail),
                         bool(cancelled), its, lq, got)  # fmt: skip

    def _sell(self, t: int) -> None:
        """Serve today's lines in turn until the stock runs out; schedule returns."""
        lines = self.lines
        lo, hi = int(lines.day_lo[t]), int(lines.day_lo[t + 1])
        if hi == lo:
            return
        it = lines.item[lo:hi]  # sorted by series within the day
        q = self.sell_qty[lo:hi]
        new = np.empty(hi - lo, bool)
        new[0] = True
        new[1:] = it[1:] != it[:-1]
        starts = np.flatnonzero(new)
        sizes = np.diff(np.append(starts, hi - lo))
        before = np.cumsum(q) - q
        prior = before - np.repeat(before[starts], sizes)  # units asked earlier today
        got = np.clip(self.on_hand[it] - prior, 0, q)
        self.served[lo:hi] = got
        self.on_hand -= np.bincount(it, got, minlength=self.m).astype(np.int64)

        rsel = np.flatnonzero(lines.ret[lo:hi] & (got > 0))
        if len(rsel):
            li = lo + rsel
            rday = t + lines.ret_delay[li]
            ok = rday < self.days
            li, rday = li[ok], rday[ok]
            rq = np.maximum(1, np.floor(got[li - lo] * lines.ret_frac[li])).astype(np.int64)
            rs = lines.ret_restock[li]
            np.add.at(self.ret_in, (rday[rs], lines.item[li][rs]), rq[rs])
            self.returns.append((li, rday, rq, rs))

    def _ensure_open_po(self) -> None:
        """Every supplier has something under way at as_of: if not, yesterday's PO."""
        pos, days = self.pos, self.days
        under_way = {
            pos.sup[p] for p in range(len(pos.sup)) if pos.avail[p] >= days and not pos.cancelled[p]
        }
        ip = self.on_hand + self.on_order
        for j in range(len(SUPPLIERS)):
            if j in under_way:
                continue
            alive = (self.pref == j) & (self.dem.end_day >= self.horizon)
            cand = np.flatnonzero(alive & (self.role == _NORMAL))  # leave 'reorder due' due
            if len(cand) == 0:
                cand = np.flatnonzero(alive)
            if len(cand) == 0:  # pragma: no cover - every supplier has live SKUs
                continue
            ratio = ip[cand] / np.maximum(self._window(days, self.lr[cand], cand), 1e-9)
            its = np.sort(cand[np.argsort(ratio, kind="stable")[:3]])
            its = its[self.loc[its] == self.loc[its[0]]]
            d28 = self._window(days, 28, its) / 28
            pack = self.pack[its]
            lq = np.maximum(self.moq[its], np.ceil(d28 * self.cover[its] / pack) * pack)
            lead = int(self.lead[its].max())
            minute = 16 * 60 + int(self.rng.integers(0, 120))
            pos.add(j, int(self.loc[its[0]]), days - 1, minute, lead, days + lead, False, its,
                    lq.astype(np.int64), np.zeros(len(its), np.int64))  # fmt: skip


# ---------------------------------------------------------------------------
# assembly


def _strings(values: npt.ArrayLike) -> pd.arrays.StringArray:
    return pd.array(np.asarray(values, dtype=object), dtype="string")  # type: ignore[return-value]


def _stamps(
    start: np.datetime64, day: npt.ArrayLike, seconds: npt.ArrayLike = 0
) -> npt.NDArray[np.datetime64]:
    """``start`` + ``day`` days + ``seconds`` seconds, as datetime64[ns]."""
    secs = np.asarray(day, np.int64) * 86_400 + np.asarray(seconds, np.int64)
    return (start.astype("datetime64[s]") + secs.astype("timedelta64[s]")).astype("datetime64[ns]")


def _order_ids(numbers: npt.ArrayLike) -> list[str]:
    return [f"SO-{int(x):06d}" for x in np.asarray(numbers)]


@dataclass
class _Orders:
    """Customer orders built from the served lines."""

    sales: pd.DataFrame  # contract columns, with order_no instead of order_id
    on_hand: IntArray  # days × series end-of-day on hand (open lines still there)
    allocated: IntArray  # per series, open units
    line_order: IntArray  # per simulated line, its order number (-1 if dropped)
    back: IntArray  # series with an uncovered open 'jit' order
    back_qty: IntArray
    n_numbers: int  # order numbers used


def _customer_orders(
    rng: np.random.Generator,
    cat: _Catalogue,
    lines: _Lines,
    sim: _Sim,
    start: np.datetime64,
    days: int,
) -> _Orders:
    """Group the lines of a day and location into orders; set channel and status."""
    loc, m = cat.item_loc, len(cat.item_sku)
    li = np.flatnonzero(lines.cancelled | (sim.served > 0))
    canc = lines.cancelled[li]
    item = lines.item[li]
    order = np.lexsort((rng.random(len(li)), canc, loc[item], lines.t[li]))
    li, canc, item = li[order], canc[order], item[order]
    t, lc = lines.t[li], loc[item]
    qty = np.where(canc, lines.qty[li], sim.served[li])
    n = len(li)
    brk = np.ones(n, bool)
    brk[1:] = (
        (t[1:] != t[:-1])
        | (lc[1:] != lc[:-1])
        | canc[1:]
        | canc[:-1]
        | (rng.random(n - 1) < _P_NEW_ORDER)
    )
    while True:  # one line per SKU per order
        oid = np.cumsum(brk) - 1
        key = oid * m + item
        srt = np.argsort(key, kind="stable")
        dup = np.flatnonzero(key[srt][1:] == key[srt][:-1])
        if len(dup) == 0:
            break
        brk[srt[1:][dup]] = True
    first = np.flatnonzero(brk)
    n_orders = len(first)
    o_t, o_canc = t[first], canc[first]
    o_sec = rng.integers(6 * 3600, 24 * 3600 - 60, n_orders)
    o_channel = rng.choice(len(CHANNELS), n_orders, p=_CHANNEL_P)
    if n:
        o_channel = np.where(np.maximum.reduceat(qty, first) >= 12, 3, o_channel)  # b2b
    ago = days - o_t
    open_p = np.where(ago <= 3, np.asarray(_OPEN_P)[np.clip(3 - ago, 0, 2)], 0.0)
    o_open = ~o_canc & (rng.random(n_orders) < open_p)

    # open lines are still on hand (allocated): add them back to the stock
    l_open = o_open[oid]
    added = np.zeros((days, m), np.int64)
    np.add.at(added, (t[l_open], item[l_open]), qty[l_open])
    on_hand = sim.hist + np.cumsum(added, axis=0)
    allocated = added.sum(axis=0)

    # open customer orders of 'jit' items that the stock does not cover
    jit = np.flatnonzero((sim.role == _JIT) & (loc == 0))
    jit = jit[np.argsort(on_hand[-1, jit] - allocated[jit], kind="stable")][:4]
    back = np.sort(rng.choice(jit, min(2, len(jit)), replace=False) if len(jit) else jit)
    b_qty = np.maximum(0, on_hand[-1, back] - allocated[back]) + rng.integers(1, 3, len(back))
    allocated[back] += b_qty

    # number all orders by time
    all_t = np.concatenate([o_t, np.full(len(back), days - 1)])
    all_sec = np.concatenate([o_sec, rng.integers(18 * 3600, 23 * 3600, len(back))])
    rank = np.empty(len(all_t), np.int64)
    rank[np.lexsort((all_sec, all_t))] = np.arange(len(all_t)) + 1
    o_status = np.where(o_canc, "cancelled", np.where(o_open, "open", "shipped"))
    b_orders = n_orders + np.arange(len(back))
    sales = pd.DataFrame(
        {
            "order_no": rank[np.concatenate([oid, b_orders])],
            "line_no": np.concatenate([np.arange(n) - first[oid] + 1, np.ones(len(back), int)]),
            "sku": cat.sku_ids[cat.item_sku[np.concatenate([item, back])]],
            "location_id": np.asarray(LOCATIONS)[np.concatenate([lc, loc[back]])],
            "channel": np.asarray(CHANNELS)[
                np.concatenate([o_channel[oid], np.where(b_qty >= 12, 3, 0)])
            ],
            "qty": np.concatenate([qty, b_qty]).astype(np.float64),
            "ordered_at": _stamps(start, all_t, all_sec)[np.concatenate([oid, b_orders])],
            "status": np.concatenate([o_status[oid], np.full(len(back), "open")]),
        }
    )
    line_order = np.full(len(lines.qty), -1, np.int64)
    line_order[li] = rank[oid]
    return _Orders(
        sales=sales,
        on_hand=on_hand,
        allocated=allocated,
        line_order=line_order,
        back=back,
        back_qty=b_qty,
        n_numbers=len(all_t),
    )


def _returns_frame(
    rng: np.random.Generator,
    cat: _Catalogue,
    lines: _Lines,
    sim: _Sim,
    orders: _Orders,
    start: np.datetime64,
) -> pd.DataFrame:
    item = lines.item[sim.r_line]
    returns = pd.DataFrame(
        {
            "order_no": orders.line_order[sim.r_line],
            "sku": cat.sku_ids[cat.item_sku[item]],
            "location_id": np.asarray(LOCATIONS)[cat.item_loc[item]],
            "qty": sim.r_qty.astype(np.float64),
            "returned_at": _stamps(start, sim.r_day, rng.integers(9 * 3600, 17 * 3600, len(item))),
            "restockable": sim.r_restock,
        }
    ).sort_values(["returned_at", "order_no"], kind="stable")
    returns.insert(0, "order_id", _order_ids(returns.pop("order_no").to_numpy()))
    return returns


def _purchase_frames(
    rng: np.random.Generator, cat: _Catalogue, pos: _PurchaseOrders, start: np.datetime64, days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    sup = np.asarray(pos.sup, np.int64)
    day = np.asarray(pos.day, np.int64)
    avail = np.asarray(pos.avail, np.int64)
    cancelled = np.asarray(pos.cancelled, bool)
    recv_days = np.array([s.receiving_days for s in SUPPLIERS])[sup]
    received = ~cancelled & (avail < days)
    status = np.where(
        cancelled,
        "cancelled",
        np.where(received, "received", np.where(day >= days - 2, "sent", "confirmed")),
    )
    ordered_at = _stamps(start, day, np.asarray(pos.minute, np.int64) * 60)
    lead_to_dock = (np.asarray(pos.lead, np.int64) - recv_days) * 86_400
    po_ids = np.array([f"PO-{i + 1:05d}" for i in range(len(sup))])
    purchase_orders = pd.DataFrame(
        {
            "po_id": po_ids,
            "supplier_id": np.array([s.supplier_id for s in SUPPLIERS])[sup],
            "location_id": np.asarray(LOCATIONS)[np.asarray(pos.loc, np.int64)],
            "status": status,
            "ordered_at": ordered_at,
            "expected_at": ordered_at + lead_to_dock.astype("timedelta64[s]"),
        }
    )
    empty = [np.zeros(0, np.int64)]
    po = np.concatenate(pos.line_po or empty)
    item = np.concatenate(pos.line_item or empty)
    got = np.concatenate(pos.line_recv or empty)
    # at the dock receiving_days before the goods are on hand
    rec_at = _stamps(start, avail - recv_days, rng.integers(7 * 3600, 12 * 3600, len(sup)))
    lines = pd.DataFrame(
        {
            "po_id": po_ids[po],
            "line_no": np.arange(len(po)) - np.searchsorted(po, po, side="left") + 1,
            "sku": cat.sku_ids[cat.item_sku[item]],
            "qty_ordered": np.concatenate(pos.line_qty or empty).astype(np.float64),
            "qty_received": np.where(received[po], got, 0).astype(np.float64),
            "received_at": np.where(received[po], rec_at[po], np.datetime64("NaT", "ns")),
        }
    )
    return purchase_orders, lines


def _master_frames(
    rng: np.random.Generator, cat: _Catalogue
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    suppliers = pd.DataFrame(
        {
            "order_days": [
                ",".join(model.WEEKDAYS[d] for d in s.order_weekdays) for s in SUPPLIERS
            ],
            "order_cost": [s.order_cost for s in SUPPLIERS],
            "supplier_id": [s.supplier_id for s in SUPPLIERS],
            "name": [s.name for s in SUPPLIERS],
            "email": [s.email for s in SUPPLIERS],
            "currency": "EUR",
            "min_order_value": [s.min_order_value for s in SUPPLIERS],
            "order_processing_days": [float(s.order_processing_days) for s in SUPPLIERS],
            "transport_days": [float(s.transport_days) for s in SUPPLIERS],
            "receiving_days": [float(s.receiving_days) for s in SUPPLIERS],
        }
    )
    products = pd.DataFrame(
        {
            "sku": cat.sku_ids,
            "name": cat.names,
            "category": np.array([c.name for c in CATEGORIES])[cat.category],
            "unit_cost": cat.unit_cost,
            "unit_price": cat.unit_price,
            "active": cat.active,
            "replenishment_mode": np.where(cat.pattern == 3, "jit", "stock"),
            "service_level": cat.service_level,
        }
    )
    n = len(cat.sku_ids)
    sup_ids = np.array([s.supplier_id for s in SUPPLIERS])
    prefix = np.array([s.sku_prefix for s in SUPPLIERS])
    sec = np.flatnonzero(cat.sec_sup >= 0)
    codes = rng.integers(10_000, 100_000, n + len(sec))
    sp_sup = np.concatenate([cat.pref_sup, cat.sec_sup[sec]])
    supplier_products = pd.DataFrame(
        {
            "sku": cat.sku_ids[np.concatenate([np.arange(n), sec])],
            "supplier_id": sup_ids[sp_sup],
            "supplier_sku": [f"{p}-{c}" for p, c in zip(prefix[sp_sup], codes, strict=True)],
            "lead_time_days": np.concatenate([cat.lead_pref, cat.lead_sec[sec]]).astype(float),
            "moq": np.concatenate([cat.moq, cat.moq_sec[sec]]).astype(np.float64),
            "pack_size": np.concatenate([cat.pack, cat.pack[sec]]).astype(np.float64),
            "unit_price": np.concatenate([cat.price_pref, cat.price_sec[sec]]),
            "priority": np.concatenate([np.ones(n, np.int64), np.full(len(sec), 2)]),
        }
    ).sort_values(["sku", "priority"], kind="stable")
    return suppliers, products, supplier_products


def _stock_frames(
    cat: _Catalogue, orders: _Orders, as_of: dt.date, day_dates: npt.NDArray[np.datetime64]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    sku, loc = cat.item_sku, cat.item_loc
    days = len(day_dates)
    stock_levels = pd.DataFrame(
        {
            "sku": cat.sku_ids[sku],
            "location_id": np.asarray(LOCATIONS)[loc],
            "on_hand": orders.on_hand[-1].astype(np.float64),
            "allocated": orders.allocated.astype(np.float64),
            "as_of": np.full(len(sku), np.datetime64(as_of, "D").astype("datetime64[ns]")),
        }
    )
    stock_history = pd.DataFrame(
        {
            "sku": cat.sku_ids[np.repeat(sku, days)],
            "location_id": np.asarray(LOCATIONS)[np.repeat(loc, days)],
            "date": np.tile(day_dates, len(sku)),
            "on_hand": orders.on_hand.T.ravel().astype(np.float64),
        }
    )
    return stock_levels, stock_history


def simulate_demo(
    as_of: dt.date,
    *,
    seed: int = 7,
    n_skus: int = 200,
    days: int = 730,
    with_defects: bool = True,
) -> DemoShop:
    """The demo snapshot (see :func:`generate_demo`) and the truth behind it."""
    if not 20 <= n_skus <= 9999:
        raise ValueError("n_skus must be between 20 and 9999")
    if days < 60:
        raise ValueError("days must be >= 60")
    rng_cat, rng_dem, rng_lines, rng_sim, rng_out, rng_bad = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    start = np.datetime64(as_of - dt.timedelta(days=days), "D")
    day_dates = (start + np.arange(days).astype("timedelta64[D]")).astype("datetime64[ns]")
    cat = _catalogue(rng_cat, n_skus)
    dem = _demand(rng_dem, cat, start, days)
    lines = _lines(rng_lines, dem, days)
    sim = _Simulator(rng_sim, cat, dem, lines, start, days).run()

    orders = _customer_orders(rng_out, cat, lines, sim, start, days)
    returns = _returns_frame(rng_out, cat, lines, sim, orders, start)
    purchase_orders, purchase_order_lines = _purchase_frames(rng_out, cat, sim.pos, start, days)
    suppliers, products, supplier_products = _master_frames(rng_out, cat)
    stock_levels, stock_history = _stock_frames(cat, orders, as_of, day_dates)

    sales = orders.sales
    defects = pd.DataFrame({"table": [], "key": [], "defect": []}, dtype="string")
    if with_defects:
        sales, supplier_products, defects = _add_defects(
            rng_bad, cat, sales, supplier_products, start, as_of, days, orders.n_numbers
        )
    sales = sales.sort_values(["order_no", "line_no"], kind="stable")
    sales.insert(0, "order_id", _order_ids(sales.pop("order_no").to_numpy()))

    frames = {
        "suppliers": suppliers,
        "products": products,
        "supplier_products": supplier_products,
        "stock_levels": stock_levels,
        "purchase_orders": purchase_orders,
        "purchase_order_lines": purchase_order_lines,
        "sales_order_lines": sales,
        "returns": returns,
        "stock_history": stock_history,
        "promotions": pd.DataFrame(
            {
                "promo_id": [f"PROMO-{i + 1:03d}" for i in range(len(dem.promotions))],
                "sku": dem.promotions["sku"],
                "location_id": None,
                "start_date": dem.promotions["start"],
                "end_date": dem.promotions["end"],
                "kind": "promotion",
            }
        ),
    }
    snapshot = model.ErpSnapshot(
        **{name: model.coerce(name, f.reset_index(drop=True)) for name, f in frames.items()}
    )
    truth = _truth(cat, dem, lines, sim, orders, day_dates, defects)
    return DemoShop(snapshot=snapshot, truth=truth)


def _truth(
    cat: _Catalogue,
    dem: _Demand,
    lines: _Lines,
    sim: _Sim,
    orders: _Orders,
    day_dates: npt.NDArray[np.datetime64],
    defects: pd.DataFrame,
) -> DemoTruth:
    days, m = sim.hist.shape
    sku, loc = cat.item_sku, cat.item_loc
    back_days = np.full(len(orders.back), days - 1)
    keep = ~lines.cancelled
    demand = np.zeros((days, m), np.int64)
    np.add.at(demand, (lines.t[keep], lines.item[keep]), lines.qty[keep])
    np.add.at(demand, (back_days, orders.back), orders.back_qty)  # open backorders
    sold = np.zeros((days, m), np.int64)
    np.add.at(sold, (lines.t, lines.item), sim.served)
    np.add.at(sold, (back_days, orders.back), orders.back_qty)
    items = pd.DataFrame(
        {
            "sku": _strings(cat.sku_ids[sku]),
            "location_id": _strings(np.asarray(LOCATIONS)[loc]),
            "category": _strings(np.array([c.name for c in CATEGORIES])[cat.category[sku]]),
            "pattern": _strings(np.asarray(PATTERNS)[cat.pattern[sku]]),
            "supplier_id": _strings(
                np.array([s.supplier_id for s in SUPPLIERS])[cat.pref_sup[sku]]
            ),
            "base_mean": dem.base_mean,
            "trend": cat.trend[sku],
            "role": _strings(np.asarray(_ROLES)[sim.role]),
        }
    )
    return DemoTruth(
        items=items,
        promotions=dem.promotions,
        dates=pd.DatetimeIndex(day_dates),
        expected=np.ascontiguousarray(dem.expected[:days]),
        demand=demand,
        sold=sold,
        defects=defects.reset_index(drop=True),
    )


def _add_defects(
    rng: np.random.Generator,
    cat: _Catalogue,
    sales: pd.DataFrame,
    supplier_products: pd.DataFrame,
    start: np.datetime64,
    as_of: dt.date,
    days: int,
    n_numbers: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Append the rows of :data:`DEFECTS`; return sales, supplier_products and
    the defect list."""
    fast = np.flatnonzero((cat.pattern <= 1) & cat.active)
    neg_sku, future_sku = (str(s) for s in cat.sku_ids[rng.choice(fast, 2, replace=False)])
    day_neg = days // 2
    day_unknown = days - 10
    future = np.datetime64(as_of + dt.timedelta(days=2), "D").astype("datetime64[ns]")
    bad_sales = pd.DataFrame(
        {
            "order_no": n_numbers + np.arange(1, 4),
            "line_no": [1, 1, 1],
            "sku": [neg_sku, _UNKNOWN_SKU, future_sku],
            "location_id": ["WH1", "WH1", "WH2"],
            "channel": ["web", "shopify", "woocommerce"],
            "qty": [-2.0, 1.0, 1.0],
            "ordered_at": [
                _stamps(start, np.array([day_neg]), 14 * 3600 + 5 * 60)[0],
                _stamps(start, np.array([day_unknown]), 11 * 3600 + 17 * 60)[0],
                future + np.timedelta64(10 * 3600 + 30 * 60, "s"),
            ],
            "status": ["shipped", "shipped", "open"],
        }
    )
    no_second = np.setdiff1d(
        np.arange(len(cat.sku_ids)), np.flatnonzero(cat.sec_sup >= 0), assume_unique=True
    )
    bad_sku = str(cat.sku_ids[rng.choice(no_second)])
    bad_sp = pd.DataFrame(
        {
            "sku": [bad_sku],
            "supplier_id": [_UNKNOWN_SUPPLIER],
            "supplier_sku": ["ZZ-00000"],
            "lead_time_days": [5.0],
            "moq": [1.0],
            "pack_size": [1.0],
            "unit_price": [float(cat.unit_cost[int(bad_sku[4:]) - 1])],
            "priority": [2],
        }
    )
    ids = _order_ids(bad_sales["order_no"].to_numpy())
    defects = pd.DataFrame(
        {
            "table": ["sales_order_lines"] * 3 + ["supplier_products"],
            "key": [f"{ids[0]}/1", f"{ids[1]}/1", f"{ids[2]}/1", f"{bad_sku}/{_UNKNOWN_SUPPLIER}"],
            "defect": ["negative_qty", "unknown_sku", "future_date", "unknown_supplier"],
        },
        dtype="string",
    )
    return (
        pd.concat([sales, bad_sales], ignore_index=True),
        pd.concat([supplier_products, bad_sp], ignore_index=True),
        defects,
    )
