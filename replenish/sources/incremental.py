"""Incremental extraction: read only what changed from the ERP's sales and returns.

The ERP's ``sales_order_lines`` and ``returns`` are by far its largest tables
and change only near their end; the other tables (products, suppliers, stock,
purchase orders) are small and state-like. :func:`read_incremental` reads the
small ones as a direct read does, but the sales and returns only from
``watermark − overlap_days`` (floored to midnight) on, caches them in the
store (:meth:`replenish.store.Store.ingest`, one transaction with the new
watermark) and takes the older ones from the cache. Cached rows are pruned
only ``CACHE_MARGIN_DAYS`` after they leave the history window, so once the
nightly run has built the cache for a month, a replay up to a month back, or
a history window grown by up to a month, is still served from it. The snapshot is the one a
direct read (:meth:`GenericErp.read_snapshot`) gives — same rows — plus the
cached rows of the sales channels (Shopify, WooCommerce: other sources of the
same cache).

The contract has no modification date, so the ERP's recent lines are re-read
every night: a line ordered within ``overlap_days`` of the last read whose
status changed, or that was cancelled or deleted, is caught; a change to an
older line is not, until ``full_refresh`` (docs/incremental.md).

Modes (:attr:`IncrementalReport.mode`):

* ``full``: a live run (``as_of`` today) without a usable cache — none yet,
  ``full_refresh``, another ERP than the cached one, or a history window
  starting before the cache — reads the whole window and rebuilds the cache;
* ``incremental``: a live run with the cache: reads from the re-read start,
  replaces the cached rows from there, advances the watermark;
* ``replay``: ``as_of`` in the past with the cache: older rows from the cache,
  rows from the re-read start up to the end of ``as_of`` from the ERP; the
  cache is left alone (a window cut at ``as_of`` must not replace newer rows,
  nor move the watermark back);
* ``direct``: a run limited to SKUs, a replay without a usable cache, or a
  profile that cannot read sales from a later start: a direct read, the cache
  untouched (a replay with ``full_refresh`` drops it: the next live run
  rebuilds it).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from replenish import model
from replenish.errors import ConfigurationError
from replenish.sources.db import safe_url
from replenish.sources.generic import GenericErp, ReadWindow
from replenish.store import Store
from replenish.store.cache import (
    DATE_COLUMNS,
    ERP_SOURCE,
    IngestResult,
    SourceState,
    uncacheable,
)

__all__ = ["CACHE_MARGIN_DAYS", "DEFAULT_OVERLAP_DAYS", "IncrementalReport", "read_incremental"]

#: Days of the ERP's latest sales and returns re-read every night.
DEFAULT_OVERLAP_DAYS = 7
#: Days the ERP's cached sales are kept once they leave the history window.
CACHE_MARGIN_DAYS = 31
_TABLES = tuple(DATE_COLUMNS)  # sales_order_lines, returns


@dataclass
class IncrementalReport:
    """What :func:`read_incremental` read, from where, and what it cached."""

    mode: str  # full, incremental, replay, direct
    reason: str
    #: where the ERP's sales and returns were read from
    read_from: datetime
    watermark_before: datetime | None
    watermark_after: datetime | None
    #: rows read from the ERP's sales_order_lines / returns in this run
    erp_lines_read: int = 0
    erp_returns_read: int = 0
    #: rows of the snapshot: all of them, and those of the sales channels
    lines: int = 0
    returns: int = 0
    channel_lines: int = 0
    channel_returns: int = 0
    #: rows read that could not be cached (missing key, too long): in this
    #: run's snapshot for the validation gate, not in the cache
    uncached: int = 0
    uncached_reasons: list[str] = field(default_factory=list)
    pruned: int = 0
    ingest: IngestResult | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values (ISO timestamps), for a run's counts or a log line."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "ingest":
                value = self.ingest.as_dict() if self.ingest is not None else None
            elif isinstance(value, datetime):
                value = value.isoformat(sep=" ", timespec="seconds")
            out[key] = value
        return out

    def summary(self) -> str:
        """One line for the run log."""

        def ts(v: datetime | None) -> str:
            return v.isoformat(sep=" ", timespec="minutes") if v is not None else "none"

        parts = [
            f"{self.mode} extraction ({self.reason})",
            f"ERP sales and returns read from {ts(self.read_from)}: "
            f"{self.erp_lines_read:,} lines, {self.erp_returns_read:,} returns",
            f"watermark {ts(self.watermark_before)} -> {ts(self.watermark_after)}",
            f"snapshot {self.lines:,} sales lines ({self.channel_lines:,} from channels), "
            f"{self.returns:,} returns",
        ]
        if self.uncached:
            parts.append(f"{self.uncached} rows not cacheable, e.g. {self.uncached_reasons[0]}")
        if self.pruned:
            parts.append(f"{self.pruned:,} cached rows older than the window pruned")
        parts.append(f"{self.seconds:.1f} s")
        return "; ".join(parts)


def _midnight(value: datetime) -> datetime:
    return datetime.combine(value.date(), datetime.min.time())


def _origin(erp: GenericErp) -> str:
    """What the ERP's cached rows come from: its profile and URL (no password)."""
    return f"{erp.name} {safe_url(erp.url)}"[:512]


def _reads_from_later_start(erp: GenericErp) -> bool:
    """Whether the profile's ``read_snapshot`` takes ``sales_start``."""
    return "sales_start" in inspect.signature(erp.read_snapshot).parameters


