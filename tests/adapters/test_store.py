"""The project's store on SQLite and PostgreSQL: migrations, idempotent drafts, alerts,
the demand cache."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from replenish import model
from replenish.errors import StoreError
from replenish.notify.alerts import Alert
from replenish.orders import build_drafts, build_headers, merge_partial
from replenish.store import Store, cache
from replenish.store.models import Base
from tests.factories import cache_lines as _lines

AS_OF = date(2026, 11, 20)
SUPPLIERS = pd.DataFrame(
    {"supplier_id": ["S1", "S2"], "currency": ["EUR", "EUR"], "min_order_value": [0.0, 500.0]}
)


def _plans(qty_a: float = 24.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A-1", "B-2", "C-3", "D-4"],
            "location_id": ["WH1", "WH1", "WH1", "WH2"],
            "supplier_id": ["S1", "S1", "S2", None],
            "supplier_sku": ["F-A1", "F-B2", "S-C3", None],
            "order_qty": [qty_a, 0.0, 3.0, 10.0],
            "unit_price": [2.0, 20.0, 30.0, 1.0],
            "reason": ["IP below ROP", "IP above ROP", "open customer orders", "no supplier"],
            "demand_mean": [10.0, 1.0, 0.1, 1.0],
            "inventory_position": [25.0, 500.0, 0.0, 0.0],
            "reorder_point": [60.0, 10.0, 0.0, 5.0],
        }
    )


def test_migrations_match_the_models(store_url: str) -> None:
    """Alembic's head schema is exactly what the models declare."""
    Store(store_url).dispose()
    engine = create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrate_twice_is_harmless(store_url: str) -> None:
    Store(store_url).dispose()
    Store(store_url).dispose()


def test_publish_is_idempotent(store_url: str) -> None:
    """The same plan published twice for one date stores one set of drafts."""
    store = Store(store_url)
    headers, lines = build_drafts(_plans(), SUPPLIERS, AS_OF)
    assert list(headers["po_key"]) == ["2026-11-20/S1/WH1", "2026-11-20/S2/WH1"]
    assert bool(headers.set_index("po_key").loc["2026-11-20/S2/WH1", "below_minimum"])

    first = store.publish_drafts(AS_OF, "run-1", headers, lines)
    assert sorted(first.created) == sorted(headers["po_key"])
    before = store.orders(as_of=AS_OF)

    second = store.publish_drafts(AS_OF, "run-2", headers, lines)
    assert second.created == [] and sorted(second.unchanged) == sorted(headers["po_key"])
    pd.testing.assert_frame_equal(store.orders(as_of=AS_OF), before)
    assert store.count_drafts(AS_OF) == (2, 2)
    store.dispose()


def test_changed_plan_replaces_lines_and_removes_stale_drafts(store_url: str) -> None:
    store = Store(store_url)
    store.publish_drafts(AS_OF, "run-1", *build_drafts(_plans(), SUPPLIERS, AS_OF))
    plans = _plans(qty_a=36.0)
    plans.loc[plans["sku"] == "C-3", "order_qty"] = 0.0
    result = store.publish_drafts(AS_OF, "run-2", *build_drafts(plans, SUPPLIERS, AS_OF))
    assert result.updated == ["2026-11-20/S1/WH1"]
    assert result.removed == ["2026-11-20/S2/WH1"]
    orders = store.orders(as_of=AS_OF)
    assert orders[["sku", "qty"]].to_dict("records") == [{"sku": "A-1", "qty": 36.0}]
    store.dispose()


def test_partial_run_keeps_other_skus_lines(store_url: str) -> None:
    store = Store(store_url)
    store.publish_drafts(AS_OF, "run-1", *build_drafts(_plans(), SUPPLIERS, AS_OF))
    _, only_c = build_drafts(_plans().query("sku == 'C-3'").assign(order_qty=6.0), SUPPLIERS, AS_OF)
    lines = merge_partial(store.orders(as_of=AS_OF), only_c, {"C-3"})
    store.publish_drafts(AS_OF, "run-2", build_headers(lines, SUPPLIERS), lines)
    got = store.orders(as_of=AS_OF).set_index("sku")["qty"].to_dict()
    assert got == {"A-1": 24.0, "C-3": 6.0}
    store.dispose()


