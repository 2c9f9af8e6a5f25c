"""The publishing commands end to end on a real store and a local ERPNext
peer (tests/erp_peers.py): ``replenish approve``, ``push``, ``orders
--export`` and ``kpis``."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from replenish.cli import app
from replenish.errors import ConfigurationError, StoreError
from replenish.orders import build_drafts
from replenish.orders.push import PushFailed
from replenish.store import Store
from tests.adapters.test_drafts import SUPPLIERS, _plans
from tests.erp_peers import ErpNextPeer

DAY = date(2026, 11, 20)
S1, S2 = "2026-11-20/S1/WH1", "2026-11-20/S2/WH1"


@pytest.fixture
def store_with_run(sqlite_url: str) -> Iterator[tuple[str, str]]:
    """A finished run of DAY with its plans and two draft orders (S1: A-1 24
    and B-2 10, value 248; S2: C-3 3, value 90)."""
    store = Store(sqlite_url)
    plans = _plans()
    run_id = store.start_run(DAY, erp="sqlite://", parameters={})
    store.save_plans(run_id, plans)
    headers, lines = build_drafts(plans, SUPPLIERS, DAY)
    store.publish_drafts(DAY, run_id, headers, lines)
    store.finish_run(run_id, "completed", counts={})
    store.dispose()
    yield sqlite_url, run_id


@pytest.fixture
def erpnext(monkeypatch: pytest.MonkeyPatch) -> Iterator[ErpNextPeer]:
    with ErpNextPeer() as peer:
        for supplier in ("S1", "S2"):
            peer.add_supplier(supplier)
        for sku in ("A-1", "B-2", "C-3"):
            peer.add_item(sku)
        peer.add_warehouse("WH1")
        for name, value in {
            "URL": peer.url, "API_KEY": "k3y", "API_SECRET": "s3cret",
            "MAX_ATTEMPTS": "2", "BACKOFF": "0.01", "TIMEOUT": "5",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"REPLENISH_ERPNEXT_{name}", value)
        yield peer


def cli(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, exc


def test_approve_then_push_to_erpnext_twice_adds_nothing_twice(
    store_with_run: tuple[str, str], erpnext: ErpNextPeer
) -> None:
    db, run_id = store_with_run
    code, out, _ = cli("approve", "--db", db, "--run", run_id)
    assert code == 0 and "2 draft order(s) waiting" in out and S1 in out and S2 in out

    code, out, exc = cli(
        "approve", "--db", db, "--run", run_id, "--po", S1, "--qty", "A-1=36", "--by", "Petra"
    )
    assert exc is None and code == 0, out
    assert f"{S1}: approved by Petra" in out and "A-1 24 → 36" in out and "value 272.00" in out

    code, out, exc = cli("push", "--db", db, "--target", "erpnext")
    assert exc is None and code == 0, out
    assert "push to erpnext: 1 created, 1 held" in out and f"held      {S2}: not approved" in out
    docs = erpnext.orders()
    assert [(d["title"], d["docstatus"]) for d in docs] == [(S1, 0)]
    assert sorted((i["item_code"], i["qty"]) for i in docs[0]["items"]) == [
        ("A-1", 36.0),
        ("B-2", 10.0),
    ]

    # a second push (a rerun, a retry) finds the ERP's draft by its key
    code, out, _ = cli("push", "--db", db, "--target", "erpnext", "--run", run_id)
    assert code == 0 and "1 unchanged" in out
    assert len(erpnext.orders()) == 1
    store = Store(db)
    head = store.drafts(as_of=DAY).set_index("po_key").loc[S1]
    assert head["erp_target"] == "erpnext" and head["erp_id"] == docs[0]["name"]
    assert head["push_action"] == "unchanged" and head["pushed_at"] is not None
    assert pd.isna(store.drafts(as_of=DAY).set_index("po_key").loc[S2, "erp_id"])
    store.dispose()


def test_a_push_the_erp_refuses_is_recorded_and_fails(
    store_with_run: tuple[str, str], erpnext: ErpNextPeer
) -> None:
    db, _ = store_with_run
    erpnext.docs["Item"].pop("A-1")  # the ERP does not know one SKU
    cli("approve", "--db", db, "--po", S1, "--po", S2, "--by", "Petra")
    code, _, exc = cli("push", "--db", db, "--target", "erpnext")
    assert code != 0
    assert isinstance(exc, PushFailed) and f"{S1}: unknown item(s) in ERPNext" in str(exc)
    assert [d["title"] for d in erpnext.orders()] == [S2]  # the other order went through
    heads = Store(db).drafts(as_of=DAY).set_index("po_key")
    assert heads.loc[S1, "push_action"] == "failed" and "A-1" in heads.loc[S1, "push_message"]
    assert heads.loc[S2, "push_action"] == "created"


def test_approve_reject_and_usage_errors(store_with_run: tuple[str, str]) -> None:
    db, run_id = store_with_run
    code, out, _ = cli("approve", "--db", db, "--po", S2, "--reject", "--by", "Quentin")
    assert code == 0 and f"{S2}: rejected by Quentin" in out
    for args, error, message in [
        (["--po", S1, "--qty", "A-1"], ConfigurationError, "expected SKU=QUANTITY"),
        (["--po", S1, "--qty", "A-1=2", "--reject", "--by", "x"], ConfigurationError, "not with"),
        (["--po", S1, "--po", S2, "--qty", "A-1=2", "--by", "x"], ConfigurationError, "one --po"),
        (["--po", S1], ConfigurationError, "--by NAME"),
        (["--po", "2026-11-19/S1/WH1", "--by", "x"], ConfigurationError, "no draft order"),
        (["--po", S2, "--by", "Petra"], StoreError, "already rejected \\(by Quentin"),
        (["--po", S1, "--qty", "Z-9=1", "--by", "x"], StoreError, "no line for SKU 'Z-9'"),
    ]:
        _, _, exc = cli("approve", "--db", db, "--run", run_id, *args)
        assert isinstance(exc, error), (args, exc)
        assert re.search(message, str(exc)), (args, exc)


def test_export_writes_one_file_per_open_order(
    store_with_run: tuple[str, str], tmp_path: Path
) -> None:
    db, _ = store_with_run
    cli("approve", "--db", db, "--po", S2, "--reject", "--by", "Quentin")
    out_dir = tmp_path / "export"
    code, out, exc = cli(
        "orders", "--db", db, "--export", "csv", "--export", "xlsx", "--out", str(out_dir)
    )
    assert exc is None and code == 0, out
    assert "2 file(s) for 1 order(s)" in out  # the rejected order is not exported
    with (out_dir / "2026-11-20_S1_WH1.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sku"], r["qty"]) for r in rows[:-1]] == [("A-1", "24"), ("B-2", "10")]
    assert rows[-1]["description"] == "TOTAL" and rows[-1]["line_value"] == "248.00"
    sheet = load_workbook(out_dir / "2026-11-20_S1_WH1.xlsx").active
    assert sheet is not None and any(c.value == S1 for row in sheet.iter_rows() for c in row)
    _, _, exc = cli("orders", "--db", db, "--export", "csv")
    assert isinstance(exc, ConfigurationError) and "--out DIR" in str(exc)


def test_kpis_are_read_as_the_run_stored_them(store_with_run: tuple[str, str]) -> None:
    db, run_id = store_with_run
    _, _, exc = cli("kpis", "--db", db)
    assert isinstance(exc, StoreError) and "stored no KPIs" in str(exc)
    stored = {
        "as_of": DAY.isoformat(),
        "window_days": 90,
        "overall": {"service_rate": 0.975, "stock_turns": 12.25, "stockouts_now": 3.0},
        "units": {"service_rate": "ratio", "stock_turns": "per year", "stockouts_now": "count"},
        "basis": {"service_rate": "1,200 units due"},
        "by_abc_class": {"A": {"service_rate": 0.99, "stock_turns": None, "stockouts_now": 1}},
    }
    store = Store(db)
    store.save_kpis(run_id, stored)
    store.dispose()
    code, out, _ = cli("kpis", "--db", db, "--format", "table")
    assert code == 0
    assert "service_rate" in out and "97.5 %" in out and "1,200 units due" in out
    assert "12.2" in out and "per year" in out
    code, out, _ = cli("kpis", "--db", db, "--run", run_id, "--format", "json")
    assert json.loads(out) == {"run_id": run_id, **stored}
    code, out, _ = cli("kpis", "--db", db, "--format", "markdown")
    assert "| service_rate | 97.5 % | ratio | 1,200 units due |" in out
    assert "| A | 99.0 % | – | 1 |" in out
