"""Cached verdicts: what the gate already knows of sales lines it validated before.

The nightly run's sales lines are mostly the same from one night to the next:
the demand cache (docs/incremental.md) keeps them, and keeps the **verdict**
of the gate's *row-level* checks on the night each line came in (store
migration 0005; read by ``Store.cached_sales(with_verdicts=True)``): not
validated yet (None), passed (``''``), or the checks it failed (rule ids
without the dataset, space-separated, e.g. ``"not_null:qty range:qty"``).

Only checks whose outcome depends on the row alone are cached
(:data:`CACHED_KINDS`: required values, ranges, dates not in the future).
Everything that depends on other rows or other tables is evaluated again
every night, over every line: duplicate keys, SKUs and locations that exist
among tonight's clean products and stock, demand spikes relative to the
series' history. :class:`KnownVerdicts` carries the cached verdicts of one
snapshot's sales lines to :func:`replenish.quality.validate_snapshot`, which
then runs the GX suite only on the lines without a usable verdict and on the
lines the cross-row checks concern (see ``docs/data-quality.md``).

A cached verdict is usable when it was taken with the same checks
(:func:`rules_fingerprint`), and:

* a failure of a date check (``not_future``) is re-validated: the as-of day
  moves forward, so a line dated in the future may be valid tonight;
* an acceptance holds only for a line dated before tonight's cutoff (always
  true on a nightly run; a replay further back than the verdict validates
  the line again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from replenish.model import ErpSnapshot
from replenish.quality.rules import SALES_DATASET, Rule, dataset_rules

#: Row-level rule kinds whose outcome depends on the row alone (and, for
#: ``not_future``, on the as-of cutoff): their verdicts are cached.
CACHED_KINDS: Final = frozenset({"not_null", "range", "not_future", "in_set"})
#: Cached failures of these kinds are validated again (the cutoff moves).
RECHECKED_KINDS: Final = frozenset({"not_future"})
#: The dataset whose verdicts are cached.
VERDICT_DATASET: Final = SALES_DATASET

IntArray = npt.NDArray[np.int64]


@cache
def cached_rules(dataset: str = VERDICT_DATASET) -> tuple[Rule, ...]:
    """The rules of ``dataset`` whose verdicts are cached, in suite order."""
    return tuple(
        r
        for r in dataset_rules(dataset)
        if r.kind in CACHED_KINDS and r.severity == "reject" and r.condition is None
    )


def short_id(rule: Rule) -> str:
    """A rule's id without its dataset: how a verdict names it."""
    return rule.id.split(":", 1)[1]


@cache
def rules_fingerprint(dataset: str = VERDICT_DATASET) -> str:
    """Identifies the cached checks: verdicts taken with other checks are not used."""
    text = ";".join(r.id for r in cached_rules(dataset))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(eq=False)
class KnownVerdicts:
    """The cached verdicts of one snapshot's ``sales_order_lines``, row by row.

    ``frame`` is the very frame they describe: the gate uses them only for
    that object (a frame filtered or replaced since is validated whole).
    """

    frame: pd.DataFrame
    #: per row: an index into ``texts``, or -1 when the row has no usable verdict
    codes: IntArray
    #: the distinct verdicts ('' accepted, else space-separated short rule ids)
    texts: list[str]
    #: per row: rows with the same group >= 0 have distinct keys (the cached
    #: rows of one source: the cache's primary key); -1 no such guarantee
    groups: IntArray
    #: per row: the cache source the row is stored under (None: not cached)
    sources: npt.NDArray[np.object_]
    #: per source: the stamp (``loaded_at``) of its newest batch when the cache
    #: was read: the write-back vouches for no line stamped later (not seen)
    pending_until: dict[str, datetime] = field(default_factory=dict)
    #: the start of the window the snapshot holds every cached line of
    validated_from: datetime | None = None
    #: whether the verdicts the gate takes may be written back to the cache
    #: (not on a replay, which leaves the cache alone)
    writable: bool = True
    dataset: str = VERDICT_DATASET
    #: once the verdicts are written back, the ERP's cached lines ordered
    #: before this month start may be sealed (replenish/store/sealed.py):
    #: no later night re-reads them
    seal_before: datetime | None = None

    def __post_init__(self) -> None:
        n = len(self.frame)
        if not (len(self.codes) == len(self.groups) == len(self.sources) == n):
            raise ValueError("known verdicts must have one entry per row of their frame")

    def applies_to(self, frame: pd.DataFrame) -> bool:
        return frame is self.frame and len(frame) == len(self.codes)

    @property
    def known(self) -> int:
        """Rows with a cached verdict."""
        return int((self.codes >= 0).sum())


