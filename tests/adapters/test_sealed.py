"""The sealed history of the demand cache (replenish/store/sealed.py): the
ERP's closed months copied to Arrow files and read from there, on a SQLite
file store (the files beside it) and on PostgreSQL and MariaDB
(``REPLENISH_SEALED_DIR``).

Every read through the copy is compared, row for row, with the same read
from the table alone (``REPLENISH_SEALED_DIR=off``): the copy may only ever
be read while it equals the table."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from replenish.model import ErpSnapshot
from replenish.quality import validate_snapshot
from replenish.quality.verdicts import known_verdicts_of
from replenish.sources.generic import day_end
from replenish.sources.incremental import read_incremental, save_verdicts
from replenish.store import Store, sealed
from replenish.store.cache import ERP_SOURCE
from tests.adapters.test_incremental import (  # noqa: F401 (the shop fixture)
    D1,
    HISTORY,
    Night,
    assert_same,
    assert_same_gate,
    shop,
)
from tests.factories import cache_lines as _lines

ENV = "REPLENISH_SEALED_DIR"
KEYS = ["source", "channel", "order_id", "line_no"]
JUL, AUG, SEP, OCT, NOV = (datetime(2026, m, 1) for m in (7, 8, 9, 10, 11))


# ---- helpers ---------------------------------------------------------------------------
def _returns() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["order_id", "sku", "location_id", "qty", "returned_at", "restockable"]
    )


def _month(first: datetime, n: int, prefix: str) -> pd.DataFrame:
    """``n`` orders of a month: two channels, a second line on every other
    order, microseconds, a missing quantity, a missing status, WH2 too."""
    rows = []
    for i in range(n):
        at = first.replace(day=1 + i * 4, hour=8 + i, minute=30, second=15, microsecond=123456 + i)
        qty = float("nan") if i == 3 else float(i + 1) * (-1 if i == 4 else 1)
        rows.append((f"{prefix}-{first:%m}{i:02d}", 1, f"A-{i % 3}", qty, at, "shipped"))
        if i % 2 == 0:
            rows.append((f"{prefix}-{first:%m}{i:02d}", 2, f"B-{i % 2}", 2.5, at, None))
    frame = _lines(*rows)
    frame.loc[frame.index % 3 == 1, "channel"] = "b2b"
    frame.loc[frame.index % 4 == 2, "location_id"] = "WH2"
    return frame


def _erp_history() -> pd.DataFrame:
    """The ERP's lines of July to October, with lines on a month's edges,
    one key in two channels, and an undated line."""
    edges = _lines(
        ("SO-EDGE", 1, "A-1", 1.0, datetime(2026, 9, 30, 23, 59, 59, 999999), "shipped"),
        ("SO-EDGE", 2, "A-2", 1.0, OCT, "shipped"),  # the first instant of October
        ("SO-EDGE", 3, "A-2", 1.0, AUG, "shipped"),
        ("SO-UNDATED", 1, "A-1", 4.0, None, "open"),
    )
    twin = _lines(("SO-EDGE", 1, "A-1", 9.0, datetime(2026, 8, 2, 10), "open"), channel="b2b")
    months = [_month(m, 6, "SO") for m in (JUL, AUG, SEP, OCT)]
    return pd.concat([*months, edges, twin], ignore_index=True)


def _dated_before(frame: pd.DataFrame, before: datetime) -> int:
    return int((pd.to_datetime(frame["ordered_at"]) < before).sum())


def _rejected(frame: pd.DataFrame, verdict: str) -> pd.DataFrame:
    out = frame[["channel", "order_id", "line_no", "ordered_at"]].copy()
    out["verdict"] = verdict
    return out


def _fill(store: Store) -> int:
    """Cache the ERP's July to November and a channel's August to November,
    verdicts taken after October's lines were cached (some old lines
    rejected, lines ordered before August never validated), November cached
    after the verdicts. Returns the ERP's lines ordered before October."""
    erp = _erp_history()
    store.ingest(ERP_SOURCE, erp, _returns(), OCT + timedelta(days=31))
    through = store.source_state(ERP_SOURCE).updated_at  # type: ignore[union-attr]
    july_bad = erp[(erp["order_id"] == "SO-0700") & (erp["line_no"] == 1)]
    aug_bad = erp[erp["order_id"] == "SO-0801"]
    oct_bad = erp[erp["order_id"] == "SO-1002"]
    rejected = pd.concat(
        [
            _rejected(july_bad, "range:qty"),
            _rejected(aug_bad, "reference:sku"),
            _rejected(oct_bad, "range:qty,reference:sku"),
        ],
        ignore_index=True,
    )
    n = store.record_verdicts(ERP_SOURCE, rejected, through=through, validated_from=AUG, rules="r1")
    assert n == len(rejected) == 4
    nov = _month(NOV, 4, "SO")
    store.ingest(ERP_SOURCE, nov, _returns(), NOV + timedelta(days=20))

    shop_lines = pd.concat(
        [_month(m, 3, "SH").assign(channel="shopify") for m in (AUG, SEP, OCT, NOV)],
        ignore_index=True,
    )
    store.ingest("shopify", shop_lines, _returns(), NOV + timedelta(days=20))
    shop_through = store.source_state("shopify").updated_at  # type: ignore[union-attr]
    store.record_verdicts(
        "shopify",
        _rejected(shop_lines[shop_lines["order_id"] == "SH-0901"], "range:qty"),
        through=shop_through,
        validated_from=SEP,
        rules="r1",
    )
    return _dated_before(erp, OCT)


