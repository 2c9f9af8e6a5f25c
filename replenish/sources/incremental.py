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

import functools
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from replenish import model
from replenish.errors import ConfigurationError, StoreError
from replenish.quality.verdicts import (
    VERDICT_DATASET,
    KnownVerdicts,
    NewVerdicts,
    SnapshotWithVerdicts,
    rules_fingerprint,
)
from replenish.sources.db import safe_url
from replenish.sources.fastread import concat_frames, lean_frame
from replenish.sources.generic import GenericErp, ReadWindow
from replenish.store import Store
from replenish.store.cache import (
    DATE_COLUMNS,
    ERP_SOURCE,
    IngestResult,
    SourceState,
    uncacheable,
)

__all__ = [
    "CACHE_MARGIN_DAYS",
    "DEFAULT_OVERLAP_DAYS",
    "SEAL_MIN_LINES",
    "IncrementalReport",
    "read_incremental",
    "save_verdicts",
]

#: Days of the ERP's latest sales and returns re-read every night.
DEFAULT_OVERLAP_DAYS = 7
#: Days the ERP's cached sales are kept once they leave the history window.
CACHE_MARGIN_DAYS = 31
#: Cached ERP lines from which the nightly run seals the closed months
#: (docs/incremental.md, "Sealed history"): below, the table reads fast enough.
SEAL_MIN_LINES = 500_000
_TABLES = tuple(DATE_COLUMNS)  # sales_order_lines, returns
log = logging.getLogger(__name__)


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
    #: sales lines whose cached row-level verdict the gate can take
    #: (docs/data-quality.md); the others it validates
    known_verdicts: int = 0
    seconds: float = 0.0
    #: where the time went: the ERP read, the cache write (ingest and prune),
    #: the read of the cached rows and the snapshot's assembly
    seconds_erp: float = 0.0
    seconds_ingest: float = 0.0
    seconds_cache: float = 0.0

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
        if self.mode != "direct":
            parts.append(f"{self.known_verdicts:,} lines with a cached verdict")
        parts.append(
            f"{self.seconds:.1f} s (ERP read {self.seconds_erp:.1f}, cache write "
            f"{self.seconds_ingest:.1f}, cache read {self.seconds_cache:.1f})"
        )
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
    erp_started = time.perf_counter()
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
    seconds_erp = time.perf_counter() - erp_started
    cacheable = pd.Series(True, index=fresh["sales_order_lines"].index)
    report = IncrementalReport(
        mode=mode,
        reason=reason,
        read_from=sales_from,
        watermark_before=before,
        watermark_after=before,
        erp_lines_read=len(fresh["sales_order_lines"]),
        erp_returns_read=len(fresh["returns"]),
        seconds_erp=seconds_erp,
    )

    ingest_started = time.perf_counter()
    if mode in {"full", "incremental"}:
        kept = {}
        for name in _TABLES:
            reasons = uncacheable(name, fresh[name])
            bad = reasons.notna()
            # no copy of a batch of millions of lines when every row can be cached
            kept[name] = fresh[name][~bad] if bad.any() else fresh[name]
            if name == VERDICT_DATASET:
                cacheable = ~bad
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

    report.seconds_ingest = time.perf_counter() - ingest_started
    cache_started = time.perf_counter()
    cached_from_erp = mode in {"incremental", "replay"} and sales_from > window.start
    # read before the cached rows: a source's updated_at is the stamp of its
    # newest batch, every row stamped up to it is in the read below
    states = store.sources()
    channels = [s for s in states["source"] if s != ERP_SOURCE]
    with_verdicts = mode != "direct"
    frames: dict[str, pd.DataFrame] = {}
    known: KnownVerdicts | None = None
    for name in DATE_COLUMNS:
        verdicts = with_verdicts and name == VERDICT_DATASET
        # the ERP's rows from the re-read start are the fresh ones: the read
        # leaves them out (no copy of the cached rows to drop them)
        cached = _cached(store, name, window, channels, cached_from_erp, verdicts, sales_from)
        channel_rows = int((cached["source"] != ERP_SOURCE).sum())
        if name == "sales_order_lines":
            report.channel_lines = channel_rows
        else:
            report.channel_returns = channel_rows
        # both parts are contract frames already (same columns and dtypes)
        extra = ["source", "verdict"] if verdicts else ["source"]
        parts = [f for f in (cached.drop(columns=extra), fresh[name]) if len(f)]
        frames[name] = (
            concat_frames(name, parts)
            if len(parts) > 1
            else (
                parts[0].reset_index(drop=True)
                if parts
                else lean_frame(name, model.empty_frame(name))
            )
        )
        if verdicts:
            known = _known_verdicts(
                frames[name],
                cached,
                cacheable if mode in {"full", "incremental"} else None,
                states,
                writable=mode in {"full", "incremental"} and window.end is None,
                validated_from=window.start,
            )
            report.known_verdicts = known.known
            if known.writable and report.watermark_after is not None:
                # the next nights re-read from (watermark - overlap) on at the earliest
                settled = _midnight(report.watermark_after - timedelta(days=overlap_days))
                known.seal_before = datetime(settled.year, settled.month, 1)

    report.lines, report.returns = len(frames["sales_order_lines"]), len(frames["returns"])
    report.seconds_cache = time.perf_counter() - cache_started
    report.seconds = time.perf_counter() - started
    snapshot.sales_order_lines = frames["sales_order_lines"]
    snapshot.returns = frames["returns"]
    if known is not None:
        snapshot = SnapshotWithVerdicts.of(snapshot, known)
    return snapshot, report


