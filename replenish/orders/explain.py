"""Why a draft line orders what it orders: one sentence-like text and the
figures behind it, both taken from the line's plan row.

Every draft line carries

* ``explanation``: the plan's decision (``reason``) followed by the chain a
  buyer checks before approving, each part left out when its figure is
  unknown::

      <reason>; IP 28 = on hand 33 − allocated 5 + on order 0;
      forecast 6.9/day ± 3.8 (smooth, ses_weekday, class AX);
      lead time 8.8 ± 1.2 days (receipts); service target 99% cycle (class);
      SS 36.4 (z 2.33 (cycle service 99%) × σ 15.65 over 12.3 days);
      ROP 96.7; S 121.4; raw qty 97, EOQ 97, MOQ 50, pack 10;
      rounding: raw 97 → pack 10: 100;
      supplier SUP-B: priority 1 (of 2), on time 79.7%

* ``details``: the same figures as a JSON object (:data:`EXPLAIN_COLUMNS`,
  the plan's column names, docs/policy.md explains each), so a program or a
  table can read them without parsing the text.

The formulas are the plan's (DESIGN.md, "The maths"): IP = on hand −
allocated + on order; SS = z·sqrt(T·σd² + d²·σL²) (or the discrete
lead-time-demand quantile, ``safety_stock_basis`` says which); ROP = demand
over L + SS; S = demand over (R + L) + SS; raw qty = max(EOQ, S − IP),
raised to the MOQ and rounded up to the pack size.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.policy.text import TextArray, cat, fmt, pct

__all__ = ["EXPLAIN_COLUMNS", "line_details", "line_explanations"]

#: Plan columns kept with every draft line (``details``), in reading order.
EXPLAIN_COLUMNS = [
    "policy",
    "replenishment_mode",
    "reason",
    "on_hand",
    "allocated",
    "on_order",
    "inventory_position",
    "open_demand",
    "demand_mean",
    "demand_std",
    "demand_class",
    "method",
    "abc_class",
    "xyz_class",
    "lead_time_mean",
    "lead_time_std",
    "lead_time_source",
    "review_period",
    "protection_days",
    "target_type",
    "service_level",
    "service_level_source",
    "z",
    "safety_stock",
    "safety_stock_basis",
    "reorder_point",
    "order_up_to",
    "trigger_level",
    "days_of_cover",
    "eoq",
    "raw_qty",
    "moq",
    "pack_size",
    "order_qty",
    "rounding",
    "supplier_id",
    "supplier_reason",
    "n_suppliers",
    "supplier_on_time_rate",
]


def _num(frame: pd.DataFrame, col: str) -> npt.NDArray[np.float64]:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return np.asarray(
        pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
    )


def _text(frame: pd.DataFrame, col: str) -> TextArray:
    if col not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return np.asarray(frame[col].astype("string").to_numpy(dtype=object, na_value=""), dtype=object)


def _known(x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return np.asarray(np.isfinite(x), dtype=bool)


def _opt(mask: npt.NDArray[np.bool_], text: Any) -> TextArray:
    """``text`` where ``mask``, '' elsewhere."""
    return np.asarray(np.where(mask, text, ""), dtype=object)


def _join(parts: list[TextArray], n: int, sep_text: str = "; ") -> TextArray:
    """Non-empty parts joined with ``sep_text`` per row."""
    out = np.full(n, "", dtype=object)
    for part in parts:
        has = part != ""
        sep = np.where((out != "") & has, sep_text, "").astype(object)
        out = np.asarray(cat(out, sep, part), dtype=object)
    return out


def line_explanations(lines: pd.DataFrame) -> TextArray:
    """The explanation text of each line (module docstring), from the plan
    columns present on ``lines``; vectorised, no per-row loop."""
    n = len(lines)
    oh, al, oo = _num(lines, "on_hand"), _num(lines, "allocated"), _num(lines, "on_order")
    ip = _num(lines, "inventory_position")
    breakdown = _known(oh) & _known(al) & _known(oo)
    ip_part = _opt(
        _known(ip),
        cat(
            "IP ",
            fmt(ip),
            _opt(
                breakdown,
                cat(" = on hand ", fmt(oh), " − allocated ", fmt(al), " + on order ", fmt(oo)),
            ),
        ),
    )

    d, sd = _num(lines, "demand_mean"), _num(lines, "demand_std")
    klass = cat(_text(lines, "abc_class"), _text(lines, "xyz_class"))
    about = _join(
        [
            _text(lines, "demand_class"),
            _text(lines, "method"),
            _opt(klass != "", cat("class ", klass)),
        ],
        n,
        ", ",
    )
    forecast = _opt(
        _known(d),
        cat(
            "forecast ",
            fmt(d),
            "/day",
            _opt(_known(sd), cat(" ± ", fmt(sd))),
            _opt(about != "", cat(" (", about, ")")),
        ),
    )

    lt, slt = _num(lines, "lead_time_mean"), _num(lines, "lead_time_std")
    lt_source = _text(lines, "lead_time_source")
    lead = _opt(
        _known(lt),
        cat(
            "lead time ",
            fmt(lt),
            _opt(_known(slt), cat(" ± ", fmt(slt))),
            " days",
            _opt(lt_source != "", cat(" (", lt_source, ")")),
        ),
    )

    level = _num(lines, "service_level")
    target_type, level_source = _text(lines, "target_type"), _text(lines, "service_level_source")
    service = _opt(
        _known(level),
        cat(
            "service target ",
            pct(level),
            _opt(target_type != "", cat(" ", target_type)),
            _opt(level_source != "", cat(" (", level_source, ")")),
        ),
    )

    ss, basis = _num(lines, "safety_stock"), _text(lines, "safety_stock_basis")
    safety = _opt(_known(ss), cat("SS ", fmt(ss), _opt(basis != "", cat(" (", basis, ")"))))
    rop = _num(lines, "reorder_point")
    up_to = _num(lines, "order_up_to")

    raw, q_eoq = _num(lines, "raw_qty"), _num(lines, "eoq")
    moq, pack = _num(lines, "moq"), _num(lines, "pack_size")
    sizing = _join(
        [
            _opt(_known(raw), cat("raw qty ", fmt(raw))),
            _opt(_known(q_eoq), cat("EOQ ", fmt(q_eoq))),
            _opt(_known(moq) & (moq > 1), cat("MOQ ", fmt(moq))),
            _opt(_known(pack) & (pack > 1), cat("pack ", fmt(pack))),
        ],
        n,
        ", ",
    )
    rounding = _text(lines, "rounding")

    supplier = _text(lines, "supplier_id")
    why = _text(lines, "supplier_reason")
    on_time = _num(lines, "supplier_on_time_rate")
    supplier_part = _opt(
        supplier != "",
        cat(
            "supplier ",
            supplier,
            _opt(why != "", cat(": ", why)),
            _opt(_known(on_time), cat(np.where(why != "", ", ", ": "), "on time ", pct(on_time))),
        ),
    )

    reason = np.asarray(
        pd.Series(_text(lines, "reason"), dtype=object).str.rstrip(". ").to_numpy(dtype=object),
        dtype=object,
    )
    return _join(
        [
            reason,
            ip_part,
            forecast,
            lead,
            service,
            safety,
            _opt(_known(rop), cat("ROP ", fmt(rop))),
            _opt(_known(up_to), cat("S ", fmt(up_to))),
            sizing,
            _opt(rounding != "", cat("rounding: ", rounding)),
            supplier_part,
        ],
        n,
    )


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy → Python, NaN/NA → None, timestamps → ISO."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class JsonReady(dict[str, Any]):
    """A line's details whose values are JSON-ready already (plain Python
    scalars, None, ISO text): stored as they are, not walked again."""


def line_details(lines: pd.DataFrame) -> list[dict[str, Any]]:
    """Per line, the :data:`EXPLAIN_COLUMNS` present on ``lines`` as a plain
    JSON object (unknown values → null), made a column at a time."""
    cols = [c for c in EXPLAIN_COLUMNS if c in lines.columns]
    values = [_plain_column(lines[c]) for c in cols]
    return [JsonReady(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def _plain_column(s: pd.Series) -> list[Any]:
    """A column as :func:`_plain` makes each of its values."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return [None if v is pd.NaT else v.isoformat() for v in s]
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiub":  # one conversion, NaN -> None
        arr = s.to_numpy()
        out: list[Any] = arr.tolist()
        if arr.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(arr))
            for i in bad.tolist():
                out[i] = None
        return out
    return [_plain(v) for v in s.tolist()]
