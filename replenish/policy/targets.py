"""Service targets per ABC × XYZ cell, and the suggested replenishment mode.

ABC ranks items by annual consumption value (what a stockout costs the
business), XYZ by the variability of their demand (what a unit of service
costs in safety stock). The target of a cell is set from its ABC class and
shaded by its XYZ class (Silver, Pyke & Thomas, *Inventory and Production
Management in Supply Chains*, 4th ed.: differentiate service by class, the
A items most; the ABC–XYZ matrix of inventory practice)::

    target(cell) = 1 − (1 − target(class)) · shortfall_factor(XYZ)

i.e. an X item (steady demand, cheap to protect) is allowed half the
shortfall of its class, a Z item (erratic) one and a half times as much.
With the default class targets A 0.98, B 0.95, C 0.90 and factors
X 0.5, Y 1, Z 1.5 this gives the default matrix

=====  =====  =====  =====
class  X      Y      Z
=====  =====  =====  =====
A      0.99   0.98   0.97
B      0.975  0.95   0.925
C      0.95   0.90   0.85
=====  =====  =====  =====

A cell given explicitly (key ``'AX'``) beats the value derived from its
class; a per-SKU override and the product's own ``service_level`` beat both.
An unknown XYZ class counts as ``'Y'`` (factor 1: the class target).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ABC_CLASSES",
    "DEFAULT_FILL_RATES",
    "DEFAULT_SERVICE_LEVELS",
    "DEFAULT_XYZ_SHORTFALL",
    "XYZ_CLASSES",
    "cell_targets",
    "check_targets",
    "resolve_targets",
    "suggest_mode",
]

ABC_CLASSES = ("A", "B", "C")
XYZ_CLASSES = ("X", "Y", "Z")
#: Cycle service level per ABC class (probability of no stockout per cycle).
DEFAULT_SERVICE_LEVELS: Mapping[str, float] = {"A": 0.98, "B": 0.95, "C": 0.90}
#: Fill rate per ABC class (fraction of demand served from stock).
DEFAULT_FILL_RATES: Mapping[str, float] = {"A": 0.99, "B": 0.98, "C": 0.95}
#: Multiplier of the class's allowed shortfall (1 − target) per XYZ class.
DEFAULT_XYZ_SHORTFALL: Mapping[str, float] = {"X": 0.5, "Y": 1.0, "Z": 1.5}

TextArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def check_targets(name: str, targets: Mapping[str, float]) -> dict[str, float]:
    """Validate class/cell targets: keys 'A'..'C' or cells 'AX'..'CZ',
    values strictly between 0 and 1. Returns a plain dict (keys upper-case)."""
    cells = {a + x for a in ABC_CLASSES for x in XYZ_CLASSES}
    out: dict[str, float] = {}
    for key, value in targets.items():
        k = str(key).strip().upper()
        if k not in ABC_CLASSES and k not in cells:
            raise ValueError(
                f"{name}: unknown key {key!r}; use an ABC class ('A', 'B', 'C') "
                "or an ABC×XYZ cell ('AX' … 'CZ')"
            )
        v = float(value)
        if not 0 < v < 1:
            raise ValueError(f"{name}[{key!r}] must be in (0, 1), got {value}")
        out[k] = v
    return out


def cell_targets(
    targets: Mapping[str, float], xyz_shortfall: Mapping[str, float]
) -> dict[str, tuple[float, str]]:
    """The target and its source ('cell' or 'class') of all nine cells.

    ``targets`` must hold the three classes (cells optional).

    >>> m = cell_targets({"A": 0.98, "B": 0.95, "C": 0.90, "CZ": 0.8},
    ...                  {"X": 0.5, "Y": 1.0, "Z": 1.5})
    >>> m["AX"], m["BZ"], m["CZ"]
    ((0.99, 'class'), (0.925, 'class'), (0.8, 'cell'))
    """
    out: dict[str, tuple[float, str]] = {}
    for a in ABC_CLASSES:
        for x in XYZ_CLASSES:
            if a + x in targets:
                out[a + x] = (float(targets[a + x]), "cell")
            else:
                value = 1.0 - (1.0 - float(targets[a])) * float(xyz_shortfall[x])
                out[a + x] = (round(min(max(value, 1e-6), 1 - 1e-6), 10), "class")
    return out


def resolve_targets(
    abc: Any,
    xyz: Any,
    targets: Mapping[str, float],
    xyz_shortfall: Mapping[str, float],
    product_target: Any,
    sku_override: Any,
) -> tuple[FloatArray, TextArray]:
    """Target and its source per row, highest priority first:

    ``'sku_override'`` (settings, per SKU) > ``'product'``
    (products.service_level, when in (0, 1)) > ``'cell'`` (an explicit
    ABC×XYZ key) > ``'class'`` (the ABC class shaded by XYZ).

    Args:
        abc, xyz: class letters per row (unknown XYZ counts as 'Y').
        targets, xyz_shortfall: see the module docstring.
        product_target, sku_override: per row, NaN when absent.
    """
    abc_arr = np.asarray(abc, dtype=object)
    xyz_arr = np.asarray(xyz, dtype=object)
    xyz_arr = np.where(np.isin(xyz_arr, XYZ_CLASSES), xyz_arr, "Y")
    cell = abc_arr + xyz_arr
    matrix = cell_targets(targets, xyz_shortfall)
    cell_value = np.full(cell.shape, np.nan)
    cell_source = np.full(cell.shape, "class", dtype=object)
    for key, (cell_target, origin) in matrix.items():
        hit = cell == key
        cell_value[hit] = cell_target
        cell_source[hit] = origin
    product = np.asarray(product_target, dtype=np.float64)
    product = np.where((product > 0) & (product < 1), product, np.nan)
    override = np.asarray(sku_override, dtype=np.float64)
    value = np.where(
        ~np.isnan(override), override, np.where(~np.isnan(product), product, cell_value)
    )
    source = np.where(
        ~np.isnan(override),
        "sku_override",
        np.where(~np.isnan(product), "product", cell_source),
    ).astype(object)
    return np.asarray(value, dtype=np.float64), source


# ------------------------------------------------------------ suggested mode

#: (case, suggested mode, reason template); the first case that applies wins.
#: ``{adi}`` is replaced by the row's average demand interval.
MODE_RULES: tuple[tuple[str, str, str], ...] = (
    ("no_demand", "jit", "no demand in the history: order against customer orders only"),
    ("cz", "jit", "slow & erratic, low value (C×Z): order against customer orders"),
    (
        "sporadic",
        "jit",
        "intermittent, a sale every {adi} days on average: order against customer orders",
    ),
    ("steady_valuable", "stock", "valuable and steady ({cell}): keep stock, reorder-point policy"),
    ("default", "stock", "regular demand ({cell}): keep stock"),
)


def suggest_mode(
    abc: Any,
    xyz: Any,
    demand_class: Any,
    adi: Any,
    demand_mean: Any,
    jit_adi: float,
    intermittent_classes: tuple[str, ...] = ("intermittent", "lumpy"),
) -> tuple[TextArray, TextArray]:
    """Suggested replenishment mode ('stock' | 'jit') and the reason, per row.

    Hybrid just-in-time (DESIGN.md): stock is for items whose demand is
    regular enough to forecast; items that sell rarely and erratically, and
    low-value erratic ones, are cheaper to order against real customer orders
    than to hold "just in case" (Silver, Pyke & Thomas, 4th ed., on
    slow movers; Syntetos & Boylan's ADI as the measure of intermittency).
    Rules, first match wins (:data:`MODE_RULES`):

    1. no demand at all (demand_mean 0, class 'none') → 'jit';
    2. C × Z → 'jit';
    3. intermittent or lumpy with ADI > ``jit_adi`` → 'jit';
    4. A or B × X → 'stock' ("valuable and steady");
    5. otherwise 'stock'.

    A missing demand mean (unknown) gets 'stock' with the default reason.
    """
    abc_arr = np.asarray(abc, dtype=object)
    xyz_arr = np.asarray(xyz, dtype=object)
    cls = np.asarray(demand_class, dtype=object)
    adi_arr = np.asarray(adi, dtype=np.float64)
    d = np.asarray(demand_mean, dtype=np.float64)
    cell = abc_arr.astype(str).astype(object) + xyz_arr.astype(str).astype(object)
    conditions = {
        "no_demand": d == 0,
        "cz": cell == "CZ",
        "sporadic": np.isin(cls, intermittent_classes) & (adi_arr > jit_adi),
        "steady_valuable": np.isin(cell, ("AX", "BX")),
        "default": np.ones(d.shape, dtype=bool),
    }
    case = np.select([conditions[c] for c, _, _ in MODE_RULES], list(range(len(MODE_RULES))))
    mode = np.empty(d.shape, dtype=object)
    reason = np.empty(d.shape, dtype=object)
    for i, (_, suggested, template) in enumerate(MODE_RULES):
        hit = case == i
        if not hit.any():
            continue
        mode[hit] = suggested
        text = np.full(int(hit.sum()), template, dtype=object)
        if "{adi}" in template:
            adi_txt = np.char.mod("%.1f", adi_arr[hit]).astype(object)
            parts = template.split("{adi}")
            text = parts[0] + adi_txt + parts[1]
        if "{cell}" in template:
            parts = template.split("{cell}")
            text = parts[0] + cell[hit] + parts[1]
        reason[hit] = text
    return mode, reason