def _unusable(
    state: SourceState | None, origin: str, window: ReadWindow, full_refresh: bool
) -> str | None:
    """Why the cached ERP rows cannot serve this window (None: they can)."""
    if full_refresh:
        return "full refresh asked"
    if state is None or state.watermark is None:
        return "no cache yet"
    if state.origin != origin:
        return f"the ERP is not the cached one ({state.origin})"
    if state.covered_from is not None and state.covered_from > window.start:
        return (
            f"the history window starts {window.start:%Y-%m-%d}, "
            f"before the cache ({state.covered_from:%Y-%m-%d})"
        )
    return None


def read_incremental(
    erp: GenericErp,
    store: Store,
    as_of: date,
    history_days: int,
    skus: Sequence[str] | None,
    *,
    full_refresh: bool = False,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    now: datetime | None = None,
) -> tuple[model.ErpSnapshot, IncrementalReport]:
    """The snapshot a direct read of ``erp`` for ``as_of`` gives (plus the
    cached sales-channel rows), reading only the ERP's recent sales and
    returns when the store's cache holds the rest; see the module docstring
    for the modes.

    Re-read start = midnight of (watermark − ``overlap_days``), not before the
    history window's start. Raises what the ERP read raises
    (:class:`SourceUnavailable`, :class:`ContractError`) before anything is
    cached, and :class:`StoreError` if the cache cannot be written (the cache
    then keeps its previous state).
    """
    started = time.perf_counter()
    if overlap_days < 0:
        raise ConfigurationError(f"overlap_days must be 0 or more, got {overlap_days}")
    window = ReadWindow.of(as_of, history_days, skus, now)
    now = window.now
    origin = _origin(erp)
    state = store.source_state(ERP_SOURCE)
    before = state.watermark if state is not None else None
    live = window.end is None
    unusable = _unusable(state, origin, window, full_refresh)
    if window.skus is not None:
        mode, reason = "direct", "a run limited to SKUs reads the ERP and leaves the cache alone"
    elif not _reads_from_later_start(erp):
        mode, reason = "direct", f"the {erp.name} profile cannot read sales from a later start"
    elif unusable is not None and not live:
        mode = "direct"
        reason = f"{unusable}; a replay cannot rebuild the cache from a window cut at {as_of}"
        if full_refresh:
            store.reset_source(ERP_SOURCE)
    elif unusable is not None:
        mode, reason = "full", unusable
    else:
        mode = "incremental" if live else "replay"
        reason = f"cache up to {before:%Y-%m-%d %H:%M}, {overlap_days} days re-read"

    sales_from = window.start  # the ERP's sales from here on are read, older are cached
    if mode in {"incremental", "replay"}:
        assert before is not None
        sales_from = max(window.start, _midnight(before - timedelta(days=overlap_days)))
    if mode == "direct":
        snapshot = erp.read_snapshot(as_of, history_days=history_days, skus=skus, now=now)
    else:
        snapshot = erp.read_snapshot(
            as_of,
            history_days=history_days,
            now=now,
            sales_start=sales_from,
        )
    fresh = {name: getattr(snapshot, name) for name in _TABLES}
    report = IncrementalReport(
        mode=mode,
        reason=reason,
        read_from=sales_from,
        watermark_before=before,
        watermark_after=before,
        erp_lines_read=len(fresh["sales_order_lines"]),
        erp_returns_read=len(fresh["returns"]),
    )

    if mode in {"full", "incremental"}:
        kept = {}
        for name in _TABLES:
            reasons = uncacheable(name, fresh[name])
            bad = reasons.notna()
            kept[name] = fresh[name][~bad]
            report.uncached += int(bad.sum())
            report.uncached_reasons += list(reasons[bad].head(3))
        report.ingest = store.ingest(
            ERP_SOURCE,
            kept["sales_order_lines"],
            kept["returns"],
            now,
            replace_from=sales_from,
            reset=mode == "full",
            origin=origin,
        )
        report.watermark_after = report.ingest.watermark
        report.pruned = store.prune(ERP_SOURCE, window.start - timedelta(days=CACHE_MARGIN_DAYS))

    cached_from_erp = mode in {"incremental", "replay"} and sales_from > window.start
    channels = [s for s in store.sources()["source"] if s != ERP_SOURCE]
    frames: dict[str, pd.DataFrame] = {}
    for name, date_col in DATE_COLUMNS.items():
        cached = _cached(store, name, window, channels, cached_from_erp)
        from_erp = cached["source"] == ERP_SOURCE
        # the ERP's rows from the re-read start are the fresh ones
        old_enough = cached[date_col] < sales_from  # NaT: not old enough
        cached = cached[~from_erp | old_enough]
        channel_rows = int((cached["source"] != ERP_SOURCE).sum())
        if name == "sales_order_lines":
            report.channel_lines = channel_rows
        else:
            report.channel_returns = channel_rows
        # both parts are contract frames already (same columns and dtypes)
        parts = [f for f in (cached.drop(columns="source"), fresh[name]) if len(f)]
        frames[name] = (
            pd.concat(parts, ignore_index=True)
            if len(parts) > 1
            else (parts[0].reset_index(drop=True) if parts else model.empty_frame(name))
        )

    report.lines, report.returns = len(frames["sales_order_lines"]), len(frames["returns"])
    report.seconds = time.perf_counter() - started
    snapshot.sales_order_lines = frames["sales_order_lines"]
    snapshot.returns = frames["returns"]
    return snapshot, report


def _cached(
    store: Store, table: str, window: ReadWindow, channels: list[str], with_erp: bool
) -> pd.DataFrame:
    """The cached rows of ``table`` in the window (with their ``source``):
    the channels', and the ERP's when ``with_erp``. Reading every source is a
    table scan, the fastest way to read most of the cache; the channels alone
    go through the source index."""
    sources = None if with_erp else channels
    read = store.cached_sales if table == "sales_order_lines" else store.cached_returns
    return read(window.start, window.end, window.skus, sources=sources, with_source=True)