@dataclass
class NewVerdicts:
    """The row-level verdicts the gate took tonight, for the rows it validated
    that had none (what :func:`replenish.sources.incremental.save_verdicts`
    writes back to the cache)."""

    #: row positions in the validated ``sales_order_lines`` frame
    positions: IntArray
    #: their verdicts ('' accepted, else space-separated short rule ids)
    verdicts: npt.NDArray[np.object_]
    fingerprint: str


class SnapshotWithVerdicts(ErpSnapshot):
    """An :class:`ErpSnapshot` read through the demand cache, with the cached
    verdicts of its sales lines (:attr:`known_verdicts`): the validate task
    passes them to the gate. The same tables and fields as any snapshot."""

    known_verdicts: KnownVerdicts | None = None

    @classmethod
    def of(cls, snapshot: ErpSnapshot, known: KnownVerdicts) -> SnapshotWithVerdicts:
        out = cls(**snapshot.tables())
        out.known_verdicts = known
        return out


def known_verdicts_of(snapshot: ErpSnapshot) -> KnownVerdicts | None:
    """The cached verdicts a snapshot carries (None: validate every line)."""
    known = getattr(snapshot, "known_verdicts", None)
    return known if isinstance(known, KnownVerdicts) else None


def usable_codes(
    known: KnownVerdicts, ordered_at: pd.Series, cutoff: pd.Timestamp
) -> tuple[IntArray, dict[int, tuple[str, ...]]]:
    """The codes the gate may rely on tonight (-1: validate the row) and, per
    usable code, the short rule ids it failed."""
    codes = known.codes.copy()
    current = {short_id(r) for r in cached_rules(known.dataset)}
    rechecked = {short_id(r) for r in cached_rules(known.dataset) if r.kind in RECHECKED_KINDS}
    failed: dict[int, tuple[str, ...]] = {}
    drop = []
    for i, text in enumerate(known.texts):
        ids = tuple(text.split())
        if not set(ids) <= current or set(ids) & rechecked:
            drop.append(i)
        else:
            failed[i] = ids
    if drop:
        codes[np.isin(codes, drop)] = -1
    # an acceptance holds for a date before tonight's cutoff only
    dates = ordered_at.to_numpy(dtype="datetime64[ns]")
    late = ~np.isnat(dates) & (dates >= cutoff.to_datetime64())
    codes[late & (codes >= 0)] = -1
    return codes, failed


def duplicate_candidates(
    frame: pd.DataFrame, key: tuple[str, ...], groups: IntArray | None
) -> npt.NDArray[np.bool_]:
    """Rows that may share their key with another row (a superset of the
    duplicated rows; the GX expectation decides). With ``groups``, rows of
    the largest group are known to have distinct keys among themselves, so
    only its rows whose first key column's value occurs outside it can
    collide."""
    n = len(frame)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    if groups is None or not (groups >= 0).any():
        return np.asarray(frame.duplicated(list(key), keep=False), dtype=bool)
    values, counts = np.unique(groups[groups >= 0], return_counts=True)
    largest = values[np.argmax(counts)]
    inside = groups == largest
    rest = ~inside
    if not rest.any():
        return out
    # the column that tells keys apart best: the order id
    col = "order_id" if "order_id" in key else key[0]
    outside_values = frame[col].iloc[np.flatnonzero(rest)].dropna().unique()
    near = inside & np.asarray(frame[col].isin(outside_values), dtype=bool)
    cand = rest | near
    sub = frame.loc[cand, list(key)]
    dup = np.asarray(sub.duplicated(keep=False), dtype=bool)
    out[np.flatnonzero(cand)[dup]] = True
    return out


__all__ = [
    "CACHED_KINDS",
    "KnownVerdicts",
    "NewVerdicts",
    "SnapshotWithVerdicts",
    "cached_rules",
    "duplicate_candidates",
    "known_verdicts_of",
    "rules_fingerprint",
    "short_id",
    "usable_codes",
]