def _read(store: Store, **kw: Any) -> pd.DataFrame:
    return store.cached_sales(
        kw.pop("start", None),
        kw.pop("end", None),
        with_source=True,
        with_verdicts=True,
        lean=True,
        **kw,
    )


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as plain objects (a categorical and a string column compare
    equal), missing values None, sorted by key."""
    out = frame.astype(object)
    out = out.where(out.notna(), None)
    return out.sort_values(KEYS, ignore_index=True)


def _table_only(store: Store, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> pd.DataFrame:
    """The same read with no sealed copy: the table alone."""
    with monkeypatch.context() as m:
        m.setenv(ENV, "off")
        return _plain(_read(store, **kw))


#: reads of the whole cache, of a window cut inside a sealed month, with the
#: nightly read's left-out re-read week, and ending inside the copy
READS: list[dict[str, Any]] = [
    {},
    {"start": datetime(2026, 8, 9, 12)},
    {"left_out_from": {ERP_SOURCE: datetime(2026, 9, 10)}},
    {"start": datetime(2026, 7, 20), "end": datetime(2026, 9, 20)},
    {"start": SEP, "end": OCT},
    {"left_out_from": {ERP_SOURCE: datetime(2026, 10, 3), "shopify": datetime(2026, 9, 5)}},
]


def assert_reads_equal(
    store: Store, monkeypatch: pytest.MonkeyPatch, reads: list[dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Each of ``reads`` (default: the whole cache and the nightly read's
    left-out week) through the copy equals the table alone; returns the
    whole read."""
    for read in reads if reads is not None else [READS[0], READS[2]]:
        got = _plain(_read(store, **read))
        want = _table_only(store, monkeypatch, **read)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got, want, obj=f"cached_sales({read})")
    return _plain(_read(store))


def _seal_id(store: Store) -> str | None:
    state = store.source_state(ERP_SOURCE)
    return None if state is None else state.seal_id


