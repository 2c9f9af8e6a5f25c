"""Sync one sales channel into the demand cache (docs/channels.md, "Sync").

    config = resolve_channel("shopify_eu")  # config/channels/shopify_eu.yaml
    store = Store(url)
    report = sync_channel(config, store)
    print(report.summary())

One sync is:

1. ``since = store.watermark(config.name)`` — the latest ``updated_at`` the
   cache holds for the channel (None on the first sync, or with
   ``full_refresh``: every order is read);
2. ``batch = fetch(config, since)`` — the orders changed since then
   (:func:`replenish.sources.channels.fetch`; the channel asks from
   ``since − overlap_seconds``, so an order read twice replaces itself);
3. **orders re-read replace their cached lines**: a line cached for an order
   of the batch that the batch no longer has (an order edit removed an item;
   WooCommerce and Shopify number lines by position, so the last position
   disappears) is re-written with status ``cancelled``, which forecasting,
   planning, KPIs and the backtest ignore. The cached row stays, its demand
   does not count (see :func:`removed_lines`);
4. ``store.ingest(config.name, lines + removed lines, returns,
   batch.high_watermark, reset=full_refresh, origin=...)`` — one transaction:
   the rows and the new watermark are stored together or not at all;
5. the batch's ``rejected`` rows (no SKU, unreadable quantity, unknown
   status, ...) are kept in the store's quarantine under a run of their own
   (:meth:`Store.start_run` with status ``synced``), so ``replenish
   quarantine --run RUN_ID`` lists them. A sync without rejected rows records
   no run (an hourly sync would otherwise bury the nightly runs).

Errors: what :func:`fetch` raises (:class:`ConfigurationError`,
:class:`ChannelRequestError`, :class:`SourceUnavailable` — transient, retry —,
:class:`ContractError`) leaves the cache and the watermark as they were;
:class:`StoreError` if the store cannot be written (rolled back).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from replenish import model
from replenish.errors import ConfigurationError
from replenish.sources.channels import fetch, load_channel
from replenish.sources.channels.base import ChannelBatch, FetchCounts
from replenish.sources.channels.config import ShopifyConfig, WooCommerceConfig
from replenish.store import IngestResult, Store

__all__ = [
    "DEFAULT_CHANNEL_DIR",
    "SYNC_RUN_STATUS",
    "SyncReport",
    "quarantine_rows",
    "removed_lines",
    "resolve_channel",
    "sync_channel",
]

#: Where ``--channel NAME`` looks for ``NAME.yaml`` (relative to the working directory).
DEFAULT_CHANNEL_DIR = Path("config/channels")
#: ``runs.status`` of the run that holds a sync's rejected rows.
SYNC_RUN_STATUS = "synced"
#: ``quarantine.expectation`` of a channel's rejected rows.
SYNC_EXPECTATION = "channel_order_readable"

ChannelSettings = ShopifyConfig | WooCommerceConfig


@dataclass(frozen=True)
class SyncReport:
    """What one :func:`sync_channel` did.

    Attributes:
        channel, kind: the channel's ``name`` (its cache source) and ``kind``.
        full_refresh: every order was read and the channel's cache rebuilt.
        since: the watermark the fetch started from (None: every order).
        watermark: the channel's watermark after the sync.
        orders, lines, returns, rejected: read from the shop in this sync.
        removed_lines: cached lines of re-read orders the shop no longer
            has, stored as ``cancelled``.
        run_id: the store run holding the rejected rows (None: none rejected).
        fetch: the HTTP side (requests, retries, pages, waits).
        ingest: the store side (rows written, rows cached afterwards).
        seconds: wall time of the whole sync.
    """

    channel: str
    kind: str
    full_refresh: bool
    since: datetime | None
    watermark: datetime | None
    orders: int
    lines: int
    returns: int
    rejected: int
    removed_lines: int
    run_id: str | None
    fetch: FetchCounts
    ingest: IngestResult
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values (ISO timestamps): a run's counts, a task result, JSON."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "ingest":
                value = self.ingest.as_dict()
            elif key == "fetch":
                value = self.fetch.as_dict()
            elif isinstance(value, datetime):
                value = value.isoformat(sep=" ")
            out[key] = value
        return out

    def summary(self) -> str:
        """One line for a log or the terminal."""

        def ts(value: datetime | None) -> str:
            return value.isoformat(sep=" ", timespec="seconds") if value is not None else "none"

        if self.full_refresh:
            mode = "full refresh"
        elif self.since is None:
            mode = "first sync: every order"
        else:
            mode = f"changes since {ts(self.since)}"
        parts = [
            f"{self.kind} channel {self.channel!r}: {mode}",
            f"{self.orders:,} orders read: {self.lines:,} lines, {self.returns:,} returns",
        ]
        if self.removed_lines:
            parts.append(f"{self.removed_lines:,} cached lines no longer in their order cancelled")
        if self.rejected:
            parts.append(f"{self.rejected:,} rejected (replenish quarantine --run {self.run_id})")
        parts.append(
            f"cache {self.ingest.cached_lines:,} lines, {self.ingest.cached_returns:,} returns"
        )
        parts.append(f"watermark {ts(self.watermark)}")
        parts.append(f"{self.fetch.requests} requests ({self.fetch.retries} retries)")
        parts.append(f"{self.seconds:.1f} s")
        return "; ".join(parts)


def resolve_channel(
    channel: str | None = None,
    config: str | Path | None = None,
    *,
    channel_dir: str | Path = DEFAULT_CHANNEL_DIR,
) -> ChannelSettings:
    """The configuration of a channel: the file ``config``, or
    ``<channel_dir>/<channel>.yaml`` (exactly one of the two).

    Raises :class:`ConfigurationError` naming the file looked for and the
    channel files that exist, or the bad key of the file
    (:func:`~replenish.sources.channels.load_channel`).
    """
    if (channel is None) == (config is None):
        raise ConfigurationError("give a channel name (--channel NAME) or a file (--config PATH)")
    if config is not None:
        return load_channel(config)
    assert channel is not None
    if not channel or "/" in channel or "\\" in channel or channel.startswith("."):
        raise ConfigurationError(
            f"channel name {channel!r}: give the name of a file in {channel_dir} "
            "without '.yaml', or a path with --config"
        )
    directory = Path(channel_dir)
    path = directory / f"{channel}.yaml"
    if not path.is_file():
        found = sorted(
            p.stem
            for p in directory.glob("*.yaml")
            if not p.name.endswith(".example.yaml") and _is_http_channel(p)
        )
        known = ", ".join(found) if found else "none"
        raise ConfigurationError(
            f"channel {channel!r}: no file {path} (channels configured there: {known}); "
            f"copy {directory / 'shopify.example.yaml'} or "
            f"{directory / 'woocommerce.example.yaml'} to {path} (docs/channels.md)"
        )
    return load_channel(path)


def _is_http_channel(path: Path) -> bool:
    """Whether the YAML file at ``path`` declares a Shopify or WooCommerce channel."""
    try:
        head = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(
        line.split("#")[0].strip() in {"kind: shopify", "kind: woocommerce"}
        for line in head.splitlines()
    )


def removed_lines(cached: pd.DataFrame, batch: ChannelBatch) -> pd.DataFrame:
    """Cached lines of the batch's orders that the batch does not have, as
    ``cancelled`` lines (contract frame), except those cancelled already.

    An order is re-read whole whenever it changes, so its lines in the batch
    are all it has now; a cached line of that order with a ``line_no`` the
    batch lacks was removed from the order (an order edit; positions shift,
    so the last one goes). Re-writing it ``cancelled`` in the same ingest
    takes its demand out; the row keeps its SKU and quantity for the record.
    """
    if cached.empty or not batch.order_ids:
        return model.empty_frame("sales_order_lines")
    ours = cached[
        (cached["channel"] == batch.channel) & cached["order_id"].isin(list(batch.order_ids))
    ]
    present = pd.MultiIndex.from_arrays(
        [batch.lines["order_id"].astype("string"), batch.lines["line_no"].astype("Int64")]
    )
    keys = pd.MultiIndex.from_arrays(
        [ours["order_id"].astype("string"), ours["line_no"].astype("Int64")]
    )
    status = ours["status"].astype("string").str.lower()
    stale = ours[~keys.isin(present) & ~status.isin(model.CANCELLED_SALES_STATUSES).fillna(False)]
    return model.coerce("sales_order_lines", stale.assign(status="cancelled"))


def quarantine_rows(batch: ChannelBatch) -> pd.DataFrame:
    """The batch's rejected rows in the store's quarantine columns
    (dataset, row_key, field, expectation, value, reason)."""
    rejected = batch.rejected
    if rejected.empty:
        return pd.DataFrame(
            columns=["dataset", "row_key", "field", "expectation", "value", "reason"]
        )

    def key(row: Mapping[Any, Any]) -> str:
        parts = [f"channel={batch.channel}"]
        for name in ("order_id", "item_id"):
            value = row.get(name)
            if value is not None and not pd.isna(value):
                parts.append(f"{name}={value}")
        return ", ".join(parts)[:500]

    records = rejected.astype(object).where(rejected.notna(), None).to_dict("records")
    return pd.DataFrame(
        {
            "dataset": f"{batch.kind}:{batch.channel}"[:64],
            "row_key": [key(r) for r in records],
            "field": [r["field"] for r in records],
            "expectation": SYNC_EXPECTATION,
            "value": [r["value"] for r in records],
            "reason": [r["reason"] for r in records],
        }
    )


def _origin(config: ChannelSettings) -> str:
    """What the channel's cached rows come from (no credential: those are headers)."""
    return f"{config.kind} {config.base_url}"[:512]