def test_concurrent_publishers_leave_one_set(store_url: str) -> None:
    """Two runs publishing the same date at once: the primary key, not luck,
    keeps one set of drafts."""
    Store(store_url).dispose()
    headers, lines = build_drafts(_plans(), SUPPLIERS, AS_OF)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def publish(i: int) -> None:
        store = Store(store_url, upgrade=False)
        barrier.wait()
        try:
            store.publish_drafts(AS_OF, f"run-{i}", headers, lines)
        except BaseException as e:  # collected and asserted below
            errors.append(e)
        finally:
            store.dispose()

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # SQLite may refuse a writer with "database is locked" after its timeout;
    # what must never happen is a second set.
    assert all(isinstance(e, StoreError) for e in errors)
    store = Store(store_url)
    assert store.count_drafts(AS_OF) == (2, 2)
    store.dispose()


def test_alerts_are_sent_once_per_date(store_url: str) -> None:
    store = Store(store_url)
    a = Alert(
        kind="stockout_risk",
        severity="critical",
        title="A-1 @ WH1",
        message="m",
        sku="A-1",
        location_id="WH1",
    )
    b = Alert(
        kind="below_safety_stock",
        severity="warning",
        title="B-2 @ WH1",
        message="m",
        sku="B-2",
        location_id="WH1",
    )
    fresh = store.record_alerts(AS_OF, "run-1", [a, b])
    assert fresh == [a, b]
    store.mark_alerts_sent(AS_OF, fresh, "log")
    assert store.record_alerts(AS_OF, "run-2", [a, b]) == []
    assert store.record_alerts(date(2026, 11, 21), "run-3", [a]) == [a]
    assert len(store.alerts(AS_OF)) == 2
    store.dispose()


def test_unknown_run_is_a_clear_error(store_url: str) -> None:
    store = Store(store_url)
    with pytest.raises(StoreError, match="no finished run"):
        store.resolve_run(None)
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.resolve_run("nope")
    store.dispose()


# ---- the demand cache (docs/incremental.md) ------------------------------------------
T0 = datetime(2026, 11, 1, 9, 30, 15, 123456)


def _returns(*rows: tuple[str, str, float, datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "order_id": o,
                "sku": sku,
                "location_id": "WH1",
                "qty": qty,
                "returned_at": at,
                "restockable": True,
            }
            for o, sku, qty, at in rows
        ]
    )


def _by_key(frame: pd.DataFrame) -> dict[tuple[str, int], tuple[object, ...]]:
    return {
        (r.order_id, r.line_no): (r.sku, r.qty, r.ordered_at, r.status) for r in frame.itertuples()
    }


def _counted(store: Store, source: str) -> tuple[int, int]:
    """The source's cached sales lines and returns, counted in the tables."""
    with store.engine.connect() as c:
        return tuple(  # type: ignore[return-value]
            int(
                c.exec_driver_sql(
                    f"SELECT count(*) FROM {t} WHERE source = '{source}'"
                ).scalar_one()
            )
            for t in ("sales_cache", "returns_cache")
        )