def _sql(store: Store, statement: str, **params: Any) -> None:
    with store.engine.begin() as c:
        c.execute(text(statement), params)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The rows of each read of a sealed copy (None: it could not be read)."""
    calls: list[int | None] = []
    real = sealed.SealedFiles.read

    def read(self: sealed.SealedFiles, *args: Any, **kw: Any) -> Any:
        out = real(self, *args, **kw)
        calls.append(None if out is None else out.num_rows)
        return out

    monkeypatch.setattr(sealed.SealedFiles, "read", read)
    return calls


@pytest.fixture
def store_root(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, Path]]:
    """A store and where its sealed files go: beside a SQLite file by
    default, under ``REPLENISH_SEALED_DIR`` for a server."""
    if any_db_url.startswith("sqlite"):
        monkeypatch.delenv(ENV, raising=False)
        root = sealed.sealed_root(any_db_url)
        assert root == tmp_path / "db.sqlite.sealed"
    else:
        assert sealed.sealed_root(any_db_url) is None  # a server: no copy unless told
        monkeypatch.setenv(ENV, str(tmp_path / "sealed"))
        root = sealed.sealed_root(any_db_url)
        assert root is not None and root.parent == tmp_path / "sealed"
    store = Store(any_db_url)
    yield store, root
    store.dispose()


@pytest.fixture
def sqlite_store_root(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, Path]]:
    """A SQLite store and its sealed files' folder: for the files' own
    failures and races, which no back end changes (their SQL is covered on
    every back end by the tests above and below)."""
    monkeypatch.delenv(ENV, raising=False)
    root = sealed.sealed_root(sqlite_url)
    assert root is not None
    store = Store(sqlite_url)
    yield store, root
    store.dispose()


def _sealed(store_root: tuple[Store, Path]) -> tuple[Store, sealed.SealedFiles, int]:
    """The filled store sealed before October: the store, its ERP's files,
    the lines sealed."""
    store, root = store_root
    expected = _fill(store)
    assert store.seal(ERP_SOURCE, datetime(2026, 10, 17, 15)) == expected  # to October 1
    return store, sealed.SealedFiles(root, ERP_SOURCE), expected


# ---- the copy equals the table ---------------------------------------------------------
def test_a_sealed_read_equals_the_table(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """The months before October come from the copy, written once; every
    read (windows, left-out weeks) equals the table's: values to the
    microsecond, missing values, channel lines, verdicts (failed checks,
    '' for a line validated, None for one ordered before the validated
    window or cached after it)."""
    store, files, expected = _sealed(store_root)
    state = store.source_state(ERP_SOURCE)
    assert state is not None and state.sealed_before == OCT
    seal_id = state.seal_id
    assert seal_id is not None and not seal_id.startswith(sealed.PENDING)
    names = sorted(p.name for p in files.folder(seal_id).iterdir())
    assert names == ["2026-07.arrow", "2026-08.arrow", "2026-09.arrow"]
    assert (
        sum(
            sealed.pa.ipc.open_file(str(files.path(seal_id, m))).read_all().num_rows
            for m in (JUL, AUG, SEP)
        )
        == expected
    )

    whole = assert_reads_equal(store, monkeypatch, READS)
    assert spy and all(n is not None for n in spy)
    assert spy[0] == expected  # the whole read: every sealed line from the copy
    erp = whole[whole["source"] == ERP_SOURCE].set_index(["channel", "order_id", "line_no"])
    verdicts = erp["verdict"]
    assert verdicts[("web", "SO-0700", 1)] == "range:qty"  # before August, rejected
    assert verdicts[("web", "SO-0701", 1)] is None  # before August: not validated
    assert verdicts[("web", "SO-0801", 1)] == "reference:sku"
    assert verdicts[("web", "SO-0802", 1)] == ""  # passed
    assert verdicts[("web", "SO-EDGE", 1)] == ""
    assert verdicts[("web", "SO-1002", 1)] == "range:qty,reference:sku"  # the table's part
    assert verdicts[("web", "SO-1100", 1)] is None  # cached after the verdicts
    assert verdicts[("web", "SO-UNDATED", 1)] is None
    assert erp.loc[("web", "SO-EDGE", 1), "ordered_at"] == pd.Timestamp(
        "2026-09-30 23:59:59.999999"
    )
    assert erp.loc[("b2b", "SO-EDGE", 1), "qty"] == 9.0  # a key in two channels
    assert pd.isna(erp.loc[("web", "SO-0703", 1), "qty"])
    assert erp.loc[("b2b", "SO-0700", 2), "status"] is None
    shopify = whole[whole["source"] == "shopify"]
    assert len(shopify) == 4 * 5 and set(shopify["verdict"]) == {"", "range:qty", None}
    # the lean read's dtypes are the table's
    got, want = _read(store), None
    with monkeypatch.context() as m:
        m.setenv(ENV, "off")
        want = _read(store)
    assert dict(got.dtypes.astype(str)) == dict(want.dtypes.astype(str))


def test_the_copy_is_what_is_read(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """A change made to the table behind the store's back (no store write,
    so nothing voids the copy) is not seen through the copy: the sealed
    months really are read from the files, the rest from the table."""
    store, _files, _ = _sealed(store_root)
    _sql(store, "UPDATE sales_cache SET qty = 99 WHERE order_id IN ('SO-0702', 'SO-1001')")
    got = _plain(_read(store)).set_index(["source", "channel", "order_id", "line_no"])
    want = _table_only(store, monkeypatch).set_index(["source", "channel", "order_id", "line_no"])
    assert want.loc[("erp", "web", "SO-0702", 1), "qty"] == 99.0
    assert got.loc[("erp", "web", "SO-0702", 1), "qty"] == 3.0  # the sealed value
    assert got.loc[("erp", "web", "SO-1001", 1), "qty"] == 99.0  # October: the table's
    assert spy and spy[-1] is not None and spy[-1] > 0
    # the reads that cannot take it read the table: a SKU list, a plain frame
    assert store.cached_sales(None, skus=["A-2"], with_source=True, lean=True)["qty"].max() == 99
    assert store.cached_sales(None)["qty"].max() == 99.0
    calls = len(spy)
    store.cached_sales(None, sources=["shopify"], with_source=True, lean=True)
    assert len(spy) == calls  # no ERP line asked for: the copy is not opened


# ---- what voids the copy ---------------------------------------------------------------
def test_an_ingest_touching_sealed_lines_voids_the_copy(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    store, _files, _ = _sealed(store_root)
    seal_id = _seal_id(store)
    later = NOV + timedelta(days=21)

    # a channel's old lines: not the ERP's copy
    store.ingest(
        "shopify",
        _lines(("SH-OLD", 1, "A-1", 5.0, datetime(2026, 7, 5), "shipped"), channel="shopify"),
        _returns(),
        later,
    )
    assert _seal_id(store) == seal_id
    # the ERP's re-read from October 1 on (the sealed month's end) keeps it
    oct_lines = _erp_history()
    oct_lines = oct_lines[pd.to_datetime(oct_lines["ordered_at"]) >= OCT]
    store.ingest(ERP_SOURCE, oct_lines, _returns(), later, replace_from=OCT)
    store.ingest(
        ERP_SOURCE,
        _lines(("SO-NEW", 1, "A-1", 1.0, datetime(2026, 11, 2), "open")),
        _returns(),
        later,
        replace_from=datetime(2026, 10, 20),
    )
    assert _seal_id(store) == seal_id
    spy.clear()
    whole = assert_reads_equal(store, monkeypatch)
    assert spy and None not in spy
    assert "SH-OLD" in set(whole["order_id"]) and "SO-NEW" in set(whole["order_id"])

    # a re-read reaching into the sealed months voids it
    sep = _erp_history()
    sep = sep[pd.to_datetime(sep["ordered_at"]) >= datetime(2026, 9, 20)].copy()
    sep.loc[sep["order_id"] == "SO-0905", "qty"] = 42.0
    store.ingest(ERP_SOURCE, sep, _returns(), later, replace_from=datetime(2026, 9, 20))
    state = store.source_state(ERP_SOURCE)
    assert state is not None and (state.seal_id, state.sealed_before) == (None, None)
    spy.clear()
    whole = assert_reads_equal(store, monkeypatch)
    assert spy == []  # not opened
    assert set(whole.loc[whole["order_id"] == "SO-0905", "qty"]) == {42.0}
    assert "SO-NEW" not in set(whole["order_id"])  # replaced from Sep 20 on


def test_a_write_of_one_sealed_line_voids_the_copy(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a re-read: a sealed line written again, one whose date moved
    past the seal, a new line ordered in a sealed month."""
    store, _, _expected = _sealed(store_root)
    cases = [
        (("SO-0801", 1), datetime(2026, 8, 5)),
        (("SO-0802", 1), datetime(2026, 11, 5)),  # moved out of the sealed months
        (("SO-LATE", 1), datetime(2026, 7, 9)),
    ]
    for i, (key, at) in enumerate(cases):
        if i:
            assert store.seal(ERP_SOURCE, OCT) and _seal_id(store) is not None
        store.ingest(ERP_SOURCE, _lines((*key, "A-1", 77.0 + i, at, "shipped")), _returns(), None)
        assert _seal_id(store) is None, key
        whole = assert_reads_equal(store, monkeypatch, [READS[0]])
        row = whole[(whole["order_id"] == key[0]) & (whole["line_no"] == key[1])]
        assert row["qty"].tolist() == [77.0 + i] and row["ordered_at"].tolist() == [at]