def _known_verdicts(
    frame: pd.DataFrame,
    cached: pd.DataFrame,
    fresh_cached: pd.Series | None,
    states: pd.DataFrame,
    *,
    writable: bool,
    validated_from: datetime,
) -> KnownVerdicts:
    """The cached verdicts of the snapshot's sales lines: the cached rows
    first (in ``frame``'s order), then the rows read from the ERP tonight (no
    verdict yet; cached under the ERP's source when ``fresh_cached`` says so)."""
    n_cached = len(cached)
    n_fresh = len(frame) - n_cached
    fingerprint = rules_fingerprint(VERDICT_DATASET)
    current = {
        str(row.source)
        for row in states.itertuples()
        if getattr(row, "verdict_rules", None) == fingerprint
    }
    source = cached["source"].astype(object).to_numpy() if n_cached else np.array([], object)
    verdict = cached["verdict"] if n_cached else pd.Series([], dtype=object)
    if isinstance(verdict.dtype, pd.CategoricalDtype):  # a lean read: its codes
        codes = np.asarray(verdict.cat.codes, dtype=np.int64)
        texts = list(verdict.cat.categories)
    else:
        codes, uniques = pd.factorize(verdict.to_numpy(dtype=object), use_na_sentinel=True)
        texts = list(uniques)
    if n_cached and len(current) < len(set(source)):  # verdicts taken with other checks
        codes = codes.copy()
        codes[~np.isin(source, list(current))] = -1
    group_codes, _ = pd.factorize(source)
    sources = np.empty(len(frame), dtype=object)
    sources[:n_cached] = source
    if fresh_cached is not None:
        fresh_sources = np.full(n_fresh, None, dtype=object)
        fresh_sources[fresh_cached.to_numpy(dtype=bool)] = ERP_SOURCE
        sources[n_cached:] = fresh_sources
    return KnownVerdicts(
        frame=frame,
        codes=np.concatenate([codes, np.full(n_fresh, -1)]).astype(np.int64),
        texts=[str(t) for t in texts],
        groups=np.concatenate([group_codes, np.full(n_fresh, -1)]).astype(np.int64),
        sources=sources,
        pending_until=_updated_at(states),
        writable=writable,
        validated_from=validated_from,
    )