def test_ingest_and_prune_keep_the_row_counts_without_counting(any_db_url: str) -> None:
    """The counts of ``sources()`` / ``IngestResult`` follow deletions, new
    rows and rows that replace a cached one (here: a line whose date moved
    across the re-read start), as a count of the table gives them."""
    store = Store(any_db_url)
    old = _lines(
        ("SO-1", 1, "A-1", 2.0, T0, "shipped"),
        ("SO-1", 2, "B-2", 1.0, T0 + timedelta(days=1), "shipped"),
        ("SO-2", 1, "A-1", 4.0, T0 + timedelta(days=5), "open"),
        ("SO-3", 1, "A-1", 1.0, None, "open"),
    )
    rets = _returns(("SO-1", "A-1", 1.0, T0), ("SO-2", "A-1", 1.0, T0 + timedelta(days=6)))
    r1 = store.ingest("erp", old, rets, T0, replace_from=T0)
    assert (r1.cached_lines, r1.cached_returns) == (4, 2) == _counted(store, "erp")
    # re-read from day 4: SO-2 deleted, SO-3 (undated) deleted, SO-1/1 moved
    # to day 4 (its cached row, dated before, is replaced), SO-4 new
    again = _lines(
        ("SO-1", 1, "A-1", 2.0, T0 + timedelta(days=4), "shipped"),
        ("SO-4", 1, "A-1", 3.0, T0 + timedelta(days=6), "open"),
    )
    r2 = store.ingest(
        "erp", again, _returns(), T0 + timedelta(days=8), replace_from=T0 + timedelta(days=4)
    )
    assert (r2.deleted_lines, r2.deleted_returns) == (2, 1)
    assert (r2.cached_lines, r2.cached_returns) == (3, 1) == _counted(store, "erp")
    # a plain upsert (a channel's way): one replaced, one new
    r3 = store.ingest(
        "erp",
        _lines(("SO-1", 2, "B-2", 9.0, T0, "shipped"), ("SO-5", 1, "B-2", 1.0, T0, "open")),
        _returns(("SO-1", "A-1", 2.0, T0)),
        None,
    )
    assert (r3.cached_lines, r3.cached_returns) == (4, 1) == _counted(store, "erp")
    assert store.prune("erp", T0 + timedelta(days=2)) == 3  # 2 lines, 1 return
    state = store.sources().set_index("source").loc["erp"]
    assert (int(state["rows"]), int(state["returns"])) == (2, 0) == _counted(store, "erp")
    # the nightly read leaves the re-read week of a source out (undated too)
    start = T0 - timedelta(days=1)
    rows = store.cached_sales(start, left_out_from={"erp": T0 + timedelta(days=4)})
    assert len(rows) == 0
    rows = store.cached_sales(start, left_out_from={"erp": T0 + timedelta(days=5)})
    assert list(rows["order_id"]) == ["SO-1"]
    rows = store.cached_sales(start, lean=True, left_out_from={"shop": T0})
    assert sorted(rows["order_id"].astype(str)) == ["SO-1", "SO-4"]
    store.dispose()


def test_ingest_upserts_replaces_and_keeps_the_watermark_moving_forward(
    any_db_url: str,
) -> None:
    """On every back end the cache may live on: SQLite, PostgreSQL, MariaDB."""
    store = Store(any_db_url)
    assert store.watermark("erp") is None
    first = _lines(
        ("SO-1", 1, "A-1", 2.0, T0, "shipped"),
        ("SO-1", 2, "B-2", 1.5, T0, "shipped"),
        ("SO-2", 1, "A-1", 4.0, T0 + timedelta(days=5), "open"),
        ("SO-3", 1, "A-1", 1.0, T0 + timedelta(days=6), "open"),
    )
    rets = _returns(("SO-1", "A-1", 1.0, T0 + timedelta(days=2)))
    wm1 = T0 + timedelta(days=7)
    r1 = store.ingest("erp", first, rets, wm1, replace_from=T0 - timedelta(days=1))
    assert (r1.lines, r1.returns, r1.cached_lines, r1.cached_returns) == (4, 1, 4, 1)
    assert r1.previous_watermark is None and r1.watermark == wm1
    assert store.watermark("erp") == wm1
    cached = store.cached_sales(T0 - timedelta(days=1))
    assert _by_key(cached) == _by_key(model.coerce("sales_order_lines", first))
    assert cached["ordered_at"].min() == T0  # microseconds kept

    # the re-read from day 5: SO-2 shipped, SO-3 deleted in the source, SO-4 new;
    # SO-1 (before the re-read) stays as it was
    again = _lines(
        ("SO-2", 1, "A-1", 4.0, T0 + timedelta(days=5), "shipped"),
        ("SO-4", 1, "B-2", 3.0, T0 + timedelta(days=7), "open"),
    )
    r2 = store.ingest(
        "erp", again, _returns(), wm1 + timedelta(days=1), replace_from=T0 + timedelta(days=5)
    )
    assert (r2.deleted_lines, r2.lines, r2.cached_lines) == (2, 2, 4)
    got = _by_key(store.cached_sales(T0 - timedelta(days=1)))
    assert set(got) == {("SO-1", 1), ("SO-1", 2), ("SO-2", 1), ("SO-4", 1)}
    assert got[("SO-2", 1)][3] == "shipped"

    # a batch from an older read (a replay, a late retry) never moves it back
    r3 = store.ingest("erp", _lines(("SO-1", 1, "A-1", 5.0, T0, "shipped")), _returns(), T0)
    assert r3.watermark == wm1 + timedelta(days=1) == store.watermark("erp")
    assert _by_key(store.cached_sales(T0))[("SO-1", 1)][1] == 5.0  # upserted on its key
    # a reset (full refresh) replaces everything, watermark included
    r4 = store.ingest("erp", first.iloc[:1], _returns(), T0, replace_from=T0, reset=True)
    assert (r4.deleted_lines, r4.deleted_returns, r4.cached_lines, r4.watermark) == (4, 1, 1, T0)
    store.dispose()