def sync_channel(
    config: ChannelSettings,
    store: Store,
    *,
    full_refresh: bool = False,
    client: httpx.Client | None = None,
    env: Mapping[str, str] | None = None,
    flow_run_id: str | None = None,
    today: date | None = None,
) -> SyncReport:
    """Read the channel's orders changed since its watermark into the demand
    cache (the module docstring gives the steps).

    Args:
        config: the channel (:func:`resolve_channel`).
        store: the store holding the demand cache.
        full_refresh: read every order and replace the channel's cached rows
            (after a bulk edit of old orders in the shop, or a config change
            such as ``locations``).
        client: an ``httpx.Client`` to reuse (not closed here).
        env: where the credentials' variables are read (``os.environ``).
        flow_run_id: the Prefect flow run, recorded with the quarantine's run.
        today: ``as_of`` of the quarantine's run (default: today).
    """
    started = time.perf_counter()
    since = None if full_refresh else store.watermark(config.name)
    batch = fetch(config, since, client=client, env=env)
    lines = batch.lines
    removed = model.empty_frame("sales_order_lines")
    if not full_refresh and since is not None and batch.order_ids:
        removed = removed_lines(_cached_lines_of_batch(store, batch), batch)
        if len(removed):
            lines = pd.concat([batch.lines, removed], ignore_index=True)
    ingest = store.ingest(
        config.name,
        lines,
        batch.returns,
        batch.high_watermark,
        reset=full_refresh,
        origin=_origin(config),
    )
    run_id = None
    if len(batch.rejected):
        run_id = store.start_run(
            today or date.today(),
            erp=_origin(config),
            parameters={"sync": config.name, "kind": config.kind, "full_refresh": full_refresh},
            flow_run_id=flow_run_id,
        )
        store.save_quarantine(run_id, quarantine_rows(batch))
    report = SyncReport(
        channel=config.name,
        kind=config.kind,
        full_refresh=full_refresh,
        since=since,
        watermark=ingest.watermark,
        orders=batch.counts.orders,
        lines=len(batch.lines),
        returns=len(batch.returns),
        rejected=len(batch.rejected),
        removed_lines=len(removed),
        run_id=run_id,
        fetch=batch.counts,
        ingest=ingest,
        seconds=time.perf_counter() - started,
    )
    if run_id is not None:
        store.finish_run(run_id, SYNC_RUN_STATUS, counts=report.as_dict(), message=report.summary())
    return report


def _cached_lines_of_batch(store: Store, batch: ChannelBatch) -> pd.DataFrame:
    """The channel's cached lines that may belong to the batch's orders.

    An order's lines all carry its creation time, which an edit does not
    change: when every order of the batch has a line in it, the cache is read
    from the earliest of those times on (undated cached lines included);
    otherwise (an order whose lines were all rejected) the whole channel.
    """
    with_lines = set(batch.lines["order_id"].astype(str))
    dated = batch.lines["ordered_at"].dropna()
    start: datetime | None = None
    if with_lines >= set(batch.order_ids) and len(dated):
        start = pd.Timestamp(dated.min()).to_pydatetime()
    return store.cached_sales(start, None, sources=[batch.channel])
