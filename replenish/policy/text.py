"""Vectorised text for the explanations: numbers for humans, concatenation.

Text columns are built as numpy *object* arrays of Python str: element-wise
``+`` on them runs in C over the pointers, much faster than fixed-width
unicode arrays for sentence-long strings, and there is no per-row loop.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TextArray", "cat", "fmt", "pct"]

TextArray = npt.NDArray[np.object_]

#: Integers below this are formatted by table lookup (fast); larger ones by
#: numpy's string conversion.
_TABLE_SIZE = 100_000


@cache
def _int_table() -> TextArray:
    return np.array([str(i) for i in range(_TABLE_SIZE)], dtype=object)


@cache
def _frac_table(decimals: int) -> TextArray:
    """'.5', '.25', ... for every fractional part with ``decimals`` digits."""
    out = [""] + [("." + str(i).zfill(decimals)).rstrip("0") for i in range(1, 10**decimals)]
    return np.array(out, dtype=object)


def _ints(n: npt.NDArray[np.int64]) -> TextArray:
    small = n < _TABLE_SIZE
    out = _int_table()[np.where(small, n, 0)]
    if not small.all():
        out[~small] = n[~small].astype(str).astype(object)
    return np.asarray(out, dtype=object)


def fmt(x: Any, decimals: int = 1) -> TextArray:
    """Numbers for humans: ``decimals`` decimals at most, no trailing zeros,
    'n/a' for NaN, '∞' for infinity.

    >>> fmt([1.26, 40.0, -0.04, float("nan"), float("inf")]).tolist()
    ['1.3', '40', '0', 'n/a', '∞']
    >>> fmt([3.5, 2.126], 2).tolist()
    ['3.5', '2.13']
    >>> fmt([1e300]).tolist()
    ['1e+300']
    """
    x = np.asarray(x, dtype=np.float64)
    # values too large for the int64 path (|x|·10^decimals beyond 2^53) are
    # written in scientific notation, like NaN and ∞ below
    huge = np.isfinite(x) & (np.abs(x) * 10**decimals >= 2.0**53)
    finite = np.isfinite(x) & ~huge
    all_finite = bool(finite.all())
    scale = 10**decimals
    units = np.rint(np.abs(x if all_finite else np.where(finite, x, 0.0)) * scale)
    units = units.astype(np.int64)
    frac_part = units % scale
    text = _ints(units // scale)
    if decimals > 0 and frac_part.any():
        text = text + _frac_table(decimals)[frac_part]
    negative = (x < 0) & (units > 0)
    if negative.any():
        text = np.where(negative, "-" + text, text)
    if not all_finite:
        special = np.where(np.isnan(x), "n/a", np.where(x > 0, "∞", "-∞")).astype(object)
        if huge.any():
            special[huge] = [f"{v:.4g}" for v in x[huge]]
        text = np.where(finite, text, special)
    return np.asarray(text, dtype=object)


def pct(x: Any) -> TextArray:
    """Fractions as percentages with up to one decimal: 0.975 → '97.5%'."""
    return cat(fmt(np.asarray(x, dtype=np.float64) * 100.0), "%")


def cat(*parts: Any) -> TextArray:
    """Element-wise string concatenation of text arrays and constants."""
    out = np.asarray(parts[0], dtype=object)
    for part in parts[1:]:
        out = out + np.asarray(part, dtype=object)
    return np.asarray(out, dtype=object)