def test_a_channel_line_is_distinct_from_an_erp_line(store_url: str) -> None:
    store = Store(store_url)
    line = ("1001", 1, "A-1", 1.0, T0, "shipped")
    store.ingest("erp", _lines(line, channel="shopify"), _returns(), T0)
    store.ingest("shopify", _lines(line, channel="shopify"), _returns(), T0)
    store.ingest(
        "shopify",
        _lines(line, ("1002", 1, "B-2", 2.0, T0, "open"), channel="shopify"),
        _returns(),
        T0,
    )
    assert len(store.cached_sales(None)) == 3
    assert len(store.cached_sales(None, sources=["shopify"])) == 2
    both = store.cached_sales(None, with_source=True)
    assert sorted(both["source"]) == ["erp", "shopify", "shopify"]
    listing = store.sources().set_index("source")
    assert listing.loc["shopify", "rows"] == 2 and listing.loc["erp", "rows"] == 1
    store.reset_source("shopify")
    assert store.watermark("shopify") is None
    assert list(store.sources()["source"]) == ["erp"]
    assert len(store.cached_sales(None)) == 1
    store.dispose()


def test_cached_reads_honour_window_skus_and_undated_lines(store_url: str) -> None:
    store = Store(store_url)
    lines = _lines(
        ("SO-1", 1, "A-1", 1.0, T0, "shipped"),
        ("SO-2", 1, "B-2", 1.0, T0 + timedelta(days=1), "shipped"),
        ("SO-3", 1, "A-1", 1.0, None, "open"),  # a date the source could not give
    )
    store.ingest("erp", lines, _returns(("SO-1", "A-1", 1.0, T0 + timedelta(days=1))), T0)
    day1 = T0 + timedelta(days=1)
    assert set(store.cached_sales(T0)["order_id"]) == {"SO-1", "SO-2", "SO-3"}
    assert set(store.cached_sales(T0, day1)["order_id"]) == {"SO-1"}  # undated: not in a cut window
    assert set(store.cached_sales(day1)["order_id"]) == {"SO-2", "SO-3"}
    assert set(store.cached_sales(T0, skus=["B-2"])["order_id"]) == {"SO-2"}
    assert store.cached_sales(T0, skus=[]).empty
    assert len(store.cached_returns(day1)) == 1 and store.cached_returns(T0, day1).empty
    out = store.cached_sales(T0)
    assert dict(out.dtypes.astype(str)) == model.CONTRACT["sales_order_lines"]
    # the undated line is replaced by every re-read
    store.ingest("erp", _lines(), _returns(), day1, replace_from=day1)
    assert set(store.cached_sales(T0)["order_id"]) == {"SO-1"}
    store.dispose()


def test_ingest_refuses_rows_it_cannot_key_and_names_them(store_url: str) -> None:
    store = Store(store_url)
    no_key = _lines(("SO-1", 1, "A-1", 1.0, T0, "shipped"), ("SO-2", 1, "A-1", 1.0, T0, "open"))
    no_key.loc[1, "line_no"] = None
    with pytest.raises(
        StoreError, match=r"1 sales line\(s\) of source 'erp': row 1 .*line_no is missing"
    ):
        store.ingest("erp", no_key, _returns(), T0)
    too_long = _lines(("X" * 70, 1, "A-1", 1.0, T0, "shipped"))
    with pytest.raises(StoreError, match=r"order_id 'XXXX.*70 characters, at most 64"):
        store.ingest("erp", too_long, _returns(), T0)
    with pytest.raises(StoreError, match="a cache source is a name"):
        store.ingest("", _lines(), _returns(), T0)
    assert store.watermark("erp") is None and store.cached_sales(None).empty
    # a key repeated in one batch keeps its last row
    dup = _lines(("SO-1", 1, "A-1", 1.0, T0, "open"), ("SO-1", 1, "A-1", 1.0, T0, "shipped"))
    result = store.ingest("erp", dup, _returns(), T0)
    assert result.duplicates == 1
    assert list(store.cached_sales(None)["status"]) == ["shipped"]
    store.dispose()


