"""The project's store on SQLite and PostgreSQL: migrations, idempotent drafts, alerts."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from replenish.errors import StoreError
from replenish.notify.alerts import Alert
from replenish.orders import build_drafts, build_headers, merge_partial
from replenish.store import Store
from replenish.store.models import Base

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