def _updated_at(states: pd.DataFrame) -> dict[str, datetime]:
    """Each source's ``updated_at``: the stamp of its newest batch."""
    out: dict[str, datetime] = {}
    for source, stamp in zip(states["source"], states["updated_at"], strict=True):
        if isinstance(stamp, datetime) and not pd.isna(stamp):
            out[str(source)] = pd.Timestamp(stamp).to_pydatetime()
    return out


def save_verdicts(store: Store, known: KnownVerdicts, new: NewVerdicts | None) -> int:
    """Write the verdicts the gate took tonight (``GateResult.new_verdicts``)
    back to the demand cache, so that the next nights take them instead of
    validating those lines again: the failed checks of the rejected lines,
    and per source which lines were validated (see
    :meth:`replenish.store.Store.record_verdicts`). Nothing on a replay.
    Returns the lines given a failed check."""
    if new is None or not known.writable or known.validated_from is None:
        return 0
    positions = new.positions
    sources = known.sources[positions]
    verdicts = np.asarray(new.verdicts, dtype=object)
    keys = ["channel", "order_id", "line_no"]
    # with their dates: a verdict on a line of the sealed copy voids the copy
    columns = [*keys, "ordered_at"]
    frame = known.frame
    total = 0
    for source in sorted({str(s) for s in pd.unique(sources) if s is not None}):
        until = known.pending_until.get(source)
        if until is None:
            continue
        mine = positions[sources == source]
        verdict = verdicts[sources == source]
        rejected = verdict != ""
        rows = pd.DataFrame(columns=[*columns, "verdict"])
        if rejected.any():
            # a key read twice is cached once, as its last row: the rows of the
            # rejected lines' orders decide which verdict the cached row gets
            orders = frame["order_id"].iloc[mine[rejected]].dropna().unique()
            near = np.asarray(frame["order_id"].iloc[mine].isin(orders), dtype=bool)
            rows = frame[columns].iloc[mine[near]].assign(verdict=verdict[near])
            rows = rows.drop_duplicates(keys, keep="last")
            rows = rows[rows["verdict"] != ""]
        total += store.record_verdicts(
            source,
            rows,
            through=until,
            validated_from=known.validated_from,
            rules=new.fingerprint,
        )
    if known.seal_before is not None:
        seal_history(store, known.seal_before)
    return total


def seal_history(store: Store, before: datetime) -> int | None:
    """Bring the sealed copy of the ERP's closed months up to ``before``
    (:meth:`replenish.store.Store.seal`) once the ERP's cache holds
    :data:`SEAL_MIN_LINES` lines or more (a smaller cache reads back from
    the table in about a second); a failure is logged, not raised: the copy
    only makes the next nights faster."""
    state = store.source_state(ERP_SOURCE)
    if state is None or state.rows < SEAL_MIN_LINES:
        return None
    try:
        return store.seal(ERP_SOURCE, before)
    except (StoreError, OSError, pa.ArrowException) as e:
        log.warning("the sealed copy of the demand cache was not updated: %s", e)
        return None


def _cached(
    store: Store,
    table: str,
    window: ReadWindow,
    channels: list[str],
    with_erp: bool,
    with_verdicts: bool = False,
    fresh_from: datetime | None = None,
) -> pd.DataFrame:
    """The cached rows of ``table`` in the window (with their ``source``, and
    for sales lines ``with_verdicts`` their gate verdicts): the channels',
    and the ERP's when ``with_erp``. Reading every source is a table scan,
    the fastest way to read most of the cache; the channels alone go through
    the source index. ``fresh_from``: the ERP's rows dated from then on (and
    undated ones) are left out: tonight's read has them."""
    sources = None if with_erp else channels
    left_out = {ERP_SOURCE: fresh_from} if with_erp and fresh_from is not None else None
    read: Callable[..., pd.DataFrame] = (
        functools.partial(store.cached_sales, with_verdicts=with_verdicts)
        if table == "sales_order_lines"
        else store.cached_returns
    )
    return read(
        window.start,
        window.end,
        window.skus,
        sources=sources,
        with_source=True,
        lean=True,
        left_out_from=left_out,
    )
