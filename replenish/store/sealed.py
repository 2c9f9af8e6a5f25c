"""Sealed history: a columnar copy of the ERP's closed months of cached sales lines.

The nightly incremental run re-reads the ERP's last days and takes every older
line from the store's demand cache (docs/incremental.md). At 100,000 series
that is 28 M cached lines a night, and a database hands them over a row at a
time: ~1.2 s per million lines on SQLite just to step through them, as long
through PostgreSQL's COPY. Lines ordered more than a few days ago no longer
change, so :meth:`replenish.store.Store.seal` copies the ERP source's cached
lines of each closed month, once, into an Arrow IPC file (uncompressed,
memory-mapped when read; text with few values dictionary-encoded), and
:meth:`~replenish.store.Store.cached_sales` takes them from there (a few
seconds for 28 M lines) and only the rest from the table.

The table stays the truth; the copy is only ever read while it equals it:

* ``source_watermarks.sealed_before`` / ``seal_id`` (migration 0006) say
  which copy is valid and up to when; the files are named by ``seal_id``;
* every cache write that may touch a line ordered before ``sealed_before``
  (a reset, an ingest replacing or adding an older line, a verdict written on
  one, other checks) clears both in its own transaction — the copy is then
  ignored, and the next seal builds a new one;
* a seal marks itself ``pending:<id>`` before it reads the table and becomes
  valid only if nothing cleared the mark meanwhile;
* a read checks ``seal_id`` before and after it reads the table, and reads
  everything from the table when it changed.

Where the files go (:func:`sealed_root`): ``REPLENISH_SEALED_DIR`` when set
(``off``: no copy), else beside a SQLite store's file (``store.db.sealed/``);
a server store without the setting has no copy and reads the table as
before. The files are a cache: deleting them costs one slower night.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from replenish.store.fastcache import NO_VERDICT, sqlite_file

__all__ = [
    "RAW_COLUMNS",
    "SealedFiles",
    "month_starts",
    "new_seal_id",
    "next_month",
    "normalise",
    "sealed_root",
]

#: The columns a sealed file keeps of each line: the cache row as stored
#: (``loaded_at`` and the raw ``verdict`` too: a read derives the verdict the
#: cache would give from them and the source's current state).
RAW_COLUMNS: Final = (
    "channel",
    "order_id",
    "line_no",
    "sku",
    "location_id",
    "qty",
    "ordered_at",
    "status",
    "loaded_at",
    "verdict",
)
_TEXT: Final = ("channel", "sku", "location_id", "status", "verdict")  # few distinct values
_DICT: Final = pa.dictionary(pa.int32(), pa.string())
SCHEMA: Final = pa.schema(
    [
        ("channel", _DICT),
        ("order_id", pa.string()),
        ("line_no", pa.int64()),
        ("sku", _DICT),
        ("location_id", _DICT),
        ("qty", pa.float64()),
        ("ordered_at", pa.timestamp("us")),
        ("status", _DICT),
        ("loaded_at", pa.timestamp("us")),
        ("verdict", _DICT),
    ]
)
PENDING: Final = "pending:"


def sealed_root(url: str) -> Path | None:
    """Where a store's sealed files go (see the module docstring), or None."""
    configured = os.environ.get("REPLENISH_SEALED_DIR", "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        # one folder per store: the URL without its password, hashed
        from replenish.sources.db import safe_url

        key = hashlib.sha256(safe_url(url).encode()).hexdigest()[:16]
        return Path(configured) / key
    path = sqlite_file(url)
    return Path(f"{path}.sealed") if path is not None else None


def new_seal_id() -> str:
    return uuid.uuid4().hex


def month_starts(first: datetime, before: datetime) -> list[datetime]:
    """The first instants of the calendar months from ``first``'s to the one
    before ``before`` (a month start)."""
    out: list[datetime] = []
    month = datetime(first.year, first.month, 1)
    while month < before:
        out.append(month)
        month = next_month(month)
    return out


def next_month(month: datetime) -> datetime:
    """The first instant of the month after ``month``'s."""
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1)