def test_verdicts_on_sealed_lines_void_the_copy(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """Verdicts on lines after the copy, or none at all (the validated
    window moves: derived on read), keep it; a rejected sealed line, a
    rejection without dates, or other checks void it."""
    store, _, _ = _sealed(store_root)
    seal_id = _seal_id(store)
    erp = _erp_history()
    now = store.source_state(ERP_SOURCE).updated_at  # type: ignore[union-attr]

    # everything validated from July on, no new rejection: '' for old lines
    store.record_verdicts(
        ERP_SOURCE, _rejected(erp.iloc[:0], ""), through=now, validated_from=JUL, rules="r1"
    )
    oct_line = erp[(erp["order_id"] == "SO-1004") & (erp["line_no"] == 1)]
    assert store.record_verdicts(
        ERP_SOURCE, _rejected(oct_line, "range:qty"), through=now, validated_from=JUL, rules="r1"
    )
    assert _seal_id(store) == seal_id
    spy.clear()
    whole = assert_reads_equal(store, monkeypatch)
    assert spy and None not in spy
    v = whole.set_index(["source", "channel", "order_id", "line_no"])["verdict"]
    assert v[("erp", "web", "SO-0701", 1)] == ""  # now validated: derived from the copy
    assert v[("erp", "web", "SO-1100", 1)] == ""  # November too (cached before `now`)
    assert v[("erp", "web", "SO-1004", 1)] == "range:qty"

    # a rejected line of September
    sep_line = erp[(erp["order_id"] == "SO-0902") & (erp["line_no"] == 1)]
    store.record_verdicts(
        ERP_SOURCE, _rejected(sep_line, "range:qty"), through=now, validated_from=JUL, rules="r1"
    )
    assert _seal_id(store) is None
    whole = assert_reads_equal(store, monkeypatch)
    v = whole.set_index(["source", "channel", "order_id", "line_no"])["verdict"]
    assert v[("erp", "web", "SO-0902", 1)] == "range:qty"

    # without the lines' dates: assume the worst
    assert store.seal(ERP_SOURCE, OCT) and _seal_id(store) is not None
    store.record_verdicts(
        ERP_SOURCE,
        _rejected(oct_line, "x").drop(columns="ordered_at"),
        through=now,
        validated_from=JUL,
        rules="r1",
    )
    assert _seal_id(store) is None

    # other checks drop every verdict
    assert store.seal(ERP_SOURCE, OCT) and _seal_id(store) is not None
    store.record_verdicts(
        ERP_SOURCE, _rejected(erp.iloc[:0], ""), through=now, validated_from=AUG, rules="r2"
    )
    assert _seal_id(store) is None
    whole = assert_reads_equal(store, monkeypatch)
    assert set(whole.loc[whole["source"] == ERP_SOURCE, "verdict"]) == {"", None}


CHANGED = "UPDATE sales_cache SET qty = {qty} WHERE order_id = 'SO-0802'"


def test_a_missing_month_file_sends_the_read_to_the_table(
    sqlite_store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """A month file gone: the whole read from the table (a change behind the
    store's back shows it); the next seal builds a new copy ("deleting them
    costs one slower night", replenish/store/sealed.py)."""
    store, files, expected = _sealed(sqlite_store_root)
    seal_id = _seal_id(store)
    assert seal_id is not None
    files.path(seal_id, AUG).unlink()
    _sql(store, CHANGED.format(qty=55))
    whole = assert_reads_equal(store, monkeypatch)
    assert spy[0] is None  # the whole read (a read of September alone still can)
    assert set(whole.loc[whole["order_id"] == "SO-0802", "qty"]) == {55.0}
    assert store.seal(ERP_SOURCE, OCT) == expected
    new_id = _seal_id(store)
    assert new_id not in (None, seal_id) and not files.folder(seal_id).exists()
    spy.clear()
    assert_reads_equal(store, monkeypatch)
    assert spy and None not in spy


def test_a_folder_gone_or_a_corrupt_file_sends_the_read_to_the_table(
    sqlite_store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    store, files, expected = _sealed(sqlite_store_root)
    seal_id = _seal_id(store)
    assert seal_id is not None
    files.path(seal_id, SEP).write_bytes(b"not an arrow file")
    _sql(store, CHANGED.format(qty=56))
    whole = assert_reads_equal(store, monkeypatch)
    assert spy[0] is None
    assert set(whole.loc[whole["order_id"] == "SO-0802", "qty"]) == {56.0}
    # the whole folder gone: read from the table, sealed again at once
    shutil.rmtree(files.folder(seal_id))
    spy.clear()
    assert_reads_equal(store, monkeypatch)
    assert spy == []  # no file: not even opened
    assert store.seal(ERP_SOURCE, OCT) == expected
    assert _seal_id(store) not in (None, seal_id)


def test_a_seal_being_written_is_not_read(
    sqlite_store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    store, _files, _ = _sealed(sqlite_store_root)
    seal_id = _seal_id(store)
    _sql(store, f"UPDATE source_watermarks SET seal_id = 'pending:{seal_id}' WHERE source = 'erp'")
    _sql(store, CHANGED.format(qty=57))
    whole = assert_reads_equal(store, monkeypatch)
    assert spy == []
    assert set(whole.loc[whole["order_id"] == "SO-0802", "qty"]) == {57.0}


def test_a_write_during_a_seal_voids_it(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """A write touching an old line while the files are written clears the
    pending mark: the seal comes to nothing and leaves no files."""
    store, root = store_root
    _fill(store)
    real = sealed.SealedFiles.write
    writes: list[datetime] = []

    def write_then_ingest(self: sealed.SealedFiles, seal_id: str, month: datetime, t: Any) -> None:
        real(self, seal_id, month, t)
        if not writes:
            state = store.source_state(ERP_SOURCE)
            assert state is not None and state.seal_id == f"pending:{seal_id}"
            store.ingest(
                ERP_SOURCE,
                _lines(("SO-0803", 1, "A-0", 8.0, datetime(2026, 7, 2), "shipped")),
                _returns(),
                None,
            )
        writes.append(month)

    monkeypatch.setattr(sealed.SealedFiles, "write", write_then_ingest)
    assert store.seal(ERP_SOURCE, OCT) is None
    assert writes == [JUL, AUG, SEP]
    assert _seal_id(store) is None
    assert not list(sealed.SealedFiles(root, ERP_SOURCE).others(None))
    whole = assert_reads_equal(store, monkeypatch)
    assert spy == []
    assert set(whole.loc[whole["order_id"] == "SO-0803", "qty"]) == {8.0}


def test_a_write_during_a_read_sends_the_read_to_the_table(
    sqlite_store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy read, then a write voids it before the table is read: the
    read notices (the seal id changed) and reads the table alone."""
    store, _, _ = _sealed(sqlite_store_root)
    real = sealed.SealedFiles.read
    done: list[bool] = []

    def read_then_write(self: sealed.SealedFiles, *args: Any, **kw: Any) -> Any:
        out = real(self, *args, **kw)
        if not done:
            done.append(True)
            store.ingest(
                ERP_SOURCE,
                _lines(("SO-0702", 1, "A-2", 31.0, datetime(2026, 7, 9), "shipped"), channel="web"),
                _returns(),
                None,
            )
        return out

    monkeypatch.setattr(sealed.SealedFiles, "read", read_then_write)
    got = _plain(_read(store))
    assert done and _seal_id(store) is None
    pd.testing.assert_frame_equal(got, _table_only(store, monkeypatch))
    assert set(got.loc[got["order_id"] == "SO-0702", "qty"]) >= {31.0}


def test_a_reset_then_a_seal_builds_a_new_copy(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, files, _ = _sealed(store_root)
    old = _seal_id(store)
    assert old is not None
    store.reset_source(ERP_SOURCE)
    assert store.source_state(ERP_SOURCE) is None
    assert store.seal(ERP_SOURCE, OCT) is None  # nothing cached
    erp = _erp_history()
    erp = erp[pd.to_datetime(erp["ordered_at"]) >= AUG]
    store.ingest(ERP_SOURCE, erp, _returns(), NOV, replace_from=AUG)
    whole = assert_reads_equal(store, monkeypatch)
    assert not whole["order_id"].str.startswith("SO-07").any()  # not from the old copy
    assert store.seal(ERP_SOURCE, OCT) == _dated_before(erp, OCT)
    new = _seal_id(store)
    assert new not in (None, old)
    assert not files.folder(old).exists() and files.folder(new).is_dir()  # type: ignore[arg-type]
    assert sorted(p.name for p in files.folder(new).iterdir()) == [  # type: ignore[arg-type]
        "2026-08.arrow",
        "2026-09.arrow",
    ]
    assert_reads_equal(store, monkeypatch)


# ---- extending the copy ----------------------------------------------------------------
def test_a_seal_adds_only_the_months_it_lacks(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """Sealed to September, then two months later to November: the new
    months only, under the same id; a seal already there writes nothing; a
    pruned cache drops the months it no longer covers."""
    store, root = store_root
    files = sealed.SealedFiles(root, ERP_SOURCE)
    erp = _erp_history()
    dates = pd.to_datetime(erp["ordered_at"])
    store.ingest(ERP_SOURCE, erp[dates < SEP], _returns(), SEP, replace_from=JUL)
    assert store.seal(ERP_SOURCE, SEP) == _dated_before(erp, SEP)
    seal_id = _seal_id(store)
    assert seal_id is not None
    assert store.seal(ERP_SOURCE, SEP) == 0
    assert store.seal(ERP_SOURCE, datetime(2026, 8, 15)) == 0  # an older month start
    # two more months, re-read from the seal's end on: the copy stays
    rest = pd.concat([erp[(dates >= SEP) | dates.isna()], _month(NOV, 4, "SO")])
    store.ingest(ERP_SOURCE, rest, _returns(), NOV + timedelta(days=10), replace_from=SEP)
    assert _seal_id(store) == seal_id
    store.ingest(
        "shopify", _month(AUG, 3, "SH").assign(channel="shopify"), _returns(), NOV, replace_from=AUG
    )
    assert store.seal(ERP_SOURCE, NOV) == int(
        (
            (pd.to_datetime(rest["ordered_at"]) >= SEP) & (pd.to_datetime(rest["ordered_at"]) < NOV)
        ).sum()
    )
    assert _seal_id(store) == seal_id
    assert store.source_state(ERP_SOURCE).sealed_before == NOV  # type: ignore[union-attr]
    assert store.seal(ERP_SOURCE, NOV) == 0
    assert sorted(p.stem for p in files.folder(seal_id).iterdir()) == [
        "2026-07",
        "2026-08",
        "2026-09",
        "2026-10",
    ]
    spy.clear()
    assert_reads_equal(store, monkeypatch, READS)
    assert spy and None not in spy

    # pruned: the cache covers from Aug 10 on; the copy's older lines are not read
    assert store.prune(ERP_SOURCE, datetime(2026, 8, 10)) > 0
    assert_reads_equal(store, monkeypatch)
    store.ingest(
        ERP_SOURCE, _month(NOV, 4, "SO"), _returns(), NOV + timedelta(days=30), replace_from=NOV
    )
    assert store.seal(ERP_SOURCE, datetime(2026, 12, 1)) == 4 + 2
    assert sorted(p.stem for p in files.folder(seal_id).iterdir())[0] == "2026-08"
    spy.clear()
    assert_reads_equal(store, monkeypatch)
    assert spy and None not in spy


def test_lines_older_than_the_coverage_are_read_as_the_table_has_them(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first batch that holds lines ordered before its ``replace_from``
    (the cache then covers the source from ``replace_from`` on): the table
    keeps them and a read shows them, so the copy must too."""
    store, _ = store_root
    erp = _erp_history()
    store.ingest(ERP_SOURCE, erp, _returns(), NOV, replace_from=AUG)
    assert store.seal(ERP_SOURCE, OCT) is not None
    want = _table_only(store, monkeypatch)
    assert want["order_id"].str.startswith("SO-07").any()
    pd.testing.assert_frame_equal(_plain(_read(store)), want)


def test_a_table_part_without_verdicts_joins_the_copy(
    store_root: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, spy: list[int | None]
) -> None:
    """The lines read from the table have no verdict at all (cached after
    the verdicts), the copy's have: the parts still join."""
    store, _ = store_root
    erp = _erp_history()
    old = erp[pd.to_datetime(erp["ordered_at"]) < OCT]
    store.ingest(ERP_SOURCE, old, _returns(), OCT)
    through = store.source_state(ERP_SOURCE).updated_at  # type: ignore[union-attr]
    store.record_verdicts(
        ERP_SOURCE,
        _rejected(old.iloc[:1], "range:qty"),
        through=through,
        validated_from=JUL,
        rules="r1",
    )
    store.ingest(ERP_SOURCE, _month(OCT, 3, "SO"), _returns(), NOV, replace_from=OCT)
    assert store.seal(ERP_SOURCE, OCT) == len(old)
    whole = assert_reads_equal(store, monkeypatch, [READS[0]])
    assert spy and None not in spy
    assert set(whole["verdict"]) == {"", "range:qty", None}


def test_no_copy_without_a_place_or_a_source(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV, "off")
    store = Store(sqlite_url)
    assert store.seal(ERP_SOURCE, OCT) is None  # not cached
    store.ingest(ERP_SOURCE, _erp_history(), _returns(), NOV)
    assert store.seal(ERP_SOURCE, OCT) is None  # off
    assert not (tmp_path / "db.sqlite.sealed").exists()
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    assert store.seal(ERP_SOURCE, OCT) == _dated_before(_erp_history(), OCT)
    assert not (tmp_path / "db.sqlite.sealed").exists()
    assert len(list((tmp_path / "elsewhere").glob("*/erp-*/*.arrow"))) == 3
    # an in-memory store has no file to put them beside
    monkeypatch.delenv(ENV)
    assert sealed.sealed_root("sqlite://") is None
    store.dispose()


# ---- the nightly run -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_nightly_run_seals_and_then_reads_the_copy(
    backend: str,
    request: pytest.FixtureRequest,
    shop: ErpSnapshot,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spy: list[int | None],
) -> None:
    """Night 1 caches the ERP, takes the verdicts and seals the months the
    next nights no longer re-read; night 2 takes them from the copy, and
    its snapshot and gate are those of a direct read of the ERP."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    # the test shop is small: seal from its first line on (the default waits
    # for half a million cached lines)
    monkeypatch.setattr("replenish.sources.incremental.SEAL_MIN_LINES", 0)
    if backend == "sqlite":
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, str(tmp_path / "sealed"))
    root = sealed.sealed_root(url)
    assert root is not None
    night = Night(url, shop, D1)
    try:
        d1 = D1

        def run(day: date) -> int:
            snap, _report = read_incremental(
                night.erp, night.store, day, HISTORY, None, now=_evening(day)
            )
            assert_same(snap, night.direct(day))
            known = known_verdicts_of(snap)
            assert known is not None
            gate = validate_snapshot(snap, day_end(day), known=known)
            assert_same_gate(gate, validate_snapshot(snap, day_end(day)))
            assert known.seal_before == NOV  # (watermark - 7 days)'s month
            return save_verdicts(night.store, known, gate.new_verdicts)

        run(d1)
        state = night.store.source_state(ERP_SOURCE)
        assert state is not None and state.sealed_before == NOV and state.seal_id
        files = sealed.SealedFiles(root, ERP_SOURCE)
        assert sorted(p.name for p in files.folder(state.seal_id).iterdir()) == [
            "2026-09.arrow",
            "2026-10.arrow",
        ]
        assert spy == []  # not read before it was made

        d2 = d1 + timedelta(days=1)
        night.arrive(d2)
        run(d2)
        assert spy and None not in spy and spy[0] > 0
        assert _seal_id(night.store) == state.seal_id  # nothing voided it
        # a full refresh voids the copy (the next save_verdicts makes a new one)
        spy.clear()
        snap, report = read_incremental(
            night.erp, night.store, d2, HISTORY, None, now=_evening(d2), full_refresh=True
        )
        assert report.mode == "full" and _seal_id(night.store) is None
        assert_same(snap, night.direct(d2))
    finally:
        night.close()


def _evening(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time()).replace(hour=23, minute=30)


def test_a_small_cache_is_not_sealed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below SEAL_MIN_LINES cached ERP lines the nightly run leaves the
    cache unsealed (the table reads back fast); from there on it seals."""
    from replenish.sources import incremental

    monkeypatch.delenv(ENV, raising=False)
    store = Store(sqlite_url)
    rows = [(f"SO-{i}", 1, "A-1", 1.0, JUL + timedelta(days=i % 60), "shipped") for i in range(40)]
    store.ingest(ERP_SOURCE, _lines(*rows), pd.DataFrame(), JUL + timedelta(days=70))
    monkeypatch.setattr(incremental, "SEAL_MIN_LINES", 41)
    assert incremental.seal_history(store, SEP) is None
    assert store.source_state(ERP_SOURCE).seal_id is None  # type: ignore[union-attr]
    monkeypatch.setattr(incremental, "SEAL_MIN_LINES", 40)
    assert incremental.seal_history(store, SEP) == 40
    assert store.source_state(ERP_SOURCE).sealed_before == SEP  # type: ignore[union-attr]
    store.dispose()