def test_ingest_of_lean_frames_names_too_long_values_and_writes_in_chunks(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames as an ERP read gives them (categorical SKUs, Arrow order ids)
    are checked without a Python string a row and written a chunk at a time:
    every row arrives, the counts are kept, a too-long value is named."""
    from replenish.sources.fastread import lean_frame

    store = Store(any_db_url)
    too_long = lean_frame("sales_order_lines", _lines(("SO-1", 1, "S" * 65, 1.0, T0, "open")))
    assert isinstance(too_long["sku"].dtype, pd.CategoricalDtype)
    with pytest.raises(StoreError, match=r"sku 'SSSS.*65 characters, at most 64"):
        store.ingest("erp", too_long, _returns(), T0)
    long_id = lean_frame("sales_order_lines", _lines(("O" * 65, 1, "A-1", 1.0, T0, "open")))
    assert long_id["order_id"].dtype == "string[pyarrow]"
    with pytest.raises(StoreError, match=r"order_id 'OOOO.*65 characters, at most 64"):
        store.ingest("erp", long_id, _returns(), T0)

    monkeypatch.setattr(cache, "_CHUNK", 7)
    rows = [(f"SO-{i // 3}", i % 3 + 1, f"A-{i % 5}", 1.0, T0, "shipped") for i in range(50)]
    batch = lean_frame("sales_order_lines", _lines(*rows))
    first = store.ingest("erp", batch, _returns(), T0, replace_from=T0)
    assert (first.lines, first.cached_lines, first.duplicates) == (50, 50, 0)
    # again, with one line changed and a new one: an upsert of 51 rows in chunks of 7
    again = _lines(*rows, ("SO-99", 1, "A-1", 2.0, T0, "open"))
    again.loc[0, "qty"] = 5.0
    second = store.ingest("erp", lean_frame("sales_order_lines", again), _returns(), T0)
    assert (second.lines, second.cached_lines) == (51, 51)
    cached = store.cached_sales(None).sort_values(["order_id", "line_no"], ignore_index=True)
    assert len(cached) == 51
    assert cached.set_index(["order_id", "line_no"]).loc[("SO-0", 1), "qty"] == 5.0
    store.dispose()


def test_a_re_read_window_writes_only_what_changed_and_stamps_the_rest_anew(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-read window is compared with the cache: only new and changed lines
    are written, lines gone are deleted, and the unchanged ones are stamped
    with the batch's load time and lose their verdict, as if written again
    (the gate validates a re-read line anew)."""
    store = Store(any_db_url)
    day = timedelta(days=1)
    first = _lines(
        ("SO-1", 1, "A-1", 2.0, T0, "shipped"),
        ("SO-2", 1, "A-1", 4.0, T0 + 2 * day, "open"),
        ("SO-3", 1, "B-2", 1.0, T0 + 3 * day, "open"),
        ("SO-4", 1, "B-2", 1.0, T0 + 3 * day, "open"),
    )
    store.ingest("erp", first, _returns(), T0 + 4 * day, replace_from=T0)
    until = store.source_state("erp").updated_at  # type: ignore[union-attr]
    rejected = pd.DataFrame(
        {"channel": ["web"], "order_id": ["SO-2"], "line_no": [1], "verdict": ["range:qty"]}
    )
    store.record_verdicts("erp", rejected, through=until, validated_from=T0, rules="r1")
    written: list[int] = []
    real = cache.upsert

    def counting(conn, table, columns, rows, **kw):  # type: ignore[no-untyped-def]
        rows = [list(chunk) for chunk in rows]
        written.append(sum(len(chunk) for chunk in rows))
        return real(conn, table, columns, rows, **kw)

    monkeypatch.setattr(cache, "upsert", counting)
    # from day 2: SO-2 unchanged, SO-3 shipped, SO-4 gone, SO-5 new
    again = _lines(
        ("SO-2", 1, "A-1", 4.0, T0 + 2 * day, "open"),
        ("SO-3", 1, "B-2", 1.0, T0 + 3 * day, "shipped"),
        ("SO-5", 1, "A-1", 3.0, T0 + 4 * day, "open"),
    )
    r = store.ingest("erp", again, _returns(), T0 + 5 * day, replace_from=T0 + 2 * day)
    assert written[0] == 2  # SO-3 and SO-5: SO-2 was not written again
    assert (
        (r.lines, r.deleted_lines, r.cached_lines) == (3, 3, 4) == (3, 3, _counted(store, "erp")[0])
    )
    got = store.cached_sales(None, with_verdicts=True).set_index("order_id")
    assert sorted(got.index) == ["SO-1", "SO-2", "SO-3", "SO-5"]
    assert got.loc["SO-3", "status"] == "shipped"
    assert got.loc["SO-2", "verdict"] is None  # stamped anew: not validated yet
    with store.engine.connect() as c:
        stamps = dict(c.exec_driver_sql("SELECT order_id, loaded_at FROM sales_cache").all())
    assert stamps["SO-2"] == stamps["SO-5"] != stamps["SO-1"]
    store.dispose()


def test_ingest_is_all_or_nothing(any_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the lines are written (here: the connection drops while
    the returns are written) leaves the previous rows and watermark."""
    store = Store(any_db_url)
    store.ingest(
        "erp", _lines(("SO-1", 1, "A-1", 1.0, T0, "shipped")), _returns(), T0, replace_from=T0
    )
    real = cache.upsert

    def drop_on_returns(conn, table, columns, rows, **kw):  # type: ignore[no-untyped-def]
        if table == "returns":
            raise OperationalError("INSERT", {}, ConnectionError("connection dropped"))
        return real(conn, table, columns, rows, **kw)

    monkeypatch.setattr(cache, "upsert", drop_on_returns)
    later = T0 + timedelta(days=1)
    with pytest.raises(StoreError, match="cannot cache the sales of source 'erp'"):
        store.ingest(
            "erp",
            _lines(("SO-2", 1, "A-1", 1.0, later, "open")),
            _returns(("SO-1", "A-1", 1.0, later)),
            later,
            replace_from=T0,
        )
    assert store.watermark("erp") == T0
    assert list(store.cached_sales(None)["order_id"]) == ["SO-1"]
    store.dispose()


def test_prune_drops_old_rows_and_moves_the_coverage(store_url: str) -> None:
    store = Store(store_url)
    lines = _lines(
        ("SO-1", 1, "A-1", 1.0, T0, "shipped"),
        ("SO-2", 1, "A-1", 1.0, T0 + timedelta(days=3), "open"),
    )
    store.ingest(
        "erp", lines, _returns(("SO-1", "A-1", 1.0, T0)), T0, replace_from=T0 - timedelta(days=9)
    )
    assert store.source_state("erp").covered_from == T0 - timedelta(days=9)  # type: ignore[union-attr]
    assert store.prune("erp", T0 + timedelta(days=1)) == 2
    state = store.source_state("erp")
    assert state is not None and state.covered_from == T0 + timedelta(days=1)
    assert (state.rows, state.returns) == (1, 0)
    assert store.prune("nobody", T0) == 0
    store.dispose()


def test_aware_timestamps_are_kept_as_naive_utc(store_url: str) -> None:
    store = Store(store_url)
    berlin = timezone(timedelta(hours=1))
    store.ingest("shopify", _lines(), _returns(), datetime(2026, 11, 2, 10, 0, tzinfo=berlin))
    assert store.watermark("shopify") == datetime(2026, 11, 2, 9, 0)
    store.dispose()


def test_write_conflicts_are_told_from_other_faults() -> None:
    """What the store runs again (a lost race) and what it does not, on the
    drivers' own exception objects: MariaDB's deadlock 1213 and lock wait
    1205, PostgreSQL's 40P01 / 40001, any IntegrityError; not a syntax error."""
    import pymysql
    from sqlalchemy import exc

    from replenish.sources.db import is_write_conflict

    def op(orig: BaseException) -> exc.OperationalError:
        return exc.OperationalError("UPDATE ...", {}, orig)

    deadlock = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
    assert is_write_conflict(op(deadlock))
    assert is_write_conflict(op(pymysql.err.OperationalError(1205, "Lock wait timeout")))
    assert is_write_conflict(exc.IntegrityError("INSERT ...", {}, Exception("duplicate key")))

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("could not serialize access")
            self.sqlstate = sqlstate

    assert is_write_conflict(op(PgError("40P01")))
    assert is_write_conflict(op(PgError("40001")))
    assert not is_write_conflict(op(PgError("42601")))
    assert not is_write_conflict(op(pymysql.err.OperationalError(1064, "syntax error")))
    assert not is_write_conflict(ValueError("not a database error"))


def test_lean_cache_reads_equal_the_plain_ones(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean read (ADBC on a SQLite file and on PostgreSQL, columns built
    from the driver's rows otherwise, and the sqlite3 fallback) gives the
    values of the plain read: missing quantities, dates and verdicts
    included, the verdicts the gate recorded (docs/incremental.md)."""
    store = Store(any_db_url)
    lines = _lines(
        ("SO-1", 1, "A-1", float("nan"), None, "open"),
        ("SO-1", 2, "B-2", 1.5, T0, "shipped"),
        ("SO-2", 1, "A-1", -4.0, T0 + timedelta(days=5), "open"),
        ("SO-3", 1, "C-3", 1.0, T0 + timedelta(days=6), "cancelled"),
    )
    store.ingest("erp", lines, _returns(("SO-1", "A-1", 1.0, T0)), T0 + timedelta(days=7))
    store.ingest("woo", lines.iloc[1:2], _returns(), T0 + timedelta(days=7))
    rejected = pd.DataFrame(
        {"channel": ["web"], "order_id": ["SO-2"], "line_no": [1], "verdict": ["range:qty"]}
    )
    until = store.source_state("erp").updated_at  # type: ignore[union-attr]
    n = store.record_verdicts("erp", rejected, through=until, validated_from=T0, rules="r1")
    assert n == 1  # SO-2's failed check; SO-1/2 and SO-3 passed, the undated SO-1/1 unknown
    state = store.sources().set_index("source").loc["erp"]
    assert (state["verdict_rules"], state["verdicts_through"]) == ("r1", until)

    def read(**kw: object) -> pd.DataFrame:
        frame = store.cached_sales(None, with_source=True, with_verdicts=True, **kw)  # type: ignore[arg-type]
        frame = frame.astype({c: "string" for c in ("source", "order_id", "sku", "location_id")})
        frame = frame.astype({"channel": "string", "status": "string"})
        frame["verdict"] = frame["verdict"].astype(object).where(frame["verdict"].notna(), None)
        return frame.sort_values(["source", "order_id", "line_no"], ignore_index=True)

    plain = read()
    assert plain["verdict"].tolist() == [None, "", "range:qty", "", None]
    pd.testing.assert_frame_equal(read(lean=True), plain)
    monkeypatch.setattr("replenish.store.fastcache.read_sqlite_frame", lambda *a, **k: None)
    pd.testing.assert_frame_equal(read(lean=True), plain)
    lean = store.cached_sales(None, with_source=True, lean=True)
    assert str(lean["sku"].dtype) == "category" and str(lean["source"].dtype) == "category"
    # a line cached again after the validated read is not validated
    store.ingest("erp", lines.iloc[2:3].assign(qty=5.0), _returns(), T0 + timedelta(days=8))
    assert read(lean=True)["verdict"].tolist() == [None, "", None, "", None]
    store.dispose()


def test_the_sqlite_fast_read_is_used_and_falls_back(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replenish.store import fastcache

    store = Store(sqlite_url)
    store.ingest("erp", _lines(("SO-1", 1, "A-1", 2.0, T0, "open")), _returns(), T0)
    calls: list[object] = []
    real = fastcache.read_sqlite_frame

    def spy(*args: object, **kw: object) -> object:
        out = real(*args, **kw)  # type: ignore[arg-type]
        calls.append(out)
        return out

    monkeypatch.setattr(fastcache, "read_sqlite_frame", spy)
    assert len(store.cached_sales(None, lean=True)) == 1
    assert len(calls) == 1 and calls[0] is not None  # read through ADBC
    # an in-memory or URI database, or a driver error: the sqlite3 read
    assert fastcache.sqlite_file("sqlite://") is None
    assert fastcache.sqlite_file("sqlite:///file:x?mode=ro&uri=true") is None
    monkeypatch.setattr(fastcache, "BATCH_ROWS", -5)  # the driver refuses it
    assert real.__module__ == "replenish.store.fastcache"
    assert len(store.cached_sales(None, lean=True)) == 1
    assert calls[-1] is None
    store.dispose()