def normalise(table: pa.Table) -> pa.Table:
    """A raw read of cache rows (any back end) in the sealed files' schema:
    text with few values dictionary-encoded, timestamps in microseconds, the
    verdict's NULL sentinel back to NULL."""
    columns: list[pa.ChunkedArray] = []
    for field in SCHEMA:
        col = table.column(field.name)
        if field.name == "verdict" and pa.types.is_string(col.type):
            col = pc.if_else(pc.equal(col, NO_VERDICT), pa.scalar(None, pa.string()), col)
        if field.name in _TEXT:
            if col.type == _DICT:  # encoded already: kept as it is
                columns.append(col)
                continue
            if col.null_count == len(col) and not pa.types.is_string(col.type):
                col = pa.chunked_array([pa.nulls(len(col), pa.string())])
            col = pc.dictionary_encode(pc.cast(col, pa.string()))
            col = pc.cast(col, _DICT)
        elif pa.types.is_string(col.type) and pa.types.is_timestamp(field.type):
            col = pc.cast(col, field.type)  # SQLite's own text stamps
        else:
            col = pc.cast(col, field.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=SCHEMA)


class SealedFiles:
    """The sealed files of one source of one store: a folder per seal id,
    a file per calendar month (``erp-<id>/2026-03.arrow``)."""

    def __init__(self, root: Path, source: str) -> None:
        self.root = root
        self.source = source

    def folder(self, seal_id: str) -> Path:
        return self.root / f"{self.source}-{seal_id}"

    def path(self, seal_id: str, month: datetime) -> Path:
        return self.folder(seal_id) / f"{month:%Y-%m}.arrow"

    def has(self, seal_id: str, months: list[datetime]) -> bool:
        return all(self.path(seal_id, m).is_file() for m in months)

    def write(self, seal_id: str, month: datetime, table: pa.Table) -> None:
        """Write one month's lines (written whole to a temporary name first:
        a crash leaves no half file under the final name)."""
        path = self.path(seal_id, month)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # uncompressed: a read maps the file and takes its columns as they are
        # (0.1 s for 28 M lines; LZ4 took 4.4 s to decompress them, for a
        # third of the disk space)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as w:
            ready = normalise(table) if table.schema != SCHEMA else table
            # one dictionary per column in a file: the batches' ones united
            w.write_table(ready.unify_dictionaries())
        os.replace(tmp, path)

    def read(
        self, seal_id: str, months: list[datetime], since: datetime, until: datetime | None
    ) -> pa.Table | None:
        """The sealed lines of ``months`` ordered in [since, until) (None: no
        upper bound), or None when a file is missing or unreadable."""
        tables: list[pa.Table] = []
        try:
            for month in months:
                with pa.memory_map(str(self.path(seal_id, month))) as source:
                    table = pa.ipc.open_file(source).read_all()
                if month < since or (until is not None and next_month(month) > until):
                    when = table.column("ordered_at")  # a month the window cuts
                    keep = pc.greater_equal(when, pa.scalar(since, pa.timestamp("us")))
                    if until is not None:
                        keep = pc.and_(keep, pc.less(when, pa.scalar(until, pa.timestamp("us"))))
                    table = table.filter(keep)
                tables.append(table)
        except (OSError, pa.ArrowInvalid):
            return None
        if not tables:
            return SCHEMA.empty_table()
        # one dictionary per text column (a chunk a month, not copied together)
        return pa.concat_tables(tables).unify_dictionaries()

    def others(self, keep: str | None) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for folder in self.root.glob(f"{self.source}-*"):
            if keep is None or folder.name != f"{self.source}-{keep}":
                yield folder

    def drop_others(self, keep: str | None) -> None:
        """Delete the folders of every other seal of the source (stale copies)."""
        for folder in self.others(keep):
            shutil.rmtree(folder, ignore_errors=True)

    def drop_before(self, seal_id: str, month: datetime) -> None:
        """Delete the month files of ``seal_id`` older than ``month`` (pruned)."""
        folder = self.folder(seal_id)
        if folder.is_dir():
            for f in folder.glob("*.arrow"):
                if f.stem < f"{month:%Y-%m}":
                    f.unlink(missing_ok=True)
